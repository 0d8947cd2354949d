// SPDX-License-Identifier: Apache-2.0
/*
 * llm/ providers and APIs beyond the first two: OpenAI Responses, Embeddings, legacy
 * Completions and reasoning tokens, Azure OpenAI, Gemini (plain, SSE, streamed JSON array),
 * Ollama's native API (JSON and NDJSON), Bedrock Converse (JSON and the binary event stream),
 * OpenAI-compatible hosts. Each fixture follows the provider's documented bodies; each call is
 * checked field by field, then re-run with the bodies split at every boundary and in 1-byte
 * pieces: the call must come out the same, byte for byte.
 */
#include <stdlib.h>
#include <strings.h>

#include "tt_test.h"
#include "es_build.h"
#include "llm/llm.h"
#include "llm/provider.h"

/* ---- harness ---------------------------------------------------------------------------- */

static struct llm_call got[8];
static int n_got;

static void on_call(void *ctx, const struct llm_call *c)
{
	(void)ctx;
	if (n_got < 8) {
		memcpy(&got[n_got], c, sizeof(*c));
		got[n_got].chunk_gaps = NULL; /* valid during the callback only; compared bytewise */
	}
	n_got++;
}

static const struct llm_conn_info info_tls = {
    .pid = 100,
    .last_tid = 101,
    .conn_id = 7,
    .has_peer = true,
    .peer_addr = "127.0.0.1",
    .peer_port = 8443,
    .tls_source = 1,
};

static const struct llm_conn_info info_plain = {
    .pid = 100,
    .last_tid = 101,
    .conn_id = 8,
    .has_peer = true,
    .peer_addr = "127.0.0.1",
    .peer_port = 11434,
};

struct thead {
	struct http_head h;
	char buf[2048];
};

/* "POST /path\nName: value..." or "200\nName: value...". */
static void thead__parse(struct thead *t, const char *spec)
{
	char *line, *save = NULL;

	memset(t, 0, sizeof(*t));
	snprintf(t->buf, sizeof(t->buf), "%s", spec);
	line = strtok_r(t->buf, "\n", &save);
	if (line[0] >= '0' && line[0] <= '9') {
		t->h.status = atoi(line);
	} else {
		char *sp = strchr(line, ' ');

		*sp = '\0';
		t->h.is_request = true;
		t->h.method = line;
		t->h.method_len = strlen(line);
		t->h.path = sp + 1;
		t->h.path_len = strlen(sp + 1);
	}
	t->h.minor_version = 1;
	while ((line = strtok_r(NULL, "\n", &save))) {
		struct http_header *hd = &t->h.headers[t->h.num_headers++];
		char *colon = strchr(line, ':');

		*colon = '\0';
		hd->name = line;
		hd->name_len = strlen(line);
		hd->value = colon + 2;
		hd->value_len = strlen(colon + 2);
	}
}

struct xch {
	const char *req, *req_body, *resp;
	const void *resp_body;
	size_t resp_len; /* 0: strlen */
	const struct llm_conn_info *info;
};

#define T_REQ 1000
#define T_RESP 5000
#define T_BODY 6000
#define T_END 9000

static void feed(const struct http_sink *s, void *ex, bool resp, const uint8_t *d, size_t n,
		 size_t cut, size_t piece)
{
	uint64_t ts = resp ? T_BODY : T_REQ;

	if (piece) {
		for (size_t at = 0; at < n; at += piece)
			s->on_body(ex, resp, d + at, n - at < piece ? n - at : piece, ts);
		return;
	}
	cut = cut > n ? n : cut;
	s->on_body(ex, resp, d, cut, ts);
	s->on_body(ex, resp, d + cut, n - cut, ts);
}

static size_t resp_len(const struct xch *x)
{
	return x->resp_len ? x->resp_len : (x->resp_body ? strlen(x->resp_body) : 0);
}

/* One exchange on a fresh connection; false when on_request declined it. */
static bool run_split(const struct xch *x, size_t req_cut, size_t resp_cut, size_t piece)
{
	struct llm_conn *lc = llm_conn__new(x->info ? x->info : &info_tls, on_call, NULL);
	const struct http_sink *s = llm_conn__sink(lc);
	struct thead rq, rs;
	void *ex;

	n_got = 0;
	thead__parse(&rq, x->req);
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	if (!ex) {
		llm_conn__free(lc);
		return false;
	}
	if (x->req_body)
		feed(s, ex, false, (const uint8_t *)x->req_body, strlen(x->req_body), req_cut,
		     piece);
	s->on_message_end(ex, false, T_REQ + 1);
	thead__parse(&rs, x->resp);
	s->on_response(ex, &rs.h, T_RESP);
	if (x->resp_body)
		feed(s, ex, true, x->resp_body, resp_len(x), resp_cut, piece);
	s->on_message_end(ex, true, T_END);
	llm_conn__free(lc);
	return true;
}

static bool run1(const struct xch *x)
{
	return run_split(x, (size_t)-1, (size_t)-1, 0);
}

/* Every request cut, every response cut, 1-byte pieces: the same call, bytewise. */
static void check_splits(const struct xch *x)
{
	size_t rq = x->req_body ? strlen(x->req_body) : 0, rs = resp_len(x);
	struct llm_call ref;
	int bad = 0;

	run1(x);
	CHECK_EQ_INT(n_got, 1);
	memcpy(&ref, &got[0], sizeof(ref));
	for (size_t c = 0; c <= rq; c++) {
		run_split(x, c, (size_t)-1, 0);
		bad += n_got != 1 || memcmp(&ref, &got[0], sizeof(ref));
	}
	for (size_t c = 0; c <= rs; c++) {
		run_split(x, (size_t)-1, c, 0);
		bad += n_got != 1 || memcmp(&ref, &got[0], sizeof(ref));
	}
	run_split(x, 0, 0, 1);
	bad += n_got != 1 || memcmp(&ref, &got[0], sizeof(ref));
	CHECK_EQ_INT(bad, 0);
}

/* What a test expects; -1/NULL/"" fields are checked to be unknown. */
struct want {
	const char *provider, *by, *op, *api, *req_model, *resp_model, *id, *finish, *error;
	int64_t in, out, cache_read, cache_creation, reasoning, max_tokens;
	int stream, status;
	double temperature; /* < 0: none */
	uint64_t first_chunk;
	const char *server;
	int port;
};

