/* SPDX-License-Identifier: Apache-2.0 */
/*
 * export/: spans -> the outside world. One sink per file (text.c, jsonl.c, otlp.c), each with
 * its own counters. Exporters never see HTTP or BPF types: only struct span.
 * The pipeline thread calls exporter->ops->export for every finished span; an exporter that
 * does network I/O queues (bounded) and sends from its own thread.
 */
#ifndef TOKENTAP_EXPORT_H
#define TOKENTAP_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "../span/span.h"

struct export_stats {
	uint64_t exported; /* spans accepted by the destination */
	uint64_t dropped;  /* spans dropped (queue full, rejected, failed after retries) */
	uint64_t errors;   /* failed write/send attempts */
	uint64_t queued;   /* spans waiting now */
};

struct exporter;

struct exporter_ops {
	const char *name;
	/* Takes its own copy of what it needs; `s` is freed by the caller after return. */
	void (*export)(struct exporter *e, const struct span *s);
	/* Delivers everything queued, waiting at most deadline_ms. */
	void (*flush)(struct exporter *e, int deadline_ms);
	void (*stats)(struct exporter *e, struct export_stats *st);
	void (*destroy)(struct exporter *e);
};

struct exporter {
	const struct exporter_ops *ops;
};

/* Human-readable line per span (the default output). */
struct exporter *text_exporter__new(FILE *out);
/* JSON Lines: one object per span, the documented --format json schema. */
struct exporter *jsonl_exporter__new(FILE *out);

struct otlp_opts {
	const char *endpoint;  /* base URL; spans go to <endpoint>/v1/traces */
	const char *headers;   /* "k1=v1,k2=v2" as OTEL_EXPORTER_OTLP_HEADERS */
	int batch_max;         /* spans per request; 0 = 512 */
	int batch_delay_ms;    /* flush a partial batch after this long; 0 = 1000 */
	int queue_max;         /* spans held before dropping; 0 = 8192 */
	int timeout_ms;        /* per request; 0 = 10000 */
	const char *compression; /* "gzip" or NULL/"none" (OTEL_EXPORTER_OTLP_COMPRESSION) */
};
struct exporter *otlp_exporter__new(const struct otlp_opts *opts);

/* Writes one span as a JSON object (no newline) — shared by jsonl.c and tests. */
void jsonl__write_span(FILE *out, const struct span *s);

/*
 * Control socket (socket.c): a unix socket streaming every span as its JSON line, and a
 * {"type":"stats",...} health line each time socket_exporter__send_health is called, to local
 * readers such as `tokentap top`. Each reader has a bounded buffer (client_buf_bytes, 0 = 1 MiB);
 * a slow reader loses lines, counted. On failure returns NULL with *err = -errno (-EADDRINUSE:
 * a live agent already listens on path).
 */
struct agent_health {
	uint64_t events_lost;	 /* records the kernel dropped */
	uint64_t lost_bytes;
	uint64_t parse_errors;	 /* HTTP and provider JSON parse failures */
	uint64_t export_backlog; /* spans queued in exporters */
	uint64_t export_dropped; /* spans exporters dropped */
	uint64_t spans;
};
struct exporter *socket_exporter__new(const char *path, size_t client_buf_bytes, int *err);
void socket_exporter__send_health(struct exporter *e, const struct agent_health *h);

#endif
