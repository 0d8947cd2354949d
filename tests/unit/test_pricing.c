// SPDX-License-Identifier: Apache-2.0
/*
 * span/pricing.c: the pricing file's shape, model lookup (aliases, dated variants, prefixes),
 * the cost of OpenAI and Anthropic calls (cached and reasoning tokens), unknown models (no
 * cost, counted) and a reload that fails keeping the previous table.
 */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "span/pricing.h"
#include "tt_test.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

static const char TABLE[] =
	"{\n"
	"  \"_source\": \"unit test\", \"_date\": \"2026-11-23\",\n"
	"  \"gpt-4o\": {\"provider\": \"openai\", \"input_per_mtok\": 2.5,\n"
	"             \"output_per_mtok\": 10, \"cache_read_per_mtok\": 1.25,\n"
	"             \"aliases\": [\"my-gpt\", \"gpt-4o-latest\"]},\n"
	"  \"gpt-4o-mini\": {\"provider\": \"openai\", \"input_per_mtok\": 0.15, "
	"\"output_per_mtok\": 0.6},\n"
	"  \"gpt-4o-2024-05-13\": {\"provider\": \"openai\", \"input_per_mtok\": 5, "
	"\"output_per_mtok\": 15},\n"
	"  \"o-think\": {\"provider\": \"openai\", \"input_per_mtok\": 1, \"output_per_mtok\": 4,\n"
	"              \"reasoning_per_mtok\": 8, \"_note\": \"comments inside entries too\"},\n"
	"  \"claude-sonnet-4-5\": {\"provider\": \"anthropic\", \"input_per_mtok\": 3,\n"
	"      \"output_per_mtok\": 15, \"cache_read_per_mtok\": 0.3,\n"
	"      \"cache_write_per_mtok\": 3.75},\n"
	"  \"gpt-4\": {\"provider\": \"openai\", \"input_per_mtok\": 30, \"output_per_mtok\": 60}\n"
	"}\n";

static struct pricing_table *table(void)
{
	char err[256] = "";
	struct pricing_table *t = pricing_table__parse(TABLE, sizeof(TABLE) - 1, err, sizeof(err));

	if (!t)
		fprintf(stderr, "  test table: %s\n", err);
	return t;
}

static const char *lookup(const struct pricing_table *t, const char *model)
{
	const struct price *p = pricing_table__lookup(t, model);

	return p ? p->name : "(none)";
}

static struct llm_call call(const char *model, int64_t in, int64_t out)
{
	struct llm_call c = {};

	snprintf(c.response_model, sizeof(c.response_model), "%s", model);
	c.input_tokens = in;
	c.output_tokens = out;
	c.cache_read_tokens = c.cache_creation_tokens = c.reasoning_tokens = -1;
	return c;
}

TEST(parse_counts_models_and_ignores_comments)
{
	struct pricing_table *t = table();

	CHECK(t != NULL);
	CHECK_EQ_INT(pricing_table__count(t), 6);
	CHECK_EQ_STR(lookup(t, "_source"), "(none)");
	pricing_table__free(t);
}

TEST(lookup_exact_alias_and_case)
{
	struct pricing_table *t = table();

	CHECK_EQ_STR(lookup(t, "gpt-4o"), "gpt-4o");
	CHECK_EQ_STR(lookup(t, "GPT-4o"), "gpt-4o");
	CHECK_EQ_STR(lookup(t, "my-gpt"), "gpt-4o");
	CHECK_EQ_STR(lookup(t, "gpt-4o-latest"), "gpt-4o");
	CHECK_EQ_STR(lookup(t, "gpt-4o-mini"), "gpt-4o-mini");
	CHECK_EQ_STR(lookup(t, "openai/gpt-4o-mini"), "gpt-4o-mini"); /* a router's vendor/ */
	CHECK_EQ_STR(lookup(t, ""), "(none)");
	CHECK_EQ_STR(lookup(t, NULL), "(none)");
	pricing_table__free(t);
}

TEST(lookup_dated_variants)
{
	struct pricing_table *t = table();

	CHECK_EQ_STR(lookup(t, "gpt-4o-2024-08-06"), "gpt-4o");
	CHECK_EQ_STR(lookup(t, "gpt-4o-mini-2024-07-18"), "gpt-4o-mini");
	CHECK_EQ_STR(lookup(t, "claude-sonnet-4-5-20250929"), "claude-sonnet-4-5");
	CHECK_EQ_STR(lookup(t, "claude-sonnet-4-5@20250929"), "claude-sonnet-4-5"); /* Vertex */
	/* A dated variant with a price of its own wins over its base name. */
	CHECK_EQ_STR(lookup(t, "gpt-4o-2024-05-13"), "gpt-4o-2024-05-13");
	CHECK_EQ_STR(lookup(t, "my-gpt-2025-01-01"), "gpt-4o"); /* aliases have dated forms */
	pricing_table__free(t);
}

