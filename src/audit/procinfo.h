/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process facts for the audit record, read when a process execs (short-lived clients are gone
 * from /proc by the time their call is reported): uid and user name, executable path and its
 * SHA-256 (hashed once per (device, inode, mtime, size)), parent, command line with secrets
 * removed, container id and Kubernetes pod uid. Entries outlive their process by a grace
 * period, because a call can be reported after its process exited (timeouts, close on exit).
 */
#ifndef TOKENTAP_AUDIT_PROCINFO_H
#define TOKENTAP_AUDIT_PROCINFO_H

#include <stdbool.h>
#include <stdint.h>

#define PROC_PATH_MAX 512
#define PROC_CMDLINE_MAX 2048

struct proc_facts {
	uint32_t pid, ppid;
	int64_t uid, euid; /* -1 unknown */
	char user[64];	   /* from the host's user database; "" unknown */
	char exe[PROC_PATH_MAX];
	char exe_sha256[65]; /* "" when it could not be read */
	char parent_exe[PROC_PATH_MAX];
	char cmdline[PROC_CMDLINE_MAX]; /* argv joined by spaces, secrets redacted */
	char container_id[65];
	char pod_uid[40];
	bool from_exec; /* read at exec time (else later, at the first call) */
	bool exited;
	uint64_t exited_ns;
};

struct proc_table_stats {
	uint64_t learned, hashed, hash_cache_hits, hash_failures, evicted, lookups_missed;
};

struct proc_table;

/* proc_root: "/proc" unless testing. */
struct proc_table *proc_table__new(const char *proc_root);
/* A process exec'd: read its facts now. */
void proc_table__learn(struct proc_table *t, uint32_t pid, uint32_t ppid);
/* It exited: kept for the grace period, then forgotten at a tick. */
void proc_table__exit(struct proc_table *t, uint32_t pid, uint64_t now_ns);
/* Facts of pid, read now if unknown (NULL when the process is gone and was never seen). The
 * pointer is valid until the next call into the table. */
const struct proc_facts *proc_table__get(struct proc_table *t, uint32_t pid);
void proc_table__tick(struct proc_table *t, uint64_t now_ns);
void proc_table__stats(const struct proc_table *t, struct proc_table_stats *st);
void proc_table__free(struct proc_table *t);

/* "kubepods-burstable-pod1b2c..._..slice" or ".../kubepods/besteffort/pod<uid>/..." -> the pod
 * uid with dashes. Returns true when found. */
bool cgroup__pod_uid(const char *cgroup_line, char *out, size_t cap);

#endif
