// SPDX-License-Identifier: Apache-2.0
/* top/agg and top/line: percentiles, rates over windows, grouping, sorting, line parsing. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "top/agg.h"
#include "tt_test.h"

#define SEC 1000000000ull
#define T0 (1700000000ull * SEC)

static bool near(double a, double b)
{
	return fabs(a - b) < 1e-9 * (fabs(b) > 1 ? fabs(b) : 1);
}

static struct top_call mk(uint64_t end_ns, const char *model, double lat, int64_t in, int64_t out)
{
	struct top_call c = { .end_ns = end_ns, .latency_s = lat, .ttfc_s = NAN, .tokens_in = in,
			      .tokens_out = out, .cost_usd = NAN };

	for (int k = 0; k < TOP_KEY_N; k++)
		strcpy(c.keys[k], "-");
	strcpy(c.keys[TOP_KEY_MODEL], model);
	strcpy(c.keys[TOP_KEY_PROVIDER], model[0] == 'c' ? "anthropic" : "openai");
	return c;
}

static const struct top_row *row_of(const struct top_row *rows, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rows[i].key, key))
			return &rows[i];
	return NULL;
}

TEST(percentile_nearest_rank)
{
	double v[20];

	for (int i = 0; i < 20; i++)
		v[i] = i + 1;
	CHECK(near(top__percentile(v, 10, 0.50), 5));
	CHECK(near(top__percentile(v, 10, 0.95), 10));
	CHECK(near(top__percentile(v, 20, 0.50), 10));
	CHECK(near(top__percentile(v, 20, 0.95), 19));
	CHECK(near(top__percentile(v, 1, 0.95), 1));
	CHECK(near(top__percentile(v, 3, 0.0), 1)); /* rank is at least 1 */
	CHECK(isnan(top__percentile(v, 0, 0.5)));
}

/* Ten calls, one per second, t0+1s .. t0+10s: latency i/10 s, 100 tokens in, 10 out. */
static struct top_agg *ten_calls(uint64_t window)
{
	struct top_agg *a = top_agg__new(window, T0);

	for (int i = 1; i <= 10; i++) {
		struct top_call c = mk(T0 + i * SEC, "gpt-4o", i / 10.0, 100, 10);

		if (i % 2 == 0)
			c.ttfc_s = i / 100.0;
		top_agg__add(a, &c);
	}
	return a;
}

TEST(rates_over_whole_window)
{
	struct top_agg *a = ten_calls(60 * SEC);
	const struct top_row *r;
	size_t n = top_agg__rows(a, TOP_KEY_MODEL, T0 + 10 * SEC, false, TOP_COL_CALLS, true, &r);

	CHECK_EQ_INT(n, 1);
	/* The window is longer than the view has run: rates are over the 10 s since start. */
	CHECK(near(r[0].calls_rate, 1.0));
	CHECK(near(r[0].in_rate, 100.0));
	CHECK(near(r[0].out_rate, 10.0));
	CHECK_EQ_INT(r[0].wcalls, 10);
	CHECK(near(r[0].lat_p50, 0.5));
	CHECK(near(r[0].lat_p95, 1.0));
	/* Streams only: 0.02 0.04 0.06 0.08 0.10 */
	CHECK(near(r[0].ttfc_p50, 0.06));
	CHECK(near(r[0].ttfc_p95, 0.10));
	CHECK(isnan(r[0].spend_rate));
	CHECK(isnan(r[0].spend));
	top_agg__free(a);
}

TEST(rates_over_short_window)
{
	struct top_agg *a = ten_calls(5 * SEC);
	const struct top_row *r;
	size_t n = top_agg__rows(a, TOP_KEY_MODEL, T0 + 10 * SEC, false, TOP_COL_CALLS, true, &r);

	CHECK_EQ_INT(n, 1);
	/* (t0+5, t0+10]: calls 6..10 */
	CHECK_EQ_INT(r[0].wcalls, 5);
	CHECK(near(r[0].calls_rate, 1.0));
	CHECK(near(r[0].lat_p50, 0.8));
	CHECK(near(r[0].lat_p95, 1.0));
	CHECK(near(r[0].ttfc_p50, 0.08));
	CHECK_EQ_INT(r[0].calls, 10); /* totals are since start */
	CHECK_EQ_INT(r[0].tokens_in, 1000);
	CHECK_EQ_INT(r[0].tokens_out, 100);
	/* Much later the window is empty and the totals are unchanged. */
	n = top_agg__rows(a, TOP_KEY_MODEL, T0 + 100 * SEC, false, TOP_COL_CALLS, true, &r);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(r[0].wcalls, 0);
	CHECK(near(r[0].calls_rate, 0));
	CHECK(isnan(r[0].lat_p50));
	CHECK(isnan(top_row__value(&r[0], TOP_COL_ERR, false)));
	CHECK(near(top_row__value(&r[0], TOP_COL_CALLS, true), 10));
	top_agg__free(a);
}

