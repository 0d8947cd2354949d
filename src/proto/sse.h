/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server-Sent Events (text/event-stream) as the WHATWG HTML spec frames them: lines ended by
 * CRLF, LF or CR; `event:`, `data:` (joined with '\n'), `id:`, comments; an event is dispatched
 * at a blank line. Fed in arbitrary pieces. One event's data is capped at SSE_MAX_EVENT bytes:
 * past it the event is dropped and counted (never an unbounded buffer).
 */
#ifndef TOKENTAP_PROTO_SSE_H
#define TOKENTAP_PROTO_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSE_MAX_EVENT (1024 * 1024)

struct sse_event {
	const char *event; /* "" when no event: field was sent (the spec's default is "message") */
	size_t event_len;
	const char *data; /* NUL-terminated, fields joined with '\n' */
	size_t data_len;
};

typedef void (*sse_event_cb)(void *ctx, const struct sse_event *ev, uint64_t ts_ns);

struct sse_stats {
	uint64_t events;
	uint64_t oversized; /* events dropped for exceeding SSE_MAX_EVENT */
};

struct sse;

struct sse *sse__new(sse_event_cb cb, void *ctx);
/* ts_ns is passed to the callback of every event completed by these bytes. */
void sse__feed(struct sse *s, const uint8_t *data, size_t len, uint64_t ts_ns);
/* Bytes were lost: drops the partial event being assembled, resumes at the next event. */
void sse__gap(struct sse *s);
/* End of stream: a final event without its blank line is not dispatched (as the spec says). */
const struct sse_stats *sse__stats(const struct sse *s);
void sse__free(struct sse *s);

#endif
