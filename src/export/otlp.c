// SPDX-License-Identifier: Apache-2.0
/*
 * OTLP/HTTP protobuf exporter: POST <endpoint>/v1/traces from a sender thread of its own.
 * The pipeline thread only copies the span into a bounded queue (the newest span is dropped and
 * counted when full); the sender batches (batch_max spans, or whatever waited batch_delay_ms),
 * encodes (otlp_encode.c) and sends with libcurl, retrying with exponential backoff and jitter
 * only where OTLP says a retry may succeed (429, 502, 503, 504, connection failures), honouring
 * Retry-After. Header values may hold credentials: they are never logged.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "trace_service.pb-c.h"

#include "export/export.h"
#include "export/otlp_encode.h"

#define OTLP_MAX_ATTEMPTS 5
#define OTLP_RETRY_BUDGET_MS 30000 /* from a batch's first attempt to its last */
#define OTLP_BACKOFF_FIRST_MS 500
#define OTLP_BACKOFF_MAX_MS 8000
#define OTLP_LOG_INTERVAL_MS 10000
#define OTLP_RESPONSE_MAX 65536

struct otlp_item {
	struct otlp_item *next;
	uint64_t enqueued_ms;
	struct span span; /* deep copy, holds a resource reference */
};

enum post_result { POST_OK, POST_RETRY, POST_FAIL };

struct otlp_exporter {
	struct exporter base;
	char *url;
	char *where; /* scheme://host[:port] for messages: no userinfo, path or query */
	struct curl_slist *headers;
	int batch_max, batch_delay_ms, queue_max, timeout_ms;

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

	/* Sender thread only. */
	CURL *curl;
	long retry_after_ms;
	char *resp;
	size_t resp_len;
	unsigned int seed;
	uint64_t last_log_ms;
	uint64_t unlogged_drops;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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
	if (++oe->n_queued >= (size_t)oe->batch_max)
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

/* ---- HTTP ------------------------------------------------------------------------------- */

static size_t otlp__on_header(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct otlp_exporter *oe = arg;
	size_t len = size * nmemb;
	char val[32];
	size_t n;
	char *end;
	long secs;

	if (len > 12 && strncasecmp(buf, "retry-after:", 12) == 0) {
		n = len - 12 < sizeof(val) - 1 ? len - 12 : sizeof(val) - 1;
		memcpy(val, buf + 12, n);
		val[n] = '\0';
		/* Only delta-seconds; an HTTP-date falls back to our own backoff. */
		secs = strtol(val, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (end != val && *end == '\0' && secs >= 0 && secs < 86400)
			oe->retry_after_ms = secs * 1000;
	}
	return len;
}

static size_t otlp__on_body(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct otlp_exporter *oe = arg;
	size_t len = size * nmemb, room = OTLP_RESPONSE_MAX - oe->resp_len;

	if (room > len)
		room = len;
	memcpy(oe->resp + oe->resp_len, buf, room);
	oe->resp_len += room;
	return len;
}

static int otlp__on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct otlp_exporter *oe = arg;

	return __atomic_load_n(&oe->stop, __ATOMIC_RELAXED) ? 1 : 0;
}

/* Spans a 200 answer says were rejected (partial success); they count as dropped. */
static uint64_t otlp__rejected(struct otlp_exporter *oe)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *r;
	uint64_t n = 0;

	if (!oe->resp_len)
		return 0;
	r = opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
		NULL, oe->resp_len, (const uint8_t *)oe->resp);
	if (r && r->partial_success && r->partial_success->rejected_spans > 0)
		n = (uint64_t)r->partial_success->rejected_spans;
	if (r)
		opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
			r, NULL);
	return n;
}