TEST(spend_rate_and_total)
{
	struct top_agg *a = top_agg__new(60 * SEC, T0);
	struct top_call c = mk(T0 + 2 * SEC, "gpt-4o", 1, 1, 1);
	const struct top_row *r;

	c.cost_usd = 0.25;
	top_agg__add(a, &c);
	c.end_ns = T0 + 4 * SEC;
	c.cost_usd = 0.75;
	top_agg__add(a, &c);
	c.end_ns = T0 + 5 * SEC;
	c.cost_usd = NAN; /* a span without cost adds nothing and blanks nothing */
	top_agg__add(a, &c);
	top_agg__rows(a, TOP_KEY_MODEL, T0 + 10 * SEC, false, TOP_COL_SPEND, true, &r);
	CHECK(near(r[0].spend, 1.0));
	CHECK(near(r[0].spend_rate, 1.0 / 10 * 3600));
	CHECK(near(top_row__value(&r[0], TOP_COL_SPEND_RATE, false), 360));
	top_agg__free(a);
}

/* gpt-4o x3, claude x1 (an error), gpt-mini x2 with costs. */
static struct top_agg *mixed(void)
{
	struct top_agg *a = top_agg__new(60 * SEC, T0);
	struct top_call c;

	for (int i = 0; i < 3; i++) {
		c = mk(T0 + SEC, "gpt-4o", 0.5, 10, 1);
		top_agg__add(a, &c);
	}
	c = mk(T0 + SEC, "claude", 2.0, 5, 0);
	c.error = true;
	top_agg__add(a, &c);
	for (int i = 0; i < 2; i++) {
		c = mk(T0 + SEC, "gpt-mini", 0.1, 1000, 100);
		c.cost_usd = 0.01 * (i + 1);
		top_agg__add(a, &c);
	}
	return a;
}

TEST(grouping_and_sorting)
{
	struct top_agg *a = mixed();
	const struct top_row *r;
	uint64_t now = T0 + 2 * SEC;
	size_t n = top_agg__rows(a, TOP_KEY_MODEL, now, true, TOP_COL_CALLS, true, &r);

	CHECK_EQ_INT(n, 3);
	CHECK_EQ_STR(r[0].key, "gpt-4o");
	CHECK_EQ_STR(r[1].key, "gpt-mini");
	CHECK_EQ_STR(r[2].key, "claude");
	n = top_agg__rows(a, TOP_KEY_MODEL, now, true, TOP_COL_CALLS, false, &r);
	CHECK_EQ_STR(r[0].key, "claude");
	n = top_agg__rows(a, TOP_KEY_MODEL, now, true, TOP_COL_KEY, false, &r);
	CHECK_EQ_STR(r[0].key, "claude");
	CHECK_EQ_STR(r[2].key, "gpt-mini");
	n = top_agg__rows(a, TOP_KEY_MODEL, now, false, TOP_COL_ERR, true, &r);
	CHECK_EQ_STR(r[0].key, "claude");
	CHECK(near(top_row__value(&r[0], TOP_COL_ERR, false), 1.0));
	CHECK_EQ_STR(r[1].key, "gpt-4o"); /* 0 errors each: ties by key */
	CHECK_EQ_STR(r[2].key, "gpt-mini");
	/* Blank spend sorts last both ways. */
	n = top_agg__rows(a, TOP_KEY_MODEL, now, true, TOP_COL_SPEND, true, &r);
	CHECK_EQ_STR(r[0].key, "gpt-mini");
	CHECK(near(r[0].spend, 0.03));
	CHECK(isnan(r[2].spend));
	n = top_agg__rows(a, TOP_KEY_MODEL, now, true, TOP_COL_SPEND, false, &r);
	CHECK_EQ_STR(r[0].key, "gpt-mini");
	n = top_agg__rows(a, TOP_KEY_MODEL, now, true, TOP_COL_LAT_P50, true, &r);
	CHECK_EQ_STR(r[0].key, "claude");
	CHECK(near(r[0].lat_p50, 2.0));
	/* Another grouping over the same calls, and the all-calls row. */
	n = top_agg__rows(a, TOP_KEY_PROVIDER, now, true, TOP_COL_TOK_IN, true, &r);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_STR(r[0].key, "openai");
	CHECK_EQ_INT(r[0].calls, 5);
	CHECK_EQ_INT(r[0].tokens_in, 2030);
	CHECK_EQ_INT(row_of(r, n, "anthropic")->errors, 1);
	n = top_agg__rows(a, TOP_KEY_ALL, now, true, TOP_COL_CALLS, true, &r);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(r[0].calls, 6);
	CHECK_EQ_INT(r[0].tokens_out, 203);
	CHECK(near(top_row__value(&r[0], TOP_COL_ERR, true), 1.0 / 6));
	top_agg__free(a);
}

