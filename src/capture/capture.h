/* SPDX-License-Identifier: Apache-2.0 */
/*
 * capture/: ring-buffer records -> neutral events (cap_*), plus loss accounting.
 * Stages after this one never see BPF types: they are fed cap_* structs, which a recorded file
 * (tests, fuzzers, `tokentap --replay`) can produce just as well as the kernel.
 */
#ifndef TOKENTAP_CAPTURE_H
#define TOKENTAP_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attach/attach.h"

enum cap_dir {
	CAP_DIR_WRITE = 0, /* bytes the traced process sent (the request, for a client) */
	CAP_DIR_READ = 1,  /* bytes it received */
};

/* Identity of one connection: the process and its SSL*, gnutls_session_t, or (plaintext) the
 * kernel's struct sock *. */
struct cap_conn_key {
	uint32_t pid;
	uint32_t _pad;
	uint64_t conn_id;
};

/* One ordered piece of one direction of a connection. `data` is borrowed for the callback. */
struct cap_chunk {
	struct cap_conn_key key;
	uint32_t tid;
	enum cap_dir dir;
	uint64_t seq;           /* stream position of data[0] */
	uint64_t call_start_ns; /* monotonic: SSL call entered */
	uint64_t call_end_ns;   /* monotonic: SSL call returned */
	uint32_t call_len;      /* bytes the whole SSL call moved (a call may span several chunks) */
	uint32_t len;
	const uint8_t *data;
	int tls_source; /* enum tt_tls_source */
};

struct cap_close {
	struct cap_conn_key key;
	uint64_t ts_ns;
	uint64_t write_seq; /* final stream lengths: bytes past what was delivered were lost */
	uint64_t read_seq;
};

struct cap_sock {
	struct cap_conn_key key;
	uint64_t ts_ns;
	uint16_t family; /* AF_INET / AF_INET6 */
	uint16_t sport, dport;
	uint8_t saddr[16], daddr[16];
};

struct cap_proc {
	uint32_t pid, ppid;
	uint64_t ts_ns;
	bool exited;
	char comm[16];
	/* exec only, empty when the record did not carry them: the path given to execve and the
	 * identity of the executable the kernel mapped (dev as user space's st_dev encodes it). */
	char filename[256];
	uint64_t exe_ino, exe_dev;
};

/* The TLS server name indication a client set on a connection. name is NUL-terminated, holds
 * only bytes a host name may contain (the record is rejected otherwise) and is lower case. */
struct cap_sni {
	struct cap_conn_key key;
	uint64_t ts_ns;
	int tls_source; /* enum tt_tls_source */
	char name[256];
};

/* Where capture delivers, in ring-buffer order. Any callback may be NULL. */
struct cap_sink {
	void *ctx;
	void (*on_chunk)(void *ctx, const struct cap_chunk *c);
	void (*on_close)(void *ctx, const struct cap_close *c);
	void (*on_sock)(void *ctx, const struct cap_sock *s);
	void (*on_proc)(void *ctx, const struct cap_proc *p);
	/* TT_EV_IGNORE: not LLM traffic, no more bytes from write_seq/read_seq on (skipped, not
	 * lost). TT_EV_SYNC: the positions now; see include/tokentap_abi.h. */
	void (*on_ignore)(void *ctx, const struct cap_close *c);
	void (*on_sync)(void *ctx, const struct cap_close *c);
	/* TT_EV_SNI: the client named its server in the TLS handshake. */
	void (*on_sni)(void *ctx, const struct cap_sni *s);
};

struct capture_opts {
	uint32_t self_pid;      /* never trace this process (tokentap exports over TLS too) */
	uint32_t ringbuf_bytes; /* ring buffer size, power of two; 0 = default */
	bool verbose;           /* let libbpf print */
	const char *sock_rung;  /* force "fentry", "kprobe" or "tracepoint"; NULL = probe */
	bool no_plain;          /* do not capture plain HTTP (no TLS) LLM traffic */
	const char *plain_rung; /* force "fentry", "kprobe", "sock_length" or "sys_exit"; NULL = probe */
	/* Server ports whose h2c (HTTP/2 without TLS) connections are copied: "p1,p2,..";
	 * NULL = CAPTURE_H2C_PORTS_DEFAULT, "" = none. */
	const char *h2c_ports;
	uint32_t max_attached_files; /* files with TLS probes at once; 0 = 512 */
	uint32_t exec_hold_ms;	     /* hold bound for a just-exec'd process; 0 = 3000 */
	bool no_exec_hold;	     /* never hold one */
	bool classic_probes;	     /* --probe-sites=classic: no emulated sites (attach/sites.c) */
};

/* Known LLM servers' ports: LiteLLM, vLLM, llama.cpp server, Ollama. */
#define CAPTURE_H2C_PORTS_DEFAULT "4000,8000,8080,11434"
#define CAPTURE_H2C_PORTS_MAX 64

struct capture_stats {
	uint64_t events, bytes;      /* records and payload bytes received */
	uint64_t lost_records;       /* sum of kernel drop counters */
	uint64_t lost_bytes;         /* ringbuf + truncated payload bytes */
	uint64_t drops[8];           /* per enum tt_drop_counter, summed over CPUs */
	uint64_t malformed_records;  /* records too short or of unknown kind */
	const char *sock_rung;       /* which rung of the attach ladder is live */
	struct attach_stats attach;  /* files attached, their users, exec -> attached, holds */
	/* Plain HTTP (no TLS) capture at the socket layer. */
	const char *plain_rung;      /* "sock_length" or "sys_exit", NULL when plain capture is off */
	uint64_t plain_records;      /* TT_EV_DATA records of plaintext sockets received */
	uint64_t plain_bytes;        /* their payload bytes: 0 while no LLM traffic is plain */
	uint64_t plain_socks_llm;    /* TCP sockets judged LLM traffic (copied) */
	uint64_t plain_socks_other;  /* TCP sockets whose first POST went to another path */
	uint64_t plain_h2c_other;    /* h2c connections to a port not in h2c_ports: not copied */
	const char *plain_tried;     /* why the plain rungs before plain_rung were passed over */
	uint64_t rustls_unbound_records; /* rustls records dropped: their socket never known */
	/* The trust gate of code-shape probes: connections verified by an HTTP request, bytes held
	 * back before that (capture/trust_gate.h). */
	uint64_t code_shape_verified, code_shape_held_bytes;
};

struct capture;

/* Loads and attaches the BPF side. Returns 0 or -errno and prints one clear line on failure. */
int capture__open(struct capture **out, const struct capture_opts *opts, const struct cap_sink *sink);
/* Waits up to timeout_ms for records and delivers them to the sink. Returns records or -errno. */
int capture__poll(struct capture *c, int timeout_ms);
/* Reads kernel drop counters and the attach facts into st. */
void capture__stats(struct capture *c, struct capture_stats *st);
/* Detaches everything. */
void capture__close(struct capture *c);

/* Decodes one raw record as the kernel wrote it (also used by the replay file reader and the
 * fuzzer). Returns 0, or -EINVAL for a malformed record (counted by the caller). */
int capture__dispatch_record(const void *rec, size_t size, const struct cap_sink *sink);

/* Parses a port list "p1,p2,.." (each 1..65535, at most max): returns the count or -EINVAL. */
int capture__parse_ports(const char *list, uint16_t *ports, int max);

#endif
