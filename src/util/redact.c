// SPDX-License-Identifier: Apache-2.0
/*
 * Secret redaction. The built-in detectors are hand-written scanners rather than regexes: they
 * run on every captured prompt, need word boundaries and "contains a digit" tests that POSIX
 * EREs cannot say, and must stay linear in the input.
 */
#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/redact.h"

static regex_t redact_res[REDACT_MAX_PATTERNS];
static size_t redact_n_res;

struct sbuf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void sbuf__put(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

int redact__add_pattern(const char *ere)
{
	int err;

	if (redact_n_res >= REDACT_MAX_PATTERNS) {
		fprintf(stderr, "tokentap: --redact: at most %d patterns\n", REDACT_MAX_PATTERNS);
		return -ENOSPC;
	}
	err = regcomp(&redact_res[redact_n_res], ere, REG_EXTENDED);
	if (err) {
		char msg[128];

		regerror(err, &redact_res[redact_n_res], msg, sizeof(msg));
		fprintf(stderr, "tokentap: --redact '%.64s': %s\n", ere, msg);
		return -EINVAL;
	}
	redact_n_res++;
	return 0;
}

void redact__clear_patterns(void)
{
	for (size_t i = 0; i < redact_n_res; i++)
		regfree(&redact_res[i]);
	redact_n_res = 0;
}

/* ---- built-in detectors: each says where the secret at s[i] ends (0: none here) ---------- */

static bool is_word(unsigned char c)
{
	return isalnum(c) || c == '_';
}

static bool is_key_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '-';
}

/* The run of characters allowed by `ok` from s[i]; digit and alpha say what it contained. */
static size_t run_len(const char *s, size_t n, size_t i, bool (*ok)(unsigned char), bool *digit,
		      bool *alpha)
{
	size_t j = i;

	for (; j < n && ok((unsigned char)s[j]); j++) {
		*digit |= isdigit((unsigned char)s[j]) != 0;
		*alpha |= isalpha((unsigned char)s[j]) != 0;
	}
	return j - i;
}

static bool starts(const char *s, size_t n, size_t i, const char *prefix)
{
	size_t k = strlen(prefix);

	return n - i >= k && !memcmp(s + i, prefix, k);
}

static bool is_alnum_c(unsigned char c)
{
	return isalnum(c) != 0;
}

static bool is_upper_digit(unsigned char c)
{
	return isupper(c) || isdigit(c);
}

static bool is_token_char(unsigned char c)
{
	return isalnum(c) || strchr("-._~+/=", c) != NULL;
}

/* Prefixed tokens: the prefix, then at least `min` characters, at least one of them a digit
 * (real keys are random; "sk-learn-tutorials" is prose). */
struct prefixed {
	const char *prefix;
	size_t min;
	bool (*ok)(unsigned char);
};

static const struct prefixed redact_prefixed[] = {
    {"sk-", 20, is_key_char},	  /* OpenAI sk-..., sk-proj-...; Anthropic sk-ant-... */
    {"sk_live_", 16, is_alnum_c}, /* Stripe */
    {"sk_test_", 16, is_alnum_c},     {"rk_live_", 16, is_alnum_c},
    {"AIza", 30, is_key_char},					  /* Google API keys */
    {"AKIA", 16, is_upper_digit},				  /* AWS access key ids */
    {"ASIA", 16, is_upper_digit},     {"xoxb-", 10, is_key_char}, /* Slack */
    {"xoxp-", 10, is_key_char},	      {"xoxa-", 10, is_key_char},
    {"xoxs-", 10, is_key_char},	      {"xapp-", 10, is_key_char},
    {"ghp_", 30, is_alnum_c}, /* GitHub */
    {"gho_", 30, is_alnum_c},	      {"ghu_", 30, is_alnum_c},
    {"ghs_", 30, is_alnum_c},	      {"ghr_", 30, is_alnum_c},
    {"github_pat_", 20, is_key_char}, {"glpat-", 20, is_key_char}, /* GitLab */
    {"hf_", 30, is_alnum_c},					   /* Hugging Face */
    {"gsk_", 30, is_alnum_c},					   /* Groq */
    {"xai-", 30, is_key_char},					   /* xAI */
    {"pplx-", 30, is_alnum_c},					   /* Perplexity */
};

static size_t detect_prefixed(const char *s, size_t n, size_t i)
{
	if (i > 0 && is_word((unsigned char)s[i - 1]))
		return 0;
	for (size_t k = 0; k < sizeof(redact_prefixed) / sizeof(redact_prefixed[0]); k++) {
		const struct prefixed *p = &redact_prefixed[k];
		size_t pl = strlen(p->prefix), len;
		bool digit = false, alpha = false;

		if (!starts(s, n, i, p->prefix))
			continue;
		len = run_len(s, n, i + pl, p->ok, &digit, &alpha);
		if (len >= p->min && digit)
			return pl + len;
	}
	return 0;
}

