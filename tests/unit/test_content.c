// SPDX-License-Identifier: Apache-2.0
/*
 * Content capture for every API the extractors know (llm/content.c): OpenAI Responses, legacy
 * completions, embeddings, Gemini, Ollama chat and generate, Bedrock Converse, plain and
 * streamed, into the conventions' message JSON, with planted secrets redacted.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "llm/content.h"
#include "tt_test.h"

#define SECRET "sk-abcdefghijklmnopqrstu123456"

struct fixture {
	const char *api;
	const char *req;	 /* request body, NULL none */
	const char *resp;	 /* plain response body, NULL none */
	const char *events[6];	 /* streamed pieces, NULL-terminated */
	const char *es_types[6]; /* Bedrock event-stream :event-type of each piece, or NULL */
	const char *want_in;	 /* NULL: no input attribute */
	const char *want_out;
	const char *want_sys;
};

static struct json_object *parse(const char *s)
{
	struct json_object *o = json_tokener_parse(s);

	CHECK(o != NULL);
	return o;
}

static void feed(struct llm_content *c, const struct fixture *f)
{
	struct json_object *o;

	if (f->req) {
		o = parse(f->req);
		content__request(c, o);
		json_object_put(o);
	}
	if (f->resp) {
		o = parse(f->resp);
		content__response(c, o);
		json_object_put(o);
	}
	for (int i = 0; i < 6 && f->events[i]; i++) {
		o = parse(f->events[i]);
		if (f->es_types[i])
			content__es_event(c, f->es_types[i], o);
		else
			content__event(c, o);
		json_object_put(o);
	}
}

static void check_str(const char *got, const char *want, const char *what, const char *api)
{
	if (!want) {
		if (got)
			fprintf(stderr, "  %s %s: unexpected %s\n", api, what, got);
		CHECK(got == NULL);
		return;
	}
	if (!got || strcmp(got, want))
		fprintf(stderr, "  %s %s:\n    got  %s\n    want %s\n", api, what,
			got ? got : "NULL", want);
	CHECK(got && !strcmp(got, want));
	CHECK(!got || !strstr(got, SECRET));
}

static void run_fixture(const struct fixture *f)
{
	struct content_opts o = {.enabled = true, .max_bytes = 8192};
	const char *in, *out, *sys;
	struct llm_content *c;

	content__configure(&o);
	c = content__new();
	CHECK(c != NULL);
	content__set_api(c, f->api);
	feed(c, f);
	content__finish(c, &in, &out, &sys);
	check_str(in, f->want_in, "input", f->api);
	check_str(out, f->want_out, "output", f->api);
	check_str(sys, f->want_sys, "system", f->api);
	content__free(c);
}

#define USER_HI                                                                                    \
	"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi [REDACTED]\"}]}]"

TEST(responses_plain)
{
	static const struct fixture f = {
	    .api = "openai_responses",
	    .req = "{\"model\":\"gpt-4.1\",\"instructions\":\"be brief\",\"input\":[{\"role\":"
		   "\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"hi " SECRET "\"},"
		   "{\"type\":\"input_image\",\"image_url\":\"data:x\"}]},{\"type\":"
		   "\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
		   "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"42\"}]}",
	    .resp = "{\"object\":\"response\",\"status\":\"completed\",\"output\":[{\"type\":"
		    "\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"think\"}]},"
		    "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
		    "\"output_text\",\"text\":\"Hello\"}]}]}",
	    .want_in = "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi "
		       "[REDACTED]\"},{\"type\":\"input_image\"}]},{\"role\":\"assistant\","
		       "\"parts\":[{\"type\":\"tool_call\",\"id\":\"c1\",\"name\":\"f\","
		       "\"arguments\":\"{}\"}]},{\"role\":\"tool\",\"parts\":[{\"type\":"
		       "\"tool_call_response\",\"id\":\"c1\",\"response\":\"42\"}]}]",
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"reasoning\",\"content\":"
			"\"think\"},{\"type\":\"text\",\"content\":\"Hello\"}],\"finish_reason\":"
			"\"stop\"}]",
	    .want_sys = "[{\"type\":\"text\",\"content\":\"be brief\"}]",
	};

	run_fixture(&f);
}