static void check_call(const struct llm_call *g, const struct want *w)
{
	CHECK_EQ_STR(g->provider_name, w->provider);
	CHECK_EQ_STR(g->detected_by, w->by);
	CHECK_EQ_STR(g->operation, w->op);
	CHECK_EQ_STR(g->api_type ? g->api_type : "", w->api ? w->api : "");
	CHECK_EQ_STR(g->request_model, w->req_model);
	CHECK_EQ_STR(g->response_model, w->resp_model ? w->resp_model : "");
	CHECK_EQ_STR(g->response_id, w->id ? w->id : "");
	CHECK_EQ_INT(g->n_finish_reasons, w->finish ? 1 : 0);
	if (w->finish)
		CHECK_EQ_STR(g->finish_reasons[0], w->finish);
	CHECK_EQ_STR(g->error_type, w->error ? w->error : "");
	CHECK_EQ_INT(g->input_tokens, w->in);
	CHECK_EQ_INT(g->output_tokens, w->out);
	CHECK_EQ_INT(g->cache_read_tokens, w->cache_read);
	CHECK_EQ_INT(g->cache_creation_tokens, w->cache_creation);
	CHECK_EQ_INT(g->reasoning_tokens, w->reasoning);
	CHECK_EQ_INT(g->max_tokens, w->max_tokens);
	CHECK_EQ_INT(g->stream, w->stream);
	CHECK_EQ_INT(g->status_code, w->status ? w->status : 200);
	CHECK_EQ_INT(g->has_temperature, w->temperature >= 0);
	if (w->temperature >= 0)
		CHECK(g->temperature == w->temperature);
	CHECK_EQ_INT(g->first_chunk_ns, w->first_chunk);
	CHECK_EQ_INT(g->start_ns, T_REQ);
	CHECK_EQ_INT(g->end_ns, T_END);
	if (w->server) {
		CHECK_EQ_STR(g->server_address, w->server);
		CHECK_EQ_INT(g->server_port, w->port);
	}
	CHECK_EQ_INT(g->partial, 0);
	/* Credentials in every fixture's head must not end up anywhere in the call. */
	CHECK(!memmem(g, sizeof(*g), "SECRET", 6));
}

/* ---- OpenAI Responses -------------------------------------------------------------------- */

#define RESP_HEAD                                                                                  \
	"POST /v1/responses\nHost: api.openai.com\nAuthorization: Bearer sk-SECRET\n"              \
	"Content-Type: application/json"

static const char responses_req[] =
    "{\"model\":\"o4-mini\",\"instructions\":\"Be brief.\",\"input\":[{\"role\":\"user\","
    "\"content\":[{\"type\":\"input_text\",\"text\":\"Why is the sky blue?\"}]}],"
    "\"max_output_tokens\":2048,\"temperature\":1,\"reasoning\":{\"effort\":\"low\"}}";

#define RESPONSE_OBJ(status, extra, usage)                                                         \
	"{\"id\":\"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b\",\"object\":"            \
	"\"response\","                                                                            \
	"\"created_at\":1741476542,\"status\":\"" status "\",\"error\":null," extra                \
	"\"instructions\":\"Be brief.\",\"max_output_tokens\":2048,"                               \
	"\"model\":\"o4-mini-2025-04-16\",\"output\":[{\"type\":\"reasoning\",\"id\":\"rs_1\","    \
	"\"summary\":[]},{\"type\":\"message\",\"id\":\"msg_67ccd2bf17f0819081ff3bb2cf6508e6\","   \
	"\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","  \
	"\"text\":\"Rayleigh scattering.\",\"annotations\":[]}]}],\"parallel_tool_calls\":true,"   \
	"\"reasoning\":{\"effort\":\"low\",\"summary\":null},\"temperature\":1.0,"                 \
	"\"usage\":" usage ",\"user\":null,\"metadata\":{}}"

#define RESPONSES_USAGE                                                                            \
	"{\"input_tokens\":1536,\"input_tokens_details\":{\"cached_tokens\":1024},"                \
	"\"output_tokens\":210,\"output_tokens_details\":{\"reasoning_tokens\":192},"              \
	"\"total_tokens\":1746}"

static const struct want want_responses = {
    .provider = "openai",
    .by = "host",
    .op = "chat",
    .api = "responses",
    .req_model = "o4-mini",
    .resp_model = "o4-mini-2025-04-16",
    .id = "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    .finish = "stop",
    .in = 1536,
    .out = 210,
    .cache_read = 1024,
    .cache_creation = -1,
    .reasoning = 192,
    .max_tokens = 2048,
    .stream = 0,
    .temperature = 1.0,
    .server = "api.openai.com",
    .port = 443,
};

TEST(responses_plain)
{
	struct xch x = {RESP_HEAD, responses_req, "200\nContent-Type: application/json",
			RESPONSE_OBJ("completed", "\"incomplete_details\":null,", RESPONSES_USAGE)};

	CHECK(run1(&x));
	CHECK_EQ_INT(n_got, 1);
	check_call(&got[0], &want_responses);
	check_splits(&x);
}

#define REV(type, body) "event: " type "\ndata: {\"type\":\"" type "\"," body "}\n\n"

static const char responses_stream_req[] =
    "{\"model\":\"o4-mini\",\"input\":\"Why is the sky blue?\",\"stream\":true,"
    "\"max_output_tokens\":2048,\"temperature\":1}";

static const char responses_stream[] = REV(
    "response.created", "\"sequence_number\":0,\"response\":" RESPONSE_OBJ(
			    "in_progress", "\"incomplete_details\":null,",
			    "null")) REV("response.in_progress",
					 "\"sequence_number\":1,\"response\":" RESPONSE_OBJ(
					     "in_progress", "\"incomplete_details\":null,", "null"))
    REV("response.output_item.added",
	"\"sequence_number\":2,\"output_index\":1,\"item\":"
	"{\"id\":\"msg_1\",\"status\":\"in_progress\",\"type\":\"message\",\"role\":"
	"\"assistant\",\"content\":[]}")
	REV("response.content_part.added",
	    "\"sequence_number\":3,\"item_id\":\"msg_1\","
	    "\"output_index\":1,\"content_index\":0,\"part\":{\"type\":\"output_text\","
	    "\"text\":\"\",\"annotations\":[]}")
	    REV("response.output_text.delta",
		"\"sequence_number\":4,\"item_id\":\"msg_1\","
		"\"output_index\":1,\"content_index\":0,\"delta\":\"Rayleigh\"")
		REV("response.output_text.delta",
		    "\"sequence_number\":5,\"item_id\":\"msg_1\","
		    "\"output_index\":1,\"content_index\":0,\"delta\":\" scattering.\"")
		    REV("response.output_text.done",
			"\"sequence_number\":6,\"item_id\":\"msg_1\","
			"\"output_index\":1,\"content_index\":0,\"text\":\"Rayleigh scattering.\"")
			REV("response.completed",
			    "\"sequence_number\":7,\"response\":" RESPONSE_OBJ(
				"completed", "\"incomplete_details\":null,", RESPONSES_USAGE));

