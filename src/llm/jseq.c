// SPDX-License-Identifier: Apache-2.0
/*
 * JSON object sequences (see jseq.h). json-c's incremental tokener parses an object across
 * pieces and tells where it ended inside the last piece, so the bytes after it (the next
 * object, a comma, a newline) are scanned again without copying anything.
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

/* Feeds object bytes to the tokener; returns how many of the n it consumed. */
static size_t jseq__object(struct jseq *j, const uint8_t *d, size_t n, uint64_t ts_ns)
{
	struct json_object *obj;
	size_t used;

	if (n > JSEQ_MAX_OBJECT - j->obj_bytes)
		n = JSEQ_MAX_OBJECT - j->obj_bytes + 1; /* one byte over is enough to know */
	obj = json_tokener_parse_ex(j->tok, (const char *)d, (int)n);
	if (!obj && json_tokener_get_error(j->tok) == json_tokener_continue) {
		j->obj_bytes += n;
		if (j->obj_bytes > JSEQ_MAX_OBJECT)
			jseq__skip(j, &j->st.oversized);
		return n;
	}
	/* Where the object ended, or the byte that did not parse (skipped from there on). */
	used = json_tokener_get_parse_end(j->tok);
	if (!used || used > n)
		used = obj ? n : 1;
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		jseq__skip(j, &j->st.errors);
		return used;
	}
	j->st.objects++;
	json_tokener_reset(j->tok);
	j->state = JSEQ_BETWEEN;
	j->cb(j->ctx, obj, ts_ns);
	json_object_put(obj);
	return used;
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
