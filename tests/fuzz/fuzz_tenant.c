// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/llm/tenant.c src/proto/http.c
// FUZZ_LIBS: -ljson-c -lcrypto
/*
 * Attribution from request headers and bodies: any header values (split into name/value pairs
 * at NUL bytes) and any JSON body give bounded, NUL-terminated fields; a traceparent is only
 * accepted in its exact form, and never yields an all-zero id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/tenant.h"

static int configured;

static void check_str(const char *s, size_t cap)
{
	if (strnlen(s, cap) >= cap)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "x-tenant-id", "x-team" };
	struct http_head h = { .is_request = true };
	struct llm_call c = {};
	struct json_object *body;
	struct json_tokener *tok;
	const char *p = (const char *)data, *end = p + size;
	uint8_t tid[16], pid[8];

	if (!configured) {
		tenant__set_secret((const uint8_t *)"fuzzing secret 0123", 19);
		tenant__configure(names, 2);
		configured = 1;
	}
	if (traceparent__parse(p, size, tid, pid) && (!memcmp(tid, "\0\0\0\0\0\0\0\0", 8) &&
						       !memcmp(tid + 8, "\0\0\0\0\0\0\0\0", 8)))
		abort();
	while (p < end && h.num_headers < HTTP_MAX_HEADERS) {
		const char *n = memchr(p, 0, (size_t)(end - p)), *v, *ve;

		if (!n)
			break;
		v = n + 1;
		ve = memchr(v, 0, (size_t)(end - v));
		if (!ve)
			ve = end;
		h.headers[h.num_headers++] =
			(struct http_header){ p, (size_t)(n - p), v, (size_t)(ve - v) };
		p = ve < end ? ve + 1 : end;
	}
	tenant__on_request(&c, &h);
	tok = json_tokener_new();
	body = tok ? json_tokener_parse_ex(tok, (const char *)data, (int)size) : NULL;
	tenant__on_request_body(&c, body);
	json_object_put(body);
	if (tok)
		json_tokener_free(tok);
	check_str(c.api_key_fingerprint, sizeof(c.api_key_fingerprint));
	check_str(c.openai_organization, sizeof(c.openai_organization));
	check_str(c.openai_project, sizeof(c.openai_project));
	check_str(c.user, sizeof(c.user));
	check_str(c.tenant, sizeof(c.tenant));
	if (c.api_key_fingerprint[0] && strlen(c.api_key_fingerprint) != 16)
		abort();
	return 0;
}
