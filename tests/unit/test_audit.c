// SPDX-License-Identifier: Apache-2.0
/*
 * Audit: the hash chain and `audit verify` (deleted, inserted, edited, torn lines), the
 * exporter's rotation and restart (the chain runs on across files and runs), the destination
 * policy, shadow-AI detection and the process facts read from a fake /proc.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/chain.h"
#include "audit/container_meta.h"
#include "capture/capture.h"
#include "tokentap_abi.h"
#include "audit/judge.h"
#include "audit/policy.h"
#include "audit/procinfo.h"
#include "export/audit.h"
#include "tt_test.h"

static char tmpdir[] = "/tmp/tokentap-test-audit-XXXXXX";

static const char *tmp_path(const char *name)
{
	static char buf[4][256];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, 256, "%s/%s", tmpdir, name);
	return p;
}

static struct resource *fake_resource(uint32_t pid)
{
	struct resource *r = calloc(1, sizeof(*r));

	r->refs = 1;
	r->pid = pid;
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "host.name", "node-1");
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.executable.path",
		       "/usr/bin/curl");
	return r;
}

#define S_STR(s, k, v) attrs__add_str((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)
#define S_INT(s, k, v) attrs__add_int((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)

static struct span *fake_span(int i, const char *host, const char *model, const char *by)
{
	struct span *s = calloc(1, sizeof(*s));

	s->trace_id[0] = (uint8_t)i + 1;
	s->span_id[0] = (uint8_t)i + 1;
	s->start_unix_ns = 1700000000000000000ull + (uint64_t)i * 1000000;
	s->end_unix_ns = s->start_unix_ns + 5000000;
	S_STR(s, "gen_ai.operation.name", "chat");
	S_STR(s, "gen_ai.provider.name", "openai");
	S_STR(s, "gen_ai.request.model", model);
	S_INT(s, "gen_ai.usage.input_tokens", 10 + i);
	S_STR(s, "server.address", host);
	S_INT(s, "server.port", 443);
	S_STR(s, "http.request.method", "POST");
	S_STR(s, "url.path", "/v1/chat/completions");
	S_STR(s, "tokentap.provider.detected_by", by);
	s->resource = fake_resource(4242);
	return s;
}

/* Writes n records through the exporter (chain continued from whatever is on disk). */
static int write_records(const char *path, int n, uint64_t max_bytes, int keep)
{
	struct audit_opts o = {.path = path, .max_bytes = max_bytes, .keep = keep};
	struct exporter *e = audit_exporter__new(&o);
	struct export_stats st = {};

	if (!e)
		return -1;
	for (int i = 0; i < n; i++) {
		struct span *s = fake_span(i, "api.openai.com", "gpt-4o", "host");

		e->ops->export(e, s);
		span__free(s);
	}
	e->ops->stats(e, &st);
	e->ops->flush(e, 100);
	e->ops->destroy(e);
	return (int)st.exported;
}

static int verify(const char *const *files, int n, bool partial, char *err, size_t cap)
{
	struct chain_verify_opts o = {.partial = partial};
	struct chain_state st = {};

	err[0] = '\0';
	for (int i = 0; i < n; i++) {
		FILE *f = fopen(files[i], "r");
		int ret;

		if (!f)
			return -errno;
		ret = chain__verify_file(f, files[i], &st, &o, err, cap);
		fclose(f);
		if (ret)
			return ret;
	}
	return st.started ? (int)st.records : -ENODATA;
}

/* The file's lines, to rewrite them with one changed. */
static int read_lines(const char *path, char lines[][4096], int max)
{
	FILE *f = fopen(path, "r");
	int n = 0;

	while (f && n < max && fgets(lines[n], 4096, f))
		n++;
	if (f)
		fclose(f);
	return n;
}

static void write_lines(const char *path, char lines[][4096], int n, int skip)
{
	FILE *f = fopen(path, "w");

	for (int i = 0; i < n; i++)
		if (i != skip)
			fputs(lines[i], f);
	fclose(f);
}

static char lines[16][4096];

TEST(chain_verifies_and_detects_tampering)
{
	const char *path = tmp_path("chain.log");
	const char *files[] = {path};
	char err[512], edited[4096], *p;
	int n;

	unlink(path);
	CHECK_EQ_INT(write_records(path, 6, 0, 0), 6);
	CHECK_EQ_INT(verify(files, 1, false, err, sizeof(err)), 6);
	n = read_lines(path, lines, 16);
	CHECK_EQ_INT(n, 6);
	CHECK(strstr(lines[0], "\"seq\":0,\"prev_hash\":\"" AUDIT_GENESIS "\"") == lines[0] + 1);

	/* a deleted line: the next record names the gap */
	write_lines(path, lines, n, 2);
	CHECK_EQ_INT(verify(files, 1, false, err, sizeof(err)), -EBADMSG);
	CHECK(strstr(err, "chain.log:3:") && strstr(err, "missing"));

	/* an inserted line (a copy of line 2, so a well-formed record) */
	{
		FILE *f = fopen(path, "w");

		for (int i = 0; i < n; i++) {
			fputs(lines[i], f);
			if (i == 1)
				fputs(lines[1], f);
		}
		fclose(f);
	}
	CHECK_EQ_INT(verify(files, 1, false, err, sizeof(err)), -EBADMSG);
	CHECK(strstr(err, "chain.log:3:") && strstr(err, "inserted"));

	/* an edited line: the token count of record 3 changes, record 4 no longer links */
	memcpy(edited, lines[3], sizeof(edited));
	p = strstr(edited, "\"input\":13");
	CHECK(p != NULL);
	if (p)
		p[9] = '9';
	memcpy(lines[3], edited, sizeof(edited));
	write_lines(path, lines, n, -1);
	CHECK_EQ_INT(verify(files, 1, false, err, sizeof(err)), -EBADMSG);
	CHECK(strstr(err, "chain.log:5:") && strstr(err, "prev_hash"));

	/* a torn last line */
	read_lines(path, lines, 16);
	lines[5][10] = '\0';
	write_lines(path, lines, n, -1);
	CHECK_EQ_INT(verify(files, 1, false, err, sizeof(err)), -EBADMSG);
	CHECK(strstr(err, "chain.log:5:") != NULL); /* line 5 is the edited one, found first */
}

