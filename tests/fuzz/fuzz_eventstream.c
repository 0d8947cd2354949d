// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/proto/eventstream.c
// FUZZ_LIBS: -lz
/*
 * AWS event-stream decoder. Random bytes almost never carry a right CRC, so the first input
 * byte picks a mode: raw (the rest is fed as is) or built (the rest is a list of
 * [headers_len u8][payload_len u8][headers][payload] records, each wrapped here into a message
 * with correct CRCs, then one byte chosen by the input flipped), which drives the header parser
 * and the payload path deep. The stream is fed whole and then in pieces chosen from the input:
 * both must yield exactly the same messages (a difference aborts). A third pass adds gaps and
 * only has to stay memory-safe and bounded.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto/eventstream.h"

struct digest {
	uint64_t h;
	uint64_t n;
};

static void digest__mix(struct digest *d, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		d->h = (d->h ^ b[i]) * 1099511628211ull;
}

static void on_message(void *ctx, const struct es_message *m, uint64_t ts)
{
	struct digest *d = ctx;

	(void)ts;
	if (m->n_headers > EVENTSTREAM_MAX_HEADERS || m->payload_len > EVENTSTREAM_MAX_MESSAGE)
		abort();
	for (size_t i = 0; i < m->n_headers; i++) {
		const struct es_header *h = &m->headers[i];

		if (!h->name_len || h->type > ES_UUID)
			abort();
		digest__mix(d, h->name, h->name_len);
		digest__mix(d, &h->type, 1);
		digest__mix(d, h->value, h->value_len);
	}
	digest__mix(d, m->payload, m->payload_len);
	es_message__header_is(m, ":event-type", "metadata");
	d->n++;
}

static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Wraps records into messages with right CRCs; returns the stream length (out is big enough:
 * each record of k input bytes becomes k - 2 + 16 bytes). */
static size_t build(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t at = 0, o = 0;

	while (at + 2 <= n) {
		size_t hl = in[at], pl = in[at + 1], total;

		at += 2;
		if (hl > n - at)
			hl = n - at;
		if (pl > n - at - hl)
			pl = n - at - hl;
		total = 16 + hl + pl;
		put32(out + o, (uint32_t)total);
		put32(out + o + 4, (uint32_t)hl);
		put32(out + o + 8, (uint32_t)crc32(0L, out + o, 8));
		memcpy(out + o + 12, in + at, hl + pl);
		put32(out + o + total - 4, (uint32_t)crc32(0L, out + o, (uInt)(total - 4)));
		o += total;
		at += hl + pl;
	}
	return o;
}

static void run(const uint8_t *data, size_t size, uint32_t seed, bool gaps, struct digest *d)
{
	struct eventstream *es = eventstream__new(on_message, d);
	const struct eventstream_stats *st;
	size_t at = 0;

	if (!es)
		return;
	while (at < size) {
		size_t n = seed ? rng_next(&seed) % 23 : size;

		if (n > size - at)
			n = size - at;
		if (gaps && seed && rng_next(&seed) % 29 == 0)
			eventstream__gap(es);
		eventstream__feed(es, data + at, n, at);
		at += n;
	}
	eventstream__end(es);
	st = eventstream__stats(es);
	if (st->messages != d->n)
		abort();
	eventstream__free(es);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct digest whole = {14695981039346656037ull, 0}, split = whole, gappy = whole;
	uint8_t *stream = NULL;
	const uint8_t *s = data + 1;
	size_t n = size ? size - 1 : 0;
	uint32_t seed;

	if (size < 3)
		return 0;
	seed = (uint32_t)data[1] << 8 | data[2] | 1;
	if (data[0] & 1) {
		stream = malloc(n * 8 + 16);
		if (!stream)
			return 0;
		n = build(data + 1, size - 1, stream);
		if (n && (data[0] & 2))
			stream[data[2] % n] ^= (uint8_t)(1u << (data[1] & 7));
		s = stream;
	}
	run(s, n, 0, false, &whole);
	run(s, n, seed, false, &split);
	if (whole.h != split.h || whole.n != split.n)
		abort();
	run(s, n, seed ^ 0x5bd1e995u, true, &gappy);
	free(stream);
	return 0;
}
