/* SPDX-License-Identifier: Apache-2.0 */
/*
 * attach/sites: where to put the probes of one TLS function. The classic pair (a uprobe on the
 * first instruction, a uretprobe) traps twice per call, and Debian's libssl begins SSL_write with
 * `sub $0x18,%rsp`, which the kernel single-steps (~10 us). An uprobe on a branch, call, push or
 * nop is emulated (~0.7 us). So, decoding the function with capstone, we look for:
 * - an ENTRY site: the first emulated instruction on the straight-line prologue, before anything
 *   writes an argument register, with the stack pointer's distance to the entry one known;
 * - a RETURN site: an emulated instruction that every return passes through, after which rax is
 *   not written before the one `ret`, so rax there is the function's return value.
 * Both, or the classic pair. A file's choices are then verified in a child process that runs
 * real calls through that very file (sites_verify.c) before any is trusted.
 */
#ifndef TOKENTAP_SITES_H
#define TOKENTAP_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attach/attach.h"

/* The emulated pair chosen for one function; entry_off 0 means the classic pair. */
struct site_pair {
	uint64_t entry_off, ret_off; /* file offsets of the two sites */
	uint16_t entry_sp_add;	     /* function-entry sp = sp at the entry site + this */
	uint16_t ret_sp_add;	     /* the same at the return site */
};

/* The most bytes of one function sites__analyze() examines; longer ones keep the classic pair. */
#define SITES_FN_MAX 8192

/*
 * Decodes one x86-64 function, code[0..len) found at file offset off, and picks its pair.
 * nargs: argument registers the BPF side reads at entry (3, or 4 for the _ex out-pointer).
 * Returns 0 with *out filled, or -ENOENT (no safe pair) / -EINVAL (undecodable) with *why set.
 */
int sites__analyze(const uint8_t *code, size_t len, uint64_t off, unsigned nargs,
		   struct site_pair *out, const char **why);

/* The BPF cookie of one site's link (layout in tokentap_abi.h). */
uint64_t sites__cookie(enum attach_fn fn, bool ret, uint16_t sp_add, bool verify);

/* struct sites_bpf (attach.h, in struct attach_progs): the BPF side a plan needs. */

/*
 * Plans one file: for each OpenSSL read/write function in offs[], analyses its code, then
 * verifies every candidate in a child that runs real calls through the file; pairs[i].entry_off
 * stays 0 where the classic pair is kept. Returns how many functions got a verified pair.
 */
int sites__plan(const struct sites_bpf *bpf, const char *path, const uint64_t *offs,
		struct site_pair *pairs, bool verbose);

/* argv[1] of the verification child (tokentap re-executed): `tokentap SITES_CHILD_ARG PATH`. */
#define SITES_CHILD_ARG "__verify-probe-sites"
/* The child's main: runs SSL_write/read(_ex) through PATH, prints what each returned, exits. */
int sites__child_main(int argc, char **argv);

/* Internal to sites_verify.c and sites.c: verifies pairs[] of path in a child. */
int sites__verify(const struct sites_bpf *bpf, const char *path, const uint64_t *offs,
		  struct site_pair *pairs, bool verbose);

#endif
