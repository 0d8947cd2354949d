/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 over a lossy, reassembled capture: both directions of one connection, fed in
 * arbitrary pieces. Pairs requests and responses in order (keep-alive, pipelining), handles
 * Content-Length, chunked transfer, 1xx, responses without a body (HEAD, 204, 304) and bodies
 * ended by close. Memory is bounded: only an incomplete head (max HTTP1_MAX_HEAD bytes) or an
 * incomplete chunk-size line is ever buffered; body bytes are passed through.
 *
 * Loss: http1__gap() says N bytes of a direction are missing. Inside a body of known length the
 * exchange survives (on_loss); elsewhere the affected exchanges are aborted (HTTP_ABORT_GAP) and
 * the direction resynchronises at the next piece that starts with a request or status line.
 * Bytes that are not HTTP end the parse of that connection with a counted error (sticky until
 * http1__reset).
 */
#ifndef TOKENTAP_PROTO_HTTP1_H
#define TOKENTAP_PROTO_HTTP1_H

#include "http.h"

#define HTTP1_MAX_HEAD (64 * 1024)
#define HTTP1_MAX_PIPELINE 64 /* outstanding requests awaiting a response */

enum http1_role {
	HTTP1_ROLE_CLIENT = 0, /* the traced process writes requests (the normal case) */
	HTTP1_ROLE_SERVER = 1, /* the traced process reads requests */
};

struct http1_stats {
	uint64_t requests, responses;
	uint64_t parse_errors;
	uint64_t gaps, resyncs;
	uint64_t aborted;
	uint64_t overflow;
};

struct http1;

struct http1 *http1__new(enum http1_role role, const struct http_sink *sink);
/* dir: 0 = bytes the traced process wrote, 1 = bytes it read (enum cap_dir values).
 * ts_start/ts_end: monotonic ns at which the SSL call carrying these bytes began/returned.
 * Returns 0, or -EPROTO once the connection is not HTTP/1.x (then every later feed is ignored). */
int http1__feed(struct http1 *p, int dir, const uint8_t *data, size_t len, uint64_t ts_start,
		uint64_t ts_end);
/* `len` bytes of direction `dir` were lost before the next fed byte. */
void http1__gap(struct http1 *p, int dir, uint64_t len);
/* The connection closed: ends a body delimited by close, aborts everything still open. */
void http1__close(struct http1 *p, uint64_t ts_ns);
/* Aborts requests older than timeout_ns without a response (HTTP_ABORT_TIMEOUT). */
void http1__expire(struct http1 *p, uint64_t now_ns, uint64_t timeout_ns);
/* True while any exchange is open (a request awaits or receives its response). */
bool http1__busy(const struct http1 *p);
/* Returns true if `data` starts like an HTTP/1.x request or response (detection). */
bool http1__looks_like_http(const uint8_t *data, size_t len);
const struct http1_stats *http1__stats(const struct http1 *p);
void http1__free(struct http1 *p);

#endif
