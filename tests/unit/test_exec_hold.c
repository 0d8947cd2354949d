// SPDX-License-Identifier: Apache-2.0
/*
 * attach/exec_hold.c on real processes: a target (a grandchild, so this test is its tracer but
 * not its parent, as tokentap is) ticks a byte into a pipe every millisecond from several threads.
 * Held, no tick may arrive and every thread is in a ptrace-stop; released, ticks resume; a signal
 * sent while held is delivered after the release; the bound ends a hold; a process traced by
 * someone else is left running; the target's exit while held is reaped. Needs CAP_SYS_PTRACE or
 * Yama scope <= 1 (root here); skipped otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tt_test.h"

#include "attach/exec_hold.h"

static int tick_fd = -1;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void *ticker(void *arg)
{
	char c = (char)(long)arg;

	for (;;) {
		if (write(tick_fd, &c, 1) < 0)
			_exit(3);
		sleep_ms(1);
	}
	return NULL;
}

static void on_usr1(int sig)
{
	char c = 'S';

	(void)sig;
	if (write(tick_fd, &c, 1) < 0)
		_exit(4);
}

/* The target: three ticking threads; 'S' on SIGUSR1. */
static void target__run(int fd)
{
	pthread_t t;

	tick_fd = fd;
	signal(SIGUSR1, on_usr1);
	pthread_create(&t, NULL, ticker, (void *)'a');
	pthread_create(&t, NULL, ticker, (void *)'b');
	ticker((void *)'m');
}

struct target {
	pid_t middle, pid;
	int ticks; /* read end, non-blocking */
	int status_fd; /* the middle process reports the target's wait status here */
};

/* Forks a middle process that forks the target and waits for it. */
static int target__start(struct target *t)
{
	int ticks[2], pidp[2], st[2];

	if (pipe(ticks) || pipe(pidp) || pipe(st))
		return -1;
	t->middle = fork();
	if (t->middle == 0) {
		pid_t c = fork();
		int status = 0;

		if (c == 0) {
			close(ticks[0]);
			target__run(ticks[1]);
		}
		if (write(pidp[1], &c, sizeof(c)) != sizeof(c))
			_exit(1);
		waitpid(c, &status, 0);
		if (write(st[1], &status, sizeof(status)) != sizeof(status))
			_exit(1);
		_exit(0);
	}
	close(ticks[1]);
	close(pidp[1]);
	close(st[1]);
	if (read(pidp[0], &t->pid, sizeof(t->pid)) != sizeof(t->pid))
		return -1;
	close(pidp[0]);
	fcntl(ticks[0], F_SETFL, O_NONBLOCK);
	t->ticks = ticks[0];
	t->status_fd = st[0];
	sleep_ms(20); /* its threads are up */
	return 0;
}

static void target__stop(struct target *t)
{
	int status;

	kill(t->pid, SIGKILL);
	waitpid(t->middle, &status, 0);
	close(t->ticks);
	close(t->status_fd);
}

/* Bytes the target wrote since the last call (up to 4096), copied into out if given. */
static int ticks__drain(struct target *t, char *out, size_t cap)
{
	char buf[4096];
	ssize_t n;
	int total = 0;

	while ((n = read(t->ticks, buf, sizeof(buf))) > 0) {
		if (out && (size_t)total < cap)
			memcpy(out + total, buf, (size_t)n < cap - total ? (size_t)n : cap - total);
		total += (int)n;
	}
	return total;
}

/* Every thread of pid in state 't' (tracing stop). */
static bool all_traced(pid_t pid)
{
	char cmd[96], line[512];
	int n = 0, stopped = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "cat /proc/%d/task/*/stat 2>/dev/null", pid);
	p = popen(cmd, "r");

	if (!p)
		return false;
	while (fgets(line, sizeof(line), p)) {
		char *rp = strrchr(line, ')');

		n++;
		if (rp && rp[1] == ' ' && rp[2] == 't')
			stopped++;
	}
	pclose(p);
	return n > 0 && stopped == n;
}

static bool can_trace(void)
{
	pid_t c = fork();
	int st, ok;

	if (c == 0) {
		pause();
		_exit(0);
	}
	ok = ptrace(PTRACE_SEIZE, c, NULL, NULL) == 0;
	if (ok)
		ptrace(PTRACE_DETACH, c, NULL, NULL);
	kill(c, SIGKILL);
	waitpid(c, &st, 0);
	return ok;
}

TEST(held_target_stops_and_resumes)
{
	struct exec_hold h = {.max_ms = 2000};
	struct target t;

	CHECK_EQ_INT(target__start(&t), 0);
	CHECK(ticks__drain(&t, NULL, 0) > 0);
	CHECK_EQ_INT(exec_hold__hold(&h, (uint32_t)t.pid, "/agent", now_ns()), 0);
	CHECK_EQ_INT(h.n, 1);
	CHECK_EQ_INT(h.procs[0].ntids, 3);
	sleep_ms(5);
	ticks__drain(&t, NULL, 0); /* a tick written just before the stop */
	sleep_ms(50);
	CHECK_EQ_INT(ticks__drain(&t, NULL, 0), 0);
	CHECK(all_traced(t.pid));
	exec_hold__release_path(&h, "/other", now_ns());
	CHECK_EQ_INT(h.n, 1);
	exec_hold__release_path(&h, "/agent", now_ns());
	CHECK_EQ_INT(h.n, 0);
	CHECK_EQ_INT(h.released, 1);
	sleep_ms(30);
	CHECK(ticks__drain(&t, NULL, 0) > 0);
	CHECK(!all_traced(t.pid));
	CHECK(h.max_ns >= 50000000ULL);
	target__stop(&t);
}

