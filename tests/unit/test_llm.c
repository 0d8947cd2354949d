// SPDX-License-Identifier: Apache-2.0
/*
 * llm/: drives the http_sink directly with heads and bodies shaped like the providers'
 * documented requests and responses, asserts every field of the emitted llm_call, and re-feeds
 * each body split at every boundary and in 1-byte pieces: the call must not change.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <strings.h>

#include "tt_test.h"
#include "llm/llm.h"
#include "proto/http1.h"

#ifdef TEST_LLM_LOCAL_HTTP_FIND
/* Only for building this test before src/proto/http.c exists; `make` links the real one. */
const struct http_header *http_head__find(const struct http_head *h, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < h->num_headers; i++)
		if (h->headers[i].name_len == n && !strncasecmp(h->headers[i].name, name, n))
			return &h->headers[i];
	return NULL;
}
#endif

/* ---- collecting calls ------------------------------------------------------------------ */

#define MAX_CALLS 64

static struct llm_call calls[MAX_CALLS];
static int n_calls;

static void on_call(void *ctx, const struct llm_call *c)
{
	CHECK(ctx == &calls);
	if (n_calls < MAX_CALLS) {
		/* memcpy copies padding too: splits are compared bytewise */
		memcpy(&calls[n_calls], c, sizeof(*c));
		/* valid during the callback only; the count stays to be compared */
		calls[n_calls].chunk_gaps = NULL;
	}
	n_calls++;
}

static struct llm_conn_info info_tls = {
	.pid = 4242,
	.last_tid = 4243,
	.conn_id = 77,
	.has_peer = true,
	.peer_addr = "127.0.0.1",
	.peer_port = 8443,
	.tls_source = 1,
};

/* ---- heads from a compact text form ---------------------------------------------------- */

struct thead {
	struct http_head h;
	char buf[4096];
};

/* "POST /path\nName: value\n..." or "200\nName: value\n...". */
static void thead__parse(struct thead *t, const char *spec)
{
	char *line, *save = NULL, *sp;

	memset(t, 0, sizeof(*t));
	snprintf(t->buf, sizeof(t->buf), "%s", spec);
	line = strtok_r(t->buf, "\n", &save);
	if (line[0] >= '0' && line[0] <= '9') {
		t->h.status = atoi(line);
	} else {
		t->h.is_request = true;
		sp = strchr(line, ' ');
		*sp = '\0';
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

/* ---- one exchange, fed in pieces --------------------------------------------------------- */

struct xch {
	const char *req;
	const char *req_body;
	const char *resp; /* NULL: no response */
	const char *resp_body;
	size_t resp_body_len; /* 0: strlen */
};

#define T_REQ 1000
#define T_REQ_END 1100
#define T_RESP 5000
#define T_BODY 6000
#define T_END 9000

static void feed(const struct http_sink *s, void *ex, bool resp, const char *d, size_t n,
		 size_t cut, size_t piece, uint64_t ts)
{
	if (piece) {
		for (size_t at = 0; at < n; at += piece) {
			size_t k = n - at < piece ? n - at : piece;

			s->on_body(ex, resp, (const uint8_t *)d + at, k, ts);
		}
		return;
	}
	if (cut > n)
		cut = n;
	/* An empty piece is legal and must change nothing. */
	s->on_body(ex, resp, (const uint8_t *)d, cut, ts);
	s->on_body(ex, resp, (const uint8_t *)d + cut, n - cut, ts);
}

/* Runs one exchange on a fresh connection; returns false when on_request declined it. */
static bool run_split(const struct xch *x, const struct llm_conn_info *info, size_t req_cut,
		      size_t resp_cut, size_t piece)
{
	struct llm_conn *lc = llm_conn__new(info, on_call, &calls);
	const struct http_sink *s = llm_conn__sink(lc);
	struct thead rq, rs;
	void *ex;

	thead__parse(&rq, x->req);
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	if (!ex) {
		llm_conn__free(lc);
		return false;
	}
	if (x->req_body)
		feed(s, ex, false, x->req_body, strlen(x->req_body), req_cut, piece, T_REQ);
	s->on_message_end(ex, false, T_REQ_END);
	if (x->resp) {
		thead__parse(&rs, x->resp);
		s->on_response(ex, &rs.h, T_RESP);
		if (x->resp_body)
			feed(s, ex, true, x->resp_body,
			     x->resp_body_len ? x->resp_body_len : strlen(x->resp_body), resp_cut,
			     piece, T_BODY);
		s->on_message_end(ex, true, T_END);
	}
	llm_conn__free(lc);
	return true;
}

static bool run1(const struct xch *x)
{
	n_calls = 0;
	return run_split(x, &info_tls, (size_t)-1, (size_t)-1, 0);
}

/* Every request cut, every response cut, 1-byte pieces: all give the first call, bytewise. */
static void check_splits(const struct xch *x)
{
	struct llm_call ref;
	size_t rq = x->req_body ? strlen(x->req_body) : 0;
	size_t rs = x->resp_body ? (x->resp_body_len ? x->resp_body_len : strlen(x->resp_body)) : 0;
	int bad = 0, runs = 0;

	n_calls = 0;
	run_split(x, &info_tls, (size_t)-1, (size_t)-1, 0);
	CHECK_EQ_INT(n_calls, 1);
	memcpy(&ref, &calls[0], sizeof(ref));
	for (size_t c = 0; c <= rq; c++, runs++) {
		n_calls = 0;
		run_split(x, &info_tls, c, (size_t)-1, 0);
		bad += n_calls != 1 || memcmp(&ref, &calls[0], sizeof(ref));
	}
	for (size_t c = 0; c <= rs; c++, runs++) {
		n_calls = 0;
		run_split(x, &info_tls, (size_t)-1, c, 0);
		bad += n_calls != 1 || memcmp(&ref, &calls[0], sizeof(ref));
	}
	n_calls = 0;
	run_split(x, &info_tls, 0, 0, 1);
	bad += n_calls != 1 || memcmp(&ref, &calls[0], sizeof(ref));
	CHECK_EQ_INT(bad, 0);
	CHECK(runs > 2);
}

/* ---- expected calls ---------------------------------------------------------------------- */

static void want__init(struct llm_call *w)
{
	memset(w, 0, sizeof(*w));
	strcpy(w->operation, "chat");
	strcpy(w->method, "POST");
	w->input_tokens = w->output_tokens = -1;
	w->cache_read_tokens = w->cache_creation_tokens = -1;
	w->max_tokens = -1;
	w->stream = -1;
	w->start_ns = T_REQ;
	w->end_ns = T_END;
	w->pid = 4242;
	w->tid = 4243;
	w->conn_id = 77;
}

static void check_call(const struct llm_call *g, const struct llm_call *w)
{
	CHECK_EQ_INT(g->provider, w->provider);
	CHECK_EQ_STR(g->provider_name, w->provider_name);
	CHECK_EQ_STR(g->detected_by, w->detected_by);
	CHECK_EQ_STR(g->operation, w->operation);
	CHECK_EQ_STR(g->request_model, w->request_model);
	CHECK_EQ_STR(g->response_model, w->response_model);
	CHECK_EQ_STR(g->response_id, w->response_id);
	CHECK_EQ_INT(g->n_finish_reasons, w->n_finish_reasons);
	for (int i = 0; i < w->n_finish_reasons && i < LLM_MAX_FINISH; i++)
		CHECK_EQ_STR(g->finish_reasons[i], w->finish_reasons[i]);
	CHECK_EQ_INT(g->input_tokens, w->input_tokens);
	CHECK_EQ_INT(g->output_tokens, w->output_tokens);
	CHECK_EQ_INT(g->cache_read_tokens, w->cache_read_tokens);
	CHECK_EQ_INT(g->cache_creation_tokens, w->cache_creation_tokens);
	CHECK_EQ_INT(g->max_tokens, w->max_tokens);
	CHECK_EQ_INT(g->has_temperature, w->has_temperature);
	CHECK(g->temperature == w->temperature);
	CHECK_EQ_INT(g->stream, w->stream);
	CHECK_EQ_INT(g->start_ns, w->start_ns);
	CHECK_EQ_INT(g->end_ns, w->end_ns);
	CHECK_EQ_INT(g->first_chunk_ns, w->first_chunk_ns);
	CHECK_EQ_STR(g->server_address, w->server_address);
	CHECK_EQ_INT(g->server_port, w->server_port);
	CHECK_EQ_STR(g->method, w->method);
	CHECK_EQ_STR(g->path, w->path);
	CHECK_EQ_INT(g->status_code, w->status_code);
	CHECK_EQ_STR(g->error_type, w->error_type);
	CHECK_EQ_INT(g->pid, w->pid);
	CHECK_EQ_INT(g->tid, w->tid);
	CHECK_EQ_INT(g->conn_id, w->conn_id);
	CHECK_EQ_INT(g->partial, w->partial);
	CHECK_EQ_INT(g->lost_bytes, w->lost_bytes);
	/* Credentials sent with every fixture must not appear anywhere in the call. */
	CHECK(!memmem(g, sizeof(*g), "sk-", 3));
	CHECK(!memmem(g, sizeof(*g), "Bearer", 6));
}

static void want__openai(struct llm_call *w)
{
	want__init(w);
	w->provider = LLM_PROVIDER_OPENAI;
	w->provider_name = "openai";
	w->detected_by = "host";
	strcpy(w->server_address, "api.openai.com");
	w->server_port = 443;
	strcpy(w->path, "/v1/chat/completions");
	w->status_code = 200;
}

static void want__anthropic(struct llm_call *w)
{
	want__init(w);
	w->provider = LLM_PROVIDER_ANTHROPIC;
	w->provider_name = "anthropic";
	w->detected_by = "host";
	strcpy(w->server_address, "api.anthropic.com");
	w->server_port = 443;
	strcpy(w->path, "/v1/messages");
	w->status_code = 200;
}

/* ---- fixtures (shapes from the providers' API references) ------------------------------- */

#define OPENAI_REQ_HEAD                                                                           \
	"POST /v1/chat/completions\nHost: api.openai.com\nAuthorization: Bearer sk-proj-SECRET\n" \
	"Content-Type: application/json\nUser-Agent: OpenAI/NodeJS/6.9.1"

static const char openai_plain_req[] =
	"{\"messages\":[{\"role\":\"system\",\"content\":\"You are terse.\"},"
	"{\"role\":\"user\",\"content\":\"Say hi \\u00e9\"}],\"model\":\"gpt-4o-mini\","
	"\"max_tokens\":64,\"temperature\":0.2}";

static const char openai_plain_resp[] =
	"{\n  \"id\": \"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\n  \"object\": \"chat.completion\",\n"
	"  \"created\": 1741570283,\n  \"model\": \"gpt-4o-mini-2024-07-18\",\n"
	"  \"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": "
	"\"Hi there!\", \"refusal\": null, \"annotations\": []}, \"logprobs\": null, "
	"\"finish_reason\": \"stop\"}],\n"
	"  \"usage\": {\"prompt_tokens\": 1117, \"completion_tokens\": 46, \"total_tokens\": 1163,"
	" \"prompt_tokens_details\": {\"cached_tokens\": 1024, \"audio_tokens\": 0},"
	" \"completion_tokens_details\": {\"reasoning_tokens\": 0, \"audio_tokens\": 0,"
	" \"accepted_prediction_tokens\": 0, \"rejected_prediction_tokens\": 0}},\n"
	"  \"service_tier\": \"default\",\n  \"system_fingerprint\": \"fp_fc9f1d7035\"\n}\n";

static const char openai_stream_req[] =
	"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
	"\"stream\":true,\"stream_options\":{\"include_usage\":true},"
	"\"max_completion_tokens\":100,\"max_tokens\":7}";

#define OAI_CHUNK(body)                                                                           \
	"data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190," \
	"\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_44709d6fcb\"," body "}\n\n"

static const char openai_stream_resp[] =
	OAI_CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
		  "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null")
	OAI_CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,"
		  "\"finish_reason\":null}],\"usage\":null")
	OAI_CHUNK("\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
		  "\"finish_reason\":\"stop\"}],\"usage\":null")
	OAI_CHUNK("\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,"
		  "\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":0,"
		  "\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}")
	"data: [DONE]\n\n";

