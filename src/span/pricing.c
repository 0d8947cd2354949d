// SPDX-License-Identifier: Apache-2.0
/*
 * Prices per model (JSON, see pricing.h) and the cost of each call.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pricing.h"

#define PRICING_MAX_NAME 255
#define PRICING_MAX_RATE 1e6 /* USD per million tokens: anything above is a typo */
#define PRICING_LOGGED_MODELS 32

/* A name a model is found by: its key or one of its aliases. */
struct price_key {
	char *name;
	size_t len;
	size_t price; /* index into prices */
};

struct pricing_table {
	struct price *prices;
	size_t n_prices;
	struct price_key *keys;
	size_t n_keys, cap_keys;
};

/* Defined by pricing_data.c: deploy/pricing.json, NUL-terminated. */
extern const char tokentap_pricing_json[];

static struct pricing_table *pricing_g;
static const char *pricing_path_g;
static uint64_t unpriced_g, no_usage_g;
static char *logged_g[PRICING_LOGGED_MODELS];

/* ---- parsing ----------------------------------------------------------------------------- */

static void pricing__err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void pricing_table__free(struct pricing_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_prices; i++) {
		free(t->prices[i].name);
		free(t->prices[i].provider);
	}
	for (size_t i = 0; i < t->n_keys; i++)
		free(t->keys[i].name);
	free(t->prices);
	free(t->keys);
	free(t);
}

static const struct price_key *pricing__find_key(const struct pricing_table *t, const char *s,
						 size_t n)
{
	for (size_t i = 0; i < t->n_keys; i++)
		if (t->keys[i].len == n && !strncasecmp(t->keys[i].name, s, n))
			return &t->keys[i];
	return NULL;
}

static int pricing__add_key(struct pricing_table *t, const char *name, size_t price, char *err,
			    size_t errlen)
{
	size_t n = strlen(name);
	const struct price_key *dup;

	if (!n || n > PRICING_MAX_NAME) {
		pricing__err(err, errlen, "model '%s': names and aliases must be 1 to %d bytes",
			     t->prices[price].name, PRICING_MAX_NAME);
		return -EINVAL;
	}
	dup = pricing__find_key(t, name, n);
	if (dup) {
		pricing__err(err, errlen, "'%s' names both '%s' and '%s'", name,
			     t->prices[dup->price].name, t->prices[price].name);
		return -EINVAL;
	}
	if (t->n_keys == t->cap_keys) {
		size_t cap = t->cap_keys ? 2 * t->cap_keys : 64;
		struct price_key *k = realloc(t->keys, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		t->keys = k;
		t->cap_keys = cap;
	}
	t->keys[t->n_keys] = (struct price_key){ .name = strdup(name), .len = n, .price = price };
	if (!t->keys[t->n_keys].name)
		return -ENOMEM;
	t->n_keys++;
	return 0;
}

/* A rate field: absent leaves *out alone (required ones are checked by the caller). */
static int pricing__rate(const char *model, const char *key, struct json_object *v, double *out,
			 char *err, size_t errlen)
{
	double d;

	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) {
		pricing__err(err, errlen, "model '%s': %s must be a number", model, key);
		return -EINVAL;
	}
	d = json_object_get_double(v);
	if (!isfinite(d) || d < 0 || d > PRICING_MAX_RATE) {
		pricing__err(err, errlen, "model '%s': %s must be between 0 and %g", model, key,
			     PRICING_MAX_RATE);
		return -EINVAL;
	}
	*out = d;
	return 0;
}

