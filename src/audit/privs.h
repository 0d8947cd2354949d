/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tokentap's own privileges. At start: a clear message when the capabilities it needs are
 * missing. Once attached: every capability not needed to keep running is dropped, in every
 * thread (capabilities are per thread in Linux), along with the bounding set, ambient
 * capabilities and the right to gain privileges by exec (no_new_privs).
 *
 * Kept while running (it attaches probes to executables that start later):
 *   CAP_BPF, CAP_PERFMON           BPF links, uprobe perf events
 *   CAP_SYS_PTRACE                 /proc/<pid>/maps, exe, root of other users' processes
 *   CAP_DAC_READ_SEARCH            reading executables and libraries not readable by root's uid
 *   CAP_SYS_ADMIN                  only when this kernel refuses uprobe perf events without it
 *                                  (probed at start)
 */
#ifndef TOKENTAP_AUDIT_PRIVS_H
#define TOKENTAP_AUDIT_PRIVS_H

#include <stdbool.h>
#include <stdint.h>

/* Returns 0, or -EPERM after one clear line on stderr naming the missing capabilities. */
int privs__check_start(void);
/* Drops everything but the running set in all threads. Returns 0 or -errno (logged). */
int privs__drop_after_attach(bool verbose);
/* Effective capabilities of the calling thread, as a bit mask. */
uint64_t privs__effective(void);

#endif
