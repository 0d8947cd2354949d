/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every HTTP parser (http1.c now, http2.c later) hands to the next stage: one exchange
 * (request + response) at a time, through the callbacks of struct http_sink. Views point into
 * the parser's buffers and are valid only during the callback.
 */
#ifndef TOKENTAP_PROTO_HTTP_H
#define TOKENTAP_PROTO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 64

struct http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct http_head {
	bool is_request;
	const char *method; /* request only */
	size_t method_len;
	const char *path;   /* request target as sent, query included */
	size_t path_len;
	int status;         /* response only */
	int minor_version;  /* HTTP/1.x */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t num_headers;
	bool headers_truncated; /* more than HTTP_MAX_HEADERS were sent */
};

/* Why an exchange ended without a complete response. */
enum http_abort_reason {
	HTTP_ABORT_CONN_CLOSED = 1, /* connection closed before the response ended */
	HTTP_ABORT_PARSE_ERROR = 2, /* bytes that are not HTTP/1.x */
	HTTP_ABORT_GAP = 3,         /* captured bytes were lost where framing could not survive it */
	HTTP_ABORT_TIMEOUT = 4,     /* no response within the idle timeout */
	HTTP_ABORT_OVERFLOW = 5,    /* a header block too large to buffer */
	HTTP_ABORT_RST_STREAM = 6,  /* HTTP/2: either side reset the stream (RST_STREAM) */
	HTTP_ABORT_GOAWAY = 7,      /* HTTP/2: the server's GOAWAY left the stream unprocessed */
};

/*
 * Callbacks, in this order per exchange: on_request, on_body(request)*, on_message_end(request),
 * on_response, on_body(response)*, on_message_end(response) — or on_abort at any point after
 * on_request. on_message_end(response) and on_abort are the last call for an exchange; the
 * handle is never used again afterwards. Interim 1xx responses are not reported.
 *
 * on_request returns the next stage's handle for the exchange, or NULL when it does not care
 * (no further callbacks are made for it then, which keeps non-LLM traffic cheap).
 */
struct http_sink {
	void *ctx;
	void *(*on_request)(void *ctx, const struct http_head *h, uint64_t ts_ns);
	void (*on_response)(void *ex, const struct http_head *h, uint64_t ts_ns);
	/* Decoded message body bytes (transfer coding removed; content coding left as sent). */
	void (*on_body)(void *ex, bool is_response, const uint8_t *data, size_t len, uint64_t ts_ns);
	void (*on_message_end)(void *ex, bool is_response, uint64_t ts_ns);
	/* Bytes of this exchange were lost in capture, but framing survived (e.g. inside a body
	 * of known length). The exchange goes on; the result must be marked partial. */
	void (*on_loss)(void *ex, bool is_response, uint64_t lost_bytes);
	void (*on_abort)(void *ex, enum http_abort_reason why, uint64_t ts_ns);
	/* HTTP/2, right before on_abort(HTTP_ABORT_RST_STREAM or _GOAWAY) when the frame was read
	 * whole: who sent it (by_peer: the side that did not send the request) and its error code
	 * (RFC 9113 section 7; http2__error_name). May be NULL. */
	void (*on_stream_error)(void *ex, bool by_peer, uint32_t code);
};

/* The RFC 9113 name of an HTTP/2 error code ("CANCEL"), or "UNKNOWN" (on_stream_error). */
const char *http2__error_name(uint32_t code);

/* Case-insensitive header lookup in a parsed head; NULL if absent. */
const struct http_header *http_head__find(const struct http_head *h, const char *name);

#endif