static const char openai_stream_nousage_req[] =
	"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
	"\"stream\":true}";

static const char openai_stream_nousage_resp[] =
	OAI_CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
		  "\"logprobs\":null,\"finish_reason\":null}]")
	OAI_CHUNK("\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"logprobs\":null,"
		  "\"finish_reason\":null}]")
	OAI_CHUNK("\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
		  "\"finish_reason\":\"length\"}]")
	"data: [DONE]\n\n";

#define ANTHROPIC_REQ_HEAD                                                                        \
	"POST /v1/messages\nhost: api.anthropic.com\nx-api-key: sk-ant-api03-SECRET\n"           \
	"anthropic-version: 2023-06-01\ncontent-type: application/json"

static const char anthropic_plain_req[] =
	"{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"system\":[{\"type\":\"text\","
	"\"text\":\"You are a librarian.\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
	"\"messages\":[{\"role\":\"user\",\"content\":\"Hello, Claude\"}],\"temperature\":1}";

static const char anthropic_plain_resp[] =
	"{\"id\":\"msg_013Zva2CMHLNnXjNJJKqJ2EF\",\"type\":\"message\",\"role\":\"assistant\","
	"\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{\"type\":\"text\",\"text\":"
	"\"Hi! My name is Claude.\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
	"\"usage\":{\"input_tokens\":21,\"cache_creation_input_tokens\":188,"
	"\"cache_read_input_tokens\":1800,\"output_tokens\":393,\"service_tier\":\"standard\"}}";

static const char anthropic_stream_req[] =
	"{\"model\":\"claude-opus-4-1\",\"max_tokens\":256,\"stream\":true,"
	"\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}";

static const char anthropic_stream_resp[] =
	"event: message_start\n"
	"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\","
	"\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-opus-4-1-20250805\","
	"\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,"
	"\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":2048,\"output_tokens\":2}}}\n\n"
	"event: content_block_start\n"
	"data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
	"\"text\":\"\"}}\n\n"
	"event: ping\r\n"
	"data: {\"type\": \"ping\"}\r\n\r\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	"\"text\":\"Hello\"}}\n\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	"\"text\":\"!\"}}\n\n"
	"event: content_block_stop\n"
	"data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
	"event: message_delta\n"
	"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\","
	"\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n"
	"event: message_delta\n"
	"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
	"\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n"
	"event: message_stop\n"
	"data: {\"type\":\"message_stop\"}\n\n";

/* ---- tests ------------------------------------------------------------------------------ */

TEST(openai_plain)
{
	struct xch x = { OPENAI_REQ_HEAD, openai_plain_req,
			 "200\nContent-Type: application/json\nopenai-processing-ms: 300",
			 openai_plain_resp };
	struct llm_call w;
	const struct llm_stats *st = llm__stats();
	uint64_t calls0 = st->calls, jerr0 = st->json_errors;

	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 1);
	want__openai(&w);
	strcpy(w.request_model, "gpt-4o-mini");
	strcpy(w.response_model, "gpt-4o-mini-2024-07-18");
	strcpy(w.response_id, "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
	strcpy(w.finish_reasons[0], "stop");
	w.n_finish_reasons = 1;
	w.input_tokens = 1117; /* prompt_tokens already counts the 1024 cached */
	w.output_tokens = 46;
	w.cache_read_tokens = 1024;
	w.max_tokens = 64;
	w.has_temperature = true;
	w.temperature = 0.2;
	w.stream = 0;
	check_call(&calls[0], &w);
	CHECK_EQ_INT(st->calls, calls0 + 1);
	CHECK_EQ_INT(st->json_errors, jerr0);
	check_splits(&x);
}

TEST(openai_stream_include_usage)
{
	struct xch x = { OPENAI_REQ_HEAD, openai_stream_req,
			 "200\nContent-Type: text/event-stream; charset=utf-8", openai_stream_resp };
	struct llm_call w;

	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 1);
	want__openai(&w);
	strcpy(w.request_model, "gpt-4o");
	strcpy(w.response_model, "gpt-4o-2024-08-06");
	strcpy(w.response_id, "chatcmpl-123");
	strcpy(w.finish_reasons[0], "stop");
	w.n_finish_reasons = 1;
	w.input_tokens = 9;
	w.output_tokens = 2;
	w.cache_read_tokens = 0;
	w.max_tokens = 100; /* max_completion_tokens wins over the older max_tokens */
	w.stream = 1;
	w.first_chunk_ns = T_BODY;
	check_call(&calls[0], &w);
	check_splits(&x);
}

