// SPDX-License-Identifier: Apache-2.0
/*
 * capture/aead_bind: rustls records, as the kernel writes them under each direction's
 * EVP_AEAD_CTX, become one connection per socket. Every data byte carries a pattern of its
 * direction and socket stream position, so a delivered record whose position was translated
 * wrong shows up as a content mismatch.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tokentap_abi.h"
#include "capture/aead_bind.h"
#include "tt_test.h"

#define PID_A 4242
#define PID_B 5151
#define CTX_W 0x7f11aa001000ULL	 /* EVP_AEAD_CTX sealing (write) */
#define CTX_R 0x7f11aa002000ULL	 /* EVP_AEAD_CTX opening (read) */
#define CTX_W2 0x7f11aa003000ULL /* after a KeyUpdate */
#define CTX_R2 0x7f11aa004000ULL
#define SOCK_A 0xffff888012340000ULL
#define SOCK_B 0xffff888056780000ULL
#define SEC_NS 1000000000ULL

/* ---- records as the kernel writes them ------------------------------------------------------ */

static uint8_t pattern(int dir, uint64_t pos)
{
	return (uint8_t)(dir * 131 + pos * 7 + pos / 251);
}

static struct tt_data_event rec_data; /* one record at a time, as the ring buffer hands them */

/* A data record of ctx at the context's own position seq; its bytes are those of the socket's
 * stream at stream_pos. Returns the record's size (header + data). */
static size_t mk_data(uint32_t pid, uint64_t ctx, int dir, uint64_t seq, uint32_t len, uint64_t ts,
		      uint64_t stream_pos)
{
	memset(&rec_data, 0, TT_DATA_HDR_SIZE);
	rec_data.hdr.ts_ns = ts;
	rec_data.hdr.conn_id = ctx;
	rec_data.hdr.pid = pid;
	rec_data.hdr.tid = pid + 1;
	rec_data.hdr.kind = TT_EV_DATA;
	rec_data.hdr.dir = (uint8_t)dir;
	rec_data.hdr.source = TT_SRC_RUSTLS;
	rec_data.seq = seq;
	rec_data.call_start_ns = ts - 10;
	rec_data.call_len = len;
	rec_data.data_len = len;
	for (uint32_t i = 0; i < len; i++)
		rec_data.data[i] = pattern(dir, stream_pos + i);
	return TT_DATA_HDR_SIZE + len;
}

static struct tt_sock_event mk_sock(uint32_t pid, uint64_t ctx, uint64_t sock, uint64_t ts)
{
	struct tt_sock_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.hdr.ts_ns = ts;
	ev.hdr.conn_id = ctx;
	ev.hdr.pid = pid;
	ev.hdr.tid = pid + 1;
	ev.hdr.kind = TT_EV_SOCK;
	ev.hdr.source = TT_SRC_RUSTLS;
	ev.sock_cookie = sock;
	ev.family = AF_INET;
	ev.sport = 40000;
	ev.dport = 443;
	memcpy(ev.daddr, "\x68\x12\x20\x2f", 4);
	return ev;
}

static struct tt_close_event mk_pos(uint16_t kind, uint32_t pid, uint64_t ctx, uint64_t wseq,
				    uint64_t rseq, uint64_t ts)
{
	struct tt_close_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.hdr.ts_ns = ts;
	ev.hdr.conn_id = ctx;
	ev.hdr.pid = pid;
	ev.hdr.tid = pid + 1;
	ev.hdr.kind = kind;
	ev.hdr.source = TT_SRC_RUSTLS;
	ev.write_seq = wseq;
	ev.read_seq = rseq;
	return ev;
}

/* ---- what comes out ------------------------------------------------------------------------- */

#define MAX_OUT 2048

struct out {
	uint16_t kind;
	uint8_t dir;
	uint32_t pid;
	uint64_t conn_id, ts;
	uint64_t seq, len;   /* data */
	uint64_t wseq, rseq; /* sync / ignore / close */
	uint64_t cookie;     /* sock */
	size_t size;
};

static struct {
	struct out r[MAX_OUT];
	int n;
	int bad_content; /* data bytes that are not the stream's at the delivered position */
	int bad_size;
} got;

static int on_emit(void *ctx, const void *rec, size_t size)
{
	struct tt_event_hdr h;
	struct out *o;

	CHECK(ctx == &got);
	CHECK(size >= sizeof(h));
	memcpy(&h, rec, sizeof(h));
	if (got.n >= MAX_OUT)
		return 0;
	o = &got.r[got.n++];
	memset(o, 0, sizeof(*o));
	o->kind = h.kind;
	o->dir = h.dir;
	o->pid = h.pid;
	o->conn_id = h.conn_id;
	o->ts = h.ts_ns;
	o->size = size;
	if (h.kind == TT_EV_DATA && size >= TT_DATA_HDR_SIZE) {
		const struct tt_data_event *d = rec;

		o->seq = d->seq;
		o->len = d->data_len;
		got.bad_size += size != TT_DATA_HDR_SIZE + d->data_len;
		for (uint32_t i = 0; i < d->data_len && TT_DATA_HDR_SIZE + i < size; i++)
			got.bad_content += d->data[i] != pattern(h.dir, d->seq + i);
	} else if ((h.kind == TT_EV_SYNC || h.kind == TT_EV_IGNORE || h.kind == TT_EV_CLOSE) &&
		   size >= sizeof(struct tt_close_event)) {
		const struct tt_close_event *c = rec;

		o->wseq = c->write_seq;
		o->rseq = c->read_seq;
		got.bad_size += size != sizeof(*c);
	} else if (h.kind == TT_EV_SOCK && size >= sizeof(struct tt_sock_event)) {
		const struct tt_sock_event *s = rec;

		o->cookie = s->sock_cookie;
		got.bad_size += size != sizeof(*s) || s->family != AF_INET || s->dport != 443;
	}
	return 0;
}

