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

#include "attach/golang.h"

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
	ATTACH_FN_SSL_CTRL = 8,	     /* SSL_ctrl: SSL_set_tlsext_host_name is a macro for it */
	ATTACH_FN_GNUTLS_SERVER_NAME_SET = 9, /* gnutls_server_name_set: the SNI */
	ATTACH_FN__COUNT = 10,
};

/* The loaded programs to attach per function; ret[] NULL where no return probe is wanted. */
struct attach_progs {
	struct bpf_program *entry[ATTACH_FN__COUNT];
	struct bpf_program *ret[ATTACH_FN__COUNT];
	struct golang_progs go; /* Go crypto/tls (bpf/go_tls.bpf.c); all NULL: Go not probed */
	/* rustls on aws-lc: EVP_AEAD_CTX_* entries in enum awslc_fn order, one return program for
	 * both opens (bpf/tls.bpf.c); all NULL: not probed. */
	struct aead_progs {
		struct bpf_program *entry[4];
		struct bpf_program *open_ret;
	} aead;
	/* Emulated probe sites (attach/sites.c) for OpenSSL's read/write functions. */
	struct sites_bpf {
		struct bpf_program *entry, *ret; /* NULL: the classic pair everywhere */
		int checks_fd;			 /* the site_checks map (verification) */
	} sites;
};

struct attach_stats {
	uint32_t files;		/* distinct (dev, inode) with TLS probes attached */
	uint32_t failures;	/* files carrying OpenSSL whose probes could not be attached */
	uint32_t checked_files; /* distinct files examined */
	uint32_t pending;	/* processes waiting for a delayed rescan */
	uint32_t pending_dropped;
	/* Users and the bound (containers come and go with their own copies of libssl). */
	uint32_t users;		  /* (process, attached file) pairs known from scans */
	uint32_t processes;	  /* processes known to map an attached file */
	uint32_t pinned;	  /* attached files never detached: the host's own files */
	uint32_t max_files;	  /* the bound on files (max-attached-files) */
	uint64_t refusals;	  /* files carrying TLS not attached because max_files were */
	uint64_t detaches;	  /* files detached after their last user was gone */
	uint64_t sweeps;	  /* rescans of every process made before detaching */
	/* exec -> attached: files attached for a process that had just exec'd, and how long after
	 * the kernel's exec timestamp their probes were in place. */
	uint64_t exec_attaches;
	uint64_t needed_attaches; /* of those, found through DT_NEEDED before the loader mapped */
	uint64_t exec_window_last_ns, exec_window_max_ns, exec_window_avg_ns;
	uint32_t code_shape_files; /* entry points found by code shape (boringssl.c, awslc.c) */
	/* Just-exec'd processes held while their executable was analysed (attach/exec_hold.h). */
	uint64_t exec_holds, exec_hold_timeouts, exec_hold_failures, exec_hold_max_ns;
};

#define ATTACH_MAX_FILES_DEFAULT 512

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
/* The same with the kernel's exec timestamp (CLOCK_MONOTONIC ns), the start of the window
 * measured until the new image's files are attached. The libraries the executable needs
 * (DT_NEEDED, inside the process's root) are attached before its loader maps them. */
void attach__on_exec_at(struct attach *a, uint32_t pid, uint64_t exec_ns);
/* The process exited: files it was the last user of are detached (after a rescan proves no
 * process maps them; the host's standard libraries stay). Called from the event loop. */
void attach__on_exit(struct attach *a, uint32_t pid);
/* At most max_files attached at once (0: ATTACH_MAX_FILES_DEFAULT); more are refused, counted. */
void attach__set_max_files(struct attach *a, uint32_t max_files);
/* Holding just-exec'd processes during code-shape analysis: on (max_ms, 0 = default) or off. */
void attach__set_exec_hold(struct attach *a, bool on, uint32_t max_ms);
/* Whether files of tokentap's own mount namespace stay attached without users (default true;
 * containers' files, reached through /proc/<pid>/root, are detached after their last user). */
void attach__set_pin_host(struct attach *a, bool pin);
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
