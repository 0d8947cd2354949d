// SPDX-License-Identifier: Apache-2.0
/*
 * OTLP metrics: the registry as an ExportMetricsServiceRequest (cumulative temporality; one
 * Resource for tokentap itself, one scope "tokentap"; the traced process's service.name and
 * container.id are data point attributes), POSTed to <endpoint>/v1/metrics every interval from
 * a thread of its own through the shared transport (otlp_http.c), and once more at shutdown.
 * A failed push is not queued: the next one carries the same cumulative totals.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics_service.pb-c.h"

#include "export/metrics.h"
#include "export/otlp_encode.h"
#include "export/otlp_http.h"

typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics ResourceMetrics;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics ScopeMetrics;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__Sum Sum;
typedef Opentelemetry__Proto__Metrics__V1__Gauge Gauge;
typedef Opentelemetry__Proto__Metrics__V1__Histogram Histogram;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumberPoint;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistPoint;
typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest Request;
typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse Response;

#define CUMULATIVE OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE
#define ANY(x) OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x
#define METRICS_RETRY_BUDGET_MS 30000

/* ---- encoding: every allocation is remembered and freed after packing ------------------- */

struct pool {
	void **p;
	size_t n, cap;
	bool failed;
};

static void *pool__alloc(struct pool *pl, size_t size)
{
	void *mem, **grown;

	if (pl->failed)
		return NULL;
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 256;

		grown = realloc(pl->p, cap * sizeof(*grown));
		if (!grown) {
			pl->failed = true;
			return NULL;
		}
		pl->p = grown;
		pl->cap = cap;
	}
	mem = calloc(1, size ? size : 1);
	if (!mem) {
		pl->failed = true;
		return NULL;
	}
	pl->p[pl->n++] = mem;
	return mem;
}

static void pool__free(struct pool *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		free(pl->p[i]);
	free(pl->p);
}

static KeyValue *kv__str(struct pool *pl, const char *key, const char *v)
{
	KeyValue *kv = pool__alloc(pl, sizeof(*kv));
	AnyValue *av = pool__alloc(pl, sizeof(*av));

	if (!kv || !av)
		return NULL;
	opentelemetry__proto__common__v1__key_value__init(kv);
	opentelemetry__proto__common__v1__any_value__init(av);
	kv->key = (char *)key;
	av->value_case = ANY(STRING_VALUE);
	av->string_value = (char *)v;
	kv->value = av;
	return kv;
}

static KeyValue *kv__bool(struct pool *pl, const char *key, bool v)
{
	KeyValue *kv = kv__str(pl, key, "");

	if (kv) {
		kv->value->value_case = ANY(BOOL_VALUE);
		kv->value->bool_value = v;
	}
	return kv;
}

/* The series' attributes (strings in the registry are valid UTF-8 already). */
static KeyValue **series__attrs(struct pool *pl, const struct metric_series *s, size_t *n)
{
	KeyValue **kvs = pool__alloc(pl, (MK__N + 1) * sizeof(*kvs));

	*n = 0;
	if (!kvs)
		return NULL;
	for (int k = 0; k < MK__N; k++) {
		if (s->vals[k])
			kvs[(*n)++] = kv__str(pl, mkey_otel[k], s->vals[k]);
	}
	if (s->overflow)
		kvs[(*n)++] = kv__bool(pl, "otel.metric.overflow", true);
	return kvs;
}

struct enc {
	struct pool pl;
	char host[256];
	uint64_t start, now;
	size_t n_points;
	Metric **metrics;
	size_t n_metrics, cap_metrics;
};

static Metric *enc__metric(struct enc *e, const char *name, const char *desc, const char *unit)
{
	Metric *mt = pool__alloc(&e->pl, sizeof(*mt));

	if (!mt || e->n_metrics == e->cap_metrics)
		return NULL;
	opentelemetry__proto__metrics__v1__metric__init(mt);
	mt->name = (char *)name;
	mt->description = (char *)desc;
	mt->unit = (char *)unit;
	e->metrics[e->n_metrics++] = mt;
	return mt;
}

static NumberPoint *enc__number(struct enc *e, bool cumulative)
{
	NumberPoint *p = pool__alloc(&e->pl, sizeof(*p));

	if (!p)
		return NULL;
	opentelemetry__proto__metrics__v1__number_data_point__init(p);
	p->start_time_unix_nano = cumulative ? e->start : 0;
	p->time_unix_nano = e->now;
	e->n_points++;
	return p;
}

