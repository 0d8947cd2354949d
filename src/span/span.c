// SPDX-License-Identifier: Apache-2.0
/*
 * LLM call -> span with the GenAI semantic conventions of semantic-conventions v1.41.0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "attribution.h"
#include "builder.h"
#include "resource_cache.h"

struct span_builder {
	struct resource_ctx ctx;
	struct res_entry **cache;
	char *service_name;
};

static void span_builder__take_env_service_name(struct span_builder *b)
{
	struct resource_ctx *ctx = &b->ctx;

	for (size_t i = 0; i < ctx->n_env; i++) {
		if (strcmp(ctx->env_keys[i], "service.name"))
			continue;
		/* OTEL_SERVICE_NAME wins over the service.name of OTEL_RESOURCE_ATTRIBUTES. */
		if (!b->service_name)
			b->service_name = strdup(ctx->env_values[i]);
		free(ctx->env_keys[i]);
		free(ctx->env_values[i]);
		ctx->env_keys[i] = ctx->env_keys[ctx->n_env - 1];
		ctx->env_values[i] = ctx->env_values[ctx->n_env - 1];
		ctx->n_env--;
		return;
	}
}

struct span_builder *span_builder__new(const struct span_builder_opts *opts)
{
	struct span_builder *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->cache = resource_cache__new();
	if (!b->cache) {
		free(b);
		return NULL;
	}
	b->ctx.proc_root = opts->proc_root ? opts->proc_root : "/proc";
	b->ctx.cgroups = cgroup_cache__new(NULL); /* NULL (no memory): parsed uncached */
	if (opts->service_name && *opts->service_name)
		b->service_name = strdup(opts->service_name);
	resource_ctx__parse_env(&b->ctx, opts->resource_attributes);
	span_builder__take_env_service_name(b);
	b->ctx.service_name = b->service_name;
	if (gethostname(b->ctx.host_name, sizeof(b->ctx.host_name) - 1))
		strcpy(b->ctx.host_name, "unknown");
	return b;
}

void span_builder__learn_process(struct span_builder *b, uint32_t pid, const char *comm,
				 const struct exe_hint *hint)
{
	struct resource *r = resource__from_process(&b->ctx, pid, comm, hint);

	if (r)
		resource_cache__put(b->cache, pid, r);
}

void span_builder__forget_process(struct span_builder *b, uint32_t pid)
{
	resource_cache__drop(b->cache, pid);
}

static struct resource *span_builder__resource(struct span_builder *b, uint32_t pid)
{
	struct resource *r = resource_cache__get(b->cache, pid);

	if (!r) {
		span_builder__learn_process(b, pid, NULL, NULL);
		r = resource_cache__get(b->cache, pid);
	}
	if (r)
		resource__get(r);
	return r;
}

/* Monotonic (what the kernel stamps) -> wall clock, measured at each conversion so that a
 * clock step (NTP) applies to new spans at once. */
static uint64_t mono_to_unix_ns(uint64_t mono_ns)
{
	struct timespec rt, mono;
	uint64_t now_rt, now_mono;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	now_rt = (uint64_t)rt.tv_sec * 1000000000ull + rt.tv_nsec;
	now_mono = (uint64_t)mono.tv_sec * 1000000000ull + mono.tv_nsec;
	return now_rt - (now_mono - mono_ns);
}

/* Ids come from a per-thread pool refilled by getrandom: two syscalls per span cost more than
 * the rest of building it. Ids need to be unique, not secret. */
static bool random_fill(uint8_t *id, size_t n)
{
	static __thread uint8_t pool[1024];
	static __thread size_t left;

	if (n > sizeof(pool))
		return getrandom(id, n, 0) == (ssize_t)n;
	if (left < n) {
		if (getrandom(pool, sizeof(pool), 0) != (ssize_t)sizeof(pool))
			return false;
		left = sizeof(pool);
	}
	memcpy(id, pool + sizeof(pool) - left, n);
	memset(pool + sizeof(pool) - left, 0, n); /* handed out once */
	left -= n;
	return true;
}

