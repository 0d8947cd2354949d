// SPDX-License-Identifier: Apache-2.0
/*
 * JSON object sequences (see jseq.h). A small scanner follows strings and brackets to find
 * where each top-level object ends; the object's bytes are collected (at most JSEQ_MAX_OBJECT)
 * and parsed by json-c in one go. Parsing whole objects, not pieces, keeps the result
 * independent of where the pieces were cut: json-c's incremental parser judges some bad input
 * (a number like 2-2) differently when it arrives in two pieces, and past an object's end it
 * reads on into whitespace and comments.
 */
#include <stdlib.h>
#include <string.h>

#include "jseq.h"

enum jseq_state {
	JSEQ_BETWEEN, /* before an object: whitespace, '[', ',' and ']' are skipped */
	JSEQ_OBJECT,  /* inside an object */
	JSEQ_DISCARD, /* inside an oversized object: up to its end, unkept */
	JSEQ_SKIP,    /* after an error: up to the next newline */
};

struct jseq {
	jseq_cb cb;
	void *ctx;
	enum jseq_state state;
	struct json_tokener *tok;
	char *buf; /* the object being read */
	size_t len, cap;
	int depth;   /* of brackets in it */
	bool in_str; /* inside one of its strings */
	bool esc;    /* right after a backslash there */
	struct jseq_stats st;
};

enum jseq_scan {
	JSEQ_SCAN_MORE,	  /* the object goes on past these bytes */
	JSEQ_SCAN_CLOSED, /* its last '}' is among them */
	JSEQ_SCAN_NUL,	  /* a NUL byte, which JSON never has (json-c takes it for the end) */
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
	free(j->buf);
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
	j->len = 0;
}

static bool jseq__separator(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == '[' || c == ']';
}

/* How many of the n bytes belong to the object being read; *how says why the count ends. */
static size_t jseq__scan(struct jseq *j, const uint8_t *d, size_t n, enum jseq_scan *how)
{
	*how = JSEQ_SCAN_MORE;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = d[i];

		if (!c) {
			*how = JSEQ_SCAN_NUL;
			return i;
		} else if (j->in_str) {
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
			*how = JSEQ_SCAN_CLOSED;
			return i + 1;
		}
	}
	return n;
}

static bool jseq__append(struct jseq *j, const uint8_t *d, size_t n)
{
	size_t cap = j->cap ? j->cap : 1024;
	char *p;

	if (j->len + n <= j->cap)
		goto copy;
	while (cap < j->len + n)
		cap *= 2;
	p = realloc(j->buf, cap);
	if (!p)
		return false;
	j->buf = p;
	j->cap = cap;
copy:
	memcpy(j->buf + j->len, d, n);
	j->len += n;
	return true;
}

/* The object's bytes are all in buf: parse them as one JSON object. */
static void jseq__parse(struct jseq *j, uint64_t ts_ns)
{
	struct json_object *obj;

	json_tokener_reset(j->tok);
	obj = json_tokener_parse_ex(j->tok, j->buf, (int)j->len);
	if (!json_object_is_type(obj, json_type_object) ||
	    json_tokener_get_parse_end(j->tok) != j->len) {
		json_object_put(obj);
		jseq__skip(j, &j->st.errors);
		return;
	}
	j->st.objects++;
	j->state = JSEQ_BETWEEN;
	j->len = 0;
	j->cb(j->ctx, obj, ts_ns);
	json_object_put(obj);
}

/* Collects object bytes; returns how many of the n it consumed. */
static size_t jseq__object(struct jseq *j, const uint8_t *d, size_t n, uint64_t ts_ns)
{
	enum jseq_scan how;
	size_t k = jseq__scan(j, d, n, &how);

	if (j->state == JSEQ_DISCARD || k > JSEQ_MAX_OBJECT - j->len) {
		/* Too big to keep: counted once, passed over to its end (or to a NUL). */
		if (j->state != JSEQ_DISCARD)
			j->st.oversized++;
		j->state = how == JSEQ_SCAN_MORE ? JSEQ_DISCARD : JSEQ_BETWEEN;
		if (how == JSEQ_SCAN_NUL)
			j->state = JSEQ_SKIP;
		j->len = 0;
		return k;
	}
	if (!jseq__append(j, d, k)) {
		jseq__skip(j, &j->st.errors);
		return k;
	}
	if (how == JSEQ_SCAN_CLOSED)
		jseq__parse(j, ts_ns);
	else if (how == JSEQ_SCAN_NUL)
		jseq__skip(j, &j->st.errors); /* skipping starts at the NUL */
	return k;
}

void jseq__feed(struct jseq *j, const uint8_t *d, size_t n, uint64_t ts_ns)
{
	size_t at = 0;

	while (at < n) {
		if (j->state == JSEQ_OBJECT || j->state == JSEQ_DISCARD) {
			at += jseq__object(j, d + at, n - at, ts_ns);
		} else if (j->state == JSEQ_SKIP) {
			if (d[at++] == '\n')
				j->state = JSEQ_BETWEEN;
		} else if (d[at] == '{') {
			j->state = JSEQ_OBJECT;
			j->len = 0;
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
	j->state = JSEQ_SKIP;
	j->len = 0;
}

bool jseq__end(struct jseq *j)
{
	bool cut = j->state == JSEQ_OBJECT || j->state == JSEQ_DISCARD;

	if (cut)
		j->st.errors++;
	j->state = JSEQ_BETWEEN;
	j->len = 0;
	return cut;
}
