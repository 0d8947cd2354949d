// SPDX-License-Identifier: Apache-2.0
/*
 * proto/http2.c: frames built by hand and header blocks by libnghttp2's HPACK deflater (the same
 * library real clients use), fed whole, split at every boundary and in 1-byte pieces. The sink
 * writes a trace of what it was told; bodies are summed per message, so the trace of a
 * connection must not depend on how its bytes were cut.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdlib.h>

#include "tt_test.h"
#include "conn/conn.h"
#include "proto/http2.h"

/* ---- building a connection ------------------------------------------------------------------ */

struct buf {
	uint8_t *b;
	size_t len, cap;
};

static void put(struct buf *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2 + 64;
		o->b = realloc(o->b, o->cap);
	}
	memcpy(o->b + o->len, p, n);
	o->len += n;
}

static void put_str(struct buf *o, const char *s)
{
	put(o, s, strlen(s));
}

static void frame_head(struct buf *o, size_t len, uint8_t type, uint8_t flags, uint32_t sid)
{
	uint8_t h[9] = {
	    (uint8_t)(len >> 16), (uint8_t)(len >> 8),	(uint8_t)len,	     type,	  flags,
	    (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
	put(o, h, 9);
}

static void frame(struct buf *o, uint8_t type, uint8_t flags, uint32_t sid, const void *p, size_t n)
{
	frame_head(o, n, type, flags, sid);
	if (n)
		put(o, p, n);
}

enum { F_END_STREAM = 1, F_ACK = 1, F_END_HEADERS = 4, F_PADDED = 8, F_PRIORITY = 0x20 };

static void settings(struct buf *o, const uint32_t *kv, int n)
{
	uint8_t p[64];

	for (int i = 0; i < n; i++) {
		p[i * 6] = (uint8_t)(kv[2 * i] >> 8);
		p[i * 6 + 1] = (uint8_t)kv[2 * i];
		for (int k = 0; k < 4; k++)
			p[i * 6 + 2 + k] = (uint8_t)(kv[2 * i + 1] >> (24 - 8 * k));
	}
	frame(o, 4, 0, 0, p, (size_t)n * 6);
}

static void u32_frame(struct buf *o, uint8_t type, uint32_t sid, uint32_t v)
{
	uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	frame(o, type, 0, sid, p, 4);
}

/* A header block for name/value pairs (NULL-terminated list) from deflater d. */
static size_t hpack(nghttp2_hd_deflater *d, uint8_t *out, size_t cap, const char *const *nv)
{
	nghttp2_nv v[128];
	size_t n = 0;
	ssize_t r;

	for (; nv[2 * n]; n++)
		v[n] = (nghttp2_nv){(uint8_t *)nv[2 * n], (uint8_t *)nv[2 * n + 1],
				    strlen(nv[2 * n]), strlen(nv[2 * n + 1]), NGHTTP2_NV_FLAG_NONE};
	r = nghttp2_hd_deflate_hd(d, out, cap, v, n);
	if (r < 0) {
		fprintf(stderr, "deflate failed: %zd\n", r);
		abort();
	}
	return (size_t)r;
}

/* HEADERS (+ CONTINUATION when the block is longer than `frag`), optionally padded and with a
 * priority field. */
static void headers_ex(struct buf *o, nghttp2_hd_deflater *d, uint32_t sid, bool end_stream,
		       const char *const *nv, size_t frag, int pad, bool prio)
{
	uint8_t blk[200000];
	size_t n = hpack(d, blk, sizeof(blk), nv), off = 0, first = n < frag ? n : frag;
	uint8_t flags = (end_stream ? F_END_STREAM : 0) | (first == n ? F_END_HEADERS : 0);
	size_t extra = (pad >= 0 ? 1 + (size_t)pad : 0) + (prio ? 5 : 0);
	uint8_t z[256] = {0};

	frame_head(o, first + extra, 1, flags | (pad >= 0 ? F_PADDED : 0) | (prio ? F_PRIORITY : 0),
		   sid);
	if (pad >= 0) {
		uint8_t pl = (uint8_t)pad;
		put(o, &pl, 1);
	}
	if (prio)
		put(o, "\x80\x00\x00\x03\x10", 5); /* exclusive, depends on 3, weight 17 */
	put(o, blk, first);
	if (pad > 0)
		put(o, z, (size_t)pad);
	for (off = first; off < n; off += frag) {
		size_t k = n - off < frag ? n - off : frag;

		frame(o, 9, off + k == n ? F_END_HEADERS : 0, sid, blk + off, k);
	}
}

static void headers(struct buf *o, nghttp2_hd_deflater *d, uint32_t sid, bool end_stream,
		    const char *const *nv)
{
	headers_ex(o, d, sid, end_stream, nv, 16384, -1, false);
}

static void data_ex(struct buf *o, uint32_t sid, const char *s, size_t n, bool end, int pad)
{
	uint8_t z[256] = {0};

	if (pad < 0) {
		frame(o, 0, end ? F_END_STREAM : 0, sid, s, n);
		return;
	}
	frame_head(o, n + 1 + (size_t)pad, 0, (end ? F_END_STREAM : 0) | F_PADDED, sid);
	put(o, (uint8_t[]){(uint8_t)pad}, 1);
	put(o, s, n);
	put(o, z, (size_t)pad);
}

static void data(struct buf *o, uint32_t sid, const char *s, bool end)
{
	data_ex(o, sid, s, strlen(s), end, -1);
}

static nghttp2_hd_deflater *deflater(void)
{
	nghttp2_hd_deflater *d;

	if (nghttp2_hd_deflate_new(&d, 4096))
		abort();
	return d;
}

static void client_start(struct buf *o)
{
	static const uint32_t s[] = {2, 0, 4, 6291456, 3, 100};

	put_str(o, HTTP2_PREFACE);
	settings(o, s, 3);
	u32_frame(o, 8, 0, 15663105); /* WINDOW_UPDATE */
}

static void server_start(struct buf *o)
{
	static const uint32_t s[] = {3, 128, 4, 65536};

	settings(o, s, 2);
	frame(o, 4, F_ACK, 0, NULL, 0);
}

#define REQ(path, ...)                                                                             \
	((const char *const[]){":method", "POST", ":scheme", "https", ":authority",                \
			       "api.openai.com", ":path", path, "content-type",                    \
			       "application/json", "authorization", "Bearer sk-secret",            \
			       __VA_ARGS__ NULL})

/* ---- the sink: a trace ---------------------------------------------------------------------- */

#define MAX_EX 512

struct rec {
	int id;
	uint64_t hash[2];
	size_t len[2];
	uint64_t lost[2];
	bool used;
};

static struct rec recs[MAX_EX];
static int n_recs;
static char trace[1 << 20];
static size_t trace_len;
static bool refuse_paths_with_x; /* on_request returns NULL for paths with an 'x' */

static void tr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (trace_len < sizeof(trace))
		trace_len +=
		    (size_t)vsnprintf(trace + trace_len, sizeof(trace) - trace_len, fmt, ap);
	va_end(ap);
}

static void tr_head(const struct http_head *h)
{
	for (size_t i = 0; i < h->num_headers; i++)
		tr(" %.*s=%.*s", (int)h->headers[i].name_len, h->headers[i].name,
		   (int)h->headers[i].value_len, h->headers[i].value);
	if (h->headers_truncated)
		tr(" (truncated)");
}

static void *on_request(void *ctx, const struct http_head *h, uint64_t ts)
{
	struct rec *r;

	if (refuse_paths_with_x && memchr(h->path, 'x', h->path_len))
		return NULL;
	if (n_recs == MAX_EX)
		abort();
	r = &recs[n_recs];
	*r = (struct rec){
	    .id = n_recs, .hash = {1469598103934665603ull, 1469598103934665603ull}, .used = true};
	n_recs++;
	tr("req#%d %.*s %.*s", r->id, (int)h->method_len, h->method, (int)h->path_len, h->path);
	tr_head(h);
	tr(" @%" PRIu64 "\n", ts);
	return r;
}

static void on_response(void *ex, const struct http_head *h, uint64_t ts)
{
	struct rec *r = ex;

	tr("resp#%d %d", r->id, h->status);
	tr_head(h);
	tr(" @%" PRIu64 "\n", ts);
}

static void on_body(void *ex, bool resp, const uint8_t *d, size_t n, uint64_t ts)
{
	struct rec *r = ex;

	for (size_t i = 0; i < n; i++)
		r->hash[resp] = (r->hash[resp] ^ d[i]) * 1099511628211ull;
	r->len[resp] += n;
}

static void on_end(void *ex, bool resp, uint64_t ts)
{
	struct rec *r = ex;

	tr("end#%d %s len=%zu hash=%016" PRIx64 " @%" PRIu64 "\n", r->id, resp ? "resp" : "req",
	   r->len[resp], r->hash[resp], ts);
	if (resp)
		r->used = false;
}

static void on_loss(void *ex, bool resp, uint64_t n)
{
	struct rec *r = ex;

	r->lost[resp] += n;
	tr("loss#%d %s %" PRIu64 "\n", r->id, resp ? "resp" : "req", n);
}

static void on_abort(void *ex, enum http_abort_reason why, uint64_t ts)
{
	struct rec *r = ex;

	tr("abort#%d %d @%" PRIu64 "\n", r->id, (int)why, ts);
	r->used = false;
}

static void on_stream_error(void *ex, bool by_peer, uint32_t code)
{
	struct rec *r = ex;

	tr("err#%d %s %s\n", r->id, by_peer ? "server" : "client", http2__error_name(code));
}

static const struct http_sink sink = {NULL,   on_request, on_response, on_body,
				      on_end, on_loss,	  on_abort,    on_stream_error};

static void reset_trace(void)
{
	trace_len = 0;
	trace[0] = '\0';
	n_recs = 0;
	refuse_paths_with_x = false;
}

static struct http2 *new_parser(void)
{
	reset_trace();
	return http2__new(HTTP1_ROLE_CLIENT, &sink);
}

/* No exchange may be left open once the parser is closed and freed. */
static void check_all_ended(void)
{
	for (int i = 0; i < n_recs; i++)
		if (recs[i].used) {
			fprintf(stderr, "  exchange #%d never ended\n", i);
			CHECK(!recs[i].used);
		}
}

/* ---- feeding ----------------------------------------------------------------------------------
 */

/* A connection as the capture delivers it: SSL calls, each one direction's bytes at a time. */
struct call {
	int dir;
	size_t off, len;
	uint64_t ts;
};

struct conn_script {
	struct buf bytes[2];
	struct call calls[256];
	int n_calls;
	uint64_t now;
};

static void call_add(struct conn_script *c, int dir, struct buf *src)
{
	size_t off = c->bytes[dir].len;

	put(&c->bytes[dir], src->b, src->len);
	c->calls[c->n_calls++] = (struct call){dir, off, src->len, c->now += 1000};
	src->len = 0;
}

static void script_free(struct conn_script *c)
{
	free(c->bytes[0].b);
	free(c->bytes[1].b);
}

/* Feeds every call, call `split` cut at `at` (and the rest of that call in `piece`-byte
 * pieces when piece > 0). Returns the first nonzero return of http2__feed. */
static int play(struct http2 *p, const struct conn_script *c, int split, size_t at, size_t piece)
{
	int rc = 0;

	for (int i = 0; i < c->n_calls; i++) {
		const struct call *k = &c->calls[i];
		const uint8_t *b = c->bytes[k->dir].b + k->off;
		size_t off = 0;

		while (off < k->len) {
			size_t n = k->len - off;

			if (piece)
				n = n < piece ? n : piece;
			else if (i == split && off < at)
				n = at - off;
			int r = http2__feed(p, k->dir, b + off, n, k->ts, k->ts + 500);
			if (r && !rc)
				rc = r;
			off += n;
		}
	}
	return rc;
}

/* The trace of the whole script, then the same under every split of every call and in 1-byte
 * pieces: all must be equal. Returns the reference trace (malloc'd). */
static char *check_every_split(const struct conn_script *c, const char *want_contains)
{
	struct http2 *p = new_parser();
	char *ref;
	int bad = 0;

	play(p, c, -1, 0, 0);
	http2__close(p, 999999999);
	http2__free(p);
	check_all_ended();
	ref = strdup(trace);
	if (want_contains && !strstr(ref, want_contains)) {
		fprintf(stderr, "  trace lacks \"%s\":\n%s", want_contains, ref);
		CHECK(strstr(ref, want_contains) != NULL);
	}
	for (int i = 0; i < c->n_calls && bad < 3; i++) {
		for (size_t at = 1; at < c->calls[i].len && bad < 3; at++) {
			p = new_parser();
			play(p, c, i, at, 0);
			http2__close(p, 999999999);
			http2__free(p);
			if (strcmp(trace, ref)) {
				fprintf(stderr, "  call %d split at %zu:\n%s\n--- vs whole:\n%s", i,
					at, trace, ref);
				bad++;
			}
		}
	}
	p = new_parser();
	play(p, c, -1, 0, 1);
	http2__close(p, 999999999);
	http2__free(p);
	if (strcmp(trace, ref)) {
		fprintf(stderr, "  1-byte pieces:\n%s\n--- vs whole:\n%s", trace, ref);
		bad++;
	}
	CHECK_EQ_INT(bad, 0);
	return ref;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static const char BODY[] =
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
static const char ANSWER[] = "{\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o-2024\",\"usage\":"
			     "{\"prompt_tokens\":5,\"completion_tokens\":7}}";

static uint64_t fnv(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
	return h;
}

static char *expect_end(int id, bool resp, const char *body)
{
	static char s[8][128];
	static int k;
	char *o = s[k++ % 8];

	snprintf(o, 128, "end#%d %s len=%zu hash=%016" PRIx64, id, resp ? "resp" : "req",
		 strlen(body), fnv(body, strlen(body)));
	return o;
}

TEST(one_exchange_every_split)
{
	struct conn_script c = {0};
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct buf o = {0};
	char *ref;

	client_start(&o);
	call_add(&c, 0, &o);
	server_start(&o);
	call_add(&c, 1, &o);
	headers(&o, cd, 1, false, REQ("/v1/chat/completions?x=1", "user-agent", "t/1", ));
	data(&o, 1, BODY, true);
	call_add(&c, 0, &o);
	headers(&o, sd, 1, false,
		(const char *const[]){":status", "200", "content-type", "application/json", NULL});
	data(&o, 1, ANSWER, false);
	call_add(&c, 1, &o);
	data(&o, 1, "", true); /* END_STREAM on an empty DATA frame, alone in its SSL call */
	call_add(&c, 1, &o);
	ref = check_every_split(&c, NULL);
	CHECK(strstr(ref, "req#0 POST /v1/chat/completions?x=1 host=api.openai.com "
			  "content-type=application/json authorization=Bearer sk-secret "
			  "user-agent=t/1 @3000\n") != NULL);
	CHECK(strstr(ref, expect_end(0, false, BODY)) != NULL);
	CHECK(strstr(ref, "resp#0 200 content-type=application/json @4500\n") != NULL);
	CHECK(strstr(ref, expect_end(0, true, ANSWER)) != NULL);
	CHECK(strstr(ref, " @5500\n") != NULL); /* the response ends with the empty frame's call */
	CHECK(!strstr(ref, "abort"));
	free(ref);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
	script_free(&c);
}

TEST(continuation_padding_priority_every_split)
{
	struct conn_script c = {0};
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct buf o = {0};
	char big[3000], *ref;

	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	client_start(&o);
	/* Block cut into 7-byte fragments: HEADERS + many CONTINUATION, padded, with priority. */
	headers_ex(&o, cd, 1, false, REQ("/v1/messages", "x-long", big, ), 7, 5, true);
	data_ex(&o, 1, BODY, 10, false, 3);
	data_ex(&o, 1, BODY + 10, strlen(BODY) - 10, true, 0);
	call_add(&c, 0, &o);
	server_start(&o);
	headers_ex(
	    &o, sd, 1, false,
	    (const char *const[]){":status", "200", "content-type", "text/event-stream", NULL}, 3,
	    200, false);
	data_ex(&o, 1, "data: {}\n\n", 10, false, 255);
	data_ex(&o, 1, "data: [DONE]\n\n", 14, true, 0);
	call_add(&c, 1, &o);
	ref = check_every_split(&c, "resp#0 200 content-type=text/event-stream");
	CHECK(strstr(ref, "req#0 POST /v1/messages host=api.openai.com") != NULL);
	CHECK(strstr(ref, "x-long=vvvvvvvv") != NULL);
	CHECK(strstr(ref, expect_end(0, false, BODY)) != NULL);
	CHECK(strstr(ref, expect_end(0, true, "data: {}\n\ndata: [DONE]\n\n")) != NULL);
	free(ref);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
	script_free(&c);
}

/* 40 streams open at once, their DATA frames interleaved in both directions. */
TEST(concurrent_streams_interleaved)
{
	struct conn_script c = {0};
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct buf o = {0};
	char path[64], body[64], *ref;
	enum { N = 40 };

	client_start(&o);
	call_add(&c, 0, &o);
	server_start(&o);
	call_add(&c, 1, &o);
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "/v1/chat/completions/%d", i);
		headers(&o, cd, 1 + 2 * (uint32_t)i, false, REQ(path, ));
	}
	for (int i = 0; i < N; i++)
		data(&o, 1 + 2 * (uint32_t)(N - 1 - i), "{\"a\":", false);
	call_add(&c, 0, &o);
	for (int i = 0; i < N; i++) {
		snprintf(body, sizeof(body), "%d}", i);
		data(&o, 1 + 2 * (uint32_t)i, body, true);
	}
	call_add(&c, 0, &o);
	for (int i = N; i-- > 0;)
		headers(&o, sd, 1 + 2 * (uint32_t)i, false,
			(const char *const[]){":status", i == 7 ? "429" : "200", NULL});
	call_add(&c, 1, &o);
	for (int part = 0; part < 3; part++) {
		for (int i = 0; i < N; i++) {
			snprintf(body, sizeof(body), "s%d-p%d;", i, part);
			data(&o, 1 + 2 * (uint32_t)i, body, part == 2);
		}
		call_add(&c, 1, &o);
	}
	ref = check_every_split(&c, NULL);
	for (int i = 0; i < N; i++) {
		char want[128], rb[64];

		snprintf(want, sizeof(want), "req#%d POST /v1/chat/completions/%d ", i, i);
		CHECK(strstr(ref, want) != NULL);
		snprintf(rb, sizeof(rb), "{\"a\":%d}", i);
		CHECK(strstr(ref, expect_end(i, false, rb)) != NULL);
		snprintf(rb, sizeof(rb), "s%d-p0;s%d-p1;s%d-p2;", i, i, i);
		CHECK(strstr(ref, expect_end(i, true, rb)) != NULL);
	}
	CHECK(strstr(ref, "resp#7 429") != NULL);
	CHECK(!strstr(ref, "abort"));
	free(ref);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
	script_free(&c);
}