static void random_id(uint8_t *id, size_t n)
{
	bool zero = true;

	while (zero) {
		if (!random_fill(id, n)) {
			/* getrandom cannot fail for small sizes after boot; keep ids unique anyway */
			for (size_t i = 0; i < n; i++)
				id[i] = (uint8_t)rand();
		}
		for (size_t i = 0; i < n; i++)
			zero &= id[i] == 0;
	}
}

#define ADD_STR(s, k, v) attrs__add_str((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)
#define ADD_INT(s, k, v) attrs__add_int((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)
#define ADD_DBL(s, k, v) attrs__add_double((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)
#define ADD_BOOL(s, k, v) attrs__add_bool((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)

static void add_if_known(struct span *s, const char *key, int64_t v)
{
	if (v >= 0)
		ADD_INT(s, key, v);
}

static void add_if_set(struct span *s, const char *key, const char *v)
{
	if (v && v[0])
		ADD_STR(s, key, v);
}

static void span__add_genai(struct span *s, const struct llm_call *c)
{
	ADD_STR(s, "gen_ai.operation.name", c->operation);
	ADD_STR(s, "gen_ai.provider.name", c->provider_name ? c->provider_name : "unknown");
	add_if_set(s, "gen_ai.request.model", c->request_model);
	add_if_set(s, "gen_ai.response.model", c->response_model);
	add_if_set(s, "gen_ai.response.id", c->response_id);
	if (c->n_finish_reasons > 0) {
		struct attr *a = &s->attrs[s->n_attrs];

		if (s->n_attrs < SPAN_MAX_ATTRS) {
			a->key = "gen_ai.response.finish_reasons";
			a->type = ATTR_STRING_ARRAY;
			a->arr.n = 0;
			for (int i = 0; i < c->n_finish_reasons && i < SPAN_MAX_ARRAY; i++)
				a->arr.v[a->arr.n++] = strdup(c->finish_reasons[i]);
			s->n_attrs++;
		}
	}
	add_if_known(s, "gen_ai.usage.input_tokens", c->input_tokens);
	add_if_known(s, "gen_ai.usage.output_tokens", c->output_tokens);
	add_if_known(s, "gen_ai.usage.cache_read.input_tokens", c->cache_read_tokens);
	add_if_known(s, "gen_ai.usage.cache_creation.input_tokens", c->cache_creation_tokens);
	/* Non-reasoning models report 0 on every call: only a count that says something. */
	if (c->reasoning_tokens > 0)
		ADD_INT(s, "gen_ai.usage.reasoning.output_tokens", c->reasoning_tokens);
	add_if_set(s, "openai.api.type", c->api_type);
	add_if_known(s, "gen_ai.request.max_tokens", c->max_tokens);
	if (c->has_temperature)
		ADD_DBL(s, "gen_ai.request.temperature", c->temperature);
	if (c->stream >= 0)
		ADD_BOOL(s, "gen_ai.request.stream", c->stream == 1);
	if (c->stream == 1 && c->first_chunk_ns && c->first_chunk_ns >= c->start_ns)
		ADD_DBL(s, "gen_ai.response.time_to_first_chunk",
			(double)(c->first_chunk_ns - c->start_ns) / 1e9);
}

