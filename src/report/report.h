/* SPDX-License-Identifier: Apache-2.0 */
/*
 * report/: `tokentap report SPANS.jsonl -o report.html`. model.c reads the span lines tokentap
 * writes (--format json) into calls and sums; html.c writes one self-contained page (Chart.js
 * inlined from the Debian package, data as escaped JSON); report.c is the command.
 * Every string in a span came from the network: html.c escapes each one for where it goes.
 */
#ifndef TOKENTAP_REPORT_H
#define TOKENTAP_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define REPORT_TOP_N 10		 /* slowest and most expensive calls listed */
#define REPORT_ERROR_SAMPLES 20	 /* error calls listed whole */
#define REPORT_BAD_SAMPLES 10	 /* bad lines listed by number */
#define REPORT_LINE_MAX (4u << 20) /* longer lines are bad lines */

enum report_dim { REPORT_DIM_TENANT, REPORT_DIM_MODEL, REPORT_DIM_PROVIDER, REPORT_DIM_N };

/* One call, with its strings interned (indexes into report->strs). */
struct rcall {
	uint64_t start_ns, end_ns;
	double lat_s, ttfc_s, cost; /* ttfc_s, cost: NAN when absent */
	int64_t in, out;
	bool error;
	uint32_t dim[REPORT_DIM_N];
	uint32_t error_type, process;
};

/* A call kept whole (its line) for the tables of the page. */
struct rkept {
	double value;
	uint64_t line_no;
	char *line;
};

struct rbad {
	uint64_t line_no;
	const char *why;
};

struct report_totals {
	uint64_t lines, bad_lines, calls, errors, streamed, cost_known;
	int64_t in, out;
	double spend;
	uint64_t first_ns, last_ns; /* start of the first call, end of the last */
};

struct report {
	struct rcall *calls;
	size_t n, cap;
	char **strs; /* interned strings; 0 is "" */
	size_t n_strs, cap_strs;
	uint32_t *slots; /* open addressing over strs, index + 1 */
	size_t n_slots;
	struct report_totals t;
	struct rkept slowest[REPORT_TOP_N], costliest[REPORT_TOP_N];
	size_t n_slowest, n_costliest;
	struct rkept errors[REPORT_ERROR_SAMPLES];
	size_t n_errors;
	struct rbad bad[REPORT_BAD_SAMPLES];
};

struct report *report__new(void);
void report__free(struct report *r);
/* One line (without its newline). Returns 0, or -EINVAL for a line that is not a span (counted
 * as a bad line) or -ENOMEM. Blank lines are skipped and not counted. */
int report__add_line(struct report *r, const char *line, size_t n);
/* Reads every line of in. Returns 0 or -errno of a read error. */
int report__read(struct report *r, FILE *in);
const char *report__str(const struct report *r, uint32_t id);

struct report_html_opts {
	const char *source;  /* shown as where the spans came from */
	const char *chartjs; /* the Chart.js UMD build, inlined as is */
	size_t chartjs_len;
	const char *nonce;   /* for the Content-Security-Policy of the inline scripts */
};
int report__write_html(struct report *r, FILE *out, const struct report_html_opts *o);

/* Escapes for HTML text and attribute values (& < > " '); invalid UTF-8 becomes U+FFFD. */
void html__escape(FILE *out, const char *s);
/* A JSON string safe inside <script>: also escapes < > & and U+2028/2029. */
void html__json_string(FILE *out, const char *s);

#endif
