// SPDX-License-Identifier: Apache-2.0
/*
 * Connection tracking. The capture stage delivers each connection direction in stream order
 * (one shared ring buffer keeps the kernel's per-connection order), so a chunk that starts past
 * the expected position means the bytes in between were lost: it becomes a gap for the parser.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "../proto/http2.h"
#include "../proto/parser.h"

#define NS_PER_SEC 1000000000ull
#define CONN_DETECT_WRITES 4 /* writes without an HTTP/1.x start before giving up */

enum conn_proto {
	CONN_PROTO_UNKNOWN = 0, /* no byte that starts a message seen yet */
	CONN_PROTO_HTTP1 = 1,   /* an HTTP parser (1.x or 2, see http_parser__version) */
	CONN_PROTO_OTHER = 2,   /* not HTTP: further bytes are dropped unread */
	CONN_PROTO_IGNORED = 3, /* the kernel stopped copying it (not LLM traffic): no bytes come */
};

struct conn {
	struct cap_conn_key key;
	struct conn *hnext;             /* hash chain */
	struct conn *lru_prev, *lru_next; /* most recently active first */
	uint64_t next_seq[2];           /* expected stream position per direction */
	uint64_t ignored_at[2];         /* positions at which the kernel stopped copying */
	uint32_t unknown_writes;        /* writes seen before the protocol was recognised */
	uint64_t last_active_ns;
	enum conn_proto proto;
	struct llm_conn_info info;
	struct http_parser *http;
	struct llm_conn *llm;
};

struct conn_table {
	struct conn_opts opts;
	llm_call_cb cb;
	void *cb_ctx;
	struct conn **buckets;
	size_t nbuckets;
	struct conn *lru_head, *lru_tail;
	struct conn_stats st;
};

static size_t key_hash(const struct cap_conn_key *k, size_t nbuckets)
{
	uint64_t h = k->conn_id ^ ((uint64_t)k->pid << 32 | k->pid);

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h & (nbuckets - 1);
}

static bool key_eq(const struct cap_conn_key *a, const struct cap_conn_key *b)
{
	return a->pid == b->pid && a->conn_id == b->conn_id;
}

struct conn_table *conn_table__new(const struct conn_opts *opts, llm_call_cb cb, void *cb_ctx)
{
	struct conn_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->opts = *opts;
	if (!t->opts.idle_timeout_ns)
		t->opts.idle_timeout_ns = 15 * 60 * NS_PER_SEC;
	if (!t->opts.request_timeout_ns)
		t->opts.request_timeout_ns = 10 * 60 * NS_PER_SEC;
	if (!t->opts.max_conns)
		t->opts.max_conns = 65536;
	t->nbuckets = 4096;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return NULL;
	}
	t->cb = cb;
	t->cb_ctx = cb_ctx;
	return t;
}

static void lru_unlink(struct conn_table *t, struct conn *c)
{
	if (c->lru_prev)
		c->lru_prev->lru_next = c->lru_next;
	else
		t->lru_head = c->lru_next;
	if (c->lru_next)
		c->lru_next->lru_prev = c->lru_prev;
	else
		t->lru_tail = c->lru_prev;
	c->lru_prev = c->lru_next = NULL;
}

static void lru_push_front(struct conn_table *t, struct conn *c)
{
	c->lru_next = t->lru_head;
	c->lru_prev = NULL;
	if (t->lru_head)
		t->lru_head->lru_prev = c;
	t->lru_head = c;
	if (!t->lru_tail)
		t->lru_tail = c;
}

static void conn__touch(struct conn_table *t, struct conn *c, uint64_t ts_ns)
{
	if (ts_ns > c->last_active_ns)
		c->last_active_ns = ts_ns;
	if (t->lru_head != c) {
		lru_unlink(t, c);
		lru_push_front(t, c);
	}
}

static struct conn *conn__lookup(struct conn_table *t, const struct cap_conn_key *k)
{
	struct conn *c = t->buckets[key_hash(k, t->nbuckets)];

	while (c && !key_eq(&c->key, k))
		c = c->hnext;
	return c;
}

static void conn__unhash(struct conn_table *t, struct conn *c)
{
	struct conn **pp = &t->buckets[key_hash(&c->key, t->nbuckets)];

	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = c->hnext;
}

