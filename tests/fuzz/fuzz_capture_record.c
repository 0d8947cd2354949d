// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/capture/record.c
// FUZZ_LIBS:
/*
 * capture__dispatch_record on arbitrary bytes: never reads past `size`, and everything it hands
 * the sink is consistent with the record it came from.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokentap_abi.h"
#include "capture/capture.h"

struct fuzz_ctx {
	const uint8_t *rec;
	size_t size;
	uint64_t sum;
};

static void on_chunk(void *ctx, const struct cap_chunk *c)
{
	struct fuzz_ctx *f = ctx;
	uint32_t i;

	if (c->len == 0 || c->len > TT_CHUNK_MAX || c->len > c->call_len || c->dir > CAP_DIR_READ)
		abort();
	if (c->data < f->rec || c->data + c->len > f->rec + f->size)
		abort();
	for (i = 0; i < c->len; i++)
		f->sum += c->data[i];
}

static void on_close(void *ctx, const struct cap_close *c)
{
	((struct fuzz_ctx *)ctx)->sum += c->write_seq + c->read_seq;
}

static void on_sock(void *ctx, const struct cap_sock *s)
{
	if (s->family != 2 && s->family != 10)
		abort();
	((struct fuzz_ctx *)ctx)->sum += s->sport + s->dport;
}

static void on_proc(void *ctx, const struct cap_proc *p)
{
	if (strlen(p->comm) >= sizeof(p->comm))
		abort();
	((struct fuzz_ctx *)ctx)->sum += p->pid;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_ctx f = {.rec = data, .size = size};
	struct cap_sink sink = {.ctx = &f,
				.on_chunk = on_chunk,
				.on_close = on_close,
				.on_sock = on_sock,
				.on_proc = on_proc,
				.on_ignore = on_close,
				.on_sync = on_close};
	int rc = capture__dispatch_record(data, size, &sink);

	if (rc != 0 && rc != -22)
		abort();
	return 0;
}
