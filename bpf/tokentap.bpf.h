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

/* Set by user space before load: tokentap's own thread group, never traced. */
const volatile __u32 self_tgid __weak = 0;

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
	__u32 dir; /* enum tt_direction */
	__u32 _pad;
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

struct conn_state {
	__u64 seq[2];	     /* next stream position, indexed by enum tt_direction */
	__u32 sock_reported; /* TT_EV_SOCK already sent for this connection */
	__u32 _pad;
};

/* key: {tgid, SSL*}, value: stream positions of that connection. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps") __weak;

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

/* Control records are small and fixed; a lost one is counted, never silent. */
static __always_inline void control__emit(void *rec, __u64 size)
{
	if (bpf_ringbuf_output(&events, rec, size, 0))
		drop__count(TT_DROP_CONTROL_RECORDS, 1);
}

#endif /* TOKENTAP_BPF_H */
