// SPDX-License-Identifier: Apache-2.0
/*
 * report/html: the page. Sums and tables are computed here, in C, and written as text; charts
 * get their numbers as one JSON block that the inlined Chart.js draws. Percentiles use the same
 * nearest-rank definition as `tokentap top`, so the two views agree.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report/report.h"
#include "top/agg.h"
#include "util/jsonget.h"

#define SERIES_MAX 8 /* per chart; the rest is summed as "(other)" */
#define BUCKETS_MAX 60
#define SCATTER_MAX 5000

static const double lat_edges_ms[] = { 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000 };
static const char *const lat_labels[] = { "<50ms",    "50-100ms", "100-200ms", "200-500ms",
					  "0.5-1s",   "1-2s",	  "2-5s",      "5-10s",
					  "10-30s",   "30-60s",	  ">=60s" };
static const double tok_edges[] = { 10, 100, 1000, 10000, 100000 };
static const char *const tok_labels[] = { "<10", "10-99", "100-999", "1k-10k", "10k-100k", ">=100k" };
#define N_LAT_BINS (sizeof(lat_labels) / sizeof(lat_labels[0]))
#define N_TOK_BINS (sizeof(tok_labels) / sizeof(tok_labels[0]))

static size_t bin_of(const double *edges, size_t n_edges, double v)
{
	size_t i = 0;

	while (i < n_edges && v >= edges[i])
		i++;
	return i;
}

static void json__num(FILE *out, double v)
{
	fprintf(out, "%.10g", isfinite(v) ? v : 0.0);
}

/* ---- series: which strings get their own line on a chart -------------------------------- */

struct series {
	uint32_t *slot; /* per string id: series index, SERIES_MAX = "(other)" */
	uint32_t ids[SERIES_MAX];
	size_t n;
	bool other;
};

struct rank {
	uint32_t id;
	double v;
};

static int rank__cmp(const void *x, const void *y)
{
	const struct rank *a = x, *b = y;

	if (a->v != b->v)
		return a->v < b->v ? 1 : -1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* The SERIES_MAX strings of dimension dim with most calls get a series each. */
static int series__pick(struct series *s, const struct report *r, enum report_dim dim)
{
	struct rank *rk = calloc(r->n_strs, sizeof(*rk));

	s->slot = malloc(r->n_strs * sizeof(*s->slot));
	if (!rk || !s->slot) {
		free(rk);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->n_strs; i++)
		rk[i].id = (uint32_t)i;
	for (size_t i = 0; i < r->n; i++)
		rk[r->calls[i].dim[dim]].v++;
	qsort(rk, r->n_strs, sizeof(*rk), rank__cmp);
	s->n = 0;
	s->other = false;
	for (size_t i = 0; i < r->n_strs; i++) {
		s->slot[rk[i].id] = SERIES_MAX;
		if (rk[i].v == 0)
			continue;
		if (s->n < SERIES_MAX) {
			s->ids[s->n] = rk[i].id;
			s->slot[rk[i].id] = (uint32_t)s->n++;
		} else {
			s->other = true;
		}
	}
	free(rk);
	return 0;
}

static const char *series__label(const struct series *s, const struct report *r, size_t i)
{
	return i < s->n ? report__str(r, s->ids[i]) : "(other)";
}

/* ---- time buckets ------------------------------------------------------------------------ */

struct buckets {
	uint64_t start_s, step_s;
	size_t n;
};

static void buckets__plan(struct buckets *b, const struct report_totals *t)
{
	static const uint64_t steps[] = { 1,   5,    10,   30,	 60,	300,   600,
					  1800, 3600, 10800, 21600, 43200, 86400, 604800 };
	uint64_t first = t->first_ns / 1000000000ull, last = t->last_ns / 1000000000ull;
	size_t i = 0;

	while (i + 1 < sizeof(steps) / sizeof(steps[0]) &&
	       (last / steps[i] - first / steps[i] + 1) > BUCKETS_MAX)
		i++;
	b->step_s = steps[i];
	b->start_s = first / b->step_s * b->step_s;
	b->n = (size_t)((last - b->start_s) / b->step_s + 1);
	if (b->n > BUCKETS_MAX * 8) /* only when a bogus timestamp stretches the range */
		b->n = BUCKETS_MAX * 8;
}

static size_t buckets__of(const struct buckets *b, uint64_t ns)
{
	uint64_t s = ns / 1000000000ull;
	size_t i = s < b->start_s ? 0 : (size_t)((s - b->start_s) / b->step_s);

	return i < b->n ? i : b->n - 1;
}

static void buckets__write_labels(FILE *out, const struct buckets *b, bool dates)
{
	char lbl[32];

	fputc('[', out);
	for (size_t i = 0; i < b->n; i++) {
		time_t t = (time_t)(b->start_s + i * b->step_s);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(lbl, sizeof(lbl), dates ? "%m-%d %H:%M" : "%H:%M:%S", &tm);
		fprintf(out, "%s\"%s\"", i ? "," : "", lbl);
	}
	fputc(']', out);
}

/* ---- chart data -------------------------------------------------------------------------- */

static void write_dataset(FILE *out, const char *label, const double *v, size_t n, bool first)
{
	fputs(first ? "{\"label\":" : ",{\"label\":", out);
	html__json_string(out, label);
	fputs(",\"data\":[", out);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', out);
		json__num(out, v[i]);
	}
	fputs("]}", out);
}

