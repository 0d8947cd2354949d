// SPDX-License-Identifier: Apache-2.0
/*
 * top/feed: the lines `tokentap top` reads. They come from an agent's control socket, the very
 * span lines it exports; --standalone starts a private agent for this view alone and reads its
 * socket the same way, so both modes show numbers computed from the same lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "top/top.h"

#define FEED_LINE_MAX (1u << 20)
#define FEED_RETRY_NS 1000000000ull

int feed__init(struct feed *f)
{
	*f = (struct feed){ .fd = -1, .buf = malloc(FEED_LINE_MAX) };
	return f->buf ? 0 : -ENOMEM;
}

int feed__connect(struct feed *f, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (path != f->path)
		snprintf(f->path, sizeof(f->path), "%s", path);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(f->error, sizeof(f->error), "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		snprintf(f->error, sizeof(f->error), "cannot connect to %s: %s", path, strerror(-err));
		close(fd);
		return err;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	f->fd = fd;
	f->len = 0;
	f->skipping = false;
	f->error[0] = 0;
	return 0;
}

static void feed__line(struct feed *f, const char *line, size_t n, struct top_agg *agg,
		       struct top_health *h)
{
	struct top_call c;
	int kind = top_line__parse(line, n, &c, h);

	f->lines++;
	if (kind == TOP_LINE_SPAN)
		top_agg__add(agg, &c);
	else if (kind < 0)
		f->bad_lines++;
}

/* Splits what was read into lines; a partial line waits in f->buf for the rest. */
static void feed__split(struct feed *f, const char *p, size_t n, struct top_agg *agg,
			struct top_health *h)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;

		if (!f->skipping && f->len + k > FEED_LINE_MAX) {
			f->skipping = true; /* counted once, when its end arrives */
			f->len = 0;
		}
		if (!f->skipping) {
			memcpy(f->buf + f->len, p, k);
			f->len += k;
		}
		if (!nl)
			return;
		if (f->skipping)
			f->bad_lines++;
		else
			feed__line(f, f->buf, f->len, agg, h);
		f->skipping = false;
		f->len = 0;
		p += k + 1;
		n -= k + 1;
	}
}

static void feed__disconnect(struct feed *f, const char *why)
{
	close(f->fd);
	f->fd = -1;
	snprintf(f->error, sizeof(f->error), "lost %s: %s; retrying", f->path, why);
}

static void feed__reap(struct feed *f)
{
	int st;

	if (f->child > 0 && !f->child_exited && waitpid(f->child, &st, WNOHANG) == f->child) {
		f->child_exited = true;
		f->child_status = st;
	}
}

void feed__pump(struct feed *f, struct top_agg *agg, struct top_health *h, uint64_t now_mono_ns)
{
	char chunk[65536];
	ssize_t r;

	feed__reap(f);
	if (f->fd < 0) {
		if (now_mono_ns < f->next_try_ns)
			return;
		f->next_try_ns = now_mono_ns + FEED_RETRY_NS;
		if (feed__connect(f, f->path))
			return;
	}
	/* Bounded per pass so keys stay responsive under a flood of lines. */
	for (int i = 0; i < 64; i++) {
		r = read(f->fd, chunk, sizeof(chunk));
		if (r > 0) {
			feed__split(f, chunk, (size_t)r, agg, h);
			continue;
		}
		if (r == 0)
			feed__disconnect(f, "the agent closed the socket");
		else if (errno != EAGAIN && errno != EINTR)
			feed__disconnect(f, strerror(errno));
		return;
	}
}

/* ---- --standalone ------------------------------------------------------------------------ */

static void child__exec(const char *sock, const char *log, char *const *extra, int n_extra)
{
	char exe[4096];
	char *argv[64] = { exe, "--format", "json", "--control-socket", (char *)sock };
	int argc = 5, fd;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		_exit(127);
	exe[n] = 0;
	for (int i = 0; i < n_extra && argc < 63; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	/* The agent must not outlive the view that started it. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	fd = open("/dev/null", O_RDWR);
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0)
		dup2(fd, STDERR_FILENO);
	execv(exe, argv);
	_exit(127);
}

static void feed__print_agent_log(const struct feed *f)
{
	char path[128], line[512];
	FILE *in;

	snprintf(path, sizeof(path), "%s/agent.log", f->dir);
	in = fopen(path, "r");
	if (!in)
		return;
	while (fgets(line, sizeof(line), in))
		fprintf(stderr, "  agent: %s", line);
	fclose(in);
}

int feed__start_agent(struct feed *f, char *const *extra, int n_extra, int timeout_s)
{
	char sock[128], log[128];
	struct timespec pause = { .tv_nsec = 100 * 1000000 };

	snprintf(f->dir, sizeof(f->dir), "/tmp/tokentap-top.XXXXXX");
	if (!mkdtemp(f->dir))
		return -errno;
	snprintf(sock, sizeof(sock), "%s/ctl.sock", f->dir);
	snprintf(log, sizeof(log), "%s/agent.log", f->dir);
	snprintf(f->path, sizeof(f->path), "%s", sock);
	f->child = fork();
	if (f->child < 0)
		return -errno;
	if (f->child == 0)
		child__exec(sock, log, extra, n_extra);
	fprintf(stderr, "tokentap top: starting the capture agent...\n");
	for (int i = 0; i < timeout_s * 10; i++) {
		feed__reap(f);
		if (f->child_exited)
			break;
		if (!feed__connect(f, sock))
			return 0;
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "tokentap top: the capture agent %s:\n",
		f->child_exited ? "exited" : "did not open its socket in time");
	feed__print_agent_log(f);
	return -ECHILD;
}

static void feed__stop_agent(struct feed *f)
{
	struct timespec pause = { .tv_nsec = 50 * 1000000 };
	char path[128];

	/* Its output goes nowhere, so there is nothing to wait for it to flush: a short grace,
	 * then SIGKILL (the kernel detaches the probes of a dead process by itself). */
	kill(f->child, SIGINT);
	for (int i = 0; i < 40 && !f->child_exited; i++) {
		feed__reap(f);
		if (!f->child_exited)
			nanosleep(&pause, NULL);
	}
	if (!f->child_exited) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
	}
	snprintf(path, sizeof(path), "%s/agent.log", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ctl.sock", f->dir);
	unlink(path);
	rmdir(f->dir);
}

void feed__close(struct feed *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->child > 0)
		feed__stop_agent(f);
	else if (f->dir[0])
		rmdir(f->dir);
	free(f->buf);
	f->buf = NULL;
}
