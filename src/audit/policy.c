// SPDX-License-Identifier: Apache-2.0
/*
 * The destination policy: parsing (strict: an unknown key is an error, so a typo cannot
 * silently allow everything) and evaluation.
 */
#include <errno.h>
#include <fnmatch.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/policy.h"
#include "util/file.h"

#define POLICY_MAX_FILE (1u << 20)
#define POLICY_MAX_RULES 1024
#define POLICY_MAX_LIST 256

struct str_list {
	char **v;
	size_t n;
	bool set; /* present in the file: an empty list allows nothing */
};

struct policy_rule {
	char *name;
	struct str_list exes, containers, pods, users, images, labels;
	struct str_list providers, hosts, models, keys;
};

struct policy {
	bool default_deny;
	bool shadow_deny;
	struct policy_rule *rules;
	size_t n_rules;
	struct policy_stats st;
};

static struct policy_stats *policy_active_stats;

static void str_list__free(struct str_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static void rule__free(struct policy_rule *r)
{
	free(r->name);
	str_list__free(&r->exes);
	str_list__free(&r->containers);
	str_list__free(&r->pods);
	str_list__free(&r->users);
	str_list__free(&r->images);
	str_list__free(&r->labels);
	str_list__free(&r->providers);
	str_list__free(&r->hosts);
	str_list__free(&r->models);
	str_list__free(&r->keys);
}

void policy__free(struct policy *p)
{
	if (!p)
		return;
	if (policy_active_stats == &p->st)
		policy_active_stats = NULL;
	for (size_t i = 0; i < p->n_rules; i++)
		rule__free(&p->rules[i]);
	free(p->rules);
	free(p);
}

/* ---- parsing ------------------------------------------------------------------------------ */

static int parse_list(struct json_object *v, struct str_list *l, const char *where, char *err,
		      size_t cap)
{
	size_t n;

	if (!json_object_is_type(v, json_type_array)) {
		snprintf(err, cap, "%s must be an array of strings", where);
		return -EINVAL;
	}
	n = json_object_array_length(v);
	if (n > POLICY_MAX_LIST) {
		snprintf(err, cap, "%s: more than %d entries", where, POLICY_MAX_LIST);
		return -EINVAL;
	}
	l->set = true;
	l->v = calloc(n ? n : 1, sizeof(char *));
	if (!l->v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);

		if (!json_object_is_type(e, json_type_string) || !json_object_get_string_len(e)) {
			snprintf(err, cap, "%s[%zu] must be a non-empty string", where, i);
			return -EINVAL;
		}
		l->v[l->n] = strdup(json_object_get_string(e));
		if (!l->v[l->n])
			return -ENOMEM;
		l->n++;
	}
	return 0;
}

struct list_key {
	const char *key;
	size_t offset; /* of the str_list in struct policy_rule */
};

static const struct list_key match_keys[] = {
    {"executables", offsetof(struct policy_rule, exes)},
    {"container_ids", offsetof(struct policy_rule, containers)},
    {"pod_uids", offsetof(struct policy_rule, pods)},
    {"users", offsetof(struct policy_rule, users)},
    {"images", offsetof(struct policy_rule, images)},
    {"image", offsetof(struct policy_rule, images)}, /* the same list, either spelling */
    {"pod_labels", offsetof(struct policy_rule, labels)},
    {"pod_label", offsetof(struct policy_rule, labels)},
};

static const struct list_key allow_keys[] = {
    {"providers", offsetof(struct policy_rule, providers)},
    {"hosts", offsetof(struct policy_rule, hosts)},
    {"models", offsetof(struct policy_rule, models)},
    {"api_keys", offsetof(struct policy_rule, keys)},
};

