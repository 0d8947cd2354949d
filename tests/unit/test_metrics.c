// SPDX-License-Identifier: Apache-2.0
/*
 * Metrics: spans -> series (bucketing with inclusive upper bounds, cumulative sums, min/max,
 * cardinality folding into the "other" series), the Prometheus text exposition checked line by
 * line, the OTLP encoding unpacked again with protobuf-c (proto2 optional sum/min/max present),
 * the Prometheus HTTP endpoint (/metrics, /healthz before and after ready), the OTLP metrics
 * push against a loopback server (gzip, retry on 503 with Retry-After, no retry on 400, partial
 * success counted) and gzip on the trace exporter.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "metrics_service.pb-c.h"
#include "trace_service.pb-c.h"

#include "export/export.h"
#include "export/metrics.h"
#include "export/otlp_http.h"
#include "tt_test.h"

typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest MRequest;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistPoint;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumberPoint;
typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;

/* ---- spans ------------------------------------------------------------------------------ */

static struct resource *resource_new(const char *service, const char *container)
{
	struct resource *r = calloc(1, sizeof(*r));

	r->refs = 1;
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "service.name", service);
	if (container)
		attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "container.id",
			       container);
	return r;
}

struct call {
	const char *model, *provider, *error, *tenant, *resp_model;
	int64_t in, out;
	bool no_tokens;  /* in and out absent */
	double dur_s;
	double ttfc;     /* 0: not a stream */
	double cost;     /* 0: absent */
	const float *gaps; /* chunk gaps (s) of a stream, n_gaps of them, then `folded` more */
	uint32_t n_gaps, folded;
	double folded_s;
};

static struct span *span_of(const struct call *c, struct resource *r)
{
	struct span *s = calloc(1, sizeof(*s));

#define A_STR(k, v) attrs__add_str(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, k, v)
	s->start_unix_ns = 1700000000000000000ull;
	s->end_unix_ns = s->start_unix_ns + (uint64_t)(c->dur_s * 1e9 + 0.5);
	A_STR("gen_ai.operation.name", "chat");
	A_STR("gen_ai.provider.name", c->provider ? c->provider : "openai");
	A_STR("gen_ai.request.model", c->model);
	if (c->resp_model)
		A_STR("gen_ai.response.model", c->resp_model);
	if (c->error)
		A_STR("error.type", c->error);
	if (c->tenant)
		A_STR("tokentap.tenant", c->tenant);
	if (!c->no_tokens)
		attrs__add_int(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.usage.input_tokens",
			       c->in);
	if (!c->no_tokens)
		attrs__add_int(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.usage.output_tokens",
			       c->out);
	if (c->ttfc > 0)
		attrs__add_double(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS,
				  "gen_ai.response.time_to_first_chunk", c->ttfc);
	if (c->cost > 0)
		attrs__add_double(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "tokentap.cost.usd",
				  c->cost);
#undef A_STR
	if (c->n_gaps || c->folded) {
		s->chunk_gaps = malloc(sizeof(*s->chunk_gaps) + c->n_gaps * sizeof(float));
		s->chunk_gaps->n = c->n_gaps;
		s->chunk_gaps->folded = c->folded;
		s->chunk_gaps->folded_s = c->folded_s;
		if (c->n_gaps)
			memcpy(s->chunk_gaps->v, c->gaps, c->n_gaps * sizeof(float));
	}
	s->resource = r;
	if (r)
		resource__get(r);
	return s;
}

static void record(struct metrics *m, const struct call *c, struct resource *r)
{
	struct span *s = span_of(c, r);

	metrics__record_span(m, s);
	span__free(s);
}

/* The series of metric id whose vals[k] equal want (NULL: absent), or NULL. */
static const struct metric_series *find(struct metrics *m, enum metric_id id,
					const char *model, const char *token_type)
{
	const struct metric *mt = metrics__get(m, id);

	for (size_t i = 0; i < mt->n_series; i++) {
		const struct metric_series *s = mt->series[i];

		if (s->vals[MK_REQ_MODEL] && !strcmp(s->vals[MK_REQ_MODEL], model) &&
		    !s->vals[MK_TOKEN_TYPE] == !token_type &&
		    (!token_type || !strcmp(s->vals[MK_TOKEN_TYPE], token_type)))
			return s;
	}
	return NULL;
}

#define CALL(...) (&(struct call){ __VA_ARGS__ })

/* ---- aggregation ------------------------------------------------------------------------ */

