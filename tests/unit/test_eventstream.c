// SPDX-License-Identifier: Apache-2.0
/*
 * proto/eventstream: AWS event-stream messages built with both CRCs, fed whole, split at every
 * boundary and in 1-byte pieces; corrupt CRCs, bad lengths, bad header encodings, oversized
 * messages, garbage, lost bytes and a truncated end must each give a counted error, and every
 * good message around them must still come out exactly.
 */
#include <stdlib.h>

#include "tt_test.h"
#include "es_build.h"
#include "proto/eventstream.h"

#define MAX_GOT 64

struct got {
	int n;
	char type[MAX_GOT][64];
	char payload[MAX_GOT][256];
	uint64_t ts[MAX_GOT];
};

static void on_msg(void *ctx, const struct es_message *m, uint64_t ts)
{
	struct got *g = ctx;
	const struct es_header *h = es_message__header(m, ":event-type");

	if (!h)
		h = es_message__header(m, ":exception-type");
	if (g->n < MAX_GOT) {
		snprintf(g->type[g->n], sizeof(g->type[0]), "%.*s", h ? (int)h->value_len : 0,
			 h ? (const char *)h->value : "");
		snprintf(g->payload[g->n], sizeof(g->payload[0]), "%.*s", (int)m->payload_len,
			 (const char *)m->payload);
		g->ts[g->n] = ts;
	}
	g->n++;
}

/* Three Bedrock ConverseStream events. */
static size_t three(uint8_t *out)
{
	size_t n = 0;

	n += esb__event(out + n, "messageStart", "{\"p\":\"abcd\",\"role\":\"assistant\"}");
	n += esb__event(
	    out + n, "contentBlockDelta",
	    "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hello\"},\"p\":\"abcdefgh\"}");
	n += esb__event(out + n, "messageStop", "{\"p\":\"ab\",\"stopReason\":\"end_turn\"}");
	return n;
}

static void check_three(const struct got *g, int first)
{
	CHECK_EQ_STR(g->type[first], "messageStart");
	CHECK_EQ_STR(g->payload[first], "{\"p\":\"abcd\",\"role\":\"assistant\"}");
	CHECK_EQ_STR(g->type[first + 1], "contentBlockDelta");
	CHECK_EQ_STR(g->type[first + 2], "messageStop");
	CHECK_EQ_STR(g->payload[first + 2], "{\"p\":\"ab\",\"stopReason\":\"end_turn\"}");
}

static struct got feed_split(const uint8_t *d, size_t n, size_t cut, size_t piece,
			     struct eventstream_stats *st)
{
	struct got g = {0};
	struct eventstream *es = eventstream__new(on_msg, &g);

	if (piece) {
		for (size_t at = 0; at < n; at += piece)
			eventstream__feed(es, d + at, n - at < piece ? n - at : piece, at);
	} else {
		eventstream__feed(es, d, cut, 1);
		eventstream__feed(es, d + cut, n - cut, 2);
	}
	eventstream__end(es);
	if (st)
		*st = *eventstream__stats(es);
	eventstream__free(es);
	return g;
}

TEST(every_split)
{
	uint8_t buf[1024];
	size_t n = three(buf);
	int bad = 0;
	struct eventstream_stats st;
	struct got g;

	for (size_t cut = 0; cut <= n; cut++) {
		g = feed_split(buf, n, cut, 0, &st);
		bad += g.n != 3 || st.messages != 3 || st.crc_errors || st.malformed ||
		       st.truncated || st.resyncs;
		if (g.n == 3)
			check_three(&g, 0);
	}
	CHECK_EQ_INT(bad, 0);
	g = feed_split(buf, n, 0, 1, &st);
	CHECK_EQ_INT(g.n, 3);
	check_three(&g, 0);
	/* The timestamp of a message is that of the piece which completed it. */
	CHECK_EQ_INT(g.ts[2], n - 1);
	g = feed_split(buf, n, 5, 0, NULL);
	CHECK_EQ_INT(g.ts[0], 2);
}

