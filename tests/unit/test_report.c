// SPDX-License-Identifier: Apache-2.0
/* report/: totals from a fixture against hand-computed ones, bad lines, escaping of hostile
 * strings in every context of the page. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"
#include "tt_test.h"

#define SPAN(start, end, status, res, attrs)                                                     \
	"{\"trace_id\":\"0123456789abcdef0123456789abcdef\",\"span_id\":\"0123456789abcdef\","    \
	"\"parent_span_id\":\"\",\"name\":\"chat\",\"kind\":\"client\",\"start_time_unix_nano\":" \
	start ",\"end_time_unix_nano\":" end ",\"status\":{\"code\":\"" status                   \
	"\",\"message\":\"\"},\"resource\":{" res "},\"attributes\":{" attrs "}}"

#define HOSTILE_TENANT "<img src=x onerror=alert(1)>"
#define HOSTILE_MODEL "</script><script>alert(2)</script>"

/*
 * Hand-computed over the three spans:
 *   calls 3, errors 1 (the 429), input 100+50+30 = 180, output 20+10+7 = 37,
 *   spend 0.001+0.002 = 0.003 (the third has no cost), streamed 1,
 *   lines 6 (the blank line is not one), bad lines 3.
 */
static const char FIXTURE[] =
	SPAN("1700000000000000000", "1700000001500000000", "unset",
	     "\"process.executable.name\":\"python3\",\"process.pid\":7",
	     "\"gen_ai.provider.name\":\"openai\",\"gen_ai.request.model\":\"gpt-4o\","
	     "\"gen_ai.usage.input_tokens\":100,\"gen_ai.usage.output_tokens\":20,"
	     "\"tokentap.cost.usd\":0.001,\"tokentap.tenant\":\"acme\","
	     "\"gen_ai.response.time_to_first_chunk\":0.2") "\n"
	SPAN("1700000002000000000", "1700000002500000000", "error",
	     "\"process.executable.name\":\"node\",\"process.pid\":8",
	     "\"gen_ai.provider.name\":\"anthropic\",\"gen_ai.request.model\":\"claude\","
	     "\"gen_ai.usage.input_tokens\":50,\"gen_ai.usage.output_tokens\":10,"
	     "\"tokentap.cost.usd\":0.002,\"error.type\":\"429\"") "\n"
	"not json\n"
	"\n"
	"{\"type\":\"stats\",\"events_lost\":0}\n"
	SPAN("1700000003000000000", "1700000003250000000", "unset",
	     "\"process.executable.name\":\"curl\",\"process.pid\":9",
	     "\"gen_ai.provider.name\":\"openai\",\"gen_ai.request.model\":\"" HOSTILE_MODEL "\","
	     "\"gen_ai.usage.input_tokens\":30,\"gen_ai.usage.output_tokens\":7,"
	     "\"tokentap.tenant\":\"" HOSTILE_TENANT "\"") "\n"
	"{\"start_time_unix_nano\":1,"; /* cut short, no newline */

static struct report *load(const char *text, size_t n)
{
	struct report *r = report__new();
	FILE *in = fmemopen((void *)text, n, "r");

	CHECK(r && in);
	CHECK_EQ_INT(report__read(r, in), 0);
	fclose(in);
	return r;
}

static char *render(struct report *r)
{
	struct report_html_opts o = { .source = "spans<1>.jsonl", .chartjs = "/*chartjs*/",
				      .chartjs_len = 11, .nonce = "abc" };
	char *page = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&page, &n);

	CHECK_EQ_INT(report__write_html(r, out, &o), 0);
	fclose(out);
	return page;
}

static size_t count(const char *hay, const char *needle)
{
	size_t k = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		k++;
	return k;
}

TEST(totals_from_fixture)
{
	struct report *r = load(FIXTURE, sizeof(FIXTURE) - 1);

	CHECK_EQ_INT(r->t.calls, 3);
	CHECK_EQ_INT(r->t.errors, 1);
	CHECK_EQ_INT(r->t.in, 180);
	CHECK_EQ_INT(r->t.out, 37);
	CHECK(fabs(r->t.spend - 0.003) < 1e-12);
	CHECK_EQ_INT(r->t.cost_known, 2);
	CHECK_EQ_INT(r->t.streamed, 1);
	CHECK_EQ_INT(r->t.lines, 6);
	CHECK_EQ_INT(r->t.bad_lines, 3);
	CHECK_EQ_INT(r->bad[0].line_no, 3);
	CHECK_EQ_INT(r->bad[1].line_no, 4);
	CHECK_EQ_INT(r->bad[2].line_no, 6);
	CHECK_EQ_INT(r->t.first_ns, 1700000000000000000ull);
	CHECK_EQ_INT(r->t.last_ns, 1700000003250000000ull);
	/* Slowest first; the costliest list holds only calls with a cost. */
	CHECK_EQ_INT(r->n_slowest, 3);
	CHECK_EQ_INT(r->slowest[0].line_no, 1);
	CHECK_EQ_INT(r->slowest[1].line_no, 2);
	CHECK_EQ_INT(r->n_costliest, 2);
	CHECK_EQ_INT(r->costliest[0].line_no, 2);
	CHECK_EQ_INT(r->n_errors, 1);
	CHECK_EQ_STR(report__str(r, r->calls[1].error_type), "429");
	CHECK_EQ_STR(report__str(r, r->calls[2].dim[REPORT_DIM_TENANT]), HOSTILE_TENANT);
	CHECK_EQ_STR(report__str(r, r->calls[1].dim[REPORT_DIM_TENANT]), "(none)");
	report__free(r);
}

