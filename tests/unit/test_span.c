// SPDX-License-Identifier: Apache-2.0
/* span/: container ids from cgroup paths, GenAI attributes, resources from a fake /proc. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tt_test.h"
#include "span/builder.h"

#define CID "3f4d5e6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80"

TEST(container_id_from_cgroup_layouts)
{
	const char *yes[] = {
		"0::/system.slice/docker-" CID ".scope\n",
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/"
		"cri-containerd-" CID ".scope\n",
		"0::/kubepods/besteffort/pod0b6a9a2c-1f5e-4d0a-9f3b-2a7c8d9e0f11/" CID "\n",
		"12:memory:/docker/" CID "\n",
		"0::/machine.slice/libpod-" CID ".scope/container\n",
		"0::/kubepods.slice/kubepods-pod1.slice/crio-" CID ".scope\n",
	};
	const char *no[] = {
		"0::/user.slice/user-0.slice/session-3.scope\n",
		"0::/system.slice/docker-" "3f4d5e6a7b8c9d0e1f2a3b4c5d6e7f80" ".scope\n",
		"0::/x/" CID "aa\n", /* longer than 64: not an id */
		"0::/x/3F4D5E6A7B8C9D0E1F2A3B4C5D6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F80\n",
	};
	char out[80];

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		out[0] = 0;
		CHECK(cgroup__container_id(yes[i], out, sizeof(out)));
		CHECK_EQ_STR(out, CID);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(!cgroup__container_id(no[i], out, sizeof(out)));
}

static struct llm_call sample_call(void)
{
	struct llm_call c = {
		.provider = LLM_PROVIDER_ANTHROPIC,
		.provider_name = "anthropic",
		.detected_by = "path",
		.operation = "chat",
		.request_model = "claude-sonnet-4-5",
		.response_model = "claude-sonnet-4-5-20250929",
		.response_id = "msg_01",
		.finish_reasons = { "end_turn" },
		.n_finish_reasons = 1,
		.input_tokens = 120,
		.output_tokens = 30,
		.cache_read_tokens = 100,
		.cache_creation_tokens = 0,
		.max_tokens = 256,
		.temperature = 0.5,
		.has_temperature = true,
		.stream = 1,
		.start_ns = 1000000000ull,
		.first_chunk_ns = 1250000000ull,
		.end_ns = 1900000000ull,
		.server_address = "api.anthropic.com",
		.server_port = 443,
		.method = "POST",
		.path = "/v1/messages",
		.status_code = 200,
		.pid = 0, /* filled per test */
		.tid = 77,
		.tls_source = 1,
	};
	return c;
}

static const struct attr *res_attr(const struct resource *r, const char *key)
{
	for (size_t i = 0; i < r->n_attrs; i++)
		if (!strcmp(r->attrs[i].key, key))
			return &r->attrs[i];
	return NULL;
}

TEST(span_attributes_follow_genai_conventions)
{
	struct span_builder_opts o = { .proc_root = "/proc" };
	struct span_builder *b = span_builder__new(&o);
	struct llm_call c = sample_call();
	const struct attr *a;
	struct span *s;

	c.pid = (uint32_t)getpid();
	s = span_builder__build(b, &c);
	CHECK(s != NULL);
	CHECK_EQ_STR(s->name, "chat claude-sonnet-4-5");
	CHECK_EQ_INT(s->kind, SPAN_KIND_CLIENT);
	CHECK_EQ_INT(s->end_unix_ns - s->start_unix_ns, 900000000);
	CHECK_EQ_INT(s->status, SPAN_STATUS_UNSET);
	a = span__find_attr(s, "gen_ai.provider.name");
	CHECK(a && a->type == ATTR_STRING && !strcmp(a->s, "anthropic"));
	a = span__find_attr(s, "gen_ai.usage.input_tokens");
	CHECK(a && a->type == ATTR_INT && a->i == 120);
	a = span__find_attr(s, "gen_ai.usage.cache_read.input_tokens");
	CHECK(a && a->i == 100);
	a = span__find_attr(s, "gen_ai.response.finish_reasons");
	CHECK(a && a->type == ATTR_STRING_ARRAY && a->arr.n == 1 && !strcmp(a->arr.v[0], "end_turn"));
	a = span__find_attr(s, "gen_ai.response.time_to_first_chunk");
	CHECK(a && a->type == ATTR_DOUBLE && a->d > 0.2499 && a->d < 0.2501);
	a = span__find_attr(s, "gen_ai.request.temperature");
	CHECK(a && a->type == ATTR_DOUBLE && a->d == 0.5);
	a = span__find_attr(s, "gen_ai.request.stream");
	CHECK(a && a->type == ATTR_BOOL && a->b);
	CHECK(span__find_attr(s, "tokentap.capture.partial") == NULL);
	CHECK(span__find_attr(s, "error.type") == NULL);
	a = span__find_attr(s, "thread.id");
	CHECK(a && a->i == 77);
	CHECK(s->resource != NULL);
	a = res_attr(s->resource, "process.pid");
	CHECK(a && a->i == getpid());
	a = res_attr(s->resource, "process.executable.name");
	CHECK(a && !strcmp(a->s, "test_span"));
	a = res_attr(s->resource, "service.name");
	CHECK(a && !strcmp(a->s, "test_span"));
	span__free(s);
	span_builder__free(b);
}