static void got__reset(void)
{
	memset(&got, 0, sizeof(got));
}

static int feed_data(struct aead_bind *b, uint32_t pid, uint64_t ctx, int dir, uint64_t seq,
		     uint32_t len, uint64_t ts, uint64_t stream_pos)
{
	size_t n = mk_data(pid, ctx, dir, seq, len, ts, stream_pos);

	return aead_bind__record(b, &rec_data, n, on_emit, &got);
}

static int feed_sock(struct aead_bind *b, uint32_t pid, uint64_t ctx, uint64_t sock, uint64_t ts)
{
	struct tt_sock_event ev = mk_sock(pid, ctx, sock, ts);

	return aead_bind__record(b, &ev, sizeof(ev), on_emit, &got);
}

static int feed_pos(struct aead_bind *b, uint16_t kind, uint32_t pid, uint64_t ctx, uint64_t wseq,
		    uint64_t rseq, uint64_t ts)
{
	struct tt_close_event ev = mk_pos(kind, pid, ctx, wseq, rseq, ts);

	return aead_bind__record(b, &ev, sizeof(ev), on_emit, &got);
}

static int count_kind(uint16_t kind)
{
	int n = 0;

	for (int i = 0; i < got.n; i++)
		n += got.r[i].kind == kind;
	return n;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* The read context's socket is known before its first record: its data goes on at once. */
TEST(bound_context_delivered_at_once)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 1000), 0);
	CHECK_EQ_INT(got.n, 1);
	CHECK_EQ_INT(got.r[0].kind, TT_EV_SOCK);
	CHECK_EQ_INT(got.r[0].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[0].cookie, SOCK_A);
	CHECK_EQ_INT(got.r[0].pid, PID_A);
	CHECK_EQ_INT(b.bound, 1);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 100, 1100, 0), 0);
	CHECK_EQ_INT(got.n, 2);
	CHECK_EQ_INT(got.r[1].kind, TT_EV_DATA);
	CHECK_EQ_INT(got.r[1].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[1].dir, TT_DIR_READ);
	CHECK_EQ_INT(got.r[1].seq, 0);
	CHECK_EQ_INT(got.r[1].len, 100);
	CHECK_EQ_INT(got.r[1].ts, 1100);
	CHECK_EQ_INT(got.r[1].size, TT_DATA_HDR_SIZE + 100);
	CHECK_EQ_INT(b.held_bytes, 0);
	/* A repeat naming the same socket changes nothing and says nothing. */
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 1200), 0);
	CHECK_EQ_INT(got.n, 2);
	CHECK_EQ_INT(b.bound, 1);
	CHECK_EQ_INT(got.bad_content, 0);
	CHECK_EQ_INT(got.bad_size, 0);
	aead_bind__free(&b);
}

/* A sealed record precedes the socket write that names its socket: held, then delivered in
 * order right after the one TT_EV_SOCK. */
TEST(write_held_until_its_sock)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 300, 1000, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 300, 50, 1010, 300), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 350, 1, 1020, 350), 0);
	CHECK_EQ_INT(got.n, 0);
	CHECK_EQ_INT(b.held_bytes, 3 * TT_DATA_HDR_SIZE + 351);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 1030), 0);
	CHECK_EQ_INT(got.n, 4);
	CHECK_EQ_INT(count_kind(TT_EV_SOCK), 1);
	CHECK_EQ_INT(got.r[0].kind, TT_EV_SOCK);
	CHECK_EQ_INT(got.r[0].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[1].seq, 0);
	CHECK_EQ_INT(got.r[1].len, 300);
	CHECK_EQ_INT(got.r[1].ts, 1000); /* the kernel's time, not the release time */
	CHECK_EQ_INT(got.r[2].seq, 300);
	CHECK_EQ_INT(got.r[3].seq, 350);
	for (int i = 1; i < 4; i++) {
		CHECK_EQ_INT(got.r[i].kind, TT_EV_DATA);
		CHECK_EQ_INT(got.r[i].conn_id, SOCK_A);
		CHECK_EQ_INT(got.r[i].dir, TT_DIR_WRITE);
	}
	CHECK_EQ_INT(b.held_bytes, 0);
	CHECK_EQ_INT(b.dropped_records, 0);
	/* Bound now: the next record is not held. */
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 351, 9, 1040, 351), 0);
	CHECK_EQ_INT(got.n, 5);
	CHECK_EQ_INT(got.r[4].seq, 351);
	CHECK_EQ_INT(got.bad_content, 0);
	CHECK_EQ_INT(got.bad_size, 0);
	aead_bind__free(&b);
}