static int pricing__aliases(struct pricing_table *t, size_t idx, struct json_object *v, char *err,
			    size_t errlen)
{
	const char *model = t->prices[idx].name;
	size_t n;
	int rc;

	if (!json_object_is_type(v, json_type_array)) {
		pricing__err(err, errlen, "model '%s': aliases must be an array of strings", model);
		return -EINVAL;
	}
	n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(v, i);

		if (!json_object_is_type(a, json_type_string)) {
			pricing__err(err, errlen, "model '%s': aliases must be strings", model);
			return -EINVAL;
		}
		rc = pricing__add_key(t, json_object_get_string(a), idx, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

static int pricing__field(struct pricing_table *t, size_t idx, const char *key,
			  struct json_object *v, char *err, size_t errlen)
{
	struct price *p = &t->prices[idx];

	if (key[0] == '_')
		return 0; /* a comment */
	if (!strcmp(key, "provider")) {
		if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v)) {
			pricing__err(err, errlen, "model '%s': provider must be a string", p->name);
			return -EINVAL;
		}
		free(p->provider);
		p->provider = strdup(json_object_get_string(v));
		return p->provider ? 0 : -ENOMEM;
	}
	if (!strcmp(key, "aliases"))
		return pricing__aliases(t, idx, v, err, errlen);
	if (!strcmp(key, "input_per_mtok"))
		return pricing__rate(p->name, key, v, &p->input, err, errlen);
	if (!strcmp(key, "output_per_mtok"))
		return pricing__rate(p->name, key, v, &p->output, err, errlen);
	if (!strcmp(key, "cache_read_per_mtok"))
		return pricing__rate(p->name, key, v, &p->cache_read, err, errlen);
	if (!strcmp(key, "cache_write_per_mtok"))
		return pricing__rate(p->name, key, v, &p->cache_write, err, errlen);
	if (!strcmp(key, "reasoning_per_mtok"))
		return pricing__rate(p->name, key, v, &p->reasoning, err, errlen);
	pricing__err(err, errlen, "model '%s': unknown field '%s'", p->name, key);
	return -EINVAL;
}

static int pricing__entry(struct pricing_table *t, const char *name, struct json_object *obj,
			  char *err, size_t errlen)
{
	size_t idx = t->n_prices;
	struct price *p = &t->prices[idx];
	int rc;

	if (!json_object_is_type(obj, json_type_object)) {
		pricing__err(err, errlen, "model '%s': expected an object", name);
		return -EINVAL;
	}
	*p = (struct price){ .input = -1, .output = -1, .cache_read = -1, .cache_write = -1,
			     .reasoning = -1 };
	p->name = strdup(name);
	if (!p->name)
		return -ENOMEM;
	t->n_prices++;
	rc = pricing__add_key(t, name, idx, err, errlen);
	json_object_object_foreach(obj, key, v)
	{
		if (rc)
			break;
		rc = pricing__field(t, idx, key, v, err, errlen);
	}
	if (rc)
		return rc;
	if (!p->provider || p->input < 0 || p->output < 0) {
		pricing__err(err, errlen,
			     "model '%s': provider, input_per_mtok and output_per_mtok are required",
			     name);
		return -EINVAL;
	}
	return 0;
}

static struct json_object *pricing__parse_json(const char *json, size_t len, char *err,
					       size_t errlen)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root;

	if (!tok)
		return NULL;
	if (len > PRICING_MAX_FILE || len > INT32_MAX) {
		pricing__err(err, errlen, "larger than %u bytes", PRICING_MAX_FILE);
		json_tokener_free(tok);
		return NULL;
	}
	root = json_tokener_parse_ex(tok, json, (int)len);
	if (!root || json_tokener_get_parse_end(tok) < len) {
		/* Trailing bytes other than whitespace mean a damaged file. */
		size_t end = json_tokener_get_parse_end(tok);

		while (root && end < len && strchr(" \t\r\n", json[end]) && json[end])
			end++;
		if (!root || end < len) {
			enum json_tokener_error je = json_tokener_get_error(tok);

			pricing__err(err, errlen, "not valid JSON (%s, at byte %zu)",
				     root ? "trailing data"
				     : je == json_tokener_continue ? "truncated"
								   : json_tokener_error_desc(je),
				     end);
			json_object_put(root);
			root = NULL;
		}
	}
	json_tokener_free(tok);
	return root;
}

struct pricing_table *pricing_table__parse(const char *json, size_t len, char *err, size_t errlen)
{
	struct json_object *root = pricing__parse_json(json, len, err, errlen);
	struct pricing_table *t;
	int rc = 0;

