// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/proto/sse.c
// FUZZ_LIBS:
/*
 * SSE framing: the input is fed whole, then in pieces chosen from its first bytes; both must
 * produce exactly the same events (a difference aborts). A third pass adds gaps and only has
 * to stay memory-safe and bounded.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/sse.h"

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

static void on_event(void *ctx, const struct sse_event *ev, uint64_t ts)
{
	struct digest *d = ctx;

	if (ev->data[ev->data_len] != '\0' || ev->event[ev->event_len] != '\0' ||
	    ev->data_len > SSE_MAX_EVENT)
		abort();
	digest__mix(d, ev->event, ev->event_len + 1);
	digest__mix(d, ev->data, ev->data_len + 1);
	d->n++;
}

static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void run(const uint8_t *data, size_t size, uint32_t seed, bool gaps, struct digest *d)
{
	struct sse *s = sse__new(on_event, d);
	size_t at = 0;

	while (at < size) {
		size_t n = seed ? rng_next(&seed) % 17 : size;

		if (n > size - at)
			n = size - at;
		if (gaps && seed && rng_next(&seed) % 23 == 0)
			sse__gap(s);
		sse__feed(s, data + at, n, at);
		at += n;
	}
	if (sse__stats(s)->events != d->n)
		abort();
	sse__free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct digest whole = { 14695981039346656037ull, 0 }, split = whole, gapped = whole;
	uint32_t seed = 2463534242u;

	for (size_t i = 0; i < size && i < 4; i++)
		seed = seed * 31 + data[i];
	if (!seed)
		seed = 1;
	run(data, size, 0, false, &whole);
	run(data, size, seed, false, &split);
	if (whole.h != split.h || whole.n != split.n)
		abort();
	run(data, size, seed, true, &gapped);
	return 0;
}
