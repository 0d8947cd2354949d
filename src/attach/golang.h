/* SPDX-License-Identifier: Apache-2.0 */
/*
 * attach/: Go crypto/tls. A Go executable carries its own TLS: crypto/tls.(*Conn).Write and
 * (*Conn).Read are probed at their entry and at every RET instruction (never with uretprobes:
 * a uretprobe rewrites the return address on the goroutine's stack, and Go moves stacks).
 * Functions are found by .symtab when present, else through .gopclntab (kept by `-s -w` and by
 * strip), whose function table maps names to entry PCs.
 */
#ifndef TOKENTAP_GOLANG_H
#define TOKENTAP_GOLANG_H

#include <stddef.h>
#include <stdint.h>

enum golang_fn {
	GOLANG_FN_WRITE = 0, /* crypto/tls.(*Conn).Write */
	GOLANG_FN_READ = 1,  /* crypto/tls.(*Conn).Read */
	GOLANG_FN_CLOSE = 2, /* crypto/tls.(*Conn).Close: entry only */
	GOLANG_FN__COUNT = 3,
};

/* Where one function's probes go, as file offsets (what uprobes take). */
struct golang_site {
	uint64_t entry; /* 0: not found */
	uint64_t *rets; /* every RET of the function; NULL for GOLANG_FN_CLOSE */
	uint32_t nrets;
};

struct golang_plan {
	const char *method; /* "symbols" or "gopclntab": how the functions were found */
	struct golang_site fn[GOLANG_FN__COUNT];
};

/* A function's address range, as the symbol table or the pclntab gives it. */
struct golang_range {
	uint64_t start, end; /* virtual addresses, end exclusive; start 0 when absent */
};

struct bpf_program;
struct bpf_link;

/* The loaded programs of bpf/go_tls.bpf.c. */
struct golang_progs {
	struct bpf_program *write, *write_ret, *read, *read_ret, *close;
};

/*
 * Whether path is a Go executable for amd64 that links crypto/tls, and where to probe it.
 * 1 with *plan filled (free it with golang__plan_free), 0 for any other file, -errno when the
 * file cannot be read. Cheap for files that are not Go: it reads the section headers only.
 */
int golang__discover(const char *path, struct golang_plan *plan);
void golang__plan_free(struct golang_plan *plan);

/*
 * Attaches plan's probes to path for every process (pid -1): entry probes, and the return
 * program at each RET. *links (malloc'd) gets every link, *nlinks their count. 0, or -errno
 * with nothing left attached.
 */
int golang__attach(const struct golang_plan *plan, const struct golang_progs *progs,
		   const char *path, struct bpf_link ***links, uint32_t *nlinks);

/*
 * Parses a .gopclntab image (Go 1.16, 1.18 and 1.20+ layouts) and finds names[0..n) among its
 * functions: out[i] gets the range of names[i] (start 0 when absent). text is the address of
 * the text section, used when the table does not carry it. Returns how many were found, or
 * -EINVAL for a table that is not one or is inconsistent. Reads only inside [tab, tab+len).
 */
int golang__pclntab_find(const uint8_t *tab, size_t len, uint64_t text, const char *const *names,
			 size_t n, struct golang_range *out);

/*
 * Offsets (base + position) of every RET instruction of the amd64 code [code, code+len),
 * decoded from its start. *rets is malloc'd. Returns how many, -EINVAL when the code does not
 * decode to the end (a wrong guess at a function's bounds must not place a probe mid-instruction)
 * or -E2BIG past 256 returns (none may go unprobed).
 */
int golang__ret_offsets(const uint8_t *code, size_t len, uint64_t base, uint64_t **rets);

#endif
