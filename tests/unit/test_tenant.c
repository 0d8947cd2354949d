// SPDX-License-Identifier: Apache-2.0
/*
 * llm/tenant.c: API-key fingerprints (an RFC 4231 vector, stable across calls and processes,
 * different per secret, never the key), the secret file, header and body extraction, W3C
 * traceparent parsing, and the whole path from HTTP callbacks to a span.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "llm/tenant.h"
#include "span/attribution.h"
#include "span/builder.h"
#include "span/pricing.h"
#include "tt_test.h"

#define KEY "sk-proj-Zq8uN1tUnitTestSecretKey0123456789abcdef"

static struct http_head head(const char *const *kv)
{
	struct http_head h = { .is_request = true, .method = "POST", .method_len = 4,
			       .path = "/v1/chat/completions", .path_len = 20 };

	for (; kv[0]; kv += 2, h.num_headers++) {
		h.headers[h.num_headers] = (struct http_header){ kv[0], strlen(kv[0]), kv[1],
								 strlen(kv[1]) };
	}
	return h;
}

static const char *fp(const char *key)
{
	static char out[17];

	tenant__fingerprint(key, strlen(key), out);
	return out;
}

TEST(fingerprint_is_hmac_sha256_prefix)
{
	/* RFC 4231 test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?") */
	tenant__set_secret((const uint8_t *)"Jefe", 4);
	CHECK_EQ_STR(fp("what do ya want for nothing?"), "5bdcc146bf60754e");
}

TEST(fingerprint_stable_and_secret_dependent)
{
	char a[17], b[17];

	tenant__set_secret((const uint8_t *)"0123456789abcdef0123", 20);
	snprintf(a, sizeof(a), "%s", fp(KEY));
	CHECK_EQ_STR(fp(KEY), a);
	CHECK_EQ_INT(strlen(a), 16);
	CHECK(strspn(a, "0123456789abcdef") == 16);
	CHECK(strcmp(fp(KEY "x"), a) != 0);
	tenant__set_secret((const uint8_t *)"another secret of some length", 29);
	snprintf(b, sizeof(b), "%s", fp(KEY));
	CHECK(strcmp(a, b) != 0);
	CHECK(strstr(KEY, a) == NULL && strstr(KEY, b) == NULL);
	/* A key that looks like a fingerprint is not its own fingerprint. */
	CHECK(strcmp(fp("0123456789abcdef"), "0123456789abcdef") != 0);
}

static void fingerprint_in_child(const char *secret_path, char out[17])
{
	int p[2];
	pid_t pid;

	if (pipe(p))
		return;
	pid = fork();
	if (pid == 0) {
		char f[17];

		close(p[0]);
		tenant__load_secret(secret_path);
		tenant__fingerprint(KEY, strlen(KEY), f);
		if (write(p[1], f, 17) != 17)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	out[0] = '\0';
	if (read(p[0], out, 17) != 17)
		out[0] = '\0';
	close(p[0]);
	waitpid(pid, NULL, 0);
}

TEST(secret_file_created_0600_and_shared_across_processes)
{
	char dir[] = "/tmp/tokentap-secret-XXXXXX", path[256], in_parent[17], in_child[17];
	struct stat st;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/sub/fingerprint.key", dir);
	CHECK_EQ_INT(tenant__load_secret(path), 0); /* created, with its directory */
	CHECK_EQ_INT(stat(path, &st), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);
	CHECK_EQ_INT(st.st_size, TENANT_SECRET_BYTES);
	snprintf(in_parent, sizeof(in_parent), "%s", fp(KEY));
	fingerprint_in_child(path, in_child);
	CHECK_EQ_STR(in_child, in_parent);
	CHECK_EQ_INT(tenant__load_secret(path), 0); /* read again, not replaced */
	CHECK_EQ_STR(fp(KEY), in_parent);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sub", dir);
	rmdir(path);
	rmdir(dir);
}

TEST(unusable_secret_file_falls_back_to_a_process_secret)
{
	char path[] = "/tmp/tokentap-secret-XXXXXX", a[17];
	int fd = mkstemp(path);

	CHECK(write(fd, "short", 5) == 5);
	close(fd);
	CHECK(tenant__load_secret(path) < 0); /* too short: warned, random secret */
	snprintf(a, sizeof(a), "%s", fp(KEY));
	CHECK_EQ_INT(strlen(a), 16);
	CHECK(tenant__load_secret("/proc/no/such/dir/key") < 0);
	CHECK(strcmp(fp(KEY), a) != 0);
	unlink(path);
}

TEST(traceparent_valid)
{
	uint8_t t[16], p[8];

	CHECK(traceparent__parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 55, t,
				 p));
	CHECK_EQ_INT(t[0], 0x4b);
	CHECK_EQ_INT(t[15], 0x36);
	CHECK_EQ_INT(p[0], 0x00);
	CHECK_EQ_INT(p[7], 0xb7);
	CHECK(traceparent__parse(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ", 57,
				 t, p));
	/* A later version may carry more fields; its first four are read. */
	CHECK(traceparent__parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what",
				 60, t, p));
}

