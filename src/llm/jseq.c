// SPDX-License-Identifier: Apache-2.0
/*
 * JSON object sequences (see jseq.h). A small scanner finds where each top-level object ends;
 * json-c's incremental tokener parses the object's bytes across pieces, without copying them.
 */
#include <stdlib.h>

#include "jseq.h"

enum jseq_state {
	JSEQ_BETWEEN, /* before an object: whitespace, '[', ',' and ']' are skipped */
	JSEQ_OBJECT,  /* inside an object */
	JSEQ_SKIP,    /* after an error: up to the next newline */
};

struct jseq {
	jseq_cb cb;
	void *ctx;
	enum jseq_state state;
	struct json_tokener *tok;
	size_t obj_bytes;
	int depth;   /* of brackets in the object being read */
	bool in_str; /* inside one of its strings */
	bool esc;    /* right after a backslash there */
	struct jseq_stats st;
};

struct jseq *jseq__new(jseq_cb cb, void *ctx)
{
	struct jseq *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->tok = json_tokener_new_ex(JSEQ_MAX_DEPTH);
	if (!j->tok) {
		free(j);
		return NULL;
	}
	j->cb = cb;
	j->ctx = ctx;
	return j;
}

void jseq__free(struct jseq *j)
{
	if (!j)
		return;
	json_tokener_free(j->tok);
	free(j);
}

const struct jseq_stats *jseq__stats(const struct jseq *j)
{
	return &j->st;
}

/* Not an object where one belongs: resume at the next line (NDJSON's framing). */
static void jseq__skip(struct jseq *j, uint64_t *counter)
{
	(*counter)++;
	j->state = JSEQ_SKIP;
	json_tokener_reset(j->tok);
}

static bool jseq__separator(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == '[' || c == ']';
}

/* How many of the n bytes belong to the object being read, following strings so that braces
 * inside them do not count; *closed when its last '}' is among them. json-c is then given
 * exactly the object: past its end it would go on eating whitespace and comments, and take a
 * '/' there for a broken comment. */
static size_t jseq__scan(struct jseq *j, const uint8_t *d, size_t n, bool *closed)
{
	*closed = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = d[i];

		if (j->in_str) {
			if (j->esc)
				j->esc = false;
			else if (c == '\\')
				j->esc = true;
			else if (c == '"')
				j->in_str = false;
		} else if (c == '"') {
			j->in_str = true;
		} else if (c == '{' || c == '[') {
			j->depth++;
		} else if ((c == '}' || c == ']') && --j->depth <= 0) {
			*closed = true;
			return i + 1;
		}
	}
	return n;
}

/* Feeds object bytes to the tokener; returns how many of the n it consumed. Where the object
 * turns out bad or too big depends only on its bytes, never on how they were split. */
static size_t jseq__object(struct jseq *j, const uint8_t *d, size_t n, uint64_t ts_ns)
{
	size_t lim = JSEQ_MAX_OBJECT - j->obj_bytes, k, fed, used;
	struct json_object *obj;
	bool closed;

	k = jseq__scan(j, d, n, &closed);
	fed = k < lim ? k : lim;
	obj = json_tokener_parse_ex(j->tok, (const char *)d, (int)fed);
	if (!obj && json_tokener_get_error(j->tok) == json_tokener_continue) {
		j->obj_bytes += fed;
		if (k > fed)
			jseq__skip(j, &j->st.oversized);
		else if (closed) /* balanced, yet unfinished to json-c (a comment) */
			jseq__skip(j, &j->st.errors);
		return fed;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		/* Skipping starts at the byte that did not parse (maybe the newline ending it). */
		used = json_tokener_get_parse_end(j->tok);
		json_object_put(obj);
		jseq__skip(j, &j->st.errors);
		return used < fed ? used : fed;
	}
	j->st.objects++;
	json_tokener_reset(j->tok);
	j->state = JSEQ_BETWEEN;
	j->cb(j->ctx, obj, ts_ns);
	json_object_put(obj);
	return fed;
}

void jseq__feed(struct jseq *j, const uint8_t *d, size_t n, uint64_t ts_ns)
{
	size_t at = 0;

	while (at < n) {
		if (j->state == JSEQ_OBJECT) {
			at += jseq__object(j, d + at, n - at, ts_ns);
		} else if (j->state == JSEQ_SKIP) {
			if (d[at++] == '\n')
				j->state = JSEQ_BETWEEN;
		} else if (d[at] == '{') {
			j->state = JSEQ_OBJECT;
			j->obj_bytes = 0;
			j->depth = 0;
			j->in_str = j->esc = false;
		} else if (jseq__separator(d[at])) {
			at++;
		} else {
			jseq__skip(j, &j->st.errors);
		}
	}
}

void jseq__gap(struct jseq *j)
{
	json_tokener_reset(j->tok);
	j->state = JSEQ_SKIP;
}

bool jseq__end(struct jseq *j)
{
	bool cut = j->state == JSEQ_OBJECT;

	if (cut)
		j->st.errors++;
	json_tokener_reset(j->tok);
	j->state = JSEQ_BETWEEN;
	return cut;
}
