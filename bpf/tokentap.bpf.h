/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * State shared by the BPF units (tls, sock, proc). Each unit includes this header; the maps are
 * __weak so `bpftool gen object` links the copies into one map each (falcosecurity modern_bpf).
 */
#ifndef TOKENTAP_BPF_H
#define TOKENTAP_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tokentap_abi.h"

#ifdef BPF_DEBUG
#define tt_debug(fmt, ...) bpf_printk(fmt, ##__VA_ARGS__)
#else
#define tt_debug(fmt, ...) ((void)0)
#endif

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* Set by user space before load: tokentap's own thread group, never traced. */
const volatile __u32 self_tgid __weak = 0;

/*
 * Set by user space before load: wake the reader only when a record makes the unread data cross
 * this many bytes; the reader also drains on a short timer. A wakeup costs ~10 us of the traced
 * call (irq_work IPI in a VM), far more than the copy. 0 = wake for every record.
 */
const volatile __u64 wakeup_bytes __weak = 0;

/* Every record the kernel emits; size set by user space (default 8 MiB). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps") __weak;

/* index: enum tt_drop_counter, value: count on this CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TT_DROP__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps") __weak;

/* The arguments of an SSL call in progress, saved at entry for its return probe. */
struct ssl_call {
	__u64 ssl;
	__u64 buf;
	__u64 len_ptr; /* size_t * of the _ex variants; 0 for SSL_read/SSL_write */
	__u64 start_ns;
	__u64 sp;  /* user stack pointer at entry: tells the matching return from a nested one */
	__u32 dir;    /* enum tt_direction */
	__u32 source; /* enum tt_tls_source: which library's call this is */
};

/*
 * key: ssl_call__key(pid_tgid, dir), value: the call the thread is inside. One slot per
 * direction, because an SSL call of the other direction may legitimately run inside this one:
 * Node.js writes its first request from the handshake-done callback, inside SSL_read.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ssl_call);
} ssl_calls SEC(".maps") __weak;

static __always_inline __u64 ssl_call__key(__u64 pid_tgid, __u32 dir)
{
	/* A tgid has at most 22 bits: bit 63 of pid_tgid is free for the direction. */
	return pid_tgid | ((__u64)(dir & 1) << 63);
}

struct conn_key {
	__u32 tgid;
	__u32 _pad;
	__u64 ssl;
};

/* Whether a TLS connection's bytes are copied (tls.bpf.c, conn__copying). */
enum conn_verdict {
	VERDICT_NEW = 0,    /* no write judged yet */
	VERDICT_COPY = 1,   /* LLM traffic, or what the kernel cannot judge (HTTP/2, other) */
	VERDICT_IGNORE = 2, /* not LLM traffic: positions advance, nothing is copied */
};

/* A positions record owed to user space (tls.bpf.c), sent before the next data record. */
enum conn_pending {
	PENDING_NONE = 0,
	PENDING_IGNORE = 1, /* TT_EV_IGNORE */
	PENDING_SYNC = 2,   /* TT_EV_SYNC: records were dropped, or copying resumes */
};

struct conn_state {
	__u64 seq[2];	     /* next stream position, indexed by enum tt_direction */
	__u32 sock_reported; /* TT_EV_SOCK already sent for this connection */
	__u8 verdict;	     /* enum conn_verdict */
	__u8 pending;	     /* enum conn_pending */
	__u16 _pad;
	__u64 sock;	     /* the struct sock * last reported (rustls: checked on every record,
			      * since a freed context's address comes back for a new connection) */
};

/* key: {tgid, SSL*}, value: stream positions of that connection. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps") __weak;

/*
 * One record under construction; too big for the 512-byte BPF stack. key: 0. Filled by the
 * program (header) and by data__emit_chunk (tls.bpf.c: position and payload).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tt_data_event);
} data_scratch SEC(".maps") __weak;

/* Copies [src, src+len) (len clamped to one chunk) at stream position seq; tls.bpf.c. */
extern int data__emit_chunk(__u64 seq, __u64 src, __u64 len);

static __always_inline void drop__count(__u32 reason, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &reason);

	if (v)
		*v += n;
}

static __always_inline struct conn_state *conn__get(__u32 tgid, __u64 ssl)
{
	struct conn_key key = {.tgid = tgid, .ssl = ssl};
	struct conn_state zero = {}, *st;

	st = bpf_map_lookup_elem(&conns, &key);
	if (st)
		return st;
	bpf_map_update_elem(&conns, &key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&conns, &key);
}

static __always_inline void hdr__fill(struct tt_event_hdr *h, __u16 kind, __u64 pid_tgid,
				      __u64 conn_id)
{
	h->ts_ns = bpf_ktime_get_ns();
	h->conn_id = conn_id;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->kind = kind;
	h->dir = 0;
	h->source = TT_SRC_NONE;
	h->_pad0 = 0;
}

/* Output flags for a record of `size` bytes: see wakeup_bytes. */
static __always_inline __u64 ringbuf__flags(__u64 size)
{
	__u64 unread;

	if (!wakeup_bytes)
		return 0;
	unread = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	return unread < wakeup_bytes && unread + size >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
								       : BPF_RB_NO_WAKEUP;
}

