/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The only contract between bpf/ and user space. Every record the kernel emits starts with
 * struct tt_event_hdr; `kind` says which struct follows.
 *
 * Rules (Pixie's bcc_bpf_intf, OBI's -Wpadded): plain __u8..__u64 fields, explicit _pad members,
 * no implicit padding, enums with explicit values. NEVER RENUMBER an enum value and never reorder
 * a field: recorded captures (tests/, fuzz corpora) store these records as they are.
 * User space checks sizes and offsets with _Static_assert in src/capture/capture.c.
 */
#ifndef TOKENTAP_ABI_H
#define TOKENTAP_ABI_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Data bytes carried by one TT_EV_DATA record. A TLS record holds at most 16 KiB of plaintext. */
#define TT_CHUNK_MAX 16384
/* Records one SSL call may emit; bytes past TT_CHUNK_MAX * TT_CALL_CHUNKS_MAX are counted lost. */
#define TT_CALL_CHUNKS_MAX 64
#define TT_COMM_LEN 16

enum tt_event_kind {
	TT_EV_DATA = 1,  /* plaintext of one SSL read/write call (or a slice of it) */
	TT_EV_CLOSE = 2, /* SSL_free, gnutls_deinit or TCP close (plaintext): the connection is gone;
			  * carries the final stream positions */
	TT_EV_SOCK = 3,  /* the socket (5-tuple) an SSL connection runs on, learned once */
	TT_EV_EXEC = 4,  /* a process called execve: user space may have a new file to probe */
	TT_EV_EXIT = 5,  /* a whole process (thread group) exited */
	/*
	 * struct tt_close_event: the kernel judged the connection not LLM traffic from its first
	 * write and stops copying it at these positions. Bytes past them are skipped on purpose,
	 * not lost; a TT_EV_SYNC resumes copying if a later request goes to an LLM API path.
	 */
	TT_EV_IGNORE = 6,
	/*
	 * struct tt_close_event: the positions of both directions before the next record of this
	 * connection. Undelivered bytes below them were lost (the kernel sends one after its
	 * records were dropped, so a lost exchange is known before the next one starts); after
	 * TT_EV_IGNORE they were skipped, and copying resumes here at a request start.
	 */
	TT_EV_SYNC = 7,
	/*
	 * struct tt_sni_event: the server name the client put in its TLS ClientHello
	 * (SSL_set_tlsext_host_name, gnutls_server_name_set), sent before the handshake.
	 */
	TT_EV_SNI = 8,
};

enum tt_direction {
	TT_DIR_WRITE = 0, /* the traced process sent these bytes (SSL_write*) */
	TT_DIR_READ = 1,  /* the traced process received these bytes (SSL_read*) */
};

/* Which TLS library produced a record. */
enum tt_tls_source {
	TT_SRC_NONE = 0,
	TT_SRC_OPENSSL = 1,
	TT_SRC_PLAINTEXT = 2, /* no TLS: bytes copied at the socket layer; conn_id is the sock */
	TT_SRC_GNUTLS = 3,    /* gnutls_record_send/recv; conn_id is the gnutls_session_t */
	TT_SRC_GO = 4,	      /* Go crypto/tls.(*Conn).Write/Read; conn_id is the *tls.Conn */
	TT_SRC_BORINGSSL = 5, /* BoringSSL SSL_write/SSL_read found by code shape; conn_id: SSL* */
	/*
	 * rustls on aws-lc: records sealed/opened by EVP_AEAD_CTX_* found by code shape. The kernel's
	 * conn_id is the EVP_AEAD_CTX of one direction; its TT_EV_SOCK names the socket, and user
	 * space (capture/aead_bind.c) rewrites the records to conn_id = that struct sock *.
	 */
	TT_SRC_RUSTLS = 6,
};

/* Index into the per-CPU `drops` array map; each value is a __u64 count. */
enum tt_drop_counter {
	TT_DROP_RINGBUF_RECORDS = 0, /* records bpf_ringbuf_output refused (buffer full) */
	TT_DROP_RINGBUF_BYTES = 1,   /* payload bytes inside those records */
	TT_DROP_TRUNCATED_BYTES = 2, /* bytes past TT_CALL_CHUNKS_MAX chunks of one call (or past
				      * the iovecs a vectored socket call's copy visits) */
	TT_DROP_READ_ERRORS = 3,     /* bpf_probe_read_user of a payload failed */
	TT_DROP_STASH_MISSES = 4,    /* return probe found no entry stash (evicted LRU) */
	TT_DROP_CONTROL_RECORDS = 5, /* close/sock/exec/exit records lost to a full buffer */
	TT_DROP__COUNT = 6,
};

/*
 * Index into the per-CPU `plain_counters` array map (plaintext capture at the socket layer);
 * each value is a __u64 count.
 */
