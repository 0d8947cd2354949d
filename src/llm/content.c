// SPDX-License-Identifier: Apache-2.0
/*
 * Content capture: provider messages -> the semantic conventions' message JSON, redacted and
 * size-capped. Plain bodies are converted from the parsed JSON; streamed text is accumulated
 * per choice (bounded) and converted when the call ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/content.h"
#include "util/redact.h"

#define CONTENT_DEFAULT_MAX 16384
#define CONTENT_CHOICES 8
#define CONTENT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define TRUNC_MARK " [truncated]"

struct choice_acc {
	char *text;
	size_t len, cap;
	bool used, truncated;
	char finish[32];
};

/* Which API's bodies arrive (content__set_api). */
enum content_api {
	API_DEFAULT = 0, /* not set: "messages" and "system" of OpenAI chat / Anthropic */
	API_OPENAI_CHAT,
	API_ANTHROPIC,
	API_RESPONSES,
	API_COMPLETIONS,
	API_EMBEDDINGS,
	API_GEMINI,
	API_OLLAMA_CHAT,
	API_OLLAMA_GENERATE,
	API_OLLAMA_EMBED,
	API_BEDROCK,
	API_NONE, /* a shape content capture does not know: nothing is kept */
};

struct llm_content {
	enum content_api api;
	struct json_object *input, *system, *output;
	struct choice_acc ch[CONTENT_CHOICES];
	char *input_s, *output_s, *system_s;
};

static struct content_opts content_cfg;

void content__configure(const struct content_opts *o)
{
	content_cfg = *o;
	if (!content_cfg.max_bytes)
		content_cfg.max_bytes = CONTENT_DEFAULT_MAX;
}

bool content__enabled(void)
{
	return content_cfg.enabled;
}

struct llm_content *content__new(void)
{
	return content_cfg.enabled ? calloc(1, sizeof(struct llm_content)) : NULL;
}

void content__free(struct llm_content *c)
{
	if (!c)
		return;
	json_object_put(c->input);
	json_object_put(c->system);
	json_object_put(c->output);
	for (int i = 0; i < CONTENT_CHOICES; i++)
		free(c->ch[i].text);
	free(c->input_s);
	free(c->output_s);
	free(c->system_s);
	free(c);
}

/* ---- building parts: every string is redacted on the way in ---------------------------------- */

static struct json_object *jget(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;

	if (json_object_is_type(o, json_type_object))
		json_object_object_get_ex(o, k, &v);
	return v;
}

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v = jget(o, k);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static struct json_object *redacted(const char *s, size_t n)
{
	char *r = redact__string(s, n, &n, NULL);
	struct json_object *o;

	if (!r)
		return json_object_new_string(REDACT_MARK); /* out of memory: show nothing */
	o = json_object_new_string_len(r, (int)n);
	free(r);
	return o;
}

/* Any JSON value (tool arguments, tool results) as redacted text. */
static struct json_object *redacted_value(struct json_object *v)
{
	const char *s;

	if (json_object_is_type(v, json_type_string))
		return redacted(json_object_get_string(v), (size_t)json_object_get_string_len(v));
	s = json_object_to_json_string_ext(v, CONTENT_FLAGS);
	return redacted(s, strlen(s));
}

static struct json_object *part_new(const char *type)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "type", json_object_new_string(type));
	return p;
}

static void parts_add_text(struct json_object *parts, struct json_object *text)
{
	struct json_object *p = part_new("text");

	json_object_object_add(p, "content", redacted_value(text));
	json_object_array_add(parts, p);
}

static void parts_add_tool_call(struct json_object *parts, const char *id, const char *name,
				struct json_object *args)
{
	struct json_object *p = part_new("tool_call");

	if (id)
		json_object_object_add(p, "id", redacted(id, strlen(id)));
	json_object_object_add(p, "name", redacted(name ? name : "", name ? strlen(name) : 0));
	if (args)
		json_object_object_add(p, "arguments", redacted_value(args));
	json_object_array_add(parts, p);
}

static void parts_add_tool_response(struct json_object *parts, const char *id,
				    struct json_object *resp)
{
	struct json_object *p = part_new("tool_call_response");

	if (id)
		json_object_object_add(p, "id", redacted(id, strlen(id)));
	json_object_object_add(p, "response", resp ? redacted_value(resp) : json_object_new_null());
	json_object_array_add(parts, p);
}

