// SPDX-License-Identifier: Apache-2.0
/*
 * Secret redaction (each built-in kind, custom patterns, no false positives on prose), command
 * line scrubbing, and content capture: message conversion, stream accumulation, redaction
 * before export and the size cap.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "llm/content.h"
#include "tt_test.h"
#include "util/redact.h"

/* The text with the secret in it must come out with the secret gone and the marker in. */
static void check_redacts(const char *text, const char *secret)
{
	size_t n = 0;
	unsigned found = 0;
	char *r = redact__string(text, strlen(text), &n, &found);

	CHECK(r != NULL);
	if (!r)
		return;
	if (strstr(r, secret) || !strstr(r, REDACT_MARK) || found == 0)
		fprintf(stderr, "  not redacted: \"%s\" -> \"%s\"\n", text, r);
	CHECK(strstr(r, secret) == NULL);
	CHECK(strstr(r, REDACT_MARK) != NULL);
	CHECK(found > 0);
	CHECK_EQ_INT(n, strlen(r));
	free(r);
}

static void check_keeps(const char *text)
{
	unsigned found = 0;
	char *r = redact__string(text, strlen(text), NULL, &found);

	CHECK(r && !strcmp(r, text));
	CHECK_EQ_INT(found, 0);
	free(r);
}

TEST(each_secret_kind)
{
	check_redacts("key sk-abcdefghijklmnop1234567890ABCD done", "abcdefghijklmnop1234567890");
	check_redacts("sk-proj-AbCdEf0123456789_-xyzXYZ0123456789", "AbCdEf0123456789");
	check_redacts("use sk-ant-api03-AAAAbbbbCCCC1111dddd-xyz please", "AAAAbbbbCCCC1111");
	check_redacts("google AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv", "SyA1b2C3d4E5f6G7h8I9");
	check_redacts("aws AKIAIOSFODNN7EXAMPLE key", "IOSFODNN7EXAMPLE");
	check_redacts("slack xoxb-123456789012-abcdefABCDEF", "123456789012-abcdef");
	check_redacts("gh ghp_0123456789abcdefghijABCDEFGHIJ012345", "0123456789abcdefghij");
	check_redacts("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "11ABCDEFG0123456789");
	check_redacts("Authorization: Bearer eyJhbGciOi.abc.def-123", "eyJhbGciOi.abc.def-123");
	check_redacts("header bearer abcdef0123456789xyz", "abcdef0123456789xyz");
	check_redacts("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_nature-x",
		      "eyJzdWIiOiIxMjM0In0");
	check_redacts("here:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc\n"
		      "-----END RSA PRIVATE KEY-----\nafter",
		      "MIIEpAIBAAKCAQEA7");
	check_redacts("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq (cut short",
		      "MIIEvQIBADANBgkq");
	check_redacts("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n"
		      "-----END OPENSSH PRIVATE KEY-----",
		      "b3BlbnNzaC1rZXktdjE");
}

TEST(no_false_positives)
{
	check_keeps("install sk-learn-tutorials-for-beginners today");
	check_keeps("the task-manager and risk-assessment-framework-2024 docs");
	check_keeps("a bearer of good news");
	check_keeps("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
	check_keeps("");
}

TEST(pem_keeps_the_text_around)
{
	const char *t = "a\n-----BEGIN EC PRIVATE KEY-----\nxyz\n-----END EC PRIVATE KEY-----\nb";
	char *r = redact__string(t, strlen(t), NULL, NULL);

	CHECK_EQ_STR(r, "a\n" REDACT_MARK "\nb");
	free(r);
}

TEST(custom_patterns)
{
	char *r;

	CHECK_EQ_INT(redact__add_pattern("ACME-[0-9]{6}"), 0);
	CHECK(redact__add_pattern("([unclosed") < 0);
	{
		const char *t = "ids ACME-123456 and ACME-654321, not ACME-12";

		r = redact__string(t, strlen(t), NULL, NULL);
	}
	CHECK_EQ_STR(r, "ids " REDACT_MARK " and " REDACT_MARK ", not ACME-12");
	free(r);
	/* an empty match must not loop */
	CHECK_EQ_INT(redact__add_pattern("x*"), 0);
	r = redact__string("abc", 3, NULL, NULL);
	CHECK_EQ_STR(r, "abc");
	free(r);
	redact__clear_patterns();
	r = redact__string("ACME-123456", 11, NULL, NULL);
	CHECK_EQ_STR(r, "ACME-123456");
	free(r);
}

static void check_cmdline(const char *argv0, size_t n, const char *want)
{
	char out[512];

	redact__cmdline(argv0, n, out, sizeof(out));
	CHECK_EQ_STR(out, want);
}

#define CMD(lit) lit, sizeof(lit) - 1

TEST(cmdline_scrubbing)
{
	check_cmdline(CMD("curl\0-H\0Authorization: Bearer abcdefghijkl\0https://x/y\0"),
		      "curl -H Authorization: [REDACTED] https://x/y");
	check_cmdline(CMD("app\0--api-key\0s3cr3t\0--verbose\0"),
		      "app --api-key [REDACTED] --verbose");
	check_cmdline(CMD("app\0--api-key=s3cr3t\0"), "app --api-key=[REDACTED]");
	check_cmdline(CMD("env\0OPENAI_API_KEY=whatever\0python3\0"),
		      "env OPENAI_API_KEY=[REDACTED] python3");
	check_cmdline(CMD("curl\0-H\0x-api-key: zzz\0"), "curl -H x-api-key: [REDACTED]");
	check_cmdline(CMD("git\0clone\0https://user:pass@host/repo\0"),
		      "git clone https://user:[REDACTED]@host/repo");
	check_cmdline(CMD("curl\0https://h/p?q=1&access_token=abc&x=2\0"),
		      "curl https://h/p?q=1&access_token=[REDACTED]&x=2");
	check_cmdline(CMD("python3\0-c\0print('sk-abcdefghijklmnopqrstuvwxyz012345')\0"),
		      "python3 -c print('[REDACTED]')");
	check_cmdline(CMD("mysql\0--password\0"), "mysql --password");
	check_cmdline(CMD("ls\0-la\0/tmp\0"), "ls -la /tmp");
	{
		char big[3000], out[64];

		memset(big, 'a', sizeof(big));
		big[sizeof(big) - 1] = '\0';
		CHECK_EQ_INT(redact__cmdline(big, sizeof(big), out, sizeof(out)), 63);
		CHECK(!strcmp(out + 60, "..."));
	}
}

/* ---- content capture ------------------------------------------------------------------------- */

static struct json_object *parse(const char *s)
{
	return json_tokener_parse(s);
}

TEST(content_openai_plain)
{
	struct content_opts o = {.enabled = true, .max_bytes = 4096};
	struct llm_content *c;
	struct json_object *req, *resp;
	const char *in, *out, *sys;

	content__configure(&o);
	c = content__new();
	req = parse(
	    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"my key is "
	    "sk-abcdefghijklmnopqrstu123456\"},{\"type\":\"image_url\",\"image_url\":"
	    "{\"url\":\"data:xyz\"}}]},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\","
	    "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}]}");
	resp = parse("{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
		     "\"Hello / world\"},\"finish_reason\":\"stop\"}]}");
	content__request(c, req);
	content__response_openai(c, resp);
	content__finish(c, &in, &out, &sys);
	CHECK_EQ_STR(
	    in, "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"be brief\"}]},"
		"{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"my key is "
		"[REDACTED]\"},{\"type\":\"image_url\"}]},{\"role\":\"assistant\",\"parts\":"
		"[{\"type\":\"tool_call\",\"id\":\"c1\",\"name\":\"f\",\"arguments\":"
		"\"{\\\"a\\\":1}\"}]},{\"role\":\"tool\",\"parts\":[{\"type\":"
		"\"tool_call_response\",\"id\":\"c1\",\"response\":\"42\"}]}]");
	CHECK_EQ_STR(out, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			  "\"Hello / world\"}],\"finish_reason\":\"stop\"}]");
	CHECK(sys == NULL);
	json_object_put(req);
	json_object_put(resp);
	content__free(c);
}

TEST(content_anthropic_stream)
{
	struct content_opts o = {.enabled = true, .max_bytes = 4096};
	static const char *events[] = {
	    "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}",
	    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	    "\"text\":\"Hi, the key is sk-ant-api03-\"}}",
	    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	    "\"text\":\"ZZZZ0000yyyy1111 ok\"}}",
	    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}",
	};
	struct llm_content *c;
	struct json_object *req;
	const char *in, *out, *sys;

	content__configure(&o);
	c = content__new();
	req = parse("{\"system\":[{\"type\":\"text\",\"text\":\"You are terse\"}],\"messages\":"
		    "[{\"role\":\"user\",\"content\":\"hey\"}]}");
	content__request(c, req);
	for (size_t i = 0; i < 4; i++) {
		struct json_object *e = parse(events[i]);

		content__event_anthropic(c, e);
		json_object_put(e);
	}
	content__finish(c, &in, &out, &sys);
	CHECK_EQ_STR(sys, "[{\"type\":\"text\",\"content\":\"You are terse\"}]");
	CHECK_EQ_STR(in,
		     "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hey\"}]}]");
	/* the key spanned two deltas: redacted after they were joined */
	CHECK_EQ_STR(out, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
			  "\"Hi, the key is [REDACTED] ok\"}],\"finish_reason\":\"end_turn\"}]");
	json_object_put(req);
	content__free(c);
}

TEST(content_openai_stream_choices)
{
	struct content_opts o = {.enabled = true, .max_bytes = 4096};
	static const char *events[] = {
	    "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"a\"}}]}",
	    "{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"x\"}}]}",
	    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}",
	    "{\"choices\":[{\"index\":1,\"delta\":{},\"finish_reason\":\"length\"}]}",
	    "{\"choices\":[],\"usage\":{\"prompt_tokens\":1}}",
	};
	struct llm_content *c;
	const char *in, *out, *sys;

	content__configure(&o);
	c = content__new();
	for (size_t i = 0; i < 5; i++) {
		struct json_object *e = parse(events[i]);

		content__event_openai(c, e);
		json_object_put(e);
	}
	content__finish(c, &in, &out, &sys);
	CHECK(in == NULL);
	CHECK_EQ_STR(out,
		     "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"ab\"}],"
		     "\"finish_reason\":\"stop\"},{\"role\":\"assistant\",\"parts\":[{\"type\":"
		     "\"text\",\"content\":\"x\"}],\"finish_reason\":\"length\"}]");
	content__free(c);
}

