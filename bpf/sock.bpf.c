// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Socket of an SSL connection: while a thread is inside an SSL call (ssl_calls has its stash),
 * the TCP send/receive it makes belongs to that SSL*. The first one seen emits TT_EV_SOCK.
 *
 * Three rungs, chosen by user space at load time (bpf_program__set_autoload):
 *   fentry/tcp_{send,recv}msg    cheapest, needs BTF trampolines
 *   kprobe/tcp_{send,recv}msg    needs CONFIG_KPROBES
 *   tracepoint syscalls/sys_enter_*   always there; resolves fd -> struct sock itself
 * Node.js runs TLS over memory BIOs: no syscall nests in its SSL calls and no socket is learned;
 * the SSL* alone identifies the connection there.
 */
#include "tokentap.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The SSL call this thread is inside, if its connection still needs a socket; else NULL. */
static __always_inline struct ssl_call *sock__wanted(__u64 id)
{
	__u64 wkey = ssl_call__key(id, TT_DIR_WRITE), rkey = ssl_call__key(id, TT_DIR_READ);
	struct ssl_call *call = bpf_map_lookup_elem(&ssl_calls, &wkey);
	struct ssl_call *rcall = bpf_map_lookup_elem(&ssl_calls, &rkey);
	struct conn_key key;
	struct conn_state *st;

	/* The innermost call (the later one) is the one making this syscall. */
	if (!call || (rcall && rcall->start_ns > call->start_ns))
		call = rcall;
	if (!call)
		return NULL;
	key.tgid = id >> 32;
	key._pad = 0;
	key.ssl = call->ssl;
	st = bpf_map_lookup_elem(&conns, &key);
	if (st && st->sock_reported)
		return NULL;
	return call;
}

static __always_inline int sock__learn(struct sock *sk)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tt_sock_event ev = {};
	struct ssl_call *call;
	struct conn_state *st;
	__u16 family;

	call = sock__wanted(id);
	if (!call || !sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	st = conn__get(id >> 32, call->ssl);
	if (!st)
		return 0;
	hdr__fill(&ev.hdr, TT_EV_SOCK, id, call->ssl);
	ev.hdr.source = call->source;
	ev.sock_cookie = (__u64)sk;
	ev.family = family;
	sock__read_addrs(&ev, sk);
	st->sock_reported = 1;
	control__emit(&ev, sizeof(ev));
	tt_debug("tokentap: sock ssl=%llx %u->%u", call->ssl, ev.sport, ev.dport);
	return 0;
}

/* ---- rung 1: fentry ------------------------------------------------------------------------ */

SEC("fentry/tcp_sendmsg")
int BPF_PROG(fentry_tcp_sendmsg, struct sock *sk)
{
	return sock__learn(sk);
}

SEC("fentry/tcp_recvmsg")
int BPF_PROG(fentry_tcp_recvmsg, struct sock *sk)
{
	return sock__learn(sk);
}

/* ---- rung 2: kprobe ------------------------------------------------------------------------ */

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(kprobe_tcp_sendmsg, struct sock *sk)
{
	return sock__learn(sk);
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(kprobe_tcp_recvmsg, struct sock *sk)
{
	return sock__learn(sk);
}

/* ---- rung 3: syscall tracepoints, fd -> file -> socket -> sock ----------------------------- */

static __always_inline int sock__learn_fd(__u64 fd)
{
	/* Most syscalls on the host come from threads outside any SSL call: leave them fast. */
	if (!sock__wanted(bpf_get_current_pid_tgid()))
		return 0;
	return sock__learn(fd__sock(fd));
}

#define SYS_ENTER_PROG(name)                                                                       \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                \
	int tp_sys_enter_##name(struct trace_event_raw_sys_enter *ctx)                             \
	{                                                                                          \
		return sock__learn_fd(ctx->args[0]);                                               \
	}

SYS_ENTER_PROG(write)
SYS_ENTER_PROG(read)
SYS_ENTER_PROG(sendto)
SYS_ENTER_PROG(recvfrom)
SYS_ENTER_PROG(sendmsg)
SYS_ENTER_PROG(recvmsg)
SYS_ENTER_PROG(writev)
SYS_ENTER_PROG(readv)
