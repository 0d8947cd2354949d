// SPDX-License-Identifier: Apache-2.0
/*
 * Process facts -> OpenTelemetry resources, one per traced process, cached by pid.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder.h"
#include "resource_cache.h"

#define RES_BUCKETS 1024

struct res_entry {
	uint32_t pid;
	struct resource *res;
	struct res_entry *next;
};

static bool is_hex64(const char *s)
{
	for (int i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

/* Finds a 64-hex-digit container id after one of the runtime's markers: "docker-",
 * "cri-containerd-", "crio-", "libpod-", "/docker/", ... or any path component that is
 * exactly 64 lowercase hex digits (cgroup v1 layouts). */
bool cgroup__container_id(const char *line, char *out, size_t out_len)
{
	size_t n = strlen(line);

	if (out_len < 65)
		return false;
	for (size_t i = 0; i + 64 <= n; i++) {
		bool starts = i == 0 || line[i - 1] == '/' || line[i - 1] == '-' || line[i - 1] == ':';
		char end = line[i + 64];

		if (!starts || !is_hex64(line + i))
			continue;
		if (end != '\0' && end != '\n' && end != '.' && end != '/')
			continue;
		memcpy(out, line + i, 64);
		out[64] = '\0';
		return true;
	}
	return false;
}

static void read_container_id(const char *proc_root, uint32_t pid, char *out, size_t out_len)
{
	char path[64], line[1024];
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/%u/cgroup", proc_root, pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (cgroup__container_id(line, out, out_len))
			break;
	fclose(f);
}

/* OTEL_RESOURCE_ATTRIBUTES: "k1=v1,k2=v2", values percent-decoded as the spec says. */
static void percent_decode(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
			char hex[3] = { s[1], s[2], 0 };

			*w++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

void resource_ctx__parse_env(struct resource_ctx *ctx, const char *spec)
{
	char *copy, *tok, *save = NULL;

	if (!spec || !*spec)
		return;
	copy = strdup(spec);
	for (tok = strtok_r(copy, ",", &save); tok && ctx->n_env < RES_MAX_ENV_ATTRS;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq || eq == tok)
			continue;
		*eq = '\0';
		ctx->env_keys[ctx->n_env] = strdup(tok);
		ctx->env_values[ctx->n_env] = strdup(eq + 1);
		percent_decode(ctx->env_values[ctx->n_env]);
		ctx->n_env++;
	}
	free(copy);
}

void resource_ctx__free(struct resource_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_env; i++) {
		free(ctx->env_keys[i]);
		free(ctx->env_values[i]);
	}
	ctx->n_env = 0;
}

struct resource *resource__from_process(const struct resource_ctx *ctx, uint32_t pid,
					const char *comm)
{
	struct resource *r = calloc(1, sizeof(*r));
	char path[64], exe[PATH_MAX], cid[80];
	const char *name;
	ssize_t n;

	if (!r)
		return NULL;
	r->refs = 1;
	r->pid = pid;
	snprintf(path, sizeof(path), "%s/%u/exe", ctx->proc_root, pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	/* A deleted executable (replaced on disk) reads "path (deleted)": keep the path. */
	if (n > 10 && !strcmp(exe + n - 10, " (deleted)"))
		exe[n - 10] = '\0';
	name = exe[0] ? (strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe) : (comm ? comm : "unknown");
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "service.name",
		       ctx->service_name ? ctx->service_name : name);
	attrs__add_int(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.pid", pid);
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.executable.name", name);
	if (exe[0])
		attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.executable.path",
			       exe);
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "host.name", ctx->host_name);
	read_container_id(ctx->proc_root, pid, cid, sizeof(cid));
	if (cid[0])
		attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "container.id", cid);
	for (size_t i = 0; i < ctx->n_env; i++)
		attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, ctx->env_keys[i],
			       ctx->env_values[i]);
	return r;
}

static size_t res_bucket(uint32_t pid)
{
	return (pid * 2654435761u) % RES_BUCKETS;
}

struct res_entry **resource_cache__new(void)
{
	return calloc(RES_BUCKETS, sizeof(struct res_entry *));
}

struct resource *resource_cache__get(struct res_entry **cache, uint32_t pid)
{
	struct res_entry *e = cache[res_bucket(pid)];

	while (e && e->pid != pid)
		e = e->next;
	return e ? e->res : NULL;
}

void resource_cache__put(struct res_entry **cache, uint32_t pid, struct resource *r)
{
	struct res_entry *e;

	resource_cache__drop(cache, pid);
	e = calloc(1, sizeof(*e));
	if (!e) {
		resource__put(r);
		return;
	}
	e->pid = pid;
	e->res = r;
	e->next = cache[res_bucket(pid)];
	cache[res_bucket(pid)] = e;
}

void resource_cache__drop(struct res_entry **cache, uint32_t pid)
{
	struct res_entry **pp = &cache[res_bucket(pid)], *e;

	while (*pp && (*pp)->pid != pid)
		pp = &(*pp)->next;
	e = *pp;
	if (!e)
		return;
	*pp = e->next;
	resource__put(e->res);
	free(e);
}

void resource_cache__free(struct res_entry **cache)
{
	for (size_t i = 0; cache && i < RES_BUCKETS; i++) {
		while (cache[i]) {
			struct res_entry *e = cache[i];

			cache[i] = e->next;
			resource__put(e->res);
			free(e);
		}
	}
	free(cache);
}
