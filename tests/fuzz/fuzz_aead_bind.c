// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/capture/aead_bind.c
// FUZZ_LIBS:
/*
 * capture/aead_bind on a script of rustls records as the kernel writes them. The stream parsers'
 * script (stream_script.h) drives one connection's two byte streams; this one needs processes,
 * contexts, sockets and time, so it has its own decoder. After one flags byte (bit 0: the clock
 * may step back a little, as records of several CPUs do), the input is 8-byte operations:
 *
 *   [0] op % 8: 0-2 data, 3 TT_EV_CLOSE of a socket, 4 TT_EV_SOCK, 5 TT_EV_SYNC (TT_EV_IGNORE
 *       if bit 3), 6 process exit, 7 a record too short for its kind (bit 3 says which)
 *   [1] bits 0-1 process, bits 2-4 context
 *   [2] bits 0-1 socket, bit 2 direction (bits 2-3 when bit 7: the odd values too; for a
 *       TT_EV_SOCK the direction whose probe reported it)
 *   [3..4] data length: [3] when [4] bit 7 is clear, else little endian 15 bits modulo
 *       TT_CHUNK_MAX + 1 (mostly short records keep runs fast; long ones fill the hold)
 *   [5] clock step: bit 7 set, (v & 127) * 50 ms; else v us
 *   [6] bit 7: the context's position jumps (v & 127) * 100 bytes first (kernel loss)
 *   [7] SYNC: bit 0 write position 0, bit 1 read position 0 (a direction the context never ran)
 *
 * The kernel is modelled where it matters: a context's positions go on across a move to another
 * socket, and a socket's close forgets the positions of the contexts still bound to it.
 *
 * Every record carries its serial number in hdr.tid (aead_bind leaves it alone), so what comes
 * out is checked against what went in: same kind, size, process, direction, bytes; conn_id the
 * socket the context was last bound to by a TT_EV_SOCK of that process, announced by one
 * TT_EV_SOCK before any of its records; each context's records in order and each direction's
 * positions moved by one constant while it stays on a socket, never wrapped; a TT_EV_CLOSE with
 * the ends of what went on; a record released from hold not older than AEAD_HELD_NS; held_bytes
 * never above AEAD_HELD_BYTES; and at the end, after every process exited, each record delivered
 * or counted dropped, byte for byte.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tokentap_abi.h"
#include "capture/aead_bind.h"

#define NPID 4
#define NCTX 8
#define NSOCK 4
#define MAX_OPS 8200
#define PID0 1000u
#define CTX0 0x7f3c00001000ULL
#define SOCK0 0xffff8880aa000000ULL

struct fed {
	uint16_t kind;
	uint8_t dir;
	uint8_t pid, ctx, sock; /* sock: TT_EV_CLOSE */
	uint32_t size, len;
	uint64_t seq, wseq, rseq, ts;
	uint32_t gen; /* the kernel's life of the context's positions when it was made */
	bool out;
};

static struct {
	struct aead_bind *b;
	uint32_t nfed;
	uint64_t now; /* the clock of the record being fed */
	bool monotonic;
	int bound[NPID][NCTX];		   /* socket index + 1 the context was bound to; 0 none */
	bool announced[NPID][NSOCK];	   /* TT_EV_SOCK delivered for (process, socket) */
	bool sock_known[NPID][NSOCK];	   /* a TT_EV_SOCK named it since its close or exit */
	uint64_t sock_end[NPID][NSOCK][2]; /* ends of what went on, per direction */
	bool delta_known[NPID][NCTX][2];
	uint64_t delta[NPID][NCTX][2]; /* delivered position - kernel position */
	uint32_t delta_gen[NPID][NCTX][2];
	uint32_t kgen[NPID][NCTX]; /* bumped when the kernel forgets the context's positions */
	uint32_t last_serial[NPID][NCTX];
	uint64_t out_records, out_bytes;
	/* not cleared between runs: fed[] entries are written before use */
	struct fed fed[MAX_OPS];
	_Alignas(8) uint8_t payload[TT_DATA_HDR_SIZE + TT_CHUNK_MAX];
} F;

static uint8_t fill(uint32_t serial, uint32_t i)
{
	return (uint8_t)(serial * 31 + i * 7 + (i >> 8));
}

static void sock__extend(uint64_t cookie, int pid, int d, uint64_t end)
{
	uint64_t *e = &F.sock_end[pid][(cookie - SOCK0) / 0x1000][d];

	if (end > *e)
		*e = end;
}

