// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/top/agg.c src/top/line.c src/report/model.c src/report/html.c src/report/escape.c src/export/utf8.c src/util/jsonget.c
// FUZZ_LIBS: -ljson-c
/*
 * The views' input: lines as the control socket or a recorded spans file hold them, from the
 * network in the end. Each line goes to top's parser and aggregate and to the report's reader;
 * then every grouping is sorted by every column and the page is written. Invariants (a breach
 * aborts): each grouping's rows add up to the all-calls row, and the page has exactly its own
 * three <script> elements whatever the strings held.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"
#include "top/agg.h"

#define T0 (1700000000ull * 1000000000ull)

static size_t count(const char *hay, size_t n, const char *needle)
{
	size_t k = 0, m = strlen(needle);

	for (size_t i = 0; i + m <= n; i++)
		k += !memcmp(hay + i, needle, m);
	return k;
}

static void check_top(struct top_agg *agg)
{
	const struct top_row *rows;
	uint64_t all = 0, sum;
	size_t n = top_agg__rows(agg, TOP_KEY_ALL, T0, true, TOP_COL_CALLS, true, &rows);

	if (n)
		all = rows[0].calls;
	for (int k = 0; k < TOP_KEY_N; k++) {
		for (int c = 0; c < TOP_COL_N; c++) {
			n = top_agg__rows(agg, k, T0 + 5000000000ull, c & 1, c, c & 2, &rows);
			sum = 0;
			for (size_t i = 0; i < n; i++)
				sum += rows[i].calls;
			if (sum != all)
				abort();
		}
	}
}

static void check_report(struct report *r)
{
	struct report_html_opts o = { .source = "fuzz", .chartjs = "", .nonce = "n" };
	char *page = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&page, &n);

	if (!out)
		return;
	report__write_html(r, out, &o);
	fclose(out);
	if (count(page, n, "</script") != 3 || count(page, n, "<script") != 3)
		abort();
	free(page);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct top_agg *agg = top_agg__new(60ull * 1000000000ull, T0 - 10000000000ull);
	struct report *r = report__new();
	const char *p = (const char *)data, *end = p + size;
	struct top_health h = {};

	while (agg && r && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct top_call c;

		if (top_line__parse(p, len, &c, &h) == TOP_LINE_SPAN)
			top_agg__add(agg, &c);
		report__add_line(r, p, len);
		p += len + 1;
	}
	if (agg)
		check_top(agg);
	if (r)
		check_report(r);
	top_agg__free(agg);
	report__free(r);
	return 0;
}
