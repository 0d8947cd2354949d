// SPDX-License-Identifier: Apache-2.0
/*
 * OTLP/HTTP protobuf exporter: POST <endpoint>/v1/traces from a sender thread of its own.
 * The pipeline thread only copies the span into a bounded queue (the newest span is dropped and
 * counted when full); the sender batches (batch_max spans, or whatever waited batch_delay_ms),
 * encodes (otlp_encode.c) and hands the body to the shared transport (otlp_http.c: gzip,
 * retries only where OTLP says a retry may succeed, Retry-After honoured, backoff with jitter).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trace_service.pb-c.h"

#include "export/export.h"
#include "export/otlp_encode.h"
#include "export/otlp_http.h"


struct otlp_item {
	struct otlp_item *next;
	uint64_t enqueued_ms;
	struct span span; /* deep copy, holds a resource reference */
};

struct otlp_exporter {
	struct exporter base;
	struct otlp_http *http; /* sender thread only */
	int batch_max, batch_delay_ms, queue_max;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* to the sender: spans queued, flush requested, stop */
	pthread_cond_t idle; /* to flushers: a batch settled */
	struct otlp_item *head, *tail;
	size_t n_queued, in_flight;
	int flushers;
	uint64_t flush_deadline_ms; /* while flushers > 0: the sender gives up by then */
	bool stop;
	struct export_stats st; /* exported/dropped/errors: atomic */
};

static uint64_t now_ms(void)
{
	return otlp_http__now_ms();
}

static void cond__wait_until(pthread_cond_t *c, pthread_mutex_t *mu, uint64_t until_ms)
{
	struct timespec ts = { .tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000 };

	pthread_cond_timedwait(c, mu, &ts);
}

static void stat__add(uint64_t *counter, uint64_t v)
{
	__atomic_add_fetch(counter, v, __ATOMIC_RELAXED);
}

/* ---- the queue -------------------------------------------------------------------------- */

static int attr__dup(struct attr *dst, const struct attr *src)
{
	size_t i;

	*dst = *src;
	if (src->type == ATTR_STRING) {
		dst->s = strdup(src->s);
		return dst->s ? 0 : -ENOMEM;
	}
	if (src->type != ATTR_STRING_ARRAY)
		return 0;
	for (i = 0; i < src->arr.n; i++) {
		dst->arr.v[i] = strdup(src->arr.v[i]);
		if (!dst->arr.v[i]) {
			dst->arr.n = i;
			attrs__free(dst, 1);
			return -ENOMEM;
		}
	}
	return 0;
}

static struct otlp_item *otlp_item__new(const struct span *s)
{
	struct otlp_item *it = malloc(sizeof(*it));
	size_t i;

	if (!it)
		return NULL;
	it->next = NULL;
	it->enqueued_ms = now_ms();
	memcpy(&it->span, s, offsetof(struct span, attrs));
	for (i = 0; i < s->n_attrs; i++) {
		if (attr__dup(&it->span.attrs[i], &s->attrs[i]) < 0) {
			attrs__free(it->span.attrs, i);
			free(it);
			return NULL;
		}
	}
	it->span.n_attrs = s->n_attrs;
	it->span.resource = s->resource;
	it->span.chunk_gaps = NULL; /* read by the metrics exporter only, from the original */
	resource__get(s->resource);
	return it;
}

static void otlp_item__free(struct otlp_item *it)
{
	attrs__free(it->span.attrs, it->span.n_attrs);
	resource__put(it->span.resource);
	free(it);
}

static void otlp__export(struct exporter *e, const struct span *s)
{
	struct otlp_exporter *oe = (struct otlp_exporter *)e;
	struct otlp_item *it;

	pthread_mutex_lock(&oe->mu);
	if (oe->n_queued + oe->in_flight >= (size_t)oe->queue_max || oe->stop) {
		pthread_mutex_unlock(&oe->mu);
		stat__add(&oe->st.dropped, 1);
		return;
	}
	pthread_mutex_unlock(&oe->mu);
	/* Copy outside the lock; the queue may have filled meanwhile, checked again below. */
	it = otlp_item__new(s);
	if (!it) {
		stat__add(&oe->st.dropped, 1);
		return;
	}
	pthread_mutex_lock(&oe->mu);
	if (oe->n_queued + oe->in_flight >= (size_t)oe->queue_max || oe->stop) {
		pthread_mutex_unlock(&oe->mu);
		otlp_item__free(it);
		stat__add(&oe->st.dropped, 1);
		return;
	}
	if (oe->tail)
		oe->tail->next = it;
	else
		oe->head = it;
	oe->tail = it;
	/* The first span starts the sender's batch_delay_ms wait; a full batch ends it. */
	if (++oe->n_queued >= (size_t)oe->batch_max || oe->n_queued == 1)
		pthread_cond_signal(&oe->wake);
	pthread_mutex_unlock(&oe->mu);
}

