// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/util/zpack.c
// FUZZ_LIBS:
/*
 * util/zpack: the input packed and unpacked must come back byte for byte (a difference aborts),
 * and the input taken as packed data must unpack within bounds or be refused.
 */
#include <stdlib.h>
#include <string.h>

#include "util/zpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p = NULL, *back = malloc(size + 1), out[4096];
	size_t len = 0;

	if (zpack__pack(data, size, &p, &len) == 0) {
		if (!zpack__unpack(p, len, back, size) || memcmp(back, data, size))
			abort();
		if (size && zpack__unpack(p, len, back, size - 1))
			abort(); /* it describes exactly `size` bytes */
	}
	free(p);
	free(back);
	if (size >= 2)
		zpack__unpack(data + 2, size - 2, out,
			      ((size_t)data[0] << 4 | data[1]) % sizeof(out));
	return 0;
}
