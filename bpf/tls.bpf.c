// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * TLS plaintext capture: uprobes on SSL_write/SSL_read (+_ex) and GnuTLS's
 * gnutls_record_send/recv stash the arguments, uretprobes copy what the call actually transferred
 * into the ring buffer as TT_EV_DATA records, and an uprobe on SSL_free / gnutls_deinit closes
 * the connection with its final stream positions.
 */
#include "tokentap.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * On x86 the call pushed the return address, so the return probe sees the entry stack pointer
 * plus 8; on arm64 and others the return address lives in a register.
 */
#if defined(__TARGET_ARCH_x86)
#define RET_SP_DELTA 8
#else
#define RET_SP_DELTA 0
#endif

/* A second SSL call this soon after the first, deeper in the same stack, is nested in it. */
#define NEST_WINDOW_NS (50ULL * 1000 * 1000)

/* sp: the stack pointer at the function's entry (an emulated site inside it derives it). */
static __always_inline int ssl__enter_sp(void *ssl, void *buf, void *len_ptr, __u32 dir,
					 __u32 source, __u64 sp)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns();
	__u64 key = ssl_call__key(id, dir);
	struct ssl_call call = {}, *outer;

	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	/*
	 * Some builds implement SSL_write_ex with SSL_write (or the reverse): keep the outer call.
	 * A stash left behind by a missed return probe is old or not above us, so it is replaced.
	 */
	outer = bpf_map_lookup_elem(&ssl_calls, &key);
	if (outer && outer->sp > sp && now - outer->start_ns < NEST_WINDOW_NS)
		return 0;
	call.ssl = (__u64)ssl;
	call.buf = (__u64)buf;
	call.len_ptr = (__u64)len_ptr;
	call.start_ns = now;
	call.sp = sp;
	call.dir = dir;
	call.source = source;
	bpf_map_update_elem(&ssl_calls, &key, &call, BPF_ANY);
	return 0;
}

static __always_inline int ssl__enter(struct pt_regs *ctx, void *ssl, void *buf, void *len_ptr,
				      __u32 dir, __u32 source)
{
	return ssl__enter_sp(ssl, buf, len_ptr, dir, source, PT_REGS_SP(ctx));
}

/*
 * Bytes the call moved: the return value (an int for OpenSSL, an ssize_t for GnuTLS), or
 * *written / *readbytes for the _ex variants.
 */
static __always_inline __u64 ssl__transferred(struct pt_regs *ctx, const struct ssl_call *call)
{
	int rc = (int)PT_REGS_RC(ctx);
	long lrc = (long)PT_REGS_RC(ctx);
	__u64 n = 0;

	if (call->source == TT_SRC_GNUTLS)
		return lrc > 0 ? lrc : 0;
	if (!call->len_ptr)
		return rc > 0 ? rc : 0;
	if (rc != 1)
		return 0;
	if (bpf_probe_read_user(&n, sizeof(n), (void *)call->len_ptr)) {
		drop__count(TT_DROP_READ_ERRORS, 1);
		return 0;
	}
	return n;
}

/*
 * Copies one slice of the caller's buffer into the per-CPU record (header already filled) and
 * submits it at its real size. A global function: the verifier checks it once, not once per
 * iteration of the caller's chunk loop, which would cost it ~10k instructions per chunk.
 */
__noinline int data__emit_chunk(__u64 seq, __u64 src, __u64 len)
{
	struct tt_data_event *ev;
	__u32 zero = 0;

	ev = bpf_map_lookup_elem(&data_scratch, &zero);
	if (!ev)
		return 0;
	/* Keep the clamp in a register the verifier tracks: 1 <= len <= TT_CHUNK_MAX. */
	if (len > TT_CHUNK_MAX)
		len = TT_CHUNK_MAX;
	barrier_var(len);
	if (len > TT_CHUNK_MAX || len == 0)
		return 0;
	ev->seq = seq;
	ev->data_len = len;
	if (bpf_probe_read_user(ev->data, len, (void *)src)) {
		drop__count(TT_DROP_READ_ERRORS, len);
		return 0;
	}
	if (bpf_ringbuf_output(&events, ev, TT_DATA_HDR_SIZE + len,
			       ringbuf__flags(TT_DATA_HDR_SIZE + len))) {
		drop__count(TT_DROP_RINGBUF_RECORDS, 1);
		drop__count(TT_DROP_RINGBUF_BYTES, len);
		return 0;
	}
	return 1;
}

