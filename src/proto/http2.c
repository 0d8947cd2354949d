// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/2 framing over a lossy, reassembled capture of both directions of one connection.
 *
 * Each direction runs its own resumable state machine: connection preface (the request
 * direction only), 9-byte frame header, then the payload, read as it arrives in three parts:
 * a prefix (pad length, priority, promised stream), the content, the padding. DATA content goes
 * straight to the sink; header block fragments go straight to the direction's HPACK inflater,
 * whose decoded fields are copied into one bounded store per direction; control frames keep
 * only the few bytes they are read for. Nothing else is buffered, whatever the frame size.
 *
 * Streams the sink cares about (on_request returned a handle) are tracked until their response
 * ends or they are aborted; every other stream is forgotten at once, but its header blocks are
 * still decoded, since the dynamic table depends on all of them.
 *
 * See http2.h for what loss does. Choices worth knowing:
 *  - A response that starts before the request's END_STREAM ends the request (on_message_end)
 *    first: the sink's order is request, then response.
 *  - 1xx header blocks are not reported; a second final-status block is taken as trailers.
 *  - GOAWAY from the server aborts the tracked streams above its last stream id (the server
 *    never processed them); the others may still complete.
 *  - A frame error in a direction that already lost bytes sends it back to resync rather than
 *    stopping the connection: after loss, misreading a boundary is expected, not a proof that
 *    the connection is not HTTP/2.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http2.h"

#define H2_HDR 9
#define H2_DEFAULT_MAX_FRAME 16384
#define H2_DEFAULT_TABLE 4096
#define H2_KEEP_STORE 4096 /* a decoded-field store larger than this is freed after use */
#define H2_CTRL 8	   /* control frames: bytes kept (GOAWAY's ids, a setting) */

enum h2_type {
	H2_DATA = 0,
	H2_HEADERS = 1,
	H2_PRIORITY = 2,
	H2_RST_STREAM = 3,
	H2_SETTINGS = 4,
	H2_PUSH_PROMISE = 5,
	H2_PING = 6,
	H2_GOAWAY = 7,
	H2_WINDOW_UPDATE = 8,
	H2_CONTINUATION = 9,
};

enum {
	H2_F_END_STREAM = 0x1, /* also ACK on SETTINGS and PING */
	H2_F_END_HEADERS = 0x4,
	H2_F_PADDED = 0x8,
	H2_F_PRIORITY = 0x20,
};

enum h2_state {
	H2_PREFACE, /* the client's 24-byte connection preface */
	H2_HEAD,    /* a frame header */
	H2_PAYLOAD,
	H2_RESYNC, /* after loss: discard until an SSL call starts with plausible frames */
};

struct h2_ref {
	uint32_t off, len;
};

struct h2_field {
	struct h2_ref name, value;
};

struct h2_dir {
	enum h2_state state;
	bool exact; /* has seen this direction whole since the connection began */
	uint32_t preface_off;
	uint8_t hdr[H2_HDR];
	uint8_t hdr_len;
	uint64_t frame_ts;  /* ts_start of the piece in which the frame header began */
	uint32_t max_frame; /* SETTINGS_MAX_FRAME_SIZE advertised by the other side */

	/* the frame being read */
	uint32_t len, sid, off;
	uint8_t type, flags;
	uint32_t prefix;      /* pad length + priority + promised stream id */
	uint32_t content_end; /* payload offset where padding begins */
	uint8_t prefix_buf[10];
	uint8_t ctrl[H2_CTRL];
	uint32_t ctrl_len;
	bool frame_lost; /* a gap inside this frame: its content is incomplete */

	/* the header block being decoded */
	bool in_block, block_failed, block_push, block_keep;
	uint32_t block_sid;
	uint8_t block_flags;
	uint64_t block_ts;
	size_t block_bytes;
	nghttp2_hd_inflater *inf;
	bool fresh;	   /* the next block starts a new, empty inflater */
	size_t table_size; /* SETTINGS_HEADER_TABLE_SIZE the decoding side advertised */
	bool table_size_changed;

	/* decoded fields of the block */
	char *store;
	size_t store_len, store_cap;
	struct h2_field fields[HTTP_MAX_HEADERS];
	unsigned n_fields;
	struct h2_ref method, path, authority, status;
	bool has_method, has_path, has_authority, has_status, truncated;

	uint64_t call_start, call_end;
	bool fed;
};

struct h2_stream {
	uint32_t id;
	void *handle;
	uint64_t ts; /* the request's start */
	bool req_ended, resp_started;
	bool lossy[2]; /* bytes of this direction were lost while the stream was open */
};

struct http2 {
	enum http1_role role;
	struct http_sink sink;
	struct http2_stats stats;
	int err;
	bool stopped;
	struct h2_dir dir[2];
	struct h2_stream *streams;
	unsigned n_streams, cap_streams;
	uint32_t max_req_sid; /* highest stream id a request header block was seen on */
	uint64_t last_ts;     /* latest ts_end fed */
	struct http_head head;
};

static struct http2_stats h2_totals;