static HistPoint *enc__hist_point(struct enc *e, const struct metric_def *d,
				  const struct metric_series *s)
{
	HistPoint *p = pool__alloc(&e->pl, sizeof(*p));

	if (!p)
		return NULL;
	opentelemetry__proto__metrics__v1__histogram_data_point__init(p);
	p->attributes = series__attrs(&e->pl, s, &p->n_attributes);
	p->has_start_time_unix_nano = p->has_time_unix_nano = p->has_count = true;
	p->start_time_unix_nano = e->start;
	p->time_unix_nano = e->now;
	p->count = s->count;
	p->has_sum = true;
	p->sum = s->sum;
	p->has_min = p->has_max = s->count > 0;
	p->min = s->min;
	p->max = s->max;
	p->n_bucket_counts = d->n_bounds + 1;
	p->bucket_counts = (uint64_t *)s->buckets; /* read while the registry is locked */
	p->n_explicit_bounds = d->n_bounds;
	p->explicit_bounds = (double *)d->bounds;
	e->n_points++;
	return p->attributes ? p : NULL;
}

static int enc__histogram(struct enc *e, const struct metric *mt)
{
	Metric *out = enc__metric(e, mt->def->name, mt->def->help, mt->def->unit);
	Histogram *h = pool__alloc(&e->pl, sizeof(*h));

	if (!out || !h)
		return -ENOMEM;
	opentelemetry__proto__metrics__v1__histogram__init(h);
	h->aggregation_temporality = CUMULATIVE;
	h->data_points = pool__alloc(&e->pl, mt->n_series * sizeof(*h->data_points));
	if (!h->data_points)
		return -ENOMEM;
	for (size_t i = 0; i < mt->n_series; i++) {
		h->data_points[i] = enc__hist_point(e, mt->def, mt->series[i]);
		if (!h->data_points[i])
			return -ENOMEM;
	}
	h->n_data_points = mt->n_series;
	out->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
	out->histogram = h;
	return 0;
}

/* A monotonic cumulative Sum, or a Gauge, with room for n points. */
static NumberPoint **enc__numbers(struct enc *e, Metric *out, bool gauge, size_t n)
{
	NumberPoint **pts = pool__alloc(&e->pl, n * sizeof(*pts));
	Sum *sum;
	Gauge *g;

	if (!pts)
		return NULL;
	if (gauge) {
		g = pool__alloc(&e->pl, sizeof(*g));
		if (!g)
			return NULL;
		opentelemetry__proto__metrics__v1__gauge__init(g);
		g->data_points = pts;
		g->n_data_points = n;
		out->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
		out->gauge = g;
		return pts;
	}
	sum = pool__alloc(&e->pl, sizeof(*sum));
	if (!sum)
		return NULL;
	opentelemetry__proto__metrics__v1__sum__init(sum);
	sum->aggregation_temporality = CUMULATIVE;
	sum->is_monotonic = true;
	sum->data_points = pts;
	sum->n_data_points = n;
	out->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
	out->sum = sum;
	return pts;
}

static void point__set(NumberPoint *p, bool is_double, double d, uint64_t i)
{
	if (is_double) {
		p->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
		p->as_double = d;
	} else {
		p->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
		p->as_int = (int64_t)i;
	}
}

static int enc__sum(struct enc *e, const struct metric *mt)
{
	Metric *out = enc__metric(e, mt->def->name, mt->def->help, mt->def->unit);
	NumberPoint **pts = out ? enc__numbers(e, out, false, mt->n_series) : NULL;

	if (!pts)
		return -ENOMEM;
	for (size_t i = 0; i < mt->n_series; i++) {
		const struct metric_series *s = mt->series[i];

		pts[i] = enc__number(e, true);
		if (!pts[i])
			return -ENOMEM;
		pts[i]->attributes = series__attrs(&e->pl, s, &pts[i]->n_attributes);
		point__set(pts[i], mt->def->kind == MKIND_SUM_DOUBLE, s->sum, s->count);
	}
	return 0;
}

static int enc__overflow(struct enc *e, struct metrics *m)
{
	Metric *out = enc__metric(e, "tokentap.metrics.overflow",
				  "Measurements folded into a metric's overflow series", "{measurement}");
	NumberPoint **pts = out ? enc__numbers(e, out, false, M__N) : NULL;

	if (!pts)
		return -ENOMEM;
	for (int i = 0; i < M__N; i++) {
		const struct metric *mt = metrics__get(m, i);

		pts[i] = enc__number(e, true);
		if (!pts[i])
			return -ENOMEM;
		pts[i]->attributes = pool__alloc(&e->pl, sizeof(KeyValue *));
		if (!pts[i]->attributes)
			return -ENOMEM;
		pts[i]->attributes[0] = kv__str(&e->pl, "metric", mt->def->name);
		pts[i]->n_attributes = 1;
		point__set(pts[i], false, 0, mt->overflowed);
	}
	return 0;
}

