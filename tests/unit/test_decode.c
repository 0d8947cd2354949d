// SPDX-License-Identifier: Apache-2.0
/*
 * proto/decode.c: every coding, its input split at every boundary and in 1-byte pieces; flushed
 * streams give each event as soon as its bytes are in; truncated, corrupt and oversized input
 * are counted errors; a decompression bomb stops at the cap.
 *
 * Compressed input is made here with zlib, libzstd and libbrotlienc. tokentap itself only
 * decodes, so the brotli encoder is loaded with dlopen instead of being linked into it.
 */
#include <brotli/encode.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "tt_test.h"
#include "llm/llm.h"
#include "proto/decode.h"

struct out {
	uint8_t *b;
	size_t len, cap;
	int calls;
};

static void sink(void *ctx, const uint8_t *d, size_t n)
{
	struct out *o = ctx;

	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		o->b = realloc(o->b, o->cap);
	}
	memcpy(o->b + o->len, d, n);
	o->len += n;
	o->calls++;
}

struct bytes {
	uint8_t *b;
	size_t len;
};

/* ---- encoders ------------------------------------------------------------------------------- */

/* gzip (wbits 31), zlib (15) or raw deflate (-15); a sync flush after each of `cuts` offsets. */
static struct bytes zlib_enc(const char *s, size_t n, int wbits, const size_t *cuts, int ncuts)
{
	struct bytes r = {malloc(n + 1024 + 16 * (size_t)ncuts), 0};
	z_stream z = {0};
	size_t at = 0;

	deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY);
	z.next_out = r.b;
	z.avail_out = (uInt)(n + 1024 + 16 * (size_t)ncuts);
	for (int i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;

		z.next_in = (Bytef *)s + at;
		z.avail_in = (uInt)(end - at);
		deflate(&z, i < ncuts ? Z_SYNC_FLUSH : Z_FINISH);
		at = end;
	}
	r.len = z.total_out;
	deflateEnd(&z);
	return r;
}

static struct bytes zstd_enc(const char *s, size_t n, const size_t *cuts, int ncuts, int wlog)
{
	size_t cap = ZSTD_compressBound(n) + 64 * (size_t)ncuts + 64;
	struct bytes r = {malloc(cap), 0};
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_outBuffer ob = {r.b, cap, 0};
	size_t at = 0;

	if (wlog)
		ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, wlog);
	for (int i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		ZSTD_inBuffer ib = {s + at, end - at, 0};
		size_t left;

		do
			left = ZSTD_compressStream2(c, &ob, &ib,
						    i < ncuts ? ZSTD_e_flush : ZSTD_e_end);
		while (left && !ZSTD_isError(left));
		at = end;
	}
	r.len = ob.pos;
	ZSTD_freeCCtx(c);
	return r;
}

static struct {
	void *h;
	BrotliEncoderState *(*create)(brotli_alloc_func, brotli_free_func, void *);
	BROTLI_BOOL (*stream)
	(BrotliEncoderState *, BrotliEncoderOperation, size_t *, const uint8_t **, size_t *,
	 uint8_t **, size_t *);
	BROTLI_BOOL (*more)(BrotliEncoderState *);
	BROTLI_BOOL (*set)(BrotliEncoderState *, BrotliEncoderParameter, uint32_t);
	void (*destroy)(BrotliEncoderState *);
} benc;

static bool brotli_load(void)
{
	if (benc.h)
		return true;
	benc.h = dlopen("libbrotlienc.so.1", RTLD_NOW);
	if (!benc.h)
		return false;
	benc.create = (typeof(benc.create))dlsym(benc.h, "BrotliEncoderCreateInstance");
	benc.stream = (typeof(benc.stream))dlsym(benc.h, "BrotliEncoderCompressStream");
	benc.more = (typeof(benc.more))dlsym(benc.h, "BrotliEncoderHasMoreOutput");
	benc.set = (typeof(benc.set))dlsym(benc.h, "BrotliEncoderSetParameter");
	benc.destroy = (typeof(benc.destroy))dlsym(benc.h, "BrotliEncoderDestroyInstance");
	return benc.create && benc.stream && benc.more && benc.set && benc.destroy;
}

