// SPDX-License-Identifier: Apache-2.0
/*
 * Streamed Content-Encoding removal with zlib, libbrotlidec and libzstd. A decoder is a short
 * pipeline of stages, the last coding applied first; each stage decodes into its own 16 KiB
 * buffer and hands every filled piece to the next stage before it goes on, so nothing larger
 * than that buffer is ever held, and output leaves as soon as the codec can produce it.
 */
#include <brotli/decode.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

#include "proto/decode.h"

#define DECODE_CHUNK 16384
#define ZSTD_WINDOW_LOG_MAX 23 /* 8 MiB: RFC 9659's limit for HTTP */

struct stage {
	enum decode_coding coding;
	bool ready; /* codec state made (deflate waits for two bytes to pick zlib or raw) */
	bool done;  /* the coded stream ended */
	uint8_t hold[2];
	size_t hold_len;
	z_stream z;
	BrotliDecoderState *br;
	ZSTD_DCtx *zs;
	uint8_t *buf;
};

struct decoder {
	struct stage st[DECODE_MAX_CODINGS];
	int n;
	decode_sink sink;
	void *ctx;
	uint64_t max_out, out;
	int err;
};

static struct decode_stats decode_stats_g;
static uint64_t decode_max_out_g = DECODE_DEFAULT_MAX_OUT;

/* ---- Content-Encoding values ------------------------------------------------------------ */

static int decode__token(const char *t, size_t n)
{
	static const struct {
		const char *name;
		int coding;
	} names[] = {
	    {"gzip", DECODE_GZIP}, {"x-gzip", DECODE_GZIP}, {"deflate", DECODE_DEFLATE},
	    {"br", DECODE_BR},	   {"zstd", DECODE_ZSTD},   {"identity", 0},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == n && !strncasecmp(t, names[i].name, n))
			return names[i].coding;
	return -ENOTSUP;
}

int decode__parse(const char *v, size_t len, enum decode_coding *out, int max)
{
	int count = 0;
	size_t i = 0;

	while (i < len) {
		size_t s, e;
		int c;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		e = i;
		if (e == s)
			continue;
		c = decode__token(v + s, e - s);
		if (c < 0)
			return -ENOTSUP;
		if (c == 0)
			continue;
		if (count == max)
			return -ENOTSUP;
		out[count++] = (enum decode_coding)c;
	}
	return count;
}

/* ---- stages ----------------------------------------------------------------------------- */

static int stage_push(struct decoder *d, int k, const uint8_t *in, size_t n);

/* The end of the pipeline: the sink, up to the cap. */
static int decoder_emit(struct decoder *d, const uint8_t *p, size_t n)
{
	int err = 0;

	if (n > d->max_out - d->out) {
		n = (size_t)(d->max_out - d->out);
		err = -EFBIG;
	}
	d->out += n;
	decode_stats_g.bytes_out += n;
	if (n)
		d->sink(d->ctx, p, n);
	return err;
}

/* "deflate" is meant to be zlib-wrapped, but some servers send it raw: the first two bytes
 * tell (a zlib header is a multiple of 31 with method 8). */
static int zlib_start(struct stage *s)
{
	int bits = 15 + 32; /* gzip: accept a zlib wrapper too */

	if (s->coding == DECODE_DEFLATE) {
		unsigned h = (unsigned)s->hold[0] << 8 | s->hold[1];

		bits =
		    ((s->hold[0] & 0x0f) == 8 && (s->hold[0] >> 4) <= 7 && h % 31 == 0) ? 15 : -15;
	}
	if (inflateInit2(&s->z, bits) != Z_OK)
		return -ENOMEM;
	s->ready = true;
	return 0;
}

static int zlib_run(struct decoder *d, int k, const uint8_t *in, size_t n)
{
	struct stage *s = &d->st[k];
	int err;

	s->z.next_in = (Bytef *)in;
	s->z.avail_in = (uInt)n;
	while (s->z.avail_in > 0) {
		int rc;

		if (s->done) {
			/* Another gzip member may follow; anything else after the end is ignored.
			 */
			if (s->coding != DECODE_GZIP || *s->z.next_in != 0x1f)
				return 0;
			inflateReset(&s->z);
			s->done = false;
		}
		do {
			s->z.next_out = s->buf;
			s->z.avail_out = DECODE_CHUNK;
			rc = inflate(&s->z, Z_SYNC_FLUSH);
			if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
				return -EBADMSG;
			err = stage_push(d, k + 1, s->buf, DECODE_CHUNK - s->z.avail_out);
			if (err)
				return err;
			if (rc == Z_STREAM_END) {
				s->done = true;
				break;
			}
			if (rc == Z_BUF_ERROR) /* no progress possible: all input taken, all out */
				return 0;
		} while (s->z.avail_out == 0 || s->z.avail_in > 0);
	}
	return 0;
}

static int zlib_feed(struct decoder *d, int k, const uint8_t *in, size_t n)
{
	struct stage *s = &d->st[k];
	int err;

	if (!s->ready && s->coding == DECODE_DEFLATE) {
		while (n && s->hold_len < 2) {
			s->hold[s->hold_len++] = *in++;
			n--;
		}
		if (s->hold_len < 2)
			return 0;
		if ((err = zlib_start(s)) || (err = zlib_run(d, k, s->hold, 2)))
			return err;
	} else if (!s->ready && (err = zlib_start(s))) {
		return err;
	}
	return n ? zlib_run(d, k, in, n) : 0;
}

