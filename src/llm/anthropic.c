// SPDX-License-Identifier: Apache-2.0
/*
 * Anthropic Messages (POST /v1/messages). A plain response is one message object; a streamed
 * one is message_start (id, model, usage so far), content_block_*, ping, message_delta
 * (stop_reason, cumulative usage) and message_stop, or an error event.
 *
 * Anthropic's input_tokens excludes cached input; the conventions' gen_ai.usage.input_tokens
 * includes it, so finish() adds cache_read_input_tokens and cache_creation_input_tokens.
 */
#include <string.h>

#include "provider.h"

static void anthropic__request(struct llm_extract *x, struct json_object *root)
{
	llm__request_common(x, root);
	llm_json__int(root, "max_tokens", &x->call->max_tokens);
}

/* Usage in message_start and message_delta: every field present replaces the earlier value,
 * since message_delta's counts are cumulative. */
static void anthropic__usage(struct llm_extract *x, struct json_object *usage)
{
	struct llm_call *c = x->call;

	llm_json__int(usage, "input_tokens", &x->raw_input);
	llm_json__int(usage, "output_tokens", &c->output_tokens);
	llm_json__int(usage, "cache_read_input_tokens", &c->cache_read_tokens);
	llm_json__int(usage, "cache_creation_input_tokens", &c->cache_creation_tokens);
}

static void anthropic__error(struct llm_extract *x, struct json_object *root)
{
	struct json_object *err = llm_json__get(root, "error");
	const char *type = llm_json__str(err, "type");

	/* An error body at status >= 400 already set error.type from the status. */
	llm__set_error(x->call, type ? type : "error");
}

/* One message has one stop_reason; a later value replaces an earlier one. */
static void anthropic__stop(struct llm_extract *x, const char *reason)
{
	struct llm_call *c = x->call;

	if (!reason)
		return;
	llm__copy_str(c->finish_reasons[0], sizeof(c->finish_reasons[0]), reason);
	c->n_finish_reasons = 1;
}

static void anthropic__message(struct llm_extract *x, struct json_object *msg)
{
	struct llm_call *c = x->call;

	llm__set_str_once(c->response_id, sizeof(c->response_id), llm_json__str(msg, "id"));
	llm__set_str_once(c->response_model, sizeof(c->response_model),
			  llm_json__str(msg, "model"));
	anthropic__stop(x, llm_json__str(msg, "stop_reason"));
	anthropic__usage(x, llm_json__get(msg, "usage"));
}

static void anthropic__response(struct llm_extract *x, struct json_object *root)
{
	const char *type = llm_json__str(root, "type");

	if (type && !strcmp(type, "error"))
		anthropic__error(x, root);
	else
		anthropic__message(x, root);
}

static void anthropic__event(struct llm_extract *x, const struct sse_event *ev,
			     struct json_object *root)
{
	const char *type = llm_json__str(root, "type");

	/* The data's "type" repeats the event name; older proxies may drop one of them. */
	if (!type)
		type = ev->event;
	if (!strcmp(type, "message_start")) {
		anthropic__message(x, llm_json__get(root, "message"));
	} else if (!strcmp(type, "message_delta")) {
		anthropic__stop(x, llm_json__str(llm_json__get(root, "delta"), "stop_reason"));
		anthropic__usage(x, llm_json__get(root, "usage"));
	} else if (!strcmp(type, "error")) {
		anthropic__error(x, root);
	}
}

/* Shared with Bedrock Converse, whose input count also leaves out the cached parts. */
void llm_finish__add_cached_input(struct llm_extract *x)
{
	struct llm_call *c = x->call;

	if (x->raw_input < 0)
		return;
	c->input_tokens = x->raw_input;
	if (c->cache_read_tokens > 0)
		c->input_tokens += c->cache_read_tokens;
	if (c->cache_creation_tokens > 0)
		c->input_tokens += c->cache_creation_tokens;
}

const struct llm_shape llm_shape_anthropic = {
	.name = "anthropic_messages",
	.request = anthropic__request,
	.response = anthropic__response,
	.event = anthropic__event,
	.finish = llm_finish__add_cached_input,
};