#define H2_COUNT(p, f)                                                                             \
	do {                                                                                       \
		(p)->stats.f++;                                                                    \
		h2_totals.f++;                                                                     \
	} while (0)

static int h2_req_dir(const struct http2 *p)
{
	return p->role == HTTP1_ROLE_CLIENT ? 0 : 1;
}

static uint32_t h2_u32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* ---- streams ------------------------------------------------------------------------------ */

static struct h2_stream *h2_find(struct http2 *p, uint32_t sid)
{
	for (unsigned i = 0; i < p->n_streams; i++)
		if (p->streams[i].id == sid)
			return &p->streams[i];
	return NULL;
}

static struct h2_stream *h2_add(struct http2 *p, uint32_t sid)
{
	if (p->n_streams == p->cap_streams) {
		unsigned cap = p->cap_streams ? p->cap_streams * 2 : 8;
		struct h2_stream *s;

		if (cap > HTTP2_MAX_STREAMS)
			cap = HTTP2_MAX_STREAMS;
		if (cap == p->cap_streams)
			return NULL;
		s = realloc(p->streams, cap * sizeof(*s));
		if (!s)
			return NULL;
		p->streams = s;
		p->cap_streams = cap;
	}
	p->streams[p->n_streams] = (struct h2_stream){.id = sid};
	return &p->streams[p->n_streams++];
}

static void h2_remove(struct http2 *p, struct h2_stream *s)
{
	*s = p->streams[--p->n_streams];
}

static void h2_request_end(struct http2 *p, struct h2_stream *s, uint64_t ts)
{
	if (s->req_ended)
		return;
	s->req_ended = true;
	if (p->sink.on_message_end)
		p->sink.on_message_end(s->handle, false, ts);
}

static void h2_abort(struct http2 *p, struct h2_stream *s, enum http_abort_reason why, uint64_t ts)
{
	/* A stream that simply never finished after its bytes were lost ended because of the loss.
	 */
	if (why == HTTP_ABORT_CONN_CLOSED && (s->lossy[0] || s->lossy[1]))
		why = HTTP_ABORT_GAP;
	H2_COUNT(p, aborted);
	if (p->sink.on_abort)
		p->sink.on_abort(s->handle, why, ts);
	h2_remove(p, s);
}

static void h2_abort_all(struct http2 *p, enum http_abort_reason why, uint64_t ts)
{
	while (p->n_streams)
		h2_abort(p, &p->streams[p->n_streams - 1], why, ts);
}

static void h2_stop(struct http2 *p, uint64_t ts)
{
	H2_COUNT(p, parse_errors);
	p->stopped = true;
	p->err = -EPROTO;
	h2_abort_all(p, HTTP_ABORT_PARSE_ERROR, ts);
}

/* ---- decoded fields ----------------------------------------------------------------------- */

static bool h2_store(struct h2_dir *d, const uint8_t *s, size_t n, struct h2_ref *ref)
{
	if (n > HTTP2_MAX_HEADER_LIST - d->store_len)
		return false;
	if (d->store_len + n > d->store_cap) {
		size_t cap = d->store_cap ? d->store_cap : 1024;
		char *b;

		while (cap < d->store_len + n)
			cap *= 2;
		if (cap > HTTP2_MAX_HEADER_LIST)
			cap = HTTP2_MAX_HEADER_LIST;
		b = realloc(d->store, cap);
		if (!b)
			return false;
		d->store = b;
		d->store_cap = cap;
	}
	if (n)
		memcpy(d->store + d->store_len, s, n);
	ref->off = (uint32_t)d->store_len;
	ref->len = (uint32_t)n;
	d->store_len += n;
	return true;
}

static bool h2_pseudo(struct h2_dir *d, const nghttp2_nv *nv, struct h2_ref **ref, bool **has)
{
	static const struct {
		const char *name;
		size_t ref_off, has_off;
	} pseudo[] = {
	    {":method", offsetof(struct h2_dir, method), offsetof(struct h2_dir, has_method)},
	    {":path", offsetof(struct h2_dir, path), offsetof(struct h2_dir, has_path)},
	    {":authority", offsetof(struct h2_dir, authority),
	     offsetof(struct h2_dir, has_authority)},
	    {":status", offsetof(struct h2_dir, status), offsetof(struct h2_dir, has_status)},
	};

	for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]); i++) {
		if (nv->namelen == strlen(pseudo[i].name) &&
		    !memcmp(nv->name, pseudo[i].name, nv->namelen)) {
			*ref = (struct h2_ref *)((char *)d + pseudo[i].ref_off);
			*has = (bool *)((char *)d + pseudo[i].has_off);
			return true;
		}
	}
	return false;
}

static void h2_truncated(struct http2 *p, struct h2_dir *d)
{
	if (!d->truncated)
		H2_COUNT(p, overflow);
	d->truncated = true;
}

