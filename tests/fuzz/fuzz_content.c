// SPDX-License-Identifier: Apache-2.0
/*
 * Content capture for every API (llm/content.c) on fuzzer-chosen JSON: the first byte picks the
 * API and the cap, then NUL-separated sections: request body, plain response body, and any
 * number of streamed pieces (an AWS event-stream event when the API is Bedrock). Whatever comes
 * in, each attribute is a JSON array within the cap. (Planted keys: fuzz_redact, where the key's
 * surroundings are controlled; here the fuzzer glues letters to it, which no detector can
 * tell from prose.)
 */
// FUZZ_SOURCES: src/llm/content.c src/util/redact.c
// FUZZ_LIBS: -ljson-c
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/content.h"

static const char *const apis[] = {
    "openai_chat",	 "anthropic_messages",	    "openai_responses", "openai_completions",
    "openai_embeddings", "gemini_generate_content", "ollama_chat",	"ollama_generate",
    "ollama_embed",	 "bedrock_converse",	    "unknown",
};

static struct json_object *fz__parse(const uint8_t *d, size_t n)
{
	struct json_tokener *tok = json_tokener_new_ex(16);
	struct json_object *o;

	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, (const char *)d, (int)n);
	json_tokener_free(tok);
	return o;
}

static void fz__check(const char *s, size_t cap)
{
	struct json_object *o;

	if (!s)
		return;
	if (strlen(s) > cap + 64)
		abort();
	o = json_tokener_parse(s);
	if (!json_object_is_type(o, json_type_array))
		abort();
	json_object_put(o);
}

static void fz__section(struct llm_content *c, int idx, const char *api, const uint8_t *d, size_t n)
{
	struct json_object *o = fz__parse(d, n);

	if (idx == 0)
		content__request(c, o);
	else if (idx == 1)
		content__response(c, o);
	else if (!strcmp(api, "bedrock_converse"))
		content__es_event(c, idx & 1 ? "contentBlockDelta" : "messageStop", o);
	else
		content__event(c, o);
	json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct content_opts o = {.enabled = true};
	const char *in, *out, *sys, *api;
	struct llm_content *c;
	size_t at = 1;
	int idx = 0;

	if (size < 1 || size > 1 << 16)
		return 0;
	api = apis[data[0] % (sizeof(apis) / sizeof(apis[0]))];
	o.max_bytes = data[0] & 0x80 ? 256 : 4096;
	content__configure(&o);
	c = content__new();
	content__set_api(c, api);
	while (at <= size && idx < 64) {
		const uint8_t *end = memchr(data + at, 0, size - at);
		size_t n = end ? (size_t)(end - (data + at)) : size - at;

		fz__section(c, idx++, api, data + at, n);
		at += n + 1;
	}
	content__finish(c, &in, &out, &sys);
	fz__check(in, o.max_bytes);
	fz__check(out, o.max_bytes);
	fz__check(sys, o.max_bytes);
	content__free(c);
	return 0;
}
