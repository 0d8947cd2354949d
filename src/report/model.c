// SPDX-License-Identifier: Apache-2.0
/*
 * report/model: span lines -> calls and sums. Reads attributes by key: spans from an agent that
 * does not set cost or tenant give blanks, not errors. A line that is not a span is counted and
 * remembered by number, never guessed at.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"
#include "util/jsonget.h"

/* ---- interned strings -------------------------------------------------------------------- */

static uint32_t str__hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static int strs__grow(struct report *r)
{
	size_t n = r->n_slots ? r->n_slots * 2 : 256;
	uint32_t *slots = calloc(n, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_strs; i++) {
		size_t j = str__hash(r->strs[i]) & (n - 1);

		while (slots[j])
			j = (j + 1) & (n - 1);
		slots[j] = (uint32_t)i + 1;
	}
	free(r->slots);
	r->slots = slots;
	r->n_slots = n;
	return 0;
}

static int strs__append(struct report *r, const char *s)
{
	if (r->n_strs == r->cap_strs) {
		size_t cap = r->cap_strs ? r->cap_strs * 2 : 64;
		char **v = realloc(r->strs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->strs = v;
		r->cap_strs = cap;
	}
	r->strs[r->n_strs] = strdup(s);
	return r->strs[r->n_strs] ? (int)r->n_strs++ : -ENOMEM;
}

/* Index of s in r->strs, added on first sight; -ENOMEM on failure. */
static int64_t strs__intern(struct report *r, const char *s)
{
	size_t j;
	int id;

	if ((r->n_strs + 1) * 2 > r->n_slots && strs__grow(r))
		return -ENOMEM;
	for (j = str__hash(s) & (r->n_slots - 1); r->slots[j]; j = (j + 1) & (r->n_slots - 1))
		if (!strcmp(r->strs[r->slots[j] - 1], s))
			return r->slots[j] - 1;
	id = strs__append(r, s);
	if (id < 0)
		return id;
	r->slots[j] = (uint32_t)id + 1;
	return id;
}

const char *report__str(const struct report *r, uint32_t id)
{
	return id < r->n_strs ? r->strs[id] : "";
}

struct report *report__new(void)
{
	struct report *r = calloc(1, sizeof(*r));

	if (r && strs__intern(r, "") < 0) {
		report__free(r);
		return NULL;
	}
	return r;
}

void report__free(struct report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_strs; i++)
		free(r->strs[i]);
	for (size_t i = 0; i < r->n_slowest; i++)
		free(r->slowest[i].line);
	for (size_t i = 0; i < r->n_costliest; i++)
		free(r->costliest[i].line);
	for (size_t i = 0; i < r->n_errors; i++)
		free(r->errors[i].line);
	free(r->strs);
	free(r->slots);
	free(r->calls);
	free(r);
}

/* ---- kept calls -------------------------------------------------------------------------- */

/* Keeps the n largest values, largest first; equal values keep the earlier line. */
static int kept__offer(struct rkept *k, size_t *n, size_t cap, double v, uint64_t line_no,
		       const char *line, size_t len)
{
	size_t i = *n;
	char *copy;

	if (i == cap && v <= k[cap - 1].value)
		return 0;
	copy = strndup(line, len);
	if (!copy)
		return -ENOMEM;
	if (i == cap)
		free(k[--i].line);
	else
		(*n)++;
	for (; i > 0 && k[i - 1].value < v; i--)
		k[i] = k[i - 1];
	k[i] = (struct rkept){ v, line_no, copy };
	return 0;
}

/* The most recent error calls: the oldest kept one makes room. */
static int errors__keep(struct report *r, const char *line, size_t len)
{
	char *copy = strndup(line, len);

	if (!copy)
		return -ENOMEM;
	if (r->n_errors == REPORT_ERROR_SAMPLES) {
		free(r->errors[0].line);
		memmove(r->errors, r->errors + 1, (REPORT_ERROR_SAMPLES - 1) * sizeof(r->errors[0]));
		r->n_errors--;
	}
	r->errors[r->n_errors++] = (struct rkept){ 0, r->t.lines, copy };
	return 0;
}

