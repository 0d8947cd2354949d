// SPDX-License-Identifier: Apache-2.0
/*
 * The metrics registry: spans -> cumulative series. Per span, with the attributes of
 * metrics.h's enum mkey (those the span has):
 *   gen_ai.client.token.usage          histogram {token}, once per known count, gen_ai.token.type
 *                                      input|output
 *   gen_ai.client.operation.duration   histogram s, end - start of the span
 *   ...time_to_first_chunk             histogram s, streams: gen_ai.response.time_to_first_chunk
 *   ...time_per_output_chunk           histogram s, streams: one measurement per output chunk
 *                                      after the first, the time since the previous chunk
 *                                      (span.chunk_gaps; a call's gaps past LLM_MAX_CHUNK_GAPS
 *                                      are recorded at their mean)
 *   tokentap.cost.usd                  sum {USD}, monotonic: the span's tokentap.cost.usd
 *   tokentap.cost.unpriced_calls       sum {call}: calls with token counts but no cost
 *
 * Cardinality: each metric keeps at most max_series attribute sets of its own. A measurement
 * with a new set past that is folded into the metric's overflow series, whose attributes are
 * all "other" (gen_ai.token.type is kept: it only has two values) plus otel.metric.overflow =
 * true, as the OpenTelemetry SDK specification names it; each folded measurement is counted in
 * tokentap.metrics.overflow{metric=<name>}. Series are never removed (cumulative temporality).
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export/metrics.h"
#include "export/utf8.h"

#define METRICS_MAX_SERIES_LIMIT 1000000

const char *const mkey_otel[MK__N] = {
	[MK_OPERATION] = "gen_ai.operation.name", [MK_PROVIDER] = "gen_ai.provider.name",
	[MK_REQ_MODEL] = "gen_ai.request.model",  [MK_RESP_MODEL] = "gen_ai.response.model",
	[MK_ERROR] = "error.type",		  [MK_SERVICE] = "service.name",
	[MK_CONTAINER] = "container.id",	  [MK_TENANT] = "tokentap.tenant",
	[MK_TOKEN_TYPE] = "gen_ai.token.type",
};

const char *const mkey_prom[MK__N] = {
	[MK_OPERATION] = "gen_ai_operation_name", [MK_PROVIDER] = "gen_ai_provider_name",
	[MK_REQ_MODEL] = "gen_ai_request_model",  [MK_RESP_MODEL] = "gen_ai_response_model",
	[MK_ERROR] = "error_type",		  [MK_SERVICE] = "service_name",
	[MK_CONTAINER] = "container_id",	  [MK_TENANT] = "tokentap_tenant",
	[MK_TOKEN_TYPE] = "gen_ai_token_type",
};

/* Semantic conventions v1.41.0 ExplicitBucketBoundaries. */
static const double token_bounds[] = { 1,      4,	16,	 64,	   256,	     1024,
				       4096,   16384,	65536,	 262144,   1048576,  4194304,
				       16777216, 67108864 };
/* Shared by duration, time_to_first_chunk and time_per_output_chunk. */
static const double time_bounds[] = { 0.01, 0.02, 0.04, 0.08,  0.16,  0.32,  0.64,
				      1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92 };

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

