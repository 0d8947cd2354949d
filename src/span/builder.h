/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Builds spans from LLM calls: ids, GenAI attributes, wall-clock times, and the resource of the
 * calling process (cached per pid, taken at exec time when possible, because short-lived
 * clients are often gone from /proc by the time their call is reported).
 */
#ifndef TOKENTAP_SPAN_BUILDER_H
#define TOKENTAP_SPAN_BUILDER_H

#include "span.h"
#include "../llm/llm.h"

struct span_builder_opts {
	const char *service_name;        /* OTEL_SERVICE_NAME: overrides the executable's name */
	const char *resource_attributes; /* OTEL_RESOURCE_ATTRIBUTES: "k1=v1,k2=v2" */
	const char *proc_root;           /* "/proc" unless testing */
};

struct span_builder;

/* What the kernel said of an exec'd executable: the path given to execve and the identity
 * (st_dev, st_ino) of the file it mapped. Used when /proc no longer has the process. */
struct exe_hint {
	const char *filename;
	uint64_t dev, ino;
};

struct span_builder *span_builder__new(const struct span_builder_opts *opts);
/* A process exec'd (or was first seen): read its facts now, while it still exists. */
void span_builder__learn_process(struct span_builder *b, uint32_t pid, const char *comm,
				 const struct exe_hint *hint);
/* The process exited: its resource is released once its last span is gone. */
void span_builder__forget_process(struct span_builder *b, uint32_t pid);
/* Returns a new span (free with span__free), or NULL on allocation failure. */
struct span *span_builder__build(struct span_builder *b, const struct llm_call *call);
void span_builder__free(struct span_builder *b);

/* Parses a cgroup path for a container id (Docker, containerd, CRI-O, cgroup v1 and v2).
 * Writes the 64-hex id into out (>= 65 bytes) and returns true when one is found. */
bool cgroup__container_id(const char *cgroup_line, char *out, size_t out_len);

/* What a process's cgroup says about its container (the one cgroup parser of the tree, in
 * span/resource.c; cgroup__pod_uid of audit/procinfo.h lives there too). */
struct cgroup_ids {
	char container_id[65]; /* 64 hex; "" when not in a container */
	char pod_uid[37];      /* Kubernetes pod uid with dashes; "" outside kubepods */
};
/* A whole /proc/<pid>/cgroup (hybrid hosts list v1 controllers and the v2 "0::" line): the v2
 * line wins when it names a container, else the first line that does. Returns the winning
 * line's index, -1 when none names a container (out all ""). */
int cgroup__parse(const char *text, struct cgroup_ids *out);
/* proc_root/<pid>/cgroup parsed: 1 found, 0 none, -errno unreadable. */
int cgroup__read(const char *proc_root, uint32_t pid, struct cgroup_ids *out);
/* The same, with one answer kept per cgroup id (the inode of the winning line's cgroup
 * directory under fs_root, "/sys/fs/cgroup" when NULL). c NULL: uncached. */
struct cgroup_cache;
struct cgroup_cache *cgroup_cache__new(const char *fs_root);
int cgroup_cache__read(struct cgroup_cache *c, const char *proc_root, uint32_t pid,
		       struct cgroup_ids *out);
void cgroup_cache__counts(const struct cgroup_cache *c, uint64_t *hits, uint64_t *misses);
void cgroup_cache__free(struct cgroup_cache *c);

#endif
