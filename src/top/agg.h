/* SPDX-License-Identifier: Apache-2.0 */
/*
 * top/agg: the numbers `tokentap top` shows, computed from the agent's span lines and nothing
 * else, with no terminal code: calls in a sliding window (rates, percentiles, error rate) and
 * totals since the view started, grouped by one of several keys and sorted by any column.
 * Every function takes "now" from the caller, so tests drive the clock.
 */
#ifndef TOKENTAP_TOP_AGG_H
#define TOKENTAP_TOP_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOP_KEY_LEN 48
#define TOP_MAX_GROUPS 4096	/* per grouping; later keys fold into TOP_OTHER */
#define TOP_WINDOW_CAP 65536	/* calls kept for the window */
#define TOP_HISTORY_SECS 1024	/* per-second call counts kept for the bar of recent calls */
#define TOP_RECENT 32		/* last calls kept whole */
#define TOP_OTHER "(other)"

enum top_key {
	TOP_KEY_PROCESS,
	TOP_KEY_CONTAINER, /* pod when known, else container, else "(host)" */
	TOP_KEY_PROVIDER,
	TOP_KEY_MODEL,
	TOP_KEY_TENANT,
	TOP_KEY_API_KEY, /* the API key's fingerprint, never the key */
	TOP_KEY_N,
	TOP_KEY_ALL = TOP_KEY_N, /* one group holding every call: the totals line */
};

enum top_col {
	TOP_COL_KEY,
	TOP_COL_CALLS,	    /* calls/s, or calls since start in totals mode */
	TOP_COL_TOK_IN,	    /* input tokens/s, or since start */
	TOP_COL_TOK_OUT,    /* output tokens/s, or since start */
	TOP_COL_SPEND_RATE, /* USD per hour over the window */
	TOP_COL_SPEND,	    /* USD since start */
	TOP_COL_LAT_P50,
	TOP_COL_LAT_P95,
	TOP_COL_TTFC_P50,
	TOP_COL_TTFC_P95,
	TOP_COL_ERR, /* error fraction over the window, or since start in totals mode */
	TOP_COL_N,
};

/* One finished call as the view needs it (from one span line). */
struct top_call {
	uint64_t end_ns; /* wall clock */
	double latency_s;
	double ttfc_s;	 /* NAN when not streamed */
	int64_t tokens_in, tokens_out;
	double cost_usd; /* NAN when the span carries no cost */
	bool error;
	char keys[TOP_KEY_N][TOP_KEY_LEN];
};

/* One row of the table. Window values are NAN where there is nothing to compute them from. */
struct top_row {
	char key[TOP_KEY_LEN];
	uint64_t calls, errors;
	int64_t tokens_in, tokens_out;
	double spend;	/* NAN when no call of the group had a cost */
	uint64_t wcalls, werrors;
	double calls_rate, in_rate, out_rate; /* per second */
	double spend_rate;		      /* per hour; NAN when no cost in the window */
	double lat_p50, lat_p95, ttfc_p50, ttfc_p95;
};

struct top_agg;

struct top_agg *top_agg__new(uint64_t window_ns, uint64_t start_ns);
void top_agg__free(struct top_agg *a);
void top_agg__add(struct top_agg *a, const struct top_call *c);
/* Rows for grouping `key` at `now`, sorted by `col`; *rows stays owned by a and valid until the
 * next call. Returns the number of rows. */
size_t top_agg__rows(struct top_agg *a, enum top_key key, uint64_t now_ns, bool totals,
		     enum top_col col, bool descending, const struct top_row **rows);
/* The value a column sorts by (and shows) in a row. */
double top_row__value(const struct top_row *r, enum top_col col, bool totals);
/* Calls (and errors) in each of the last n seconds before now, oldest first. */
void top_agg__history(const struct top_agg *a, uint64_t now_ns, size_t n, uint32_t *calls,
		      uint32_t *errors);
/* The i-th most recent call (0 = newest), or NULL. */
const struct top_call *top_agg__recent(const struct top_agg *a, size_t i);
uint64_t top_agg__window_ns(const struct top_agg *a);

/* Nearest-rank percentile (p in 0..1) of n sorted values; NAN when n is 0. */
double top__percentile(const double *sorted, size_t n, double p);

/* What the agent says about itself in {"type":"stats"} lines. */
struct top_health {
	bool seen;
	uint64_t events_lost, lost_bytes, parse_errors, export_backlog, export_dropped, spans;
	uint64_t client_dropped; /* lines this view lost because it read too slowly */
};

enum top_line_kind { TOP_LINE_SPAN = 1, TOP_LINE_STATS = 2 };
/* Parses one line of the control socket. Returns TOP_LINE_SPAN (c filled), TOP_LINE_STATS
 * (h filled) or -EINVAL for a line that is neither. */
int top_line__parse(const char *line, size_t n, struct top_call *c, struct top_health *h);

#endif