/* One content block of either API. Media is named by its type only: bytes are not exported. */
static void parts_add_block(struct json_object *parts, struct json_object *b)
{
	const char *type = jstr(b, "type");

	if (!type)
		return;
	if (!strcmp(type, "text") || !strcmp(type, "input_text") || !strcmp(type, "output_text")) {
		if (jget(b, "text"))
			parts_add_text(parts, jget(b, "text"));
	} else if (!strcmp(type, "tool_use")) {
		parts_add_tool_call(parts, jstr(b, "id"), jstr(b, "name"), jget(b, "input"));
	} else if (!strcmp(type, "tool_result")) {
		parts_add_tool_response(parts, jstr(b, "tool_use_id"), jget(b, "content"));
	} else {
		char safe[32];
		size_t i;

		for (i = 0; type[i] && i + 1 < sizeof(safe); i++)
			safe[i] =
			    (type[i] >= 'a' && type[i] <= 'z') || type[i] == '_' ? type[i] : '_';
		safe[i] = '\0';
		json_object_array_add(parts, part_new(safe));
	}
}

static void parts_add_content(struct json_object *parts, struct json_object *content)
{
	if (json_object_is_type(content, json_type_string)) {
		parts_add_text(parts, content);
	} else if (json_object_is_type(content, json_type_array)) {
		size_t n = json_object_array_length(content);

		for (size_t i = 0; i < n; i++)
			parts_add_block(parts, json_object_array_get_idx(content, i));
	}
}

