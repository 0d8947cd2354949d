// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Plain HTTP (no TLS) LLM traffic, captured at the socket layer: a self-hosted model reached as
 * http://vllm.svc:8000/v1/chat/completions or Ollama on :11434.
 *
 * Only connections that carry LLM API calls are copied, and the common case is kept cheap:
 *  - every LLM API call is a POST, so a write that does not start with "POST /" is left after a
 *    peek at its first bytes (no fd lookup), unless its process owns an LLM socket;
 *  - a socket that writes "POST /path" is judged, here in the kernel: an LLM API path makes it an
 *    LLM socket, another path leaves it an HTTP socket judged again at its next POSTs (a client
 *    may call /v1/models first), up to PLAIN_RECHECKS. The verdict lives per struct sock in
 *    `plain_socks`; both directions of an LLM socket are copied from then on;
 *  - reads, and every syscall exit, return at once while no LLM socket is live on the host
 *    (`plain_llm_live`), and after one map lookup for processes that own none (`plain_procs`);
 *  - h2c (HTTP/2 without TLS, prior knowledge) starts with the preface "PRI * HTTP/2.0": its
 *    paths are HPACK-coded, so the kernel judges it by server port instead (`plain_h2c_ports`,
 *    --h2c-ports): listed, it is an LLM socket; else it is settled as not LLM traffic.
 *
 * Hooks: the start of a call on an LLM socket stashes its buffer keyed by pid_tgid; the call's
 * end copies what it returned (so non-blocking sockets and partial reads advance positions by
 * what really moved). Rungs, picked by user space by probing (src/capture/capture.c):
 *   fentry       fentry/fexit tcp_{send,recv}msg: the msghdr's iov_iter, saved at entry
 *   kprobe       kprobe/kretprobe on the same (the return matched by a pseudo syscall number)
 *   sock_length  sys_enter_*, then sock:sock_{send,recv}_length (Linux 6.3+): fire for socket
 *                I/O only, so file and pipe syscalls pay nothing at exit
 *   sys_exit     sys_enter_*, then syscalls/sys_exit_*: always there
 * The fentry and kprobe programs are SEC("?...") (not loaded unless asked): a kernel that
 * refuses one fentry program refuses the whole object.
 * conn_id is the struct sock *, source TT_SRC_PLAINTEXT; the 5-tuple goes out as TT_EV_SOCK when
 * the verdict is made, and sock:inet_sock_set_state(TCP_CLOSE) closes the connection. Not seen:
 * sendfile, splice, sendmmsg/recvmmsg, and io_uring on the tracepoint rungs.
 */
#include "tokentap.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define TCP_CLOSE 7
#define MSG_PEEK 2

#define PLAIN_HEAD_MAX 256 /* bytes of a write examined for a request line; a power of two */
#define PLAIN_IOV_MAX 16   /* iovecs of one vectored call that are copied */
#define PLAIN_RECHECKS 8   /* request lines without an LLM path before a socket is given up */
#define PLAIN_PAT_MAX 28

enum plain_verdict {
	PLAIN_HTTP = 0,	 /* HTTP requests seen, none to an LLM path yet */
	PLAIN_LLM = 1,	 /* copy both directions */
	PLAIN_OTHER = 2, /* not LLM traffic: never copied */
};

/* What the first bytes of one write are. */
enum plain_head {
	HEAD_NOT_HTTP = 0,
	HEAD_HTTP = 1, /* a request line, not to an LLM path */
	HEAD_LLM = 2,  /* POST to an LLM API path */
	HEAD_H2C = 3,  /* the HTTP/2 client connection preface: h2c with prior knowledge */
};

/* How a syscall passes its buffer. */
enum plain_buf_kind {
	BUF_PLAIN = 0, /* (buf, len) */
	BUF_IOV = 1,   /* (struct iovec *, iovcnt) */
	BUF_MSG = 2,   /* (struct user_msghdr *, -) */
};

struct plain_sock {
	__u64 seq[2];  /* next stream position per direction, from the LLM verdict on */
	__u32 tgid;    /* the process that wrote the request: the close is reported as its */
	__u8 verdict;  /* enum plain_verdict */
	__u8 requests; /* request lines seen without an LLM path */
	__u16 _pad;
};