TEST(responses_stream)
{
	struct xch x = {RESP_HEAD, responses_stream_req,
			"200\nContent-Type: text/event-stream; charset=utf-8", responses_stream};
	struct want w = want_responses;

	w.stream = 1;
	w.first_chunk = T_BODY;
	CHECK(run1(&x));
	CHECK_EQ_INT(n_got, 1);
	check_call(&got[0], &w);
	check_splits(&x);
}

TEST(responses_incomplete_failed_tools)
{
	struct xch x = {
	    RESP_HEAD, responses_stream_req, "200\nContent-Type: text/event-stream",
	    REV("response.incomplete", "\"sequence_number\":9,\"response\":" RESPONSE_OBJ(
					   "incomplete",
					   "\"incomplete_details\":{\"reason\":"
					   "\"max_output_tokens\"},",
					   RESPONSES_USAGE))};
	struct want w = want_responses;

	w.stream = 1;
	w.first_chunk = T_BODY;
	w.finish = "max_output_tokens";
	CHECK(run1(&x));
	check_call(&got[0], &w);

	/* A failed response (status 200, streamed): error.type from its error.code. */
	x.resp_body = REV("response.failed",
			  "\"sequence_number\":3,\"response\":{\"id\":\"resp_f\","
			  "\"object\":\"response\",\"status\":\"failed\",\"model\":\"o4-mini\","
			  "\"error\":{\"code\":\"server_error\",\"message\":\"The model failed.\"},"
			  "\"usage\":null}");
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].error_type, "server_error");
	CHECK_EQ_INT(got[0].n_finish_reasons, 0);
	CHECK_EQ_INT(got[0].input_tokens, -1);

	/* An error event. */
	x.resp_body = REV("error", "\"code\":\"rate_limit_exceeded\",\"message\":\"Slow down\","
				   "\"param\":null,\"sequence_number\":1");
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].error_type, "rate_limit_exceeded");

	/* A function call answers with tool_calls, as Chat Completions would. */
	x.resp = "200\nContent-Type: application/json";
	x.resp_body =
	    "{\"id\":\"resp_t\",\"object\":\"response\",\"status\":\"completed\","
	    "\"model\":\"gpt-4.1\",\"output\":[{\"type\":\"function_call\",\"id\":\"fc_1\","
	    "\"call_id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":\"{}\","
	    "\"status\":\"completed\"}],\"usage\":{\"input_tokens\":50,\"output_tokens\":9,"
	    "\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens_details\":"
	    "{\"reasoning_tokens\":0},\"total_tokens\":59}}";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].finish_reasons[0], "tool_calls");
	CHECK_EQ_INT(got[0].reasoning_tokens, 0);
	CHECK_EQ_INT(got[0].output_tokens, 9);

	/* A 400 error body: the status says it all. */
	x.resp = "400\nContent-Type: application/json";
	x.resp_body = "{\"error\":{\"message\":\"Unsupported parameter: 'temperature'\","
		      "\"type\":\"invalid_request_error\",\"param\":\"temperature\","
		      "\"code\":\"unsupported_parameter\"}}";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].error_type, "400");
	CHECK_EQ_STR(got[0].response_id, "");
}

/* ---- OpenAI Embeddings, legacy Completions, reasoning in Chat Completions ---------------- */

TEST(embeddings)
{
	struct xch x = {
	    "POST /v1/embeddings\nHost: api.openai.com\nAuthorization: Bearer SECRET",
	    "{\"input\":[\"The food was delicious\",\"and the waiter...\"],"
	    "\"model\":\"text-embedding-3-small\",\"encoding_format\":\"float\"}",
	    "200\nContent-Type: application/json",
	    "{\n  \"object\": \"list\",\n  \"data\": [\n    {\"object\": \"embedding\", "
	    "\"index\": 0, \"embedding\": [0.0023064255, -0.009327292, -0.0028842222]},\n"
	    "    {\"object\": \"embedding\", \"index\": 1, \"embedding\": [0.1, -0.2, 3e-5]}"
	    "\n  ],\n  \"model\": \"text-embedding-3-small\",\n  \"usage\": "
	    "{\"prompt_tokens\": 8, \"total_tokens\": 8}\n}\n"};
	struct want w = {
	    .provider = "openai",
	    .by = "host",
	    .op = "embeddings",
	    .req_model = "text-embedding-3-small",
	    .resp_model = "text-embedding-3-small",
	    .in = 8,
	    .out = -1,
	    .cache_read = -1,
	    .cache_creation = -1,
	    .reasoning = -1,
	    .max_tokens = -1,
	    .stream = 0,
	    .temperature = -1,
	};

	CHECK(run1(&x));
	check_call(&got[0], &w);
	check_splits(&x);
}

#define CMPL(body)                                                                                 \
	"data: {\"id\":\"cmpl-7iA7iJjj8V2zOkCGvWF2hAkDWBQZe\",\"object\":\"text_completion\","     \
	"\"created\":1690759702,\"model\":\"gpt-3.5-turbo-instruct\"," body "}\n\n"