static const char *safe_role(const char *role)
{
	static const char *const roles[] = {"system",	 "developer", "user",
					    "assistant", "tool",      "function"};

	for (size_t i = 0; role && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (!strcmp(role, roles[i]))
			return roles[i];
	return "user";
}

/* An OpenAI or Anthropic message -> {"role":..., "parts":[...]} */
static struct json_object *message_convert(struct json_object *m)
{
	struct json_object *out = json_object_new_object(), *parts = json_object_new_array();
	struct json_object *calls = jget(m, "tool_calls");
	const char *role = safe_role(jstr(m, "role"));

	if (!strcmp(role, "tool")) {
		parts_add_tool_response(parts, jstr(m, "tool_call_id"), jget(m, "content"));
	} else {
		parts_add_content(parts, jget(m, "content"));
	}
	for (size_t i = 0;
	     json_object_is_type(calls, json_type_array) && i < json_object_array_length(calls);
	     i++) {
		struct json_object *tc = json_object_array_get_idx(calls, i);
		struct json_object *fn = jget(tc, "function");

		parts_add_tool_call(parts, jstr(tc, "id"), jstr(fn, "name"), jget(fn, "arguments"));
	}
	json_object_object_add(out, "role", json_object_new_string(role));
	json_object_object_add(out, "parts", parts);
	return out;
}

static void request__messages(struct llm_content *c, struct json_object *root)
{
	struct json_object *msgs = jget(root, "messages"), *sys = jget(root, "system");

	if (json_object_is_type(msgs, json_type_array)) {
		size_t n = json_object_array_length(msgs);

		json_object_put(c->input);
		c->input = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(c->input,
					      message_convert(json_object_array_get_idx(msgs, i)));
	}
	if (sys) {
		json_object_put(c->system);
		c->system = json_object_new_array();
		parts_add_content(c->system, sys);
	}
}

static struct json_object *output_message(struct json_object *parts, const char *finish)
{
	struct json_object *m = json_object_new_object();

	json_object_object_add(m, "role", json_object_new_string("assistant"));
	json_object_object_add(m, "parts", parts);
	if (finish)
		json_object_object_add(m, "finish_reason", redacted(finish, strlen(finish)));
	return m;
}

static size_t arr_len(struct json_object *a)
{
	return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

/* The parts of one chat completion choice: its message converted, its parts kept. */
static struct json_object *choice__parts(struct json_object *ch)
{
	struct json_object *m = message_convert(jget(ch, "message")), *parts = NULL;

	json_object_object_get_ex(m, "parts", &parts);
	json_object_get(parts);
	json_object_put(m);
	return parts;
}

/*
 * One output message per element of arr (choices, candidates): parts_of(element) and the
 * element's finish_key. Not an array: the output stays as it was.
 */
static void output__per_element(struct llm_content *c, struct json_object *arr,
				struct json_object *(*parts_of)(struct json_object *el),
				const char *finish_key)
{
	if (!json_object_is_type(arr, json_type_array))
		return;
	json_object_put(c->output);
	c->output = json_object_new_array();
	for (size_t i = 0; i < arr_len(arr); i++) {
		struct json_object *el = json_object_array_get_idx(arr, i);

		json_object_array_add(c->output, output_message(parts_of(el), jstr(el, finish_key)));
	}
}

void content__response_openai(struct llm_content *c, struct json_object *root)
{
	if (c)
		output__per_element(c, jget(root, "choices"), choice__parts, "finish_reason");
}

void content__response_anthropic(struct llm_content *c, struct json_object *root)
{
	struct json_object *parts;

	if (!c || !jget(root, "content"))
		return;
	parts = json_object_new_array();
	parts_add_content(parts, jget(root, "content"));
	json_object_put(c->output);
	c->output = json_object_new_array();
	json_object_array_add(c->output, output_message(parts, jstr(root, "stop_reason")));
}

/* ---- streams -----------------------------------------------------------------------------------
 */

static void choice__append(struct choice_acc *a, const char *s, size_t n)
{
	size_t limit = content_cfg.max_bytes * 2 + 64;

	a->used = true;
	if (a->truncated)
		return;
	if (a->len + n > limit) {
		n = limit - a->len;
		a->truncated = true;
	}
	if (a->len + n + 1 > a->cap) {
		size_t cap = (a->len + n + 1) * 2;
		char *t = realloc(a->text, cap);

		if (!t) {
			a->truncated = true;
			return;
		}
		a->text = t;
		a->cap = cap;
	}
	memcpy(a->text + a->len, s, n);
	a->len += n;
	a->text[a->len] = '\0';
}

static void choice__finish(struct choice_acc *a, const char *reason)
{
	if (reason)
		snprintf(a->finish, sizeof(a->finish), "%s", reason);
	a->used = true;
}

void content__event_openai(struct llm_content *c, struct json_object *root)
{
	struct json_object *choices = jget(root, "choices");

	if (!c || !json_object_is_type(choices, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(choices); i++) {
		struct json_object *ch = json_object_array_get_idx(choices, i);
		struct json_object *idx = jget(ch, "index"),
				   *text = jget(jget(ch, "delta"), "content");
		int64_t k = json_object_is_type(idx, json_type_int) ? json_object_get_int64(idx)
								    : (int64_t)i;

		if (k < 0 || k >= CONTENT_CHOICES)
			continue;
		if (json_object_is_type(text, json_type_string))
			choice__append(&c->ch[k], json_object_get_string(text),
				       (size_t)json_object_get_string_len(text));
		if (jstr(ch, "finish_reason"))
			choice__finish(&c->ch[k], jstr(ch, "finish_reason"));
	}
}

void content__event_anthropic(struct llm_content *c, struct json_object *root)
{
	const char *type = jstr(root, "type");
	struct json_object *delta = jget(root, "delta");

	if (!c || !type)
		return;
	if (!strcmp(type, "content_block_delta") && jstr(delta, "text")) {
		struct json_object *t = jget(delta, "text");

		choice__append(&c->ch[0], json_object_get_string(t),
			       (size_t)json_object_get_string_len(t));
	} else if (!strcmp(type, "message_delta")) {
		choice__finish(&c->ch[0], jstr(delta, "stop_reason"));
	}
}

/* A cut stream may end inside a secret: back up to a word boundary so that no fragment too
 * short for the detectors is left behind. */
static void choice__trim_cut(struct choice_acc *a)
{
	size_t keep = a->len;

	while (keep > 0 && a->len - keep < 256 &&
	       !strchr(" \t\n\r.,;:!?\"'()[]{}", a->text[keep - 1]))
		keep--;
	a->len = a->len - keep < 256 ? keep : a->len;
	if (a->text)
		a->text[a->len] = '\0';
}

static struct json_object *stream_output(struct llm_content *c)
{
	struct json_object *out = NULL;

	for (int i = 0; i < CONTENT_CHOICES; i++) {
		struct choice_acc *a = &c->ch[i];
		struct json_object *parts, *text;

		if (!a->used)
			continue;
		if (!out)
			out = json_object_new_array();
		parts = json_object_new_array();
		if (a->truncated)
			choice__trim_cut(a);
		text = json_object_new_string_len(a->text ? a->text : "", (int)a->len);
		parts_add_text(parts, text);
		json_object_put(text);
		json_object_array_add(out, output_message(parts, a->finish[0] ? a->finish : NULL));
	}
	return out;
}

/* ---- the cap ------------------------------------------------------------------------------------
 */

static void longest_in(struct json_object *part, struct json_object **best, const char **key,
		       size_t *best_len)
{
	static const char *const keys[] = {"content", "response", "arguments"};

	for (size_t k = 0; k < 3; k++) {
		struct json_object *v = jget(part, keys[k]);

		if (json_object_is_type(v, json_type_string) &&
		    (size_t)json_object_get_string_len(v) > *best_len) {
			*best = part;
			*key = keys[k];
			*best_len = (size_t)json_object_get_string_len(v);
		}
	}
}

static void find_longest(struct json_object *arr, struct json_object **best, const char **key,
			 size_t *len)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *m = json_object_array_get_idx(arr, i),
				   *parts = jget(m, "parts");

		if (!json_object_is_type(parts, json_type_array)) {
			longest_in(m, best, key, len); /* system instructions: a list of parts */
			continue;
		}
		for (size_t j = 0; j < json_object_array_length(parts); j++)
			longest_in(json_object_array_get_idx(parts, j), best, key, len);
	}
}

/* Cuts part[key] by at least `excess` bytes at a UTF-8 boundary and marks it truncated. */
static void cut_string(struct json_object *part, const char *key, size_t excess)
{
	struct json_object *v = jget(part, key);
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v), mark = strlen(TRUNC_MARK), keep;
	char *t;

	if (n >= mark && !memcmp(s + n - mark, TRUNC_MARK, mark))
		n -= mark;
	keep = n > excess + mark ? n - excess - mark : 0;
	while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
		keep--;
	t = malloc(keep + mark + 1);
	if (!t)
		return;
	memcpy(t, s, keep);
	memcpy(t + keep, TRUNC_MARK, mark + 1);
	json_object_object_add(part, key, json_object_new_string_len(t, (int)(keep + mark)));
	free(t);
}