/* key: struct sock *, value: the verdict on that TCP socket. Freed at TCP_CLOSE. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct plain_sock);
} plain_socks SEC(".maps");

/* How a stashed call's bytes are found: call->iov. */
enum plain_iov {
	IOV_NONE = 0,	/* buf is the user buffer */
	IOV_USER = 1,	/* buf is a struct iovec array in user memory */
	IOV_KERNEL = 2, /* buf is the kernel's copy of the iovec array (an iov_iter's) */
};

struct plain_call {
	__u64 nr; /* syscall number (or PLAIN_NR_TCP_*): the exit must be this call's */
	__u64 sk;
	__u64 buf;   /* the buffer, or the struct iovec array when iov is set */
	__u64 count; /* its length, or the number of iovecs */
	__u64 start_ns;
	__u64 skip; /* IOV_KERNEL: bytes of the first iovec already consumed (iov_offset) */
	__u32 dir;  /* enum tt_direction */
	__u32 iov;  /* enum plain_iov */
};

/* Pseudo syscall numbers of the kprobe rung's stashes: outside any real syscall's range. */
#define PLAIN_NR_TCP_SENDMSG 0x7ffff000
#define PLAIN_NR_TCP_RECVMSG 0x7ffff001

/* key: pid_tgid, value: the call on an LLM socket the thread is inside. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct plain_call);
} plain_calls SEC(".maps");

/*
 * LLM sockets alive on the host. May overcount (an LLM socket evicted from plain_socks is never
 * counted down), which only costs the fast paths, never a missed byte.
 */
__u64 plain_llm_live = 0;

/* key: tgid, value: LLM sockets the process owns (same caveat). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} plain_procs SEC(".maps");

/*
 * key: server port (host order), value: 1. An h2c connection (HTTP/2 without TLS, prior
 * knowledge) is copied only when it goes to one of these ports: its request paths sit inside
 * HPACK-compressed header blocks the kernel cannot judge, and h2c is mostly gRPC, which must
 * stay free. Filled by user space (--h2c-ports) before attach.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} plain_h2c_ports SEC(".maps");

/* index: enum tt_plain_counter, value: count on this CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TT_PLAIN__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} plain_counters SEC(".maps");

struct plain_head_buf {
	char b[PLAIN_HEAD_MAX];
};

/* The first bytes of a write being judged. key: 0. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct plain_head_buf);
} plain_head SEC(".maps");

struct plain_pattern {
	char s[PLAIN_PAT_MAX];
	__u32 len;
	__u32 bedrock; /* only under /model/ (Bedrock Runtime) */
};

/*
 * Path endings (before any '?') of LLM API calls. "/completions" covers /v1/chat/completions,
 * /chat/completions, /v1/completions and Azure's /openai/deployments/{d}/chat/completions.
 */
/* clang-format off */
#define PATTERN(path, bedrock) {path, sizeof(path) - 1, bedrock}

static const struct plain_pattern patterns[] = {
    PATTERN("/completions", 0),
    PATTERN("/embeddings", 0),
    PATTERN("/responses", 0),
    PATTERN("/v1/messages", 0),
    PATTERN("/api/chat", 0),
    PATTERN("/api/generate", 0),
    PATTERN("/api/embed", 0),
    PATTERN("/api/embeddings", 0),
    PATTERN(":generateContent", 0),
    PATTERN(":streamGenerateContent", 0),
    PATTERN(":embedContent", 0),
    PATTERN(":batchEmbedContents", 0),
    PATTERN("/converse", 1),
    PATTERN("/converse-stream", 1),
    PATTERN("/invoke", 1),
    PATTERN("/invoke-with-response-stream", 1),
};
/* clang-format on */
#define PLAIN_NPAT (sizeof(patterns) / sizeof(patterns[0]))

static __always_inline void plain__count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&plain_counters, &counter);

	if (v)
		*v += 1;
}

/* ---- judging the first bytes of a write ---------------------------------------------------- */

static __always_inline bool head__ends_with(const struct plain_head_buf *h, __u32 end,
					    const struct plain_pattern *p)
{
	__u32 len = p->len, k;

	if (len > PLAIN_PAT_MAX || end < len)
		return false;
	for (k = 0; k < PLAIN_PAT_MAX; k++) {
		if (k >= len)
			break;
		if (h->b[(end - len + k) & (PLAIN_HEAD_MAX - 1)] != p->s[k])
			return false;
	}
	return true;
}