static int br_feed(struct decoder *d, int k, const uint8_t *in, size_t n)
{
	struct stage *s = &d->st[k];
	const uint8_t *next_in = in;
	size_t avail_in = n;

	while (!s->done) {
		uint8_t *next_out = s->buf;
		size_t avail_out = DECODE_CHUNK;
		BrotliDecoderResult r = BrotliDecoderDecompressStream(s->br, &avail_in, &next_in,
								      &avail_out, &next_out, NULL);
		int err;

		if (r == BROTLI_DECODER_RESULT_ERROR)
			return -EBADMSG;
		if ((err = stage_push(d, k + 1, s->buf, DECODE_CHUNK - avail_out)))
			return err;
		if (r == BROTLI_DECODER_RESULT_SUCCESS)
			s->done = true;
		else if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT)
			break;
	}
	return 0; /* bytes after the end of the stream are ignored */
}

static int zstd_feed(struct decoder *d, int k, const uint8_t *in, size_t n)
{
	struct stage *s = &d->st[k];
	ZSTD_inBuffer ib = {in, n, 0};

	for (;;) {
		ZSTD_outBuffer ob = {s->buf, DECODE_CHUNK, 0};
		size_t r = ZSTD_decompressStream(s->zs, &ob, &ib);
		int err;

		if (ZSTD_isError(r))
			return -EBADMSG;
		if ((err = stage_push(d, k + 1, s->buf, ob.pos)))
			return err;
		/* 0: a frame ended and is flushed; more input starts another frame. */
		s->done = r == 0;
		if (ib.pos == ib.size && ob.pos < ob.size)
			return 0;
	}
}

static int stage_push(struct decoder *d, int k, const uint8_t *in, size_t n)
{
	if (!n)
		return 0;
	if (k == d->n)
		return decoder_emit(d, in, n);
	switch (d->st[k].coding) {
	case DECODE_GZIP:
	case DECODE_DEFLATE:
		return zlib_feed(d, k, in, n);
	case DECODE_BR:
		return br_feed(d, k, in, n);
	case DECODE_ZSTD:
		return zstd_feed(d, k, in, n);
	}
	return -EINVAL;
}

static int stage_init(struct stage *s, enum decode_coding c)
{
	s->coding = c;
	s->buf = malloc(DECODE_CHUNK);
	if (!s->buf)
		return -ENOMEM;
	if (c == DECODE_BR) {
		s->br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
		return s->br ? 0 : -ENOMEM;
	}
	if (c == DECODE_ZSTD) {
		s->zs = ZSTD_createDCtx();
		if (!s->zs)
			return -ENOMEM;
		ZSTD_DCtx_setParameter(s->zs, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
	}
	return 0;
}

static void stage_free(struct stage *s)
{
	if (s->ready)
		inflateEnd(&s->z);
	if (s->br)
		BrotliDecoderDestroyInstance(s->br);
	if (s->zs)
		ZSTD_freeDCtx(s->zs);
	free(s->buf);
}

/* ---- the API ---------------------------------------------------------------------------- */

int decoder__open(struct decoder **out, const char *value, size_t len, uint64_t max_out,
		  decode_sink sink, void *ctx)
{
	enum decode_coding c[DECODE_MAX_CODINGS];
	int n = decode__parse(value, len, c, DECODE_MAX_CODINGS);
	struct decoder *d;

	*out = NULL;
	if (n < 0) {
		decode_stats_g.unsupported++;
		return n;
	}
	if (n == 0)
		return 0;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->sink = sink;
	d->ctx = ctx;
	d->max_out = max_out ? max_out : decode_max_out_g;
	/* The last coding applied is the first to undo. */
	for (int i = 0; i < n; i++) {
		d->n++;
		if (stage_init(&d->st[i], c[n - 1 - i])) {
			decoder__free(d);
			return -ENOMEM;
		}
	}
	decode_stats_g.decoders++;
	*out = d;
	return 0;
}

int decoder__feed(struct decoder *d, const uint8_t *in, size_t n)
{
	if (d->err)
		return d->err;
	decode_stats_g.bytes_in += n;
	d->err = stage_push(d, 0, in, n);
	if (d->err == -EBADMSG)
		decode_stats_g.corrupt++;
	else if (d->err == -EFBIG)
		decode_stats_g.capped++;
	return d->err;
}

int decoder__finish(struct decoder *d)
{
	if (d->err)
		return d->err;
	for (int i = 0; i < d->n; i++) {
		if (!d->st[i].done) {
			decode_stats_g.truncated++;
			return -ENODATA;
		}
	}
	return 0;
}

uint64_t decoder__out_bytes(const struct decoder *d)
{
	return d->out;
}

void decoder__free(struct decoder *d)
{
	if (!d)
		return;
	for (int i = 0; i < d->n; i++)
		stage_free(&d->st[i]);
	free(d);
}

void decode__set_max_out(uint64_t bytes)
{
	decode_max_out_g = bytes ? bytes : DECODE_DEFAULT_MAX_OUT;
}

uint64_t decode__max_out(void)
{
	return decode_max_out_g;
}

const struct decode_stats *decode__stats(void)
{
	return &decode_stats_g;
}
