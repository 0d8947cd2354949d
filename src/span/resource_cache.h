/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to span/: process resources and their per-pid cache. */
#ifndef TOKENTAP_RESOURCE_CACHE_H
#define TOKENTAP_RESOURCE_CACHE_H

#include "span.h"

#define RES_MAX_ENV_ATTRS 16

struct resource_ctx {
	const char *proc_root;
	const char *service_name; /* NULL: the executable's name */
	char host_name[256];
	/* OTEL_RESOURCE_ATTRIBUTES, parsed once; keys live as long as the context. */
	char *env_keys[RES_MAX_ENV_ATTRS];
	char *env_values[RES_MAX_ENV_ATTRS];
	size_t n_env;
	struct cgroup_cache *cgroups; /* NULL: cgroups parsed per process, uncached */
};

struct res_entry;

void resource_ctx__parse_env(struct resource_ctx *ctx, const char *spec);
void resource_ctx__free(struct resource_ctx *ctx);
struct exe_hint;
struct resource *resource__from_process(const struct resource_ctx *ctx, uint32_t pid,
					const char *comm, const struct exe_hint *hint);
struct res_entry **resource_cache__new(void);
struct resource *resource_cache__get(struct res_entry **cache, uint32_t pid);
/* Takes the caller's reference to r. */
void resource_cache__put(struct res_entry **cache, uint32_t pid, struct resource *r);
void resource_cache__drop(struct res_entry **cache, uint32_t pid);
void resource_cache__free(struct res_entry **cache);

#endif