/* Builds the usual start and one request on each of `n` streams (1, 3, 5, ...). */
static struct http2 *started(nghttp2_hd_deflater *cd, int n)
{
	struct http2 *p = new_parser();
	struct buf o = {0};

	client_start(&o);
	for (int i = 0; i < n; i++) {
		headers(&o, cd, 1 + 2 * (uint32_t)i, false, REQ("/v1/chat/completions", ));
		data(&o, 1 + 2 * (uint32_t)i, BODY, true);
	}
	CHECK_EQ_INT(http2__feed(p, 0, o.b, o.len, 100, 200), 0);
	o.len = 0;
	server_start(&o);
	CHECK_EQ_INT(http2__feed(p, 1, o.b, o.len, 300, 400), 0);
	free(o.b);
	return p;
}

static void feed_buf(struct http2 *p, int dir, struct buf *o, uint64_t ts)
{
	CHECK_EQ_INT(http2__feed(p, dir, o->b, o->len, ts, ts + 1), 0);
	o->len = 0;
}

TEST(rst_stream_goaway_close_abort)
{
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct http2 *p = started(cd, 5);
	struct buf o = {0};
	const struct http2_stats *st = http2__stats(p);

	CHECK(http2__busy(p));
	u32_frame(&o, 3, 3, 8); /* RST_STREAM(CANCEL) of stream 3 by the client */
	feed_buf(p, 0, &o, 1000);
	CHECK(strstr(trace, "err#1 client CANCEL\nabort#1 6 @1001") != NULL);
	u32_frame(&o, 3, 3, 0); /* again: unknown stream by now, ignored */
	feed_buf(p, 0, &o, 1100);
	CHECK_EQ_INT(st->resets, 1);
	headers(&o, sd, 1, false, (const char *const[]){":status", "200", NULL});
	/* GOAWAY(last stream 5): streams 7 and 9 were never processed. */
	frame(&o, 7, 0, 0,
	      "\x00\x00\x00\x05\x00\x00\x00\x00"
	      "debug",
	      13);
	feed_buf(p, 1, &o, 2000);
	CHECK(strstr(trace, "err#3 server NO_ERROR\nabort#3 7 @2001") != NULL);
	CHECK(strstr(trace, "err#4 server NO_ERROR\nabort#4 7 @2001") != NULL);
	CHECK(!strstr(trace, "abort#0") && !strstr(trace, "abort#2"));
	CHECK_EQ_INT(st->goaways, 1);
	data(&o, 1, ANSWER, true);
	feed_buf(p, 1, &o, 3000);
	CHECK(strstr(trace, expect_end(0, true, ANSWER)) != NULL);
	CHECK(http2__busy(p)); /* stream 5 waits */
	http2__close(p, 5000);
	CHECK(strstr(trace, "abort#2 1 @5000") != NULL);
	CHECK(!http2__busy(p));
	CHECK_EQ_INT(st->aborted, 4);
	check_all_ended();
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

/*
 * RST_STREAM from the server mid-response, from the client mid-request, and a GOAWAY that ends
 * the streams above its last id while the one below it completes, every split: each reset
 * stream ends once, with its sender and code, and nothing else is disturbed.
 */
TEST(resets_and_goaway_every_split)
{
	struct conn_script c = {0};
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct buf o = {0};
	char *ref;

	client_start(&o);
	for (uint32_t sid = 1; sid <= 9; sid += 2)
		headers(&o, cd, sid, false, REQ("/v1/chat/completions", ));
	data(&o, 1, BODY, true);
	data(&o, 3, BODY, true);
	data(&o, 5, "{\"model\":", false);
	call_add(&c, 0, &o);
	server_start(&o);
	headers(&o, sd, 1, false, (const char *const[]){":status", "200", NULL});
	data(&o, 1, "data: {}\n\n", false);
	headers(&o, sd, 3, false, (const char *const[]){":status", "200", NULL});
	call_add(&c, 1, &o);
	u32_frame(&o, 3, 5, 8); /* the client gives up on stream 5: CANCEL */
	call_add(&c, 0, &o);
	u32_frame(&o, 3, 1, 2); /* the server resets stream 1 mid-stream: INTERNAL_ERROR */
	frame(&o, 7, 0, 0, "\x00\x00\x00\x03\x00\x00\x00\x0b", 8); /* GOAWAY(3, CALM) */
	data(&o, 3, ANSWER, true);
	call_add(&c, 1, &o);
	ref = check_every_split(&c, NULL);
	CHECK(strstr(ref, "err#2 client CANCEL\nabort#2 6 @") != NULL);
	CHECK(strstr(ref, "err#0 server INTERNAL_ERROR\nabort#0 6 @") != NULL);
	CHECK(strstr(ref, "err#3 server ENHANCE_YOUR_CALM\nabort#3 7 @") != NULL);
	CHECK(strstr(ref, "err#4 server ENHANCE_YOUR_CALM\nabort#4 7 @") != NULL);
	CHECK(strstr(ref, expect_end(1, true, ANSWER)) != NULL); /* below last_stream_id */
	CHECK(!strstr(ref, "abort#1"));
	CHECK(!strstr(ref, "err#1"));
	free(ref);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
	script_free(&c);
}

/* A RST_STREAM cut by loss: the stream still ends as reset, with no code to report. */
TEST(rst_stream_after_loss_has_no_code)
{
	nghttp2_hd_deflater *cd = deflater();
	struct http2 *p = started(cd, 1);
	struct buf o = {0};

	u32_frame(&o, 3, 1, 8);
	CHECK_EQ_INT(http2__feed(p, 1, o.b, 11, 1000, 1001), 0);
	http2__gap(p, 1, 2); /* the code's last two bytes are lost */
	CHECK(strstr(trace, "abort#0 6 @1001") != NULL);
	CHECK(!strstr(trace, "err#0"));
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
}

/* A gap inside a DATA payload: the stream gets the exact loss, HPACK is untouched. */
TEST(gap_inside_data_is_survived)
{
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct http2 *p = started(cd, 2);
	struct buf o = {0};
	const struct http2_stats *st = http2__stats(p);

	headers(&o, sd, 1, false, (const char *const[]){":status", "200", NULL});
	frame_head(&o, 100, 0, F_END_STREAM, 1);
	put(&o, "0123456789", 10);
	feed_buf(p, 1, &o, 1000);
	http2__gap(p, 1, 80); /* 80 of the 90 missing bytes */
	put(&o, "abcdefghij", 10);
	headers(&o, sd, 3, false, (const char *const[]){":status", "200", NULL});
	data(&o, 3, "ok", true);
	feed_buf(p, 1, &o, 2000);
	CHECK(strstr(trace, "loss#0 resp 80\n") != NULL);
	CHECK(strstr(trace, "end#0 resp len=20") != NULL);
	CHECK(strstr(trace, "resp#1 200 @2001") != NULL);
	CHECK(strstr(trace, expect_end(1, true, "ok")) != NULL);
	CHECK_EQ_INT(st->gaps_survived, 1);
	CHECK_EQ_INT(st->gaps, 0);
	CHECK_EQ_INT(st->hpack_resets, 0);
	http2__close(p, 3000);
	check_all_ended();
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

/* A gap that swallows a response header block: the server's decoder restarts empty, the next
 * block that refers to the lost entries fails (counted, never a wrong value), the DATA of a
 * known stream is still reported, and the affected calls are marked. */
TEST(gap_across_frames_breaks_hpack_not_data)
{
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct http2 *p = started(cd, 3);
	struct buf o = {0};
	const struct http2_stats *st = http2__stats(p);
	const char *const resp_hdr[] = {
	    ":status",	     "200", "content-type", "application/json", "x-request-id",
	    "abcdef-123456", NULL};

	headers(&o, sd, 1, false, resp_hdr);
	data(&o, 1, ANSWER, true);
	feed_buf(p, 1, &o, 1000);
	CHECK(strstr(trace, "resp#0 200 content-type=application/json x-request-id=abcdef") !=
	      NULL);
	/* Lost: the whole response of stream 3 (its block refers to stream 1's entries). */
	headers(&o, sd, 3, false, resp_hdr);
	data(&o, 3, ANSWER, true);
	http2__gap(p, 1, o.len);
	o.len = 0;
	CHECK(strstr(trace, "loss#1 resp ") != NULL);
	CHECK(strstr(trace, "loss#2 resp ") != NULL);
	/* Stream 5's answer: indexed fields only, from the lost table state. */
	headers(&o, sd, 5, false, resp_hdr);
	data(&o, 5, ANSWER, true);
	feed_buf(p, 1, &o, 2000);
	CHECK_EQ_INT(st->gaps, 1);
	CHECK_EQ_INT(st->resyncs, 1);
	CHECK_EQ_INT(st->hpack_resets, 1);
	CHECK_EQ_INT(st->hpack_failures, 1);
	CHECK(strstr(trace, "resp#2 0 @2001") != NULL); /* status unknown, no fields */
	CHECK(strstr(trace, expect_end(2, true, ANSWER)) != NULL);
	CHECK(!strstr(trace, "resp#2 200"));
	http2__close(p, 3000);
	CHECK(strstr(trace, "abort#1 3 @3000") != NULL); /* never finished: capture_gap */
	check_all_ended();
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

/* The client's decoder after a gap: requests that refer to lost entries are counted, never
 * reported with wrong fields; a block of literals decodes, and one indexing those entries
 * decodes correctly too (the restarted table holds the sender's newest entries). */
TEST(gap_in_requests_never_decodes_wrong)
{
	nghttp2_hd_deflater *cd = deflater();
	struct http2 *p = started(cd, 1);
	struct buf o = {0};
	const struct http2_stats *st = http2__stats(p);

	headers(&o, cd, 3, true, REQ("/lost", "x-a", "1", ));
	http2__gap(p, 0, o.len);
	o.len = 0;
	headers(&o, cd, 5, true, REQ("/lost", "x-a", "1", )); /* all indexed: undecodable */
	feed_buf(p, 0, &o, 1000);
	CHECK_EQ_INT(st->hpack_failures, 1);
	CHECK_EQ_INT(st->lost_requests, 1);
	CHECK(!strstr(trace, "/lost"));
	/* Literals only (a new encoder's first block, as after a table size update to 0). */
	nghttp2_hd_deflater *fresh = deflater();
	headers(&o, fresh, 7, true,
		(const char *const[]){":method", "POST", ":path", "/new", ":authority", "h2.test",
				      "x-b", "2", NULL});
	headers(&o, fresh, 9, true,
		(const char *const[]){":method", "POST", ":path", "/new", ":authority", "h2.test",
				      "x-b", "2", NULL});
	feed_buf(p, 0, &o, 2000);
	CHECK(strstr(trace, "req#1 POST /new host=h2.test x-b=2 @2000") != NULL);
	CHECK(strstr(trace, "req#2 POST /new host=h2.test x-b=2 @2000") != NULL);
	CHECK_EQ_INT(st->hpack_failures, 1);
	http2__close(p, 3000);
	check_all_ended();
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(fresh);
}

TEST(garbage_is_a_sticky_error)
{
	nghttp2_hd_deflater *cd = deflater();
	struct http2 *p = new_parser();
	struct buf o = {0};

	CHECK_EQ_INT(
	    http2__feed(p, 0, (const uint8_t *)"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 24, 1, 2),
	    -EPROTO);
	CHECK_EQ_INT(http2__feed(p, 0, (const uint8_t *)HTTP2_PREFACE, 24, 3, 4), -EPROTO);
	CHECK_EQ_INT(http2__stats(p)->parse_errors, 1);
	http2__free(p);

	/* A frame over the advertised size, CONTINUATION out of place, a bad HPACK block: each
	 * stops the connection and aborts what was open. */
	for (int k = 0; k < 3; k++) {
		p = started(cd, 1);
		if (k == 0) {
			frame_head(&o, 16385, 0, 0, 1);
		} else if (k == 1) {
			frame(&o, 9, F_END_HEADERS, 1, "\x82", 1);
		} else {
			frame(&o, 1, F_END_HEADERS, 3, "\xff\xff\xff\xff\x0f", 5);
		}
		CHECK_EQ_INT(http2__feed(p, 1 - (k == 2), o.b, o.len, 10, 20), -EPROTO);
		o.len = 0;
		CHECK(strstr(trace, "abort#0 2 @20") != NULL);
		CHECK_EQ_INT(http2__stats(p)->parse_errors, 1);
		check_all_ended();
		http2__free(p);
		nghttp2_hd_deflate_del(cd);
		cd = deflater();
	}
	free(o.b);
	nghttp2_hd_deflate_del(cd);
}

TEST(max_frame_size_from_settings)
{
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct http2 *p = started(cd, 1);
	struct buf o = {0};
	static char big[20001];
	static const uint32_t s[] = {5, 32768};

	memset(big, 'z', 20000);
	settings(&o, s, 1); /* the client accepts 32 KiB frames */
	feed_buf(p, 0, &o, 1000);
	headers(&o, sd, 1, false, (const char *const[]){":status", "200", NULL});
	data(&o, 1, big, true);
	feed_buf(p, 1, &o, 2000);
	CHECK(strstr(trace, "end#0 resp len=20000") != NULL);
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

/* 1xx, trailers, a response before the request's end, PUSH_PROMISE (decoded, ignored, and
 * needed: later blocks refer to what it added to the table). */
TEST(interim_trailers_early_response_push)
{
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct http2 *p = new_parser();
	struct buf o = {0};
	uint8_t pp[256];
	size_t n;

	client_start(&o);
	headers(&o, cd, 1, false, REQ("/a", ));
	data(&o, 1, "{\"x\":", false); /* the request is not over */
	headers(&o, cd, 3, true, REQ("/b", ));
	feed_buf(p, 0, &o, 100);
	server_start(&o);
	headers(&o, sd, 1, false, (const char *const[]){":status", "103", "link", "</s>", NULL});
	/* PUSH_PROMISE on stream 1 promising stream 2, padded. */
	n = hpack(sd, pp + 5, sizeof(pp) - 5,
		  (const char *const[]){":method", "GET", ":path", "/pushed", ":authority",
					"push.example", "x-pushed-header", "pushed-value", NULL});
	pp[0] = 2; /* pad length */
	memcpy(pp + 1, "\x00\x00\x00\x02", 4);
	pp[5 + n] = pp[6 + n] = 0;
	frame(&o, 5, F_END_HEADERS | F_PADDED, 1, pp, 5 + n + 2);
	headers(&o, sd, 2, false, (const char *const[]){":status", "200", NULL});
	data(&o, 2, "pushed body", true);
	headers(&o, sd, 1, false,
		(const char *const[]){":status", "413", "x-pushed-header", "pushed-value", NULL});
	data(&o, 1, "too big", false);
	headers(&o, sd, 1, true, (const char *const[]){"grpc-status", "0", NULL}); /* trailers */
	headers(&o, sd, 3, true, (const char *const[]){":status", "204", NULL});
	feed_buf(p, 1, &o, 200);
	CHECK(!strstr(trace, "resp#0 103"));
	CHECK(strstr(trace, "end#0 req len=5") != NULL);
	CHECK(strstr(trace, "end#0 req len=5 hash=") < strstr(trace, "resp#0 413"));
	CHECK(strstr(trace, "resp#0 413 x-pushed-header=pushed-value @201") != NULL);
	CHECK(strstr(trace, expect_end(0, true, "too big")) != NULL);
	CHECK(strstr(trace, "resp#1 204 @201\nend#1 resp len=0") != NULL);
	CHECK(!strstr(trace, "pushed body") && !strstr(trace, "/pushed"));
	CHECK_EQ_INT(n_recs, 2);
	/* The client's later data on stream 1 is ignored: the exchange is over. */
	data(&o, 1, "1}", true);
	feed_buf(p, 0, &o, 300);
	CHECK(!http2__busy(p));
	check_all_ended();
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

/* The client lets the server's table grow to 64 KiB: the inflater must follow. */
TEST(header_table_size_setting)
{
	nghttp2_hd_deflater *cd = deflater(), *sd;
	struct http2 *p = new_parser();
	struct buf o = {0};
	static const uint32_t s[] = {1, 65536};
	char v[2000];

	if (nghttp2_hd_deflate_new(&sd, 65536))
		abort();
	memset(v, 'q', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	put_str(&o, HTTP2_PREFACE);
	settings(&o, s, 1);
	for (int i = 0; i < 6; i++)
		headers(&o, cd, 1 + 2 * (uint32_t)i, true, REQ("/t", ));
	feed_buf(p, 0, &o, 100);
	/* Encoder: announce the larger table, then fill it beyond 4 KiB. */
	nghttp2_hd_deflate_change_table_size(sd, 65536);
	for (int i = 0; i < 6; i++) {
		v[0] = (char)('a' + i);
		headers(&o, sd, 1 + 2 * (uint32_t)i, false,
			(const char *const[]){":status", "200", "x-big", v, NULL});
		data(&o, 1 + 2 * (uint32_t)i, "{}", true);
	}
	/* Index the first big entry: present only in a table larger than 4 KiB. */
	v[0] = 'a';
	headers(&o, sd, 11, false, (const char *const[]){":status", "200", "x-big", v, NULL});
	feed_buf(p, 1, &o, 200);
	CHECK_EQ_INT(http2__stats(p)->parse_errors, 0);
	CHECK(strstr(trace, "end#5 resp len=2") != NULL);
	http2__close(p, 300);
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

TEST(too_many_headers_and_streams)
{
	nghttp2_hd_deflater *cd = deflater();
	struct http2 *p = new_parser();
	struct buf o = {0};
	const char *nv[2 * 110 + 12];
	static char names[100][16], val[1100];
	int k = 0;

	memset(val, 'w', sizeof(val) - 1);
	nv[k++] = ":method", nv[k++] = "POST", nv[k++] = ":path", nv[k++] = "/many";
	nv[k++] = ":authority", nv[k++] = "h";
	for (int i = 0; i < 100; i++) {
		snprintf(names[i], sizeof(names[i]), "x-h%d", i);
		nv[k++] = names[i];
		nv[k++] = val; /* 100 x 1 KiB: past HTTP2_MAX_HEADER_LIST */
	}
	nv[k] = NULL;
	client_start(&o);
	headers_ex(&o, cd, 1, true, nv, 16384, -1, false);
	/* The decoder stayed in step: the next block refers to entries of that one. */
	headers(&o, cd, 3, true, REQ("/after", ));
	feed_buf(p, 0, &o, 100);
	CHECK(strstr(trace, "req#0 POST /many host=h x-h0=") != NULL);
	CHECK(strstr(trace, "(truncated)") != NULL);
	CHECK(strstr(trace, "req#1 POST /after host=api.openai.com") != NULL);
	CHECK_EQ_INT(http2__stats(p)->overflow, 1);
	for (uint32_t i = 2; i < 300; i++)
		headers(&o, cd, 1 + 2 * i, false, REQ("/v1/chat/completions", ));
	feed_buf(p, 0, &o, 200);
	CHECK_EQ_INT(http2__stats(p)->refused, 300 - HTTP2_MAX_STREAMS);
	CHECK_EQ_INT(n_recs, HTTP2_MAX_STREAMS);
	http2__expire(p, 200 + 5000, 1000);
	CHECK(strstr(trace, "abort#255 4 @5200") != NULL);
	CHECK(!http2__busy(p));
	check_all_ended();
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
}

/* Capture began mid-connection: frames are recognised, the inflaters start empty; a stream
 * that began earlier is ignored, a new one whose blocks are literal is reported. */
TEST(midstream_start)
{
	nghttp2_hd_deflater *old = deflater(), *cd = deflater(), *sd = deflater();
	struct buf o = {0}, junk = {0};
	struct http2 *p;

	headers(&o, old, 1, false, REQ("/before", )); /* seen by nobody */
	o.len = 0;
	data(&o, 1, "tail of an older request", true);
	headers(&o, cd, 3, true, REQ("/v1/chat/completions", ));
	CHECK(http2__looks_like_frames(o.b, o.len));
	CHECK(!http2__looks_like_frames(o.b, 12)); /* DATA alone: not yet a request */
	CHECK(!http2__looks_like_frames(o.b, 8));
	/* A server writes frames too, SETTINGS first, then responses: none of that is a client. */
	server_start(&junk);
	CHECK(!http2__looks_like_frames(junk.b, junk.len));
	junk.len = 0;
	headers(&junk, sd, 41, false, (const char *const[]){":status", "429", NULL});
	headers(&junk, sd, 43, false, (const char *const[]){":status", "200", NULL});
	CHECK(!http2__looks_like_frames(junk.b, junk.len));
	junk.len = 0;
	/* A request block after a dynamic table size update (0x3f 0xe1 0x1f: 4096). */
	frame(&junk, 1, F_END_HEADERS, 45, "\x3f\xe1\x1f\x83\x84", 5);
	CHECK(http2__looks_like_frames(junk.b, junk.len));
	junk.len = 0;
	put_str(&junk, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(!http2__looks_like_frames(junk.b, junk.len));
	junk.len = 0;
	frame(&junk, 9, F_END_HEADERS, 1, "\x82", 1); /* CONTINUATION cannot come first */
	CHECK(!http2__looks_like_frames(junk.b, junk.len));

	p = new_parser();
	http2__gap(p, 0, 0);
	http2__gap(p, 1, 0);
	feed_buf(p, 0, &o, 100);
	headers(&o, sd, 1, false, (const char *const[]){":status", "200", NULL});
	data(&o, 1, "old", true);
	headers(&o, sd, 3, false, (const char *const[]){":status", "200", NULL});
	data(&o, 3, ANSWER, true);
	feed_buf(p, 1, &o, 200);
	CHECK(strstr(trace, "req#0 POST /v1/chat/completions") != NULL);
	CHECK(strstr(trace, "resp#0 200 @201") != NULL);
	CHECK(strstr(trace, expect_end(0, true, ANSWER)) != NULL);
	CHECK_EQ_INT(n_recs, 1);
	CHECK_EQ_INT(http2__stats(p)->hpack_resets, 2);
	check_all_ended();
	http2__free(p);
	free(o.b);
	free(junk.b);
	nghttp2_hd_deflate_del(old);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

/* After a gap, resync waits for an SSL call that starts with frames; a read that starts in
 * the middle of a frame is skipped whole. */
TEST(resync_waits_for_frames)
{
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct http2 *p = started(cd, 2);
	struct buf o = {0};

	http2__gap(p, 1, 500);
	put_str(&o, "some text in the middle of a DATA frame");
	feed_buf(p, 1, &o, 1000);
	CHECK_EQ_INT(http2__stats(p)->resyncs, 0);
	headers(&o, sd, 3, false, (const char *const[]){":status", "200", NULL}); /* static only */
	data(&o, 3, "{}", true);
	feed_buf(p, 1, &o, 2000);
	CHECK_EQ_INT(http2__stats(p)->resyncs, 1);
	CHECK(strstr(trace, "loss#0 resp 500\nloss#1 resp 500\n") != NULL);
	CHECK(strstr(trace, "resp#1 200 @2001") != NULL);
	CHECK(strstr(trace, "end#1 resp len=2") != NULL);
	http2__close(p, 3000);
	CHECK(strstr(trace, "abort#0 3 @3000") != NULL);
	check_all_ended();
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

TEST(refused_by_sink_costs_nothing)
{
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct http2 *p = new_parser();
	struct buf o = {0};

	refuse_paths_with_x = true;
	client_start(&o);
	headers(&o, cd, 1, true, REQ("/x", ));
	feed_buf(p, 0, &o, 100);
	CHECK(!http2__busy(p));
	headers(&o, sd, 1, false, (const char *const[]){":status", "200", NULL});
	data(&o, 1, "body", true);
	feed_buf(p, 1, &o, 200);
	CHECK_EQ_INT(trace_len, 0);
	CHECK_EQ_INT(http2__stats(p)->requests, 1);
	http2__free(p);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

/* ---- through conn/ and llm/: the HTTP/2 preface picks this parser ---------------------------- */

static struct llm_call calls[8];
static int n_calls;

static void on_call(void *ctx, const struct llm_call *c)
{
	if (n_calls < 8)
		calls[n_calls] = *c;
	n_calls++;
}

static void chunk(struct conn_table *t, uint64_t conn_id, int dir, uint64_t *seq, struct buf *o,
		  uint64_t ts)
{
	struct cap_chunk c = {
	    .key = {.pid = 42, .conn_id = conn_id},
	    .tid = 43,
	    .dir = dir,
	    .seq = seq[dir],
	    .call_start_ns = ts,
	    .call_end_ns = ts + 10,
	    .call_len = (uint32_t)o->len,
	    .len = (uint32_t)o->len,
	    .data = o->b,
	    .tls_source = 1,
	};
	seq[dir] += o->len;
	conn_table__on_chunk(t, &c);
	o->len = 0;
}

TEST(conn_table_parses_http2_calls)
{
	struct conn_opts opts = {0};
	struct conn_table *t = conn_table__new(&opts, on_call, NULL);
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct buf o = {0};
	uint64_t seq[2] = {0}, sseq[2] = {0};
	struct conn_stats st;
	static const char sse[] =
	    "data: {\"id\":\"chatcmpl-s\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"index\":0,"
	    "\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\n"
	    "data: {\"id\":\"chatcmpl-s\",\"model\":\"gpt-4o-2024\",\"choices\":[],\"usage\":"
	    "{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
	static const char sreq[] = "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[]}";

	n_calls = 0;
	client_start(&o);
	chunk(t, 1, 0, seq, &o, 1000);
	server_start(&o);
	chunk(t, 1, 1, seq, &o, 2000);
	headers(&o, cd, 1, false, REQ("/v1/chat/completions", ));
	data(&o, 1, BODY, true);
	headers(&o, cd, 3, false, REQ("/v1/chat/completions", ));
	data(&o, 3, sreq, true);
	chunk(t, 1, 0, seq, &o, 3000);
	headers(&o, sd, 3, false,
		(const char *const[]){":status", "200", "content-type", "text/event-stream", NULL});
	size_t first = (size_t)(strstr(sse, "\n\n") + 2 - sse); /* the first event, whole */
	data_ex(&o, 3, sse, first, false, -1);
	chunk(t, 1, 1, seq, &o, 4000);
	headers(&o, sd, 1, false,
		(const char *const[]){":status", "200", "content-type", "application/json", NULL});
	data(&o, 1, ANSWER, true);
	chunk(t, 1, 1, seq, &o, 5000);
	data(&o, 3, sse + first, true);
	chunk(t, 1, 1, seq, &o, 6000);
	CHECK_EQ_INT(n_calls, 2);
	CHECK_EQ_STR(calls[0].response_id, "chatcmpl-1");
	CHECK_EQ_STR(calls[0].provider_name, "openai");
	CHECK_EQ_STR(calls[0].server_address, "api.openai.com");
	CHECK_EQ_INT(calls[0].input_tokens, 5);
	CHECK_EQ_INT(calls[0].output_tokens, 7);
	CHECK_EQ_INT(calls[0].start_ns, 3000);
	CHECK_EQ_INT(calls[0].end_ns, 5010);
	CHECK_EQ_STR(calls[1].response_id, "chatcmpl-s");
	CHECK_EQ_INT(calls[1].stream, 1);
	CHECK_EQ_INT(calls[1].first_chunk_ns, 4010);
	CHECK_EQ_INT(calls[1].input_tokens, 3);
	CHECK_EQ_INT(calls[1].output_tokens, 1);
	CHECK_EQ_INT(calls[1].end_ns, 6010);

	/* The server end of an HTTP/2 connection reads the preface: set aside at once. */
	put_str(&o, HTTP2_PREFACE);
	chunk(t, 2, 1, sseq, &o, 7000);
	conn_table__stats(t, &st);
	CHECK_EQ_INT(st.server_side, 1);
	/* A server that writes its SETTINGS before it reads the preface (node:http2 does): the
	 * write is no client's, the preface read then sets the connection aside. */
	uint64_t s4[2] = {0};

	server_start(&o);
	chunk(t, 4, 0, s4, &o, 8000);
	put_str(&o, HTTP2_PREFACE);
	chunk(t, 4, 1, s4, &o, 8100);
	conn_table__stats(t, &st);
	CHECK_EQ_INT(st.server_side, 2);
	CHECK_EQ_INT(st.http2, 1);
	CHECK_EQ_INT(st.http2_midstream, 0);
	CHECK_EQ_INT(st.not_http, 0);
	CHECK_EQ_INT(st.parse_errors, 0);
	conn_table__free(t);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

/* A connection whose start was missed: recognised by its frames, a new stream is reported. */
TEST(conn_table_midstream_http2)
{
	struct conn_opts opts = {0};
	struct conn_table *t = conn_table__new(&opts, on_call, NULL);
	nghttp2_hd_deflater *cd = deflater(), *sd = deflater();
	struct buf o = {0};
	uint64_t seq[2] = {0, 0}; /* the kernel numbers from its first call */

	n_calls = 0;
	headers(&o, cd, 41, false, REQ("/v1/chat/completions", ));
	data(&o, 41, BODY, true);
	chunk(t, 3, 0, seq, &o, 1000);
	headers(&o, sd, 41, false, (const char *const[]){":status", "200", NULL});
	data(&o, 41, ANSWER, true);
	chunk(t, 3, 1, seq, &o, 2000);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].response_id, "chatcmpl-1");
	CHECK(!calls[0].partial);
	conn_table__free(t);
	free(o.b);
	nghttp2_hd_deflate_del(cd);
	nghttp2_hd_deflate_del(sd);
}

int main(void)
{
	RUN(one_exchange_every_split);
	RUN(continuation_padding_priority_every_split);
	RUN(concurrent_streams_interleaved);
	RUN(rst_stream_goaway_close_abort);
	RUN(resets_and_goaway_every_split);
	RUN(rst_stream_after_loss_has_no_code);
	RUN(gap_inside_data_is_survived);
	RUN(gap_across_frames_breaks_hpack_not_data);
	RUN(gap_in_requests_never_decodes_wrong);
	RUN(garbage_is_a_sticky_error);
	RUN(max_frame_size_from_settings);
	RUN(interim_trailers_early_response_push);
	RUN(header_table_size_setting);
	RUN(too_many_headers_and_streams);
	RUN(midstream_start);
	RUN(resync_waits_for_frames);
	RUN(refused_by_sink_costs_nothing);
	RUN(conn_table_parses_http2_calls);
	RUN(conn_table_midstream_http2);
	TT_DONE();
}