/* Brotli with a flush after each cut; the output buffer is large enough for all of it. */
static struct bytes br_enc(const char *s, size_t n, const size_t *cuts, int ncuts)
{
	size_t cap = n + 1024 + 16 * (size_t)ncuts;
	struct bytes r = {malloc(cap), 0};
	BrotliEncoderState *e = benc.create(NULL, NULL, NULL);
	uint8_t *next_out = r.b;
	size_t avail_out = cap, at = 0;

	benc.set(e, BROTLI_PARAM_QUALITY, 5); /* 11, the default, is needlessly slow here */
	for (int i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n, avail_in = end - at;
		const uint8_t *next_in = (const uint8_t *)s + at;
		BrotliEncoderOperation op =
		    i < ncuts ? BROTLI_OPERATION_FLUSH : BROTLI_OPERATION_FINISH;

		do
			benc.stream(e, op, &avail_in, &next_in, &avail_out, &next_out, NULL);
		while (avail_in || benc.more(e));
		at = end;
	}
	r.len = cap - avail_out;
	benc.destroy(e);
	return r;
}

/* ---- helpers -------------------------------------------------------------------------------- */

/* Decodes `in` cut in two at `at` (or in `piece`-byte pieces); returns the finish code. */
static int run(const char *coding, const struct bytes *in, size_t at, size_t piece,
	       uint64_t max_out, struct out *o)
{
	struct decoder *d;
	int err = decoder__open(&d, coding, strlen(coding), max_out, sink, o);
	size_t off = 0;

	memset(o, 0, sizeof(*o));
	if (err || !d)
		return err ? err : -EINVAL;
	while (off < in->len && !err) {
		size_t n = piece ? piece : (off < at ? at - off : in->len - off);

		if (n > in->len - off)
			n = in->len - off;
		err = decoder__feed(d, in->b + off, n);
		off += n;
	}
	if (!err)
		err = decoder__finish(d);
	decoder__free(d);
	return err;
}

static bool same(const struct out *o, const char *want, size_t n)
{
	return o->len == n && !memcmp(o->b, want, n);
}

/* Whole, every split in two, 1-byte pieces: always the original text. */
static void check_all_splits(const char *coding, const struct bytes *in, const char *text, size_t n)
{
	struct out o;
	int bad = 0;

	CHECK_EQ_INT(run(coding, in, in->len, 0, 0, &o), 0);
	CHECK(same(&o, text, n));
	free(o.b);
	for (size_t at = 1; at < in->len; at++) {
		int rc = run(coding, in, at, 0, 0, &o);

		if (rc || !same(&o, text, n)) {
			if (bad++ < 3)
				fprintf(stderr, "  %s split at %zu: rc %d, %zu bytes\n", coding, at,
					rc, o.len);
		}
		free(o.b);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(run(coding, in, 0, 1, 0, &o), 0);
	CHECK(same(&o, text, n));
	free(o.b);
}

static char text[6000];
static size_t text_len, cuts[3];

static void make_text(void)
{
	size_t n = 0;

	for (int i = 0; n < sizeof(text) - 200; i++) {
		if (i < 3)
			cuts[i] = n;
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "data: {\"id\":\"chatcmpl-%d\",\"choices\":[{\"delta\":"
				      "{\"content\":\"word %d\"}}]}\n\n",
				      i, i * 7919 % 1000);
	}
	text_len = n;
	cuts[0] = (size_t)(strstr(text, "\n\n") + 2 - text); /* after the first event */
	cuts[1] = cuts[0] * 2;
	cuts[2] = cuts[0] * 5;
}

/* ---- tests ---------------------------------------------------------------------------------- */

