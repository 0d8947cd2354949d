/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stripped, statically linked BoringSSL (Bun, Claude Code): finds SSL_write and SSL_read by the
 * shape of their code, since no symbol names them. Analysis of a file of hundreds of MB takes a
 * fraction of a second to seconds, so it runs on a worker thread (bssl_worker) and its result is
 * cached per file build id (discovery_cache).
 */
#ifndef TOKENTAP_ATTACH_BORINGSSL_H
#define TOKENTAP_ATTACH_BORINGSSL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "attach/awslc.h"

/* Reason codes BoringSSL passes to ERR_put_error (stable values of its public ssl.h / err.h). */
#define BSSL_R_SHOULD_NOT_HAVE_BEEN_CALLED 66 /* ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED: QUIC */
#define BSSL_R_SSL_HANDSHAKE_FAILURE 215      /* SSL_R_SSL_HANDSHAKE_FAILURE */
#define BSSL_R_UNINITIALIZED 226	      /* SSL_R_UNINITIALIZED */
#define BSSL_LIB_SSL 16			      /* ERR_LIB_SSL */

struct bssl_result {
	uint64_t write_off, read_off;	/* file offsets (uprobe offsets); 0 when not found */
	uint64_t write_vaddr, read_vaddr;
	uint32_t functions;		/* functions that report errors from ssl_lib.cc */
	const char *why;		/* static text: why nothing was found, or "ok" */
};

/*
 * Analyses an ELF image held in memory (x86-64 only). Returns 0 with both entry points found,
 * -ENOENT when the file carries no recognisable BoringSSL, -EINVAL when it is no usable ELF.
 * The image is untrusted input: every offset is bounds-checked.
 */
int bssl__analyse(const uint8_t *img, size_t len, struct bssl_result *res);
/* Maps path read-only and analyses it. */
int bssl__analyse_file(const char *path, struct bssl_result *res);
/* The cheap pre-check done on the hot path: big enough, an x86-64 ELF executable or library. */
bool bssl__worth_analysing(const char *path, const struct stat *st);

/* ---- off the hot path ------------------------------------------------------------------------ */

struct bssl_found {
	char path[4096];
	struct bssl_result res;
	int err;	   /* 0 found, -ENOENT not BoringSSL, other -errno */
	struct awslc_result aead; /* aws-lc's AEAD entry points (rustls), looked for without BoringSSL */
	int aead_err;		  /* 0 found, -ENOENT none, other -errno */
	bool from_cache;
	uint64_t took_us;  /* wall time of the analysis (or cache lookup) */
};

struct bssl_worker;

/* cache_dir NULL: no cache. The thread starts with the first job. */
struct bssl_worker *bssl_worker__new(const char *cache_dir, bool verbose);
/* The cached verdict on path, synchronously (maps the file, reads its build id): 1 hit, 0 miss. */
int bssl_worker__lookup(struct bssl_worker *w, const char *path, struct bssl_found *out);
/* Queues a file for analysis; -EBUSY when the queue is full (the file is tried again later). */
int bssl_worker__submit(struct bssl_worker *w, const char *path);
/* Takes one finished analysis into out: 1 taken, 0 none ready. */
int bssl_worker__poll(struct bssl_worker *w, struct bssl_found *out);
/* Jobs queued or running. */
uint32_t bssl_worker__busy(struct bssl_worker *w);
void bssl_worker__free(struct bssl_worker *w);

#endif
