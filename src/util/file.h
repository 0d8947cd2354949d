/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Files that steer a privileged agent (policy, configuration) must not be editable by anyone
 * but their owner, and that owner must be root or the user tokentap runs as: otherwise any
 * local user could rewrite the policy that judges them.
 */
#ifndef TOKENTAP_UTIL_FILE_H
#define TOKENTAP_UTIL_FILE_H

#include <stddef.h>

/* Returns 0, or -EPERM / -errno after one clear line on stderr naming `what` (e.g. "policy
 * file"). Checks the file and the directory that holds it (a writable directory lets others
 * replace the file). */
int file__check_not_world_writable(const char *path, const char *what);

/* Opens path read-only, checks it as above on the open descriptor (no race between the check
 * and the read) and reads it whole into a NUL-terminated malloc'd buffer of at most max bytes.
 * Returns the buffer or NULL after one clear line on stderr; *len gets its length. */
char *file__read_checked(const char *path, const char *what, size_t max, size_t *len);

#endif
