// SPDX-License-Identifier: Apache-2.0
/*
 * Capability checks and the drop after attach. Raw capget/capset/prctl rather than libcap:
 * the drop must also run inside a signal handler in every other thread, where only
 * async-signal-safe system calls belong.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "audit/privs.h"

#define BIT(c) (1ull << (c))
#define RUN_SET (BIT(CAP_BPF) | BIT(CAP_PERFMON) | BIT(CAP_SYS_PTRACE) | BIT(CAP_DAC_READ_SEARCH))
#define LAST_CAP 63

static const char *const cap_names[] = {
    [CAP_SYS_ADMIN] = "cap_sys_admin",
    [CAP_BPF] = "cap_bpf",
    [CAP_PERFMON] = "cap_perfmon",
    [CAP_SYS_PTRACE] = "cap_sys_ptrace",
    [CAP_DAC_READ_SEARCH] = "cap_dac_read_search",
};

static uint64_t privs_keep;	/* the mask every thread drops to */
static volatile int privs_acks; /* threads that applied it (signal handler) */
static volatile int privs_failures;

static int caps__get(uint64_t *eff, uint64_t *prm)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2] = {};

	if (syscall(SYS_capget, &hdr, d))
		return -errno;
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	return 0;
}

uint64_t privs__effective(void)
{
	uint64_t eff = 0, prm = 0;

	caps__get(&eff, &prm);
	return eff;
}

/* Async-signal-safe: system calls only. Bounding set first (it needs CAP_SETPCAP, which the
 * capset below removes). */
static int caps__apply(uint64_t keep)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2] = {};
	int err = 0;

	/* Best effort: without CAP_SETPCAP the bounding set stays, and no_new_privs below is
	 * what keeps an exec from gaining anything. */
	for (int c = 0; c <= LAST_CAP; c++)
		if (!(keep & BIT(c)) && syscall(SYS_prctl, PR_CAPBSET_READ, c, 0, 0, 0) == 1)
			syscall(SYS_prctl, PR_CAPBSET_DROP, c, 0, 0, 0);
	syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (syscall(SYS_capget, &hdr, d))
		return -1;
	d[0].effective &= (uint32_t)keep;
	d[1].effective &= (uint32_t)(keep >> 32);
	d[0].permitted &= (uint32_t)keep;
	d[1].permitted &= (uint32_t)(keep >> 32);
	d[0].inheritable = d[1].inheritable = 0;
	if (syscall(SYS_capset, &hdr, d))
		return -1;
	if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		err = -1;
	return err;
}

static void caps__on_signal(int sig)
{
	int saved = errno;

	if (caps__apply(privs_keep))
		__atomic_add_fetch(&privs_failures, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&privs_acks, 1, __ATOMIC_SEQ_CST);
	errno = saved;
}

/* ---- can this thread create a uprobe? ------------------------------------------------------- */

static int uprobe_pmu_type(void)
{
	FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "re");
	int type = -1;

	if (f) {
		if (fscanf(f, "%d", &type) != 1)
			type = -1;
		fclose(f);
	}
	return type;
}

/* Opens and closes a uprobe perf event on a scratch file nobody maps, so nothing is ever
 * installed anywhere. Returns 0, -errno from perf_event_open, or 1 when it cannot tell. */
static int uprobe__try(void)
{
	char path[] = "/tmp/.tokentap-uprobe-probe-XXXXXX";
	struct perf_event_attr a = {.size = sizeof(a)};
	static const char page[64];
	int type = uprobe_pmu_type(), fd, pfd, ret;

	if (type < 0)
		return 1;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return 1;
	ret = write(fd, page, sizeof(page)) == sizeof(page) ? 0 : 1;
	close(fd);
	if (ret) {
		unlink(path);
		return 1;
	}
	a.type = (uint32_t)type;
	a.disabled = 1;
	a.config1 = (uint64_t)(uintptr_t)path; /* uprobe_path */
	a.config2 = 0;			       /* probe_offset */
	pfd = (int)syscall(SYS_perf_event_open, &a, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
	ret = pfd >= 0 ? 0 : -errno;
	if (pfd >= 0)
		close(pfd);
	unlink(path);
	return ret;
}

static void *uprobe__try_without_admin(void *arg)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2] = {};
	int *ret = arg;

	/* This thread only: lowering its effective set leaves the others alone. */
	if (syscall(SYS_capget, &hdr, d)) {
		*ret = 1;
		return NULL;
	}
	d[0].effective &= ~(uint32_t)BIT(CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &hdr, d)) {
		*ret = 1;
		return NULL;
	}
	*ret = uprobe__try();
	return NULL;
}