/*
 * Whether the path ending at `end` in the judged head is an LLM API path. A global function:
 * `end` arrives as an unknown scalar, so the verifier checks the pattern loops once instead of
 * once per path length the caller's scan could stop at.
 */
__noinline int plain__llm_path(__u32 bedrock, __u32 end)
{
	struct plain_head_buf *h;
	__u32 zero = 0, i;

	h = bpf_map_lookup_elem(&plain_head, &zero);
	if (!h || end > PLAIN_HEAD_MAX)
		return 0;
	for (i = 0; i < PLAIN_NPAT; i++) {
		if (patterns[i].bedrock && !bedrock)
			continue;
		if (head__ends_with(h, end, &patterns[i]))
			return 1;
	}
	return 0;
}

/* Eight bytes as a little-endian word, to compare the preface a word at a time. */
#define LE8(a, b, c, d, e, f, g, h)                                                                \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 |   \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

/*
 * "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", the HTTP/2 client preface. Words, not a string: a const
 * array would be a .rodata variable of its own, and this kernel's BTF check refuses the linked
 * object's .rodata layout then.
 */
static __always_inline bool plain__h2_preface(const struct plain_head_buf *h)
{
	const __u64 *w = (const __u64 *)h->b;

	return w[0] == LE8('P', 'R', 'I', ' ', '*', ' ', 'H', 'T') &&
	       w[1] == LE8('T', 'P', '/', '2', '.', '0', '\r', '\n') &&
	       w[2] == LE8('\r', '\n', 'S', 'M', '\r', '\n', '\r', '\n');
}

/*
 * Judges the first bytes of a write: an HTTP/1.x request line "METHOD /path HTTP/1.x" and
 * whether it POSTs to an LLM path. A global function: verified once, not once per caller.
 */
__noinline int plain__classify(__u64 src, __u64 len)
{
	struct plain_head_buf *h;
	__u32 zero = 0, m, end, bedrock;

	h = bpf_map_lookup_elem(&plain_head, &zero);
	if (!h)
		return HEAD_NOT_HTTP;
	if (len > PLAIN_HEAD_MAX)
		len = PLAIN_HEAD_MAX;
	barrier_var(len);
	/* "GET / HTTP/1.1\r\n" is the shortest request line. */
	if (len < 16 || len > PLAIN_HEAD_MAX)
		return HEAD_NOT_HTTP;
	if (bpf_probe_read_user(h->b, len, (void *)src))
		return HEAD_NOT_HTTP;
	if (len >= 24 && plain__h2_preface(h))
		return HEAD_H2C;
	for (m = 0; m < 8; m++) {
		if (h->b[m] < 'A' || h->b[m] > 'Z')
			break;
	}
	if (m < 3 || m > 7 || h->b[m] != ' ' || h->b[m + 1] != '/')
		return HEAD_NOT_HTTP;
	if (m != 4 || h->b[0] != 'P' || h->b[1] != 'O' || h->b[2] != 'S' || h->b[3] != 'T')
		return HEAD_HTTP;
	for (end = m + 1; end < PLAIN_HEAD_MAX; end++) {
		char c = h->b[end];

		if (end >= len || c == ' ' || c == '?' || c == '\r')
			break;
	}
	/* A path longer than what was read cannot be judged: treat it as another request. */
	if (end >= len)
		return HEAD_HTTP;
	/* Bedrock Runtime paths are /model/{id}/converse...: their endings alone are too common. */
	bedrock = h->b[5] == '/' && h->b[6] == 'm' && h->b[7] == 'o' && h->b[8] == 'd' &&
		  h->b[9] == 'e' && h->b[10] == 'l' && h->b[11] == '/';
	return plain__llm_path(bedrock, end) ? HEAD_LLM : HEAD_HTTP;
}

