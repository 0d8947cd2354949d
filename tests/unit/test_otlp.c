// SPDX-License-Identifier: Apache-2.0
/*
 * OTLP exporter: (1) the protobuf bytes, unpacked again with the protobuf-c generated code and
 * checked field by field; (2) the transport against a small HTTP server on loopback in this
 * test: batching, retry with Retry-After on 503, no retry on 400, partial success, connection
 * failures, the queue bound, header parsing, and that header values never reach the log.
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

#include "trace_service.pb-c.h"

#include "export/export.h"
#include "export/otlp_encode.h"
#include "tt_test.h"

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest Request;
typedef Opentelemetry__Proto__Trace__V1__Span Span;
typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;

#define ANY(x) OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct resource *resource_new(uint32_t pid, const char *exe)
{
	struct resource *r = calloc(1, sizeof(*r));

	r->refs = 1;
	r->pid = pid;
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "service.name", exe);
	attrs__add_int(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.pid", pid);
	return r;
}

/* Span number `id`: its ids and times are derived from id so a decoder can check them. */
static struct span *span_make(int id, struct resource *r)
{
	static const char *const reasons[] = { "stop", "tool_calls" };
	struct span *s = calloc(1, sizeof(*s));

	memset(s->trace_id, 0x10 + id, sizeof(s->trace_id));
	memset(s->span_id, 0x20 + id, sizeof(s->span_id));
	memset(s->parent_span_id, 0x30 + id, sizeof(s->parent_span_id));
	s->has_parent = id % 2;
	snprintf(s->name, sizeof(s->name), "chat model-%d", id);
	s->kind = SPAN_KIND_CLIENT;
	s->start_unix_ns = 18446744073709551000ull - (uint64_t)id; /* beyond int64 and 2^53 */
	s->end_unix_ns = 1717243200000000000ull + (uint64_t)id;
	s->status = id % 2 ? SPAN_STATUS_ERROR : SPAN_STATUS_UNSET;
	snprintf(s->status_message, sizeof(s->status_message), "%s", id % 2 ? "HTTP 429" : "");
	s->resource = r;
	resource__get(r);
	attrs__add_str(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.request.model", "bad\xff");
	attrs__add_int(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.usage.input_tokens",
		       -1000000000000LL - id);
	attrs__add_double(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.request.temperature",
			  0.25);
	attrs__add_bool(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.request.stream", true);
	attrs__add_str_array(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS,
			     "gen_ai.response.finish_reasons", reasons, 2);
	return s;
}

static bool bytes_are(ProtobufCBinaryData b, size_t len, int v)
{
	size_t i;

	if (b.len != len)
		return false;
	for (i = 0; i < len; i++) {
		if (b.data[i] != v)
			return false;
	}
	return true;
}

static void check_span(const Span *sp, int id)
{
	KeyValue **a = sp->attributes;

	CHECK(bytes_are(sp->trace_id, 16, 0x10 + id));
	CHECK(bytes_are(sp->span_id, 8, 0x20 + id));
	if (id % 2)
		CHECK(bytes_are(sp->parent_span_id, 8, 0x30 + id));
	else
		CHECK_EQ_INT(sp->parent_span_id.len, 0);
	char name[32];
	snprintf(name, sizeof(name), "chat model-%d", id);
	CHECK_EQ_STR(sp->name, name);
	CHECK_EQ_INT(sp->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT);
	CHECK(sp->start_time_unix_nano == 18446744073709551000ull - (uint64_t)id);
	CHECK(sp->end_time_unix_nano == 1717243200000000000ull + (uint64_t)id);
	CHECK(sp->status != NULL);
	if (!sp->status || sp->n_attributes != 5) {
		CHECK_EQ_INT(sp->n_attributes, 5);
		return;
	}
	CHECK_EQ_INT(sp->status->code, id % 2 ? 2 : 0);
	CHECK_EQ_STR(sp->status->message, id % 2 ? "HTTP 429" : "");
	CHECK_EQ_STR(a[0]->key, "gen_ai.request.model");
	CHECK_EQ_INT(a[0]->value->value_case, ANY(STRING_VALUE));
	CHECK_EQ_STR(a[0]->value->string_value, "bad\xef\xbf\xbd");
	CHECK_EQ_STR(a[1]->key, "gen_ai.usage.input_tokens");
	CHECK_EQ_INT(a[1]->value->value_case, ANY(INT_VALUE));
	CHECK(a[1]->value->int_value == -1000000000000LL - id);
	CHECK_EQ_INT(a[2]->value->value_case, ANY(DOUBLE_VALUE));
	CHECK(a[2]->value->double_value == 0.25);
	CHECK_EQ_INT(a[3]->value->value_case, ANY(BOOL_VALUE));
	CHECK(a[3]->value->bool_value);
	CHECK_EQ_STR(a[4]->key, "gen_ai.response.finish_reasons");
	CHECK_EQ_INT(a[4]->value->value_case, ANY(ARRAY_VALUE));
	if (a[4]->value->value_case == ANY(ARRAY_VALUE) &&
	    a[4]->value->array_value->n_values == 2) {
		CHECK_EQ_STR(a[4]->value->array_value->values[0]->string_value, "stop");
		CHECK_EQ_STR(a[4]->value->array_value->values[1]->string_value, "tool_calls");
	}
}

static void check_resource(const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs, int pid,
			   const char *exe)
{
	const Opentelemetry__Proto__Resource__V1__Resource *r = rs->resource;

	CHECK(r != NULL && r->n_attributes == 2);
	if (!r || r->n_attributes != 2)
		return;
	CHECK_EQ_STR(r->attributes[0]->key, "service.name");
	CHECK_EQ_STR(r->attributes[0]->value->string_value, exe);
	CHECK_EQ_STR(r->attributes[1]->key, "process.pid");
	CHECK_EQ_INT(r->attributes[1]->value->int_value, pid);
	CHECK_EQ_INT(rs->n_scope_spans, 1);
	CHECK_EQ_STR(rs->scope_spans[0]->scope->name, "tokentap");
	CHECK_EQ_STR(rs->scope_spans[0]->scope->version, TOKENTAP_VERSION);
}

TEST(encode_two_resources)
{
	struct resource *ra = resource_new(100, "curl"), *rb = resource_new(200, "python3");
	struct span *s[4] = { span_make(0, ra), span_make(1, rb), span_make(2, ra),
			      span_make(3, NULL) };
	const struct span *ptrs[4] = { s[0], s[1], s[2], s[3] };
	Request *req;
	uint8_t *buf;
	size_t len = 0;

	buf = otlp__encode(ptrs, 4, &len);
	CHECK(buf != NULL && len > 0);
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
		NULL, len, buf);
	CHECK(req != NULL);
	if (req && req->n_resource_spans == 3) {
		Opentelemetry__Proto__Trace__V1__ResourceSpans **rs = req->resource_spans;

		check_resource(rs[0], 100, "curl");
		CHECK_EQ_INT(rs[0]->scope_spans[0]->n_spans, 2);
		check_span(rs[0]->scope_spans[0]->spans[0], 0);
		check_span(rs[0]->scope_spans[0]->spans[1], 2);
		check_resource(rs[1], 200, "python3");
		CHECK_EQ_INT(rs[1]->scope_spans[0]->n_spans, 1);
		check_span(rs[1]->scope_spans[0]->spans[0], 1);
		CHECK_EQ_INT(rs[2]->resource->n_attributes, 0);
		check_span(rs[2]->scope_spans[0]->spans[0], 3);
	} else {
		CHECK_EQ_INT(req ? req->n_resource_spans : 0, 3);
	}
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
		req, NULL);
	free(buf);
	for (int i = 0; i < 4; i++)
		span__free(s[i]);
	resource__put(ra);
	resource__put(rb);
}

