// SPDX-License-Identifier: Apache-2.0
/*
 * llm/: the http_sink of one connection. on_request decides whether an exchange is an LLM API
 * call (provider by Host/SNI, API shape by path); only then an exchange object exists. Bodies
 * go to json-c's incremental tokener as they arrive (bounded by LLM_MAX_BODY), streamed
 * responses through the SSE parser, each event's data parsed as JSON. The call is emitted once,
 * when the response ends or the exchange is aborted.
 *
 * Header values we read: Host, Content-Type, Content-Encoding. Credentials (Authorization,
 * x-api-key, api-key) are never looked at, so they cannot leak into a call.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "provider.h"

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
};

struct llm_ex {
	struct llm_conn *lc;
	struct llm_ex *prev, *next;
	const struct llm_shape *shape;
	bool by_path;
	bool req_done;
	bool req_skip;   /* content-coded request body */
	bool req_object; /* the request body parsed as a JSON object */
	bool ev_error;   /* an event's data did not parse (counted once) */
	enum llm_resp_mode mode;
	struct llm_body req, resp;
	struct sse *sse;
	struct json_tokener *ev_tok;
	struct llm_extract x;
	struct llm_call call;
};

struct llm_conn {
	const struct llm_conn_info *info;
	llm_call_cb cb;
	void *cb_ctx;
	struct http_sink sink;
	struct llm_ex *open;
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

	llm__copy_str(c->request_model, sizeof(c->request_model), llm_json__str(root, "model"));
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

static bool llm__ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && !memcmp(s + n - k, suffix, k);
}

static const struct llm_shape *llm__shape_for_path(const char *p, size_t n)
{
	if (llm__ends_with(p, n, "/chat/completions")) /* also /v1/..., Azure's deployments/x/ */
		return &llm_shape_openai;
	if (llm__ends_with(p, n, "/v1/messages"))
		return &llm_shape_anthropic;
	return NULL;
}

static enum llm_provider llm__provider_for_host(const char *host)
{
	if (!strcmp(host, "api.openai.com"))
		return LLM_PROVIDER_OPENAI;
	if (!strcmp(host, "api.anthropic.com"))
		return LLM_PROVIDER_ANTHROPIC;
	return LLM_PROVIDER_UNKNOWN;
}

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

