// SPDX-License-Identifier: Apache-2.0
/*
 * Google Gemini generateContent (generativelanguage.googleapis.com and Vertex AI):
 * POST .../models/{model}:generateContent answers one GenerateContentResponse;
 * :streamGenerateContent?alt=sse answers them as SSE data, and without alt=sse as the elements
 * of one JSON array, sent as they are made. The model is in the path, not the body.
 *
 * Every chunk may carry usageMetadata, the last one complete: promptTokenCount (cached content
 * included), candidatesTokenCount (without the thoughts), thoughtsTokenCount,
 * cachedContentTokenCount, toolUsePromptTokenCount. The conventions count reasoning within the
 * output and every kind of input within the input, so finish() adds them up.
 */
#include "provider.h"

static void gemini__request(struct llm_extract *x, struct json_object *root)
{
	struct llm_call *c = x->call;
	struct json_object *gc = llm_json__get(root, "generationConfig");

	c->has_temperature = llm_json__double(gc, "temperature", &c->temperature);
	llm_json__int(gc, "maxOutputTokens", &c->max_tokens);
	x->has_messages = json_object_is_type(llm_json__get(root, "contents"), json_type_array);
}

static void gemini__usage(struct llm_extract *x, struct json_object *u)
{
	struct llm_call *c = x->call;

	if (!json_object_is_type(u, json_type_object))
		return;
	llm_json__int(u, "promptTokenCount", &x->raw_input);
	llm_json__int(u, "toolUsePromptTokenCount", &x->aux_input);
	llm_json__int(u, "candidatesTokenCount", &x->raw_output);
	llm_json__int(u, "thoughtsTokenCount", &c->reasoning_tokens);
	llm_json__int(u, "cachedContentTokenCount", &c->cache_read_tokens);
}

/* One finishReason per candidate, taken once (the last chunk of a stream repeats none). */
static void gemini__candidates(struct llm_extract *x, struct json_object *cands)
{
	size_t n =
	    json_object_is_type(cands, json_type_array) ? json_object_array_length(cands) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *cand = json_object_array_get_idx(cands, i);
		const char *fr = llm_json__str(cand, "finishReason");
		int64_t idx = (int64_t)i;

		if (!fr)
			continue;
		llm_json__int(cand, "index", &idx);
		if (idx < 8) {
			if (x->finish_seen & (1u << idx))
				continue;
			x->finish_seen |= (uint8_t)(1u << idx);
		}
		llm__add_finish(x, fr);
	}
}

static void gemini__response(struct llm_extract *x, struct json_object *root)
{
	struct llm_call *c = x->call;
	struct json_object *err = llm_json__get(root, "error");

	if (json_object_is_type(err, json_type_object)) {
		/* {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", ...}} */
		const char *status = llm_json__str(err, "status");

		if (c->status_code < 400)
			llm__set_error(c, status ? status : "error");
		return;
	}
	llm__set_str_once(c->response_id, sizeof(c->response_id),
			  llm_json__str(root, "responseId"));
	llm__set_str_once(c->response_model, sizeof(c->response_model),
			  llm_json__str(root, "modelVersion"));
	gemini__candidates(x, llm_json__get(root, "candidates"));
	gemini__usage(x, llm_json__get(root, "usageMetadata"));
}

static void gemini__event(struct llm_extract *x, const struct sse_event *ev,
			  struct json_object *root)
{
	gemini__response(x, root);
}

static void gemini__finish(struct llm_extract *x)
{
	struct llm_call *c = x->call;

	if (x->raw_input >= 0)
		c->input_tokens = x->raw_input + (x->aux_input > 0 ? x->aux_input : 0);
	/* A reply that was all thinking (cut at maxOutputTokens) has no candidatesTokenCount. */
	if (x->raw_output >= 0 || c->reasoning_tokens >= 0)
		c->output_tokens = (x->raw_output > 0 ? x->raw_output : 0) +
				   (c->reasoning_tokens > 0 ? c->reasoning_tokens : 0);
}

const struct llm_shape llm_shape_gemini = {
    .name = "gemini_generate_content",
    .request = gemini__request,
    .response = gemini__response,
    .event = gemini__event,
    .finish = gemini__finish,
    .operation = "generate_content",
};