enum tt_plain_counter {
	TT_PLAIN_SOCKS_LLM = 0,   /* TCP sockets that POSTed to an LLM API path: copied */
	TT_PLAIN_SOCKS_OTHER = 1, /* TCP sockets whose first request judged went elsewhere */
	TT_PLAIN_SOCKS_H2C_OTHER = 2, /* h2c connections to a port not in --h2c-ports: not copied */
	TT_PLAIN__COUNT = 3,
};

struct tt_event_hdr {
	__u64 ts_ns;   /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) when the record was made */
	__u64 conn_id; /* SSL* or gnutls_session_t in the traced process, the kernel struct sock *
			* for TT_SRC_PLAINTEXT; 0 for process events */
	__u32 pid;     /* thread group id */
	__u32 tid;     /* thread id */
	__u16 kind;    /* enum tt_event_kind */
	__u8 dir;      /* enum tt_direction (TT_EV_DATA) */
	__u8 source;   /* enum tt_tls_source */
	__u32 _pad0;
};

struct tt_data_event {
	struct tt_event_hdr hdr;
	__u64 seq;           /* stream position of data[0] in this direction of this connection */
	__u64 call_start_ns; /* when the SSL call was entered; hdr.ts_ns is when it returned */
	__u32 call_len;      /* bytes the whole SSL call transferred */
	__u32 data_len;      /* bytes of data[] that follow in this record (<= TT_CHUNK_MAX) */
	__u8 data[TT_CHUNK_MAX];
};
/* offsetof without <stddef.h> (BPF side); a null-pointer member access would trip UBSan. */
#define TT_DATA_HDR_SIZE ((unsigned long)__builtin_offsetof(struct tt_data_event, data))

struct tt_close_event {
	struct tt_event_hdr hdr;
	__u64 write_seq; /* total bytes written on the connection: lets user space see a lost tail */
	__u64 read_seq;  /* total bytes read */
};

struct tt_sock_event {
	struct tt_event_hdr hdr;
	__u64 sock_cookie; /* kernel `struct sock *`, only an identity */
	__u16 family;      /* AF_INET or AF_INET6 */
	__u16 sport;       /* host byte order */
	__u16 dport;       /* host byte order */
	__u16 _pad0;
	__u8 saddr[16];    /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
};

struct tt_proc_event {
	struct tt_event_hdr hdr; /* pid/tid of the process; conn_id 0 */
	__u32 ppid;
	__u32 exit_code;
	char comm[TT_COMM_LEN];
};

/* Longest server name a TT_EV_SNI record carries (a DNS name is at most 253 bytes). */
#define TT_SNI_MAX 256

struct tt_sni_event {
	struct tt_event_hdr hdr; /* conn_id: the SSL* or gnutls_session_t; source says which */
	__u32 name_len;          /* bytes of name[] used, without a NUL (< TT_SNI_MAX) */
	__u32 _pad0;
	char name[TT_SNI_MAX];
};

/*
 * Emulated probe sites (src/attach/sites.c): the BPF cookie of a uprobe_ssl_site_* link.
 * Bits 0-15: bytes to add to the stack pointer at the site to get the one at function entry;
 * bit 16: direction (enum tt_direction); bit 17: an _ex variant (size_t * out-pointer in the
 * 4th argument); bit 18: a verification link (records into site_checks, emits nothing);
 * bits 24-31: enum tt_tls_source; bits 32-39: site id, function index * 2 (+1: return site).
 */
#define TT_SITE_SP_MASK 0xffffULL
#define TT_SITE_DIR_BIT (1ULL << 16)
#define TT_SITE_EX_BIT (1ULL << 17)
#define TT_SITE_VERIFY_BIT (1ULL << 18)
#define TT_SITE_SOURCE_SHIFT 24
#define TT_SITE_ID_SHIFT 32
#define TT_SITE_IDS 64

/* What one probe site saw in the verification child. site_checks: key site id, value this. */
struct tt_site_seen {
	__u64 ssl, buf, len_ptr; /* entry site: the arguments */
	__u64 entry_sp;		 /* the stack pointer at function entry, derived from the site's */
	__u64 rc;		 /* return site: rax */
	__u64 hits;
};

/*
 * TT_EV_EXEC records are this longer struct (older captures hold a bare tt_proc_event: user space
 * accepts both). The executable's facts travel with the event because a short-lived client can
 * be gone from /proc before user space handles its exec.
 */
#define TT_EXEC_PATH_MAX 256
struct tt_exec_event {
	struct tt_proc_event proc;
	__u64 exe_ino;       /* inode of the mapped executable (mm->exe_file) */
	__u32 exe_dev;       /* its super block's dev_t, kernel encoding (major << 20 | minor) */
	__u32 filename_len;  /* bytes of filename[] used, without the NUL */
	char filename[TT_EXEC_PATH_MAX]; /* the path given to execve, as the process saw it */
};

#endif /* TOKENTAP_ABI_H */
