// SPDX-License-Identifier: Apache-2.0
/* Zero-run packing (see zpack.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/zpack.h"

#define ZPACK_MIN_RUN 8	 /* shorter zero runs stay inside literals: a record header costs 4 */
#define ZPACK_REC 0xffff /* most zeros or literals one record holds */

static size_t zpack__zeros_at(const uint8_t *s, size_t i, size_t n)
{
	size_t j = i;

	while (j < n && !s[j])
		j++;
	return j - i;
}

/* Literals from i up to the next zero run worth a record (or the end, or a record's limit). */
static size_t zpack__lits_at(const uint8_t *s, size_t i, size_t n)
{
	size_t j = i;

	while (j < n && j - i < ZPACK_REC) {
		if (!s[j] && zpack__zeros_at(s, j, n < j + ZPACK_MIN_RUN ? n : j + ZPACK_MIN_RUN) >=
				 ZPACK_MIN_RUN)
			break;
		j++;
	}
	return j - i;
}

static void zpack__u16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v & 0xff);
	p[1] = (uint8_t)(v >> 8);
}

/* Writes the records (when out is not NULL) and returns their size. */
static size_t zpack__emit(const uint8_t *s, size_t n, uint8_t *out)
{
	size_t i = 0, o = 0;

	while (i < n) {
		size_t z = zpack__zeros_at(s, i, n), l;

		if (z > ZPACK_REC)
			z = ZPACK_REC;
		if (z < ZPACK_MIN_RUN && i + z < n)
			z = 0; /* a short run goes into the literals */
		l = zpack__lits_at(s, i + z, n);
		if (out) {
			zpack__u16(out + o, z);
			zpack__u16(out + o + 2, l);
			memcpy(out + o + 4, s + i + z, l);
		}
		o += 4 + l;
		i += z + l;
	}
	return o;
}

int zpack__pack(const void *src, size_t n, uint8_t **out, size_t *out_len)
{
	size_t len;

	if (n > ZPACK_MAX)
		return -EINVAL;
	len = zpack__emit(src, n, NULL);
	*out = malloc(len ? len : 1);
	if (!*out)
		return -ENOMEM;
	zpack__emit(src, n, *out);
	*out_len = len;
	return 0;
}

bool zpack__unpack(const uint8_t *p, size_t len, void *dst, size_t n)
{
	uint8_t *d = dst;
	size_t i = 0, o = 0;

	while (i < len) {
		size_t z, l;

		if (len - i < 4)
			return false;
		z = (size_t)p[i] | (size_t)p[i + 1] << 8;
		l = (size_t)p[i + 2] | (size_t)p[i + 3] << 8;
		i += 4;
		if (z > n - o || l > n - o - z || l > len - i)
			return false;
		memset(d + o, 0, z);
		memcpy(d + o + z, p + i, l);
		o += z + l;
		i += l;
	}
	return o == n;
}
