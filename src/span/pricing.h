/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prices per model and the cost of a call, as the span attribute tokentap.cost.usd.
 *
 * The table is JSON (deploy/pricing.json is built in; --pricing FILE replaces it): an object
 * keyed by model name, each value {"provider", "input_per_mtok", "output_per_mtok", and
 * optionally "cache_read_per_mtok", "cache_write_per_mtok", "reasoning_per_mtok", "aliases"}
 * in USD per million tokens. Keys starting with '_' (at the top or in an entry) are comments,
 * such as "_source" and "_date". Any other unknown field is an error: prices are money, and a
 * misspelt rate must not be silently ignored.
 *
 * A model name is looked up: exactly (case-insensitive, names and aliases), then without a
 * dated suffix (-YYYY-MM-DD, -YYYYMMDD, @YYYYMMDD), then as the longest name or alias that is
 * a prefix ending at a '-' or '@' ("gpt-4o-audio-preview" -> "gpt-4o"). A leading "vendor/"
 * ("openai/gpt-4o", "models/gemini-2.5-pro") is ignored.
 *
 * Not thread-safe except the counters: the table is used and replaced on the main loop only.
 */
#ifndef TOKENTAP_SPAN_PRICING_H
#define TOKENTAP_SPAN_PRICING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../llm/llm.h"
#include "span.h"

#define PRICING_MAX_FILE (4u << 20)

/* USD per million tokens; a rate < 0 was not given (falls back as price__cost says). */
struct price {
	char *name;
	char *provider;
	double input, output, cache_read, cache_write, reasoning;
};

struct pricing_table;

/* Parses a pricing document; NULL on error with a one-line reason in err. */
struct pricing_table *pricing_table__parse(const char *json, size_t len, char *err, size_t errlen);
struct pricing_table *pricing_table__load_file(const char *path, char *err, size_t errlen);
void pricing_table__free(struct pricing_table *t);
size_t pricing_table__count(const struct pricing_table *t);
const struct price *pricing_table__lookup(const struct pricing_table *t, const char *model);

/*
 * The cost of a call at price p. Input tokens are split into uncached, cache read and cache
 * write (the llm stage's input_tokens include both cached parts, for OpenAI and Anthropic
 * alike); output tokens into reasoning and the rest. A missing cache rate is the input rate, a
 * missing reasoning rate the output rate. False when the call's input or output count is
 * unknown: the cost is then unknown, not zero.
 */
bool price__cost(const struct price *p, const struct llm_call *c, double *usd);

/* The process-wide table. path NULL: the built-in table. Errors: one line on stderr, -errno. */
int pricing__init(const char *path);
/* Reads the same source again (SIGHUP); on failure keeps the current table. Logs one line. */
int pricing__reload(void);
void pricing__exit(void);
/* Replaces the process-wide table (tests); takes ownership. */
void pricing__set_table(struct pricing_table *t);
/* The cost of a call with the process-wide table; counts what it cannot price. */
bool pricing__cost(const struct llm_call *c, double *usd);
/* Calls with token counts whose model has no price (never priced as zero). */
uint64_t pricing__unpriced_count(void);
/* Calls without token counts (errors, streams without usage): no cost either. */
uint64_t pricing__no_usage_count(void);

/* Adds tokentap.cost.usd to the span when the call can be priced. */
void span__add_cost(struct span *s, const struct llm_call *c);

#endif