/* A JSON Web Token: eyJ<header>.<payload>[.<signature>] */
static size_t detect_jwt(const char *s, size_t n, size_t i)
{
	bool d = false, a = false;
	size_t j, len;

	if (!starts(s, n, i, "eyJ") || (i > 0 && is_word((unsigned char)s[i - 1])))
		return 0;
	len = run_len(s, n, i, is_key_char, &d, &a);
	if (len < 10 || i + len >= n || s[i + len] != '.')
		return 0;
	j = i + len + 1;
	len = run_len(s, n, j, is_key_char, &d, &a);
	if (len < 10)
		return 0;
	j += len;
	if (j < n && s[j] == '.')
		j += 1 + run_len(s, n, j + 1, is_key_char, &d, &a);
	return j - i;
}

/* "Bearer <token>" (any case): the token goes, the word stays. Returns the token's length and
 * sets *skip to where it starts. */
static size_t detect_bearer(const char *s, size_t n, size_t i, size_t *skip)
{
	bool d = false, a = false;
	size_t j = i + 6, len;

	if (n - i < 7 || strncasecmp(s + i, "bearer", 6) ||
	    (i > 0 && is_word((unsigned char)s[i - 1])))
		return 0;
	if (s[j] != ' ' && s[j] != '\t')
		return 0;
	while (j < n && (s[j] == ' ' || s[j] == '\t'))
		j++;
	len = run_len(s, n, j, is_token_char, &d, &a);
	if (len < 8)
		return 0;
	*skip = j - i;
	return len;
}

static const char *mem_find(const char *s, size_t n, const char *needle)
{
	return memmem(s, n, needle, strlen(needle));
}

/* A PEM private key block, through its END line; to the end of the text when it has none (a
 * truncated prompt must not leak half a key). */
static size_t detect_pem(const char *s, size_t n, size_t i)
{
	const char *eol, *end, *close;
	size_t rest = n - i;

	if (!starts(s, n, i, "-----BEGIN "))
		return 0;
	eol = memchr(s + i, '\n', rest);
	if (!mem_find(s + i, eol ? (size_t)(eol - (s + i)) : rest, "PRIVATE KEY"))
		return 0;
	end = mem_find(s + i + 11, rest - 11, "-----END ");
	if (!end)
		return rest;
	close = mem_find(end + 9, n - (size_t)(end + 9 - s), "-----");
	if (!close)
		return rest;
	return (size_t)(close + 5 - (s + i));
}

static void redact__builtin(const char *s, size_t n, struct sbuf *out, unsigned *found)
{
	size_t i = 0, lit = 0;

	while (i < n) {
		size_t skip = 0, len = detect_pem(s, n, i);

		if (!len)
			len = detect_prefixed(s, n, i);
		if (!len)
			len = detect_jwt(s, n, i);
		if (!len)
			len = detect_bearer(s, n, i, &skip);
		if (!len) {
			i++;
			continue;
		}
		sbuf__put(out, s + lit, i + skip - lit);
		sbuf__put(out, REDACT_MARK, strlen(REDACT_MARK));
		(*found)++;
		i += skip + len;
		lit = i;
	}
	sbuf__put(out, s + lit, n - lit);
}

/* Custom patterns, one after the other over the text the built-ins left. */
static char *redact__custom(char *text, size_t *len, unsigned *found, bool *oom)
{
	for (size_t k = 0; k < redact_n_res && !*oom; k++) {
		struct sbuf out = {};
		const char *p = text;
		regmatch_t m;
		int flags = 0;

		while (*p && !regexec(&redact_res[k], p, 1, &m, flags)) {
			size_t adv = m.rm_eo > m.rm_so ? (size_t)m.rm_eo : (size_t)m.rm_so + 1;

			sbuf__put(&out, p, (size_t)m.rm_so);
			if (m.rm_eo > m.rm_so) {
				sbuf__put(&out, REDACT_MARK, strlen(REDACT_MARK));
				(*found)++;
			} else {
				sbuf__put(&out, p + m.rm_so,
					  1); /* empty match: keep one char, go on */
			}
			p += adv;
			flags = REG_NOTBOL;
		}
		sbuf__put(&out, p, strlen(p));
		if (out.oom || !out.p) {
			*oom = out.oom;
			free(out.p);
			continue;
		}
		free(text);
		text = out.p;
		*len = out.n;
	}
	return text;
}

char *redact__string(const char *s, size_t n, size_t *out_len, unsigned *n_found)
{
	struct sbuf out = {};
	unsigned found = 0;
	bool oom = false;
	size_t len;

	redact__builtin(s ? s : "", s ? n : 0, &out, &found);
	sbuf__put(&out, "", 0);
	if (out.oom || !out.p) {
		free(out.p);
		return NULL;
	}
	len = out.n;
	out.p = redact__custom(out.p, &len, &found, &oom);
	if (oom) {
		/* Never hand back text a pattern could not be applied to. */
		free(out.p);
		return NULL;
	}
	if (out_len)
		*out_len = len;
	if (n_found)
		*n_found = found;
	return out.p;
}

