// SPDX-License-Identifier: Apache-2.0
/*
 * proto/http1: every fixture is a recorded connection (SSL calls of both directions in the
 * order they happened, plus gaps, expiry and close). A recording sink turns the callbacks into
 * a text log, checked against the expected log; then the fixture is re-fed with each SSL call
 * split at every possible boundary, and in 1-byte pieces, and the log must not change. Fixtures
 * without loss are also re-fed with consecutive calls of one direction merged (timestamps then
 * differ, so the log is compared without them).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include "tt_test.h"
#include "proto/http1.h"

/* ---- recording sink ----------------------------------------------------------------------- */

#define MAX_EX 256
#define MAX_EV 1024
#define BODY_SHOW 200

enum ev_kind { EV_REQ, EV_BODY, EV_END, EV_RESP, EV_LOSS, EV_ABORT, EV_NOTE };

struct ev {
	enum ev_kind kind;
	int ex;
	bool resp;
	uint64_t ts, ts_last, n, hash;
	char text[2 * BODY_SHOW + 600];
	size_t shown;
};

struct rec_ex {
	int id;
	int stage; /* 0 request, 1 request ended, 2 response, 3 done */
};

struct rec {
	struct ev ev[MAX_EV];
	int nev;
	struct rec_ex ex[MAX_EX];
	int nex;
};

static void rec_note(struct rec *r, const char *fmt, ...)
{
	struct ev *e;
	va_list ap;

	if (r->nev == MAX_EV)
		return;
	e = &r->ev[r->nev++];
	memset(e, 0, sizeof(*e));
	e->kind = EV_NOTE;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
}