/* A held record of another context stays held when one context binds. */
TEST(flush_takes_only_its_context)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 10, 1000, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 0, 20, 1001, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 10, 5, 1002, 10), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 1003), 0);
	CHECK_EQ_INT(got.n, 3);
	CHECK_EQ_INT(got.r[1].seq, 0);
	CHECK_EQ_INT(got.r[2].seq, 10);
	CHECK_EQ_INT(b.held_bytes, TT_DATA_HDR_SIZE + 20);
	/* The tail of the queue still works after an unlink in front of it. */
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 20, 4, 1004, 20), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W2, SOCK_B, 1005), 0);
	CHECK_EQ_INT(got.n, 6);
	CHECK_EQ_INT(got.r[3].kind, TT_EV_SOCK);
	CHECK_EQ_INT(got.r[3].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[4].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[4].seq, 0);
	CHECK_EQ_INT(got.r[5].seq, 20);
	CHECK_EQ_INT(b.held_bytes, 0);
	CHECK(b.head == NULL && b.tail == NULL);
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}

/* The two contexts of one TLS connection are one connection, each direction from 0. */
TEST(two_contexts_one_connection)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 400, 1000, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 1010), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 2000), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 200, 2010, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 200, 70, 2020, 200), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 400, 30, 3000, 400), 0);
	CHECK_EQ_INT(count_kind(TT_EV_SOCK), 1);
	CHECK_EQ_INT(count_kind(TT_EV_DATA), 4);
	CHECK_EQ_INT(b.bound, 2);
	for (int i = 0; i < got.n; i++)
		CHECK_EQ_INT(got.r[i].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[1].seq, 0);	 /* write */
	CHECK_EQ_INT(got.r[2].seq, 0);	 /* read */
	CHECK_EQ_INT(got.r[3].seq, 200); /* read */
	CHECK_EQ_INT(got.r[4].seq, 400); /* write */
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}

/* TLS 1.3 KeyUpdate: a new context of the same socket and direction starts where the old one's
 * records ended, whether its first record comes before its TT_EV_SOCK (write) or after (read). */
TEST(key_update_continues_the_stream)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 900), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 100, 1000, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 1001), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 250, 1100, 0), 0);
	/* New write context: its own positions start again at 0. */
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 0, 60, 1200, 100), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 60, 40, 1201, 160), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W2, SOCK_A, 1202), 0);
	/* New read context. */
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R2, SOCK_A, 1300), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R2, TT_DIR_READ, 0, 10, 1301, 250), 0);
	CHECK_EQ_INT(count_kind(TT_EV_SOCK), 1);
	CHECK_EQ_INT(b.bound, 4);
	CHECK_EQ_INT(got.n, 6);
	CHECK_EQ_INT(got.r[3].seq, 100);
	CHECK_EQ_INT(got.r[3].dir, TT_DIR_WRITE);
	CHECK_EQ_INT(got.r[4].seq, 160);
	CHECK_EQ_INT(got.r[5].seq, 250);
	CHECK_EQ_INT(got.r[5].dir, TT_DIR_READ);
	for (int i = 0; i < got.n; i++)
		CHECK_EQ_INT(got.r[i].conn_id, SOCK_A);
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}

/* SYNC and IGNORE carry the context's positions; on the socket's connection they are moved by
 * where the context began, and the direction the context never ran takes the socket's end. */
TEST(sync_and_ignore_positions_translated)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 900), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 40, 950, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 100, 1000, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 1001), 0);
	/* KeyUpdate: W2 begins at write 100. */
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W2, SOCK_A, 1100), 0);
	got__reset();
	CHECK_EQ_INT(feed_pos(&b, TT_EV_SYNC, PID_A, CTX_W2, 30, 0, 1200), 0);
	CHECK_EQ_INT(got.n, 1);
	CHECK_EQ_INT(got.r[0].kind, TT_EV_SYNC);
	CHECK_EQ_INT(got.r[0].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[0].wseq, 130);
	CHECK_EQ_INT(got.r[0].rseq, 40);
	/* The read context: its own read position moved, the write side is the socket's (130 now,
	 * the SYNC said bytes up to there were lost). */
	CHECK_EQ_INT(feed_pos(&b, TT_EV_IGNORE, PID_A, CTX_R, 0, 55, 1300), 0);
	CHECK_EQ_INT(got.n, 2);
	CHECK_EQ_INT(got.r[1].kind, TT_EV_IGNORE);
	CHECK_EQ_INT(got.r[1].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[1].wseq, 130);
	CHECK_EQ_INT(got.r[1].rseq, 55);
	/* Data after it continues past the positions the SYNC moved. */
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 30, 5, 1400, 130), 0);
	CHECK_EQ_INT(got.r[2].seq, 130);
	/* A later context of the socket begins past every position reported. */
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R2, TT_DIR_READ, 0, 5, 1500, 55), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R2, SOCK_A, 1501), 0);
	CHECK_EQ_INT(got.n, 4);
	CHECK_EQ_INT(got.r[3].seq, 55);
	CHECK_EQ_INT(got.r[3].dir, TT_DIR_READ);
	CHECK_EQ_INT(got.bad_content, 0);
	CHECK_EQ_INT(got.bad_size, 0);
	aead_bind__free(&b);
}

/* A SYNC of a context whose socket is not known yet waits with its records, in order. */
TEST(sync_held_with_its_context)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 900), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 70, 950, 0), 0);
	CHECK_EQ_INT(feed_pos(&b, TT_EV_SYNC, PID_A, CTX_W, 500, 0, 1000), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 500, 20, 1001, 500), 0);
	CHECK_EQ_INT(got.n, 2);
	CHECK_EQ_INT(b.held_bytes, sizeof(struct tt_close_event) + TT_DATA_HDR_SIZE + 20);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 1002), 0);
	CHECK_EQ_INT(got.n, 4);
	CHECK_EQ_INT(got.r[2].kind, TT_EV_SYNC);
	CHECK_EQ_INT(got.r[2].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[2].wseq, 500);
	CHECK_EQ_INT(got.r[2].rseq, 70);
	CHECK_EQ_INT(got.r[3].kind, TT_EV_DATA);
	CHECK_EQ_INT(got.r[3].seq, 500);
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}

