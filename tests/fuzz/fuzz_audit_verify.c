// SPDX-License-Identifier: Apache-2.0
/* `tokentap audit verify` on arbitrary files: a verdict, never a crash. */
// FUZZ_SOURCES: src/audit/chain.c
// FUZZ_LIBS: -ljson-c -lcrypto
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "audit/chain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chain_verify_opts o = {.partial = size && (data[0] & 1)};
	struct chain_state st = {};
	char err[512];
	FILE *f;

	if (!size)
		return 0;
	f = fmemopen((void *)data, size, "r");
	if (!f)
		return 0;
	chain__verify_file(f, "fuzz", &st, &o, err, sizeof(err));
	fclose(f);
	return 0;
}
