// SPDX-License-Identifier: Apache-2.0
/*
 * Secret redaction and command-line scrubbing on arbitrary bytes: no crash, bounded output, and
 * a planted key never survives whatever surrounds it.
 */
// FUZZ_SOURCES: src/util/redact.c
// FUZZ_LIBS:
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/redact.h"

#define PLANT "sk-proj-Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[256], *r, *buf;
	size_t n = 0;

	r = redact__string((const char *)data, size, &n, NULL);
	if (!r || strlen(r) > n)
		abort();
	free(r);
	redact__cmdline((const char *)data, size, out, sizeof(out));
	if (strlen(out) >= sizeof(out))
		abort();
	/* the input, a space, the key, a space: the key must go */
	buf = malloc(size + sizeof(PLANT) + 2);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = ' ';
	memcpy(buf + size + 1, PLANT " ", sizeof(PLANT));
	r = redact__string(buf, size + sizeof(PLANT), &n, NULL);
	if (r && memmem(r, n, "Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9", 24) &&
	    !memmem(data, size, "Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9", 24))
		abort();
	free(r);
	free(buf);
	return 0;
}