TEST(traceparent_invalid)
{
	static const char *const bad[] = {
		"",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",    /* no flags */
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* uppercase */
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero parent */
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version ff */
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 is 55 long */
		"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
		"0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	};
	uint8_t t[16] = { 9 }, p[8] = { 9 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (traceparent__parse(bad[i], strlen(bad[i]), t, p))
			fprintf(stderr, "  accepted: '%s'\n", bad[i]);
		CHECK(!traceparent__parse(bad[i], strlen(bad[i]), t, p));
	}
	CHECK_EQ_INT(t[0], 9); /* untouched on failure */
	CHECK_EQ_INT(p[0], 9);
}

/* Every truncation of a valid header (what a parser sees of a cut one) is refused. */
TEST(traceparent_truncations)
{
	const char *v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
	uint8_t t[16], p[8];
	int accepted = 0;

	for (size_t n = 0; n < 55; n++)
		accepted += traceparent__parse(v, n, t, p);
	CHECK_EQ_INT(accepted, 0);
}

static bool contains(const void *hay, size_t n, const char *needle)
{
	return memmem(hay, n, needle, strlen(needle)) != NULL;
}

TEST(headers_give_fingerprint_org_project_tenant_trace)
{
	static const char *const names[] = { "x-tenant-id", "x-team" };
	const char *const kv[] = { "Host", "api.openai.com",
				   "Authorization", "Bearer " KEY,
				   "OpenAI-Organization", " org-abc ",
				   "OpenAI-Project", "proj_123",
				   "X-Team", "team-b",
				   "x-tenant-id", "acme",
				   "traceparent",
				   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				   NULL };
	struct http_head h = head(kv);
	struct llm_call c = {};

	tenant__set_secret((const uint8_t *)"0123456789abcdef0123", 20);
	CHECK_EQ_INT(tenant__configure(names, 2), 0);
	tenant__on_request(&c, &h);
	CHECK_EQ_STR(c.api_key_fingerprint, fp(KEY));
	CHECK_EQ_STR(c.openai_organization, "org-abc");
	CHECK_EQ_STR(c.openai_project, "proj_123");
	CHECK_EQ_STR(c.tenant, "acme"); /* the first configured name present */
	CHECK(c.has_trace_parent);
	CHECK_EQ_INT(c.trace_id[0], 0x4b);
	CHECK_EQ_INT(c.parent_span_id[7], 0xb7);
	CHECK(!contains(&c, sizeof(c), KEY));
	CHECK(!contains(&c, sizeof(c), "sk-proj"));
	tenant__configure(NULL, 0);
}

TEST(key_header_precedence_and_schemes)
{
	struct llm_call c = {};
	const char *const anthropic[] = { "x-api-key", " " KEY " ", "Authorization",
					  "Bearer other", NULL };
	const char *const azure[] = { "api-key", KEY, NULL };
	const char *const gemini[] = { "x-goog-api-key", KEY, NULL };
	const char *const basic[] = { "Authorization", "Basic dXNlcjpwYXNz", NULL };
	const char *const bearer_case[] = { "authorization", "bearer   " KEY, NULL };
	const char *const empty[] = { "x-api-key", "", "Authorization", "Bearer " KEY, NULL };
	struct http_head h;

	h = head(anthropic);
	tenant__on_request(&c, &h);
	CHECK_EQ_STR(c.api_key_fingerprint, fp(KEY)); /* trimmed, and before Authorization */
	memset(&c, 0, sizeof(c));
	h = head(azure);
	tenant__on_request(&c, &h);
	CHECK_EQ_STR(c.api_key_fingerprint, fp(KEY));
	memset(&c, 0, sizeof(c));
	h = head(gemini);
	tenant__on_request(&c, &h);
	CHECK_EQ_STR(c.api_key_fingerprint, fp(KEY));
	memset(&c, 0, sizeof(c));
	h = head(bearer_case);
	tenant__on_request(&c, &h);
	CHECK_EQ_STR(c.api_key_fingerprint, fp(KEY));
	memset(&c, 0, sizeof(c));
	h = head(empty);
	tenant__on_request(&c, &h);
	CHECK_EQ_STR(c.api_key_fingerprint, fp(KEY));
	memset(&c, 0, sizeof(c));
	h = head(basic);
	tenant__on_request(&c, &h);
	CHECK_EQ_STR(c.api_key_fingerprint, "");
	CHECK(!c.has_trace_parent);
	CHECK_EQ_STR(c.tenant, "");
}

TEST(credential_headers_cannot_be_tenant_headers)
{
	static const char *const bad[] = { "x-tenant-id", "Authorization" };
	static const char *const bad2[] = { "X-API-KEY" };

	CHECK(tenant__configure(bad, 2) < 0);
	CHECK(tenant__configure(bad2, 1) < 0);
	CHECK_EQ_INT(tenant__configure(bad, 1), 0);
	tenant__configure(NULL, 0);
}

TEST(tenant_value_is_cleaned_and_bounded)
{
	static const char *const names[] = { "x-tenant-id" };
	char big[600];
	const char *kv[] = { "x-tenant-id", big, NULL };
	struct http_head h;
	struct llm_call c = {};

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[3] = '\x01';
	tenant__configure(names, 1);
	h = head(kv);
	tenant__on_request(&c, &h);
	CHECK_EQ_INT(strlen(c.tenant), LLM_STR - 1);
	CHECK_EQ_INT(c.tenant[3], '?');
	tenant__configure(NULL, 0);
}

static struct llm_call body(const char *json)
{
	struct llm_call c = {};
	struct json_object *root = json_tokener_parse(json);

	tenant__on_request_body(&c, root);
	json_object_put(root);
	return c;
}

TEST(body_user_ids)
{
	CHECK_EQ_STR(body("{\"model\":\"gpt-4o\",\"user\":\"user-42\"}").user, "user-42");
	CHECK_EQ_STR(body("{\"safety_identifier\":\"hashed-7\"}").user, "hashed-7");
	CHECK_EQ_STR(body("{\"metadata\":{\"user_id\":\"u-9\"}}").user, "u-9");
	CHECK_EQ_STR(body("{\"user\":42,\"metadata\":{\"user_id\":7}}").user, "");
	CHECK_EQ_STR(body("[1,2]").user, "");
}

/* ---- the whole path: HTTP callbacks -> llm call -> span ----------------------------------- */

static struct span *built;
static struct span_builder *builder;

static void on_call(void *ctx, const struct llm_call *call)
{
	built = span_builder__build(builder, call);
}

static void feed(const struct http_sink *s, const char *const *req_headers, const char *req,
		 const char *resp)
{
	struct http_head h = head(req_headers);
	const char *const resp_kv[] = { "Content-Type", "application/json", NULL };
	struct http_head rh = head(resp_kv);
	void *ex;

	ex = s->on_request(s->ctx, &h, 1000);
	s->on_body(ex, false, (const uint8_t *)req, strlen(req), 1001);
	s->on_message_end(ex, false, 1002);
	rh.is_request = false;
	rh.status = 200;
	s->on_response(ex, &rh, 2000);
	s->on_body(ex, true, (const uint8_t *)resp, strlen(resp), 2001);
	s->on_message_end(ex, true, 3000);
}

static bool span_has(const struct span *s, const char *needle)
{
	for (size_t i = 0; i < s->n_attrs; i++)
		if (s->attrs[i].type == ATTR_STRING && strstr(s->attrs[i].s, needle))
			return true;
	return false;
}

TEST(pipeline_from_http_to_span)
{
	static const char *const names[] = { "x-tenant-id" };
	struct span_builder_opts so = {};
	struct llm_conn_info info = { .pid = (uint32_t)getpid(), .tls_source = 1 };
	const char *const kv[] = { "Host", "api.openai.com", "Authorization", "Bearer " KEY,
				   "x-tenant-id", "acme", "OpenAI-Project", "proj_1", "traceparent",
				   "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", NULL };
	const char *req = "{\"model\":\"gpt-4o\",\"user\":\"end-user-1\",\"messages\":[]}";
	const char *resp = "{\"id\":\"c1\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],"
			   "\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":100,"
			   "\"prompt_tokens_details\":{\"cached_tokens\":200},"
			   "\"completion_tokens_details\":{\"reasoning_tokens\":30}}}";
	struct llm_conn *lc;
	const struct attr *a;

	tenant__set_secret((const uint8_t *)"0123456789abcdef0123", 20);
	tenant__configure(names, 1);
	CHECK_EQ_INT(pricing__init(NULL), 0);
	builder = span_builder__new(&so);
	lc = llm_conn__new(&info, on_call, NULL);
	feed(llm_conn__sink(lc), kv, req, resp);
	CHECK(built != NULL);
	if (!built)
		return;
	CHECK(built->has_parent);
	CHECK_EQ_INT(built->trace_id[0], 0x0a);
	CHECK_EQ_INT(built->trace_id[15], 0x9c);
	CHECK_EQ_INT(built->parent_span_id[0], 0xb7);
	a = span__find_attr(built, "tokentap.api_key.fingerprint");
	CHECK(a && !strcmp(a->s, fp(KEY)));
	a = span__find_attr(built, "tokentap.tenant");
	CHECK(a && !strcmp(a->s, "acme"));
	a = span__find_attr(built, "tokentap.user");
	CHECK(a && !strcmp(a->s, "end-user-1"));
	a = span__find_attr(built, "tokentap.openai.project");
	CHECK(a && !strcmp(a->s, "proj_1"));
	a = span__find_attr(built, "tokentap.cost.usd");
	/* built-in gpt-4o: 800 at 2.50, 200 cached at 1.25, 100 out at 10.00 */
	CHECK(a && a->type == ATTR_DOUBLE &&
	      a->d > (800 * 2.5 + 200 * 1.25 + 100 * 10.0) / 1e6 - 1e-12 &&
	      a->d < (800 * 2.5 + 200 * 1.25 + 100 * 10.0) / 1e6 + 1e-12);
	CHECK(!span_has(built, KEY));
	CHECK(!span_has(built, "sk-proj"));
	span__free(built);
	built = NULL;
	llm_conn__free(lc);
	span_builder__free(builder);
	pricing__exit();
	tenant__configure(NULL, 0);
}

int main(void)
{
	RUN(fingerprint_is_hmac_sha256_prefix);
	RUN(fingerprint_stable_and_secret_dependent);
	RUN(secret_file_created_0600_and_shared_across_processes);
	RUN(unusable_secret_file_falls_back_to_a_process_secret);
	RUN(traceparent_valid);
	RUN(traceparent_invalid);
	RUN(traceparent_truncations);
	RUN(headers_give_fingerprint_org_project_tenant_trace);
	RUN(key_header_precedence_and_schemes);
	RUN(credential_headers_cannot_be_tenant_headers);
	RUN(tenant_value_is_cleaned_and_bounded);
	RUN(body_user_ids);
	RUN(pipeline_from_http_to_span);
	tenant__exit();
	TT_DONE();
}