TEST(bucketing_and_cumulative_sums)
{
	struct metrics *m = metrics__new(0);
	struct resource *r = resource_new("curl", NULL);
	const struct metric_series *s;

	/* 4 is on a boundary: it belongs to (1, 4]; 5 to (4, 16]; 0 to (-inf, 1]. */
	record(m, CALL(.model = "gpt-4o", .in = 4, .out = 5, .dur_s = 0.01), r);
	record(m, CALL(.model = "gpt-4o", .in = 0, .out = 100000000, .dur_s = 0.5), r);
	record(m, CALL(.model = "gpt-4o", .in = 1024, .out = 1, .dur_s = 100), r);
	s = find(m, M_TOKEN_USAGE, "gpt-4o", "input");
	CHECK(s != NULL);
	if (s) {
		CHECK_EQ_INT(s->count, 3);
		CHECK(s->sum == 1028);
		CHECK(s->min == 0 && s->max == 1024);
		CHECK_EQ_INT(s->buckets[0], 1); /* 0 */
		CHECK_EQ_INT(s->buckets[1], 1); /* 4 */
		CHECK_EQ_INT(s->buckets[5], 1); /* 1024: (256, 1024] */
		CHECK_EQ_STR(s->vals[MK_SERVICE], "curl");
		CHECK(s->vals[MK_CONTAINER] == NULL && s->vals[MK_ERROR] == NULL);
		CHECK_EQ_STR(s->vals[MK_OPERATION], "chat");
	}
	s = find(m, M_TOKEN_USAGE, "gpt-4o", "output");
	CHECK(s != NULL);
	if (s) {
		CHECK_EQ_INT(s->buckets[0], 1);  /* 1 */
		CHECK_EQ_INT(s->buckets[2], 1);  /* 5 */
		CHECK_EQ_INT(s->buckets[14], 1); /* 1e8 > 67108864: the +Inf bucket */
	}
	s = find(m, M_DURATION, "gpt-4o", NULL);
	CHECK(s != NULL);
	if (s) {
		CHECK_EQ_INT(s->count, 3);
		CHECK_EQ_INT(s->buckets[0], 1);  /* 0.01 is the first bound, inclusive */
		CHECK_EQ_INT(s->buckets[6], 1);  /* 0.5: (0.32, 0.64] */
		CHECK_EQ_INT(s->buckets[14], 1); /* 100 s */
		CHECK(s->vals[MK_TOKEN_TYPE] == NULL);
	}
	/* Not streams: no first-chunk or per-chunk series; no cost attribute: unpriced. */
	CHECK_EQ_INT(metrics__get(m, M_TTFC)->n_series, 0);
	CHECK_EQ_INT(metrics__get(m, M_TPOC)->n_series, 0);
	CHECK_EQ_INT(metrics__get(m, M_COST)->n_series, 0);
	s = find(m, M_UNPRICED, "gpt-4o", NULL);
	CHECK(s != NULL && s->count == 3);
	metrics__free(m);
	resource__put(r);
}

TEST(streams_cost_tenant_and_errors)
{
	struct metrics *m = metrics__new(0);
	struct resource *r = resource_new("python3", "c0ffee");
	const struct metric_series *s;

	record(m, CALL(.model = "claude", .provider = "anthropic", .in = 10, .out = 11,
		       .dur_s = 2.0, .ttfc = 0.5, .cost = 0.25, .tenant = "acme",
		       .resp_model = "claude-2025", .gaps = (const float[]){0.125f, 0.25f, 0.5f},
		       .n_gaps = 3), r);
	record(m, CALL(.model = "claude", .provider = "anthropic", .in = 10, .out = 11,
		       .dur_s = 2.0, .ttfc = 0.5, .cost = 0.125, .tenant = "acme",
		       .resp_model = "claude-2025", .gaps = (const float[]){0.0625f}, .n_gaps = 1,
		       .folded = 2, .folded_s = 3.0), r);
	record(m, CALL(.model = "claude", .provider = "anthropic", .error = "429", .dur_s = 0.1,
		       .no_tokens = true),
	       r);
	s = find(m, M_TTFC, "claude", NULL);
	CHECK(s != NULL && s->count == 2 && s->sum == 1.0);
	s = find(m, M_TPOC, "claude", NULL);
	/* One measurement per chunk gap; folded gaps count each, at their mean (1.5 s). */
	CHECK(s != NULL && s->count == 6 && s->sum == 0.125 + 0.25 + 0.5 + 0.0625 + 3.0);
	if (s) {
		CHECK_EQ_INT(s->buckets[3], 1);  /* 0.0625: (0.04, 0.08] */
		CHECK_EQ_INT(s->buckets[4], 1);  /* 0.125: (0.08, 0.16] */
		CHECK_EQ_INT(s->buckets[8], 2);  /* 1.5: (1.28, 2.56] */
		CHECK(s->min == 0.0625 && s->max == 1.5);
	}
	s = find(m, M_COST, "claude", NULL);
	CHECK(s != NULL);
	if (s) {
		CHECK(s->sum == 0.375);
		CHECK_EQ_STR(s->vals[MK_TENANT], "acme");
		CHECK_EQ_STR(s->vals[MK_CONTAINER], "c0ffee");
		CHECK_EQ_STR(s->vals[MK_RESP_MODEL], "claude-2025");
		CHECK_EQ_STR(s->vals[MK_PROVIDER], "anthropic");
	}
	/* The 429 has no tokens: not unpriced, but a duration series of its own. */
	CHECK_EQ_INT(metrics__get(m, M_UNPRICED)->n_series, 0);
	CHECK_EQ_INT(metrics__get(m, M_DURATION)->n_series, 2);
	metrics__free(m);
	resource__put(r);
}