TEST(openai_stream_without_usage)
{
	struct xch x = { OPENAI_REQ_HEAD, openai_stream_nousage_req,
			 "200\nContent-Type: text/event-stream", openai_stream_nousage_resp };
	struct llm_call w;

	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 1);
	want__openai(&w);
	strcpy(w.request_model, "gpt-4o");
	strcpy(w.response_model, "gpt-4o-2024-08-06");
	strcpy(w.response_id, "chatcmpl-123");
	strcpy(w.finish_reasons[0], "length");
	w.n_finish_reasons = 1;
	w.stream = 1;
	w.first_chunk_ns = T_BODY;
	check_call(&calls[0], &w); /* tokens stay unknown (-1), never a made-up 0 */
	check_splits(&x);
}

TEST(anthropic_plain_cache_tokens)
{
	struct xch x = { ANTHROPIC_REQ_HEAD, anthropic_plain_req,
			 "200\ncontent-type: application/json\nrequest-id: req_018EeWyXxfu5pfWkrYcMdjWG",
			 anthropic_plain_resp };
	struct llm_call w;

	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 1);
	want__anthropic(&w);
	strcpy(w.request_model, "claude-sonnet-4-5");
	strcpy(w.response_model, "claude-sonnet-4-5-20250929");
	strcpy(w.response_id, "msg_013Zva2CMHLNnXjNJJKqJ2EF");
	strcpy(w.finish_reasons[0], "end_turn");
	w.n_finish_reasons = 1;
	w.input_tokens = 21 + 1800 + 188;
	w.output_tokens = 393;
	w.cache_read_tokens = 1800;
	w.cache_creation_tokens = 188;
	w.max_tokens = 1024;
	w.has_temperature = true;
	w.temperature = 1.0;
	w.stream = 0;
	check_call(&calls[0], &w);
	check_splits(&x);
}

TEST(anthropic_stream)
{
	struct xch x = { ANTHROPIC_REQ_HEAD, anthropic_stream_req,
			 "200\ncontent-type: text/event-stream", anthropic_stream_resp };
	struct llm_call w;

	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 1);
	want__anthropic(&w);
	strcpy(w.request_model, "claude-opus-4-1");
	strcpy(w.response_model, "claude-opus-4-1-20250805");
	strcpy(w.response_id, "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
	strcpy(w.finish_reasons[0], "end_turn"); /* the last message_delta's */
	w.n_finish_reasons = 1;
	w.input_tokens = 472 + 2048 + 0;
	w.output_tokens = 15; /* cumulative: the last value, not a sum */
	w.cache_read_tokens = 2048;
	w.cache_creation_tokens = 0;
	w.max_tokens = 256;
	w.stream = 1;
	w.first_chunk_ns = T_BODY;
	check_call(&calls[0], &w);
	check_splits(&x);
}

TEST(anthropic_stream_delta_carries_input)
{
	/* Newer API versions repeat the input and cache counts in message_delta. */
	static const char resp[] =
		"event: message_start\n"
		"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\","
		"\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],"
		"\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n"
		"event: message_delta\n"
		"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"
		"\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":100,"
		"\"cache_read_input_tokens\":50,\"output_tokens\":77}}\n\n"
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
	struct xch x = { ANTHROPIC_REQ_HEAD, anthropic_stream_req,
			 "200\ncontent-type: text/event-stream", resp };
	struct llm_call w;

	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 1);
	want__anthropic(&w);
	strcpy(w.request_model, "claude-opus-4-1");
	strcpy(w.response_model, "claude-haiku-4-5");
	strcpy(w.response_id, "msg_01");
	strcpy(w.finish_reasons[0], "tool_use");
	w.n_finish_reasons = 1;
	w.input_tokens = 12 + 100 + 50;
	w.output_tokens = 77;
	w.cache_read_tokens = 50;
	w.cache_creation_tokens = 100;
	w.max_tokens = 256;
	w.stream = 1;
	w.first_chunk_ns = T_BODY;
	check_call(&calls[0], &w);
}

TEST(anthropic_stream_error_event)
{
	static const char resp[] =
		"event: message_start\n"
		"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_02\",\"model\":\"claude-x\","
		"\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n"
		"event: error\n"
		"data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
		"\"message\":\"Overloaded\"}}\n\n";
	struct xch x = { ANTHROPIC_REQ_HEAD, anthropic_stream_req,
			 "200\ncontent-type: text/event-stream", resp };
	struct llm_call w;

	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 1);
	want__anthropic(&w);
	strcpy(w.request_model, "claude-opus-4-1");
	strcpy(w.response_model, "claude-x");
	strcpy(w.response_id, "msg_02");
	strcpy(w.error_type, "overloaded_error");
	w.input_tokens = 5;
	w.output_tokens = 1;
	w.max_tokens = 256;
	w.stream = 1;
	w.first_chunk_ns = T_BODY;
	check_call(&calls[0], &w);
}

TEST(errors_429)
{
	struct xch xo = { OPENAI_REQ_HEAD, openai_plain_req,
			  "429\nContent-Type: application/json\nretry-after: 20",
			  "{\n    \"error\": {\n        \"message\": \"Rate limit reached for gpt-4o-mini "
			  "in organization org-x on tokens per min (TPM): Limit 30000.\",\n"
			  "        \"type\": \"tokens\",\n        \"param\": null,\n"
			  "        \"code\": \"rate_limit_exceeded\"\n    }\n}\n" };
	struct xch xa = { ANTHROPIC_REQ_HEAD, anthropic_plain_req,
			  "429\ncontent-type: application/json",
			  "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
			  "\"Number of request tokens has exceeded your per-minute rate limit\"},"
			  "\"request_id\":\"req_011CSHoEeqs5C35K2UUqR7Fy\"}" };
	const struct llm_stats *st = llm__stats();
	uint64_t jerr0 = st->json_errors;
	struct llm_call w;

	CHECK(run1(&xo));
	CHECK_EQ_INT(n_calls, 1);
	want__openai(&w);
	strcpy(w.request_model, "gpt-4o-mini");
	w.status_code = 429;
	strcpy(w.error_type, "429");
	w.max_tokens = 64;
	w.has_temperature = true;
	w.temperature = 0.2;
	w.stream = 0;
	check_call(&calls[0], &w);
	check_splits(&xo);

	CHECK(run1(&xa));
	CHECK_EQ_INT(n_calls, 1);
	want__anthropic(&w);
	strcpy(w.request_model, "claude-sonnet-4-5");
	w.status_code = 429;
	strcpy(w.error_type, "429");
	w.max_tokens = 1024;
	w.has_temperature = true;
	w.temperature = 1.0;
	w.stream = 0;
	check_call(&calls[0], &w);

	/* A proxy's HTML error page is not a JSON error of ours. */
	xa.resp = "502\ncontent-type: text/html";
	xa.resp_body = "<html><body>Bad gateway</body></html>";
	CHECK(run1(&xa));
	CHECK_EQ_STR(calls[0].error_type, "502");
	CHECK_EQ_INT(calls[0].status_code, 502);
	CHECK_EQ_INT(st->json_errors, jerr0);
}