/* Ends the connection: open calls are reported (closed before their response ended). */
static void conn__destroy(struct conn_table *t, struct conn *c, uint64_t ts_ns)
{
	if (c->http) {
		http_parser__close(c->http, ts_ns);
		http_parser__free(c->http);
	}
	if (c->llm)
		llm_conn__free(c->llm);
	conn__unhash(t, c);
	lru_unlink(t, c);
	free(c);
	t->st.open--;
}

static void conn_table__evict_oldest(struct conn_table *t, uint64_t ts_ns)
{
	struct conn *victim = t->lru_tail;

	if (!victim)
		return;
	t->st.evicted_cap++;
	conn__destroy(t, victim, ts_ns);
}

static struct conn *conn__create(struct conn_table *t, const struct cap_conn_key *k, uint64_t ts_ns)
{
	struct conn *c;
	size_t b;

	if (t->st.open >= t->opts.max_conns)
		conn_table__evict_oldest(t, ts_ns);
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->key = *k;
	c->info.pid = k->pid;
	c->info.conn_id = k->conn_id;
	c->last_active_ns = ts_ns;
	b = key_hash(k, t->nbuckets);
	c->hnext = t->buckets[b];
	t->buckets[b] = c;
	lru_push_front(t, c);
	t->st.open++;
	t->st.created++;
	return c;
}

static struct conn *conn__get(struct conn_table *t, const struct cap_conn_key *k, uint64_t ts_ns)
{
	struct conn *c = conn__lookup(t, k);

	return c ? c : conn__create(t, k, ts_ns);
}

static bool starts_response(const struct cap_chunk *ch)
{
	return ch->len >= 5 && !memcmp(ch->data, "HTTP/", 5);
}

/* Picks the parser from the first bytes of a direction that start a message. Until a chunk
 * starts with something recognisable (capture may begin mid-connection), bytes are skipped.
 * The role comes from which side writes requests: tokentap reports the calls of clients, so
 * the server side of a TLS connection (a local LLM gateway, the test mock) is set aside. */
static bool conn__start_parser(struct conn_table *t, struct conn *c, enum http_version v)
{
	c->llm = llm_conn__new(&c->info, t->cb, t->cb_ctx);
	c->http = c->llm ? http_parser__new(v, HTTP1_ROLE_CLIENT, llm_conn__sink(c->llm)) : NULL;
	if (c->http) {
		c->proto = CONN_PROTO_HTTP1;
		if (v == HTTP_VERSION_2)
			t->st.http2++;
		return true;
	}
	if (c->llm)
		llm_conn__free(c->llm);
	c->llm = NULL;
	return false;
}

/* The HTTP/2 connection preface: written by a client, read by a server (set aside). */
static void conn__detect_http2(struct conn_table *t, struct conn *c, const struct cap_chunk *ch)
{
	if (ch->dir == CAP_DIR_READ) {
		c->proto = CONN_PROTO_OTHER;
		t->st.server_side++;
		return;
	}
	if (conn__start_parser(t, c, HTTP_VERSION_2) && c->next_seq[CAP_DIR_READ] > 0)
		http_parser__gap(c->http, CAP_DIR_READ, 0);
}

/* A client's write of HTTP/2 frames on a connection that began before capture did: both
 * directions start by looking for frames, their HPACK tables empty. */
static bool conn__detect_http2_midstream(struct conn_table *t, struct conn *c,
					 const struct cap_chunk *ch)
{
	if (ch->dir != CAP_DIR_WRITE || !http2__looks_like_frames(ch->data, ch->len))
		return false;
	if (conn__start_parser(t, c, HTTP_VERSION_2)) {
		t->st.http2_midstream++;
		http_parser__gap(c->http, CAP_DIR_WRITE, 0);
		http_parser__gap(c->http, CAP_DIR_READ, 0);
	}
	return true;
}

