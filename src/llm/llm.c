// SPDX-License-Identifier: Apache-2.0
/*
 * llm/: the http_sink of one connection. on_request decides whether an exchange is an LLM API
 * call (provider by Host/SNI, API shape by path); only then an exchange object exists. Bodies
 * go to json-c's incremental tokener as they arrive (bounded by LLM_MAX_BODY), streamed
 * responses through the SSE parser, each event's data parsed as JSON. The call is emitted once,
 * when the response ends or the exchange is aborted.
 *
 * Header values we read: Host, Content-Type, Content-Encoding; tenant.c reads the attribution
 * headers and hashes the credential (Authorization, x-api-key, ...) without keeping it.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../proto/decode.h"
#include "../proto/eventstream.h"
#include "content.h"
#include "jseq.h"
#include "provider.h"
#include "tenant.h"
#include "../util/zpack.h"

/* Tool schemas nest; json-c's default depth of 32 is too shallow for some requests. */
#define LLM_JSON_DEPTH 128

static struct llm_stats llm_stats_g;

/* A JSON body fed piece by piece to json-c; only the tokener's state is kept, not the bytes. */
struct llm_body {
	struct json_tokener *tok;
	struct json_object *root;
	size_t bytes;
	bool any;      /* a byte other than whitespace arrived */
	bool failed;   /* not JSON */
	bool overflow; /* past LLM_MAX_BODY: parsing given up */
	bool lost;     /* capture lost bytes of it: parsing given up */
};

enum llm_resp_mode {
	LLM_RESP_WAIT,  /* no response head yet */
	LLM_RESP_SNIFF, /* no Content-Type: decided by the first body byte */
	LLM_RESP_JSON,
	LLM_RESP_SSE,
	LLM_RESP_SKIP,  /* content-coded: not parsed */
	LLM_RESP_JSEQ,  /* JSON objects one after another: NDJSON, a streamed JSON array */
	LLM_RESP_ES,    /* AWS event stream (Bedrock) */
};

/*
 * What the HTTP parser holds as the handle of an exchange, and what the connection lists: the
 * exchange, or, while it only waits for its response, a packed copy of it (util/zpack.c: an
 * llm_call is kilobytes of mostly empty string fields). llm_conn__trim packs; the next callback
 * unpacks. 10,000 connections each waiting for an answer then cost a few hundred bytes each.
 */
struct llm_slot {
	struct llm_slot *prev, *next;
	struct llm_conn *lc;
	struct llm_ex *ex; /* NULL while packed */
	uint8_t *packed;
	size_t packed_len;
};

/* When each output chunk of a stream arrived, as the gaps between them (llm_call.chunk_gaps). */
struct llm_chunks {
	uint64_t last_ns;
	float *gaps;
	uint32_t n, cap, folded;
	double folded_s;
};

struct llm_ex {
	struct llm_conn *lc;
	struct llm_slot *slot;
	const struct llm_shape *shape;
	bool by_path;
	bool req_done;
	bool req_skip;   /* request body in a Content-Encoding we cannot undo */
	struct decoder *dec[2]; /* Content-Encoding of the request [0] and response [1] bodies */
	uint64_t dec_ts;        /* when the coded bytes being decoded were read */
	bool req_object; /* the request body parsed as a JSON object */
	bool ev_error;   /* an event's data did not parse (counted once) */
	enum llm_resp_mode mode;
	struct llm_body req, resp;
	struct sse *sse;
	struct json_tokener *ev_tok;
	struct jseq *jseq;
	struct eventstream *es;
	uint64_t es_bad; /* messages the decoder dropped, as last counted */
	struct llm_content *content; /* --capture-content only, else NULL */
	struct llm_extract x;
	struct llm_call call;
	struct llm_chunks chunks;
	uint64_t stream_end_ns; /* when the stream's terminal event arrived; 0 not yet */
};

struct llm_conn {
	const struct llm_conn_info *info;
	llm_call_cb cb;
	void *cb_ctx;
	struct http_sink sink;
	struct llm_slot *open;
};

/* ---- helpers for the shapes ------------------------------------------------------------ */

