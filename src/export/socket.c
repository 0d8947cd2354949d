// SPDX-License-Identifier: Apache-2.0
/*
 * Control socket exporter: a local unix socket where every finished span is streamed as its
 * `--format json` line, plus a health line now and then, to any connected reader (tokentap top).
 * The views read the very lines the agent exports, so their numbers cannot disagree.
 *
 * The pipeline thread only renders a line and appends it to each client's bounded buffer; a
 * thread of its own accepts clients and writes. A client that reads too slowly loses lines
 * (counted per client and told to it in the health line); it never slows the pipeline down.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "export/export.h"

#define SOCK_MAX_CLIENTS 16
#define SOCK_DEFAULT_BUF (1u << 20)
#define SOCK_KERNEL_BUF (64 << 10)

struct sock_client {
	int fd;
	char *buf;	    /* pending bytes are buf[off..len) */
	size_t len, off;
	size_t pending_lines;
	uint64_t dropped;   /* lines this client lost because its buffer was full */
};

struct socket_exporter {
	struct exporter base;
	int listen_fd;
	int wake[2]; /* the pipeline thread pokes the writer thread through this pipe */
	char *path;
	size_t buf_max;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu; /* guards clients[], n_clients, stop and st */
	struct sock_client clients[SOCK_MAX_CLIENTS];
	int n_clients;
	bool stop;
	struct export_stats st;
};

static void sock__wake(struct socket_exporter *se)
{
	char c = 1;

	/* A full pipe already holds a wake-up: nothing is lost when this write fails. */
	if (write(se->wake[1], &c, 1) < 0)
		return;
}

/* Appends one line to a client's buffer, or counts it lost when it does not fit. */
static bool client__enqueue(struct sock_client *c, const char *line, size_t n, size_t max)
{
	if (c->len - c->off + n > max)
		return false;
	if (c->off && c->len + n > max) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	memcpy(c->buf + c->len, line, n);
	c->len += n;
	c->pending_lines++;
	return true;
}

static void socket__export(struct exporter *e, const struct span *s)
{
	struct socket_exporter *se = (struct socket_exporter *)e;
	char *line = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&line, &n);

	if (!f) {
		__atomic_add_fetch(&se->st.errors, 1, __ATOMIC_RELAXED);
		return;
	}
	jsonl__write_span(f, s);
	fputc('\n', f);
	if (fclose(f) != 0) {
		free(line);
		__atomic_add_fetch(&se->st.errors, 1, __ATOMIC_RELAXED);
		return;
	}
	pthread_mutex_lock(&se->mu);
	for (int i = 0; i < se->n_clients; i++) {
		if (client__enqueue(&se->clients[i], line, n, se->buf_max)) {
			se->st.exported++;
		} else {
			se->clients[i].dropped++;
			se->st.dropped++;
		}
	}
	pthread_mutex_unlock(&se->mu);
	free(line);
	sock__wake(se);
}

void socket_exporter__send_health(struct exporter *e, const struct agent_health *h)
{
	struct socket_exporter *se = (struct socket_exporter *)e;
	struct timespec ts;
	char line[512];

	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&se->mu);
	for (int i = 0; i < se->n_clients; i++) {
		struct sock_client *c = &se->clients[i];
		int n = snprintf(line, sizeof(line),
				 "{\"type\":\"stats\",\"time_unix_nano\":%llu,\"events_lost\":%llu,"
				 "\"lost_bytes\":%llu,\"parse_errors\":%llu,\"export_backlog\":%llu,"
				 "\"export_dropped\":%llu,\"spans\":%llu,\"client_dropped\":%llu}\n",
				 (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec,
				 (unsigned long long)h->events_lost, (unsigned long long)h->lost_bytes,
				 (unsigned long long)h->parse_errors,
				 (unsigned long long)h->export_backlog,
				 (unsigned long long)h->export_dropped, (unsigned long long)h->spans,
				 (unsigned long long)c->dropped);

		/* A health line that does not fit is simply skipped: the next one says it all. */
		client__enqueue(c, line, (size_t)n, se->buf_max);
	}
	pthread_mutex_unlock(&se->mu);
	sock__wake(se);
}