char *content__serialize_capped(struct json_object *arr, size_t max)
{
	for (int iter = 0; iter < 64; iter++) {
		const char *s = json_object_to_json_string_ext(arr, CONTENT_FLAGS);
		size_t len = strlen(s), best_len = 0;
		struct json_object *best = NULL;
		const char *key = NULL;

		if (len <= max)
			return strdup(s);
		find_longest(arr, &best, &key, &best_len);
		if (!best || best_len <= strlen(TRUNC_MARK))
			break;
		cut_string(best, key, len - max);
	}
	return strdup("[]"); /* even empty texts do not fit: report no content at all */
}

void content__finish(struct llm_content *c, const char **input, const char **output,
		     const char **system)
{
	*input = *output = *system = NULL;
	if (!c)
		return;
	if (!c->output)
		c->output = stream_output(c);
	if (c->input && !c->input_s)
		c->input_s = content__serialize_capped(c->input, content_cfg.max_bytes);
	if (c->output && !c->output_s)
		c->output_s = content__serialize_capped(c->output, content_cfg.max_bytes);
	if (c->system && !c->system_s)
		c->system_s = content__serialize_capped(c->system, content_cfg.max_bytes);
	*input = c->input_s;
	*output = c->output_s;
	*system = c->system_s;
}

/* ---- every other API the extractors know -------------------------------------------------- */

static const struct {
	const char *shape;
	enum content_api api;
} content_apis[] = {
    {"openai_chat", API_OPENAI_CHAT},	   {"anthropic_messages", API_ANTHROPIC},
    {"openai_responses", API_RESPONSES},   {"openai_completions", API_COMPLETIONS},
    {"openai_embeddings", API_EMBEDDINGS}, {"gemini_generate_content", API_GEMINI},
    {"ollama_chat", API_OLLAMA_CHAT},	   {"ollama_generate", API_OLLAMA_GENERATE},
    {"ollama_embed", API_OLLAMA_EMBED},	   {"bedrock_converse", API_BEDROCK},
};

void content__set_api(struct llm_content *c, const char *shape_name)
{
	if (!c)
		return;
	c->api = API_NONE;
	for (size_t i = 0; shape_name && i < sizeof(content_apis) / sizeof(content_apis[0]); i++)
		if (!strcmp(shape_name, content_apis[i].shape))
			c->api = content_apis[i].api;
}

static struct json_object *message_new(const char *role, struct json_object *parts)
{
	struct json_object *m = json_object_new_object();

	json_object_object_add(m, "role", json_object_new_string(role));
	json_object_object_add(m, "parts", parts);
	return m;
}