struct json_object *llm_json__get(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

const char *llm_json__str(struct json_object *o, const char *key)
{
	struct json_object *v = llm_json__get(o, key);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

bool llm_json__int(struct json_object *o, const char *key, int64_t *out)
{
	struct json_object *v = llm_json__get(o, key);
	int64_t i;
	double d;

	if (json_object_is_type(v, json_type_int)) {
		i = json_object_get_int64(v);
	} else if (json_object_is_type(v, json_type_double)) {
		d = json_object_get_double(v);
		if (!(d >= 0 && d < 9e15) || (double)(int64_t)d != d)
			return false;
		i = (int64_t)d;
	} else {
		return false;
	}
	if (i < 0)
		return false;
	*out = i;
	return true;
}

bool llm_json__double(struct json_object *o, const char *key, double *out)
{
	struct json_object *v = llm_json__get(o, key);
	double d;

	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return false;
	d = json_object_get_double(v);
	if (!isfinite(d)) /* json-c accepts NaN and Infinity; no exporter can carry them */
		return false;
	*out = d;
	return true;
}

void llm__copy_str(char *dst, size_t cap, const char *src)
{
	size_t n;

	if (!cap)
		return;
	n = src ? strnlen(src, cap) : 0;
	if (n == cap) {
		n = cap - 1;
		/* Do not end inside a UTF-8 sequence: drop the partial character. */
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

void llm__set_str_once(char *dst, size_t cap, const char *src)
{
	if (!dst[0] && src && src[0])
		llm__copy_str(dst, cap, src);
}

void llm__add_finish(struct llm_extract *x, const char *reason)
{
	struct llm_call *c = x->call;

	if (!reason || c->n_finish_reasons >= LLM_MAX_FINISH)
		return;
	llm__copy_str(c->finish_reasons[c->n_finish_reasons], sizeof(c->finish_reasons[0]), reason);
	c->n_finish_reasons++;
}

void llm__set_error(struct llm_call *c, const char *type)
{
	llm__set_str_once(c->error_type, sizeof(c->error_type), type);
}

void llm__request_common(struct llm_extract *x, struct json_object *root)
{
	struct llm_call *c = x->call;
	struct json_object *stream = llm_json__get(root, "stream");
	const char *model = llm_json__str(root, "model");

	/* Without one in the body, the model the path named (an Azure deployment) stays. */
	if (model)
		llm__copy_str(c->request_model, sizeof(c->request_model), model);
	/* Both APIs default to a plain response when "stream" is absent. */
	c->stream = json_object_is_type(stream, json_type_boolean) &&
		    json_object_get_boolean(stream);
	c->has_temperature = llm_json__double(root, "temperature", &c->temperature);
	x->has_messages = json_object_is_type(llm_json__get(root, "messages"), json_type_array);
}

/* ---- bodies ---------------------------------------------------------------------------- */

static bool llm__has_non_ws(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (d[i] != ' ' && d[i] != '\t' && d[i] != '\r' && d[i] != '\n')
			return true;
	return false;
}

static void llm_body__drop_tok(struct llm_body *b)
{
	if (b->tok)
		json_tokener_free(b->tok);
	b->tok = NULL;
}

static void llm_body__free(struct llm_body *b)
{
	llm_body__drop_tok(b);
	if (b->root)
		json_object_put(b->root);
	b->root = NULL;
}

/* Returns true when these bytes took the body past LLM_MAX_BODY. */
static bool llm_body__feed(struct llm_body *b, const uint8_t *d, size_t n)
{
	struct json_object *obj;

	if (b->root || b->failed || b->overflow || b->lost || !n)
		return false; /* bytes after a complete value are ignored */
	b->any = b->any || llm__has_non_ws(d, n);
	if (n > LLM_MAX_BODY - b->bytes) {
		b->overflow = true;
		llm_body__drop_tok(b);
		return true;
	}
	b->bytes += n;
	if (!b->tok && !(b->tok = json_tokener_new_ex(LLM_JSON_DEPTH))) {
		b->failed = true;
		return false;
	}
	obj = json_tokener_parse_ex(b->tok, (const char *)d, (int)n);
	if (obj) {
		b->root = obj;
		llm_body__drop_tok(b);
	} else if (json_tokener_get_error(b->tok) != json_tokener_continue) {
		b->failed = true;
		llm_body__drop_tok(b);
	}
	return false;
}

static struct json_object *llm_body__object(const struct llm_body *b)
{
	return json_object_is_type(b->root, json_type_object) ? b->root : NULL;
}

/* Did the body fail to be the JSON object we expected, for a reason other than loss or size?
 * `complete`: the message ended normally (an unfinished value is then an error too). */
static bool llm_body__bad(const struct llm_body *b, bool complete)
{
	if (!b->any || b->overflow || b->lost || llm_body__object(b))
		return false;
	return b->failed || b->root || complete;
}

/* ---- detection ------------------------------------------------------------------------- */

/* The path and host tables are in detect.c. */

static void llm__trim(const char **v, size_t *n)
{
	while (*n && (**v == ' ' || **v == '\t')) {
		(*v)++;
		(*n)--;
	}
	while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
		(*n)--;
}

static int llm__parse_port(const char *p, size_t n)
{
	int port = 0;

	if (!n || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		port = port * 10 + (p[i] - '0');
	}
	return port > 0 && port <= 65535 ? port : -1;
}

/* "API.OpenAI.com:8443" -> "api.openai.com" and 8443; "[::1]:80" -> "::1" and 80.
 * *port is left alone when the value names none. Returns false for an empty host. */
static bool llm__parse_host(const char *v, size_t n, char *out, size_t cap, int *port)
{
	const char *host, *colon = NULL;
	size_t hn;

	llm__trim(&v, &n);
	host = v;
	hn = n;
	if (n && v[0] == '[') {
		const char *rb = memchr(v, ']', n);

		if (!rb)
			return false;
		host = v + 1;
		hn = (size_t)(rb - host);
		if ((size_t)(rb - v) + 1 < n && rb[1] == ':')
			colon = rb + 1;
	} else {
		colon = memrchr(v, ':', n);
		if (colon && memchr(v, ':', (size_t)(colon - v)))
			colon = NULL; /* a bare IPv6 address, no port */
		if (colon)
			hn = (size_t)(colon - v);
	}
	if (colon) {
		int p = llm__parse_port(colon + 1, n - (size_t)(colon + 1 - v));

		if (p > 0)
			*port = p;
	}
	while (hn && host[hn - 1] == '.') /* "api.openai.com." is the same name */
		hn--;
	if (!hn)
		return false;
	if (hn >= cap)
		hn = cap - 1;
	for (size_t i = 0; i < hn; i++)
		out[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] + 32 : host[i]);
	out[hn] = '\0';
	return true;
}

static bool llm__header_is(const struct http_head *h, const char *name, const char *prefix)
{
	const struct http_header *hd = http_head__find(h, name);
	const char *v;
	size_t n, k = strlen(prefix);

	if (!hd)
		return false;
	v = hd->value;
	n = hd->value_len;
	llm__trim(&v, &n);
	return n >= k && !strncasecmp(v, prefix, k);
}

static void llm__server_from_info(struct llm_call *c, const struct llm_conn_info *info,
				  int def_port)
{
	if (info->sni[0]) {
		int port = def_port;

		llm__parse_host(info->sni, strnlen(info->sni, sizeof(info->sni)), c->server_address,
				sizeof(c->server_address), &port);
		c->server_port = info->has_peer && info->peer_port ? info->peer_port : port;
	} else if (info->has_peer) {
		llm__copy_str(c->server_address, sizeof(c->server_address), info->peer_addr);
		c->server_port = info->peer_port;
	}
}

/* Provider by Host or SNI; else the one the path implies (a self-hosted or proxied endpoint).
 * The route also brings what the path says: model, stream, the response's form. */
static void llm__detect(struct llm_ex *ex, const struct http_head *h, const struct llm_route *r)
{
	const struct llm_conn_info *info = ex->lc->info;
	const struct http_header *host = http_head__find(h, "host");
	struct llm_call *c = &ex->call;
	/* tls_source 2 is TT_SRC_PLAINTEXT: plain HTTP captured at the socket layer. */
	int def_port = info->tls_source && info->tls_source != 2 ? 443 : 80;
	enum llm_provider p = LLM_PROVIDER_UNKNOWN;
	const char *name = NULL;
	char sni[LLM_STR];

	c->server_port = def_port;
	if (host && llm__parse_host(host->value, host->value_len, c->server_address,
				    sizeof(c->server_address), &c->server_port))
		name = llm_detect__provider(c->server_address, &p);
	else
		llm__server_from_info(c, info, def_port);
	if (!name && info->sni[0]) {
		int ignored = 0;

		if (llm__parse_host(info->sni, strnlen(info->sni, sizeof(info->sni)), sni,
				    sizeof(sni), &ignored))
			name = llm_detect__provider(sni, &p);
	}
	ex->shape = r->shape;
	ex->by_path = !name;
	if (!name) {
		p = r->path_provider;
		name = r->path_provider_name;
	}
	c->provider = p;
	c->provider_name = name;
	c->detected_by = ex->by_path ? "path" : "host";
	llm__copy_str(c->operation, sizeof(c->operation),
		      r->shape->operation ? r->shape->operation : "chat");
	if (p == LLM_PROVIDER_OPENAI || p == LLM_PROVIDER_OPENAI_COMPATIBLE ||
	    p == LLM_PROVIDER_AZURE_OPENAI)
		c->api_type = r->shape->api_type; /* openai.* attributes: OpenAI's flavour only */
	llm__copy_str(c->request_model, sizeof(c->request_model), r->model);
	c->stream = r->stream;
	ex->x.json_seq = r->json_seq;
}

static void llm__init_call(struct llm_ex *ex, const struct http_head *h, size_t path_len,
			   uint64_t ts_ns)
{
	const struct llm_conn_info *info = ex->lc->info;
	struct llm_call *c = &ex->call;
	size_t n = path_len < sizeof(c->path) ? path_len : sizeof(c->path) - 1;

	ex->x.call = c;
	ex->x.raw_input = -1;
	ex->x.raw_output = -1;
	strcpy(c->operation, "chat");
	memcpy(c->method, h->method, h->method_len); /* "POST": checked by the caller */
	memcpy(c->path, h->path, n);
	c->path[n] = '\0';
	c->input_tokens = c->output_tokens = -1;
	c->cache_read_tokens = c->cache_creation_tokens = -1;
	c->reasoning_tokens = -1;
	c->max_tokens = -1;
	c->stream = -1;
	c->start_ns = ts_ns;
	c->pid = info->pid;
	c->tid = info->last_tid;
	c->conn_id = info->conn_id;
	c->tls_source = info->tls_source;
}

/* ---- the exchange ---------------------------------------------------------------------- */

static void llm_slot__link(struct llm_conn *lc, struct llm_slot *s, struct llm_ex *ex)
{
	s->ex = ex;
	s->lc = lc;
	ex->slot = s;
	s->next = lc->open;
	if (lc->open)
		lc->open->prev = s;
	lc->open = s;
}

static void llm_slot__free(struct llm_slot *s)
{
	struct llm_conn *lc = s->lc;

	if (s->prev)
		s->prev->next = s->next;
	else
		lc->open = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s->packed);
	free(s);
}

/* Only an exchange that owns nothing but plain data is packed: it waits for its response head,
 * its request parsed, every parser and buffer of it gone. A pointer that struct llm_ex gains
 * to memory it owns must be checked here too (a packed exchange is freed without llm__ex_free). */
static bool llm__packable(const struct llm_ex *ex)
{
	return ex->mode == LLM_RESP_WAIT && ex->req_done && !ex->dec[0] && !ex->dec[1] &&
	       !ex->req.tok && !ex->req.root && !ex->resp.tok && !ex->resp.root && !ex->sse &&
	       !ex->ev_tok && !ex->jseq && !ex->es && !ex->content && !ex->chunks.gaps;
}

static void llm_slot__pack(struct llm_slot *s)
{
	if (!s->ex || !llm__packable(s->ex) ||
	    zpack__pack(s->ex, sizeof(*s->ex), &s->packed, &s->packed_len))
		return;
	free(s->ex);
	s->ex = NULL;
}

/* The exchange of a handle, unpacked if need be. NULL when memory ran out: the call is lost,
 * and on its last callback (`last`) the slot goes too. */
static struct llm_ex *llm_slot__ex(void *handle, bool last)
{
	struct llm_slot *s = handle;
	struct llm_ex *ex = s->ex;

	if (ex || !s->packed)
		return ex;
	ex = malloc(sizeof(*ex));
	if (!ex || !zpack__unpack(s->packed, s->packed_len, ex, sizeof(*ex))) {
		free(ex);
		if (last)
			llm_slot__free(s);
		return NULL;
	}
	free(s->packed);
	s->packed = NULL;
	ex->x.call = &ex->call; /* the one pointer into itself */
	s->ex = ex;
	return ex;
}

static void llm__ex_free(struct llm_ex *ex)
{
	llm_slot__free(ex->slot);
	llm_body__free(&ex->req);
	llm_body__free(&ex->resp);
	sse__free(ex->sse);
	jseq__free(ex->jseq);
	eventstream__free(ex->es);
	content__free(ex->content);
	if (ex->ev_tok)
		json_tokener_free(ex->ev_tok);
	decoder__free(ex->dec[0]);
	decoder__free(ex->dec[1]);
	free(ex->chunks.gaps);
	free(ex);
}

/* An output chunk of a stream arrived with the read that ended at ts_ns. */
static void llm__chunk(struct llm_ex *ex, uint64_t ts_ns)
{
	struct llm_chunks *k = &ex->chunks;
	uint32_t cap;
	float *g;

	if (!ex->call.first_chunk_ns)
		ex->call.first_chunk_ns = ts_ns;
	if (k->last_ns && ts_ns < k->last_ns)
		return; /* not in order: no gap to tell */
	if (k->last_ns && k->n == k->cap && k->cap < LLM_MAX_CHUNK_GAPS) {
		cap = k->cap ? k->cap * 2 : 32;
		cap = cap < LLM_MAX_CHUNK_GAPS ? cap : LLM_MAX_CHUNK_GAPS;
		g = realloc(k->gaps, cap * sizeof(*g));
		if (g) {
			k->gaps = g;
			k->cap = cap;
		}
	}
	if (k->last_ns && k->n < k->cap) {
		k->gaps[k->n++] = (float)((double)(ts_ns - k->last_ns) / 1e9);
	} else if (k->last_ns) {
		k->folded++;
		k->folded_s += (double)(ts_ns - k->last_ns) / 1e9;
	}
	k->last_ns = ts_ns;
}

static void llm__mark_overflow(struct llm_ex *ex)
{
	llm_stats_g.body_overflow++;
	ex->call.partial = true;
}

/* Streamed data that did not parse: counted once per exchange, however many chunks. */
static void llm__json_error_once(struct llm_ex *ex)
{
	if (ex->ev_error)
		return;
	ex->ev_error = true;
	llm_stats_g.json_errors++;
}

/* Messages the event-stream decoder dropped since the last look: counted per message. */
static void llm__es_errors(struct llm_ex *ex)
{
	const struct eventstream_stats *st = eventstream__stats(ex->es);
	uint64_t bad = st->crc_errors + st->malformed + st->oversized;

	llm_stats_g.framing_errors += bad - ex->es_bad;
	ex->es_bad = bad;
}

static void llm__finish_request(struct llm_ex *ex, bool complete)
{
	struct json_object *root;

	if (ex->req_done)
		return;
	ex->req_done = true;
	root = llm_body__object(&ex->req);
	if (root) {
		ex->req_object = true;
		ex->shape->request(&ex->x, root);
		tenant__on_request_body(&ex->call, root);
		content__request(ex->content, root);
	} else if (llm_body__bad(&ex->req, complete)) {
		llm_stats_g.json_errors++;
	}
	llm_body__free(&ex->req);
}

/* Content capture knows every shape's bodies by the shape's name (content__set_api). */
static void llm__content_response(struct llm_ex *ex, struct json_object *root)
{
	content__response(ex->content, root);
}

static void llm__content_event(struct llm_ex *ex, struct json_object *root)
{
	content__event(ex->content, root);
}

static void llm__finish_response(struct llm_ex *ex, bool complete)
{
	struct llm_call *c = &ex->call;
	struct json_object *root;

	if (ex->mode == LLM_RESP_JSON || ex->mode == LLM_RESP_SNIFF) {
		root = llm_body__object(&ex->resp);
		if (root) {
			ex->shape->response(&ex->x, root);
			llm__content_response(ex, root);
		} else if (llm_body__bad(&ex->resp, complete) && c->status_code < 400)
			llm_stats_g.json_errors++;
		llm_body__free(&ex->resp);
	}
	/* A stream cut inside an object or message: what came before it still counts. */
	if (ex->mode == LLM_RESP_JSEQ && jseq__end(ex->jseq) && complete)
		llm__json_error_once(ex);
	if (ex->mode == LLM_RESP_ES && eventstream__end(ex->es) && complete)
		llm_stats_g.framing_errors++;
	/* The request did not say (unparsed): the response's form does. */
	if (c->stream < 0 && (ex->mode == LLM_RESP_SSE || ex->mode == LLM_RESP_ES))
		c->stream = 1;
	else if (c->stream < 0 && ex->mode == LLM_RESP_JSON)
		c->stream = 0;
}

static void llm__emit(struct llm_ex *ex)
{
	const struct llm_conn_info *info = ex->lc->info;
	struct llm_call *c = &ex->call;

	ex->shape->finish(&ex->x);
	if (!c->tid)
		c->tid = info->last_tid;
	if (!c->server_address[0])
		llm__server_from_info(c, info, c->server_port);
	if (info->has_peer) {
		llm__copy_str(c->peer_address, sizeof(c->peer_address), info->peer_addr);
		c->peer_port = info->peer_port;
	}
	llm__copy_str(c->tls_server_name, sizeof(c->tls_server_name), info->sni);
	content__finish(ex->content, &c->input_messages, &c->output_messages,
			&c->system_instructions);
	c->chunk_gaps = ex->chunks.gaps;
	c->n_chunk_gaps = ex->chunks.n;
	c->chunk_gaps_folded = ex->chunks.folded;
	c->chunk_gaps_folded_s = ex->chunks.folded_s;
	/* Found only by its path, and the body is JSON without the API's "messages": some other
	 * API that happens to share the path. */
	if (ex->by_path && ex->req_object && !ex->x.has_messages) {
		llm_stats_g.non_llm_exchanges++;
	} else {
		llm_stats_g.calls++;
		if (ex->lc->cb)
			ex->lc->cb(ex->lc->cb_ctx, c);
	}
	llm__ex_free(ex);
}

/* The providers' last event of a complete stream; Gemini has none (its stream just ends). */
static bool sse__is_terminal(const struct sse_event *ev)
{
	static const char *const names[] = {"message_stop", "response.completed",
					    "response.incomplete", "response.failed"};
	size_t i;

	if (ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6))
		return true;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (ev->event_len == strlen(names[i]) && !memcmp(ev->event, names[i], ev->event_len))
			return true;
	}
	return false;
}