TEST(lookup_longest_prefix_on_name_parts)
{
	struct pricing_table *t = table();

	CHECK_EQ_STR(lookup(t, "gpt-4o-audio-preview"), "gpt-4o");
	CHECK_EQ_STR(lookup(t, "gpt-4o-mini-search-preview"), "gpt-4o-mini"); /* the longer */
	CHECK_EQ_STR(lookup(t, "gpt-4-0613"), "gpt-4");
	/* Only whole parts: "gpt-4" is not a price for "gpt-4.5-preview" or "gpt-4x". */
	CHECK_EQ_STR(lookup(t, "gpt-4.5-preview"), "(none)");
	CHECK_EQ_STR(lookup(t, "gpt-4x"), "(none)");
	CHECK_EQ_STR(lookup(t, "gpt"), "(none)");
	CHECK_EQ_STR(lookup(t, "llama-3.1-70b"), "(none)");
	pricing_table__free(t);
}

TEST(openai_cached_tokens_are_part_of_input)
{
	struct pricing_table *t = table();
	struct llm_call c = call("gpt-4o-2024-08-06", 1000, 200);
	double usd = -1;

	c.cache_read_tokens = 400;
	CHECK(price__cost(pricing_table__lookup(t, c.response_model), &c, &usd));
	/* 600 uncached at 2.50, 400 cached at 1.25, 200 out at 10.00 (per million) */
	CHECK(NEAR(usd, (600 * 2.5 + 400 * 1.25 + 200 * 10.0) / 1e6));
	c.cache_read_tokens = 0;
	CHECK(price__cost(pricing_table__lookup(t, c.response_model), &c, &usd));
	CHECK(NEAR(usd, (1000 * 2.5 + 200 * 10.0) / 1e6));
	pricing_table__free(t);
}

TEST(missing_cache_rate_falls_back_to_input_rate)
{
	struct pricing_table *t = table();
	struct llm_call c = call("gpt-4o-mini", 1000, 100);
	double usd = -1;

	c.cache_read_tokens = 500;
	CHECK(price__cost(pricing_table__lookup(t, "gpt-4o-mini"), &c, &usd));
	CHECK(NEAR(usd, (1000 * 0.15 + 100 * 0.6) / 1e6));
	pricing_table__free(t);
}

TEST(reasoning_tokens)
{
	struct pricing_table *t = table();
	struct llm_call c = call("o-think", 100, 1000);
	double usd = -1;

	/* Part of output; a separate rate applies to them only. */
	c.reasoning_tokens = 700;
	CHECK(price__cost(pricing_table__lookup(t, "o-think"), &c, &usd));
	CHECK(NEAR(usd, (100 * 1.0 + 300 * 4.0 + 700 * 8.0) / 1e6));
	/* Without a reasoning rate they are output tokens like the others. */
	c = call("gpt-4o", 100, 1000);
	c.reasoning_tokens = 700;
	CHECK(price__cost(pricing_table__lookup(t, "gpt-4o"), &c, &usd));
	CHECK(NEAR(usd, (100 * 2.5 + 1000 * 10.0) / 1e6));
	/* More reasoning than output (a provider's bad count) is clamped. */
	c = call("o-think", 0, 10);
	c.reasoning_tokens = 50;
	CHECK(price__cost(pricing_table__lookup(t, "o-think"), &c, &usd));
	CHECK(NEAR(usd, 10 * 8.0 / 1e6));
	pricing_table__free(t);
}

TEST(anthropic_cache_read_and_write)
{
	struct pricing_table *t = table();
	/* The llm stage's input_tokens include both cached parts: 100 + 1000 + 500. */
	struct llm_call c = call("claude-sonnet-4-5-20250929", 1600, 50);
	double usd = -1;

	c.provider = LLM_PROVIDER_ANTHROPIC;
	c.cache_read_tokens = 1000;
	c.cache_creation_tokens = 500;
	CHECK(price__cost(pricing_table__lookup(t, c.response_model), &c, &usd));
	CHECK(NEAR(usd, (100 * 3.0 + 1000 * 0.3 + 500 * 3.75 + 50 * 15.0) / 1e6));
	/* Inconsistent counts never give a negative uncached part. */
	c.input_tokens = 10;
	CHECK(price__cost(pricing_table__lookup(t, c.response_model), &c, &usd));
	CHECK(NEAR(usd, (1000 * 0.3 + 500 * 3.75 + 50 * 15.0) / 1e6));
	pricing_table__free(t);
}