/* Does creating uprobes need CAP_SYS_ADMIN here (some kernels refuse CAP_PERFMON alone)? */
static bool uprobe__needs_admin(void)
{
	pthread_t t;
	int ret = 1;

	if (pthread_create(&t, NULL, uprobe__try_without_admin, &ret))
		return true;
	pthread_join(t, NULL);
	return ret != 0;
}

/* ---- start ---------------------------------------------------------------------------------- */

static void caps__list(uint64_t mask, char *out, size_t cap)
{
	out[0] = '\0';
	for (size_t c = 0; c < sizeof(cap_names) / sizeof(cap_names[0]); c++)
		if ((mask & BIT(c)) && cap_names[c])
			snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? "," : "",
				 cap_names[c]);
}

int privs__check_start(void)
{
	uint64_t eff = 0, prm = 0, missing;
	char names[160];
	int ret;

	if (caps__get(&eff, &prm))
		return 0; /* cannot tell: let the kernel decide */
	missing = (BIT(CAP_BPF) | BIT(CAP_PERFMON)) & ~eff;
	if (!(eff & BIT(CAP_SYS_ADMIN)) && missing) {
		caps__list(missing, names, sizeof(names));
		fprintf(stderr,
			"tokentap: missing capabilities %s: run as root, or grant "
			"cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search (and cap_sys_admin "
			"where the kernel requires it for uprobes)\n",
			names);
		return -EPERM;
	}
	ret = uprobe__try();
	if (ret == -EACCES || ret == -EPERM) {
		fprintf(
		    stderr,
		    "tokentap: this kernel refuses to create uprobes (perf_event_open: %s) with "
		    "the capabilities given: add cap_sys_admin, or run as root\n",
		    strerror(-ret));
		return -EPERM;
	}
	missing = (BIT(CAP_SYS_PTRACE) | BIT(CAP_DAC_READ_SEARCH)) & ~eff;
	if (missing && !(eff & BIT(CAP_SYS_ADMIN))) {
		caps__list(missing, names, sizeof(names));
		fprintf(stderr,
			"tokentap: warning: without %s, processes of other users cannot be "
			"inspected (their OpenSSL is not found, their facts not read)\n",
			names);
	}
	return 0;
}

/* ---- the drop ------------------------------------------------------------------------------- */

static int caps__broadcast(void)
{
	struct sigaction sa = {.sa_handler = caps__on_signal}, old;
	int sig = SIGRTMIN + 7, sent = 0, self = (int)syscall(SYS_gettid);
	struct timespec step = {0, 1000000};
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	if (!d)
		return -errno;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, &old);
	while ((de = readdir(d))) {
		int tid = atoi(de->d_name);

		if (tid <= 0 || tid == self)
			continue;
		if (!syscall(SYS_tgkill, getpid(), tid, sig))
			sent++;
	}
	closedir(d);
	for (int i = 0; i < 1000 && __atomic_load_n(&privs_acks, __ATOMIC_SEQ_CST) < sent; i++)
		nanosleep(&step, NULL);
	sigaction(sig, &old, NULL);
	if (__atomic_load_n(&privs_acks, __ATOMIC_SEQ_CST) < sent || privs_failures)
		return -EAGAIN;
	return 0;
}

/* Every thread's effective and permitted sets must now be within the kept set. */
static int caps__verify(uint64_t keep)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int bad = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[64], line[128];
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", de->d_name);
		f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long long v;

			if ((sscanf(line, "CapEff: %llx", &v) == 1 ||
			     sscanf(line, "CapPrm: %llx", &v) == 1) &&
			    (v & ~keep))
				bad++;
		}
		if (f)
			fclose(f);
	}
	closedir(d);
	return bad ? -EAGAIN : 0;
}

int privs__drop_after_attach(bool verbose)
{
	uint64_t eff = 0, prm = 0;
	char names[160];
	int err;

	if (caps__get(&eff, &prm))
		return -errno;
	privs_keep = RUN_SET;
	if ((eff & BIT(CAP_SYS_ADMIN)) && uprobe__needs_admin())
		privs_keep |= BIT(CAP_SYS_ADMIN);
	privs_keep &= prm;
	err = caps__broadcast();
	if (caps__apply(privs_keep))
		err = -EPERM;
	if (!err)
		err = caps__verify(privs_keep);
	caps__list(privs_keep, names, sizeof(names));
	if (err) {
		fprintf(stderr, "tokentap: warning: dropping capabilities failed (%s); kept: %s\n",
			strerror(-err), names);
		return err;
	}
	fprintf(stderr, "tokentap: capabilities dropped to %s\n", names[0] ? names : "none");
	return 0;
}