static void llm__on_event(void *ctx, const struct sse_event *ev, uint64_t ts_ns)
{
	struct llm_ex *ex = ctx;
	struct json_object *root;

	if (!ex->call.first_chunk_ns)
		ex->call.first_chunk_ns = ts_ns;
	if (sse__is_terminal(ev))
		ex->stream_end_ns = ts_ns;
	if (!ev->data_len || (ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6)))
		return;
	llm__chunk(ex, ts_ns);
	if (!ex->ev_tok && !(ex->ev_tok = json_tokener_new_ex(LLM_JSON_DEPTH)))
		return;
	json_tokener_reset(ex->ev_tok);
	root = json_tokener_parse_ex(ex->ev_tok, ev->data, (int)ev->data_len);
	if (json_object_is_type(root, json_type_object)) {
		ex->shape->event(&ex->x, ev, root);
		llm__content_event(ex, root);
	} else {
		llm__json_error_once(ex);
	}
	json_object_put(root);
}

static void llm__start_sse(struct llm_ex *ex)
{
	ex->sse = sse__new(llm__on_event, ex);
	ex->mode = ex->sse ? LLM_RESP_SSE : LLM_RESP_SKIP;
}

/* One object of an NDJSON stream or of a streamed JSON array: a chunk, like an SSE event. */
static void llm__on_jseq(void *ctx, struct json_object *obj, uint64_t ts_ns)
{
	struct llm_ex *ex = ctx;

	llm__chunk(ex, ts_ns);
	ex->shape->response(&ex->x, obj);
	content__event(ex->content, obj);
}