static void span__add_transport(struct span *s, const struct llm_call *c)
{
	add_if_set(s, "server.address", c->server_address);
	if (c->server_port > 0)
		ADD_INT(s, "server.port", c->server_port);
	add_if_set(s, "http.request.method", c->method);
	add_if_set(s, "url.path", c->path);
	if (c->status_code > 0)
		ADD_INT(s, "http.response.status_code", c->status_code);
	add_if_set(s, "error.type", c->error_type);
	ADD_INT(s, "thread.id", c->tid);
	if (c->tls_source == 1)
		ADD_STR(s, "tokentap.tls.library", "openssl");
	else if (c->tls_source == 3) /* TT_SRC_GNUTLS */
		ADD_STR(s, "tokentap.tls.library", "gnutls");
	else if (c->tls_source == 2) /* TT_SRC_PLAINTEXT: no TLS at all */
		ADD_STR(s, "tokentap.tls.library", "none");
	else if (c->tls_source == 4) /* TT_SRC_GO: crypto/tls */
		ADD_STR(s, "tokentap.tls.library", "go");
	else if (c->tls_source == 5) /* TT_SRC_BORINGSSL: found by code shape */
		ADD_STR(s, "tokentap.tls.library", "boringssl");
	else if (c->tls_source == 6) /* TT_SRC_RUSTLS: aws-lc's AEAD found by code shape */
		ADD_STR(s, "tokentap.tls.library", "rustls");
	add_if_set(s, "tokentap.provider.detected_by", c->detected_by);
	add_if_set(s, "tokentap.http2.error_code", c->http2_error_code);
	add_if_set(s, "tokentap.http2.error_sender", c->http2_error_sender);
	if (c->partial) {
		ADD_BOOL(s, "tokentap.capture.partial", true);
		ADD_INT(s, "tokentap.capture.lost_bytes", (int64_t)c->lost_bytes);
	}
}

/* Where the socket really went (proxy detection), and captured content: present only when
 * known / when --capture-content is on. */
static void span__add_peer_content(struct span *s, const struct llm_call *c)
{
	add_if_set(s, "network.peer.address", c->peer_address);
	if (c->peer_port > 0)
		ADD_INT(s, "network.peer.port", c->peer_port);
	add_if_set(s, "tls.client.server_name", c->tls_server_name);
	add_if_set(s, "gen_ai.system_instructions", c->system_instructions);
	add_if_set(s, "gen_ai.input.messages", c->input_messages);
	add_if_set(s, "gen_ai.output.messages", c->output_messages);
}

/* The call's chunk gaps, copied for the metrics (a memory failure only loses the metric). */
static void span__add_chunk_gaps(struct span *s, const struct llm_call *c)
{
	struct span_chunk_gaps *g;

	if (!c->n_chunk_gaps && !c->chunk_gaps_folded)
		return;
	g = malloc(sizeof(*g) + c->n_chunk_gaps * sizeof(g->v[0]));
	if (!g)
		return;
	g->n = c->n_chunk_gaps;
	g->folded = c->chunk_gaps_folded;
	g->folded_s = c->chunk_gaps_folded_s;
	if (g->n)
		memcpy(g->v, c->chunk_gaps, g->n * sizeof(g->v[0]));
	s->chunk_gaps = g;
}

struct span *span_builder__build(struct span_builder *b, const struct llm_call *c)
{
	struct span *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	random_id(s->trace_id, sizeof(s->trace_id));
	random_id(s->span_id, sizeof(s->span_id));
	snprintf(s->name, sizeof(s->name), "%s %s", c->operation,
		 c->request_model[0] ? c->request_model : "unknown");
	s->kind = SPAN_KIND_CLIENT;
	s->start_unix_ns = mono_to_unix_ns(c->start_ns);
	s->end_unix_ns = c->end_ns >= c->start_ns ? s->start_unix_ns + (c->end_ns - c->start_ns)
						 : s->start_unix_ns;
	if (c->error_type[0]) {
		s->status = SPAN_STATUS_ERROR;
		snprintf(s->status_message, sizeof(s->status_message), "%s", c->error_type);
	}
	span__add_genai(s, c);
	span__add_transport(s, c);
	span__add_chunk_gaps(s, c);
	span__add_attribution(s, c); /* cost, tenant keys, the caller's trace context */
	span__add_peer_content(s, c);
	s->resource = span_builder__resource(b, c->pid);
	return s;
}

void span_builder__free(struct span_builder *b)
{
	if (!b)
		return;
	resource_cache__free(b->cache);
	resource_ctx__free(&b->ctx);
	free(b->service_name);
	free(b);
}