const struct metric_def metric_defs[M__N] = {
	[M_TOKEN_USAGE] = { "gen_ai.client.token.usage", "gen_ai_client_token_usage", "{token}",
			    "Measures number of input and output tokens used", MKIND_HISTOGRAM,
			    token_bounds, N_OF(token_bounds) },
	[M_DURATION] = { "gen_ai.client.operation.duration",
			 "gen_ai_client_operation_duration_seconds", "s", "GenAI operation duration",
			 MKIND_HISTOGRAM, time_bounds, N_OF(time_bounds) },
	[M_TTFC] = { "gen_ai.client.operation.time_to_first_chunk",
		     "gen_ai_client_operation_time_to_first_chunk_seconds", "s",
		     "Time to receive the first chunk of a streamed response, from the request",
		     MKIND_HISTOGRAM, time_bounds, N_OF(time_bounds) },
	[M_TPOC] = { "gen_ai.client.operation.time_per_output_chunk",
		     "gen_ai_client_operation_time_per_output_chunk_seconds", "s",
		     "Time between consecutive output chunks of a streamed response",
		     MKIND_HISTOGRAM, time_bounds, N_OF(time_bounds) },
	[M_COST] = { "tokentap.cost.usd", "tokentap_cost_usd_total", "{USD}",
		     "Cost of LLM calls at list prices, in US dollars", MKIND_SUM_DOUBLE },
	[M_UNPRICED] = { "tokentap.cost.unpriced_calls", "tokentap_cost_unpriced_calls_total",
			 "{call}", "LLM calls with token counts but no price for their model",
			 MKIND_SUM_INT },
};

#define H(field) offsetof(struct metrics_health, field)

const struct health_def health_defs[] = {
	{ "tokentap.capture.events", "tokentap_events_total", "{event}",
	  "Records received from the kernel", false, H(events) },
	{ "tokentap.capture.bytes", "tokentap_bytes_total", "By", "TLS plaintext bytes captured",
	  false, H(bytes) },
	{ "tokentap.capture.events.lost", "tokentap_events_lost_total", "{event}",
	  "Records the kernel could not deliver (ring buffer full, copy failed)", false,
	  H(lost_records) },
	{ "tokentap.capture.bytes.lost", "tokentap_bytes_lost_total", "By",
	  "Plaintext bytes lost in capture (dropped or truncated records)", false, H(lost_bytes) },
	{ "tokentap.capture.malformed", "tokentap_malformed_records_total", "{event}",
	  "Records too short or of an unknown kind", false, H(malformed_records) },
	{ "tokentap.stream.gaps", "tokentap_stream_gaps_total", "{gap}",
	  "Holes in captured streams", false, H(gaps) },
	{ "tokentap.parse.errors", "tokentap_parse_errors_total", "{connection}",
	  "Connections whose HTTP could not be parsed", false, H(parse_errors) },
	{ "tokentap.parse.json_errors", "tokentap_json_errors_total", "{body}",
	  "LLM bodies that were not the provider's JSON", false, H(json_errors) },
	{ "tokentap.llm.calls", "tokentap_llm_calls_total", "{call}", "LLM API calls seen", false,
	  H(llm_calls) },
	{ "tokentap.spans", "tokentap_spans_total", "{span}", "Spans built", false, H(spans) },
	{ "tokentap.connections.open", "tokentap_connections_open", "{connection}",
	  "Connections tracked now", true, H(conns_open) },
	{ "tokentap.attached_files", "tokentap_attached_files", "{file}",
	  "Files (executables, libraries) with TLS probes attached", true, H(attached_files),
	  true },
	{ "tokentap.attach.failures", "tokentap_attach_failures", "{file}",
	  "Files carrying OpenSSL whose probes could not be attached", true, H(attach_failures),
	  true },
	{ "tokentap.attach.users", "tokentap_attach_users", "{process}",
	  "Processes known to map an attached file, summed over files", true, H(attach_users),
	  true },
	{ "tokentap.attach.max_files", "tokentap_attach_max_files", "{file}",
	  "Bound on attached files (max-attached-files)", true, H(attach_max_files), true },
	{ "tokentap.attach.refusals", "tokentap_attach_refusals_total", "{file}",
	  "Files carrying TLS not attached because the bound was reached", false,
	  H(attach_refusals) },
	{ "tokentap.attach.detaches", "tokentap_attach_detaches_total", "{file}",
	  "Files detached after their last user exited", false, H(attach_detaches) },
	{ "tokentap.attach.exec_attaches", "tokentap_attach_exec_attaches_total", "{file}",
	  "Files attached for a process that had just exec'd", false, H(exec_attaches) },
	{ "tokentap.attach.exec_window.last", "tokentap_attach_exec_window_last_seconds", "s",
	  "Kernel exec timestamp to probes attached, the latest such attach", true,
	  H(exec_window_last_us), .div = 1e6 },
	{ "tokentap.attach.exec_window.max", "tokentap_attach_exec_window_max_seconds", "s",
	  "Kernel exec timestamp to probes attached, the longest so far", true,
	  H(exec_window_max_us), .div = 1e6 },
	{ "tokentap.processes.traced", "tokentap_traced_processes", "{process}",
	  "Processes with captured TLS or plain HTTP traffic on a connection tracked now", true,
	  H(traced_processes) },
	{ "tokentap.attach.code_shape_files", "tokentap_attach_code_shape_files", "{file}",
	  "Attached files whose TLS entry points were found by code shape, not symbols", true,
	  H(code_shape_files), true },
	{ "tokentap.attach.code_shape.verified", "tokentap_code_shape_connections_verified_total",
	  "{connection}", "Connections of code-shape probes trusted once an HTTP request started",
	  false, H(code_shape_verified) },
	{ "tokentap.attach.code_shape.held_bytes", "tokentap_code_shape_held_bytes_total", "By",
	  "Bytes of code-shape probes held back: their connection showed no HTTP request yet",
	  false, H(code_shape_held_bytes) },
	{ "tokentap.rustls.unbound_records", "tokentap_rustls_unbound_records_total", "{event}",
	  "rustls records dropped because the socket they travel on never became known", false,
	  H(rustls_unbound_records) },
	{ "tokentap.attach.exec_holds", "tokentap_exec_holds_total", "{process}",
	  "Just-exec'd processes held while their executable was analysed", false,
	  H(exec_holds) },
	{ "tokentap.attach.exec_hold.failures", "tokentap_exec_hold_failures_total", "{process}",
	  "Holds refused (traced already, not permitted, too many) or ended by the bound", false,
	  H(exec_hold_failures) },
	{ "tokentap.attach.exec_hold.max", "tokentap_exec_hold_max_seconds", "s",
	  "The longest hold of a just-exec'd process so far", true, H(exec_hold_max_us),
	  .div = 1e6 },
};
const size_t n_health_defs = sizeof(health_defs) / sizeof(health_defs[0]);