TEST(cardinality_folds_into_other)
{
	struct metrics *m = metrics__new(3);
	struct resource *r = resource_new("svc", NULL);
	const struct metric *mt;
	const struct metric_series *o = NULL;
	char model[16];

	for (int i = 0; i < 6; i++) {
		snprintf(model, sizeof(model), "m%d", i);
		record(m, CALL(.model = model, .in = 1, .out = 2, .dur_s = 1.0 + i), r);
	}
	record(m, CALL(.model = "m0", .in = 1, .out = 2, .dur_s = 1.0), r); /* known: kept */
	mt = metrics__get(m, M_DURATION);
	CHECK_EQ_INT(mt->n_regular, 3);
	CHECK_EQ_INT(mt->n_series, 4);
	CHECK_EQ_INT(mt->overflowed, 3);
	for (size_t i = 0; i < mt->n_series; i++)
		if (mt->series[i]->overflow)
			o = mt->series[i];
	CHECK(o != NULL);
	if (o) {
		CHECK_EQ_INT(o->count, 3);
		CHECK(o->sum == 4.0 + 5.0 + 6.0);
		for (int k = 0; k < MK_TOKEN_TYPE; k++)
			CHECK_EQ_STR(o->vals[k], "other");
		CHECK(o->vals[MK_TOKEN_TYPE] == NULL);
	}
	CHECK_EQ_INT(find(m, M_DURATION, "m0", NULL)->count, 2);
	/* Token usage: m0/input, m0/output, m1/input are kept; the rest fold by token type. */
	mt = metrics__get(m, M_TOKEN_USAGE);
	CHECK_EQ_INT(mt->n_regular, 3);
	CHECK_EQ_INT(mt->n_series, 5);
	CHECK_EQ_INT(mt->overflowed, 9);
	for (size_t i = 0; i < mt->n_series; i++) {
		if (mt->series[i]->overflow)
			CHECK(!strcmp(mt->series[i]->vals[MK_TOKEN_TYPE], "input") ||
			      !strcmp(mt->series[i]->vals[MK_TOKEN_TYPE], "output"));
	}
	metrics__free(m);
	resource__put(r);
}

TEST(attribute_values_bounded_and_utf8)
{
	struct metrics *m = metrics__new(0);
	char big[600];
	const struct metric *mt;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[254] = '\xc3'; /* a two-byte sequence the cut at 255 bytes splits */
	big[255] = '\xa9';
	record(m, CALL(.model = big, .dur_s = 1, .no_tokens = true), NULL);
	record(m, CALL(.model = "bad\xff", .dur_s = 1, .no_tokens = true), NULL);
	mt = metrics__get(m, M_DURATION);
	CHECK_EQ_INT(mt->n_series, 2);
	if (mt->n_series == 2) {
		CHECK_EQ_INT(strlen(mt->series[0]->vals[MK_REQ_MODEL]), 254);
		CHECK_EQ_STR(mt->series[1]->vals[MK_REQ_MODEL], "bad\xef\xbf\xbd");
		CHECK(mt->series[0]->vals[MK_SERVICE] == NULL); /* no resource */
	}
	metrics__free(m);
}

/* ---- Prometheus text ---------------------------------------------------------------------- */

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	}
	return false;
}

static void health_fill(struct metrics_health *h)
{
	memset(h, 0, sizeof(*h));
	h->events = 7;
	h->lost_bytes = 99;
	h->attached_files = 3;
	h->parse_errors = 2;
	h->spans = 5;
	h->n_exporters = 2;
	strcpy(h->exporters[0].name, "otlp");
	h->exporters[0].exported = 4;
	h->exporters[0].dropped = 1;
	h->exporters[0].errors = 2;
	strcpy(h->exporters[1].name, "metrics");
	h->exporters[1].exported = 30;
}