static void llm__start_jseq(struct llm_ex *ex)
{
	ex->jseq = jseq__new(llm__on_jseq, ex);
	ex->mode = ex->jseq ? LLM_RESP_JSEQ : LLM_RESP_SKIP;
}

/* A header's string value as a C string ("" when absent or not a string). */
static void llm__es_str(const struct es_message *m, const char *name, char *out, size_t cap)
{
	const struct es_header *h = es_message__header(m, name);
	size_t n = h && h->type == ES_STRING ? h->value_len : 0;

	if (n >= cap)
		n = cap - 1;
	memcpy(out, n ? (const char *)h->value : "", n);
	out[n] = '\0';
}

/* One AWS event-stream message: an event, an exception (modelled error) or an error. */
static void llm__on_es(void *ctx, const struct es_message *m, uint64_t ts_ns)
{
	struct llm_ex *ex = ctx;
	struct json_object *root = NULL;
	char kind[16], type[64];
	bool exception;

	llm__chunk(ex, ts_ns);
	llm__es_str(m, ":message-type", kind, sizeof(kind));
	exception = !strcmp(kind, "exception");
	if (!strcmp(kind, "error")) {
		llm__es_str(m, ":error-code", type, sizeof(type));
		llm__set_error(&ex->call, type[0] ? type : "error");
		return;
	}
	llm__es_str(m, exception ? ":exception-type" : ":event-type", type, sizeof(type));
	if (!ex->shape->es_event || (!exception && strcmp(kind, "event")))
		return;
	if (m->payload_len && m->payload_len < INT32_MAX &&
	    (ex->ev_tok || (ex->ev_tok = json_tokener_new_ex(LLM_JSON_DEPTH)))) {
		json_tokener_reset(ex->ev_tok);
		root = json_tokener_parse_ex(ex->ev_tok, (const char *)m->payload,
					     (int)m->payload_len);
	}
	if (json_object_is_type(root, json_type_object)) {
		ex->shape->es_event(&ex->x, type, exception, root);
		if (!exception)
			content__es_event(ex->content, type, root);
	} else if (exception)
		ex->shape->es_event(&ex->x, type, exception, NULL);
	else
		llm__json_error_once(ex);
	json_object_put(root);
}

