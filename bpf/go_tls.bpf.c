// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Go crypto/tls capture: uprobes on crypto/tls.(*Conn).Write and (*Conn).Read (amd64 register
 * ABI: receiver in RAX, b.ptr in RBX, b.len in RCX, the goroutine in R14) stash the call, and
 * uprobes on every RET instruction of the same function (src/attach/golang.c finds them) emit
 * what it transferred (n in RAX). No uretprobes: a uretprobe swaps the return address on the
 * goroutine's stack, and the Go runtime copies stacks when they grow, which breaks the process.
 *
 * A goroutine can park inside Read and resume on another OS thread, so calls are keyed by the
 * goroutine (its runtime.g pointer), not by the thread. The connection id is the *tls.Conn.
 */
#include "tokentap.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The Go internal register ABI: receiver and b.ptr, the result n, the goroutine register. */
#if defined(__TARGET_ARCH_x86)
#define GO_ARG0(ctx) ((ctx)->ax)
#define GO_ARG1(ctx) ((ctx)->bx)
#define GO_G(ctx) ((ctx)->r14)
#elif defined(__TARGET_ARCH_arm64)
#define GO_ARG0(ctx) ((ctx)->regs[0])
#define GO_ARG1(ctx) ((ctx)->regs[1])
#define GO_G(ctx) ((ctx)->regs[28])
#endif

/* tls.bpf.c: the copy rules shared by every TLS source. */
extern int tls__emit_call(const struct ssl_call *call, __u64 n);
extern int tls__close_conn(__u64 ssl, __u32 source);

struct go_call_key {
	__u32 tgid;
	__u32 dir; /* enum tt_direction */
	__u64 g;   /* runtime.g of the calling goroutine */
};

struct go_call {
	struct ssl_call call;
	__u64 thread_key; /* the ssl_calls entry naming this call to sock.bpf.c; 0 when none */
};

/* key: {tgid, direction, goroutine}, value: the Write or Read call that goroutine is inside. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_call_key);
	__type(value, struct go_call);
} go_calls SEC(".maps");

static __always_inline int go__enter(struct pt_regs *ctx, __u32 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_call_key key = {.tgid = id >> 32, .dir = dir, .g = GO_G(ctx)};
	struct go_call gc = {};

	if (key.tgid == self_tgid)
		return 0;
	gc.call.ssl = GO_ARG0(ctx);
	gc.call.buf = GO_ARG1(ctx);
	gc.call.start_ns = bpf_ktime_get_ns();
	gc.call.sp = PT_REGS_SP(ctx);
	gc.call.dir = dir;
	gc.call.source = TT_SRC_GO;
	/*
	 * Write sends its records on this thread before it returns (the socket is non-blocking and
	 * rarely full), so the thread's socket syscalls name the connection's 5-tuple, as they do
	 * inside SSL_write. Read is left out: it usually parks until data comes, and the thread
	 * runs other goroutines meanwhile.
	 */
	if (dir == TT_DIR_WRITE) {
		gc.thread_key = ssl_call__key(id, TT_DIR_WRITE);
		bpf_map_update_elem(&ssl_calls, &gc.thread_key, &gc.call, BPF_ANY);
	}
	bpf_map_update_elem(&go_calls, &key, &gc, BPF_ANY);
	return 0;
}

/* Removes the thread's socket stash, if it is still this call's (the thread may have moved on). */
static __always_inline void go__forget_thread(const struct go_call *gc)
{
	struct ssl_call *t;
	__u64 key = gc->thread_key;

	if (!key)
		return;
	t = bpf_map_lookup_elem(&ssl_calls, &key);
	if (t && t->source == TT_SRC_GO && t->ssl == gc->call.ssl &&
	    t->start_ns == gc->call.start_ns)
		bpf_map_delete_elem(&ssl_calls, &key);
}

static __always_inline int go__return(struct pt_regs *ctx, __u32 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_call_key key = {.tgid = id >> 32, .dir = dir, .g = GO_G(ctx)};
	struct go_call *stash, gc;
	long n = (long)GO_ARG0(ctx);

	if (key.tgid == self_tgid)
		return 0;
	stash = bpf_map_lookup_elem(&go_calls, &key);
	if (!stash) {
		drop__count(TT_DROP_STASH_MISSES, 1);
		return 0;
	}
	gc = *stash;
	bpf_map_delete_elem(&go_calls, &key);
	go__forget_thread(&gc);
	/* Go's int is 64 bits; one call never moves 2 GiB, and the bound keeps n as narrow for
	 * the verifier as SSL_read's int. */
	if (n > 0 && n < 0x7fffffff)
		tls__emit_call(&gc.call, (__u64)n);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(uprobe_go_tls_write)
{
	return go__enter(ctx, TT_DIR_WRITE);
}

/* Attached at each RET of (*Conn).Write: the function returns there, n in RAX. */
SEC("uprobe")
int BPF_KPROBE(uprobe_go_tls_write_ret)
{
	return go__return(ctx, TT_DIR_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(uprobe_go_tls_read)
{
	return go__enter(ctx, TT_DIR_READ);
}

SEC("uprobe")
int BPF_KPROBE(uprobe_go_tls_read_ret)
{
	return go__return(ctx, TT_DIR_READ);
}

/* (*Conn).Close: the connection is done; report its final positions. */
SEC("uprobe")
int BPF_KPROBE(uprobe_go_tls_close)
{
	return tls__close_conn(GO_ARG0(ctx), TT_SRC_GO);
}