/* The syscall's buffer as (first bytes, their length) and as what the exit copies. */
static __always_inline int plain__args(__u32 kind, __u64 a1, __u64 a2, struct plain_call *call)
{
	struct user_msghdr msg;

	call->buf = a1;
	call->count = a2;
	call->iov = kind != BUF_PLAIN ? IOV_USER : IOV_NONE;
	if (kind != BUF_MSG)
		return 0;
	if (bpf_probe_read_user(&msg, sizeof(msg), (void *)a1))
		return -1;
	call->buf = (__u64)msg.msg_iov;
	call->count = msg.msg_iovlen;
	return 0;
}

/* The i-th iovec of a vectored call, the consumed part of the first one left out. */
static __always_inline int plain__iovec(const struct plain_call *call, __u32 i, struct iovec *iov)
{
	void *at = (void *)(call->buf + i * sizeof(*iov));
	__u64 skip = i ? 0 : call->skip;

	if (call->iov == IOV_KERNEL ? bpf_probe_read_kernel(iov, sizeof(*iov), at)
				    : bpf_probe_read_user(iov, sizeof(*iov), at))
		return -1;
	if (skip > iov->iov_len)
		skip = iov->iov_len;
	iov->iov_base += skip;
	iov->iov_len -= skip;
	return 0;
}

/* The first buffer of the call: the buffer itself, or its first iovec. */
static __always_inline int plain__first(const struct plain_call *call, __u64 *src, __u64 *len)
{
	struct iovec iov;

	*src = call->buf;
	*len = call->count;
	if (call->iov == IOV_NONE)
		return 0;
	if (!call->count || plain__iovec(call, 0, &iov))
		return -1;
	*src = (__u64)iov.iov_base;
	*len = iov.iov_len;
	return 0;
}

/*
 * A peek at the first bytes: only a write starting "POST /" (an HTTP/1 request) or "PRI * " (the
 * HTTP/2 preface) can make a socket an LLM one.
 */
static __always_inline bool plain__posts(const struct plain_call *call)
{
	char b[8];
	__u64 src, len;

	if (plain__first(call, &src, &len) || len < 16 || bpf_probe_read_user(b, 6, (void *)src))
		return false;
	if (b[0] == 'P' && b[1] == 'R' && b[2] == 'I' && b[3] == ' ' && b[4] == '*' && b[5] == ' ')
		return true;
	return b[0] == 'P' && b[1] == 'O' && b[2] == 'S' && b[3] == 'T' && b[4] == ' ' &&
	       b[5] == '/';
}

/* An h2c connection is copied when its server port is listed in plain_h2c_ports. */
static __always_inline int plain__h2c_verdict(struct sock *sk)
{
	__u16 port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));

	if (bpf_map_lookup_elem(&plain_h2c_ports, &port))
		return HEAD_LLM;
	plain__count(TT_PLAIN_SOCKS_H2C_OTHER);
	return HEAD_NOT_HTTP;
}

static __always_inline int plain__judge(const struct plain_call *call)
{
	__u64 src, len;

	if (plain__first(call, &src, &len))
		return HEAD_NOT_HTTP;
	return plain__classify(src, len);
}

/* Counts an LLM socket in for its process and the host: their reads get looked at from now. */
static __always_inline void plain__own(__u32 tgid)
{
	__u64 one = 1, *n;

	__sync_fetch_and_add(&plain_llm_live, 1);
	n = bpf_map_lookup_elem(&plain_procs, &tgid);
	if (n)
		__sync_fetch_and_add(n, 1);
	else if (bpf_map_update_elem(&plain_procs, &tgid, &one, BPF_NOEXIST) &&
		 (n = bpf_map_lookup_elem(&plain_procs, &tgid)))
		__sync_fetch_and_add(n, 1);
}

static __always_inline void plain__disown(__u32 tgid)
{
	__u64 *n = bpf_map_lookup_elem(&plain_procs, &tgid);

	if (plain_llm_live)
		__sync_fetch_and_add(&plain_llm_live, -1);
	if (!n)
		return;
	if (*n <= 1)
		bpf_map_delete_elem(&plain_procs, &tgid);
	else
		__sync_fetch_and_add(n, -1);
}

/* Whether the process owns an LLM socket (its reads and all its writes are looked at). */
static __always_inline bool plain__owner(__u32 tgid)
{
	return plain_llm_live && bpf_map_lookup_elem(&plain_procs, &tgid);
}

