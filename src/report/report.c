// SPDX-License-Identifier: Apache-2.0
/*
 * `tokentap report SPANS.jsonl -o report.html`: the spans a run of `tokentap --format json`
 * wrote, as one page that opens anywhere without a network. Chart.js is read from the Debian
 * package libjs-chart.js (or --chartjs PATH) and inlined.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "report/report.h"

#define CHARTJS_DEFAULT "/usr/share/javascript/chart.js/chart.min.js"
#define CHARTJS_MAX (8u << 20)

struct report_opts {
	const char *in, *out, *chartjs;
};

static void report__usage(FILE *out)
{
	fprintf(out,
		"Usage: tokentap report [options] SPANS.jsonl\n"
		"Writes one self-contained HTML page from spans written by `tokentap --format json`:\n"
		"spend over time, distributions, first-chunk times, slowest and costliest calls, errors.\n\n"
		"  -o, --output FILE    where to write the page (default report.html; - for stdout)\n"
		"      --chartjs PATH   Chart.js UMD build to inline (default $TOKENTAP_CHARTJS, else\n"
		"                       " CHARTJS_DEFAULT ", from libjs-chart.js)\n"
		"  -h, --help           this help\n"
		"SPANS.jsonl may be - for stdin. Lines that are not spans are counted and listed.\n");
}

static int report__parse_flags(int argc, char **argv, struct report_opts *o)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "chartjs", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			o->out = optarg;
			break;
		case 'c':
			o->chartjs = optarg;
			break;
		case 'h':
			report__usage(stdout);
			exit(0);
		default:
			report__usage(stderr);
			return -EINVAL;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "tokentap report: give one file of spans (see --help)\n");
		return -EINVAL;
	}
	o->in = argv[optind];
	return 0;
}

/* The whole library, checked so that inlining it cannot end its <script> element early. */
static char *chartjs__load(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = f ? malloc(CHARTJS_MAX + 1) : NULL;

	if (!f || !buf) {
		fprintf(stderr, "tokentap report: cannot read Chart.js at %s: %s (Debian: apt-get "
				"install libjs-chart.js, or give --chartjs PATH)\n", path, strerror(errno));
		goto fail;
	}
	*len = fread(buf, 1, CHARTJS_MAX + 1, f);
	buf[*len < CHARTJS_MAX ? *len : CHARTJS_MAX] = 0;
	if (ferror(f) || *len > CHARTJS_MAX || strlen(buf) != *len || strcasestr(buf, "</script") ||
	    strstr(buf, "<!--")) {
		fprintf(stderr, "tokentap report: %s does not look like Chart.js that can be inlined\n",
			path);
		goto fail;
	}
	fclose(f);
	return buf;
fail:
	if (f)
		fclose(f);
	free(buf);
	return NULL;
}

static void nonce__make(char *out, size_t n)
{
	unsigned char b[16] = {};

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		fprintf(stderr, "tokentap report: no random bytes for the script nonce\n");
	for (size_t i = 0; i < sizeof(b) && 2 * i + 2 < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int report__read_input(struct report *r, const char *path)
{
	FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
	int err;

	if (!in) {
		fprintf(stderr, "tokentap report: cannot open %s: %s\n", path, strerror(errno));
		return -errno;
	}
	err = report__read(r, in);
	if (err)
		fprintf(stderr, "tokentap report: reading %s failed: %s\n", path, strerror(-err));
	if (in != stdin)
		fclose(in);
	return err;
}

static int report__write(struct report *r, const struct report_opts *o, const char *js,
			 size_t js_len)
{
	struct report_html_opts ho = { .source = o->in, .chartjs = js, .chartjs_len = js_len };
	char nonce[33] = "";
	FILE *out = strcmp(o->out, "-") ? fopen(o->out, "w") : stdout;
	int err;

	if (!out) {
		fprintf(stderr, "tokentap report: cannot write %s: %s\n", o->out, strerror(errno));
		return -errno;
	}
	nonce__make(nonce, sizeof(nonce));
	ho.nonce = nonce;
	err = report__write_html(r, out, &ho);
	if (out != stdout && fclose(out) && !err)
		err = -errno;
	if (err)
		fprintf(stderr, "tokentap report: writing %s failed: %s\n", o->out, strerror(-err));
	return err;
}

int report__main(int argc, char **argv)
{
	struct report_opts o = { .out = "report.html", .chartjs = getenv("TOKENTAP_CHARTJS") };
	struct report *r = NULL;
	size_t js_len = 0;
	char *js = NULL;
	int err;

	if (report__parse_flags(argc, argv, &o))
		return 2;
	if (!o.chartjs || !*o.chartjs)
		o.chartjs = CHARTJS_DEFAULT;
	js = chartjs__load(o.chartjs, &js_len);
	r = report__new();
	err = !js ? -ENOENT : !r ? -ENOMEM : report__read_input(r, o.in);
	if (!err)
		err = report__write(r, &o, js, js_len);
	if (!err)
		fprintf(stderr, "tokentap report: %s: %llu calls, %llu bad lines of %llu\n", o.out,
			(unsigned long long)r->t.calls, (unsigned long long)r->t.bad_lines,
			(unsigned long long)r->t.lines);
	report__free(r);
	free(js);
	return err ? 1 : 0;
}