/* A record held past AEAD_HELD_NS, by the clock of the records after it, is dropped and
 * counted; the context's later records keep their positions (a gap the parsers report). */
TEST(held_records_expire)
{
	struct aead_bind b = {0};
	uint64_t t0 = 5 * SEC_NS;

	got__reset();
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 100, t0, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 100, 11, t0 + 1, 100), 0);
	/* Exactly AEAD_HELD_NS later: still held. */
	CHECK_EQ_INT(feed_sock(&b, PID_B, CTX_R, SOCK_B, t0 + AEAD_HELD_NS), 0);
	CHECK_EQ_INT(b.dropped_records, 0);
	CHECK_EQ_INT(b.held_bytes, 2 * TT_DATA_HDR_SIZE + 111);
	/* One ns past it for the first record only (another process's record moves the clock). */
	CHECK_EQ_INT(feed_data(&b, PID_B, CTX_R, TT_DIR_READ, 0, 3, t0 + AEAD_HELD_NS + 1, 0), 0);
	CHECK_EQ_INT(b.dropped_records, 1);
	CHECK_EQ_INT(b.dropped_bytes, 100);
	CHECK_EQ_INT(b.held_bytes, TT_DATA_HDR_SIZE + 11);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 111, 9, t0 + AEAD_HELD_NS + 1, 111),
		     0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, t0 + AEAD_HELD_NS + 1), 0);
	CHECK_EQ_INT(b.dropped_records, 1);
	CHECK_EQ_INT(got.n, 5); /* sock B, data B, sock A, data A 100, data A 111 */
	CHECK_EQ_INT(got.r[2].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[3].seq, 100);
	CHECK_EQ_INT(got.r[4].seq, 111);
	/* The TT_EV_SOCK itself moves the clock before binding: a context whose socket comes too
	 * late loses what was held. */
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 0, 50, t0 + 3 * SEC_NS, 120), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 50, 50, t0 + 3 * SEC_NS, 170), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W2, SOCK_A, t0 + 6 * SEC_NS), 0);
	CHECK_EQ_INT(b.dropped_records, 3);
	CHECK_EQ_INT(b.dropped_bytes, 200);
	CHECK_EQ_INT(b.held_bytes, 0);
	CHECK_EQ_INT(got.n, 5);
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}

/* At most AEAD_HELD_BYTES are held: the oldest records are pushed out and counted. */
TEST(held_bytes_bounded)
{
	struct aead_bind b = {0};
	const size_t rec = TT_DATA_HDR_SIZE + TT_CHUNK_MAX;
	const uint64_t fit = AEAD_HELD_BYTES / rec, total = fit + 5;
	uint64_t max_held = 0;
	int rc_bad = 0;

	got__reset();
	for (uint64_t i = 0; i < total; i++) {
		rc_bad += feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, i * TT_CHUNK_MAX, TT_CHUNK_MAX,
				    1000 + i, i * TT_CHUNK_MAX) != 0;
		if (b.held_bytes > max_held)
			max_held = b.held_bytes;
	}
	CHECK_EQ_INT(rc_bad, 0);
	CHECK(max_held <= AEAD_HELD_BYTES);
	CHECK_EQ_INT(b.held_bytes, fit * rec);
	CHECK_EQ_INT(b.dropped_records, 5);
	CHECK_EQ_INT(b.dropped_bytes, 5 * TT_CHUNK_MAX);
	CHECK_EQ_INT(got.n, 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 2000000), 0);
	CHECK_EQ_INT(got.n, 1 + fit);
	CHECK_EQ_INT(got.r[1].seq, 5 * TT_CHUNK_MAX); /* the first 5 records are a gap */
	CHECK_EQ_INT(got.r[got.n - 1].seq, (total - 1) * TT_CHUNK_MAX);
	CHECK_EQ_INT(b.held_bytes, 0);
	CHECK_EQ_INT(got.bad_content, 0);
	CHECK_EQ_INT(got.bad_size, 0);
	aead_bind__free(&b);
}