/* ---- lines ------------------------------------------------------------------------------- */

static int report__bad(struct report *r, const char *why)
{
	if (r->t.bad_lines < REPORT_BAD_SAMPLES)
		r->bad[r->t.bad_lines] = (struct rbad){ r->t.lines, why };
	r->t.bad_lines++;
	return -EINVAL;
}

static int call__strings(struct report *r, struct rcall *c, json_object *o)
{
	json_object *at = jsonget__obj(o, "attributes"), *res = jsonget__obj(o, "resource");
	const char *model = jsonget__str(at, "gen_ai.request.model");
	const char *et = jsonget__str(at, "error.type");
	const char *v[REPORT_DIM_N + 2] = {
		[REPORT_DIM_TENANT] = jsonget__str(at, "tokentap.tenant") ?: "(none)",
		[REPORT_DIM_MODEL] = model ?: jsonget__str(at, "gen_ai.response.model") ?: "(unknown)",
		[REPORT_DIM_PROVIDER] = jsonget__str(at, "gen_ai.provider.name") ?: "(unknown)",
		[REPORT_DIM_N] = et ? et : c->error ? "(error status)" : "",
		[REPORT_DIM_N + 1] = jsonget__str(res, "process.executable.name") ?:
					     jsonget__str(res, "service.name") ?: "?",
	};
	int64_t id[REPORT_DIM_N + 2];

	for (int i = 0; i < REPORT_DIM_N + 2; i++) {
		id[i] = strs__intern(r, v[i]);
		if (id[i] < 0)
			return -ENOMEM;
	}
	for (int i = 0; i < REPORT_DIM_N; i++)
		c->dim[i] = (uint32_t)id[i];
	c->error_type = (uint32_t)id[REPORT_DIM_N];
	c->process = (uint32_t)id[REPORT_DIM_N + 1];
	return 0;
}

/* Fills c from a parsed span; a reason string when it is not one. */
static const char *call__from_json(struct rcall *c, json_object *o)
{
	json_object *at = jsonget__obj(o, "attributes"), *st = jsonget__obj(o, "status");
	json_object *s = jsonget__obj(o, "start_time_unix_nano"), *e = jsonget__obj(o, "end_time_unix_nano");
	const char *code = jsonget__str(st, "code");
	double v;

	if (!json_object_is_type(at, json_type_object))
		return "no attributes object";
	if (!json_object_is_type(s, json_type_int) || !json_object_is_type(e, json_type_int))
		return "no start or end time";
	*c = (struct rcall){ .ttfc_s = NAN, .cost = NAN };
	c->start_ns = json_object_get_uint64(s);
	c->end_ns = json_object_get_uint64(e);
	if (c->end_ns < c->start_ns)
		return "ends before it starts";
	c->lat_s = (double)(c->end_ns - c->start_ns) / 1e9;
	if (jsonget__num(at, "gen_ai.response.time_to_first_chunk", &v) && v >= 0)
		c->ttfc_s = v;
	if (jsonget__num(at, "tokentap.cost.usd", &v) && v >= 0)
		c->cost = v;
	c->in = jsonget__num(at, "gen_ai.usage.input_tokens", &v) && v > 0 ? (int64_t)v : 0;
	c->out = jsonget__num(at, "gen_ai.usage.output_tokens", &v) && v > 0 ? (int64_t)v : 0;
	c->error = (code && !strcmp(code, "error")) || jsonget__obj(at, "error.type");
	return NULL;
}

