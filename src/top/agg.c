// SPDX-License-Identifier: Apache-2.0
/*
 * top/agg: window and totals for `tokentap top`. Totals since start are kept per group for every
 * grouping at once, so switching the grouping shows complete numbers at once; the window keeps
 * the calls themselves (with their group of every grouping), so percentiles are exact.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "top/agg.h"

#define NS_PER_SEC 1000000000ull
#define N_GROUPINGS (TOP_KEY_N + 1)

struct group {
	char key[TOP_KEY_LEN];
	uint64_t calls, errors;
	int64_t tokens_in, tokens_out;
	double spend;
	uint64_t spend_n; /* calls that carried a cost */
};

/* Open addressing over group indexes; 0 is empty, otherwise index + 1. */
struct grouping {
	struct group *v;
	size_t n, cap;
	uint32_t slots[TOP_MAX_GROUPS * 2];
};

struct wcall {
	uint64_t end_ns;
	double latency_s, ttfc_s, cost_usd;
	int64_t tokens_in, tokens_out;
	bool error;
	uint32_t gid[N_GROUPINGS];
};

struct hist_sec {
	uint64_t sec;
	uint32_t calls, errors;
};

/* (group, value) pairs sorted together: one sort gives every group's percentiles. */
struct gval {
	uint32_t gid;
	double v;
};

struct top_agg {
	uint64_t window_ns, start_ns;
	uint64_t evicted_max_ns; /* newest end among calls pushed out of a full window */
	struct grouping groups[N_GROUPINGS];
	struct wcall *win;
	size_t win_head, win_n;
	struct hist_sec hist[TOP_HISTORY_SECS];
	struct top_call recent[TOP_RECENT];
	size_t recent_n, recent_head;
	struct top_row *rows;
	size_t rows_cap;
	struct gval *lat, *ttfc;
};

struct top_agg *top_agg__new(uint64_t window_ns, uint64_t start_ns)
{
	struct top_agg *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->window_ns = window_ns ? window_ns : 60 * NS_PER_SEC;
	a->start_ns = start_ns;
	a->win = calloc(TOP_WINDOW_CAP, sizeof(*a->win));
	a->lat = calloc(TOP_WINDOW_CAP, sizeof(*a->lat));
	a->ttfc = calloc(TOP_WINDOW_CAP, sizeof(*a->ttfc));
	if (!a->win || !a->lat || !a->ttfc) {
		top_agg__free(a);
		return NULL;
	}
	return a;
}

void top_agg__free(struct top_agg *a)
{
	if (!a)
		return;
	for (int k = 0; k < N_GROUPINGS; k++)
		free(a->groups[k].v);
	free(a->win);
	free(a->lat);
	free(a->ttfc);
	free(a->rows);
	free(a);
}

uint64_t top_agg__window_ns(const struct top_agg *a)
{
	return a->window_ns;
}

/* ---- groups ------------------------------------------------------------------------------ */

static uint32_t key__hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static int grouping__append(struct grouping *g, const char *key)
{
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		struct group *v = realloc(g->v, cap * sizeof(*v));

		if (!v)
			return -1;
		g->v = v;
		g->cap = cap;
	}
	memset(&g->v[g->n], 0, sizeof(g->v[0]));
	strncpy(g->v[g->n].key, key, TOP_KEY_LEN - 1);
	return (int)g->n++;
}

/* The group index of key, created on first sight; past TOP_MAX_GROUPS, the "(other)" group. */
static int grouping__intern(struct grouping *g, const char *key)
{
	const size_t mask = TOP_MAX_GROUPS * 2 - 1;
	size_t i = key__hash(key) & mask;
	int gid;

	for (; g->slots[i]; i = (i + 1) & mask)
		if (!strcmp(g->v[g->slots[i] - 1].key, key))
			return (int)g->slots[i] - 1;
	if (g->n >= TOP_MAX_GROUPS - 1 && strcmp(key, TOP_OTHER))
		return grouping__intern(g, TOP_OTHER);
	gid = grouping__append(g, key);
	if (gid >= 0)
		g->slots[i] = (uint32_t)gid + 1;
	return gid;
}

static void group__count(struct group *g, const struct top_call *c)
{
	g->calls++;
	g->errors += c->error;
	g->tokens_in += c->tokens_in;
	g->tokens_out += c->tokens_out;
	if (!isnan(c->cost_usd)) {
		g->spend += c->cost_usd;
		g->spend_n++;
	}
}

/* ---- adding calls ------------------------------------------------------------------------ */

static void window__push(struct top_agg *a, const struct wcall *w)
{
	size_t tail;

	if (a->win_n == TOP_WINDOW_CAP) {
		const struct wcall *old = &a->win[a->win_head];

		if (old->end_ns > a->evicted_max_ns)
			a->evicted_max_ns = old->end_ns;
		a->win_head = (a->win_head + 1) % TOP_WINDOW_CAP;
		a->win_n--;
	}
	tail = (a->win_head + a->win_n) % TOP_WINDOW_CAP;
	a->win[tail] = *w;
	a->win_n++;
}

