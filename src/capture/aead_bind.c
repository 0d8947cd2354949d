// SPDX-License-Identifier: Apache-2.0
/*
 * rustls records to connections: see aead_bind.h. Two small chained hash tables keyed by pid
 * and an identity (the context, or the socket), and one FIFO of held records.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "capture/aead_bind.h"
#include "tokentap_abi.h"

#define AEAD_BUCKETS 4096
#define AEAD_MAX_ENTRIES 65536

/* One entry of either table: a context's binding, or a socket's stream ends. */
struct aead_binding {
	struct aead_binding *next;
	uint32_t pid;
	uint64_t id;	  /* EVP_AEAD_CTX (bindings) or struct sock * (socks) */
	uint64_t sock;	    /* bindings: the socket */
	int64_t shift[2];   /* bindings: socket position - context position, per direction */
	uint64_t ctx_end[2]; /* bindings: end of what the context delivered, its own positions */
	uint64_t end[2];    /* socks: the end of what was delivered per direction */
};

struct aead_held {
	struct aead_held *next;
	size_t size;
	uint8_t rec[]; /* the raw record */
};

static uint32_t bucket__of(uint32_t pid, uint64_t id)
{
	return (uint32_t)(((id ^ ((uint64_t)pid << 40)) * 0x9e3779b97f4a7c15ULL) >> 52) %
	       AEAD_BUCKETS;
}

static struct aead_binding *table__find(struct aead_binding **t, uint32_t pid, uint64_t id)
{
	struct aead_binding *e;

	if (!t)
		return NULL;
	for (e = t[bucket__of(pid, id)]; e; e = e->next) {
		if (e->pid == pid && e->id == id)
			return e;
	}
	return NULL;
}

static struct aead_binding *table__add(struct aead_binding ***t, uint32_t *n, uint32_t pid,
				       uint64_t id)
{
	struct aead_binding *e;
	uint32_t i;

	if (!*t && !(*t = calloc(AEAD_BUCKETS, sizeof(**t))))
		return NULL;
	if (*n >= AEAD_MAX_ENTRIES || !(e = calloc(1, sizeof(*e))))
		return NULL;
	i = bucket__of(pid, id);
	e->pid = pid;
	e->id = id;
	e->next = (*t)[i];
	(*t)[i] = e;
	(*n)++;
	return e;
}

/* Drops pid's entries (only those bound to sock, when by_sock). */
static void table__drop(struct aead_binding **t, uint32_t *n, uint32_t pid, bool by_sock,
			uint64_t sock)
{
	uint32_t i;

	for (i = 0; t && i < AEAD_BUCKETS; i++) {
		struct aead_binding **pp = &t[i], *e;

		while ((e = *pp)) {
			if (e->pid == pid && (!by_sock || e->sock == sock)) {
				*pp = e->next;
				free(e);
				(*n)--;
			} else {
				pp = &e->next;
			}
		}
	}
}

static void table__free(struct aead_binding **t)
{
	uint32_t i;

	for (i = 0; t && i < AEAD_BUCKETS; i++) {
		while (t[i]) {
			struct aead_binding *e = t[i];

			t[i] = e->next;
			free(e);
		}
	}
	free(t);
}

/* ---- held records ---------------------------------------------------------------------------- */

static const struct tt_event_hdr *held__hdr(const struct aead_held *h)
{
	return (const struct tt_event_hdr *)h->rec;
}

static void bind__count_drop(struct aead_bind *b, const struct aead_held *h)
{
	b->dropped_records++;
	if (held__hdr(h)->kind == TT_EV_DATA && h->size >= TT_DATA_HDR_SIZE)
		b->dropped_bytes += ((const struct tt_data_event *)h->rec)->data_len;
}

static void held__pop_front(struct aead_bind *b, bool count)
{
	struct aead_held *h = b->head;

	b->head = h->next;
	if (!b->head)
		b->tail = NULL;
	b->held_bytes -= h->size;
	if (count)
		bind__count_drop(b, h);
	free(h);
}

/* Records waiting longer than AEAD_HELD_NS (by the kernel clock of the newest record) go. */
static void held__expire(struct aead_bind *b, uint64_t now_ns)
{
	while (b->head && now_ns > held__hdr(b->head)->ts_ns + AEAD_HELD_NS)
		held__pop_front(b, true);
}