static void llm__start_es(struct llm_ex *ex)
{
	ex->es = eventstream__new(llm__on_es, ex);
	ex->mode = ex->es ? LLM_RESP_ES : LLM_RESP_SKIP;
}

static void llm__feed_jseq(struct llm_ex *ex, const uint8_t *d, size_t n, uint64_t ts_ns)
{
	jseq__feed(ex->jseq, d, n, ts_ns);
	if (jseq__stats(ex->jseq)->errors || jseq__stats(ex->jseq)->oversized)
		llm__json_error_once(ex);
}

static void llm__feed_es(struct llm_ex *ex, const uint8_t *d, size_t n, uint64_t ts_ns)
{
	eventstream__feed(ex->es, d, n, ts_ns);
	llm__es_errors(ex);
}

/* No Content-Type: a JSON body starts with '{' (or '['), an event stream does not. */
static bool llm__sniff(struct llm_ex *ex, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n')
			continue;
		if ((d[i] == '{' || d[i] == '[') && ex->x.json_seq)
			llm__start_jseq(ex); /* a streamed JSON array, or NDJSON */
		else if (d[i] == '{' || d[i] == '[')
			ex->mode = LLM_RESP_JSON;
		else
			llm__start_sse(ex);
		return true;
	}
	return false;
}

