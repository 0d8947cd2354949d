// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/1.1 framing over a lossy, reassembled capture of both directions of one connection.
 *
 * Each direction runs its own resumable state machine (start line + headers, then a body by
 * Content-Length, chunks or close). Requests are queued when their head is complete; responses
 * take the front of the queue, so pairing is FIFO as HTTP/1.1 requires.
 *
 * Loss is where pairing could go wrong, and a response must never be attributed to the wrong
 * request. The queue therefore holds three kinds of entries:
 *  - live: an exchange the sink knows about;
 *  - dead: an exchange already aborted whose response is still expected on the wire; it
 *    swallows exactly one response, silently;
 *  - marker: requests lost in a request-direction gap (at least `min_lost`, exact number
 *    unknown); it swallows responses until the next request can be paired safely.
 * A live or dead exchange is "uncertain" when a response-direction gap may have taken the
 * start of its response; it never gets one (h1_pair).
 * Pairing after loss relies on one observation: a client that does not pipeline writes a
 * request only after the previous response has ended. Once a connection has shown pipelining
 * (a request sent while an earlier one had no response yet), loss that framing cannot survive
 * abandons the parse of the connection (everything open is aborted with HTTP_ABORT_GAP) rather
 * than guess how many messages the lost bytes held; the same happens when the order of events
 * contradicts the no-pipelining assumption (h1_pair, h1_gap_response).
 *
 * Choices worth knowing:
 *  - obs-fold (a header line starting with SP/HT) is rejected as a parse error (RFC 9112 5.2
 *    allows it); so is whitespace before the colon.
 *  - Bare LF is accepted as a line end; empty lines before a start line are skipped.
 *  - Head overflow and a full pipeline stop the connection like a parse error (-EPROTO), but
 *    are counted in `overflow`, and exchanges are aborted with HTTP_ABORT_OVERFLOW.
 *  - A 101 response, or a 2xx to CONNECT, completes its exchange and ends HTTP parsing; later
 *    bytes are ignored and feeds return 0.
 *  - Resync restarts only at the first piece of an SSL call: pieces with the same
 *    (ts_start, ts_end) as the previous piece of their direction continue the same call.
 *  - http1__gap(p, dir, 0) puts a direction into resync without loss: the way to start a
 *    parser in the middle of a connection.
 *  - Capture learns of a gap only when later bytes of that direction arrive, so requests
 *    written after the loss may be queued before the gap is reported; the pairing rules
 *    (h1_pair, h1_gap_response, h1_mark_lost) account for that.
 *  - A response while the request body is unfinished ends the request early, reporting the
 *    missing bytes with on_loss (0 when unknown).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/http1.h"

#define H1_MAX_METHOD 24
#define H1_MAX_CHUNK_LINE 4096
#define H1_KEEP_BUF 4096 /* a head buffer larger than this is freed once used */
/* Queue entries held inside the parser: a client that does not pipeline needs one (two with a
 * loss marker); deeper queues are allocated when needed, up to HTTP1_MAX_PIPELINE. */
#define H1_Q_INLINE 2

_Static_assert((HTTP1_MAX_PIPELINE & (HTTP1_MAX_PIPELINE - 1)) == 0,
	       "the queue is a ring indexed by mask");

enum h1_state {
	H1_IDLE,       /* between messages: the next byte (after empty lines) starts a message */
	H1_RESYNC,     /* after a gap: discard until a fed piece starts with a start line */
	H1_HEAD,       /* start line and header fields */
	H1_BODY_LEN,   /* Content-Length body */
	H1_BODY_CLOSE, /* response body ended by the connection's close */
	H1_CHUNK_SIZE, /* chunk-size [chunk-ext] CRLF */
	H1_CHUNK_DATA,
	H1_CHUNK_END, /* CRLF after chunk data */
	H1_TRAILER,   /* trailer fields and the final empty line */
};

struct h1_dir {
	enum h1_state state;
	bool tentative; /* head began in resync: if it is not HTTP, resync goes on, no error */
	bool cr;	/* chunk lines: CR seen, LF must follow */
	bool in_ext;	/* chunk-size line: inside chunk extensions */
	bool size_done; /* chunk-size line: whitespace after the digits */
	uint8_t *buf;	/* an incomplete head, never more than HTTP1_MAX_HEAD */
	size_t buf_len, buf_cap;
	uint64_t head_ts;   /* ts_start of the piece in which the head began */
	uint64_t remaining; /* body or chunk bytes still expected */
	uint32_t digits, line_len;
	uint64_t trailer_len, trailer_line;
	uint64_t ex_id; /* exchange of the message in progress; 0 = none (orphan, swallowed) */
	uint64_t call_start, call_end; /* the SSL call of the last piece fed */
	bool fed;
};

enum h1_kind { EX_LIVE, EX_DEAD, EX_MARKER };

struct h1_ex {
	uint64_t id;
	void *handle; /* the sink's; NULL = not interested (or no longer) */
	uint64_t ts;  /* request start, for expiry */
	uint64_t tick;
	uint64_t resp_tick;	     /* when its response head was parsed */
	uint32_t min_lost, absorbed; /* markers */
	enum h1_kind kind;
	bool is_head, is_connect;
	bool req_ended, resp_started;
	bool uncertain; /* its response start may have been lost in a response gap */
};