TEST(prometheus_exposition)
{
	struct metrics *m = metrics__new(1);
	struct resource *r = resource_new("py\"th\\on\n", NULL);
	struct metrics_health h;
	size_t len = 0;
	char *text;

	record(m, CALL(.model = "gpt-4o", .in = 16, .out = 3, .dur_s = 0.3, .ttfc = 0.1,
		       .cost = 0.5, .gaps = (const float[]){0.1f, 0.1f}, .n_gaps = 2), r);
	record(m, CALL(.model = "gpt-5", .in = 1, .out = 1, .dur_s = 0.3), r); /* folded */
	health_fill(&h);
	metrics__set_health(m, &h);
	text = prometheus__render(m, &len);
	CHECK(text != NULL && strlen(text) == len);
	if (!text)
		return;
#define L(s) CHECK(has_line(text, s))
#define LBL "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\"," \
	    "gen_ai_request_model=\"gpt-4o\",service_name=\"py\\\"th\\\\on\\n\""
	L("# HELP gen_ai_client_token_usage Measures number of input and output tokens used");
	L("# TYPE gen_ai_client_token_usage histogram");
	L("gen_ai_client_token_usage_bucket{" LBL ",gen_ai_token_type=\"input\",le=\"4\"} 0");
	L("gen_ai_client_token_usage_bucket{" LBL ",gen_ai_token_type=\"input\",le=\"16\"} 1");
	L("gen_ai_client_token_usage_bucket{" LBL ",gen_ai_token_type=\"input\",le=\"67108864\"} 1");
	L("gen_ai_client_token_usage_bucket{" LBL ",gen_ai_token_type=\"input\",le=\"+Inf\"} 1");
	L("gen_ai_client_token_usage_sum{" LBL ",gen_ai_token_type=\"input\"} 16");
	L("gen_ai_client_token_usage_count{" LBL ",gen_ai_token_type=\"input\"} 1");
	L("# TYPE gen_ai_client_operation_duration_seconds histogram");
	L("gen_ai_client_operation_duration_seconds_bucket{" LBL ",le=\"0.16\"} 0");
	L("gen_ai_client_operation_duration_seconds_bucket{" LBL ",le=\"0.32\"} 1");
	L("gen_ai_client_operation_duration_seconds_sum{" LBL "} 0.3");
	L("gen_ai_client_operation_time_to_first_chunk_seconds_bucket{" LBL ",le=\"0.16\"} 1");
	L("# TYPE gen_ai_client_operation_time_per_output_chunk_seconds histogram");
	/* two chunk gaps of 0.1 s */
	L("gen_ai_client_operation_time_per_output_chunk_seconds_bucket{" LBL ",le=\"0.08\"} 0");
	L("gen_ai_client_operation_time_per_output_chunk_seconds_bucket{" LBL ",le=\"0.16\"} 2");
	L("gen_ai_client_operation_time_per_output_chunk_seconds_count{" LBL "} 2");
	L("# TYPE tokentap_cost_usd_total counter");
	L("tokentap_cost_usd_total{" LBL "} 0.5");
	/* gpt-5 went past the cap of 1 series per metric. */
	L("gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name=\"other\","
	  "gen_ai_provider_name=\"other\",gen_ai_request_model=\"other\","
	  "gen_ai_response_model=\"other\",error_type=\"other\",service_name=\"other\","
	  "container_id=\"other\",tokentap_tenant=\"other\",otel_metric_overflow=\"true\"} 1");
	L("tokentap_metrics_overflow_total{metric=\"gen_ai.client.operation.duration\"} 1");
	/* gpt-4o output (the cap is per metric, token types included) and gpt-5 in and out */
	L("tokentap_metrics_overflow_total{metric=\"gen_ai.client.token.usage\"} 3");
	L("tokentap_metrics_overflow_total{metric=\"tokentap.cost.usd\"} 0");
	L("# TYPE tokentap_events_total counter");
	L("tokentap_events_total 7");
	L("tokentap_bytes_lost_total 99");
	L("tokentap_parse_errors_total 2");
	L("tokentap_spans_total 5");
	L("# TYPE tokentap_attached_files gauge");
	L("tokentap_attached_files 3");
	L("tokentap_spans_exported_total{exporter=\"otlp\"} 4");
	L("tokentap_spans_dropped_total{exporter=\"otlp\"} 1");
	L("tokentap_export_errors_total{exporter=\"otlp\"} 2");
	L("tokentap_export_errors_total{exporter=\"metrics\"} 0");
	L("tokentap_metric_points_exported_total{exporter=\"metrics\"} 30");
	CHECK(strstr(text, "tokentap_spans_exported_total{exporter=\"metrics\"}") == NULL);
#undef L
#undef LBL
	/* Every non-comment line is "name{labels} value" or "name value". */
	for (char *line = text, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		CHECK(nl != NULL);
		if (!nl)
			break;
		if (*line != '#')
			CHECK(memchr(line, ' ', (size_t)(nl - line)) != NULL);
	}
	free(text);
	metrics__free(m);
	resource__put(r);
}