/* ---- a loopback HTTP server answering from a script --------------------------------------- */

#define MAX_REQ 16

struct reply {
	int status;
	const char *headers; /* extra header lines, each ending in \r\n */
	const uint8_t *body;
	size_t body_len;
};

struct mock {
	int fd, port;
	pthread_t thread;
	pthread_mutex_t mu;
	bool stop;
	struct reply replies[MAX_REQ]; /* by request index; status 0 means 200 */
	int n;
	char *head[MAX_REQ];
	uint8_t *body[MAX_REQ];
	size_t body_len[MAX_REQ];
	uint64_t at_ms[MAX_REQ];
};

static bool mock__stopping(struct mock *m)
{
	bool s;

	pthread_mutex_lock(&m->mu);
	s = m->stop;
	pthread_mutex_unlock(&m->mu);
	return s;
}

/* Reads up to n bytes more into buf at *len; false on EOF, error or stop. */
static bool mock__read(struct mock *m, int c, char *buf, size_t *len, size_t cap)
{
	struct pollfd p = { .fd = c, .events = POLLIN };
	ssize_t r;

	while (!mock__stopping(m)) {
		if (poll(&p, 1, 50) <= 0)
			continue;
		r = read(c, buf + *len, cap - *len);
		if (r <= 0)
			return false;
		*len += (size_t)r;
		return true;
	}
	return false;
}