/* An LLM socket is announced once, with its 5-tuple, before any of its data. */
static __always_inline void plain__announce(__u64 id, struct sock *sk, __u16 family)
{
	struct tt_sock_event ev = {};

	hdr__fill(&ev.hdr, TT_EV_SOCK, id, (__u64)sk);
	ev.hdr.source = TT_SRC_PLAINTEXT;
	ev.sock_cookie = (__u64)sk;
	ev.family = family;
	sock__read_addrs(&ev, sk);
	control__emit(&ev, sizeof(ev));
	plain__own(id >> 32);
	plain__count(TT_PLAIN_SOCKS_LLM);
	tt_debug("tokentap: plain llm sock %llx %u->%u", (__u64)sk, ev.sport, ev.dport);
}

/* First request line a TCP socket writes: judge it and remember the verdict. */
static __always_inline struct plain_sock *plain__judge_new(__u64 id, struct sock *sk,
							   const struct plain_call *call)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	struct plain_sock fresh = {};
	__u64 key = (__u64)sk;
	int head;

	if ((family != AF_INET && family != AF_INET6) || BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return NULL;
	/* Inside an SSL call the bytes are TLS records, captured by the TLS probes. */
	head = tls__in_call(id) ? HEAD_NOT_HTTP : plain__judge(call);
	if (head == HEAD_H2C && plain__h2c_verdict(sk) != HEAD_LLM) {
		/* An h2c connection never writes a request line later: settle it for good. */
		fresh.verdict = PLAIN_OTHER;
		bpf_map_update_elem(&plain_socks, &key, &fresh, BPF_NOEXIST);
		return NULL;
	}
	if (head == HEAD_H2C)
		head = HEAD_LLM;
	if (head == HEAD_NOT_HTTP)
		return NULL; /* judged at its first request line, if it ever writes one */
	fresh.tgid = id >> 32;
	fresh.verdict = head == HEAD_LLM ? PLAIN_LLM : PLAIN_HTTP;
	fresh.requests = head == HEAD_HTTP;
	if (bpf_map_update_elem(&plain_socks, &key, &fresh, BPF_NOEXIST))
		return bpf_map_lookup_elem(&plain_socks, &key); /* another thread judged it */
	if (head == HEAD_LLM)
		plain__announce(id, sk, family);
	else
		plain__count(TT_PLAIN_SOCKS_OTHER);
	return bpf_map_lookup_elem(&plain_socks, &key);
}

/* A later request on an HTTP connection whose earlier ones were not LLM calls. */
static __always_inline void plain__rejudge(__u64 id, struct sock *sk, struct plain_sock *ps,
					   const struct plain_call *call)
{
	int head = tls__in_call(id) ? HEAD_NOT_HTTP : plain__judge(call);

	if (head == HEAD_LLM) {
		ps->verdict = PLAIN_LLM;
		ps->tgid = id >> 32;
		plain__announce(id, sk, BPF_CORE_READ(sk, __sk_common.skc_family));
	} else if (head == HEAD_HTTP && ++ps->requests >= PLAIN_RECHECKS) {
		ps->verdict = PLAIN_OTHER;
	}
}

/* A call on socket sk (call's buffer, nr and dir filled): judge the socket, stash an LLM one's. */
static __always_inline int plain__stash(__u64 id, struct sock *sk, struct plain_call *call)
{
	struct plain_sock *ps;
	__u64 key = (__u64)sk;

	ps = bpf_map_lookup_elem(&plain_socks, &key);
	/* A client writes first: reads on a socket not yet judged are not a client's. */
	if ((!ps || ps->verdict == PLAIN_HTTP) && call->dir != TT_DIR_WRITE)
		return 0;
	if (ps && ps->verdict == PLAIN_OTHER)
		return 0;
	if (!ps)
		ps = plain__judge_new(id, sk, call);
	else if (ps->verdict == PLAIN_HTTP)
		plain__rejudge(id, sk, ps, call);
	if (!ps || ps->verdict != PLAIN_LLM || tls__in_call(id))
		return 0;
	call->sk = key;
	call->start_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&plain_calls, &id, call, BPF_ANY);
	return 0;
}