struct http1 {
	enum http1_role role;
	struct http_sink sink;
	struct http1_stats stats;
	int err;      /* what feeds return once stopped */
	bool stopped; /* nothing more is parsed: error, overflow, upgrade, close, ambiguous loss */
	bool pipelined; /* a request was sent while an earlier one had no response yet */
	struct h1_dir dir[2];
	/* A ring of q_cap entries (a power of two): q_inline until more are queued at once.
	 * The head being reported lives on the stack of h1_head_done, not here: an open
	 * connection costs a few hundred bytes, not the 2 KiB of a struct http_head. */
	struct h1_ex *q;
	unsigned q_cap, q_head, q_len;
	uint64_t next_id;
	uint64_t tick;		/* orders request queueing against response ends */
	uint64_t resp_end_tick; /* tick at which the last response ended (or was lost) */
	uint64_t last_ts;	/* latest ts_end fed: the time of events found by a gap */
	uint32_t orphans;	/* responses with no request queued since the last request byte */
	struct h1_ex q_inline[H1_Q_INLINE];
};

struct h1_framing {
	bool has_cl, has_te, te_chunked;
	uint64_t cl;
};

enum { SL_NO = -1, SL_MAYBE = 0, SL_YES = 1 };

struct h1_start {
	const char *method, *target;
	size_t method_len, target_len;
	int minor, status;
	size_t end; /* index after the line's LF */
};

/* ---- character classes and the start line ------------------------------------------------ */

