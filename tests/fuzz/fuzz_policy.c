// SPDX-License-Identifier: Apache-2.0
/* Policy documents: parse anything, evaluate whatever parsed. */
// FUZZ_SOURCES: src/audit/policy.c src/audit/container_meta.c src/util/file.c
// FUZZ_LIBS: -ljson-c
#include <stdint.h>
#include <stdlib.h>

#include "audit/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char label0[] = "team=payments", label1[] = "app=web";
	struct container_info ci = {.runtime = "cri-o", .image = "ghcr.io/acme/agent:1.4",
				    .labels_known = true, .labels = {label0, label1}, .n_labels = 2};
	char err[256];
	struct policy *p = policy__parse((const char *)data, size, err, sizeof(err));
	struct policy_call c = {.exe = "/usr/bin/python3",
				.container_id = "3f2a",
				.uid = 0,
				.provider = "openai",
				.host = "api.openai.com",
				.model = "gpt-4o",
				.key_fingerprint = "4b939df42ebc9c95",
				.shadow_ai = true};
	struct policy_verdict v;

	if (!p)
		return 0;
	policy__eval(p, &c, &v);
	if (v.n_violations > POLICY_MAX_VIOLATIONS || v.denied != (v.n_violations > 0))
		abort();
	/* in a container: known metadata, then unknown (rules reported unevaluated) */
	c.container = &ci;
	policy__eval(p, &c, &v);
	c.container = NULL;
	policy__eval(p, &c, &v);
	if (v.n_unevaluated > POLICY_MAX_VIOLATIONS)
		abort();
	policy__free(p);
	return 0;
}