static void h2_field(struct http2 *p, struct h2_dir *d, const nghttp2_nv *nv)
{
	struct h2_field *f;
	struct h2_ref *ref;
	bool *has;

	if (!d->block_keep)
		return;
	if (nv->namelen && nv->name[0] == ':') {
		if (h2_pseudo(d, nv, &ref, &has) && !*has) {
			if (h2_store(d, nv->value, nv->valuelen, ref))
				*has = true;
			else
				h2_truncated(p, d);
		}
		return; /* :scheme and :protocol say nothing the next stage reads */
	}
	if (d->n_fields == HTTP_MAX_HEADERS) {
		h2_truncated(p, d);
		return;
	}
	f = &d->fields[d->n_fields];
	if (!h2_store(d, nv->name, nv->namelen, &f->name) ||
	    !h2_store(d, nv->value, nv->valuelen, &f->value)) {
		h2_truncated(p, d);
		return;
	}
	d->n_fields++;
}

/* Where a stored name or value is; an empty store (only empty strings so far) has no buffer. */
static const char *h2_at(const struct h2_dir *d, struct h2_ref r)
{
	return d->store ? d->store + r.off : "";
}

static void h2_head_add(struct http_head *h, const char *name, size_t nlen, const char *v,
			size_t vlen)
{
	if (h->num_headers == HTTP_MAX_HEADERS) {
		h->headers_truncated = true;
		return;
	}
	h->headers[h->num_headers++] = (struct http_header){name, nlen, v, vlen};
}

/* The decoded block as the head HTTP/1.x would have given: :authority becomes "host". */
static struct http_head *h2_build_head(struct http2 *p, struct h2_dir *d, bool request)
{
	struct http_head *h = &p->head;

	memset(h, 0, offsetof(struct http_head, headers));
	h->num_headers = 0;
	h->is_request = request;
	h->headers_truncated = d->truncated;
	if (request) {
		h->method = h2_at(d, d->method);
		h->method_len = d->method.len;
		h->path = h2_at(d, d->path);
		h->path_len = d->path.len;
		if (d->has_authority)
			h2_head_add(h, "host", 4, h2_at(d, d->authority), d->authority.len);
	}
	for (unsigned i = 0; i < d->n_fields; i++)
		h2_head_add(h, h2_at(d, d->fields[i].name), d->fields[i].name.len,
			    h2_at(d, d->fields[i].value), d->fields[i].value.len);
	return h;
}

/* ":status" as a number; -1 unless exactly three digits. */
static int h2_status(const struct h2_dir *d)
{
	const char *v = h2_at(d, d->status);

	if (!d->has_status || d->status.len != 3)
		return -1;
	for (int i = 0; i < 3; i++)
		if (v[i] < '0' || v[i] > '9')
			return -1;
	return (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
}

/* ---- HPACK -------------------------------------------------------------------------------- */

static void h2_drop_inflater(struct h2_dir *d)
{
	if (d->inf)
		nghttp2_hd_inflate_del(d->inf);
	d->inf = NULL;
}

static void h2_block_begin(struct http2 *p, int dir, bool keep)
{
	struct h2_dir *d = &p->dir[dir];

	d->in_block = true;
	d->block_failed = false;
	d->block_keep = keep;
	d->block_bytes = 0;
	d->store_len = 0;
	d->n_fields = 0;
	d->has_method = d->has_path = d->has_authority = d->has_status = false;
	d->truncated = false;
	if (d->fresh)
		h2_drop_inflater(d);
	d->fresh = false;
	if (!d->inf) {
		if (nghttp2_hd_inflate_new(&d->inf) != 0) {
			d->inf = NULL;
			d->block_failed = true;
			return;
		}
		d->table_size_changed = d->table_size != H2_DEFAULT_TABLE;
	}
	if (d->table_size_changed &&
	    nghttp2_hd_inflate_change_table_size(d->inf, d->table_size) == 0)
		d->table_size_changed = false;
}

/* A block that cannot be decoded. On a decoder that has seen everything it is a protocol
 * error; after loss it is expected (an index the restarted table does not have). */
static int h2_block_fail(struct http2 *p, struct h2_dir *d)
{
	if (d->exact)
		return -EPROTO;
	H2_COUNT(p, hpack_failures);
	d->block_failed = true;
	d->fresh = true;
	return 0;
}

static int h2_inflate(struct http2 *p, struct h2_dir *d, const uint8_t *in, size_t n, bool final)
{
	static const uint8_t empty[1];

	if (d->block_failed)
		return 0;
	if (!in)
		in = empty;
	for (;;) {
		nghttp2_nv nv;
		int flags = 0;
		ssize_t rv = nghttp2_hd_inflate_hd2(d->inf, &nv, &flags, in, n, final);

		if (rv < 0)
			return h2_block_fail(p, d);
		in += rv;
		n -= (size_t)rv;
		if (flags & NGHTTP2_HD_INFLATE_EMIT)
			h2_field(p, d, &nv);
		if (flags & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(d->inf);
			return 0;
		}
		if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && n == 0)
			return final ? h2_block_fail(p, d) : 0;
	}
}

static int h2_fragment(struct http2 *p, struct h2_dir *d, const uint8_t *in, size_t n)
{
	if (n > HTTP2_MAX_HEADER_BLOCK - d->block_bytes)
		return -EPROTO;
	d->block_bytes += n;
	return h2_inflate(p, d, in, n, false);
}