TEST(unknown_model_gets_no_cost_and_is_counted)
{
	struct llm_call c = call("mystery-model-7", 100, 100);
	struct span s = {};
	uint64_t before = pricing__unpriced_count();
	double usd = 42;

	pricing__set_table(table());
	CHECK(!pricing__cost(&c, &usd));
	CHECK(usd == 42);
	CHECK_EQ_INT(pricing__unpriced_count(), before + 1);
	span__add_cost(&s, &c);
	CHECK(span__find_attr(&s, "tokentap.cost.usd") == NULL);
	CHECK_EQ_INT(pricing__unpriced_count(), before + 2);
	/* The request model is the fallback when the response names none we know. */
	snprintf(c.request_model, sizeof(c.request_model), "gpt-4o");
	span__add_cost(&s, &c);
	CHECK(span__find_attr(&s, "tokentap.cost.usd") != NULL);
	CHECK(NEAR(span__find_attr(&s, "tokentap.cost.usd")->d, 100 * 2.5e-6 + 100 * 10e-6));
	CHECK_EQ_INT(pricing__unpriced_count(), before + 2);
	attrs__free(s.attrs, s.n_attrs);
	pricing__exit();
}

TEST(no_usage_gets_no_cost)
{
	struct llm_call c = call("gpt-4o", -1, -1);
	uint64_t before = pricing__no_usage_count(), unpriced = pricing__unpriced_count();
	double usd;

	pricing__set_table(table());
	CHECK(!pricing__cost(&c, &usd));
	c.input_tokens = 10; /* only one side known: the cost is not known either */
	CHECK(!pricing__cost(&c, &usd));
	CHECK_EQ_INT(pricing__no_usage_count(), before + 2);
	CHECK_EQ_INT(pricing__unpriced_count(), unpriced);
	c.output_tokens = 0;
	CHECK(pricing__cost(&c, &usd));
	CHECK(NEAR(usd, 10 * 2.5e-6));
	pricing__exit();
}

static bool rejects(const char *doc, const char *want_in_err)
{
	char err[256] = "";
	struct pricing_table *t = pricing_table__parse(doc, strlen(doc), err, sizeof(err));

	if (t) {
		pricing_table__free(t);
		fprintf(stderr, "  accepted: %s\n", doc);
		return false;
	}
	if (!strstr(err, want_in_err)) {
		fprintf(stderr, "  error '%s' lacks '%s'\n", err, want_in_err);
		return false;
	}
	return true;
}

TEST(bad_files_are_rejected_with_a_reason)
{
	CHECK(rejects("", "not valid JSON"));
	CHECK(rejects("[]", "object keyed by model"));
	CHECK(rejects("{\"m\": 1}", "expected an object"));
	CHECK(rejects("{\"m\": {\"provider\": \"x\", \"input_per_mtok\": 1}}", "required"));
	CHECK(rejects("{\"m\": {\"input_per_mtok\": 1, \"output_per_mtok\": 1}}", "required"));
	CHECK(rejects("{\"m\": {\"provider\": \"x\", \"input_per_mtok\": -1, "
		      "\"output_per_mtok\": 1}}", "between 0"));
	CHECK(rejects("{\"m\": {\"provider\": \"x\", \"input_per_mtok\": \"1\", "
		      "\"output_per_mtok\": 1}}", "must be a number"));
	CHECK(rejects("{\"m\": {\"provider\": \"x\", \"input_per_mtok\": 1, "
		      "\"output_per_mtok\": 1, \"cache_read_per_mtoks\": 1}}", "unknown field"));
	CHECK(rejects("{\"m\": {\"provider\": \"x\", \"input_per_mtok\": 1, "
		      "\"output_per_mtok\": 1, \"aliases\": \"n\"}}", "array"));
	CHECK(rejects("{\"m\": {\"provider\": \"x\", \"input_per_mtok\": 1, "
		      "\"output_per_mtok\": 1}, \"n\": {\"provider\": \"x\", "
		      "\"input_per_mtok\": 1, \"output_per_mtok\": 1, \"aliases\": [\"M\"]}}",
		      "names both"));
	CHECK(rejects("{\"m\": {\"provider\": \"x\", \"input_per_mtok\": 1, "
		      "\"output_per_mtok\": 1}} trailing", "trailing"));
	CHECK(rejects("{\"m\": {\"provider\": \"x\", \"input_per_mtok\": NaN, "
		      "\"output_per_mtok\": 1}}", "between 0"));
}

