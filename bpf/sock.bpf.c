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

/* A seal waits for its socket (a write) or a process opens records (a read): note the socket. */
static __always_inline bool aead__wants(__u64 id, __u32 dir)
{
	__u32 tgid = id >> 32;

	if (dir == TT_DIR_READ)
		return bpf_map_lookup_elem(&aead_procs, &tgid) != NULL;
	return bpf_map_lookup_elem(&aead_tx_pending, &id) != NULL;
}

/*
 * rustls: a thread reading a socket is about to open the records it read (tls.bpf.c reports the
 * socket then); a thread writing one sends what it just sealed, so the sealing context's
 * connection runs on it.
 */
static __always_inline void aead__learn(struct sock *sk, __u64 id, __u32 dir)
{
	__u64 *pending, ctx, v = (__u64)sk;

	if (dir == TT_DIR_READ) {
		if (aead__wants(id, dir))
			bpf_map_update_elem(&aead_rx_sock, &id, &v, BPF_ANY);
		return;
	}
	pending = bpf_map_lookup_elem(&aead_tx_pending, &id);
	if (!pending)
		return;
	ctx = *pending;
	bpf_map_delete_elem(&aead_tx_pending, &id);
	aead__bind(id, ctx, TT_DIR_WRITE, sk);
}

static __always_inline int sock__learn(struct sock *sk, __u32 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_call *call;
	struct conn_state *st;

	if (!sk)
		return 0;
	aead__learn(sk, id, dir);
	call = sock__wanted(id);
	if (!call)
		return 0;
	st = conn__get(id >> 32, call->ssl);
	if (!st)
		return 0;
	sock__report(id, call->ssl, call->source, sk, st);
	tt_debug("tokentap: sock ssl=%llx", call->ssl);
	return 0;
}

/* ---- rung 1: fentry ------------------------------------------------------------------------ */

SEC("fentry/tcp_sendmsg")
int BPF_PROG(fentry_tcp_sendmsg, struct sock *sk)
{
	return sock__learn(sk, TT_DIR_WRITE);
}

SEC("fentry/tcp_recvmsg")
int BPF_PROG(fentry_tcp_recvmsg, struct sock *sk)
{
	return sock__learn(sk, TT_DIR_READ);
}

/* ---- rung 2: kprobe ------------------------------------------------------------------------ */

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(kprobe_tcp_sendmsg, struct sock *sk)
{
	return sock__learn(sk, TT_DIR_WRITE);
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(kprobe_tcp_recvmsg, struct sock *sk)
{
	return sock__learn(sk, TT_DIR_READ);
}

/* ---- rung 3: syscall tracepoints, fd -> file -> socket -> sock ----------------------------- */

static __always_inline int sock__learn_fd(__u64 fd, __u32 dir)
{
	__u64 id = bpf_get_current_pid_tgid();

	/* Most syscalls on the host come from threads outside any SSL call: leave them fast. */
	if (!sock__wanted(id) && !aead__wants(id, dir))
		return 0;
	return sock__learn(fd__sock(fd), dir);
}

#define SYS_ENTER_PROG(name, dir)                                                                  \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                \
	int tp_sys_enter_##name(struct trace_event_raw_sys_enter *ctx)                             \
	{                                                                                          \
		return sock__learn_fd(ctx->args[0], dir);                                          \
	}

SYS_ENTER_PROG(write, TT_DIR_WRITE)
SYS_ENTER_PROG(read, TT_DIR_READ)
SYS_ENTER_PROG(sendto, TT_DIR_WRITE)
SYS_ENTER_PROG(recvfrom, TT_DIR_READ)
SYS_ENTER_PROG(sendmsg, TT_DIR_WRITE)
SYS_ENTER_PROG(recvmsg, TT_DIR_READ)
SYS_ENTER_PROG(writev, TT_DIR_WRITE)
SYS_ENTER_PROG(readv, TT_DIR_READ)

/*
 * rustls: a socket closed by its process ends its connection at once. Its contexts are freed with
 * it and their addresses may serve the next connection before the TCP state reaches TCP_CLOSE
 * (FIN_WAIT2 can last a minute). Attached on every rung; only processes that opened or sealed a
 * TLS record with aws-lc go past the first lookup.
 */
SEC("tracepoint/syscalls/sys_enter_close")
int tp_rustls_close(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct sock *sk;

	if (!bpf_map_lookup_elem(&aead_procs, &tgid))
		return 0;
	sk = fd__sock(ctx->args[0]);
	if (sk)
		rustls__close((__u64)sk);
	return 0;
}