const struct health_export_def health_export_defs[HX__N][2] = {
	[HX_EXPORTED] = { { "tokentap.spans.exported", "tokentap_spans_exported_total", "{span}",
			    "Spans accepted by an exporter's destination" },
			  { "tokentap.metrics.points.exported",
			    "tokentap_metric_points_exported_total", "{point}",
			    "Metric data points accepted by the OTLP metrics destination" } },
	[HX_DROPPED] = { { "tokentap.spans.dropped", "tokentap_spans_dropped_total", "{span}",
			   "Spans dropped: queue full, rejected, or failed after retries" },
			 { "tokentap.metrics.points.dropped", "tokentap_metric_points_dropped_total",
			   "{point}", "Metric data points rejected or failed after retries" } },
	[HX_ERRORS] = { { "tokentap.export.errors", "tokentap_export_errors_total", "{request}",
			  "Failed export attempts (each retry counts)" },
			{ "tokentap.export.errors", "tokentap_export_errors_total", "{request}",
			  "Failed export attempts (each retry counts)" } },
};

uint64_t health__value(const struct metrics_health *h, const struct health_def *d)
{
	const char *p = (const char *)h + d->off;

	return d->u32 ? *(const uint32_t *)p : *(const uint64_t *)p;
}

uint64_t health__export_value(const struct metrics_exporter_health *x,
			      enum health_export_field f)
{
	return f == HX_EXPORTED ? x->exported : f == HX_DROPPED ? x->dropped : x->errors;
}