/* ---- OTLP encoding ------------------------------------------------------------------------ */

static const Metric *metric_named(const MRequest *req, const char *name)
{
	const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm;

	if (!req || req->n_resource_metrics != 1 || req->resource_metrics[0]->n_scope_metrics != 1)
		return NULL;
	sm = req->resource_metrics[0]->scope_metrics[0];
	for (size_t i = 0; i < sm->n_metrics; i++)
		if (!strcmp(sm->metrics[i]->name, name))
			return sm->metrics[i];
	return NULL;
}

static const char *attr_of(KeyValue **kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(kv[i]->key, key))
			return kv[i]->value->string_value;
	return NULL;
}

#define CUMULATIVE OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE

static void check_token_histogram(const Metric *mt, uint64_t now)
{
	const HistPoint *p = NULL;

	CHECK(mt != NULL);
	if (!mt)
		return;
	CHECK_EQ_STR(mt->unit, "{token}");
	CHECK_EQ_INT(mt->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM);
	CHECK_EQ_INT(mt->histogram->aggregation_temporality, CUMULATIVE);
	CHECK_EQ_INT(mt->histogram->n_data_points, 2);
	for (size_t i = 0; i < mt->histogram->n_data_points; i++) {
		const HistPoint *q = mt->histogram->data_points[i];

		if (!strcmp(attr_of(q->attributes, q->n_attributes, "gen_ai.token.type"), "output"))
			p = q;
	}
	CHECK(p != NULL);
	if (!p)
		return;
	CHECK(p->has_sum && p->has_min && p->has_max && p->has_count);
	CHECK_EQ_INT(p->count, 2);
	CHECK(p->sum == 303 && p->min == 3 && p->max == 300);
	CHECK_EQ_INT(p->time_unix_nano, now);
	CHECK(p->start_time_unix_nano > 0 && p->start_time_unix_nano <= now);
	CHECK_EQ_INT(p->n_explicit_bounds, 14);
	CHECK_EQ_INT(p->n_bucket_counts, 15);
	if (p->n_bucket_counts == 15 && p->n_explicit_bounds == 14) {
		CHECK(p->explicit_bounds[0] == 1 && p->explicit_bounds[13] == 67108864);
		CHECK_EQ_INT(p->bucket_counts[1], 1); /* 3 in (1, 4] */
		CHECK_EQ_INT(p->bucket_counts[5], 1); /* 300 in (256, 1024] */
	}
	CHECK_EQ_STR(attr_of(p->attributes, p->n_attributes, "gen_ai.request.model"), "gpt-4o");
	CHECK_EQ_STR(attr_of(p->attributes, p->n_attributes, "tokentap.tenant"), "t1");
	CHECK_EQ_STR(attr_of(p->attributes, p->n_attributes, "service.name"), "node");
}

TEST(otlp_encoding_decodes)
{
	struct metrics *m = metrics__new(0);
	struct resource *r = resource_new("node", NULL);
	struct metrics_health h;
	uint64_t now = 1800000000000000000ull;
	const Metric *mt;
	MRequest *req;
	size_t len = 0, n = 0;
	uint8_t *buf;

	record(m, CALL(.model = "gpt-4o", .in = 10, .out = 3, .dur_s = 1, .cost = 0.5,
		       .tenant = "t1"), r);
	record(m, CALL(.model = "gpt-4o", .in = 10, .out = 300, .dur_s = 1, .cost = 0.25,
		       .tenant = "t1"), r);
	health_fill(&h);
	metrics__set_health(m, &h);
	buf = otlp_metrics__encode(m, now, &len, &n);
	CHECK(buf != NULL);
	req = buf ? opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
			    NULL, len, buf)
		  : NULL;
	CHECK(req != NULL);
	/* 2 token + 1 duration + 1 cost + 6 overflow + 13 health + otlp x3 + metrics x3 */
	CHECK_EQ_INT(n, 2 + 1 + 1 + M__N + n_health_defs + 6);
	check_token_histogram(metric_named(req, "gen_ai.client.token.usage"), now);
	mt = metric_named(req, "tokentap.cost.usd");
	CHECK(mt && mt->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
	if (mt && mt->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM) {
		CHECK(mt->sum->is_monotonic);
		CHECK_EQ_INT(mt->sum->aggregation_temporality, CUMULATIVE);
		CHECK(mt->sum->n_data_points == 1 && mt->sum->data_points[0]->as_double == 0.75);
	}
	mt = metric_named(req, "tokentap.attached_files");
	CHECK(mt && mt->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE &&
	      mt->gauge->data_points[0]->as_int == 3);
	mt = metric_named(req, "tokentap.spans.exported");
	CHECK(mt && mt->sum->n_data_points == 1 && mt->sum->data_points[0]->as_int == 4);
	CHECK(metric_named(req, "gen_ai.client.operation.time_to_first_chunk") == NULL);
	if (req) {
		KeyValue **ra = req->resource_metrics[0]->resource->attributes;

		CHECK_EQ_STR(attr_of(ra, req->resource_metrics[0]->resource->n_attributes,
				     "service.name"), "tokentap");
	}
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(
		req, NULL);
	free(buf);
	metrics__free(m);
	resource__put(r);
}