static void mock__answer(struct mock *m, int c, int idx)
{
	struct reply rp = idx < MAX_REQ ? m->replies[idx] : (struct reply){ 0 };
	char head[512];
	int n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n",
		     rp.status ? rp.status : 200, rp.body_len, rp.headers ? rp.headers : "");
	if (write(c, head, (size_t)n) < 0 || (rp.body_len && write(c, rp.body, rp.body_len) < 0))
		perror("mock write");
}

/* Serves requests on one connection until the client closes it. */
static void mock__serve(struct mock *m, int c)
{
	static char buf[1 << 20];
	size_t len = 0, hlen, clen, idx;
	char *end, *cl;

	for (;;) {
		while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
			if (!mock__read(m, c, buf, &len, sizeof(buf)))
				return;
		}
		hlen = (size_t)(end - buf) + 4;
		buf[hlen - 1] = '\0';
		cl = strcasestr(buf, "\r\ncontent-length:");
		clen = cl ? strtoul(cl + 17, NULL, 10) : 0;
		while (len < hlen + clen) {
			if (!mock__read(m, c, buf, &len, sizeof(buf)))
				return;
		}
		pthread_mutex_lock(&m->mu);
		idx = (size_t)m->n;
		if (idx < MAX_REQ) {
			m->head[idx] = strdup(buf);
			m->body[idx] = malloc(clen + 1);
			memcpy(m->body[idx], buf + hlen, clen);
			m->body_len[idx] = clen;
			m->at_ms[idx] = now_ms();
			m->n++;
		}
		pthread_mutex_unlock(&m->mu);
		mock__answer(m, c, (int)idx);
		memmove(buf, buf + hlen + clen, len - hlen - clen);
		len -= hlen + clen;
	}
}

static void *mock__run(void *arg)
{
	struct mock *m = arg;
	struct pollfd p = { .fd = m->fd, .events = POLLIN };
	int c;

	while (!mock__stopping(m)) {
		if (poll(&p, 1, 50) <= 0)
			continue;
		c = accept(m->fd, NULL, NULL);
		if (c < 0)
			continue;
		mock__serve(m, c);
		close(c);
	}
	return NULL;
}