static double call__metric(const struct rcall *c, bool usd)
{
	if (usd)
		return isnan(c->cost) ? 0 : c->cost;
	return (double)(c->in + c->out);
}

/* Spend (or tokens, when no span has a cost) per time bucket, one series per dim value. */
static int write_over_time(FILE *out, const struct report *r, enum report_dim dim,
			   const struct buckets *b, bool usd)
{
	struct series s;
	double *m = calloc((SERIES_MAX + 1) * b->n, sizeof(*m));

	if (!m || series__pick(&s, r, dim)) {
		free(m);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct rcall *c = &r->calls[i];

		m[s.slot[c->dim[dim]] * b->n + buckets__of(b, c->end_ns)] += call__metric(c, usd);
	}
	fputc('[', out);
	for (size_t k = 0; k < s.n + s.other; k++)
		write_dataset(out, series__label(&s, r, k), m + (k < s.n ? k : SERIES_MAX) * b->n,
			      b->n, k == 0);
	fputc(']', out);
	free(s.slot);
	free(m);
	return 0;
}

enum hist_kind { HIST_LATENCY, HIST_TOKENS_IN, HIST_TOKENS_OUT };

static size_t hist__bin(const struct rcall *c, enum hist_kind k)
{
	if (k == HIST_LATENCY)
		return bin_of(lat_edges_ms, N_LAT_BINS - 1, c->lat_s * 1000);
	return bin_of(tok_edges, N_TOK_BINS - 1, (double)(k == HIST_TOKENS_IN ? c->in : c->out));
}

/* Calls per bin, one dataset per model. */
static int write_histogram(FILE *out, const struct report *r, const struct series *s,
			   enum hist_kind k)
{
	size_t nb = k == HIST_LATENCY ? N_LAT_BINS : N_TOK_BINS;
	double *m = calloc((SERIES_MAX + 1) * nb, sizeof(*m));

	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < r->n; i++)
		m[s->slot[r->calls[i].dim[REPORT_DIM_MODEL]] * nb + hist__bin(&r->calls[i], k)]++;
	fputc('[', out);
	for (size_t j = 0; j < s->n + s->other; j++)
		write_dataset(out, series__label(s, r, j), m + (j < s->n ? j : SERIES_MAX) * nb, nb,
			      j == 0);
	fputc(']', out);
	free(m);
	return 0;
}

/* Streamed calls as (total latency, time to first chunk) points in ms, one dataset per model. */
static void write_scatter(FILE *out, const struct report *r, const struct series *s)
{
	size_t stride = r->t.streamed / SCATTER_MAX + 1;

	fputc('[', out);
	for (size_t j = 0; j < s->n + s->other; j++) {
		size_t seen = 0, k = 0;

		fputs(j ? ",{\"label\":" : "{\"label\":", out);
		html__json_string(out, series__label(s, r, j));
		fputs(",\"data\":[", out);
		for (size_t i = 0; i < r->n; i++) {
			const struct rcall *c = &r->calls[i];
			size_t slot = s->slot[c->dim[REPORT_DIM_MODEL]];

			if (isnan(c->ttfc_s) || (slot < s->n ? slot : s->n) != j || seen++ % stride)
				continue;
			fprintf(out, "%s{\"x\":%.3f,\"y\":%.3f}", k++ ? "," : "", c->lat_s * 1000,
				c->ttfc_s * 1000);
		}
		fputs("]}", out);
	}
	fputc(']', out);
}