/* plain.bpf.c's judge of a write's first bytes, shared so TLS and plain HTTP follow one rule. */
extern int plain__classify(__u64 src, __u64 len);
#define CLASSIFY_HTTP 1 /* a request line to a path that is no LLM API */
#define CLASSIFY_LLM 2	/* a POST to an LLM API path */

/* A server's first write is a response: "HTTP/1.". */
static __always_inline bool buf__is_response(__u64 buf, __u64 n)
{
	char b[8] = {};

	if (n < 8 || bpf_probe_read_user(b, sizeof(b), (void *)buf))
		return false;
	return b[0] == 'H' && b[1] == 'T' && b[2] == 'T' && b[3] == 'P' && b[4] == '/' &&
	       b[5] == '1' && b[6] == '.';
}

/*
 * Whether this call's bytes are copied. A connection's first write decides: a request line to
 * a path that is no LLM API, or a server's response, makes it ignored; anything else (an LLM
 * request, HTTP/2 whose paths hide in HPACK, another protocol, a body because capture began
 * mid-stream) is copied and left to user space. Each later write of an ignored connection is
 * judged again, and copying resumes at a request to an LLM path (a keep-alive client may GET
 * /v1/models first). Ignoring skips the copy, the ring buffer and user space; the probes' own
 * cost stays.
 */
static __always_inline bool conn__copying(struct conn_state *st, const struct ssl_call *call,
					  __u64 n)
{
	int head;

	if (st->verdict == VERDICT_COPY)
		return true;
	if (call->dir != TT_DIR_WRITE)
		return st->verdict == VERDICT_NEW; /* a server reads requests before it writes */
	head = plain__classify(call->buf, n);
	if (head == CLASSIFY_LLM) {
		st->pending = st->verdict == VERDICT_IGNORE ? PENDING_SYNC : st->pending;
		st->verdict = VERDICT_COPY;
		return true;
	}
	if (st->verdict == VERDICT_IGNORE)
		return false;
	if (head == CLASSIFY_HTTP || buf__is_response(call->buf, n)) {
		st->verdict = VERDICT_IGNORE;
		st->pending = PENDING_IGNORE;
		return false;
	}
	st->verdict = VERDICT_COPY;
	return true;
}

/* Sends the positions record the connection owes (TT_EV_IGNORE or TT_EV_SYNC), if any. */
static __always_inline void conn__send_pending(struct conn_state *st, const struct ssl_call *call,
					       __u64 id, __u64 wseq, __u64 rseq)
{
	struct tt_close_event ev = {};

	if (st->pending == PENDING_NONE)
		return;
	hdr__fill(&ev.hdr, st->pending == PENDING_IGNORE ? TT_EV_IGNORE : TT_EV_SYNC, id, call->ssl);
	ev.hdr.source = call->source;
	ev.write_seq = wseq;
	ev.read_seq = rseq;
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), ringbuf__flags(sizeof(ev)))) {
		drop__count(TT_DROP_CONTROL_RECORDS, 1);
		return; /* owed still: sent before a later record */
	}
	st->pending = PENDING_NONE;
}

