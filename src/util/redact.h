/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secret redaction, shared by content capture (prompts and completions) and the audit
 * record's command lines. Built-in detectors for the credentials that end up in prompts and
 * argv most often (provider API keys, cloud and chat-ops tokens, bearer tokens, JWTs, PEM
 * private keys) plus POSIX extended regular expressions added at start (--redact PATTERN).
 * Every match becomes "[REDACTED]"; what was found is never logged.
 */
#ifndef TOKENTAP_UTIL_REDACT_H
#define TOKENTAP_UTIL_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#define REDACT_MARK "[REDACTED]"
#define REDACT_MAX_PATTERNS 32

/* Adds a POSIX ERE whose every match is redacted. Call before any thread uses redact__*.
 * Returns 0, -EINVAL (one clear line on stderr, without the pattern's text beyond 64 bytes) or
 * -ENOSPC past REDACT_MAX_PATTERNS. */
int redact__add_pattern(const char *ere);
void redact__clear_patterns(void);

/* Returns a NUL-terminated, malloc'd copy of s[0..n) with every secret replaced, or NULL when
 * out of memory. *n_found (may be NULL) counts the redactions. NUL bytes inside s end the
 * regex scan for the custom patterns (regexec works on C strings) but not the built-ins. */
char *redact__string(const char *s, size_t n, size_t *out_len, unsigned *n_found);

/* A process command line: NUL-separated argv as /proc/<pid>/cmdline has it, n bytes. Values of
 * secret-looking options (--api-key V, --token=V, password=V, "x-api-key: V", URL userinfo
 * passwords) and everything redact__string finds are replaced; arguments are joined with
 * spaces into out (cap bytes, truncated with "..." when longer). Returns the length written. */
size_t redact__cmdline(const char *argv0, size_t n, char *out, size_t cap);

#endif