TEST(responses_stream)
{
	/* The final event carries the whole response: it wins over the deltas. */
	static const struct fixture done = {
	    .api = "openai_responses",
	    .req = "{\"input\":\"hi " SECRET "\",\"stream\":true}",
	    .events = {"{\"type\":\"response.created\",\"response\":{\"status\":\"in_progress\","
		       "\"output\":[]}}",
		       "{\"type\":\"response.output_text.delta\",\"delta\":\"Hel\"}",
		       "{\"type\":\"response.output_text.delta\",\"delta\":\"lo\"}",
		       "{\"type\":\"response.incomplete\",\"response\":{\"status\":\"incomplete\","
		       "\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"output\":[{"
		       "\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":"
		       "\"Hello\"}]}]}}"},
	    .want_in = USER_HI,
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"Hello\"}],\"finish_reason\":\"max_output_tokens\"}]",
	};
	/* Cut before it: the deltas still give the text. */
	static const struct fixture cut = {
	    .api = "openai_responses",
	    .events = {"{\"type\":\"response.output_text.delta\",\"delta\":\"Hel\"}",
		       "{\"type\":\"response.output_text.delta\",\"delta\":\"lo " SECRET "\"}"},
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"Hello [REDACTED]\"}]}]",
	};

	run_fixture(&done);
	run_fixture(&cut);
}

TEST(completions_and_embeddings)
{
	static const struct fixture plain = {
	    .api = "openai_completions",
	    .req = "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":\"hi " SECRET "\"}",
	    .resp = "{\"choices\":[{\"index\":0,\"text\":\"there\",\"finish_reason\":\"length\"}]}",
	    .want_in = USER_HI,
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"there\"}],\"finish_reason\":\"length\"}]",
	};
	static const struct fixture stream = {
	    .api = "openai_completions",
	    .req = "{\"prompt\":[\"a\",[1,2],\"b\"]}",
	    .events = {"{\"choices\":[{\"index\":0,\"text\":\"x\"}]}",
		       "{\"choices\":[{\"index\":0,\"text\":\"y\",\"finish_reason\":\"stop\"}]}"},
	    .want_in = "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"a\"},"
		       "{\"type\":\"text\",\"content\":\"b\"}]}]",
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"xy\"}],\"finish_reason\":\"stop\"}]",
	};
	/* Embeddings: the input only; the vectors are no text. */
	static const struct fixture emb = {
	    .api = "openai_embeddings",
	    .req = "{\"model\":\"text-embedding-3-small\",\"input\":\"hi " SECRET "\"}",
	    .resp = "{\"data\":[{\"embedding\":[0.1,0.2]}],\"usage\":{\"prompt_tokens\":2}}",
	    .want_in = USER_HI,
	};
	static const struct fixture tokens = {
	    .api = "openai_embeddings",
	    .req = "{\"input\":[[1,2,3]]}",
	};

	run_fixture(&plain);
	run_fixture(&stream);
	run_fixture(&emb);
	run_fixture(&tokens);
}

TEST(gemini)
{
#define GEMINI_REQ                                                                                 \
	"{\"systemInstruction\":{\"parts\":[{\"text\":\"be brief\"}]},\"contents\":[{\"role\":"    \
	"\"user\",\"parts\":[{\"text\":\"hi " SECRET "\"},{\"inlineData\":{\"mimeType\":"          \
	"\"image/png\",\"data\":\"AAAA\"}}]},{\"role\":\"model\",\"parts\":[{\"functionCall\":"    \
	"{\"name\":\"f\",\"args\":{\"a\":1}}}]},{\"role\":\"user\",\"parts\":[{"                   \
	"\"functionResponse\":{\"name\":\"f\",\"response\":{\"r\":2}}}]}]}"
#define GEMINI_WANT_IN                                                                             \
	"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi [REDACTED]\"},"        \
	"{\"type\":\"inline_data\"}]},{\"role\":\"assistant\",\"parts\":[{\"type\":"               \
	"\"tool_call\",\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}]},{\"role\":\"user\","      \
	"\"parts\":[{\"type\":\"tool_call_response\",\"id\":\"f\",\"response\":"                   \
	"\"{\\\"r\\\":2}\"}]}]"
	static const struct fixture plain = {
	    .api = "gemini_generate_content",
	    .req = GEMINI_REQ,
	    .resp = "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":"
		    "\"hmm\",\"thought\":true},{\"text\":\"Hello\"}]},\"finishReason\":\"STOP\"}],"
		    "\"usageMetadata\":{\"promptTokenCount\":3}}",
	    .want_in = GEMINI_WANT_IN,
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"reasoning\",\"content\":"
			"\"hmm\"},{\"type\":\"text\",\"content\":\"Hello\"}],\"finish_reason\":"
			"\"STOP\"}]",
	    .want_sys = "[{\"type\":\"text\",\"content\":\"be brief\"}]",
	};
	static const struct fixture stream = {
	    .api = "gemini_generate_content",
	    .req = "{\"contents\":[{\"parts\":[{\"text\":\"hi " SECRET "\"}]}],"
		   "\"system_instruction\":\"terse\"}",
	    .events = {"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\",\"thought\":"
		       "true}]}}]}",
		       "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}]}",
		       "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}]},"
		       "\"finishReason\":\"MAX_TOKENS\"}]}"},
	    .want_in = USER_HI,
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"Hello\"}],\"finish_reason\":\"MAX_TOKENS\"}]",
	    .want_sys = "[{\"type\":\"text\",\"content\":\"terse\"}]",
	};

	run_fixture(&plain);
	run_fixture(&stream);
}