/* A process's exit drops its bindings and held records (counted); other processes go on. */
TEST(exit_drops_one_process)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 1000), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_B, CTX_R, SOCK_B, 1001), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 30, 1002, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_B, CTX_W, TT_DIR_WRITE, 0, 20, 1003, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 30, 7, 1004, 30), 0);
	CHECK_EQ_INT(feed_data(&b, PID_B, CTX_R, TT_DIR_READ, 0, 10, 1005, 0), 0);
	CHECK_EQ_INT(got.n, 3);
	aead_bind__on_exit(&b, PID_A);
	CHECK_EQ_INT(b.dropped_records, 2);
	CHECK_EQ_INT(b.dropped_bytes, 37);
	CHECK_EQ_INT(b.held_bytes, TT_DATA_HDR_SIZE + 20);
	CHECK_EQ_INT(b.nbindings, 1);
	CHECK_EQ_INT(b.nsocks, 1);
	/* B's binding and held record are untouched. */
	CHECK_EQ_INT(feed_data(&b, PID_B, CTX_R, TT_DIR_READ, 10, 5, 1006, 10), 0);
	CHECK_EQ_INT(got.n, 4);
	CHECK_EQ_INT(got.r[3].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[3].seq, 10);
	CHECK_EQ_INT(feed_sock(&b, PID_B, CTX_W, SOCK_B, 1007), 0);
	CHECK_EQ_INT(got.n, 5); /* B's socket is known: no second TT_EV_SOCK */
	CHECK_EQ_INT(got.r[4].kind, TT_EV_DATA);
	CHECK_EQ_INT(got.r[4].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[4].pid, PID_B);
	CHECK_EQ_INT(b.held_bytes, 0);
	/* A's context is unbound now: its record waits again, and a new process with the same
	 * pid starts its socket's positions from 0 with a TT_EV_SOCK of its own. */
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 8, 1008, 0), 0);
	CHECK_EQ_INT(got.n, 5);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 1009), 0);
	CHECK_EQ_INT(got.n, 7);
	CHECK_EQ_INT(got.r[5].kind, TT_EV_SOCK);
	CHECK_EQ_INT(got.r[5].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[6].seq, 0);
	/* Exit of a pid that has nothing, and of one whose records are the queue's tail. */
	aead_bind__on_exit(&b, 999);
	CHECK_EQ_INT(b.dropped_records, 2);
	CHECK_EQ_INT(feed_data(&b, PID_B, CTX_W2, TT_DIR_WRITE, 0, 1, 1010, 20), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 0, 2, 1011, 0), 0);
	aead_bind__on_exit(&b, PID_A);
	CHECK_EQ_INT(b.dropped_records, 3);
	CHECK_EQ_INT(feed_data(&b, PID_B, CTX_W2, TT_DIR_WRITE, 1, 3, 1012, 21), 0);
	CHECK_EQ_INT(b.held_bytes, 2 * TT_DATA_HDR_SIZE + 4);
	CHECK_EQ_INT(feed_sock(&b, PID_B, CTX_W2, SOCK_B, 1013), 0);
	CHECK_EQ_INT(got.n, 9);
	CHECK_EQ_INT(got.r[7].seq, 20); /* after B's first write context */
	CHECK_EQ_INT(got.r[8].seq, 21);
	CHECK_EQ_INT(b.held_bytes, 0);
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}

/* Context addresses are per process: the same value in two processes is two connections. */
TEST(same_context_two_processes)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 1000), 0);
	CHECK_EQ_INT(feed_data(&b, PID_B, CTX_R, TT_DIR_READ, 0, 10, 1001, 0), 0);
	CHECK_EQ_INT(got.n, 1); /* B's context is not A's binding: held */
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 12, 1002, 0), 0);
	CHECK_EQ_INT(got.n, 2);
	CHECK_EQ_INT(got.r[1].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[1].pid, PID_A);
	CHECK_EQ_INT(feed_sock(&b, PID_B, CTX_R, SOCK_B, 1003), 0);
	CHECK_EQ_INT(got.n, 4);
	CHECK_EQ_INT(got.r[2].kind, TT_EV_SOCK);
	CHECK_EQ_INT(got.r[2].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[3].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[3].pid, PID_B);
	CHECK_EQ_INT(got.r[3].seq, 0);
	/* Same socket value in both (a cookie is only an identity): positions stay apart too. */
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_B, 1004), 0);
	CHECK_EQ_INT(got.r[4].kind, TT_EV_SOCK);
	CHECK_EQ_INT(got.r[4].pid, PID_A);
	CHECK_EQ_INT(feed_data(&b, PID_B, CTX_R, TT_DIR_READ, 10, 6, 1005, 10), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R2, SOCK_B, 1006), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R2, TT_DIR_READ, 0, 4, 1007, 0), 0);
	CHECK_EQ_INT(got.r[got.n - 1].pid, PID_A);
	CHECK_EQ_INT(got.r[got.n - 1].seq, 0); /* not after B's 16 bytes */
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}

/* Records too short for their header are refused, not held or passed on. */
TEST(malformed_sizes)
{
	struct aead_bind b = {0};
	struct tt_sock_event sk = mk_sock(PID_A, CTX_R, SOCK_A, 1000);
	uint8_t small[sizeof(struct tt_event_hdr)] = {0};

	got__reset();
	CHECK_EQ_INT(aead_bind__record(&b, small, 0, on_emit, &got), -EINVAL);
	CHECK_EQ_INT(aead_bind__record(&b, small, sizeof(small) - 1, on_emit, &got), -EINVAL);
	CHECK_EQ_INT(aead_bind__record(&b, &sk, sizeof(sk) - 1, on_emit, &got), -EINVAL);
	CHECK_EQ_INT(aead_bind__record(&b, &sk, sizeof(struct tt_event_hdr), on_emit, &got),
		     -EINVAL);
	CHECK_EQ_INT(got.n, 0);
	CHECK_EQ_INT(b.bound, 0);
	CHECK_EQ_INT(b.held_bytes, 0);
	/* A longer SOCK record is read for its known fields. */
	{
		uint8_t big[sizeof(sk) + 8] = {0};

		memcpy(big, &sk, sizeof(sk));
		CHECK_EQ_INT(aead_bind__record(&b, big, sizeof(big), on_emit, &got), 0);
		CHECK_EQ_INT(got.n, 1);
		CHECK_EQ_INT(got.r[0].conn_id, SOCK_A);
	}
	aead_bind__free(&b);
}

/* TT_EV_CLOSE names the socket: it goes on with the socket's final positions, and the socket's
 * contexts are forgotten, so their addresses can serve a new connection from position 0. */