TEST(groups_are_bounded)
{
	struct top_agg *a = top_agg__new(60 * SEC, T0);
	const struct top_row *r;
	char name[32];
	size_t n;

	for (int i = 0; i < TOP_MAX_GROUPS + 500; i++) {
		struct top_call c;

		snprintf(name, sizeof(name), "m%d", i);
		c = mk(T0 + SEC, name, 0.1, 1, 1);
		top_agg__add(a, &c);
	}
	n = top_agg__rows(a, TOP_KEY_MODEL, T0 + 2 * SEC, true, TOP_COL_CALLS, true, &r);
	CHECK_EQ_INT(n, TOP_MAX_GROUPS);
	CHECK_EQ_STR(r[0].key, TOP_OTHER);
	CHECK_EQ_INT(r[0].calls, 500 + 1);
	top_agg__free(a);
}

TEST(full_window_keeps_rates_right)
{
	struct top_agg *a = top_agg__new(600 * SEC, T0);
	const struct top_row *r;
	const int extra = 1000;

	/* One call per ms: the ring overflows by `extra`, so the window starts at the newest call
	 * pushed out and the rate stays 1000/s. */
	for (int i = 1; i <= TOP_WINDOW_CAP + extra; i++) {
		struct top_call c = mk(T0 + (uint64_t)i * 1000000, "m", 0.1, 1, 1);

		top_agg__add(a, &c);
	}
	top_agg__rows(a, TOP_KEY_MODEL, T0 + (uint64_t)(TOP_WINDOW_CAP + extra) * 1000000, false,
		      TOP_COL_CALLS, true, &r);
	CHECK_EQ_INT(r[0].wcalls, TOP_WINDOW_CAP);
	CHECK(fabs(r[0].calls_rate - 1000.0) < 0.1);
	CHECK_EQ_INT(r[0].calls, TOP_WINDOW_CAP + extra);
	top_agg__free(a);
}

TEST(history_and_recent)
{
	struct top_agg *a = top_agg__new(60 * SEC, T0);
	uint32_t calls[5], errs[5];
	struct top_call c;

	for (int i = 0; i < 3; i++) {
		c = mk(T0 + 7 * SEC + i, "a", 0.1, 1, 1);
		top_agg__add(a, &c);
	}
	c = mk(T0 + 9 * SEC + 5, "b", 0.1, 1, 1);
	c.error = true;
	top_agg__add(a, &c);
	top_agg__history(a, T0 + 9 * SEC + 500, 5, calls, errs);
	/* seconds 5 6 7 8 9 */
	CHECK_EQ_INT(calls[0], 0);
	CHECK_EQ_INT(calls[2], 3);
	CHECK_EQ_INT(calls[3], 0);
	CHECK_EQ_INT(calls[4], 1);
	CHECK_EQ_INT(errs[4], 1);
	CHECK_EQ_INT(errs[2], 0);
	CHECK_EQ_STR(top_agg__recent(a, 0)->keys[TOP_KEY_MODEL], "b");
	CHECK_EQ_STR(top_agg__recent(a, 1)->keys[TOP_KEY_MODEL], "a");
	CHECK(top_agg__recent(a, 4) == NULL);
	top_agg__free(a);
}

static const char SPAN[] =
	"{\"trace_id\":\"0123456789abcdef0123456789abcdef\",\"span_id\":\"0123456789abcdef\","
	"\"parent_span_id\":\"\",\"name\":\"chat gpt-4o\",\"kind\":\"client\","
	"\"start_time_unix_nano\":1700000000000000000,\"end_time_unix_nano\":1700000001250000000,"
	"\"status\":{\"code\":\"unset\",\"message\":\"\"},"
	"\"resource\":{\"service.name\":\"curl\",\"process.pid\":4242,"
	"\"process.executable.name\":\"curl\",\"host.name\":\"h\"},"
	"\"attributes\":{\"gen_ai.provider.name\":\"openai\",\"gen_ai.request.model\":"
	"\"gpt-4o\\u001b[2J\",\"gen_ai.usage.input_tokens\":12,\"gen_ai.usage.output_tokens\":34,"
	"\"gen_ai.response.time_to_first_chunk\":0.25,\"tokentap.cost.usd\":0.0015,"
	"\"tokentap.tenant\":\"acme\",\"tokentap.api_key.fingerprint\":\"sha256:ab12\"}}";

