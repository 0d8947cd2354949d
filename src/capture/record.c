// SPDX-License-Identifier: Apache-2.0
/*
 * Raw kernel records -> cap_* events. Kept apart from capture.c (libbpf, skeleton) so the replay
 * reader, the unit tests and the fuzzer link it alone. Input is untrusted: records are copied
 * into aligned locals before they are read, and every length is checked against the record size.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>

#include "tokentap_abi.h"
#include "capture/capture.h"

/* A C version of Tetragon's alignchecker: recorded captures depend on this layout. */
_Static_assert(sizeof(struct tt_event_hdr) == 32, "tt_event_hdr size");
_Static_assert(offsetof(struct tt_event_hdr, ts_ns) == 0, "tt_event_hdr.ts_ns");
_Static_assert(offsetof(struct tt_event_hdr, conn_id) == 8, "tt_event_hdr.conn_id");
_Static_assert(offsetof(struct tt_event_hdr, pid) == 16, "tt_event_hdr.pid");
_Static_assert(offsetof(struct tt_event_hdr, tid) == 20, "tt_event_hdr.tid");
_Static_assert(offsetof(struct tt_event_hdr, kind) == 24, "tt_event_hdr.kind");
_Static_assert(offsetof(struct tt_event_hdr, dir) == 26, "tt_event_hdr.dir");
_Static_assert(offsetof(struct tt_event_hdr, source) == 27, "tt_event_hdr.source");
_Static_assert(offsetof(struct tt_data_event, seq) == 32, "tt_data_event.seq");
_Static_assert(offsetof(struct tt_data_event, call_start_ns) == 40, "tt_data_event.call_start_ns");
_Static_assert(offsetof(struct tt_data_event, call_len) == 48, "tt_data_event.call_len");
_Static_assert(offsetof(struct tt_data_event, data_len) == 52, "tt_data_event.data_len");
_Static_assert(offsetof(struct tt_data_event, data) == 56, "tt_data_event.data");
_Static_assert(TT_DATA_HDR_SIZE == 56, "TT_DATA_HDR_SIZE");
_Static_assert(sizeof(struct tt_data_event) == 56 + TT_CHUNK_MAX, "tt_data_event size");
_Static_assert(sizeof(struct tt_close_event) == 48, "tt_close_event size");
_Static_assert(offsetof(struct tt_close_event, write_seq) == 32, "tt_close_event.write_seq");
_Static_assert(offsetof(struct tt_close_event, read_seq) == 40, "tt_close_event.read_seq");
_Static_assert(sizeof(struct tt_sock_event) == 80, "tt_sock_event size");
_Static_assert(offsetof(struct tt_sock_event, sock_cookie) == 32, "tt_sock_event.sock_cookie");
_Static_assert(offsetof(struct tt_sock_event, family) == 40, "tt_sock_event.family");
_Static_assert(offsetof(struct tt_sock_event, sport) == 42, "tt_sock_event.sport");
_Static_assert(offsetof(struct tt_sock_event, dport) == 44, "tt_sock_event.dport");
_Static_assert(offsetof(struct tt_sock_event, saddr) == 48, "tt_sock_event.saddr");
_Static_assert(offsetof(struct tt_sock_event, daddr) == 64, "tt_sock_event.daddr");
_Static_assert(sizeof(struct tt_proc_event) == 56, "tt_proc_event size");
_Static_assert(sizeof(struct tt_exec_event) == 328, "tt_exec_event size");
_Static_assert(offsetof(struct tt_exec_event, filename) == 72, "tt_exec_event.filename");
_Static_assert(offsetof(struct tt_proc_event, ppid) == 32, "tt_proc_event.ppid");
_Static_assert(offsetof(struct tt_proc_event, exit_code) == 36, "tt_proc_event.exit_code");
_Static_assert(offsetof(struct tt_proc_event, comm) == 40, "tt_proc_event.comm");
_Static_assert(sizeof(struct tt_sni_event) == 40 + TT_SNI_MAX, "tt_sni_event size");
_Static_assert(offsetof(struct tt_sni_event, name_len) == 32, "tt_sni_event.name_len");
_Static_assert(offsetof(struct tt_sni_event, name) == 40, "tt_sni_event.name");
_Static_assert(sizeof(((struct cap_sni *)0)->name) == TT_SNI_MAX, "cap_sni.name holds a name");
_Static_assert(TT_DROP__COUNT <= 8, "capture_stats.drops has room for every drop counter");
/* llm/ and span/ name sources by value (they never see the ABI header). */
_Static_assert(TT_SRC_OPENSSL == 1 && TT_SRC_PLAINTEXT == 2 && TT_SRC_GNUTLS == 3,
	       "tt_tls_source values used by llm.c and span.c");