static __always_inline int plain__enter(__u64 nr, __u64 fd, __u32 dir, __u32 kind, __u64 a1,
					__u64 a2)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct plain_call call = {.nr = nr, .dir = dir};
	struct sock *sk;
	bool owner;

	if (tgid == self_tgid)
		return 0;
	/* The fast paths: every syscall on the host that reads or writes comes through here. */
	owner = plain__owner(tgid);
	if (!owner && dir != TT_DIR_WRITE)
		return 0;
	if (plain__args(kind, a1, a2, &call))
		return 0;
	if (!owner && !plain__posts(&call))
		return 0;
	sk = fd__sock(fd);
	if (!sk)
		return 0;
	return plain__stash(id, sk, &call);
}

/* ---- copying what a call moved -------------------------------------------------------------- */

/* Copies len bytes at src in chunks, header already in data_scratch. Global: verified once. */
__noinline int plain__emit_buf(__u64 seq, __u64 src, __u64 len)
{
	const __u64 cap = (__u64)TT_CHUNK_MAX * TT_CALL_CHUNKS_MAX;
	__u32 i;

	for (i = 0; i < TT_CALL_CHUNKS_MAX; i++) {
		__u64 off = (__u64)i * TT_CHUNK_MAX;

		if (off >= len)
			break;
		data__emit_chunk(seq + off, src + off, len - off);
	}
	if (len > cap)
		drop__count(TT_DROP_TRUNCATED_BYTES, len - cap);
	return 0;
}

static __always_inline void plain__emit_iov(const struct plain_call *call, __u64 seq, __u64 n)
{
	__u64 off = 0;
	__u32 i;

	for (i = 0; i < PLAIN_IOV_MAX; i++) {
		struct iovec iov;
		__u64 take;

		if (off >= n || i >= call->count)
			break;
		if (plain__iovec(call, i, &iov))
			break;
		take = iov.iov_len < n - off ? iov.iov_len : n - off;
		plain__emit_buf(seq + off, (__u64)iov.iov_base, take);
		off += take;
	}
	/* The position still advances by n: the bytes not copied become a gap. */
	if (off < n)
		drop__count(TT_DROP_TRUNCATED_BYTES, n - off);
}

/* sk: the socket the call ended on (sock_length rung), or 0 (sys_exit rung: nr checks it). */
static __always_inline int plain__exit(__u64 nr, __u64 sk, __u32 dir_done, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct plain_call *stash, call;
	struct tt_data_event *ev;
	struct plain_sock *ps;
	__u32 zero = 0, dir;
	__u64 seq;

	/* Calls are stashed only on LLM sockets. */
	if (!plain_llm_live)
		return 0;
	stash = bpf_map_lookup_elem(&plain_calls, &id);
	if (!stash)
		return 0;
	call = *stash;
	bpf_map_delete_elem(&plain_calls, &id);
	/*
	 * A stash left by an enter whose exit never ran (the thread died) is not this call's. The
	 * syscalls/ tracepoints' number is an int: the upper half of the long read here is padding.
	 */
	if (sk ? call.sk != sk || call.dir != dir_done : (__u32)call.nr != (__u32)nr)
		return 0;
	if (ret <= 0)
		return 0; /* EAGAIN, EOF, error: nothing moved */
	ps = bpf_map_lookup_elem(&plain_socks, &call.sk);
	ev = bpf_map_lookup_elem(&data_scratch, &zero);
	if (!ps || !ev)
		return 0;
	dir = call.dir & 1;
	seq = ps->seq[dir];
	ps->seq[dir] = seq + ret;
	hdr__fill(&ev->hdr, TT_EV_DATA, id, call.sk);
	ev->hdr.dir = dir;
	ev->hdr.source = TT_SRC_PLAINTEXT;
	ev->call_start_ns = call.start_ns;
	ev->call_len = ret > 0xffffffffL ? 0xffffffffU : (__u32)ret;
	if (call.iov != IOV_NONE)
		plain__emit_iov(&call, seq, ret);
	else
		plain__emit_buf(seq, call.buf, ret);
	return 0;
}

/* ---- rung: syscall tracepoints -------------------------------------------------------------- */

