/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rustls records to connections. The kernel captures rustls's records where aws-lc seals and
 * opens them (bpf/tls.bpf.c), under the EVP_AEAD_CTX of each direction: two contexts per TLS
 * connection, and a new one after a TLS 1.3 KeyUpdate. Each context's TT_EV_SOCK names the
 * socket it runs on. This stage rewrites the records of every context bound to a socket into
 * one connection, conn_id = the struct sock *, with stream positions continuing across
 * contexts, so the stages after it see what they see for OpenSSL.
 *
 * A sealed record comes before its socket is known (the socket write follows the seal): records
 * of an unbound context are held, in order, until its TT_EV_SOCK (microseconds later, same
 * thread). Bounded: at most AEAD_HELD_BYTES held; a record held longer than AEAD_HELD_NS or
 * pushed out by the bound is dropped and counted, and its connection's positions move past it
 * (a gap the parsers report), never a silently wrong span.
 *
 * TT_EV_CLOSE of TT_SRC_RUSTLS carries the socket itself (the kernel saw it reach TCP_CLOSE): it
 * goes on with the socket's final positions, and the socket's bindings are forgotten.
 */
#ifndef TOKENTAP_CAPTURE_AEAD_BIND_H
#define TOKENTAP_CAPTURE_AEAD_BIND_H

#include <stddef.h>
#include <stdint.h>

#define AEAD_BIND_SLOTS 8192
#define AEAD_HELD_BYTES (8u << 20)
#define AEAD_HELD_NS (2ULL * 1000 * 1000 * 1000)

/* Delivers one rewritten record onwards; its memory is valid only during the call. */
typedef int (*aead_emit_fn)(void *ctx, const void *rec, size_t size);

struct aead_binding; /* (pid, context) -> socket and positions; (pid, socket) -> ends */
struct aead_held;

struct aead_bind {
	struct aead_binding **bindings; /* hash buckets: contexts */
	struct aead_binding **socks;    /* hash buckets: sockets */
	uint32_t nbindings, nsocks;
	struct aead_held *head, *tail;
	uint64_t held_bytes;
	uint8_t *scratch; /* the record being rewritten (delivery never re-enters this stage) */
	size_t scratch_cap;
	/* stats */
	uint64_t bound;		  /* contexts bound to a socket */
	uint64_t dropped_records; /* records dropped unbound (timeout, bound, exit) */
	uint64_t dropped_bytes;
};

/* One raw record of TT_SRC_RUSTLS: delivered rewritten through emit now, held, or dropped. */
int aead_bind__record(struct aead_bind *b, const void *rec, size_t size, aead_emit_fn emit,
		      void *ctx);
/* A process exited: its bindings go and its held records are dropped. */
void aead_bind__on_exit(struct aead_bind *b, uint32_t pid);
void aead_bind__free(struct aead_bind *b);

#endif