static void conn__detect(struct conn_table *t, struct conn *c, const struct cap_chunk *ch)
{
	bool response = starts_response(ch);

	if (http2__is_preface(ch->data, ch->len)) {
		conn__detect_http2(t, c, ch);
		return;
	}
	if (http1__looks_like_http(ch->data, ch->len)) {
		if (response == (ch->dir == CAP_DIR_WRITE)) {
			c->proto = CONN_PROTO_OTHER;
			t->st.server_side++;
			return;
		}
		/* A response before any request: wait for the client's next request. */
		if (response)
			return;
		/* Capture began mid-connection and bytes were already read: they may have ended
		 * mid-response, so responses start at the next status line. */
		if (conn__start_parser(t, c, HTTP_VERSION_1) && c->next_seq[CAP_DIR_READ] > 0)
			http_parser__gap(c->http, CAP_DIR_READ, 0);
		return;
	}
	if (conn__detect_http2_midstream(t, c, ch))
		return;
	/* Writes that start no HTTP message (another protocol): nothing later on this connection
	 * will be HTTP either, so stop looking at it. A few are allowed, since capture may begin
	 * in the middle of a request body. */
	if (ch->dir == CAP_DIR_WRITE && ++c->unknown_writes >= CONN_DETECT_WRITES) {
		c->proto = CONN_PROTO_OTHER;
		t->st.not_http++;
	}
}

/* A fresh HTTP/1 parser that waits for the next message start in each direction. */
static void conn__renew_parser(struct conn_table *t, struct conn *c)
{
	struct http_parser *fresh;

	fresh = http_parser__new(HTTP_VERSION_1, HTTP1_ROLE_CLIENT, llm_conn__sink(c->llm));
	if (!fresh)
		return;
	http_parser__free(c->http); /* nothing open in it: nothing to report */
	c->http = fresh;
	http_parser__gap(fresh, CAP_DIR_WRITE, 0);
	http_parser__gap(fresh, CAP_DIR_READ, 0);
	t->st.parser_renewals++;
}

/*
 * Lost bytes: the parser ends or marks partial what they cut into. An HTTP/1 parser left with
 * nothing open is then replaced by a fresh one that starts at the next message in each
 * direction, as for a connection whose capture began mid-stream. The kernel reports loss
 * before the next record of the connection (TT_EV_SYNC), so a response that arrives before any
 * new request answers a lost one and is dropped, and the next exchange is traced whole again;
 * http1.c alone gives up on a connection when loss leaves open which request a response
 * answers. HTTP/2 keeps its parser: its HPACK state cannot start over.
 */
static void conn__gap(struct conn_table *t, struct conn *c, int dir, uint64_t lost)
{
	t->st.gaps++;
	t->st.gap_bytes += lost;
	if (!c->http)
		return;
	c->info.gap_bytes = lost; /* a call the gap aborts, now or later, reports them as lost */
	http_parser__gap(c->http, dir, lost);
	if (http_parser__version(c->http) == HTTP_VERSION_1 && !http_parser__busy(c->http))
		conn__renew_parser(t, c);
}

/* Trims bytes already delivered and turns a jump forward into an explicit gap. The kernel
 * numbers each direction from 0 at the first call it sees, so every direction is expected to
 * start at 0. Returns the number of leading bytes to skip, or -1 when the whole chunk is old. */
static long conn__sequence(struct conn_table *t, struct conn *c, const struct cap_chunk *ch)
{
	int d = ch->dir;
	uint64_t end = ch->seq + ch->len;

	if (ch->seq == 0 && c->next_seq[d] > 0) {
		/* Numbering restarted: the kernel's per-connection state was evicted and made
		 * anew. What came between is unknown, so the parser must resynchronise. */
		t->st.restarts++;
		if (c->http)
			http_parser__gap(c->http, d, 1);
		c->next_seq[d] = 0;
	}
	if (end <= c->next_seq[d]) {
		t->st.overlap_bytes += ch->len;
		return -1;
	}
	if (ch->seq > c->next_seq[d]) {
		conn__gap(t, c, d, ch->seq - c->next_seq[d]);
		c->next_seq[d] = ch->seq;
	}
	if (ch->seq < c->next_seq[d]) {
		t->st.overlap_bytes += c->next_seq[d] - ch->seq;
		return (long)(c->next_seq[d] - ch->seq);
	}
	return 0;
}

static void conn__feed(struct conn_table *t, struct conn *c, const struct cap_chunk *ch,
		       size_t skip)
{
	const uint8_t *data = ch->data + skip;
	size_t len = ch->len - skip;

	if (c->proto == CONN_PROTO_UNKNOWN && skip == 0)
		conn__detect(t, c, ch);
	if (c->proto != CONN_PROTO_HTTP1) {
		t->st.skipped_bytes += len;
		return;
	}
	if (http_parser__feed(c->http, ch->dir, data, len, ch->call_start_ns, ch->call_end_ns) < 0) {
		t->st.parse_errors++;
		c->proto = CONN_PROTO_OTHER;
	}
}