TEST(error_and_partial_calls)
{
	struct span_builder_opts o = { .proc_root = "/proc" };
	struct span_builder *b = span_builder__new(&o);
	struct llm_call c = sample_call();
	const struct attr *a;
	struct span *s;

	c.pid = (uint32_t)getpid();
	c.stream = 0;
	c.first_chunk_ns = 0;
	c.status_code = 429;
	strcpy(c.error_type, "429");
	c.partial = true;
	c.lost_bytes = 4096;
	c.input_tokens = c.output_tokens = -1;
	s = span_builder__build(b, &c);
	CHECK_EQ_INT(s->status, SPAN_STATUS_ERROR);
	a = span__find_attr(s, "error.type");
	CHECK(a && !strcmp(a->s, "429"));
	a = span__find_attr(s, "tokentap.capture.partial");
	CHECK(a && a->type == ATTR_BOOL && a->b);
	a = span__find_attr(s, "tokentap.capture.lost_bytes");
	CHECK(a && a->i == 4096);
	CHECK(span__find_attr(s, "gen_ai.usage.input_tokens") == NULL);
	CHECK(span__find_attr(s, "gen_ai.response.time_to_first_chunk") == NULL);
	span__free(s);
	span_builder__free(b);
}

/* Issue 3: other operations, reasoning tokens (only when non-zero), openai.api.type. */
TEST(reasoning_and_api_type)
{
	struct span_builder_opts o = { .proc_root = "/proc" };
	struct span_builder *b = span_builder__new(&o);
	struct llm_call c = sample_call();
	const struct attr *a;
	struct span *s;

	c.pid = (uint32_t)getpid();
	c.provider_name = "openai";
	strcpy(c.operation, "embeddings");
	strcpy(c.request_model, "text-embedding-3-small");
	c.reasoning_tokens = 192;
	c.api_type = "responses";
	s = span_builder__build(b, &c);
	CHECK_EQ_STR(s->name, "embeddings text-embedding-3-small");
	a = span__find_attr(s, "gen_ai.usage.reasoning.output_tokens");
	CHECK(a && a->type == ATTR_INT && a->i == 192);
	a = span__find_attr(s, "openai.api.type");
	CHECK(a && a->type == ATTR_STRING && !strcmp(a->s, "responses"));
	span__free(s);
	c.reasoning_tokens = 0;
	c.api_type = NULL;
	s = span_builder__build(b, &c);
	CHECK(span__find_attr(s, "gen_ai.usage.reasoning.output_tokens") == NULL);
	CHECK(span__find_attr(s, "openai.api.type") == NULL);
	span__free(s);
	span_builder__free(b);
}

/* A fake /proc: the resource is read at exec time and survives the process. */
TEST(resource_from_fake_proc_with_env)
{
	char root[] = "/tmp/tt_proc_XXXXXX", path[256];
	struct span_builder_opts o = { .resource_attributes = "deployment.environment=prod,"
							      "team=search%20infra,service.name=svc-env" };
	struct span_builder *b;
	struct llm_call c = sample_call();
	const struct attr *a;
	struct span *s;
	FILE *f;

	CHECK(mkdtemp(root) != NULL);
	snprintf(path, sizeof(path), "%s/4242", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/4242/exe", root);
	CHECK(symlink("/opt/app/bin/agent", path) == 0);
	snprintf(path, sizeof(path), "%s/4242/cgroup", root);
	f = fopen(path, "w");
	fprintf(f, "0::/kubepods.slice/cri-containerd-" CID ".scope\n");
	fclose(f);
	o.proc_root = root;
	b = span_builder__new(&o);
	span_builder__learn_process(b, 4242, "agent", NULL);
	c.pid = 4242;
	s = span_builder__build(b, &c);
	a = res_attr(s->resource, "process.executable.path");
	CHECK(a && !strcmp(a->s, "/opt/app/bin/agent"));
	a = res_attr(s->resource, "container.id");
	CHECK(a && !strcmp(a->s, CID));
	a = res_attr(s->resource, "team");
	CHECK(a && !strcmp(a->s, "search infra"));
	a = res_attr(s->resource, "service.name");
	CHECK(a && !strcmp(a->s, "svc-env"));
	int n_service = 0;
	for (size_t i = 0; i < s->resource->n_attrs; i++)
		n_service += !strcmp(s->resource->attrs[i].key, "service.name");
	CHECK_EQ_INT(n_service, 1);
	span_builder__forget_process(b, 4242);
	/* The span keeps its own reference after the process is forgotten. */
	a = res_attr(s->resource, "process.pid");
	CHECK(a && a->i == 4242);
	span__free(s);
	span_builder__free(b);
	snprintf(path, sizeof(path), "rm -rf %s", root);
	CHECK(system(path) == 0);
}

int main(void)
{
	RUN(container_id_from_cgroup_layouts);
	RUN(span_attributes_follow_genai_conventions);
	RUN(error_and_partial_calls);
	RUN(reasoning_and_api_type);
	RUN(resource_from_fake_proc_with_env);
	TT_DONE();
}
