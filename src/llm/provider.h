/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to llm/: one API shape per provider family (OpenAI Chat Completions, Anthropic
 * Messages). llm.c detects the call, buffers and parses the bodies with json-c and hands the
 * parsed JSON to the shape, which fills the llm_call through struct llm_extract.
 */
#ifndef TOKENTAP_LLM_PROVIDER_H
#define TOKENTAP_LLM_PROVIDER_H

#include <json-c/json.h>

#include "../proto/sse.h"
#include "llm.h"

/* What a shape fills while an exchange goes on. */
struct llm_extract {
	struct llm_call *call;
	int64_t raw_input;     /* Anthropic input_tokens, without the cached parts; -1 unknown */
	bool include_usage;    /* OpenAI stream_options.include_usage */
	bool has_messages;     /* the request body has the shape's "messages" array */
	uint8_t finish_seen;   /* bit per choice index that already gave its finish_reason */
	int64_t raw_output;    /* Gemini candidatesTokenCount, without the thoughts; -1 unknown */
	int64_t aux_input;     /* Gemini toolUsePromptTokenCount, counted apart; 0 when none */
	bool json_seq;         /* a JSON-typed response is a stream of objects (JSON array) */
};

struct llm_shape {
	const char *name;
	/* Parsed request body (a JSON object). */
	void (*request)(struct llm_extract *x, struct json_object *root);
	/* Parsed non-streamed response body (a JSON object). */
	void (*response)(struct llm_extract *x, struct json_object *root);
	/* One streamed event whose data parsed as a JSON object. */
	void (*event)(struct llm_extract *x, const struct sse_event *ev, struct json_object *root);
	/* The exchange ended: derive what depends on several fields. */
	void (*finish)(struct llm_extract *x);
	const char *operation; /* gen_ai.operation.name; NULL: "chat" */
	const char *api_type;  /* openai.api.type for OpenAI's own APIs, else NULL */
	/* One AWS event-stream message whose payload parsed as a JSON object: `type` is its
	 * :event-type, or its :exception-type when `exception`. NULL: such messages are ignored. */
	void (*es_event)(struct llm_extract *x, const char *type, bool exception,
			 struct json_object *root);
};

extern const struct llm_shape llm_shape_openai;
extern const struct llm_shape llm_shape_anthropic;
extern const struct llm_shape llm_shape_openai_responses;
extern const struct llm_shape llm_shape_openai_embeddings;
extern const struct llm_shape llm_shape_openai_completions;
extern const struct llm_shape llm_shape_gemini;
extern const struct llm_shape llm_shape_ollama_chat;
extern const struct llm_shape llm_shape_ollama_generate;
extern const struct llm_shape llm_shape_ollama_embed;
extern const struct llm_shape llm_shape_bedrock_converse;

/* What the request line says (detect.c): the API shape, and facts the path carries. */
struct llm_route {
	const struct llm_shape *shape;
	enum llm_provider path_provider; /* provider when the host names none */
	const char *path_provider_name;
	char model[LLM_STR];             /* model named by the path ("" none), URL-decoded */
	bool model_is_deployment;        /* Azure: used only when the body names no model */
	int stream;                      /* 1 or 0 when the path says, else -1 */
	bool json_seq;                   /* see llm_extract.json_seq */
};

/* Matches a POST's path (query included); false when it is no LLM API we know. */
bool llm_detect__route(const char *path, size_t len, struct llm_route *r);
/* The provider a host name stands for (lower case, no port), or NULL; sets *p. */
const char *llm_detect__provider(const char *host, enum llm_provider *p);

/* Helpers shared by the shapes (llm.c). All tolerate a NULL or mistyped object. */
struct json_object *llm_json__get(struct json_object *o, const char *key);
const char *llm_json__str(struct json_object *o, const char *key); /* NULL unless a string */
/* Stores a non-negative integer field into *out; returns false (and leaves *out) otherwise. */
bool llm_json__int(struct json_object *o, const char *key, int64_t *out);
bool llm_json__double(struct json_object *o, const char *key, double *out);
/* Copies at most cap-1 bytes, never ending inside a UTF-8 sequence. */
void llm__copy_str(char *dst, size_t cap, const char *src);
void llm__set_str_once(char *dst, size_t cap, const char *src); /* only while dst is empty */
void llm__add_finish(struct llm_extract *x, const char *reason);
void llm__set_error(struct llm_call *c, const char *type); /* the first error wins */
/* The request fields both shapes share: model, stream, temperature, messages. */
void llm__request_common(struct llm_extract *x, struct json_object *root);
/* finish hook: input_tokens = raw_input + cache read + cache creation (Anthropic, Bedrock). */
void llm_finish__add_cached_input(struct llm_extract *x);

#endif
