/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Code-shape analysis of stripped x86-64 ELF files, shared by the discoveries of TLS libraries
 * linked statically without symbols (boringssl.c: SSL_write/SSL_read; awslc.c: aws-lc's AEAD
 * seal/open under rustls).
 *
 * BoringSSL and its forks report errors with OPENSSL_PUT_ERROR, which passes __FILE__ and a
 * reason code to ERR_put_error. shape__functions finds every function that passes a given
 * source file's name (by scanning the code for references to the string), bounds each one
 * (.eh_frame_hdr, or frame-pointer prologues after padding), decodes it with capstone and
 * notes its shape: the reason codes it reports for a library, its direct calls, whether it
 * calls through a pointer, its first null check of a field of its first argument, its stores.
 * The classifiers tell the functions apart from these notes. The image is untrusted input:
 * every offset is bounds-checked.
 */
#ifndef TOKENTAP_ATTACH_CODESHAPE_H
#define TOKENTAP_ATTACH_CODESHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHAPE_MAX_SEGS 16
#define SHAPE_MAX_FNS 128
#define SHAPE_FN_MAX_BYTES (64u << 10)
#define SHAPE_FN_CALLS 64
#define SHAPE_FN_REASONS 16

struct seg {
	uint64_t vaddr, off, filesz;
	bool exec;
};

struct shape_image {
	const uint8_t *img;
	size_t len;
	bool fixed; /* ET_EXEC: addresses are absolute, code loads them with mov imm32 */
	struct seg segs[SHAPE_MAX_SEGS];
	int nsegs;
	const uint8_t *ehtab; /* .eh_frame_hdr table: pairs of int32 relative to eh_vaddr */
	uint64_t eh_vaddr;
	uint32_t eh_count;
};

struct shape_fn {
	uint64_t start, end;
	uint32_t reasons[SHAPE_FN_REASONS];
	uint32_t nreasons;
	uint64_t calls[SHAPE_FN_CALLS];
	uint32_t ncalls;
	int64_t quic_disp; /* displacement of the first `cmp qword [arg0+d], 0`, -1 none */
	bool indirect_call;
	uint32_t stores; /* stores through a pointer that is no stack slot */
};

/* An x86-64 ELF image held in memory: 0, or -EINVAL when it is none. */
int shape__open(struct shape_image *im, const uint8_t *img, size_t len);
/* The file offset of a virtual address (a uprobe offset); 0 when no segment holds it. */
uint64_t shape__file_off(const struct shape_image *im, uint64_t vaddr);
/*
 * The functions that report errors of library lib_code from the source file whose name ends with
 * suffix, decoded, into fns (at most max): their number, -ENOENT when the file name is nowhere
 * in the image, -ENOMEM.
 */
int shape__functions(const struct shape_image *im, const char *suffix, uint32_t lib_code,
		     struct shape_fn *fns, int max);
/* Tells the decoded functions apart: 0 found (result filled), -ENOENT not. */
typedef int (*shape_classify_fn)(const struct shape_image *im, const struct shape_fn *fns, int n,
				 void *result);
/*
 * The whole analysis of one image: open it, find and decode the functions of the source file,
 * classify them. *why says what stopped it (static text: missing when the source file's name is
 * not in the image; the classifier sets its own), and *functions how many were decoded.
 */
int shape__analyse(const uint8_t *img, size_t len, const char *suffix, uint32_t lib_code,
		   const char *missing, shape_classify_fn classify, void *result,
		   const char **why, uint32_t *functions);
bool shape_fn__has_reason(const struct shape_fn *fn, uint32_t reason);
bool shape_fn__calls(const struct shape_fn *fn, uint64_t target);
/* Maps a regular file read-only: 0 or -errno. munmap((void *)*img, *len) when done. */
int shape__map_file(const char *path, const uint8_t **img, size_t *len);
/* The GNU build id of an ELF image as lowercase hex into out (>= 41 bytes); 0 or -ENOENT. */
int shape__build_id(const uint8_t *img, size_t len, char *out, size_t out_len);

#endif
