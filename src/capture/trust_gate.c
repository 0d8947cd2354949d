// SPDX-License-Identifier: Apache-2.0
/*
 * The trust gate of code-shape probes (capture/trust_gate.h): a connection's records pass once
 * one of them starts an HTTP request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/trust_gate.h"
#include "tokentap_abi.h"

/*
 * Only the start of a request verifies (in either direction: a Bun server reads them): a
 * response seen first belongs to a request written before the probes were attached, which the
 * parsers could not pair, so the connection waits for its next request instead.
 */
static const char *const request_starts[] = {
    "GET /", "POST /", "PUT /", "PATCH /", "DELETE /", "HEAD /", "OPTIONS ", "CONNECT ",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
};

bool trust__starts_request(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(request_starts) / sizeof(request_starts[0]); i++) {
		size_t len = strlen(request_starts[i]);

		if (n >= len && !memcmp(p, request_starts[i], len))
			return true;
	}
	return false;
}

static struct trust_gate_slot *gate__slot(struct trust_gate *g, uint32_t pid, uint64_t conn)
{
	uint64_t h = (conn ^ ((uint64_t)pid << 32)) * 0x9e3779b97f4a7c15ULL;
	uint32_t i = (uint32_t)(h >> 40) % TRUST_GATE_SLOTS, n;

	for (n = 0; n < TRUST_GATE_SLOTS; n++, i = (i + 1) % TRUST_GATE_SLOTS) {
		struct trust_gate_slot *s = &g->slots[i];

		if (!s->state || (s->pid == pid && s->conn_id == conn))
			return s;
	}
	return NULL;
}

static const char *gate__library(const struct tt_data_event *d)
{
	return d->hdr.source == TT_SRC_RUSTLS ? "rustls" : "BoringSSL";
}

/*
 * A connection not yet verified: its record passes, and verifies it, when it starts an HTTP
 * request. Anything else is held back (dropped, counted) but not held against it: probes
 * attached while a keep-alive connection was mid-exchange see its tail first, and its next
 * request verifies it. A wrong guess never shows such bytes, so nothing of it ever passes.
 */
static bool gate__judge(struct trust_gate *g, struct trust_gate_slot *s,
			const struct tt_data_event *d, size_t size)
{
	size_t n = size - TT_DATA_HDR_SIZE;
	bool ok;

	if (n > d->data_len)
		n = d->data_len;
	ok = trust__starts_request(d->data, n);
	if (!ok) {
		g->held_bytes += d->data_len;
		if (s->state != TRUST_GATE_WAITING) {
			g->held_conns++;
			if (g->verbose)
				fprintf(stderr,
					"tokentap: %s connection %#llx of pid %u: held back until "
					"an HTTP request starts\n",
					gate__library(d), (unsigned long long)d->hdr.conn_id,
					d->hdr.pid);
		}
		s->state = TRUST_GATE_WAITING;
		return false;
	}
	g->verified++;
	if (g->verbose)
		fprintf(stderr, "tokentap: %s connection %#llx of pid %u verified: an HTTP "
			"request\n", gate__library(d), (unsigned long long)d->hdr.conn_id,
			d->hdr.pid);
	s->state = TRUST_GATE_VERIFIED;
	return true;
}

bool trust_gate__pass(struct trust_gate *g, const void *rec, size_t size)
{
	const struct tt_data_event *d = rec;
	struct trust_gate_slot *s;

	if (size < sizeof(struct tt_event_hdr))
		return false;
	if (!g->slots && !(g->slots = calloc(TRUST_GATE_SLOTS, sizeof(*g->slots))))
		return false;
	if (g->used * 4 >= TRUST_GATE_SLOTS * 3) {
		memset(g->slots, 0, TRUST_GATE_SLOTS * sizeof(*g->slots));
		g->used = 0;
	}
	s = gate__slot(g, d->hdr.pid, d->hdr.conn_id);
	if (d->hdr.kind == TT_EV_CLOSE && s && s->state)
		s->state = TRUST_GATE_CLOSED; /* the SSL* may come back as a new connection */
	/*
	 * Records without payload (close, ignore, sync, socket, SNI) always pass: they carry stream
	 * positions the parsers need (the kernel sends an IGNORE instead of a first GET's bytes),
	 * and without data they can make no span.
	 */
	if (d->hdr.kind != TT_EV_DATA)
		return true;
	if (size < TT_DATA_HDR_SIZE || !s)
		return false;
	if (s->state == TRUST_GATE_VERIFIED)
		return true;
	if (s->state == TRUST_GATE_FREE)
		g->used++;
	s->pid = d->hdr.pid;
	s->conn_id = d->hdr.conn_id;
	return gate__judge(g, s, d, size);
}

void trust_gate__free(struct trust_gate *g)
{
	free(g->slots);
	g->slots = NULL;
}
