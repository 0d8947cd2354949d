/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Records of probes found by code shape (stripped BoringSSL, aws-lc under rustls) are trusted per
 * connection only once its bytes are TLS plaintext of HTTP: a record that starts an HTTP request
 * (a request line or the HTTP/2 preface). Until then every data record of the connection is
 * dropped (counted), so a wrong guess can never become a span. Memory is bounded: the table is
 * cleared when 3/4 full (connections seen again afterwards are judged anew).
 */
#ifndef TOKENTAP_CAPTURE_TRUST_GATE_H
#define TOKENTAP_CAPTURE_TRUST_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRUST_GATE_SLOTS 8192

enum trust_gate_state {
	TRUST_GATE_FREE = 0,
	TRUST_GATE_VERIFIED = 1,
	TRUST_GATE_WAITING = 2, /* seen, no HTTP start yet: records held back */
	TRUST_GATE_CLOSED = 3,  /* closed: judged anew if the SSL* comes back */
};

struct trust_gate_slot {
	uint64_t conn_id;
	uint32_t pid;
	uint8_t state; /* enum trust_gate_state */
};

struct trust_gate {
	struct trust_gate_slot *slots;
	uint32_t used;
	uint64_t verified, held_conns, held_bytes;
	bool verbose;
};

/* True when bytes start an HTTP/1 request (origin form, OPTIONS, CONNECT) or the HTTP/2 preface. */
bool trust__starts_request(const uint8_t *p, size_t n);
/* Whether a raw record (struct tt_event_hdr first) may go on to the parsers. */
bool trust_gate__pass(struct trust_gate *g, const void *rec, size_t size);
void trust_gate__free(struct trust_gate *g);

#endif