static __always_inline void data__emit(const struct ssl_call *call, __u64 id, __u64 n)
{
	const __u64 cap = (__u64)TT_CHUNK_MAX * TT_CALL_CHUNKS_MAX;
	struct conn_state *st = conn__get(id >> 32, call->ssl);
	struct tt_data_event *ev;
	__u32 zero = 0, dir = call->dir & 1;
	__u64 seq, wseq, rseq;
	bool copy;

	ev = bpf_map_lookup_elem(&data_scratch, &zero);
	if (!st || !ev) {
		drop__count(TT_DROP_READ_ERRORS, n);
		return;
	}
	/* The position advances by everything transferred, delivered or not: losses become gaps. */
	seq = st->seq[dir];
	st->seq[dir] = seq + n;
	wseq = dir == TT_DIR_WRITE ? seq : st->seq[TT_DIR_WRITE];
	rseq = dir == TT_DIR_READ ? seq : st->seq[TT_DIR_READ];
	copy = conn__copying(st, call, n);
	conn__send_pending(st, call, id, wseq, rseq);
	if (!copy)
		return;

	hdr__fill(&ev->hdr, TT_EV_DATA, id, call->ssl);
	ev->hdr.dir = dir;
	ev->hdr.source = call->source;
	ev->call_start_ns = call->start_ns;
	ev->call_len = n > 0xffffffffULL ? 0xffffffffU : (__u32)n;

	for (__u32 i = 0; i < TT_CALL_CHUNKS_MAX; i++) {
		__u64 off = (__u64)i * TT_CHUNK_MAX;

		if (off >= n)
			break;
		/* A lost record: user space learns the positions before this connection's next. */
		if (!data__emit_chunk(seq + off, call->buf + off, n - off))
			st->pending = PENDING_SYNC;
	}
	if (n > cap)
		drop__count(TT_DROP_TRUNCATED_BYTES, n - cap);
}

/* entry_sp: the stack pointer the call had at entry, as seen from where this probe sits. */
static __always_inline int ssl__return_sp(struct pt_regs *ctx, __u32 dir, __u64 entry_sp)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 key = ssl_call__key(id, dir);
	struct ssl_call *stash, call;
	__u64 n;

	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	stash = bpf_map_lookup_elem(&ssl_calls, &key);
	if (!stash) {
		drop__count(TT_DROP_STASH_MISSES, 1);
		return 0;
	}
	/* A nested SSL call returning: its outer call will report the bytes. */
	if (entry_sp != stash->sp)
		return 0;
	call = *stash;
	bpf_map_delete_elem(&ssl_calls, &key);
	n = ssl__transferred(ctx, &call);
	if (n)
		data__emit(&call, id, n);
	return 0;
}

static __always_inline int ssl__return(struct pt_regs *ctx, __u32 dir)
{
	return ssl__return_sp(ctx, dir, PT_REGS_SP(ctx) - RET_SP_DELTA);
}

/*
 * OpenSSL's signature is shared by BoringSSL, whose entry points attach/boringssl.c finds by
 * code shape in stripped binaries: those probes carry their library (TT_SRC_BORINGSSL) as the
 * attach cookie, so user space can hold their records to stricter checks.
 */
static __always_inline __u32 ssl__source(struct pt_regs *ctx)
{
	__u64 cookie = 0;

	/* Kernels before 5.15 have no cookies (and no BoringSSL attachments): still load there. */
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_attach_cookie))
		cookie = bpf_get_attach_cookie(ctx);
	return cookie ? (__u32)cookie : TT_SRC_OPENSSL;
}

SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_write, void *ssl, const void *buf, int num)
{
	return ssl__enter(ctx, ssl, (void *)buf, NULL, TT_DIR_WRITE, ssl__source(ctx));
}

SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_ssl_write)
{
	return ssl__return(ctx, TT_DIR_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_read, void *ssl, void *buf, int num)
{
	return ssl__enter(ctx, ssl, buf, NULL, TT_DIR_READ, ssl__source(ctx));
}

SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_ssl_read)
{
	return ssl__return(ctx, TT_DIR_READ);
}

SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return ssl__enter(ctx, ssl, (void *)buf, written, TT_DIR_WRITE, TT_SRC_OPENSSL);
}

SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_ssl_write_ex)
{
	return ssl__return(ctx, TT_DIR_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return ssl__enter(ctx, ssl, buf, readbytes, TT_DIR_READ, TT_SRC_OPENSSL);
}

SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_ssl_read_ex)
{
	return ssl__return(ctx, TT_DIR_READ);
}

/*
 * Emulated probe sites (src/attach/sites.c): an entry site a few instructions into SSL_write
 * and co. while the argument registers are intact, and a return site where rax already holds
 * the return value, both on instructions the kernel emulates instead of single-stepping. The
 * cookie (tokentap_abi.h) carries the direction, whether the 4th argument is the _ex
 * out-pointer, and how far sp is from the entry one, so nesting is judged as for the classic pair.
 */

