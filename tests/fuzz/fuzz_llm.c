// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/llm/llm.c src/llm/openai.c src/llm/anthropic.c src/llm/tenant.c src/llm/content.c src/llm/detect.c src/llm/gemini.c src/llm/ollama.c src/llm/bedrock.c src/llm/jseq.c src/proto/sse.c src/proto/http.c src/proto/eventstream.c src/proto/decode.c src/util/redact.c src/util/zpack.c
// FUZZ_LIBS: -ljson-c -lcrypto -lz -lbrotlidec -lzstd
/*
 * llm/ behind its http_sink, driven with fuzzer-chosen heads and bodies.
 * Input: one flags byte, then up to four sections separated by NUL bytes: request head,
 * request body, response head, response body. A head is lines split by '\n': the first is
 * "METHOD PATH" (request) or "STATUS" (response), the others "Name: value". Bodies are fed in
 * pieces, with losses and aborts where the flags say. Header views are not NUL-terminated and
 * end at the end of an exact-size allocation, so ASan catches reads past their length.
 */
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"

struct fz {
	uint32_t rng;
	uint8_t flags;
	int calls;
};

static uint32_t fz__rand(struct fz *f)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 17;
	f->rng ^= f->rng << 5;
	return f->rng;
}

static void fz__check_str(const char *s, size_t cap)
{
	if (strnlen(s, cap) >= cap)
		abort();
}

static void on_call(void *ctx, const struct llm_call *c)
{
	struct fz *f = ctx;

	fz__check_str(c->request_model, sizeof(c->request_model));
	fz__check_str(c->response_model, sizeof(c->response_model));
	fz__check_str(c->response_id, sizeof(c->response_id));
	fz__check_str(c->server_address, sizeof(c->server_address));
	fz__check_str(c->path, sizeof(c->path));
	fz__check_str(c->error_type, sizeof(c->error_type));
	if (c->n_finish_reasons < 0 || c->n_finish_reasons > LLM_MAX_FINISH || !c->provider_name ||
	    !c->detected_by)
		abort();
	for (int i = 0; i < c->n_finish_reasons; i++)
		fz__check_str(c->finish_reasons[i], sizeof(c->finish_reasons[i]));
	if (c->status_code >= 400 && !c->error_type[0])
		abort();
	f->calls++;
}

/* Parses a head section; `buf` is an exact-size copy the views point into. */
static void fz__head(struct http_head *h, char *buf, size_t n, bool request)
{
	size_t at = 0, line = 0;

	memset(h, 0, sizeof(*h));
	h->is_request = request;
	h->minor_version = 1;
	while (at <= n) {
		char *p = buf + at;
		char *nl = memchr(p, '\n', n - at);
		size_t len = nl ? (size_t)(nl - p) : n - at;
		char *sep = memchr(p, line ? ':' : ' ', len);

		if (!line && request) {
			h->method = p;
			h->method_len = sep ? (size_t)(sep - p) : len;
			h->path = sep ? sep + 1 : p + len;
			h->path_len = sep ? len - (size_t)(sep + 1 - p) : 0;
		} else if (!line) {
			h->status = 0;
			for (size_t i = 0; i < len && i < 3 && p[i] >= '0' && p[i] <= '9'; i++)
				h->status = h->status * 10 + (p[i] - '0');
		} else if (h->num_headers < HTTP_MAX_HEADERS) {
			struct http_header *hd = &h->headers[h->num_headers++];

			hd->name = p;
			hd->name_len = sep ? (size_t)(sep - p) : len;
			hd->value = sep ? sep + 1 : p + len;
			hd->value_len = sep ? len - (size_t)(sep + 1 - p) : 0;
		} else {
			h->headers_truncated = true;
		}
		line++;
		at += len + 1;
	}
}

static void fz__body(struct fz *f, const struct http_sink *s, void *ex, bool resp,
		     const uint8_t *d, size_t n)
{
	size_t at = 0;

	while (at < n) {
		size_t k = 1 + fz__rand(f) % 64;

		if (k > n - at)
			k = n - at;
		if ((f->flags & 0x10) && fz__rand(f) % 31 == 0)
			s->on_loss(ex, resp, 1 + fz__rand(f) % 1000);
		s->on_body(ex, resp, d + at, k, 1000 + at);
		at += k;
	}
}

/* Splits at NUL bytes; returns the number of sections found (at most max). */
static int fz__sections(const uint8_t *d, size_t n, const uint8_t **sec, size_t *len, int max)
{
	int k = 0;
	size_t start = 0;

	for (size_t i = 0; i <= n && k < max; i++) {
		if (i == n || d[i] == 0) {
			sec[k] = d + start;
			len[k++] = i - start;
			start = i + 1;
		}
	}
	return k;
}

static void *fz__request(const struct http_sink *s, const uint8_t *d, size_t n, char **keep)
{
	struct http_head h;

	*keep = malloc(n ? n : 1);
	memcpy(*keep, d, n);
	fz__head(&h, *keep, n, true);
	return s->on_request(s->ctx, &h, 100);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct llm_conn_info info = { .pid = 1, .last_tid = 2, .conn_id = 3 };
	struct fz f = { .rng = 88172645u };
	const uint8_t *sec[4];
	size_t len[4];
	char *rq = NULL, *rs = NULL, *rq2 = NULL;
	struct llm_conn *lc;
	const struct http_sink *s;
	struct http_head h;
	void *ex, *ex2;
	int k;

	if (size < 1)
		return 0;
	f.flags = data[0];
	f.rng ^= (uint32_t)size * 2654435761u;
	info.tls_source = f.flags & 1;
	if (f.flags & 2)
		strcpy(info.sni, f.flags & 4 ? "api.anthropic.com" : "api.openai.com");
	info.has_peer = f.flags & 8;
	strcpy(info.peer_addr, "10.1.2.3");
	info.peer_port = 443;
	k = fz__sections(data + 1, size - 1, sec, len, 4);
	lc = llm_conn__new(&info, on_call, &f);
	s = llm_conn__sink(lc);
	ex = fz__request(s, sec[0], len[0], &rq);
	/* A second exchange on the same head stays open: freeing the conn must clean it up. */
	ex2 = (f.flags & 0x20) ? fz__request(s, sec[0], len[0], &rq2) : NULL;
	if (ex && k > 1)
		fz__body(&f, s, ex, false, sec[1], len[1]);
	if (ex && !(f.flags & 0x40))
		s->on_message_end(ex, false, 200);
	if (ex && k > 2) {
		rs = malloc(len[2] ? len[2] : 1);
		memcpy(rs, sec[2], len[2]);
		fz__head(&h, rs, len[2], false);
		s->on_response(ex, &h, 300);
		if (k > 3)
			fz__body(&f, s, ex, true, sec[3], len[3]);
	}
	if (ex && (f.flags & 0x80))
		s->on_abort(ex, (enum http_abort_reason)(1 + fz__rand(&f) % 6), 400);
	else if (ex)
		s->on_message_end(ex, true, 500);
	if (f.calls > 1 || (!ex && f.calls))
		abort(); /* at most one call per exchange (none when it turned out not LLM) */
	(void)ex2;
	llm_conn__free(lc);
	free(rq);
	free(rq2);
	free(rs);
	return 0;
}