static void write_labels(FILE *out, const char *const *labels, size_t n)
{
	fputc('[', out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s\"%s\"", i ? "," : "", labels[i]);
	fputc(']', out);
}

static int write_chart_data(FILE *out, const struct report *r)
{
	static const char *const dims[REPORT_DIM_N] = { "tenant", "model", "provider" };
	bool usd = r->t.cost_known > 0;
	struct buckets b;
	struct series models;
	int err = 0;

	buckets__plan(&b, &r->t);
	if (series__pick(&models, r, REPORT_DIM_MODEL))
		return -ENOMEM;
	fprintf(out, "{\"metric\":\"%s\",\"bucket_s\":%llu,\"buckets\":", usd ? "usd" : "tokens",
		(unsigned long long)b.step_s);
	buckets__write_labels(out, &b, r->t.last_ns - r->t.first_ns > 86400ull * 1000000000ull);
	for (int d = 0; d < REPORT_DIM_N && !err; d++) {
		fprintf(out, ",\"by_%s\":", dims[d]);
		err = write_over_time(out, r, (enum report_dim)d, &b, usd);
	}
	fputs(",\"lat_bins\":", out);
	write_labels(out, lat_labels, N_LAT_BINS);
	fputs(",\"tok_bins\":", out);
	write_labels(out, tok_labels, N_TOK_BINS);
	fputs(",\"lat\":", out);
	err = err ?: write_histogram(out, r, &models, HIST_LATENCY);
	fputs(",\"tok_in\":", out);
	err = err ?: write_histogram(out, r, &models, HIST_TOKENS_IN);
	fputs(",\"tok_out\":", out);
	err = err ?: write_histogram(out, r, &models, HIST_TOKENS_OUT);
	fputs(",\"scatter\":", out);
	write_scatter(out, r, &models);
	fputc('}', out);
	free(models.slot);
	return err;
}

/* ---- text formats ------------------------------------------------------------------------ */

static void put_time(FILE *out, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;
	char buf[32];

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(out, "%s.%03u", buf, (unsigned)(ns / 1000000 % 1000));
}

static void put_dur(FILE *out, double s)
{
	if (isnan(s))
		fputs("-", out);
	else if (s < 1)
		fprintf(out, "%.0f ms", s * 1000);
	else
		fprintf(out, "%.2f s", s);
}

static void put_usd(FILE *out, double v)
{
	if (isnan(v))
		fputs("-", out);
	else if (v > 0 && v < 0.0001)
		fprintf(out, "$%.2e", v);
	else
		fprintf(out, "$%.4f", v);
}

/* ---- tables ------------------------------------------------------------------------------ */

struct mval {
	uint32_t model;
	double v;
};

static int mval__cmp(const void *x, const void *y)
{
	const struct mval *a = x, *b = y;

	if (a->model != b->model)
		return a->model < b->model ? -1 : 1;
	return (a->v > b->v) - (a->v < b->v);
}

struct model_row {
	uint32_t model;
	uint64_t calls, errors, cost_n;
	int64_t in, out;
	double spend, lat[3], ttfc[2];
};

/* Percentiles of each model's values; v sorted by (model, value). */
static void rows__pcts(struct model_row *rows, const uint32_t *row_of, struct mval *v, size_t n,
		       bool lat)
{
	for (size_t i = 0, j; i < n; i = j) {
		struct model_row *mr = &rows[row_of[v[i].model]];
		double *vals;

		for (j = i; j < n && v[j].model == v[i].model; j++)
			;
		vals = malloc((j - i) * sizeof(*vals));
		if (!vals)
			continue;
		for (size_t k = i; k < j; k++)
			vals[k - i] = v[k].v;
		if (lat) {
			mr->lat[0] = top__percentile(vals, j - i, 0.50);
			mr->lat[1] = top__percentile(vals, j - i, 0.95);
			mr->lat[2] = top__percentile(vals, j - i, 0.99);
		} else {
			mr->ttfc[0] = top__percentile(vals, j - i, 0.50);
			mr->ttfc[1] = top__percentile(vals, j - i, 0.95);
		}
		free(vals);
	}
}

