/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Content-Encoding removal, streamed: gzip (and x-gzip), deflate (zlib-wrapped or raw, as
 * servers really send it), br and zstd, and stacks of them ("gzip, br"). Compressed bytes go in
 * as they arrive and every decoded byte comes out through the sink at once, so an event stream
 * under gzip still gives each event when its bytes were read.
 *
 * Bounded: at most `max_out` decoded bytes are given to the sink per message (a decompression
 * bomb costs that much CPU and no memory); past it the decoder stops with -EFBIG. Memory per
 * decoder is the codec's window (zlib 32 KiB, zstd at most 8 MiB as RFC 9659 allows HTTP
 * senders, brotli at most its format's 16 MiB) plus one 16 KiB buffer per stacked coding.
 * Corrupt input stops the decoder with -EBADMSG (sticky); both are counted.
 */
#ifndef TOKENTAP_PROTO_DECODE_H
#define TOKENTAP_PROTO_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DECODE_MAX_CODINGS 3
#define DECODE_DEFAULT_MAX_OUT (64ull << 20)

enum decode_coding {
	DECODE_GZIP = 1,
	DECODE_DEFLATE = 2,
	DECODE_BR = 3,
	DECODE_ZSTD = 4,
};

struct decode_stats {
	uint64_t decoders;    /* messages decoded */
	uint64_t unsupported; /* Content-Encoding values no decoder exists for */
	uint64_t corrupt;     /* input that is not the coding it claims */
	uint64_t truncated;   /* messages that ended before their coded stream did */
	uint64_t capped;      /* messages past the output cap */
	uint64_t bytes_in, bytes_out;
};

typedef void (*decode_sink)(void *ctx, const uint8_t *data, size_t len);

struct decoder;

/* Parses a Content-Encoding value into the codings in the order they were applied. Returns
 * their number (0: identity, nothing to undo), or -ENOTSUP for one not supported, or too many. */
int decode__parse(const char *value, size_t len, enum decode_coding *out, int max);

/* A decoder for a Content-Encoding value. *out is NULL (and 0 returned) for identity. Returns
 * -ENOTSUP (counted) or -ENOMEM otherwise. max_out 0 means decode__max_out(). */
int decoder__open(struct decoder **out, const char *value, size_t len, uint64_t max_out,
		  decode_sink sink, void *ctx);
/* 0, or the sticky -EBADMSG / -EFBIG. */
int decoder__feed(struct decoder *d, const uint8_t *in, size_t n);
/* The message ended: 0 when every coded stream ended too, -ENODATA (counted) when it was cut
 * short, or the sticky error. */
int decoder__finish(struct decoder *d);
uint64_t decoder__out_bytes(const struct decoder *d);
void decoder__free(struct decoder *d);

/* The default output cap of every new decoder (e.g. from a command-line flag). */
void decode__set_max_out(uint64_t bytes);
uint64_t decode__max_out(void);
const struct decode_stats *decode__stats(void);

#endif