/* A callback that checks every header of the all-types message. */
static int typed_ok;
static void on_typed(void *ctx, const struct es_message *m, uint64_t ts)
{
	const struct es_header *h;

	(void)ctx;
	(void)ts;
	typed_ok = m->n_headers == 10;
	h = es_message__header(m, "bt");
	typed_ok &= h && h->type == ES_BOOL_TRUE && h->value_len == 0;
	h = es_message__header(m, "bf");
	typed_ok &= h && h->type == ES_BOOL_FALSE && h->value_len == 0;
	h = es_message__header(m, "y");
	typed_ok &= h && h->type == ES_BYTE && h->value_len == 1 && h->value[0] == 0x7f;
	h = es_message__header(m, "s");
	typed_ok &= h && h->type == ES_SHORT && h->value_len == 2 && h->value[1] == 2;
	h = es_message__header(m, "i");
	typed_ok &= h && h->type == ES_INT && h->value_len == 4 && h->value[2] == 1;
	h = es_message__header(m, "l");
	typed_ok &= h && h->type == ES_LONG && h->value_len == 8 && h->value[7] == 9;
	h = es_message__header(m, "B");
	typed_ok &= h && h->type == ES_BYTES && h->value_len == 3 && h->value[0] == 0xde &&
		    h->value[2] == 0;
	h = es_message__header(m, "T");
	typed_ok &= h && h->type == ES_TIMESTAMP && h->value_len == 8;
	h = es_message__header(m, "u");
	typed_ok &= h && h->type == ES_UUID && h->value_len == 16 && h->value[15] == 16;
	typed_ok &= es_message__header_is(m, ":event-type", "metadata");
	typed_ok &= !es_message__header_is(m, ":event-type", "metadat");
	typed_ok &= !es_message__header_is(m, "y", "\x7f"); /* a byte is not a string */
	typed_ok &= es_message__header(m, "nope") == NULL;
}

TEST(header_values)
{
	static const uint8_t raw[] = {
	    2,	  'b',	't', 0,	  2,	'b', 'f', 1,  1,  'y', 2,    0x7f, 1,	 's', 3,
	    0x01, 0x02, 1,   'i', 4,	0,   0,	  1,  0,  1,   'l',  5,	   0,	 0,   0,
	    0,	  0,	0,   0,	  9,	1,   'B', 6,  0,  3,   0xde, 0xad, 0x00, 1,   'T',
	    8,	  0,	0,   1,	  0x8b, 0,   0,	  0,  0,  1,   'u',  9,	   1,	 2,   3,
	    4,	  5,	6,   7,	  8,	9,   10,  11, 12, 13,  14,   15,   16,
	};
	uint8_t h[256], out[512];
	size_t hn = sizeof(raw), n;
	struct eventstream *es = eventstream__new(on_typed, NULL);

	memcpy(h, raw, sizeof(raw));
	esb__hdr_str(h, &hn, ":event-type", "metadata");
	n = esb__message(out, h, hn, "", 0);
	typed_ok = 0;
	eventstream__feed(es, out, n, 1);
	CHECK_EQ_INT(typed_ok, 1);
	CHECK_EQ_INT(eventstream__stats(es)->messages, 1);
	eventstream__free(es);
}

TEST(message_crc_error_drops_one)
{
	uint8_t buf[1024];
	size_t n = three(buf), cut;
	struct eventstream_stats st;
	struct got g;

	/* Flip a payload byte of the second message: its CRC fails, the others survive. */
	cut = (size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3];
	buf[cut + 30] ^= 0x20;
	for (size_t piece = 0; piece <= 1; piece++) {
		g = feed_split(buf, n, n / 2, piece, &st);
		CHECK_EQ_INT(g.n, 2);
		CHECK_EQ_STR(g.type[0], "messageStart");
		CHECK_EQ_STR(g.type[1], "messageStop");
		CHECK_EQ_INT(st.crc_errors, 1);
		CHECK_EQ_INT(st.resyncs, 0);
		CHECK_EQ_INT(st.messages, 2);
	}
}

TEST(prelude_crc_error_resyncs)
{
	uint8_t buf[1024];
	size_t n = three(buf);
	struct eventstream_stats st;
	struct got g;

	buf[1] ^= 0x01; /* the first message's total length: its prelude CRC no longer matches */
	for (size_t piece = 0; piece <= 1; piece++) {
		g = feed_split(buf, n, 7, piece, &st);
		CHECK_EQ_INT(g.n, 2);
		CHECK_EQ_STR(g.type[0], "contentBlockDelta");
		CHECK_EQ_STR(g.type[1], "messageStop");
		CHECK_EQ_INT(st.crc_errors, 1);
		CHECK_EQ_INT(st.resyncs, 1);
		CHECK(st.skipped_bytes > 12);
	}
}

TEST(garbage_and_gap)
{
	uint8_t buf[2048], msgs[1024];
	size_t m = three(msgs), n = 0;
	struct got g = {0};
	struct eventstream *es = eventstream__new(on_msg, &g);
	const struct eventstream_stats *st = eventstream__stats(es);

	/* Garbage before the first message. */
	memcpy(buf, "\x00\x00\x00\x10garbage!", 12);
	n = 12;
	memcpy(buf + n, msgs, m);
	n += m;
	eventstream__feed(es, buf, n, 1);
	CHECK_EQ_INT(g.n, 3);
	check_three(&g, 0);
	CHECK_EQ_INT(st->resyncs, 1);

	/* Lost bytes in the middle of a message: the rest of it is passed over. */
	eventstream__feed(es, msgs, 40, 2);
	eventstream__gap(es);
	eventstream__feed(es, msgs + 60, m - 60, 3);
	CHECK_EQ_INT(g.n, 5);
	CHECK_EQ_STR(g.type[3], "contentBlockDelta");
	CHECK_EQ_STR(g.type[4], "messageStop");
	CHECK_EQ_INT(st->resyncs, 2);
	CHECK(!eventstream__end(es));
	CHECK_EQ_INT(st->truncated, 0);
	eventstream__free(es);
}