/* ---- the writer thread ------------------------------------------------------------------- */

static void clients__remove(struct socket_exporter *se, int i)
{
	struct sock_client *c = &se->clients[i];

	close(c->fd);
	free(c->buf);
	se->clients[i] = se->clients[--se->n_clients];
}

static void sock__accept(struct socket_exporter *se)
{
	int fd = accept4(se->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int sndbuf = SOCK_KERNEL_BUF;
	char *buf;

	if (fd < 0)
		return;
	/* The kernel's share of a slow reader's backlog is bounded too, not just ours. */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	buf = malloc(se->buf_max);
	if (!buf || se->n_clients == SOCK_MAX_CLIENTS) {
		free(buf);
		close(fd);
		return;
	}
	se->clients[se->n_clients++] = (struct sock_client){ .fd = fd, .buf = buf };
}

static size_t count_lines(const char *p, size_t n)
{
	size_t k = 0;

	for (const char *q = p; (q = memchr(q, '\n', n - (size_t)(q - p))); q++)
		k++;
	return k;
}

/* Writes what the client can take now; false when the client is gone. */
static bool client__drain(struct sock_client *c)
{
	while (c->off < c->len) {
		ssize_t w = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		c->pending_lines -= count_lines(c->buf + c->off, (size_t)w);
		c->off += (size_t)w;
	}
	c->off = c->len = 0;
	return true;
}

/* Readers send nothing meaningful: reading tells when they hang up. */
static bool client__alive(struct sock_client *c)
{
	char junk[256];
	ssize_t r;

	while ((r = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
		;
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

static int sock__build_pollfds(struct socket_exporter *se, struct pollfd *pf)
{
	int n = 0;

	pf[n++] = (struct pollfd){ .fd = se->listen_fd, .events = POLLIN };
	pf[n++] = (struct pollfd){ .fd = se->wake[0], .events = POLLIN };
	for (int i = 0; i < se->n_clients; i++) {
		struct sock_client *c = &se->clients[i];

		pf[n++] = (struct pollfd){ .fd = c->fd,
					   .events = POLLIN | (c->len > c->off ? POLLOUT : 0) };
	}
	return n;
}

static void sock__serve(struct socket_exporter *se, struct pollfd *pf, int n)
{
	char junk[64];

	if (pf[1].revents & POLLIN)
		while (read(se->wake[0], junk, sizeof(junk)) > 0)
			;
	/* Walk backwards: removing client i moves the last one into its slot. */
	for (int i = n - 3; i >= 0; i--) {
		struct sock_client *c = &se->clients[i];
		bool ok = true;

		if (pf[i + 2].revents & (POLLIN | POLLHUP | POLLERR))
			ok = client__alive(c);
		if (ok && c->len > c->off)
			ok = client__drain(c);
		if (!ok)
			clients__remove(se, i);
	}
	if (pf[0].revents & POLLIN)
		sock__accept(se);
}

static void *socket__thread(void *arg)
{
	struct socket_exporter *se = arg;
	struct pollfd pf[SOCK_MAX_CLIENTS + 2];

	for (;;) {
		int n;

		pthread_mutex_lock(&se->mu);
		if (se->stop) {
			pthread_mutex_unlock(&se->mu);
			return NULL;
		}
		n = sock__build_pollfds(se, pf);
		pthread_mutex_unlock(&se->mu);
		if (poll(pf, (nfds_t)n, 1000) < 0 && errno != EINTR)
			return NULL;
		pthread_mutex_lock(&se->mu);
		sock__serve(se, pf, n);
		pthread_mutex_unlock(&se->mu);
	}
}

/* ---- exporter ops ------------------------------------------------------------------------ */

static bool socket__idle(struct socket_exporter *se)
{
	bool idle = true;

	pthread_mutex_lock(&se->mu);
	for (int i = 0; i < se->n_clients; i++)
		idle = idle && se->clients[i].len == se->clients[i].off;
	pthread_mutex_unlock(&se->mu);
	return idle;
}

static void socket__flush(struct exporter *e, int deadline_ms)
{
	struct socket_exporter *se = (struct socket_exporter *)e;
	struct timespec pause = { .tv_nsec = 10 * 1000000 };

	for (int waited = 0; waited < deadline_ms && !socket__idle(se); waited += 10)
		nanosleep(&pause, NULL);
}

static void socket__stats(struct exporter *e, struct export_stats *st)
{
	struct socket_exporter *se = (struct socket_exporter *)e;

	pthread_mutex_lock(&se->mu);
	*st = se->st;
	st->queued = 0;
	for (int i = 0; i < se->n_clients; i++)
		st->queued += se->clients[i].pending_lines;
	pthread_mutex_unlock(&se->mu);
}

static void socket__destroy(struct exporter *e)
{
	struct socket_exporter *se = (struct socket_exporter *)e;

	if (se->thread_started) {
		pthread_mutex_lock(&se->mu);
		se->stop = true;
		pthread_mutex_unlock(&se->mu);
		sock__wake(se);
		pthread_join(se->thread, NULL);
	}
	while (se->n_clients)
		clients__remove(se, se->n_clients - 1);
	if (se->listen_fd >= 0) {
		close(se->listen_fd);
		unlink(se->path);
	}
	for (int i = 0; i < 2; i++)
		if (se->wake[i] >= 0)
			close(se->wake[i]);
	pthread_mutex_destroy(&se->mu);
	free(se->path);
	free(se);
}

static const struct exporter_ops socket_ops = {
	.name = "socket",
	.export = socket__export,
	.flush = socket__flush,
	.stats = socket__stats,
	.destroy = socket__destroy,
};

/* ---- setup ------------------------------------------------------------------------------- */

/* A socket file left by an agent that died is replaced; one a live agent listens on is not. */
static int sock__bind(int fd, const struct sockaddr_un *sa)
{
	int probe, err;

	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		return 0;
	if (errno != EADDRINUSE)
		return -errno;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	err = connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? -EADDRINUSE : 0;
	close(probe);
	if (err)
		return err;
	unlink(sa->sun_path);
	return bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? 0 : -errno;
}

static int socket__listen(struct socket_exporter *se, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	se->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (se->listen_fd < 0)
		return -errno;
	err = sock__bind(se->listen_fd, &sa);
	if (err) {
		close(se->listen_fd);
		se->listen_fd = -1;
		return err;
	}
	/* Spans name processes and models on this node: only its owner may read them. */
	chmod(path, 0600);
	return listen(se->listen_fd, 8) == 0 ? 0 : -errno;
}

struct exporter *socket_exporter__new(const char *path, size_t client_buf_bytes, int *err)
{
	struct socket_exporter *se = calloc(1, sizeof(*se));

	*err = -ENOMEM;
	if (!se)
		return NULL;
	se->base.ops = &socket_ops;
	se->listen_fd = se->wake[0] = se->wake[1] = -1;
	se->buf_max = client_buf_bytes ? client_buf_bytes : SOCK_DEFAULT_BUF;
	pthread_mutex_init(&se->mu, NULL);
	se->path = strdup(path);
	if (!se->path)
		goto fail;
	*err = socket__listen(se, path);
	if (*err)
		goto fail;
	if (pipe2(se->wake, O_NONBLOCK | O_CLOEXEC)) {
		*err = -errno;
		goto fail;
	}
	*err = -pthread_create(&se->thread, NULL, socket__thread, se);
	if (*err)
		goto fail;
	se->thread_started = true;
	return &se->base;
fail:
	socket__destroy(&se->base);
	return NULL;
}