/* True when a Content-Encoding other than identity was sent: those bytes are not JSON. */
static bool llm__content_coded(const struct http_head *h)
{
	const struct http_header *hd = http_head__find(h, "content-encoding");
	const char *v;
	size_t n;

	if (!hd)
		return false;
	v = hd->value;
	n = hd->value_len;
	llm__trim(&v, &n);
	return n && !(n == 8 && !strncasecmp(v, "identity", 8));
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

/* Provider by Host or SNI; else the path alone (a self-hosted or proxied endpoint). */
static void llm__detect(struct llm_ex *ex, const struct http_head *h, const struct llm_shape *shape)
{
	const struct llm_conn_info *info = ex->lc->info;
	const struct http_header *host = http_head__find(h, "host");
	struct llm_call *c = &ex->call;
	int def_port = info->tls_source ? 443 : 80;
	enum llm_provider p = LLM_PROVIDER_UNKNOWN;
	char sni[LLM_STR];

	c->server_port = def_port;
	if (host && llm__parse_host(host->value, host->value_len, c->server_address,
				    sizeof(c->server_address), &c->server_port))
		p = llm__provider_for_host(c->server_address);
	else
		llm__server_from_info(c, info, def_port);
	if (!p && info->sni[0]) {
		int ignored = 0;

		if (llm__parse_host(info->sni, strnlen(info->sni, sizeof(info->sni)), sni,
				    sizeof(sni), &ignored))
			p = llm__provider_for_host(sni);
	}
	ex->shape = shape;
	ex->by_path = !p;
	if (!p)
		p = shape == &llm_shape_openai ? LLM_PROVIDER_OPENAI_COMPATIBLE
					       : LLM_PROVIDER_ANTHROPIC;
	c->provider = p;
	c->provider_name = p == LLM_PROVIDER_ANTHROPIC ? "anthropic" : "openai";
	c->detected_by = ex->by_path ? "path" : "host";
}

static void llm__init_call(struct llm_ex *ex, const struct http_head *h, size_t path_len,
			   uint64_t ts_ns)
{
	const struct llm_conn_info *info = ex->lc->info;
	struct llm_call *c = &ex->call;
	size_t n = path_len < sizeof(c->path) ? path_len : sizeof(c->path) - 1;

	ex->x.call = c;
	ex->x.raw_input = -1;
	strcpy(c->operation, "chat");
	memcpy(c->method, h->method, h->method_len); /* "POST": checked by the caller */
	memcpy(c->path, h->path, n);
	c->path[n] = '\0';
	c->input_tokens = c->output_tokens = -1;
	c->cache_read_tokens = c->cache_creation_tokens = -1;
	c->max_tokens = -1;
	c->stream = -1;
	c->start_ns = ts_ns;
	c->pid = info->pid;
	c->tid = info->last_tid;
	c->conn_id = info->conn_id;
	c->tls_source = info->tls_source;
}

/* ---- the exchange ---------------------------------------------------------------------- */

static void llm__ex_free(struct llm_ex *ex)
{
	struct llm_conn *lc = ex->lc;

	if (ex->prev)
		ex->prev->next = ex->next;
	else
		lc->open = ex->next;
	if (ex->next)
		ex->next->prev = ex->prev;
	llm_body__free(&ex->req);
	llm_body__free(&ex->resp);
	sse__free(ex->sse);
	if (ex->ev_tok)
		json_tokener_free(ex->ev_tok);
	free(ex);
}

static void llm__mark_overflow(struct llm_ex *ex)
{
	llm_stats_g.body_overflow++;
	ex->call.partial = true;
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
	} else if (llm_body__bad(&ex->req, complete)) {
		llm_stats_g.json_errors++;
	}
	llm_body__free(&ex->req);
}

static void llm__finish_response(struct llm_ex *ex, bool complete)
{
	struct llm_call *c = &ex->call;
	struct json_object *root;

	if (ex->mode == LLM_RESP_JSON || ex->mode == LLM_RESP_SNIFF) {
		root = llm_body__object(&ex->resp);
		if (root)
			ex->shape->response(&ex->x, root);
		else if (llm_body__bad(&ex->resp, complete) && c->status_code < 400)
			llm_stats_g.json_errors++;
		llm_body__free(&ex->resp);
	}
	/* The request did not say (unparsed): the response's form does. */
	if (c->stream < 0 && ex->mode == LLM_RESP_SSE)
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

static void llm__on_event(void *ctx, const struct sse_event *ev, uint64_t ts_ns)
{
	struct llm_ex *ex = ctx;
	struct json_object *root;

	if (!ex->call.first_chunk_ns)
		ex->call.first_chunk_ns = ts_ns;
	if (!ev->data_len || (ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6)))
		return;
	if (!ex->ev_tok && !(ex->ev_tok = json_tokener_new_ex(LLM_JSON_DEPTH)))
		return;
	json_tokener_reset(ex->ev_tok);
	root = json_tokener_parse_ex(ex->ev_tok, ev->data, (int)ev->data_len);
	if (json_object_is_type(root, json_type_object)) {
		ex->shape->event(&ex->x, ev, root);
	} else if (!ex->ev_error) {
		ex->ev_error = true;
		llm_stats_g.json_errors++;
	}
	json_object_put(root);
}

static void llm__start_sse(struct llm_ex *ex)
{
	ex->sse = sse__new(llm__on_event, ex);
	ex->mode = ex->sse ? LLM_RESP_SSE : LLM_RESP_SKIP;
}

/* No Content-Type: a JSON body starts with '{' (or '['), an event stream does not. */
static bool llm__sniff(struct llm_ex *ex, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n')
			continue;
		if (d[i] == '{' || d[i] == '[')
			ex->mode = LLM_RESP_JSON;
		else
			llm__start_sse(ex);
		return true;
	}
	return false;
}

/* ---- the sink -------------------------------------------------------------------------- */