static void totals__count(struct report_totals *t, const struct rcall *c)
{
	if (!t->calls || c->start_ns < t->first_ns)
		t->first_ns = c->start_ns;
	if (c->end_ns > t->last_ns)
		t->last_ns = c->end_ns;
	t->calls++;
	t->errors += c->error;
	t->streamed += !isnan(c->ttfc_s);
	t->in += c->in;
	t->out += c->out;
	if (!isnan(c->cost)) {
		t->spend += c->cost;
		t->cost_known++;
	}
}

static int report__push(struct report *r, const struct rcall *c)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 1024;
		struct rcall *v = realloc(r->calls, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->calls = v;
		r->cap = cap;
	}
	r->calls[r->n++] = *c;
	totals__count(&r->t, c);
	return 0;
}

static int report__keep(struct report *r, const struct rcall *c, const char *line, size_t n)
{
	int err = kept__offer(r->slowest, &r->n_slowest, REPORT_TOP_N, c->lat_s, r->t.lines, line,
			      n);

	if (!err && !isnan(c->cost))
		err = kept__offer(r->costliest, &r->n_costliest, REPORT_TOP_N, c->cost, r->t.lines,
				  line, n);
	if (!err && c->error)
		err = errors__keep(r, line, n);
	return err;
}

int report__add_line(struct report *r, const char *line, size_t n)
{
	json_tokener *tok;
	json_object *o;
	struct rcall c;
	const char *why = "not JSON";
	int err = -EINVAL;

	while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	if (!n)
		return 0;
	r->t.lines++;
	if (n > REPORT_LINE_MAX || !(tok = json_tokener_new()))
		return report__bad(r, n > REPORT_LINE_MAX ? "line too long" : "out of memory");
	o = json_tokener_parse_ex(tok, line, (int)n);
	if (o && ((size_t)json_tokener_get_parse_end(tok) != n))
		why = "bytes after the JSON value";
	else if (o && !json_object_is_type(o, json_type_object))
		why = "not a JSON object";
	else if (o && jsonget__obj(o, "type"))
		why = "not a span (a stats line?)";
	else if (o)
		why = call__from_json(&c, o);
	if (o && !why) {
		err = call__strings(r, &c, o);
		if (!err)
			err = report__keep(r, &c, line, n);
		if (!err)
			err = report__push(r, &c);
	}
	json_object_put(o);
	json_tokener_free(tok);
	if (err == -EINVAL)
		return report__bad(r, why);
	return err;
}

struct linebuf {
	char *buf;
	size_t len, cap;
	bool too_long; /* the rest of the line is skipped and the line counted bad */
};

static int linebuf__put(struct linebuf *l, char ch)
{
	char *nb;

	if (l->too_long)
		return 0;
	if (l->len == l->cap) {
		if (l->cap > REPORT_LINE_MAX) {
			l->too_long = true;
			return 0;
		}
		nb = realloc(l->buf, l->cap * 2);
		if (!nb)
			return -ENOMEM;
		l->buf = nb;
		l->cap *= 2;
	}
	l->buf[l->len++] = ch;
	return 0;
}

static int linebuf__end(struct linebuf *l, struct report *r)
{
	int err = 0;

	if (l->too_long) {
		r->t.lines++;
		report__bad(r, "line too long");
	} else if (report__add_line(r, l->buf, l->len) == -ENOMEM) {
		err = -ENOMEM;
	}
	l->len = 0;
	l->too_long = false;
	return err;
}

int report__read(struct report *r, FILE *in)
{
	struct linebuf l = { .buf = malloc(65536), .cap = 65536 };
	int c, err = 0;

	if (!l.buf)
		return -ENOMEM;
	while (!err && (c = getc_unlocked(in)) != EOF)
		err = c == '\n' ? linebuf__end(&l, r) : linebuf__put(&l, (char)c);
	if (!err && ferror(in))
		err = -EIO;
	if (!err && (l.len || l.too_long)) /* a last line without its newline */
		err = linebuf__end(&l, r);
	free(l.buf);
	return err;
}