static void input__add(struct llm_content *c, struct json_object *msg)
{
	if (!c->input)
		c->input = json_object_new_array();
	json_object_array_add(c->input, msg);
}

/* A part named by its kind only (media, files): their bytes are never exported. The name is
 * made snake_case ("inlineData" -> "inline_data") and anything but letters becomes '_'. */
static void parts_add_kind(struct json_object *parts, const char *kind)
{
	char safe[32];
	size_t n = 0;

	for (; *kind && n + 2 < sizeof(safe); kind++) {
		char ch = *kind;

		if (ch >= 'A' && ch <= 'Z') {
			if (n)
				safe[n++] = '_';
			safe[n++] = (char)(ch + 32);
		} else {
			safe[n++] = (ch >= 'a' && ch <= 'z') ? ch : '_';
		}
	}
	safe[n] = '\0';
	json_object_array_add(parts, part_new(safe));
}

static void parts_add_reasoning(struct json_object *parts, struct json_object *text)
{
	struct json_object *p = part_new("reasoning");

	json_object_object_add(p, "content", redacted_value(text));
	json_object_array_add(parts, p);
}

/*
 * "prompt" of legacy completions and Ollama generate, "input" of embeddings: a string or an
 * array of strings (arrays of token ids carry no text and are left out) -> one user message.
 */
static void request__prompt(struct llm_content *c, struct json_object *v)
{
	struct json_object *parts = json_object_new_array();

	if (json_object_is_type(v, json_type_string))
		parts_add_text(parts, v);
	for (size_t i = 0; i < arr_len(v); i++) {
		struct json_object *e = json_object_array_get_idx(v, i);

		if (json_object_is_type(e, json_type_string))
			parts_add_text(parts, e);
	}
	if (!json_object_array_length(parts)) {
		json_object_put(parts);
		return;
	}
	input__add(c, message_new("user", parts));
}

/* ---- OpenAI Responses: "instructions", "input" items; "output" items ---- */

static struct json_object *responses__item(struct json_object *it)
{
	const char *type = jstr(it, "type");
	struct json_object *parts;

	if (!type || !strcmp(type, "message"))
		return jget(it, "role") ? message_convert(it) : NULL;
	parts = json_object_new_array();
	if (!strcmp(type, "function_call")) {
		parts_add_tool_call(parts, jstr(it, "call_id"), jstr(it, "name"),
				    jget(it, "arguments"));
		return message_new("assistant", parts);
	}
	if (!strcmp(type, "function_call_output")) {
		parts_add_tool_response(parts, jstr(it, "call_id"), jget(it, "output"));
		return message_new("tool", parts);
	}
	json_object_put(parts);
	return NULL; /* reasoning carried over, item references: no text of the caller's */
}

static void request__responses(struct llm_content *c, struct json_object *root)
{
	struct json_object *in = jget(root, "input"), *ins = jget(root, "instructions");

	if (json_object_is_type(ins, json_type_string)) {
		c->system = json_object_new_array();
		parts_add_text(c->system, ins);
	}
	if (json_object_is_type(in, json_type_string))
		request__prompt(c, in);
	for (size_t i = 0; i < arr_len(in); i++) {
		struct json_object *m = responses__item(json_object_array_get_idx(in, i));

		if (m)
			input__add(c, m);
	}
}

static void responses__output_item(struct json_object *parts, struct json_object *it)
{
	const char *type = jstr(it, "type");
	struct json_object *sum = jget(it, "summary");

	if (!type)
		return;
	if (!strcmp(type, "message")) {
		parts_add_content(parts, jget(it, "content"));
	} else if (!strcmp(type, "function_call")) {
		parts_add_tool_call(parts, jstr(it, "call_id"), jstr(it, "name"),
				    jget(it, "arguments"));
	} else if (!strcmp(type, "reasoning")) {
		for (size_t i = 0; i < arr_len(sum); i++)
			if (jget(json_object_array_get_idx(sum, i), "text"))
				parts_add_reasoning(
				    parts, jget(json_object_array_get_idx(sum, i), "text"));
	} else {
		parts_add_kind(parts, type); /* web_search_call, image_generation_call, ... */
	}
}

/* The Responses API has a status, no finish reason: named as llm/openai.c maps it. */
static const char *responses__finish(struct json_object *resp)
{
	const char *status = jstr(resp, "status");

	if (!status)
		return NULL;
	if (!strcmp(status, "completed"))
		return "stop";
	if (!strcmp(status, "incomplete"))
		return jstr(jget(resp, "incomplete_details"), "reason") ?: "incomplete";
	return status;
}

