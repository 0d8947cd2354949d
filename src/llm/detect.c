// SPDX-License-Identifier: Apache-2.0
/*
 * Which LLM API a request is, from its request line, and which provider a host name stands
 * for. The path picks the API shape (and may carry the model: Gemini, Bedrock, Azure
 * deployments); the host, when it is a provider's, names the provider. An unknown host speaking
 * a known path is reported with the provider the path implies (tokentap.provider.detected_by
 * "path"): "openai" for the OpenAI shapes (self-hosted and gateway servers: vLLM, llama.cpp,
 * LiteLLM, Ollama's /v1...), "azure.ai.openai" for /openai/deployments/..., "gcp.gemini" or
 * "gcp.vertex_ai" for :generateContent, "aws.bedrock" for /model/{id}/converse, "ollama" for
 * Ollama's native /api/chat, /api/generate and /api/embed.
 *
 * Provider names are the GenAI semantic conventions' well-known values where one exists; the
 * others ("openrouter", "together_ai", "fireworks_ai", "cerebras", "ollama") follow their style.
 */
#include <string.h>

#include "provider.h"

struct host_rule {
	const char *name;
	bool suffix; /* matches "*<name>" instead of exactly */
	enum llm_provider provider;
	const char *provider_name;
};

static const struct host_rule host_rules[] = {
    {"api.openai.com", false, LLM_PROVIDER_OPENAI, "openai"},
    {"api.anthropic.com", false, LLM_PROVIDER_ANTHROPIC, "anthropic"},
    {".openai.azure.com", true, LLM_PROVIDER_AZURE_OPENAI, "azure.ai.openai"},
    {".cognitiveservices.azure.com", true, LLM_PROVIDER_AZURE_OPENAI, "azure.ai.openai"},
    {"generativelanguage.googleapis.com", false, LLM_PROVIDER_GEMINI, "gcp.gemini"},
    {"aiplatform.googleapis.com", false, LLM_PROVIDER_VERTEX_AI, "gcp.vertex_ai"},
    {"-aiplatform.googleapis.com", true, LLM_PROVIDER_VERTEX_AI, "gcp.vertex_ai"},
    {"api.groq.com", false, LLM_PROVIDER_OTHER, "groq"},
    {"api.mistral.ai", false, LLM_PROVIDER_OTHER, "mistral_ai"},
    {"api.deepseek.com", false, LLM_PROVIDER_OTHER, "deepseek"},
    {"api.perplexity.ai", false, LLM_PROVIDER_OTHER, "perplexity"},
    {"api.x.ai", false, LLM_PROVIDER_OTHER, "x_ai"},
    {"api.moonshot.ai", false, LLM_PROVIDER_OTHER, "moonshot_ai"},
    {"api.moonshot.cn", false, LLM_PROVIDER_OTHER, "moonshot_ai"},
    {"api.cohere.com", false, LLM_PROVIDER_OTHER, "cohere"},
    {"api.cohere.ai", false, LLM_PROVIDER_OTHER, "cohere"},
    {"openrouter.ai", false, LLM_PROVIDER_OTHER, "openrouter"},
    {"api.together.xyz", false, LLM_PROVIDER_OTHER, "together_ai"},
    {"api.together.ai", false, LLM_PROVIDER_OTHER, "together_ai"},
    {"api.fireworks.ai", false, LLM_PROVIDER_OTHER, "fireworks_ai"},
    {"api.cerebras.ai", false, LLM_PROVIDER_OTHER, "cerebras"},
};

static bool detect__starts(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && !memcmp(s, prefix, k);
}

static bool detect__ends(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && !memcmp(s + n - k, suffix, k);
}

static bool detect__is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && !memcmp(s, word, n);
}

/* bedrock-runtime.us-east-1.amazonaws.com, bedrock-runtime-fips.us-east-1.amazonaws.com,
 * bedrock-runtime.cn-north-1.amazonaws.com.cn */
static bool detect__bedrock_host(const char *h, size_t n)
{
	return (detect__starts(h, n, "bedrock-runtime.") ||
		detect__starts(h, n, "bedrock-runtime-fips.")) &&
	       (detect__ends(h, n, ".amazonaws.com") || detect__ends(h, n, ".amazonaws.com.cn"));
}

const char *llm_detect__provider(const char *host, enum llm_provider *p)
{
	size_t n = strlen(host);

	for (size_t i = 0; i < sizeof(host_rules) / sizeof(host_rules[0]); i++) {
		const struct host_rule *r = &host_rules[i];

		if (r->suffix ? detect__ends(host, n, r->name) : !strcmp(host, r->name)) {
			*p = r->provider;
			return r->provider_name;
		}
	}
	if (detect__bedrock_host(host, n)) {
		*p = LLM_PROVIDER_BEDROCK;
		return "aws.bedrock";
	}
	*p = LLM_PROVIDER_UNKNOWN;
	return NULL;
}

static int detect__hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out (a model id: "v1%3A0" -> "v1:0"); invalid escapes and NUL
 * bytes are kept as sent, so the result is always a C string of what the client asked for. */