TEST(parse_values)
{
	enum decode_coding c[DECODE_MAX_CODINGS];

	CHECK_EQ_INT(decode__parse("gzip", 4, c, 3), 1);
	CHECK_EQ_INT(c[0], DECODE_GZIP);
	CHECK_EQ_INT(decode__parse(" X-GZip ", 8, c, 3), 1);
	CHECK_EQ_INT(c[0], DECODE_GZIP);
	CHECK_EQ_INT(decode__parse("deflate, br,zstd", 16, c, 3), 3);
	CHECK_EQ_INT(c[0], DECODE_DEFLATE);
	CHECK_EQ_INT(c[1], DECODE_BR);
	CHECK_EQ_INT(c[2], DECODE_ZSTD);
	CHECK_EQ_INT(decode__parse("identity", 8, c, 3), 0);
	CHECK_EQ_INT(decode__parse("", 0, c, 3), 0);
	CHECK_EQ_INT(decode__parse("compress", 8, c, 3), -ENOTSUP);
	CHECK_EQ_INT(decode__parse("gzip, gzip, gzip, gzip", 22, c, 3), -ENOTSUP);
	CHECK_EQ_INT(decode__parse("gzipx", 5, c, 3), -ENOTSUP);

	struct decoder *d = (struct decoder *)1;
	uint64_t before = decode__stats()->unsupported;

	CHECK_EQ_INT(decoder__open(&d, "identity", 8, 0, sink, NULL), 0);
	CHECK(d == NULL);
	CHECK_EQ_INT(decoder__open(&d, "snappy", 6, 0, sink, NULL), -ENOTSUP);
	CHECK_EQ_INT(decode__stats()->unsupported, before + 1);
	CHECK_EQ_INT(decode__max_out(), 64ull << 20);
}

TEST(gzip_deflate_every_split)
{
	struct bytes gz = zlib_enc(text, text_len, 31, cuts, 3);
	struct bytes zl = zlib_enc(text, text_len, 15, NULL, 0);
	struct bytes raw = zlib_enc(text, text_len, -15, NULL, 0);

	check_all_splits("gzip", &gz, text, text_len);
	check_all_splits("deflate", &zl, text, text_len);
	check_all_splits("deflate", &raw, text, text_len); /* raw, as some servers send it */
	free(gz.b);
	free(zl.b);
	free(raw.b);
}

TEST(br_zstd_every_split)
{
	struct bytes zs = zstd_enc(text, text_len, cuts, 3, 0);

	check_all_splits("zstd", &zs, text, text_len);
	free(zs.b);
	CHECK(brotli_load());
	if (!benc.h)
		return;
	struct bytes br = br_enc(text, text_len, cuts, 3);

	check_all_splits("br", &br, text, text_len);
	free(br.b);
}

/* "gzip, br": gzip was applied first, so brotli is undone first. */
TEST(stacked_codings)
{
	struct bytes gz = zlib_enc(text, text_len, 31, NULL, 0);
	struct bytes zs;
	struct out o;

	CHECK(brotli_load());
	if (!benc.h)
		return;
	struct bytes both = br_enc((const char *)gz.b, gz.len, NULL, 0);

	CHECK_EQ_INT(run("gzip, br", &both, both.len, 0, 0, &o), 0);
	CHECK(same(&o, text, text_len));
	free(o.b);
	CHECK_EQ_INT(run("gzip, br", &both, 0, 1, 0, &o), 0);
	CHECK(same(&o, text, text_len));
	free(o.b);
	zs = zstd_enc((const char *)both.b, both.len, NULL, 0, 0);
	check_all_splits("gzip, br, zstd", &zs, text, text_len);
	free(zs.b);
	free(both.b);
	free(gz.b);
}