TEST(close_fills_positions_and_forgets)
{
	struct aead_bind b = {0};
	struct tt_close_event cl = mk_pos(TT_EV_CLOSE, PID_A, SOCK_A, 0, 0, 3000);

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 1000), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 40, 1001, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 100, 1002, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 1003), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_B, CTX_R, SOCK_A, 1004), 0); /* another process's */
	CHECK_EQ_INT(got.n, 4);
	CHECK_EQ_INT(aead_bind__record(&b, &cl, sizeof(cl), on_emit, &got), 0);
	CHECK_EQ_INT(got.n, 5);
	CHECK_EQ_INT(got.r[4].kind, TT_EV_CLOSE);
	CHECK_EQ_INT(got.r[4].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[4].pid, PID_A);
	CHECK_EQ_INT(got.r[4].wseq, 100);
	CHECK_EQ_INT(got.r[4].rseq, 40);
	CHECK_EQ_INT(got.r[4].size, sizeof(struct tt_close_event));
	CHECK_EQ_INT(b.nbindings, 1); /* B's */
	CHECK_EQ_INT(b.nsocks, 1);
	/* Closed twice, or a socket never bound: nothing goes on. */
	CHECK_EQ_INT(aead_bind__record(&b, &cl, sizeof(cl), on_emit, &got), 0);
	cl.hdr.conn_id = SOCK_B;
	CHECK_EQ_INT(aead_bind__record(&b, &cl, sizeof(cl), on_emit, &got), 0);
	CHECK_EQ_INT(got.n, 5);
	CHECK_EQ_INT(aead_bind__record(&b, &cl, sizeof(cl) - 1, on_emit, &got), -EINVAL);
	/* The kernel dropped the contexts' positions with the socket: both start again at 0, on
	 * a new socket that is announced. */
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_B, 4000), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 8, 4001, 0), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 9, 4002, 0), 0);
	CHECK_EQ_INT(got.n, 7);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_B, 4003), 0);
	CHECK_EQ_INT(got.n, 8);
	CHECK_EQ_INT(got.r[5].kind, TT_EV_SOCK);
	CHECK_EQ_INT(got.r[5].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[6].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[6].dir, TT_DIR_READ);
	CHECK_EQ_INT(got.r[6].seq, 0);
	CHECK_EQ_INT(got.r[7].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[7].dir, TT_DIR_WRITE);
	CHECK_EQ_INT(got.r[7].seq, 0);
	/* B's binding on its own SOCK_A is untouched. */
	CHECK_EQ_INT(feed_data(&b, PID_B, CTX_R, TT_DIR_READ, 0, 3, 4004, 0), 0);
	CHECK_EQ_INT(got.r[got.n - 1].conn_id, SOCK_A);
	CHECK_EQ_INT(got.r[got.n - 1].pid, PID_B);
	/* A closed socket that comes back (same address) is announced again, from 0. */
	cl.hdr.conn_id = SOCK_B;
	CHECK_EQ_INT(aead_bind__record(&b, &cl, sizeof(cl), on_emit, &got), 0);
	CHECK_EQ_INT(got.r[got.n - 1].kind, TT_EV_CLOSE);
	CHECK_EQ_INT(got.r[got.n - 1].wseq, 9);
	CHECK_EQ_INT(got.r[got.n - 1].rseq, 8);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W2, SOCK_B, 5000), 0);
	CHECK_EQ_INT(got.r[got.n - 1].kind, TT_EV_SOCK);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 0, 4, 5001, 0), 0);
	CHECK_EQ_INT(got.r[got.n - 1].seq, 0);
	CHECK_EQ_INT(got.bad_content, 0);
	CHECK_EQ_INT(got.bad_size, 0);
	aead_bind__free(&b);
}

/* A context whose address a new connection reuses before the old socket's close is seen (its
 * TT_EV_SOCK names another socket; the kernel's positions of it go on): it moves, and its next
 * byte continues the new socket's stream. */
TEST(context_moved_to_another_socket)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 1000), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 100, 1001, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R2, SOCK_B, 1100), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R2, TT_DIR_READ, 0, 7, 1101, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_B, 1200), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 100, 30, 1201, 7), 0);
	CHECK_EQ_INT(got.n, 5);
	CHECK_EQ_INT(count_kind(TT_EV_SOCK), 2);
	CHECK_EQ_INT(got.r[4].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[4].seq, 7);
	CHECK_EQ_INT(b.bound, 3);
	/* SYNC of the moved context: its own non-zero position shifted the same way. */
	CHECK_EQ_INT(feed_pos(&b, TT_EV_SYNC, PID_A, CTX_R, 0, 140, 1300), 0);
	CHECK_EQ_INT(got.r[5].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[5].rseq, 47);
	CHECK_EQ_INT(got.r[5].wseq, 0);
	/* SOCK_A's close still reports where SOCK_A ended, and leaves R (now SOCK_B's) bound. */
	{
		struct tt_close_event cl = mk_pos(TT_EV_CLOSE, PID_A, SOCK_A, 0, 0, 1400);

		CHECK_EQ_INT(aead_bind__record(&b, &cl, sizeof(cl), on_emit, &got), 0);
		CHECK_EQ_INT(got.r[6].kind, TT_EV_CLOSE);
		CHECK_EQ_INT(got.r[6].conn_id, SOCK_A);
		CHECK_EQ_INT(got.r[6].rseq, 100);
		CHECK_EQ_INT(got.r[6].wseq, 0);
	}
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 140, 3, 1500, 47), 0);
	CHECK_EQ_INT(got.r[7].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[7].seq, 47);
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}