void conn_table__on_chunk(struct conn_table *t, const struct cap_chunk *ch)
{
	struct conn *c = conn__get(t, &ch->key, ch->call_end_ns);
	long skip;

	if (!c)
		return;
	conn__touch(t, c, ch->call_end_ns);
	if (ch->dir == CAP_DIR_WRITE)
		c->info.last_tid = ch->tid;
	c->info.tls_source = ch->tls_source;
	skip = conn__sequence(t, c, ch);
	if (skip < 0)
		return;
	c->next_seq[ch->dir] = ch->seq + ch->len;
	if (c->proto == CONN_PROTO_OTHER || c->proto == CONN_PROTO_IGNORED) {
		t->st.skipped_bytes += ch->len;
		return;
	}
	conn__feed(t, c, ch, (size_t)skip);
}

/* Bytes counted by the kernel but never delivered at the end of a stream are a gap too. */
static void conn__account_tail(struct conn_table *t, struct conn *c, int dir, uint64_t final_seq)
{
	if (final_seq <= c->next_seq[dir])
		return;
	conn__gap(t, c, dir, final_seq - c->next_seq[dir]);
	c->next_seq[dir] = final_seq;
}

/* Bytes an ignored connection moved past where the kernel stopped copying: skipped, not lost. */
static void conn__account_ignored(struct conn_table *t, struct conn *c, const struct cap_close *cl)
{
	uint64_t pos[2] = {cl->write_seq, cl->read_seq};

	for (int d = 0; d < 2; d++) {
		if (pos[d] > c->ignored_at[d])
			t->st.ignored_bytes += pos[d] - c->ignored_at[d];
		c->ignored_at[d] = c->next_seq[d] = pos[d] > c->ignored_at[d] ? pos[d] : c->ignored_at[d];
	}
}

void conn_table__on_close(struct conn_table *t, const struct cap_close *cl)
{
	struct conn *c = conn__lookup(t, &cl->key);

	if (!c)
		return;
	if (c->proto == CONN_PROTO_IGNORED) {
		conn__account_ignored(t, c, cl);
	} else {
		conn__account_tail(t, c, CAP_DIR_WRITE, cl->write_seq);
		conn__account_tail(t, c, CAP_DIR_READ, cl->read_seq);
	}
	t->st.closed++;
	conn__destroy(t, c, cl->ts_ns);
}

/*
 * The kernel judged the connection's first write not an LLM call (a request line to another
 * path, or a server's response): nothing more arrives until a TT_EV_SYNC resumes it, and the
 * positions it skips are no loss. A parser already running (the kernel lost its state of the
 * connection and judged it anew) ends its open calls.
 */
void conn_table__on_ignore(struct conn_table *t, const struct cap_close *cl)
{
	struct conn *c = conn__get(t, &cl->key, cl->ts_ns);

	if (!c)
		return;
	if (c->http) {
		http_parser__close(c->http, cl->ts_ns);
		http_parser__free(c->http);
		c->http = NULL;
	}
	if (c->llm)
		llm_conn__free(c->llm);
	c->llm = NULL;
	c->proto = CONN_PROTO_IGNORED;
	c->ignored_at[CAP_DIR_WRITE] = c->next_seq[CAP_DIR_WRITE] = cl->write_seq;
	c->ignored_at[CAP_DIR_READ] = c->next_seq[CAP_DIR_READ] = cl->read_seq;
	t->st.ignored++;
}

/*
 * After loss: the gaps are reported now, requests first, so the parser knows of a lost
 * exchange before the next one starts (found only from the next bytes of each direction, a
 * response gap would come after the next request was queued, and pairing would be ambiguous).
 * After TT_EV_IGNORE: a request to an LLM path follows; the connection starts over at these
 * positions like one whose capture began mid-stream.
 */