static struct ev *rec_push(struct rec *r, enum ev_kind kind, struct rec_ex *x, bool resp,
			   uint64_t ts)
{
	struct ev *e;

	if (r->nev == MAX_EV)
		return NULL;
	e = &r->ev[r->nev++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->ex = x ? x->id : 0;
	e->resp = resp;
	e->ts = e->ts_last = ts;
	return e;
}

/* The exchange's callbacks must come in the documented order; anything else is logged. */
static bool rec_stage(struct rec *r, struct rec_ex *x, int want, int next, const char *what)
{
	if (!x || x->stage != want) {
		rec_note(r, "BAD %s#%d in stage %d", what, x ? x->id : -1, x ? x->stage : -1);
		return false;
	}
	x->stage = next;
	return true;
}

static struct rec *g_rec;

static void rec_head(char *out, size_t cap, const struct http_head *h)
{
	size_t n = strlen(out);

	if (h->num_headers > 8) {
		snprintf(out + n, cap - n, " {%zu headers%s}", h->num_headers,
			 h->headers_truncated ? " +trunc" : "");
		return;
	}
	n += (size_t)snprintf(out + n, cap - n, " {");
	for (size_t i = 0; i < h->num_headers && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%.*s=%.*s", i ? ";" : "",
				      (int)h->headers[i].name_len, h->headers[i].name,
				      (int)h->headers[i].value_len, h->headers[i].value);
	if (n < cap)
		snprintf(out + n, cap - n, "}%s", h->headers_truncated ? " +trunc" : "");
}

static void *rec_on_request(void *ctx, const struct http_head *h, uint64_t ts)
{
	struct rec *r = ctx;
	struct rec_ex *x;
	struct ev *e;
	bool skip = h->path_len >= 5 && !memcmp(h->path, "/skip", 5);

	if (r->nex == MAX_EX)
		return NULL;
	x = &r->ex[r->nex++];
	x->id = r->nex;
	x->stage = 0;
	e = rec_push(r, EV_REQ, x, false, ts);
	if (e) {
		snprintf(e->text, sizeof(e->text), "%.*s %.*s 1.%d", (int)h->method_len, h->method,
			 (int)h->path_len, h->path, h->minor_version);
		rec_head(e->text, sizeof(e->text), h);
		if (skip)
			strcat(e->text, " (skip)");
	}
	if (!h->is_request)
		rec_note(r, "BAD request head not marked as request");
	return skip ? NULL : x;
}

static void rec_on_response(void *ex, const struct http_head *h, uint64_t ts)
{
	struct rec_ex *x = ex;
	struct ev *e;

	if (!rec_stage(g_rec, x, 1, 2, "resp"))
		return;
	e = rec_push(g_rec, EV_RESP, x, true, ts);
	if (e) {
		snprintf(e->text, sizeof(e->text), "%d", h->status);
		rec_head(e->text, sizeof(e->text), h);
	}
}

static uint64_t fnv(uint64_t h, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 0x100000001b3ULL;
	return h;
}

/* Consecutive body calls of one message merge into one event: splits must not show. */
static void rec_on_body(void *ex, bool is_response, const uint8_t *data, size_t len, uint64_t ts)
{
	struct rec_ex *x = ex;
	struct rec *r = g_rec;
	struct ev *e = r->nev ? &r->ev[r->nev - 1] : NULL;

	if (!len)
		rec_note(r, "BAD empty body call");
	if (!x || x->stage != (is_response ? 2 : 0)) {
		rec_note(r, "BAD body#%d in stage %d", x ? x->id : -1, x ? x->stage : -1);
		return;
	}
	if (!e || e->kind != EV_BODY || e->ex != x->id || e->resp != is_response) {
		e = rec_push(r, EV_BODY, x, is_response, ts);
		if (!e)
			return;
		e->hash = 0xcbf29ce484222325ULL;
	}
	e->ts_last = ts;
	e->n += len;
	e->hash = fnv(e->hash, data, len);
	for (size_t i = 0; i < len && e->shown < BODY_SHOW; i++)
		e->text[e->shown++] = (char)data[i];
}

static void rec_on_end(void *ex, bool is_response, uint64_t ts)
{
	struct rec_ex *x = ex;

	if (rec_stage(g_rec, x, is_response ? 2 : 0, is_response ? 3 : 1, "end"))
		rec_push(g_rec, EV_END, x, is_response, ts);
}

static void rec_on_loss(void *ex, bool is_response, uint64_t n)
{
	struct rec_ex *x = ex;
	struct ev *e;

	if (!x || x->stage != (is_response ? 2 : 0)) {
		rec_note(g_rec, "BAD loss#%d in stage %d", x ? x->id : -1, x ? x->stage : -1);
		return;
	}
	e = rec_push(g_rec, EV_LOSS, x, is_response, 0);
	if (e)
		e->n = n;
}

static void rec_on_abort(void *ex, enum http_abort_reason why, uint64_t ts)
{
	static const char *names[] = {"?", "closed", "parse", "gap", "timeout", "overflow"};
	struct rec_ex *x = ex;
	struct ev *e;

	if (!x || x->stage == 3) {
		rec_note(g_rec, "BAD abort#%d after the end", x ? x->id : -1);
		return;
	}
	x->stage = 3;
	e = rec_push(g_rec, EV_ABORT, x, false, ts);
	if (e)
		snprintf(e->text, sizeof(e->text), "%s", names[why <= 5 ? why : 0]);
}

static const struct http_sink rec_sink_tmpl = {
    .on_request = rec_on_request,
    .on_response = rec_on_response,
    .on_body = rec_on_body,
    .on_message_end = rec_on_end,
    .on_loss = rec_on_loss,
    .on_abort = rec_on_abort,
};

static size_t esc(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n') {
			out[o++] = '\\';
			out[o++] = c == '\r' ? 'r' : 'n';
		} else if (c < 0x20 || c >= 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = 0;
	return o;
}

static void rec_render(const struct rec *r, bool with_ts, char *out, size_t cap)
{
	size_t n = 0;
	char ts[64], body[4 * BODY_SHOW + 8];

	out[0] = 0;
	for (int i = 0; i < r->nev && n < cap; i++) {
		const struct ev *e = &r->ev[i];
		const char *dir = e->resp ? "resp" : "req";

		ts[0] = 0;
		if (with_ts && e->ts_last != e->ts)
			snprintf(ts, sizeof(ts), " @%" PRIu64 "-%" PRIu64, e->ts, e->ts_last);
		else if (with_ts)
			snprintf(ts, sizeof(ts), " @%" PRIu64, e->ts);
		switch (e->kind) {
		case EV_REQ:
			n +=
			    (size_t)snprintf(out + n, cap - n, "req#%d %s%s\n", e->ex, e->text, ts);
			break;
		case EV_RESP:
			n += (size_t)snprintf(out + n, cap - n, "resp#%d %s%s\n", e->ex, e->text,
					      ts);
			break;
		case EV_BODY:
			if (e->n <= BODY_SHOW) {
				esc(body, sizeof(body), e->text, e->shown);
				n += (size_t)snprintf(out + n, cap - n, "body#%d %s \"%s\"%s\n",
						      e->ex, dir, body, ts);
			} else {
				n += (size_t)snprintf(out + n, cap - n,
						      "body#%d %s len=%" PRIu64 " hash=%016" PRIx64
						      "%s\n",
						      e->ex, dir, e->n, e->hash, ts);
			}
			break;
		case EV_END:
			n += (size_t)snprintf(out + n, cap - n, "end#%d %s%s\n", e->ex, dir, ts);
			break;
		case EV_LOSS:
			n += (size_t)snprintf(out + n, cap - n, "loss#%d %s %" PRIu64 "\n", e->ex,
					      dir, e->n);
			break;
		case EV_ABORT:
			n += (size_t)snprintf(out + n, cap - n, "abort#%d %s%s\n", e->ex, e->text,
					      ts);
			break;
		case EV_NOTE:
			n += (size_t)snprintf(out + n, cap - n, "%s\n", e->text);
			break;
		}
	}
}

/* ---- fixtures ------------------------------------------------------------------------------- */

struct op {
	char kind; /* 'd' data, 'g' gap, 'c' close, 'e' expire, 'b' busy check */
	int dir;
	const char *s;
	uint64_t n, m; /* data: length (0 = strlen); gap: bytes; expire: now, timeout */
};

#define W(str)                                                                                     \
	{                                                                                          \
		'd', 0, str, 0, 0                                                                  \
	}
#define R(str)                                                                                     \
	{                                                                                          \
		'd', 1, str, 0, 0                                                                  \
	}
#define DATA(d, p, len)                                                                            \
	{                                                                                          \
		'd', d, p, len, 0                                                                  \
	}
#define GAP(d, len)                                                                                \
	{                                                                                          \
		'g', d, NULL, len, 0                                                               \
	}
#define CLOSE                                                                                      \
	{                                                                                          \
		'c', 0, NULL, 0, 0                                                                 \
	}
#define EXPIRE(now, to)                                                                            \
	{                                                                                          \
		'e', 0, NULL, now, to                                                              \
	}
#define BUSY                                                                                       \
	{                                                                                          \
		'b', 0, NULL, 0, 0                                                                 \
	}

struct fixture {
	const char *name;
	enum http1_role role;
	const struct op *ops;
	size_t nops;
	const char *expect;
	size_t stride; /* split every stride bytes (1 = every boundary) */
};

static size_t op_len(const struct op *o)
{
	return o->n ? (size_t)o->n : strlen(o->s);
}

static uint64_t op_ts_start(size_t i)
{
	return (i + 1) * 100;
}

static uint64_t op_ts_end(size_t i)
{
	return (i + 1) * 100 + 50;
}

/* Feeds data op i in pieces: cut at k (0 = whole) or, with bytes, one byte at a time. */
static int feed_op(struct http1 *p, const struct op *o, uint64_t ts0, uint64_t ts1, size_t k,
		   bool bytes)
{
	const uint8_t *d = (const uint8_t *)o->s;
	size_t len = op_len(o);
	int rc = 0, r;

	if (bytes) {
		for (size_t i = 0; i < len; i++)
			if ((r = http1__feed(p, o->dir, d + i, 1, ts0, ts1)) && !rc)
				rc = r;
		return rc;
	}
	if (k && k < len) {
		rc = http1__feed(p, o->dir, d, k, ts0, ts1);
		r = http1__feed(p, o->dir, d + k, len - k, ts0, ts1);
		return rc ? rc : r;
	}
	return http1__feed(p, o->dir, d, len, ts0, ts1);
}

static void run_ops(const struct fixture *fx, const struct op *ops, size_t nops, size_t split_op,
		    size_t k, bool bytes, struct rec *r)
{
	struct http_sink sink = rec_sink_tmpl;
	struct http1 *p;
	bool failed = false;

	r->nev = r->nex = 0;
	g_rec = r;
	sink.ctx = r;
	p = http1__new(fx->role, &sink);
	for (size_t i = 0; i < nops; i++) {
		const struct op *o = &ops[i];
		int rc;

		switch (o->kind) {
		case 'd':
			rc = feed_op(p, o, op_ts_start(i), op_ts_end(i), i == split_op ? k : 0,
				     bytes);
			if (rc && !failed)
				rec_note(r, "rc=%d", rc);
			failed = failed || rc;
			break;
		case 'g':
			http1__gap(p, o->dir, o->n);
			break;
		case 'c':
			http1__close(p, op_ts_start(i));
			if (http1__busy(p))
				rec_note(r, "BAD busy after close");
			break;
		case 'e':
			http1__expire(p, o->n, o->m);
			break;
		case 'b':
			rec_note(r, "busy=%d", http1__busy(p));
			break;
		}
	}
	{
		const struct http1_stats *st = http1__stats(p);

		rec_note(r,
			 "stats r=%" PRIu64 " s=%" PRIu64 " pe=%" PRIu64 " g=%" PRIu64
			 " rs=%" PRIu64 " a=%" PRIu64 " o=%" PRIu64,
			 st->requests, st->responses, st->parse_errors, st->gaps, st->resyncs,
			 st->aborted, st->overflow);
	}
	http1__free(p);
}

static struct rec g_a;
static char g_want[1 << 16], g_got[1 << 16];

/* Merging calls changes timestamps and call starts, which loss and expiry depend on. */
static bool fx_mergeable(const struct fixture *fx)
{
	for (size_t i = 0; i < fx->nops; i++)
		if (fx->ops[i].kind == 'g' || fx->ops[i].kind == 'e')
			return false;
	return true;
}

/* Consecutive data ops of one direction become one op (as one bigger SSL call). */
static size_t fx_coalesce(const struct fixture *fx, struct op *out, char **bufs)
{
	size_t n = 0;

	for (size_t i = 0; i < fx->nops; i++) {
		const struct op *o = &fx->ops[i];

		if (o->kind == 'd' && n && out[n - 1].kind == 'd' && out[n - 1].dir == o->dir) {
			size_t a = op_len(&out[n - 1]), b = op_len(o);
			char *m = malloc(a + b);

			memcpy(m, out[n - 1].s, a);
			memcpy(m + a, o->s, b);
			free(bufs[n - 1]);
			bufs[n - 1] = m;
			out[n - 1].s = m;
			out[n - 1].n = a + b;
			continue;
		}
		bufs[n] = NULL;
		out[n++] = *o;
	}
	return n;
}

static int check_variant(const struct fixture *fx, const struct op *ops, size_t nops, size_t op,
			 size_t k, bool bytes, bool with_ts, const char *want)
{
	run_ops(fx, ops, nops, op, k, bytes, &g_a);
	rec_render(&g_a, with_ts, g_got, sizeof(g_got));
	if (!strcmp(g_got, want))
		return 0;
	fprintf(stderr, "  %s: op %zu split at %zu%s%s differs:\n--- got\n%s--- want\n%s", fx->name,
		op, k, bytes ? " (1-byte pieces)" : "", with_ts ? "" : " (merged calls)", g_got,
		want);
	return 1;
}

/* All cuts of every data op, then 1-byte pieces; stops at the first difference. */
static int check_splits(const struct fixture *fx, const struct op *ops, size_t nops, bool with_ts,
			const char *want)
{
	size_t stride = fx->stride ? fx->stride : 1;

	for (size_t i = 0; i < nops; i++) {
		size_t len = ops[i].kind == 'd' ? op_len(&ops[i]) : 0;

		for (size_t k = 1; k < len; k += (k < 4 || len - k < 4) ? 1 : stride)
			if (check_variant(fx, ops, nops, i, k, false, with_ts, want))
				return 1;
	}
	return check_variant(fx, ops, nops, (size_t)-1, 0, true, with_ts, want);
}

static void check_fixture(const struct fixture *fx)
{
	int bad;

	run_ops(fx, fx->ops, fx->nops, (size_t)-1, 0, false, &g_a);
	rec_render(&g_a, true, g_got, sizeof(g_got));
	CHECK_EQ_STR(g_got, fx->expect);
	if (strcmp(g_got, fx->expect))
		return;
	bad = check_splits(fx, fx->ops, fx->nops, true, fx->expect);
	if (!bad && fx_mergeable(fx)) {
		struct op *ops = calloc(fx->nops, sizeof(*ops));
		char **bufs = calloc(fx->nops, sizeof(*bufs));
		size_t n = fx_coalesce(fx, ops, bufs);

		run_ops(fx, fx->ops, fx->nops, (size_t)-1, 0, false, &g_a);
		rec_render(&g_a, false, g_want, sizeof(g_want));
		bad = check_splits(fx, ops, n, false, g_want);
		for (size_t i = 0; i < n; i++)
			free(bufs[i]);
		free(bufs);
		free(ops);
	}
	CHECK_EQ_INT(bad, 0);
}

#define FIXTURE(fname, frole, fexpect, ...)                                                        \
	do {                                                                                       \
		static const struct op _ops[] = {__VA_ARGS__};                                     \
		struct fixture _fx = {fname,   frole, _ops, sizeof(_ops) / sizeof(_ops[0]),        \
				      fexpect, 1};                                                 \
		check_fixture(&_fx);                                                               \
	} while (0)

#define CLIENT HTTP1_ROLE_CLIENT

/* ---- the fixtures --------------------------------------------------------------------------- */

TEST(content_length)
{
	FIXTURE("content_length", CLIENT,
		"req#1 POST /v1/chat/completions 1.1 "
		"{Host=api.openai.com;Content-Type=application/json;"
		"Content-Length=13} @100\n"
		"body#1 req \"{\"model\":\"x\"}\" @250\n"
		"end#1 req @250\n"
		"resp#1 200 {Content-Type=application/json;content-length=11} @350\n"
		"body#1 resp \"{\"id\":\"c1\"}\" @350-450\n"
		"end#1 resp @450\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
		W("POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
		  "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"),
		W("{\"model\":\"x\"}"),
		R("HTTP/1.1 200 OK\r\nContent-Type:   application/json  \r\n"
		  "content-length: 11\r\n\r\n{\"id\""),
		R(":\"c1\"}"), CLOSE);
}

TEST(chunked_extensions_trailers)
{
	FIXTURE("chunked", CLIENT,
		"req#1 GET /stream 1.1 {Host=h} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Transfer-Encoding=chunked} @250\n"
		"body#1 resp \"hello world\" @250-350\n"
		"end#1 resp @350\n"
		"req#2 GET /next 1.1 {} @400\n"
		"end#2 req @450\n"
		"resp#2 204 {Content-Length=7} @550\n"
		"end#2 resp @550\n"
		"stats r=2 s=2 pe=0 g=0 rs=0 a=0 o=0\n",
		W("GET /stream HTTP/1.1\r\nHost: h\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val\r\nhello\r\n"),
		R("6 ; a=b;c=\"q\"\r\n world\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n"),
		W("GET /next HTTP/1.1\r\n\r\n"),
		/* 204 has no body whatever it says */
		R("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"), CLOSE);
}

#define SSE1 "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
#define SSE2 "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
#define SSE3 "data: [DONE]\n\n"
/* as the log shows them */
#define SSE1E "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\\n\\n"
#define SSE2E "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\\n\\n"
#define SSE3E "data: [DONE]\\n\\n"

TEST(sse_stream)
{
	FIXTURE("sse", CLIENT,
		"req#1 POST /v1/chat/completions 1.1 {Host=x;Content-Length=15} @100\n"
		"body#1 req \"{\"stream\":true}\" @150\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Type=text/event-stream;Transfer-Encoding=chunked} @250\n"
		"body#1 resp \"" SSE1E SSE2E SSE3E "\" @350-550\n"
		"end#1 resp @650\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
		W("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n"
		  "{\"stream\":true}"),
		R("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n"),
		R("31\r\n" SSE1 "\r\n"), R("30\r\n" SSE2 "\r\n"), R("e\r\n" SSE3 "\r\n"),
		R("0\r\n\r\n"), CLOSE);
}

TEST(pipelined)
{
	FIXTURE("pipelined", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"req#2 POST /b 1.1 {Content-Length=3} @100\n"
		"body#2 req \"abc\" @150\n"
		"end#2 req @150\n"
		"req#3 GET /c 1.1 {} @100\n"
		"end#3 req @150\n"
		"busy=1\n"
		"resp#1 200 {Content-Length=1} @350\n"
		"body#1 resp \"A\" @350\n"
		"end#1 resp @350\n"
		"resp#2 201 {Content-Length=1} @450\n"
		"body#2 resp \"B\" @450\n"
		"end#2 resp @450\n"
		"resp#3 404 {Content-Length=0} @450\n"
		"end#3 resp @450\n"
		"busy=0\n"
		"stats r=3 s=3 pe=0 g=0 rs=0 a=0 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
		  "GET /c HTTP/1.1\r\n\r\n"),
		BUSY, R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"),
		R("HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nB"
		  "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
		BUSY, CLOSE);
}

TEST(continue_100)
{
	FIXTURE("100-continue", CLIENT,
		"req#1 PUT /up 1.1 {Expect=100-continue;Content-Length=4} @100\n"
		"body#1 req \"data\" @350\n"
		"end#1 req @350\n"
		"resp#1 200 {Content-Length=2} @450\n"
		"body#1 resp \"ok\" @450\n"
		"end#1 resp @450\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
		W("PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
		R("HTTP/1.1 100 Continue\r\n\r\n"), W("data"),
		R("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), CLOSE);
}

TEST(head_204_304)
{
	FIXTURE("head", CLIENT,
		"req#1 HEAD /x 1.1 {} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Length=1000} @250\n"
		"end#1 resp @250\n"
		"req#2 GET /y 1.1 {} @300\n"
		"end#2 req @350\n"
		"resp#2 304 {ETag=\"e\"} @450\n"
		"end#2 resp @450\n"
		"req#3 GET /z 1.1 {} @500\n"
		"end#3 req @550\n"
		"resp#3 200 {Content-Length=2} @650\n"
		"body#3 resp \"ok\" @650\n"
		"end#3 resp @650\n"
		"stats r=3 s=3 pe=0 g=0 rs=0 a=0 o=0\n",
		W("HEAD /x HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
		W("GET /y HTTP/1.1\r\n\r\n"), R("HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n"),
		W("GET /z HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
		CLOSE);
}

TEST(close_delimited)
{
	FIXTURE("close-delimited", CLIENT,
		"req#1 GET /old 1.0 {} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Type=text/plain} @250\n"
		"body#1 resp \"part1\" @250\n"
		"loss#1 resp 7\n"
		"body#1 resp \"part2\" @450\n"
		"end#1 resp @500\n"
		"stats r=1 s=1 pe=0 g=1 rs=0 a=0 o=0\n",
		W("GET /old HTTP/1.0\r\n\r\n"),
		R("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npart1"), GAP(1, 7),
		R("part2"), CLOSE);
}

TEST(error_429)
{
	FIXTURE("429", CLIENT,
		"req#1 POST /v1/messages 1.1 {host=api.anthropic.com;x-api-key=sk-test;"
		"content-length=2} @100\n"
		"body#1 req \"{}\" @150\n"
		"end#1 req @150\n"
		"resp#1 429 {content-type=application/json;retry-after=20;content-length=74} @250\n"
		"body#1 resp \"{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
		"\"message\":\"slow down\"}}\" @250\n"
		"end#1 resp @250\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
		W("POST /v1/messages HTTP/1.1\r\nhost: api.anthropic.com\r\nx-api-key: sk-test\r\n"
		  "content-length: 2\r\n\r\n{}"),
		R("HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
		  "retry-after: 20\r\ncontent-length: 74\r\n\r\n{\"type\":\"error\",\"error\":"
		  "{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}"),
		CLOSE);
}

TEST(garbage_sticky)
{
	FIXTURE("garbage", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Length=0} @250\n"
		"end#1 resp @250\n"
		"req#2 GET /b 1.1 {} @300\n"
		"end#2 req @350\n"
		"abort#2 parse @450\n"
		"rc=-71\n"
		"stats r=2 s=1 pe=1 g=0 rs=0 a=1 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
		W("GET /b HTTP/1.1\r\n\r\n"), R("\x16\x03\x01\x02\x00 not http"),
		W("GET /c HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
		CLOSE);
	FIXTURE("bad-header", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"abort#1 parse @250\n"
		"rc=-71\n"
		"stats r=1 s=0 pe=1 g=0 rs=0 a=1 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n"), CLOSE);
}

TEST(obs_fold_and_lengths)
{
	FIXTURE("obs-fold", CLIENT,
		"rc=-71\n"
		"stats r=0 s=0 pe=1 g=0 rs=0 a=0 o=0\n",
		W("GET /a HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n"), CLOSE);
	FIXTURE("conflicting-cl", CLIENT,
		"rc=-71\n"
		"stats r=0 s=0 pe=1 g=0 rs=0 a=0 o=0\n",
		W("POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"),
		CLOSE);
	FIXTURE("invalid-cl", CLIENT,
		"rc=-71\n"
		"stats r=0 s=0 pe=1 g=0 rs=0 a=0 o=0\n",
		W("POST /a HTTP/1.1\r\nContent-Length: 5x\r\n\r\nhello"), CLOSE);
	FIXTURE("te-wins", CLIENT,
		"req#1 POST /a 1.1 {Content-Length=100;Transfer-Encoding=gzip, chunked;"
		"Content-Length=100, 100} @100\n"
		"body#1 req \"abc\" @150\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Length=2} @250\n"
		"body#1 resp \"ok\" @250\n"
		"end#1 resp @250\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
		W("POST /a HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: gzip, chunked\r\n"
		  "Content-Length: 100, 100\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), CLOSE);
	FIXTURE("te-not-chunked", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Transfer-Encoding=gzip;Content-Length=3} @250\n"
		"body#1 resp \"abcdef\" @250-350\n"
		"end#1 resp @400\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc"),
		R("def"), CLOSE);
	FIXTURE("request-te-not-chunked", CLIENT,
		"rc=-71\n"
		"stats r=0 s=0 pe=1 g=0 rs=0 a=0 o=0\n",
		W("POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc"), CLOSE);
	FIXTURE("bad-chunk", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Transfer-Encoding=chunked} @250\n"
		"body#1 resp \"abc\" @250\n"
		"abort#1 parse @250\n"
		"rc=-71\n"
		"stats r=1 s=1 pe=1 g=0 rs=0 a=1 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"),
		CLOSE);
}

TEST(gap_in_body)
{
	FIXTURE("gap-in-body", CLIENT,
		"req#1 POST /a 1.1 {Content-Length=20} @100\n"
		"body#1 req \"hello\" @150\n"
		"loss#1 req 10\n"
		"body#1 req \"abcde\" @350\n"
		"end#1 req @350\n"
		"resp#1 200 {Transfer-Encoding=chunked} @450\n"
		"body#1 resp \"0123\" @450\n"
		"loss#1 resp 4\n"
		"body#1 resp \"89abcdef\" @650\n"
		"end#1 resp @650\n"
		"req#2 GET /b 1.1 {} @700\n"
		"end#2 req @750\n"
		"resp#2 200 {Content-Length=1} @850\n"
		"body#2 resp \"x\" @850\n"
		"end#2 resp @850\n"
		"stats r=2 s=2 pe=0 g=2 rs=0 a=0 o=0\n",
		W("POST /a HTTP/1.1\r\nContent-Length: 20\r\n\r\nhello"), GAP(0, 10), W("abcde"),
		R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123"), GAP(1, 4),
		R("89abcdef\r\n0\r\n\r\n"), W("GET /b HTTP/1.1\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"), CLOSE);
}

/* The rest of a request head was lost; capture reports the gap only with the next request. */
TEST(gap_in_request_head)
{
	FIXTURE("gap-request-head", CLIENT,
		"req#1 GET /b 1.1 {} @400\n"
		"end#1 req @450\n"
		"resp#1 200 {Content-Length=1} @550\n"
		"body#1 resp \"b\" @550\n"
		"end#1 resp @550\n"
		"stats r=1 s=1 pe=0 g=1 rs=1 a=0 o=0\n",
		W("POST /a HTTP/1.1\r\nHost: x\r\nContent-Le"),
		R("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), GAP(0, 16),
		W("GET /b HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
		CLOSE);
	/* Gap reported before the head's remaining bytes, which resync discards. */
	FIXTURE("gap-request-head-2", CLIENT,
		"req#1 GET /b 1.1 {} @500\n"
		"end#1 req @550\n"
		"resp#1 200 {Content-Length=1} @650\n"
		"body#1 resp \"b\" @650\n"
		"end#1 resp @650\n"
		"stats r=1 s=1 pe=0 g=1 rs=1 a=0 o=0\n",
		W("POST /a HTTP/1.1\r\nHost: x\r\nContent-Le"), GAP(0, 5),
		W("ngth: 7\r\n\r\n{\"a\":1}"), R("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
		W("GET /b HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
		CLOSE);
	/* A chunked request body loses bytes: the exchange is aborted, its response swallowed. */
	FIXTURE("gap-request-chunked", CLIENT,
		"req#1 POST /a 1.1 {Transfer-Encoding=chunked} @100\n"
		"body#1 req \"abc\" @150\n"
		"abort#1 gap @150\n"
		"req#2 GET /b 1.1 {} @500\n"
		"end#2 req @550\n"
		"resp#2 200 {Content-Length=1} @650\n"
		"body#2 resp \"b\" @650\n"
		"end#2 resp @650\n"
		"stats r=2 s=1 pe=0 g=1 rs=1 a=1 o=0\n",
		W("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"), GAP(0, 30),
		R("HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\n{}"), W("\r\n0\r\n\r\n"),
		W("GET /b HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"),
		CLOSE);
}

TEST(gap_in_response)
{
	/* Response head cut: the exchange is aborted, the next one pairs. */
	FIXTURE("gap-response-head", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"abort#1 gap @250\n"
		"req#2 GET /b 1.1 {} @500\n"
		"end#2 req @550\n"
		"resp#2 200 {Content-Length=1} @650\n"
		"body#2 resp \"b\" @650\n"
		"end#2 resp @650\n"
		"stats r=2 s=1 pe=0 g=1 rs=1 a=1 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Le"), GAP(1, 30),
		R("rest of the body of a}"), W("GET /b HTTP/1.1\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"), CLOSE);
	/* The tail of A's response was lost; B was written (after the client read it) before
	 * capture reported the gap. The next response may be B's, or that of a request lost
	 * after B whose loss is not known yet: B is aborted rather than guessed. C pairs. */
	FIXTURE("gap-response-late", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Length=100} @250\n"
		"body#1 resp \"0123456789\" @250\n"
		"req#2 GET /b 1.1 {} @300\n"
		"end#2 req @350\n"
		"abort#1 gap @350\n"
		"abort#2 gap @550\n"
		"req#3 GET /c 1.1 {} @600\n"
		"end#3 req @650\n"
		"resp#3 200 {Content-Length=1} @750\n"
		"body#3 resp \"c\" @750\n"
		"end#3 resp @750\n"
		"stats r=3 s=2 pe=0 g=1 rs=1 a=2 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
		W("GET /b HTTP/1.1\r\n\r\n"), GAP(1, 200),
		R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"), W("GET /c HTTP/1.1\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"), CLOSE);
	/* B and C were both sent while A's response was arriving: from here that is
	 * pipelining, and after the loss nobody knows which response comes next. */
	FIXTURE("gap-response-two-outstanding", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Length=100} @250\n"
		"body#1 resp \"0123456789\" @250\n"
		"req#2 GET /b 1.1 {} @300\n"
		"end#2 req @350\n"
		"req#3 GET /c 1.1 {} @400\n"
		"end#3 req @450\n"
		"abort#1 gap @450\n"
		"abort#2 gap @450\n"
		"abort#3 gap @450\n"
		"stats r=3 s=1 pe=0 g=1 rs=0 a=3 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
		W("GET /b HTTP/1.1\r\n\r\n"), W("GET /c HTTP/1.1\r\n\r\n"), GAP(1, 300),
		R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"), CLOSE);
	/* Pipelined requests and a lost response: which response comes next is unknown, so
	 * everything open is aborted and the connection is no longer parsed. */
	FIXTURE("gap-response-pipelined", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"req#2 GET /b 1.1 {} @100\n"
		"end#2 req @150\n"
		"resp#1 200 {Content-Length=100} @250\n"
		"body#1 resp \"0123456789\" @250\n"
		"abort#1 gap @250\n"
		"abort#2 gap @250\n"
		"stats r=2 s=1 pe=0 g=1 rs=0 a=2 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"), GAP(1, 200),
		R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"), CLOSE);
}

TEST(close_and_expire)
{
	FIXTURE("no-response-close", CLIENT,
		"req#1 POST /a 1.1 {Content-Length=2} @100\n"
		"body#1 req \"{}\" @150\n"
		"end#1 req @150\n"
		"busy=1\n"
		"abort#1 closed @300\n"
		"stats r=1 s=0 pe=0 g=0 rs=0 a=1 o=0\n",
		W("POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"), BUSY, CLOSE);
	/* A's response comes after the timeout: it is swallowed, B still pairs with B's. */
	FIXTURE("expire", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"req#2 GET /b 1.1 {} @200\n"
		"end#2 req @250\n"
		"abort#1 timeout @5150\n"
		"resp#2 200 {Content-Length=1} @650\n"
		"body#2 resp \"b\" @650\n"
		"end#2 resp @650\n"
		"stats r=2 s=1 pe=0 g=0 rs=0 a=1 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"), W("GET /b HTTP/1.1\r\n\r\n"), EXPIRE(5150, 5000),
		R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"), EXPIRE(5160, 100000),
		R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"), CLOSE);
	/* A response that has started expires only after the timeout passes without a byte. */
	FIXTURE("expire-started", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Length=4} @250\n"
		"body#1 resp \"abcd\" @250-450\n"
		"end#1 resp @450\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"),
		EXPIRE(300, 100), R("cd"), CLOSE);
	/* One that never ends: silent for the timeout, it is aborted; what follows is swallowed. */
	FIXTURE("expire-quiet-response", CLIENT,
		"req#1 GET /a 1.1 {} @100\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Length=4} @250\n"
		"body#1 resp \"ab\" @250\n"
		"abort#1 timeout @100000\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=1 o=0\n",
		W("GET /a HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"),
		EXPIRE(100000, 10), R("cd"), CLOSE);
}

TEST(not_interested_and_upgrade)
{
	FIXTURE("skip", CLIENT,
		"req#1 GET /skip/me 1.1 {} (skip) @100\n"
		"req#2 GET /y 1.1 {} @300\n"
		"end#2 req @350\n"
		"resp#2 200 {Content-Length=1} @450\n"
		"body#2 resp \"y\" @450\n"
		"end#2 resp @450\n"
		"stats r=2 s=2 pe=0 g=0 rs=0 a=0 o=0\n",
		W("GET /skip/me HTTP/1.1\r\n\r\n"),
		R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
		W("GET /y HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny"),
		CLOSE);
	FIXTURE("upgrade", CLIENT,
		"req#1 GET /ws 1.1 {Upgrade=websocket;Connection=Upgrade} @100\n"
		"end#1 req @150\n"
		"resp#1 101 {Upgrade=websocket} @250\n"
		"end#1 resp @250\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
		W("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
		R("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"),
		W("\x81\x85\x01\x02\x03\x04zzzzz"), CLOSE);
}

TEST(server_role_and_early_response)
{
	FIXTURE("server-role", HTTP1_ROLE_SERVER,
		"req#1 POST /v1/chat/completions 1.1 {Content-Length=2} @100\n"
		"body#1 req \"{}\" @150\n"
		"end#1 req @150\n"
		"resp#1 200 {Content-Length=2} @250\n"
		"body#1 resp \"ok\" @250\n"
		"end#1 resp @250\n"
		"stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
		R("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
		W("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), CLOSE);
	FIXTURE("early-response", CLIENT,
		"req#1 POST /up 1.1 {Content-Length=10} @100\n"
		"body#1 req \"abc\" @150\n"
		"loss#1 req 7\n"
		"end#1 req @250\n"
		"resp#1 413 {Content-Length=0} @250\n"
		"end#1 resp @250\n"
		"req#2 GET /b 1.1 {} @400\n"
		"end#2 req @450\n"
		"resp#2 200 {Content-Length=0} @550\n"
		"end#2 resp @550\n"
		"stats r=2 s=2 pe=0 g=0 rs=0 a=0 o=0\n",
		W("POST /up HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
		R("HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n"), W("defghij"),
		W("GET /b HTTP/1.1\r\n\r\n"), R("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
		CLOSE);
}

/* ---- generated fixtures ----------------------------------------------------------------- */

static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

TEST(keep_alive_50)
{
	struct op ops[101];
	char *bufs[100];
	char *want = calloc(1, 1 << 16);
	size_t n = 0;

	for (int i = 0; i < 50; i++) {
		size_t w = 2 * (size_t)i, r = w + 1;
		int blen = snprintf(NULL, 0, "{\"n\":%d}", i);

		bufs[w] = xasprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: api\r\n"
				    "Content-Length: %d\r\n\r\n{\"n\":%d}",
				    blen, i);
		bufs[r] =
		    xasprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n{\"n\":%d}", blen, i);
		ops[w] = (struct op){'d', 0, bufs[w], 0, 0};
		ops[r] = (struct op){'d', 1, bufs[r], 0, 0};
		n += (size_t)sprintf(want + n,
				     "req#%d POST /v1/chat/completions 1.1 {Host=api;"
				     "Content-Length=%d} @%" PRIu64 "\n"
				     "body#%d req \"{\"n\":%d}\" @%" PRIu64 "\n"
				     "end#%d req @%" PRIu64 "\n"
				     "resp#%d 200 {Content-Length=%d} @%" PRIu64 "\n"
				     "body#%d resp \"{\"n\":%d}\" @%" PRIu64 "\n"
				     "end#%d resp @%" PRIu64 "\n",
				     i + 1, blen, op_ts_start(w), i + 1, i, op_ts_end(w), i + 1,
				     op_ts_end(w), i + 1, blen, op_ts_end(r), i + 1, i,
				     op_ts_end(r), i + 1, op_ts_end(r));
	}
	ops[100] = (struct op){'c', 0, NULL, 0, 0};
	sprintf(want + n, "stats r=50 s=50 pe=0 g=0 rs=0 a=0 o=0\n");
	{
		struct fixture fx = {"keep-alive-50", CLIENT, ops, 101, want, 1};

		check_fixture(&fx);
	}
	for (int i = 0; i < 100; i++)
		free(bufs[i]);
	free(want);
}

/* Builds `n` pipelined requests in one write and their logs; the queue grows from its inline
 * entries to HTTP1_MAX_PIPELINE and must keep FIFO order across every reallocation. */
static char *deep_requests(int n, char *want, size_t *wn, int first, uint64_t ts0, uint64_t ts1)
{
	size_t cap = (size_t)n * 24 + 1, len = 0;
	char *w = malloc(cap);

	for (int i = 0; i < n; i++) {
		len += (size_t)snprintf(w + len, cap - len, "GET /p%d HTTP/1.1\r\n\r\n", i);
		*wn += (size_t)sprintf(want + *wn, "req#%d GET /p%d 1.1 {} @%" PRIu64 "\n"
					"end#%d req @%" PRIu64 "\n",
				       first + i, i, ts0, first + i, ts1);
	}
	return w;
}

static char *deep_responses(int n, char *want, size_t *wn, int first, uint64_t ts)
{
	size_t cap = (size_t)n * 48 + 1, len = 0;
	char *r = malloc(cap);

	for (int i = 0; i < n; i++) {
		len += (size_t)snprintf(r + len, cap - len,
					"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%c",
					'a' + i % 26);
		*wn += (size_t)sprintf(want + *wn,
				       "resp#%d 200 {Content-Length=1} @%" PRIu64 "\n"
				       "body#%d resp \"%c\" @%" PRIu64 "\n"
				       "end#%d resp @%" PRIu64 "\n",
				       first + i, ts, first + i, 'a' + i % 26, ts, first + i, ts);
	}
	return r;
}

TEST(deep_pipeline)
{
	char *want = calloc(1, 1 << 16), *b[4];
	size_t n = 0;
	struct op ops[5];

	/* 40 at once, answered in order; then 3 more after the queue emptied (and shrank). */
	b[0] = deep_requests(40, want, &n, 1, op_ts_start(0), op_ts_end(0));
	b[1] = deep_responses(40, want, &n, 1, op_ts_end(1));
	b[2] = deep_requests(3, want, &n, 41, op_ts_start(2), op_ts_end(2));
	b[3] = deep_responses(3, want, &n, 41, op_ts_end(3));
	sprintf(want + n, "stats r=43 s=43 pe=0 g=0 rs=0 a=0 o=0\n");
	for (int i = 0; i < 4; i++)
		ops[i] = (struct op){'d', i % 2, b[i], 0, 0};
	ops[4] = (struct op)CLOSE;
	{
		struct fixture fx = {"deep-pipeline", CLIENT, ops, 5, want, 7};

		check_fixture(&fx);
	}
	for (int i = 0; i < 4; i++)
		free(b[i]);
	free(want);
}

/* One request more than HTTP1_MAX_PIPELINE without a response: a counted overflow. */
TEST(pipeline_overflow)
{
	char *want = calloc(1, 1 << 16), *w;
	size_t n = 0;
	struct op ops[2];

	w = deep_requests(HTTP1_MAX_PIPELINE, want, &n, 1, op_ts_start(0), op_ts_end(0));
	for (int i = 1; i <= HTTP1_MAX_PIPELINE; i++)
		n += (size_t)sprintf(want + n, "abort#%d overflow @%" PRIu64 "\n", i, op_ts_end(0));
	n += (size_t)sprintf(want + n, "rc=-71\nstats r=%d s=0 pe=0 g=0 rs=0 a=%d o=1\n",
			     HTTP1_MAX_PIPELINE, HTTP1_MAX_PIPELINE);
	{
		char *all = xasprintf("%sGET /over HTTP/1.1\r\n\r\n", w);
		struct fixture fx = {"pipeline-overflow", CLIENT, ops, 2, want, 5};

		ops[0] = (struct op){'d', 0, all, 0, 0};
		ops[1] = (struct op)CLOSE;
		check_fixture(&fx);
		free(all);
	}
	free(w);
	free(want);
}

TEST(huge_head_overflow)
{
	size_t big = HTTP1_MAX_HEAD + 100;
	char *req = malloc(big + 64);
	struct op ops[3];
	size_t n = (size_t)sprintf(req, "GET /big HTTP/1.1\r\nX-Big: ");

	memset(req + n, 'a', big - n);
	strcpy(req + big, "\r\n\r\n");
	ops[0] = (struct op)W("GET /a HTTP/1.1\r\n\r\n");
	ops[1] = (struct op){'d', 0, req, 0, 0};
	ops[2] = (struct op)CLOSE;
	{
		struct fixture fx = {"overflow",
				     CLIENT,
				     ops,
				     3,
				     "req#1 GET /a 1.1 {} @100\n"
				     "end#1 req @150\n"
				     "abort#1 overflow @250\n"
				     "rc=-71\n"
				     "stats r=1 s=0 pe=0 g=0 rs=0 a=1 o=1\n",
				     4093};

		check_fixture(&fx);
	}
	free(req);
}

TEST(many_headers_truncated)
{
	char *req = malloc(8192), *want;
	size_t n = (size_t)sprintf(req, "POST /h HTTP/1.1\r\n");
	struct op ops[3];

	for (int i = 0; i < 70; i++)
		n += (size_t)sprintf(req + n, "X-H%d: v%d\r\n", i, i);
	sprintf(req + n, "Content-Length: 3\r\n\r\nxyz");
	ops[0] = (struct op){'d', 0, req, 0, 0};
	ops[1] = (struct op)R("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	ops[2] = (struct op)CLOSE;
	want = xasprintf("req#1 POST /h 1.1 {%d headers +trunc} @100\n"
			 "body#1 req \"xyz\" @150\n"
			 "end#1 req @150\n"
			 "resp#1 200 {Content-Length=0} @250\n"
			 "end#1 resp @250\n"
			 "stats r=1 s=1 pe=0 g=0 rs=0 a=0 o=0\n",
			 HTTP_MAX_HEADERS);
	{
		struct fixture fx = {"many-headers", CLIENT, ops, 3, want, 7};

		check_fixture(&fx);
	}
	free(want);
	free(req);
}

/* ---- random loss: pairing never shifts --------------------------------------------------- */

/*
 * Connections of random exchanges, each response tagged with its request's number. SSL calls
 * are dropped at random and the parser learns of the loss the way conn/ reports it: right
 * before the next delivered call of that direction, or at close. Whatever is lost, a response
 * must never reach the wrong request, and without loss every exchange must complete.
 */
struct pr_ex {
	int id;
	bool got_resp, ended, aborted;
};

struct pr {
	struct pr_ex ex[64];
	int nex, shifted, bad_order;
};

static struct pr *g_pr;
static bool g_pr_trace;

static void pr_trace(const char *what, int dir, const char *data, size_t len)
{
	char e[2048];

	if (!g_pr_trace)
		return;
	esc(e, sizeof(e), data ? data : "", data ? len : 0);
	fprintf(stderr, "  %s dir %d len %zu \"%s\"\n", what, dir, len, e);
}

static void *pr_on_request(void *ctx, const struct http_head *h, uint64_t ts)
{
	struct pr *r = ctx;
	struct pr_ex *x;

	if (r->nex == 64 || h->path_len < 4 || memcmp(h->path, "/r/", 3))
		return NULL;
	x = &r->ex[r->nex++];
	memset(x, 0, sizeof(*x));
	x->id = atoi(h->path + 3);
	return x;
}

static void pr_on_response(void *ex, const struct http_head *h, uint64_t ts)
{
	struct pr_ex *x = ex;
	const struct http_header *id = http_head__find(h, "x-id");

	if (!id || atoi(id->value) != x->id)
		g_pr->shifted++;
	if (g_pr_trace)
		fprintf(stderr, "  -> response %.*s for request %d\n", id ? (int)id->value_len : 1,
			id ? id->value : "?", x->id);
	if (x->got_resp || x->ended || x->aborted)
		g_pr->bad_order++;
	x->got_resp = true;
}

static void pr_on_end(void *ex, bool is_response, uint64_t ts)
{
	struct pr_ex *x = ex;

	if (is_response) {
		if (!x->got_resp || x->ended || x->aborted)
			g_pr->bad_order++;
		x->ended = true;
	}
}

static void pr_on_abort(void *ex, enum http_abort_reason why, uint64_t ts)
{
	struct pr_ex *x = ex;

	if (x->ended || x->aborted)
		g_pr->bad_order++;
	x->aborted = true;
}

static uint32_t pr_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

struct pr_conn {
	struct http1 *p;
	uint32_t rng;
	int loss_pct, burst;
	bool bursty; /* ring-buffer overflow: several calls of both directions in a row */
	uint64_t ts, lost[2];
	bool any_lost;
};

/* One SSL call: maybe dropped; a pending loss is reported before the bytes that follow it. */
static void pr_call(struct pr_conn *c, int dir, const char *data, size_t len)
{
	c->ts += 10;
	if (c->bursty && !c->burst && (int)(pr_rand(&c->rng) % 400) < c->loss_pct)
		c->burst = 2 + (int)(pr_rand(&c->rng) % 5);
	if (c->burst ? c->burst-- > 0 : (int)(pr_rand(&c->rng) % 100) < c->loss_pct) {
		pr_trace("DROP", dir, data, len);
		c->lost[dir] += len;
		c->any_lost = true;
		return;
	}
	if (c->lost[dir]) {
		pr_trace("gap", dir, NULL, c->lost[dir]);
		http1__gap(c->p, dir, c->lost[dir]);
		c->lost[dir] = 0;
	}
	pr_trace("feed", dir, data, len);
	http1__feed(c->p, dir, (const uint8_t *)data, len, c->ts, c->ts + 5);
}

/* A message written as 1-3 SSL calls cut at random places. */
static void pr_message(struct pr_conn *c, int dir, const char *m)
{
	size_t len = strlen(m), off = 0;
	int calls = 1 + (int)(pr_rand(&c->rng) % 3);

	for (int k = 1; k < calls && off < len; k++) {
		size_t n = 1 + pr_rand(&c->rng) % (len - off);

		pr_call(c, dir, m + off, n);
		off += n;
	}
	if (off < len)
		pr_call(c, dir, m + off, len - off);
}

static void pr_request(struct pr_conn *c, int id, char *buf)
{
	if (id % 3 == 0)
		sprintf(buf,
			"POST /r/%d HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			"5\r\nhello\r\n0\r\n\r\n",
			id);
	else
		sprintf(buf,
			"POST /r/%d HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
			"{\"id\":%04d}",
			id, id % 10000);
	pr_message(c, 0, buf);
}

static void pr_response(struct pr_conn *c, int id, char *buf)
{
	if (id % 2)
		sprintf(buf,
			"HTTP/1.1 200 OK\r\nX-Id: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
			"18\r\ndata: {\"n\":1}\n\ndata: x\n\n\r\n8\r\ndata: y\n\r\n0\r\n\r\n",
			id);
	else
		sprintf(buf,
			"HTTP/1.1 200 OK\r\nX-Id: %d\r\nContent-Length: 22\r\n\r\n"
			"{\"id\":\"resp\",\"n\":%04d}",
			id, id % 10000);
	pr_message(c, 1, buf);
}

static void pr_connection(uint32_t seed, int loss_pct, bool pipelined, bool bursty, struct pr *r)
{
	struct http_sink sink = {.ctx = r,
				 .on_request = pr_on_request,
				 .on_response = pr_on_response,
				 .on_message_end = pr_on_end,
				 .on_abort = pr_on_abort};
	struct pr_conn c = {.rng = seed | 1, .loss_pct = loss_pct, .bursty = bursty};
	char buf[512];
	int n = 8 + (int)(seed % 16);

	memset(r, 0, sizeof(*r));
	g_pr = r;
	c.p = http1__new(HTTP1_ROLE_CLIENT, &sink);
	for (int i = 0; i < n;) {
		int batch = pipelined ? 1 + (int)(pr_rand(&c.rng) % 3) : 1;

		for (int k = 0; k < batch; k++)
			pr_request(&c, i + k, buf);
		for (int k = 0; k < batch; k++)
			pr_response(&c, i + k, buf);
		i += batch;
	}
	for (int d = 0; d < 2; d++)
		if (c.lost[d])
			http1__gap(c.p, d, c.lost[d]);
	http1__close(c.p, c.ts + 100);
	http1__free(c.p);
	if (!c.any_lost)
		for (int i = 0; i < r->nex; i++)
			if (!r->ex[i].ended)
				r->bad_order++;
	if (!c.any_lost && r->nex < n)
		r->bad_order++;
}

TEST(random_loss_never_shifts)
{
	uint32_t seeds = getenv("PR_SEEDS") ? (uint32_t)atoi(getenv("PR_SEEDS")) : 4000;
	int shifted = 0, shifted_pipelined = 0, bad = 0, completed = 0, total = 0;
	struct pr r;

	for (uint32_t seed = 1; seed <= seeds; seed++) {
		int loss = (int)(seed % 4) * 4; /* 0, 4, 8, 12 % of calls */
		bool pipelined = seed % 5 == 0, bursty = seed % 3 == 0;

		g_pr_trace = getenv("PR_TRACE") && (uint32_t)atoi(getenv("PR_TRACE")) == seed;
		pr_connection(seed * 2654435761u, loss, pipelined, bursty, &r);
		if ((r.shifted || r.bad_order) && getenv("PR_DEBUG"))
			fprintf(stderr, "seed %u loss %d pipelined %d: shifted %d bad %d\n", seed,
				loss, pipelined, r.shifted, r.bad_order);
		if (pipelined)
			shifted_pipelined += r.shifted;
		else
			shifted += r.shifted;
		bad += r.bad_order;
		for (int i = 0; i < r.nex; i++)
			completed += r.ex[i].ended;
		total += r.nex;
	}
	CHECK_EQ_INT(shifted, 0);
	CHECK_EQ_INT(bad, 0);
	/*
	 * A client that pipelines and loses every request that would have shown it (all the
	 * overlapping ones) looks like one that does not; pairing then rests on that assumption.
	 * Seen pipelining abandons the parse on loss; this bounds what stays unseen.
	 */
	CHECK(shifted_pipelined * 200 < total / 5);
	/* loss must not cost much more than the exchanges it touched */
	CHECK(completed > total * 3 / 4);
	printf("random loss: %d of %d exchanges completed, %d mispaired in pipelined connections\n",
	       completed, total, shifted_pipelined);
}

/* ---- direct checks ------------------------------------------------------------------------ */

TEST(looks_like_http)
{
	CHECK(http1__looks_like_http((const uint8_t *)"GET / HTTP/1.1\r\n", 16));
	CHECK(http1__looks_like_http((const uint8_t *)"HTTP/1.1 200 OK\r\n", 17));
	CHECK(http1__looks_like_http((const uint8_t *)"POST /v1/x HTTP/1.", 18));
	CHECK(http1__looks_like_http((const uint8_t *)"GE", 2)); /* consistent so far */
	CHECK(!http1__looks_like_http((const uint8_t *)"PRI * HTTP/2.0\r\n", 16));
	CHECK(!http1__looks_like_http((const uint8_t *)"\x16\x03\x01", 3));
	CHECK(!http1__looks_like_http((const uint8_t *)"{\"a\":1}", 7));
	CHECK(!http1__looks_like_http((const uint8_t *)"GET /a HTTP/2\r\n", 15));
	CHECK(!http1__looks_like_http((const uint8_t *)"HTTP/1.1 20x", 12));
	CHECK(!http1__looks_like_http((const uint8_t *)"", 0));
}

TEST(head_find)
{
	struct http_head h = {0};

	h.headers[0] = (struct http_header){"Content-Type", 12, "a/b", 3};
	h.headers[1] = (struct http_header){"X-Api-Key", 9, "k", 1};
	h.num_headers = 2;
	CHECK(http_head__find(&h, "content-type") == &h.headers[0]);
	CHECK(http_head__find(&h, "X-API-KEY") == &h.headers[1]);
	CHECK(http_head__find(&h, "x-api") == NULL);
}

int main(void)
{
	RUN(content_length);
	RUN(chunked_extensions_trailers);
	RUN(sse_stream);
	RUN(pipelined);
	RUN(continue_100);
	RUN(head_204_304);
	RUN(close_delimited);
	RUN(error_429);
	RUN(garbage_sticky);
	RUN(obs_fold_and_lengths);
	RUN(gap_in_body);
	RUN(gap_in_request_head);
	RUN(gap_in_response);
	RUN(close_and_expire);
	RUN(not_interested_and_upgrade);
	RUN(server_role_and_early_response);
	RUN(keep_alive_50);
	RUN(deep_pipeline);
	RUN(pipeline_overflow);
	RUN(huge_head_overflow);
	RUN(many_headers_truncated);
	RUN(random_loss_never_shifts);
	RUN(looks_like_http);
	RUN(head_find);
	TT_DONE();
}