static int enc__health_one(struct enc *e, const struct health_def *d, uint64_t v)
{
	Metric *out = enc__metric(e, d->name, d->help, d->unit);
	NumberPoint **pts = out ? enc__numbers(e, out, d->gauge, 1) : NULL;

	if (!pts || !(pts[0] = enc__number(e, !d->gauge)))
		return -ENOMEM;
	point__set(pts[0], d->div != 0, d->div ? (double)v / d->div : 0, v);
	return 0;
}

/* exporter-labelled counters: one metric per name, a point per exporter. */
static int enc__exporters(struct enc *e, const struct metrics_health *h)
{
	for (int f = 0; f < HX__N; f++) {
		for (int kind = 0; kind < 2; kind++) {
			const struct health_export_def *d = &health_export_defs[f][kind];
			NumberPoint **pts;
			Metric *out;
			size_t n = 0;

			if (f == HX_ERRORS && kind == 1)
				continue;
			for (int i = 0; i < h->n_exporters; i++)
				n += f == HX_ERRORS ||
				     health__is_metrics_exporter(&h->exporters[i]) == kind;
			if (!n)
				continue;
			out = enc__metric(e, d->name, d->help, d->unit);
			pts = out ? enc__numbers(e, out, false, n) : NULL;
			if (!pts)
				return -ENOMEM;
			n = 0;
			for (int i = 0; i < h->n_exporters; i++) {
				const struct metrics_exporter_health *x = &h->exporters[i];
				NumberPoint *p;

				if (f != HX_ERRORS && health__is_metrics_exporter(x) != kind)
					continue;
				p = pts[n++] = enc__number(e, true);
				if (!p || !(p->attributes = pool__alloc(&e->pl, sizeof(KeyValue *))))
					return -ENOMEM;
				p->attributes[0] = kv__str(&e->pl, "exporter", x->name);
				p->n_attributes = 1;
				point__set(p, false, 0, health__export_value(x, f));
			}
		}
	}
	return 0;
}

static int enc__health(struct enc *e, const struct metrics_health *h)
{
	for (size_t i = 0; i < n_health_defs; i++) {
		if (enc__health_one(e, &health_defs[i], health__value(h, &health_defs[i])))
			return -ENOMEM;
	}
	return enc__exporters(e, h);
}

static int enc__registry(struct enc *e, struct metrics *m)
{
	const struct metrics_health *h = metrics__health(m);
	int err = 0;

	for (int i = 0; i < M__N && !err; i++) {
		const struct metric *mt = metrics__get(m, i);

		if (!mt->n_series)
			continue;
		err = mt->def->kind == MKIND_HISTOGRAM ? enc__histogram(e, mt) : enc__sum(e, mt);
	}
	if (!err)
		err = enc__overflow(e, m);
	if (!err && h)
		err = enc__health(e, h);
	return err;
}

static ResourceMetrics *enc__resource(struct enc *e)
{
	ResourceMetrics *rm = pool__alloc(&e->pl, sizeof(*rm));
	Resource *res = pool__alloc(&e->pl, sizeof(*res));
	ScopeMetrics *sm = pool__alloc(&e->pl, sizeof(*sm));
	ScopeMetrics **smp = pool__alloc(&e->pl, sizeof(*smp));
	Scope *scope = pool__alloc(&e->pl, sizeof(*scope));
	KeyValue **kvs = pool__alloc(&e->pl, 3 * sizeof(*kvs));

	if (!rm || !res || !sm || !smp || !scope || !kvs)
		return NULL;
	if (gethostname(e->host, sizeof(e->host) - 1) != 0)
		strcpy(e->host, "unknown");
	opentelemetry__proto__metrics__v1__resource_metrics__init(rm);
	opentelemetry__proto__resource__v1__resource__init(res);
	opentelemetry__proto__metrics__v1__scope_metrics__init(sm);
	opentelemetry__proto__common__v1__instrumentation_scope__init(scope);
	kvs[0] = kv__str(&e->pl, "service.name", "tokentap");
	kvs[1] = kv__str(&e->pl, "service.version", TOKENTAP_VERSION);
	kvs[2] = kv__str(&e->pl, "host.name", e->host);
	res->attributes = kvs;
	res->n_attributes = 3;
	scope->name = OTLP_SCOPE_NAME;
	scope->version = TOKENTAP_VERSION;
	sm->scope = scope;
	sm->metrics = e->metrics;
	sm->n_metrics = e->n_metrics;
	*smp = sm;
	rm->resource = res;
	rm->scope_metrics = smp;
	rm->n_scope_metrics = 1;
	return rm;
}