static void model_row__write(FILE *out, const struct report *r, const struct model_row *m)
{
	fputs("<tr><td>", out);
	html__escape(out, report__str(r, m->model));
	fprintf(out, "</td><td>%llu</td><td>%llu</td><td>%lld</td><td>%lld</td><td>",
		(unsigned long long)m->calls, (unsigned long long)m->errors, (long long)m->in,
		(long long)m->out);
	put_usd(out, m->cost_n ? m->spend : NAN);
	for (int i = 0; i < 3; i++) {
		fputs("</td><td>", out);
		put_dur(out, m->lat[i]);
	}
	for (int i = 0; i < 2; i++) {
		fputs("</td><td>", out);
		put_dur(out, m->ttfc[i]);
	}
	fputs("</td></tr>\n", out);
}

static int model_row__cmp(const void *x, const void *y)
{
	const struct model_row *a = x, *b = y;

	return a->calls != b->calls ? (a->calls < b->calls ? 1 : -1) : (a->model > b->model) - (a->model < b->model);
}

static int write_model_table(FILE *out, const struct report *r)
{
	uint32_t *row_of = malloc(r->n_strs * sizeof(*row_of));
	struct model_row *rows = calloc(r->n_strs, sizeof(*rows));
	struct mval *lat = malloc((r->n + 1) * sizeof(*lat)), *ttfc = malloc((r->n + 1) * sizeof(*ttfc));
	size_t nrows = 0, nlat = 0, nttfc = 0;
	int err = -ENOMEM;

	if (!row_of || !rows || !lat || !ttfc)
		goto out;
	memset(row_of, 0xff, r->n_strs * sizeof(*row_of));
	for (size_t i = 0; i < r->n; i++) {
		const struct rcall *c = &r->calls[i];
		uint32_t m = c->dim[REPORT_DIM_MODEL];
		struct model_row *mr;

		if (row_of[m] == UINT32_MAX) {
			row_of[m] = (uint32_t)nrows;
			rows[nrows++] = (struct model_row){ .model = m, .lat = { NAN, NAN, NAN },
							    .ttfc = { NAN, NAN } };
		}
		mr = &rows[row_of[m]];
		mr->calls++;
		mr->errors += c->error;
		mr->in += c->in;
		mr->out += c->out;
		if (!isnan(c->cost)) {
			mr->spend += c->cost;
			mr->cost_n++;
		}
		lat[nlat++] = (struct mval){ m, c->lat_s };
		if (!isnan(c->ttfc_s))
			ttfc[nttfc++] = (struct mval){ m, c->ttfc_s };
	}
	qsort(lat, nlat, sizeof(*lat), mval__cmp);
	qsort(ttfc, nttfc, sizeof(*ttfc), mval__cmp);
	rows__pcts(rows, row_of, lat, nlat, true);
	rows__pcts(rows, row_of, ttfc, nttfc, false);
	qsort(rows, nrows, sizeof(*rows), model_row__cmp);
	fputs("<table id=\"models\"><tr><th>model</th><th>calls</th><th>errors</th><th>input tokens"
	      "</th><th>output tokens</th><th>spend</th><th>latency p50</th><th>p95</th><th>p99"
	      "</th><th>first chunk p50</th><th>p95</th></tr>\n", out);
	for (size_t i = 0; i < nrows; i++)
		model_row__write(out, r, &rows[i]);
	fputs("</table>\n", out);
	err = 0;
out:
	free(row_of);
	free(rows);
	free(lat);
	free(ttfc);
	return err;
}

/* Strings for the page: absent or empty is "" (escaped as nothing). */
static const char *obj__str(json_object *o, const char *key)
{
	const char *s = jsonget__str(o, key);

	return s ? s : "";
}

