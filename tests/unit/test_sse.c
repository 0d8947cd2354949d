// SPDX-License-Identifier: Apache-2.0
/* SSE framing: every fixture is re-fed split at every boundary (two and three pieces) and in
 * 1-byte pieces; the events must come out the same every time. */
#include <stdlib.h>

#include "tt_test.h"
#include "proto/sse.h"

#define MAX_EV 32

struct rec {
	int n;
	char *event[MAX_EV];
	char *data[MAX_EV];
	size_t data_len[MAX_EV];
	uint64_t ts[MAX_EV];
};

static void rec__cb(void *ctx, const struct sse_event *ev, uint64_t ts)
{
	struct rec *r = ctx;

	CHECK(ev->data[ev->data_len] == '\0');
	CHECK(ev->event[ev->event_len] == '\0');
	if (r->n >= MAX_EV)
		return;
	r->event[r->n] = strndup(ev->event, ev->event_len);
	r->data[r->n] = malloc(ev->data_len + 1);
	memcpy(r->data[r->n], ev->data, ev->data_len + 1);
	r->data_len[r->n] = ev->data_len;
	r->ts[r->n] = ts;
	r->n++;
}

static void rec__free(struct rec *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->event[i]);
		free(r->data[i]);
	}
	memset(r, 0, sizeof(*r));
}

struct want {
	const char *event;
	const char *data;
};

/* Feeds `in` cut at the given offsets (sorted, within [0, len]). */
static void feed_cuts(struct rec *r, const char *in, size_t len, const size_t *cuts, int ncuts)
{
	struct sse *s = sse__new(rec__cb, r);
	size_t at = 0;

	for (int i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		sse__feed(s, (const uint8_t *)in + at, end - at, 100 + i);
		at = end;
	}
	sse__free(s);
}

static int same(const struct rec *r, const struct want *w, int nw)
{
	if (r->n != nw)
		return 0;
	for (int i = 0; i < nw; i++)
		if (strcmp(r->event[i], w[i].event) || strcmp(r->data[i], w[i].data))
			return 0;
	return 1;
}

/* Whole, every 2-split, every 3-split (for short inputs) and 1-byte pieces. */
static void check_all_splits(const char *in, size_t len, const struct want *w, int nw)
{
	struct rec r = { 0 };
	size_t cuts[2];
	int bad = 0;

	feed_cuts(&r, in, len, NULL, 0);
	CHECK(same(&r, w, nw));
	rec__free(&r);
	for (size_t a = 0; a <= len; a++) {
		cuts[0] = a;
		feed_cuts(&r, in, len, cuts, 1);
		bad += !same(&r, w, nw);
		rec__free(&r);
		if (len > 200)
			continue;
		for (size_t b = a; b <= len; b++) {
			cuts[1] = b;
			feed_cuts(&r, in, len, cuts, 2);
			bad += !same(&r, w, nw);
			rec__free(&r);
		}
	}
	{
		struct sse *s = sse__new(rec__cb, &r);

		for (size_t i = 0; i < len; i++)
			sse__feed(s, (const uint8_t *)in + i, 1, i);
		bad += !same(&r, w, nw);
		rec__free(&r);
		sse__free(s);
	}
	CHECK_EQ_INT(bad, 0);
}

#define CHECK_SPLITS(in, ...)                                                                     \
	do {                                                                                      \
		static const struct want _w[] = { __VA_ARGS__ };                                  \
		check_all_splits(in, sizeof(in) - 1, _w, (int)(sizeof(_w) / sizeof(_w[0])));     \
	} while (0)

TEST(lf_events)
{
	CHECK_SPLITS("data: hello\n\ndata: {\"a\":1}\n\n", { "", "hello" }, { "", "{\"a\":1}" });
}

TEST(crlf_and_cr)
{
	/* CRLF, then a lone CR, then LF: a CR at the end of one piece followed by the LF at the
	 * start of the next must stay one line end (the split loop covers that cut). */
	CHECK_SPLITS("data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\ndata: e\r\n\r\n", { "", "a" },
		     { "", "b" }, { "", "c" }, { "", "d\ne" });
}

TEST(cr_then_lf_is_one_line_end)
{
	/* "\r\n" is one terminator: "data: x\r\n" + "\r\n" dispatches exactly once, and the LF
	 * after a CR never produces an extra blank line. */
	CHECK_SPLITS("data: x\r\n\r\n\r\n", { "", "x" });
}

TEST(bom)
{
	CHECK_SPLITS("\xef\xbb\xbf"
		     "data: x\n\n",
		     { "", "x" });
	/* Only one BOM is stripped; a second one makes an unknown field name. */
	CHECK_SPLITS("\xef\xbb\xbf\xef\xbb\xbf"
		     "data: x\n\ndata: y\n\n",
		     { "", "y" });
	/* A partial BOM is not a BOM: the bytes are content (an unknown field here). */
	CHECK_SPLITS("\xef\xbb"
		     "data: x\n\ndata: z\n\n",
		     { "", "z" });
}

TEST(comments_and_fields)
{
	CHECK_SPLITS(": ping\n\n:\ndata: a\n: comment in the middle\ndata: b\nid: 7\nretry: 10\n"
		     "foo: bar\n\n",
		     { "", "a\nb" });
}

TEST(event_names)
{
	CHECK_SPLITS("event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
		     "event: ping\ndata: {}\n\n"
		     "data: plain\n\n",
		     { "message_start", "{\"type\":\"message_start\"}" }, { "ping", "{}" },
		     { "", "plain" });
	/* The last event: field wins. */
	CHECK_SPLITS("event: a\nevent: b\ndata: x\n\n", { "b", "x" });
}