static void response__responses(struct llm_content *c, struct json_object *resp)
{
	struct json_object *out = jget(resp, "output"), *parts;

	if (!json_object_is_type(out, json_type_array))
		return;
	parts = json_object_new_array();
	for (size_t i = 0; i < arr_len(out); i++)
		responses__output_item(parts, json_object_array_get_idx(out, i));
	json_object_put(c->output);
	c->output = json_object_new_array();
	json_object_array_add(c->output, output_message(parts, responses__finish(resp)));
}

/* The final event carries the whole response; the deltas before it are kept in case the
 * stream is cut short of it. */
static void event__responses(struct llm_content *c, struct json_object *root)
{
	const char *type = jstr(root, "type");
	struct json_object *delta = jget(root, "delta");

	if (!type)
		return;
	if (!strcmp(type, "response.output_text.delta") &&
	    json_object_is_type(delta, json_type_string))
		choice__append(&c->ch[0], json_object_get_string(delta),
			       (size_t)json_object_get_string_len(delta));
	else if (!strcmp(type, "response.completed") || !strcmp(type, "response.incomplete") ||
		 !strcmp(type, "response.failed"))
		response__responses(c, jget(root, "response"));
}

/* ---- legacy completions: choices[].text ---- */

/* The parts of one legacy completion choice: its text. */
static struct json_object *completion__parts(struct json_object *ch)
{
	struct json_object *parts = json_object_new_array();

	if (jget(ch, "text"))
		parts_add_text(parts, jget(ch, "text"));
	return parts;
}

static void response__completions(struct llm_content *c, struct json_object *root)
{
	output__per_element(c, jget(root, "choices"), completion__parts, "finish_reason");
}

static void event__completions(struct llm_content *c, struct json_object *root)
{
	struct json_object *choices = jget(root, "choices");

	for (size_t i = 0; i < arr_len(choices); i++) {
		struct json_object *ch = json_object_array_get_idx(choices, i);
		struct json_object *idx = jget(ch, "index"), *text = jget(ch, "text");
		int64_t k = json_object_is_type(idx, json_type_int) ? json_object_get_int64(idx)
								    : (int64_t)i;

		if (k < 0 || k >= CONTENT_CHOICES)
			continue;
		if (json_object_is_type(text, json_type_string))
			choice__append(&c->ch[k], json_object_get_string(text),
				       (size_t)json_object_get_string_len(text));
		if (jstr(ch, "finish_reason"))
			choice__finish(&c->ch[k], jstr(ch, "finish_reason"));
	}
}

/* ---- Gemini: contents[].parts[], systemInstruction; candidates[].content.parts[] ---- */

static void gemini__part(struct json_object *parts, struct json_object *p)
{
	struct json_object *t = jget(p, "thought"), *fc = jget(p, "functionCall");
	struct json_object *fr = jget(p, "functionResponse");

	if (jget(p, "text")) {
		if (json_object_is_type(t, json_type_boolean) && json_object_get_boolean(t))
			parts_add_reasoning(parts, jget(p, "text"));
		else
			parts_add_text(parts, jget(p, "text"));
	} else if (fc) {
		parts_add_tool_call(parts, jstr(fc, "id"), jstr(fc, "name"), jget(fc, "args"));
	} else if (fr) {
		parts_add_tool_response(parts, jstr(fr, "id") ?: jstr(fr, "name"),
					jget(fr, "response"));
	} else if (json_object_is_type(p, json_type_object)) {
		json_object_object_foreach(p, key, val)
		{
			(void)val;
			if (strcmp(key, "thought") && strcmp(key, "thoughtSignature")) {
				parts_add_kind(parts, key); /* inlineData, fileData, ... */
				break;
			}
		}
	}
}

static struct json_object *gemini__parts(struct json_object *content)
{
	struct json_object *gp = jget(content, "parts"), *parts = json_object_new_array();

	for (size_t i = 0; i < arr_len(gp); i++)
		gemini__part(parts, json_object_array_get_idx(gp, i));
	return parts;
}

static const char *gemini__role(const char *role)
{
	if (role && !strcmp(role, "model"))
		return "assistant";
	if (role && !strcmp(role, "function"))
		return "tool";
	return "user";
}

