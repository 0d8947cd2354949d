// SPDX-License-Identifier: Apache-2.0
/* Shadow AI detection and policy verdicts, added to spans as attributes. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "audit/judge.h"

#define LOG_BURST 20 /* denied-call lines per second at most; the rest are counted */

struct audit_judge {
	struct proc_table *procs;
	struct policy *policy;
	struct container_meta *containers; /* NULL: no container metadata */
	time_t log_second;
	unsigned log_in_second;
	uint64_t log_suppressed;
};

struct audit_judge *audit_judge__new(struct proc_table *procs, struct policy *policy)
{
	struct audit_judge *j = calloc(1, sizeof(*j));

	if (j) {
		j->procs = procs;
		j->policy = policy;
	}
	return j;
}

void audit_judge__set_containers(struct audit_judge *j, struct container_meta *m)
{
	j->containers = m;
}

void audit_judge__free(struct audit_judge *j)
{
	free(j);
}

static const char *attr_str(const struct span *s, const char *key)
{
	const struct attr *a = span__find_attr(s, key);

	return a && a->type == ATTR_STRING ? a->s : NULL;
}

static const char *res_str(const struct span *s, const char *key)
{
	const struct resource *r = s->resource;

	for (size_t i = 0; r && i < r->n_attrs; i++)
		if (!strcmp(r->attrs[i].key, key) && r->attrs[i].type == ATTR_STRING)
			return r->attrs[i].s;
	return NULL;
}

static int64_t attr_int(const struct span *s, const char *key)
{
	const struct attr *a = span__find_attr(s, key);

	return a && a->type == ATTR_INT ? a->i : -1;
}

/* Loopback, RFC 1918, link-local, CGNAT and IPv6 unique-local / link-local addresses. */
static bool addr__is_private(const char *a)
{
	unsigned char b[16];

	if (inet_pton(AF_INET, a, b) == 1)
		return b[0] == 127 || b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
		       (b[0] == 192 && b[1] == 168) || (b[0] == 169 && b[1] == 254) ||
		       (b[0] == 100 && (b[1] & 0xc0) == 64);
	if (inet_pton(AF_INET6, a, b) == 1)
		return !memcmp(b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) ||
		       (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80);
	return false;
}

/* Host names compare without case and without a trailing root dot. */
static bool names__same(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	na -= na && a[na - 1] == '.';
	nb -= nb && b[nb - 1] == '.';
	return na == nb && !strncasecmp(a, b, na);
}

const char *shadow__detect(const struct span *s, char *why, size_t cap)
{
	const char *by = attr_str(s, "tokentap.provider.detected_by");
	const char *host = attr_str(s, "server.address");
	const char *peer = attr_str(s, "network.peer.address");
	const char *sni = attr_str(s, "tls.client.server_name");
	int64_t port = attr_int(s, "server.port"), peer_port = attr_int(s, "network.peer.port");

	/* Recognised by the API's path and body only: a server that is not a known provider. */
	if (by && (!strcmp(by, "path") || !strcmp(by, "shape"))) {
		snprintf(why, cap, "LLM API (%s shape) served by %s, not a known provider host",
			 attr_str(s, "gen_ai.provider.name") ?: "unknown",
			 host ?: "an unknown host");
		return "unknown_provider_host";
	}
	/* The TLS handshake named one server, the request another: a gateway or tunnel that
	 * fronts a provider (SNI gateway.corp.example, Host api.openai.com), or the reverse. */
	if (by && sni && host && !names__same(sni, host)) {
		snprintf(why, cap, "Host %s sent over TLS to %s (SNI): a gateway or tunnel%s", host,
			 sni, !strcmp(by, "host") ? " fronting a known provider" : "");
		return "sni_host_mismatch";
	}
	/* The Host names a provider, but the socket went elsewhere: a forward proxy (CONNECT
	 * tunnel) or a relay listening on another port. */
	if (by && peer && port > 0 && peer_port > 0 && port != peer_port) {
		snprintf(why, cap, "%s:%lld reached through %s:%lld (proxy or tunnel)", host ?: "?",
			 (long long)port, peer, (long long)peer_port);
		return "provider_via_proxy";
	}
	/* The handshake names a provider, but the socket goes to a private or loopback address:
	 * a gateway, TLS-intercepting proxy or DNS override answers for the provider. */
	if (by && !strcmp(by, "host") && sni && peer && addr__is_private(peer)) {
		snprintf(why, cap,
			 "%s (SNI) served from the private address %s: a gateway, proxy or "
			 "DNS override in front of the provider",
			 sni, peer);
		return "provider_name_private_address";
	}
	return NULL;
}

#define ADD_STR(s, k, v) attrs__add_str((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)
#define ADD_BOOL(s, k, v) attrs__add_bool((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)

/* Wire-supplied strings go to the log: keep them printable and short. */
static void log_safe(char *dst, size_t cap, const char *src)
{
	size_t i = 0;

	for (; src && *src && i + 1 < cap; src++)
		dst[i++] = (*src >= 0x21 && *src < 0x7f) ? *src : '?';
	dst[i] = '\0';
}