static int listen_loopback(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		perror("mock listen");
		exit(1);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static void mock__start(struct mock *m)
{
	pthread_mutex_init(&m->mu, NULL);
	m->fd = listen_loopback(&m->port);
	pthread_create(&m->thread, NULL, mock__run, m);
}

static int mock__count(struct mock *m)
{
	int n;

	pthread_mutex_lock(&m->mu);
	n = m->n;
	pthread_mutex_unlock(&m->mu);
	return n;
}

static void mock__stop(struct mock *m)
{
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_mutex_unlock(&m->mu);
	pthread_join(m->thread, NULL);
	close(m->fd);
	for (int i = 0; i < m->n; i++) {
		free(m->head[i]);
		free(m->body[i]);
	}
	pthread_mutex_destroy(&m->mu);
}

static struct exporter *exporter_for(struct mock *m, struct otlp_opts *o)
{
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", m->port);
	o->endpoint = url;
	return otlp_exporter__new(o);
}

/* Exports spans 0..n-1 alternating between two resources. */
static void export_spans(struct exporter *e, int first, int n)
{
	struct resource *ra = resource_new(100, "curl"), *rb = resource_new(200, "python3");
	struct span *s;

	for (int i = first; i < first + n; i++) {
		s = span_make(i, i % 2 ? rb : ra);
		e->ops->export(e, s);
		span__free(s);
	}
	resource__put(ra);
	resource__put(rb);
}

/* Decodes a request body; returns the number of spans, checking each against its id. */
static int decoded_spans(const uint8_t *body, size_t len, int *ids, int max)
{
	Request *req =
		opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
			NULL, len, body);
	int n = 0;

	if (!req)
		return -1;
	for (size_t r = 0; r < req->n_resource_spans; r++) {
		Opentelemetry__Proto__Trace__V1__ScopeSpans *ss =
			req->resource_spans[r]->scope_spans[0];

		for (size_t i = 0; i < ss->n_spans; i++) {
			int id = ss->spans[i]->span_id.len ? ss->spans[i]->span_id.data[0] - 0x20
							   : -1;

			check_span(ss->spans[i], id);
			if (n < max)
				ids[n] = id;
			n++;
		}
	}
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
		req, NULL);
	return n;
}

TEST(retry_after_503_then_200)
{
	struct mock m = { .replies = { { 503, "Retry-After: 1\r\n" }, { 200 } } };
	struct otlp_opts o = { .headers = " x-tenant = acme ,authorization=Bearer%20s3cr%3Dt,e=",
			       .batch_delay_ms = 20 };
	struct export_stats st;
	struct exporter *e;
	int ids[8] = { 0 };

	mock__start(&m);
	e = exporter_for(&m, &o);
	CHECK(e != NULL);
	if (!e)
		return;
	export_spans(e, 0, 3);
	e->ops->flush(e, 10000);
	e->ops->stats(e, &st);
	CHECK_EQ_INT(mock__count(&m), 2);
	CHECK_EQ_INT(st.exported, 3);
	CHECK_EQ_INT(st.dropped, 0);
	CHECK_EQ_INT(st.errors, 1);
	CHECK_EQ_INT(st.queued, 0);
	e->ops->destroy(e);
	if (m.n == 2) {
		CHECK(m.at_ms[1] - m.at_ms[0] >= 950); /* Retry-After: 1 was honoured */
		CHECK(strncmp(m.head[1], "POST /v1/traces HTTP/1.1\r\n", 26) == 0);
		CHECK(strcasestr(m.head[1], "\r\nContent-Type: application/x-protobuf\r\n") !=
		      NULL);
		CHECK(strstr(m.head[1], "\r\nx-tenant: acme\r\n") != NULL);
		CHECK(strstr(m.head[1], "\r\nauthorization: Bearer s3cr=t\r\n") != NULL);
		CHECK(strstr(m.head[1], "\r\ne:") != NULL);
		CHECK(m.body_len[0] == m.body_len[1] &&
		      memcmp(m.body[0], m.body[1], m.body_len[0]) == 0);
		CHECK_EQ_INT(decoded_spans(m.body[1], m.body_len[1], ids, 8), 3);
		/* Grouped by resource: spans 0 and 2 (curl) first, then 1 (python3). */
		CHECK(ids[0] == 0 && ids[1] == 2 && ids[2] == 1);
	}
	mock__stop(&m);
}

/* Runs fn with stderr going to a buffer, returned NUL-terminated. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	char *out = calloc(1, 4096);

	fflush(stderr);
	dup2(fileno(tmp), 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	if (fread(out, 1, 4095, tmp) == 0)
		out[0] = '\0';
	fclose(tmp);
	return out;
}

struct run400 {
	struct mock *m;
	struct export_stats st;
	bool made;
};

static void run_400(void *arg)
{
	struct run400 *r = arg;
	struct otlp_opts o = { .headers = "authorization=Bearer%20s3cr%3Dt", .batch_delay_ms = 10 };
	struct exporter *e = exporter_for(r->m, &o);

	r->made = e != NULL;
	if (!e)
		return;
	export_spans(e, 0, 2);
	e->ops->flush(e, 5000);
	usleep(300 * 1000); /* room for a retry that must not come */
	e->ops->stats(e, &r->st);
	e->ops->destroy(e);
}