TEST(page_totals_equal_the_sums)
{
	struct report *r = load(FIXTURE, sizeof(FIXTURE) - 1);
	char *page = render(r);

	CHECK(strstr(page, "id=\"total-calls\" data-value=\"3\""));
	CHECK(strstr(page, "id=\"total-errors\" data-value=\"1\""));
	CHECK(strstr(page, "id=\"total-input-tokens\" data-value=\"180\""));
	CHECK(strstr(page, "id=\"total-output-tokens\" data-value=\"37\""));
	CHECK(strstr(page, "id=\"total-spend\" data-value=\"0.003\""));
	CHECK(strstr(page, "id=\"total-bad-lines\" data-value=\"3\""));
	CHECK(strstr(page, "line 3: not JSON"));
	CHECK(strstr(page, "\"metric\":\"usd\""));
	CHECK(strstr(page, "/*chartjs*/"));
	free(page);
	report__free(r);
}

TEST(hostile_strings_are_escaped_everywhere)
{
	struct report *r = load(FIXTURE, sizeof(FIXTURE) - 1);
	char *page = render(r);

	/* Exactly our three script elements end: the data, Chart.js and the page script. */
	CHECK_EQ_INT(count(page, "</script>"), 3);
	CHECK_EQ_INT(count(page, "<script"), 3);
	CHECK(!strstr(page, "<img"));
	CHECK(!strstr(page, "alert(2)</"));
	CHECK(strstr(page, "&lt;img src=x onerror=alert(1)&gt;")); /* in the call's attributes */
	CHECK(strstr(page, "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
	CHECK(strstr(page, "\\u003c/script\\u003e\\u003cscript\\u003ealert(2)")); /* chart data */
	CHECK(strstr(page, "spans&lt;1&gt;.jsonl"));
	CHECK(strstr(page, "script-src 'nonce-abc'"));
	free(page);
	report__free(r);
}

static char *escaped(void (*fn)(FILE *, const char *), const char *s)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&buf, &n);

	fn(out, s);
	fclose(out);
	return buf;
}

TEST(escapers)
{
	static const struct {
		const char *in, *html, *json;
	} cases[] = {
		{ "a&b", "a&amp;b", "\"a\\u0026b\"" },
		{ "<x y='1' z=\"2\">", "&lt;x y=&#39;1&#39; z=&quot;2&quot;&gt;",
		  "\"\\u003cx y=\\u00271\\u0027 z=\\\"2\\\"\\u003e\"" },
		{ "\x1b[2J\x7f", "\xEF\xBF\xBD[2J\xEF\xBF\xBD", "\"\\u001b[2J\\u007f\"" },
		{ "bad \xff\xc3 utf8", "bad \xEF\xBF\xBD\xEF\xBF\xBD utf8", "\"bad \\ufffd\\ufffd utf8\"" },
		{ "caf\xc3\xa9 \xe2\x80\xa8", "caf\xc3\xa9 \xe2\x80\xa8", "\"caf\xc3\xa9 \\u2028\"" },
		{ "back\\slash", "back\\slash", "\"back\\\\slash\"" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *h = escaped(html__escape, cases[i].in), *j = escaped(html__json_string, cases[i].in);

		CHECK_EQ_STR(h, cases[i].html);
		CHECK_EQ_STR(j, cases[i].json);
		free(h);
		free(j);
	}
}

TEST(bad_lines_never_become_calls)
{
	static const char *const bad[] = {
		"[1]",
		"{\"attributes\":{}}",
		"{\"start_time_unix_nano\":5,\"end_time_unix_nano\":4,\"attributes\":{}}",
		"{\"start_time_unix_nano\":\"5\",\"end_time_unix_nano\":6,\"attributes\":{}}",
		"{\"start_time_unix_nano\":5,\"end_time_unix_nano\":6,\"attributes\":{}} {}",
	};
	struct report *r = report__new();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ_INT(report__add_line(r, bad[i], strlen(bad[i])), -EINVAL);
	CHECK_EQ_INT(r->t.calls, 0);
	CHECK_EQ_INT(r->t.bad_lines, 5);
	/* Every cut of a good span is a bad line, never a call with made-up numbers. */
	const char *good = strchr(FIXTURE, '\n');
	size_t len = (size_t)(good - FIXTURE);

	for (size_t i = 1; i < len; i++)
		CHECK_EQ_INT(report__add_line(r, FIXTURE, i), -EINVAL);
	CHECK_EQ_INT(report__add_line(r, FIXTURE, len), 0);
	CHECK_EQ_INT(r->t.calls, 1);
	report__free(r);
}

TEST(overlong_line_is_counted_not_kept)
{
	size_t big = REPORT_LINE_MAX + 100;
	char *text = malloc(big + 2);
	struct report *r;

	memset(text, 'x', big);
	text[big] = '\n';
	text[big + 1] = 0;
	r = load(text, big + 1);
	CHECK_EQ_INT(r->t.lines, 1);
	CHECK_EQ_INT(r->t.bad_lines, 1);
	CHECK_EQ_STR(r->bad[0].why, "line too long");
	report__free(r);
	free(text);
}

TEST(empty_input_still_makes_a_page)
{
	struct report *r = load("", 0);
	char *page = render(r);

	CHECK(strstr(page, "id=\"total-calls\" data-value=\"0\""));
	CHECK(strstr(page, "id=\"total-spend\" data-value=\"\""));
	CHECK(strstr(page, "\"metric\":\"tokens\""));
	free(page);
	report__free(r);
}

int main(void)
{
	RUN(totals_from_fixture);
	RUN(page_totals_equal_the_sums);
	RUN(hostile_strings_are_escaped_everywhere);
	RUN(escapers);
	RUN(bad_lines_never_become_calls);
	RUN(overlong_line_is_counted_not_kept);
	RUN(empty_input_still_makes_a_page);
	TT_DONE();
}
