// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/proto/http1.c src/proto/http.c
// FUZZ_LIBS:
/*
 * proto/http1 under arbitrary input: the bytes are a script of operations on one connection,
 * so both directions, loss, expiry and close are exercised together.
 *
 *   byte 0: role (bit 0)
 *   then the operation script of tests/fuzz/stream_script.h.
 *
 * The sink checks the callback order of every exchange and owns one allocation per exchange,
 * freed at its last callback: an exchange that never ends shows up as a leak.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http1.h"
#include "stream_script.h"

struct fx {
	int stage; /* 0 request, 1 request ended, 2 response, 3 done */
	uint64_t magic;
};

#define FX_MAGIC 0x6874747031ULL

static void fx_check(struct fx *x, bool ok)
{
	if (!x || x->magic != FX_MAGIC || !ok)
		abort();
}

static void *fz_on_request(void *ctx, const struct http_head *h, uint64_t ts)
{
	struct fx *x;

	if (!h->is_request || !h->method_len || !h->path_len || h->num_headers > HTTP_MAX_HEADERS)
		abort();
	for (size_t i = 0; i < h->num_headers; i++)
		if (!h->headers[i].name_len)
			abort();
	if (h->path[0] == '/' && h->path_len > 1 && h->path[1] == 's')
		return NULL; /* not interested */
	x = calloc(1, sizeof(*x));
	if (x)
		x->magic = FX_MAGIC;
	return x;
}

static void fz_on_response(void *ex, const struct http_head *h, uint64_t ts)
{
	struct fx *x = ex;

	fx_check(x, x->stage == 1 && !h->is_request && h->status >= 100 && h->status <= 999);
	x->stage = 2;
}

static void fz_on_body(void *ex, bool is_response, const uint8_t *data, size_t len, uint64_t ts)
{
	struct fx *x = ex;
	volatile uint8_t sink = 0;

	fx_check(x, len > 0 && x->stage == (is_response ? 2 : 0));
	for (size_t i = 0; i < len; i++) /* the view must be readable in full */
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

	fx_check(x, x->stage == (is_response ? 2 : 0));
}

static void fz_on_abort(void *ex, enum http_abort_reason why, uint64_t ts)
{
	struct fx *x = ex;

	fx_check(x, x->stage < 3 && why >= HTTP_ABORT_CONN_CLOSED && why <= HTTP_ABORT_OVERFLOW);
	x->magic = 0;
	free(x);
}

STREAM_SCRIPT_OPS(fz_ops, http1);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct http_sink sink = {
	    .on_request = fz_on_request,
	    .on_response = fz_on_response,
	    .on_body = fz_on_body,
	    .on_message_end = fz_on_end,
	    .on_loss = fz_on_loss,
	    .on_abort = fz_on_abort,
	};
	uint64_t ts;
	struct http1 *p;

	if (!size)
		return 0;
	p = http1__new(data[0] & 1 ? HTTP1_ROLE_SERVER : HTTP1_ROLE_CLIENT, &sink);
	if (!p)
		return 0;
	ts = script__run(p, &fz_ops, data + 1, size - 1);
	http1__close(p, ts + 10);
	if (http1__busy(p))
		abort();
	http1__free(p);
	return 0;
}