/* ---- malformed records, moved and restarted contexts ---------------------------------------- */

/* A data record must hold its header and the data it says it carries: a short one is refused
 * before it is held or moves the socket's positions. */
TEST(malformed_data_records)
{
	struct aead_bind b = {0};
	size_t n;

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 1000), 0);
	n = mk_data(PID_A, CTX_W, TT_DIR_WRITE, 0, 10, 1001, 0);
	/* Bound context: header cut short, and data_len past the record's end. */
	CHECK_EQ_INT(aead_bind__record(&b, &rec_data, TT_DATA_HDR_SIZE - 1, on_emit, &got),
		     -EINVAL);
	rec_data.data_len = 5000;
	CHECK_EQ_INT(aead_bind__record(&b, &rec_data, n, on_emit, &got), -EINVAL);
	CHECK_EQ_INT(got.n, 1);
	/* Unbound context: not held either. */
	n = mk_data(PID_A, CTX_W2, TT_DIR_WRITE, 0, 10, 1002, 0);
	CHECK_EQ_INT(aead_bind__record(&b, &rec_data, TT_DATA_HDR_SIZE - 1, on_emit, &got),
		     -EINVAL);
	rec_data.data_len = 5000;
	CHECK_EQ_INT(aead_bind__record(&b, &rec_data, n, on_emit, &got), -EINVAL);
	CHECK_EQ_INT(b.held_bytes, 0);
	/* The socket's write position did not move: the next context starts at 0. */
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W2, SOCK_A, 1003), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W2, TT_DIR_WRITE, 0, 10, 1004, 0), 0);
	CHECK_EQ_INT(got.r[got.n - 1].kind, TT_EV_DATA);
	CHECK_EQ_INT(got.r[got.n - 1].seq, 0);
	/* A SYNC/IGNORE shorter than its positions. */
	{
		struct tt_close_event c = mk_pos(TT_EV_SYNC, PID_A, CTX_W, 1, 0, 1005);

		CHECK_EQ_INT(aead_bind__record(&b, &c, sizeof(c) - 1, on_emit, &got), -EINVAL);
	}
	aead_bind__free(&b);
}

/*
 * A context's address reused by a connection on another socket before the first socket's close:
 * the kernel forgets a context's state at a close only if it still runs on the closed socket, so
 * R's positions go on (100..) and are shifted onto B's stream.
 */
TEST(moved_context_survives_the_old_sockets_close)
{
	struct aead_bind b = {0};
	struct tt_close_event cl = mk_pos(TT_EV_CLOSE, PID_A, SOCK_A, 0, 0, 1300);

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 1000), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 100, 1001, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_B, 1100), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 100, 30, 1101, 0), 0);
	CHECK_EQ_INT(got.r[got.n - 1].seq, 0);
	CHECK_EQ_INT(aead_bind__record(&b, &cl, sizeof(cl), on_emit, &got), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 130, 20, 1401, 30), 0);
	CHECK_EQ_INT(got.r[got.n - 1].conn_id, SOCK_B);
	CHECK_EQ_INT(got.r[got.n - 1].seq, 30);
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}

/*
 * The kernel's state of a context evicted (LRU): its positions restart at 0, and it reports the
 * same socket again (after the record, for a write). The socket's stream goes on where it was.
 */
TEST(context_state_restart_continues_the_socket)
{
	struct aead_bind b = {0};

	got__reset();
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 2000), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 100, 2001, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_R, SOCK_A, 2100), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_R, TT_DIR_READ, 0, 20, 2101, 100), 0);
	CHECK_EQ_INT(got.r[got.n - 1].seq, 100);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 50, 2200, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 2201), 0);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 0, 10, 2300, 50), 0);
	CHECK_EQ_INT(feed_sock(&b, PID_A, CTX_W, SOCK_A, 2301), 0);
	CHECK_EQ_INT(got.r[got.n - 1].seq, 50);
	CHECK_EQ_INT(feed_data(&b, PID_A, CTX_W, TT_DIR_WRITE, 10, 5, 2400, 60), 0);
	CHECK_EQ_INT(got.r[got.n - 1].seq, 60);
	CHECK_EQ_INT(got.bad_content, 0);
	aead_bind__free(&b);
}



/* Free releases held records and both tables (ASan's leak check), and leaves b reusable. */
TEST(free_releases_everything)
{
	struct aead_bind b = {0};

	got__reset();
	for (uint32_t p = 1; p <= 50; p++) {
		CHECK_EQ_INT(feed_sock(&b, p, CTX_R + p, SOCK_A + p, 1000 + p), 0);
		CHECK_EQ_INT(feed_data(&b, p, CTX_W + p, TT_DIR_WRITE, 0, 64, 1000 + p, 0), 0);
	}
	CHECK_EQ_INT(b.nbindings, 50);
	CHECK_EQ_INT(b.nsocks, 50);
	CHECK_EQ_INT(b.held_bytes, 50 * (TT_DATA_HDR_SIZE + 64));
	aead_bind__free(&b);
	CHECK(b.head == NULL && b.tail == NULL);
	CHECK(b.bindings == NULL && b.socks == NULL);
	CHECK_EQ_INT(b.held_bytes, 0);
	CHECK_EQ_INT(b.nbindings, 0);
	CHECK_EQ_INT(b.nsocks, 0);
	got__reset();
	CHECK_EQ_INT(feed_data(&b, 1, CTX_W + 1, TT_DIR_WRITE, 0, 64, 5000, 0), 0);
	CHECK_EQ_INT(feed_sock(&b, 1, CTX_W + 1, SOCK_A, 5001), 0);
	CHECK_EQ_INT(got.n, 2);
	aead_bind__free(&b);
	aead_bind__free(&b); /* twice is harmless */
	CHECK(b.bindings == NULL);
}

