// SPDX-License-Identifier: Apache-2.0
/*
 * Holding a just-exec'd process with ptrace interrupts while its executable is analysed: see
 * exec_hold.h for why ptrace and not SIGSTOP.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>

#include "attach/exec_hold.h"

#define STOP_WAIT_NS (20ULL * 1000 * 1000) /* a thread not stopped by then is let go */

static void sleep_us(long us)
{
	struct timespec ts = {0, us * 1000};

	nanosleep(&ts, NULL);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Takes the statuses the tracee reported. A signal-delivery stop (not our interrupt, whose
 * status carries PTRACE_EVENT_STOP) holds a signal meant for the process: kept for the detach.
 * Returns 1 when the thread is in a ptrace-stop, 0 not yet, -1 gone.
 */
static int tid__drain(int32_t tid, int *sig)
{
	int st, stopped = 0;
	pid_t r;

	while ((r = waitpid(tid, &st, __WALL | WNOHANG)) == tid) {
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return -1;
		if (!WIFSTOPPED(st))
			continue;
		stopped = 1;
		if ((st >> 16) != PTRACE_EVENT_STOP && WSTOPSIG(st) != SIGTRAP)
			*sig = WSTOPSIG(st);
	}
	if (r < 0 && errno == ECHILD)
		return -1;
	return stopped;
}

/* Seizes and interrupts one thread and waits (briefly) for it to stop. */
static int tid__hold(int32_t tid)
{
	uint64_t until;
	int sig = 0, r;

	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL))
		return -errno;
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL)) {
		r = -errno;
		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		return r;
	}
	for (until = mono_ns() + STOP_WAIT_NS; mono_ns() < until; sleep_us(50)) {
		r = tid__drain(tid, &sig);
		if (r)
			return r > 0 ? 0 : -ESRCH;
	}
	return 0; /* the interrupt stays pending: the thread stops at its next return to user */
}

/* Detaches one thread, delivering a signal it received while held. */
static void tid__release(int32_t tid)
{
	int sig = 0, i;

	for (i = 0; i < 200; i++) {
		if (tid__drain(tid, &sig) < 0)
			return;
		if (!ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)sig))
			return;
		if (errno != ESRCH)
			return;
		sleep_us(100); /* not in a ptrace-stop yet: the pending interrupt will stop it */
	}
}

static void proc__release(struct held_proc *p)
{
	uint32_t i;

	/*
	 * The main thread (seized first) goes last: if the process died meanwhile, its leader's
	 * exit is reported to us only once every other thread's was reaped.
	 */
	for (i = p->ntids; i-- > 0;)
		tid__release(p->tids[i]);
	free(p->path);
	p->path = NULL;
}

/* Every thread of pid, seized and interrupted; new threads cannot appear once all are held. */
static int proc__hold(struct held_proc *p)
{
	char dir[64];
	struct dirent *de;
	bool added = true;
	DIR *d;
	int err;

	/* The main thread first: traced already, or not ours to trace, and nothing is held. */
	err = tid__hold((int32_t)p->pid);
	if (err)
		return err;
	p->tids[p->ntids++] = (int32_t)p->pid;
	snprintf(dir, sizeof(dir), "/proc/%u/task", p->pid);
	while (added) {
		added = false;
		d = opendir(dir);
		if (!d)
			return -errno;
		while ((de = readdir(d)) && p->ntids < EXEC_HOLD_THREADS) {
			int32_t tid = (int32_t)strtol(de->d_name, NULL, 10);
			uint32_t i;

			if (tid <= 0)
				continue;
			for (i = 0; i < p->ntids && p->tids[i] != tid; i++)
				;
			if (i < p->ntids)
				continue;
			if (tid__hold(tid) == 0) {
				p->tids[p->ntids++] = tid;
				added = true;
			}
		}
		closedir(d);
	}
	return p->ntids ? 0 : -ESRCH;
}

int exec_hold__hold(struct exec_hold *h, uint32_t pid, const char *path, uint64_t now_ns)
{
	struct held_proc *p;
	uint32_t i;
	int err;

	if (!h->max_ms)
		return -EOPNOTSUPP;
	for (i = 0; i < h->n; i++) {
		if (h->procs[i].pid == pid)
			return 0;
	}
	if (h->n == EXEC_HOLD_MAX) {
		h->failures++;
		return -EBUSY;
	}
	p = &h->procs[h->n];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->path = strdup(path);
	p->since_ns = now_ns;
	p->deadline_ns = now_ns + (uint64_t)h->max_ms * 1000000ULL;
	err = p->path ? proc__hold(p) : -ENOMEM;
	if (err) {
		proc__release(p);
		h->failures++;
		if (h->verbose)
			fprintf(stderr, "tokentap: cannot hold pid %u for the analysis of %s: %s\n",
				pid, path, strerror(-err));
		return err;
	}
	h->n++;
	h->held++;
	if (h->verbose)
		fprintf(stderr, "tokentap: holding pid %u (%u threads) until %s is analysed\n", pid,
			p->ntids, path);
	return 0;
}

static void hold__end(struct exec_hold *h, uint32_t i, uint64_t now_ns, const char *why)
{
	struct held_proc *p = &h->procs[i];
	uint64_t took = now_ns > p->since_ns ? now_ns - p->since_ns : 0;

	proc__release(p);
	h->last_ns = took;
	if (took > h->max_ns)
		h->max_ns = took;
	if (h->verbose)
		fprintf(stderr, "tokentap: released pid %u after %.1f ms (%s)\n", p->pid,
			(double)took / 1e6, why);
	h->procs[i] = h->procs[--h->n];
}

void exec_hold__release_path(struct exec_hold *h, const char *path, uint64_t now_ns)
{
	uint32_t i = 0;

	while (i < h->n) {
		if (!strcmp(h->procs[i].path, path)) {
			h->released++;
			hold__end(h, i, now_ns, "analysed");
		} else {
			i++;
		}
	}
}

void exec_hold__expire(struct exec_hold *h, uint64_t now_ns)
{
	uint32_t i = 0;

	while (i < h->n) {
		if (h->procs[i].deadline_ns <= now_ns) {
			h->timeouts++;
			hold__end(h, i, now_ns, "hold bound reached");
		} else {
			i++;
		}
	}
}

uint64_t exec_hold__next_deadline(const struct exec_hold *h)
{
	uint64_t next = UINT64_MAX;
	uint32_t i;

	for (i = 0; i < h->n; i++) {
		if (h->procs[i].deadline_ns < next)
			next = h->procs[i].deadline_ns;
	}
	return next;
}

void exec_hold__forget(struct exec_hold *h, uint32_t pid)
{
	uint32_t i;

	for (i = 0; i < h->n; i++) {
		if (h->procs[i].pid == pid) {
			proc__release(&h->procs[i]); /* reaps the exit statuses the trace left */
			h->procs[i] = h->procs[--h->n];
			return;
		}
	}
}

void exec_hold__release_all(struct exec_hold *h, uint64_t now_ns)
{
	while (h->n)
		hold__end(h, h->n - 1, now_ns, "tokentap stopping");
}