/* ---- exchanges ---------------------------------------------------------------------------- */

static void h2_response_start(struct http2 *p, struct h2_stream *s, const struct http_head *h,
			      uint64_t ts)
{
	h2_request_end(p, s, ts);
	s->resp_started = true;
	H2_COUNT(p, responses);
	if (p->sink.on_response)
		p->sink.on_response(s->handle, h, ts);
}

/* The response head was lost or could not be decoded: the body may still be read. */
static void h2_response_unknown(struct http2 *p, struct h2_stream *s, uint64_t ts)
{
	struct http_head *h = &p->head;

	memset(h, 0, offsetof(struct http_head, headers));
	h->num_headers = 0;
	if (p->sink.on_loss)
		p->sink.on_loss(s->handle, true, 0);
	h2_response_start(p, s, h, ts);
}

static void h2_response_end(struct http2 *p, struct h2_stream *s, uint64_t ts)
{
	if (!s->resp_started)
		h2_response_unknown(p, s, ts);
	if (p->sink.on_message_end)
		p->sink.on_message_end(s->handle, true, ts);
	h2_remove(p, s);
}

static void h2_request_block(struct http2 *p, struct h2_dir *d, uint64_t ts)
{
	struct h2_stream *s = h2_find(p, d->block_sid);
	void *handle;

	if (s) { /* trailers */
		if (d->block_flags & H2_F_END_STREAM)
			h2_request_end(p, s, ts);
		return;
	}
	/* Stream ids only grow: a lower one is the trailers of a stream not tracked. */
	if (d->block_sid <= p->max_req_sid || !(d->block_sid & 1))
		return;
	p->max_req_sid = d->block_sid;
	if (d->block_failed) {
		H2_COUNT(p, lost_requests);
		return;
	}
	if (!d->has_method || !d->has_path)
		return;
	H2_COUNT(p, requests);
	if (p->n_streams == HTTP2_MAX_STREAMS) {
		H2_COUNT(p, refused);
		return;
	}
	if (!p->sink.on_request)
		return;
	handle = p->sink.on_request(p->sink.ctx, h2_build_head(p, d, true), d->block_ts);
	if (!handle)
		return;
	s = h2_add(p, d->block_sid);
	if (!s) {
		/* Out of memory: the sink's exchange must still end. */
		H2_COUNT(p, refused);
		if (p->sink.on_abort)
			p->sink.on_abort(handle, HTTP_ABORT_OVERFLOW, ts);
		return;
	}
	s->handle = handle;
	s->ts = d->block_ts;
	if (d->block_flags & H2_F_END_STREAM)
		h2_request_end(p, s, ts);
}

static void h2_response_block(struct http2 *p, struct h2_dir *d, uint64_t ts)
{
	struct h2_stream *s = h2_find(p, d->block_sid);
	int status;

	if (!s)
		return;
	if (!s->resp_started) {
		status = d->block_failed ? -1 : h2_status(d);
		if (status >= 100 && status < 200 && !(d->block_flags & H2_F_END_STREAM))
			return; /* interim */
		if (status < 200) {
			h2_response_unknown(p, s, ts);
		} else {
			struct http_head *h = h2_build_head(p, d, false);

			h->status = status;
			h2_response_start(p, s, h, ts);
		}
	}
	if (d->block_flags & H2_F_END_STREAM)
		h2_response_end(p, s, ts);
}

static int h2_block_end(struct http2 *p, int dir, uint64_t ts)
{
	struct h2_dir *d = &p->dir[dir];
	int err = h2_inflate(p, d, NULL, 0, true);

	if (err)
		return err;
	d->in_block = false;
	if (d->block_push)
		return 0;
	if (dir == h2_req_dir(p))
		h2_request_block(p, d, ts);
	else
		h2_response_block(p, d, ts);
	if (d->store_cap > H2_KEEP_STORE) {
		free(d->store);
		d->store = NULL;
		d->store_cap = 0;
	}
	return 0;
}

static void h2_data(struct http2 *p, int dir, const uint8_t *data, size_t n, uint64_t ts)
{
	struct h2_stream *s = h2_find(p, p->dir[dir].sid);
	bool resp = dir != h2_req_dir(p);

	if (!s || !n || (!resp && s->req_ended))
		return;
	if (resp && !s->resp_started) {
		if (!s->lossy[dir])
			return; /* DATA before HEADERS: not valid, not ours to report */
		h2_response_unknown(p, s, ts);
	}
	if (p->sink.on_body)
		p->sink.on_body(s->handle, resp, data, n, ts);
}

static void h2_data_end(struct http2 *p, int dir, uint64_t ts)
{
	struct h2_stream *s = h2_find(p, p->dir[dir].sid);

	if (!s)
		return;
	if (dir == h2_req_dir(p))
		h2_request_end(p, s, ts);
	else if (s->resp_started || s->lossy[dir])
		h2_response_end(p, s, ts);
}