/* A damaged (cut) file is never taken for a smaller table, wherever it was cut. */
TEST(every_truncation_is_rejected)
{
	size_t len = sizeof(TABLE) - 1, accepted = 0;
	char err[256];

	while (len && TABLE[len - 1] == '\n')
		len--;
	for (size_t cut = 0; cut < len; cut++) {
		struct pricing_table *t = pricing_table__parse(TABLE, cut, err, sizeof(err));

		accepted += t != NULL;
		pricing_table__free(t);
	}
	CHECK_EQ_INT(accepted, 0);
	for (size_t cut = len; cut <= sizeof(TABLE) - 1; cut++) {
		struct pricing_table *t = pricing_table__parse(TABLE, cut, err, sizeof(err));

		CHECK(t != NULL);
		pricing_table__free(t);
	}
}

/* The shipped deploy/pricing.json is built in, parses, and prices the popular models. */
TEST(builtin_table)
{
	struct llm_call c = call("gpt-4o-2024-08-06", 1000000, 0);
	double usd = 0;

	CHECK_EQ_INT(pricing__init(NULL), 0);
	CHECK(pricing__cost(&c, &usd));
	CHECK(NEAR(usd, 2.5));
	snprintf(c.response_model, sizeof(c.response_model), "claude-sonnet-4-5-20250929");
	CHECK(pricing__cost(&c, &usd));
	CHECK(NEAR(usd, 3.0));
	snprintf(c.response_model, sizeof(c.response_model), "gemini-2.5-flash");
	CHECK(pricing__cost(&c, &usd));
	CHECK(NEAR(usd, 0.30));
	pricing__exit();
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

/* What SIGHUP does: a good file replaces the table; a broken one leaves it as it was. */
TEST(reload_keeps_the_old_table_when_the_new_file_is_broken)
{
	char path[] = "/tmp/tokentap-pricing-XXXXXX";
	struct llm_call c = call("gpt-4o", 1000000, 0);
	int fd = mkstemp(path);
	double usd = 0;

	close(fd);
	write_file(path, TABLE);
	CHECK_EQ_INT(pricing__init(path), 0);
	CHECK(pricing__cost(&c, &usd));
	CHECK(NEAR(usd, 2.5));
	write_file(path, "{\"gpt-4o\": {\"provider\": \"openai\", \"input_per_");
	CHECK(pricing__reload() < 0);
	CHECK(pricing__cost(&c, &usd));
	CHECK(NEAR(usd, 2.5));
	unlink(path);
	CHECK(pricing__reload() < 0); /* gone: still the old table */
	CHECK(pricing__cost(&c, &usd));
	CHECK(NEAR(usd, 2.5));
	write_file(path, "{\"gpt-4o\": {\"provider\": \"openai\", \"input_per_mtok\": 2, "
			 "\"output_per_mtok\": 8}}");
	CHECK_EQ_INT(pricing__reload(), 0);
	CHECK(pricing__cost(&c, &usd));
	CHECK(NEAR(usd, 2.0));
	unlink(path);
	pricing__exit();
}

TEST(startup_with_a_broken_file_fails)
{
	char path[] = "/tmp/tokentap-pricing-XXXXXX";
	int fd = mkstemp(path);

	close(fd);
	write_file(path, "{ nope");
	CHECK(pricing__init(path) < 0);
	CHECK(pricing__init("/nonexistent/pricing.json") < 0);
	unlink(path);
}

int main(void)
{
	RUN(parse_counts_models_and_ignores_comments);
	RUN(lookup_exact_alias_and_case);
	RUN(lookup_dated_variants);
	RUN(lookup_longest_prefix_on_name_parts);
	RUN(openai_cached_tokens_are_part_of_input);
	RUN(missing_cache_rate_falls_back_to_input_rate);
	RUN(reasoning_tokens);
	RUN(anthropic_cache_read_and_write);
	RUN(unknown_model_gets_no_cost_and_is_counted);
	RUN(no_usage_gets_no_cost);
	RUN(bad_files_are_rejected_with_a_reason);
	RUN(every_truncation_is_rejected);
	RUN(builtin_table);
	RUN(reload_keeps_the_old_table_when_the_new_file_is_broken);
	RUN(startup_with_a_broken_file_fails);
	TT_DONE();
}
