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

struct llm_content {
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

void content__request(struct llm_content *c, struct json_object *root)
{
	struct json_object *msgs = jget(root, "messages"), *sys = jget(root, "system");

	if (!c)
		return;
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

void content__response_openai(struct llm_content *c, struct json_object *root)
{
	struct json_object *choices = jget(root, "choices");
	size_t n;

	if (!c || !json_object_is_type(choices, json_type_array))
		return;
	n = json_object_array_length(choices);
	json_object_put(c->output);
	c->output = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *ch = json_object_array_get_idx(choices, i);
		struct json_object *m = message_convert(jget(ch, "message"));
		struct json_object *parts = NULL;

		json_object_object_get_ex(m, "parts", &parts);
		json_object_get(parts);
		json_object_put(m);
		json_object_array_add(c->output, output_message(parts, jstr(ch, "finish_reason")));
	}
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
