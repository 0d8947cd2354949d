// SPDX-License-Identifier: Apache-2.0
/*
 * AWS Bedrock Runtime Converse API: POST /model/{modelId}/converse answers one JSON object
 * (output.message, stopReason, usage); /converse-stream answers an AWS event stream
 * (application/vnd.amazon.eventstream, decoded by proto/eventstream.c) of messageStart,
 * contentBlockStart/Delta/Stop, messageStop {stopReason} and metadata {usage, metrics} events,
 * or an exception message (throttlingException, modelStreamErrorException, ...).
 * The model id is in the path (URL-encoded: "anthropic.claude-3-haiku-20240307-v1%3A0").
 *
 * usage.inputTokens does not count cacheReadInputTokens and cacheWriteInputTokens (as with
 * Anthropic's API, totalTokens is the sum of all four); the conventions' input_tokens does, so
 * finish() adds them.
 */
#include <string.h>

#include "provider.h"

static void bedrock__request(struct llm_extract *x, struct json_object *root)
{
	struct llm_call *c = x->call;
	struct json_object *ic = llm_json__get(root, "inferenceConfig");

	c->has_temperature = llm_json__double(ic, "temperature", &c->temperature);
	llm_json__int(ic, "maxTokens", &c->max_tokens);
	x->has_messages = json_object_is_type(llm_json__get(root, "messages"), json_type_array);
}

static void bedrock__usage(struct llm_extract *x, struct json_object *u)
{
	struct llm_call *c = x->call;

	if (!json_object_is_type(u, json_type_object))
		return;
	llm_json__int(u, "inputTokens", &x->raw_input);
	llm_json__int(u, "outputTokens", &c->output_tokens);
	llm_json__int(u, "cacheReadInputTokens", &c->cache_read_tokens);
	llm_json__int(u, "cacheWriteInputTokens", &c->cache_creation_tokens);
}

static void bedrock__stop(struct llm_extract *x, const char *reason)
{
	struct llm_call *c = x->call;

	if (!reason)
		return;
	llm__copy_str(c->finish_reasons[0], sizeof(c->finish_reasons[0]), reason);
	c->n_finish_reasons = 1;
}

static void bedrock__response(struct llm_extract *x, struct json_object *root)
{
	/* Errors are {"message": "..."} with the status (and x-amzn-ErrorType) saying which. */
	bedrock__stop(x, llm_json__str(root, "stopReason"));
	bedrock__usage(x, llm_json__get(root, "usage"));
}

static void bedrock__event(struct llm_extract *x, const struct sse_event *ev,
			   struct json_object *root)
{
	bedrock__response(x, root);
}

static void bedrock__es_event(struct llm_extract *x, const char *type, bool exception,
			      struct json_object *root)
{
	if (exception) {
		llm__set_error(x->call, type[0] ? type : "exception");
		return;
	}
	if (!strcmp(type, "messageStop"))
		bedrock__stop(x, llm_json__str(root, "stopReason"));
	else if (!strcmp(type, "metadata"))
		bedrock__usage(x, llm_json__get(root, "usage"));
}

const struct llm_shape llm_shape_bedrock_converse = {
    .name = "bedrock_converse",
    .request = bedrock__request,
    .response = bedrock__response,
    .event = bedrock__event,
    .finish = llm_finish__add_cached_input,
    .operation = "chat",
    .es_event = bedrock__es_event,
};
