/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small on-disk cache of code-shape discovery results, one file per analysed binary, keyed by
 * its ELF build id (or a sampled content hash when it has none) and its size, so a 300 MB agent
 * binary is analysed once per host, not once per tokentap start. Bounded: the oldest entries go
 * when there are more than DCACHE_MAX.
 */
#ifndef TOKENTAP_ATTACH_DISCOVERY_CACHE_H
#define TOKENTAP_ATTACH_DISCOVERY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define DCACHE_MAX 256
#define DCACHE_VALS 8
#define DCACHE_KEY_LEN 96

/* The key of an image: "<build id hex>-<size>" or "h<sampled hash>-<size>". */
void dcache__key(const uint8_t *img, size_t len, char *key, size_t key_len);
/* 1 hit (vals filled), 0 miss, <0 error. kind names the analysis ("bssl"). */
int dcache__get(const char *dir, const char *kind, const char *key, uint64_t *vals, int nvals);
/* Stores vals (creating dir); trims the directory to DCACHE_MAX entries. 0 or -errno. */
int dcache__put(const char *dir, const char *kind, const char *key, const uint64_t *vals,
		int nvals);

#endif