/* Every key and value of an object, escaped, as a definition list. */
static void write_attrs(FILE *out, json_object *o)
{
	if (!json_object_is_type(o, json_type_object))
		return;
	json_object_object_foreach(o, k, v) {
		fputs("<dt>", out);
		html__escape(out, k);
		fputs("</dt><dd>", out);
		html__escape(out, json_object_is_type(v, json_type_string)
					  ? json_object_get_string(v)
					  : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		fputs("</dd>", out);
	}
}

/* One kept call as a table row, its attributes and resource folded under it. */
static void write_kept_row(FILE *out, const struct rkept *k)
{
	json_object *o = json_tokener_parse(k->line);
	json_object *at = jsonget__obj(o, "attributes"), *res = jsonget__obj(o, "resource");
	json_object *st = jsonget__obj(o, "start_time_unix_nano"), *en = jsonget__obj(o, "end_time_unix_nano");
	json_object *cost = jsonget__obj(at, "tokentap.cost.usd");
	uint64_t s = json_object_get_uint64(st), e = json_object_get_uint64(en);

	fprintf(out, "<tr><td>%llu</td><td>", (unsigned long long)k->line_no);
	put_time(out, s);
	fputs("</td><td>", out);
	html__escape(out, obj__str(at, "gen_ai.request.model"));
	fputs("</td><td>", out);
	html__escape(out, obj__str(res, "process.executable.name"));
	fputs("</td><td>", out);
	put_dur(out, e >= s ? (double)(e - s) / 1e9 : NAN);
	fprintf(out, "</td><td>%lld / %lld</td><td>",
		(long long)json_object_get_int64(jsonget__obj(at, "gen_ai.usage.input_tokens")),
		(long long)json_object_get_int64(jsonget__obj(at, "gen_ai.usage.output_tokens")));
	put_usd(out, cost ? json_object_get_double(cost) : NAN);
	fputs("</td><td>", out);
	html__escape(out, obj__str(at, "error.type")[0] ? obj__str(at, "error.type") : "ok");
	fputs("</td><td><details><summary>attributes</summary><dl>", out);
	write_attrs(out, at);
	write_attrs(out, res);
	fputs("</dl></details></td></tr>\n", out);
	json_object_put(o);
}

static void write_kept(FILE *out, const char *id, const struct rkept *k, size_t n,
		       const char *empty)
{
	if (!n) {
		fprintf(out, "<p class=\"note\">%s</p>\n", empty);
		return;
	}
	fprintf(out, "<table id=\"%s\"><tr><th>line</th><th>start (UTC)</th><th>model</th>"
		     "<th>process</th><th>latency</th><th>tokens in / out</th><th>cost</th>"
		     "<th>status</th><th></th></tr>\n", id);
	for (size_t i = 0; i < n; i++)
		write_kept_row(out, &k[i]);
	fputs("</table>\n", out);
}

struct ekey {
	uint32_t type, model, provider;
};

static int ekey__cmp(const void *x, const void *y)
{
	const struct ekey *a = x, *b = y;

	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	if (a->model != b->model)
		return a->model < b->model ? -1 : 1;
	return (a->provider > b->provider) - (a->provider < b->provider);
}

static int write_error_counts(FILE *out, const struct report *r)
{
	struct ekey *e = malloc((r->t.errors + 1) * sizeof(*e));
	size_t n = 0;

	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < r->n; i++)
		if (r->calls[i].error)
			e[n++] = (struct ekey){ r->calls[i].error_type,
						r->calls[i].dim[REPORT_DIM_MODEL],
						r->calls[i].dim[REPORT_DIM_PROVIDER] };
	qsort(e, n, sizeof(*e), ekey__cmp);
	fputs("<table id=\"error-counts\"><tr><th>error.type</th><th>model</th><th>provider</th>"
	      "<th>calls</th></tr>\n", out);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i; j < n && !ekey__cmp(&e[i], &e[j]); j++)
			;
		fputs("<tr><td>", out);
		html__escape(out, report__str(r, e[i].type));
		fputs("</td><td>", out);
		html__escape(out, report__str(r, e[i].model));
		fputs("</td><td>", out);
		html__escape(out, report__str(r, e[i].provider));
		fprintf(out, "</td><td>%zu</td></tr>\n", j - i);
	}
	fputs("</table>\n", out);
	free(e);
	return 0;
}

/* ---- the page ---------------------------------------------------------------------------- */

static const char page_css[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}"
	"h1{margin:0 0 4px}h2{margin:28px 0 8px;border-bottom:1px solid #ddd}"
	".sub,.note{color:#666}.cards{display:flex;flex-wrap:wrap;gap:12px}"
	".card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 16px;"
	"min-width:120px}.card .label{color:#666;font-size:12px}.card .value{font-size:22px;"
	"font-weight:600}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));"
	"gap:16px}.chart{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;"
	"height:300px;position:relative}table{border-collapse:collapse;background:#fff;"
	"font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;"
	"vertical-align:top}dl{display:grid;grid-template-columns:auto 1fr;gap:0 8px;margin:4px 0}"
	"dt{color:#666}dd{margin:0;word-break:break-all}.bad{color:#b00}";

/* Draws every chart, then marks each canvas (rendered, and non-blank when it holds any ink)
 * and the body (how many drew), so a headless browser can tell that they really did. */
