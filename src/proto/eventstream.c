// SPDX-License-Identifier: Apache-2.0
/*
 * AWS event-stream decoder (see eventstream.h for the framing). The prelude's own CRC is what
 * makes the stream self-synchronising: twelve bytes whose last four are the CRC-32 of the first
 * eight, with plausible lengths, are a message start with near certainty, so after lost bytes
 * or a corrupt prelude the decoder slides over the input one byte at a time until it finds one.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "eventstream.h"

enum es_state {
	ES_STATE_PRELUDE, /* collecting the 12 prelude bytes (or searching for a valid prelude) */
	ES_STATE_BODY,	  /* collecting the rest of a message whose prelude checked out */
	ES_STATE_SKIP,	  /* passing over an oversized message */
};

struct eventstream {
	es_message_cb cb;
	void *ctx;
	enum es_state state;
	bool searching; /* framing lost: look for a valid prelude at every byte */
	uint8_t *buf;
	size_t cap;
	size_t have;  /* bytes of the current message in buf */
	size_t total; /* its total length, once the prelude checked out */
	uint64_t skip_left;
	struct eventstream_stats st;
};

#define ES_INITIAL_CAP 4096

static uint32_t es__be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t es__crc(const uint8_t *p, size_t n)
{
	return (uint32_t)crc32(0L, p, (uInt)n);
}

struct eventstream *eventstream__new(es_message_cb cb, void *ctx)
{
	struct eventstream *es = calloc(1, sizeof(*es));

	if (!es)
		return NULL;
	es->buf = malloc(ES_INITIAL_CAP);
	if (!es->buf) {
		free(es);
		return NULL;
	}
	es->cap = ES_INITIAL_CAP;
	es->cb = cb;
	es->ctx = ctx;
	return es;
}

void eventstream__free(struct eventstream *es)
{
	if (!es)
		return;
	free(es->buf);
	free(es);
}

const struct eventstream_stats *eventstream__stats(const struct eventstream *es)
{
	return &es->st;
}

/* The lengths of a prelude whose CRC matched, checked against what a message can be. */
static bool es__lengths_ok(uint32_t total, uint32_t hlen)
{
	return total >= EVENTSTREAM_MIN_MESSAGE && hlen <= total - EVENTSTREAM_MIN_MESSAGE;
}

static bool es__grow(struct eventstream *es, size_t need)
{
	size_t cap = es->cap;
	uint8_t *p;

	if (need <= cap)
		return true;
	while (cap < need)
		cap *= 2;
	p = realloc(es->buf, cap);
	if (!p)
		return false;
	es->buf = p;
	es->cap = cap;
	return true;
}

/* Framing is lost: drop what was collected and search from the next byte on. */
static void es__lose_sync(struct eventstream *es)
{
	if (!es->searching)
		es->st.resyncs++;
	es->searching = true;
	es->state = ES_STATE_PRELUDE;
	es->st.skipped_bytes += es->have;
	es->have = 0;
}

/* Twelve prelude bytes are in buf: start the message, or slide one byte while searching. */
static void es__prelude(struct eventstream *es)
{
	uint32_t total = es__be32(es->buf), hlen = es__be32(es->buf + 4);
	bool crc_ok = es__crc(es->buf, 8) == es__be32(es->buf + 8);

	if (!crc_ok || !es__lengths_ok(total, hlen)) {
		if (!es->searching) {
			if (crc_ok)
				es->st.malformed++;
			else
				es->st.crc_errors++;
			es->st.resyncs++;
			es->searching = true;
		}
		memmove(es->buf, es->buf + 1, EVENTSTREAM_PRELUDE - 1);
		es->have = EVENTSTREAM_PRELUDE - 1;
		es->st.skipped_bytes++;
		return;
	}
	es->searching = false;
	if (total > EVENTSTREAM_MAX_MESSAGE || !es__grow(es, total)) {
		es->st.oversized++;
		es->state = ES_STATE_SKIP;
		es->skip_left = total - EVENTSTREAM_PRELUDE;
		es->have = 0;
		return;
	}
	es->total = total;
	es->state = ES_STATE_BODY;
}

