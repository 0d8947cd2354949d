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
#include "util/jsonget.h"

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
	const char *exe = jsonget__str(res, "process.executable.name");
	const char *pod = jsonget__str(res, "k8s.pod.name"), *ns = jsonget__str(res, "k8s.namespace.name");
	const char *ctr = jsonget__str(res, "container.id"), *model = jsonget__str(at, "gen_ai.request.model");
	const char *tenant = jsonget__str(at, "tokentap.tenant");
	const char *fp = jsonget__str(at, "tokentap.api_key.fingerprint");
	char buf[TOP_KEY_LEN * 2];

	snprintf(buf, sizeof(buf), "%s[%llu]", exe ? exe : jsonget__str(res, "service.name") ?: "?",
		 (unsigned long long)jsonget__u64(res, "process.pid"));
	key__set(c->keys[TOP_KEY_PROCESS], buf);
	if (pod)
		snprintf(buf, sizeof(buf), "%s%s%s", ns ? ns : "", ns ? "/" : "", pod);
	else
		snprintf(buf, sizeof(buf), "%.12s", ctr ? ctr : "(host)");
	key__set(c->keys[TOP_KEY_CONTAINER], buf);
	key__set(c->keys[TOP_KEY_PROVIDER], jsonget__str(at, "gen_ai.provider.name") ?: "(unknown)");
	key__set(c->keys[TOP_KEY_MODEL], model ?: jsonget__str(at, "gen_ai.response.model") ?: "(unknown)");
	key__set(c->keys[TOP_KEY_TENANT], tenant ? tenant : "(none)");
	key__set(c->keys[TOP_KEY_API_KEY], fp ? fp : "(none)");
}

static int line__span(json_object *o, struct top_call *c)
{
	json_object *at = jsonget__obj(o, "attributes"), *status = jsonget__obj(o, "status");
	const char *code = jsonget__str(status, "code");
	double start, end, v;

	if (!json_object_is_type(at, json_type_object) || !jsonget__num(o, "start_time_unix_nano", &start) ||
	    !jsonget__num(o, "end_time_unix_nano", &end))
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	/* Nanosecond times exceed a double's exact range: read them as integers. */
	c->end_ns = jsonget__u64(o, "end_time_unix_nano");
	c->latency_s = end > start ? (double)(c->end_ns - jsonget__u64(o, "start_time_unix_nano")) / 1e9 : 0;
	c->ttfc_s = jsonget__num(at, "gen_ai.response.time_to_first_chunk", &v) ? v : NAN;
	c->tokens_in = jsonget__num(at, "gen_ai.usage.input_tokens", &v) ? (int64_t)v : 0;
	c->tokens_out = jsonget__num(at, "gen_ai.usage.output_tokens", &v) ? (int64_t)v : 0;
	c->cost_usd = jsonget__num(at, "tokentap.cost.usd", &v) ? v : NAN;
	c->error = (code && !strcmp(code, "error")) || jsonget__obj(at, "error.type");
	call__keys(c, jsonget__obj(o, "resource"), at);
	return TOP_LINE_SPAN;
}

static int line__stats(json_object *o, struct top_health *h)
{
	h->seen = true;
	h->events_lost = jsonget__u64(o, "events_lost");
	h->lost_bytes = jsonget__u64(o, "lost_bytes");
	h->parse_errors = jsonget__u64(o, "parse_errors");
	h->export_backlog = jsonget__u64(o, "export_backlog");
	h->export_dropped = jsonget__u64(o, "export_dropped");
	h->spans = jsonget__u64(o, "spans");
	h->client_dropped = jsonget__u64(o, "client_dropped");
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
		type = jsonget__str(o, "type");
		if (!type)
			ret = line__span(o, c);
		else if (!strcmp(type, "stats"))
			ret = line__stats(o, h);
	}
	json_object_put(o);
	json_tokener_free(tok);
	return ret;
}