TEST(truncated_end)
{
	uint8_t buf[1024];
	size_t n = three(buf);
	struct eventstream_stats st;
	struct got g;

	for (size_t cut = n - 30; cut < n; cut++) {
		g = feed_split(buf, cut, cut, 0, &st);
		CHECK_EQ_INT(g.n, 2);
		CHECK_EQ_INT(st.truncated, 1);
	}
	g = feed_split(buf, 5, 5, 0, &st); /* inside the first prelude */
	CHECK_EQ_INT(g.n, 0);
	CHECK_EQ_INT(st.truncated, 1);
	g = feed_split(buf, 0, 0, 0, &st);
	CHECK_EQ_INT(st.truncated, 0);
}

TEST(bad_lengths_and_headers)
{
	uint8_t buf[1024], h[64];
	size_t n = 0;
	struct eventstream_stats st;
	struct got g;
	static const uint8_t bad_type[] = {1, 'x', 12, 0};	  /* no such value type */
	static const uint8_t overrun[] = {1, 'x', 7, 0, 50, 'a'}; /* string past the block */
	static const uint8_t no_name[] = {0, 0};

	memcpy(h, bad_type, sizeof(bad_type));
	n += esb__message(buf + n, h, sizeof(bad_type), "{}", 2);
	memcpy(h, overrun, sizeof(overrun));
	n += esb__message(buf + n, h, sizeof(overrun), "{}", 2);
	memcpy(h, no_name, sizeof(no_name));
	n += esb__message(buf + n, h, sizeof(no_name), "{}", 2);
	n += esb__event(buf + n, "messageStop", "{\"stopReason\":\"end_turn\"}");
	/* Headers longer than the message (prelude CRC right): a length error. */
	esb__put32(buf + n, 16);
	esb__put32(buf + n + 4, 100);
	esb__put32(buf + n + 8, (uint32_t)crc32(0L, buf + n, 8));
	esb__put32(buf + n + 12, 0);
	n += 16;
	n += esb__event(buf + n, "metadata", "{}");
	for (size_t piece = 0; piece <= 1; piece++) {
		g = feed_split(buf, n, 3, piece, &st);
		CHECK_EQ_INT(g.n, 2);
		CHECK_EQ_STR(g.type[0], "messageStop");
		CHECK_EQ_STR(g.type[1], "metadata");
		CHECK_EQ_INT(st.malformed, 4);
		CHECK_EQ_INT(st.crc_errors, 0);
	}
}

TEST(oversized_is_skipped)
{
	size_t big = EVENTSTREAM_MAX_MESSAGE + 100, n = 0;
	uint8_t *buf = malloc(big + 1024), h[64];
	char *payload = malloc(big);
	size_t hn = 0;
	struct eventstream_stats st;
	struct got g;

	memset(payload, 'x', big);
	esb__hdr_str(h, &hn, ":event-type", "contentBlockDelta");
	n += esb__message(buf, h, hn, payload, big - 100);
	n += esb__event(buf + n, "messageStop", "{\"stopReason\":\"max_tokens\"}");
	g = feed_split(buf, n, 4096, 0, &st);
	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_STR(g.type[0], "messageStop");
	CHECK_EQ_INT(st.oversized, 1);
	CHECK(st.skipped_bytes >= big - 200);
	/* Exactly at the limit is fine. */
	hn = 0;
	esb__hdr_str(h, &hn, ":event-type", "contentBlockDelta");
	n = esb__message(buf, h, hn, payload, EVENTSTREAM_MAX_MESSAGE - 16 - hn);
	CHECK_EQ_INT(n, EVENTSTREAM_MAX_MESSAGE);
	g = feed_split(buf, n, 100, 0, &st);
	CHECK_EQ_INT(g.n, 1);
	CHECK_EQ_INT(st.oversized, 0);
	free(buf);
	free(payload);
}

int main(void)
{
	RUN(every_split);
	RUN(header_values);
	RUN(message_crc_error_drops_one);
	RUN(prelude_crc_error_resyncs);
	RUN(garbage_and_gap);
	RUN(truncated_end);
	RUN(bad_lengths_and_headers);
	RUN(oversized_is_skipped);
	TT_DONE();
}