/* Drops calls that ended before the window; late arrivals deeper in are filtered when read. */
static void window__expire(struct top_agg *a, uint64_t now_ns)
{
	while (a->win_n && a->win[a->win_head].end_ns + a->window_ns <= now_ns) {
		a->win_head = (a->win_head + 1) % TOP_WINDOW_CAP;
		a->win_n--;
	}
}

static void history__count(struct top_agg *a, const struct top_call *c)
{
	uint64_t sec = c->end_ns / NS_PER_SEC;
	struct hist_sec *h = &a->hist[sec % TOP_HISTORY_SECS];

	if (h->sec != sec)
		*h = (struct hist_sec){ .sec = sec };
	h->calls++;
	h->errors += c->error;
}

void top_agg__add(struct top_agg *a, const struct top_call *c)
{
	struct wcall w = {
		.end_ns = c->end_ns,
		.latency_s = c->latency_s,
		.ttfc_s = c->ttfc_s,
		.cost_usd = c->cost_usd,
		.tokens_in = c->tokens_in,
		.tokens_out = c->tokens_out,
		.error = c->error,
	};

	for (int k = 0; k < N_GROUPINGS; k++) {
		int gid = grouping__intern(&a->groups[k], k == TOP_KEY_ALL ? "all" : c->keys[k]);

		if (gid < 0)
			return; /* out of memory: the call is not counted anywhere, consistently */
		w.gid[k] = (uint32_t)gid;
	}
	for (int k = 0; k < N_GROUPINGS; k++)
		group__count(&a->groups[k].v[w.gid[k]], c);
	window__push(a, &w);
	history__count(a, c);
	a->recent[a->recent_head] = *c;
	a->recent_head = (a->recent_head + 1) % TOP_RECENT;
	if (a->recent_n < TOP_RECENT)
		a->recent_n++;
}

/* ---- reading ----------------------------------------------------------------------------- */