static void request__gemini(struct llm_content *c, struct json_object *root)
{
	struct json_object *contents = jget(root, "contents");
	struct json_object *sys =
	    jget(root, "systemInstruction") ?: jget(root, "system_instruction");

	for (size_t i = 0; i < arr_len(contents); i++) {
		struct json_object *m = json_object_array_get_idx(contents, i);

		input__add(c, message_new(gemini__role(jstr(m, "role")), gemini__parts(m)));
	}
	if (json_object_is_type(sys, json_type_string)) {
		c->system = json_object_new_array();
		parts_add_text(c->system, sys);
	} else if (sys) {
		c->system = gemini__parts(sys);
	}
}

static struct json_object *candidate__parts(struct json_object *cand)
{
	return gemini__parts(jget(cand, "content"));
}

static void response__gemini(struct llm_content *c, struct json_object *root)
{
	output__per_element(c, jget(root, "candidates"), candidate__parts, "finishReason");
}

static void event__gemini(struct llm_content *c, struct json_object *root)
{
	struct json_object *cands = jget(root, "candidates");

	for (size_t i = 0; i < arr_len(cands); i++) {
		struct json_object *cand = json_object_array_get_idx(cands, i);
		struct json_object *gp = jget(jget(cand, "content"), "parts"),
				   *idx = jget(cand, "index");
		int64_t k = json_object_is_type(idx, json_type_int) ? json_object_get_int64(idx)
								    : (int64_t)i;

		if (k < 0 || k >= CONTENT_CHOICES)
			continue;
		c->ch[k].used = true;
		for (size_t j = 0; j < arr_len(gp); j++) {
			struct json_object *p = json_object_array_get_idx(gp, j),
					   *t = jget(p, "text");

			if (json_object_is_type(t, json_type_string) && !jget(p, "thought"))
				choice__append(&c->ch[k], json_object_get_string(t),
					       (size_t)json_object_get_string_len(t));
		}
		if (jstr(cand, "finishReason"))
			choice__finish(&c->ch[k], jstr(cand, "finishReason"));
	}
}

/* ---- Ollama: /api/chat message, /api/generate response; NDJSON chunks of the same form ---- */

static void response__ollama(struct llm_content *c, struct json_object *root)
{
	struct json_object *msg = jget(root, "message"), *parts = NULL, *m;

	if (c->api == API_OLLAMA_GENERATE && jget(root, "response")) {
		parts = json_object_new_array();
		parts_add_text(parts, jget(root, "response"));
	} else if (c->api == API_OLLAMA_CHAT && msg) {
		m = message_convert(msg);
		json_object_object_get_ex(m, "parts", &parts);
		json_object_get(parts);
		json_object_put(m);
	}
	if (!parts)
		return;
	json_object_put(c->output);
	c->output = json_object_new_array();
	json_object_array_add(c->output, output_message(parts, jstr(root, "done_reason")));
}

static void event__ollama(struct llm_content *c, struct json_object *root)
{
	struct json_object *t = c->api == API_OLLAMA_GENERATE
				    ? jget(root, "response")
				    : jget(jget(root, "message"), "content");

	if (json_object_is_type(t, json_type_string))
		choice__append(&c->ch[0], json_object_get_string(t),
			       (size_t)json_object_get_string_len(t));
	if (jstr(root, "done_reason"))
		choice__finish(&c->ch[0], jstr(root, "done_reason"));
}

/* ---- Bedrock Converse: messages[].content[] blocks keyed by kind, system[]; output.message ----
 */

static void bedrock__block(struct json_object *parts, struct json_object *b)
{
	struct json_object *tu = jget(b, "toolUse"), *tr = jget(b, "toolResult");
	struct json_object *rc = jget(jget(b, "reasoningContent"), "reasoningText");

	if (jget(b, "text")) {
		parts_add_text(parts, jget(b, "text"));
	} else if (tu) {
		parts_add_tool_call(parts, jstr(tu, "toolUseId"), jstr(tu, "name"),
				    jget(tu, "input"));
	} else if (tr) {
		parts_add_tool_response(parts, jstr(tr, "toolUseId"), jget(tr, "content"));
	} else if (rc && jget(rc, "text")) {
		parts_add_reasoning(parts, jget(rc, "text"));
	} else if (json_object_is_type(b, json_type_object)) {
		json_object_object_foreach(b, key, val)
		{
			(void)val;
			if (strcmp(key, "cachePoint"))
				parts_add_kind(parts, key); /* image, document, video */
			break;
		}
	}
}