TEST(legacy_completions)
{
	struct xch x = {"POST /v1/completions\nHost: api.openai.com",
			"{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":\"Say this is a test\","
			"\"max_tokens\":7,\"temperature\":0}",
			"200\nContent-Type: application/json",
			"{\"id\":\"cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7\",\"object\":\"text_completion\","
			"\"created\":1589478378,\"model\":\"gpt-3.5-turbo-instruct\","
			"\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"text\":"
			"\"\\n\\nThis is indeed a test\",\"index\":0,\"logprobs\":null,"
			"\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,"
			"\"completion_tokens\":7,\"total_tokens\":12}}"};
	struct want w = {
	    .provider = "openai",
	    .by = "host",
	    .op = "text_completion",
	    .req_model = "gpt-3.5-turbo-instruct",
	    .resp_model = "gpt-3.5-turbo-instruct",
	    .id = "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
	    .finish = "length",
	    .in = 5,
	    .out = 7,
	    .cache_read = -1,
	    .cache_creation = -1,
	    .reasoning = -1,
	    .max_tokens = 7,
	    .stream = 0,
	    .temperature = 0,
	};

	CHECK(run1(&x));
	check_call(&got[0], &w);
	check_splits(&x);

	x.req_body =
	    "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":[\"a\"],\"max_tokens\":7,"
	    "\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
	x.resp = "200\nContent-Type: text/event-stream";
	x.resp_body = CMPL("\"choices\":[{\"text\":\"This\",\"index\":0,\"logprobs\":null,"
			   "\"finish_reason\":null}]")
	    CMPL("\"choices\":[{\"text\":\" is\",\"index\":0,\"logprobs\":null,"
		 "\"finish_reason\":\"length\"}]")
		CMPL("\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,"
		     "\"total_tokens\":12}") "data: [DONE]\n\n";
	w.id = "cmpl-7iA7iJjj8V2zOkCGvWF2hAkDWBQZe";
	w.stream = 1;
	w.first_chunk = T_BODY;
	CHECK(run1(&x));
	check_call(&got[0], &w);
	check_splits(&x);
}

TEST(chat_reasoning_tokens)
{
	struct xch x = {
	    "POST /v1/chat/completions\nHost: api.openai.com",
	    "{\"model\":\"o3\",\"messages\":[{\"role\":\"user\",\"content\":\"2+2?\"}],"
	    "\"max_completion_tokens\":4000,\"reasoning_effort\":\"high\"}",
	    "200\nContent-Type: application/json",
	    "{\"id\":\"chatcmpl-AAA\",\"object\":\"chat.completion\",\"created\":1,"
	    "\"model\":\"o3-2025-04-16\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
	    "\"assistant\",\"content\":\"4\"},\"finish_reason\":\"stop\"}],\"usage\":"
	    "{\"prompt_tokens\":12,\"completion_tokens\":330,\"total_tokens\":342,"
	    "\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
	    "\"completion_tokens_details\":{\"reasoning_tokens\":320,\"audio_tokens\":0,"
	    "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}"};
	struct want w = {
	    .provider = "openai",
	    .by = "host",
	    .op = "chat",
	    .api = "chat_completions",
	    .req_model = "o3",
	    .resp_model = "o3-2025-04-16",
	    .id = "chatcmpl-AAA",
	    .finish = "stop",
	    .in = 12,
	    .out = 330,
	    .cache_read = 0,
	    .cache_creation = -1,
	    .reasoning = 320,
	    .max_tokens = 4000,
	    .stream = 0,
	    .temperature = -1,
	};

	CHECK(run1(&x));
	check_call(&got[0], &w);
}

/* ---- Azure OpenAI ------------------------------------------------------------------------ */

static const char chat_resp[] =
    "{\"id\":\"chatcmpl-az1\",\"object\":\"chat.completion\",\"created\":1,\"model\":"
    "\"gpt-4o-2024-11-20\",\"prompt_filter_results\":[{\"prompt_index\":0,"
    "\"content_filter_results\":{}}],\"choices\":[{\"index\":0,\"finish_reason\":\"stop\","
    "\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"content_filter_results\":{}}],"
    "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,\"total_tokens\":12}}";

TEST(azure_openai)
{
	struct xch x = {
	    "POST /openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
	    "\nHost: contoso-eastus.openai.azure.com\napi-key: SECRET",
	    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"max_tokens\":50}",
	    "200\nContent-Type: application/json", chat_resp};
	struct want w = {
	    .provider = "azure.ai.openai",
	    .by = "host",
	    .op = "chat",
	    .api = "chat_completions",
	    .req_model = "gpt4o-prod",
	    .resp_model = "gpt-4o-2024-11-20",
	    .id = "chatcmpl-az1",
	    .finish = "stop",
	    .in = 10,
	    .out = 2,
	    .cache_read = -1,
	    .cache_creation = -1,
	    .reasoning = -1,
	    .max_tokens = 50,
	    .stream = 0,
	    .temperature = -1,
	    .server = "contoso-eastus.openai.azure.com",
	    .port = 443,
	};

	CHECK(run1(&x));
	CHECK_EQ_INT(got[0].provider, LLM_PROVIDER_AZURE_OPENAI);
	CHECK_EQ_STR(got[0].path, "/openai/deployments/gpt4o-prod/chat/completions");
	check_call(&got[0], &w);
	check_splits(&x);

	/* The body's model wins over the deployment. */
	x.req_body = "{\"model\":\"gpt-4o\",\"messages\":[],\"max_tokens\":50}";
	w.req_model = "gpt-4o";
	CHECK(run1(&x));
	check_call(&got[0], &w);

	/* The v1 API on an AI Foundry resource: model in the body, no deployment in the path. */
	x.req = "POST /openai/v1/chat/completions\nHost: my-res.cognitiveservices.azure.com";
	w.server = "my-res.cognitiveservices.azure.com";
	CHECK(run1(&x));
	check_call(&got[0], &w);

	/* An unknown host with the deployments path: Azure by path. */
	x.req = "POST /openai/deployments/my%2Ddep/embeddings?api-version=2024-10-21\n"
		"Host: 127.0.0.1:8443";
	x.req_body = "{\"input\":\"hi\"}";
	x.resp_body = "{\"object\":\"list\",\"data\":[],\"model\":\"text-embedding-3-large\","
		      "\"usage\":{\"prompt_tokens\":1,\"total_tokens\":1}}";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].provider_name, "azure.ai.openai");
	CHECK_EQ_STR(got[0].detected_by, "path");
	CHECK_EQ_STR(got[0].request_model, "my-dep");
	CHECK_EQ_STR(got[0].operation, "embeddings");
	CHECK(got[0].api_type == NULL);
	CHECK_EQ_INT(got[0].input_tokens, 1);
}

/* ---- Gemini ------------------------------------------------------------------------------- */

#define GEM_REQ                                                                                    \
	"{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Explain how AI works\"}]}],"     \
	"\"systemInstruction\":{\"parts\":[{\"text\":\"Be brief\"}]},\"generationConfig\":"        \
	"{\"temperature\":0.5,\"maxOutputTokens\":800,\"thinkingConfig\":{\"thinkingBudget\":512}" \
	"}}"

#define GEM_CHUNK(text, finish, usage)                                                             \
	"{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"" text                          \
	"\"}],\"role\": \"model\"}" finish ",\"index\": 0}],\"usageMetadata\": " usage             \
	",\"modelVersion\": "                                                                      \
	"\"gemini-2.5-flash\",\"responseId\": \"7m5xaMGfAbCBqtsP0eyMuQ4\"}"