/* ---- command lines --------------------------------------------------------------------- */

static bool has_secret_word(const char *s, size_t n)
{
	static const char *const words[] = {"key",  "token",	  "secret", "passw",  "pwd",
					    "auth", "credential", "cookie", "bearer", "session"};
	char low[128];

	if (n >= sizeof(low))
		n = sizeof(low) - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)s[i]);
	low[n] = '\0';
	for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
		if (strstr(low, words[k]))
			return true;
	return false;
}

/* Length of the name in "--name", "-name", "NAME=..." or "Header-Name: ...", 0 if none. */
static size_t arg_name(const char *a, size_t n, char *sep)
{
	size_t i = 0;

	*sep = 0;
	while (i < n && a[i] == '-')
		i++;
	while (i < n && (is_word((unsigned char)a[i]) || a[i] == '-' || a[i] == '.'))
		i++;
	if (i < n && (a[i] == '=' || a[i] == ':'))
		*sep = a[i];
	return i;
}

/* "...?api_key=V&x=1": values of secret-looking query parameters go. */
static void put_query_scrubbed(struct sbuf *b, const char *a, size_t n)
{
	size_t i = 0, lit = 0;

	while (i < n) {
		size_t name = i + 1, end;

		if (a[i] != '?' && a[i] != '&' && a[i] != ';') {
			i++;
			continue;
		}
		while (name < n && a[name] != '=' && a[name] != '&')
			name++;
		if (name >= n || a[name] != '=' || !has_secret_word(a + i + 1, name - i - 1)) {
			i++;
			continue;
		}
		end = name + 1;
		while (end < n && a[end] != '&')
			end++;
		sbuf__put(b, a + lit, name + 1 - lit);
		sbuf__put(b, REDACT_MARK, strlen(REDACT_MARK));
		i = lit = end;
	}
	sbuf__put(b, a + lit, n - lit);
}

/* "scheme://user:password@host" -> the password goes. */
static void scrub_userinfo(struct sbuf *b, const char *a, size_t n)
{
	const char *sch = mem_find(a, n, "://"), *at, *colon;
	size_t start;

	if (!sch) {
		put_query_scrubbed(b, a, n);
		return;
	}
	start = (size_t)(sch + 3 - a);
	at = memchr(a + start, '@', n - start);
	colon = at ? memchr(a + start, ':', (size_t)(at - (a + start))) : NULL;
	if (!colon || memchr(a + start, '/', (size_t)(at - (a + start)))) {
		put_query_scrubbed(b, a, n);
		return;
	}
	sbuf__put(b, a, (size_t)(colon + 1 - a));
	sbuf__put(b, REDACT_MARK, strlen(REDACT_MARK));
	put_query_scrubbed(b, at, n - (size_t)(at - a));
}

/* One argument; *next_secret: this one was "--api-key" alone, so the next is its value. */
static void scrub_arg(struct sbuf *b, const char *a, size_t n, bool *next_secret)
{
	char sep;
	size_t name = arg_name(a, n, &sep);
	bool secret_name = name && has_secret_word(a, name);

	if (*next_secret) {
		*next_secret = false;
		sbuf__put(b, REDACT_MARK, strlen(REDACT_MARK));
		return;
	}
	if (secret_name && sep) {
		sbuf__put(b, a, name + 1);
		sbuf__put(b, sep == ':' ? " " REDACT_MARK : REDACT_MARK,
			  strlen(REDACT_MARK) + (sep == ':'));
		return;
	}
	if (secret_name && a[0] == '-' && name == n)
		*next_secret = true;
	scrub_userinfo(b, a, n);
}

size_t redact__cmdline(const char *argv0, size_t n, char *out, size_t cap)
{
	struct sbuf args = {};
	bool next_secret = false;
	size_t i = 0, len = 0;
	char *clean;

	if (!cap)
		return 0;
	out[0] = '\0';
	while (i < n) {
		const char *a = argv0 + i;
		size_t an = strnlen(a, n - i);

		if (args.n)
			sbuf__put(&args, " ", 1);
		scrub_arg(&args, a, an, &next_secret);
		i += an + 1;
	}
	if (args.oom || !args.p) {
		free(args.p);
		return 0;
	}
	clean = redact__string(args.p, args.n, &len, NULL);
	free(args.p);
	if (!clean)
		return 0;
	if (len >= cap) {
		len = cap - 1;
		if (cap > 4)
			memcpy(clean + cap - 4, "...", 3);
	}
	memcpy(out, clean, len);
	out[len] = '\0';
	free(clean);
	return len;
}
