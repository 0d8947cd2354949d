// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/span/pricing.c src/span/pricing_data.c src/span/attr.c
// FUZZ_LIBS: -ljson-c -lm
/*
 * The pricing file parser (users write these files) and model lookup: any bytes either give a
 * table or a one-line error, never a crash or a leak; every table prices any call to a finite,
 * non-negative cost. The input's first line is a model name to look up, the rest the file.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "span/pricing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	size_t name_len = nl ? (size_t)(nl - (const char *)data) : 0;
	char model[LLM_STR], err[256];
	struct pricing_table *t;
	struct llm_call c = { .input_tokens = 1000, .output_tokens = 500, .cache_read_tokens = 300,
			      .cache_creation_tokens = 900, .reasoning_tokens = 700 };
	const struct price *p;
	double usd;

	if (name_len >= sizeof(model))
		name_len = sizeof(model) - 1;
	memcpy(model, data, name_len);
	model[name_len] = '\0';
	if (nl) {
		size -= (size_t)(nl + 1 - (const char *)data);
		data = (const uint8_t *)nl + 1;
	}
	t = pricing_table__parse((const char *)data, size, err, sizeof(err));
	if (!t)
		return 0;
	p = pricing_table__lookup(t, model);
	if (p && (!price__cost(p, &c, &usd) || !isfinite(usd) || usd < 0))
		abort();
	pricing_table__free(t);
	return 0;
}