/* flags_arg: which argument holds MSG_* flags, 0 for none (args[0] is the fd). */
#define PLAIN_SYSCALL(name, dir, kind, flags_arg)                                                  \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                \
	int tp_plain_enter_##name(struct trace_event_raw_sys_enter *ctx)                           \
	{                                                                                          \
		/* A peek leaves the bytes queued: the next read delivers them. */                 \
		if ((flags_arg) && (ctx->args[flags_arg] & MSG_PEEK))                              \
			return 0;                                                                  \
		return plain__enter(ctx->id, ctx->args[0], dir, kind, ctx->args[1], ctx->args[2]); \
	}                                                                                          \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                                 \
	int tp_plain_exit_##name(struct trace_event_raw_sys_exit *ctx)                             \
	{                                                                                          \
		return plain__exit(ctx->id, 0, dir, ctx->ret);                                     \
	}

PLAIN_SYSCALL(write, TT_DIR_WRITE, BUF_PLAIN, 0)
PLAIN_SYSCALL(sendto, TT_DIR_WRITE, BUF_PLAIN, 0)
PLAIN_SYSCALL(writev, TT_DIR_WRITE, BUF_IOV, 0)
PLAIN_SYSCALL(sendmsg, TT_DIR_WRITE, BUF_MSG, 0)
PLAIN_SYSCALL(read, TT_DIR_READ, BUF_PLAIN, 0)
PLAIN_SYSCALL(recvfrom, TT_DIR_READ, BUF_PLAIN, 3)
PLAIN_SYSCALL(readv, TT_DIR_READ, BUF_IOV, 0)
PLAIN_SYSCALL(recvmsg, TT_DIR_READ, BUF_MSG, 2)

/*
 * The sock:sock_{send,recv}_length record (Linux 6.3+), spelled out rather than taken from
 * vmlinux.h: without a CO-RE relocation the programs load on older kernels too, where they are
 * simply not attached.
 */
struct plain_msg_length {
	__u64 common;
	__u64 sk;
	__u16 family;
	__u16 protocol;
	int ret;
	int flags;
};

SEC("tracepoint/sock/sock_send_length")
int tp_plain_len_send(struct plain_msg_length *ctx)
{
	return plain__exit(0, ctx->sk, TT_DIR_WRITE, ctx->ret);
}

SEC("tracepoint/sock/sock_recv_length")
int tp_plain_len_recv(struct plain_msg_length *ctx)
{
	return plain__exit(0, ctx->sk, TT_DIR_READ, ctx->ret);
}

/* ---- rungs: tcp_sendmsg / tcp_recvmsg (fentry + fexit, kprobe + kretprobe) ----------------- */

/* Before Linux 6.4 an iov_iter's iovec array was named iov. */
struct iov_iter___pre64 {
	const struct iovec *iov;
} __attribute__((preserve_access_index));

/*
 * The user memory a TCP call's iterator walks, as a stash: ITER_UBUF (one buffer, the common
 * read/write/send/recv since Linux 6.0) or ITER_IOVEC (the kernel's copy of the iovec array,
 * readv/writev/sendmsg/recvmsg). Iterators over kernel memory (in-kernel users, splice,
 * sendfile) carry no user data: -1. Kernels before iter_type (5.14) are not read.
 */
static __always_inline int plain__iter_args(struct msghdr *msg, struct plain_call *call)
{
	struct iov_iter *it = &msg->msg_iter;
	__u8 type;

	if (!bpf_core_field_exists(it->iter_type))
		return -1;
	type = BPF_CORE_READ(it, iter_type);
	call->skip = BPF_CORE_READ(it, iov_offset);
	if (bpf_core_enum_value_exists(enum iter_type, ITER_UBUF) &&
	    type == bpf_core_enum_value(enum iter_type, ITER_UBUF)) {
		call->buf = (__u64)BPF_CORE_READ(it, ubuf) + call->skip;
		call->count = BPF_CORE_READ(it, count);
		call->skip = 0;
		call->iov = IOV_NONE;
		return 0;
	}
	if (type != bpf_core_enum_value(enum iter_type, ITER_IOVEC))
		return -1;
	if (bpf_core_field_exists(it->__iov))
		call->buf = (__u64)BPF_CORE_READ(it, __iov);
	else
		call->buf = (__u64)BPF_CORE_READ((struct iov_iter___pre64 *)it, iov);
	call->count = BPF_CORE_READ(it, nr_segs);
	call->iov = IOV_KERNEL;
	return 0;
}