/* Several hundred KiB of content: a plain body and a stream of many small events. */
TEST(big_responses)
{
	size_t content = 600 * 1024, cap = content + 4096;
	char *body = malloc(cap), *p;
	size_t pieces[] = { 0, 1, 7, 1000, 16384 };
	int n;

	p = body + sprintf(body, "{\"id\":\"chatcmpl-big\",\"object\":\"chat.completion\","
			   "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
			   "\"assistant\",\"content\":\"");
	for (size_t i = 0; i < content; i++)
		*p++ = "abcdefghij "[i % 11];
	p += sprintf(p, "\"},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":12,"
			"\"completion_tokens\":150000}}");
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		struct xch x = { OPENAI_REQ_HEAD, openai_plain_req,
				 "200\nContent-Type: application/json", body, (size_t)(p - body) };

		n_calls = 0;
		run_split(&x, &info_tls, (size_t)-1, pieces[i] ? 0 : (size_t)(p - body) / 3,
			  pieces[i]);
		CHECK_EQ_INT(n_calls, 1);
		CHECK_EQ_STR(calls[0].response_id, "chatcmpl-big");
		CHECK_EQ_INT(calls[0].input_tokens, 12);
		CHECK_EQ_INT(calls[0].output_tokens, 150000);
		CHECK_EQ_STR(calls[0].finish_reasons[0], "length");
		CHECK_EQ_INT(calls[0].partial, 0);
	}
	free(body);

	/* A stream of ~4000 chunks (several hundred KiB) with usage in the last one. */
	body = malloc(1024 * 1024);
	p = body;
	for (n = 0; n < 4000; n++)
		p += sprintf(p, "data: {\"id\":\"chatcmpl-s\",\"model\":\"gpt-4o\",\"choices\":"
				"[{\"index\":0,\"delta\":{\"content\":\"token %d \"},"
				"\"finish_reason\":null}],\"usage\":null}\n\n", n);
	p += sprintf(p, "data: {\"id\":\"chatcmpl-s\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,"
			"\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
			"data: {\"id\":\"chatcmpl-s\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":"
			"{\"prompt_tokens\":30,\"completion_tokens\":4000}}\n\ndata: [DONE]\n\n");
	CHECK(p - body > 300 * 1024);
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		struct xch x = { OPENAI_REQ_HEAD, openai_stream_req,
				 "200\nContent-Type: text/event-stream", body, (size_t)(p - body) };

		n_calls = 0;
		run_split(&x, &info_tls, (size_t)-1, pieces[i] ? 0 : (size_t)(p - body) / 2,
			  pieces[i]);
		CHECK_EQ_INT(n_calls, 1);
		CHECK_EQ_INT(calls[0].input_tokens, 30);
		CHECK_EQ_INT(calls[0].output_tokens, 4000);
		CHECK_EQ_INT(calls[0].n_finish_reasons, 1);
		CHECK_EQ_INT(calls[0].stream, 1);
	}
	free(body);
}

TEST(not_llm)
{
	static const char *heads[] = {
		"POST /v1/files\nHost: api.openai.com", /* embeddings are calls now (issue 3) */
		"GET /v1/chat/completions\nHost: api.openai.com",
		"GET /index.html\nHost: example.com",
		"POST /v1/messages/count_tokens\nHost: api.anthropic.com",
		"POST /v1/messagesX\nHost: localhost",
	};
	const struct llm_stats *st = llm__stats();

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		struct xch x = { heads[i], "{}", "200\nContent-Type: application/json", "{}" };
		uint64_t before = st->non_llm_exchanges;

		CHECK(!run1(&x));
		CHECK_EQ_INT(n_calls, 0);
		CHECK_EQ_INT(st->non_llm_exchanges, before + 1);
	}
}

TEST(detection_host_vs_path)
{
	struct llm_conn_info plain = { .pid = 4242, .last_tid = 4243, .conn_id = 77 };
	struct llm_conn_info sni = info_tls;
	struct xch x = { "POST /v1/chat/completions?api-version=2024\nHost: LocalHost:8000",
			 openai_plain_req, "200\nContent-Type: application/json", openai_plain_resp };

	/* Unknown host, known path: an OpenAI-compatible server; port from Host. */
	n_calls = 0;
	CHECK(run_split(&x, &plain, (size_t)-1, (size_t)-1, 0));
	CHECK_EQ_INT(calls[0].provider, LLM_PROVIDER_OPENAI_COMPATIBLE);
	CHECK_EQ_STR(calls[0].provider_name, "openai");
	CHECK_EQ_STR(calls[0].detected_by, "path");
	CHECK_EQ_STR(calls[0].server_address, "localhost");
	CHECK_EQ_INT(calls[0].server_port, 8000);
	CHECK_EQ_STR(calls[0].path, "/v1/chat/completions");
	CHECK_EQ_INT(calls[0].input_tokens, 1117);

	/* Host without a port: 80 in plain text, 443 over TLS. */
	x.req = "POST /openai/deployments/gpt4/chat/completions\nHost: my-llm.internal";
	n_calls = 0;
	run_split(&x, &plain, (size_t)-1, (size_t)-1, 0);
	CHECK_EQ_INT(calls[0].server_port, 80);
	CHECK_EQ_STR(calls[0].detected_by, "path");
	n_calls = 0;
	run_split(&x, &info_tls, (size_t)-1, (size_t)-1, 0);
	CHECK_EQ_INT(calls[0].server_port, 443);

	/* The host names the provider even with a trailing dot, upper case and a port. */
	x.req = "POST /v1/chat/completions\nHost: API.OpenAI.com.:443";
	CHECK(run1(&x));
	CHECK_EQ_INT(calls[0].provider, LLM_PROVIDER_OPENAI);
	CHECK_EQ_STR(calls[0].detected_by, "host");
	CHECK_EQ_STR(calls[0].server_address, "api.openai.com");

	/* SNI names the provider when Host is an address (a pinned IP). */
	snprintf(sni.sni, sizeof(sni.sni), "api.anthropic.com");
	x.req = "POST /v1/messages\nHost: [2001:db8::1]:8443";
	x.req_body = anthropic_plain_req;
	x.resp_body = anthropic_plain_resp;
	n_calls = 0;
	run_split(&x, &sni, (size_t)-1, (size_t)-1, 0);
	CHECK_EQ_INT(calls[0].provider, LLM_PROVIDER_ANTHROPIC);
	CHECK_EQ_STR(calls[0].detected_by, "host");
	CHECK_EQ_STR(calls[0].server_address, "2001:db8::1");
	CHECK_EQ_INT(calls[0].server_port, 8443);
	CHECK_EQ_INT(calls[0].input_tokens, 2009);

	/* No Host header: SNI, then the socket peer. */
	x.req = "POST /v1/messages\nContent-Type: application/json";
	n_calls = 0;
	run_split(&x, &sni, (size_t)-1, (size_t)-1, 0);
	CHECK_EQ_STR(calls[0].server_address, "api.anthropic.com");
	CHECK_EQ_INT(calls[0].server_port, 8443);
	n_calls = 0;
	run_split(&x, &info_tls, (size_t)-1, (size_t)-1, 0);
	CHECK_EQ_INT(calls[0].provider, LLM_PROVIDER_ANTHROPIC);
	CHECK_EQ_STR(calls[0].detected_by, "path");
	CHECK_EQ_STR(calls[0].server_address, "127.0.0.1");
	CHECK_EQ_INT(calls[0].server_port, 8443);

	/* Anthropic's OpenAI-compatible endpoint: provider by host, OpenAI shape by path. */
	x.req = "POST /v1/chat/completions\nHost: api.anthropic.com";
	x.req_body = openai_plain_req;
	x.resp_body = openai_plain_resp;
	CHECK(run1(&x));
	CHECK_EQ_INT(calls[0].provider, LLM_PROVIDER_ANTHROPIC);
	CHECK_EQ_STR(calls[0].provider_name, "anthropic");
	CHECK_EQ_INT(calls[0].output_tokens, 46);
}

TEST(path_match_but_not_the_shape)
{
	/* Unknown host, matching path, JSON body without "messages": some other API. */
	struct xch x = { "POST /api/chat/completions\nHost: example.com", "{\"query\":\"x\"}",
			 "200\nContent-Type: application/json", "{\"ok\":true}" };
	const struct llm_stats *st = llm__stats();
	uint64_t before = st->non_llm_exchanges;

	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 0);
	CHECK_EQ_INT(st->non_llm_exchanges, before + 1);
}

TEST(ttft_timestamps)
{
	struct llm_conn *lc = llm_conn__new(&info_tls, on_call, &calls);
	const struct http_sink *s = llm_conn__sink(lc);
	struct thead rq, rs;
	void *ex;
	const char *e1 = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
			 "{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n";

	n_calls = 0;
	thead__parse(&rq, ANTHROPIC_REQ_HEAD);
	thead__parse(&rs, "200\ncontent-type: text/event-stream");
	ex = s->on_request(s->ctx, &rq.h, 100);
	s->on_body(ex, false, (const uint8_t *)anthropic_stream_req, strlen(anthropic_stream_req),
		   100);
	s->on_message_end(ex, false, 150);
	s->on_response(ex, &rs.h, 2000);
	s->on_body(ex, true, (const uint8_t *)e1, strlen(e1), 3000); /* no blank line yet */
	s->on_body(ex, true, (const uint8_t *)"\n", 1, 3500);        /* the event is complete */
	s->on_body(ex, true, (const uint8_t *)"event: ping\ndata: {}\n\n", 22, 4000);
	s->on_message_end(ex, true, 7000);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_INT(calls[0].start_ns, 100);
	CHECK_EQ_INT(calls[0].first_chunk_ns, 3500);
	CHECK_EQ_INT(calls[0].end_ns, 7000);
	CHECK_EQ_INT(calls[0].input_tokens, 3);
	CHECK_EQ_INT(calls[0].output_tokens, -1);
	llm_conn__free(lc);
}

