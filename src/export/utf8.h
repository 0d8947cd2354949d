/* SPDX-License-Identifier: Apache-2.0 */
/*
 * UTF-8 checks for exporters: captured strings (model names, ids, error text) come from the
 * network and may hold any bytes, but JSON and protobuf strings must be valid UTF-8.
 * Every invalid byte becomes U+FFFD.
 */
#ifndef TOKENTAP_EXPORT_UTF8_H
#define TOKENTAP_EXPORT_UTF8_H

#include <stddef.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at p (1..4), 0 when p[0] does not start one. */
size_t utf8__seq_len(const unsigned char *p, size_t n);
/* NULL when s is valid UTF-8 (use it as is), else a malloc'd repaired copy. */
char *utf8__repair(const char *s);
/* Writes s as a quoted JSON string: escaped, invalid bytes replaced. */
void utf8__write_json_string(FILE *out, const char *s);

#endif