bool health__is_metrics_exporter(const struct metrics_exporter_health *x)
{
	return !strcmp(x->name, "metrics");
}

struct metrics {
	pthread_mutex_t mu;
	struct metric metrics[M__N];
	struct metric_series **table[M__N]; /* hash chains */
	size_t table_mask;
	size_t max_series;
	uint64_t start_unix_ns;
	struct metrics_health health;
	bool has_health;
};

static uint64_t now_unix_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- registry ---------------------------------------------------------------------------- */

struct metrics *metrics__new(int max_series)
{
	struct metrics *m = calloc(1, sizeof(*m));
	size_t size = 64;

	if (!m)
		return NULL;
	m->max_series = max_series > 0 ? (size_t)max_series : METRICS_DEFAULT_MAX_SERIES;
	if (m->max_series > METRICS_MAX_SERIES_LIMIT)
		m->max_series = METRICS_MAX_SERIES_LIMIT;
	while (size < m->max_series * 2)
		size *= 2;
	m->table_mask = size - 1;
	for (int i = 0; i < M__N; i++) {
		m->metrics[i].def = &metric_defs[i];
		m->table[i] = calloc(size, sizeof(*m->table[i]));
		if (!m->table[i]) {
			metrics__free(m);
			return NULL;
		}
	}
	m->start_unix_ns = now_unix_ns();
	pthread_mutex_init(&m->mu, NULL);
	return m;
}