/* A flushed stream: the first event's bytes give exactly the first event. */
TEST(flushed_streams_give_events_at_once)
{
	const char *codings[] = {"gzip", "zstd", "br"};

	for (int k = 0; k < 3; k++) {
		struct bytes in;
		struct decoder *d;
		struct out o = {0};
		size_t first;

		if (k == 2 && !brotli_load()) {
			CHECK(!"libbrotlienc.so.1 not loadable");
			continue;
		}
		if (k == 0)
			in = zlib_enc(text, text_len, 31, cuts, 3);
		else if (k == 1)
			in = zstd_enc(text, text_len, cuts, 3, 0);
		else
			in = br_enc(text, text_len, cuts, 3);
		/* Find the shortest prefix of the input that decodes to the first event. */
		CHECK_EQ_INT(decoder__open(&d, codings[k], strlen(codings[k]), 0, sink, &o), 0);
		for (first = 0; first < in.len && o.len < cuts[0]; first++)
			CHECK_EQ_INT(decoder__feed(d, in.b + first, 1), 0);
		CHECK_EQ_INT(o.len, cuts[0]);
		CHECK(same(&o, text, cuts[0]));
		CHECK(first < in.len / 2);
		CHECK_EQ_INT(decoder__feed(d, in.b + first, in.len - first), 0);
		CHECK_EQ_INT(decoder__finish(d), 0);
		CHECK(same(&o, text, text_len));
		decoder__free(d);
		free(o.b);
		free(in.b);
	}
}

TEST(truncated_and_corrupt_are_counted)
{
	struct bytes gz = zlib_enc(text, text_len, 31, NULL, 0);
	struct bytes zs = zstd_enc(text, text_len, NULL, 0, 0);
	struct bytes cut = {gz.b, gz.len - 6};
	const struct decode_stats *st = decode__stats();
	uint64_t t0 = st->truncated, c0 = st->corrupt;
	struct bytes junk = {(uint8_t *)"this is not compressed at all, just text", 40};
	struct out o;

	CHECK_EQ_INT(run("gzip", &cut, cut.len, 0, 0, &o), -ENODATA);
	CHECK(o.len > text_len / 2); /* what was there was decoded */
	free(o.b);
	cut = (struct bytes){zs.b, zs.len - 3};
	CHECK_EQ_INT(run("zstd", &cut, cut.len, 0, 0, &o), -ENODATA);
	free(o.b);
	CHECK_EQ_INT(st->truncated, t0 + 2);

	CHECK_EQ_INT(run("gzip", &junk, junk.len, 0, 0, &o), -EBADMSG);
	free(o.b);
	CHECK_EQ_INT(run("zstd", &junk, junk.len, 0, 0, &o), -EBADMSG);
	free(o.b);
	CHECK_EQ_INT(run("br", &junk, junk.len, 0, 0, &o), -EBADMSG);
	free(o.b);
	gz.b[gz.len - 6] ^= 0x55; /* the CRC */
	CHECK_EQ_INT(run("gzip", &gz, gz.len, 0, 0, &o), -EBADMSG);
	free(o.b);
	CHECK_EQ_INT(st->corrupt, c0 + 4);

	/* Sticky: a feed after the error changes nothing. */
	struct decoder *d;

	memset(&o, 0, sizeof(o));
	decoder__open(&d, "gzip", 4, 0, sink, &o);
	CHECK_EQ_INT(decoder__feed(d, junk.b, junk.len), -EBADMSG);
	CHECK_EQ_INT(decoder__feed(d, gz.b, gz.len), -EBADMSG);
	CHECK_EQ_INT(decoder__finish(d), -EBADMSG);
	CHECK_EQ_INT(o.len, 0);
	decoder__free(d);
	free(gz.b);
	free(zs.b);
}