/* "key=value" (the value may be a glob): a bare key would select nothing anyone meant. */
static int check_labels(const struct str_list *l, const char *where, char *err, size_t cap)
{
	for (size_t i = 0; i < l->n; i++) {
		const char *eq = strchr(l->v[i], '=');

		if (!eq || eq == l->v[i]) {
			snprintf(err, cap, "%s[%zu] must be \"key=value\"", where, i);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_lists(struct json_object *obj, struct policy_rule *r, const struct list_key *keys,
		       size_t nkeys, const char *where, char *err, size_t cap)
{
	char path[160];

	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(err, cap, "%s must be an object", where);
		return -EINVAL;
	}
	json_object_object_foreach(obj, key, val)
	{
		size_t k;

		for (k = 0; k < nkeys && strcmp(key, keys[k].key); k++)
			;
		struct str_list *l;

		if (k == nkeys) {
			snprintf(err, cap, "%s: unknown key \"%.64s\"", where, key);
			return -EINVAL;
		}
		snprintf(path, sizeof(path), "%s.%s", where, key);
		l = (struct str_list *)((char *)r + keys[k].offset);
		if (l->set) {
			snprintf(err, cap, "%s: given twice (both spellings)", path);
			return -EINVAL;
		}
		if (parse_list(val, l, path, err, cap))
			return -EINVAL;
		if (l == &r->labels && check_labels(l, path, err, cap))
			return -EINVAL;
	}
	return 0;
}

static int parse_rule(struct json_object *obj, struct policy_rule *r, size_t idx, char *err,
		      size_t cap)
{
	char where[64];

	snprintf(where, sizeof(where), "rules[%zu]", idx);
	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(err, cap, "%s must be an object", where);
		return -EINVAL;
	}
	json_object_object_foreach(obj, key, val)
	{
		char sub[80];

		snprintf(sub, sizeof(sub), "%s.%s", where, key);
		if (!strcmp(key, "name") && json_object_is_type(val, json_type_string)) {
			r->name = strdup(json_object_get_string(val));
		} else if (!strcmp(key, "match")) {
			if (parse_lists(val, r, match_keys,
					sizeof(match_keys) / sizeof(match_keys[0]), sub, err, cap))
				return -EINVAL;
		} else if (!strcmp(key, "allow")) {
			if (parse_lists(val, r, allow_keys, 4, sub, err, cap))
				return -EINVAL;
		} else {
			snprintf(err, cap,
				 "%s: unknown key \"%.64s\" (or a name that is not a string)",
				 where, key);
			return -EINVAL;
		}
	}
	if (!r->name) {
		snprintf(where, sizeof(where), "rule %zu", idx);
		r->name = strdup(where);
	}
	return r->name ? 0 : -ENOMEM;
}

static int parse_verdict_word(struct json_object *v, const char *key, bool *deny, char *err,
			      size_t cap)
{
	const char *s = json_object_get_string(v);

	if (!json_object_is_type(v, json_type_string) ||
	    (strcmp(s, "allow") && strcmp(s, "deny"))) {
		snprintf(err, cap, "\"%s\" must be \"allow\" or \"deny\"", key);
		return -EINVAL;
	}
	*deny = !strcmp(s, "deny");
	return 0;
}

static int parse_rules(struct policy *p, struct json_object *v, char *err, size_t cap)
{
	size_t n;

	if (!json_object_is_type(v, json_type_array)) {
		snprintf(err, cap, "\"rules\" must be an array");
		return -EINVAL;
	}
	n = json_object_array_length(v);
	if (n > POLICY_MAX_RULES) {
		snprintf(err, cap, "more than %d rules", POLICY_MAX_RULES);
		return -EINVAL;
	}
	p->rules = calloc(n ? n : 1, sizeof(*p->rules));
	if (!p->rules)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		p->n_rules++;
		if (parse_rule(json_object_array_get_idx(v, i), &p->rules[i], i, err, cap))
			return -EINVAL;
	}
	return 0;
}