static int held__push(struct aead_bind *b, const void *rec, size_t size)
{
	struct aead_held *h;

	if (size > AEAD_HELD_BYTES)
		return -E2BIG;
	while (b->head && b->held_bytes + size > AEAD_HELD_BYTES)
		held__pop_front(b, true);
	h = malloc(sizeof(*h) + size);
	if (!h)
		return -ENOMEM;
	h->next = NULL;
	h->size = size;
	memcpy(h->rec, rec, size);
	if (b->tail)
		b->tail->next = h;
	else
		b->head = h;
	b->tail = h;
	b->held_bytes += size;
	return 0;
}

/* ---- rewriting -------------------------------------------------------------------------------- */

/* A record of a bound context as the socket's connection; copies into buf (>= size bytes). */
static void record__rebind(struct aead_bind *b, struct aead_binding *bd, uint8_t *buf,
			   size_t size)
{
	struct tt_event_hdr *h = (struct tt_event_hdr *)buf;
	struct aead_binding *s = table__find(b->socks, h->pid, bd->sock);
	int d;

	h->conn_id = bd->sock;
	if (h->kind == TT_EV_DATA && size >= TT_DATA_HDR_SIZE) {
		struct tt_data_event *ev = (struct tt_data_event *)buf;

		d = ev->hdr.dir & 1;
		/*
		 * A context's positions never go back, unless the kernel's state of it was made
		 * anew (evicted): they restart at 0 and continue the socket's stream.
		 */
		if (ev->seq < bd->ctx_end[d] && s) {
			bd->shift[d] = (int64_t)s->end[d];
			bd->ctx_end[d] = 0;
		}
		if (ev->seq + ev->data_len > bd->ctx_end[d])
			bd->ctx_end[d] = ev->seq + ev->data_len;
		ev->seq += (uint64_t)bd->shift[d];
		if (s && ev->seq + ev->data_len > s->end[d])
			s->end[d] = ev->seq + ev->data_len;
	} else if ((h->kind == TT_EV_SYNC || h->kind == TT_EV_IGNORE) &&
		   size >= sizeof(struct tt_close_event)) {
		struct tt_close_event *ev = (struct tt_close_event *)buf;
		__u64 *pos[2] = {&ev->write_seq, &ev->read_seq};

		/* A context runs one direction: the other's position is the socket's. */
		for (d = 0; d < 2; d++) {
			*pos[d] = *pos[d] ? *pos[d] + (uint64_t)bd->shift[d] : (s ? s->end[d] : 0);
			if (s && *pos[d] > s->end[d])
				s->end[d] = *pos[d];
		}
	}
}

static int record__deliver(struct aead_bind *b, struct aead_binding *bd, const void *rec,
			   size_t size, aead_emit_fn emit, void *ctx)
{
	/* One scratch record, grown to the largest seen: no allocation per record. */
	if (size > b->scratch_cap) {
		uint8_t *grown = realloc(b->scratch, size);

		if (!grown)
			return -ENOMEM;
		b->scratch = grown;
		b->scratch_cap = size;
	}
	memcpy(b->scratch, rec, size);
	record__rebind(b, bd, b->scratch, size);
	return emit(ctx, b->scratch, size);
}

/*
 * Takes pid's held records (of context bd->id only, when bd is given) out of the FIFO, in order:
 * delivered through bd now that its socket is known, or else dropped and counted.
 */
static void held__take(struct aead_bind *b, uint32_t pid, struct aead_binding *bd,
		       aead_emit_fn emit, void *ctx)
{
	struct aead_held **pp = &b->head, *h, *prev = NULL;

	while ((h = *pp)) {
		if (held__hdr(h)->pid != pid || (bd && held__hdr(h)->conn_id != bd->id)) {
			prev = h;
			pp = &h->next;
			continue;
		}
		*pp = h->next;
		if (b->tail == h)
			b->tail = prev;
		b->held_bytes -= h->size;
		if (bd)
			record__deliver(b, bd, h->rec, h->size, emit, ctx);
		else
			bind__count_drop(b, h);
		free(h);
	}
}