TEST(verify_subcommand_exit_codes)
{
	const char *path = tmp_path("cmd.log");
	char *ok[] = {"audit", "verify", (char *)path, NULL};
	char *usage[] = {"audit", "nonsense", NULL};
	int n;

	unlink(path);
	CHECK_EQ_INT(write_records(path, 3, 0, 0), 3);
	CHECK_EQ_INT(audit__main(3, ok), 0);
	CHECK_EQ_INT(audit__main(2, usage), 2);
	n = read_lines(path, lines, 16);
	write_lines(path, lines, n, 0); /* the first record deleted: no genesis */
	CHECK_EQ_INT(audit__main(3, ok), 1);
}

TEST(rotation_keeps_the_chain)
{
	const char *path = tmp_path("rot.log");
	char f1[300], f2[300], f3[300], f4[300], err[512];
	struct stat st;

	snprintf(f1, sizeof(f1), "%s.1", path);
	snprintf(f2, sizeof(f2), "%s.2", path);
	snprintf(f3, sizeof(f3), "%s.3", path);
	snprintf(f4, sizeof(f4), "%s.4", path);
	unlink(path);
	unlink(f1);
	unlink(f2);
	unlink(f3);
	/* ~1 KiB records, 3 KiB files: rotates several times, keeps 3 old files */
	CHECK_EQ_INT(write_records(path, 20, 3000, 3), 20);
	CHECK(!stat(path, &st) && st.st_size <= 3000 && (st.st_mode & 0777) == 0600);
	CHECK(!stat(f3, &st) && st.st_size <= 3000);
	CHECK(stat(f4, &st) != 0);
	{
		const char *all[] = {f3, f2, f1, path};
		const char *wrong_order[] = {path, f1};

		/* the oldest kept file links to records rotation deleted */
		CHECK_EQ_INT(verify(all, 4, false, err, sizeof(err)), -EBADMSG);
		CHECK(verify(all, 4, true, err, sizeof(err)) > 4);
		CHECK_EQ_INT(verify(wrong_order, 2, true, err, sizeof(err)), -EBADMSG);
	}
	/* a restart continues the chain, also right after a rotation */
	CHECK_EQ_INT(write_records(path, 2, 3000, 3), 2);
	{
		const char *all[] = {f3, f2, f1, path};

		CHECK(verify(all, 4, true, err, sizeof(err)) > 4);
	}
}

TEST(restart_continues_and_repairs_a_torn_tail)
{
	const char *path = tmp_path("restart.log");
	const char *files[] = {path};
	char err[512];
	int fd;

	unlink(path);
	CHECK_EQ_INT(write_records(path, 2, 0, 0), 2);
	CHECK_EQ_INT(write_records(path, 2, 0, 0), 2);
	CHECK_EQ_INT(verify(files, 1, false, err, sizeof(err)), 4);
	/* a crash in the middle of a write */
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(write(fd, "{\"seq\":4,\"prev", 14) == 14);
	close(fd);
	CHECK_EQ_INT(verify(files, 1, false, err, sizeof(err)), -EBADMSG);
	CHECK_EQ_INT(write_records(path, 1, 0, 0), 1);
	CHECK_EQ_INT(verify(files, 1, false, err, sizeof(err)), 5);
	/* a last line that is not a record: refuse to append */
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(write(fd, "garbage\n", 8) == 8);
	close(fd);
	CHECK_EQ_INT(write_records(path, 1, 0, 0), -1);
}