static int parse_top(struct policy *p, struct json_object *root, char *err, size_t cap)
{
	if (!json_object_is_type(root, json_type_object)) {
		snprintf(err, cap, "the policy must be a JSON object");
		return -EINVAL;
	}
	json_object_object_foreach(root, key, val)
	{
		int ret;

		if (!strcmp(key, "default"))
			ret = parse_verdict_word(val, key, &p->default_deny, err, cap);
		else if (!strcmp(key, "shadow_ai"))
			ret = parse_verdict_word(val, key, &p->shadow_deny, err, cap);
		else if (!strcmp(key, "rules"))
			ret = parse_rules(p, val, err, cap);
		else if (!strcmp(key, "version") && json_object_get_int(val) == 1)
			ret = 0;
		else {
			snprintf(err, cap, "unknown key \"%.64s\" (or unsupported version)", key);
			ret = -EINVAL;
		}
		if (ret)
			return ret;
	}
	return 0;
}

struct policy *policy__parse(const char *json, size_t len, char *err, size_t cap)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root = NULL;
	struct policy *p = calloc(1, sizeof(*p));
	int ret = -ENOMEM;

	if (!tok || !p)
		goto out;
	root = json_tokener_parse_ex(tok, json, (int)len);
	if (!root || json_tokener_get_parse_end(tok) != len) {
		size_t at = json_tokener_get_parse_end(tok);

		snprintf(err, cap, "not valid JSON (near byte %zu: %s)", at,
			 json_tokener_error_desc(json_tokener_get_error(tok)));
		ret = -EINVAL;
		goto out;
	}
	ret = parse_top(p, root, err, cap);
out:
	if (ret == -ENOMEM)
		snprintf(err, cap, "out of memory");
	json_object_put(root);
	if (tok)
		json_tokener_free(tok);
	if (ret) {
		policy__free(p);
		return NULL;
	}
	policy_active_stats = &p->st;
	return p;
}

struct policy *policy__load(const char *path)
{
	char err[256];
	size_t len = 0;
	char *text = file__read_checked(path, "policy file", POLICY_MAX_FILE, &len);
	struct policy *p;

	if (!text)
		return NULL;
	p = policy__parse(text, len, err, sizeof(err));
	free(text);
	if (!p)
		fprintf(stderr, "tokentap: policy file %s: %s\n", path, err);
	return p;
}

/* ---- evaluation ----------------------------------------------------------------------------- */

bool policy__match_exe(const char *pattern, const char *exe)
{
	const char *base;

	if (!exe || !exe[0])
		return false;
	if (strchr(pattern, '/'))
		return !fnmatch(pattern, exe, 0);
	base = strrchr(exe, '/');
	return !fnmatch(pattern, base ? base + 1 : exe, 0);
}

static bool list_any(const struct str_list *l, const char *v, bool (*m)(const char *, const char *))
{
	if (!v || !v[0])
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (m(l->v[i], v))
			return true;
	return false;
}

static bool m_prefix(const char *pat, const char *v)
{
	return !strncasecmp(v, pat, strlen(pat));
}

static bool m_glob(const char *pat, const char *v)
{
	return !fnmatch(pat, v, FNM_CASEFOLD);
}

/* A glob over the whole image reference ("ghcr.io/team/agent:v*", "nginx:1.2?"). */
static bool m_image(const char *pat, const char *v)
{
	return !fnmatch(pat, v, 0);
}

static bool m_exact(const char *pat, const char *v)
{
	return !strcmp(pat, v);
}

static void verdict__unevaluated(struct policy_verdict *v, const char *rule, const char *why)
{
	if (v->n_unevaluated < POLICY_MAX_VIOLATIONS) {
		v->unevaluated[v->n_unevaluated].rule = rule;
		v->unevaluated[v->n_unevaluated++].reason = why;
	}
}

/*
 * Image and pod-label selectors. Outside any container they are known not to match. In a
 * container whose metadata is unknown (or whose runtime records no labels) they cannot be
 * decided: the rule does not select, and the verdict says why.
 */
static bool rule__selects_container(const struct policy_rule *r, const struct policy_call *c,
				    struct policy_verdict *v)
{
	const struct container_info *ci = c->container;
	bool in_container = c->container_id && c->container_id[0];

