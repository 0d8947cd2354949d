/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OTLP/HTTP transport shared by the trace (otlp.c) and metrics (otlp_metrics.c) exporters:
 * one POST of an encoded protobuf body to <endpoint><path>, gzip'd when asked, retried as the
 * OTLP specification says (429, 502, 503, 504 and connection failures only; Retry-After
 * honoured; exponential backoff with jitter otherwise; never other 4xx or a partial success).
 * Used from one sender thread per exporter; header values may hold credentials and are never
 * logged.
 */
#ifndef TOKENTAP_EXPORT_OTLP_HTTP_H
#define TOKENTAP_EXPORT_OTLP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export/export.h"

struct otlp_http_opts {
	const char *endpoint;    /* base URL: http(s)://host[:port][/prefix] */
	const char *path;        /* "/v1/traces", "/v1/metrics" */
	const char *headers;     /* OTEL_EXPORTER_OTLP_HEADERS syntax: k1=v1,k2=v2 */
	const char *compression; /* "gzip", or NULL / "none" */
	int timeout_ms;          /* per request; 0 = 10000 */
	const char *what;        /* the items, for messages: "spans", "metric points" */
	/* Items a 2xx answer says were rejected (partial success); NULL when never. */
	uint64_t (*rejected)(const uint8_t *resp, size_t len);
	/* The owner (its sender thread) decides when a batch is given up and how it waits. */
	void *owner;
	uint64_t (*give_up_at)(void *owner, uint64_t started_ms); /* monotonic ms */
	bool (*sleep_until)(void *owner, uint64_t until_ms);      /* false: stop now */
	bool (*stopping)(void *owner);                            /* aborts a request */
	/* Keep retrying a batch that may yet succeed until give_up_at says stop (no attempt
	 * limit): the owner's queue bound, not a retry count, decides what is dropped. */
	bool retry_until_give_up;
	/* Counters the transport settles (atomically): exported, dropped, errors. */
	struct export_stats *st;
};

struct otlp_http;

/* Returns 0 or -errno, printing one line on a bad setting (-EINVAL). */
int otlp_http__new(struct otlp_http **out, const struct otlp_http_opts *opts);
/* Sends one encoded batch of n items, retrying where that may help; settles the counters. */
void otlp_http__send(struct otlp_http *h, const uint8_t *buf, size_t len, size_t n);
void otlp_http__free(struct otlp_http *h);

bool otlp_http__endpoint_ok(const char *endpoint);
/* TLS for every OTLP transport opened afterwards (--otlp-ca, --otlp-client-cert,
 * --otlp-client-key; OTEL_EXPORTER_OTLP_CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY): PEM
 * files; NULL keeps libcurl's default (system CAs, no client certificate). Call before any
 * exporter starts. */
void otlp_http__set_tls(const char *ca_file, const char *client_cert, const char *client_key);
/* Monotonic milliseconds, the clock of every deadline above. */
uint64_t otlp_http__now_ms(void);
/* gzip (RFC 1952) of buf; malloc'd, NULL when out of memory. */
uint8_t *otlp_http__gzip(const uint8_t *buf, size_t len, size_t *out_len);

#endif
