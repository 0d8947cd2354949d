/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who is calling, from the request itself: a fingerprint of the API key (the key never leaves
 * the callback that sees it), the OpenAI organization and project headers, the end-user id
 * the application put in the body, a tenant header chosen by the operator, and a W3C
 * traceparent to join the caller's trace. Filled into struct llm_call at on_request (headers)
 * and when the request body has been parsed.
 */
#ifndef TOKENTAP_LLM_TENANT_H
#define TOKENTAP_LLM_TENANT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/http.h"
#include "llm.h"

#define TENANT_MAX_HEADERS 16
#define TENANT_SECRET_BYTES 32

/* Header names whose value becomes tokentap.tenant, first present wins. Copied. -EINVAL for
 * more than TENANT_MAX_HEADERS or a credential header (its value would be exported). */
int tenant__configure(const char *const *headers, int n);

/*
 * Loads the fingerprint secret from path, creating it (0600, random bytes) when missing.
 * When it can be neither read nor created, a random per-process secret is used and one
 * warning is printed: fingerprints then differ between runs. Returns 0 when the file was used.
 */
int tenant__load_secret(const char *path);
/* Sets the secret directly (tests). */
void tenant__set_secret(const uint8_t *secret, size_t n);
void tenant__exit(void);

/* out: the first 16 hex digits of HMAC-SHA256(secret, key) and a NUL. */
void tenant__fingerprint(const char *key, size_t n, char out[17]);

/* Version 00 (or a later version's first four fields), lowercase hex, ids not all zero. */
bool traceparent__parse(const char *v, size_t n, uint8_t trace_id[16], uint8_t parent_id[8]);

/* Hooks of the llm stage. */
void tenant__on_request(struct llm_call *c, const struct http_head *h);
void tenant__on_request_body(struct llm_call *c, struct json_object *root);

#endif