/* Called with mu held. */
static bool otlp__batch_ready(struct otlp_exporter *oe, uint64_t now)
{
	if (!oe->n_queued)
		return false;
	return oe->n_queued >= (size_t)oe->batch_max || oe->flushers > 0 ||
	       now >= oe->head->enqueued_ms + (uint64_t)oe->batch_delay_ms;
}

/* Called with mu held: detaches up to batch_max spans. */
static struct otlp_item *otlp__take_batch(struct otlp_exporter *oe, size_t *n)
{
	struct otlp_item *first = oe->head, *last = oe->head;

	*n = 1;
	while (*n < (size_t)oe->batch_max && last->next) {
		last = last->next;
		(*n)++;
	}
	oe->head = last->next;
	if (!oe->head)
		oe->tail = NULL;
	last->next = NULL;
	oe->n_queued -= *n;
	oe->in_flight = *n;
	return first;
}

/* ---- the sender ------------------------------------------------------------------------- */

/* Spans a 200 answer says were rejected (partial success); they count as dropped. */
static uint64_t otlp__rejected(const uint8_t *resp, size_t len)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *r;
	uint64_t n = 0;

	if (!len)
		return 0;
	r = opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
		NULL, len, resp);
	if (r && r->partial_success && r->partial_success->rejected_spans > 0)
		n = (uint64_t)r->partial_success->rejected_spans;
	if (r)
		opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
			r, NULL);
	return n;
}

/*
 * The time by which this batch must be settled: never while the collector may yet take it
 * (spans wait in the bounded queue behind it, and only spans past the bound are dropped), the
 * flush deadline at shutdown.
 */
static uint64_t otlp__give_up_at(void *owner, uint64_t started)
{
	struct otlp_exporter *oe = owner;
	uint64_t limit = UINT64_MAX >> 2; /* "never", with room for the transport's arithmetic */

	pthread_mutex_lock(&oe->mu);
	if (oe->flushers > 0 && oe->flush_deadline_ms < limit)
		limit = oe->flush_deadline_ms;
	pthread_mutex_unlock(&oe->mu);
	return limit;
}

/* Sleeps until `until` unless told to stop; false when stopping. */
static bool otlp__sleep(void *owner, uint64_t until)
{
	struct otlp_exporter *oe = owner;
	bool stop;

	pthread_mutex_lock(&oe->mu);
	while (!oe->stop && now_ms() < until)
		cond__wait_until(&oe->wake, &oe->mu, until);
	stop = oe->stop;
	pthread_mutex_unlock(&oe->mu);
	return !stop;
}

static bool otlp__stopping(void *owner)
{
	struct otlp_exporter *oe = owner;

	return __atomic_load_n(&oe->stop, __ATOMIC_RELAXED);
}

static void otlp__send_batch(struct otlp_exporter *oe, struct otlp_item *items, size_t n)
{
	const struct span **spans = malloc(n * sizeof(*spans));
	struct otlp_item *it;
	uint8_t *buf = NULL;
	size_t i = 0, len = 0;

	for (it = items; spans && it; it = it->next)
		spans[i++] = &it->span;
	if (spans)
		buf = otlp__encode(spans, n, &len);
	if (buf) {
		otlp_http__send(oe->http, buf, len, n);
	} else {
		stat__add(&oe->st.errors, 1);
		stat__add(&oe->st.dropped, n);
	}
	free(buf);
	free(spans);
}

static void *otlp__sender(void *arg)
{
	struct otlp_exporter *oe = arg;
	struct otlp_item *batch, *next;
	size_t n;

	pthread_mutex_lock(&oe->mu);
	for (;;) {
		while (!oe->stop && !otlp__batch_ready(oe, now_ms())) {
			if (oe->n_queued)
				cond__wait_until(&oe->wake, &oe->mu,
						 oe->head->enqueued_ms +
							 (uint64_t)oe->batch_delay_ms);
			else
				pthread_cond_wait(&oe->wake, &oe->mu);
		}
		if (oe->stop)
			break;
		batch = otlp__take_batch(oe, &n);
		pthread_mutex_unlock(&oe->mu);
		otlp__send_batch(oe, batch, n);
		for (; batch; batch = next) {
			next = batch->next;
			otlp_item__free(batch);
		}
		pthread_mutex_lock(&oe->mu);
		oe->in_flight = 0;
		pthread_cond_broadcast(&oe->idle);
	}
	pthread_mutex_unlock(&oe->mu);
	return NULL;
}

/* ---- exporter ops ----------------------------------------------------------------------- */