TEST(content_cap)
{
	struct content_opts o = {.enabled = true, .max_bytes = 300};
	char big[5000], req_s[6000];
	struct llm_content *c;
	struct json_object *req, *arr;
	const char *in, *out, *sys;

	memset(big, 'w', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	content__configure(&o);
	c = content__new();
	snprintf(req_s, sizeof(req_s),
		 "{\"messages\":[{\"role\":\"user\",\"content\":\"short\"},{\"role\":\"user\","
		 "\"content\":\"%s\"}]}",
		 big);
	req = parse(req_s);
	content__request(c, req);
	content__finish(c, &in, &out, &sys);
	CHECK(in && strlen(in) <= 300);
	arr = in ? json_tokener_parse(in) : NULL;
	CHECK(json_object_is_type(arr, json_type_array));
	CHECK(in && strstr(in, "\"short\"") && strstr(in, "[truncated]"));
	json_object_put(arr);
	json_object_put(req);
	content__free(c);
	/* off: nothing is kept */
	o.enabled = false;
	content__configure(&o);
	CHECK(content__new() == NULL);
	content__finish(NULL, &in, &out, &sys);
	CHECK(in == NULL && out == NULL && sys == NULL);
}

int main(void)
{
	RUN(each_secret_kind);
	RUN(no_false_positives);
	RUN(pem_keeps_the_text_around);
	RUN(custom_patterns);
	RUN(cmdline_scrubbing);
	RUN(content_openai_plain);
	RUN(content_anthropic_stream);
	RUN(content_openai_stream_choices);
	RUN(content_cap);
	TT_DONE();
}