/* Drives one exchange up to its response head and part of the body. */
static void *start_stream(struct llm_conn *lc, struct thead *rq, struct thead *rs)
{
	const struct http_sink *s = llm_conn__sink(lc);
	void *ex;

	thead__parse(rq, OPENAI_REQ_HEAD);
	thead__parse(rs, "200\nContent-Type: text/event-stream");
	ex = s->on_request(s->ctx, &rq->h, T_REQ);
	s->on_body(ex, false, (const uint8_t *)openai_stream_req, strlen(openai_stream_req), T_REQ);
	s->on_message_end(ex, false, T_REQ_END);
	s->on_response(ex, &rs->h, T_RESP);
	s->on_body(ex, true, (const uint8_t *)openai_stream_resp, 200, T_BODY);
	return ex;
}

TEST(loss_and_aborts)
{
	struct llm_conn *lc = llm_conn__new(&info_tls, on_call, &calls);
	const struct http_sink *s = llm_conn__sink(lc);
	const char *rest;
	struct thead rq, rs;
	struct llm_call w;
	void *ex;

	/* Loss inside the stream: later events still count, the call is partial. */
	n_calls = 0;
	ex = start_stream(lc, &rq, &rs);
	s->on_loss(ex, true, 1234);
	/* The bytes after the hole start inside the "stop" chunk: it is dropped whole. */
	rest = strstr(openai_stream_resp, "\"finish_reason\":\"stop\"");
	s->on_body(ex, true, (const uint8_t *)rest, strlen(rest), T_BODY + 1);
	s->on_message_end(ex, true, T_END);
	CHECK_EQ_INT(n_calls, 1);
	want__openai(&w);
	strcpy(w.request_model, "gpt-4o");
	strcpy(w.response_model, "gpt-4o-2024-08-06");
	strcpy(w.response_id, "chatcmpl-123");
	w.input_tokens = 9;
	w.output_tokens = 2;
	w.cache_read_tokens = 0;
	w.max_tokens = 100;
	w.stream = 1;
	w.first_chunk_ns = T_BODY + 1; /* the first 200 bytes did not complete an event */
	w.partial = true;
	w.lost_bytes = 1234;
	check_call(&calls[0], &w);

	/* Gap abort mid-stream. */
	n_calls = 0;
	ex = start_stream(lc, &rq, &rs);
	s->on_abort(ex, HTTP_ABORT_GAP, 8000);
	CHECK_EQ_INT(n_calls, 1);
	w.input_tokens = w.output_tokens = w.cache_read_tokens = -1;
	w.response_model[0] = w.response_id[0] = '\0';
	w.first_chunk_ns = 0;
	w.lost_bytes = 0;
	w.end_ns = 8000;
	strcpy(w.error_type, "capture_gap");
	check_call(&calls[0], &w);

	/* Connection closed before any response. */
	n_calls = 0;
	thead__parse(&rq, OPENAI_REQ_HEAD);
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	s->on_body(ex, false, (const uint8_t *)openai_plain_req, 40, T_REQ);
	s->on_abort(ex, HTTP_ABORT_CONN_CLOSED, 8100);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "connection_closed");
	CHECK_EQ_INT(calls[0].status_code, 0);
	CHECK_EQ_INT(calls[0].end_ns, 8100);
	CHECK_EQ_INT(calls[0].partial, 0);
	CHECK_EQ_STR(calls[0].request_model, ""); /* the body never completed */

	/* Timeout after the request, and a 500 whose connection then closes: the status wins. */
	static const struct {
		enum http_abort_reason why;
		const char *want;
	} reasons[] = {
		{ HTTP_ABORT_TIMEOUT, "timeout" },
		{ HTTP_ABORT_PARSE_ERROR, "parse_error" },
		{ HTTP_ABORT_OVERFLOW, "overflow" },
	};
	for (size_t i = 0; i < 3; i++) {
		n_calls = 0;
		ex = s->on_request(s->ctx, &rq.h, T_REQ);
		s->on_body(ex, false, (const uint8_t *)openai_plain_req, strlen(openai_plain_req),
			   T_REQ);
		s->on_message_end(ex, false, T_REQ_END);
		s->on_abort(ex, reasons[i].why, 9999);
		CHECK_EQ_INT(n_calls, 1);
		CHECK_EQ_STR(calls[0].error_type, reasons[i].want);
		CHECK_EQ_STR(calls[0].request_model, "gpt-4o-mini");
	}
	n_calls = 0;
	thead__parse(&rs, "500\nContent-Type: application/json");
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	s->on_message_end(ex, false, T_REQ_END);
	s->on_response(ex, &rs.h, T_RESP);
	s->on_body(ex, true, (const uint8_t *)"{\"error\":", 9, T_BODY);
	s->on_abort(ex, HTTP_ABORT_CONN_CLOSED, 9999);
	CHECK_EQ_STR(calls[0].error_type, "500");

	/* Loss in a plain JSON body: nothing from it is trusted. */
	n_calls = 0;
	thead__parse(&rs, "200\nContent-Type: application/json");
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	s->on_message_end(ex, false, T_REQ_END);
	s->on_response(ex, &rs.h, T_RESP);
	s->on_body(ex, true, (const uint8_t *)openai_plain_resp, 100, T_BODY);
	s->on_loss(ex, true, 50);
	s->on_body(ex, true, (const uint8_t *)openai_plain_resp + 150,
		   strlen(openai_plain_resp) - 150, T_BODY);
	s->on_message_end(ex, true, T_END);
	CHECK_EQ_INT(calls[0].partial, 1);
	CHECK_EQ_INT(calls[0].lost_bytes, 50);
	CHECK_EQ_INT(calls[0].input_tokens, -1);
	CHECK_EQ_STR(calls[0].response_id, "");
	CHECK_EQ_STR(calls[0].error_type, "");
	llm_conn__free(lc);
}

TEST(free_with_open_exchanges)
{
	struct llm_conn *lc = llm_conn__new(&info_tls, on_call, &calls);
	struct thead rq, rs;

	n_calls = 0;
	start_stream(lc, &rq, &rs);
	start_stream(lc, &rq, &rs);
	/* A third, without a body. */
	llm_conn__sink(lc)->on_request(llm_conn__sink(lc)->ctx, &rq.h, 1);
	llm_conn__free(lc); /* frees without emitting; ASan checks */
	CHECK_EQ_INT(n_calls, 0);
	llm_conn__free(NULL);
}

TEST(pipelined_exchanges)
{
	struct llm_conn *lc = llm_conn__new(&info_tls, on_call, &calls);
	const struct http_sink *s = llm_conn__sink(lc);
	struct thead rq, rs;
	void *a, *b;

	n_calls = 0;
	thead__parse(&rq, OPENAI_REQ_HEAD);
	thead__parse(&rs, "200\nContent-Type: application/json");
	a = s->on_request(s->ctx, &rq.h, 1);
	s->on_body(a, false, (const uint8_t *)openai_plain_req, strlen(openai_plain_req), 1);
	s->on_message_end(a, false, 2);
	b = s->on_request(s->ctx, &rq.h, 3);
	s->on_body(b, false, (const uint8_t *)openai_stream_req, strlen(openai_stream_req), 3);
	s->on_message_end(b, false, 4);
	s->on_response(a, &rs.h, 5);
	s->on_body(a, true, (const uint8_t *)openai_plain_resp, strlen(openai_plain_resp), 6);
	s->on_message_end(a, true, 7);
	thead__parse(&rs, "200\nContent-Type: text/event-stream");
	s->on_response(b, &rs.h, 8);
	s->on_body(b, true, (const uint8_t *)openai_stream_resp, strlen(openai_stream_resp), 9);
	s->on_message_end(b, true, 10);
	CHECK_EQ_INT(n_calls, 2);
	CHECK_EQ_STR(calls[0].request_model, "gpt-4o-mini");
	CHECK_EQ_INT(calls[0].start_ns, 1);
	CHECK_EQ_INT(calls[0].end_ns, 7);
	CHECK_EQ_STR(calls[1].request_model, "gpt-4o");
	CHECK_EQ_INT(calls[1].start_ns, 3);
	CHECK_EQ_INT(calls[1].first_chunk_ns, 9);
	CHECK_EQ_INT(calls[1].end_ns, 10);
	llm_conn__free(lc);
}

