// SPDX-License-Identifier: Apache-2.0
/*
 * Loss and kernel-side skipping, fed as capture/ delivers them: records dropped at random with
 * the kernel's TT_EV_SYNC after each loss (tracing must recover on the same keep-alive
 * connection, and no response may ever be paired with the wrong request), and connections the
 * kernel ignores (TT_EV_IGNORE) and resumes (TT_EV_SYNC): skipped bytes are never loss.
 */
#include <errno.h>
#include <stdlib.h>

#include "tt_test.h"
#include "tokentap_abi.h"
#include "capture/capture.h"
#include "conn/conn.h"

#define NCALLS 400

struct seen {
	int calls, whole, partial, wrong;
	int partial_no_bytes; /* partial calls that do not say how many bytes they lost */
	int whole_after[NCALLS]; /* calls reported whole, by index */
};

static struct seen seen;

/* Request k asks for model "m<k>"; its response has id "id-<k>". */
static void on_call(void *ctx, const struct llm_call *c)
{
	int k = atoi(c->request_model + 1);

	seen.calls++;
	if (c->partial && !c->lost_bytes)
		seen.partial_no_bytes++;
	if (c->partial || c->status_code != 200 || !c->response_id[0]) {
		seen.partial++;
		return;
	}
	seen.whole++;
	if (strncmp(c->response_id, "id-", 3) || atoi(c->response_id + 3) != k)
		seen.wrong++;
	else if (k >= 0 && k < NCALLS)
		seen.whole_after[k] = 1;
}

struct sim {
	struct conn_table *t;
	struct cap_conn_key key;
	uint64_t seq[2], now;
	bool sync_owed;
	int drop_pct;
	unsigned rnd;
};

static int sim__roll(struct sim *s)
{
	s->rnd = s->rnd * 1103515245u + 12345u;
	return (int)((s->rnd >> 16) % 100);
}

/* One SSL call as the kernel reports it: the owed TT_EV_SYNC first (it may be lost too), then
 * the call's records of at most 16 KiB, each of which may be dropped. */
static void sim__call(struct sim *s, int dir, const char *data, size_t n, bool lossy)
{
	if (s->sync_owed && (!lossy || sim__roll(s) >= s->drop_pct)) {
		struct cap_close c = {.key = s->key, .ts_ns = s->now,
				      .write_seq = s->seq[0], .read_seq = s->seq[1]};

		conn_table__on_sync(s->t, &c);
		s->sync_owed = false;
	}
	for (size_t off = 0; off < n; off += 16384) {
		size_t len = n - off < 16384 ? n - off : 16384;
		struct cap_chunk c = {.key = s->key, .tid = 7, .dir = dir, .seq = s->seq[dir] + off,
				      .call_start_ns = s->now, .call_end_ns = s->now + 500,
				      .call_len = (uint32_t)n, .len = (uint32_t)len,
				      .data = (const uint8_t *)data + off, .tls_source = 1};

		if (lossy && sim__roll(s) < s->drop_pct)
			s->sync_owed = true;
		else
			conn_table__on_chunk(s->t, &c);
	}
	s->seq[dir] += n;
	s->now += 1000;
}

