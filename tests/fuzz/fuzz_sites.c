// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/attach/sites.c src/attach/elf_syms.c
// FUZZ_LIBS: -lcapstone -lelf
/*
 * Probe-site selection over arbitrary machine code: the first byte picks the argument count,
 * the rest is the function. A pair found must lie inside the function, the return site after
 * the entry site, and a second analysis must give the same answer (no hidden state).
 */
#include <stdlib.h>
#include <string.h>

#include "attach/sites.h"

/* sites.c's plan calls into the verifier; the fuzzer only analyses. */
int sites__verify(const struct sites_bpf *bpf, const char *path, const uint64_t *offs,
		  struct site_pair *pairs, bool verbose)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint64_t off = 0x10000;
	struct site_pair p, q;
	const char *why = NULL;
	unsigned nargs;
	int rc;

	if (size < 2 || size > SITES_FN_MAX)
		return 0;
	nargs = (data[0] & 1) ? 4 : 3;
	rc = sites__analyze(data + 1, size - 1, off, nargs, &p, &why);
	if (rc == 0) {
		if (p.entry_off < off || p.entry_off >= off + size - 1 ||
		    p.ret_off <= p.entry_off || p.ret_off >= off + size - 1)
			abort();
	} else if (!why || p.entry_off || p.ret_off) {
		abort();
	}
	if (sites__analyze(data + 1, size - 1, off, nargs, &q, &why) != rc ||
	    memcmp(&p, &q, sizeof(p)))
		abort();
	return 0;
}