/* A stream ended by RST_STREAM or GOAWAY; the frame's error code when it was read whole. */
static void h2_stream_error(struct http2 *p, struct h2_stream *s, int dir, const uint8_t *code,
			    enum http_abort_reason why, uint64_t ts)
{
	if (code && p->sink.on_stream_error)
		p->sink.on_stream_error(s->handle, dir != h2_req_dir(p), h2_u32(code));
	H2_COUNT(p, aborted);
	if (p->sink.on_abort)
		p->sink.on_abort(s->handle, why, ts);
	h2_remove(p, s);
}

static void h2_rst_stream(struct http2 *p, int dir, uint64_t ts)
{
	struct h2_dir *d = &p->dir[dir];
	struct h2_stream *s = h2_find(p, d->sid);

	if (!s)
		return;
	H2_COUNT(p, resets);
	h2_stream_error(p, s, dir, !d->frame_lost && d->ctrl_len >= 4 ? d->ctrl : NULL,
			HTTP_ABORT_RST_STREAM, ts);
}

static void h2_goaway(struct http2 *p, int dir, uint64_t ts)
{
	struct h2_dir *d = &p->dir[dir];
	uint32_t last;

	H2_COUNT(p, goaways);
	if (d->frame_lost || d->ctrl_len < 8 || dir == h2_req_dir(p))
		return; /* a client's GOAWAY concerns pushed streams only */
	last = h2_u32(d->ctrl) & 0x7fffffffu;
	for (unsigned i = p->n_streams; i-- > 0;)
		if (p->streams[i].id > last)
			h2_stream_error(p, &p->streams[i], dir, d->ctrl + 4, HTTP_ABORT_GOAWAY, ts);
}

static void h2_setting(struct http2 *p, int dir, const uint8_t *b)
{
	struct h2_dir *other = &p->dir[!dir];
	uint16_t id = (uint16_t)(b[0] << 8 | b[1]);
	uint32_t v = h2_u32(b + 2);

	if (id == 1) { /* HEADER_TABLE_SIZE: how large the other side's encoder table may grow */
		other->table_size = v < HTTP2_MAX_TABLE_SIZE ? v : HTTP2_MAX_TABLE_SIZE;
		other->table_size_changed = true;
	} else if (id == 5 && v >= H2_DEFAULT_MAX_FRAME && v <= HTTP2_MAX_FRAME_ABS) {
		other->max_frame = v; /* MAX_FRAME_SIZE */
	}
}

/* ---- frames ------------------------------------------------------------------------------- */

static bool h2_is_block_frame(uint8_t type)
{
	return type == H2_HEADERS || type == H2_CONTINUATION || type == H2_PUSH_PROMISE;
}

/* Fixed rules of a frame header. Strict (resync, detection) also rejects undefined flags and
 * unknown types, which a peer may send but which make a chance match of random bytes likelier. */
static bool h2_header_ok(uint8_t type, uint8_t flags, uint32_t len, uint32_t sid, bool strict)
{
	static const uint8_t defined_flags[] = {0x09, 0x2d, 0, 0, 0x01, 0x0c, 0x01, 0, 0, 0x04};
	bool conn_level = type == H2_SETTINGS || type == H2_PING || type == H2_GOAWAY;

	if (type > H2_CONTINUATION)
		return !strict;
	if (strict && (flags & ~defined_flags[type]))
		return false;
	if (type != H2_WINDOW_UPDATE && conn_level != (sid == 0))
		return false;
	switch (type) {
	case H2_PRIORITY:
		return len == 5;
	case H2_RST_STREAM:
	case H2_WINDOW_UPDATE:
		return len == 4;
	case H2_SETTINGS:
		return (flags & H2_F_END_STREAM) ? len == 0 : len % 6 == 0;
	case H2_PING:
		return len == 8;
	case H2_GOAWAY:
	case H2_PUSH_PROMISE:
		return len >= 4 + (type == H2_GOAWAY) * 4;
	}
	return true;
}

static void h2_parse_header(const uint8_t *b, uint32_t *len, uint8_t *type, uint8_t *flags,
			    uint32_t *sid)
{
	*len = (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];
	*type = b[3];
	*flags = b[4];
	*sid = h2_u32(b + 5);
}

/* Does the HEADERS frame at `f` (its header complete in data[0..len)) carry a request? A
 * response block starts with :status (HPACK static index 8..14, or a literal named by index 8);
 * a request's first field is :method, :authority or another pseudo-header. A dynamic table
 * size update may come first. Returns false when the bytes to tell are not there. */
static bool h2_starts_request(const uint8_t *f, size_t len)
{
	size_t i = H2_HDR;

	if (f[4] & H2_F_PADDED)
		i++;
	if (f[4] & H2_F_PRIORITY)
		i += 5;
	while (i < len && (f[i] & 0xe0) == 0x20) { /* size update: 001xxxxx, varint if 0x3f */
		if ((f[i++] & 0x1f) == 0x1f)
			while (i < len && (f[i++] & 0x80))
				;
	}
	if (i >= len)
		return false;
	if (f[i] & 0x80)
		return (f[i] & 0x7f) < 8 || (f[i] & 0x7f) > 14;
	return (f[i] & 0x3f) != 8 && (f[i] & 0x0f) != 8; /* literal, name index 8 = :status */
}

