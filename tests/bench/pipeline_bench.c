// SPDX-License-Identifier: Apache-2.0
/*
 * User space alone, for `make bench`: recorded-shape streams fed as cap_chunk sequences into
 * conn_table (exactly what capture/ hands it), one thread, so the numbers are per core.
 *
 *   pipeline_bench [--seconds S] [--scenario NAME] [--stage call|span] [--conns N]
 *
 * Scenarios (one JSON line each): json (1 KiB request, 2 KiB JSON response), json64k (64 KiB
 * response in 16 KiB SSL reads), sse (streamed chat completion, one SSL read per event),
 * gzip (gzip-encoded JSON response), and "conns": N connections that each sent one request and
 * wait for the answer, to measure memory per open connection (ticked as the agent does). Each
 * throughput scenario runs twice: up to the llm_call ("call") and on to a span written as JSON
 * to /dev/null ("span").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "conn/conn.h"
#include "export/export.h"
#include "span/builder.h"

#define CALLS_PER_CONN 100

struct msg {
	char *data;
	size_t len;
};

/* One call's SSL calls in order: dir and bytes of each. */
struct script {
	const char *name;
	int n;
	int dir[512];
	struct msg part[512];
	size_t bytes;
};

struct bench {
	struct conn_table *t;
	struct span_builder *sb;
	struct exporter *out;
	uint64_t calls, now;
	uint32_t pid;
};

/* Thread CPU time: the rate per core, whatever else the machine runs. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			v = atol(line + 6);
	if (f)
		fclose(f);
	return v;
}

/* ---- messages ------------------------------------------------------------------------------- */

static void fill(char *p, size_t n)
{
	static const char words[] = "lorem ipsum dolor sit amet consectetur adipiscing elit ";

	for (size_t i = 0; i < n; i++)
		p[i] = words[i % (sizeof(words) - 1)];
}

static struct msg msg__printf(size_t cap, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static struct msg msg__printf(size_t cap, const char *fmt, ...)
{
	struct msg m = {.data = malloc(cap)};
	va_list ap;

	va_start(ap, fmt);
	m.len = (size_t)vsnprintf(m.data, cap, fmt, ap);
	va_end(ap);
	return m;
}

static struct msg request(bool stream)
{
	char content[800];

	fill(content, sizeof(content) - 1);
	content[sizeof(content) - 1] = '\0';
	char body[1024];
	int bl = snprintf(body, sizeof(body),
			  "{\"model\":\"gpt-4o-mini\",\"max_tokens\":256,%s\"messages\":[{\"role\":"
			  "\"user\",\"content\":\"%s\"}]}",
			  stream ? "\"stream\":true,\"stream_options\":{\"include_usage\":true}," : "",
			  content);

	return msg__printf(2048,
			   "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
			   "Authorization: Bearer sk-bench\r\nContent-Type: application/json\r\n"
			   "Content-Length: %d\r\n\r\n%s",
			   bl, body);
}

static char *json_body(size_t content_len)
{
	char *content = malloc(content_len + 1), *body = malloc(content_len + 512);

	fill(content, content_len);
	content[content_len] = '\0';
	snprintf(body, content_len + 512,
		 "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"model\":"
		 "\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
		 "\"assistant\",\"content\":\"%s\"},\"finish_reason\":\"stop\"}],\"usage\":{"
		 "\"prompt_tokens\":180,\"completion_tokens\":420,\"total_tokens\":600}}",
		 content);
	free(content);
	return body;
}

static void script__add(struct script *s, int dir, struct msg m)
{
	s->dir[s->n] = dir;
	s->part[s->n++] = m;
	s->bytes += m.len;
}

/* A response split the way SSL_read returns it: at most 16 KiB per call. */
static void script__add_split(struct script *s, const char *data, size_t len)
{
	for (size_t off = 0; off < len; off += 16384) {
		size_t n = len - off < 16384 ? len - off : 16384;
		struct msg m = {.data = malloc(n), .len = n};

		memcpy(m.data, data + off, n);
		script__add(s, CAP_DIR_READ, m);
	}
}

static void script__json(struct script *s, const char *name, size_t content_len)
{
	char *body = json_body(content_len);
	struct msg r = msg__printf(content_len + 1024,
				   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				   "Content-Length: %zu\r\n\r\n%s",
				   strlen(body), body);

	s->name = name;
	script__add(s, CAP_DIR_WRITE, request(false));
	script__add_split(s, r.data, r.len);
	free(r.data);
	free(body);
}

static void script__sse(struct script *s, int events)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n";
	char ev[512];

	s->name = "sse";
	script__add(s, CAP_DIR_WRITE, request(true));
	script__add(s, CAP_DIR_READ, msg__printf(sizeof(head), "%s", head));
	for (int i = 0; i < events; i++) {
		int n = snprintf(ev, sizeof(ev),
				 "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\","
				 "\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,"
				 "\"delta\":{\"content\":\" word%d\"},\"finish_reason\":null}]}\n\n",
				 i);

		script__add(s, CAP_DIR_READ, msg__printf(640, "%x\r\n%s\r\n", n, ev));
	}
	snprintf(ev, sizeof(ev),
		 "data: {\"id\":\"chatcmpl-bench\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":"
		 "[],\"usage\":{\"prompt_tokens\":180,\"completion_tokens\":%d,\"total_tokens\":%d}}"
		 "\n\ndata: [DONE]\n\n",
		 events, events + 180);
	script__add(s, CAP_DIR_READ, msg__printf(640, "%zx\r\n%s\r\n0\r\n\r\n", strlen(ev), ev));
}