/* The size of a header value of type t at p (n bytes left), or -1 when it does not fit. */
static long es__value_len(uint8_t t, const uint8_t *p, size_t n)
{
	static const int fixed[] = {0, 0, 1, 2, 4, 8, -1, -1, 8, 16};
	size_t len;

	if (t > ES_UUID)
		return -1;
	if (fixed[t] >= 0)
		return (size_t)fixed[t] <= n ? fixed[t] : -1;
	if (n < 2)
		return -1;
	len = (size_t)p[0] << 8 | p[1];
	return len + 2 <= n ? (long)len + 2 : -1;
}

/* Parses the header block; false when its encoding does not add up to its length. */
static bool es__headers(struct es_message *m, const uint8_t *p, size_t n)
{
	size_t at = 0;

	m->n_headers = 0;
	while (at < n) {
		size_t name_len = p[at];
		const uint8_t *name = p + at + 1;
		long vlen;
		uint8_t type;

		if (!name_len || name_len + 2 > n - at)
			return false;
		type = name[name_len];
		at += 1 + name_len + 1;
		vlen = es__value_len(type, p + at, n - at);
		if (vlen < 0)
			return false;
		if (m->n_headers < EVENTSTREAM_MAX_HEADERS) {
			struct es_header *h = &m->headers[m->n_headers++];
			bool var = type == ES_BYTES || type == ES_STRING;

			h->name = (const char *)name;
			h->name_len = name_len;
			h->type = (enum es_value_type)type;
			h->value = p + at + (var ? 2 : 0);
			h->value_len = (size_t)vlen - (var ? 2 : 0);
		}
		at += (size_t)vlen;
	}
	return true;
}

/* A whole message is in buf: check it and hand it over. */
static void es__message(struct eventstream *es, uint64_t ts_ns)
{
	size_t total = es->total, hlen = es__be32(es->buf + 4);
	struct es_message m;

	es->state = ES_STATE_PRELUDE;
	es->have = 0;
	if (es__crc(es->buf, total - 4) != es__be32(es->buf + total - 4)) {
		es->st.crc_errors++; /* the prelude was right, so the next message starts here */
		return;
	}
	if (!es__headers(&m, es->buf + EVENTSTREAM_PRELUDE, hlen)) {
		es->st.malformed++;
		return;
	}
	m.payload = es->buf + EVENTSTREAM_PRELUDE + hlen;
	m.payload_len = total - hlen - EVENTSTREAM_MIN_MESSAGE;
	es->st.messages++;
	es->cb(es->ctx, &m, ts_ns);
}

void eventstream__feed(struct eventstream *es, const uint8_t *d, size_t n, uint64_t ts_ns)
{
	while (n) {
		size_t want, k;

		if (es->state == ES_STATE_SKIP) {
			k = es->skip_left < n ? (size_t)es->skip_left : n;
			es->skip_left -= k;
			es->st.skipped_bytes += k;
			d += k;
			n -= k;
			if (!es->skip_left)
				es->state = ES_STATE_PRELUDE;
			continue;
		}
		want = (es->state == ES_STATE_PRELUDE ? EVENTSTREAM_PRELUDE : es->total) - es->have;
		k = want < n ? want : n;
		memcpy(es->buf + es->have, d, k);
		es->have += k;
		d += k;
		n -= k;
		if (k < want)
			return;
		if (es->state == ES_STATE_PRELUDE)
			es__prelude(es);
		else
			es__message(es, ts_ns);
	}
}

void eventstream__gap(struct eventstream *es)
{
	es->skip_left = 0;
	es__lose_sync(es);
}

bool eventstream__end(struct eventstream *es)
{
	bool cut = es->state != ES_STATE_PRELUDE || (es->have && !es->searching);

	if (cut)
		es->st.truncated++;
	es->state = ES_STATE_PRELUDE;
	es->have = 0;
	es->skip_left = 0;
	return cut;
}

const struct es_header *es_message__header(const struct es_message *m, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < m->n_headers; i++)
		if (m->headers[i].name_len == n && !memcmp(m->headers[i].name, name, n))
			return &m->headers[i];
	return NULL;
}

bool es_message__header_is(const struct es_message *m, const char *name, const char *value)
{
	const struct es_header *h = es_message__header(m, name);
	size_t n = strlen(value);

	return h && h->type == ES_STRING && h->value_len == n && !memcmp(h->value, value, n);
}