TEST(signal_while_held_is_delivered_after)
{
	struct exec_hold h = {.max_ms = 2000};
	char got[4096];
	struct target t;
	int n, i, s = 0;

	CHECK_EQ_INT(target__start(&t), 0);
	CHECK_EQ_INT(exec_hold__hold(&h, (uint32_t)t.pid, "/agent", now_ns()), 0);
	sleep_ms(5);
	ticks__drain(&t, NULL, 0);
	kill(t.pid, SIGUSR1);
	sleep_ms(30);
	CHECK_EQ_INT(ticks__drain(&t, NULL, 0), 0); /* not even the handler ran */
	exec_hold__release_all(&h, now_ns());
	sleep_ms(30);
	n = ticks__drain(&t, got, sizeof(got));
	for (i = 0; i < n && i < (int)sizeof(got); i++)
		s += got[i] == 'S';
	CHECK_EQ_INT(s, 1);
	target__stop(&t);
}

TEST(bound_ends_the_hold)
{
	struct exec_hold h = {.max_ms = 40};
	struct target t;
	uint64_t t0 = now_ns(), next;

	CHECK_EQ_INT(target__start(&t), 0);
	CHECK_EQ_INT(exec_hold__hold(&h, (uint32_t)t.pid, "/slow", t0), 0);
	exec_hold__expire(&h, t0 + 10000000ULL);
	next = exec_hold__next_deadline(&h);
	CHECK_EQ_INT(h.n, 1);
	CHECK(next == t0 + 40000000ULL);
	exec_hold__expire(&h, t0 + 41000000ULL);
	CHECK(exec_hold__next_deadline(&h) == UINT64_MAX);
	CHECK_EQ_INT(h.n, 0);
	CHECK_EQ_INT(h.timeouts, 1);
	sleep_ms(20);
	ticks__drain(&t, NULL, 0);
	sleep_ms(20);
	CHECK(ticks__drain(&t, NULL, 0) > 0);
	target__stop(&t);
}

TEST(traced_by_someone_else_runs_on)
{
	struct exec_hold h = {.max_ms = 2000};
	struct target t;
	int sync[2], st;
	pid_t other;
	char c;

	CHECK_EQ_INT(target__start(&t), 0);
	CHECK_EQ_INT(pipe(sync), 0);
	other = fork();
	if (other == 0) { /* another tracer (a debugger) of the target's main thread */
		c = ptrace(PTRACE_SEIZE, t.pid, NULL, NULL) ? 'n' : 'y';
		if (write(sync[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	CHECK_EQ_INT((int)read(sync[0], &c, 1), 1);
	CHECK(c == 'y');
	CHECK(exec_hold__hold(&h, (uint32_t)t.pid, "/agent", now_ns()) < 0);
	CHECK_EQ_INT(h.n, 0);
	CHECK_EQ_INT(h.failures, 1);
	ticks__drain(&t, NULL, 0);
	sleep_ms(20);
	CHECK(ticks__drain(&t, NULL, 0) > 0); /* nothing of it stayed stopped */
	kill(other, SIGKILL);
	waitpid(other, &st, 0);
	close(sync[0]);
	close(sync[1]);
	target__stop(&t);
}

TEST(exit_while_held_is_reaped)
{
	struct exec_hold h = {.max_ms = 2000};
	struct target t;
	int status = 0;

	CHECK_EQ_INT(target__start(&t), 0);
	CHECK_EQ_INT(exec_hold__hold(&h, (uint32_t)t.pid, "/agent", now_ns()), 0);
	kill(t.pid, SIGKILL);
	sleep_ms(20);
	exec_hold__forget(&h, (uint32_t)t.pid);
	CHECK_EQ_INT(h.n, 0);
	/* Its parent learns of the death: the trace did not keep the zombie from it. */
	CHECK_EQ_INT((int)read(t.status_fd, &status, sizeof(status)), (int)sizeof(status));
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	waitpid(t.middle, &status, 0);
	close(t.ticks);
	close(t.status_fd);
}

TEST(off_and_duplicates)
{
	struct exec_hold off = {0}, h = {.max_ms = 2000};
	struct target t;

	CHECK_EQ_INT(exec_hold__hold(&off, 1, "/x", now_ns()), -EOPNOTSUPP);
	CHECK_EQ_INT(target__start(&t), 0);
	CHECK_EQ_INT(exec_hold__hold(&h, (uint32_t)t.pid, "/a", now_ns()), 0);
	CHECK_EQ_INT(exec_hold__hold(&h, (uint32_t)t.pid, "/a", now_ns()), 0);
	CHECK_EQ_INT(h.n, 1);
	CHECK_EQ_INT(h.held, 1);
	CHECK(exec_hold__hold(&h, 999999999u, "/a", now_ns()) < 0); /* no such process */
	CHECK_EQ_INT(h.n, 1);
	exec_hold__release_all(&h, now_ns());
	CHECK_EQ_INT(h.n, 0);
	target__stop(&t);
}

int main(void)
{
	/* Where tokentap runs (root, CI: TOKENTAP_REQUIRE_BPF) ptrace must work: no skipping. */
	if (!can_trace()) {
		printf("unit test_exec_hold: ptrace not permitted here%s\n",
		       getenv("TOKENTAP_REQUIRE_BPF") ? ": FAIL (TOKENTAP_REQUIRE_BPF)" : ", skipped");
		return getenv("TOKENTAP_REQUIRE_BPF") ? 1 : 0;
	}
	RUN(held_target_stops_and_resumes);
	RUN(signal_while_held_is_delivered_after);
	RUN(bound_ends_the_hold);
	RUN(traced_by_someone_else_runs_on);
	RUN(exit_while_held_is_reaped);
	RUN(off_and_duplicates);
	TT_DONE();
}
