// SPDX-License-Identifier: Apache-2.0
/* capture__dispatch_record on well-formed and malformed kernel records. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>

#include "tokentap_abi.h"
#include "capture/capture.h"
#include "tt_test.h"

struct seen {
	int chunks, closes, socks, procs;
	struct cap_chunk chunk;
	uint8_t data[TT_CHUNK_MAX];
	struct cap_close close;
	struct cap_sock sock;
	struct cap_proc proc;
};

static void on_chunk(void *ctx, const struct cap_chunk *c)
{
	struct seen *s = ctx;

	s->chunks++;
	s->chunk = *c;
	memcpy(s->data, c->data, c->len); /* ASan checks the borrowed bytes are all readable */
}

static void on_close(void *ctx, const struct cap_close *c)
{
	struct seen *s = ctx;

	s->closes++;
	s->close = *c;
}

static void on_sock(void *ctx, const struct cap_sock *so)
{
	struct seen *s = ctx;

	s->socks++;
	s->sock = *so;
}

static void on_proc(void *ctx, const struct cap_proc *p)
{
	struct seen *s = ctx;

	s->procs++;
	s->proc = *p;
}

static struct seen *seen;
static struct cap_sink sink;

static void reset(void)
{
	memset(seen, 0, sizeof(*seen));
	sink = (struct cap_sink){.ctx = seen,
				 .on_chunk = on_chunk,
				 .on_close = on_close,
				 .on_sock = on_sock,
				 .on_proc = on_proc};
}

static int delivered(void)
{
	return seen->chunks + seen->closes + seen->socks + seen->procs;
}

static void hdr_init(struct tt_event_hdr *h, uint16_t kind)
{
	memset(h, 0, sizeof(*h));
	h->ts_ns = 123456789;
	h->conn_id = 0x7f00deadbeefULL;
	h->pid = 4242;
	h->tid = 4243;
	h->kind = kind;
	h->source = TT_SRC_OPENSSL;
}

/* A data record of `len` payload bytes; returns its size. */
static size_t make_data(uint8_t *buf, uint32_t len, uint8_t dir)
{
	struct tt_data_event *ev = (void *)buf;
	uint32_t i;

	hdr_init(&ev->hdr, TT_EV_DATA);
	ev->hdr.dir = dir;
	ev->seq = 1000;
	ev->call_start_ns = 123000000;
	ev->call_len = len + 5;
	ev->data_len = len;
	for (i = 0; i < len; i++)
		ev->data[i] = (uint8_t)(i * 7 + 3);
	return TT_DATA_HDR_SIZE + len;
}

TEST(data_well_formed)
{
	static uint8_t buf[sizeof(struct tt_data_event)];
	size_t size = make_data(buf, 300, TT_DIR_READ);

	reset();
	CHECK_EQ_INT(capture__dispatch_record(buf, size, &sink), 0);
	CHECK_EQ_INT(seen->chunks, 1);
	CHECK_EQ_INT(seen->chunk.key.pid, 4242);
	CHECK(seen->chunk.key.conn_id == 0x7f00deadbeefULL);
	CHECK_EQ_INT(seen->chunk.tid, 4243);
	CHECK_EQ_INT(seen->chunk.dir, CAP_DIR_READ);
	CHECK_EQ_INT(seen->chunk.seq, 1000);
	CHECK_EQ_INT(seen->chunk.call_start_ns, 123000000);
	CHECK_EQ_INT(seen->chunk.call_end_ns, 123456789);
	CHECK_EQ_INT(seen->chunk.call_len, 305);
	CHECK_EQ_INT(seen->chunk.len, 300);
	CHECK_EQ_INT(seen->chunk.tls_source, TT_SRC_OPENSSL);
	CHECK(memcmp(seen->data, buf + TT_DATA_HDR_SIZE, 300) == 0);
}

/* Which library (or none: plaintext at the socket layer) made a record reaches conn/ as is; a
 * plaintext connection is named by a kernel struct sock *. */
TEST(data_sources)
{
	static uint8_t buf[sizeof(struct tt_data_event)];
	const uint8_t sources[] = {TT_SRC_OPENSSL, TT_SRC_PLAINTEXT, TT_SRC_GNUTLS};
	struct tt_data_event *ev = (void *)buf;
	size_t size = make_data(buf, 40, TT_DIR_WRITE), i;

	reset();
	CHECK_EQ_INT(TT_SRC_PLAINTEXT, 2);
	CHECK_EQ_INT(TT_SRC_GNUTLS, 3);
	for (i = 0; i < sizeof(sources); i++) {
		ev->hdr.source = sources[i];
		ev->hdr.conn_id = sources[i] == TT_SRC_PLAINTEXT ? 0xffff8880c0ffee00ULL : 0x55aa10;
		CHECK_EQ_INT(capture__dispatch_record(buf, size, &sink), 0);
		CHECK_EQ_INT(seen->chunk.tls_source, sources[i]);
		CHECK(seen->chunk.key.conn_id == ev->hdr.conn_id);
	}
	CHECK_EQ_INT(seen->chunks, 3);
}