/* Every frame header inside `data` passes the strict rules and the frames chain (a header block
 * without END_HEADERS is followed by its CONTINUATION); at least one header is complete. With
 * `need_request`, one of the frames must be the HEADERS of a request. */
static bool h2_plausible(const uint8_t *data, size_t len, uint32_t max_frame, bool need_request)
{
	uint32_t open_sid = 0; /* stream whose header block awaits a CONTINUATION */
	size_t off = 0;
	int frames = 0;
	bool request = false;

	while (len - off >= H2_HDR) {
		uint32_t flen, sid;
		uint8_t type, flags;

		h2_parse_header(data + off, &flen, &type, &flags, &sid);
		if (flen > max_frame || (sid & 0x80000000u) ||
		    !h2_header_ok(type, flags, flen, sid, true))
			return false;
		if ((type == H2_CONTINUATION) != (open_sid != 0) || (open_sid && sid != open_sid))
			return false;
		open_sid = h2_is_block_frame(type) && !(flags & H2_F_END_HEADERS) ? sid : 0;
		if (type == H2_HEADERS && !request)
			request = h2_starts_request(data + off, len - off);
		frames++;
		off += H2_HDR + (size_t)flen;
		if (off > len)
			break;
	}
	return frames > 0 && (request || !need_request);
}

static int h2_frame_begin(struct http2 *p, int dir)
{
	struct h2_dir *d = &p->dir[dir];
	bool padded;

	h2_parse_header(d->hdr, &d->len, &d->type, &d->flags, &d->sid);
	d->sid &= 0x7fffffffu; /* the reserved bit is ignored on receipt */
	if (d->len > d->max_frame || !h2_header_ok(d->type, d->flags, d->len, d->sid, false))
		return -EPROTO;
	if (d->in_block != (d->type == H2_CONTINUATION) || (d->in_block && d->sid != d->block_sid))
		return -EPROTO;
	if (d->type == H2_PUSH_PROMISE && dir == h2_req_dir(p))
		return -EPROTO;
	padded = (d->type == H2_DATA || d->type == H2_HEADERS || d->type == H2_PUSH_PROMISE) &&
		 (d->flags & H2_F_PADDED);
	d->prefix = padded + (d->type == H2_HEADERS && (d->flags & H2_F_PRIORITY)) * 5 +
		    (d->type == H2_PUSH_PROMISE) * 4;
	if (d->prefix > d->len)
		return -EPROTO;
	d->content_end = d->len;
	d->off = 0;
	d->ctrl_len = 0;
	d->frame_lost = false;
	H2_COUNT(p, frames);
	if (d->type == H2_HEADERS || d->type == H2_PUSH_PROMISE) {
		bool request = d->type == H2_HEADERS && dir == h2_req_dir(p);

		d->block_sid = d->sid;
		d->block_flags = d->flags;
		d->block_ts = d->frame_ts;
		d->block_push = d->type == H2_PUSH_PROMISE;
		h2_block_begin(p, dir, request || (!d->block_push && h2_find(p, d->sid)));
	}
	d->state = H2_PAYLOAD;
	return 0;
}

static int h2_prefix_done(struct h2_dir *d)
{
	uint32_t pad = (d->flags & H2_F_PADDED) ? d->prefix_buf[0] : 0;

	if ((uint64_t)d->prefix + pad > d->len)
		return -EPROTO;
	d->content_end = d->len - pad;
	return 0;
}

static int h2_content(struct http2 *p, int dir, const uint8_t *b, size_t n, uint64_t ts)
{
	struct h2_dir *d = &p->dir[dir];

	switch (d->type) {
	case H2_DATA:
		h2_data(p, dir, b, n, ts);
		return 0;
	case H2_HEADERS:
	case H2_CONTINUATION:
	case H2_PUSH_PROMISE:
		return h2_fragment(p, d, b, n);
	}
	if (d->frame_lost)
		return 0; /* the rest of a control frame after a hole would be misread */
	for (size_t i = 0; i < n; i++) {
		if (d->ctrl_len < H2_CTRL)
			d->ctrl[d->ctrl_len++] = b[i];
		/* SETTINGS are applied one 6-byte entry at a time, so there may be any number. */
		if (d->type == H2_SETTINGS && d->ctrl_len == 6) {
			h2_setting(p, dir, d->ctrl);
			d->ctrl_len = 0;
		}
	}
	return 0;
}

static int h2_frame_end(struct http2 *p, int dir, uint64_t ts)
{
	struct h2_dir *d = &p->dir[dir];

	d->state = H2_HEAD;
	d->hdr_len = 0;
	switch (d->type) {
	case H2_DATA:
		if (d->flags & H2_F_END_STREAM)
			h2_data_end(p, dir, ts);
		break;
	case H2_HEADERS:
	case H2_CONTINUATION:
	case H2_PUSH_PROMISE:
		if (d->flags & H2_F_END_HEADERS)
			return h2_block_end(p, dir, ts);
		break;
	case H2_RST_STREAM:
		h2_rst_stream(p, dir, ts);
		break;
	case H2_GOAWAY:
		h2_goaway(p, dir, ts);
		break;
	}
	return 0;
}