void metrics__free(struct metrics *m)
{
	if (!m)
		return;
	for (int i = 0; i < M__N; i++) {
		for (size_t j = 0; j < m->metrics[i].n_series; j++)
			free(m->metrics[i].series[j]);
		free(m->metrics[i].series);
		free(m->table[i]);
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

void metrics__lock(struct metrics *m)
{
	pthread_mutex_lock(&m->mu);
}

void metrics__unlock(struct metrics *m)
{
	pthread_mutex_unlock(&m->mu);
}

const struct metric *metrics__get(const struct metrics *m, enum metric_id id)
{
	return &m->metrics[id];
}

const struct metrics_health *metrics__health(const struct metrics *m)
{
	return m->has_health ? &m->health : NULL;
}

bool metrics__ready(struct metrics *m)
{
	bool ready;

	metrics__lock(m);
	ready = m->has_health;
	metrics__unlock(m);
	return ready;
}

uint64_t metrics__start_unix_ns(const struct metrics *m)
{
	return m->start_unix_ns;
}

void metrics__set_health(struct metrics *m, const struct metrics_health *h)
{
	metrics__lock(m);
	m->health = *h;
	m->has_health = true;
	metrics__unlock(m);
}

/* ---- series ------------------------------------------------------------------------------ */

static uint64_t series__hash(const char *const *vals, bool overflow)
{
	uint64_t h = overflow ? 0x9e3779b97f4a7c15ull : 14695981039346656037ull;

	for (int k = 0; k < MK__N; k++) {
		const unsigned char *p = (const unsigned char *)vals[k];

		/* Absent and empty differ: absent hashes a byte no string can hold here. */
		h = (h ^ (p ? 1u : 2u)) * 1099511628211ull;
		for (; p && *p; p++)
			h = (h ^ *p) * 1099511628211ull;
		h = (h ^ 0xffu) * 1099511628211ull;
	}
	return h;
}

static bool series__same(const struct metric_series *s, const char *const *vals, bool overflow)
{
	if (s->overflow != overflow)
		return false;
	for (int k = 0; k < MK__N; k++) {
		if (!s->vals[k] != !vals[k])
			return false;
		if (vals[k] && strcmp(s->vals[k], vals[k]))
			return false;
	}
	return true;
}

/* One allocation: the series, its bucket counts, then its attribute strings. */
static struct metric_series *series__alloc(const struct metric_def *d, const char *const *vals,
					   bool overflow, uint64_t hash)
{
	size_t nb = d->kind == MKIND_HISTOGRAM ? d->n_bounds + 1 : 0, strs = 0;
	struct metric_series *s;
	char *p;

	for (int k = 0; k < MK__N; k++)
		strs += vals[k] ? strlen(vals[k]) + 1 : 0;
	s = calloc(1, sizeof(*s) + nb * sizeof(s->buckets[0]) + strs);
	if (!s)
		return NULL;
	s->hash = hash;
	s->overflow = overflow;
	s->min = INFINITY;
	s->max = -INFINITY;
	p = (char *)&s->buckets[nb];
	for (int k = 0; k < MK__N; k++) {
		if (!vals[k])
			continue;
		s->vals[k] = strcpy(p, vals[k]);
		p += strlen(vals[k]) + 1;
	}
	return s;
}

static struct metric_series *series__insert(struct metrics *m, enum metric_id id,
					    const char *const *vals, bool overflow, uint64_t hash)
{
	struct metric *mt = &m->metrics[id];
	struct metric_series *s, **grown;

	if (mt->n_series == mt->cap) {
		size_t cap = mt->cap ? mt->cap * 2 : 16;

		grown = realloc(mt->series, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		mt->series = grown;
		mt->cap = cap;
	}
	s = series__alloc(mt->def, vals, overflow, hash);
	if (!s)
		return NULL;
	s->hnext = m->table[id][hash & m->table_mask];
	m->table[id][hash & m->table_mask] = s;
	mt->series[mt->n_series++] = s;
	if (!overflow)
		mt->n_regular++;
	return s;
}

static struct metric_series *series__find(struct metrics *m, enum metric_id id,
					  const char *const *vals, bool overflow, uint64_t hash)
{
	struct metric_series *s = m->table[id][hash & m->table_mask];

	for (; s; s = s->hnext) {
		if (s->hash == hash && series__same(s, vals, overflow))
			return s;
	}
	return NULL;
}

/* The overflow series of metric id for this measurement's token type. */
static struct metric_series *series__overflow(struct metrics *m, enum metric_id id,
					      const char *const *vals)
{
	const char *other[MK__N];
	uint64_t hash;
	struct metric_series *s;

	for (int k = 0; k < MK__N; k++)
		other[k] = "other";
	other[MK_TOKEN_TYPE] = vals[MK_TOKEN_TYPE];
	hash = series__hash(other, true);
	s = series__find(m, id, other, true, hash);
	return s ? s : series__insert(m, id, other, true, hash);
}

/* The series for vals, created or folded into the overflow series. NULL when out of memory. */
static struct metric_series *series__get(struct metrics *m, enum metric_id id,
					 const char *const *vals)
{
	uint64_t hash = series__hash(vals, false);
	struct metric_series *s = series__find(m, id, vals, false, hash);

	if (s)
		return s;
	if (m->metrics[id].n_regular >= m->max_series) {
		m->metrics[id].overflowed++;
		return series__overflow(m, id, vals);
	}
	return series__insert(m, id, vals, false, hash);
}

static size_t bucket__index(const struct metric_def *d, double v)
{
	size_t i = 0;

	/* Bucket i holds (bounds[i-1], bounds[i]]: upper bounds inclusive, as OTLP and
	 * Prometheus' "le" both say. */
	while (i < d->n_bounds && v > d->bounds[i])
		i++;
	return i;
}

/* n measurements of the same value v (n > 1: folded chunk gaps, recorded at their mean). */
static void metrics__observe_n(struct metrics *m, enum metric_id id, const char *const *vals,
			       double v, uint64_t n)
{
	struct metric_series *s;

	if (!isfinite(v) || v < 0 || !n) /* a clock step or a bad attribute: not a measurement */
		return;
	s = series__get(m, id, vals);
	if (!s)
		return;
	s->count += n;
	s->sum += v * (double)n;
	if (m->metrics[id].def->kind != MKIND_HISTOGRAM)
		return;
	if (v < s->min)
		s->min = v;
	if (v > s->max)
		s->max = v;
	s->buckets[bucket__index(m->metrics[id].def, v)] += n;
}

static void metrics__observe(struct metrics *m, enum metric_id id, const char *const *vals,
			     double v)
{
	metrics__observe_n(m, id, vals, v, 1);
}

/* ---- spans -> measurements --------------------------------------------------------------- */

static const struct attr *resource__find(const struct resource *r, const char *key)
{
	for (size_t i = 0; r && i < r->n_attrs; i++) {
		if (!strcmp(r->attrs[i].key, key))
			return &r->attrs[i];
	}
	return NULL;
}

/* A string attribute's value as a bounded, valid UTF-8 string in buf; NULL when absent. */
static const char *attr__text(const struct attr *a, char *buf, size_t size)
{
	char *fixed;
	size_t n, i, l;

	if (!a || a->type != ATTR_STRING || !a->s)
		return NULL;
	fixed = utf8__repair(a->s);
	snprintf(buf, size, "%s", fixed ? fixed : a->s);
	free(fixed);
	/* The text was valid UTF-8: only a cut sequence at the end can be invalid now. */
	n = strlen(buf);
	for (i = 0; i < n; i += l) {
		l = utf8__seq_len((const unsigned char *)buf + i, n - i);
		if (!l) {
			buf[i] = '\0';
			break;
		}
	}
	return buf;
}

static bool attr__number(const struct attr *a, double *v)
{
	if (a && a->type == ATTR_DOUBLE) {
		*v = a->d;
		return true;
	}
	if (a && a->type == ATTR_INT) {
		*v = (double)a->i;
		return true;
	}
	return false;
}

struct span_vals {
	const char *v[MK__N];
	char buf[MK__N][METRICS_VALUE_MAX];
};

static void span__vals(const struct span *s, struct span_vals *sv)
{
	static const enum mkey from_span[] = { MK_OPERATION, MK_PROVIDER, MK_REQ_MODEL,
					       MK_RESP_MODEL, MK_ERROR, MK_TENANT };

	memset(sv->v, 0, sizeof(sv->v));
	for (size_t i = 0; i < N_OF(from_span); i++) {
		enum mkey k = from_span[i];

		sv->v[k] = attr__text(span__find_attr(s, mkey_otel[k]), sv->buf[k],
				      sizeof(sv->buf[k]));
	}
	sv->v[MK_SERVICE] = attr__text(resource__find(s->resource, "service.name"),
				       sv->buf[MK_SERVICE], sizeof(sv->buf[MK_SERVICE]));
	sv->v[MK_CONTAINER] = attr__text(resource__find(s->resource, "container.id"),
					 sv->buf[MK_CONTAINER], sizeof(sv->buf[MK_CONTAINER]));
}

static void metrics__record_tokens(struct metrics *m, const struct span *s, struct span_vals *sv)
{
	double in, out;

	if (attr__number(span__find_attr(s, "gen_ai.usage.input_tokens"), &in)) {
		sv->v[MK_TOKEN_TYPE] = "input";
		metrics__observe(m, M_TOKEN_USAGE, sv->v, in);
	}
	if (attr__number(span__find_attr(s, "gen_ai.usage.output_tokens"), &out)) {
		sv->v[MK_TOKEN_TYPE] = "output";
		metrics__observe(m, M_TOKEN_USAGE, sv->v, out);
	}
	sv->v[MK_TOKEN_TYPE] = NULL;
}

/* One measurement per gap between consecutive output chunks of a stream. */
static void metrics__record_chunk_gaps(struct metrics *m, const struct span *s,
				       struct span_vals *sv)
{
	const struct span_chunk_gaps *g = s->chunk_gaps;

	if (!g)
		return;
	for (uint32_t i = 0; i < g->n; i++)
		metrics__observe(m, M_TPOC, sv->v, g->v[i]);
	if (g->folded)
		metrics__observe_n(m, M_TPOC, sv->v, g->folded_s / g->folded, g->folded);
}

static void metrics__record_times(struct metrics *m, const struct span *s, struct span_vals *sv)
{
	double dur, ttfc;

	if (s->end_unix_ns < s->start_unix_ns)
		return;
	dur = (double)(s->end_unix_ns - s->start_unix_ns) / 1e9;
	metrics__observe(m, M_DURATION, sv->v, dur);
	if (!attr__number(span__find_attr(s, "gen_ai.response.time_to_first_chunk"), &ttfc))
		return;
	metrics__observe(m, M_TTFC, sv->v, ttfc);
	metrics__record_chunk_gaps(m, s, sv);
}

static void metrics__record_cost(struct metrics *m, const struct span *s, struct span_vals *sv)
{
	double cost, tokens;

	if (attr__number(span__find_attr(s, "tokentap.cost.usd"), &cost)) {
		metrics__observe(m, M_COST, sv->v, cost);
		return;
	}
	if (attr__number(span__find_attr(s, "gen_ai.usage.input_tokens"), &tokens) ||
	    attr__number(span__find_attr(s, "gen_ai.usage.output_tokens"), &tokens))
		metrics__observe(m, M_UNPRICED, sv->v, 1);
}

void metrics__record_span(struct metrics *m, const struct span *s)
{
	struct span_vals *sv = malloc(sizeof(*sv)); /* 2 KiB: off the pipeline's stack */

	if (!sv)
		return;
	span__vals(s, sv);
	metrics__lock(m);
	metrics__record_tokens(m, s, sv);
	metrics__record_times(m, s, sv);
	metrics__record_cost(m, s, sv);
	metrics__unlock(m);
	free(sv);
}

/* ---- the "metrics" exporter -------------------------------------------------------------- */

struct metrics_exporter {
	struct exporter base;
	struct metrics *reg;
	struct otlp_metrics *push;
	struct prom_server *prom;
};

static void mexp__export(struct exporter *e, const struct span *s)
{
	metrics__record_span(((struct metrics_exporter *)e)->reg, s);
}

static void mexp__flush(struct exporter *e, int deadline_ms)
{
	struct metrics_exporter *me = (struct metrics_exporter *)e;

	if (me->push)
		otlp_metrics__push(me->push, deadline_ms);
}

static void mexp__stats(struct exporter *e, struct export_stats *st)
{
	struct metrics_exporter *me = (struct metrics_exporter *)e;

	memset(st, 0, sizeof(*st));
	if (me->push)
		otlp_metrics__stats(me->push, st);
}

static void mexp__destroy(struct exporter *e)
{
	struct metrics_exporter *me = (struct metrics_exporter *)e;

	/* The outlets read the registry from their threads: stop them first. */
	if (me->prom)
		prom_server__stop(me->prom);
	if (me->push)
		otlp_metrics__stop(me->push);
	metrics__free(me->reg);
	free(me);
}

static const struct exporter_ops metrics_ops = {
	.name = "metrics",
	.export = mexp__export,
	.flush = mexp__flush,
	.stats = mexp__stats,
	.destroy = mexp__destroy,
};

struct exporter *metrics_exporter__new(const struct metrics_opts *opts, struct metrics **reg)
{
	struct metrics_exporter *me = calloc(1, sizeof(*me));
	int err = 0;

	if (!me)
		return NULL;
	me->base.ops = &metrics_ops;
	me->reg = metrics__new(opts->max_series);
	if (!me->reg)
		err = -ENOMEM;
	if (!err && opts->prometheus)
		err = prom_server__start(&me->prom, opts->prometheus, me->reg);
	if (!err && opts->otlp_endpoint)
		err = otlp_metrics__start(&me->push, opts, me->reg);
	if (err) {
		mexp__destroy(&me->base);
		return NULL;
	}
	*reg = me->reg;
	return &me->base;
}