static void check_delta(const struct fed *f, int d, uint64_t in, uint64_t out)
{
	/* Positions the kernel numbered anew may continue the socket another way. */
	if (F.delta_known[f->pid][f->ctx][d] && F.delta_gen[f->pid][f->ctx][d] == f->gen) {
		if (out - in != F.delta[f->pid][f->ctx][d])
			abort();
		return;
	}
	F.delta_known[f->pid][f->ctx][d] = true;
	F.delta_gen[f->pid][f->ctx][d] = f->gen;
	F.delta[f->pid][f->ctx][d] = out - in;
}

static void check_sock(const struct fed *f, const struct tt_sock_event *ev)
{
	uint64_t idx = (ev->sock_cookie - SOCK0) / 0x1000;

	if (ev->hdr.conn_id != ev->sock_cookie || idx >= NSOCK || F.announced[f->pid][idx])
		abort();
	F.announced[f->pid][idx] = true;
}

static void check_data(const struct fed *f, const uint8_t *rec, size_t size, uint32_t serial)
{
	struct tt_data_event ev;

	memcpy(&ev, rec, TT_DATA_HDR_SIZE);
	if (ev.data_len != f->len || (ev.hdr.dir & 1) != (f->dir & 1))
		abort();
	for (uint32_t i = 0; i < ev.data_len; i++) {
		if (rec[TT_DATA_HDR_SIZE + i] != fill(serial, i))
			abort();
	}
	check_delta(f, f->dir & 1, f->seq, ev.seq);
	if (ev.seq > (1ULL << 48))
		abort(); /* a position wrapped below 0 */
	sock__extend(ev.hdr.conn_id, f->pid, f->dir & 1, ev.seq + ev.data_len);
	F.out_bytes += ev.data_len;
}

static void check_positions(const struct fed *f, const uint8_t *rec)
{
	struct tt_close_event ev;

	memcpy(&ev, rec, sizeof(ev));
	/* A context's own non-zero positions move with its records; zero takes the socket's. */
	if (f->wseq)
		check_delta(f, 0, f->wseq, ev.write_seq);
	if (f->rseq)
		check_delta(f, 1, f->rseq, ev.read_seq);
	if (ev.write_seq > (1ULL << 48) || ev.read_seq > (1ULL << 48))
		abort();
	sock__extend(ev.hdr.conn_id, f->pid, 0, ev.write_seq);
	sock__extend(ev.hdr.conn_id, f->pid, 1, ev.read_seq);
}

/* A socket's close goes on with the ends of what went on before it. */
static void check_close(const struct fed *f, const uint8_t *rec)
{
	struct tt_close_event ev;

	memcpy(&ev, rec, sizeof(ev));
	if (ev.hdr.conn_id != SOCK0 + (uint64_t)f->sock * 0x1000 || ev.write_seq != f->wseq ||
	    ev.read_seq != f->rseq)
		abort();
}

static int on_emit(void *ctx, const void *rec, size_t size)
{
	struct tt_event_hdr h;
	struct fed *f;
	int sock;

	if (ctx != &F || size < sizeof(h) || F.b->held_bytes > AEAD_HELD_BYTES)
		abort();
	memcpy(&h, rec, sizeof(h));
	if (h.tid >= F.nfed)
		abort();
	f = &F.fed[h.tid];
	if (f->out || f->kind != h.kind || f->size != size || h.pid != PID0 + f->pid ||
	    h.source != TT_SRC_RUSTLS || h.ts_ns != f->ts)
		abort();
	f->out = true;
	if (h.kind == TT_EV_CLOSE) {
		check_close(f, rec);
		return 0;
	}
	sock = F.bound[f->pid][f->ctx];
	if (!sock || h.conn_id != SOCK0 + (uint64_t)(sock - 1) * 0x1000)
		abort();
	if (h.kind == TT_EV_SOCK) {
		check_sock(f, rec);
		return 0;
	}
	if (!F.announced[f->pid][sock - 1])
		abort();
	/* Released from hold: it would have expired had it waited longer. */
	if (F.monotonic && F.now > f->ts + AEAD_HELD_NS)
		abort();
	if (h.tid < F.last_serial[f->pid][f->ctx])
		abort();
	F.last_serial[f->pid][f->ctx] = h.tid;
	F.out_records++;
	if (h.kind == TT_EV_DATA)
		check_data(f, rec, size, h.tid);
	else
		check_positions(f, rec);
	return 0;
}

/* ---- the script ------------------------------------------------------------------------------ */

struct state {
	uint64_t kseq[NPID][NCTX][2];  /* the kernel's positions per context */
	int ksock_ctx[NPID][NSOCK][2]; /* aead_socks: context + 1 last bound per direction */
	uint64_t in_records, in_bytes;
};

