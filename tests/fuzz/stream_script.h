/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operation script shared by the stream-parser fuzzers (fuzz_http1, fuzz_http2): after the
 * target's own header bytes, the input is, repeatedly, an opcode byte (op % 8):
 *
 *     0, 1  data for direction op&1: u16 little-endian length, then that many bytes
 *     2, 3  gap in direction op&1: u16 little-endian byte count
 *     4     expire: u8 timeout (in ticks)
 *     5     data for direction (op>>3)&1, u16 length, continuing the previous SSL call
 *     6     close (then the script ends)
 *     7     data for direction (op>>3)&1, u8 length
 *
 * so both directions, loss, expiry and close of one connection are exercised together. Every
 * parser under test has the same feed/gap/expire shape; the script also checks that a parse
 * error, once returned, sticks.
 */
#ifndef TOKENTAP_FUZZ_STREAM_SCRIPT_H
#define TOKENTAP_FUZZ_STREAM_SCRIPT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct stream_script_ops {
	int (*feed)(void *p, int dir, const uint8_t *data, size_t len, uint64_t start_ns,
		    uint64_t end_ns);
	void (*gap)(void *p, int dir, uint64_t bytes);
	void (*expire)(void *p, uint64_t now_ns, uint64_t timeout_ns);
};

/* Defines `name`, the ops of a parser whose functions are prefix##__feed/__gap/__expire. */
#define STREAM_SCRIPT_OPS(name, prefix)                                                            \
	static int name##_feed(void *p, int dir, const uint8_t *d, size_t len, uint64_t t0,       \
			       uint64_t t1)                                                        \
	{                                                                                          \
		return prefix##__feed(p, dir, d, len, t0, t1);                                     \
	}                                                                                          \
	static void name##_gap(void *p, int dir, uint64_t bytes)                                   \
	{                                                                                          \
		prefix##__gap(p, dir, bytes);                                                      \
	}                                                                                          \
	static void name##_expire(void *p, uint64_t now_ns, uint64_t timeout_ns)                   \
	{                                                                                          \
		prefix##__expire(p, now_ns, timeout_ns);                                           \
	}                                                                                          \
	static const struct stream_script_ops name = {                                             \
	    .feed = name##_feed, .gap = name##_gap, .expire = name##_expire}

static size_t script__take(const uint8_t **d, size_t *n, size_t want)
{
	size_t k = want < *n ? want : *n;

	*d += k;
	*n -= k;
	return k;
}

static unsigned script__u8(const uint8_t **d, size_t *n)
{
	unsigned v = *n ? (*d)[0] : 0;

	script__take(d, n, 1);
	return v;
}

static unsigned script__u16(const uint8_t **d, size_t *n)
{
	unsigned v = 0;

	if (*n >= 2)
		v = (unsigned)(*d)[0] | (unsigned)(*d)[1] << 8;
	script__take(d, n, 2);
	return v;
}

/* One data operation: feeds, and aborts on an unexpected error or an error that did not stick. */
static void script__data(void *p, const struct stream_script_ops *ops, uint8_t op,
			 const uint8_t **data, size_t *size, uint64_t ts, uint64_t call_ts[2],
			 int *stopped)
{
	int dir = op % 8 >= 5 ? (op >> 3) & 1 : op & 1, rc;
	size_t len = op % 8 == 7 ? script__u8(data, size) : script__u16(data, size);

	len = len < *size ? len : *size;
	if (op % 8 != 5)
		call_ts[dir] = ts;
	rc = ops->feed(p, dir, *data, len, call_ts[dir], call_ts[dir] + 5);
	if (rc && rc != -EPROTO)
		abort();
	if (*stopped && rc != *stopped)
		abort();
	if (rc)
		*stopped = rc;
	script__take(data, size, len);
}

/* Runs the script in data[0..size) against p; returns the last timestamp used. */
static uint64_t script__run(void *p, const struct stream_script_ops *ops, const uint8_t *data,
			    size_t size)
{
	uint64_t ts = 1000, call_ts[2] = {0, 0};
	int stopped = 0;

	while (size) {
		uint8_t op = data[0];

		script__take(&data, &size, 1);
		ts += 10;
		switch (op % 8) {
		case 0:
		case 1:
		case 5:
		case 7:
			script__data(p, ops, op, &data, &size, ts, call_ts, &stopped);
			break;
		case 2:
		case 3:
			ops->gap(p, op & 1, script__u16(&data, &size));
			break;
		case 4:
			ops->expire(p, ts, script__u8(&data, &size) * 10ULL);
			break;
		case 6:
			size = 0;
			break;
		}
	}
	return ts;
}

#endif