static struct json_object *bedrock__parts(struct json_object *blocks)
{
	struct json_object *parts = json_object_new_array();

	for (size_t i = 0; i < arr_len(blocks); i++)
		bedrock__block(parts, json_object_array_get_idx(blocks, i));
	return parts;
}

static void request__bedrock(struct llm_content *c, struct json_object *root)
{
	struct json_object *msgs = jget(root, "messages"), *sys = jget(root, "system");

	for (size_t i = 0; i < arr_len(msgs); i++) {
		struct json_object *m = json_object_array_get_idx(msgs, i);

		input__add(
		    c, message_new(safe_role(jstr(m, "role")), bedrock__parts(jget(m, "content"))));
	}
	if (json_object_is_type(sys, json_type_array))
		c->system = bedrock__parts(sys);
}

static void response__bedrock(struct llm_content *c, struct json_object *root)
{
	struct json_object *msg = jget(jget(root, "output"), "message");

	if (!msg)
		return;
	json_object_put(c->output);
	c->output = json_object_new_array();
	json_object_array_add(c->output, output_message(bedrock__parts(jget(msg, "content")),
							jstr(root, "stopReason")));
}

void content__es_event(struct llm_content *c, const char *es_type, struct json_object *root)
{
	struct json_object *t = jget(jget(root, "delta"), "text");

	if (!c || !es_type || c->api != API_BEDROCK)
		return;
	if (!strcmp(es_type, "contentBlockDelta") && json_object_is_type(t, json_type_string))
		choice__append(&c->ch[0], json_object_get_string(t),
			       (size_t)json_object_get_string_len(t));
	else if (!strcmp(es_type, "messageStop"))
		choice__finish(&c->ch[0], jstr(root, "stopReason"));
}

/* ---- dispatch ---- */

static void request__completion(struct llm_content *c, struct json_object *root)
{
	request__prompt(c, jget(root, "prompt"));
}

/* Ollama's /api/generate: a prompt and, apart from it, an optional system text. */
static void request__generate(struct llm_content *c, struct json_object *root)
{
	request__prompt(c, jget(root, "prompt"));
	if (json_object_is_type(jget(root, "system"), json_type_string)) {
		c->system = json_object_new_array();
		parts_add_text(c->system, jget(root, "system"));
	}
}

static void request__embed(struct llm_content *c, struct json_object *root)
{
	request__prompt(c, jget(root, "input") ?: jget(root, "prompt"));
}

typedef void (*content_fn)(struct llm_content *c, struct json_object *root);

/* Per API: the request body, a whole response body, one streamed event (NULL: nothing kept;
 * embeddings answer vectors, Bedrock streams through content__es_event). */
static const struct {
	content_fn request, response, event;
} api_fns[API_NONE + 1] = {
    [API_DEFAULT] = {request__messages, content__response_openai, content__event_openai},
    [API_OPENAI_CHAT] = {request__messages, content__response_openai, content__event_openai},
    [API_ANTHROPIC] = {request__messages, content__response_anthropic, content__event_anthropic},
    [API_RESPONSES] = {request__responses, response__responses, event__responses},
    [API_COMPLETIONS] = {request__completion, response__completions, event__completions},
    [API_EMBEDDINGS] = {request__embed, NULL, NULL},
    [API_GEMINI] = {request__gemini, response__gemini, event__gemini},
    [API_OLLAMA_CHAT] = {request__messages, response__ollama, event__ollama},
    [API_OLLAMA_GENERATE] = {request__generate, response__ollama, event__ollama},
    [API_OLLAMA_EMBED] = {request__embed, NULL, NULL},
    [API_BEDROCK] = {request__bedrock, response__bedrock, NULL},
};

static bool content__takes(const struct llm_content *c, struct json_object *root)
{
	return c && (unsigned)c->api < API_NONE && json_object_is_type(root, json_type_object);
}

void content__request(struct llm_content *c, struct json_object *root)
{
	if (content__takes(c, root) && api_fns[c->api].request)
		api_fns[c->api].request(c, root);
}

void content__response(struct llm_content *c, struct json_object *root)
{
	if (content__takes(c, root) && api_fns[c->api].response)
		api_fns[c->api].response(c, root);
}

void content__event(struct llm_content *c, struct json_object *root)
{
	if (content__takes(c, root) && api_fns[c->api].event)
		api_fns[c->api].event(c, root);
}