	if (r->images.set) {
		if (in_container && (!ci || !ci->image[0])) {
			verdict__unevaluated(v, r->name, "image_unknown");
			return false;
		}
		if (!ci || !list_any(&r->images, ci->image, m_image))
			return false;
	}
	if (r->labels.set) {
		if (in_container && (!ci || !ci->labels_known)) {
			verdict__unevaluated(v, r->name, "pod_labels_unknown");
			return false;
		}
		for (size_t i = 0; ci && i < r->labels.n; i++)
			if (container_info__has_label(ci, r->labels.v[i]))
				return true;
		return false;
	}
	return true;
}

static bool rule__selects(const struct policy_rule *r, const struct policy_call *c,
			  struct policy_verdict *v)
{
	char uid[24] = "";

	if (r->exes.set && !list_any(&r->exes, c->exe, policy__match_exe))
		return false;
	if (r->containers.set && !list_any(&r->containers, c->container_id, m_prefix))
		return false;
	if (r->pods.set && !list_any(&r->pods, c->pod_uid, m_prefix))
		return false;
	if (c->uid >= 0)
		snprintf(uid, sizeof(uid), "%lld", (long long)c->uid);
	if (r->users.set && !list_any(&r->users, c->user, m_exact) &&
	    !list_any(&r->users, uid, m_exact))
		return false;
	return rule__selects_container(r, c, v);
}

static void verdict__add(struct policy_verdict *v, const char *what)
{
	if (v->n_violations < POLICY_MAX_VIOLATIONS)
		v->violations[v->n_violations++] = what;
}

static void rule__judge(const struct policy_rule *r, const struct policy_call *c,
			struct policy_verdict *v)
{
	if (r->providers.set && !list_any(&r->providers, c->provider, m_exact))
		verdict__add(v, "provider_not_allowed");
	if (r->hosts.set && !list_any(&r->hosts, c->host, m_glob))
		verdict__add(v, "host_not_allowed");
	if (r->models.set && !list_any(&r->models, c->model, m_glob))
		verdict__add(v, "model_not_allowed");
	if (r->keys.set && (!c->key_fingerprint || !c->key_fingerprint[0]))
		verdict__add(v, "api_key_unknown");
	else if (r->keys.set && !list_any(&r->keys, c->key_fingerprint, m_glob))
		verdict__add(v, "api_key_not_allowed");
}

void policy__eval(struct policy *p, const struct policy_call *c, struct policy_verdict *v)
{
	size_t i;

	memset(v, 0, sizeof(*v));
	for (i = 0; i < p->n_rules && !rule__selects(&p->rules[i], c, v); i++)
		;
	if (i < p->n_rules) {
		v->rule = p->rules[i].name;
		rule__judge(&p->rules[i], c, v);
	} else if (p->default_deny) {
		verdict__add(v, "no_matching_rule");
	}
	if (c->shadow_ai && p->shadow_deny)
		verdict__add(v, "shadow_ai");
	v->denied = v->n_violations > 0;
	__atomic_add_fetch(&p->st.evaluated, 1, __ATOMIC_RELAXED);
	if (v->denied) {
		__atomic_add_fetch(&p->st.denied, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&p->st.violations, (uint64_t)v->n_violations, __ATOMIC_RELAXED);
	}
}

void policy__stats(const struct policy *p, struct policy_stats *st)
{
	st->evaluated = __atomic_load_n(&p->st.evaluated, __ATOMIC_RELAXED);
	st->denied = __atomic_load_n(&p->st.denied, __ATOMIC_RELAXED);
	st->violations = __atomic_load_n(&p->st.violations, __ATOMIC_RELAXED);
}

void policy__global_stats(struct policy_stats *st)
{
	struct policy_stats *a = policy_active_stats;

	memset(st, 0, sizeof(*st));
	if (!a)
		return;
	st->evaluated = __atomic_load_n(&a->evaluated, __ATOMIC_RELAXED);
	st->denied = __atomic_load_n(&a->denied, __ATOMIC_RELAXED);
	st->violations = __atomic_load_n(&a->violations, __ATOMIC_RELAXED);
}