/* ---- a loopback HTTP server: one request per connection, answers from a script ---------- */

#define MAX_REQS 8

struct srv {
	int fd, port, n;
	pthread_t th;
	bool stop; /* atomic */
	int status[MAX_REQS]; /* 0: 200 */
	const char *extra[MAX_REQS];
	const uint8_t *resp_body[MAX_REQS];
	size_t resp_len[MAX_REQS];
	char *head[MAX_REQS];
	uint8_t *body[MAX_REQS];
	size_t body_len[MAX_REQS];
	pthread_mutex_t mu;
};

static void srv__one(struct srv *s, int c)
{
	static char buf[1 << 20];
	size_t len = 0, hlen = 0, clen = 0;
	char *end = NULL, head[512];
	ssize_t r;
	int i, n;

	while (len < sizeof(buf) && (!end || len < hlen + clen)) {
		r = read(c, buf + len, sizeof(buf) - len);
		if (r <= 0)
			return;
		len += (size_t)r;
		if (!end && (end = memmem(buf, len, "\r\n\r\n", 4))) {
			char *cl;

			hlen = (size_t)(end - buf) + 4;
			*end = '\0';
			cl = strcasestr(buf, "content-length:");
			clen = cl ? strtoul(cl + 15, NULL, 10) : 0;
		}
	}
	pthread_mutex_lock(&s->mu);
	i = s->n < MAX_REQS ? s->n++ : MAX_REQS - 1;
	free(s->head[i]);
	free(s->body[i]);
	s->head[i] = strdup(buf);
	s->body[i] = malloc(clen + 1);
	memcpy(s->body[i], buf + hlen, clen);
	s->body_len[i] = clen;
	pthread_mutex_unlock(&s->mu);
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
		     s->status[i] ? s->status[i] : 200, s->resp_len[i],
		     s->extra[i] ? s->extra[i] : "");
	if (write(c, head, (size_t)n) < 0 ||
	    (s->resp_len[i] && write(c, s->resp_body[i], s->resp_len[i]) < 0))
		perror("srv write");
}

static void *srv__run(void *arg)
{
	struct srv *s = arg;
	struct pollfd p = { .fd = s->fd, .events = POLLIN };

	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		int c;

		if (poll(&p, 1, 20) <= 0)
			continue;
		c = accept(s->fd, NULL, NULL);
		if (c >= 0) {
			srv__one(s, c);
			close(c);
		}
	}
	return NULL;
}

