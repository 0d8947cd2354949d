// SPDX-License-Identifier: Apache-2.0
/* The version-neutral face of the HTTP parsers: a tagged pointer and a switch per call. */
#include <stdlib.h>

#include "proto/http2.h"
#include "proto/parser.h"

struct http_parser {
	enum http_version v;
	union {
		struct http1 *h1;
		struct http2 *h2;
	};
};

struct http_parser *http_parser__new(enum http_version v, enum http1_role role,
				     const struct http_sink *sink)
{
	struct http_parser *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->v = v;
	if (v == HTTP_VERSION_2)
		p->h2 = http2__new(role, sink);
	else
		p->h1 = http1__new(role, sink);
	if (!p->h1 && !p->h2) {
		free(p);
		return NULL;
	}
	return p;
}

enum http_version http_parser__version(const struct http_parser *p)
{
	return p->v;
}

int http_parser__feed(struct http_parser *p, int dir, const uint8_t *data, size_t len,
		      uint64_t ts_start, uint64_t ts_end)
{
	if (p->v == HTTP_VERSION_2)
		return http2__feed(p->h2, dir, data, len, ts_start, ts_end);
	return http1__feed(p->h1, dir, data, len, ts_start, ts_end);
}

void http_parser__gap(struct http_parser *p, int dir, uint64_t len)
{
	if (p->v == HTTP_VERSION_2)
		http2__gap(p->h2, dir, len);
	else
		http1__gap(p->h1, dir, len);
}

void http_parser__close(struct http_parser *p, uint64_t ts_ns)
{
	if (p->v == HTTP_VERSION_2)
		http2__close(p->h2, ts_ns);
	else
		http1__close(p->h1, ts_ns);
}

void http_parser__expire(struct http_parser *p, uint64_t now_ns, uint64_t timeout_ns)
{
	if (p->v == HTTP_VERSION_2)
		http2__expire(p->h2, now_ns, timeout_ns);
	else
		http1__expire(p->h1, now_ns, timeout_ns);
}

bool http_parser__busy(const struct http_parser *p)
{
	return p->v == HTTP_VERSION_2 ? http2__busy(p->h2) : http1__busy(p->h1);
}

void http_parser__free(struct http_parser *p)
{
	if (!p)
		return;
	if (p->v == HTTP_VERSION_2)
		http2__free(p->h2);
	else
		http1__free(p->h1);
	free(p);
}