TEST(multi_member_gzip_and_trailing_bytes)
{
	struct bytes a = zlib_enc(text, 100, 31, NULL, 0);
	struct bytes b = zlib_enc(text + 100, text_len - 100, 31, NULL, 0);
	struct bytes both = {malloc(a.len + b.len + 4), a.len + b.len};
	struct out o;

	memcpy(both.b, a.b, a.len);
	memcpy(both.b + a.len, b.b, b.len);
	check_all_splits("gzip", &both, text, text_len);
	memcpy(both.b + both.len, "\r\n\0\0", 4); /* junk after the end: ignored */
	both.len += 4;
	CHECK_EQ_INT(run("gzip", &both, both.len, 0, 0, &o), 0);
	CHECK(same(&o, text, text_len));
	free(o.b);
	free(a.b);
	free(b.b);
	free(both.b);
}

/* 64 MiB of zeros in each coding (a ratio over 1000): the sink gets exactly the cap, and
 * the decoder stops. */
TEST(bomb_is_capped)
{
	size_t n = 64u << 20;
	char *zeros = calloc(1, n);
	const struct decode_stats *st = decode__stats();
	uint64_t c0 = st->capped;
	struct bytes in[3];
	const char *codings[] = {"gzip", "zstd", "br"};
	struct out o;

	in[0] = zlib_enc(zeros, n, 31, NULL, 0);
	in[1] = zstd_enc(zeros, n, NULL, 0, 0);
	in[2] = brotli_load() ? br_enc(zeros, n, NULL, 0) : (struct bytes){NULL, 0};
	free(zeros);
	for (int k = 0; k < 3; k++) {
		CHECK(in[k].len > 0 && in[k].len < (64u << 10));
		CHECK_EQ_INT(run(codings[k], &in[k], in[k].len, 0, 1u << 20, &o), -EFBIG);
		CHECK_EQ_INT(o.len, 1u << 20);
		free(o.b);
		free(in[k].b);
	}
	CHECK_EQ_INT(st->capped, c0 + 3);
}

/* A zstd frame that asks for a 128 MiB window is refused, not allocated. */
TEST(zstd_window_is_bounded)
{
	size_t n = 1u << 20;
	char *big = malloc(n);
	struct bytes in;
	struct out o;

	for (size_t i = 0; i < n; i++)
		big[i] = (char)(i * 2654435761u >> 24);
	size_t half = n / 2;

	/* A flush first, so the size is not known up front and the frame keeps the window it
	 * was told: 128 MiB. */
	in = zstd_enc(big, n, &half, 1, 27);
	CHECK_EQ_INT(run("zstd", &in, in.len, 0, 0, &o), -EBADMSG);
	free(o.b);
	free(in.b);
	free(big);
}

/* ---- through llm/: coded bodies give the same call as plain ones ----------------------------- */

static struct llm_call got[4];
static int n_got;

static void on_call(void *ctx, const struct llm_call *c)
{
	if (n_got < 4)
		got[n_got] = *c;
	n_got++;
}

static void head_add(struct http_head *h, const char *name, const char *value)
{
	h->headers[h->num_headers++] =
	    (struct http_header){name, strlen(name), value, strlen(value)};
}

struct piece {
	const uint8_t *b;
	size_t len;
	uint64_t ts;
};

/* One exchange through llm's sink; the response body comes in the given pieces. */
static void llm_exchange(const char *req_enc, const struct bytes *req, const char *ctype,
			 const char *resp_enc, const struct piece *resp, int npieces)
{
	struct llm_conn_info info = {.pid = 1, .tls_source = 1};
	struct llm_conn *lc = llm_conn__new(&info, on_call, NULL);
	const struct http_sink *sk = llm_conn__sink(lc);
	struct http_head h = {.is_request = true,
			      .method = "POST",
			      .method_len = 4,
			      .path = "/v1/chat/completions",
			      .path_len = 20};
	void *ex;

	n_got = 0;
	head_add(&h, "host", "api.openai.com");
	head_add(&h, "content-type", "application/json");
	if (req_enc)
		head_add(&h, "content-encoding", req_enc);
	ex = sk->on_request(sk->ctx, &h, 10);
	sk->on_body(ex, false, req->b, req->len, 11);
	sk->on_message_end(ex, false, 12);
	h = (struct http_head){.status = 200};
	head_add(&h, "content-type", ctype);
	if (resp_enc)
		head_add(&h, "content-encoding", resp_enc);
	sk->on_response(ex, &h, 20);
	for (int i = 0; i < npieces; i++) {
		if (resp[i].b)
			sk->on_body(ex, true, resp[i].b, resp[i].len, resp[i].ts);
		else
			sk->on_loss(ex, true, resp[i].len);
	}
	sk->on_message_end(ex, true, 1000);
	llm_conn__free(lc);
}

