// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/export/metrics.c src/export/prometheus.c src/export/otlp_metrics.c src/export/otlp_http.c src/export/utf8.c src/span/attr.c build/gen/common.pb-c.c build/gen/resource.pb-c.c build/gen/metrics_histogram.pb-c.c build/gen/metrics.pb-c.c build/gen/metrics_service.pb-c.c
// FUZZ_LIBS: -lprotobuf-c -lmicrohttpd -lcurl -lz -lpthread
/*
 * Metrics on hostile spans: the input, split at NUL bytes, gives each span its model, provider,
 * tenant, error type and service name (captured bytes reach exactly these) and, from its bytes,
 * token counts, durations and costs. Spans go into a registry capped at 3 series per metric.
 * Then: no metric holds more than 3 regular series plus its overflow series; the Prometheus text
 * is valid UTF-8, every sample line is `name{label="escaped",...} value` with only \\, \" and
 * \n escapes; the OTLP bytes unpack with the generated code and hold as many histogram points
 * as the registry has series. A violation aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "metrics_service.pb-c.h"

#include "export/metrics.h"
#include "export/utf8.h"

#define CAP 3

static const char *next_str(const uint8_t **p, const uint8_t *end, char *buf, size_t size)
{
	size_t n = 0;

	while (*p < end && **p && n < size - 1)
		buf[n++] = (char)*(*p)++;
	if (*p < end)
		(*p)++;
	buf[n] = '\0';
	return buf;
}

static struct span *span_from(const uint8_t **p, const uint8_t *end)
{
	static const char *const keys[] = { "gen_ai.request.model", "gen_ai.provider.name",
					    "tokentap.tenant", "error.type",
					    "gen_ai.response.model" };
	struct span *s = calloc(1, sizeof(*s));
	char buf[400];
	uint8_t b = *p < end ? **p : 0;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		attrs__add_str(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, keys[i],
			       next_str(p, end, buf, sizeof(buf)));
	s->start_unix_ns = 1000;
	s->end_unix_ns = 1000 + (uint64_t)b * 7919 * 1000000; /* up to ~2000 s */
	if (b & 1)
		attrs__add_int(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.usage.input_tokens",
			       (int64_t)b << (b % 40));
	if (b & 2)
		attrs__add_int(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.usage.output_tokens",
			       b % 5 ? b : -1); /* a negative count is not a measurement */
	if (b & 4)
		attrs__add_double(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS,
				  "gen_ai.response.time_to_first_chunk", b / 50.0);
	if (b & 8)
		attrs__add_double(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "tokentap.cost.usd",
				  b & 16 ? 1e308 * 10 : b / 1000.0); /* inf is refused */
	return s;
}

/* `{k="v",...} value` after the metric name; NULL when malformed. */
static const char *check_labels(const char *p)
{
	if (*p != '{')
		return p;
	for (p++;;) {
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
		       (*p >= '0' && *p <= '9'))
			p++;
		if (p[0] != '=' || p[1] != '"')
			return NULL;
		for (p += 2; *p != '"'; p++) {
			if (*p == '\n' || !*p)
				return NULL;
			if (*p == '\\' && p[1] != '\\' && p[1] != '"' && p[1] != 'n')
				return NULL;
			if (*p == '\\')
				p++;
		}
		p++;
		if (*p == '}')
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static void check_text(const char *text)
{
	char *fixed = utf8__repair(text);

	if (fixed)
		abort();
	for (const char *line = text, *nl; *line; line = nl + 1) {
		const char *p = line;

		nl = strchr(line, '\n');
		if (!nl)
			abort();
		if (*line == '#')
			continue;
		while (p < nl && *p != '{' && *p != ' ')
			p++;
		p = check_labels(p);
		if (!p || *p != ' ' || p >= nl)
			abort();
	}
}

static void check_otlp(struct metrics *m)
{
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *req;
	size_t len = 0, n = 0, hist = 0, want = 0;
	uint8_t *buf = otlp_metrics__encode(m, 2000, &len, &n);

	if (!buf)
		abort();
	req = opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
		NULL, len, buf);
	if (!req)
		abort();
	for (size_t i = 0; i < req->resource_metrics[0]->scope_metrics[0]->n_metrics; i++) {
		Opentelemetry__Proto__Metrics__V1__Metric *mt =
			req->resource_metrics[0]->scope_metrics[0]->metrics[i];

		if (mt->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM)
			hist += mt->histogram->n_data_points;
	}
	for (int i = 0; i < M__N; i++)
		if (metric_defs[i].kind == MKIND_HISTOGRAM)
			want += metrics__get(m, i)->n_series;
	if (hist != want)
		abort();
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(
		req, NULL);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct metrics *m = metrics__new(CAP);
	const uint8_t *p = data, *end = data + size;
	char *text;
	size_t len;

	for (int i = 0; i < 32 && p < end; i++) {
		struct span *s = span_from(&p, end);

		metrics__record_span(m, s);
		span__free(s);
	}
	for (int i = 0; i < M__N; i++) {
		const struct metric *mt = metrics__get(m, i);

		/* token usage folds per token type: two overflow series at most */
		if (mt->n_regular > CAP || mt->n_series > CAP + 2)
			abort();
	}
	text = prometheus__render(m, &len);
	if (!text || strlen(text) != len)
		abort();
	check_text(text);
	free(text);
	check_otlp(m);
	metrics__free(m);
	return 0;
}