static void srv__start(struct srv *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	pthread_mutex_init(&s->mu, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	bind(s->fd, (struct sockaddr *)&a, sizeof(a));
	listen(s->fd, 16);
	getsockname(s->fd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	pthread_create(&s->th, NULL, srv__run, s);
}

static int srv__count(struct srv *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void srv__stop(struct srv *s)
{
	__atomic_store_n(&s->stop, true, __ATOMIC_RELAXED);
	pthread_join(s->th, NULL);
	close(s->fd);
	for (int i = 0; i < MAX_REQS; i++) {
		free(s->head[i]);
		free(s->body[i]);
	}
	pthread_mutex_destroy(&s->mu);
}

/* gunzip of a request body; malloc'd. */
static uint8_t *gunzip(const uint8_t *in, size_t len, size_t *out_len)
{
	size_t cap = 1 << 22;
	uint8_t *out = malloc(cap);
	z_stream z = { .next_in = (Bytef *)in, .avail_in = (uInt)len, .next_out = out,
		       .avail_out = (uInt)cap };

	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return NULL;
	if (inflate(&z, Z_FINISH) != Z_STREAM_END) {
		inflateEnd(&z);
		free(out);
		return NULL;
	}
	*out_len = z.total_out;
	inflateEnd(&z);
	return out;
}

static size_t points_in(const MRequest *req)
{
	const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm;
	size_t n = 0;

	if (!req || req->n_resource_metrics != 1)
		return 0;
	sm = req->resource_metrics[0]->scope_metrics[0];
	for (size_t i = 0; i < sm->n_metrics; i++) {
		const Metric *mt = sm->metrics[i];

		if (mt->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM)
			n += mt->histogram->n_data_points;
		else if (mt->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM)
			n += mt->sum->n_data_points;
		else
			n += mt->gauge->n_data_points;
	}
	return n;
}

/* ---- OTLP metrics push ------------------------------------------------------------------ */

static struct exporter *metrics_exporter_to(struct srv *s, struct metrics **reg)
{
	char ep[64];
	struct metrics_opts o = { .otlp_endpoint = ep, .otlp_compression = "gzip",
				  .interval_s = 3600, .otlp_headers = "authorization=Bearer s3cr" };

	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d/", s->port);
	return metrics_exporter__new(&o, reg);
}

TEST(otlp_push_gzip_retry_and_partial_success)
{
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsPartialSuccess ps =
		OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse resp =
		OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
	uint8_t rbuf[64];
	struct srv s = { .status = { 503, 0, 400 }, .extra = { "Retry-After: 0\r\n" } };
	struct metrics *reg = NULL;
	struct exporter *e;
	struct export_stats st;
	struct span *sp;
	size_t plain_len = 0;
	uint8_t *plain;
	MRequest *req;

	ps.rejected_data_points = 2;
	resp.partial_success = &ps;
	s.resp_len[1] = opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__pack(
		&resp, rbuf);
	s.resp_body[1] = rbuf;
	srv__start(&s);
	e = metrics_exporter_to(&s, &reg);
	CHECK(e != NULL && reg != NULL);
	if (!e) {
		srv__stop(&s);
		return;
	}
	sp = span_of(CALL(.model = "gpt-4o", .in = 5, .out = 6, .dur_s = 1), NULL);
	e->ops->export(e, sp);
	span__free(sp);
	e->ops->flush(e, 5000); /* 503 (Retry-After: 0), then 200 with 2 points rejected */
	e->ops->stats(e, &st);
	CHECK_EQ_INT(srv__count(&s), 2);
	CHECK_EQ_INT(st.errors, 1);
	CHECK_EQ_INT(st.dropped, 2);
	CHECK(st.exported > 0);
	CHECK(strcasestr(s.head[1], "\r\ncontent-encoding: gzip") != NULL);
	CHECK(strstr(s.head[1], "POST /v1/metrics ") == s.head[1]);
	CHECK(strcasestr(s.head[1], "\r\ncontent-type: application/x-protobuf") != NULL);
	plain = gunzip(s.body[1], s.body_len[1], &plain_len);
	CHECK(plain != NULL);
	req = plain ? opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
			      NULL, plain_len, plain)
		    : NULL;
	CHECK(req != NULL && metric_named(req, "gen_ai.client.token.usage") != NULL);
	/* The points the answer did not reject count as exported. */
	CHECK_EQ_INT(st.exported + 2, points_in(req));
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(
		req, NULL);
	free(plain);
	e->ops->flush(e, 5000); /* 400: not retried, every point dropped */
	e->ops->stats(e, &st);
	CHECK_EQ_INT(srv__count(&s), 3);
	CHECK_EQ_INT(st.errors, 2);
	e->ops->destroy(e);
	srv__stop(&s);
}

/* The trace exporter shares the transport: gzip there too. */
TEST(trace_exporter_gzip)
{
	struct srv s = { 0 };
	struct otlp_opts o = { .compression = "gzip" };
	char ep[64];
	struct exporter *e;
	struct span *sp = span_of(CALL(.model = "gpt-4o", .dur_s = 1), NULL);
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req = NULL;
	size_t plain_len = 0;
	uint8_t *plain = NULL;

	srv__start(&s);
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", s.port);
	o.endpoint = ep;
	e = otlp_exporter__new(&o);
	CHECK(e != NULL);
	if (e) {
		e->ops->export(e, sp);
		e->ops->flush(e, 5000);
		e->ops->destroy(e);
	}
	CHECK_EQ_INT(srv__count(&s), 1);
	if (srv__count(&s) == 1) {
		CHECK(strcasestr(s.head[0], "\r\ncontent-encoding: gzip") != NULL);
		plain = gunzip(s.body[0], s.body_len[0], &plain_len);
	}
	if (plain)
		req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
			NULL, plain_len, plain);
	CHECK(req != NULL && req->n_resource_spans == 1 &&
	      req->resource_spans[0]->scope_spans[0]->n_spans == 1);
	if (req)
		opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
			req, NULL);
	free(plain);
	span__free(sp);
	srv__stop(&s);
}

