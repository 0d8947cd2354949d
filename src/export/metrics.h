/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics: every finished span is folded into cumulative series (GenAI client metrics of the
 * semantic conventions v1.41.0, plus cost), and tokentap's own health counters are kept next to
 * them. Two outlets read the same registry: OTLP/HTTP metrics pushed every interval
 * (otlp_metrics.c) and a Prometheus scrape endpoint (prometheus.c).
 *
 * Threads: the pipeline thread records spans and publishes health snapshots; the outlets' own
 * threads read under metrics__lock. Cardinality is bounded: past max_series attribute sets a
 * metric folds new sets into one overflow series (see metrics.c) and counts them.
 */
#ifndef TOKENTAP_EXPORT_METRICS_H
#define TOKENTAP_EXPORT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "export/export.h"

#define METRICS_DEFAULT_MAX_SERIES 2000
#define METRICS_DEFAULT_INTERVAL_S 10
#define METRICS_MAX_EXPORTERS 8
#define METRICS_VALUE_MAX 256 /* attribute values are cut to this many bytes */

/* Data point attribute keys, in the order they are written. */
enum mkey {
	MK_OPERATION,  /* gen_ai.operation.name */
	MK_PROVIDER,   /* gen_ai.provider.name */
	MK_REQ_MODEL,  /* gen_ai.request.model */
	MK_RESP_MODEL, /* gen_ai.response.model */
	MK_ERROR,      /* error.type */
	MK_SERVICE,    /* service.name (the calling process's resource) */
	MK_CONTAINER,  /* container.id (the calling process's resource) */
	MK_TENANT,     /* tokentap.tenant */
	MK_TOKEN_TYPE, /* gen_ai.token.type: token usage only; kept in the overflow series */
	MK__N,
};
extern const char *const mkey_otel[MK__N]; /* "gen_ai.request.model" */
extern const char *const mkey_prom[MK__N]; /* "gen_ai_request_model" */

enum metric_id {
	M_TOKEN_USAGE, /* gen_ai.client.token.usage */
	M_DURATION,    /* gen_ai.client.operation.duration */
	M_TTFC,        /* gen_ai.client.operation.time_to_first_chunk */
	M_TPOC,        /* gen_ai.client.operation.time_per_output_chunk */
	M_COST,        /* tokentap.cost.usd */
	M_UNPRICED,    /* tokentap.cost.unpriced_calls */
	M__N,
};

enum metric_kind { MKIND_HISTOGRAM, MKIND_SUM_DOUBLE, MKIND_SUM_INT };

struct metric_def {
	const char *name;      /* OpenTelemetry name */
	const char *prom;      /* Prometheus base name (histogram) or full name (counter) */
	const char *unit;      /* UCUM */
	const char *help;
	enum metric_kind kind;
	const double *bounds;  /* histograms: explicit bucket boundaries */
	size_t n_bounds;
};
extern const struct metric_def metric_defs[M__N];

struct metric_series {
	struct metric_series *hnext;
	uint64_t hash;
	bool overflow;           /* the series excess attribute sets are folded into */
	const char *vals[MK__N]; /* NULL: attribute absent; point into the same allocation */
	uint64_t count;          /* histograms: measurements; sums: increments */
	double sum;              /* histograms: sum of values; sums: the total */
	double min, max;
	uint64_t buckets[];      /* histograms: n_bounds + 1 counts (not cumulative) */
};

struct metric {
	const struct metric_def *def;
	struct metric_series **series; /* in order of creation */
	size_t n_series, cap;
	size_t n_regular;              /* series that count toward the cap */
	uint64_t overflowed;           /* measurements folded into the overflow series */
};

struct metrics_exporter_health {
	char name[16];
	uint64_t exported, dropped, errors;
};

/* tokentap's own counters, published by the pipeline thread. */
struct metrics_health {
	uint64_t events, bytes;           /* capture: records and payload bytes */
	uint64_t lost_records, lost_bytes;
	uint64_t malformed_records;
	uint64_t conns_open, gaps, gap_bytes, parse_errors, not_http;
	uint64_t llm_calls, json_errors, spans;
	uint32_t attached_files, attach_failures;
	uint32_t attach_users, attach_max_files;	 /* containers (issue 5) */
	uint64_t attach_refusals, attach_detaches, exec_attaches;
	uint64_t exec_window_last_us, exec_window_max_us; /* exec -> probes attached */
	uint64_t traced_processes; /* processes with captured traffic (a tracked connection) now */
	uint32_t code_shape_files; /* attached by code shape: stripped BoringSSL, aws-lc (rustls) */
	uint64_t code_shape_verified, code_shape_held_bytes, rustls_unbound_records;
	uint64_t exec_holds, exec_hold_failures, exec_hold_max_us; /* held during analysis */
	struct metrics_exporter_health exporters[METRICS_MAX_EXPORTERS];
	int n_exporters;
};