static const char page_js[] =
	"(function(){\n"
	"var d=JSON.parse(document.getElementById('tt-data').textContent);\n"
	"var pal=['#4e79a7','#f28e2b','#e15759','#76b7b2','#59a14f','#edc948','#b07aa1',"
	"'#ff9da7','#9c755f'];\n"
	"function color(ds){ds.forEach(function(s,i){s.backgroundColor=pal[i%pal.length];"
	"s.borderColor=pal[i%pal.length];});return ds;}\n"
	"var drawn=0;\n"
	"function mark(c){var x=c.getContext('2d'),p=x.getImageData(0,0,c.width,c.height).data,"
	"ink=false;for(var i=3;i<p.length;i+=4){if(p[i]){ink=true;break;}}"
	"c.dataset.rendered='1';c.dataset.nonblank=ink?'1':'0';if(ink)drawn++;}\n"
	"function chart(id,type,labels,ds,o){var c=document.getElementById(id);o=o||{};"
	"o.animation=false;o.responsive=true;o.maintainAspectRatio=false;"
	"new Chart(c,{type:type,data:{labels:labels,datasets:color(ds)},options:o});mark(c);}\n"
	"var unit=d.metric==='usd'?'USD':'tokens';\n"
	"function stacked(t){return{plugins:{title:{display:true,text:t}},scales:{x:{stacked:true},"
	"y:{stacked:true,title:{display:true,text:unit}}}};}\n"
	"chart('c-tenant','bar',d.buckets,d.by_tenant,stacked('by tenant ('+unit+' per '+d.bucket_s+' s)'));\n"
	"chart('c-model','bar',d.buckets,d.by_model,stacked('by model ('+unit+' per '+d.bucket_s+' s)'));\n"
	"chart('c-provider','bar',d.buckets,d.by_provider,stacked('by provider ('+unit+' per '+d.bucket_s+' s)'));\n"
	"function hist(t){return{plugins:{title:{display:true,text:t}},scales:{y:{title:{display:true,"
	"text:'calls'}}}};}\n"
	"chart('c-lat','bar',d.lat_bins,d.lat,hist('latency per model'));\n"
	"chart('c-tok-in','bar',d.tok_bins,d.tok_in,hist('input tokens per call, per model'));\n"
	"chart('c-tok-out','bar',d.tok_bins,d.tok_out,hist('output tokens per call, per model'));\n"
	"chart('c-ttfc','scatter',undefined,d.scatter,{plugins:{title:{display:true,"
	"text:'streamed calls: time to first chunk against total latency'}},scales:{x:{title:"
	"{display:true,text:'total latency (ms)'}},y:{title:{display:true,text:"
	"'time to first chunk (ms)'}}}});\n"
	"document.body.dataset.chartsTotal=String(document.querySelectorAll('canvas').length);\n"
	"document.body.dataset.chartsRendered=String(drawn);\n"
	"})();\n";

static void card(FILE *out, const char *id, const char *label, const char *value_attr,
		 const char *text)
{
	fprintf(out, "<div class=\"card\"><div class=\"label\">%s</div><div class=\"value\" id=\"%s\""
		     " data-value=\"%s\">%s</div></div>\n", label, id, value_attr, text);
}

static void write_cards(FILE *out, const struct report_totals *t)
{
	char v[64], txt[64];

#define CARD_U(id, label, x)                                                      \
	snprintf(v, sizeof(v), "%llu", (unsigned long long)(x));                  \
	card(out, id, label, v, v)
	CARD_U("total-calls", "calls", t->calls);
	CARD_U("total-errors", "errors", t->errors);
	CARD_U("total-input-tokens", "input tokens", t->in);
	CARD_U("total-output-tokens", "output tokens", t->out);
	CARD_U("total-streamed", "streamed calls", t->streamed);
	CARD_U("total-lines", "lines read", t->lines);
	CARD_U("total-bad-lines", "bad lines", t->bad_lines);
#undef CARD_U
	if (t->cost_known) {
		snprintf(v, sizeof(v), "%.10g", t->spend);
		snprintf(txt, sizeof(txt), "$%.4f", t->spend);
		card(out, "total-spend", "spend (USD)", v, txt);
	} else {
		card(out, "total-spend", "spend (USD)", "", "-");
	}
}