TEST(record_fields)
{
	struct span *s = fake_span(0, "localhost", "gpt-4o", "path");
	struct proc_facts f = {.pid = 4242, .ppid = 1, .uid = 1000, .euid = 1000};
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	strcpy(f.user, "alice");
	strcpy(f.exe, "/usr/bin/python3");
	strcpy(f.cmdline, "python3 app.py --api-key [REDACTED]");
	strcpy(f.container_id, "abc");
	attrs__add_bool(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "tokentap.shadow_ai", true);
	S_STR(s, "tokentap.policy.verdict", "denied");
	{
		const char *v[] = {"host_not_allowed", "model_not_allowed"};

		attrs__add_str_array(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS,
				     "tokentap.policy.violations", v, 2);
	}
	audit__write_record(m, s, &f, 7, AUDIT_GENESIS, 2);
	fclose(m);
	CHECK(strstr(buf, "{\"seq\":7,\"prev_hash\":\"0000") == buf);
	CHECK(strstr(buf, "\"lost_before\":2") != NULL);
	CHECK(strstr(buf, "\"uid\":1000,\"euid\":1000,\"user\":\"alice\"") != NULL);
	CHECK(strstr(buf, "\"executable\":\"/usr/bin/python3\"") != NULL);
	CHECK(strstr(buf, "\"verdict\":\"denied\",\"violations\":[\"host_not_allowed\","
			  "\"model_not_allowed\"]") != NULL);
	CHECK(strstr(buf, "\"shadow_ai\":true") != NULL);
	CHECK(strstr(buf, "\"container\":{\"id\":\"abc\"") != NULL);
	CHECK(!strchr(buf, '\n'));
	free(buf);
	span__free(s);
}

/* ---- policy ------------------------------------------------------------------------------------
 */

static const char *policy_doc =
    "{\"version\":1,\"default\":\"deny\",\"shadow_ai\":\"deny\",\"rules\":["
    "{\"name\":\"backend\",\"match\":{\"executables\":[\"/usr/bin/python3*\"]},"
    " \"allow\":{\"providers\":[\"openai\"],\"hosts\":[\"api.openai.com\",\"*.openai.azure.com\"],"
    "  \"models\":[\"gpt-4o*\"],\"api_keys\":[\"4b93*\"]}},"
    "{\"name\":\"batch\",\"match\":{\"executables\":[\"curl\"],\"container_ids\":[\"3f2a\"]},"
    " \"allow\":{\"models\":[\"claude-*\"]}},"
    "{\"name\":\"k8s\",\"match\":{\"pod_uids\":[\"1b2c3d4e\"]},\"allow\":{}}]}";

static struct policy_verdict judge(struct policy *p, const char *exe, const char *cid,
				   const char *pod, const char *host, const char *model,
				   const char *key, bool shadow)
{
	struct policy_call c = {.exe = exe,
				.container_id = cid,
				.pod_uid = pod,
				.uid = 0,
				.provider = "openai",
				.host = host,
				.model = model,
				.key_fingerprint = key,
				.shadow_ai = shadow};
	struct policy_verdict v;

	policy__eval(p, &c, &v);
	return v;
}

static bool has_violation(const struct policy_verdict *v, const char *what)
{
	for (int i = 0; i < v->n_violations; i++)
		if (!strcmp(v->violations[i], what))
			return true;
	return false;
}

TEST(policy_matching)
{
	char err[256];
	struct policy *p = policy__parse(policy_doc, strlen(policy_doc), err, sizeof(err));
	struct policy_verdict v;
	struct policy_stats st;

	CHECK(p != NULL);
	if (!p)
		return;
	v = judge(p, "/usr/bin/python3.11", "", "", "api.openai.com", "gpt-4o-mini", "4b939df4",
		  false);
	CHECK(!v.denied);
	CHECK_EQ_STR(v.rule, "backend");
	v = judge(p, "/usr/bin/python3.11", "", "", "westeurope.OPENAI.azure.com", "gpt-4o", "4b93",
		  false);
	CHECK(!v.denied); /* host globs ignore case */
	v = judge(p, "/usr/bin/python3.11", "", "", "localhost", "gpt-3.5", "ffff", false);
	CHECK(v.denied && v.n_violations == 3);
	CHECK(has_violation(&v, "host_not_allowed") && has_violation(&v, "model_not_allowed") &&
	      has_violation(&v, "api_key_not_allowed"));
	v = judge(p, "/usr/bin/python3", "", "", "api.openai.com", "gpt-4o", NULL, false);
	CHECK(v.denied && has_violation(&v, "api_key_unknown"));
	/* name globs match the file name; container ids by prefix */
	v = judge(p, "/usr/local/bin/curl", "3f2a99", "", "x", "claude-sonnet-4", NULL, false);
	CHECK(!v.denied);
	CHECK_EQ_STR(v.rule, "batch");
	v = judge(p, "/usr/local/bin/curl", "9999", "", "x", "claude-sonnet-4", NULL, false);
	CHECK(v.denied && has_violation(&v, "no_matching_rule") && v.rule == NULL);
	/* an empty allow: anything goes for that pod, except shadow AI (policy-wide) */
	v = judge(p, "/bin/node", "", "1b2c3d4e-0000-1111-2222-333344445555", "x", "m", NULL,
		  false);
	CHECK(!v.denied);
	v = judge(p, "/bin/node", "", "1b2c3d4e-0000-1111-2222-333344445555", "x", "m", NULL, true);
	CHECK(v.denied && has_violation(&v, "shadow_ai"));
	policy__stats(p, &st);
	CHECK_EQ_INT(st.evaluated, 8);
	CHECK_EQ_INT(st.denied, 4);
	policy__global_stats(&st);
	CHECK_EQ_INT(st.denied, 4);
	policy__free(p);
}