/* key: site id (cookie bits 32-39), value: what that site saw in the verification child. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TT_SITE_IDS);
	__type(key, __u32);
	__type(value, struct tt_site_seen);
} site_checks SEC(".maps");

static __always_inline void site__record(__u64 cookie, struct tt_site_seen *seen)
{
	__u32 key = (__u32)(cookie >> TT_SITE_ID_SHIFT) & 0xff;
	struct tt_site_seen *old = bpf_map_lookup_elem(&site_checks, &key);

	seen->hits = old ? old->hits + 1 : 1;
	bpf_map_update_elem(&site_checks, &key, seen, BPF_ANY);
}

static __always_inline __u32 site__dir(__u64 cookie)
{
	return cookie & TT_SITE_DIR_BIT ? TT_DIR_READ : TT_DIR_WRITE;
}

SEC("uprobe")
int uprobe_ssl_site_enter(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 sp = PT_REGS_SP(ctx) + (cookie & TT_SITE_SP_MASK);
	__u64 len_ptr = cookie & TT_SITE_EX_BIT ? PT_REGS_PARM4(ctx) : 0;
	struct tt_site_seen seen = {};

	if (cookie & TT_SITE_VERIFY_BIT) {
		seen.ssl = PT_REGS_PARM1(ctx);
		seen.buf = PT_REGS_PARM2(ctx);
		seen.len_ptr = len_ptr;
		seen.entry_sp = sp;
		site__record(cookie, &seen);
		return 0;
	}
	return ssl__enter_sp((void *)PT_REGS_PARM1(ctx), (void *)PT_REGS_PARM2(ctx),
			     (void *)len_ptr, site__dir(cookie),
			     (__u32)(cookie >> TT_SITE_SOURCE_SHIFT) & 0xff, sp);
}

SEC("uprobe")
int uprobe_ssl_site_return(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 entry_sp = PT_REGS_SP(ctx) + (cookie & TT_SITE_SP_MASK);
	struct tt_site_seen seen = {};

	if (cookie & TT_SITE_VERIFY_BIT) {
		seen.rc = PT_REGS_RC(ctx);
		seen.entry_sp = entry_sp;
		site__record(cookie, &seen);
		return 0;
	}
	return ssl__return_sp(ctx, site__dir(cookie), entry_sp);
}

/* The library freed its connection object: report the final positions and forget it. */
static __always_inline int conn__close(__u64 ssl, __u32 source)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key key = {.tgid = id >> 32, .ssl = ssl};
	struct tt_close_event ev = {};
	struct conn_state *st;

	if (key.tgid == self_tgid)
		return 0;
	/* A connection that never moved a byte was never announced: nothing to close. */
	st = bpf_map_lookup_elem(&conns, &key);
	if (!st)
		return 0;
	hdr__fill(&ev.hdr, TT_EV_CLOSE, id, key.ssl);
	ev.hdr.source = source;
	ev.write_seq = st->seq[TT_DIR_WRITE];
	ev.read_seq = st->seq[TT_DIR_READ];
	bpf_map_delete_elem(&conns, &key);
	control__emit(&ev, sizeof(ev));
	tt_debug("tokentap: close ssl=%llx w=%llu r=%llu", key.ssl, ev.write_seq, ev.read_seq);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_free, void *ssl)
{
	return conn__close((__u64)ssl, TT_SRC_OPENSSL);
}

/*
 * The end of a call and a close, for the units that stash calls their own way (go_tls.bpf.c).
 * Global functions: the verifier checks each once, and they keep one copy of the copy rules.
 */
__noinline int tls__emit_call(const struct ssl_call *call, __u64 n)
{
	if (!call || !n)
		return 0;
	data__emit(call, bpf_get_current_pid_tgid(), n);
	return 0;
}

__noinline int tls__close_conn(__u64 ssl, __u32 source)
{
	return conn__close(ssl, source);
}

/* ---- GnuTLS: ssize_t gnutls_record_send/recv(gnutls_session_t, void *data, size_t size) ---- */