double top__percentile(const double *sorted, size_t n, double p)
{
	size_t rank;

	if (!n)
		return NAN;
	rank = (size_t)(p * (double)n);
	if ((double)rank < p * (double)n)
		rank++; /* ceil, without libm */
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static int gval__cmp(const void *x, const void *y)
{
	const struct gval *a = x, *b = y;

	if (a->gid != b->gid)
		return a->gid < b->gid ? -1 : 1;
	return (a->v > b->v) - (a->v < b->v);
}

/* Fills p50/p95 of every group from (gid, value) pairs; off is the field's byte offset. */
static void rows__percentiles(struct top_row *rows, struct gval *gv, size_t n, size_t p50_off,
			      size_t p95_off)
{
	double vals[256], *buf = vals;
	size_t i = 0;

	qsort(gv, n, sizeof(*gv), gval__cmp);
	while (i < n) {
		size_t j = i, k;

		while (j < n && gv[j].gid == gv[i].gid)
			j++;
		if (j - i > sizeof(vals) / sizeof(vals[0]))
			buf = malloc((j - i) * sizeof(*buf));
		if (buf) {
			for (k = i; k < j; k++)
				buf[k - i] = gv[k].v;
			*(double *)((char *)&rows[gv[i].gid] + p50_off) =
				top__percentile(buf, j - i, 0.50);
			*(double *)((char *)&rows[gv[i].gid] + p95_off) =
				top__percentile(buf, j - i, 0.95);
		}
		if (buf != vals)
			free(buf);
		buf = vals;
		i = j;
	}
}

/* The window's start: a full ring may have pushed out calls that were still inside it. */
static uint64_t window__start(const struct top_agg *a, uint64_t now_ns)
{
	uint64_t start = now_ns > a->window_ns ? now_ns - a->window_ns : 0;

	if (start < a->start_ns)
		start = a->start_ns;
	if (start < a->evicted_max_ns)
		start = a->evicted_max_ns;
	return start;
}

static int rows__reserve(struct top_agg *a, size_t n)
{
	struct top_row *r;

	if (n <= a->rows_cap)
		return 0;
	r = realloc(a->rows, n * sizeof(*r));
	if (!r)
		return -1;
	a->rows = r;
	a->rows_cap = n;
	return 0;
}

static void rows__from_totals(struct top_row *rows, const struct grouping *g)
{
	for (size_t i = 0; i < g->n; i++) {
		const struct group *gr = &g->v[i];
		struct top_row *r = &rows[i];

		*r = (struct top_row){ .calls = gr->calls, .errors = gr->errors,
				       .tokens_in = gr->tokens_in, .tokens_out = gr->tokens_out,
				       .spend = gr->spend_n ? gr->spend : NAN, .spend_rate = NAN,
				       .lat_p50 = NAN, .lat_p95 = NAN, .ttfc_p50 = NAN,
				       .ttfc_p95 = NAN };
		memcpy(r->key, gr->key, TOP_KEY_LEN);
	}
}

static void rows__from_window(struct top_agg *a, struct top_row *rows, enum top_key key,
			      uint64_t now_ns)
{
	uint64_t start = window__start(a, now_ns);
	double secs = (double)(now_ns > start ? now_ns - start : 0) / NS_PER_SEC;
	size_t nlat = 0, nttfc = 0;

	if (secs < 1)
		secs = 1; /* the first second would otherwise show absurd rates */
	for (size_t i = 0; i < a->win_n; i++) {
		const struct wcall *w = &a->win[(a->win_head + i) % TOP_WINDOW_CAP];
		struct top_row *r = &rows[w->gid[key]];

		if (w->end_ns <= start || w->end_ns > now_ns)
			continue;
		r->wcalls++;
		r->werrors += w->error;
		r->in_rate += (double)w->tokens_in;
		r->out_rate += (double)w->tokens_out;
		if (!isnan(w->cost_usd))
			r->spend_rate = isnan(r->spend_rate) ? w->cost_usd : r->spend_rate + w->cost_usd;
		a->lat[nlat++] = (struct gval){ w->gid[key], w->latency_s };
		if (!isnan(w->ttfc_s))
			a->ttfc[nttfc++] = (struct gval){ w->gid[key], w->ttfc_s };
	}
	for (size_t i = 0; i < a->groups[key].n; i++) {
		struct top_row *r = &rows[i];

		r->calls_rate = (double)r->wcalls / secs;
		r->in_rate /= secs;
		r->out_rate /= secs;
		r->spend_rate = r->spend_rate / secs * 3600.0;
	}
	rows__percentiles(rows, a->lat, nlat, offsetof(struct top_row, lat_p50),
			  offsetof(struct top_row, lat_p95));
	rows__percentiles(rows, a->ttfc, nttfc, offsetof(struct top_row, ttfc_p50),
			  offsetof(struct top_row, ttfc_p95));
}

double top_row__value(const struct top_row *r, enum top_col col, bool totals)
{
	switch (col) {
	case TOP_COL_CALLS:
		return totals ? (double)r->calls : r->calls_rate;
	case TOP_COL_TOK_IN:
		return totals ? (double)r->tokens_in : r->in_rate;
	case TOP_COL_TOK_OUT:
		return totals ? (double)r->tokens_out : r->out_rate;
	case TOP_COL_SPEND_RATE:
		return r->spend_rate;
	case TOP_COL_SPEND:
		return r->spend;
	case TOP_COL_LAT_P50:
		return r->lat_p50;
	case TOP_COL_LAT_P95:
		return r->lat_p95;
	case TOP_COL_TTFC_P50:
		return r->ttfc_p50;
	case TOP_COL_TTFC_P95:
		return r->ttfc_p95;
	case TOP_COL_ERR:
		if (totals)
			return r->calls ? (double)r->errors / (double)r->calls : NAN;
		return r->wcalls ? (double)r->werrors / (double)r->wcalls : NAN;
	default:
		return NAN;
	}
}

struct sort_ctx {
	enum top_col col;
	bool totals, descending;
};

/* Blank values (NAN) go last whichever the direction; ties go by key, so rows do not jump. */
static int row__cmp(const void *x, const void *y, void *arg)
{
	const struct top_row *a = x, *b = y;
	const struct sort_ctx *sc = arg;
	int by_key = strcmp(a->key, b->key), c;
	double va, vb;

	if (sc->col == TOP_COL_KEY)
		return sc->descending ? -by_key : by_key;
	va = top_row__value(a, sc->col, sc->totals);
	vb = top_row__value(b, sc->col, sc->totals);
	if (isnan(va) || isnan(vb))
		return isnan(va) && isnan(vb) ? by_key : isnan(va) ? 1 : -1;
	c = (va > vb) - (va < vb);
	if (sc->descending)
		c = -c;
	return c ? c : by_key;
}

size_t top_agg__rows(struct top_agg *a, enum top_key key, uint64_t now_ns, bool totals,
		     enum top_col col, bool descending, const struct top_row **rows)
{
	const struct grouping *g = &a->groups[key];
	struct sort_ctx sc = { col, totals, descending };

	window__expire(a, now_ns);
	*rows = a->rows;
	if (!g->n || rows__reserve(a, g->n))
		return 0;
	rows__from_totals(a->rows, g);
	rows__from_window(a, a->rows, key, now_ns);
	qsort_r(a->rows, g->n, sizeof(a->rows[0]), row__cmp, &sc);
	*rows = a->rows;
	return g->n;
}

void top_agg__history(const struct top_agg *a, uint64_t now_ns, size_t n, uint32_t *calls,
		      uint32_t *errors)
{
	uint64_t now_sec = now_ns / NS_PER_SEC;

	for (size_t i = 0; i < n; i++) {
		uint64_t sec = now_sec - (n - 1 - i);
		const struct hist_sec *h = &a->hist[sec % TOP_HISTORY_SECS];
		bool ok = n - 1 - i < TOP_HISTORY_SECS && sec <= now_sec && h->sec == sec;

		calls[i] = ok ? h->calls : 0;
		errors[i] = ok ? h->errors : 0;
	}
}

const struct top_call *top_agg__recent(const struct top_agg *a, size_t i)
{
	if (i >= a->recent_n)
		return NULL;
	return &a->recent[(a->recent_head + TOP_RECENT - 1 - i) % TOP_RECENT];
}