static const char REQ[] = "{\"model\":\"gpt-4o\",\"stream\":true,\"messages\":[{\"role\":\"user\","
			  "\"content\":\"hi\"}]}";
static const char JSON_RESP[] =
    "{\"id\":\"chatcmpl-z\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"index\":0,\"message\":"
    "{\"role\":\"assistant\",\"content\":\"hello\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34}}";

TEST(llm_reads_gzip_br_zstd_json)
{
	struct bytes plain = {(uint8_t *)REQ, strlen(REQ)};
	const char *codings[] = {"gzip", "deflate", "zstd", "br"};

	CHECK(brotli_load());
	for (int k = 0; k < 4; k++) {
		struct bytes in;
		struct piece pc[2];

		if (k == 0)
			in = zlib_enc(JSON_RESP, strlen(JSON_RESP), 31, NULL, 0);
		else if (k == 1)
			in = zlib_enc(JSON_RESP, strlen(JSON_RESP), 15, NULL, 0);
		else if (k == 2)
			in = zstd_enc(JSON_RESP, strlen(JSON_RESP), NULL, 0, 0);
		else if (benc.h)
			in = br_enc(JSON_RESP, strlen(JSON_RESP), NULL, 0);
		else
			continue;
		pc[0] = (struct piece){in.b, in.len / 2, 30};
		pc[1] = (struct piece){in.b + in.len / 2, in.len - in.len / 2, 40};
		llm_exchange(NULL, &plain, "application/json", codings[k], pc, 2);
		CHECK_EQ_INT(n_got, 1);
		CHECK_EQ_STR(got[0].response_id, "chatcmpl-z");
		CHECK_EQ_INT(got[0].input_tokens, 12);
		CHECK_EQ_INT(got[0].output_tokens, 34);
		CHECK(!got[0].partial);
		free(in.b);
	}
}

/* SSE under gzip, flushed per event: the first chunk's time is when its coded bytes came. */
TEST(llm_sse_over_coded_bodies_keeps_first_chunk_time)
{
	static const char sse[] =
	    "data: {\"id\":\"chatcmpl-s\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"index\":0,"
	    "\"delta\":{\"content\":\"Hi\"}}]}\n\n"
	    "data: {\"id\":\"chatcmpl-s\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"index\":0,"
	    "\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
	    "data: {\"id\":\"chatcmpl-s\",\"model\":\"gpt-4o-2024\",\"choices\":[],\"usage\":"
	    "{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
	size_t cut = (size_t)(strstr(sse, "\n\n") + 2 - sse);
	struct bytes plain = {(uint8_t *)REQ, strlen(REQ)};
	const char *codings[] = {"gzip", "zstd", "br"};

	for (int k = 0; k < 3; k++) {
		struct bytes in;
		struct decoder *d;
		struct out o = {0};
		size_t first = 0;
		struct piece pc[2];

		if (k == 2 && !brotli_load())
			continue;
		in = k == 0   ? zlib_enc(sse, strlen(sse), 31, &cut, 1)
		     : k == 1 ? zstd_enc(sse, strlen(sse), &cut, 1, 0)
			      : br_enc(sse, strlen(sse), &cut, 1);
		/* The coded bytes up to the flush: what a server sends with the first event. */
		decoder__open(&d, codings[k], strlen(codings[k]), 0, sink, &o);
		while (first < in.len && o.len < cut)
			decoder__feed(d, in.b + first++, 1);
		decoder__free(d);
		free(o.b);
		pc[0] = (struct piece){in.b, first, 100};
		pc[1] = (struct piece){in.b + first, in.len - first, 200};
		llm_exchange(NULL, &plain, "text/event-stream", codings[k], pc, 2);
		CHECK_EQ_INT(n_got, 1);
		CHECK_EQ_INT(got[0].first_chunk_ns, 100);
		CHECK_EQ_INT(got[0].stream, 1);
		CHECK_EQ_INT(got[0].input_tokens, 3);
		CHECK_EQ_INT(got[0].output_tokens, 2);
		CHECK_EQ_STR(got[0].finish_reasons[0], "stop");
		free(in.b);
	}
}