TEST(policy_rejects_bad_documents)
{
	static const char *bad[] = {
	    "[]",
	    "{\"default\":\"maybe\"}",
	    "{\"rules\":[{\"match\":{\"executable\":[\"x\"]}}]}",   /* typo: executables */
	    "{\"rules\":[{\"allow\":{\"models\":\"gpt-4o\"}}]}",    /* not an array */
	    "{\"rules\":[{\"match\":{\"pod_labels\":[\"app\"]}}]}", /* not key=value */
	    "{\"rules\":[{\"allow\":{\"hosts\":[\"\"]}}]}",
	    "{\"rules\":[]} trailing",
	    "{\"version\":2}",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct policy *p = policy__parse(bad[i], strlen(bad[i]), err, sizeof(err));

		CHECK(p == NULL);
		CHECK(err[0] != '\0');
		policy__free(p);
	}
	policy__parse(bad[4], strlen(bad[4]), err, sizeof(err));
	CHECK(strstr(err, "key=value") != NULL);
	/* both spellings of one selector */
	static const char *twice =
	    "{\"rules\":[{\"match\":{\"image\":[\"a\"],\"images\":[\"b\"]}}]}";

	CHECK(policy__parse(twice, strlen(twice), err, sizeof(err)) == NULL);
	CHECK(strstr(err, "twice") != NULL);
}

TEST(policy_file_permissions)
{
	const char *path = tmp_path("policy.json");
	FILE *f = fopen(path, "w");
	struct policy *p;

	fputs("{\"rules\":[]}", f);
	fclose(f);
	chmod(path, 0666);
	p = policy__load(path);
	CHECK(p == NULL);
	chmod(path, 0644);
	p = policy__load(path);
	CHECK(p != NULL);
	policy__free(p);
}

TEST(match_exe)
{
	CHECK(policy__match_exe("python3*", "/usr/bin/python3.11"));
	CHECK(!policy__match_exe("python3*", "/usr/bin/xpython3"));
	CHECK(policy__match_exe("/opt/*/bin/app", "/opt/a/bin/app"));
	CHECK(!policy__match_exe("/opt/*/bin/app", "/srv/opt/a/bin/app"));
	CHECK(!policy__match_exe("curl", ""));
}

/* ---- shadow AI ----------------------------------------------------------------------------------
 */

TEST(shadow_ai_detection)
{
	struct span *s = fake_span(0, "llm.internal", "llama3", "path");
	char why[256];

	CHECK_EQ_STR(shadow__detect(s, why, sizeof(why)), "unknown_provider_host");
	CHECK(strstr(why, "llm.internal") != NULL);
	span__free(s);
	s = fake_span(0, "api.openai.com", "gpt-4o", "host");
	CHECK(shadow__detect(s, why, sizeof(why)) == NULL);
	S_STR(s, "network.peer.address", "10.0.0.5");
	S_INT(s, "network.peer.port", 443);
	CHECK(shadow__detect(s, why, sizeof(why)) == NULL); /* same port: a direct connection */
	S_INT(s, "network.peer.port", 3128);
	CHECK_EQ_STR(shadow__detect(s, why, sizeof(why)), "provider_via_proxy");
	CHECK(strstr(why, "10.0.0.5:3128") != NULL);
	span__free(s);
}

TEST(judge_adds_attributes)
{
	char err[256];
	const char *doc = "{\"default\":\"allow\",\"rules\":[{\"allow\":{\"hosts\":[\"api.*\"]}}]}";
	struct policy *p = policy__parse(doc, strlen(doc), err, sizeof(err));
	struct audit_judge *j = audit_judge__new(NULL, p);
	struct span *s = fake_span(0, "localhost", "gpt-4o", "path");
	const struct attr *a;

	audit_judge__span(j, s);
	a = span__find_attr(s, "tokentap.policy.verdict");
	CHECK(a && !strcmp(a->s, "denied"));
	a = span__find_attr(s, "tokentap.policy.violations");
	CHECK(a && a->type == ATTR_STRING_ARRAY && a->arr.n == 1 &&
	      !strcmp(a->arr.v[0], "host_not_allowed"));
	a = span__find_attr(s, "tokentap.shadow_ai");
	CHECK(a && a->type == ATTR_BOOL && a->b);
	span__free(s);
	audit_judge__free(j);
	policy__free(p);
}

TEST(judge_falls_back_to_the_exec_comm)
{
	char err[256];
	const char *doc = "{\"default\":\"deny\",\"rules\":[{\"match\":{\"executables\":"
			  "[\"curl\"]}}]}";
	struct policy *p = policy__parse(doc, strlen(doc), err, sizeof(err));
	struct proc_table *t = proc_table__new("/nonexistent");
	struct audit_judge *j = audit_judge__new(t, p);
	struct span *s = fake_span(0, "api.openai.com", "gpt-4o", "host");
	struct resource *r = s->resource;
	const struct attr *a;

	/* the process is gone from /proc: only its resource (exec event's comm) is left */
	attrs__free(r->attrs, r->n_attrs);
	r->n_attrs = 0;
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.executable.name",
		       "curl");
	audit_judge__span(j, s);
	a = span__find_attr(s, "tokentap.policy.verdict");
	CHECK(a && !strcmp(a->s, "allowed"));
	span__free(s);
	audit_judge__free(j);
	proc_table__free(t);
	policy__free(p);
}