TEST(ollama)
{
	static const struct fixture chat = {
	    .api = "ollama_chat",
	    .req = "{\"model\":\"llama3.2\",\"stream\":false,\"messages\":[{\"role\":\"user\","
		   "\"content\":\"hi " SECRET "\"}]}",
	    .resp = "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":"
		    "\"Hello\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{"
		    "\"a\":1}}}]},\"done\":true,\"done_reason\":\"stop\"}",
	    .want_in = USER_HI,
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"Hello\"},{\"type\":\"tool_call\",\"name\":\"f\",\"arguments\":"
			"\"{\\\"a\\\":1}\"}],\"finish_reason\":\"stop\"}]",
	};
	static const struct fixture chat_stream = {
	    .api = "ollama_chat",
	    .events = {"{\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}",
		       "{\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}",
		       "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
		       "\"done_reason\":\"length\"}"},
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"Hello\"}],\"finish_reason\":\"length\"}]",
	};
	static const struct fixture gen = {
	    .api = "ollama_generate",
	    .req = "{\"model\":\"llama3.2\",\"prompt\":\"hi " SECRET "\",\"system\":\"terse\"}",
	    .events = {"{\"response\":\"He\",\"done\":false}",
		       "{\"response\":\"y\",\"done\":false}",
		       "{\"response\":\"\",\"done\":true,\"done_reason\":\"stop\"}"},
	    .want_in = USER_HI,
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"Hey\"}],\"finish_reason\":\"stop\"}]",
	    .want_sys = "[{\"type\":\"text\",\"content\":\"terse\"}]",
	};
	static const struct fixture gen_plain = {
	    .api = "ollama_generate",
	    .resp = "{\"response\":\"Hey\",\"done\":true,\"done_reason\":\"stop\"}",
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"Hey\"}],\"finish_reason\":\"stop\"}]",
	};
	static const struct fixture embed = {
	    .api = "ollama_embed",
	    .req = "{\"model\":\"all-minilm\",\"prompt\":\"hi " SECRET "\"}",
	    .resp = "{\"embedding\":[0.5]}",
	    .want_in = USER_HI,
	};

	run_fixture(&chat);
	run_fixture(&chat_stream);
	run_fixture(&gen);
	run_fixture(&gen_plain);
	run_fixture(&embed);
}

