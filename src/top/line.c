// SPDX-License-Identifier: Apache-2.0
/*
 * top/line: one line of the control socket -> a call or the agent's health. Span lines are the
 * `--format json` schema; attributes are read by key, so ones the agent does not emit (cost,
 * tenant, key fingerprint on an older agent) just show as blank. Every string shown on the
 * terminal comes from the network: it is cut down to printable ASCII here.
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "top/agg.h"

static json_object *obj__get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *obj__str(json_object *o, const char *key)
{
	json_object *v = obj__get(o, key);
	const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;

	return s && *s ? s : NULL;
}

static bool obj__num(json_object *o, const char *key, double *out)
{
	json_object *v = obj__get(o, key);

	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return false;
	*out = json_object_get_double(v);
	return isfinite(*out);
}

static uint64_t obj__u64(json_object *o, const char *key)
{
	json_object *v = obj__get(o, key);

	if (!json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_uint64(v);
}

/* Printable ASCII only: escape sequences and wide characters would wreck the screen. */
static void key__set(char *dst, const char *src)
{
	size_t i;

	for (i = 0; src[i] && i < TOP_KEY_LEN - 1; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = 0;
}

static void call__keys(struct top_call *c, json_object *res, json_object *at)
{
	const char *exe = obj__str(res, "process.executable.name");
	const char *pod = obj__str(res, "k8s.pod.name"), *ns = obj__str(res, "k8s.namespace.name");
	const char *ctr = obj__str(res, "container.id"), *model = obj__str(at, "gen_ai.request.model");
	const char *tenant = obj__str(at, "tokentap.tenant");
	const char *fp = obj__str(at, "tokentap.api_key.fingerprint");
	char buf[TOP_KEY_LEN * 2];

	snprintf(buf, sizeof(buf), "%s[%llu]", exe ? exe : obj__str(res, "service.name") ?: "?",
		 (unsigned long long)obj__u64(res, "process.pid"));
	key__set(c->keys[TOP_KEY_PROCESS], buf);
	if (pod)
		snprintf(buf, sizeof(buf), "%s%s%s", ns ? ns : "", ns ? "/" : "", pod);
	else
		snprintf(buf, sizeof(buf), "%.12s", ctr ? ctr : "(host)");
	key__set(c->keys[TOP_KEY_CONTAINER], buf);
	key__set(c->keys[TOP_KEY_PROVIDER], obj__str(at, "gen_ai.provider.name") ?: "(unknown)");
	key__set(c->keys[TOP_KEY_MODEL], model ?: obj__str(at, "gen_ai.response.model") ?: "(unknown)");
	key__set(c->keys[TOP_KEY_TENANT], tenant ? tenant : "(none)");
	key__set(c->keys[TOP_KEY_API_KEY], fp ? fp : "(none)");
}

static int line__span(json_object *o, struct top_call *c)
{
	json_object *at = obj__get(o, "attributes"), *status = obj__get(o, "status");
	const char *code = obj__str(status, "code");
	double start, end, v;

	if (!json_object_is_type(at, json_type_object) || !obj__num(o, "start_time_unix_nano", &start) ||
	    !obj__num(o, "end_time_unix_nano", &end))
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	/* Nanosecond times exceed a double's exact range: read them as integers. */
	c->end_ns = obj__u64(o, "end_time_unix_nano");
	c->latency_s = end > start ? (double)(c->end_ns - obj__u64(o, "start_time_unix_nano")) / 1e9 : 0;
	c->ttfc_s = obj__num(at, "gen_ai.response.time_to_first_chunk", &v) ? v : NAN;
	c->tokens_in = obj__num(at, "gen_ai.usage.input_tokens", &v) ? (int64_t)v : 0;
	c->tokens_out = obj__num(at, "gen_ai.usage.output_tokens", &v) ? (int64_t)v : 0;
	c->cost_usd = obj__num(at, "tokentap.cost.usd", &v) ? v : NAN;
	c->error = (code && !strcmp(code, "error")) || obj__get(at, "error.type");
	call__keys(c, obj__get(o, "resource"), at);
	return TOP_LINE_SPAN;
}

static int line__stats(json_object *o, struct top_health *h)
{
	h->seen = true;
	h->events_lost = obj__u64(o, "events_lost");
	h->lost_bytes = obj__u64(o, "lost_bytes");
	h->parse_errors = obj__u64(o, "parse_errors");
	h->export_backlog = obj__u64(o, "export_backlog");
	h->export_dropped = obj__u64(o, "export_dropped");
	h->spans = obj__u64(o, "spans");
	h->client_dropped = obj__u64(o, "client_dropped");
	return TOP_LINE_STATS;
}

int top_line__parse(const char *line, size_t n, struct top_call *c, struct top_health *h)
{
	json_tokener *tok = json_tokener_new();
	json_object *o;
	const char *type;
	int ret = -EINVAL;

	if (!tok)
		return -ENOMEM;
	o = n <= INT32_MAX ? json_tokener_parse_ex(tok, line, (int)n) : NULL;
	/* Trailing bytes after the object mean a damaged line, not a span. */
	if (o && json_tokener_get_error(tok) == json_tokener_success &&
	    (size_t)json_tokener_get_parse_end(tok) == n && json_object_is_type(o, json_type_object)) {
		type = obj__str(o, "type");
		if (!type)
			ret = line__span(o, c);
		else if (!strcmp(type, "stats"))
			ret = line__stats(o, h);
	}
	json_object_put(o);
	json_tokener_free(tok);
	return ret;
}