TEST(space_rules)
{
	/* One leading space is stripped, only one; no colon means an empty value. */
	CHECK_SPLITS("data:x\n\ndata:  y\n\ndata\n\ndata:\n\ndata\ndata\n\n", { "", "x" },
		     { "", " y" }, { "", "" }, { "", "" }, { "", "\n" });
}

TEST(no_data_no_dispatch)
{
	/* An event with no data line is not dispatched; neither is a final event that never
	 * got its blank line. */
	CHECK_SPLITS("event: x\n\nid: 1\n\n\n\ndata: late\n\ndata: unfinished\n", { "", "late" });
}

TEST(multiline_json_openai)
{
	CHECK_SPLITS("data: {\"id\":\"c1\",\n"
		     "data:  \"x\":2}\n\n"
		     "data: [DONE]\n\n",
		     { "", "{\"id\":\"c1\",\n \"x\":2}" }, { "", "[DONE]" });
}

TEST(timestamps)
{
	struct rec r = { 0 };
	struct sse *s = sse__new(rec__cb, &r);

	sse__feed(s, (const uint8_t *)"data: a\n", 8, 10);
	sse__feed(s, (const uint8_t *)"\ndata: b\n", 9, 20);
	sse__feed(s, (const uint8_t *)"\n", 1, 30);
	CHECK_EQ_INT(r.n, 2);
	CHECK_EQ_INT(r.ts[0], 20);
	CHECK_EQ_INT(r.ts[1], 30);
	CHECK_EQ_INT(sse__stats(s)->events, 2);
	rec__free(&r);
	sse__free(s);
}

TEST(oversized)
{
	struct rec r = { 0 };
	struct sse *s = sse__new(rec__cb, &r);
	size_t big = SSE_MAX_EVENT + 10;
	char *buf = malloc(big);

	memset(buf, 'a', big);
	sse__feed(s, (const uint8_t *)"data: ", 6, 1);
	for (size_t at = 0; at < big; at += 4096)
		sse__feed(s, (const uint8_t *)buf + at, big - at < 4096 ? big - at : 4096, 2);
	sse__feed(s, (const uint8_t *)"\n\ndata: next\n\n", 14, 3);
	CHECK_EQ_INT(r.n, 1);
	CHECK_EQ_STR(r.data[0], "next");
	CHECK_EQ_INT(sse__stats(s)->oversized, 1);
	CHECK_EQ_INT(sse__stats(s)->events, 1);
	rec__free(&r);

	/* Exactly at the cap (two lines joined) still fits. */
	sse__feed(s, (const uint8_t *)"data: ", 6, 4);
	sse__feed(s, (const uint8_t *)buf, SSE_MAX_EVENT - 2, 4);
	sse__feed(s, (const uint8_t *)"\ndata: b\n\n", 10, 5);
	CHECK_EQ_INT(r.n, 1);
	CHECK_EQ_INT(r.n ? r.data_len[0] : 0, SSE_MAX_EVENT);
	CHECK_EQ_INT(sse__stats(s)->oversized, 1);
	rec__free(&r);
	free(buf);
	sse__free(s);
}

TEST(gap)
{
	struct rec r = { 0 };
	struct sse *s = sse__new(rec__cb, &r);
	static const char a[] = "data: first\n\ndata: partial";
	static const char b[] = "-rest of a line\ndata: more\n\ndata: ok\n\n";

	sse__feed(s, (const uint8_t *)a, sizeof(a) - 1, 1);
	sse__gap(s);
	sse__feed(s, (const uint8_t *)b, sizeof(b) - 1, 2);
	CHECK_EQ_INT(r.n, 2);
	CHECK_EQ_STR(r.data[0], "first");
	CHECK_EQ_STR(r.n > 1 ? r.data[1] : "", "ok");
	rec__free(&r);

	/* A gap ending right before CRLF CRLF: the blank line ends the discard. */
	sse__feed(s, (const uint8_t *)"data: x", 7, 3);
	sse__gap(s);
	sse__feed(s, (const uint8_t *)"\r", 1, 4);
	sse__feed(s, (const uint8_t *)"\n\r", 2, 4);
	sse__feed(s, (const uint8_t *)"\ndata: y\r\n\r\n", 12, 5);
	CHECK_EQ_INT(r.n, 1);
	CHECK_EQ_STR(r.n ? r.data[0] : "", "y");
	rec__free(&r);
	sse__free(s);
}

TEST(binary_garbage_is_bounded)
{
	struct rec r = { 0 };
	struct sse *s = sse__new(rec__cb, &r);
	uint8_t buf[4096];
	uint32_t x = 12345;

	for (int round = 0; round < 64; round++) {
		for (size_t i = 0; i < sizeof(buf); i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		sse__feed(s, buf, sizeof(buf), round);
	}
	CHECK(sse__stats(s)->events == (uint64_t)r.n || r.n == MAX_EV);
	rec__free(&r);
	sse__free(s);
	sse__free(NULL);
}

int main(void)
{
	RUN(lf_events);
	RUN(crlf_and_cr);
	RUN(cr_then_lf_is_one_line_end);
	RUN(bom);
	RUN(comments_and_fields);
	RUN(event_names);
	RUN(space_rules);
	RUN(no_data_no_dispatch);
	RUN(multiline_json_openai);
	RUN(timestamps);
	RUN(oversized);
	RUN(gap);
	RUN(binary_garbage_is_bounded);
	TT_DONE();
}