static void otlp__flush(struct exporter *e, int deadline_ms)
{
	struct otlp_exporter *oe = (struct otlp_exporter *)e;
	uint64_t deadline = now_ms() + (uint64_t)(deadline_ms > 0 ? deadline_ms : 0);

	pthread_mutex_lock(&oe->mu);
	oe->flushers++;
	if (oe->flushers == 1 || deadline < oe->flush_deadline_ms)
		oe->flush_deadline_ms = deadline;
	pthread_cond_signal(&oe->wake);
	while ((oe->n_queued || oe->in_flight) && now_ms() < deadline)
		cond__wait_until(&oe->idle, &oe->mu, deadline);
	oe->flushers--;
	pthread_mutex_unlock(&oe->mu);
}

static void otlp__stats(struct exporter *e, struct export_stats *st)
{
	struct otlp_exporter *oe = (struct otlp_exporter *)e;

	st->exported = __atomic_load_n(&oe->st.exported, __ATOMIC_RELAXED);
	st->dropped = __atomic_load_n(&oe->st.dropped, __ATOMIC_RELAXED);
	st->errors = __atomic_load_n(&oe->st.errors, __ATOMIC_RELAXED);
	pthread_mutex_lock(&oe->mu);
	st->queued = oe->n_queued + oe->in_flight;
	pthread_mutex_unlock(&oe->mu);
}

static void otlp__free(struct otlp_exporter *oe)
{
	otlp_http__free(oe->http);
	pthread_cond_destroy(&oe->wake);
	pthread_cond_destroy(&oe->idle);
	pthread_mutex_destroy(&oe->mu);
	free(oe);
}

/* Stops the sender (aborting a request in progress); what is still queued counts as dropped. */
static void otlp__destroy(struct exporter *e)
{
	struct otlp_exporter *oe = (struct otlp_exporter *)e;
	struct otlp_item *it, *next;

	pthread_mutex_lock(&oe->mu);
	__atomic_store_n(&oe->stop, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&oe->wake);
	pthread_mutex_unlock(&oe->mu);
	pthread_join(oe->thread, NULL);
	for (it = oe->head; it; it = next) {
		next = it->next;
		otlp_item__free(it);
		stat__add(&oe->st.dropped, 1);
	}
	otlp__free(oe);
}

static const struct exporter_ops otlp_ops = {
	.name = "otlp",
	.export = otlp__export,
	.flush = otlp__flush,
	.stats = otlp__stats,
	.destroy = otlp__destroy,
};

/* ---- options ---------------------------------------------------------------------------- */

static bool otlp__opts_ok(const struct otlp_opts *o)
{
	if (!otlp_http__endpoint_ok(o->endpoint)) {
		fprintf(stderr, "tokentap: otlp: bad endpoint: want http://host:port or "
				"https://host:port (spans go to <endpoint>/v1/traces)\n");
		return false;
	}
	if (o->batch_max < 0 || o->batch_delay_ms < 0 || o->queue_max < 0 || o->timeout_ms < 0) {
		fprintf(stderr, "tokentap: otlp: batch, queue and timeout settings must be >= 0\n");
		return false;
	}
	return true;
}

static void otlp__init_sync(struct otlp_exporter *oe)
{
	pthread_condattr_t ca;

	/* Deadlines are monotonic: a clock step must not stretch a flush at shutdown. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&oe->mu, NULL);
	pthread_cond_init(&oe->wake, &ca);
	pthread_cond_init(&oe->idle, &ca);
	pthread_condattr_destroy(&ca);
}

static int otlp__open_http(struct otlp_exporter *oe, const struct otlp_opts *opts)
{
	struct otlp_http_opts ho = {
		.endpoint = opts->endpoint,
		.path = "/v1/traces",
		.headers = opts->headers,
		.compression = opts->compression,
		.timeout_ms = opts->timeout_ms,
		.what = "spans",
		.rejected = otlp__rejected,
		.owner = oe,
		.give_up_at = otlp__give_up_at,
		.sleep_until = otlp__sleep,
		.stopping = otlp__stopping,
		.retry_until_give_up = true,
		.st = &oe->st,
	};

	return otlp_http__new(&oe->http, &ho);
}

struct exporter *otlp_exporter__new(const struct otlp_opts *opts)
{
	struct otlp_exporter *oe;
	int err;

	if (!otlp__opts_ok(opts))
		return NULL;
	oe = calloc(1, sizeof(*oe));
	if (!oe)
		return NULL;
	oe->base.ops = &otlp_ops;
	oe->batch_max = opts->batch_max ? opts->batch_max : 512;
	oe->batch_delay_ms = opts->batch_delay_ms ? opts->batch_delay_ms : 1000;
	oe->queue_max = opts->queue_max ? opts->queue_max : 8192;
	otlp__init_sync(oe);
	err = otlp__open_http(oe, opts);
	if (!err && pthread_create(&oe->thread, NULL, otlp__sender, oe) != 0)
		err = -EAGAIN;
	if (err) {
		if (err != -EINVAL)
			fprintf(stderr, "tokentap: otlp: cannot start the exporter: %s\n",
				strerror(-err));
		otlp__free(oe);
		return NULL;
	}
	return &oe->base;
}
