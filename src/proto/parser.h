/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One HTTP parser of a connection, whichever version it speaks: conn/ holds a struct
 * http_parser and calls these, which forward to http1.c or http2.c. Same contracts as
 * http1__feed/gap/close/expire/busy (http1.h).
 */
#ifndef TOKENTAP_PROTO_PARSER_H
#define TOKENTAP_PROTO_PARSER_H

#include "http.h"
#include "http1.h"

enum http_version {
	HTTP_VERSION_1 = 1,
	HTTP_VERSION_2 = 2,
};

struct http_parser;

struct http_parser *http_parser__new(enum http_version v, enum http1_role role,
				     const struct http_sink *sink);
enum http_version http_parser__version(const struct http_parser *p);
int http_parser__feed(struct http_parser *p, int dir, const uint8_t *data, size_t len,
		      uint64_t ts_start, uint64_t ts_end);
void http_parser__gap(struct http_parser *p, int dir, uint64_t len);
void http_parser__close(struct http_parser *p, uint64_t ts_ns);
void http_parser__expire(struct http_parser *p, uint64_t now_ns, uint64_t timeout_ns);
bool http_parser__busy(const struct http_parser *p);
void http_parser__free(struct http_parser *p);

#endif