static enum post_result otlp__post(struct otlp_exporter *oe, const uint8_t *buf, size_t len,
				   long timeout_ms, long *status)
{
	CURLcode rc;

	oe->retry_after_ms = -1;
	oe->resp_len = 0;
	*status = 0;
	curl_easy_setopt(oe->curl, CURLOPT_POSTFIELDS, buf);
	curl_easy_setopt(oe->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(oe->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	rc = curl_easy_perform(oe->curl);
	if (rc != CURLE_OK) {
		if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ||
		    rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_OUT_OF_MEMORY)
			return POST_FAIL;
		return POST_RETRY;
	}
	curl_easy_getinfo(oe->curl, CURLINFO_RESPONSE_CODE, status);
	if (*status >= 200 && *status < 300)
		return POST_OK;
	if (*status == 429 || *status == 502 || *status == 503 || *status == 504)
		return POST_RETRY;
	return POST_FAIL;
}

/* ---- the sender ------------------------------------------------------------------------- */

static void otlp__log_drop(struct otlp_exporter *oe, size_t n, long status)
{
	uint64_t now = now_ms();

	oe->unlogged_drops += n;
	if (oe->last_log_ms && now - oe->last_log_ms < OTLP_LOG_INTERVAL_MS)
		return;
	if (status)
		fprintf(stderr, "tokentap: otlp: export failed (HTTP %ld), dropped %llu spans\n",
			status, (unsigned long long)oe->unlogged_drops);
	else
		fprintf(stderr,
			"tokentap: otlp: export failed (cannot reach %s), dropped %llu spans\n",
			oe->where, (unsigned long long)oe->unlogged_drops);
	oe->unlogged_drops = 0;
	oe->last_log_ms = now;
}

static long otlp__backoff_ms(struct otlp_exporter *oe, int attempt)
{
	long base = OTLP_BACKOFF_FIRST_MS << (attempt - 1);

	if (base > OTLP_BACKOFF_MAX_MS || base <= 0)
		base = OTLP_BACKOFF_MAX_MS;
	/* Full range [base/2, base*3/2): senders that failed together do not retry together. */
	return base / 2 + (long)(rand_r(&oe->seed) % (unsigned)base);
}

/* The time by which this batch must be settled. */
static uint64_t otlp__give_up_at(struct otlp_exporter *oe, uint64_t started)
{
	uint64_t limit = started + OTLP_RETRY_BUDGET_MS;

	pthread_mutex_lock(&oe->mu);
	if (oe->flushers > 0 && oe->flush_deadline_ms < limit)
		limit = oe->flush_deadline_ms;
	pthread_mutex_unlock(&oe->mu);
	return limit;
}

/* Sleeps until `until` unless told to stop; false when stopping. */
static bool otlp__sleep(struct otlp_exporter *oe, uint64_t until)
{
	bool stop;

	pthread_mutex_lock(&oe->mu);
	while (!oe->stop && now_ms() < until)
		cond__wait_until(&oe->wake, &oe->mu, until);
	stop = oe->stop;
	pthread_mutex_unlock(&oe->mu);
	return !stop;
}

/* Sends one encoded batch of n spans, retrying where that may help; settles the counters. */
static void otlp__send(struct otlp_exporter *oe, const uint8_t *buf, size_t len, size_t n)
{
	uint64_t started = now_ms(), limit, now, rejected;
	enum post_result r;
	long status = 0, wait, timeout;
	int attempt;

	for (attempt = 1;; attempt++) {
		now = now_ms();
		limit = otlp__give_up_at(oe, started);
		if (now >= limit) /* a flush at shutdown ran out of time */
			break;
		timeout = oe->timeout_ms;
		if ((long)(limit - now) < timeout)
			timeout = (long)(limit - now);
		r = otlp__post(oe, buf, len, timeout, &status);
		if (r == POST_OK) {
			rejected = otlp__rejected(oe);
			if (rejected > n)
				rejected = n;
			stat__add(&oe->st.exported, n - rejected);
			stat__add(&oe->st.dropped, rejected);
			return;
		}
		stat__add(&oe->st.errors, 1);
		if (r == POST_FAIL || attempt >= OTLP_MAX_ATTEMPTS)
			break;
		wait = oe->retry_after_ms >= 0 ? oe->retry_after_ms : otlp__backoff_ms(oe, attempt);
		now = now_ms();
		if (now + (uint64_t)wait >= otlp__give_up_at(oe, started))
			break;
		if (!otlp__sleep(oe, now + (uint64_t)wait))
			break;
	}
	stat__add(&oe->st.dropped, n);
	otlp__log_drop(oe, n, status);
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
		otlp__send(oe, buf, len, n);
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
	if (oe->curl)
		curl_easy_cleanup(oe->curl);
	curl_slist_free_all(oe->headers);
	free(oe->resp);
	free(oe->url);
	free(oe->where);
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

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes [s, s+n) into out (room for n + 1); -EINVAL on bytes a header cannot hold. */
static int url_decode(const char *s, size_t n, char *out)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
		if (out[o - 1] == '\0' || out[o - 1] == '\r' || out[o - 1] == '\n')
			return -EINVAL;
	}
	out[o] = '\0';
	return 0;
}

static bool is_tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* One "key=value" entry -> "key: value" appended to *list. */
static int otlp__add_header(struct curl_slist **list, const char *s, const char *e)
{
	const char *eq = memchr(s, '=', (size_t)(e - s)), *k = s, *ke = eq, *v, *ve = e, *p;
	struct curl_slist *l;
	char *line;

	if (!eq)
		return -EINVAL;
	v = eq + 1;
	trim(&k, &ke);
	trim(&v, &ve);
	if (k == ke)
		return -EINVAL;
	for (p = k; p < ke; p++) {
		if (!is_tchar((unsigned char)*p))
			return -EINVAL;
	}
	line = malloc((size_t)(ke - k) + (size_t)(ve - v) + 3);
	if (!line)
		return -ENOMEM;
	memcpy(line, k, (size_t)(ke - k));
	if (v == ve) {
		strcpy(line + (ke - k), ";"); /* how libcurl sends a header with an empty value */
	} else {
		memcpy(line + (ke - k), ": ", 2);
		if (url_decode(v, (size_t)(ve - v), line + (ke - k) + 2) < 0) {
			free(line);
			return -EINVAL;
		}
	}
	l = curl_slist_append(*list, line);
	free(line);
	if (!l)
		return -ENOMEM;
	*list = l;
	return 0;
}

