// SPDX-License-Identifier: Apache-2.0
/*
 * Server-Sent Events framing (WHATWG HTML, "event stream interpretation"), incremental.
 *
 * The parser never buffers a whole line: field names are short and matched as they arrive,
 * `data:` values are appended straight to the event's data buffer (capped at SSE_MAX_EVENT),
 * `event:` values to a small fixed buffer, every other field is skipped. So memory is one
 * event's data at most, whatever the input.
 */
#include <stdlib.h>
#include <string.h>

#include "sse.h"

#define SSE_EVENT_NAME 64 /* longer event names are truncated: we only compare short ones */
#define SSE_FIELD_NAME 8  /* "data", "event", "id", "retry": anything longer is ignored */

enum sse_state {
	SSE_LINE_START, /* at the first byte of a line */
	SSE_FIELD,      /* reading a field name */
	SSE_VALUE_START, /* after the colon: one space may be skipped */
	SSE_VALUE,      /* reading a field value */
	SSE_SKIP_LINE,  /* comment, or a line we drop after a gap */
};

enum sse_field { SSE_F_OTHER, SSE_F_DATA, SSE_F_EVENT };

static const uint8_t sse_bom[3] = { 0xef, 0xbb, 0xbf };

struct sse {
	sse_event_cb cb;
	void *ctx;
	enum sse_state st;
	enum sse_field field;
	bool after_cr;   /* the previous byte was CR: an LF now belongs to the same line end */
	bool discarding; /* after a gap: drop lines until a blank line */
	bool bom_done;
	uint8_t bom_len; /* bytes of a BOM matched so far at the start of the stream */
	char name[SSE_FIELD_NAME];
	size_t name_len;
	bool name_long;

	char *data; /* data lines joined with '\n', NUL-terminated; capacity data_cap + 1 */
	size_t data_len, data_cap;
	size_t data_lines;
	bool oversized;
	char event[SSE_EVENT_NAME];
	size_t event_len;

	struct sse_stats stats;
};

struct sse *sse__new(sse_event_cb cb, void *ctx)
{
	struct sse *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cb = cb;
	s->ctx = ctx;
	return s;
}

static void sse__reset_event(struct sse *s)
{
	s->data_len = 0;
	s->data_lines = 0;
	s->oversized = false;
	s->event_len = 0;
}

static void sse__dispatch(struct sse *s, uint64_t ts_ns)
{
	struct sse_event ev;

	if (s->oversized) {
		s->stats.oversized++;
		sse__reset_event(s);
		return;
	}
	/* The spec dispatches nothing when no data line was seen. */
	if (!s->data_lines) {
		sse__reset_event(s);
		return;
	}
	s->event[s->event_len] = '\0';
	ev.event = s->event;
	ev.event_len = s->event_len;
	ev.data = s->data ? s->data : "";
	ev.data_len = s->data_len;
	if (s->data)
		s->data[s->data_len] = '\0';
	s->stats.events++;
	sse__reset_event(s);
	if (s->cb)
		s->cb(s->ctx, &ev, ts_ns);
}

/* Appends to the data buffer; past SSE_MAX_EVENT the event is marked oversized instead. */
static void sse__append_data(struct sse *s, const char *p, size_t n)
{
	size_t need, cap;
	char *nd;

	if (s->oversized || !n)
		return;
	need = s->data_len + n;
	if (need > SSE_MAX_EVENT) {
		s->oversized = true;
		return;
	}
	if (need > s->data_cap) {
		cap = s->data_cap ? s->data_cap : 256;
		while (cap < need)
			cap *= 2;
		if (cap > SSE_MAX_EVENT)
			cap = SSE_MAX_EVENT;
		nd = realloc(s->data, cap + 1);
		if (!nd) {
			s->oversized = true; /* out of memory: drop this event rather than crash */
			return;
		}
		s->data = nd;
		s->data_cap = cap;
	}
	memcpy(s->data + s->data_len, p, n);
	s->data_len += n;
}

static void sse__append_event(struct sse *s, const char *p, size_t n)
{
	size_t room = SSE_EVENT_NAME - 1 - s->event_len;

	if (n > room)
		n = room;
	memcpy(s->event + s->event_len, p, n);
	s->event_len += n;
}

static enum sse_field sse__field_kind(const struct sse *s)
{
	if (s->name_long)
		return SSE_F_OTHER;
	if (s->name_len == 4 && !memcmp(s->name, "data", 4))
		return SSE_F_DATA;
	if (s->name_len == 5 && !memcmp(s->name, "event", 5))
		return SSE_F_EVENT;
	return SSE_F_OTHER; /* id and retry do not matter to us; unknown fields are ignored */
}

