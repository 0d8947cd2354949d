// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/llm/jseq.c
// FUZZ_LIBS: -ljson-c
/*
 * JSON object sequences (NDJSON, streamed JSON arrays). The input is fed whole, then in pieces
 * chosen from its first bytes: both must yield exactly the same objects and counts (a
 * difference aborts). A third pass adds gaps and only has to stay memory-safe and bounded.
 */
#include <stdlib.h>
#include <string.h>

#include "llm/jseq.h"

struct digest {
	uint64_t h;
	uint64_t n;
};

static void on_object(void *ctx, struct json_object *o, uint64_t ts)
{
	struct digest *d = ctx;
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);

	(void)ts;
	if (!json_object_is_type(o, json_type_object) || !s)
		abort();
	for (; *s; s++)
		d->h = (d->h ^ (uint8_t)*s) * 1099511628211ull;
	d->n++;
}

static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void run(const uint8_t *data, size_t size, uint32_t seed, bool gaps, struct digest *d,
		struct jseq_stats *st)
{
	struct jseq *j = jseq__new(on_object, d);
	size_t at = 0;

	if (!j)
		abort();
	while (at < size) {
		size_t n = seed ? rng_next(&seed) % 19 : size;

		if (n > size - at)
			n = size - at;
		if (gaps && seed && rng_next(&seed) % 31 == 0)
			jseq__gap(j);
		jseq__feed(j, data + at, n, at);
		at += n;
	}
	jseq__end(j);
	*st = *jseq__stats(j);
	if (st->objects != d->n)
		abort();
	jseq__free(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct digest whole = {14695981039346656037ull, 0}, split = whole, gappy = whole;
	struct jseq_stats a, b, c;
	uint32_t seed;

	if (size < 2)
		return 0;
	seed = (uint32_t)data[0] << 8 | data[1] | 1;
	run(data, size, 0, false, &whole, &a);
	run(data, size, seed, false, &split, &b);
	if (whole.h != split.h || whole.n != split.n || a.errors != b.errors ||
	    a.oversized != b.oversized)
		abort();
	run(data, size, seed ^ 0x9e3779b9u, true, &gappy, &c);
	return 0;
}