/* ---- container metadata from the runtimes' state ------------------------------------------ */

#define CID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define CID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define CID_S "5555555555555555555555555555555555555555555555555555555555555555"
#define CID_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

static void put_text(const char *dir, const char *name, const char *text)
{
	char cmd[600], path[600];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "mkdir -p %s", dir);
	CHECK(system(cmd) == 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* One bundle per runtime, as the runtimes write them (trimmed to what is read). */
static void make_runtime_roots(void)
{
	char d[400];

	snprintf(d, sizeof(d), "%s/containerd/k8s.io/%s", tmpdir, CID_A);
	put_text(d, "config.json",
		 "{\"ociVersion\":\"1.1.0\",\"process\":{\"args\":[\"python\"]},\"annotations\":{"
		 "\"io.kubernetes.cri.container-type\":\"container\","
		 "\"io.kubernetes.cri.container-name\":\"agent\","
		 "\"io.kubernetes.cri.image-name\":\"ghcr.io/acme/agent:1.4\","
		 "\"io.kubernetes.cri.sandbox-name\":\"agent-7d9f\","
		 "\"io.kubernetes.cri.sandbox-namespace\":\"ml\","
		 "\"io.kubernetes.cri.sandbox-uid\":\"1b2c3d4e-0000-1111-2222-333344445555\"}}");
	snprintf(d, sizeof(d), "%s/containerd/moby", tmpdir); /* another namespace, empty */
	put_text(d, ".keep", "");
	snprintf(d, sizeof(d), "%s/crio/%s/userdata", tmpdir, CID_B);
	put_text(d, "config.json",
		 "{\"annotations\":{\"io.kubernetes.cri-o.ImageName\":\"docker.io/library/"
		 "python:3.12\",\"io.kubernetes.cri-o.ContainerName\":\"k8s_app_web\","
		 "\"io.kubernetes.pod.name\":\"web-1\",\"io.kubernetes.pod.namespace\":\"shop\","
		 "\"io.kubernetes.pod.uid\":\"9a9a9a9a-0000-1111-2222-333344445555\","
		 "\"io.kubernetes.cri-o.SandboxID\":\"" CID_S "\","
		 "\"io.kubernetes.cri-o.Labels\":\"{\\\"io.kubernetes.container.name\\\":"
		 "\\\"app\\\"}\"}}");
	snprintf(d, sizeof(d), "%s/crio/%s/userdata", tmpdir, CID_S);
	put_text(d, "config.json",
		 "{\"annotations\":{\"io.kubernetes.cri-o.Labels\":\"{\\\"app\\\":\\\"web\\\","
		 "\\\"team\\\":\\\"payments\\\"}\"}}");
	snprintf(d, sizeof(d), "%s/docker/%s", tmpdir, CID_D);
	put_text(d, "config.v2.json",
		 "{\"ID\":\"" CID_D "\",\"Name\":\"/batch\",\"Config\":{\"Image\":"
		 "\"acme/batch:latest\",\"Labels\":{\"team\":\"research\"}}}");
}

static struct container_meta *fixture_meta(void)
{
	static char cd[300], cr[300], dk[300];

	snprintf(cd, sizeof(cd), "%s/containerd", tmpdir);
	snprintf(cr, sizeof(cr), "%s/crio", tmpdir);
	snprintf(dk, sizeof(dk), "%s/docker", tmpdir);
	return container_meta__new(&(struct container_meta_opts){
	    .containerd_state = cd, .crio_state = cr, .docker_state = dk});
}

TEST(container_meta_from_fixture_bundles)
{
	struct container_meta *m;
	const struct container_info *ci;
	struct container_meta_stats st;

	make_runtime_roots();
	m = fixture_meta();
	CHECK(m != NULL);
	ci = container_meta__lookup(m, CID_A, 1);
	CHECK(ci != NULL);
	if (ci) {
		CHECK_EQ_STR(ci->runtime, "containerd");
		CHECK_EQ_STR(ci->image, "ghcr.io/acme/agent:1.4");
		CHECK_EQ_STR(ci->name, "agent");
		CHECK_EQ_STR(ci->pod_name, "agent-7d9f");
		CHECK_EQ_STR(ci->pod_namespace, "ml");
		CHECK_EQ_STR(ci->pod_uid, "1b2c3d4e-0000-1111-2222-333344445555");
		CHECK(!ci->labels_known); /* containerd records no pod labels */
	}
	ci = container_meta__lookup(m, CID_B, 1);
	CHECK(ci != NULL);
	if (ci) {
		CHECK_EQ_STR(ci->runtime, "cri-o");
		CHECK_EQ_STR(ci->image, "docker.io/library/python:3.12");
		CHECK_EQ_STR(ci->pod_name, "web-1");
		CHECK(ci->labels_known);
		/* the pod's labels come from its sandbox */
		CHECK(container_info__has_label(ci, "app=web"));
		CHECK(container_info__has_label(ci, "team=pay*"));
		CHECK(container_info__has_label(ci, "io.kubernetes.container.name=app"));
		CHECK(!container_info__has_label(ci, "team=research"));
	}
	ci = container_meta__lookup(m, CID_D, 1);
	CHECK(ci != NULL);
	if (ci) {
		CHECK_EQ_STR(ci->runtime, "docker");
		CHECK_EQ_STR(ci->image, "acme/batch:latest");
		CHECK_EQ_STR(ci->name, "batch");
		CHECK(container_info__has_label(ci, "team=research"));
	}
	/* unknown, and ids that are no container id (never a path) */
	CHECK(container_meta__lookup(
		  m, "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", 1) ==
	      NULL);
	CHECK(container_meta__lookup(m, "../../../../etc/passwd", 1) == NULL);
	CHECK(container_meta__lookup(
		  m, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1) ==
	      NULL);
	CHECK(container_meta__lookup(m, CID_A, 2) != NULL); /* cached */
	container_meta__stats(m, &st);
	CHECK_EQ_INT(st.found, 3);
	CHECK_EQ_INT(st.not_found, 1);
	CHECK_EQ_INT(st.hits, 1);
	container_meta__free(m);
}

TEST(container_info_parse_rejects_garbage)
{
	struct container_info ci = {0};
	static const char *bad[] = {"", "[]", "{\"annotations\":", "null", "{} x"};
	static const char *mistyped = "{\"annotations\":{\"io.kubernetes.cri-o.ImageName\":5,"
				      "\"io.kubernetes.cri-o.Labels\":\"[1,2]\"}}";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(container_info__parse("containerd", bad[i], strlen(bad[i]), &ci) != 0);
	CHECK(container_info__parse("rkt", "{}", 2, &ci) != 0);
	/* mistyped fields are ignored, not trusted */
	CHECK(container_info__parse("cri-o", mistyped, strlen(mistyped), &ci) == 0);
	CHECK(ci.image[0] == '\0' && ci.n_labels == 0 && !ci.labels_known);
	container_info__clear(&ci);
}

static const char *image_policy =
    "{\"default\":\"deny\",\"rules\":["
    "{\"name\":\"agents\",\"match\":{\"images\":[\"ghcr.io/acme/*\"]},"
    " \"allow\":{\"providers\":[\"openai\"]}},"
    "{\"name\":\"payments\",\"match\":{\"pod_label\":[\"team=payments\"]},"
    " \"allow\":{\"models\":[\"gpt-4o\"]}},"
    "{\"name\":\"anyone\",\"match\":{\"executables\":[\"curl\"]},\"allow\":{}}]}";

static struct policy_verdict judge_in(struct policy *p, const char *exe, const char *cid,
				      const struct container_info *ci, const char *model)
{
	struct policy_call c = {.exe = exe,
				.container_id = cid,
				.uid = 0,
				.provider = "openai",
				.host = "api.openai.com",
				.model = model,
				.container = ci};
	struct policy_verdict v;

	policy__eval(p, &c, &v);
	return v;
}

TEST(policy_by_image_and_pod_label)
{
	char err[256];
	struct policy *p = policy__parse(image_policy, strlen(image_policy), err, sizeof(err));
	struct container_meta *m = fixture_meta();
	struct policy_verdict v;

	CHECK(p != NULL && m != NULL);
	if (!p || !m)
		return;
	/* containerd: the image rule decides; the label rule cannot be evaluated and says so */
	v = judge_in(p, "/usr/bin/python3", CID_A, container_meta__lookup(m, CID_A, 1), "gpt-4o");
	CHECK(!v.denied);
	CHECK_EQ_STR(v.rule, "agents");
	CHECK_EQ_INT(v.n_unevaluated, 0); /* the first rule selected: the label rule never ran */
	v = judge_in(p, "/usr/bin/curl", CID_A, NULL, "gpt-4o"); /* metadata not found */
	CHECK_EQ_STR(v.rule, "anyone");
	CHECK_EQ_INT(v.n_unevaluated, 2);
	CHECK_EQ_STR(v.unevaluated[0].rule, "agents");
	CHECK_EQ_STR(v.unevaluated[0].reason, "image_unknown");
	CHECK_EQ_STR(v.unevaluated[1].reason, "pod_labels_unknown");
	/* CRI-O: the pod's labels select the payments rule, which allows only gpt-4o */
	v = judge_in(p, "/usr/bin/python3", CID_B, container_meta__lookup(m, CID_B, 1), "gpt-4o");
	CHECK(!v.denied);
	CHECK_EQ_STR(v.rule, "payments");
	v = judge_in(p, "/usr/bin/python3", CID_B, container_meta__lookup(m, CID_B, 1), "o3");
	CHECK(v.denied && has_violation(&v, "model_not_allowed"));
	/* outside any container: image and label rules simply do not select */
	v = judge_in(p, "/usr/bin/python3", "", NULL, "gpt-4o");
	CHECK(v.denied && has_violation(&v, "no_matching_rule"));
	CHECK_EQ_INT(v.n_unevaluated, 0);
	/* Docker: container labels stand in for pod labels; none matches, and none is unknown */
	v = judge_in(p, "/usr/bin/python3", CID_D, container_meta__lookup(m, CID_D, 1), "gpt-4o");
	CHECK(v.denied && has_violation(&v, "no_matching_rule"));
	CHECK_EQ_INT(v.n_unevaluated, 0);
	container_meta__free(m);
	policy__free(p);
}

TEST(judge_reports_container_facts_and_unevaluated_rules)
{
	char err[256], cg[400], dir[400];
	const char *doc = "{\"default\":\"allow\",\"rules\":[{\"name\":\"labelled\","
			  "\"match\":{\"pod_labels\":[\"team=x\"]},\"allow\":{\"hosts\":[]}}]}";
	struct policy *p = policy__parse(doc, strlen(doc), err, sizeof(err));
	struct proc_table *t;
	struct container_meta *m = fixture_meta();
	struct audit_judge *j;
	struct span *s = fake_span(0, "api.openai.com", "gpt-4o", "host");
	const struct attr *a;

	/* a fake /proc whose process 4242 runs in containerd container A */
	snprintf(dir, sizeof(dir), "%s/proc/4242", tmpdir);
	snprintf(cg, sizeof(cg),
		 "0::/kubepods.slice/kubepods-pod1b2c3d4e_0000_1111_2222_333344445555.slice/"
		 "cri-containerd-%s.scope\n",
		 CID_A);
	put_text(dir, "cgroup", cg);
	snprintf(cg, sizeof(cg), "%s/exe", dir);
	CHECK(symlink("/bin/sh", cg) == 0);
	snprintf(dir, sizeof(dir), "%s/proc", tmpdir);
	t = proc_table__new(dir);
	j = audit_judge__new(t, p);
	audit_judge__set_containers(j, m);
	audit_judge__span(j, s);
	a = span__find_attr(s, "container.image.name");
	CHECK(a && !strcmp(a->s, "ghcr.io/acme/agent:1.4"));
	a = span__find_attr(s, "k8s.pod.name");
	CHECK(a && !strcmp(a->s, "agent-7d9f"));
	a = span__find_attr(s, "tokentap.policy.unevaluated");
	CHECK(a && a->type == ATTR_STRING_ARRAY && a->arr.n == 1 &&
	      !strcmp(a->arr.v[0], "labelled: pod_labels_unknown"));
	a = span__find_attr(s, "tokentap.policy.verdict");
	CHECK(a && !strcmp(a->s, "allowed")); /* the default, and the record says why */
	span__free(s);
	audit_judge__free(j);
	container_meta__free(m);
	proc_table__free(t);
	policy__free(p);
}

/* ---- SNI: the record, and shadow AI by SNI / Host disagreement ------------------------------ */

static char sni_seen[256];
static int sni_calls;

static void on_sni(void *ctx, const struct cap_sni *s)
{
	(void)ctx;
	sni_calls++;
	snprintf(sni_seen, sizeof(sni_seen), "%s", s->name);
}

TEST(sni_record_decodes_and_rejects)
{
	struct cap_sink sink = {.on_sni = on_sni};
	struct tt_sni_event ev = {0};

	ev.hdr.kind = TT_EV_SNI;
	ev.hdr.pid = 7;
	ev.hdr.conn_id = 0x1234;
	ev.hdr.source = TT_SRC_OPENSSL;
	memcpy(ev.name, "API.OpenAI.com", 14);
	ev.name_len = 14;
	CHECK_EQ_INT(capture__dispatch_record(&ev, sizeof(ev), &sink), 0);
	CHECK_EQ_INT(sni_calls, 1);
	CHECK_EQ_STR(sni_seen, "api.openai.com");			 /* lower case */
	CHECK(capture__dispatch_record(&ev, sizeof(ev) - 1, &sink) < 0); /* short */
	ev.name_len = 0;
	CHECK(capture__dispatch_record(&ev, sizeof(ev), &sink) < 0);
	ev.name_len = TT_SNI_MAX;
	CHECK(capture__dispatch_record(&ev, sizeof(ev), &sink) < 0);
	memcpy(ev.name, "evil\"name", 9); /* no host name: never exported */
	ev.name_len = 9;
	CHECK(capture__dispatch_record(&ev, sizeof(ev), &sink) < 0);
	CHECK_EQ_INT(sni_calls, 1);
}

TEST(shadow_ai_sni_host_mismatch)
{
	struct span *s = fake_span(0, "api.openai.com", "gpt-4o", "host");
	char why[256];

	S_STR(s, "tls.client.server_name", "API.openai.com."); /* same name */
	CHECK(shadow__detect(s, why, sizeof(why)) == NULL);
	span__free(s);
	s = fake_span(0, "api.openai.com", "gpt-4o", "host");
	S_STR(s, "tls.client.server_name", "gateway.corp.example");
	CHECK_EQ_STR(shadow__detect(s, why, sizeof(why)), "sni_host_mismatch");
	CHECK(strstr(why, "gateway.corp.example") && strstr(why, "api.openai.com"));
	span__free(s);
	/* a provider's name in the handshake, a private address on the socket */
	static const char *const private[] = {"127.0.0.1",  "10.1.2.3", "172.20.0.9", "192.168.1.1",
					      "100.64.0.1", "fd00::1",	"::1"};
	static const char *const public[] = {"162.159.140.245", "172.32.0.1", "2606:4700::1"};

	for (size_t i = 0; i < sizeof(private) / sizeof(private[0]); i++) {
		s = fake_span(0, "api.openai.com", "gpt-4o", "host");
		S_STR(s, "tls.client.server_name", "api.openai.com");
		S_STR(s, "network.peer.address", private[i]);
		S_INT(s, "network.peer.port", 443);
		CHECK_EQ_STR(shadow__detect(s, why, sizeof(why)), "provider_name_private_address");
		span__free(s);
	}
	for (size_t i = 0; i < sizeof(public) / sizeof(public[0]); i++) {
		s = fake_span(0, "api.openai.com", "gpt-4o", "host");
		S_STR(s, "tls.client.server_name", "api.openai.com");
		S_STR(s, "network.peer.address", public[i]);
		S_INT(s, "network.peer.port", 443);
		CHECK(shadow__detect(s, why, sizeof(why)) == NULL);
		span__free(s);
	}
	/* no SNI (curl to an IP): the Host alone does not say which name was resolved */
	s = fake_span(0, "api.openai.com", "gpt-4o", "host");
	S_STR(s, "network.peer.address", "127.0.0.1");
	S_INT(s, "network.peer.port", 443);
	CHECK(shadow__detect(s, why, sizeof(why)) == NULL);
	span__free(s);
}

/* ---- process facts ------------------------------------------------------------------------------
 */

static void put_file(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "w");

	fwrite(data, 1, n, f);
	fclose(f);
}