TEST(bedrock_converse)
{
	static const struct fixture plain = {
	    .api = "bedrock_converse",
	    .req = "{\"system\":[{\"text\":\"be brief\"},{\"cachePoint\":{\"type\":\"default\"}}],"
		   "\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hi " SECRET "\"},"
		   "{\"image\":{\"format\":\"png\",\"source\":{\"bytes\":\"AAAA\"}}}]},{\"role\":"
		   "\"assistant\",\"content\":[{\"toolUse\":{\"toolUseId\":\"t1\",\"name\":\"f\","
		   "\"input\":{\"a\":1}}}]},{\"role\":\"user\",\"content\":[{\"toolResult\":{"
		   "\"toolUseId\":\"t1\",\"content\":[{\"text\":\"42\"}]}}]}]}",
	    .resp = "{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":"
		    "\"Hello\"}]}},\"stopReason\":\"end_turn\",\"usage\":{\"inputTokens\":3}}",
	    .want_in = "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi "
		       "[REDACTED]\"},{\"type\":\"image\"}]},{\"role\":\"assistant\",\"parts\":"
		       "[{\"type\":\"tool_call\",\"id\":\"t1\",\"name\":\"f\",\"arguments\":"
		       "\"{\\\"a\\\":1}\"}]},{\"role\":\"user\",\"parts\":[{\"type\":"
		       "\"tool_call_response\",\"id\":\"t1\",\"response\":"
		       "\"[{\\\"text\\\":\\\"42\\\"}]\"}]}]",
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"Hello\"}],\"finish_reason\":\"end_turn\"}]",
	    .want_sys = "[{\"type\":\"text\",\"content\":\"be brief\"}]",
	};
	static const struct fixture stream = {
	    .api = "bedrock_converse",
	    .events = {"{\"role\":\"assistant\"}",
		       "{\"contentBlockIndex\":0,\"delta\":{\"text\":"
		       "\"Hel\"}}",
		       "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"lo " SECRET "\"}}",
		       "{\"stopReason\":\"max_tokens\"}", "{\"usage\":{\"inputTokens\":1}}"},
	    .es_types = {"messageStart", "contentBlockDelta", "contentBlockDelta", "messageStop",
			 "metadata"},
	    .want_out = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			"\"Hello [REDACTED]\"}],\"finish_reason\":\"max_tokens\"}]",
	};

	run_fixture(&plain);
	run_fixture(&stream);
}

TEST(unknown_api_and_mistyped_bodies)
{
	/* A shape content capture does not know keeps nothing, even from a chat-like body. */
	static const struct fixture unknown = {
	    .api = "some_future_api",
	    .req = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	    .resp = "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}",
	};
	static const char *const apis[] = {"openai_responses",	"openai_completions",
					   "openai_embeddings", "gemini_generate_content",
					   "ollama_chat",	"ollama_generate",
					   "bedrock_converse",	"anthropic_messages"};
	/* Every field of the wrong type: nothing crashes, nothing is made up. */
	static const char *bad =
	    "{\"input\":{\"x\":1},\"instructions\":5,\"prompt\":7,\"contents\":\"s\",\"messages\":"
	    "[1,\"s\",{\"role\":5,\"content\":{\"a\":1}}],\"system\":7,\"candidates\":[1,{"
	    "\"content\":7}],\"output\":[1,{\"type\":5}],\"choices\":[1],\"message\":7,"
	    "\"response\":{\"output\":3},\"delta\":7,\"type\":\"response.completed\"}";

	run_fixture(&unknown);
	for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++) {
		struct content_opts o = {.enabled = true, .max_bytes = 8192};
		struct json_object *b = parse(bad);
		const char *in, *out, *sys;
		struct llm_content *c;

		content__configure(&o);
		c = content__new();
		content__set_api(c, apis[i]);
		content__request(c, b);
		content__response(c, b);
		content__event(c, b);
		content__es_event(c, "contentBlockDelta", b);
		content__finish(c, &in, &out, &sys);
		CHECK(!in || in[0] == '[');
		CHECK(!out || out[0] == '[');
		content__free(c);
		json_object_put(b);
	}
}

TEST(off_means_nothing)
{
	struct content_opts o = {.enabled = false};
	const char *in, *out, *sys;

	content__configure(&o);
	CHECK(content__new() == NULL);
	content__set_api(NULL, "gemini_generate_content");
	content__response(NULL, NULL);
	content__event(NULL, NULL);
	content__es_event(NULL, "x", NULL);
	content__finish(NULL, &in, &out, &sys);
	CHECK(!in && !out && !sys);
}

int main(void)
{
	RUN(responses_plain);
	RUN(responses_stream);
	RUN(completions_and_embeddings);
	RUN(gemini);
	RUN(ollama);
	RUN(bedrock_converse);
	RUN(unknown_api_and_mistyped_bodies);
	RUN(off_means_nothing);
	TT_DONE();
}