#define GEM_USAGE_PART "{\"promptTokenCount\": 12,\"totalTokenCount\": 12}"
#define GEM_USAGE                                                                                  \
	"{\"promptTokenCount\": 12,\"candidatesTokenCount\": 30,\"totalTokenCount\": 70,"          \
	"\"cachedContentTokenCount\": 4,\"promptTokensDetails\": [{\"modality\": \"TEXT\","        \
	"\"tokenCount\": 12}],\"thoughtsTokenCount\": 28}"

static const struct want want_gemini = {
    .provider = "gcp.gemini",
    .by = "host",
    .op = "generate_content",
    .req_model = "gemini-2.5-flash",
    .resp_model = "gemini-2.5-flash",
    .id = "7m5xaMGfAbCBqtsP0eyMuQ4",
    .finish = "STOP",
    .in = 12,
    .out = 58,
    .cache_read = 4,
    .cache_creation = -1,
    .reasoning = 28,
    .max_tokens = 800,
    .stream = 0,
    .temperature = 0.5,
    .server = "generativelanguage.googleapis.com",
    .port = 443,
};

TEST(gemini_plain)
{
	struct xch x = {"POST /v1beta/models/gemini-2.5-flash:generateContent\n"
			"Host: generativelanguage.googleapis.com\nx-goog-api-key: SECRET",
			GEM_REQ, "200\nContent-Type: application/json; charset=UTF-8",
			GEM_CHUNK("AI learns patterns.", ",\"finishReason\": \"STOP\"", GEM_USAGE)};

	CHECK(run1(&x));
	CHECK_EQ_INT(got[0].provider, LLM_PROVIDER_GEMINI);
	check_call(&got[0], &want_gemini);
	check_splits(&x);
}

TEST(gemini_stream_sse_and_json_array)
{
	struct xch x = {
	    "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse\n"
	    "Host: generativelanguage.googleapis.com",
	    GEM_REQ, "200\nContent-Type: text/event-stream",
	    "data: " GEM_CHUNK(
		"AI", "", GEM_USAGE_PART) "\r\n\r\n"
					  "data: " GEM_CHUNK(
					      " learns", "",
					      GEM_USAGE_PART) "\r\n\r\n"
							      "data: " GEM_CHUNK(
								  " patterns.",
								  ",\"finishReason\": \"STOP\"",
								  GEM_USAGE) "\r\n\r\n"};
	struct want w = want_gemini;

	w.stream = 1;
	w.first_chunk = T_BODY;
	CHECK(run1(&x));
	check_call(&got[0], &w);
	check_splits(&x);

	/* Without alt=sse: one JSON array, its elements sent as they are made. */
	x.req = "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent\n"
		"Host: generativelanguage.googleapis.com";
	x.resp = "200\nContent-Type: application/json; charset=UTF-8";
	x.resp_body = "[" GEM_CHUNK("AI", "", GEM_USAGE_PART) "\n,\r\n" GEM_CHUNK(
	    " learns", "", GEM_USAGE_PART) "\n,\r\n" GEM_CHUNK(" patterns.",
							       ",\"finishReason\": \"STOP\"",
							       GEM_USAGE) "\n]";
	CHECK(run1(&x));
	check_call(&got[0], &w);
	check_splits(&x);
}

TEST(gemini_path_vertex_errors)
{
	struct xch x = {
	    "POST /v1beta/models/gemini-2.5-flash:generateContent\nHost: 127.0.0.1:8443", GEM_REQ,
	    "200\nContent-Type: application/json",
	    GEM_CHUNK("x", ",\"finishReason\": \"MAX_TOKENS\"",
		      "{\"promptTokenCount\": 12,\"totalTokenCount\": 812,"
		      "\"thoughtsTokenCount\": 800}")};

	/* By path; a reply that was all thinking has no candidatesTokenCount. */
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].provider_name, "gcp.gemini");
	CHECK_EQ_STR(got[0].detected_by, "path");
	CHECK_EQ_STR(got[0].finish_reasons[0], "MAX_TOKENS");
	CHECK_EQ_INT(got[0].output_tokens, 800);
	CHECK_EQ_INT(got[0].reasoning_tokens, 800);
	CHECK_EQ_INT(got[0].cache_read_tokens, -1);

	/* Vertex AI, by host and by path. */
	x.req = "POST /v1/projects/p1/locations/us-central1/publishers/google/models/"
		"gemini-2.0-flash-001:generateContent\nHost: us-central1-aiplatform.googleapis.com";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].provider_name, "gcp.vertex_ai");
	CHECK_EQ_STR(got[0].detected_by, "host");
	CHECK_EQ_STR(got[0].request_model, "gemini-2.0-flash-001");
	x.req = "POST /v1/projects/p1/locations/global/publishers/google/models/"
		"gemini-2.0-flash-001:generateContent\nHost: 10.0.0.1";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].provider_name, "gcp.vertex_ai");
	CHECK_EQ_STR(got[0].detected_by, "path");

	/* 429 with Google's error body; a 200 JSON array holding an error. */
	x.resp = "429\nContent-Type: application/json";
	x.resp_body = "{\"error\": {\"code\": 429, \"message\": \"Resource has been exhausted\", "
		      "\"status\": \"RESOURCE_EXHAUSTED\"}}";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].error_type, "429");
	x.req = "POST /v1beta/models/gemini-2.5-pro:streamGenerateContent\n"
		"Host: generativelanguage.googleapis.com";
	x.resp = "200\nContent-Type: application/json";
	x.resp_body = "[{\"error\": {\"code\": 500, \"message\": \"Internal\", \"status\": "
		      "\"INTERNAL\"}}]";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].error_type, "INTERNAL");
	CHECK_EQ_STR(got[0].request_model, "gemini-2.5-pro");
	CHECK_EQ_INT(got[0].stream, 1);

	/* countTokens and embedContent are not generateContent calls. */
	x.req = "POST /v1beta/models/gemini-2.5-pro:countTokens\nHost: "
		"generativelanguage.googleapis.com";
	CHECK(!run1(&x));
}

/* ---- Ollama native ------------------------------------------------------------------------ */

#define OLLAMA_LINE(content, rest)                                                                 \
	"{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.385406455-07:00\","          \
	"\"message\":{\"role\":\"assistant\",\"content\":\"" content "\"}," rest "}\n"

#define OLLAMA_DONE                                                                                \
	"\"done\":true,\"done_reason\":\"stop\",\"total_duration\":4883583458,"                    \
	"\"load_duration\":1334875,\"prompt_eval_count\":26,\"prompt_eval_duration\":342546000,"   \
	"\"eval_count\":282,\"eval_duration\":4535599000"

