// SPDX-License-Identifier: Apache-2.0
/*
 * OpenAI's APIs, also spoken by Azure OpenAI and by many other servers and gateways:
 *
 * - Chat Completions (POST .../chat/completions). A plain response is one chat.completion
 *   object; a streamed one is chat.completion.chunk objects as SSE data, ended by
 *   `data: [DONE]`, with usage in the last chunk only when the client asked
 *   stream_options.include_usage. prompt_tokens already includes cached tokens and
 *   completion_tokens the reasoning tokens, as the conventions want them.
 * - Legacy Completions (POST .../completions): the same envelope with choices[].text.
 * - Responses (POST .../v1/responses): a response object; streamed, typed SSE events
 *   (response.created ... response.output_text.delta ... response.completed, or
 *   response.incomplete / response.failed / error), the terminal ones carrying the whole response
 *   object with its usage (input_tokens, output_tokens and their _details).
 * - Embeddings (POST .../embeddings): a list object with usage.prompt_tokens, never streamed.
 */
#include <string.h>

#include "provider.h"

/* ---- shared pieces ----------------------------------------------------------------------- */

static void openai__error(struct llm_extract *x, struct json_object *err)
{
	const char *type = llm_json__str(err, "type");

	if (!json_object_is_type(err, json_type_object))
		return;
	if (!type)
		type = llm_json__str(err, "code");
	llm__set_error(x->call, type ? type : "error");
}

static void openai__ids(struct llm_extract *x, struct json_object *root)
{
	struct llm_call *c = x->call;

	llm__set_str_once(c->response_id, sizeof(c->response_id), llm_json__str(root, "id"));
	llm__set_str_once(c->response_model, sizeof(c->response_model),
			  llm_json__str(root, "model"));
}

/* ---- Chat Completions and legacy Completions ---------------------------------------------- */

static void openai__request(struct llm_extract *x, struct json_object *root)
{
	struct json_object *so = llm_json__get(root, "stream_options");
	struct json_object *iu = llm_json__get(so, "include_usage");

	llm__request_common(x, root);
	/* max_completion_tokens replaced max_tokens; either may be sent. */
	if (!llm_json__int(root, "max_completion_tokens", &x->call->max_tokens))
		llm_json__int(root, "max_tokens", &x->call->max_tokens);
	if (json_object_is_type(iu, json_type_boolean))
		x->include_usage = json_object_get_boolean(iu);
}

static void completions__request(struct llm_extract *x, struct json_object *root)
{
	openai__request(x, root);
	x->has_messages = llm_json__get(root, "prompt") != NULL;
}

static void openai__usage(struct llm_extract *x, struct json_object *usage)
{
	struct llm_call *c = x->call;

	if (!json_object_is_type(usage, json_type_object))
		return; /* compatible servers send "usage": null in every chunk but the last */
	llm_json__int(usage, "prompt_tokens", &c->input_tokens);
	llm_json__int(usage, "completion_tokens", &c->output_tokens);
	llm_json__int(llm_json__get(usage, "prompt_tokens_details"), "cached_tokens",
		      &c->cache_read_tokens);
	llm_json__int(llm_json__get(usage, "completion_tokens_details"), "reasoning_tokens",
		      &c->reasoning_tokens);
}

/* Each choice reports its finish_reason once (in its last chunk when streamed). */
static void openai__choices(struct llm_extract *x, struct json_object *choices)
{
	size_t n;

	if (!json_object_is_type(choices, json_type_array))
		return;
	n = json_object_array_length(choices);
	for (size_t i = 0; i < n; i++) {
		struct json_object *ch = json_object_array_get_idx(choices, i);
		const char *fr = llm_json__str(ch, "finish_reason");
		int64_t idx = (int64_t)i;

		if (!fr)
			continue;
		llm_json__int(ch, "index", &idx);
		if (idx < 8) {
			if (x->finish_seen & (1u << idx))
				continue;
			x->finish_seen |= (uint8_t)(1u << idx);
		}
		llm__add_finish(x, fr);
	}
}

/* A chat.completion and a chat.completion.chunk carry the same fields we want. */
static void openai__response(struct llm_extract *x, struct json_object *root)
{
	openai__ids(x, root);
	openai__choices(x, llm_json__get(root, "choices"));
	openai__usage(x, llm_json__get(root, "usage"));
	/* An error body at status >= 400 already set error.type from the status. */
	if (x->call->status_code < 400)
		openai__error(x, llm_json__get(root, "error"));
}

static void openai__event(struct llm_extract *x, const struct sse_event *ev,
			  struct json_object *root)
{
	openai__response(x, root);
}

static void openai__finish(struct llm_extract *x)
{
}

const struct llm_shape llm_shape_openai = {
	.name = "openai_chat",
	.request = openai__request,
	.response = openai__response,
	.event = openai__event,
	.finish = openai__finish,
	.operation = "chat",
	.api_type = "chat_completions",
};

const struct llm_shape llm_shape_openai_completions = {
	.name = "openai_completions",
	.request = completions__request,
	.response = openai__response,
	.event = openai__event,
	.finish = openai__finish,
	.operation = "text_completion",
};

/* ---- Responses -------------------------------------------------------------------------- */