static char *request(int k, size_t *len)
{
	char body[256], *r = malloc(1024);
	int bl = snprintf(body, sizeof(body),
			  "{\"model\":\"m%d\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", k);

	*len = (size_t)snprintf(r, 1024,
				"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
				"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				bl, body);
	return r;
}

static char *response(int k, size_t content, size_t *len)
{
	char *text = malloc(content + 1), *r = malloc(content + 1024);
	size_t bl;

	memset(text, 'a', content);
	text[content] = '\0';
	bl = (size_t)snprintf(r + 512, content + 512,
			      "{\"id\":\"id-%d\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":"
			      "\"%s\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,"
			      "\"completion_tokens\":4}}",
			      k, text);
	*len = (size_t)snprintf(r, 512,
				"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				"Content-Length: %zu\r\n\r\n",
				bl);
	memmove(r + *len, r + 512, bl);
	*len += bl;
	free(text);
	return r;
}

/* NCALLS keep-alive calls with 40 KiB responses (3 records each); loss stops for the last 50. */
static void run_lossy(int drop_pct, unsigned seed)
{
	struct conn_opts o = {0};
	struct sim s = {.key = {.pid = 42, .conn_id = 0xabc}, .now = 1000000, .drop_pct = drop_pct,
			.rnd = seed};
	struct cap_close cl;
	struct conn_stats st;

	memset(&seen, 0, sizeof(seen));
	s.t = conn_table__new(&o, on_call, NULL);
	for (int k = 0; k < NCALLS; k++) {
		size_t rl, sl;
		char *rq = request(k, &rl), *rs = response(k, 40000, &sl);
		bool lossy = k < NCALLS - 50;

		sim__call(&s, CAP_DIR_WRITE, rq, rl, lossy);
		for (size_t off = 0; off < sl; off += 16384)
			sim__call(&s, CAP_DIR_READ, rs + off, sl - off < 16384 ? sl - off : 16384,
				  lossy);
		free(rq);
		free(rs);
	}
	cl = (struct cap_close){.key = s.key, .ts_ns = s.now, .write_seq = s.seq[0],
				.read_seq = s.seq[1]};
	conn_table__on_close(s.t, &cl);
	conn_table__stats(s.t, &st);
	CHECK_EQ_INT(seen.wrong, 0);
	CHECK_EQ_INT(seen.partial_no_bytes, 0);
	CHECK_EQ_INT(st.open, 0);
	/* Tracing recovered: every call after the loss stopped is reported whole. */
	for (int k = NCALLS - 49; k < NCALLS; k++)
		CHECK(seen.whole_after[k]);
	if (drop_pct == 0) {
		CHECK_EQ_INT(seen.whole, NCALLS);
		CHECK_EQ_INT(st.gap_bytes, 0);
	} else {
		CHECK(st.gap_bytes > 0);
		CHECK(seen.whole < NCALLS);
	}
	conn_table__free(s.t);
}

TEST(loss_at_random_recovers_and_never_mispairs)
{
	static const int pcts[] = {0, 1, 3, 10, 30};

	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		for (unsigned seed = 1; seed <= 5; seed++)
			run_lossy(pcts[i], seed * 7919u);
}

/* A whole exchange lost on a keep-alive connection, then a response head lost: each used to
 * leave http1.c unable to pair (it gave the connection up); the SYNC and a parser started
 * over keep the next exchange whole. */
TEST(whole_exchange_lost_then_head_lost)
{
	struct conn_opts o = {0};
	struct sim s = {.key = {.pid = 42, .conn_id = 0xdef}, .now = 1000000};
	size_t rl, sl;
	char *rq, *rs;

	memset(&seen, 0, sizeof(seen));
	s.t = conn_table__new(&o, on_call, NULL);
	for (int k = 0; k < 6; k++) {
		rq = request(k, &rl);
		rs = response(k, 100, &sl);
		s.drop_pct = (k == 2 || k == 3) ? 100 : 0;
		/* call 2: request and response lost; call 3: only the response head lost */
		sim__call(&s, CAP_DIR_WRITE, rq, rl, k == 2);
		s.drop_pct = (k == 2 || k == 3) ? 100 : 0;
		sim__call(&s, CAP_DIR_READ, rs, sl, k == 2 || k == 3);
		free(rq);
		free(rs);
	}
	CHECK_EQ_INT(seen.wrong, 0);
	CHECK_EQ_INT(seen.partial_no_bytes, 0);
	CHECK(seen.partial >= 1); /* call 3, its response head lost */
	CHECK(seen.whole_after[0] && seen.whole_after[1] && seen.whole_after[4] &&
	      seen.whole_after[5]);
	CHECK(!seen.whole_after[2] && !seen.whole_after[3]);
	conn_table__free(s.t);
}

/* The kernel ignored a connection (GET /), then resumed it at a POST to an LLM path. */
TEST(ignored_then_resumed_is_not_loss)
{
	struct conn_opts o = {0};
	struct cap_conn_key key = {.pid = 9, .conn_id = 0x77};
	struct cap_close ign = {.key = key, .ts_ns = 10, .write_seq = 0, .read_seq = 0};
	struct cap_close sync = {.key = key, .ts_ns = 20, .write_seq = 5000, .read_seq = 90000};
	struct cap_close cl;
	struct conn_stats st;
	size_t rl, sl;
	char *rq = request(3, &rl), *rs = response(3, 500, &sl);
	struct cap_chunk w = {.key = key, .tid = 9, .dir = CAP_DIR_WRITE, .seq = 5000,
			      .call_start_ns = 30, .call_end_ns = 31, .call_len = 0, .tls_source = 1};
	struct cap_chunk r = w;

	memset(&seen, 0, sizeof(seen));
	struct conn_table *t = conn_table__new(&o, on_call, NULL);
	conn_table__on_ignore(t, &ign);
	conn_table__on_sync(t, &sync);
	w.data = (const uint8_t *)rq;
	w.len = w.call_len = (uint32_t)rl;
	conn_table__on_chunk(t, &w);
	r.dir = CAP_DIR_READ;
	r.seq = 90000;
	r.call_start_ns = 40;
	r.call_end_ns = 41;
	r.data = (const uint8_t *)rs;
	r.len = r.call_len = (uint32_t)sl;
	conn_table__on_chunk(t, &r);
	CHECK_EQ_INT(seen.whole, 1);
	CHECK(seen.whole_after[3]);
	/* ignored again is not possible once resumed; a plain close ends it */
	cl = (struct cap_close){.key = key, .ts_ns = 50, .write_seq = 5000 + rl,
				.read_seq = 90000 + sl};
	conn_table__on_close(t, &cl);
	conn_table__stats(t, &st);
	CHECK_EQ_INT(st.gap_bytes, 0);
	CHECK_EQ_INT(st.gaps, 0);
	CHECK_EQ_INT(st.ignored, 1);
	CHECK_EQ_INT(st.resumed, 1);
	CHECK_EQ_INT(st.ignored_bytes, 95000);
	CHECK_EQ_INT(st.open, 0);
	conn_table__free(t);
	free(rq);
	free(rs);
}

TEST(ignored_then_closed_is_not_loss)
{
	struct conn_opts o = {0};
	struct cap_conn_key key = {.pid = 9, .conn_id = 0x78};
	struct cap_close ign = {.key = key, .ts_ns = 10, .write_seq = 0, .read_seq = 300};
	struct cap_close cl = {.key = key, .ts_ns = 20, .write_seq = 1 << 20, .read_seq = 1 << 22};
	struct conn_stats st;
	struct conn_table *t = conn_table__new(&o, on_call, NULL);

	memset(&seen, 0, sizeof(seen));
	conn_table__on_ignore(t, &ign);
	conn_table__on_close(t, &cl);
	conn_table__stats(t, &st);
	CHECK_EQ_INT(seen.calls, 0);
	CHECK_EQ_INT(st.gap_bytes, 0);
	CHECK_EQ_INT(st.ignored_bytes, (1 << 20) + (1 << 22) - 300);
	CHECK_EQ_INT(st.open, 0);
	conn_table__free(t);
}

/* A SYNC after loss with no earlier record of the connection: the gap is counted, the
 * connection then starts mid-stream. */
TEST(sync_first_counts_the_loss)
{
	struct conn_opts o = {0};
	struct cap_conn_key key = {.pid = 9, .conn_id = 0x79};
	struct cap_close sync = {.key = key, .ts_ns = 10, .write_seq = 100, .read_seq = 200};
	struct conn_stats st;
	struct conn_table *t = conn_table__new(&o, on_call, NULL);

	conn_table__on_sync(t, &sync);
	conn_table__stats(t, &st);
	CHECK_EQ_INT(st.gap_bytes, 300);
	CHECK_EQ_INT(st.syncs, 1);
	conn_table__free(t);
}

static int ignores, syncs, closes;
static struct cap_close last;

static void count_ignore(void *ctx, const struct cap_close *c)
{
	ignores++;
	last = *c;
}

static void count_sync(void *ctx, const struct cap_close *c)
{
	syncs++;
	last = *c;
}

static void count_close(void *ctx, const struct cap_close *c)
{
	closes++;
}

TEST(records_dispatch_ignore_and_sync)
{
	struct cap_sink sink = {.on_ignore = count_ignore, .on_sync = count_sync,
				.on_close = count_close};
	struct tt_close_event ev = {.hdr = {.ts_ns = 5, .conn_id = 0x10, .pid = 3,
					    .kind = TT_EV_IGNORE},
				    .write_seq = 11, .read_seq = 22};

	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), 0);
	CHECK_EQ_INT(ignores, 1);
	CHECK_EQ_INT(last.write_seq, 11);
	CHECK_EQ_INT(last.read_seq, 22);
	CHECK_EQ_INT(last.key.conn_id, 0x10);
	ev.hdr.kind = TT_EV_SYNC;
	ev.read_seq = 33;
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), 0);
	CHECK_EQ_INT(syncs, 1);
	CHECK_EQ_INT(last.read_seq, 33);
	CHECK_EQ_INT(closes, 0);
	/* short records are malformed, whatever their kind */
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev) - 1, &sink), -EINVAL);
	/* a sink without the callbacks ignores them */
	sink.on_sync = NULL;
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), 0);
	CHECK_EQ_INT(syncs, 1);
}

int main(void)
{
	RUN(loss_at_random_recovers_and_never_mispairs);
	RUN(whole_exchange_lost_then_head_lost);
	RUN(ignored_then_resumed_is_not_loss);
	RUN(ignored_then_closed_is_not_loss);
	RUN(sync_first_counts_the_loss);
	RUN(records_dispatch_ignore_and_sync);
	TT_DONE();
}