/* ---- bodies, and bodies under a Content-Encoding (proto/decode.c) ---------------------- */

static void llm__req_bytes(struct llm_ex *ex, const uint8_t *data, size_t len)
{
	if (!ex->req_done && llm_body__feed(&ex->req, data, len))
		llm__mark_overflow(ex);
}

static void llm__resp_bytes(struct llm_ex *ex, const uint8_t *data, size_t len, uint64_t ts_ns)
{
	if (ex->mode == LLM_RESP_SNIFF && !llm__sniff(ex, data, len))
		return;
	if (ex->mode == LLM_RESP_JSON && llm_body__feed(&ex->resp, data, len))
		llm__mark_overflow(ex);
	else if (ex->mode == LLM_RESP_SSE)
		sse__feed(ex->sse, data, len, ts_ns);
	else if (ex->mode == LLM_RESP_JSEQ)
		llm__feed_jseq(ex, data, len, ts_ns);
	else if (ex->mode == LLM_RESP_ES)
		llm__feed_es(ex, data, len, ts_ns);
}

static void llm__req_decoded(void *ctx, const uint8_t *data, size_t len)
{
	llm__req_bytes(ctx, data, len);
}

/* Decoded bytes leave the decoder while it is fed: they carry the time the coded ones came. */
static void llm__resp_decoded(void *ctx, const uint8_t *data, size_t len)
{
	struct llm_ex *ex = ctx;

	llm__resp_bytes(ex, data, len, ex->dec_ts);
}