TEST(process_facts_from_a_fake_proc)
{
	char root[300], dir[320], path[400];
	static const char cmd[] = "python3\0app.py\0--api-key\0sk-abcdefghijklmnopqrstu12345\0"
				  "--token=hunter2hunter2\0https://bob:pa55word@example.com/x\0";
	struct proc_table *t;
	const struct proc_facts *f;
	struct proc_table_stats st;

	snprintf(root, sizeof(root), "%s/proc", tmpdir);
	snprintf(dir, sizeof(dir), "%s/100", root);
	mkdir(root, 0755);
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/exe", dir);
	unlink(path);
	CHECK(!symlink("/bin/sh", path));
	snprintf(path, sizeof(path), "%s/status", dir);
	put_file(path, "Name:\tpython3\nPPid:\t1\nUid:\t0\t0\t0\t0\n", 34);
	snprintf(path, sizeof(path), "%s/cmdline", dir);
	put_file(path, cmd, sizeof(cmd) - 1);
	snprintf(path, sizeof(path), "%s/cgroup", dir);
	put_file(path,
		 "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_"
		 "7182_93a4_b5c6d7e8f901.slice/cri-containerd-"
		 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n",
		 196);
	t = proc_table__new(root);
	proc_table__learn(t, 100, 1);
	f = proc_table__get(t, 100);
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_EQ_STR(f->exe, "/bin/sh");
	CHECK_EQ_INT(f->uid, 0);
	CHECK_EQ_STR(f->user, "root");
	CHECK_EQ_INT(strlen(f->exe_sha256), 64);
	CHECK_EQ_STR(f->pod_uid, "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901");
	CHECK_EQ_STR(f->container_id,
		     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	CHECK_EQ_STR(f->cmdline, "python3 app.py --api-key [REDACTED] --token=[REDACTED] "
				 "https://bob:[REDACTED]@example.com/x");
	CHECK(f->from_exec);
	/* the same file again: hashed once */
	proc_table__learn(t, 100, 1);
	proc_table__stats(t, &st);
	CHECK_EQ_INT(st.hashed, 1);
	CHECK_EQ_INT(st.hash_cache_hits, 1);
	/* exited: kept for the grace period, then forgotten */
	proc_table__exit(t, 100, 1000);
	CHECK(proc_table__get(t, 100) != NULL);
	proc_table__tick(t, 1000 + 200ull * 1000000000ull);
	proc_table__stats(t, &st);
	CHECK_EQ_INT(st.evicted, 1);
	CHECK(proc_table__get(t, 999999) == NULL);
	proc_table__free(t);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(chain_verifies_and_detects_tampering);
	RUN(verify_subcommand_exit_codes);
	RUN(rotation_keeps_the_chain);
	RUN(restart_continues_and_repairs_a_torn_tail);
	RUN(record_fields);
	RUN(policy_matching);
	RUN(policy_rejects_bad_documents);
	RUN(policy_file_permissions);
	RUN(match_exe);
	RUN(shadow_ai_detection);
	RUN(judge_adds_attributes);
	RUN(judge_falls_back_to_the_exec_comm);
	RUN(process_facts_from_a_fake_proc);
	RUN(container_meta_from_fixture_bundles);
	RUN(container_info_parse_rejects_garbage);
	RUN(policy_by_image_and_pod_label);
	RUN(judge_reports_container_facts_and_unevaluated_rules);
	RUN(sni_record_decodes_and_rejects);
	RUN(shadow_ai_sni_host_mismatch);
	{
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd)) {
		}
	}
	TT_DONE();
}