static void *llm__on_request(void *ctx, const struct http_head *h, uint64_t ts_ns)
{
	struct llm_conn *lc = ctx;
	const struct llm_shape *shape;
	struct llm_ex *ex;
	size_t plen = 0;

	/* Chat calls are POSTs; GETs of the same paths (listing stored completions) are not. */
	if (!h->is_request || h->method_len != 4 || memcmp(h->method, "POST", 4))
		goto not_llm;
	while (plen < h->path_len && h->path[plen] != '?' && h->path[plen] != '#')
		plen++;
	shape = llm__shape_for_path(h->path, plen);
	if (!shape)
		goto not_llm;
	ex = calloc(1, sizeof(*ex));
	if (!ex)
		return NULL;
	ex->lc = lc;
	llm__init_call(ex, h, plen, ts_ns);
	llm__detect(ex, h, shape);
	ex->req_skip = llm__content_coded(h);
	ex->next = lc->open;
	if (lc->open)
		lc->open->prev = ex;
	lc->open = ex;
	return ex;
not_llm:
	llm_stats_g.non_llm_exchanges++;
	return NULL;
}

static void llm__on_response(void *handle, const struct http_head *h, uint64_t ts_ns)
{
	struct llm_ex *ex = handle;
	struct llm_call *c = &ex->call;
	char status[16];

	if (ex->mode != LLM_RESP_WAIT)
		return; /* one final response per exchange; 1xx never reach us */
	llm__finish_request(ex, false); /* normally done already, at the request's end */
	c->status_code = h->status;
	if (h->status >= 400) {
		snprintf(status, sizeof(status), "%d", h->status);
		llm__set_error(c, status);
	}
	if (llm__content_coded(h)) {
		/* Compressed bytes would parse as garbage: report the call without tokens. */
		llm_stats_g.undecoded_bodies++;
		ex->mode = LLM_RESP_SKIP;
	} else if (llm__header_is(h, "content-type", "text/event-stream")) {
		llm__start_sse(ex);
	} else if (http_head__find(h, "content-type")) {
		ex->mode = LLM_RESP_JSON;
	} else {
		ex->mode = LLM_RESP_SNIFF;
	}
}

static void llm__on_body(void *handle, bool is_response, const uint8_t *data, size_t len,
			 uint64_t ts_ns)
{
	struct llm_ex *ex = handle;

	if (!is_response) {
		if (!ex->req_skip && !ex->req_done && llm_body__feed(&ex->req, data, len))
			llm__mark_overflow(ex);
		return;
	}
	if (ex->mode == LLM_RESP_SNIFF && !llm__sniff(ex, data, len))
		return;
	if (ex->mode == LLM_RESP_JSON && llm_body__feed(&ex->resp, data, len))
		llm__mark_overflow(ex);
	else if (ex->mode == LLM_RESP_SSE)
		sse__feed(ex->sse, data, len, ts_ns);
}

static void llm__on_message_end(void *handle, bool is_response, uint64_t ts_ns)
{
	struct llm_ex *ex = handle;

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
	struct llm_ex *ex = handle;

	ex->call.partial = true;
	ex->call.lost_bytes += lost_bytes;
	if (!is_response) {
		ex->req.lost = true;
		llm_body__drop_tok(&ex->req);
	} else if (ex->mode == LLM_RESP_SSE) {
		sse__gap(ex->sse); /* later events still parse */
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
	}
	return "_OTHER"; /* the conventions' fallback value */
}

static void llm__on_abort(void *handle, enum http_abort_reason why, uint64_t ts_ns)
{
	struct llm_ex *ex = handle;

	llm__finish_request(ex, false);
	ex->call.end_ns = ts_ns;
	llm__finish_response(ex, false);
	/* An HTTP error status says more than how the connection ended afterwards. */
	llm__set_error(&ex->call, llm__abort_error(why));
	if (why == HTTP_ABORT_GAP)
		ex->call.partial = true;
	llm__emit(ex);
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
	while (lc->open)
		llm__ex_free(lc->open);
	free(lc);
}

const struct llm_stats *llm__stats(void)
{
	return &llm_stats_g;
}