TEST(bad_json_and_encodings)
{
	const struct llm_stats *st = llm__stats();
	uint64_t jerr0 = st->json_errors, und0 = st->undecoded_bodies;
	struct xch x = { OPENAI_REQ_HEAD, "{\"model\": \"gpt-4o\", \"messages\": [oops",
			 "200\nContent-Type: text/event-stream", openai_stream_resp };

	/* The request does not parse: still a call, with what the response tells. */
	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_INT(st->json_errors, jerr0 + 1);
	CHECK_EQ_STR(calls[0].request_model, "");
	CHECK_EQ_INT(calls[0].stream, 1); /* learned from the event stream */
	CHECK_EQ_INT(calls[0].output_tokens, 2);
	CHECK_EQ_INT(calls[0].max_tokens, -1);

	/* A coding tokentap cannot undo is not parsed: no made-up numbers. (gzip, deflate, br and
	 * zstd are decoded: tests/unit/test_decode.c.) */
	x.req_body = openai_plain_req;
	x.resp = "200\nContent-Type: application/json\nContent-Encoding: compress";
	x.resp_body = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\x56\x2a";
	CHECK(run1(&x));
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_INT(st->undecoded_bodies, und0 + 1);
	CHECK_EQ_INT(st->json_errors, jerr0 + 1);
	CHECK_EQ_STR(calls[0].request_model, "gpt-4o-mini");
	CHECK_EQ_INT(calls[0].input_tokens, -1);
	CHECK_EQ_INT(calls[0].output_tokens, -1);
	CHECK_EQ_STR(calls[0].response_id, "");

	/* Garbage in a 200 JSON body is a counted error; bad event data too (once). */
	x.resp = "200\nContent-Type: application/json";
	x.resp_body = "not json at all";
	CHECK(run1(&x));
	CHECK_EQ_INT(st->json_errors, jerr0 + 2);
	x.resp = "200\nContent-Type: text/event-stream";
	x.resp_body = "data: {bad\n\ndata: {worse\n\ndata: [DONE]\n\n";
	CHECK(run1(&x));
	CHECK_EQ_INT(st->json_errors, jerr0 + 3);
	CHECK_EQ_INT(calls[0].first_chunk_ns, T_BODY);

	/* No Content-Type: sniffed from the first byte, both ways. */
	x.resp = "200\nServer: x";
	x.resp_body = "\r\n" OAI_CHUNK("\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
					 "\"completion_tokens\":5}}");
	CHECK(run1(&x));
	CHECK_EQ_INT(calls[0].input_tokens, 4);
	CHECK_EQ_INT(calls[0].stream, 0); /* the request said so */
	x.resp_body = openai_plain_resp;
	CHECK(run1(&x));
	CHECK_EQ_INT(calls[0].input_tokens, 1117);
	CHECK_EQ_INT(st->json_errors, jerr0 + 3);

	/* Non-finite and negative numbers are not taken. */
	x.req_body = "{\"model\":\"m\",\"messages\":[],\"temperature\":NaN,\"max_tokens\":-5}";
	CHECK(run1(&x));
	CHECK_EQ_INT(calls[0].has_temperature, 0);
	CHECK_EQ_INT(calls[0].max_tokens, -1);
	CHECK_EQ_STR(calls[0].request_model, "m");
}

#define FEED_STR(ex, resp, str, ts) s->on_body(ex, resp, (const uint8_t *)(str), strlen(str), ts)

TEST(request_overflow)
{
	const struct llm_stats *st = llm__stats();
	uint64_t ov0 = st->body_overflow, jerr0 = st->json_errors;
	struct llm_conn *lc = llm_conn__new(&info_tls, on_call, &calls);
	const struct http_sink *s = llm_conn__sink(lc);
	size_t chunk = 1024 * 1024;
	char *buf = malloc(chunk);
	struct thead rq, rs;
	void *ex;

	memset(buf, ' ', chunk);
	n_calls = 0;
	thead__parse(&rq, OPENAI_REQ_HEAD);
	thead__parse(&rs, "200\nContent-Type: application/json");
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	FEED_STR(ex, false, "{\"messages\":[{\"content\":\"", T_REQ);
	for (int i = 0; i < 10; i++)
		s->on_body(ex, false, (const uint8_t *)buf, chunk, T_REQ);
	FEED_STR(ex, false, "\"}],\"model\":\"gpt-4o\"}", T_REQ);
	s->on_message_end(ex, false, T_REQ_END);
	s->on_response(ex, &rs.h, T_RESP);
	s->on_body(ex, true, (const uint8_t *)openai_plain_resp, strlen(openai_plain_resp), T_BODY);
	s->on_message_end(ex, true, T_END);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_INT(st->body_overflow, ov0 + 1);
	CHECK_EQ_INT(st->json_errors, jerr0);
	CHECK_EQ_INT(calls[0].partial, 1);
	CHECK_EQ_INT(calls[0].lost_bytes, 0);
	CHECK_EQ_STR(calls[0].request_model, "");
	CHECK_EQ_INT(calls[0].input_tokens, 1117); /* the response is still read */
	free(buf);
	llm_conn__free(lc);
}

TEST(long_strings_truncated_on_utf8_boundary)
{
	char req[1024], *p = req;
	struct xch x = { OPENAI_REQ_HEAD, req, "200\nContent-Type: application/json", "{}" };

	/* 400 bytes of 2-byte characters: a cut at LLM_STR - 1 = 255 bytes would split one. */
	p += sprintf(p, "{\"messages\":[],\"model\":\"");
	for (int i = 0; i < 200; i++)
		p += sprintf(p, "\xc3\xa9");
	sprintf(p, "\"}");
	CHECK(run1(&x));
	CHECK_EQ_INT(strlen(calls[0].request_model), LLM_STR - 2);
	CHECK(!memcmp(calls[0].request_model + LLM_STR - 4, "\xc3\xa9", 3));
}

/* ---- chunk timing and HTTP/2 resets ------------------------------------------------------ */

static struct {
	uint32_t n, folded;
	double sum, folded_s;
	const char *code, *sender, *error;
} got;

static void on_call_gaps(void *ctx, const struct llm_call *c)
{
	got.n = c->n_chunk_gaps;
	got.folded = c->chunk_gaps_folded;
	got.folded_s = c->chunk_gaps_folded_s;
	got.sum = 0;
	for (uint32_t i = 0; i < c->n_chunk_gaps; i++)
		got.sum += c->chunk_gaps[i];
	got.code = c->http2_error_code;
	got.sender = c->http2_error_sender;
	got.error = c->error_type[0] ? strdup(c->error_type) : NULL;
}

/* A streamed exchange whose events arrive `gap_ns` apart, n of them, then [DONE]. */
static void stream_events(int n, uint64_t gap_ns)
{
	struct llm_conn *lc = llm_conn__new(&info_tls, on_call_gaps, NULL);
	const struct http_sink *s = llm_conn__sink(lc);
	static const char ev[] = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n";
	struct thead rq, rs;
	uint64_t end;
	void *ex;

	thead__parse(&rq, OPENAI_REQ_HEAD);
	thead__parse(&rs, "200\nContent-Type: text/event-stream");
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	s->on_body(ex, false, (const uint8_t *)openai_stream_req, strlen(openai_stream_req), T_REQ);
	s->on_message_end(ex, false, T_REQ_END);
	s->on_response(ex, &rs.h, T_RESP);
	for (int i = 0; i < n; i++)
		s->on_body(ex, true, (const uint8_t *)ev, sizeof(ev) - 1, T_BODY + i * gap_ns);
	end = T_BODY + n * gap_ns + 1000000000; /* [DONE] a second later: not a chunk */
	s->on_body(ex, true, (const uint8_t *)"data: [DONE]\n\n", 14, end);
	s->on_message_end(ex, true, end);
	llm_conn__free(lc);
}

