/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The AWS event-stream framing (application/vnd.amazon.eventstream), as Bedrock's
 * ConverseStream and InvokeModelWithResponseStream send it. One message:
 *
 *   total_length u32 BE | headers_length u32 BE | prelude_crc u32 BE (CRC-32 of the 8 bytes before)
 *   headers (headers_length bytes) | payload | message_crc u32 BE (CRC-32 of everything before)
 *
 * A header is name_len u8, name, value type u8, value (bool true/false: none; byte: 1; short: 2;
 * int: 4; long: 8; bytes and string: u16 BE length + data; timestamp: 8; uuid: 16).
 *
 * Fed in arbitrary pieces. A message is buffered whole (at most EVENTSTREAM_MAX_MESSAGE bytes)
 * and handed over only when both CRCs match. A bad prelude CRC means the lengths cannot be
 * trusted: the decoder then looks for the next valid prelude byte by byte (as after lost bytes).
 * Every problem is counted, never fatal.
 */
#ifndef TOKENTAP_PROTO_EVENTSTREAM_H
#define TOKENTAP_PROTO_EVENTSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bedrock's chunks are a few hundred bytes; AWS caps a message at 16 MiB, we at 1 MiB. */
#define EVENTSTREAM_MAX_MESSAGE (1024u * 1024)
#define EVENTSTREAM_MAX_HEADERS 16
#define EVENTSTREAM_PRELUDE 12
#define EVENTSTREAM_MIN_MESSAGE 16 /* prelude + message CRC, no headers, no payload */

enum es_value_type {
	ES_BOOL_TRUE = 0,
	ES_BOOL_FALSE = 1,
	ES_BYTE = 2,
	ES_SHORT = 3,
	ES_INT = 4,
	ES_LONG = 5,
	ES_BYTES = 6,
	ES_STRING = 7,
	ES_TIMESTAMP = 8,
	ES_UUID = 9,
};

struct es_header {
	const char *name; /* not NUL-terminated */
	size_t name_len;
	enum es_value_type type;
	const uint8_t *value; /* raw value bytes (big endian for numbers) */
	size_t value_len;
};

/* Views into the decoder's buffer, valid during the callback only. */
struct es_message {
	struct es_header headers[EVENTSTREAM_MAX_HEADERS];
	size_t n_headers;
	const uint8_t *payload;
	size_t payload_len;
};

typedef void (*es_message_cb)(void *ctx, const struct es_message *m, uint64_t ts_ns);

struct eventstream_stats {
	uint64_t messages;	/* handed to the callback */
	uint64_t crc_errors;	/* prelude or message CRC mismatch (message dropped) */
	uint64_t malformed;	/* impossible lengths or header encoding (message dropped) */
	uint64_t oversized;	/* messages past EVENTSTREAM_MAX_MESSAGE (skipped unread) */
	uint64_t resyncs;	/* times the decoder had to search for the next message */
	uint64_t skipped_bytes; /* bytes passed over while searching or skipping */
	uint64_t truncated;	/* the stream ended inside a message */
};

struct eventstream;

struct eventstream *eventstream__new(es_message_cb cb, void *ctx);
/* ts_ns is passed to the callback of every message completed by these bytes. */
void eventstream__feed(struct eventstream *es, const uint8_t *data, size_t len, uint64_t ts_ns);
/* Bytes were lost: the message in progress is dropped, the next valid prelude is searched for. */
void eventstream__gap(struct eventstream *es);
/* End of stream: counts (and returns true for) a message left unfinished. */
bool eventstream__end(struct eventstream *es);
const struct eventstream_stats *eventstream__stats(const struct eventstream *es);
void eventstream__free(struct eventstream *es);

/* The header named `name`, or NULL. */
const struct es_header *es_message__header(const struct es_message *m, const char *name);
/* True when header `name` is a string equal to `value`. */
bool es_message__header_is(const struct es_message *m, const char *name, const char *value);

#endif