TEST(data_full_chunk_and_trailing_bytes)
{
	static uint8_t buf[sizeof(struct tt_data_event) + 64];
	size_t size = make_data(buf, TT_CHUNK_MAX, TT_DIR_WRITE);

	reset();
	CHECK_EQ_INT(capture__dispatch_record(buf, size, &sink), 0);
	CHECK_EQ_INT(seen->chunk.len, TT_CHUNK_MAX);
	CHECK_EQ_INT(seen->chunk.dir, CAP_DIR_WRITE);
	/* A newer kernel side may append fields: extra bytes after the payload are tolerated. */
	CHECK_EQ_INT(capture__dispatch_record(buf, size + 64, &sink), 0);
	CHECK_EQ_INT(seen->chunks, 2);
}

TEST(data_malformed)
{
	static uint8_t buf[sizeof(struct tt_data_event) + 16];
	struct tt_data_event *ev = (void *)buf;
	size_t size;

	reset();
	size = make_data(buf, 100, TT_DIR_WRITE);
	CHECK_EQ_INT(capture__dispatch_record(buf, size - 1, &sink),
		     -EINVAL); /* data_len > record */
	ev->data_len = TT_CHUNK_MAX + 1;
	ev->call_len = TT_CHUNK_MAX + 1;
	CHECK_EQ_INT(capture__dispatch_record(buf, sizeof(buf), &sink), -EINVAL);
	size = make_data(buf, 100, TT_DIR_WRITE);
	ev->data_len = 0;
	CHECK_EQ_INT(capture__dispatch_record(buf, size, &sink), -EINVAL);
	size = make_data(buf, 100, 2);
	CHECK_EQ_INT(capture__dispatch_record(buf, size, &sink), -EINVAL); /* bad direction */
	size = make_data(buf, 100, TT_DIR_WRITE);
	ev->call_len = 99; /* a slice larger than its whole call */
	CHECK_EQ_INT(capture__dispatch_record(buf, size, &sink), -EINVAL);
	ev->data_len = 0xffffffffu; /* must not wrap the bounds check */
	CHECK_EQ_INT(capture__dispatch_record(buf, size, &sink), -EINVAL);
	CHECK_EQ_INT(delivered(), 0);
}

TEST(every_truncation_rejected)
{
	static uint8_t buf[sizeof(struct tt_data_event)];
	size_t size = make_data(buf, 40, TT_DIR_WRITE), i;
	int bad = 0;

	reset();
	for (i = 0; i < size; i++) {
		/* A heap copy of exactly i bytes: ASan flags any read past the claimed size. */
		uint8_t *copy = malloc(i ? i : 1);

		memcpy(copy, buf, i);
		if (capture__dispatch_record(copy, i, &sink) != -EINVAL)
			bad++;
		free(copy);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(delivered(), 0);
}

TEST(short_and_unknown)
{
	struct tt_close_event ev;
	uint16_t kinds[] = {0, 8, 99, 0xffff}; /* 6, 7: TT_EV_IGNORE, TT_EV_SYNC */
	size_t i;

	reset();
	CHECK_EQ_INT(capture__dispatch_record(NULL, 0, &sink), -EINVAL);
	CHECK_EQ_INT(capture__dispatch_record("abc", 3, &sink), -EINVAL);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		hdr_init(&ev.hdr, kinds[i]);
		CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), -EINVAL);
	}
	CHECK_EQ_INT(delivered(), 0);
}

TEST(close_record)
{
	struct tt_close_event ev;

	reset();
	hdr_init(&ev.hdr, TT_EV_CLOSE);
	ev.write_seq = 777;
	ev.read_seq = 1u << 20;
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), 0);
	CHECK_EQ_INT(seen->closes, 1);
	CHECK_EQ_INT(seen->close.key.pid, 4242);
	CHECK_EQ_INT(seen->close.write_seq, 777);
	CHECK_EQ_INT(seen->close.read_seq, 1u << 20);
	CHECK_EQ_INT(seen->close.ts_ns, 123456789);
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev) - 1, &sink), -EINVAL);
	CHECK_EQ_INT(seen->closes, 1);
}

TEST(sock_record)
{
	struct tt_sock_event ev;

	reset();
	memset(&ev, 0, sizeof(ev));
	hdr_init(&ev.hdr, TT_EV_SOCK);
	ev.family = AF_INET;
	ev.sport = 40000;
	ev.dport = 443;
	memcpy(ev.saddr, "\x7f\x00\x00\x01", 4);
	memcpy(ev.daddr, "\x0a\x01\x02\x03", 4);
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), 0);
	CHECK_EQ_INT(seen->socks, 1);
	CHECK_EQ_INT(seen->sock.family, AF_INET);
	CHECK_EQ_INT(seen->sock.sport, 40000);
	CHECK_EQ_INT(seen->sock.dport, 443);
	CHECK(memcmp(seen->sock.daddr, "\x0a\x01\x02\x03", 4) == 0);
	ev.family = AF_INET6;
	memset(ev.daddr, 0xfe, sizeof(ev.daddr));
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), 0);
	CHECK(seen->sock.daddr[15] == 0xfe);
	ev.family = AF_UNIX;
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), -EINVAL);
	ev.family = AF_INET;
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev) - 1, &sink), -EINVAL);
	CHECK_EQ_INT(seen->socks, 2);
}

