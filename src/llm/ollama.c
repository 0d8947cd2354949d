// SPDX-License-Identifier: Apache-2.0
/*
 * Ollama's native API (usually plain HTTP on port 11434): POST /api/chat, /api/generate and
 * /api/embed (the older /api/embeddings too). Chat and generate stream by default: unless the
 * request says "stream": false, the answer is newline-delimited JSON (application/x-ndjson),
 * one object per piece of text, the last with "done": true, done_reason, prompt_eval_count
 * (input tokens) and eval_count (output tokens). There is no response id.
 */

#include "provider.h"

static void ollama__request(struct llm_extract *x, struct json_object *root, const char *marker)
{
	struct llm_call *c = x->call;
	struct json_object *opts = llm_json__get(root, "options");
	struct json_object *stream = llm_json__get(root, "stream");
	const char *model = llm_json__str(root, "model");

	if (model)
		llm__copy_str(c->request_model, sizeof(c->request_model), model);
	c->stream =
	    !(json_object_is_type(stream, json_type_boolean) && !json_object_get_boolean(stream));
	c->has_temperature = llm_json__double(opts, "temperature", &c->temperature);
	llm_json__int(opts, "num_predict", &c->max_tokens);
	x->has_messages = llm_json__get(root, marker) != NULL;
}

static void ollama__chat_request(struct llm_extract *x, struct json_object *root)
{
	ollama__request(x, root, "messages");
}

static void ollama__generate_request(struct llm_extract *x, struct json_object *root)
{
	ollama__request(x, root, "prompt");
}

static void ollama__embed_request(struct llm_extract *x, struct json_object *root)
{
	ollama__request(x, root, "input");
	x->call->stream = 0;  /* embeddings never stream */
	if (!x->has_messages) /* /api/embeddings takes "prompt" */
		x->has_messages = llm_json__get(root, "prompt") != NULL;
}

/* A final object and every streamed one have the same form; counts come with "done". */
static void ollama__response(struct llm_extract *x, struct json_object *root)
{
	struct llm_call *c = x->call;
	const char *err = llm_json__str(root, "error");
	struct json_object *done = llm_json__get(root, "done");
	const char *reason = llm_json__str(root, "done_reason");

	if (err) {
		/* {"error": "model \"x\" not found, try pulling it first"}: free text, so only the
		 * fact of an error is kept when the status did not already say it. */
		if (c->status_code < 400)
			llm__set_error(c, "error");
		return;
	}
	llm__set_str_once(c->response_model, sizeof(c->response_model),
			  llm_json__str(root, "model"));
	llm_json__int(root, "prompt_eval_count", &c->input_tokens);
	llm_json__int(root, "eval_count", &c->output_tokens);
	if (reason && json_object_is_type(done, json_type_boolean) &&
	    json_object_get_boolean(done) && !c->n_finish_reasons)
		llm__add_finish(x, reason);
}

static void ollama__event(struct llm_extract *x, const struct sse_event *ev,
			  struct json_object *root)
{
	ollama__response(x, root);
}

static void ollama__finish(struct llm_extract *x)
{
}

const struct llm_shape llm_shape_ollama_chat = {
    .name = "ollama_chat",
    .request = ollama__chat_request,
    .response = ollama__response,
    .event = ollama__event,
    .finish = ollama__finish,
    .operation = "chat",
};

const struct llm_shape llm_shape_ollama_generate = {
    .name = "ollama_generate",
    .request = ollama__generate_request,
    .response = ollama__response,
    .event = ollama__event,
    .finish = ollama__finish,
    .operation = "text_completion",
};

const struct llm_shape llm_shape_ollama_embed = {
    .name = "ollama_embed",
    .request = ollama__embed_request,
    .response = ollama__response,
    .event = ollama__event,
    .finish = ollama__finish,
    .operation = "embeddings",
};