/* Payload bytes of the current frame; returns bytes consumed or a negative errno. */
static long h2_payload(struct http2 *p, int dir, const uint8_t *data, size_t n, uint64_t ts)
{
	struct h2_dir *d = &p->dir[dir];
	size_t used = 0;
	int err;

	while (used < n && d->off < d->len) {
		size_t avail = n - used, take;

		if (d->off < d->prefix) {
			take = d->prefix - d->off < avail ? d->prefix - d->off : avail;
			memcpy(d->prefix_buf + d->off, data + used, take);
			if ((d->off += (uint32_t)take) == d->prefix && (err = h2_prefix_done(d)))
				return err;
		} else if (d->off < d->content_end) {
			take = d->content_end - d->off < avail ? d->content_end - d->off : avail;
			if ((err = h2_content(p, dir, data + used, take, ts)))
				return err;
			d->off += (uint32_t)take;
		} else { /* padding */
			take = d->len - d->off < avail ? d->len - d->off : avail;
			d->off += (uint32_t)take;
		}
		used += take;
	}
	if (d->off == d->len && (err = h2_frame_end(p, dir, ts)))
		return err;
	return (long)used;
}

static long h2_head(struct http2 *p, int dir, const uint8_t *data, size_t n, uint64_t ts_start,
		    uint64_t ts_end)
{
	struct h2_dir *d = &p->dir[dir];
	size_t take = H2_HDR - d->hdr_len < n ? H2_HDR - d->hdr_len : n;
	int err;

	if (d->hdr_len == 0)
		d->frame_ts = ts_start;
	memcpy(d->hdr + d->hdr_len, data, take);
	d->hdr_len += (uint8_t)take;
	if (d->hdr_len < H2_HDR)
		return (long)take;
	if ((err = h2_frame_begin(p, dir)))
		return err;
	/* An empty frame (often the DATA that carries END_STREAM) ends with its header: no later
	 * byte may ever come to finish it. */
	if (d->len == 0 && (err = h2_frame_end(p, dir, ts_end)))
		return err;
	return (long)take;
}

static long h2_preface(struct http2 *p, int dir, const uint8_t *data, size_t n)
{
	struct h2_dir *d = &p->dir[dir];
	size_t take =
	    HTTP2_PREFACE_LEN - d->preface_off < n ? HTTP2_PREFACE_LEN - d->preface_off : n;

	if (memcmp(data, &HTTP2_PREFACE[d->preface_off], take))
		return -EPROTO;
	d->preface_off += (uint32_t)take;
	if (d->preface_off == HTTP2_PREFACE_LEN)
		d->state = H2_HEAD;
	return (long)take;
}

static long h2_resync(struct http2 *p, int dir, const uint8_t *data, size_t n, bool call_start)
{
	struct h2_dir *d = &p->dir[dir];

	if (!call_start || !h2_plausible(data, n, d->max_frame, false))
		return (long)n;
	H2_COUNT(p, resyncs);
	d->state = H2_HEAD;
	d->hdr_len = 0;
	return 0;
}

static long h2_step(struct http2 *p, int dir, const uint8_t *data, size_t n, bool call_start,
		    uint64_t ts_start, uint64_t ts_end)
{
	switch (p->dir[dir].state) {
	case H2_PREFACE:
		return h2_preface(p, dir, data, n);
	case H2_HEAD:
		return h2_head(p, dir, data, n, ts_start, ts_end);
	case H2_PAYLOAD:
		return h2_payload(p, dir, data, n, ts_end);
	case H2_RESYNC:
		return h2_resync(p, dir, data, n, call_start);
	}
	return -EPROTO;
}

/* ---- loss --------------------------------------------------------------------------------- */

/* Frame boundaries of a direction are lost: resync, restart the inflater, and, when bytes may
 * have been lost or misread (`lossy`), tell every stream whose message in that direction was
 * unfinished. */
static void h2_lose_framing(struct http2 *p, int dir, uint64_t len, bool lossy)
{
	struct h2_dir *d = &p->dir[dir];
	bool req = dir == h2_req_dir(p);

	if (d->in_block && !d->block_push && req && d->block_sid > p->max_req_sid &&
	    (d->block_sid & 1)) {
		H2_COUNT(p, lost_requests);
		p->max_req_sid = d->block_sid;
	}
	d->in_block = false;
	d->state = H2_RESYNC;
	d->hdr_len = 0;
	d->preface_off = HTTP2_PREFACE_LEN;
	d->exact = false;
	d->fresh = true;
	H2_COUNT(p, hpack_resets);
	if (!lossy)
		return;
	for (unsigned i = 0; i < p->n_streams; i++) {
		struct h2_stream *s = &p->streams[i];

		if (req && s->req_ended)
			continue;
		s->lossy[dir] = true;
		if (p->sink.on_loss)
			p->sink.on_loss(s->handle, !req, len);
	}
}

