// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/proto/decode.c
// FUZZ_LIBS: -lz -lbrotlidec -lzstd
/*
 * proto/decode (zlib, libbrotlidec, libzstd) under arbitrary input.
 *   byte 0: the Content-Encoding (byte % 8 picks one of the values below)
 *   byte 1: piece size for feeding (0 = all at once)
 *   byte 2: output cap in KiB (0 = 256 KiB), kept small so bombs stay cheap
 *   rest:   the coded body
 * Checks: the sink never gets more than the cap, errors stick, finish agrees with feed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/decode.h"

struct fz_out {
	uint64_t bytes, cap;
	uint8_t x;
};

static void fz_sink(void *ctx, const uint8_t *d, size_t n)
{
	struct fz_out *o = ctx;

	if (!n)
		abort();	       /* empty pieces are never delivered */
	for (size_t i = 0; i < n; i++) /* the view must be readable in full */
		o->x ^= d[i];
	o->bytes += n;
	if (o->bytes > o->cap)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const codings[] = {"gzip",	  "deflate",	   "br",     "zstd",
					      "gzip, br", "deflate, zstd", "x-gzip", "identity"};
	struct fz_out o = {0};
	struct decoder *d;
	size_t piece, off = 0;
	int err = 0, rc;

	if (size < 3)
		return 0;
	const char *c = codings[data[0] % 8];
	piece = data[1];
	o.cap = (data[2] ? data[2] : 256) * 1024ull;
	data += 3;
	size -= 3;
	if (decoder__open(&d, c, strlen(c), o.cap, fz_sink, &o))
		abort();
	if (!d)
		return 0; /* identity */
	while (off < size) {
		size_t n = piece && piece < size - off ? piece : size - off;

		rc = decoder__feed(d, data + off, n);
		if (rc && rc != -EBADMSG && rc != -EFBIG)
			abort();
		if (err && rc != err)
			abort(); /* sticky */
		err = rc;
		off += n;
	}
	rc = decoder__finish(d);
	if (err ? rc != err : (rc && rc != -ENODATA))
		abort();
	if (decoder__out_bytes(d) != o.bytes || (err == -EFBIG && o.bytes != o.cap))
		abort();
	decoder__free(d);
	return 0;
}