TEST(bad_metrics_options)
{
	struct metrics_opts o = { .otlp_endpoint = "localhost:4318" };
	struct metrics *reg = NULL;
	struct exporter *e;

	CHECK(metrics_exporter__new(&o, &reg) == NULL);
	o.otlp_endpoint = "http://127.0.0.1:9";
	o.otlp_compression = "br";
	CHECK(metrics_exporter__new(&o, &reg) == NULL);
	o.otlp_endpoint = NULL;
	o.prometheus = "127.0.0.1:99999";
	CHECK(metrics_exporter__new(&o, &reg) == NULL);
	o.prometheus = "127.0.0.1:";
	CHECK(metrics_exporter__new(&o, &reg) == NULL);
	o.prometheus = "no such host:1";
	CHECK(metrics_exporter__new(&o, &reg) == NULL);
	o.prometheus = NULL;
	e = metrics_exporter__new(&o, &reg); /* the registry alone */
	CHECK(e != NULL && reg != NULL);
	if (e)
		e->ops->destroy(e);
}

/* ---- the Prometheus endpoint ------------------------------------------------------------- */

/* GET path from 127.0.0.1:port; the whole answer, malloc'd. */
static char *http_get(int port, const char *path)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t cap = 1 << 20, len = 0;
	char *buf = calloc(1, cap + 1), req[256];
	ssize_t r;

	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		free(buf);
		return NULL;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, strlen(req)) < 0)
		perror("write");
	while ((r = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)r;
	close(fd);
	return buf;
}

TEST(prometheus_endpoint)
{
	struct metrics *m = metrics__new(0);
	struct prom_server *ps = NULL;
	struct metrics_health h;
	char *resp;
	int port;

	CHECK_EQ_INT(prom_server__start(&ps, "127.0.0.1:0", m), 0);
	if (!ps) {
		metrics__free(m);
		return;
	}
	port = prom_server__port(ps);
	CHECK(port > 0);
	resp = http_get(port, "/healthz");
	CHECK(resp && strstr(resp, "HTTP/1.1 503") == resp);
	free(resp);
	record(m, CALL(.model = "gpt-4o", .in = 5, .out = 6, .dur_s = 1), NULL);
	health_fill(&h);
	metrics__set_health(m, &h);
	resp = http_get(port, "/healthz");
	CHECK(resp && strstr(resp, "HTTP/1.1 200") == resp);
	free(resp);
	resp = http_get(port, "/metrics");
	CHECK(resp && strstr(resp, "HTTP/1.1 200") == resp);
	CHECK(resp && strcasestr(resp, "content-type: text/plain; version=0.0.4; charset=utf-8"));
	CHECK(resp && strstr(resp, "\ngen_ai_client_token_usage_count{gen_ai_operation_name="
				   "\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model="
				   "\"gpt-4o\",gen_ai_token_type=\"output\"} 1\n"));
	CHECK(resp && strstr(resp, "\ntokentap_events_total 7\n"));
	free(resp);
	resp = http_get(port, "/other");
	CHECK(resp && strstr(resp, "HTTP/1.1 404") == resp);
	free(resp);
	prom_server__stop(ps);
	metrics__free(m);
}

TEST(gzip_round_trip)
{
	uint8_t in[5000], *z, *back;
	size_t zl = 0, bl = 0;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i % 7);
	z = otlp_http__gzip(in, sizeof(in), &zl);
	CHECK(z != NULL && zl > 10 && zl < sizeof(in));
	CHECK(z && z[0] == 0x1f && z[1] == 0x8b); /* a gzip member, not zlib */
	back = z ? gunzip(z, zl, &bl) : NULL;
	CHECK(back && bl == sizeof(in) && memcmp(back, in, sizeof(in)) == 0);
	free(z);
	free(back);
}

int main(void)
{
	RUN(bucketing_and_cumulative_sums);
	RUN(streams_cost_tenant_and_errors);
	RUN(cardinality_folds_into_other);
	RUN(attribute_values_bounded_and_utf8);
	RUN(prometheus_exposition);
	RUN(otlp_encoding_decodes);
	RUN(otlp_push_gzip_retry_and_partial_success);
	RUN(trace_exporter_gzip);
	RUN(bad_metrics_options);
	RUN(prometheus_endpoint);
	RUN(gzip_round_trip);
	TT_DONE();
}