/* A gap inside the payload of a frame other than a header block: framing survives. */
static bool h2_gap_in_payload(struct http2 *p, int dir, uint64_t len)
{
	struct h2_dir *d = &p->dir[dir];
	uint64_t from, to, lost;
	struct h2_stream *s;

	if (d->state != H2_PAYLOAD || h2_is_block_frame(d->type) || d->off < d->prefix ||
	    len > d->len - d->off)
		return false;
	from = d->off < d->content_end ? d->off : d->content_end;
	to = d->off + len < d->content_end ? d->off + len : d->content_end;
	lost = to - from; /* padding is not the stream's */
	d->frame_lost = true;
	d->off += (uint32_t)len;
	s = d->type == H2_DATA ? h2_find(p, d->sid) : NULL;
	if (s && lost && !(dir == h2_req_dir(p) && s->req_ended)) {
		s->lossy[dir] = true;
		if (p->sink.on_loss)
			p->sink.on_loss(s->handle, dir != h2_req_dir(p), lost);
	}
	if (d->off == d->len)
		h2_frame_end(p, dir, p->last_ts); /* never an error: not a header block */
	return true;
}

void http2__gap(struct http2 *p, int dir, uint64_t len)
{
	if (!p || p->stopped || (dir != 0 && dir != 1))
		return;
	if (len && h2_gap_in_payload(p, dir, len)) {
		H2_COUNT(p, gaps_survived);
		return;
	}
	if (len)
		H2_COUNT(p, gaps);
	h2_lose_framing(p, dir, len, len > 0);
}

/* ---- the API ------------------------------------------------------------------------------ */

static bool h2_new_call(struct h2_dir *d, uint64_t ts_start, uint64_t ts_end)
{
	bool fresh = !d->fed || d->call_start != ts_start || d->call_end != ts_end;

	d->fed = true;
	d->call_start = ts_start;
	d->call_end = ts_end;
	return fresh;
}

int http2__feed(struct http2 *p, int dir, const uint8_t *data, size_t len, uint64_t ts_start,
		uint64_t ts_end)
{
	bool call_start;
	size_t off = 0;

	if (p->stopped)
		return p->err;
	if (dir != 0 && dir != 1)
		return -EINVAL;
	call_start = h2_new_call(&p->dir[dir], ts_start, ts_end);
	if (ts_end > p->last_ts)
		p->last_ts = ts_end;
	while (off < len && !p->stopped) {
		long n = h2_step(p, dir, data + off, len - off, call_start && off == 0, ts_start,
				 ts_end);

		if (n < 0 && !p->dir[dir].exact) {
			/* After loss a misread boundary is likely: look for frames again. */
			h2_lose_framing(p, dir, 0, true);
			n = (long)(len - off);
		} else if (n < 0) {
			h2_stop(p, ts_end);
			break;
		}
		off += (size_t)n;
	}
	return p->stopped ? p->err : 0;
}

void http2__close(struct http2 *p, uint64_t ts_ns)
{
	if (!p || p->stopped)
		return;
	h2_abort_all(p, HTTP_ABORT_CONN_CLOSED, ts_ns);
	p->stopped = true;
}

void http2__expire(struct http2 *p, uint64_t now_ns, uint64_t timeout_ns)
{
	for (unsigned i = p->n_streams; i-- > 0;) {
		struct h2_stream *s = &p->streams[i];

		if (!s->resp_started && now_ns >= s->ts && now_ns - s->ts >= timeout_ns)
			h2_abort(p, s, HTTP_ABORT_TIMEOUT, now_ns);
	}
}

bool http2__busy(const struct http2 *p)
{
	return !p->stopped && (p->n_streams > 0 || p->dir[h2_req_dir(p)].in_block);
}

bool http2__is_preface(const uint8_t *data, size_t len)
{
	size_t n = len < HTTP2_PREFACE_LEN ? len : HTTP2_PREFACE_LEN;

	return n >= 14 && !memcmp(data, HTTP2_PREFACE, n);
}

bool http2__looks_like_frames(const uint8_t *data, size_t len)
{
	return h2_plausible(data, len, H2_DEFAULT_MAX_FRAME, true);
}

const struct http2_stats *http2__stats(const struct http2 *p)
{
	return &p->stats;
}

const struct http2_stats *http2__totals(void)
{
	return &h2_totals;
}

struct http2 *http2__new(enum http1_role role, const struct http_sink *sink)
{
	struct http2 *p;

	if (!sink)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->role = role;
	p->sink = *sink;
	for (int i = 0; i < 2; i++) {
		p->dir[i].state = i == h2_req_dir(p) ? H2_PREFACE : H2_HEAD;
		p->dir[i].exact = true;
		p->dir[i].max_frame = H2_DEFAULT_MAX_FRAME;
		p->dir[i].table_size = H2_DEFAULT_TABLE;
	}
	return p;
}

void http2__free(struct http2 *p)
{
	if (!p)
		return;
	for (int i = 0; i < 2; i++) {
		h2_drop_inflater(&p->dir[i]);
		free(p->dir[i].store);
	}
	free(p->streams);
	free(p);
}
