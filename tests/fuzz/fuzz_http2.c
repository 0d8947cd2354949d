// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/proto/http2.c src/proto/http.c
// FUZZ_LIBS: -lnghttp2
/*
 * proto/http2 (frames, and HPACK through libnghttp2's inflater) under arbitrary input: the
 * bytes are a script of operations on one connection, so both directions, loss, expiry and
 * close are exercised together.
 *
 *   byte 0: bit 0 role; bit 1 the client preface is fed first (so the fuzzer starts at the
 *           frames); bit 2 capture "began mid-connection" (both directions resync, no preface)
 *   then the operation script of tests/fuzz/stream_script.h.
 *
 * The sink checks the callback order of every exchange and owns one allocation per exchange,
 * freed at its last callback: an exchange that never ends shows up as a leak.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http2.h"
#include "stream_script.h"

struct fx {
	int stage; /* 0 request, 1 request ended, 2 response */
	uint64_t magic;
};

#define FX_MAGIC 0x6874747032ULL

static void fx_check(struct fx *x, bool ok)
{
	if (!x || x->magic != FX_MAGIC || !ok)
		abort();
}

static void touch_head(const struct http_head *h)
{
	volatile uint8_t s = 0;

	if (h->num_headers > HTTP_MAX_HEADERS)
		abort();
	for (size_t i = 0; i < h->num_headers; i++) {
		for (size_t k = 0; k < h->headers[i].name_len; k++)
			s ^= (uint8_t)h->headers[i].name[k];
		for (size_t k = 0; k < h->headers[i].value_len; k++)
			s ^= (uint8_t)h->headers[i].value[k];
	}
	(void)s;
}

static void *fz_on_request(void *ctx, const struct http_head *h, uint64_t ts)
{
	volatile uint8_t s = 0;
	struct fx *x;

	if (!h->is_request)
		abort();
	touch_head(h);
	for (size_t k = 0; k < h->method_len; k++)
		s ^= (uint8_t)h->method[k];
	for (size_t k = 0; k < h->path_len; k++)
		s ^= (uint8_t)h->path[k];
	if (h->path_len > 1 && h->path[1] == 's')
		return NULL; /* not interested */
	x = calloc(1, sizeof(*x));
	if (x)
		x->magic = FX_MAGIC;
	return x;
}

static void fz_on_response(void *ex, const struct http_head *h, uint64_t ts)
{
	struct fx *x = ex;

	touch_head(h);
	/* status 0: the head was lost or could not be decoded */
	fx_check(x, x->stage == 1 && !h->is_request && (h->status == 0 || h->status >= 200) &&
			h->status <= 999);
	x->stage = 2;
}

static void fz_on_body(void *ex, bool is_response, const uint8_t *data, size_t len, uint64_t ts)
{
	struct fx *x = ex;
	volatile uint8_t sink = 0;

	fx_check(x, len > 0 && x->stage == (is_response ? 2 : 0));
	for (size_t i = 0; i < len; i++)
		sink ^= data[i];
	(void)sink;
}

static void fz_on_end(void *ex, bool is_response, uint64_t ts)
{
	struct fx *x = ex;

	fx_check(x, x->stage == (is_response ? 2 : 0));
	if (is_response) {
		x->magic = 0;
		free(x);
	} else {
		x->stage = 1;
	}
}

static void fz_on_loss(void *ex, bool is_response, uint64_t n)
{
	struct fx *x = ex;

	/* A response-side loss may come before the response head (the head itself was lost). */
	fx_check(x, x->stage <= 2);
}

static void fz_on_abort(void *ex, enum http_abort_reason why, uint64_t ts)
{
	struct fx *x = ex;

	fx_check(x, why >= HTTP_ABORT_CONN_CLOSED && why <= HTTP_ABORT_GOAWAY);
	x->magic = 0;
	free(x);
}

/* Only ever right before the abort of a live exchange; the code is the frame's, any value. */
static void fz_on_stream_error(void *ex, bool by_peer, uint32_t code)
{
	fx_check(ex, http2__error_name(code) != NULL);
}

STREAM_SCRIPT_OPS(fz_ops, http2);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct http_sink sink = {
	    .on_request = fz_on_request,
	    .on_response = fz_on_response,
	    .on_body = fz_on_body,
	    .on_message_end = fz_on_end,
	    .on_loss = fz_on_loss,
	    .on_abort = fz_on_abort,
	    .on_stream_error = fz_on_stream_error,
	};
	uint64_t ts;
	enum http1_role role;
	struct http2 *p;

	if (!size)
		return 0;
	role = data[0] & 1 ? HTTP1_ROLE_SERVER : HTTP1_ROLE_CLIENT;
	p = http2__new(role, &sink);
	if (!p)
		return 0;
	if (data[0] & 4) {
		http2__gap(p, 0, 0);
		http2__gap(p, 1, 0);
	} else if (data[0] & 2) {
		http2__feed(p, role == HTTP1_ROLE_CLIENT ? 0 : 1, (const uint8_t *)HTTP2_PREFACE,
			    HTTP2_PREFACE_LEN, 1, 2);
	}
	ts = script__run(p, &fz_ops, data + 1, size - 1);
	http2__close(p, ts + 10);
	if (http2__busy(p))
		abort();
	http2__free(p);
	return 0;
}