/* Parses OTEL_EXPORTER_OTLP_HEADERS syntax; on error *bad is the 1-based entry at fault. */
static int otlp__parse_headers(const char *spec, struct curl_slist **list, int *bad)
{
	const char *s = spec, *e;
	int err;

	*bad = 0;
	while (spec && *s) {
		e = strchr(s, ',');
		if (!e)
			e = s + strlen(s);
		(*bad)++;
		if (strspn(s, " \t") < (size_t)(e - s)) {
			err = otlp__add_header(list, s, e);
			if (err < 0)
				return err;
		}
		s = *e ? e + 1 : e;
	}
	return 0;
}

static char *otlp__url(const char *endpoint)
{
	size_t n = strlen(endpoint);
	char *url;

	while (n && endpoint[n - 1] == '/')
		n--;
	url = malloc(n + sizeof("/v1/traces"));
	if (url) {
		memcpy(url, endpoint, n);
		strcpy(url + n, "/v1/traces");
	}
	return url;
}

/* The endpoint's scheme and host only: credentials may sit in userinfo or the query. */
static char *otlp__where(const char *endpoint)
{
	size_t scheme = (size_t)(strstr(endpoint, "://") + 3 - endpoint);
	const char *host = endpoint + scheme, *end = host + strcspn(host, "/?#");
	const char *at = memchr(host, '@', (size_t)(end - host));
	char *w;

	if (at)
		host = at + 1;
	if (asprintf(&w, "%.*s%.*s", (int)scheme, endpoint, (int)(end - host), host) < 0)
		return NULL;
	return w;
}

static bool otlp__endpoint_ok(const char *ep)
{
	size_t skip;

	if (!ep)
		return false;
	if (strncasecmp(ep, "http://", 7) == 0)
		skip = 7;
	else if (strncasecmp(ep, "https://", 8) == 0)
		skip = 8;
	else
		return false;
	return ep[skip] && ep[skip] != '/' && !strpbrk(ep, " \t\r\n");
}

static bool otlp__opts_ok(const struct otlp_opts *o)
{
	if (!otlp__endpoint_ok(o->endpoint)) {
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

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl__init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int otlp__setup_curl(struct otlp_exporter *oe)
{
	struct curl_slist *l;

	pthread_once(&curl_once, curl__init_once);
	if (curl_init_rc != CURLE_OK)
		return -EIO;
	l = curl_slist_append(oe->headers, "Content-Type: application/x-protobuf");
	if (!l)
		return -ENOMEM;
	oe->headers = l;
	/* An empty Expect keeps libcurl from waiting for 100-continue on big batches. */
	l = curl_slist_append(oe->headers, "Expect:");
	if (!l)
		return -ENOMEM;
	oe->headers = l;
	oe->curl = curl_easy_init();
	oe->resp = malloc(OTLP_RESPONSE_MAX);
	if (!oe->curl || !oe->resp)
		return -ENOMEM;
	curl_easy_setopt(oe->curl, CURLOPT_URL, oe->url);
	curl_easy_setopt(oe->curl, CURLOPT_HTTPHEADER, oe->headers);
	curl_easy_setopt(oe->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(oe->curl, CURLOPT_USERAGENT, "tokentap/" TOKENTAP_VERSION);
	curl_easy_setopt(oe->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(oe->curl, CURLOPT_HEADERFUNCTION, otlp__on_header);
	curl_easy_setopt(oe->curl, CURLOPT_HEADERDATA, oe);
	curl_easy_setopt(oe->curl, CURLOPT_WRITEFUNCTION, otlp__on_body);
	curl_easy_setopt(oe->curl, CURLOPT_WRITEDATA, oe);
	curl_easy_setopt(oe->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(oe->curl, CURLOPT_XFERINFOFUNCTION, otlp__on_progress);
	curl_easy_setopt(oe->curl, CURLOPT_XFERINFODATA, oe);
	return 0;
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

struct exporter *otlp_exporter__new(const struct otlp_opts *opts)
{
	struct otlp_exporter *oe;
	int bad, err;

	if (!otlp__opts_ok(opts))
		return NULL;
	oe = calloc(1, sizeof(*oe));
	if (!oe)
		return NULL;
	oe->base.ops = &otlp_ops;
	oe->batch_max = opts->batch_max ? opts->batch_max : 512;
	oe->batch_delay_ms = opts->batch_delay_ms ? opts->batch_delay_ms : 1000;
	oe->queue_max = opts->queue_max ? opts->queue_max : 8192;
	oe->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 10000;
	oe->seed = (unsigned int)(now_ms() ^ (uint64_t)getpid());
	otlp__init_sync(oe);
	err = otlp__parse_headers(opts->headers, &oe->headers, &bad);
	if (err == -EINVAL)
		fprintf(stderr,
			"tokentap: otlp: bad headers: entry %d is not key=value "
			"(OTEL_EXPORTER_OTLP_HEADERS format: k1=v1,k2=v2)\n",
			bad);
	oe->url = otlp__url(opts->endpoint);
	oe->where = otlp__where(opts->endpoint);
	if (!err && (!oe->url || !oe->where))
		err = -ENOMEM;
	if (!err)
		err = otlp__setup_curl(oe);
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
