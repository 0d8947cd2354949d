/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Zero-run packing of a plain-data struct kept for a long time but mostly empty (an llm_call
 * waiting for its response is ~4 KiB of which a few hundred bytes are set: fixed-size string
 * fields). Runs of zero bytes are left out; everything else is copied as it is.
 *
 * Format: records of [u16 zeros][u16 literals][literals], little-endian, covering the source
 * exactly. Only for data this process packed itself; zpack__unpack still checks every length.
 */
#ifndef TOKENTAP_UTIL_ZPACK_H
#define TOKENTAP_UTIL_ZPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Packs src[0..n) into a malloc'd buffer (*out, *out_len). n at most ZPACK_MAX.
 * Returns 0, -EINVAL (too large) or -ENOMEM. */
#define ZPACK_MAX (1u << 24)
int zpack__pack(const void *src, size_t n, uint8_t **out, size_t *out_len);
/* Restores exactly n bytes into dst. False (dst unspecified) when the packed data does not
 * describe exactly n bytes. */
bool zpack__unpack(const uint8_t *p, size_t len, void *dst, size_t n);

#endif