/* One health counter or gauge: its field in struct metrics_health. */
struct health_def {
	const char *name; /* OpenTelemetry name */
	const char *prom; /* Prometheus name */
	const char *unit;
	const char *help;
	bool gauge;       /* else a monotonic counter */
	size_t off;       /* offsetof(struct metrics_health, field) */
	bool u32;         /* the field is a uint32_t */
	double div;       /* non-zero: exported as the double value/div (microseconds -> s) */
};
extern const struct health_def health_defs[];
extern const size_t n_health_defs;
uint64_t health__value(const struct metrics_health *h, const struct health_def *d);

/* Per-exporter health, labelled exporter=<name>: spans (or, for the "metrics" exporter,
 * metric points) exported and dropped, and failed attempts. */
enum health_export_field { HX_EXPORTED, HX_DROPPED, HX_ERRORS, HX__N };
struct health_export_def {
	const char *name, *prom, *unit, *help;
};
/* [HX_*][0] for span exporters, [HX_*][1] for the "metrics" exporter. */
extern const struct health_export_def health_export_defs[HX__N][2];
uint64_t health__export_value(const struct metrics_exporter_health *x,
			      enum health_export_field f);
bool health__is_metrics_exporter(const struct metrics_exporter_health *x);

struct metrics;

struct metrics_opts {
	int max_series;        /* attribute sets per metric before folding; 0 = default */
	/* OTLP push (NULL endpoint: none) */
	const char *otlp_endpoint;
	const char *otlp_headers;
	const char *otlp_compression;
	int interval_s;        /* 0 = METRICS_DEFAULT_INTERVAL_S */
	int timeout_ms;
	/* Prometheus scrape endpoint: "ADDR:PORT", ":PORT" or "PORT" (NULL: none) */
	const char *prometheus;
};

/* The registry alone (tests) and its lifetime. */
struct metrics *metrics__new(int max_series);
void metrics__free(struct metrics *m);
void metrics__record_span(struct metrics *m, const struct span *s);
/* The first snapshot also marks tokentap ready (Prometheus /healthz answers 200). */
void metrics__set_health(struct metrics *m, const struct metrics_health *h);

/* Readers: hold the lock while walking metrics__get() and metrics__health(). */
void metrics__lock(struct metrics *m);
void metrics__unlock(struct metrics *m);
const struct metric *metrics__get(const struct metrics *m, enum metric_id id);
const struct metrics_health *metrics__health(const struct metrics *m); /* NULL before any */
bool metrics__ready(struct metrics *m);
uint64_t metrics__start_unix_ns(const struct metrics *m);

/*
 * The "metrics" exporter: records every span it is given, and owns the outlets opts asks for.
 * Its flush pushes OTLP metrics one last time; its stats count metric points sent by OTLP.
 * NULL on a bad option (one line printed) or when out of memory.
 */
struct exporter *metrics_exporter__new(const struct metrics_opts *opts, struct metrics **reg);

/* Prometheus text exposition format 0.0.4 of the registry; malloc'd, NUL-terminated. */
char *prometheus__render(struct metrics *m, size_t *len);

struct prom_server;
/* Serves GET /metrics and GET /healthz on addr ("127.0.0.1:9464", ":9464", "9464"; loopback
 * unless an address is given). Returns 0 or -errno (one line printed). */
int prom_server__start(struct prom_server **out, const char *addr, struct metrics *m);
/* The port actually bound (useful with port 0). */
int prom_server__port(const struct prom_server *ps);
void prom_server__stop(struct prom_server *ps);

/* OTLP: the registry as one ExportMetricsServiceRequest (malloc'd; *n_points data points). */
uint8_t *otlp_metrics__encode(struct metrics *m, uint64_t now_unix_ns, size_t *len,
			      size_t *n_points);

struct otlp_metrics;
int otlp_metrics__start(struct otlp_metrics **out, const struct metrics_opts *opts,
			struct metrics *m);
/* Pushes now and waits for the answer (or deadline_ms). */
void otlp_metrics__push(struct otlp_metrics *om, int deadline_ms);
void otlp_metrics__stats(struct otlp_metrics *om, struct export_stats *st);
void otlp_metrics__stop(struct otlp_metrics *om);

#endif