/* Returns false for a Content-Encoding that cannot be undone. */
static bool llm__open_decoder(struct llm_ex *ex, const struct http_head *h, bool resp)
{
	const struct http_header *hd = http_head__find(h, "content-encoding");

	if (!hd)
		return true;
	return decoder__open(&ex->dec[resp], hd->value, hd->value_len, 0,
			     resp ? llm__resp_decoded : llm__req_decoded, ex) == 0;
}

static void llm__decode(struct llm_ex *ex, bool resp, const uint8_t *data, size_t len,
			uint64_t ts_ns)
{
	ex->dec_ts = ts_ns;
	/* Past the decoded-size cap (a decompression bomb) the rest is not read. */
	if (decoder__feed(ex->dec[resp], data, len) == -EFBIG)
		ex->call.partial = true;
}

/* Compressed bytes were lost: nothing after the hole can be decoded. */
static void llm__decode_lost(struct llm_ex *ex, bool resp)
{
	if (!ex->dec[resp])
		return;
	decoder__free(ex->dec[resp]);
	ex->dec[resp] = NULL;
	if (resp)
		ex->mode = LLM_RESP_SKIP;
	else
		ex->req_skip = true;
}

/* ---- the sink -------------------------------------------------------------------------- */

static void *llm__on_request(void *ctx, const struct http_head *h, uint64_t ts_ns)
{
	struct llm_conn *lc = ctx;
	struct llm_route route;
	struct llm_slot *slot;
	struct llm_ex *ex;
	size_t plen = 0;

	/* Chat calls are POSTs; GETs of the same paths (listing stored completions) are not. */
	if (!h->is_request || h->method_len != 4 || memcmp(h->method, "POST", 4))
		goto not_llm;
	while (plen < h->path_len && h->path[plen] != '?' && h->path[plen] != '#')
		plen++;
	if (!llm_detect__route(h->path, h->path_len, &route))
		goto not_llm;
	ex = calloc(1, sizeof(*ex));
	slot = calloc(1, sizeof(*slot));
	if (!ex || !slot) {
		free(ex);
		free(slot);
		return NULL;
	}
	ex->lc = lc;
	llm__init_call(ex, h, plen, ts_ns);
	llm__detect(ex, h, &route);
	tenant__on_request(&ex->call, h); /* hashes the API key: it is not kept */
	ex->content = content__new(); /* NULL unless --capture-content */
	content__set_api(ex->content, ex->shape->name);
	ex->req_skip = !llm__open_decoder(ex, h, false);
	llm_slot__link(lc, slot, ex);
	return slot;
not_llm:
	llm_stats_g.non_llm_exchanges++;
	return NULL;
}

static void llm__on_response(void *handle, const struct http_head *h, uint64_t ts_ns)
{
	struct llm_ex *ex = llm_slot__ex(handle, false);
	struct llm_call *c;
	char status[16];

	if (!ex)
		return;
	c = &ex->call;
	if (ex->mode != LLM_RESP_WAIT)
		return; /* one final response per exchange; 1xx never reach us */
	llm__finish_request(ex, false); /* normally done already, at the request's end */
	c->status_code = h->status;
	if (h->status >= 400) {
		snprintf(status, sizeof(status), "%d", h->status);
		llm__set_error(c, status);
	}
	if (!llm__open_decoder(ex, h, true)) {
		/* A coding we cannot undo would parse as garbage: the call goes without tokens. */
		llm_stats_g.undecoded_bodies++;
		ex->mode = LLM_RESP_SKIP;
	} else if (llm__header_is(h, "content-type", "text/event-stream")) {
		llm__start_sse(ex);
	} else if (llm__header_is(h, "content-type", "application/vnd.amazon.eventstream")) {
		llm__start_es(ex);
	} else if (llm__header_is(h, "content-type", "application/x-ndjson") ||
		   (ex->x.json_seq && llm__header_is(h, "content-type", "application/json"))) {
		llm__start_jseq(ex);
	} else if (http_head__find(h, "content-type")) {
		ex->mode = LLM_RESP_JSON;
	} else {
		ex->mode = LLM_RESP_SNIFF;
	}
}

static void llm__on_body(void *handle, bool is_response, const uint8_t *data, size_t len,
			 uint64_t ts_ns)
{
	struct llm_ex *ex = llm_slot__ex(handle, false);

	if (!ex)
		return;
	if (ex->dec[is_response])
		llm__decode(ex, is_response, data, len, ts_ns);
	else if (!is_response && !ex->req_skip)
		llm__req_bytes(ex, data, len);
	else if (is_response)
		llm__resp_bytes(ex, data, len, ts_ns);
}

static void llm__on_message_end(void *handle, bool is_response, uint64_t ts_ns)
{
	struct llm_ex *ex = llm_slot__ex(handle, is_response);

	if (!ex)
		return;
	if (ex->dec[is_response])
		decoder__finish(ex->dec[is_response]); /* counts a coded stream cut short */
	if (!is_response) {
		llm__finish_request(ex, true);
		return;
	}
	ex->call.end_ns = ts_ns;
	llm__finish_response(ex, true);
	llm__emit(ex);
}

