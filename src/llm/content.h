/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Content capture (--capture-content, off by default): the request's messages and the
 * response's text, in the shape of the GenAI semantic conventions' gen_ai.input.messages,
 * gen_ai.output.messages and gen_ai.system_instructions (JSON strings:
 * [{"role":"user","parts":[{"type":"text","content":"..."}]}, ...]). Every string is redacted
 * (util/redact.h) before it is stored, and each attribute is capped at max_bytes.
 * When capture is off none of this runs and no text is kept.
 */
#ifndef TOKENTAP_LLM_CONTENT_H
#define TOKENTAP_LLM_CONTENT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

struct content_opts {
	bool enabled;
	size_t max_bytes; /* per attribute; 0 = 16 KiB */
};

/* Process-wide; call before the pipeline starts. */
void content__configure(const struct content_opts *o);
bool content__enabled(void);

/* One exchange's content. Every function accepts NULL (capture off). */
struct llm_content;
struct llm_content *content__new(void);
void content__free(struct llm_content *c);

/* The parsed request body: "messages" (OpenAI and Anthropic), "system" (Anthropic). */
void content__request(struct llm_content *c, struct json_object *root);
/* A plain response: OpenAI chat.completion or Anthropic message. */
void content__response_openai(struct llm_content *c, struct json_object *root);
void content__response_anthropic(struct llm_content *c, struct json_object *root);
/* One streamed event's data. */
void content__event_openai(struct llm_content *c, struct json_object *root);
void content__event_anthropic(struct llm_content *c, struct json_object *root);

/*
 * Every API the extractors know, by the llm_shape name (llm/provider.h): "openai_chat",
 * "anthropic_messages", "openai_responses", "openai_completions", "openai_embeddings",
 * "gemini_generate_content", "ollama_chat", "ollama_generate", "ollama_embed",
 * "bedrock_converse". Set once, before the request; an unknown name captures nothing.
 * Without it, content__request reads the OpenAI / Anthropic "messages" and "system".
 */
void content__set_api(struct llm_content *c, const char *shape_name);
/* A plain (non-streamed) response body of the API set above. */
void content__response(struct llm_content *c, struct json_object *root);
/* One streamed piece: an SSE event's data, an NDJSON object, an element of a streamed JSON
 * array, or (es_type set) the payload of an AWS event-stream event of that :event-type. */
void content__event(struct llm_content *c, struct json_object *root);
void content__es_event(struct llm_content *c, const char *es_type, struct json_object *root);

/* Builds the attribute values; each is NULL when there is nothing to report. Valid until
 * content__free. */
void content__finish(struct llm_content *c, const char **input, const char **output,
		     const char **system);

/* Serializes a message array capped at max bytes (longest texts cut first). Exposed for
 * tests. Returns a malloc'd string. */
char *content__serialize_capped(struct json_object *arr, size_t max);

#endif