static const struct want want_ollama = {
    .provider = "ollama",
    .by = "path",
    .op = "chat",
    .req_model = "llama3.2",
    .resp_model = "llama3.2",
    .finish = "stop",
    .in = 26,
    .out = 282,
    .cache_read = -1,
    .cache_creation = -1,
    .reasoning = -1,
    .max_tokens = 100,
    .stream = 1,
    .temperature = 0.7,
    .server = "localhost",
    .port = 11434,
};

TEST(ollama_chat)
{
	struct xch x = {"POST /api/chat\nHost: localhost:11434",
			"{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":"
			"\"why is the sky blue?\"}],\"options\":{\"temperature\":0.7,"
			"\"num_predict\":100}}",
			"200\nContent-Type: application/x-ndjson",
			OLLAMA_LINE("The", "\"done\":false") OLLAMA_LINE(" sky", "\"done\":false")
			    OLLAMA_LINE("", OLLAMA_DONE),
			0,
			&info_plain};
	struct want w = want_ollama;

	/* Streamed by default (no "stream" in the request): NDJSON. */
	w.first_chunk = T_BODY;
	CHECK(run1(&x));
	CHECK_EQ_INT(got[0].provider, LLM_PROVIDER_OLLAMA);
	check_call(&got[0], &w);
	check_splits(&x);

	/* "stream": false: one JSON object. */
	x.req_body = "{\"model\":\"llama3.2\",\"messages\":[],\"stream\":false,"
		     "\"options\":{\"temperature\":0.7,\"num_predict\":100}}";
	x.resp = "200\nContent-Type: application/json; charset=utf-8";
	x.resp_body = OLLAMA_LINE("The sky is blue.", OLLAMA_DONE);
	w.stream = 0;
	w.first_chunk = 0;
	CHECK(run1(&x));
	check_call(&got[0], &w);
	check_splits(&x);

	/* An unknown model: 404 with Ollama's error body. */
	x.resp = "404\nContent-Type: application/json; charset=utf-8";
	x.resp_body = "{\"error\":\"model \\\"llama9\\\" not found, try pulling it first\"}";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].error_type, "404");
	CHECK_EQ_INT(got[0].input_tokens, -1);

	/* A body without messages on /api/chat is some other API. */
	x.req_body = "{\"query\":\"x\"}";
	CHECK(run1(&x));
	CHECK_EQ_INT(n_got, 0);
}

TEST(ollama_generate_and_embed)
{
	struct xch x = {"POST /api/generate\nHost: ollama.svc:11434",
			"{\"model\":\"qwen3:8b\",\"prompt\":\"Why?\",\"think\":true}",
			"200\nContent-Type: application/x-ndjson",
			"{\"model\":\"qwen3:8b\",\"created_at\":\"2025-05-29T09:35:56.836222Z\","
			"\"response\":\"Because\",\"thinking\":\"\",\"done\":false}\n"
			"{\"model\":\"qwen3:8b\",\"created_at\":\"2025-05-29T09:35:57.1Z\","
			"\"response\":\"\",\"done\":true,\"done_reason\":\"length\",\"context\":"
			"[1,2,3],\"total_duration\":10706818083,\"prompt_eval_count\":18,"
			"\"eval_count\":290}\n",
			0,
			&info_plain};

	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].operation, "text_completion");
	CHECK_EQ_STR(got[0].provider_name, "ollama");
	CHECK_EQ_STR(got[0].request_model, "qwen3:8b");
	CHECK_EQ_STR(got[0].finish_reasons[0], "length");
	CHECK_EQ_INT(got[0].input_tokens, 18);
	CHECK_EQ_INT(got[0].output_tokens, 290);
	CHECK_EQ_INT(got[0].stream, 1);
	CHECK_EQ_INT(got[0].server_port, 11434);
	check_splits(&x);

	x.req = "POST /api/embed\nHost: localhost:11434";
	x.req_body = "{\"model\":\"all-minilm\",\"input\":[\"Why is the sky blue?\"]}";
	x.resp = "200\nContent-Type: application/json; charset=utf-8";
	x.resp_body = "{\"model\":\"all-minilm\",\"embeddings\":[[0.010071029,-0.0017594862]],"
		      "\"total_duration\":14143917,\"load_duration\":1019500,"
		      "\"prompt_eval_count\":8}";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].operation, "embeddings");
	CHECK_EQ_INT(got[0].input_tokens, 8);
	CHECK_EQ_INT(got[0].output_tokens, -1);
	CHECK_EQ_INT(got[0].stream, 0);
	CHECK_EQ_INT(got[0].n_finish_reasons, 0);
}

/* ---- Bedrock Converse --------------------------------------------------------------------- */

#define BR_HEAD(suffix)                                                                            \
	"POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/" suffix "\n"                     \
	"Host: bedrock-runtime.us-east-1.amazonaws.com\n"                                          \
	"Authorization: AWS4-HMAC-SHA256 "                                                         \
	"Credential=AKIASECRET/20250101/us-east-1/bedrock/aws4_req"

static const char bedrock_req[] =
    "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Hello\"}]}],\"system\":"
    "[{\"text\":\"Be brief\"},{\"cachePoint\":{\"type\":\"default\"}}],\"inferenceConfig\":"
    "{\"maxTokens\":512,\"temperature\":0.3,\"topP\":0.9}}";

static const struct want want_bedrock = {
    .provider = "aws.bedrock",
    .by = "host",
    .op = "chat",
    .req_model = "anthropic.claude-3-5-sonnet-20240620-v1:0",
    .finish = "end_turn",
    .in = 11 + 2040 + 7,
    .out = 97,
    .cache_read = 2040,
    .cache_creation = 7,
    .reasoning = -1,
    .max_tokens = 512,
    .stream = 0,
    .temperature = 0.3,
    .server = "bedrock-runtime.us-east-1.amazonaws.com",
    .port = 443,
};

TEST(bedrock_converse)
{
	struct xch x = {BR_HEAD("converse"), bedrock_req, "200\nContent-Type: application/json",
			"{\"metrics\":{\"latencyMs\":1470},\"output\":{\"message\":{\"content\":"
			"[{\"text\":\"Hi there.\"}],\"role\":\"assistant\"}},\"stopReason\":"
			"\"end_turn\",\"usage\":{\"cacheReadInputTokens\":2040,"
			"\"cacheWriteInputTokens\":7,\"inputTokens\":11,\"outputTokens\":97,"
			"\"totalTokens\":2155}}"};

	CHECK(run1(&x));
	CHECK_EQ_INT(got[0].provider, LLM_PROVIDER_BEDROCK);
	check_call(&got[0], &want_bedrock);
	check_splits(&x);

	/* A throttled call: x-amzn-ErrorType and the status say it. */
	x.resp = "429\nContent-Type: application/json\nx-amzn-ErrorType: ThrottlingException";
	x.resp_body = "{\"message\":\"Too many requests, please wait before trying again.\"}";
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].error_type, "429");
	CHECK_EQ_INT(got[0].input_tokens, -1);
}