	if (!root)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!json_object_is_type(root, json_type_object)) {
		pricing__err(err, errlen, "expected an object keyed by model name");
		rc = -EINVAL;
	} else if (t) {
		t->prices = calloc(json_object_object_length(root) + 1, sizeof(*t->prices));
		rc = t->prices ? 0 : -ENOMEM;
	}
	if (t && !rc) {
		json_object_object_foreach(root, name, obj)
		{
			if (name[0] == '_')
				continue; /* "_source", "_date", "_comment" */
			rc = pricing__entry(t, name, obj, err, errlen);
			if (rc)
				break;
		}
	}
	json_object_put(root);
	if (!t || rc) {
		if (rc == -ENOMEM || !t)
			pricing__err(err, errlen, "out of memory");
		pricing_table__free(t);
		return NULL;
	}
	return t;
}

struct pricing_table *pricing_table__load_file(const char *path, char *err, size_t errlen)
{
	struct pricing_table *t = NULL;
	struct stat st;
	char *buf = NULL;
	ssize_t n = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		pricing__err(err, errlen, "%s", fd < 0 ? strerror(errno) : "not a regular file");
		goto out;
	}
	if (st.st_size > PRICING_MAX_FILE) {
		pricing__err(err, errlen, "larger than %u bytes", PRICING_MAX_FILE);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf)
		n = read(fd, buf, (size_t)st.st_size + 1);
	if (n < 0 || n > st.st_size) {
		pricing__err(err, errlen, "%s", n < 0 ? strerror(errno) : "changed while read");
		goto out;
	}
	t = pricing_table__parse(buf, (size_t)n, err, errlen);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return t;
}

size_t pricing_table__count(const struct pricing_table *t)
{
	return t ? t->n_prices : 0;
}

/* ---- lookup ------------------------------------------------------------------------------ */

static bool is_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Length of s without a trailing -YYYY-MM-DD, -YYYYMMDD or @YYYYMMDD; n when none. */
static size_t pricing__undated_len(const char *s, size_t n)
{
	const char *d;

	if (n > 11) {
		d = s + n - 11;
		if (d[0] == '-' && is_digits(d + 1, 4) && d[5] == '-' && is_digits(d + 6, 2) &&
		    d[8] == '-' && is_digits(d + 9, 2))
			return n - 11;
	}
	if (n > 9) {
		d = s + n - 9;
		if ((d[0] == '-' || d[0] == '@') && is_digits(d + 1, 8))
			return n - 9;
	}
	return n;
}

static const struct price_key *pricing__longest_prefix(const struct pricing_table *t,
						       const char *s, size_t n)
{
	const struct price_key *best = NULL;

	for (size_t i = 0; i < t->n_keys; i++) {
		const struct price_key *k = &t->keys[i];

		if (k->len >= n || strncasecmp(k->name, s, k->len))
			continue;
		/* "gpt-4" must not price "gpt-4.5-preview": only whole name parts match. */
		if (s[k->len] != '-' && s[k->len] != '@')
			continue;
		if (!best || k->len > best->len)
			best = k;
	}
	return best;
}

const struct price *pricing_table__lookup(const struct pricing_table *t, const char *model)
{
	const struct price_key *k;
	const char *slash;
	size_t n;

	if (!t || !model || !*model)
		return NULL;
	slash = strrchr(model, '/');
	if (slash && slash[1])
		model = slash + 1;
	n = strlen(model);
	k = pricing__find_key(t, model, n);
	if (!k)
		k = pricing__find_key(t, model, pricing__undated_len(model, n));
	if (!k)
		k = pricing__longest_prefix(t, model, n);
	return k ? &t->prices[k->price] : NULL;
}

/* ---- cost -------------------------------------------------------------------------------- */

bool price__cost(const struct price *p, const struct llm_call *c, double *usd)
{
	int64_t read = c->cache_read_tokens > 0 ? c->cache_read_tokens : 0;
	int64_t write = c->cache_creation_tokens > 0 ? c->cache_creation_tokens : 0;
	int64_t reasoning = c->reasoning_tokens > 0 ? c->reasoning_tokens : 0;
	int64_t uncached, visible;
	double r_read, r_write, r_reason;

	if (c->input_tokens < 0 || c->output_tokens < 0)
		return false;
	/* Counts a provider reported inconsistently are clamped, never made negative. */
	uncached = c->input_tokens - read - write;
	if (uncached < 0)
		uncached = 0;
	if (reasoning > c->output_tokens)
		reasoning = c->output_tokens;
	visible = c->output_tokens - reasoning;
	r_read = p->cache_read >= 0 ? p->cache_read : p->input;
	r_write = p->cache_write >= 0 ? p->cache_write : p->input;
	r_reason = p->reasoning >= 0 ? p->reasoning : p->output;
	*usd = ((double)uncached * p->input + (double)read * r_read + (double)write * r_write +
		(double)visible * p->output + (double)reasoning * r_reason) /
	       1e6;
	return true;
}