uint8_t *otlp_metrics__encode(struct metrics *m, uint64_t now_unix_ns, size_t *len,
			      size_t *n_points)
{
	Request req = OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
	struct enc e = { .start = metrics__start_unix_ns(m), .now = now_unix_ns };
	ResourceMetrics *rm = NULL;
	uint8_t *buf = NULL;
	int err;

	/* Upper bound of metrics: registry + overflow + health + exporter families. */
	e.cap_metrics = M__N + 1 + n_health_defs + 2 * HX__N;
	e.metrics = pool__alloc(&e.pl, e.cap_metrics * sizeof(*e.metrics));
	metrics__lock(m);
	err = e.metrics ? enc__registry(&e, m) : -ENOMEM;
	if (!err && !e.pl.failed)
		rm = enc__resource(&e);
	if (rm && !e.pl.failed) {
		req.resource_metrics = &rm;
		req.n_resource_metrics = 1;
		*len = opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__get_packed_size(
			&req);
		buf = malloc(*len ? *len : 1);
		if (buf)
			opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__pack(
				&req, buf);
	}
	metrics__unlock(m);
	*n_points = e.n_points;
	pool__free(&e.pl);
	return buf;
}

/* ---- the pusher thread ------------------------------------------------------------------- */

struct otlp_metrics {
	struct metrics *m;
	struct otlp_http *http;
	int interval_ms;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake, done;
	uint64_t requested, completed; /* push generations asked for / finished */
	int flushers;
	uint64_t flush_deadline_ms;
	bool stop;
	struct export_stats st;
};

static uint64_t rejected_points(const uint8_t *resp, size_t len)
{
	Response *r;
	uint64_t n = 0;

	if (!len)
		return 0;
	r = opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__unpack(
		NULL, len, resp);
	if (r && r->partial_success && r->partial_success->rejected_data_points > 0)
		n = (uint64_t)r->partial_success->rejected_data_points;
	if (r)
		opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__free_unpacked(
			r, NULL);
	return n;
}

/* A push is worth retrying until the next one would carry newer totals anyway. */
static uint64_t om__give_up_at(void *owner, uint64_t started)
{
	struct otlp_metrics *om = owner;
	uint64_t budget = (uint64_t)om->interval_ms, limit;

	if (budget > METRICS_RETRY_BUDGET_MS)
		budget = METRICS_RETRY_BUDGET_MS;
	limit = started + budget;
	pthread_mutex_lock(&om->mu);
	if (om->flushers > 0 && om->flush_deadline_ms < limit)
		limit = om->flush_deadline_ms;
	pthread_mutex_unlock(&om->mu);
	return limit;
}

static void cond__wait_until(pthread_cond_t *c, pthread_mutex_t *mu, uint64_t until_ms)
{
	struct timespec ts = { .tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000 };

	pthread_cond_timedwait(c, mu, &ts);
}

static bool om__sleep(void *owner, uint64_t until)
{
	struct otlp_metrics *om = owner;
	bool stop;

	pthread_mutex_lock(&om->mu);
	while (!om->stop && otlp_http__now_ms() < until)
		cond__wait_until(&om->wake, &om->mu, until);
	stop = om->stop;
	pthread_mutex_unlock(&om->mu);
	return !stop;
}