static size_t bedrock_stream(uint8_t *out, bool corrupt_delta)
{
	size_t n = 0, d;

	n += esb__event(out + n, "messageStart",
			"{\"p\":\"abcdefghijklmnopqrstuvwxyzABCD\","
			"\"role\":\"assistant\"}");
	n += esb__event(out + n, "contentBlockDelta",
			"{\"contentBlockIndex\":0,\"delta\":"
			"{\"text\":\"Hi\"},\"p\":\"abcdefghijklmnop\"}");
	d = n;
	n += esb__event(out + n, "contentBlockDelta",
			"{\"contentBlockIndex\":0,\"delta\":"
			"{\"text\":\" there.\"},\"p\":\"abcdefgh\"}");
	if (corrupt_delta)
		out[d + 40] ^= 0x01;
	n += esb__event(out + n, "contentBlockStop", "{\"contentBlockIndex\":0,\"p\":\"abc\"}");
	n += esb__event(out + n, "messageStop",
			"{\"p\":\"abcdefghijklmnopqrstu\","
			"\"stopReason\":\"end_turn\"}");
	n += esb__event(out + n, "metadata",
			"{\"metrics\":{\"latencyMs\":1470},\"p\":\"abc\","
			"\"usage\":{\"cacheReadInputTokens\":2040,\"cacheWriteInputTokens\":7,"
			"\"inputTokens\":11,\"outputTokens\":97,\"totalTokens\":2155}}");
	return n;
}

TEST(bedrock_converse_stream)
{
	static uint8_t body[4096];
	struct xch x = {BR_HEAD("converse-stream"), bedrock_req,
			"200\nContent-Type: application/vnd.amazon.eventstream\n"
			"x-amzn-RequestId: 9f0e1c2d",
			body, bedrock_stream(body, false)};
	struct want w = want_bedrock;
	const struct llm_stats *st = llm__stats();
	uint64_t fe0 = st->framing_errors;

	w.stream = 1;
	w.first_chunk = T_BODY;
	CHECK(run1(&x));
	check_call(&got[0], &w);
	check_splits(&x);
	CHECK_EQ_INT(st->framing_errors, fe0);

	/* One message with a bad CRC is dropped and counted; the rest still count. */
	x.resp_len = bedrock_stream(body, true);
	CHECK(run1(&x));
	check_call(&got[0], &w);
	CHECK_EQ_INT(st->framing_errors, fe0 + 1);

	/* Cut short inside a message: counted, what came before stays. */
	x.resp_len = bedrock_stream(body, false) - 20;
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].finish_reasons[0], "end_turn");
	CHECK_EQ_INT(got[0].input_tokens, -1);
	CHECK_EQ_INT(st->framing_errors, fe0 + 2);

	/* A modelled exception in the stream. */
	x.resp_len = esb__event(body, "messageStart", "{\"role\":\"assistant\"}");
	x.resp_len += esb__exception(body + x.resp_len, "throttlingException",
				     "{\"message\":\"Too many tokens, please wait.\"}");
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].error_type, "throttlingException");
	CHECK_EQ_INT(got[0].status_code, 200);
	CHECK_EQ_INT(got[0].first_chunk_ns, T_BODY);

	/* By path, with an inference profile ARN as the model. */
	x.req = "POST /model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
		"us.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream\nHost: 127.0.0.1:8443";
	x.resp_len = bedrock_stream(body, false);
	CHECK(run1(&x));
	CHECK_EQ_STR(got[0].provider_name, "aws.bedrock");
	CHECK_EQ_STR(got[0].detected_by, "path");
	CHECK_EQ_STR(got[0].request_model,
		     "arn:aws:bedrock:us-east-1:123456789012:"
		     "inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0");
	CHECK_EQ_INT(got[0].output_tokens, 97);
}

/* ---- OpenAI-compatible hosts and detection ----------------------------------------------- */

