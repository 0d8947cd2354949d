// SPDX-License-Identifier: Apache-2.0
/* export/socket.c: spans reach a reader as their --format json line; a reader that does not read
 * loses lines, counted exactly, and never blocks the exporter; a live socket is not stolen. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "export/export.h"
#include "tt_test.h"

static char path[64];

static struct span *mk_span(int i)
{
	struct span *s = calloc(1, sizeof(*s));
	char model[32];

	snprintf(model, sizeof(model), "gpt-4o-%d", i);
	snprintf(s->name, sizeof(s->name), "chat %s", model);
	s->kind = SPAN_KIND_CLIENT;
	s->trace_id[0] = 1;
	s->span_id[0] = (uint8_t)i;
	s->start_unix_ns = 1700000000000000000ull + (uint64_t)i;
	s->end_unix_ns = s->start_unix_ns + 5;
	attrs__add_str(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.request.model", model);
	attrs__add_int(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.usage.input_tokens", i);
	return s;
}

static char *span_line(const struct span *s)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	jsonl__write_span(f, s);
	fputc('\n', f);
	fclose(f);
	return buf;
}

static int client__connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, path);
	CHECK_EQ_INT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Reads whatever arrives within timeout_ms into buf (appending); returns bytes now in buf. */
static size_t client__read(int fd, char *buf, size_t len, size_t cap, int timeout_ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	while (len < cap && poll(&pf, 1, timeout_ms) == 1) {
		ssize_t r = read(fd, buf + len, cap - len);

		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = 0;
	return len;
}

/* Health lines until one arrives: then the exporter has surely taken the client in. */
static size_t client__wait_accepted(struct exporter *e, int fd, char *buf, size_t cap)
{
	struct agent_health h = { .events_lost = 3, .parse_errors = 2 };
	size_t n = 0;

	for (int i = 0; i < 200 && !strstr(buf, "\"type\":\"stats\""); i++) {
		socket_exporter__send_health(e, &h);
		n = client__read(fd, buf, n, cap, 10);
	}
	return n;
}

TEST(spans_arrive_as_json_lines)
{
	int err;
	struct exporter *e = socket_exporter__new(path, 0, &err);
	char *buf = calloc(1, 1 << 16), *want;
	struct span *s = mk_span(7);
	struct export_stats st;
	size_t n;
	int fd;

	CHECK(e != NULL);
	fd = client__connect();
	n = client__wait_accepted(e, fd, buf, (1 << 16) - 1);
	CHECK(strstr(buf, "\"events_lost\":3,"));
	CHECK(strstr(buf, "\"parse_errors\":2,"));
	CHECK(strstr(buf, "\"client_dropped\":0}\n"));
	e->ops->export(e, s);
	want = span_line(s);
	for (int i = 0; i < 100 && !strstr(buf, want); i++)
		n = client__read(fd, buf, n, (1 << 16) - 1, 10);
	CHECK(strstr(buf, want) != NULL);
	e->ops->flush(e, 1000);
	e->ops->stats(e, &st);
	CHECK_EQ_INT(st.exported, 1);
	CHECK_EQ_INT(st.dropped, 0);
	CHECK_EQ_INT(st.queued, 0);
	close(fd);
	e->ops->destroy(e);
	CHECK(access(path, F_OK) != 0); /* the socket file goes with the exporter */
	free(want);
	free(buf);
	span__free(s);
}

TEST(slow_reader_loses_counted_lines)
{
	const int total = 3000;
	int err, fd, got = 0;
	struct exporter *e = socket_exporter__new(path, 8192, &err);
	size_t cap = 8u << 20, n;
	char *buf = calloc(1, cap + 1);
	struct export_stats st;
	struct agent_health h = {};

	CHECK(e != NULL);
	fd = client__connect();
	n = client__wait_accepted(e, fd, buf, cap);
	/* ~250 KB of lines against 8 KiB of buffer and 64 KiB of socket: most must be dropped, and
	 * export must return at once each time. */
	for (int i = 0; i < total; i++) {
		struct span *s = mk_span(i);

		e->ops->export(e, s);
		span__free(s);
	}
	e->ops->stats(e, &st);
	CHECK(st.dropped > 0);
	CHECK_EQ_INT(st.exported + st.dropped, total);
	/* Now read everything: every line delivered is whole, and the drops add up. */
	n = client__read(fd, buf, n, cap, 300);
	socket_exporter__send_health(e, &h);
	n = client__read(fd, buf, n, cap, 300);
	for (char *p = buf; (p = strstr(p, "{\"trace_id\"")); p++) {
		char *nl = strchr(p, '\n');

		CHECK(nl && nl[-1] == '}');
		got++;
	}
	CHECK_EQ_INT(got, st.exported);
	{
		char want[64];

		snprintf(want, sizeof(want), "\"client_dropped\":%llu}",
			 (unsigned long long)st.dropped);
		CHECK(strstr(buf, want) != NULL);
	}
	close(fd);
	e->ops->destroy(e);
	free(buf);
}

TEST(live_socket_is_not_taken_stale_one_is)
{
	int err, fd;
	struct exporter *a = socket_exporter__new(path, 0, &err), *b;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	CHECK(a != NULL);
	b = socket_exporter__new(path, 0, &err);
	CHECK(b == NULL);
	CHECK_EQ_INT(err, -EADDRINUSE);
	a->ops->destroy(a);
	/* A socket file nobody listens on (an agent that was killed) is replaced. */
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ_INT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	CHECK_EQ_INT(access(path, F_OK), 0);
	b = socket_exporter__new(path, 0, &err);
	CHECK(b != NULL);
	if (b) {
		struct stat stt;

		CHECK_EQ_INT(stat(path, &stt), 0);
		CHECK_EQ_INT(stt.st_mode & 0777, 0600);
		b->ops->destroy(b);
	}
	b = socket_exporter__new("/nonexistent-dir/x.sock", 0, &err);
	CHECK(b == NULL);
	CHECK_EQ_INT(err, -ENOENT);
}

int main(void)
{
	snprintf(path, sizeof(path), "/tmp/tt-socket-test-%d.sock", getpid());
	unlink(path);
	RUN(spans_arrive_as_json_lines);
	RUN(slow_reader_loses_counted_lines);
	RUN(live_socket_is_not_taken_stale_one_is);
	unlink(path);
	TT_DONE();
}
