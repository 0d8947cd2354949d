// SPDX-License-Identifier: Apache-2.0
/*
 * attach/: users per attached file, detaching after the last user, the bound on attached files,
 * and the DT_NEEDED walk at exec through a process's root. No BPF: with no programs given,
 * attaching a file places no probe, and everything else (discovery, verdicts, users, sweeps)
 * runs as it does in tokentap. Processes are real: forked children that map a private copy of
 * libssl (its own inode, like a container's), or chroot into a folder holding one.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tt_test.h"
#include "attach/attach.h"
#include "attach/elf_needed.h"

static char tmp[] = "/tmp/tt-attach-XXXXXX";
static char host_ssl[512], copy_ssl[512];

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The libssl this test binary maps (it links -lssl). */
static bool find_host_ssl(void)
{
	char line[1024];
	FILE *f = fopen("/proc/self/maps", "r");
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '/');

		if (p && strstr(p, "/libssl.so.3") && strstr(line, " r-xp ")) {
			p[strcspn(p, "\n")] = '\0';
			snprintf(host_ssl, sizeof(host_ssl), "%s", p);
			found = true;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	ssize_t n;

	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n)
			break;
	}
	close(in);
	close(out);
	return in >= 0 && out >= 0 ? 0 : -1;
}

struct child {
	pid_t pid;
	int go; /* write end: closing it lets the child exit */
};

/* A child that maps `lib` executable (as its loader would) or, with root set, chroots into
 * root first and maps nothing. Returns once the child is ready. */
static struct child child__start(const char *lib, const char *root)
{
	int ready[2], go[2];
	struct child c = {-1, -1};
	char b;

