/* SPDX-License-Identifier: Apache-2.0 */
/*
 * attach/: finds every file that carries OpenSSL (shared libssl, or an executable such as `node`
 * with OpenSSL linked in and its symbols kept) or GnuTLS (libgnutls.so.30, found by its
 * gnutls_record_send/recv symbols like any other file) and attaches the TLS probes to it once per
 * (device, inode) with pid -1, so every process mapping the file is covered.
 */
#ifndef TOKENTAP_ATTACH_H
#define TOKENTAP_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bpf_program;

/* TLS library entry points, in the order of attach_progs' arrays. */
enum attach_fn {
	ATTACH_FN_SSL_WRITE = 0,
	ATTACH_FN_SSL_READ = 1,
	ATTACH_FN_SSL_WRITE_EX = 2,
	ATTACH_FN_SSL_READ_EX = 3,
	ATTACH_FN_SSL_FREE = 4,
	ATTACH_FN_GNUTLS_SEND = 5,   /* gnutls_record_send */
	ATTACH_FN_GNUTLS_RECV = 6,   /* gnutls_record_recv */
	ATTACH_FN_GNUTLS_DEINIT = 7, /* gnutls_deinit */
	ATTACH_FN__COUNT = 8,
};

/* The loaded programs to attach per function; ret[] NULL where no return probe is wanted. */
struct attach_progs {
	struct bpf_program *entry[ATTACH_FN__COUNT];
	struct bpf_program *ret[ATTACH_FN__COUNT];
};

struct attach_stats {
	uint32_t files;		/* distinct (dev, inode) with TLS probes attached */
	uint32_t failures;	/* files carrying OpenSSL whose probes could not be attached */
	uint32_t checked_files; /* distinct files examined */
	uint32_t pending;	/* processes waiting for a delayed rescan */
	uint32_t pending_dropped;
};

struct attach;

struct attach *attach__new(const struct attach_progs *progs, bool verbose);
/* Standard libssl locations and every process's executable mappings. Returns files attached. */
int attach__scan_all(struct attach *a);
/* Probes one file (path as seen from tokentap's mount namespace). 1 attached, 0 no, <0 error. */
int attach__file(struct attach *a, const char *path);
/* Examines a process's executable mappings now. Returns files newly attached or -errno. */
int attach__scan_pid(struct attach *a, uint32_t pid);
/* A process exec'd: scan it now and again shortly (its loader maps libssl after exec). */
void attach__on_exec(struct attach *a, uint32_t pid);
/* Milliseconds until the next delayed rescan is due, at most max_ms (0 if one is due). */
int attach__next_due_ms(const struct attach *a, int max_ms);
/* Runs the delayed rescans that are due. */
void attach__run_pending(struct attach *a);
void attach__stats(const struct attach *a, struct attach_stats *st);
/* The i-th attached file (path used to attach) and how it was found, or NULL past the end. */
const char *attach__file_path(const struct attach *a, uint32_t i, const char **method);
/* Destroys n links (NULL entries allowed) concurrently: each waits for an RCU grace period. */
struct bpf_link;
void attach__destroy_links(struct bpf_link **links, size_t n);
/* Detaches every probe and frees a. */
void attach__free(struct attach *a);

#endif