TEST(parse_span_line)
{
	struct top_call c;
	struct top_health h = {};

	CHECK_EQ_INT(top_line__parse(SPAN, strlen(SPAN), &c, &h), TOP_LINE_SPAN);
	CHECK_EQ_INT(c.end_ns, 1700000001250000000ull);
	CHECK(near(c.latency_s, 1.25));
	CHECK(near(c.ttfc_s, 0.25));
	CHECK(near(c.cost_usd, 0.0015));
	CHECK_EQ_INT(c.tokens_in, 12);
	CHECK_EQ_INT(c.tokens_out, 34);
	CHECK(!c.error);
	CHECK_EQ_STR(c.keys[TOP_KEY_PROCESS], "curl[4242]");
	CHECK_EQ_STR(c.keys[TOP_KEY_CONTAINER], "(host)");
	CHECK_EQ_STR(c.keys[TOP_KEY_PROVIDER], "openai");
	/* The escape sequence from the network cannot reach the terminal. */
	CHECK_EQ_STR(c.keys[TOP_KEY_MODEL], "gpt-4o?[2J");
	CHECK_EQ_STR(c.keys[TOP_KEY_TENANT], "acme");
	CHECK_EQ_STR(c.keys[TOP_KEY_API_KEY], "sha256:ab12");
	CHECK(!h.seen);
}

TEST(parse_span_without_optional_attributes)
{
	const char *l = "{\"start_time_unix_nano\":5,\"end_time_unix_nano\":7,\"status\":{\"code\":"
			"\"error\"},\"resource\":{\"container.id\":\"0123456789abcdef0123\","
			"\"k8s.pod.name\":\"web-1\",\"k8s.namespace.name\":\"prod\"},"
			"\"attributes\":{\"error.type\":\"429\"}}";
	struct top_call c;
	struct top_health h = {};

	CHECK_EQ_INT(top_line__parse(l, strlen(l), &c, &h), TOP_LINE_SPAN);
	CHECK(c.error);
	CHECK(isnan(c.cost_usd));
	CHECK(isnan(c.ttfc_s));
	CHECK_EQ_INT(c.tokens_in, 0);
	CHECK_EQ_STR(c.keys[TOP_KEY_CONTAINER], "prod/web-1");
	CHECK_EQ_STR(c.keys[TOP_KEY_MODEL], "(unknown)");
	CHECK_EQ_STR(c.keys[TOP_KEY_TENANT], "(none)");
	CHECK_EQ_STR(c.keys[TOP_KEY_PROCESS], "?[0]");
}

TEST(parse_stats_and_bad_lines)
{
	const char *st = "{\"type\":\"stats\",\"events_lost\":3,\"parse_errors\":2,"
			 "\"export_backlog\":7,\"client_dropped\":1}";
	static const char *const bad[] = {
		"", "not json", "[1,2]", "{\"type\":\"other\"}", "{\"attributes\":{}}",
		"{\"start_time_unix_nano\":1,\"end_time_unix_nano\":2,\"attributes\":[]}",
		"{\"start_time_unix_nano\":1,\"end_time_unix_nano\":2,\"attributes\":{}} trailing",
		"{\"start_time_unix_nano\":1,",
	};
	struct top_call c;
	struct top_health h = {};

	CHECK_EQ_INT(top_line__parse(st, strlen(st), &c, &h), TOP_LINE_STATS);
	CHECK(h.seen);
	CHECK_EQ_INT(h.events_lost, 3);
	CHECK_EQ_INT(h.parse_errors, 2);
	CHECK_EQ_INT(h.export_backlog, 7);
	CHECK_EQ_INT(h.client_dropped, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ_INT(top_line__parse(bad[i], strlen(bad[i]), &c, &h), -EINVAL);
	/* Every prefix of a good line is rejected, never misread. */
	for (size_t i = 0; i < strlen(SPAN); i++)
		CHECK(top_line__parse(SPAN, i, &c, &h) == -EINVAL);
}

int main(void)
{
	RUN(percentile_nearest_rank);
	RUN(rates_over_whole_window);
	RUN(rates_over_short_window);
	RUN(spend_rate_and_total);
	RUN(grouping_and_sorting);
	RUN(groups_are_bounded);
	RUN(full_window_keeps_rates_right);
	RUN(history_and_recent);
	RUN(parse_span_line);
	RUN(parse_span_without_optional_attributes);
	RUN(parse_stats_and_bad_lines);
	TT_DONE();
}
