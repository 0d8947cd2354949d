// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/attach/boringssl.c src/attach/codeshape.c src/attach/awslc.c src/attach/discovery_cache.c src/capture/trust_gate.c
// FUZZ_LIBS: -lcapstone -lpthread
/*
 * Code-shape discovery on untrusted files: the input is an ELF image (seeds: small synthetic
 * BoringSSL-shaped executables, both ERR_put_error conventions, and aws-lc-shaped ones with
 * EVP_AEAD_CTX_seal/seal_scatter/open/open_gather). Whatever it holds, both analyses must stay
 * inside the buffer, end, and report entry points only inside it (none when they fail).
 * The same bytes also go through the live-traffic gate as a ring buffer record.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attach/awslc.h"
#include "attach/boringssl.h"
#include "capture/trust_gate.h"

/* aws-lc's verdict: all four offsets inside the image when found, none when not. */
static void check_awslc(const uint8_t *img, size_t size)
{
	struct awslc_result r;
	int i, err = awslc__analyse(img, size, &r);

	for (i = 0; i < AWSLC_FNS; i++) {
		if (err == 0 && (!r.off[i] || r.off[i] >= size))
			abort();
		if (err != 0 && r.off[i])
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trust_gate gate = {0};
	struct bssl_result r;
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	/* An exact-size heap copy: ASan sees any read past the image. */
	memcpy(copy, data, size);
	if (bssl__analyse(copy, size, &r) == 0 &&
	    (!r.write_off || !r.read_off || r.write_off >= size || r.read_off >= size))
		abort();
	check_awslc(copy, size);
	trust_gate__pass(&gate, copy, size);
	trust_gate__pass(&gate, copy, size);
	trust_gate__free(&gate);
	free(copy);
	return 0;
}