TEST(llm_coded_request_bomb_and_loss)
{
	struct bytes req = zlib_enc(REQ, strlen(REQ), 31, NULL, 0);
	struct bytes resp = zlib_enc(JSON_RESP, strlen(JSON_RESP), 31, NULL, 0);
	struct bytes plain = {(uint8_t *)REQ, strlen(REQ)};
	const struct llm_stats *ls = llm__stats();
	uint64_t jerr = ls->json_errors;
	struct piece pc[3];
	size_t n = 8u << 20;
	char *zeros = calloc(1, n);
	struct bytes bomb;

	/* A gzip request body (some SDKs compress requests). */
	pc[0] = (struct piece){resp.b, resp.len, 30};
	llm_exchange("gzip", &req, "application/json", "gzip", pc, 1);
	CHECK_EQ_INT(n_got, 1);
	CHECK_EQ_STR(got[0].request_model, "gpt-4o");
	CHECK_EQ_INT(got[0].output_tokens, 34);

	/* Compressed bytes lost: nothing after the hole is decoded, nothing made up. */
	pc[0] = (struct piece){resp.b, 20, 30};
	pc[1] = (struct piece){NULL, 10, 0};
	pc[2] = (struct piece){resp.b + 30, resp.len - 30, 40};
	llm_exchange(NULL, &plain, "application/json", "gzip", pc, 3);
	CHECK_EQ_INT(n_got, 1);
	CHECK(got[0].partial);
	CHECK_EQ_INT(got[0].output_tokens, -1);
	CHECK_EQ_INT(ls->json_errors, jerr);

	/* A bomb: 8 MiB of zeros under a 1 MiB cap; the call is partial. */
	memcpy(zeros, "{\"id\":", 6);
	bomb = zlib_enc(zeros, n, 31, NULL, 0);
	decode__set_max_out(1u << 20);
	pc[0] = (struct piece){bomb.b, bomb.len, 30};
	llm_exchange(NULL, &plain, "application/json", "gzip", pc, 1);
	decode__set_max_out(0);
	CHECK_EQ_INT(decode__max_out(), DECODE_DEFAULT_MAX_OUT);
	CHECK_EQ_INT(n_got, 1);
	CHECK(got[0].partial);
	free(zeros);
	free(bomb.b);
	free(req.b);
	free(resp.b);
}

int main(void)
{
	make_text();
	RUN(parse_values);
	RUN(gzip_deflate_every_split);
	RUN(br_zstd_every_split);
	RUN(stacked_codings);
	RUN(flushed_streams_give_events_at_once);
	RUN(truncated_and_corrupt_are_counted);
	RUN(multi_member_gzip_and_trailing_bytes);
	RUN(bomb_is_capped);
	RUN(zstd_window_is_bounded);
	RUN(llm_reads_gzip_br_zstd_json);
	RUN(llm_sse_over_coded_bodies_keeps_first_chunk_time);
	RUN(llm_coded_request_bomb_and_loss);
	if (benc.h)
		dlclose(benc.h);
	TT_DONE();
}