/* One stderr line per unpriced model (the first few of them), so the operator can add it. */
static void pricing__log_unpriced(const char *model)
{
	char clean[96];
	size_t i;

	for (i = 0; i < PRICING_LOGGED_MODELS && logged_g[i]; i++)
		if (!strcmp(logged_g[i], model))
			return;
	if (i == PRICING_LOGGED_MODELS)
		return;
	logged_g[i] = strdup(model);
	/* The name comes from the network: keep the log line one printable line. */
	for (i = 0; model[i] && i < sizeof(clean) - 1; i++)
		clean[i] = model[i] >= 0x20 && model[i] < 0x7f ? model[i] : '?';
	clean[i] = '\0';
	fprintf(stderr, "tokentap: pricing: no price for model '%s'; its calls get no cost "
			"(add it with --pricing)\n", clean);
}

bool pricing__cost(const struct llm_call *c, double *usd)
{
	const struct price *p;
	const char *model = c->response_model[0] ? c->response_model : c->request_model;

	if (c->input_tokens < 0 || c->output_tokens < 0) {
		__atomic_fetch_add(&no_usage_g, 1, __ATOMIC_RELAXED);
		return false;
	}
	/* The response names the model that ran (and billed); a proxy may not echo it. */
	p = pricing_table__lookup(pricing_g, c->response_model);
	if (!p)
		p = pricing_table__lookup(pricing_g, c->request_model);
	if (!p) {
		__atomic_fetch_add(&unpriced_g, 1, __ATOMIC_RELAXED);
		if (*model)
			pricing__log_unpriced(model);
		return false;
	}
	return price__cost(p, c, usd);
}

void span__add_cost(struct span *s, const struct llm_call *c)
{
	double usd;

	if (pricing__cost(c, &usd))
		attrs__add_double(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "tokentap.cost.usd", usd);
}

uint64_t pricing__unpriced_count(void)
{
	return __atomic_load_n(&unpriced_g, __ATOMIC_RELAXED);
}

uint64_t pricing__no_usage_count(void)
{
	return __atomic_load_n(&no_usage_g, __ATOMIC_RELAXED);
}

/* ---- the process-wide table -------------------------------------------------------------- */

void pricing__set_table(struct pricing_table *t)
{
	pricing_table__free(pricing_g);
	pricing_g = t;
}

static struct pricing_table *pricing__load(const char *path, char *err, size_t errlen)
{
	if (path)
		return pricing_table__load_file(path, err, errlen);
	return pricing_table__parse(tokentap_pricing_json, strlen(tokentap_pricing_json), err,
				    errlen);
}

int pricing__init(const char *path)
{
	char err[256] = "";
	struct pricing_table *t = pricing__load(path, err, sizeof(err));

	if (!t) {
		fprintf(stderr, "tokentap: pricing: %s: %s\n", path ? path : "built-in table", err);
		return -EINVAL;
	}
	pricing_path_g = path;
	pricing__set_table(t);
	return 0;
}

int pricing__reload(void)
{
	char err[256] = "";
	const char *what = pricing_path_g ? pricing_path_g : "built-in table";
	struct pricing_table *t = pricing__load(pricing_path_g, err, sizeof(err));

	if (!t) {
		fprintf(stderr,
			"tokentap: pricing: %s: %s; keeping the previous table (%zu models)\n", what,
			err, pricing_table__count(pricing_g));
		return -EINVAL;
	}
	pricing__set_table(t);
	fprintf(stderr, "tokentap: pricing: loaded %zu models from %s\n", pricing_table__count(t),
		what);
	return 0;
}

void pricing__exit(void)
{
	pricing__set_table(NULL);
	for (size_t i = 0; i < PRICING_LOGGED_MODELS; i++) {
		free(logged_g[i]);
		logged_g[i] = NULL;
	}
}