static bool h1_is_tchar(uint8_t c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool h1_is_target(uint8_t c)
{
	return c > 0x20 && c < 0x7f;
}

/* Field values and reason phrases: HT, SP, VCHAR, obs-text. */
static bool h1_is_text(uint8_t c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool h1_is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Matches `lit` at b[i..]; SL_MAYBE when the input ends first. */
static int h1_match(const uint8_t *b, size_t n, size_t i, const char *lit)
{
	for (size_t k = 0; lit[k]; k++) {
		if (i + k == n)
			return SL_MAYBE;
		if (b[i + k] != (uint8_t)lit[k])
			return SL_NO;
	}
	return SL_YES;
}

/* CRLF or LF at b[i]. */
static int h1_line_end(const uint8_t *b, size_t n, size_t i, struct h1_start *s)
{
	if (i == n)
		return SL_MAYBE;
	if (b[i] == '\n') {
		s->end = i + 1;
		return SL_YES;
	}
	if (b[i] != '\r')
		return SL_NO;
	if (i + 1 == n)
		return SL_MAYBE;
	if (b[i + 1] != '\n')
		return SL_NO;
	s->end = i + 2;
	return SL_YES;
}

/* "HTTP/1.x" at b[i]; leaves the minor version in s. */
static int h1_version(const uint8_t *b, size_t n, size_t i, struct h1_start *s)
{
	int r = h1_match(b, n, i, "HTTP/1.");

	if (r != SL_YES)
		return r;
	if (i + 7 == n)
		return SL_MAYBE;
	if (!h1_is_digit(b[i + 7]))
		return SL_NO;
	s->minor = b[i + 7] - '0';
	return SL_YES;
}

/* method SP request-target SP HTTP/1.x CRLF: SL_YES with the line parsed, SL_MAYBE while the
 * bytes so far are a consistent prefix, SL_NO as soon as they cannot be one. */
static int h1_request_line(const uint8_t *b, size_t n, struct h1_start *s)
{
	size_t i = 0, t;
	int r;

	while (i < n && h1_is_tchar(b[i]))
		if (++i > H1_MAX_METHOD)
			return SL_NO;
	if (i == n)
		return SL_MAYBE;
	if (i == 0 || b[i] != ' ')
		return SL_NO;
	s->method = (const char *)b;
	s->method_len = i;
	t = ++i;
	while (i < n && h1_is_target(b[i]))
		i++;
	if (i == n)
		return SL_MAYBE;
	if (i == t || b[i] != ' ')
		return SL_NO;
	s->target = (const char *)b + t;
	s->target_len = i - t;
	r = h1_version(b, n, i + 1, s);
	return r == SL_YES ? h1_line_end(b, n, i + 9, s) : r;
}

/* HTTP/1.x SP 3DIGIT [SP reason] CRLF */
static int h1_status_line(const uint8_t *b, size_t n, struct h1_start *s)
{
	size_t i = 9;
	int r = h1_version(b, n, 0, s);

	if (r == SL_YES)
		r = h1_match(b, n, 8, " ");
	if (r != SL_YES)
		return r;
	s->status = 0;
	for (; i < 12; i++) {
		if (i == n)
			return SL_MAYBE;
		if (!h1_is_digit(b[i]))
			return SL_NO;
		s->status = s->status * 10 + (b[i] - '0');
	}
	if (s->status < 100)
		return SL_NO;
	if (i < n && b[i] == ' ')
		while (++i < n && b[i] != '\r' && b[i] != '\n')
			if (!h1_is_text(b[i]))
				return SL_NO;
	return h1_line_end(b, n, i, s);
}

static int h1_start_line(const uint8_t *b, size_t n, bool request, struct h1_start *s)
{
	return request ? h1_request_line(b, n, s) : h1_status_line(b, n, s);
}

/*
 * Detection takes any prefix that is still consistent with a request or status line: the
 * first SSL call of a connection is rarely shorter than its start line, and when the guess is
 * wrong the parser rejects the bytes that follow with a counted error.
 */
bool http1__looks_like_http(const uint8_t *data, size_t len)
{
	struct h1_start s;

	if (!data || !len)
		return false;
	return h1_request_line(data, len, &s) != SL_NO || h1_status_line(data, len, &s) != SL_NO;
}

/* ---- header fields -------------------------------------------------------------------------- */

static bool h1_name_is(const struct http_header *hd, const char *name)
{
	return hd->name_len == strlen(name) && strncasecmp(hd->name, name, hd->name_len) == 0;
}

static const char *h1_trim(const char *s, const char *e, const char **end)
{
	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*end = e;
	return s;
}

/* Content-Length: one value, or a list of identical values ("5, 5"); anything else is an
 * error, and so is a second header that disagrees. */
static int h1_content_length(const struct http_header *hd, struct h1_framing *f)
{
	const char *p = hd->value, *end = hd->value + hd->value_len;

	while (p <= end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e, *s = h1_trim(p, comma ? comma : end, &e);
		uint64_t v = 0;

		if (s == e || e - s > 18)
			return -EPROTO;
		for (; s < e; s++) {
			if (!h1_is_digit((uint8_t)*s))
				return -EPROTO;
			v = v * 10 + (uint64_t)(*s - '0');
		}
		if (f->has_cl && f->cl != v)
			return -EPROTO;
		f->has_cl = true;
		f->cl = v;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

/* Only the final transfer coding decides the framing; the last header holds it. */
static void h1_transfer_encoding(const struct http_header *hd, struct h1_framing *f)
{
	const char *v = hd->value, *end = hd->value + hd->value_len, *last = v, *e;

	for (const char *c = v; c < end; c++)
		if (*c == ',')
			last = c + 1;
	last = h1_trim(last, end, &e);
	f->has_te = true;
	f->te_chunked = e - last == 7 && strncasecmp(last, "chunked", 7) == 0;
}

/* One field line at b[i] (the head is known to end with an empty line). Returns the index
 * after it, or 0 if it is malformed. */
static size_t h1_field(const uint8_t *b, size_t n, size_t i, struct http_header *hd)
{
	size_t j = i, v;

	while (j < n && h1_is_tchar(b[j]))
		j++;
	if (j == i || j == n || b[j] != ':')
		return 0; /* also rejects obs-fold and whitespace before the colon */
	hd->name = (const char *)b + i;
	hd->name_len = j - i;
	for (v = j + 1; v < n && b[v] != '\n'; v++)
		if (!h1_is_text(b[v]) && !(b[v] == '\r' && v + 1 < n && b[v + 1] == '\n'))
			return 0;
	if (v == n)
		return 0;
	{
		const char *e, *end = (const char *)b + (b[v - 1] == '\r' ? v - 1 : v);

		hd->value = h1_trim((const char *)b + j + 1, end, &e);
		hd->value_len = (size_t)(e - hd->value);
	}
	return v + 1;
}

static int h1_framing_field(const struct http_header *hd, struct h1_framing *f)
{
	if (h1_name_is(hd, "content-length"))
		return h1_content_length(hd, f);
	if (h1_name_is(hd, "transfer-encoding"))
		h1_transfer_encoding(hd, f);
	return 0;
}

static bool h1_empty_line(const uint8_t *b, size_t n, size_t i)
{
	return i >= n || b[i] == '\n' || (b[i] == '\r' && i + 1 < n && b[i + 1] == '\n');
}

/* A complete head b[0..n) (ending with an empty line) into h and the framing; fields past
 * HTTP_MAX_HEADERS are not kept but still checked and still frame the message. Only the
 * header entries in use are written: clearing all 64 would cost more than parsing. */
static int h1_parse_head(struct http_head *h, const uint8_t *b, size_t n, bool request,
			 struct h1_framing *f)
{
	struct h1_start s = {0};
	size_t i;

	if (h1_start_line(b, n, request, &s) != SL_YES)
		return -EPROTO;
	memset(f, 0, sizeof(*f));
	/* Every field cleared but the header array (fields added to the struct later included). */
	memset(h, 0, offsetof(struct http_head, headers));
	memset(&h->num_headers, 0, sizeof(*h) - offsetof(struct http_head, num_headers));
	h->is_request = request;
	h->method = s.method;
	h->method_len = s.method_len;
	h->path = s.target;
	h->path_len = s.target_len;
	h->status = s.status;
	h->minor_version = s.minor;
	for (i = s.end; !h1_empty_line(b, n, i);) {
		struct http_header tmp;
		struct http_header *hd =
		    h->num_headers < HTTP_MAX_HEADERS ? &h->headers[h->num_headers] : &tmp;

		i = h1_field(b, n, i, hd);
		if (!i || h1_framing_field(hd, f))
			return -EPROTO;
		if (hd == &tmp)
			h->headers_truncated = true;
		else
			h->num_headers++;
	}
	return 0;
}

/* ---- the exchange queue --------------------------------------------------------------------- */

static int h1_req_dir(const struct http1 *p)
{
	return p->role == HTTP1_ROLE_CLIENT ? 0 : 1;
}

static struct h1_ex *h1_at(const struct http1 *p, unsigned k)
{
	return &p->q[(p->q_head + k) & (p->q_cap - 1)];
}

static struct h1_ex *h1_front(struct http1 *p)
{
	return p->q_len ? h1_at(p, 0) : NULL;
}

static struct h1_ex *h1_tail(struct http1 *p)
{
	return p->q_len ? h1_at(p, p->q_len - 1) : NULL;
}

static struct h1_ex *h1_find(struct http1 *p, uint64_t id)
{
	for (unsigned k = 0; id && k < p->q_len; k++)
		if (h1_at(p, k)->id == id)
			return h1_at(p, k);
	return NULL;
}

/* Doubles the ring, entries copied in queue order. */
static int h1_grow(struct http1 *p)
{
	unsigned cap = p->q_cap * 2;
	struct h1_ex *q;

	if (cap > HTTP1_MAX_PIPELINE)
		return -EMSGSIZE;
	q = malloc(cap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	for (unsigned k = 0; k < p->q_len; k++)
		q[k] = *h1_at(p, k);
	if (p->q != p->q_inline)
		free(p->q);
	p->q = q;
	p->q_cap = cap;
	p->q_head = 0;
	return 0;
}

/* An empty queue goes back to the inline entries: a deep pipeline once does not cost memory
 * for the rest of the connection. */
static void h1_shrink(struct http1 *p)
{
	if (p->q_len || p->q == p->q_inline)
		return;
	free(p->q);
	p->q = p->q_inline;
	p->q_cap = H1_Q_INLINE;
	p->q_head = 0;
}

static struct h1_ex *h1_push(struct http1 *p, enum h1_kind kind)
{
	struct h1_ex *ex;

	if (p->q_len == p->q_cap && h1_grow(p))
		return NULL;
	ex = h1_at(p, p->q_len++);
	memset(ex, 0, sizeof(*ex));
	ex->id = ++p->next_id;
	ex->kind = kind;
	ex->tick = ++p->tick;
	return ex;
}

static void h1_pop(struct http1 *p)
{
	p->q_head = (p->q_head + 1) & (p->q_cap - 1);
	p->q_len--;
	h1_shrink(p);
}

/* The exchange stays queued (dead) when its response may still come. */
static void h1_abort(struct http1 *p, struct h1_ex *ex, enum http_abort_reason why, uint64_t ts)
{
	if (ex->kind != EX_LIVE)
		return;
	if (ex->handle && p->sink.on_abort)
		p->sink.on_abort(ex->handle, why, ts);
	ex->handle = NULL;
	ex->kind = EX_DEAD;
	p->stats.aborted++;
}

/* Ends the parse of the connection: everything open is aborted, later feeds return err. */
static void h1_stop(struct http1 *p, enum http_abort_reason why, uint64_t ts, int err)
{
	for (unsigned k = 0; k < p->q_len; k++)
		h1_abort(p, h1_at(p, k), why, ts);
	p->q_len = 0;
	h1_shrink(p);
	p->stopped = true;
	p->err = err;
	for (int d = 0; d < 2; d++) {
		free(p->dir[d].buf);
		p->dir[d].buf = NULL;
		p->dir[d].buf_len = p->dir[d].buf_cap = 0;
	}
}

/* ---- messages ------------------------------------------------------------------------------- */

/* The live exchange that bytes of direction d are reported to, or NULL. */
static struct h1_ex *h1_target(struct http1 *p, int dir)
{
	struct h1_ex *ex = h1_find(p, p->dir[dir].ex_id);

	if (!ex || ex->kind != EX_LIVE || !ex->handle)
		return NULL;
	if (dir == h1_req_dir(p) && ex->req_ended)
		return NULL;
	return ex;
}

static void h1_request_end(struct http1 *p, struct h1_ex *ex, uint64_t ts)
{
	if (!ex || ex->req_ended)
		return;
	ex->req_ended = true;
	if (ex->kind == EX_LIVE && ex->handle && p->sink.on_message_end)
		p->sink.on_message_end(ex->handle, false, ts);
}

static void h1_message_end(struct http1 *p, int dir, uint64_t ts)
{
	struct h1_dir *d = &p->dir[dir];
	struct h1_ex *ex = h1_find(p, d->ex_id);

	if (dir == h1_req_dir(p)) {
		h1_request_end(p, ex, ts);
	} else {
		if (ex && ex == h1_front(p)) {
			if (ex->kind == EX_LIVE && ex->handle && p->sink.on_message_end)
				p->sink.on_message_end(ex->handle, true, ts);
			h1_pop(p);
		}
		p->resp_end_tick = ++p->tick;
	}
	d->ex_id = 0;
	d->state = H1_IDLE;
}

enum h1_body { B_NONE, B_LEN, B_CHUNKED, B_CLOSE };

static void h1_begin_body(struct http1 *p, int dir, enum h1_body kind, uint64_t len, uint64_t ts)
{
	struct h1_dir *d = &p->dir[dir];

	d->remaining = len;
	d->digits = d->line_len = 0;
	d->cr = d->in_ext = d->size_done = false;
	if (kind == B_NONE || (kind == B_LEN && len == 0))
		h1_message_end(p, dir, ts);
	else if (kind == B_LEN)
		d->state = H1_BODY_LEN;
	else if (kind == B_CHUNKED)
		d->state = H1_CHUNK_SIZE;
	else
		d->state = H1_BODY_CLOSE;
}

/*
 * Notes pipelining (a request sent while an earlier one awaits its response). True when it
 * meets unresolved loss: the pairing rules for loss assume no pipelining.
 */
static bool h1_pipelining(struct http1 *p)
{
	bool unresolved = false;

	for (unsigned k = 0; k < p->q_len; k++) {
		struct h1_ex *ex = h1_at(p, k);

		if (ex->kind == EX_MARKER || ex->uncertain)
			unresolved = true;
		else if (!ex->resp_started)
			p->pipelined = true;
	}
	return p->pipelined && unresolved;
}

static int h1_request_head(struct http1 *p, int dir, const struct http_head *h,
			   const struct h1_framing *f, uint64_t ts)
{
	struct h1_dir *d = &p->dir[dir];
	struct h1_ex *ex;

	if (f->has_te && !f->te_chunked)
		return -EPROTO; /* a request's length cannot be known (RFC 9112 6.3) */
	if (h1_pipelining(p)) {
		h1_stop(p, HTTP_ABORT_GAP, ts, 0);
		return 0;
	}
	ex = h1_push(p, EX_LIVE);
	if (!ex)
		return -EMSGSIZE;
	ex->ts = d->head_ts;
	ex->is_head = h->method_len == 4 && !memcmp(h->method, "HEAD", 4);
	ex->is_connect = h->method_len == 7 && !memcmp(h->method, "CONNECT", 7);
	p->stats.requests++;
	if (p->sink.on_request)
		ex->handle = p->sink.on_request(p->sink.ctx, h, d->head_ts);
	d->ex_id = ex->id;
	if (f->has_te)
		h1_begin_body(p, dir, B_CHUNKED, 0, ts);
	else
		h1_begin_body(p, dir, f->has_cl ? B_LEN : B_NONE, f->cl, ts);
	return 0;
}

/*
 * Picks the queue entry a new final response belongs to; NULL = swallow it. Sets *abandon when
 * pairing cannot be known. An uncertain exchange never gets a response: the one found may be
 * its own, or that of a later request whose loss capture has not reported yet (it reports a
 * gap only when more bytes of that direction arrive). Both end it; the response is swallowed,
 * or goes to a request queued after the loss was known.
 */
static struct h1_ex *h1_pair(struct http1 *p, bool *abandon, uint64_t ts)
{
	bool ambiguous = false;
	struct h1_ex *ex;

	while ((ex = h1_front(p))) {
		if (ex->kind == EX_MARKER) {
			if (ex->absorbed < ex->min_lost || p->q_len == 1) {
				ex->absorbed++;
				return NULL;
			}
			if (h1_at(p, 1)->tick < p->resp_end_tick) {
				*abandon = true; /* pipelined behind lost requests: how many? */
				return NULL;
			}
		} else if (!ex->uncertain) {
			return ex;
		} else {
			h1_abort(p, ex, HTTP_ABORT_GAP, ts);
			ambiguous = true;
		}
		h1_pop(p);
	}
	/* A response with nothing queued answers a request lost before capture said so; it
	 * counts for that loss (h1_mark_lost) unless it may be the uncertain one's own. */
	if (!ambiguous)
		p->orphans++;
	return NULL;
}

static enum h1_body h1_response_body(const struct h1_ex *ex, const struct h1_framing *f, int status)
{
	if ((ex && ex->is_head) || status == 204 || status == 304)
		return B_NONE;
	if (f->has_te)
		return f->te_chunked ? B_CHUNKED : B_CLOSE;
	return f->has_cl ? B_LEN : B_CLOSE;
}

/*
 * A response while the request body is unfinished: a real early response (413, 401), or the
 * request's tail was lost and capture has not reported the gap yet. Either way the request was
 * not seen in full: the missing bytes are reported (0 when unknown), then the request ends.
 */
static void h1_early_response(struct http1 *p, struct h1_ex *ex, uint64_t ts)
{
	struct h1_dir *rq = &p->dir[h1_req_dir(p)];

	if (ex->req_ended)
		return;
	if (rq->ex_id == ex->id && p->sink.on_loss)
		p->sink.on_loss(ex->handle, false, rq->state == H1_BODY_LEN ? rq->remaining : 0);
	h1_request_end(p, ex, ts);
}

/* 101, or 2xx to CONNECT: the connection stops being HTTP/1.x after this response. */
static void h1_upgrade(struct http1 *p, struct h1_ex *ex, const struct http_head *h, uint64_t ts)
{
	int dir = !h1_req_dir(p);

	if (ex && ex->kind == EX_LIVE && ex->handle) {
		h1_request_end(p, ex, ts);
		if (p->sink.on_response)
			p->sink.on_response(ex->handle, h, ts);
		if (p->sink.on_message_end)
			p->sink.on_message_end(ex->handle, true, ts);
	}
	if (ex)
		ex->kind = EX_DEAD;
	p->dir[dir].ex_id = 0;
	h1_stop(p, HTTP_ABORT_CONN_CLOSED, ts, 0);
}

static int h1_response_head(struct http1 *p, int dir, const struct http_head *h,
			    const struct h1_framing *f, uint64_t ts)
{
	int status = h->status;
	bool abandon = false;
	struct h1_ex *ex;

	if (status < 200 && status != 101) {
		p->dir[dir].state = H1_IDLE; /* interim: the final response follows */
		return 0;
	}
	ex = h1_pair(p, &abandon, ts);
	if (abandon) {
		h1_stop(p, HTTP_ABORT_GAP, ts, 0);
		return 0;
	}
	if (ex && ex->kind == EX_LIVE)
		p->stats.responses++;
	if (status == 101 || (ex && ex->is_connect && status < 300)) {
		h1_upgrade(p, ex, h, ts);
		return 0;
	}
	p->dir[dir].ex_id = ex ? ex->id : 0;
	if (ex && ex->kind == EX_LIVE) {
		ex->resp_started = true;
		ex->resp_tick = ++p->tick;
		if (ex->handle) {
			h1_early_response(p, ex, ts);
			if (p->sink.on_response)
				p->sink.on_response(ex->handle, h, ts);
		}
	}
	h1_begin_body(p, dir, h1_response_body(ex, f, status), f->cl, ts);
	return 0;
}

/* ---- per-state steps: each returns bytes consumed or a negative errno ----------------------- */

static long h1_idle(struct http1 *p, int dir, const uint8_t *data, size_t len, uint64_t ts_start)
{
	struct h1_dir *d = &p->dir[dir];
	size_t i = 0;

	while (i < len && (data[i] == '\r' || data[i] == '\n'))
		i++;
	if (i < len) {
		d->state = H1_HEAD;
		d->tentative = false;
		d->buf_len = 0;
		d->head_ts = ts_start;
	}
	return (long)i;
}

static long h1_resync(struct http1 *p, int dir, const uint8_t *data, size_t len, bool piece_start,
		      uint64_t ts_start)
{
	struct h1_dir *d = &p->dir[dir];
	struct h1_start s;

	if (!piece_start || h1_start_line(data, len, dir == h1_req_dir(p), &s) == SL_NO)
		return (long)len;
	d->state = H1_HEAD;
	d->tentative = true;
	d->buf_len = 0;
	d->head_ts = ts_start;
	return 0;
}

/* Index after the empty line that ends a head ("\n\n" or "\n\r\n"), or 0. */
static size_t h1_head_end(const uint8_t *b, size_t n, size_t from)
{
	const uint8_t *nl;

	while (from < n && (nl = memchr(b + from, '\n', n - from))) {
		size_t i = (size_t)(nl - b);

		if (i + 1 < n && b[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n')
			return i + 3;
		from = i + 1;
	}
	return 0;
}

static int h1_buf_append(struct h1_dir *d, const uint8_t *data, size_t n)
{
	if (d->buf_len + n > d->buf_cap) {
		size_t cap = d->buf_cap ? d->buf_cap * 2 : 1024;
		uint8_t *b;

		while (cap < d->buf_len + n)
			cap *= 2;
		if (cap > HTTP1_MAX_HEAD)
			cap = HTTP1_MAX_HEAD;
		b = realloc(d->buf, cap);
		if (!b)
			return -ENOMEM;
		d->buf = b;
		d->buf_cap = cap;
	}
	memcpy(d->buf + d->buf_len, data, n);
	d->buf_len += n;
	return 0;
}

/* Bytes that are not a message start: an error, or, in resync, just more to discard. */
static long h1_not_http(struct h1_dir *d, size_t len)
{
	if (!d->tentative)
		return -EPROTO;
	d->state = H1_RESYNC;
	d->buf_len = 0;
	return (long)len;
}

static long h1_head_done(struct http1 *p, int dir, const uint8_t *head, size_t n, size_t used,
			 size_t len, uint64_t ts)
{
	struct h1_dir *d = &p->dir[dir];
	bool request = dir == h1_req_dir(p);
	struct http_head h;
	struct h1_framing f;
	int err = h1_parse_head(&h, head, n, request, &f);

	if (err)
		return h1_not_http(d, len);
	if (d->tentative)
		p->stats.resyncs++;
	d->tentative = false;
	err = request ? h1_request_head(p, dir, &h, &f, ts) : h1_response_head(p, dir, &h, &f, ts);
	d->buf_len = 0;
	if (d->buf_cap > H1_KEEP_BUF && !p->stopped) {
		free(d->buf);
		d->buf = NULL;
		d->buf_cap = 0;
	}
	return err ? err : (long)used;
}

/* A head complete within the piece is parsed where it lies; only an incomplete one is copied. */
static long h1_head(struct http1 *p, int dir, const uint8_t *data, size_t len, bool piece_start,
		    uint64_t ts_start, uint64_t ts)
{
	struct h1_dir *d = &p->dir[dir];
	bool request = dir == h1_req_dir(p);
	size_t old = d->buf_len, take, end;
	struct h1_start s;
	int err;

	/* A resync guess still open from earlier pieces yields to a piece that starts with a
	 * whole start line: pieces are SSL calls, and a new call is where messages begin. */
	if (d->tentative && piece_start && old && h1_start_line(data, len, request, &s) == SL_YES) {
		d->buf_len = old = 0;
		d->head_ts = ts_start;
	}
	if (!old) {
		end = h1_head_end(data, len < HTTP1_MAX_HEAD ? len : HTTP1_MAX_HEAD, 0);
		if (end)
			return h1_head_done(p, dir, data, end, end, len, ts);
	}
	take = HTTP1_MAX_HEAD - old < len ? HTTP1_MAX_HEAD - old : len;
	err = h1_buf_append(d, data, take);
	if (err)
		return err;
	end = h1_head_end(d->buf, d->buf_len, old > 3 ? old - 3 : 0);
	if (end)
		return h1_head_done(p, dir, d->buf, end, end - old, len, ts);
	if (h1_start_line(d->buf, d->buf_len, request, &s) == SL_NO)
		return h1_not_http(d, len);
	if (d->buf_len == HTTP1_MAX_HEAD)
		return -EMSGSIZE;
	return (long)take;
}

static void h1_body(struct http1 *p, int dir, const uint8_t *data, size_t n, uint64_t ts)
{
	struct h1_ex *ex = h1_target(p, dir);

	if (ex && n && p->sink.on_body)
		p->sink.on_body(ex->handle, dir != h1_req_dir(p), data, n, ts);
}

static long h1_body_len(struct http1 *p, int dir, const uint8_t *data, size_t len, uint64_t ts)
{
	struct h1_dir *d = &p->dir[dir];
	size_t n = d->remaining < len ? (size_t)d->remaining : len;

	h1_body(p, dir, data, n, ts);
	d->remaining -= n;
	if (!d->remaining)
		h1_message_end(p, dir, ts);
	return (long)n;
}

static int h1_hex(uint8_t c)
{
	if (h1_is_digit(c))
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One byte of "chunk-size [BWS] [; chunk-ext] CRLF": 1 = line complete, 0 = more, <0 error. */
static int h1_chunk_size_byte(struct h1_dir *d, uint8_t c)
{
	int v;

	if (++d->line_len > H1_MAX_CHUNK_LINE)
		return -EPROTO;
	if (d->cr)
		return c == '\n' ? 1 : -EPROTO;
	if (c == '\n' && (d->digits || d->in_ext))
		return 1;
	if (d->in_ext) {
		d->cr = c == '\r';
		return 0;
	}
	v = h1_hex(c);
	if (v >= 0 && !d->size_done) {
		if (++d->digits > 16)
			return -EPROTO;
		d->remaining = d->remaining * 16 + (uint64_t)v;
		return 0;
	}
	if (!d->digits)
		return -EPROTO;
	if (c == ' ' || c == '\t')
		d->size_done = true;
	else if (c == ';')
		d->in_ext = true;
	else if (c == '\r')
		d->cr = true;
	else
		return -EPROTO;
	return 0;
}

static long h1_chunk_size(struct http1 *p, int dir, const uint8_t *data, size_t len)
{
	struct h1_dir *d = &p->dir[dir];

	for (size_t i = 0; i < len; i++) {
		int r = h1_chunk_size_byte(d, data[i]);

		if (r < 0)
			return r;
		if (r == 0)
			continue;
		d->cr = d->in_ext = d->size_done = false;
		d->digits = d->line_len = 0;
		d->trailer_len = d->trailer_line = 0;
		d->state = d->remaining ? H1_CHUNK_DATA : H1_TRAILER;
		return (long)i + 1;
	}
	return (long)len;
}

static long h1_chunk_data(struct http1 *p, int dir, const uint8_t *data, size_t len, uint64_t ts)
{
	struct h1_dir *d = &p->dir[dir];
	size_t n = d->remaining < len ? (size_t)d->remaining : len;

	h1_body(p, dir, data, n, ts);
	d->remaining -= n;
	if (!d->remaining) {
		d->state = H1_CHUNK_END;
		d->cr = false;
	}
	return (long)n;
}

static long h1_chunk_end(struct h1_dir *d, uint8_t c)
{
	if (c == '\r' && !d->cr) {
		d->cr = true;
		return 1;
	}
	if (c != '\n')
		return -EPROTO;
	d->cr = false;
	d->state = H1_CHUNK_SIZE;
	return 1;
}

/* Trailer fields are not reported; they are skipped line by line without buffering. */
static long h1_trailer(struct http1 *p, int dir, const uint8_t *data, size_t len, uint64_t ts)
{
	struct h1_dir *d = &p->dir[dir];

	for (size_t i = 0; i < len; i++) {
		if (++d->trailer_len > HTTP1_MAX_HEAD)
			return -EMSGSIZE;
		if (data[i] == '\n') {
			if (!d->trailer_line) {
				h1_message_end(p, dir, ts);
				return (long)i + 1;
			}
			d->trailer_line = 0;
		} else if (data[i] != '\r') {
			d->trailer_line++;
		}
	}
	return (long)len;
}

static long h1_step(struct http1 *p, int dir, const uint8_t *data, size_t len, bool piece_start,
		    uint64_t ts_start, uint64_t ts_end)
{
	struct h1_dir *d = &p->dir[dir];

	switch (d->state) {
	case H1_IDLE:
		return h1_idle(p, dir, data, len, ts_start);
	case H1_RESYNC:
		return h1_resync(p, dir, data, len, piece_start, ts_start);
	case H1_HEAD:
		return h1_head(p, dir, data, len, piece_start, ts_start, ts_end);
	case H1_BODY_LEN:
		return h1_body_len(p, dir, data, len, ts_end);
	case H1_BODY_CLOSE:
		h1_body(p, dir, data, len, ts_end);
		return (long)len;
	case H1_CHUNK_SIZE:
		return h1_chunk_size(p, dir, data, len);
	case H1_CHUNK_DATA:
		return h1_chunk_data(p, dir, data, len, ts_end);
	case H1_CHUNK_END:
		return h1_chunk_end(d, data[0]);
	case H1_TRAILER:
		return h1_trailer(p, dir, data, len, ts_end);
	}
	return -EPROTO;
}

/*
 * Pieces of one SSL call share its timestamps; only the first piece of a call can start a
 * message during resync (an SSL call is where a writer usually begins a message).
 */
static bool h1_new_call(struct h1_dir *d, uint64_t ts_start, uint64_t ts_end)
{
	bool fresh = !d->fed || d->call_start != ts_start || d->call_end != ts_end;

	d->fed = true;
	d->call_start = ts_start;
	d->call_end = ts_end;
	return fresh;
}

int http1__feed(struct http1 *p, int dir, const uint8_t *data, size_t len, uint64_t ts_start,
		uint64_t ts_end)
{
	size_t off = 0;
	bool call_start;

	if (dir != 0 && dir != 1)
		return -EINVAL;
	if (p->stopped || !len)
		return p->err;
	call_start = h1_new_call(&p->dir[dir], ts_start, ts_end);
	if (ts_end > p->last_ts)
		p->last_ts = ts_end;
	if (dir == h1_req_dir(p) && len)
		p->orphans = 0;
	while (off < len && !p->stopped) {
		long n = h1_step(p, dir, data + off, len - off, call_start && off == 0, ts_start,
				 ts_end);

		if (n < 0) {
			bool overflow = n == -EMSGSIZE || n == -ENOMEM;

			if (overflow)
				p->stats.overflow++;
			else
				p->stats.parse_errors++;
			h1_stop(p, overflow ? HTTP_ABORT_OVERFLOW : HTTP_ABORT_PARSE_ERROR, ts_end,
				-EPROTO);
			break;
		}
		off += (size_t)n;
	}
	return p->stopped ? p->err : 0;
}

/* ---- loss ----------------------------------------------------------------------------------- */

/* Loss inside a body whose end is still known (or that ends at close) is survivable. */
static bool h1_gap_in_body(struct http1 *p, int dir, uint64_t n)
{
	struct h1_dir *d = &p->dir[dir];
	struct h1_ex *ex;

	if (d->state != H1_BODY_CLOSE &&
	    !((d->state == H1_BODY_LEN || d->state == H1_CHUNK_DATA) && d->remaining >= n))
		return false;
	ex = h1_target(p, dir);
	if (ex && p->sink.on_loss)
		p->sink.on_loss(ex->handle, dir != h1_req_dir(p), n);
	if (d->state == H1_BODY_CLOSE)
		return true;
	d->remaining -= n;
	if (!d->remaining) {
		if (d->state == H1_BODY_LEN)
			h1_message_end(p, dir, p->last_ts);
		else
			d->state = H1_CHUNK_END;
	}
	return true;
}

/* Requests (at least `min` of them) were lost: count them on the tail marker. */
static bool h1_mark_lost(struct http1 *p, uint32_t min)
{
	struct h1_ex *m = h1_tail(p);

	if (!m || m->kind != EX_MARKER)
		m = h1_push(p, EX_MARKER);
	if (!m)
		return false;
	m->min_lost += min;
	m->absorbed += p->orphans; /* responses to the lost requests may have come already */
	p->orphans = 0;
	return true;
}

static bool h1_gap_request(struct http1 *p, struct h1_dir *d)
{
	struct h1_ex *ex;

	switch (d->state) {
	case H1_IDLE:
		return h1_mark_lost(p, 1); /* the lost bytes start a request */
	case H1_HEAD:
		/* even a guess from resync: counting too many lost requests ends in abandoning
		 * the parse, too few could pair a response with the wrong request */
		return h1_mark_lost(p, 1);
	case H1_RESYNC:
		return h1_mark_lost(p, 0);
	default:
		ex = h1_find(p, d->ex_id);
		if (ex && !ex->req_ended)
			h1_abort(p, ex, HTTP_ABORT_GAP, p->last_ts);
		return h1_mark_lost(p, 0); /* more requests may follow in the lost bytes */
	}
}

/*
 * The response in progress, or the next one to start, lost its framing: that exchange ends.
 * Requests queued behind it may have lost their response starts too (a client that does not
 * pipeline writes them after reading the lost responses): they become uncertain, settled by
 * h1_pair. One queued before the lost response began is pipelining, and so are several when
 * that start is unknown: pairing cannot be known then.
 */
static bool h1_gap_response(struct http1 *p, struct h1_dir *d)
{
	struct h1_ex *ex = h1_front(p);
	uint64_t started = 0;
	unsigned others = 0;

	if (d->state != H1_RESYNC && ex) {
		if (ex->kind == EX_MARKER) {
			if (d->state == H1_IDLE || d->state == H1_HEAD)
				ex->absorbed++;
		} else {
			started = ex->resp_tick;
			h1_abort(p, ex, HTTP_ABORT_GAP, p->last_ts);
			h1_pop(p);
		}
	}
	for (unsigned k = 0; k < p->q_len; k++) {
		ex = h1_at(p, k);
		if (ex->kind == EX_MARKER) {
			if (ex->absorbed < ex->min_lost)
				ex->absorbed = ex->min_lost;
			continue;
		}
		if (ex->tick < started || (!started && others))
			return false;
		ex->uncertain = true;
		others++;
	}
	p->resp_end_tick = ++p->tick;
	return true;
}

void http1__gap(struct http1 *p, int dir, uint64_t len)
{
	struct h1_dir *d;
	bool ok;

	if (p->stopped || (dir != 0 && dir != 1))
		return;
	d = &p->dir[dir];
	if (!len) {
		if (d->state == H1_IDLE)
			d->state = H1_RESYNC;
		return;
	}
	p->stats.gaps++;
	if (h1_gap_in_body(p, dir, len))
		return;
	/* How many pipelined messages the lost bytes held cannot be known. */
	ok = !p->pipelined && (dir == h1_req_dir(p) ? h1_gap_request(p, d) : h1_gap_response(p, d));
	d->state = H1_RESYNC;
	d->buf_len = 0;
	d->ex_id = 0;
	if (!ok) {
		if (p->q_len == HTTP1_MAX_PIPELINE) {
			p->stats.overflow++;
			h1_stop(p, HTTP_ABORT_OVERFLOW, p->last_ts, -EPROTO);
		} else {
			h1_stop(p, HTTP_ABORT_GAP, p->last_ts, 0);
		}
	}
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

void http1__close(struct http1 *p, uint64_t ts_ns)
{
	int rdir = !h1_req_dir(p);

	if (!p->stopped && p->dir[rdir].state == H1_BODY_CLOSE)
		h1_message_end(p, rdir, ts_ns);
	if (!p->stopped)
		h1_stop(p, HTTP_ABORT_CONN_CLOSED, ts_ns, 0);
}

/*
 * A request without a response, or a response that has sent nothing for timeout_ns (one that
 * never ends), ends with HTTP_ABORT_TIMEOUT. The aborted exchange stays in the queue as dead:
 * if its response goes on after all, framing swallows it.
 */
void http1__expire(struct http1 *p, uint64_t now_ns, uint64_t timeout_ns)
{
	const struct h1_dir *rd = &p->dir[!h1_req_dir(p)];

	for (unsigned k = 0; k < p->q_len; k++) {
		struct h1_ex *ex = h1_at(p, k);
		uint64_t since = ex->ts;

		if (ex->resp_started)
			since = rd->ex_id == ex->id && rd->call_end > ex->ts ? rd->call_end : ex->ts;
		if (ex->kind == EX_LIVE && now_ns >= since && now_ns - since >= timeout_ns)
			h1_abort(p, ex, HTTP_ABORT_TIMEOUT, now_ns);
	}
}

bool http1__busy(const struct http1 *p)
{
	const struct h1_dir *rq = &p->dir[h1_req_dir(p)];

	if (p->stopped)
		return false;
	if (rq->state == H1_HEAD && !rq->tentative)
		return true;
	for (unsigned k = 0; k < p->q_len; k++)
		if (h1_at(p, k)->kind == EX_LIVE)
			return true;
	return false;
}

struct http1 *http1__new(enum http1_role role, const struct http_sink *sink)
{
	struct http1 *p;

	if (!sink)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->role = role == HTTP1_ROLE_SERVER ? HTTP1_ROLE_SERVER : HTTP1_ROLE_CLIENT;
	p->sink = *sink;
	p->q = p->q_inline;
	p->q_cap = H1_Q_INLINE;
	return p;
}

const struct http1_stats *http1__stats(const struct http1 *p)
{
	return &p->stats;
}

void http1__free(struct http1 *p)
{
	if (!p)
		return;
	free(p->dir[0].buf);
	free(p->dir[1].buf);
	if (p->q != p->q_inline)
		free(p->q);
	free(p);
}