static void write_head(FILE *out, const struct report_html_opts *o)
{
	fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
		     "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
		     "script-src 'nonce-%s'; style-src 'unsafe-inline'; img-src data:\">\n"
		     "<title>tokentap report: ", o->nonce);
	html__escape(out, o->source);
	fprintf(out, "</title>\n<style>%s</style></head>\n<body>\n", page_css);
}

static void write_summary(FILE *out, const struct report *r, const struct report_html_opts *o)
{
	fputs("<h1>tokentap report</h1>\n<p class=\"sub\">", out);
	html__escape(out, o->source);
	if (r->t.calls) {
		fputs(": calls from ", out);
		put_time(out, r->t.first_ns);
		fputs(" to ", out);
		put_time(out, r->t.last_ns);
		fputs(" UTC", out);
	}
	fputs("</p>\n<div class=\"cards\">\n", out);
	write_cards(out, &r->t);
	fputs("</div>\n", out);
	if (!r->t.cost_known)
		fputs("<p class=\"note\">No span carries tokentap.cost.usd: charts of spend show "
		      "tokens (input + output) instead.</p>\n", out);
}

static void write_charts(FILE *out)
{
	fputs("<h2>Spend over time</h2>\n<div class=\"grid\">"
	      "<div class=\"chart\"><canvas id=\"c-tenant\"></canvas></div>"
	      "<div class=\"chart\"><canvas id=\"c-model\"></canvas></div>"
	      "<div class=\"chart\"><canvas id=\"c-provider\"></canvas></div></div>\n"
	      "<h2>Distributions per model</h2>\n<div class=\"grid\">"
	      "<div class=\"chart\"><canvas id=\"c-lat\"></canvas></div>"
	      "<div class=\"chart\"><canvas id=\"c-tok-in\"></canvas></div>"
	      "<div class=\"chart\"><canvas id=\"c-tok-out\"></canvas></div></div>\n"
	      "<h2>Time to first chunk</h2>\n<div class=\"grid\">"
	      "<div class=\"chart\"><canvas id=\"c-ttfc\"></canvas></div></div>\n",
	      out);
}

static void write_errors(FILE *out, const struct report *r)
{
	fprintf(out, "<h2>Errors</h2>\n<p>%llu of %llu calls failed.</p>\n",
		(unsigned long long)r->t.errors, (unsigned long long)r->t.calls);
	if (!r->t.errors)
		return;
	write_error_counts(out, r);
	fputs("<h3>Most recent errors</h3>\n", out);
	write_kept(out, "errors", r->errors, r->n_errors, "");
}

static void write_bad_lines(FILE *out, const struct report *r)
{
	fprintf(out, "<h2>Input</h2>\n<p id=\"bad-lines\"%s>%llu lines read, %llu of them not spans"
		     " (left out).</p>\n", r->t.bad_lines ? " class=\"bad\"" : "",
		(unsigned long long)r->t.lines, (unsigned long long)r->t.bad_lines);
	if (!r->t.bad_lines)
		return;
	fputs("<ul>", out);
	for (size_t i = 0; i < r->t.bad_lines && i < REPORT_BAD_SAMPLES; i++)
		fprintf(out, "<li>line %llu: %s</li>", (unsigned long long)r->bad[i].line_no,
			r->bad[i].why);
	fputs("</ul>\n", out);
}

int report__write_html(struct report *r, FILE *out, const struct report_html_opts *o)
{
	int err;

	write_head(out, o);
	write_summary(out, r, o);
	write_charts(out);
	fputs("<h2>Per model</h2>\n", out);
	err = write_model_table(out, r);
	fputs("<h2>Slowest calls</h2>\n", out);
	write_kept(out, "slowest", r->slowest, r->n_slowest, "No calls.");
	fputs("<h2>Most expensive calls</h2>\n", out);
	write_kept(out, "costliest", r->costliest, r->n_costliest,
		   "No span carries tokentap.cost.usd.");
	write_errors(out, r);
	write_bad_lines(out, r);
	fputs("<script type=\"application/json\" id=\"tt-data\">", out);
	err = err ?: write_chart_data(out, r);
	fprintf(out, "</script>\n<script nonce=\"%s\">\n", o->nonce);
	fwrite(o->chartjs, 1, o->chartjs_len, out);
	fprintf(out, "\n</script>\n<script nonce=\"%s\">\n%s</script>\n</body></html>\n", o->nonce,
		page_js);
	if (!err && ferror(out))
		err = -EIO;
	return err;
}