static void llm__on_loss(void *handle, bool is_response, uint64_t lost_bytes)
{
	struct llm_ex *ex = llm_slot__ex(handle, false);

	if (!ex)
		return;
	ex->call.partial = true;
	ex->call.lost_bytes += lost_bytes;
	llm__decode_lost(ex, is_response);
	if (!is_response) {
		ex->req.lost = true;
		llm_body__drop_tok(&ex->req);
	} else if (ex->mode == LLM_RESP_SSE) {
		sse__gap(ex->sse); /* later events still parse */
	} else if (ex->mode == LLM_RESP_JSEQ) {
		jseq__gap(ex->jseq); /* so do later lines */
	} else if (ex->mode == LLM_RESP_ES) {
		eventstream__gap(ex->es); /* and later messages, once a prelude checks out */
	} else {
		ex->resp.lost = true; /* a JSON document with a hole in it says nothing reliable */
		llm_body__drop_tok(&ex->resp);
	}
}

static const char *llm__abort_error(enum http_abort_reason why)
{
	switch (why) {
	case HTTP_ABORT_CONN_CLOSED:
		return "connection_closed";
	case HTTP_ABORT_PARSE_ERROR:
		return "parse_error";
	case HTTP_ABORT_GAP:
		return "capture_gap";
	case HTTP_ABORT_TIMEOUT:
		return "timeout";
	case HTTP_ABORT_OVERFLOW:
		return "overflow";
	case HTTP_ABORT_RST_STREAM:
		return "http2_rst_stream";
	case HTTP_ABORT_GOAWAY:
		return "http2_goaway";
	}
	return "_OTHER"; /* the conventions' fallback value */
}

static void llm__on_abort(void *handle, enum http_abort_reason why, uint64_t ts_ns)
{
	struct llm_ex *ex = llm_slot__ex(handle, true);

	if (!ex)
		return;
	llm__finish_request(ex, false);
	/*
	 * A client may stop reading once the stream's terminal event is in: Codex leaves the last
	 * chunk of a chunked body unread and drops the connection, or over HTTP/2 cancels the
	 * stream (RST_STREAM CANCEL) when END_STREAM comes in a later frame. The call was complete.
	 */
	if ((why == HTTP_ABORT_CONN_CLOSED || why == HTTP_ABORT_RST_STREAM ||
	     why == HTTP_ABORT_GOAWAY) &&
	    ex->mode == LLM_RESP_SSE && ex->stream_end_ns) {
		ex->call.http2_error_code = NULL;
		ex->call.end_ns = ex->stream_end_ns;
		llm__finish_response(ex, true);
		llm__emit(ex);
		return;
	}
	ex->call.end_ns = ts_ns;
	llm__finish_response(ex, false);
	/* An HTTP error status says more than how the connection ended afterwards. */
	llm__set_error(&ex->call, llm__abort_error(why));
	if (why == HTTP_ABORT_GAP) {
		ex->call.partial = true;
		/* Framing did not survive: the gap that ended it (the latest) is this call's. */
		if (!ex->call.lost_bytes)
			ex->call.lost_bytes = ex->lc->info->gap_bytes;
	}
	llm__emit(ex);
}

/* The HTTP/2 frame that is about to abort the exchange: kept for the span. */
static void llm__on_stream_error(void *handle, bool by_peer, uint32_t code)
{
	struct llm_ex *ex = llm_slot__ex(handle, false);

	if (!ex)
		return;
	ex->call.http2_error_code = http2__error_name(code);
	ex->call.http2_error_sender = by_peer ? "server" : "client";
}

struct llm_conn *llm_conn__new(const struct llm_conn_info *info, llm_call_cb cb, void *cb_ctx)
{
	struct llm_conn *lc = calloc(1, sizeof(*lc));

	if (!lc)
		return NULL;
	lc->info = info;
	lc->cb = cb;
	lc->cb_ctx = cb_ctx;
	lc->sink = (struct http_sink){
		.ctx = lc,
		.on_request = llm__on_request,
		.on_response = llm__on_response,
		.on_body = llm__on_body,
		.on_message_end = llm__on_message_end,
		.on_loss = llm__on_loss,
		.on_abort = llm__on_abort,
		.on_stream_error = llm__on_stream_error,
	};
	return lc;
}

const struct http_sink *llm_conn__sink(struct llm_conn *lc)
{
	return &lc->sink;
}

/* Exchanges still open are dropped without a call: the HTTP parser aborts (and so reports)
 * them before the connection goes away; this is only the memory. */
void llm_conn__free(struct llm_conn *lc)
{
	if (!lc)
		return;
	while (lc->open) {
		if (lc->open->ex)
			llm__ex_free(lc->open->ex);
		else
			llm_slot__free(lc->open); /* packed: owns nothing else */
	}
	free(lc);
}

void llm_conn__trim(struct llm_conn *lc)
{
	for (struct llm_slot *s = lc ? lc->open : NULL; s; s = s->next)
		llm_slot__pack(s);
}

const struct llm_stats *llm__stats(void)
{
	return &llm_stats_g;
}