TEST(no_retry_on_400)
{
	struct mock m = { .replies = { { 400 }, { 200 } } };
	struct run400 r = { .m = &m };
	char *log;

	mock__start(&m);
	log = capture_stderr(run_400, &r);
	CHECK(r.made);
	CHECK_EQ_INT(mock__count(&m), 1);
	CHECK_EQ_INT(r.st.exported, 0);
	CHECK_EQ_INT(r.st.dropped, 2);
	CHECK_EQ_INT(r.st.errors, 1);
	CHECK(strstr(log, "HTTP 400") != NULL);
	CHECK(strstr(log, "s3cr") == NULL && strstr(log, "Bearer") == NULL);
	free(log);
	mock__stop(&m);
}

TEST(partial_success_counts_rejected)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
		OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse resp =
		OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
	uint8_t body[64];
	struct mock m = { 0 };
	struct otlp_opts o = { .batch_delay_ms = 10 };
	struct export_stats st;
	struct exporter *e;

	ps.rejected_spans = 1;
	ps.error_message = "too old";
	resp.partial_success = &ps;
	m.replies[0] = (struct reply){
		200, "Content-Type: application/x-protobuf\r\n", body,
		opentelemetry__proto__collector__trace__v1__export_trace_service_response__pack(
			&resp, body)
	};
	mock__start(&m);
	e = exporter_for(&m, &o);
	export_spans(e, 0, 3);
	e->ops->flush(e, 5000);
	e->ops->stats(e, &st);
	CHECK_EQ_INT(mock__count(&m), 1);
	CHECK_EQ_INT(st.exported, 2);
	CHECK_EQ_INT(st.dropped, 1);
	e->ops->destroy(e);
	mock__stop(&m);
}

TEST(batching_and_delay)
{
	struct mock m = { 0 };
	struct otlp_opts o = { .batch_max = 2, .batch_delay_ms = 100 };
	struct export_stats st;
	struct exporter *e;
	int ids[8], total = 0;

	mock__start(&m);
	e = exporter_for(&m, &o);
	export_spans(e, 0, 5);
	/* No flush: full batches go at once, the last one after batch_delay_ms. */
	/* The mock counts a request when it arrives; the exporter counts it once the answer is
	 * read: wait for both. */
	for (int i = 0; i < 150; i++) {
		e->ops->stats(e, &st);
		if (mock__count(&m) >= 3 && st.exported >= 5)
			break;
		usleep(20 * 1000);
	}
	CHECK_EQ_INT(mock__count(&m), 3);
	CHECK_EQ_INT(st.exported, 5);
	e->ops->destroy(e);
	for (int i = 0; i < m.n && i < 3; i++) {
		int n = decoded_spans(m.body[i], m.body_len[i], ids, 8);

		CHECK_EQ_INT(n, i < 2 ? 2 : 1);
		total += n;
	}
	CHECK_EQ_INT(total, 5);
	mock__stop(&m);
}

/* Fewer spans than a batch: they go once batch_delay_ms has passed, not at the next flush. */
TEST(lone_span_goes_after_the_delay)
{
	struct mock m = { 0 };
	struct otlp_opts o = { .batch_delay_ms = 50 };
	struct export_stats st;
	struct exporter *e;

	mock__start(&m);
	e = exporter_for(&m, &o);
	export_spans(e, 0, 1);
	for (int i = 0; i < 100 && mock__count(&m) < 1; i++)
		usleep(20 * 1000);
	e->ops->stats(e, &st);
	CHECK_EQ_INT(mock__count(&m), 1);
	CHECK_EQ_INT(st.exported, 1);
	e->ops->destroy(e);
	mock__stop(&m);
}

