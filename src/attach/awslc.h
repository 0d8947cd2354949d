/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rustls on aws-lc (Codex CLI and other Rust clients, rustls's default crypto provider): rustls's
 * read and write paths are generic Rust, inlined into their callers, but every TLS record it
 * sends or receives is sealed or opened by one of four C functions of aws-lc's EVP_AEAD API.
 * This finds them by the shape of their code in stripped static binaries, as boringssl.c does
 * for SSL_write/SSL_read; bpf/tls.bpf.c takes the plaintext there and keeps only records whose
 * additional data is a TLS record header of application data.
 */
#ifndef TOKENTAP_ATTACH_AWSLC_H
#define TOKENTAP_ATTACH_AWSLC_H

#include <stddef.h>
#include <stdint.h>

/* ERR_LIB_CIPHER and the reason codes of aws-lc's cipher.h that tell the functions apart. */
#define AWSLC_LIB_CIPHER 30
#define AWSLC_R_BAD_DECRYPT 101
#define AWSLC_R_BUFFER_TOO_SMALL 103
#define AWSLC_R_CTRL_NOT_IMPLEMENTED 104
#define AWSLC_R_INVALID_OPERATION 112
#define AWSLC_R_OUTPUT_ALIASING 115
#define AWSLC_R_TOO_LARGE 117

/* The entry points, in the order of struct awslc_result's arrays. */
enum awslc_fn {
	AWSLC_SEAL = 0,		/* EVP_AEAD_CTX_seal */
	AWSLC_SEAL_SCATTER = 1, /* EVP_AEAD_CTX_seal_scatter (what aws-lc-rs seals with) */
	AWSLC_OPEN = 2,		/* EVP_AEAD_CTX_open */
	AWSLC_OPEN_GATHER = 3,	/* EVP_AEAD_CTX_open_gather */
	AWSLC_FNS = 4,
};

struct awslc_result {
	uint64_t off[AWSLC_FNS];   /* file offsets (uprobe offsets); all 0 when not found */
	uint64_t vaddr[AWSLC_FNS]; /* virtual addresses, for the log */
	uint32_t functions;	   /* functions that report errors from aead.c */
	const char *why;	   /* static text: why nothing was found, or "ok" */
};

/*
 * Analyses an ELF image held in memory (x86-64). 0 with all four found, -ENOENT when the file
 * carries no recognisable aws-lc AEAD code, -EINVAL when it is no usable ELF, -ENOMEM.
 */
int awslc__analyse(const uint8_t *img, size_t len, struct awslc_result *res);

#endif
