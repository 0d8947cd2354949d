// SPDX-License-Identifier: Apache-2.0
/*
 * JSON Lines exporter: one object per span in the documented `--format json` schema, flushed per
 * line because a pipe reader (a test, jq) waits for each span as it finishes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export/export.h"
#include "export/utf8.h"

struct jsonl_exporter {
	struct exporter base;
	FILE *out;
	struct export_stats st; /* updated atomically: stats() may run on another thread */
};

static void json__write_hex(FILE *out, const uint8_t *b, size_t n)
{
	size_t i;

	fputc('"', out);
	for (i = 0; i < n; i++)
		fprintf(out, "%02x", b[i]);
	fputc('"', out);
}

/* Shortest form that reads back as the same double; JSON has no NaN or infinity. */
static void json__write_double(FILE *out, double d)
{
	char buf[40];
	int prec;

	if (!isfinite(d)) {
		fputs("null", out);
		return;
	}
	for (prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	fputs(buf, out);
}

static void json__write_attr_value(FILE *out, const struct attr *a)
{
	size_t i;

	switch (a->type) {
	case ATTR_STRING:
		utf8__write_json_string(out, a->s);
		break;
	case ATTR_INT:
		fprintf(out, "%lld", (long long)a->i);
		break;
	case ATTR_DOUBLE:
		json__write_double(out, a->d);
		break;
	case ATTR_BOOL:
		fputs(a->b ? "true" : "false", out);
		break;
	case ATTR_STRING_ARRAY:
		fputc('[', out);
		for (i = 0; i < a->arr.n; i++) {
			if (i)
				fputc(',', out);
			utf8__write_json_string(out, a->arr.v[i]);
		}
		fputc(']', out);
		break;
	default:
		fputs("null", out);
	}
}

static void json__write_attrs(FILE *out, const struct attr *a, size_t n)
{
	size_t i;

	fputc('{', out);
	for (i = 0; i < n; i++) {
		if (i)
			fputc(',', out);
		utf8__write_json_string(out, a[i].key);
		fputc(':', out);
		json__write_attr_value(out, &a[i]);
	}
	fputc('}', out);
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

void jsonl__write_span(FILE *out, const struct span *s)
{
	fputs("{\"trace_id\":", out);
	json__write_hex(out, s->trace_id, sizeof(s->trace_id));
	fputs(",\"span_id\":", out);
	json__write_hex(out, s->span_id, sizeof(s->span_id));
	fputs(",\"parent_span_id\":", out);
	json__write_hex(out, s->parent_span_id, s->has_parent ? sizeof(s->parent_span_id) : 0);
	fputs(",\"name\":", out);
	utf8__write_json_string(out, s->name);
	fprintf(out, ",\"kind\":\"%s\"", span_kind__name(s->kind));
	fprintf(out, ",\"start_time_unix_nano\":%llu,\"end_time_unix_nano\":%llu",
		(unsigned long long)s->start_unix_ns, (unsigned long long)s->end_unix_ns);
	fprintf(out, ",\"status\":{\"code\":\"%s\",\"message\":", span_status__name(s->status));
	utf8__write_json_string(out, s->status_message);
	fputs("},\"resource\":", out);
	if (s->resource)
		json__write_attrs(out, s->resource->attrs, s->resource->n_attrs);
	else
		fputs("{}", out);
	fputs(",\"attributes\":", out);
	json__write_attrs(out, s->attrs, s->n_attrs);
	fputc('}', out);
}

static void jsonl__export(struct exporter *e, const struct span *s)
{
	struct jsonl_exporter *je = (struct jsonl_exporter *)e;

	jsonl__write_span(je->out, s);
	fputc('\n', je->out);
	if (fflush(je->out) != 0 || ferror(je->out)) {
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