_Static_assert(TT_SRC_GO == 4, "tt_tls_source value used by span.c");
_Static_assert(TT_SRC_BORINGSSL == 5 && TT_SRC_RUSTLS == 6, "tt_tls_source values used by span.c");
_Static_assert(TT_DIR_WRITE == (int)CAP_DIR_WRITE && TT_DIR_READ == (int)CAP_DIR_READ,
	       "tt_direction and cap_dir agree");

static struct cap_conn_key conn_key(const struct tt_event_hdr *h)
{
	struct cap_conn_key k = {.pid = h->pid, .conn_id = h->conn_id};

	return k;
}

static int record__data(const unsigned char *rec, size_t size, const struct cap_sink *sink)
{
	struct tt_data_event ev; /* header part only; data stays in the record */
	struct cap_chunk c;

	if (size < TT_DATA_HDR_SIZE)
		return -EINVAL;
	memcpy(&ev, rec, TT_DATA_HDR_SIZE);
	if (!ev.data_len || ev.data_len > TT_CHUNK_MAX || ev.data_len > size - TT_DATA_HDR_SIZE ||
	    ev.data_len > ev.call_len || ev.hdr.dir > TT_DIR_READ)
		return -EINVAL;
	if (!sink->on_chunk)
		return 0;
	memset(&c, 0, sizeof(c));
	c.key = conn_key(&ev.hdr);
	c.tid = ev.hdr.tid;
	c.dir = ev.hdr.dir == TT_DIR_READ ? CAP_DIR_READ : CAP_DIR_WRITE;
	c.seq = ev.seq;
	c.call_start_ns = ev.call_start_ns;
	c.call_end_ns = ev.hdr.ts_ns;
	c.call_len = ev.call_len;
	c.len = ev.data_len;
	c.data = rec + TT_DATA_HDR_SIZE;
	c.tls_source = ev.hdr.source;
	sink->on_chunk(sink->ctx, &c);
	return 0;
}

/* TT_EV_CLOSE, TT_EV_IGNORE and TT_EV_SYNC share one layout: positions of both directions. */
static int record__close(const unsigned char *rec, size_t size, const struct cap_sink *sink)
{
	void (*cb)(void *ctx, const struct cap_close *c);
	struct tt_close_event ev;
	struct cap_close c;

	if (size < sizeof(ev))
		return -EINVAL;
	memcpy(&ev, rec, sizeof(ev));
	cb = ev.hdr.kind == TT_EV_IGNORE ? sink->on_ignore
	     : ev.hdr.kind == TT_EV_SYNC ? sink->on_sync
					 : sink->on_close;
	if (!cb)
		return 0;
	memset(&c, 0, sizeof(c));
	c.key = conn_key(&ev.hdr);
	c.ts_ns = ev.hdr.ts_ns;
	c.write_seq = ev.write_seq;
	c.read_seq = ev.read_seq;
	cb(sink->ctx, &c);
	return 0;
}

