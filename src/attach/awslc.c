// SPDX-License-Identifier: Apache-2.0
/*
 * Code-shape discovery of aws-lc's EVP_AEAD_CTX_{seal,seal_scatter,open,open_gather}.
 *
 * All four report errors from crypto/fipsmodule/cipher/aead.c (codeshape.c finds and decodes
 * every function that does), each with a set of reasons no other function there has:
 *   seal:         OUTPUT_ALIASING, TOO_LARGE (in_len + overhead overflows), BUFFER_TOO_SMALL;
 *   seal_scatter: OUTPUT_ALIASING, INVALID_OPERATION (extra input the AEAD cannot take);
 *   open:         OUTPUT_ALIASING, BAD_DECRYPT (shorter than a tag), BUFFER_TOO_SMALL,
 *                 CTRL_NOT_IMPLEMENTED (no open_gather);
 *   open_gather:  OUTPUT_ALIASING, CTRL_NOT_IMPLEMENTED, and neither BAD_DECRYPT nor
 *                 BUFFER_TOO_SMALL.
 * Every one of them calls the AEAD's method through a pointer. A wrong guess cannot emit
 * records: the BPF programs copy only calls whose additional data is a TLS record header, and
 * user space trusts a connection only once its bytes start an HTTP request.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "attach/awslc.h"
#include "attach/codeshape.h"

static bool fn__has_all(const struct shape_fn *fn, const uint32_t *reasons, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (!shape_fn__has_reason(fn, reasons[i]))
			return false;
	}
	return fn->indirect_call;
}

static bool fn__is(const struct shape_fn *fn, enum awslc_fn which)
{
	static const uint32_t seal[] = {AWSLC_R_OUTPUT_ALIASING, AWSLC_R_TOO_LARGE,
					AWSLC_R_BUFFER_TOO_SMALL};
	static const uint32_t scatter[] = {AWSLC_R_OUTPUT_ALIASING, AWSLC_R_INVALID_OPERATION};
	static const uint32_t open[] = {AWSLC_R_OUTPUT_ALIASING, AWSLC_R_BAD_DECRYPT,
					AWSLC_R_BUFFER_TOO_SMALL, AWSLC_R_CTRL_NOT_IMPLEMENTED};
	static const uint32_t gather[] = {AWSLC_R_OUTPUT_ALIASING, AWSLC_R_CTRL_NOT_IMPLEMENTED};

	switch (which) {
	case AWSLC_SEAL:
		return fn__has_all(fn, seal, 3);
	case AWSLC_SEAL_SCATTER:
		return fn__has_all(fn, scatter, 2) &&
		       !shape_fn__has_reason(fn, AWSLC_R_BUFFER_TOO_SMALL);
	case AWSLC_OPEN:
		return fn__has_all(fn, open, 4);
	case AWSLC_OPEN_GATHER:
		return fn__has_all(fn, gather, 2) &&
		       !shape_fn__has_reason(fn, AWSLC_R_BAD_DECRYPT) &&
		       !shape_fn__has_reason(fn, AWSLC_R_BUFFER_TOO_SMALL);
	default:
		return false;
	}
}

/* The one function of that shape; none or several: NULL (an ambiguous guess is no guess). */
static const struct shape_fn *fns__pick(const struct shape_fn *fns, int n, enum awslc_fn which)
{
	const struct shape_fn *found = NULL;
	int i;

	for (i = 0; i < n; i++) {
		if (!fn__is(&fns[i], which))
			continue;
		if (found)
			return NULL;
		found = &fns[i];
	}
	return found;
}

static int awslc__classify(const struct shape_image *im, const struct shape_fn *fns, int n,
			   void *result)
{
	struct awslc_result *res = result;
	int i;

	for (i = 0; i < AWSLC_FNS; i++) {
		const struct shape_fn *fn = fns__pick(fns, n, (enum awslc_fn)i);

		if (!fn) {
			res->why = "no unique shape for each AEAD entry point";
			return -ENOENT;
		}
		res->vaddr[i] = fn->start;
		res->off[i] = shape__file_off(im, fn->start);
		if (!res->off[i]) {
			res->why = "entry outside the file";
			return -ENOENT;
		}
	}
	res->why = "ok";
	return 0;
}

int awslc__analyse(const uint8_t *img, size_t len, struct awslc_result *res)
{
	int err;

	memset(res, 0, sizeof(*res));
	err = shape__analyse(img, len, "/crypto/fipsmodule/cipher/aead.c", AWSLC_LIB_CIPHER,
			     "no aws-lc aead.c", awslc__classify, res, &res->why, &res->functions);
	if (err) { /* a partial match says nothing */
		memset(res->off, 0, sizeof(res->off));
		memset(res->vaddr, 0, sizeof(res->vaddr));
	}
	return err;
}