/* TT_EV_SOCK of a context: bind it, tell the stages after us about the socket once. */
static int bind__sock(struct aead_bind *b, const struct tt_sock_event *ev, aead_emit_fn emit,
		      void *ctx)
{
	struct aead_binding *bd = table__find(b->bindings, ev->hdr.pid, ev->hdr.conn_id);
	struct aead_binding *s = table__find(b->socks, ev->hdr.pid, ev->sock_cookie);
	struct tt_sock_event out = *ev;
	bool new_sock = !s;

	if (bd && bd->sock == ev->sock_cookie)
		return 0; /* again after its state was evicted: record__rebind sees the restart */
	if (!s) {
		s = table__add(&b->socks, &b->nsocks, ev->hdr.pid,
			       ev->sock_cookie);
		if (!s)
			return -ENOMEM;
	}
	/* A context on another socket: its address was freed and reused by a new connection. */
	if (!bd)
		bd = table__add(&b->bindings, &b->nbindings, ev->hdr.pid, ev->hdr.conn_id);
	if (!bd)
		return -ENOMEM;
	/* The context's next byte continues the socket's stream in its direction. */
	bd->sock = ev->sock_cookie;
	bd->shift[0] = (int64_t)(s->end[0] - bd->ctx_end[0]);
	bd->shift[1] = (int64_t)(s->end[1] - bd->ctx_end[1]);
	b->bound++;
	if (new_sock) {
		out.hdr.conn_id = ev->sock_cookie;
		emit(ctx, &out, sizeof(out));
	}
	held__take(b, bd->pid, bd, emit, ctx);
	return 0;
}

/* TT_EV_CLOSE of a socket (conn_id is the socket already): its final positions, then gone. */
static int bind__close(struct aead_bind *b, const struct tt_close_event *ev, aead_emit_fn emit,
		       void *ctx)
{
	struct aead_binding **pp, *s;
	struct tt_close_event out = *ev;

	s = table__find(b->socks, ev->hdr.pid, ev->hdr.conn_id);
	if (!s)
		return 0; /* never bound: nothing of it went on */
	out.write_seq = s->end[TT_DIR_WRITE];
	out.read_seq = s->end[TT_DIR_READ];
	/* Its contexts' bindings go: their addresses may come back for another connection. */
	table__drop(b->bindings, &b->nbindings, ev->hdr.pid, true, ev->hdr.conn_id);
	for (pp = &b->socks[bucket__of(s->pid, s->id)]; *pp != s; pp = &(*pp)->next)
		;
	*pp = s->next;
	free(s);
	b->nsocks--;
	return emit(ctx, &out, sizeof(out));
}

/* Data whose payload fits its record, positions records of their full size. */
static bool record__well_formed(const struct tt_event_hdr *h, const void *rec, size_t size)
{
	struct tt_data_event d;

	if (h->kind == TT_EV_DATA) {
		if (size < TT_DATA_HDR_SIZE)
			return false;
		memcpy(&d, rec, TT_DATA_HDR_SIZE);
		return d.data_len <= size - TT_DATA_HDR_SIZE;
	}
	if (h->kind == TT_EV_SYNC || h->kind == TT_EV_IGNORE)
		return size >= sizeof(struct tt_close_event);
	return true;
}

int aead_bind__record(struct aead_bind *b, const void *rec, size_t size, aead_emit_fn emit,
		      void *ctx)
{
	struct tt_event_hdr h;
	struct aead_binding *bd;

	if (size < sizeof(h))
		return -EINVAL;
	memcpy(&h, rec, sizeof(h));
	held__expire(b, h.ts_ns);
	if (h.kind == TT_EV_SOCK) {
		struct tt_sock_event ev;

		if (size < sizeof(ev))
			return -EINVAL;
		memcpy(&ev, rec, sizeof(ev));
		return bind__sock(b, &ev, emit, ctx);
	}
	if (h.kind == TT_EV_CLOSE) {
		struct tt_close_event ev;

		if (size < sizeof(ev))
			return -EINVAL;
		memcpy(&ev, rec, sizeof(ev));
		return bind__close(b, &ev, emit, ctx);
	}
	if (!record__well_formed(&h, rec, size))
		return -EINVAL;
	bd = table__find(b->bindings, h.pid, h.conn_id);
	if (bd)
		return record__deliver(b, bd, rec, size, emit, ctx);
	return held__push(b, rec, size);
}

void aead_bind__on_exit(struct aead_bind *b, uint32_t pid)
{
	table__drop(b->bindings, &b->nbindings, pid, false, 0);
	table__drop(b->socks, &b->nsocks, pid, false, 0);
	held__take(b, pid, NULL, NULL, NULL);
}

void aead_bind__free(struct aead_bind *b)
{
	while (b->head)
		held__pop_front(b, false);
	table__free(b->bindings);
	table__free(b->socks);
	free(b->scratch);
	b->scratch = NULL;
	b->scratch_cap = 0;
	b->bindings = NULL;
	b->socks = NULL;
	b->nbindings = b->nsocks = 0;
}