/*
 * Control records are small and fixed; a lost one is counted, never silent. An exec wakes the
 * reader at once (forced: records before it may be unread, and an adaptive wakeup is skipped
 * then): it must attach to the new image, and read the process's facts, before it is gone.
 */
static __always_inline void control__emit(void *rec, __u64 size)
{
	__u64 flags = ((struct tt_event_hdr *)rec)->kind == TT_EV_EXEC ? BPF_RB_FORCE_WAKEUP
									: ringbuf__flags(size);

	if (bpf_ringbuf_output(&events, rec, size, flags))
		drop__count(TT_DROP_CONTROL_RECORDS, 1);
}

/* True while the thread is inside an SSL/GnuTLS call: its socket I/O is TLS, captured above. */
static __always_inline bool tls__in_call(__u64 id)
{
	__u64 wkey = ssl_call__key(id, TT_DIR_WRITE), rkey = ssl_call__key(id, TT_DIR_READ);

	return bpf_map_lookup_elem(&ssl_calls, &wkey) || bpf_map_lookup_elem(&ssl_calls, &rkey);
}

/* The struct sock behind a file descriptor of the current task, or NULL for a non-socket. */
static __always_inline struct sock *fd__sock(__u64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file = NULL;
	struct socket *sock;
	umode_t mode;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

static __always_inline void sock__read_addrs(struct tt_sock_event *ev, struct sock *sk)
{
	ev->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (ev->family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)ev->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)ev->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)ev->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)ev->daddr, sk, __sk_common.skc_v6_daddr);
	}
}

/*
 * rustls on aws-lc (tls.bpf.c, sock.bpf.c). Records are taken where aws-lc seals and opens them,
 * under the EVP_AEAD_CTX of each direction; the socket they travel on names the connection. The
 * socket is learned from the same thread's socket I/O: a received record was read from the
 * thread's last socket read, a sealed one is written by the thread's next socket write.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid of a process that sealed or opened a TLS record */
	__type(value, __u8);
} aead_procs SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* the struct sock * the thread last read from */
} aead_rx_sock SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* an EVP_AEAD_CTX that sealed a record whose socket is not known */
} aead_tx_pending SEC(".maps") __weak;

/* A rustls connection: its process (the close, plain.bpf.c, may run in softirq) and contexts. */
struct aead_sock {
	__u32 tgid;
	__u32 _pad;
	__u64 ctx[2]; /* the EVP_AEAD_CTX of each direction last bound, by enum tt_direction */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* struct sock * */
	__type(value, struct aead_sock);
} aead_socks SEC(".maps") __weak;

/* Sends TT_EV_SOCK: connection conn of the current process runs on sk. */
static __always_inline void sock__report(__u64 id, __u64 conn, __u32 source, struct sock *sk,
					 struct conn_state *st)
{
	struct tt_sock_event ev = {};
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family != AF_INET && family != AF_INET6)
		return;
	hdr__fill(&ev.hdr, TT_EV_SOCK, id, conn);
	ev.hdr.source = source;
	ev.sock_cookie = (__u64)sk;
	ev.family = family;
	sock__read_addrs(&ev, sk);
	st->sock_reported = 1;
	st->sock = (__u64)sk;
	control__emit(&ev, sizeof(ev));
}

/* Forgets a context's stream state if it still runs on sk (its address may come back). */
static __always_inline void aead__forget_ctx(__u32 tgid, __u64 ctx, __u64 sk)
{
	struct conn_key ck = {.tgid = tgid, .ssl = ctx};
	struct conn_state *st = bpf_map_lookup_elem(&conns, &ck);

	if (st && st->sock == sk)
		bpf_map_delete_elem(&conns, &ck);
}

/*
 * A rustls connection's socket is closed (close(2), or TCP_CLOSE): TT_EV_CLOSE, whose positions
 * user space (capture/aead_bind.c) fills, and its contexts' state goes.
 */
static __always_inline void rustls__close(__u64 sk)
{
	struct tt_close_event ev = {};
	struct aead_sock *as = bpf_map_lookup_elem(&aead_socks, &sk);

	if (!as)
		return;
	hdr__fill(&ev.hdr, TT_EV_CLOSE, (__u64)as->tgid << 32, sk);
	ev.hdr.source = TT_SRC_RUSTLS;
	control__emit(&ev, sizeof(ev));
	aead__forget_ctx(as->tgid, as->ctx[TT_DIR_WRITE], sk);
	aead__forget_ctx(as->tgid, as->ctx[TT_DIR_READ], sk);
	bpf_map_delete_elem(&aead_socks, &sk);
}

/*
 * A rustls context of direction dir runs on sk: reported when new or changed, and remembered
 * with the socket so its close forgets the context's state (its address will come back).
 */
static __always_inline void aead__bind(__u64 id, __u64 ctx, __u32 dir, struct sock *sk)
{
	struct conn_state *st = conn__get(id >> 32, ctx);
	struct aead_sock as = {}, *old;
	__u64 key = (__u64)sk;

	if (!st || st->sock == key)
		return;
	sock__report(id, ctx, TT_SRC_RUSTLS, sk, st);
	old = bpf_map_lookup_elem(&aead_socks, &key);
	if (old)
		as = *old;
	as.tgid = id >> 32;
	as.ctx[dir & 1] = ctx;
	bpf_map_update_elem(&aead_socks, &key, &as, BPF_ANY);
}

#endif /* TOKENTAP_BPF_H */