static void detect__copy_decoded(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	char tmp[LLM_STR];

	for (size_t i = 0; i < n && o < sizeof(tmp) - 1; i++) {
		int hi = i + 2 < n ? detect__hex(s[i + 1]) : -1;
		int lo = i + 2 < n ? detect__hex(s[i + 2]) : -1;

		if (s[i] == '%' && hi >= 0 && lo >= 0 && (hi || lo)) {
			tmp[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (s[i]) {
			tmp[o++] = s[i];
		}
	}
	tmp[o] = '\0';
	llm__copy_str(out, cap, tmp);
}

static void detect__route_set(struct llm_route *r, const struct llm_shape *shape,
			      enum llm_provider p, const char *name)
{
	r->shape = shape;
	r->path_provider = p;
	r->path_provider_name = name;
}

/* .../models/{model}:generateContent and :streamGenerateContent (Gemini API and Vertex AI). */
static bool detect__gemini(const char *p, size_t n, struct llm_route *r)
{
	const char *seg = memrchr(p, '/', n), *colon, *prev;
	size_t seg_len, model_len, before;

	if (!seg)
		return false;
	seg++;
	seg_len = n - (size_t)(seg - p);
	colon = memchr(seg, ':', seg_len);
	if (!colon)
		return false;
	model_len = (size_t)(colon - seg);
	if (detect__is(colon + 1, seg_len - model_len - 1, "streamGenerateContent"))
		r->stream = 1;
	else if (detect__is(colon + 1, seg_len - model_len - 1, "generateContent"))
		r->stream = 0;
	else
		return false;
	before = (size_t)(seg - p);
	prev = before >= 2 ? memrchr(p, '/', before - 1) : NULL;
	if (!model_len || !prev ||
	    !(detect__is(prev + 1, (size_t)(seg - prev) - 2, "models") ||
	      detect__is(prev + 1, (size_t)(seg - prev) - 2, "tunedModels")))
		return false;
	detect__copy_decoded(r->model, sizeof(r->model), seg, model_len);
	r->json_seq = r->stream == 1; /* a JSON array unless ?alt=sse made it an event stream */
	if (detect__starts(p, n, "/v1/projects/") || detect__starts(p, n, "/v1beta1/projects/"))
		detect__route_set(r, &llm_shape_gemini, LLM_PROVIDER_VERTEX_AI, "gcp.vertex_ai");
	else
		detect__route_set(r, &llm_shape_gemini, LLM_PROVIDER_GEMINI, "gcp.gemini");
	return true;
}

/* /model/{modelId}/converse and /model/{modelId}/converse-stream (Bedrock Runtime). */
static bool detect__bedrock(const char *p, size_t n, struct llm_route *r)
{
	const char *id = p + 7, *end;

	if (!detect__starts(p, n, "/model/"))
		return false;
	end = memchr(id, '/', n - 7);
	if (!end || end == id)
		return false;
	if (detect__is(end, n - (size_t)(end - p), "/converse"))
		r->stream = 0;
	else if (detect__is(end, n - (size_t)(end - p), "/converse-stream"))
		r->stream = 1;
	else
		return false;
	detect__copy_decoded(r->model, sizeof(r->model), id, (size_t)(end - id));
	detect__route_set(r, &llm_shape_bedrock_converse, LLM_PROVIDER_BEDROCK, "aws.bedrock");
	return true;
}

static bool detect__ollama(const char *p, size_t n, struct llm_route *r)
{
	const struct llm_shape *shape = NULL;

	if (detect__is(p, n, "/api/chat"))
		shape = &llm_shape_ollama_chat;
	else if (detect__is(p, n, "/api/generate"))
		shape = &llm_shape_ollama_generate;
	else if (detect__is(p, n, "/api/embed") || detect__is(p, n, "/api/embeddings"))
		shape = &llm_shape_ollama_embed;
	if (!shape)
		return false;
	detect__route_set(r, shape, LLM_PROVIDER_OLLAMA, "ollama");
	return true;
}

/* Azure's /openai/deployments/{deployment}/...: the deployment stands in for the model. */
static void detect__azure_deployment(const char *p, size_t n, struct llm_route *r)
{
	static const char key[] = "/openai/deployments/";
	const char *at = memmem(p, n, key, sizeof(key) - 1), *d, *end;

	if (!at)
		return;
	d = at + sizeof(key) - 1;
	end = memchr(d, '/', n - (size_t)(d - p));
	if (!end || end == d)
		return;
	detect__copy_decoded(r->model, sizeof(r->model), d, (size_t)(end - d));
	r->model_is_deployment = true;
	detect__route_set(r, r->shape, LLM_PROVIDER_AZURE_OPENAI, "azure.ai.openai");
}

static bool detect__openai(const char *p, size_t n, struct llm_route *r)
{
	const struct llm_shape *shape;

	/* Also /openai/v1/..., Azure's /openai/deployments/x/..., OpenRouter's /api/v1/...,
	 * Groq's /openai/v1/..., Gemini's /v1beta/openai/... and bare /chat/completions. */
	if (detect__ends(p, n, "/chat/completions"))
		shape = &llm_shape_openai;
	else if (detect__ends(p, n, "/v1/responses") || detect__ends(p, n, "/openai/responses"))
		shape = &llm_shape_openai_responses;
	else if (detect__ends(p, n, "/embeddings"))
		shape = &llm_shape_openai_embeddings;
	else if (detect__ends(p, n, "/completions"))
		shape = &llm_shape_openai_completions;
	else
		return false;
	detect__route_set(r, shape, LLM_PROVIDER_OPENAI_COMPATIBLE, "openai");
	detect__azure_deployment(p, n, r);
	return true;
}

bool llm_detect__route(const char *path, size_t len, struct llm_route *r)
{
	size_t n = 0;

	memset(r, 0, sizeof(*r));
	r->stream = -1;
	while (n < len && path[n] != '?' && path[n] != '#')
		n++;
	if (detect__gemini(path, n, r) || detect__bedrock(path, n, r) ||
	    detect__ollama(path, n, r) || detect__openai(path, n, r))
		return true;
	if (detect__ends(path, n, "/v1/messages")) {
		detect__route_set(r, &llm_shape_anthropic, LLM_PROVIDER_ANTHROPIC, "anthropic");
		return true;
	}
	return false;
}