TEST(proc_records)
{
	struct tt_proc_event ev;

	reset();
	hdr_init(&ev.hdr, TT_EV_EXEC);
	ev.hdr.conn_id = 0;
	ev.ppid = 1;
	ev.exit_code = 0;
	memcpy(ev.comm, "0123456789abcdef", TT_COMM_LEN); /* no NUL: a recorded file may do this */
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), 0);
	CHECK_EQ_INT(seen->procs, 1);
	CHECK(!seen->proc.exited);
	CHECK_EQ_INT(seen->proc.pid, 4242);
	CHECK_EQ_INT(seen->proc.ppid, 1);
	CHECK_EQ_STR(seen->proc.comm, "0123456789abcde");
	ev.hdr.kind = TT_EV_EXIT;
	strcpy(ev.comm, "curl");
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), 0);
	CHECK(seen->proc.exited);
	CHECK_EQ_STR(seen->proc.comm, "curl");
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev) - 1, &sink), -EINVAL);
	CHECK_EQ_INT(seen->procs, 2);
}

/* An exec record carrying the executable's facts; a short or unterminated filename is safe. */
TEST(exec_record_facts)
{
	struct tt_exec_event ex;

	reset();
	memset(&ex, 0, sizeof(ex));
	hdr_init(&ex.proc.hdr, TT_EV_EXEC);
	strcpy(ex.proc.comm, "python3");
	ex.exe_ino = 77;
	ex.exe_dev = (8u << 20) | 3;
	strcpy(ex.filename, "/usr/bin/python3");
	ex.filename_len = (uint32_t)strlen(ex.filename);
	CHECK_EQ_INT(capture__dispatch_record(&ex, sizeof(ex), &sink), 0);
	CHECK_EQ_STR(seen->proc.filename, "/usr/bin/python3");
	CHECK(seen->proc.exe_ino == 77);
	CHECK(major(seen->proc.exe_dev) == 8 && minor(seen->proc.exe_dev) == 3);
	/* A length past the buffer and no NUL: cut, terminated. */
	memset(ex.filename, 'a', sizeof(ex.filename));
	ex.filename_len = 100000;
	CHECK_EQ_INT(capture__dispatch_record(&ex, sizeof(ex), &sink), 0);
	CHECK(strlen(seen->proc.filename) == sizeof(seen->proc.filename) - 1);
	/* The bare proc record (older captures) leaves the facts empty. */
	CHECK_EQ_INT(capture__dispatch_record(&ex, sizeof(struct tt_proc_event), &sink), 0);
	CHECK_EQ_STR(seen->proc.filename, "");
	CHECK(seen->proc.exe_ino == 0);
}

TEST(misaligned_record)
{
	static uint8_t aligned[sizeof(struct tt_data_event)], buf[sizeof(aligned) + 8];
	size_t size = make_data(aligned, 64, TT_DIR_READ);

	memcpy(buf + 1, aligned, size);
	reset();
	/* Replay files and fuzzers pass unaligned bytes; UBSan flags any direct struct access. */
	CHECK_EQ_INT(capture__dispatch_record(buf + 1, size, &sink), 0);
	CHECK_EQ_INT(seen->chunk.len, 64);
	CHECK(memcmp(seen->data, buf + 1 + TT_DATA_HDR_SIZE, 64) == 0);
}

TEST(null_callbacks)
{
	static uint8_t buf[sizeof(struct tt_data_event)];
	struct cap_sink empty = {0};
	size_t size = make_data(buf, 10, TT_DIR_WRITE);

	CHECK_EQ_INT(capture__dispatch_record(buf, size, &empty), 0);
	CHECK_EQ_INT(capture__dispatch_record(buf, size, NULL), 0);
	/* Validation does not depend on a callback being there. */
	CHECK_EQ_INT(capture__dispatch_record(buf, size - 1, &empty), -EINVAL);
}

int main(void)
{
	seen = calloc(1, sizeof(*seen));
	RUN(data_well_formed);
	RUN(data_sources);
	RUN(data_full_chunk_and_trailing_bytes);
	RUN(data_malformed);
	RUN(every_truncation_rejected);
	RUN(short_and_unknown);
	RUN(close_record);
	RUN(sock_record);
	RUN(proc_records);
	RUN(exec_record_facts);
	RUN(misaligned_record);
	RUN(null_callbacks);
	free(seen);
	TT_DONE();
}
