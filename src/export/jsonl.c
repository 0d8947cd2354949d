// SPDX-License-Identifier: Apache-2.0
/*
 * JSON Lines exporter: one object per span in the documented `--format json` schema, flushed per
 * line because a pipe reader (a test, jq) waits for each span as it finishes.
 *
 * A line is built in memory and written with one fwrite: stdio's per-character calls (locked
 * fputc, fprintf per hex byte) cost more than building the span did. Strings are copied in runs
 * of bytes that need no escaping; only quotes, backslashes, control bytes and invalid UTF-8 take
 * the slow path.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export/export.h"
#include "export/utf8.h"

#define JB_KEEP (256 * 1024) /* a line buffer grown past this is released after the line */

/* A growing line; after a failed allocation it stops growing and the line is dropped. */
struct jbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

struct jsonl_exporter {
	struct exporter base;
	FILE *out;
	struct jbuf line;
	struct export_stats st; /* updated atomically: stats() may run on another thread */
};

static const char HEX[] = "0123456789abcdef";

/* Room for n more bytes; false once out of memory. */
static bool jb__room(struct jbuf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (n <= b->cap - b->len)
		return true;
	cap = b->cap ? b->cap : 2048;
	while (cap - b->len < n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void jb__put(struct jbuf *b, const void *d, size_t n)
{
	if (jb__room(b, n)) {
		memcpy(b->p + b->len, d, n);
		b->len += n;
	}
}

static void jb__puts(struct jbuf *b, const char *s)
{
	jb__put(b, s, strlen(s));
}

static void jb__putc(struct jbuf *b, char c)
{
	if (jb__room(b, 1))
		b->p[b->len++] = c;
}

static void jb__hex(struct jbuf *b, const uint8_t *d, size_t n)
{
	if (!jb__room(b, 2 * n + 2))
		return;
	b->p[b->len++] = '"';
	for (size_t i = 0; i < n; i++) {
		b->p[b->len++] = HEX[d[i] >> 4];
		b->p[b->len++] = HEX[d[i] & 15];
	}
	b->p[b->len++] = '"';
}

static void jb__u64(struct jbuf *b, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[sizeof(tmp) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	jb__put(b, tmp + sizeof(tmp) - n, n);
}

static void jb__i64(struct jbuf *b, int64_t v)
{
	if (v < 0) {
		jb__putc(b, '-');
		jb__u64(b, (uint64_t)0 - (uint64_t)v); /* INT64_MIN too */
		return;
	}
	jb__u64(b, (uint64_t)v);
}

/* Shortest form that reads back as the same double; JSON has no NaN or infinity. */
static void jb__double(struct jbuf *b, double d)
{
	char buf[40];
	int prec;

	if (!isfinite(d)) {
		jb__puts(b, "null");
		return;
	}
	for (prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	jb__puts(b, buf);
}

/* Bytes copied as they are: printable ASCII but the two JSON must escape. */
static bool json__plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static void jb__escape(struct jbuf *b, unsigned char c)
{
	static const char short_esc[] = {['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
					 ['\t'] = 't', ['"'] = '"',  ['\\'] = '\\'};
	char u[6] = {'\\', 'u', '0', '0', HEX[c >> 4], HEX[c & 15]};

	if (c < sizeof(short_esc) && short_esc[c]) {
		char e[2] = {'\\', short_esc[c]};

		jb__put(b, e, 2);
	} else if (c < 0x20) {
		jb__put(b, u, sizeof(u));
	} else {
		jb__putc(b, (char)c); /* DEL is valid JSON as it is */
	}
}

/* s as a quoted JSON string: escaped, invalid UTF-8 bytes replaced by U+FFFD (as utf8.c). */
static void jb__str(struct jbuf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t n = strlen((const char *)s), i = 0, run, k;

	jb__putc(b, '"');
	while (i < n) {
		for (run = i; run < n && json__plain(s[run]); run++)
			;
		jb__put(b, s + i, run - i);
		i = run;
		if (i == n)
			break;
		k = s[i] < 0x80 ? 1 : utf8__seq_len(s + i, n - i);
		if (k == 1)
			jb__escape(b, s[i]);
		else if (k > 1)
			jb__put(b, s + i, k);
		else
			jb__put(b, "\xEF\xBF\xBD", 3);
		i += k ? k : 1;
	}
	jb__putc(b, '"');
}

static void jb__attr_value(struct jbuf *b, const struct attr *a)
{
	switch (a->type) {
	case ATTR_STRING:
		jb__str(b, a->s);
		break;
	case ATTR_INT:
		jb__i64(b, a->i);
		break;
	case ATTR_DOUBLE:
		jb__double(b, a->d);
		break;
	case ATTR_BOOL:
		jb__puts(b, a->b ? "true" : "false");
		break;
	case ATTR_STRING_ARRAY:
		jb__putc(b, '[');
		for (size_t i = 0; i < a->arr.n; i++) {
			if (i)
				jb__putc(b, ',');
			jb__str(b, a->arr.v[i]);
		}
		jb__putc(b, ']');
		break;
	default:
		jb__puts(b, "null");
	}
}

static void jb__attrs(struct jbuf *b, const struct attr *a, size_t n)
{
	jb__putc(b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			jb__putc(b, ',');
		jb__str(b, a[i].key);
		jb__putc(b, ':');
		jb__attr_value(b, &a[i]);
	}
	jb__putc(b, '}');
}

static const char *span_kind__name(enum span_kind k)
{
	static const char *const names[] = { "unspecified", "internal", "server",
					     "client",	    "producer", "consumer" };

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "unspecified";
}

static const char *span_status__name(enum span_status st)
{
	if (st == SPAN_STATUS_OK)
		return "ok";
	if (st == SPAN_STATUS_ERROR)
		return "error";
	return "unset";
}

static void jb__span(struct jbuf *b, const struct span *s)
{
	jb__puts(b, "{\"trace_id\":");
	jb__hex(b, s->trace_id, sizeof(s->trace_id));
	jb__puts(b, ",\"span_id\":");
	jb__hex(b, s->span_id, sizeof(s->span_id));
	jb__puts(b, ",\"parent_span_id\":");
	jb__hex(b, s->parent_span_id, s->has_parent ? sizeof(s->parent_span_id) : 0);
	jb__puts(b, ",\"name\":");
	jb__str(b, s->name);
	jb__puts(b, ",\"kind\":\"");
	jb__puts(b, span_kind__name(s->kind));
	jb__puts(b, "\",\"start_time_unix_nano\":");
	jb__u64(b, s->start_unix_ns);
	jb__puts(b, ",\"end_time_unix_nano\":");
	jb__u64(b, s->end_unix_ns);
	jb__puts(b, ",\"status\":{\"code\":\"");
	jb__puts(b, span_status__name(s->status));
	jb__puts(b, "\",\"message\":");
	jb__str(b, s->status_message);
	jb__puts(b, "},\"resource\":");
	if (s->resource)
		jb__attrs(b, s->resource->attrs, s->resource->n_attrs);
	else
		jb__puts(b, "{}");
	jb__puts(b, ",\"attributes\":");
	jb__attrs(b, s->attrs, s->n_attrs);
	jb__putc(b, '}');
}

void jsonl__write_span(FILE *out, const struct span *s)
{
	struct jbuf b = {0};

	jb__span(&b, s);
	if (!b.oom)
		fwrite(b.p, 1, b.len, out);
	else
		fputs("{}", out); /* out of memory: still one JSON value, never half of one */
	free(b.p);
}

static void jsonl__export(struct exporter *e, const struct span *s)
{
	struct jsonl_exporter *je = (struct jsonl_exporter *)e;
	struct jbuf *b = &je->line;
	bool failed;

	b->len = 0;
	b->oom = false;
	jb__span(b, s);
	jb__putc(b, '\n');
	failed = b->oom || fwrite(b->p, 1, b->len, je->out) != b->len;
	if (b->cap > JB_KEEP) {
		free(b->p);
		*b = (struct jbuf){0};
	}
	if (failed || fflush(je->out) != 0 || ferror(je->out)) {
		clearerr(je->out);
		__atomic_add_fetch(&je->st.errors, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&je->st.dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_add_fetch(&je->st.exported, 1, __ATOMIC_RELAXED);
}

static void jsonl__flush(struct exporter *e, int deadline_ms)
{
	fflush(((struct jsonl_exporter *)e)->out);
}

static void jsonl__stats(struct exporter *e, struct export_stats *st)
{
	struct jsonl_exporter *je = (struct jsonl_exporter *)e;

	st->exported = __atomic_load_n(&je->st.exported, __ATOMIC_RELAXED);
	st->dropped = __atomic_load_n(&je->st.dropped, __ATOMIC_RELAXED);
	st->errors = __atomic_load_n(&je->st.errors, __ATOMIC_RELAXED);
	st->queued = 0;
}

static void jsonl__destroy(struct exporter *e)
{
	free(((struct jsonl_exporter *)e)->line.p);
	free(e);
}

static const struct exporter_ops jsonl_ops = {
	.name = "jsonl",
	.export = jsonl__export,
	.flush = jsonl__flush,
	.stats = jsonl__stats,
	.destroy = jsonl__destroy,
};

struct exporter *jsonl_exporter__new(FILE *out)
{
	struct jsonl_exporter *je = calloc(1, sizeof(*je));

	if (!je)
		return NULL;
	je->base.ops = &jsonl_ops;
	je->out = out;
	return &je->base;
}