static void script__gzip(struct script *s)
{
	char *body = json_body(6000);
	uLongf zl = compressBound(strlen(body)) + 32;
	unsigned char *z = malloc(zl);
	z_stream zs = {0};
	struct msg r;

	deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY); /* gzip framing */
	zs.next_in = (unsigned char *)body;
	zs.avail_in = (uInt)strlen(body);
	zs.next_out = z;
	zs.avail_out = (uInt)zl;
	deflate(&zs, Z_FINISH);
	zl = zs.total_out;
	deflateEnd(&zs);
	r.data = malloc(zl + 256);
	r.len = (size_t)snprintf(r.data, 256,
				 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				 "Content-Encoding: gzip\r\nContent-Length: %lu\r\n\r\n",
				 (unsigned long)zl);
	memcpy(r.data + r.len, z, zl);
	r.len += zl;
	s->name = "gzip";
	script__add(s, CAP_DIR_WRITE, request(false));
	script__add(s, CAP_DIR_READ, r);
	free(z);
	free(body);
}

/* ---- feeding -------------------------------------------------------------------------------- */

static void on_call_count(void *ctx, const struct llm_call *c)
{
	((struct bench *)ctx)->calls++;
}

static void on_call_span(void *ctx, const struct llm_call *c)
{
	struct bench *b = ctx;
	struct span *s = span_builder__build(b->sb, c);

	if (s) {
		b->out->ops->export(b->out, s);
		span__free(s);
	}
	b->calls++;
}

static void feed_part(struct bench *b, uint64_t conn, uint64_t *seq, int dir, const struct msg *m)
{
	struct cap_chunk c = {
		.key = {.pid = b->pid, .conn_id = conn},
		.tid = b->pid,
		.dir = (enum cap_dir)dir,
		.seq = seq[dir],
		.call_start_ns = b->now,
		.call_end_ns = b->now + 2000,
		.call_len = (uint32_t)m->len,
		.len = (uint32_t)m->len,
		.data = (const uint8_t *)m->data,
		.tls_source = 1,
	};

	b->now += 10000;
	seq[dir] += m->len;
	conn_table__on_chunk(b->t, &c);
}

static void close_conn(struct bench *b, uint64_t conn, const uint64_t *seq)
{
	struct cap_close cl = {.key = {.pid = b->pid, .conn_id = conn},
			       .ts_ns = b->now,
			       .write_seq = seq[0],
			       .read_seq = seq[1]};

	conn_table__on_close(b->t, &cl);
}