/* ---- every order one thread can produce ----------------------------------------------------- */

/*
 * One exchange on one thread: the request sealed in 3 records (W0..W2) before the socket write
 * that reports CTX_W's socket (SW, after W0 at the earliest); the read context's socket (SR)
 * reported before its first record opens (R0..R2). Within a direction records keep their order.
 */
enum { EV_W0, EV_W1, EV_W2, EV_SW, EV_SR, EV_R0, EV_R1, EV_R2, EV_N };

static const uint32_t ev_len[EV_N] = {
    [EV_W0] = 517, [EV_W1] = 16384, [EV_W2] = 3, [EV_R0] = 211, [EV_R1] = 1, [EV_R2] = 4096};

static bool order__possible(const int *o)
{
	int at[EV_N];

	for (int i = 0; i < EV_N; i++)
		at[o[i]] = i;
	return at[EV_W0] < at[EV_W1] && at[EV_W1] < at[EV_W2] && at[EV_R0] < at[EV_R1] &&
	       at[EV_R1] < at[EV_R2] && at[EV_SR] < at[EV_R0] && at[EV_W0] < at[EV_SW];
}

/* Feeds one order; returns the number of ways the output differs from the byte streams. */
static int order__run(const int *o)
{
	struct aead_bind b = {0};
	uint64_t next[2] = {0, 0}, seq[2] = {0, 0};
	int bad = 0, sock_at = -1;

	got__reset();
	for (int i = 0; i < EV_N; i++) {
		uint64_t ts = 10000 + i * 1000;
		int e = o[i], dir = e >= EV_R0;

		if (e == EV_SW)
			bad += feed_sock(&b, PID_A, CTX_W, SOCK_A, ts) != 0;
		else if (e == EV_SR)
			bad += feed_sock(&b, PID_A, CTX_R, SOCK_A, ts) != 0;
		else {
			bad += feed_data(&b, PID_A, dir ? CTX_R : CTX_W, dir, seq[dir], ev_len[e],
					 ts, seq[dir]) != 0;
			seq[dir] += ev_len[e];
		}
	}
	for (int i = 0; i < got.n; i++) {
		const struct out *r = &got.r[i];

		bad += r->conn_id != SOCK_A || r->pid != PID_A;
		if (r->kind == TT_EV_SOCK) {
			bad += sock_at >= 0;
			sock_at = i;
			continue;
		}
		bad += r->kind != TT_EV_DATA || sock_at < 0;
		/* Each direction's stream is contiguous from 0 and its content checks out. */
		bad += r->seq != next[r->dir & 1];
		next[r->dir & 1] = r->seq + r->len;
	}
	bad += next[0] != seq[0] || next[1] != seq[1] || sock_at < 0;
	bad += got.n != EV_N - 1 || got.bad_content || got.bad_size;
	bad += b.held_bytes != 0 || b.dropped_records != 0 || b.bound != 2;
	aead_bind__free(&b);
	return bad;
}

static bool permute__next(int *a, int n)
{
	int i = n - 2, j = n - 1;

	while (i >= 0 && a[i] >= a[i + 1])
		i--;
	if (i < 0)
		return false;
	while (a[j] <= a[i])
		j--;
	int t = a[i];
	a[i] = a[j];
	a[j] = t;
	for (int l = i + 1, r = n - 1; l < r; l++, r--) {
		t = a[l];
		a[l] = a[r];
		a[r] = t;
	}
	return true;
}

TEST(every_order_same_streams)
{
	int o[EV_N], orders = 0, bad_orders = 0;

	for (int i = 0; i < EV_N; i++)
		o[i] = i;
	do {
		if (!order__possible(o))
			continue;
		orders++;
		if (order__run(o)) {
			if (!bad_orders)
				fprintf(stderr, "  first bad order: %d %d %d %d %d %d %d %d\n",
					o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]);
			bad_orders++;
		}
	} while (permute__next(o, EV_N));
	/* SR R0 R1 R2 is a chain; W0 before W1 W2 and SW, which go 3 ways: C(8,4) * 3. */
	CHECK_EQ_INT(orders, 70 * 3);
	CHECK_EQ_INT(bad_orders, 0);
	fprintf(stderr, "  every_order_same_streams: %d orders\n", orders);
}

int main(void)
{
	RUN(bound_context_delivered_at_once);
	RUN(write_held_until_its_sock);
	RUN(flush_takes_only_its_context);
	RUN(two_contexts_one_connection);
	RUN(key_update_continues_the_stream);
	RUN(sync_and_ignore_positions_translated);
	RUN(sync_held_with_its_context);
	RUN(held_records_expire);
	RUN(held_bytes_bounded);
	RUN(exit_drops_one_process);
	RUN(same_context_two_processes);
	RUN(malformed_sizes);
	RUN(free_releases_everything);
	RUN(close_fills_positions_and_forgets);
	RUN(context_moved_to_another_socket);
	RUN(every_order_same_streams);
	RUN(malformed_data_records);
	RUN(moved_context_survives_the_old_sockets_close);
	RUN(context_state_restart_continues_the_socket);
	TT_DONE();
}