/* One gap per output chunk after the first, timed by the read that carried it; [DONE] is no
 * chunk; past LLM_MAX_CHUNK_GAPS the gaps are folded: counted and summed. */
TEST(chunk_gaps_per_event)
{
	memset(&got, 0, sizeof(got));
	stream_events(5, 100000000); /* 0.1 s apart */
	CHECK_EQ_INT(got.n, 4);
	CHECK_EQ_INT(got.folded, 0);
	CHECK(got.sum > 0.3999 && got.sum < 0.4001);
	stream_events(LLM_MAX_CHUNK_GAPS + 11, 1000000); /* 1 ms apart */
	CHECK_EQ_INT(got.n, LLM_MAX_CHUNK_GAPS);
	CHECK_EQ_INT(got.folded, 10);
	CHECK(got.folded_s > 0.00999 && got.folded_s < 0.01001);
	stream_events(1, 0);
	CHECK_EQ_INT(got.n, 0);
	CHECK_EQ_INT(got.folded, 0);
}

/* An HTTP/2 reset: error.type names the frame, the code and its sender are kept. */
TEST(http2_reset_is_the_error)
{
	struct llm_conn *lc = llm_conn__new(&info_tls, on_call_gaps, NULL);
	const struct http_sink *s = llm_conn__sink(lc);
	struct thead rq, rs;
	void *ex;

	memset(&got, 0, sizeof(got));
	ex = start_stream(lc, &rq, &rs);
	s->on_stream_error(ex, true, 8);
	s->on_abort(ex, HTTP_ABORT_RST_STREAM, T_END);
	CHECK_EQ_STR(got.error, "http2_rst_stream");
	CHECK_EQ_STR(got.code, "CANCEL");
	CHECK_EQ_STR(got.sender, "server");
	free((char *)got.error);
	ex = start_stream(lc, &rq, &rs);
	s->on_abort(ex, HTTP_ABORT_GOAWAY, T_END);
	CHECK_EQ_STR(got.error, "http2_goaway");
	CHECK(got.code == NULL); /* no code read: none reported */
	free((char *)got.error);
	llm_conn__free(lc);
}

/* ---- a stream whose terminal event came in, then the connection closed -------------------- */

/*
 * Codex reads a streamed response up to its terminal event, leaves the chunked body's last
 * chunk unread and drops the connection: the call was complete at the terminal event. Cut
 * before it, the same close is still an error.
 */
#define RESPONSES_REQ_HEAD                                                                         \
	"POST /v1/responses\nHost: api.openai.com\nAuthorization: Bearer sk-proj-SECRET\n"         \
	"Content-Type: application/json"

static const char responses_stream_req[] =
    "{\"model\":\"gpt-5-codex\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
    "\"input_text\",\"text\":\"list files\"}]}],\"stream\":true,\"store\":false}";

#define RESP_OBJ(status, usage)                                                                    \
	"{\"id\":\"resp_0a1b2c\",\"object\":\"response\",\"created_at\":1741476542,"               \
	"\"status\":\"" status "\",\"model\":\"gpt-5-codex-2025-09-15\",\"output\":[],"            \
	"\"usage\":" usage "}"

#define RESP_EV(type, body) "event: " type "\ndata: {\"type\":\"" type "\"," body "}\n\n"

/* Everything before the terminal event, then the terminal event on its own. */
static const char responses_stream_head[] = RESP_EV(
    "response.created", "\"sequence_number\":0,\"response\":" RESP_OBJ("in_progress", "null"))
    RESP_EV("response.output_text.delta", "\"sequence_number\":1,\"item_id\":\"msg_1\","
					  "\"output_index\":0,\"content_index\":0,"
					  "\"delta\":\"ls\"")
	RESP_EV("response.output_text.done", "\"sequence_number\":2,\"item_id\":\"msg_1\","
					     "\"output_index\":0,\"content_index\":0,"
					     "\"text\":\"ls\"");
static const char responses_stream_done[] = RESP_EV(
    "response.completed",
    "\"sequence_number\":3,\"response\":" RESP_OBJ(
	"completed", "{\"input_tokens\":1200,\"input_tokens_details\":{\"cached_tokens\":1024},"
		     "\"output_tokens\":12,\"output_tokens_details\":{\"reasoning_tokens\":0},"
		     "\"total_tokens\":1212}"));

#define T_DONE 7000  /* the terminal event */
#define T_CLOSE 9500 /* the connection closed */

/*
 * Request, response head, the stream's events up to `done` (NULL: none), then the exchange
 * aborted for why (an HTTP/2 RST_STREAM from the client with code rst first, when rst >= 0).
 */
static void stream_then_abort(const char *req_head, const char *req, const char *head,
			      size_t head_len, const char *done, size_t done_len,
			      enum http_abort_reason why, int rst)
{
	struct llm_conn *lc = llm_conn__new(&info_tls, on_call, &calls);
	const struct http_sink *s = llm_conn__sink(lc);
	struct thead rq, rs;
	void *ex;

	n_calls = 0;
	thead__parse(&rq, req_head);
	thead__parse(&rs, "200\nContent-Type: text/event-stream; charset=utf-8\n"
			  "Transfer-Encoding: chunked");
	ex = s->on_request(s->ctx, &rq.h, T_REQ);
	s->on_body(ex, false, (const uint8_t *)req, strlen(req), T_REQ);
	s->on_message_end(ex, false, T_REQ_END);
	s->on_response(ex, &rs.h, T_RESP);
	s->on_body(ex, true, (const uint8_t *)head, head_len, T_BODY);
	if (done)
		s->on_body(ex, true, (const uint8_t *)done, done_len, T_DONE);
	if (rst >= 0)
		s->on_stream_error(ex, false, (uint32_t)rst);
	s->on_abort(ex, why, T_CLOSE);
	llm_conn__free(lc);
}

static void stream_then_close(const char *req_head, const char *req, const char *head,
			      size_t head_len, const char *done, size_t done_len)
{
	stream_then_abort(req_head, req, head, head_len, done, done_len, HTTP_ABORT_CONN_CLOSED,
			  -1);
}

/*
 * Over HTTP/2 Codex (hyper) cancels the stream (RST_STREAM CANCEL) once the terminal event is
 * in, when the server's END_STREAM comes in a later frame: complete, no error, no code. Before
 * the terminal event the reset is the error.
 */
TEST(responses_terminal_event_then_client_cancel)
{
	stream_then_abort(RESPONSES_REQ_HEAD, responses_stream_req, responses_stream_head,
			  strlen(responses_stream_head), responses_stream_done,
			  strlen(responses_stream_done), HTTP_ABORT_RST_STREAM, 8);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "");
	CHECK(calls[0].http2_error_code == NULL);
	CHECK_EQ_INT(calls[0].end_ns, T_DONE);
	CHECK_EQ_INT(calls[0].output_tokens, 12);
	stream_then_abort(RESPONSES_REQ_HEAD, responses_stream_req, responses_stream_head,
			  strlen(responses_stream_head), NULL, 0, HTTP_ABORT_RST_STREAM, 8);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "http2_rst_stream");
	CHECK_EQ_STR(calls[0].http2_error_code, "CANCEL");
	CHECK_EQ_INT(calls[0].end_ns, T_CLOSE);
}

