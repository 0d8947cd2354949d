/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/2 (RFC 9113) over a lossy, reassembled capture: both directions of one connection, fed in
 * arbitrary pieces. Every stream becomes one exchange of struct http_sink (http.h), exactly as an
 * HTTP/1.1 exchange does: on_request when the request's header block is decoded (:method, :path,
 * and :authority as a "host" header), on_body per DATA frame, on_message_end at END_STREAM,
 * on_response at the final (non-1xx) response header block, on_abort on RST_STREAM (either side;
 * HTTP_ABORT_RST_STREAM), the server's GOAWAY for streams above its last stream id
 * (HTTP_ABORT_GOAWAY; streams at or below it go on), loss that leaves a stream unfinishable, a
 * timeout, or the connection's close; on_stream_error first gives a reset's sender and code.
 * Many streams of one connection are many concurrent exchanges.
 *
 * Header blocks are decoded with libnghttp2's HPACK inflater, one per direction, fed as the
 * fragments arrive: nothing but one decoded header list per direction (HTTP2_MAX_HEADER_LIST)
 * is ever buffered. DATA is passed through, padding removed. PUSH_PROMISE blocks are decoded
 * (the dynamic table needs them) and otherwise ignored; so are server-pushed streams.
 *
 * Loss. A gap that falls inside the payload of a DATA frame (or any frame but a header block) of
 * known length is survived: the stream gets on_loss and parsing goes on. Any other gap loses the
 * frame boundaries and maybe header blocks that changed the HPACK dynamic table, so:
 *  - the direction resynchronises at the next SSL call whose bytes parse as plausible frames;
 *  - its inflater restarts with an empty dynamic table (counted in hpack_resets). HPACK inserts
 *    new entries at the lowest index, so an empty table grown from then on always holds the
 *    newest entries of the sender's table: a later block decodes either correctly or with an
 *    index out of range (a counted failure, and another restart) — never to wrong values;
 *  - every stream with an unfinished message in that direction gets on_loss (the gap's length:
 *    an upper bound, the split between streams is unknown) and, if it never finishes, is
 *    aborted with HTTP_ABORT_GAP;
 *  - a request header block that cannot be decoded is a call that cannot be reported
 *    (lost_requests); a response header block that cannot be decoded gives the exchange a head
 *    with status 0 and no fields, after on_loss, so its DATA is still read.
 * http2__gap(p, dir, 0) starts a direction in that state without loss: how a connection whose
 * start was missed is parsed (its first blocks will mostly fail to decode, and are counted).
 *
 * Bytes that are not HTTP/2 (bad preface, a frame past the size limit, a broken frame sequence,
 * an HPACK error on a decoder that saw the connection's whole history) end the parse of the
 * connection with a counted error (sticky): every open exchange is aborted with
 * HTTP_ABORT_PARSE_ERROR and feeds return -EPROTO.
 */
#ifndef TOKENTAP_PROTO_HTTP2_H
#define TOKENTAP_PROTO_HTTP2_H

#include "http.h"
#include "http1.h" /* enum http1_role */

#define HTTP2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define HTTP2_PREFACE_LEN 24
#define HTTP2_MAX_STREAMS 256		  /* tracked open exchanges; more are counted, not parsed */
#define HTTP2_MAX_HEADER_LIST (64 * 1024) /* decoded names + values kept per header block */
#define HTTP2_MAX_HEADER_BLOCK (1u << 20) /* compressed bytes of one header block */
#define HTTP2_MAX_TABLE_SIZE (64 * 1024)  /* largest HPACK dynamic table a peer may ask for */
#define HTTP2_MAX_FRAME_ABS ((1u << 24) - 1) /* the protocol's own limit */

struct http2_stats {
	uint64_t frames;
	uint64_t requests, responses;
	uint64_t parse_errors;	 /* connections stopped as not HTTP/2 */
	uint64_t gaps;		 /* losses that broke framing: the direction resynchronised */
	uint64_t gaps_survived;	 /* losses inside a payload of known length */
	uint64_t resyncs;	 /* directions that found frames again after a gap */
	uint64_t hpack_resets;	 /* inflaters restarted empty (after loss, or a midstream start) */
	uint64_t hpack_failures; /* header blocks that could not be decoded after a reset */
	uint64_t lost_requests;	 /* request header blocks lost or undecodable: no call */
	uint64_t aborted;	 /* exchanges ended by on_abort */
	uint64_t resets;	 /* RST_STREAM of a tracked stream */
	uint64_t goaways;
	uint64_t refused;  /* streams past HTTP2_MAX_STREAMS, not tracked */
	uint64_t overflow; /* header lists truncated (HTTP2_MAX_HEADER_LIST, HTTP_MAX_HEADERS) */
};

struct http2;

struct http2 *http2__new(enum http1_role role, const struct http_sink *sink);
/* Same contract as http1__feed: dir 0 = bytes the traced process wrote, 1 = read;
 * returns 0, or -EPROTO once the connection is not HTTP/2 (every later feed is ignored). */
int http2__feed(struct http2 *p, int dir, const uint8_t *data, size_t len, uint64_t ts_start,
		uint64_t ts_end);
/* `len` bytes of direction `dir` were lost before the next fed byte; 0 = resync without loss. */
void http2__gap(struct http2 *p, int dir, uint64_t len);
void http2__close(struct http2 *p, uint64_t ts_ns);
/* Aborts exchanges older than timeout_ns that have no response yet (HTTP_ABORT_TIMEOUT). */
void http2__expire(struct http2 *p, uint64_t now_ns, uint64_t timeout_ns);
bool http2__busy(const struct http2 *p);
/* The first bytes of a client's connection: at least 14 bytes of the connection preface. */
bool http2__is_preface(const uint8_t *data, size_t len);
/* Capture began mid-connection: do these bytes (the start of one SSL call) look like a
 * client's HTTP/2 frames? Every frame header inside them must be plausible, and one must be the
 * HEADERS of a request (not a response: a server also writes frames, SETTINGS first). */
bool http2__looks_like_frames(const uint8_t *data, size_t len);
const struct http2_stats *http2__stats(const struct http2 *p);
/* Sums over every parser since the process started (the stats line). */
const struct http2_stats *http2__totals(void);
void http2__free(struct http2 *p);

#endif
