/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn/: ordered chunks -> connection objects. Keyed by (pid, SSL*), each connection holds the
 * stream position of both directions, what is known of its socket, and the protocol parser its
 * first bytes called for. Lost bytes become explicit gaps for the parser; idle connections and
 * connections past the memory cap are evicted and counted.
 */
#ifndef TOKENTAP_CONN_H
#define TOKENTAP_CONN_H

#include <stdint.h>

#include "../capture/capture.h"
#include "../llm/llm.h"

struct conn_opts {
	uint64_t idle_timeout_ns;    /* evict a connection quiet for this long (0 = 15 min) */
	uint64_t request_timeout_ns; /* a request without a response, or a response silent this
				      * long, ends (0 = 10 min) */
	uint32_t max_conns;          /* tracked connections at most (0 = 65536) */
};

struct conn_stats {
	uint64_t open;              /* tracked now */
	uint64_t created;
	uint64_t closed;            /* by SSL_free or process exit */
	uint64_t evicted_idle;
	uint64_t evicted_cap;
	uint64_t not_http;          /* connections whose traffic is not HTTP/1.x */
	uint64_t server_side;       /* connections where the traced process is the HTTP server */
	uint64_t gaps;              /* holes in a stream: captured bytes that never arrived */
	uint64_t gap_bytes;
	uint64_t overlap_bytes;     /* bytes delivered twice, dropped */
	uint64_t restarts;          /* the kernel renumbered a stream (its state was evicted) */
	uint64_t skipped_bytes;     /* bytes seen before a connection's protocol was known */
	uint64_t parse_errors;      /* connections whose HTTP parse failed */
	uint64_t http2;             /* connections parsed as HTTP/2 */
	uint64_t http2_midstream;   /* ... of which capture began after the connection did */
	uint64_t ignored;           /* connections the kernel judged not LLM traffic (TT_EV_IGNORE) */
	uint64_t ignored_bytes;     /* their bytes it skipped on purpose: never counted as loss */
	uint64_t resumed;           /* ignored connections copied again from an LLM request on */
	uint64_t syncs;             /* position updates after kernel-side loss (TT_EV_SYNC) */
	uint64_t parser_renewals;   /* HTTP/1 parsers started over after loss left nothing open */
	uint64_t procs;             /* traced processes: distinct pids with a tracked connection now */
};

struct conn_table;

struct conn_table *conn_table__new(const struct conn_opts *opts, llm_call_cb cb, void *cb_ctx);
void conn_table__on_chunk(struct conn_table *t, const struct cap_chunk *c);
void conn_table__on_close(struct conn_table *t, const struct cap_close *c);
/* The kernel stops copying the connection (not LLM traffic) at these positions. */
void conn_table__on_ignore(struct conn_table *t, const struct cap_close *c);
/* The kernel's positions now: undelivered bytes below them are lost, or were skipped on purpose
 * when the connection was ignored (copying resumes here). */
void conn_table__on_sync(struct conn_table *t, const struct cap_close *c);
void conn_table__on_sock(struct conn_table *t, const struct cap_sock *s);
/* The TLS server name the client set (before its handshake): kept as llm_conn_info.sni. */
void conn_table__on_sni(struct conn_table *t, const struct cap_sni *s);
/* The whole process is gone: its connections close (open calls end with an error). */
void conn_table__on_exit(struct conn_table *t, uint32_t pid, uint64_t ts_ns);
/* Time passes: request timeouts, idle eviction. Call about once a second. */
void conn_table__tick(struct conn_table *t, uint64_t now_ns);
/* Shutdown: every open call is reported (as unfinished) and every connection freed. */
void conn_table__close_all(struct conn_table *t, uint64_t now_ns);
void conn_table__stats(const struct conn_table *t, struct conn_stats *st);
void conn_table__free(struct conn_table *t);

#endif