	if (pipe(ready) || pipe(go))
		return c;
	c.pid = fork();
	if (c.pid == 0) {
		int fd = lib ? open(lib, O_RDONLY) : -1;

		if (fd >= 0)
			mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
		if (root && chroot(root))
			_exit(2);
		close(ready[0]);
		close(go[1]);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		while (read(go[0], &b, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	c.go = go[1];
	if (read(ready[0], &b, 1) != 1)
		c.pid = -1;
	close(ready[0]);
	return c;
}

/* A signal, not the pipe's end: a child forked later holds the write ends of earlier ones. */
static void child__stop(struct child *c)
{
	close(c->go);
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
}

static bool attached(const struct attach *a, const char *needle)
{
	const char *p;

	for (uint32_t i = 0; (p = attach__file_path(a, i, NULL)) != NULL; i++) {
		if (strstr(p, needle))
			return true;
	}
	return false;
}

/* Runs the event loop's follow-up until the sweep detached something or time is up. */
static void wait_sweep(struct attach *a, uint64_t detaches_before, int max_ms)
{
	struct attach_stats st;
	uint64_t until = mono_ns() + (uint64_t)max_ms * 1000000ULL;

	do {
		usleep(100000);
		attach__run_pending(a);
		attach__stats(a, &st);
	} while (st.detaches == detaches_before && mono_ns() < until);
}

TEST(users_and_detach_after_the_last_user)
{
	struct attach_progs none = {0};
	struct attach *a = attach__new(&none, false);
	struct attach_stats st;
	struct child c1, c2;
	uint32_t host;

	attach__set_pin_host(a, false); /* the copy is a host path here */
	/* What this test maps itself (libssl, and libgnutls through libcurl): the host's files. */
	host = (uint32_t)attach__scan_pid(a, (uint32_t)getpid());
	CHECK(host >= 1);
	attach__on_exit(a, (uint32_t)getpid()); /* forget it as a user: the sweep must find it */
	c1 = child__start(copy_ssl, NULL);
	c2 = child__start(copy_ssl, NULL);
	CHECK(c1.pid > 0 && c2.pid > 0);
	CHECK_EQ_INT(attach__scan_pid(a, (uint32_t)c1.pid), 1); /* the copy */
	CHECK_EQ_INT(attach__scan_pid(a, (uint32_t)c2.pid), 0); /* known: a user only */
	CHECK_EQ_INT(attach__scan_pid(a, (uint32_t)c2.pid), 0); /* a rescan counts nobody twice */
	attach__stats(a, &st);
	CHECK_EQ_INT(st.files, host + 1);
	CHECK_EQ_INT(st.users, 2 * (host + 1));
	CHECK_EQ_INT(st.processes, 2);
	CHECK(attached(a, copy_ssl));
	/* One user left: the copy stays. */
	child__stop(&c1);
	attach__on_exit(a, (uint32_t)c1.pid);
	attach__stats(a, &st);
	CHECK_EQ_INT(st.users, host + 1);
	wait_sweep(a, 0, 1500);
	attach__stats(a, &st);
	CHECK_EQ_INT(st.detaches, 0);
	/* The last user gone: detached after the grace period and a rescan of every process.
	 * The host libssl had no user counted either, but the rescan finds this test mapping it. */
	child__stop(&c2);
	attach__on_exit(a, (uint32_t)c2.pid);
	wait_sweep(a, 0, 6000);
	attach__stats(a, &st);
	CHECK_EQ_INT(st.detaches, 1);
	/* (the rescan may have attached files of other processes on this machine) */
	CHECK(st.files >= host);
	CHECK(!attached(a, copy_ssl));
	CHECK(attached(a, host_ssl));
	CHECK(st.sweeps >= 1);
	/* A new user of the detached file: attached again. */
	c1 = child__start(copy_ssl, NULL);
	CHECK_EQ_INT(attach__scan_pid(a, (uint32_t)c1.pid), 1);
	CHECK(attached(a, copy_ssl));
	child__stop(&c1);
	attach__free(a);
}

TEST(bound_refuses_and_counts_then_retries)
{
	struct attach_progs none = {0};
	struct attach *a = attach__new(&none, false);
	struct attach_stats st;
	struct child c = child__start(copy_ssl, NULL);
	uint32_t host;

	CHECK(c.pid > 0);
	host = (uint32_t)attach__scan_pid(a, (uint32_t)getpid());
	attach__set_max_files(a, host);
	CHECK_EQ_INT(attach__scan_pid(a, (uint32_t)c.pid), 0);
	attach__stats(a, &st);
	CHECK_EQ_INT(st.files, host);
	CHECK_EQ_INT(st.max_files, host);
	CHECK_EQ_INT(st.refusals, 1);
	/* Still full: not counted again. */
	CHECK_EQ_INT(attach__scan_pid(a, (uint32_t)c.pid), 0);
	attach__stats(a, &st);
	CHECK_EQ_INT(st.refusals, 1);
	/* Room again: the refused file is examined and attached at the next scan. */
	attach__set_max_files(a, 0);
	CHECK_EQ_INT(attach__scan_pid(a, (uint32_t)c.pid), 1);
	attach__stats(a, &st);
	CHECK_EQ_INT(st.files, host + 1);
	CHECK_EQ_INT(st.max_files, ATTACH_MAX_FILES_DEFAULT);
	child__stop(&c);
	attach__free(a);
}

/* By default a file of tokentap's own mount namespace stays attached without users. */
TEST(host_files_stay_attached_by_default)
{
	struct attach_progs none = {0};
	struct attach *a = attach__new(&none, false);
	struct attach_stats st;
	struct child c = child__start(copy_ssl, NULL);

	CHECK(c.pid > 0);
	CHECK(attach__scan_pid(a, (uint32_t)c.pid) >= 1);
	child__stop(&c);
	attach__on_exit(a, (uint32_t)c.pid);
	wait_sweep(a, 0, 2500);
	attach__stats(a, &st);
	CHECK_EQ_INT(st.detaches, 0);
	CHECK(st.pinned >= 1);
	CHECK(attached(a, copy_ssl));
	attach__free(a);
}

TEST(needed_names_of_this_binary)
{
	struct elf_needed *n = malloc(sizeof(*n));
	bool ssl = false;

	CHECK(elf_needed__read("/proc/self/exe", n) > 0);
	for (uint32_t i = 0; i < n->n; i++)
		ssl |= !strcmp(n->names[i], "libssl.so.3");
	CHECK(ssl);
	CHECK(elf_needed__read(copy_ssl, n) > 0); /* libssl needs libcrypto */
	CHECK_EQ_STR(n->names[0][0] ? "named" : "", "named");
	CHECK_EQ_INT(elf_needed__read("/proc/self/cmdline", n), 0); /* not ELF */
	CHECK(elf_needed__read("/nonexistent/x", n) < 0);
	free(n);
}

/*
 * At exec, the libraries the executable needs are looked up inside the process's root and
 * attached before anything maps them: a chroot'ed child that mapped nothing gets the copy of
 * libssl in its root attached, counted as found through DT_NEEDED, with the window measured.
 */
TEST(exec_attaches_needed_libraries_inside_the_root)
{
	struct attach_progs none = {0};
	struct attach *a = attach__new(&none, false);
	char root[600], dir[700], lib[800];
	struct attach_stats st;
	struct child c;

	if (geteuid() != 0) {
		fprintf(stderr, "  (skipped: chroot needs root)\n");
		attach__free(a);
		return;
	}
	snprintf(root, sizeof(root), "%s/root", tmp);
	mkdir(root, 0755);
	snprintf(dir, sizeof(dir), "%s/lib", root);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/lib/x86_64-linux-gnu", root);
	mkdir(dir, 0755);
	snprintf(lib, sizeof(lib), "%s/libssl.so.3", dir);
	CHECK(!copy_file(host_ssl, lib));
	c = child__start(NULL, root);
	CHECK(c.pid > 0);
	attach__on_exec_at(a, (uint32_t)c.pid, mono_ns() - 2000000);
	attach__stats(a, &st);
	CHECK(attached(a, "/root/lib/x86_64-linux-gnu/libssl.so.3"));
	CHECK_EQ_INT(st.needed_attaches, 1);
	CHECK(st.exec_attaches >= 1);
	CHECK(st.exec_window_max_ns >= 2000000);
	CHECK(st.exec_window_last_ns >= 2000000);
	CHECK(st.exec_window_avg_ns >= 2000000);
	CHECK_EQ_INT(st.pending, 1);
	/* The child counts as a user of what it is about to map; its exit releases it. */
	CHECK(st.users >= 1);
	child__stop(&c);
	attach__on_exit(a, (uint32_t)c.pid);
	attach__stats(a, &st);
	CHECK_EQ_INT(st.pending, 0);
	CHECK_EQ_INT(st.processes, 0);
	attach__free(a);
}

int main(void)
{
	char cmd[600];
	int rc;

	if (!mkdtemp(tmp) || !find_host_ssl()) {
		fprintf(stderr, "test_attach: no temporary directory or no libssl.so.3 mapped\n");
		return 1;
	}
	snprintf(copy_ssl, sizeof(copy_ssl), "%s/libssl.so.3", tmp);
	if (copy_file(host_ssl, copy_ssl)) {
		fprintf(stderr, "test_attach: cannot copy %s\n", host_ssl);
		return 1;
	}
	RUN(users_and_detach_after_the_last_user);
	RUN(bound_refuses_and_counts_then_retries);
	RUN(host_files_stay_attached_by_default);
	RUN(needed_names_of_this_binary);
	RUN(exec_attaches_needed_libraries_inside_the_root);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	rc = system(cmd);
	(void)rc;
	TT_DONE();
}