TEST(responses_terminal_event_then_close)
{
	const char *cut = strstr(responses_stream_done, "\n\n");

	stream_then_close(RESPONSES_REQ_HEAD, responses_stream_req, responses_stream_head,
			  strlen(responses_stream_head), responses_stream_done,
			  strlen(responses_stream_done));
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "");
	CHECK_EQ_INT(calls[0].end_ns, T_DONE);
	CHECK_EQ_INT(calls[0].start_ns, T_REQ);
	CHECK_EQ_INT(calls[0].first_chunk_ns, T_BODY);
	CHECK_EQ_INT(calls[0].status_code, 200);
	CHECK_EQ_INT(calls[0].stream, 1);
	CHECK_EQ_INT(calls[0].partial, 0);
	CHECK_EQ_STR(calls[0].request_model, "gpt-5-codex");
	CHECK_EQ_STR(calls[0].response_model, "gpt-5-codex-2025-09-15");
	CHECK_EQ_STR(calls[0].response_id, "resp_0a1b2c");
	CHECK_EQ_INT(calls[0].input_tokens, 1200);
	CHECK_EQ_INT(calls[0].output_tokens, 12);
	CHECK_EQ_INT(calls[0].cache_read_tokens, 1024);
	CHECK_EQ_INT(calls[0].n_finish_reasons, 1);
	CHECK_EQ_STR(calls[0].finish_reasons[0], "stop");

	/* Cut before the terminal event: the close is the error, at the close's time. */
	stream_then_close(RESPONSES_REQ_HEAD, responses_stream_req, responses_stream_head,
			  strlen(responses_stream_head), NULL, 0);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "connection_closed");
	CHECK_EQ_INT(calls[0].end_ns, T_CLOSE);
	CHECK_EQ_INT(calls[0].input_tokens, -1);

	/* The terminal event itself cut short (no blank line yet): it never arrived. */
	CHECK(cut != NULL);
	stream_then_close(RESPONSES_REQ_HEAD, responses_stream_req, responses_stream_head,
			  strlen(responses_stream_head), responses_stream_done,
			  (size_t)(cut - responses_stream_done) + 1);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "connection_closed");
	CHECK_EQ_INT(calls[0].end_ns, T_CLOSE);

	/* Chat Completions' "data: [DONE]" ends a stream too. */
	{
		const char *dn = strstr(openai_stream_resp, "data: [DONE]");

		stream_then_close(OPENAI_REQ_HEAD, openai_stream_req, openai_stream_resp,
				  (size_t)(dn - openai_stream_resp), dn, strlen(dn));
		CHECK_EQ_INT(n_calls, 1);
		CHECK_EQ_STR(calls[0].error_type, "");
		CHECK_EQ_INT(calls[0].end_ns, T_DONE);
		CHECK_EQ_INT(calls[0].output_tokens, 2);
		stream_then_close(OPENAI_REQ_HEAD, openai_stream_req, openai_stream_resp,
				  (size_t)(dn - openai_stream_resp), NULL, 0);
		CHECK_EQ_STR(calls[0].error_type, "connection_closed");
	}

	/* A stream with no terminal event at all (cut after its first event). */
	stream_then_close(
	    RESPONSES_REQ_HEAD, responses_stream_req, responses_stream_head,
	    (size_t)(strstr(responses_stream_head, "\n\n") - responses_stream_head) + 2, NULL, 0);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "connection_closed");
	CHECK_EQ_INT(calls[0].first_chunk_ns, T_BODY);
}

TEST(anthropic_message_stop_then_close)
{
	const char *stop = strstr(anthropic_stream_resp, "event: message_stop");
	size_t head = (size_t)(stop - anthropic_stream_resp);

	stream_then_close(ANTHROPIC_REQ_HEAD, anthropic_stream_req, anthropic_stream_resp, head,
			  stop, strlen(stop));
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "");
	CHECK_EQ_INT(calls[0].end_ns, T_DONE);
	CHECK_EQ_INT(calls[0].first_chunk_ns, T_BODY);
	CHECK_EQ_INT(calls[0].partial, 0);
	CHECK_EQ_STR(calls[0].response_id, "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
	CHECK_EQ_INT(calls[0].output_tokens, 15);
	CHECK_EQ_INT(calls[0].input_tokens, 472 + 2048);
	CHECK_EQ_STR(calls[0].finish_reasons[0], "end_turn");

	/* Up to the last message_delta only: usage is all there, but the stream did not end. */
	stream_then_close(ANTHROPIC_REQ_HEAD, anthropic_stream_req, anthropic_stream_resp, head,
			  NULL, 0);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "connection_closed");
	CHECK_EQ_INT(calls[0].end_ns, T_CLOSE);
	CHECK_EQ_INT(calls[0].output_tokens, 15);
}

/* The same through HTTP/1.1: a chunked body whose last (zero) chunk never comes, then the
 * connection closes (http1__close). */
static void chunked_then_close(const char *req_head, const char *req, const char *events,
			       size_t events_len, const char *done, size_t done_len)
{
	struct llm_conn *lc = llm_conn__new(&info_tls, on_call, &calls);
	struct http1 *p = http1__new(HTTP1_ROLE_CLIENT, llm_conn__sink(lc));
	static char buf[16384];
	struct thead rq;
	int n;

	n_calls = 0;
	thead__parse(&rq, req_head);
	n = snprintf(buf, sizeof(buf), "%.*s %.*s HTTP/1.1\r\n", (int)rq.h.method_len, rq.h.method,
		     (int)rq.h.path_len, rq.h.path);
	for (size_t i = 0; i < rq.h.num_headers; i++)
		n += snprintf(buf + n, sizeof(buf) - n, "%.*s: %.*s\r\n",
			      (int)rq.h.headers[i].name_len, rq.h.headers[i].name,
			      (int)rq.h.headers[i].value_len, rq.h.headers[i].value);
	n += snprintf(buf + n, sizeof(buf) - n, "Content-Length: %zu\r\n\r\n%s", strlen(req), req);
	CHECK_EQ_INT(http1__feed(p, 0, (const uint8_t *)buf, (size_t)n, T_REQ, T_REQ), 0);
	n = snprintf(buf, sizeof(buf),
		     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%.*s\r\n",
		     events_len, (int)events_len, events);
	CHECK_EQ_INT(http1__feed(p, 1, (const uint8_t *)buf, (size_t)n, T_BODY, T_BODY), 0);
	if (done) {
		n = snprintf(buf, sizeof(buf), "%zx\r\n%.*s\r\n", done_len, (int)done_len, done);
		CHECK_EQ_INT(http1__feed(p, 1, (const uint8_t *)buf, (size_t)n, T_DONE, T_DONE), 0);
	}
	CHECK_EQ_INT(n_calls, 0); /* the body has not ended */
	http1__close(p, T_CLOSE);
	http1__free(p);
	llm_conn__free(lc);
}

TEST(chunked_stream_closed_after_terminal_event)
{
	const char *stop = strstr(anthropic_stream_resp, "event: message_stop");

	chunked_then_close(RESPONSES_REQ_HEAD, responses_stream_req, responses_stream_head,
			   strlen(responses_stream_head), responses_stream_done,
			   strlen(responses_stream_done));
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "");
	CHECK_EQ_INT(calls[0].end_ns, T_DONE);
	CHECK_EQ_INT(calls[0].output_tokens, 12);
	CHECK_EQ_STR(calls[0].path, "/v1/responses");
	chunked_then_close(RESPONSES_REQ_HEAD, responses_stream_req, responses_stream_head,
			   strlen(responses_stream_head), NULL, 0);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "connection_closed");
	CHECK_EQ_INT(calls[0].end_ns, T_CLOSE);

	chunked_then_close(ANTHROPIC_REQ_HEAD, anthropic_stream_req, anthropic_stream_resp,
			   (size_t)(stop - anthropic_stream_resp), stop, strlen(stop));
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "");
	CHECK_EQ_INT(calls[0].end_ns, T_DONE);
	CHECK_EQ_INT(calls[0].output_tokens, 15);
	chunked_then_close(ANTHROPIC_REQ_HEAD, anthropic_stream_req, anthropic_stream_resp,
			   (size_t)(stop - anthropic_stream_resp), NULL, 0);
	CHECK_EQ_INT(n_calls, 1);
	CHECK_EQ_STR(calls[0].error_type, "connection_closed");
	CHECK_EQ_INT(calls[0].end_ns, T_CLOSE);
}

int main(void)
{
	RUN(openai_plain);
	RUN(openai_stream_include_usage);
	RUN(openai_stream_without_usage);
	RUN(anthropic_plain_cache_tokens);
	RUN(anthropic_stream);
	RUN(anthropic_stream_delta_carries_input);
	RUN(anthropic_stream_error_event);
	RUN(errors_429);
	RUN(big_responses);
	RUN(not_llm);
	RUN(detection_host_vs_path);
	RUN(path_match_but_not_the_shape);
	RUN(ttft_timestamps);
	RUN(loss_and_aborts);
	RUN(free_with_open_exchanges);
	RUN(pipelined_exchanges);
	RUN(bad_json_and_encodings);
	RUN(request_overflow);
	RUN(long_strings_truncated_on_utf8_boundary);
	RUN(chunk_gaps_per_event);
	RUN(http2_reset_is_the_error);
	RUN(responses_terminal_event_then_close);
	RUN(anthropic_message_stop_then_close);
	RUN(chunked_stream_closed_after_terminal_event);
	RUN(responses_terminal_event_then_client_cancel);
	TT_DONE();
}