SEC("uprobe")
int BPF_KPROBE(uprobe_gnutls_record_send, void *session, const void *data, __u64 size)
{
	return ssl__enter(ctx, session, (void *)data, NULL, TT_DIR_WRITE, TT_SRC_GNUTLS);
}

SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_gnutls_record_send)
{
	return ssl__return(ctx, TT_DIR_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(uprobe_gnutls_record_recv, void *session, void *data, __u64 size)
{
	return ssl__enter(ctx, session, data, NULL, TT_DIR_READ, TT_SRC_GNUTLS);
}

SEC("uretprobe")
int BPF_KRETPROBE(uretprobe_gnutls_record_recv)
{
	return ssl__return(ctx, TT_DIR_READ);
}

SEC("uprobe")
int BPF_KPROBE(uprobe_gnutls_deinit, void *session)
{
	return conn__close((__u64)session, TT_SRC_GNUTLS);
}

/* ---- SNI: the server name the client asks for in its ClientHello ---- */

#define SSL_CTRL_SET_TLSEXT_HOSTNAME 55
#define GNUTLS_NAME_DNS 1

static __always_inline void sni__emit(struct tt_sni_event *ev, __u64 conn, __u32 source, long n)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (n <= 0)
		return;
	hdr__fill(&ev->hdr, TT_EV_SNI, id, conn);
	ev->hdr.source = source;
	ev->name_len = n < TT_SNI_MAX ? n : TT_SNI_MAX - 1;
	ev->_pad0 = 0;
	control__emit(ev, sizeof(*ev));
}

/*
 * long SSL_ctrl(SSL *, int cmd, long larg, void *parg): SSL_set_tlsext_host_name is a macro
 * for cmd 55. SSL_ctrl runs for many other commands, so everything else returns at once.
 */
SEC("uprobe")
int BPF_KPROBE(uprobe_ssl_ctrl, void *ssl, int cmd, long larg, void *parg)
{
	struct tt_sni_event ev = {};
	long n;

	if (cmd != SSL_CTRL_SET_TLSEXT_HOSTNAME || !parg ||
	    (__u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return 0;
	n = bpf_probe_read_user_str(ev.name, sizeof(ev.name), parg);
	sni__emit(&ev, (__u64)ssl, TT_SRC_OPENSSL, n - 1); /* n counts the NUL */
	return 0;
}

/* int gnutls_server_name_set(gnutls_session_t, type, const void *name, size_t len) */
SEC("uprobe")
int BPF_KPROBE(uprobe_gnutls_server_name_set, void *session, int type, const void *name,
	       __u64 len)
{
	struct tt_sni_event ev = {};

	if (type != GNUTLS_NAME_DNS || !name || !len ||
	    (__u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return 0;
	if (len > TT_SNI_MAX - 1)
		len = TT_SNI_MAX - 1;
	if (bpf_probe_read_user(ev.name, len, name))
		return 0;
	sni__emit(&ev, (__u64)session, TT_SRC_GNUTLS, (long)len);
	return 0;
}

/*
 * ---- rustls on aws-lc: records at aws-lc's EVP_AEAD_CTX_{seal,seal_scatter,open,open_gather} --
 * (attach/awslc.c finds them by code shape). A call is a TLS record only when its additional
 * data is a record header: 5 bytes 17 03 03 <len> in TLS 1.3, whose plaintext ends with the real
 * content type (and optional zero padding); 13 bytes <seq> <type> 03 03 <len> in TLS 1.2. Only
 * application data (type 23) is copied. The connection is the EVP_AEAD_CTX of one direction
 * until user space learns its socket (TT_EV_SOCK, see sock.bpf.c).
 */
#define TLS_CONTENT_APPLICATION_DATA 23
#define AEAD_TAIL 16 /* TLS 1.3 padding looked through for the content type */

/* libbpf before 1.2 has no PT_REGS_PARM6; aws-lc's code shapes are x86-64 only anyway. */
#ifndef PT_REGS_PARM6
#define PT_REGS_PARM6(x) ((x)->r9)
#endif

/* Arguments 7.. of a call sit above the return address at entry (x86-64 SysV). */
static __always_inline __u64 aead__stack_arg(struct pt_regs *ctx, int n)
{
	__u64 v = 0;

	bpf_probe_read_user(&v, sizeof(v), (void *)(PT_REGS_SP(ctx) + 8 * (n - 6)));
	return v;
}

/* The TLS version of a record's additional data: 13 (TLS 1.3), 12 (TLS 1.2), 0 none. */
static __always_inline int aead__tls_version(__u64 ad, __u64 ad_len, __u8 *type)
{
	__u8 h[13] = {};

	if (ad_len == 5 && !bpf_probe_read_user(h, 5, (void *)ad) &&
	    h[0] == TLS_CONTENT_APPLICATION_DATA && h[1] == 3 && h[2] == 3)
		return 13;
	if (ad_len == 13 && !bpf_probe_read_user(h, 13, (void *)ad) && h[9] == 3 && h[10] == 3) {
		*type = h[8];
		return 12;
	}
	return 0;
}

/* TLS 1.3: the content type is the last non-zero byte; its offset is the content's length. */
static __always_inline __u64 aead__inner_len(__u64 buf, __u64 n, __u8 *type)
{
	__u8 tail[AEAD_TAIL] = {};
	__u64 from = n >= AEAD_TAIL ? n - AEAD_TAIL : 0;

	if (!n || bpf_probe_read_user(tail, n >= AEAD_TAIL ? AEAD_TAIL : 1,
				      (void *)(buf + (n >= AEAD_TAIL ? from : n - 1))))
		return 0;
	if (n < AEAD_TAIL) {
		*type = tail[0];
		return n - 1;
	}
	for (int i = AEAD_TAIL - 1; i >= 0; i--) {
		if (tail[i]) {
			*type = tail[i];
			return from + i;
		}
	}
	return 0;
}

/* Copies one record's content; conn is the EVP_AEAD_CTX. */
static __always_inline void aead__emit(__u64 id, __u64 conn, __u32 dir, __u64 buf, __u64 n,
				       __u64 start_ns)
{
	struct ssl_call call = {};

	call.ssl = conn;
	call.buf = buf;
	call.start_ns = start_ns;
	call.dir = dir;
	call.source = TT_SRC_RUSTLS;
	if (n)
		data__emit(&call, id, n);
}

/* A sealed record: its plaintext is read before the call encrypts it in place. */
static __always_inline int aead__seal(__u64 conn, __u64 in, __u64 in_len, __u64 ad, __u64 ad_len)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u8 type = 0, one = 1;
	__u64 n = in_len;
	int v;

	if (tgid == self_tgid)
		return 0;
	v = aead__tls_version(ad, ad_len, &type);
	if (!v)
		return 0;
	bpf_map_update_elem(&aead_procs, &tgid, &one, BPF_ANY);
	if (v == 13)
		n = aead__inner_len(in, in_len, &type);
	if (type != TLS_CONTENT_APPLICATION_DATA)
		return 0;
	/* Every record: its socket write checks the context still runs on the socket it did. */
	bpf_map_update_elem(&aead_tx_pending, &id, &conn, BPF_ANY);
	aead__emit(id, conn, TT_DIR_WRITE, in, n, bpf_ktime_get_ns());
	return 0;
}

/* EVP_AEAD_CTX_seal(ctx, out, out_len, max_out, nonce, nonce_len, in, in_len, ad, ad_len) */
SEC("uprobe")
int uprobe_aead_seal(struct pt_regs *ctx)
{
	return aead__seal(PT_REGS_PARM1(ctx), aead__stack_arg(ctx, 7), aead__stack_arg(ctx, 8),
			  aead__stack_arg(ctx, 9), aead__stack_arg(ctx, 10));
}

/* EVP_AEAD_CTX_seal_scatter(ctx, out, out_tag, out_tag_len, max_out_tag_len, nonce, nonce_len,
 *                           in, in_len, extra_in, extra_in_len, ad, ad_len) */
SEC("uprobe")
int uprobe_aead_seal_scatter(struct pt_regs *ctx)
{
	return aead__seal(PT_REGS_PARM1(ctx), aead__stack_arg(ctx, 8), aead__stack_arg(ctx, 9),
			  aead__stack_arg(ctx, 12), aead__stack_arg(ctx, 13));
}

/*
 * An open: the plaintext exists only when the call returns. The stash (ssl_calls, read slot)
 * keeps the context, the output buffer and, for EVP_AEAD_CTX_open, its out_len pointer; for
 * open_gather the plaintext length is the input length, kept in len_ptr's place with sp = 0.
 */
static __always_inline int aead__open_enter(struct pt_regs *ctx, __u64 out, __u64 len_ptr,
					    __u64 in_len, __u64 ad, __u64 ad_len)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 key = ssl_call__key(id, TT_DIR_READ);
	struct ssl_call call = {};
	__u32 tgid = id >> 32;
	__u8 type = 0, one = 1;
	int v;

	if (tgid == self_tgid)
		return 0;
	v = aead__tls_version(ad, ad_len, &type);
	if (!v || (v == 12 && type != TLS_CONTENT_APPLICATION_DATA))
		return 0;
	bpf_map_update_elem(&aead_procs, &tgid, &one, BPF_ANY);
	call.ssl = PT_REGS_PARM1(ctx);
	call.buf = out;
	call.len_ptr = len_ptr ? len_ptr : in_len;
	call.sp = len_ptr ? 1 : 0;
	call.start_ns = bpf_ktime_get_ns();
	call.dir = TT_DIR_READ;
	call.source = v; /* the TLS version until the return; the record says TT_SRC_RUSTLS */
	bpf_map_update_elem(&ssl_calls, &key, &call, BPF_ANY);
	return 0;
}

/*
 * The socket the thread last read names the connection: reported before its first record, and
 * again if it changes (a freed context's address reused by a new connection).
 */
static __always_inline void aead__report_rx_sock(__u64 id, __u64 conn)
{
	__u64 *sk = bpf_map_lookup_elem(&aead_rx_sock, &id);

	if (sk)
		aead__bind(id, conn, TT_DIR_READ, (struct sock *)*sk);
}

static __always_inline int aead__open_return(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 key = ssl_call__key(id, TT_DIR_READ);
	struct ssl_call *stash, call;
	__u8 type = TLS_CONTENT_APPLICATION_DATA;
	__u64 n = 0;

	stash = bpf_map_lookup_elem(&ssl_calls, &key);
	if (!stash || stash->dir != TT_DIR_READ || stash->source > 13 || stash->source < 12)
		return 0;
	call = *stash;
	bpf_map_delete_elem(&ssl_calls, &key);
	if ((int)PT_REGS_RC(ctx) != 1)
		return 0;
	if (call.sp)
		bpf_probe_read_user(&n, sizeof(n), (void *)call.len_ptr);
	else
		n = call.len_ptr;
	aead__report_rx_sock(id, call.ssl);
	if (call.source == 13)
		n = aead__inner_len(call.buf, n, &type);
	if (type == TLS_CONTENT_APPLICATION_DATA)
		aead__emit(id, call.ssl, TT_DIR_READ, call.buf, n, call.start_ns);
	return 0;
}

/* EVP_AEAD_CTX_open(ctx, out, out_len, max_out_len, nonce, nonce_len, in, in_len, ad, ad_len) */
SEC("uprobe")
int uprobe_aead_open(struct pt_regs *ctx)
{
	return aead__open_enter(ctx, PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), 0,
				aead__stack_arg(ctx, 9), aead__stack_arg(ctx, 10));
}

/* EVP_AEAD_CTX_open_gather(ctx, out, nonce, nonce_len, in, in_len, in_tag, in_tag_len, ad,
 *                          ad_len) */
SEC("uprobe")
int uprobe_aead_open_gather(struct pt_regs *ctx)
{
	return aead__open_enter(ctx, PT_REGS_PARM2(ctx), 0, PT_REGS_PARM6(ctx),
				aead__stack_arg(ctx, 9), aead__stack_arg(ctx, 10));
}

SEC("uretprobe")
int uretprobe_aead_open(struct pt_regs *ctx)
{
	return aead__open_return(ctx);
}