TEST(compatible_hosts)
{
	static const struct {
		const char *head, *provider, *by;
		const char *api;
	} cases[] = {
	    {"POST /openai/v1/chat/completions\nHost: api.groq.com", "groq", "host", NULL},
	    {"POST /v1/chat/completions\nHost: api.mistral.ai", "mistral_ai", "host", NULL},
	    {"POST /chat/completions\nHost: api.deepseek.com", "deepseek", "host", NULL},
	    {"POST /chat/completions\nHost: api.perplexity.ai", "perplexity", "host", NULL},
	    {"POST /v1/chat/completions\nHost: api.x.ai", "x_ai", "host", NULL},
	    {"POST /api/v1/chat/completions\nHost: openrouter.ai", "openrouter", "host", NULL},
	    {"POST /v1/chat/completions\nHost: api.together.xyz", "together_ai", "host", NULL},
	    {"POST /inference/v1/chat/completions\nHost: api.fireworks.ai", "fireworks_ai", "host",
	     NULL},
	    {"POST /v1/chat/completions\nHost: api.moonshot.ai", "moonshot_ai", "host", NULL},
	    {"POST /compatibility/v1/chat/completions\nHost: api.cohere.ai", "cohere", "host",
	     NULL},
	    {"POST /v1beta/openai/chat/completions\nHost: generativelanguage.googleapis.com",
	     "gcp.gemini", "host", NULL},
	    {"POST /v1/chat/completions\nHost: vllm.svc.cluster.local:8000", "openai", "path",
	     "chat_completions"},
	    {"POST /v1/chat/completions\nHost: localhost:11434", "openai", "path",
	     "chat_completions"},
	    {"POST /chat/completions\nHost: litellm:4000", "openai", "path", "chat_completions"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xch x = {cases[i].head, "{\"model\":\"m\",\"messages\":[]}",
				"200\nContent-Type: application/json", chat_resp};

		CHECK(run1(&x));
		CHECK_EQ_STR(got[0].provider_name, cases[i].provider);
		CHECK_EQ_STR(got[0].detected_by, cases[i].by);
		CHECK_EQ_STR(got[0].api_type ? got[0].api_type : "",
			     cases[i].api ? cases[i].api : "");
		CHECK_EQ_INT(got[0].input_tokens, 10);
		CHECK_EQ_STR(got[0].operation, "chat");
	}
}

TEST(routes)
{
	struct llm_route r;

	CHECK(llm_detect__route("/v1beta/tunedModels/my-tune:generateContent?key=x", 49, &r));
	CHECK(r.shape == &llm_shape_gemini);
	CHECK_EQ_STR(r.model, "my-tune");
	CHECK_EQ_INT(r.stream, 0);
	CHECK(!llm_detect__route("/v1beta/models/:generateContent", 31, &r));
	CHECK(!llm_detect__route(":generateContent", 16, &r));
	CHECK(!llm_detect__route("/v1beta/models/m:generateContentX", 33, &r));
	CHECK(!llm_detect__route("/v1beta/other/m:generateContent", 31, &r));
	CHECK(llm_detect__route("/model/amazon.nova-pro-v1%3a0/converse", 38, &r));
	CHECK_EQ_STR(r.model, "amazon.nova-pro-v1:0");
	CHECK_EQ_INT(r.stream, 0);
	CHECK(!llm_detect__route("/model//converse", 16, &r));
	CHECK(!llm_detect__route("/model/x/invoke", 15, &r));
	CHECK(!llm_detect__route("/model/x", 8, &r));
	/* Bad and NUL escapes are kept as sent, never cut the string short. */
	CHECK(llm_detect__route("/model/a%zz%00b%4/converse-stream", 33, &r));
	CHECK_EQ_STR(r.model, "a%zz%00b%4");
	CHECK_EQ_INT(r.stream, 1);
	CHECK(llm_detect__route("/v1/responses", 13, &r));
	CHECK(r.shape == &llm_shape_openai_responses);
	CHECK(llm_detect__route("/openai/responses?api-version=2025-04-01-preview", 48, &r));
	CHECK(r.shape == &llm_shape_openai_responses);
	CHECK(!llm_detect__route("/v1/responses/resp_1/cancel", 27, &r));
	CHECK(llm_detect__route("/v1/fim/completions", 19, &r));
	CHECK(r.shape == &llm_shape_openai_completions);
	CHECK(!llm_detect__route("/api/chatx", 10, &r));
	CHECK(!llm_detect__route("/api/tags", 9, &r));
	CHECK(!llm_detect__route("/openai/deployments/", 20, &r));
}

TEST(path_only_needs_the_body_shape)
{
	static const char *const heads[] = {
	    "POST /api/generate\nHost: 10.0.0.5",
	    "POST /search/embeddings\nHost: 10.0.0.5",
	    "POST /x/completions\nHost: 10.0.0.5",
	    "POST /v1/responses\nHost: 10.0.0.5",
	    "POST /v1beta/models/m:generateContent\nHost: 10.0.0.5",
	    "POST /model/m/converse\nHost: 10.0.0.5",
	};
	const struct llm_stats *st = llm__stats();

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		struct xch x = {heads[i], "{\"query\":\"x\"}",
				"200\nContent-Type: application/json", "{\"ok\":true}"};
		uint64_t before = st->non_llm_exchanges;

		CHECK(run1(&x));
		CHECK_EQ_INT(n_got, 0);
		CHECK_EQ_INT(st->non_llm_exchanges, before + 1);
	}
}

TEST(stream_loss)
{
	struct llm_conn *lc = llm_conn__new(&info_plain, on_call, NULL);
	const struct http_sink *s = llm_conn__sink(lc);
	const char *l1 = OLLAMA_LINE("The", "\"done\":false");
	const char *l2 = OLLAMA_LINE("", OLLAMA_DONE);
	static uint8_t body[4096];
	size_t n = bedrock_stream(body, false);
	struct thead rq, rs;
	void *ex;

	/* NDJSON: bytes lost inside a line; the next whole line still counts. */
	n_got = 0;
	thead__parse(&rq, "POST /api/chat\nHost: localhost:11434");
	thead__parse(&rs, "200\nContent-Type: application/x-ndjson");
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	s->on_message_end(ex, false, T_REQ);
	s->on_response(ex, &rs.h, T_RESP);
	s->on_body(ex, true, (const uint8_t *)l1, 20, T_BODY);
	s->on_loss(ex, true, 33);
	s->on_body(ex, true, (const uint8_t *)l1 + 60, strlen(l1) - 60, T_BODY + 1);
	s->on_body(ex, true, (const uint8_t *)l2, strlen(l2), T_BODY + 2);
	s->on_message_end(ex, true, T_END);
	CHECK_EQ_INT(n_got, 1);
	CHECK_EQ_INT(got[0].partial, 1);
	CHECK_EQ_INT(got[0].lost_bytes, 33);
	CHECK_EQ_INT(got[0].input_tokens, 26);
	CHECK_EQ_INT(got[0].output_tokens, 282);
	CHECK_EQ_INT(got[0].first_chunk_ns, T_BODY + 2);

	/* Event stream: bytes lost inside the second message; the decoder finds the third. */
	n_got = 0;
	thead__parse(&rq, BR_HEAD("converse-stream"));
	thead__parse(&rs, "200\nContent-Type: application/vnd.amazon.eventstream");
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	s->on_message_end(ex, false, T_REQ);
	s->on_response(ex, &rs.h, T_RESP);
	s->on_body(ex, true, body, 120, T_BODY);
	s->on_loss(ex, true, 10);
	s->on_body(ex, true, body + 130, n - 130, T_BODY + 1);
	s->on_message_end(ex, true, T_END);
	CHECK_EQ_INT(n_got, 1);
	CHECK_EQ_INT(got[0].partial, 1);
	CHECK_EQ_INT(got[0].input_tokens, 11 + 2040 + 7);
	CHECK_EQ_STR(got[0].finish_reasons[0], "end_turn");
	llm_conn__free(lc);
}

int main(void)
{
	RUN(responses_plain);
	RUN(responses_stream);
	RUN(responses_incomplete_failed_tools);
	RUN(embeddings);
	RUN(legacy_completions);
	RUN(chat_reasoning_tokens);
	RUN(azure_openai);
	RUN(gemini_plain);
	RUN(gemini_stream_sse_and_json_array);
	RUN(gemini_path_vertex_errors);
	RUN(ollama_chat);
	RUN(ollama_generate_and_embed);
	RUN(bedrock_converse);
	RUN(bedrock_converse_stream);
	RUN(compatible_hosts);
	RUN(routes);
	RUN(path_only_needs_the_body_shape);
	RUN(stream_loss);
	TT_DONE();
}
