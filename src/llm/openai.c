// SPDX-License-Identifier: Apache-2.0
/*
 * OpenAI Chat Completions (POST /v1/chat/completions), also spoken by many self-hosted servers.
 * A plain response is one chat.completion object; a streamed one is chat.completion.chunk
 * objects as SSE data, ended by `data: [DONE]`, with usage in the last chunk only when the
 * client asked stream_options.include_usage. prompt_tokens already includes cached tokens.
 */
#include "provider.h"

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

static void openai__usage(struct llm_extract *x, struct json_object *usage)
{
	struct llm_call *c = x->call;

	if (!json_object_is_type(usage, json_type_object))
		return; /* compatible servers send "usage": null in every chunk but the last */
	llm_json__int(usage, "prompt_tokens", &c->input_tokens);
	llm_json__int(usage, "completion_tokens", &c->output_tokens);
	llm_json__int(llm_json__get(usage, "prompt_tokens_details"), "cached_tokens",
		      &c->cache_read_tokens);
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

static void openai__error(struct llm_extract *x, struct json_object *err)
{
	const char *type = llm_json__str(err, "type");

	if (!json_object_is_type(err, json_type_object))
		return;
	if (!type)
		type = llm_json__str(err, "code");
	llm__set_error(x->call, type ? type : "error");
}

/* A chat.completion and a chat.completion.chunk carry the same fields we want. */
static void openai__response(struct llm_extract *x, struct json_object *root)
{
	struct llm_call *c = x->call;

	llm__set_str_once(c->response_id, sizeof(c->response_id), llm_json__str(root, "id"));
	llm__set_str_once(c->response_model, sizeof(c->response_model),
			  llm_json__str(root, "model"));
	openai__choices(x, llm_json__get(root, "choices"));
	openai__usage(x, llm_json__get(root, "usage"));
	/* An error body at status >= 400 already set error.type from the status. */
	if (c->status_code < 400)
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
};