/* The field name is complete (a colon or the line end follows): start its value. */
static void sse__begin_value(struct sse *s)
{
	s->field = sse__field_kind(s);
	if (s->field == SSE_F_DATA) {
		if (s->data_lines++)
			sse__append_data(s, "\n", 1);
	} else if (s->field == SSE_F_EVENT) {
		s->event_len = 0;
	}
}

static void sse__value_bytes(struct sse *s, const char *p, size_t n)
{
	if (s->field == SSE_F_DATA)
		sse__append_data(s, p, n);
	else if (s->field == SSE_F_EVENT)
		sse__append_event(s, p, n);
}

/* A CR or LF ended the current line. */
static void sse__line_end(struct sse *s, uint64_t ts_ns)
{
	switch (s->st) {
	case SSE_LINE_START:
		if (s->discarding)
			s->discarding = false;
		else
			sse__dispatch(s, ts_ns);
		break;
	case SSE_FIELD:
		sse__begin_value(s); /* a line without a colon is a field with an empty value */
		break;
	default:
		break;
	}
	s->st = SSE_LINE_START;
}

static size_t sse__eol_span(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n')
			break;
	return i;
}

/* Consumes bytes of the current line (no line end among them); returns bytes used. */
static size_t sse__line_bytes(struct sse *s, const uint8_t *p, size_t n)
{
	size_t k;

	switch (s->st) {
	case SSE_LINE_START:
		if (s->discarding) {
			s->st = SSE_SKIP_LINE;
			return 0;
		}
		s->name_len = 0;
		s->name_long = false;
		s->st = p[0] == ':' ? SSE_SKIP_LINE : SSE_FIELD;
		return p[0] == ':' ? 1 : 0;
	case SSE_FIELD:
		if (p[0] == ':') {
			sse__begin_value(s);
			s->st = SSE_VALUE_START;
			return 1;
		}
		if (s->name_len < sizeof(s->name))
			s->name[s->name_len++] = (char)p[0];
		else
			s->name_long = true;
		return 1;
	case SSE_VALUE_START:
		s->st = SSE_VALUE;
		return p[0] == ' ' ? 1 : 0;
	case SSE_VALUE:
		k = sse__eol_span(p, n);
		sse__value_bytes(s, (const char *)p, k);
		return k;
	case SSE_SKIP_LINE:
	default:
		return sse__eol_span(p, n);
	}
}

/* Matches a UTF-8 BOM at the very start; returns bytes consumed from p. */
static size_t sse__bom(struct sse *s, const uint8_t *p, size_t n, uint64_t ts_ns)
{
	size_t i = 0;
	uint8_t matched;

	while (i < n && s->bom_len < sizeof(sse_bom) && p[i] == sse_bom[s->bom_len]) {
		s->bom_len++;
		i++;
	}
	if (s->bom_len == sizeof(sse_bom)) {
		s->bom_done = true;
		return i;
	}
	if (i == n)
		return i; /* still a possible BOM prefix: wait for more */
	/* Not a BOM: the bytes taken so far were content after all. */
	s->bom_done = true;
	matched = s->bom_len;
	if (matched)
		sse__feed(s, sse_bom, matched, ts_ns);
	return i;
}

void sse__feed(struct sse *s, const uint8_t *data, size_t len, uint64_t ts_ns)
{
	size_t i = 0;

	if (!s || !data)
		return;
	if (!s->bom_done)
		i = sse__bom(s, data, len, ts_ns);
	while (i < len) {
		uint8_t c = data[i];

		if (c == '\n' && s->after_cr) {
			s->after_cr = false; /* second half of a CRLF, maybe in a later piece */
			i++;
			continue;
		}
		s->after_cr = false;
		if (c == '\r' || c == '\n') {
			s->after_cr = c == '\r';
			sse__line_end(s, ts_ns);
			i++;
			continue;
		}
		i += sse__line_bytes(s, data + i, len - i);
	}
}

void sse__gap(struct sse *s)
{
	if (!s)
		return;
	sse__reset_event(s);
	s->bom_done = true;
	s->after_cr = false;
	s->discarding = true;
	s->st = SSE_SKIP_LINE; /* we cannot know whether the gap ended at a line start */
}

const struct sse_stats *sse__stats(const struct sse *s)
{
	return &s->stats;
}

void sse__free(struct sse *s)
{
	if (!s)
		return;
	free(s->data);
	free(s);
}
