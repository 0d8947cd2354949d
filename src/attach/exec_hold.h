/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Holding a just-exec'd process while its executable is analysed. A single-file agent never
 * seen on this host (Claude Code, Codex, a stripped Go or Rust service) needs its TLS entry
 * points found by code shape, 0.1-1 s of work, and such agents make their first call within
 * about that time after exec: without a hold, those calls go unseen.
 *
 * The hold is a ptrace interrupt (PTRACE_SEIZE + PTRACE_INTERRUPT on every thread), not
 * SIGSTOP: a ptrace-stop is invisible to the process's parent (no job-control "Stopped", no
 * waitpid report) and to the process itself, and it ends when tokentap detaches or exits. Signals
 * that arrive meanwhile are delivered at the detach. Only processes whose executable goes to
 * the code-shape worker are held (an unknown file of at least 4 MB without TLS symbols: once per
 * binary per host, the verdict is cached), and never longer than the hold bound. A process
 * already traced (a debugger, strace) or one ptrace may not touch is left running, and counted.
 *
 * All calls must come from one thread (ptrace binds a tracee to the tracing thread).
 */
#ifndef TOKENTAP_ATTACH_EXEC_HOLD_H
#define TOKENTAP_ATTACH_EXEC_HOLD_H

#include <stdbool.h>
#include <stdint.h>

#define EXEC_HOLD_MAX 64	 /* processes held at once; more are left running (counted) */
#define EXEC_HOLD_THREADS 64	 /* threads of one process seized (an exec'd process has one) */
#define EXEC_HOLD_DEFAULT_MS 3000

struct held_proc {
	uint32_t pid;
	uint32_t ntids;
	int32_t tids[EXEC_HOLD_THREADS];
	char *path; /* the file whose analysis releases it */
	uint64_t since_ns, deadline_ns;
};

struct exec_hold {
	uint32_t max_ms; /* 0: holding is off */
	struct held_proc procs[EXEC_HOLD_MAX];
	uint32_t n;
	bool verbose;
	/* stats */
	uint64_t held, released, timeouts, failures;
	uint64_t last_ns, max_ns; /* how long the latest and the longest hold lasted */
};

/* Holds pid until path's analysis ends (exec_hold__release_path) or max_ms pass. 0 or -errno. */
int exec_hold__hold(struct exec_hold *h, uint32_t pid, const char *path, uint64_t now_ns);
/* Lets every process waiting for path go on. */
void exec_hold__release_path(struct exec_hold *h, const char *path, uint64_t now_ns);
/* Lets processes held past their deadline go on. */
void exec_hold__expire(struct exec_hold *h, uint64_t now_ns);
/* When the next hold reaches its bound (UINT64_MAX: none held). */
uint64_t exec_hold__next_deadline(const struct exec_hold *h);
/* A held process exited: forget it (the kernel ended the trace). */
void exec_hold__forget(struct exec_hold *h, uint32_t pid);
void exec_hold__release_all(struct exec_hold *h, uint64_t now_ns);

#endif