static struct fed *fed__new(uint16_t kind, int pid, int ctx)
{
	struct fed *f = &F.fed[F.nfed];

	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->pid = (uint8_t)pid;
	f->ctx = (uint8_t)ctx;
	f->ts = F.now;
	f->gen = F.kgen[pid][ctx];
	return f;
}

static void hdr__fill(struct tt_event_hdr *h, uint16_t kind, int pid, int ctx, int dir)
{
	memset(h, 0, sizeof(*h));
	h->ts_ns = F.now;
	h->conn_id = CTX0 + (uint64_t)ctx * 0x40;
	h->pid = PID0 + pid;
	h->tid = F.nfed;
	h->kind = kind;
	h->dir = (uint8_t)dir;
	h->source = TT_SRC_RUSTLS;
}

static void op__data(struct state *s, const uint8_t *o, int pid, int ctx)
{
	struct tt_data_event *ev = (struct tt_data_event *)F.payload;
	int dir = o[2] & 0x80 ? (o[2] >> 2) & 3 : (o[2] >> 2) & 1;
	uint32_t len = o[4] & 0x80
			   ? ((uint32_t)o[3] | (uint32_t)(o[4] & 0x7f) << 8) % (TT_CHUNK_MAX + 1)
			   : o[3];
	uint64_t *kseq = &s->kseq[pid][ctx][dir & 1];
	struct fed *f = fed__new(TT_EV_DATA, pid, ctx);

	if (o[6] & 0x80)
		*kseq += (uint64_t)(o[6] & 0x7f) * 100;
	hdr__fill(&ev->hdr, TT_EV_DATA, pid, ctx, dir);
	ev->seq = *kseq;
	ev->call_start_ns = F.now;
	ev->call_len = len;
	ev->data_len = len;
	for (uint32_t i = 0; i < len; i++)
		ev->data[i] = fill(F.nfed, i);
	f->dir = (uint8_t)dir;
	f->seq = *kseq;
	f->len = len;
	f->size = TT_DATA_HDR_SIZE + len;
	*kseq += len;
	F.nfed++;
	if (aead_bind__record(F.b, ev, f->size, on_emit, &F))
		abort();
	s->in_records++;
	s->in_bytes += len;
}

static void op__sock(struct state *s, const uint8_t *o, int pid, int ctx)
{
	struct tt_sock_event ev;
	int sock = o[2] & 3;
	struct fed *f = fed__new(TT_EV_SOCK, pid, ctx);

	memset(&ev, 0, sizeof(ev));
	hdr__fill(&ev.hdr, TT_EV_SOCK, pid, ctx, 0);
	ev.sock_cookie = SOCK0 + (uint64_t)sock * 0x1000;
	ev.family = AF_INET6;
	ev.sport = 1;
	ev.dport = 443;
	f->size = sizeof(ev);
	F.nfed++;
	/* A TT_EV_SOCK naming another socket moves the context: its shift changes. */
	if (F.bound[pid][ctx] != sock + 1) {
		F.bound[pid][ctx] = sock + 1;
		memset(F.delta_known[pid][ctx], 0, sizeof(F.delta_known[pid][ctx]));
	}
	s->ksock_ctx[pid][sock][(o[2] >> 2) & 1] = ctx + 1;
	if (aead_bind__record(F.b, &ev, sizeof(ev), on_emit, &F))
		abort();
	F.sock_known[pid][sock] = true;
}

/* The kernel forgets a context's positions: they start again at 0. */
static void kernel__forget(struct state *s, int pid, int ctx)
{
	memset(s->kseq[pid][ctx], 0, sizeof(s->kseq[pid][ctx]));
	F.kgen[pid][ctx]++;
}

/* TCP_CLOSE of a socket: TT_EV_CLOSE with conn_id = the socket, positions left to user space. */
static void op__close(struct state *s, const uint8_t *o, int pid)
{
	int sock = o[2] & 3;
	struct fed *f = fed__new(TT_EV_CLOSE, pid, 0);
	struct tt_close_event ev;

	hdr__fill(&ev.hdr, TT_EV_CLOSE, pid, 0, 0);
	ev.hdr.conn_id = SOCK0 + (uint64_t)sock * 0x1000;
	ev.write_seq = ev.read_seq = 0;
	f->sock = (uint8_t)sock;
	f->wseq = F.sock_end[pid][sock][0];
	f->rseq = F.sock_end[pid][sock][1];
	f->size = sizeof(ev);
	F.nfed++;
	if (aead_bind__record(F.b, &ev, sizeof(ev), on_emit, &F))
		abort();
	if (f->out != F.sock_known[pid][sock])
		abort(); /* a known socket's close goes on, an unknown one's does not */
	for (int c = 0; c < NCTX; c++) {
		if (F.bound[pid][c] != sock + 1)
			continue;
		F.bound[pid][c] = 0;
		memset(F.delta_known[pid][c], 0, sizeof(F.delta_known[pid][c]));
		kernel__forget(s, pid, c);
	}
	/* rustls__close forgets only contexts still on this socket (done above). */
	memset(s->ksock_ctx[pid][sock], 0, sizeof(s->ksock_ctx[pid][sock]));
	F.sock_known[pid][sock] = false;
	F.announced[pid][sock] = false;
	memset(F.sock_end[pid][sock], 0, sizeof(F.sock_end[pid][sock]));
}