static void judge__log(struct audit_judge *j, const struct span *s, const struct policy_call *c,
		       const struct policy_verdict *v)
{
	char host[80], model[80], exe[160], viol[256] = "";
	time_t now = time(NULL);

	if (now != j->log_second) {
		if (j->log_suppressed)
			fprintf(stderr, "tokentap: policy: %llu more denied calls not logged\n",
				(unsigned long long)j->log_suppressed);
		j->log_second = now;
		j->log_in_second = 0;
		j->log_suppressed = 0;
	}
	if (++j->log_in_second > LOG_BURST) {
		j->log_suppressed++;
		return;
	}
	for (int i = 0; i < v->n_violations; i++)
		snprintf(viol + strlen(viol), sizeof(viol) - strlen(viol), "%s%s", i ? "," : "",
			 v->violations[i]);
	log_safe(host, sizeof(host), c->host);
	log_safe(model, sizeof(model), c->model);
	log_safe(exe, sizeof(exe), c->exe);
	fprintf(stderr,
		"tokentap: policy: denied pid=%u exe=%s uid=%lld provider=%s host=%s model=%s "
		"rule=%s violations=%s\n",
		s->resource ? s->resource->pid : 0, exe[0] ? exe : "?", (long long)c->uid,
		c->provider ?: "?", host[0] ? host : "?", model[0] ? model : "?",
		v->rule ?: "(default)", viol);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What the runtime says of the span's container, also put on the span for every exporter. */
static const struct container_info *judge__container(struct audit_judge *j, struct span *s,
						     const char *cid)
{
	const struct container_info *ci;

	if (!j->containers || !cid || !cid[0])
		return NULL;
	ci = container_meta__lookup(j->containers, cid, mono_ns());
	if (!ci)
		return NULL;
	ADD_STR(s, "container.runtime", ci->runtime);
	if (ci->image[0])
		ADD_STR(s, "container.image.name", ci->image);
	if (ci->name[0])
		ADD_STR(s, "container.name", ci->name);
	if (ci->pod_name[0])
		ADD_STR(s, "k8s.pod.name", ci->pod_name);
	if (ci->pod_namespace[0])
		ADD_STR(s, "k8s.namespace.name", ci->pod_namespace);
	return ci;
}

static void judge__unevaluated(struct span *s, const struct policy_verdict *v)
{
	char buf[POLICY_MAX_VIOLATIONS][160];
	const char *list[POLICY_MAX_VIOLATIONS];

	for (int i = 0; i < v->n_unevaluated; i++) {
		snprintf(buf[i], sizeof(buf[i]), "%s: %s", v->unevaluated[i].rule,
			 v->unevaluated[i].reason);
		list[i] = buf[i];
	}
	if (v->n_unevaluated)
		attrs__add_str_array(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS,
				     "tokentap.policy.unevaluated", list, (size_t)v->n_unevaluated);
}

static void judge__policy(struct audit_judge *j, struct span *s, bool shadow,
			  const struct container_info *ci)
{
	const struct proc_facts *f = NULL;
	struct policy_call c = {.uid = -1, .shadow_ai = shadow, .container = ci};
	struct policy_verdict v;

	if (s->resource && j->procs)
		f = proc_table__get(j->procs, s->resource->pid);
	if (f) {
		c.exe = f->exe;
		c.container_id = f->container_id;
		c.pod_uid = f->pod_uid;
		c.user = f->user;
		c.uid = f->uid;
	} else {
		/* Gone before its facts were read: the resource still has the exec event's comm,
		 * so rules by executable name keep working. */
		c.exe =
		    res_str(s, "process.executable.path") ?: res_str(s, "process.executable.name");
		c.container_id = res_str(s, "container.id");
	}
	c.provider = attr_str(s, "gen_ai.provider.name");
	c.host = attr_str(s, "server.address");
	c.model = attr_str(s, "gen_ai.request.model") ?: attr_str(s, "gen_ai.response.model");
	c.key_fingerprint = attr_str(s, "tokentap.api_key.fingerprint");
	policy__eval(j->policy, &c, &v);
	ADD_STR(s, "tokentap.policy.verdict", v.denied ? "denied" : "allowed");
	if (v.n_violations)
		attrs__add_str_array(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS,
				     "tokentap.policy.violations", v.violations,
				     (size_t)v.n_violations);
	if (v.rule)
		ADD_STR(s, "tokentap.policy.rule", v.rule);
	judge__unevaluated(s, &v);
	if (v.denied)
		judge__log(j, s, &c, &v);
}

void audit_judge__span(struct audit_judge *j, struct span *s)
{
	char why[256];
	const char *reason = shadow__detect(s, why, sizeof(why));
	const struct proc_facts *f =
	    s->resource && j->procs ? proc_table__get(j->procs, s->resource->pid) : NULL;
	const struct container_info *ci = judge__container(
	    j, s, f && f->container_id[0] ? f->container_id : res_str(s, "container.id"));

	ADD_BOOL(s, "tokentap.shadow_ai", reason != NULL);
	if (reason) {
		ADD_STR(s, "tokentap.shadow_ai.reason", reason);
		ADD_STR(s, "tokentap.shadow_ai.detail", why);
	}
	if (j->policy)
		judge__policy(j, s, reason != NULL, ci);
}
