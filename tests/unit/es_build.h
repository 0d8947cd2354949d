/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper: builds AWS event-stream messages (prelude, headers, payload, both CRC-32s with
 * zlib's crc32, as the AWS SDKs compute them) for the eventstream and Bedrock tests.
 */
#ifndef TT_ES_BUILD_H
#define TT_ES_BUILD_H

#include <stdint.h>
#include <string.h>
#include <zlib.h>

static inline void esb__put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Appends a string header to h (at *hn); returns h. */
static inline uint8_t *esb__hdr_str(uint8_t *h, size_t *hn, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	h[(*hn)++] = (uint8_t)nl;
	memcpy(h + *hn, name, nl);
	*hn += nl;
	h[(*hn)++] = 7; /* string */
	h[(*hn)++] = (uint8_t)(vl >> 8);
	h[(*hn)++] = (uint8_t)vl;
	memcpy(h + *hn, value, vl);
	*hn += vl;
	return h;
}

/* Writes one message to out; returns its length. */
static inline size_t esb__message(uint8_t *out, const uint8_t *h, size_t hn, const void *payload,
				  size_t pn)
{
	size_t total = 12 + hn + pn + 4;

	esb__put32(out, (uint32_t)total);
	esb__put32(out + 4, (uint32_t)hn);
	esb__put32(out + 8, (uint32_t)crc32(0L, out, 8));
	memcpy(out + 12, h, hn);
	memcpy(out + 12 + hn, payload, pn);
	esb__put32(out + total - 4, (uint32_t)crc32(0L, out, (uInt)(total - 4)));
	return total;
}

/* A Bedrock-style event: :event-type, :content-type application/json, :message-type event. */
static inline size_t esb__event(uint8_t *out, const char *type, const char *json)
{
	uint8_t h[256];
	size_t hn = 0;

	esb__hdr_str(h, &hn, ":event-type", type);
	esb__hdr_str(h, &hn, ":content-type", "application/json");
	esb__hdr_str(h, &hn, ":message-type", "event");
	return esb__message(out, h, hn, json, strlen(json));
}

static inline size_t esb__exception(uint8_t *out, const char *type, const char *json)
{
	uint8_t h[256];
	size_t hn = 0;

	esb__hdr_str(h, &hn, ":exception-type", type);
	esb__hdr_str(h, &hn, ":content-type", "application/json");
	esb__hdr_str(h, &hn, ":message-type", "exception");
	return esb__message(out, h, hn, json, strlen(json));
}

#endif