static int record__sock(const unsigned char *rec, size_t size, const struct cap_sink *sink)
{
	struct tt_sock_event ev;
	struct cap_sock s;

	if (size < sizeof(ev))
		return -EINVAL;
	memcpy(&ev, rec, sizeof(ev));
	if (ev.family != AF_INET && ev.family != AF_INET6)
		return -EINVAL;
	if (!sink->on_sock)
		return 0;
	memset(&s, 0, sizeof(s));
	s.key = conn_key(&ev.hdr);
	s.ts_ns = ev.hdr.ts_ns;
	s.family = ev.family;
	s.sport = ev.sport;
	s.dport = ev.dport;
	memcpy(s.saddr, ev.saddr, sizeof(s.saddr));
	memcpy(s.daddr, ev.daddr, sizeof(s.daddr));
	sink->on_sock(sink->ctx, &s);
	return 0;
}

static void record__exec_facts(const unsigned char *rec, struct cap_proc *p)
{
	struct tt_exec_event ex;
	size_t n;

	memcpy(&ex, rec, sizeof(ex));
	n = ex.filename_len < sizeof(p->filename) - 1 ? ex.filename_len : sizeof(p->filename) - 1;
	memcpy(p->filename, ex.filename, n);
	p->filename[n] = '\0';
	p->exe_ino = ex.exe_ino;
	p->exe_dev = makedev(ex.exe_dev >> 20, ex.exe_dev & 0xfffff);
}

static int record__proc(const unsigned char *rec, size_t size, const struct cap_sink *sink)
{
	struct tt_proc_event ev;
	struct cap_proc p;

	if (size < sizeof(ev))
		return -EINVAL;
	memcpy(&ev, rec, sizeof(ev));
	if (!sink->on_proc)
		return 0;
	memset(&p, 0, sizeof(p));
	p.pid = ev.hdr.pid;
	p.ppid = ev.ppid;
	p.ts_ns = ev.hdr.ts_ns;
	p.exited = ev.hdr.kind == TT_EV_EXIT;
	/* The kernel NUL-terminates comm; a recorded file might not. */
	memcpy(p.comm, ev.comm, sizeof(p.comm) - 1);
	p.comm[sizeof(p.comm) - 1] = '\0';
	if (ev.hdr.kind == TT_EV_EXEC && size >= sizeof(struct tt_exec_event))
		record__exec_facts(rec, &p);
	sink->on_proc(sink->ctx, &p);
	return 0;
}

/* Letters, digits, '-', '.', '_' (some internal names use it) and ':' (an IPv6 literal a
 * client passed anyway): anything else is no host name and must not reach an export. */
static bool sni__char_ok(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_' || ch == ':';
}

static int record__sni(const unsigned char *rec, size_t size, const struct cap_sink *sink)
{
	struct tt_sni_event ev;
	struct cap_sni s;

	if (size < sizeof(ev))
		return -EINVAL;
	memcpy(&ev, rec, sizeof(ev));
	if (!ev.name_len || ev.name_len >= TT_SNI_MAX)
		return -EINVAL;
	memset(&s, 0, sizeof(s));
	for (__u32 i = 0; i < ev.name_len; i++) {
		unsigned char ch = (unsigned char)ev.name[i];

		if (!sni__char_ok(ch))
			return -EINVAL;
		s.name[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
	}
	if (!sink->on_sni)
		return 0;
	s.key = conn_key(&ev.hdr);
	s.ts_ns = ev.hdr.ts_ns;
	s.tls_source = ev.hdr.source;
	sink->on_sni(sink->ctx, &s);
	return 0;
}

int capture__dispatch_record(const void *rec, size_t size, const struct cap_sink *sink)
{
	static const struct cap_sink none;
	struct tt_event_hdr h;

	if (!rec || size < sizeof(h))
		return -EINVAL;
	if (!sink)
		sink = &none;
	memcpy(&h, rec, sizeof(h));
	switch (h.kind) {
	case TT_EV_DATA:
		return record__data(rec, size, sink);
	case TT_EV_CLOSE:
	case TT_EV_IGNORE:
	case TT_EV_SYNC:
		return record__close(rec, size, sink);
	case TT_EV_SOCK:
		return record__sock(rec, size, sink);
	case TT_EV_EXEC:
	case TT_EV_EXIT:
		return record__proc(rec, size, sink);
	case TT_EV_SNI:
		return record__sni(rec, size, sink);
	default:
		return -EINVAL;
	}
}