static bool om__stopping(void *owner)
{
	struct otlp_metrics *om = owner;

	return __atomic_load_n(&om->stop, __ATOMIC_RELAXED);
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void om__push_once(struct otlp_metrics *om)
{
	size_t len = 0, n = 0;
	uint8_t *buf = otlp_metrics__encode(om->m, wall_ns(), &len, &n);

	if (!buf) {
		__atomic_add_fetch(&om->st.errors, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&om->st.dropped, n, __ATOMIC_RELAXED);
		return;
	}
	otlp_http__send(om->http, buf, len, n);
	free(buf);
}

static void *om__thread(void *arg)
{
	struct otlp_metrics *om = arg;
	uint64_t next = otlp_http__now_ms() + (uint64_t)om->interval_ms, gen;

	pthread_mutex_lock(&om->mu);
	while (!om->stop) {
		if (om->requested == om->completed && otlp_http__now_ms() < next) {
			cond__wait_until(&om->wake, &om->mu, next);
			continue;
		}
		gen = om->requested;
		pthread_mutex_unlock(&om->mu);
		om__push_once(om);
		next = otlp_http__now_ms() + (uint64_t)om->interval_ms;
		pthread_mutex_lock(&om->mu);
		om->completed = gen;
		pthread_cond_broadcast(&om->done);
	}
	pthread_mutex_unlock(&om->mu);
	return NULL;
}

void otlp_metrics__push(struct otlp_metrics *om, int deadline_ms)
{
	uint64_t deadline = otlp_http__now_ms() + (uint64_t)(deadline_ms > 0 ? deadline_ms : 0);
	uint64_t gen;

	pthread_mutex_lock(&om->mu);
	gen = ++om->requested;
	om->flushers++;
	if (om->flushers == 1 || deadline < om->flush_deadline_ms)
		om->flush_deadline_ms = deadline;
	pthread_cond_broadcast(&om->wake);
	while (om->completed < gen && !om->stop && otlp_http__now_ms() < deadline)
		cond__wait_until(&om->done, &om->mu, deadline);
	om->flushers--;
	pthread_mutex_unlock(&om->mu);
}

void otlp_metrics__stats(struct otlp_metrics *om, struct export_stats *st)
{
	st->exported = __atomic_load_n(&om->st.exported, __ATOMIC_RELAXED);
	st->dropped = __atomic_load_n(&om->st.dropped, __ATOMIC_RELAXED);
	st->errors = __atomic_load_n(&om->st.errors, __ATOMIC_RELAXED);
	st->queued = 0;
}

static void om__free(struct otlp_metrics *om)
{
	otlp_http__free(om->http);
	pthread_cond_destroy(&om->wake);
	pthread_cond_destroy(&om->done);
	pthread_mutex_destroy(&om->mu);
	free(om);
}

void otlp_metrics__stop(struct otlp_metrics *om)
{
	if (!om)
		return;
	pthread_mutex_lock(&om->mu);
	__atomic_store_n(&om->stop, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&om->wake);
	pthread_mutex_unlock(&om->mu);
	pthread_join(om->thread, NULL);
	om__free(om);
}

static void om__init_sync(struct otlp_metrics *om)
{
	pthread_condattr_t ca;

	/* Deadlines are monotonic: a clock step must not stretch a push at shutdown. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&om->mu, NULL);
	pthread_cond_init(&om->wake, &ca);
	pthread_cond_init(&om->done, &ca);
	pthread_condattr_destroy(&ca);
}

int otlp_metrics__start(struct otlp_metrics **out, const struct metrics_opts *opts,
			struct metrics *m)
{
	struct otlp_metrics *om;
	struct otlp_http_opts ho = {
		.endpoint = opts->otlp_endpoint,
		.path = "/v1/metrics",
		.headers = opts->otlp_headers,
		.compression = opts->otlp_compression,
		.timeout_ms = opts->timeout_ms,
		.what = "metric points",
		.rejected = rejected_points,
		.give_up_at = om__give_up_at,
		.sleep_until = om__sleep,
		.stopping = om__stopping,
	};
	int err;

	*out = NULL;
	if (!otlp_http__endpoint_ok(opts->otlp_endpoint)) {
		fprintf(stderr, "tokentap: otlp: bad endpoint: want http://host:port or "
				"https://host:port (metrics go to <endpoint>/v1/metrics)\n");
		return -EINVAL;
	}
	if (opts->interval_s < 0) {
		fprintf(stderr, "tokentap: --metrics-interval must be >= 1 second\n");
		return -EINVAL;
	}
	om = calloc(1, sizeof(*om));
	if (!om)
		return -ENOMEM;
	om->m = m;
	om->interval_ms = (opts->interval_s ? opts->interval_s : METRICS_DEFAULT_INTERVAL_S) * 1000;
	om__init_sync(om);
	ho.owner = om;
	ho.st = &om->st;
	err = otlp_http__new(&om->http, &ho);
	if (!err && pthread_create(&om->thread, NULL, om__thread, om) != 0)
		err = -EAGAIN;
	if (err) {
		om__free(om);
		return err;
	}
	*out = om;
	return 0;
}
