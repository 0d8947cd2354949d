// SPDX-License-Identifier: Apache-2.0
/*
 * util/zpack: round trips of buffers with every mix of zero runs and literals (lengths 0..600,
 * runs around the 8-byte threshold and the 65535-byte record limit), the size win on a struct
 * that is mostly empty strings, and packed data cut or corrupted anywhere is refused.
 */
#include <stdlib.h>

#include "tt_test.h"
#include "util/zpack.h"

static uint32_t rng = 2463534242u;

static uint32_t xrand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Runs of zeros and of random non-zero bytes, of lengths drawn around the thresholds. */
static void fill(uint8_t *b, size_t n, int style)
{
	size_t i = 0;

	while (i < n) {
		size_t run = 1 + xrand() % (style == 0 ? 4 : style == 1 ? 12 : 300);
		bool zero = xrand() & 1;

		for (size_t k = 0; k < run && i < n; k++, i++)
			b[i] = zero ? 0 : (uint8_t)(1 + xrand() % 255);
	}
}

static bool round_trip(const uint8_t *src, size_t n)
{
	uint8_t *p = NULL, *back = malloc(n + 1);
	size_t len = 0;
	bool ok = zpack__pack(src, n, &p, &len) == 0 && zpack__unpack(p, len, back, n) &&
		  !memcmp(back, src, n);

	free(p);
	free(back);
	return ok;
}

TEST(round_trips)
{
	uint8_t buf[600];
	int bad = 0;

	for (size_t n = 0; n <= sizeof(buf); n++)
		for (int style = 0; style < 3; style++) {
			fill(buf, n, style);
			bad += !round_trip(buf, n);
		}
	memset(buf, 0, sizeof(buf));
	bad += !round_trip(buf, sizeof(buf));
	memset(buf, 0xab, sizeof(buf));
	bad += !round_trip(buf, sizeof(buf));
	CHECK_EQ_INT(bad, 0);
}

TEST(long_runs_split_into_records)
{
	size_t n = 3 * 65535 + 17;
	uint8_t *z = calloc(1, n), *l = malloc(n);

	CHECK(round_trip(z, n));
	memset(l, 0x5a, n);
	CHECK(round_trip(l, n));
	l[70000] = 0;
	memset(l + 100, 0, 70000);
	CHECK(round_trip(l, n));
	free(z);
	free(l);
}

/* The use it is made for: a struct of fixed string fields, mostly empty. */
TEST(mostly_empty_struct_is_small)
{
	struct {
		int a;
		char s[9][256];
		long b;
	} x = {0};
	uint8_t *p = NULL;
	size_t len = 0;

	x.a = 1;
	strcpy(x.s[0], "gpt-4o-mini");
	strcpy(x.s[3], "api.openai.com");
	strcpy(x.s[7], "/v1/chat/completions");
	x.b = -1;
	CHECK_EQ_INT(zpack__pack(&x, sizeof(x), &p, &len), 0);
	CHECK(len < 100);
	CHECK(round_trip((const uint8_t *)&x, sizeof(x)));
	free(p);
}

TEST(corrupt_refused)
{
	uint8_t src[200], back[200], *p = NULL;
	size_t len = 0;
	int accepted = 0;

	fill(src, sizeof(src), 1);
	CHECK_EQ_INT(zpack__pack(src, sizeof(src), &p, &len), 0);
	for (size_t cut = 0; cut < len; cut++)
		accepted += zpack__unpack(p, cut, back, sizeof(back));
	CHECK(!zpack__unpack(p, len, back, sizeof(back) - 1));
	CHECK(!zpack__unpack(p, len, back, 0));
	for (size_t i = 0; i < len; i++) {
		uint8_t *q = malloc(len);

		memcpy(q, p, len);
		q[i] ^= 0x80;
		/* a flipped literal byte still unpacks (to other data); lengths must not overrun */
		zpack__unpack(q, len, back, sizeof(back));
		free(q);
	}
	CHECK_EQ_INT(accepted, 0);
	CHECK_EQ_INT(zpack__pack(src, (size_t)ZPACK_MAX + 1, &p, &len) == 0, 0);
	free(p);
}

int main(void)
{
	RUN(round_trips);
	RUN(long_runs_split_into_records);
	RUN(mostly_empty_struct_is_small);
	RUN(corrupt_refused);
	TT_DONE();
}