static void op__positions(struct state *s, const uint8_t *o, int pid, int ctx)
{
	uint16_t kind = o[0] & 8 ? TT_EV_IGNORE : TT_EV_SYNC;
	struct fed *f = fed__new(kind, pid, ctx);
	struct tt_close_event ev;

	hdr__fill(&ev.hdr, kind, pid, ctx, 0);
	ev.write_seq = o[7] & 1 ? 0 : s->kseq[pid][ctx][0];
	ev.read_seq = o[7] & 2 ? 0 : s->kseq[pid][ctx][1];
	f->wseq = ev.write_seq;
	f->rseq = ev.read_seq;
	f->size = sizeof(ev);
	F.nfed++;
	if (aead_bind__record(F.b, &ev, sizeof(ev), on_emit, &F))
		abort();
	s->in_records++;
}

static void op__exit(int pid)
{
	aead_bind__on_exit(F.b, PID0 + pid);
	memset(F.bound[pid], 0, sizeof(F.bound[pid]));
	memset(F.announced[pid], 0, sizeof(F.announced[pid]));
	memset(F.sock_known[pid], 0, sizeof(F.sock_known[pid]));
	memset(F.sock_end[pid], 0, sizeof(F.sock_end[pid]));
	memset(F.delta_known[pid], 0, sizeof(F.delta_known[pid]));
}

/* Records too short for their kind are refused, whatever the context's state. */
static void op__short(const uint8_t *o, int pid, int ctx)
{
	struct tt_sock_event ev;
	size_t size = sizeof(struct tt_event_hdr) - 1;

	memset(&ev, 0, sizeof(ev));
	hdr__fill(&ev.hdr, TT_EV_SOCK, pid, ctx, 0);
	ev.sock_cookie = SOCK0;
	if ((o[0] >> 3) & 1)
		size = sizeof(ev) - 1 - o[3] % (sizeof(ev) - sizeof(ev.hdr));
	if (aead_bind__record(F.b, &ev, size, on_emit, &F) != -EINVAL)
		abort();
}

static void clock__step(const uint8_t *o, bool jitter)
{
	uint64_t step = o[5] & 0x80 ? (uint64_t)(o[5] & 0x7f) * 50000000 : (uint64_t)o[5] * 1000;

	if (jitter && (o[6] & 0x40) && F.now > 1000000 + 500000)
		F.now -= 500000; /* records of another CPU, up to 0.5 ms behind */
	else
		F.now += step;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aead_bind b = {0};
	static struct state s;
	bool jitter;

	if (size < 1)
		return 0;
	memset(&F, 0, offsetof(__typeof__(F), fed));
	memset(&s, 0, sizeof(s));
	F.b = &b;
	F.now = 1000000000;
	jitter = data[0] & 1;
	F.monotonic = !jitter;
	data++, size--;
	for (; size >= 8 && F.nfed < MAX_OPS - 1; data += 8, size -= 8) {
		int pid = data[1] & 3, ctx = (data[1] >> 2) & 7;

		clock__step(data, jitter);
		switch (data[0] % 8) {
		case 3:
			op__close(&s, data, pid);
			break;
		case 4:
			op__sock(&s, data, pid, ctx);
			break;
		case 5:
			op__positions(&s, data, pid, ctx);
			break;
		case 6:
			op__exit(pid);
			break;
		case 7:
			op__short(data, pid, ctx);
			break;
		default:
			op__data(&s, data, pid, ctx);
			break;
		}
		if (b.held_bytes > AEAD_HELD_BYTES)
			abort();
	}
	/* Every process exits: nothing stays held, and every record is accounted for. */
	for (int p = 0; p < NPID; p++)
		op__exit(p);
	if (b.held_bytes != 0 || b.nbindings != 0 || b.nsocks != 0)
		abort();
	if (F.out_records + b.dropped_records != s.in_records ||
	    F.out_bytes + b.dropped_bytes != s.in_bytes)
		abort();
	aead_bind__free(&b);
	return 0;
}