/*
 * Entry of tcp_sendmsg/tcp_recvmsg: the same judging as the syscall rung, without the fd lookup
 * (the sock is an argument) and without paying for file and pipe I/O. The iterator is saved at
 * entry: by the return it has advanced past the bytes that moved.
 */
static __always_inline int plain__enter_tcp(struct sock *sk, struct msghdr *msg, __u32 dir,
					    __u64 nr)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct plain_call call = {.nr = nr, .dir = dir};
	bool owner;

	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	owner = plain__owner(id >> 32);
	if (!owner && dir != TT_DIR_WRITE)
		return 0;
	if (!sk || !msg || plain__iter_args(msg, &call))
		return 0;
	if (!owner && !plain__posts(&call))
		return 0;
	return plain__stash(id, sk, &call);
}

SEC("?fentry/tcp_sendmsg")
int BPF_PROG(fentry_plain_tcp_sendmsg, struct sock *sk, struct msghdr *msg, size_t size)
{
	return plain__enter_tcp(sk, msg, TT_DIR_WRITE, PLAIN_NR_TCP_SENDMSG);
}

SEC("?fexit/tcp_sendmsg")
int BPF_PROG(fexit_plain_tcp_sendmsg, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	return plain__exit(0, (__u64)sk, TT_DIR_WRITE, ret);
}

/* flags is tcp_recvmsg's 4th argument since Linux 5.19 (the nonblock argument went away). */
SEC("?fentry/tcp_recvmsg")
int BPF_PROG(fentry_plain_tcp_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags)
{
	if (flags & MSG_PEEK)
		return 0;
	return plain__enter_tcp(sk, msg, TT_DIR_READ, PLAIN_NR_TCP_RECVMSG);
}

SEC("?fexit/tcp_recvmsg")
int BPF_PROG(fexit_plain_tcp_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	return plain__exit(0, (__u64)sk, TT_DIR_READ, ret);
}

SEC("?kprobe/tcp_sendmsg")
int BPF_KPROBE(kprobe_plain_tcp_sendmsg, struct sock *sk, struct msghdr *msg)
{
	return plain__enter_tcp(sk, msg, TT_DIR_WRITE, PLAIN_NR_TCP_SENDMSG);
}

/* A kretprobe sees only the return value: the stash's pseudo syscall number matches it. */
SEC("?kretprobe/tcp_sendmsg")
int BPF_KRETPROBE(kretprobe_plain_tcp_sendmsg, int ret)
{
	return plain__exit(PLAIN_NR_TCP_SENDMSG, 0, TT_DIR_WRITE, ret);
}

SEC("?kprobe/tcp_recvmsg")
int BPF_KPROBE(kprobe_plain_tcp_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags)
{
	if (flags & MSG_PEEK)
		return 0;
	return plain__enter_tcp(sk, msg, TT_DIR_READ, PLAIN_NR_TCP_RECVMSG);
}

SEC("?kretprobe/tcp_recvmsg")
int BPF_KRETPROBE(kretprobe_plain_tcp_recvmsg, int ret)
{
	return plain__exit(PLAIN_NR_TCP_RECVMSG, 0, TT_DIR_READ, ret);
}

/* The socket is gone (both ends done, or reset): close an LLM connection, forget the verdict. */
SEC("tracepoint/sock/inet_sock_set_state")
int tp_plain_sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct tt_close_event ev = {};
	struct plain_sock *ps;
	__u64 key;

	if (ctx->newstate != TCP_CLOSE || ctx->protocol != IPPROTO_TCP)
		return 0;
	key = (__u64)ctx->skaddr;
	rustls__close(key);
	ps = bpf_map_lookup_elem(&plain_socks, &key);
	if (!ps)
		return 0;
	if (ps->verdict == PLAIN_LLM) {
		/* May run in softirq context: the owner is the process that wrote the request. */
		hdr__fill(&ev.hdr, TT_EV_CLOSE, (__u64)ps->tgid << 32, key);
		ev.hdr.source = TT_SRC_PLAINTEXT;
		ev.write_seq = ps->seq[TT_DIR_WRITE];
		ev.read_seq = ps->seq[TT_DIR_READ];
		control__emit(&ev, sizeof(ev));
		plain__disown(ps->tgid);
	}
	bpf_map_delete_elem(&plain_socks, &key);
	return 0;
}
