// SPDX-License-Identifier: Apache-2.0
/*
 * conn/ + proto/ + llm/ together, fed the neutral chunks capture/ produces: SSL calls of every
 * size, lost bytes at every kind of place, connections that close, exit or start mid-stream.
 */
#include <stdlib.h>

#include "tt_test.h"
#include "conn/conn.h"

#define MAX_CALLS 64

static struct llm_call calls[MAX_CALLS];
static int n_calls;

static void on_call(void *ctx, const struct llm_call *c)
{
	if (n_calls < MAX_CALLS)
		calls[n_calls] = *c;
	n_calls++;
}

static const char REQ_BODY[] =
	"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
	"\"max_tokens\":50,\"temperature\":0.2}";

static const char SREQ_BODY[] =
	"{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
	"\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static char req[1024], sreq[1024];

static const char RESP_BODY[] =
	"{\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion\",\"created\":1700000000,"
	"\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
	"\"assistant\",\"content\":\"Hello there!\"},\"finish_reason\":\"stop\"}],\"usage\":"
	"{\"prompt_tokens\":11,\"completion_tokens\":4,\"total_tokens\":15}}";

static char resp[1024];

static const char SSE_RESP[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	"54\r\ndata: {\"id\":\"chatcmpl-s1\",\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\r\n"
	"5d\r\ndata: {\"id\":\"chatcmpl-s1\",\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\r\n"
	"7e\r\ndata: {\"id\":\"chatcmpl-s1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n\r\n"
	"e\r\ndata: [DONE]\n\n\r\n"
	"0\r\n\r\n";

static void build_fixtures(void)
{
	snprintf(req, sizeof(req),
		 "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
		 "Authorization: Bearer sk-secret\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 strlen(REQ_BODY), REQ_BODY);
	snprintf(sreq, sizeof(sreq),
		 "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		 strlen(SREQ_BODY), SREQ_BODY);
	snprintf(resp, sizeof(resp),
		 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		 strlen(RESP_BODY), RESP_BODY);
}

struct feeder {
	struct conn_table *t;
	uint32_t pid;
	uint64_t conn_id;
	uint64_t seq[2];
	uint64_t now;
};

/* One SSL call of `len` bytes; `deliver` false models a record the ring buffer dropped. */
static void feed(struct feeder *f, int dir, const char *data, size_t len, bool deliver)
{
	struct cap_chunk c = {
		.key = { .pid = f->pid, .conn_id = f->conn_id },
		.tid = f->pid + 1,
		.dir = dir,
		.seq = f->seq[dir],
		.call_start_ns = f->now,
		.call_end_ns = f->now + 1000,
		.call_len = (uint32_t)len,
		.len = (uint32_t)len,
		.data = (const uint8_t *)data,
		.tls_source = 1,
	};

	f->now += 1000000; /* 1 ms between SSL calls */
	f->seq[dir] += len;
	if (deliver)
		conn_table__on_chunk(f->t, &c);
}

static void feed_in_pieces(struct feeder *f, int dir, const char *data, size_t len, size_t piece)
{
	for (size_t off = 0; off < len; off += piece)
		feed(f, dir, data + off, len - off < piece ? len - off : piece, true);
}

static void close_conn(struct feeder *f)
{
	struct cap_close cl = {
		.key = { .pid = f->pid, .conn_id = f->conn_id },
		.ts_ns = f->now,
		.write_seq = f->seq[0],
		.read_seq = f->seq[1],
	};
	conn_table__on_close(f->t, &cl);
}

static struct conn_table *new_table(void)
{
	struct conn_opts o = {};

	n_calls = 0;
	memset(calls, 0, sizeof(calls));
	return conn_table__new(&o, on_call, NULL);
}

static void check_plain_call(const struct llm_call *c)
{
	CHECK_EQ_STR(c->provider_name, "openai");
	CHECK_EQ_STR(c->request_model, "gpt-4o-mini");
	CHECK_EQ_STR(c->response_model, "gpt-4o-mini-2024-07-18");
	CHECK_EQ_STR(c->response_id, "chatcmpl-abc123");
	CHECK_EQ_INT(c->input_tokens, 11);
	CHECK_EQ_INT(c->output_tokens, 4);
	CHECK_EQ_INT(c->max_tokens, 50);
	CHECK_EQ_INT(c->status_code, 200);
	CHECK_EQ_INT(c->n_finish_reasons, 1);
	CHECK_EQ_STR(c->finish_reasons[0], "stop");
	CHECK_EQ_STR(c->error_type, "");
	CHECK(!c->partial);
}

TEST(plain_call_every_read_size)
{
	size_t rlen = strlen(resp);

	for (size_t piece = 1; piece <= rlen; piece++) {
		struct feeder f = { .t = new_table(), .pid = 100, .conn_id = 0xabc, .now = 5000000 };

		feed_in_pieces(&f, 0, req, strlen(req), piece);
		feed_in_pieces(&f, 1, resp, rlen, piece);
		CHECK_EQ_INT(n_calls, 1);
		if (n_calls == 1) {
			check_plain_call(&calls[0]);
			CHECK_EQ_INT(calls[0].pid, 100);
			CHECK_EQ_INT(calls[0].tid, 101);
			CHECK_EQ_INT(calls[0].start_ns, 5000000);
			CHECK(calls[0].end_ns == f.now - 1000000 + 1000);
		}
		close_conn(&f);
		CHECK_EQ_INT(n_calls, 1);
		conn_table__free(f.t);
		if (tt_failures)
			break;
	}
}

TEST(streamed_call_every_read_size)
{
	size_t rlen = strlen(SSE_RESP);

	for (size_t piece = 1; piece <= rlen; piece += (piece < 64 ? 1 : 7)) {
		struct feeder f = { .t = new_table(), .pid = 7, .conn_id = 1, .now = 1000000 };

		feed(&f, 0, sreq, strlen(sreq), true);
		feed_in_pieces(&f, 1, SSE_RESP, rlen, piece);
		CHECK_EQ_INT(n_calls, 1);
		if (n_calls == 1) {
			CHECK_EQ_STR(calls[0].response_id, "chatcmpl-s1");
			CHECK_EQ_STR(calls[0].request_model, "gpt-4o");
			CHECK_EQ_STR(calls[0].detected_by, "path");
			CHECK_EQ_STR(calls[0].server_address, "127.0.0.1");
			CHECK_EQ_INT(calls[0].server_port, 8443);
			CHECK_EQ_INT(calls[0].stream, 1);
			CHECK_EQ_INT(calls[0].n_finish_reasons, 1);
			CHECK_EQ_INT(calls[0].input_tokens, 9);
			CHECK_EQ_INT(calls[0].output_tokens, 2);
			CHECK(calls[0].first_chunk_ns > calls[0].start_ns);
			CHECK(calls[0].first_chunk_ns <= calls[0].end_ns);
			CHECK(!calls[0].partial);
		}
		conn_table__free(f.t);
		if (tt_failures)
			break;
	}
}

TEST(keep_alive_fifty_calls)
{
	struct feeder f = { .t = new_table(), .pid = 9, .conn_id = 2, .now = 1 };

	for (int i = 0; i < 50; i++) {
		feed(&f, 0, req, strlen(req), true);
		feed(&f, 1, resp, strlen(resp), true);
	}
	CHECK_EQ_INT(n_calls, 50);
	for (int i = 0; i < 50 && i < n_calls; i++)
		check_plain_call(&calls[i]);
	conn_table__free(f.t);
}

/* A record lost inside a body of known length: the call survives, marked partial. */
TEST(loss_inside_body_marks_partial)
{
	struct feeder f = { .t = new_table(), .pid = 9, .conn_id = 3, .now = 1 };
	const char *body = strstr(resp, "\r\n\r\n") + 4;
	size_t head = (size_t)(body - resp);

	feed(&f, 0, req, strlen(req), true);
	feed(&f, 1, resp, head + 10, true);
	feed(&f, 1, resp + head + 10, 20, false);
	feed(&f, 1, resp + head + 30, strlen(resp) - head - 30, true);
	CHECK_EQ_INT(n_calls, 1);
	CHECK(calls[0].partial);
	CHECK_EQ_INT(calls[0].lost_bytes, 20);
	CHECK_EQ_INT(calls[0].status_code, 200);
	/* The next call on the same connection is whole again. */
	feed(&f, 0, req, strlen(req), true);
	feed(&f, 1, resp, strlen(resp), true);
	CHECK_EQ_INT(n_calls, 2);
	check_plain_call(&calls[1]);
	conn_table__free(f.t);
}

/* A lost response head cannot be reframed: that call ends as a capture gap, the next resyncs. */
TEST(loss_of_response_head_then_resync)
{
	struct feeder f = { .t = new_table(), .pid = 9, .conn_id = 4, .now = 1 };

	feed(&f, 0, req, strlen(req), true);
	feed(&f, 1, resp, 20, false);
	feed(&f, 1, resp + 20, strlen(resp) - 20, true);
	CHECK_EQ_INT(n_calls, 1);
	CHECK(calls[0].partial);
	CHECK_EQ_STR(calls[0].error_type, "capture_gap");
	feed(&f, 0, req, strlen(req), true);
	feed(&f, 1, resp, strlen(resp), true);
	CHECK_EQ_INT(n_calls, 2);
	if (n_calls == 2)
		check_plain_call(&calls[1]);
	conn_table__free(f.t);
}

/* The tail of the response never arrived; the close record says how much was missing. */
TEST(lost_tail_reported_at_close)
{
	struct feeder f = { .t = new_table(), .pid = 9, .conn_id = 5, .now = 1 };

	feed(&f, 0, req, strlen(req), true);
	feed(&f, 1, resp, strlen(resp) - 15, true);
	feed(&f, 1, resp + strlen(resp) - 15, 15, false);
	CHECK_EQ_INT(n_calls, 0);
	close_conn(&f);
	CHECK_EQ_INT(n_calls, 1);
	CHECK(calls[0].partial);
	CHECK(calls[0].lost_bytes >= 15);
	conn_table__free(f.t);
}

TEST(request_without_response_reported_on_exit)
{
	struct feeder f = { .t = new_table(), .pid = 31, .conn_id = 6, .now = 1 };

	feed(&f, 0, req, strlen(req), true);
	conn_table__on_exit(f.t, 31, f.now);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "connection_closed");
	CHECK_EQ_INT(calls[0].status_code, 0);
	struct conn_stats st;
	conn_table__stats(f.t, &st);
	CHECK_EQ_INT(st.open, 0);
	conn_table__free(f.t);
}

TEST(request_timeout)
{
	struct conn_opts o = { .request_timeout_ns = 1000000000ull };
	struct feeder f = { .pid = 31, .conn_id = 7, .now = 1 };

	n_calls = 0;
	f.t = conn_table__new(&o, on_call, NULL);
	feed(&f, 0, req, strlen(req), true);
	conn_table__tick(f.t, f.now + 500000000ull);
	CHECK_EQ_INT(n_calls, 0);
	conn_table__tick(f.t, f.now + 2000000000ull);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "timeout");
	conn_table__free(f.t);
}

TEST(garbage_and_non_llm_traffic_make_no_call)
{
	struct feeder f = { .t = new_table(), .pid = 3, .conn_id = 8, .now = 1 };
	static const char get[] = "GET /health HTTP/1.1\r\nHost: api.openai.com\r\n\r\n";
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	struct conn_stats st;
	char junk[4096];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	for (int i = 0; i < 4; i++) {
		feed(&f, 0, junk, sizeof(junk), true);
		feed(&f, 1, junk, sizeof(junk), true);
	}
	feed(&f, 0, req, strlen(req), true); /* too late: the connection is not HTTP */
	CHECK_EQ_INT(n_calls, 0);
	conn_table__stats(f.t, &st);
	CHECK_EQ_INT(st.not_http, 1);

	/* HTTP/2 is recognised at once and parsed (tests/unit/test_http2.c). */
	f.conn_id = 11;
	f.seq[0] = f.seq[1] = 0;
	feed(&f, 0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24, true);
	conn_table__stats(f.t, &st);
	CHECK_EQ_INT(st.not_http, 1);
	CHECK_EQ_INT(st.http2, 1);

	f.conn_id = 9;
	f.seq[0] = f.seq[1] = 0;
	feed(&f, 0, get, strlen(get), true);
	feed(&f, 1, ok, strlen(ok), true);
	close_conn(&f);
	CHECK_EQ_INT(n_calls, 0);
	conn_table__free(f.t);
}

/* The server end of a TLS connection (a local gateway) reads requests: not a client call. */
TEST(server_side_is_set_aside)
{
	struct feeder f = { .t = new_table(), .pid = 8, .conn_id = 12, .now = 1 };
	struct conn_stats st;

	feed(&f, 1, req, strlen(req), true);
	feed(&f, 0, resp, strlen(resp), true);
	conn_table__stats(f.t, &st);
	CHECK_EQ_INT(n_calls, 0);
	CHECK_EQ_INT(st.server_side, 1);
	CHECK_EQ_INT(st.parse_errors, 0);
	conn_table__free(f.t);
}

/* tokentap started while a connection was mid-response: bytes before the next request are
 * skipped, never parsed as a message. */
TEST(capture_starting_mid_connection)
{
	struct feeder f = { .t = new_table(), .pid = 5, .conn_id = 10, .now = 1 };
	size_t half = strlen(resp) / 2;

	f.seq[0] = 5000;
	f.seq[1] = 7000;
	feed(&f, 1, resp + half, strlen(resp) - half, true);
	feed(&f, 0, req, strlen(req), true);
	feed(&f, 1, resp, strlen(resp), true);
	CHECK_EQ_INT(n_calls, 1);
	if (n_calls == 1)
		check_plain_call(&calls[0]);
	conn_table__free(f.t);
}

/* conn_table__tick packs calls that wait for their response (llm_conn__trim): the call made
 * after a tick at every point of the exchange must be the very same bytes as without one. */
static struct llm_call ref_call;

static void run_with_ticks(const char *rq, const char *rs, size_t piece, bool ticks,
			   struct llm_call *out)
{
	struct feeder f = { .t = new_table(), .pid = 55, .conn_id = 0x77, .now = 3000000 };
	size_t len[2] = { strlen(rq), strlen(rs) };
	const char *d[2] = { rq, rs };

	for (int dir = 0; dir < 2; dir++)
		for (size_t off = 0; off < len[dir]; off += piece) {
			feed(&f, dir, d[dir] + off, len[dir] - off < piece ? len[dir] - off : piece,
			     true);
			if (ticks)
				conn_table__tick(f.t, f.now);
		}
	CHECK_EQ_INT(n_calls, 1);
	memcpy(out, &calls[0], sizeof(*out));
	/* pointers valid during the callback only: into memory of the exchange */
	out->input_messages = out->output_messages = out->system_instructions = NULL;
	out->chunk_gaps = NULL;
	conn_table__free(f.t);
}

TEST(ticks_pack_waiting_calls_unchanged)
{
	const char *rq[2] = { req, sreq }, *rs[2] = { resp, SSE_RESP };
	struct llm_call got;
	int differ = 0;

	for (int k = 0; k < 2; k++)
		for (size_t piece = 1; piece <= strlen(rs[k]); piece += piece < 40 ? 1 : 13) {
			run_with_ticks(rq[k], rs[k], piece, false, &ref_call);
			run_with_ticks(rq[k], rs[k], piece, true, &got);
			differ += memcmp(&ref_call, &got, sizeof(got)) != 0;
		}
	CHECK_EQ_INT(differ, 0);
	CHECK_EQ_STR(got.response_id, "chatcmpl-s1");
}

/* Packed calls still end properly: closed, process exit, timeout, or freed with the table. */
TEST(packed_calls_end_and_free)
{
	struct conn_opts o = { .request_timeout_ns = 10ull * 1000000000ull };
	struct feeder f = { .pid = 60, .now = 1000 };

	n_calls = 0;
	f.t = conn_table__new(&o, on_call, NULL);
	for (int i = 0; i < 30; i++) {
		f.conn_id = 0x1000 + (uint64_t)i;
		f.seq[0] = f.seq[1] = 0;
		f.pid = 60 + (uint32_t)(i % 3);
		feed(&f, 0, req, strlen(req), true);
	}
	conn_table__tick(f.t, f.now);
	CHECK_EQ_INT(n_calls, 0);
	f.pid = 60;
	f.conn_id = 0x1000; /* answered after being packed */
	f.seq[0] = strlen(req);
	f.seq[1] = 0;
	feed(&f, 1, resp, strlen(resp), true);
	CHECK_EQ_INT(n_calls, 1);
	check_plain_call(&calls[0]);
	f.conn_id = 0x1003;
	f.seq[1] = 0;
	close_conn(&f);
	CHECK_EQ_INT(n_calls, 2);
	CHECK_EQ_STR(calls[1].error_type, "connection_closed");
	CHECK_EQ_STR(calls[1].request_model, "gpt-4o-mini");
	conn_table__on_exit(f.t, 61, f.now);
	CHECK_EQ_INT(n_calls, 12);
	CHECK_EQ_STR(calls[11].error_type, "connection_closed");
	conn_table__tick(f.t, f.now + 11ull * 1000000000ull);
	CHECK_EQ_INT(n_calls, 30);
	CHECK_EQ_STR(calls[29].error_type, "timeout");
	CHECK_EQ_INT(calls[29].max_tokens, 50);
	/* the rest (none now, all timed out) and any still packed are freed without a call */
	for (int i = 0; i < 5; i++) {
		f.conn_id = 0x2000 + (uint64_t)i;
		f.seq[0] = f.seq[1] = 0;
		feed(&f, 0, req, strlen(req), true);
	}
	conn_table__tick(f.t, f.now);
	conn_table__free(f.t);
	CHECK_EQ_INT(n_calls, 30);
}

TEST(many_connections_bounded)
{
	struct conn_opts o = { .max_conns = 100 };
	struct conn_stats st;
	struct feeder f = { .pid = 1, .now = 1 };

	n_calls = 0;
	f.t = conn_table__new(&o, on_call, NULL);
	for (int i = 0; i < 1000; i++) {
		f.conn_id = 1000 + i;
		f.seq[0] = f.seq[1] = 0;
		feed(&f, 0, req, strlen(req), true);
	}
	conn_table__stats(f.t, &st);
	CHECK_EQ_INT(st.open, 100);
	CHECK_EQ_INT(st.evicted_cap, 900);
	/* each evicted connection had an open request: reported, not leaked */
	CHECK_EQ_INT(n_calls, 900);
	conn_table__close_all(f.t, f.now);
	CHECK_EQ_INT(n_calls, 1000);
	conn_table__free(f.t);
}

int main(void)
{
	build_fixtures();
	RUN(plain_call_every_read_size);
	RUN(streamed_call_every_read_size);
	RUN(keep_alive_fifty_calls);
	RUN(loss_inside_body_marks_partial);
	RUN(loss_of_response_head_then_resync);
	RUN(lost_tail_reported_at_close);
	RUN(request_without_response_reported_on_exit);
	RUN(request_timeout);
	RUN(garbage_and_non_llm_traffic_make_no_call);
	RUN(server_side_is_set_aside);
	RUN(capture_starting_mid_connection);
	RUN(ticks_pack_waiting_calls_unchanged);
	RUN(packed_calls_end_and_free);
	RUN(many_connections_bounded);
	TT_DONE();
}
