// SPDX-License-Identifier: Apache-2.0
/*
 * Text exporter, the default output: one readable line per LLM call, flushed per line.
 *   2025-06-01 12:00:00.123 curl[1234] openai gpt-4o in=12 out=34 latency=523ms ttft=120ms ok
 * Captured strings are printed with control characters replaced: a model name from the
 * network must not be able to drive the terminal.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export/export.h"
#include "export/utf8.h"

struct text_exporter {
	struct exporter base;
	FILE *out;
	struct export_stats st; /* updated atomically: stats() may run on another thread */
};

static void text__put(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k;

	while (i < n) {
		k = utf8__seq_len(p + i, n - i);
		/* C0, DEL and C1 (U+0080..U+009F, which includes the 8-bit CSI) are not printed. */
		if (k == 0 || (k == 1 && (p[i] < 0x20 || p[i] == 0x7f)) ||
		    (k == 2 && p[i] == 0xC2 && p[i + 1] < 0xA0))
			fputc('?', out);
		else
			fwrite(p + i, 1, k, out);
		i += k ? k : 1;
	}
}

static const struct attr *attrs__find(const struct attr *a, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(a[i].key, key) == 0)
			return &a[i];
	}
	return NULL;
}

static const char *span__str(const struct span *s, const char *key)
{
	const struct attr *a = span__find_attr(s, key);

	return a && a->type == ATTR_STRING && a->s[0] ? a->s : NULL;
}

static void text__put_time(FILE *out, uint64_t unix_ns)
{
	time_t sec = (time_t)(unix_ns / 1000000000ull);
	struct tm tm;
	char buf[32];

	if (!localtime_r(&sec, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm)) {
		fprintf(out, "@%llu", (unsigned long long)unix_ns);
		return;
	}
	fprintf(out, "%s.%03u", buf, (unsigned)(unix_ns / 1000000ull % 1000));
}

static void text__put_process(FILE *out, const struct resource *r)
{
	const struct attr *name = NULL;

	if (r) {
		name = attrs__find(r->attrs, r->n_attrs, "process.executable.name");
		if (!name || name->type != ATTR_STRING)
			name = attrs__find(r->attrs, r->n_attrs, "service.name");
	}
	text__put(out, name && name->type == ATTR_STRING ? name->s : "?");
	fprintf(out, "[%u]", r ? r->pid : 0);
}

static void text__put_tokens(FILE *out, const struct span *s, const char *label, const char *key)
{
	const struct attr *a = span__find_attr(s, key);

	if (a && a->type == ATTR_INT)
		fprintf(out, " %s=%lld", label, (long long)a->i);
	else
		fprintf(out, " %s=-", label);
}

static void text__put_outcome(FILE *out, const struct span *s)
{
	const char *err = span__str(s, "error.type");
	const struct attr *a;

	if (s->status == SPAN_STATUS_ERROR || err) {
		fputs(" error=", out);
		text__put(out, err ? err : "unknown");
		if (s->status_message[0]) {
			fputs(" (", out);
			text__put(out, s->status_message);
			fputc(')', out);
		}
	} else {
		fputs(" ok", out);
	}
	a = span__find_attr(s, "tokentap.capture.partial");
	if (a && a->type == ATTR_BOOL && a->b) {
		fputs(" partial", out);
		a = span__find_attr(s, "tokentap.capture.lost_bytes");
		if (a && a->type == ATTR_INT)
			fprintf(out, "(lost %lld bytes)", (long long)a->i);
	}
}

static void text__write_span(FILE *out, const struct span *s)
{
	const char *provider = span__str(s, "gen_ai.provider.name");
	const char *model = span__str(s, "gen_ai.response.model");
	const struct attr *ttft = span__find_attr(s, "gen_ai.response.time_to_first_chunk");
	uint64_t dur = s->end_unix_ns > s->start_unix_ns ? s->end_unix_ns - s->start_unix_ns : 0;

	if (!model)
		model = span__str(s, "gen_ai.request.model");
	text__put_time(out, s->start_unix_ns);
	fputc(' ', out);
	text__put_process(out, s->resource);
	fputc(' ', out);
	text__put(out, provider ? provider : "?");
	fputc(' ', out);
	text__put(out, model ? model : "?");
	text__put_tokens(out, s, "in", "gen_ai.usage.input_tokens");
	text__put_tokens(out, s, "out", "gen_ai.usage.output_tokens");
	fprintf(out, " latency=%llums", (unsigned long long)((dur + 500000) / 1000000));
	if (ttft && ttft->type == ATTR_DOUBLE && ttft->d >= 0)
		fprintf(out, " ttft=%.0fms", ttft->d * 1000.0);
	text__put_outcome(out, s);
}

static void text__export(struct exporter *e, const struct span *s)
{
	struct text_exporter *te = (struct text_exporter *)e;

	text__write_span(te->out, s);
	fputc('\n', te->out);
	if (fflush(te->out) != 0 || ferror(te->out)) {
		clearerr(te->out);
		__atomic_add_fetch(&te->st.errors, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&te->st.dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_add_fetch(&te->st.exported, 1, __ATOMIC_RELAXED);
}

static void text__flush(struct exporter *e, int deadline_ms)
{
	fflush(((struct text_exporter *)e)->out);
}

static void text__stats(struct exporter *e, struct export_stats *st)
{
	struct text_exporter *te = (struct text_exporter *)e;

	st->exported = __atomic_load_n(&te->st.exported, __ATOMIC_RELAXED);
	st->dropped = __atomic_load_n(&te->st.dropped, __ATOMIC_RELAXED);
	st->errors = __atomic_load_n(&te->st.errors, __ATOMIC_RELAXED);
	st->queued = 0;
}

static void text__destroy(struct exporter *e)
{
	free(e);
}

static const struct exporter_ops text_ops = {
	.name = "text",
	.export = text__export,
	.flush = text__flush,
	.stats = text__stats,
	.destroy = text__destroy,
};

struct exporter *text_exporter__new(FILE *out)
{
	struct text_exporter *te = calloc(1, sizeof(*te));

	if (!te)
		return NULL;
	te->base.ops = &text_ops;
	te->out = out;
	return &te->base;
}