void conn_table__on_sync(struct conn_table *t, const struct cap_close *cl)
{
	struct conn *c = conn__get(t, &cl->key, cl->ts_ns);

	if (!c)
		return;
	if (c->proto == CONN_PROTO_IGNORED) {
		conn__account_ignored(t, c, cl);
		c->proto = CONN_PROTO_UNKNOWN;
		c->unknown_writes = 0;
		t->st.resumed++;
		return;
	}
	t->st.syncs++;
	conn__account_tail(t, c, CAP_DIR_WRITE, cl->write_seq);
	conn__account_tail(t, c, CAP_DIR_READ, cl->read_seq);
}

static void format_addr(char *out, size_t n, uint16_t family, const uint8_t *a)
{
	if (family == 2) { /* AF_INET */
		snprintf(out, n, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
		return;
	}
	/* IPv4-mapped IPv6 reads better as IPv4 (dual-stack clients). */
	if (!memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) {
		snprintf(out, n, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
		return;
	}
	snprintf(out, n, "%x:%x:%x:%x:%x:%x:%x:%x", a[0] << 8 | a[1], a[2] << 8 | a[3],
		 a[4] << 8 | a[5], a[6] << 8 | a[7], a[8] << 8 | a[9], a[10] << 8 | a[11],
		 a[12] << 8 | a[13], a[14] << 8 | a[15]);
}

void conn_table__on_sock(struct conn_table *t, const struct cap_sock *s)
{
	struct conn *c = conn__get(t, &s->key, s->ts_ns);

	if (!c)
		return;
	format_addr(c->info.peer_addr, sizeof(c->info.peer_addr), s->family, s->daddr);
	c->info.peer_port = s->dport;
	c->info.has_peer = true;
}

void conn_table__on_sni(struct conn_table *t, const struct cap_sni *s)
{
	struct conn *c = conn__get(t, &s->key, s->ts_ns);

	if (c)
		snprintf(c->info.sni, sizeof(c->info.sni), "%s", s->name);
}

void conn_table__on_exit(struct conn_table *t, uint32_t pid, uint64_t ts_ns)
{
	struct conn *c = t->lru_head, *next;

	for (; c; c = next) {
		next = c->lru_next;
		if (c->key.pid == pid) {
			t->st.closed++;
			conn__destroy(t, c, ts_ns);
		}
	}
}

void conn_table__tick(struct conn_table *t, uint64_t now_ns)
{
	struct conn *c, *prev;

	for (c = t->lru_head; c; c = c->lru_next) {
		if (c->http)
			http_parser__expire(c->http, now_ns, t->opts.request_timeout_ns);
		/* Calls waiting for their response shrink to their packed form. */
		llm_conn__trim(c->llm);
	}
	/* Oldest first; stop at the first connection still inside the idle window. */
	for (c = t->lru_tail; c; c = prev) {
		prev = c->lru_prev;
		if (now_ns < c->last_active_ns + t->opts.idle_timeout_ns)
			break;
		if (c->http && http_parser__busy(c->http))
			continue;
		t->st.evicted_idle++;
		conn__destroy(t, c, now_ns);
	}
}

void conn_table__close_all(struct conn_table *t, uint64_t now_ns)
{
	while (t->lru_head)
		conn__destroy(t, t->lru_head, now_ns);
}

static int pid__cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Distinct processes among the tracked connections (sorted, then counted once each). */
static uint64_t conn_table__procs(const struct conn_table *t)
{
	uint32_t *pids = t->st.open ? malloc(t->st.open * sizeof(*pids)) : NULL;
	const struct conn *c;
	uint64_t n = 0, i, distinct = 0;

	if (!pids)
		return 0;
	for (c = t->lru_head; c && n < t->st.open; c = c->lru_next)
		pids[n++] = c->key.pid;
	qsort(pids, n, sizeof(*pids), pid__cmp);
	for (i = 0; i < n; i++)
		distinct += i == 0 || pids[i] != pids[i - 1];
	free(pids);
	return distinct;
}

void conn_table__stats(const struct conn_table *t, struct conn_stats *st)
{
	*st = t->st;
	st->procs = conn_table__procs(t);
}

void conn_table__free(struct conn_table *t)
{
	struct conn *c, *next;

	if (!t)
		return;
	/* Free without reporting: close_all is the call that reports. */
	for (c = t->lru_head; c; c = next) {
		next = c->lru_next;
		if (c->http)
			http_parser__free(c->http);
		if (c->llm)
			llm_conn__free(c->llm);
		free(c);
	}
	free(t->buckets);
	free(t);
}