static void responses__request(struct llm_extract *x, struct json_object *root)
{
	llm__request_common(x, root);
	llm_json__int(root, "max_output_tokens", &x->call->max_tokens);
	/* "input" is the conversation; a follow-up may carry only previous_response_id. */
	x->has_messages = llm_json__get(root, "input") != NULL ||
			  llm_json__get(root, "previous_response_id") != NULL;
}

static void responses__usage(struct llm_extract *x, struct json_object *usage)
{
	struct llm_call *c = x->call;

	if (!json_object_is_type(usage, json_type_object))
		return;
	llm_json__int(usage, "input_tokens", &c->input_tokens); /* cached ones included */
	llm_json__int(usage, "output_tokens", &c->output_tokens);
	llm_json__int(llm_json__get(usage, "input_tokens_details"), "cached_tokens",
		      &c->cache_read_tokens);
	llm_json__int(llm_json__get(usage, "output_tokens_details"), "reasoning_tokens",
		      &c->reasoning_tokens);
}

static bool responses__has_tool_call(struct json_object *output)
{
	size_t n = json_object_is_type(output, json_type_array) ? json_object_array_length(output)
								 : 0;

	for (size_t i = 0; i < n; i++) {
		const char *t = llm_json__str(json_object_array_get_idx(output, i), "type");

		if (t && !strcmp(t, "function_call"))
			return true;
	}
	return false;
}

/*
 * The Responses API has a status instead of finish reasons. Mapped to Chat Completions' words
 * so the two APIs read alike: completed -> "stop" ("tool_calls" when the output asks for a
 * function call), incomplete -> incomplete_details.reason ("max_output_tokens",
 * "content_filter"), cancelled -> "cancelled". failed gives error.type = error.code instead.
 */
static void responses__status(struct llm_extract *x, struct json_object *resp)
{
	const char *status = llm_json__str(resp, "status");
	const char *reason = llm_json__str(llm_json__get(resp, "incomplete_details"), "reason");
	struct llm_call *c = x->call;

	if (!status)
		return;
	if (!strcmp(status, "completed")) {
		reason = responses__has_tool_call(llm_json__get(resp, "output")) ? "tool_calls"
										 : "stop";
	} else if (!strcmp(status, "incomplete")) {
		reason = reason ? reason : "incomplete";
	} else if (!strcmp(status, "cancelled")) {
		reason = "cancelled";
	} else {
		if (!strcmp(status, "failed") && c->status_code < 400) {
			const char *code = llm_json__str(llm_json__get(resp, "error"), "code");

			llm__set_error(c, code ? code : "failed");
		}
		return; /* queued, in_progress: not over yet */
	}
	llm__copy_str(c->finish_reasons[0], sizeof(c->finish_reasons[0]), reason);
	c->n_finish_reasons = 1;
}

static void responses__object(struct llm_extract *x, struct json_object *resp)
{
	if (!json_object_is_type(resp, json_type_object))
		return;
	openai__ids(x, resp);
	responses__usage(x, llm_json__get(resp, "usage"));
	responses__status(x, resp);
}

static void responses__response(struct llm_extract *x, struct json_object *root)
{
	struct json_object *err = llm_json__get(root, "error");

	/* A 4xx/5xx body is {"error": {...}}; the status already gave error.type. */
	if (json_object_is_type(err, json_type_object) && !llm_json__get(root, "object"))
		return;
	responses__object(x, root);
}

static void responses__event(struct llm_extract *x, const struct sse_event *ev,
			     struct json_object *root)
{
	const char *type = llm_json__str(root, "type");

	if (!type)
		type = ev->event;
	if (!strncmp(type, "response.", 9) && llm_json__get(root, "response")) {
		/* created, in_progress, completed, incomplete, failed, queued */
		responses__object(x, llm_json__get(root, "response"));
	} else if (!strcmp(type, "error")) {
		const char *code = llm_json__str(root, "code");

		llm__set_error(x->call, code ? code : "error");
	}
}

const struct llm_shape llm_shape_openai_responses = {
	.name = "openai_responses",
	.request = responses__request,
	.response = responses__response,
	.event = responses__event,
	.finish = openai__finish,
	.operation = "chat",
	.api_type = "responses",
};

/* ---- Embeddings ------------------------------------------------------------------------- */

static void embeddings__request(struct llm_extract *x, struct json_object *root)
{
	llm__request_common(x, root);
	x->has_messages = llm_json__get(root, "input") != NULL;
}

static void embeddings__response(struct llm_extract *x, struct json_object *root)
{
	struct llm_call *c = x->call;

	llm__set_str_once(c->response_model, sizeof(c->response_model),
			  llm_json__str(root, "model"));
	llm_json__int(llm_json__get(root, "usage"), "prompt_tokens", &c->input_tokens);
	if (c->status_code < 400)
		openai__error(x, llm_json__get(root, "error"));
}

static void embeddings__event(struct llm_extract *x, const struct sse_event *ev,
			      struct json_object *root)
{
	embeddings__response(x, root);
}

const struct llm_shape llm_shape_openai_embeddings = {
	.name = "openai_embeddings",
	.request = embeddings__request,
	.response = embeddings__response,
	.event = embeddings__event,
	.finish = openai__finish,
	.operation = "embeddings",
};