static void run_refused(void *arg)
{
	struct export_stats *st = arg;
	int port, fd = listen_loopback(&port);
	struct otlp_opts o = { .batch_delay_ms = 10 };
	char url[64];
	struct exporter *e;
	uint64_t t0;

	close(fd); /* nothing listens there now: connection refused */
	snprintf(url, sizeof(url), "http://user:tok3n@127.0.0.1:%d/base", port);
	o.endpoint = url;
	e = otlp_exporter__new(&o);
	export_spans(e, 0, 1);
	t0 = now_ms();
	e->ops->flush(e, 1200);
	CHECK(now_ms() - t0 < 1500);
	e->ops->stats(e, st);
	e->ops->destroy(e);
}

TEST(connection_refused_retries_then_drops)
{
	struct export_stats st = { 0 };
	char *log = capture_stderr(run_refused, &st);

	CHECK(st.errors >= 2);
	CHECK_EQ_INT(st.dropped, 1);
	CHECK_EQ_INT(st.exported, 0);
	CHECK(strstr(log, "cannot reach http://127.0.0.1:") != NULL);
	CHECK(strstr(log, "tok3n") == NULL && strstr(log, "/base") == NULL);
	free(log);
}

TEST(queue_bound_drops_newest)
{
	struct mock m = { 0 };
	struct otlp_opts o = { .batch_max = 100, .batch_delay_ms = 60000, .queue_max = 3 };
	struct export_stats st;
	struct exporter *e;

	mock__start(&m);
	e = exporter_for(&m, &o);
	export_spans(e, 0, 5);
	e->ops->stats(e, &st);
	CHECK_EQ_INT(st.queued, 3);
	CHECK_EQ_INT(st.dropped, 2);
	e->ops->flush(e, 5000);
	e->ops->stats(e, &st);
	CHECK_EQ_INT(st.exported, 3);
	CHECK_EQ_INT(st.queued, 0);
	e->ops->destroy(e);
	mock__stop(&m);
}

static void run_bad_options(void *arg)
{
	static const char *const bad_endpoints[] = { "ftp://h:1", "http://", "http:///x",
						     "localhost:4318", "http://h :1" };
	static const char *const bad_headers[] = { "novalue",		"=v",	"a b=c", "k=v\r",
						   "k=%0d%0aX-Evil: 1", "k=%00" };
	struct otlp_opts o = { 0 };
	struct exporter *e;
	size_t i;

	CHECK(otlp_exporter__new(&o) == NULL);
	for (i = 0; i < sizeof(bad_endpoints) / sizeof(bad_endpoints[0]); i++) {
		o.endpoint = bad_endpoints[i];
		CHECK(otlp_exporter__new(&o) == NULL);
	}
	o.endpoint = "http://127.0.0.1:9";
	for (i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
		o.headers = bad_headers[i];
		CHECK(otlp_exporter__new(&o) == NULL);
	}
	o.headers = NULL;
	o.queue_max = -1;
	CHECK(otlp_exporter__new(&o) == NULL);
	o.queue_max = 0;
	o.headers = " a = b , , c=%41 ";
	e = otlp_exporter__new(&o);
	CHECK(e != NULL);
	if (e)
		e->ops->destroy(e);
	*(int *)arg = 1;
}

TEST(bad_options)
{
	int ran = 0;
	char *log = capture_stderr(run_bad_options, &ran);
	int lines = 0;

	for (char *p = log; (p = strchr(p, '\n')); p++)
		lines++;
	CHECK(ran);
	CHECK_EQ_INT(lines, 13); /* one line per refused exporter */
	CHECK(strstr(log, "X-Evil") == NULL);
	free(log);
}

int main(void)
{
	RUN(encode_two_resources);
	RUN(retry_after_503_then_200);
	RUN(no_retry_on_400);
	RUN(partial_success_counts_rejected);
	RUN(batching_and_delay);
	RUN(lone_span_goes_after_the_delay);
	RUN(connection_refused_retries_then_drops);
	RUN(queue_bound_drops_newest);
	RUN(bad_options);
	TT_DONE();
}