/* Feeds whole connections of CALLS_PER_CONN calls for about `seconds`. */
static void run_throughput(const struct script *s, double seconds, bool spans)
{
	struct conn_opts o = {0};
	struct bench b = {.pid = (uint32_t)getpid(), .now = 1000000000ull};
	uint64_t start, elapsed, bytes = 0, conn = 0x10000;

	b.t = conn_table__new(&o, spans ? on_call_span : on_call_count, &b);
	if (spans) {
		struct span_builder_opts so = {0};

		b.sb = span_builder__new(&so);
		b.out = jsonl_exporter__new(fopen("/dev/null", "w"));
	}
	start = cpu_ns();
	do {
		uint64_t seq[2] = {0, 0};

		for (int call = 0; call < CALLS_PER_CONN; call++) {
			for (int i = 0; i < s->n; i++)
				feed_part(&b, conn, seq, s->dir[i], &s->part[i]);
			bytes += s->bytes;
		}
		close_conn(&b, conn, seq);
		conn += 0x1000;
	} while ((elapsed = cpu_ns() - start) < (uint64_t)(seconds * 1e9));
	printf("{\"scenario\":\"%s\",\"stage\":\"%s\",\"seconds\":%.3f,\"bytes\":%llu,"
	       "\"calls\":%llu,\"expected_calls\":%llu,\"mb_s\":%.1f,\"calls_s\":%.0f}\n",
	       s->name, spans ? "span" : "call", elapsed / 1e9, (unsigned long long)bytes,
	       (unsigned long long)b.calls,
	       (unsigned long long)(bytes / s->bytes), bytes / 1e6 / (elapsed / 1e9),
	       b.calls / (elapsed / 1e9));
	fflush(stdout);
	conn_table__free(b.t);
	if (spans) {
		b.out->ops->destroy(b.out);
		span_builder__free(b.sb);
	}
}

/* N connections that each wrote one request and wait: what an open connection costs. */
static void run_conns(int n)
{
	struct conn_opts o = {0};
	struct bench b = {.pid = (uint32_t)getpid(), .now = 1000000000ull};
	struct msg req = request(false);
	long before, after;
	uint64_t seq[2];

	o.max_conns = (uint32_t)n + 1;
	b.t = conn_table__new(&o, on_call_count, &b);
	before = rss_kib();
	for (int i = 0; i < n; i++) {
		seq[0] = seq[1] = 0;
		feed_part(&b, 0x10000 + (uint64_t)i * 0x1000, seq, CAP_DIR_WRITE, &req);
		/* The agent ticks once a second, and `make bench` opens about 1,000 connections a
		 * second: calls waiting for their answer are packed at each tick. */
		if (i % 1000 == 999 || i == n - 1)
			conn_table__tick(b.t, b.now);
	}
	after = rss_kib();
	printf("{\"scenario\":\"conns\",\"conns\":%d,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
	       "\"bytes_per_conn\":%.0f}\n",
	       n, before, after, (after - before) * 1024.0 / n);
	conn_table__free(b.t);
	free(req.data);
}

int main(int argc, char **argv)
{
	static struct script json, json64k, sse, gz;
	const char *only = NULL, *stage = NULL;
	double seconds = 2;
	int conns = 10000;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--scenario"))
			only = argv[i + 1];
		else if (!strcmp(argv[i], "--conns"))
			conns = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--stage"))
			stage = argv[i + 1];
	}
	script__json(&json, "json", 1900);
	script__json(&json64k, "json64k", 65000);
	script__sse(&sse, 100);
	script__gzip(&gz);
	const struct script *all[] = {&json, &json64k, &sse, &gz};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (only && strcmp(only, all[i]->name))
			continue;
		if (!stage || !strcmp(stage, "call"))
			run_throughput(all[i], seconds, false);
		if (!stage || !strcmp(stage, "span"))
			run_throughput(all[i], seconds, true);
	}
	if (!only || !strcmp(only, "conns"))
		run_conns(conns);
	return 0;
}
