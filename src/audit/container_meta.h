/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Container metadata for the policy and the audit record: image, container name, pod name,
 * namespace, uid and labels, read from the container runtime's own state on the node (tokentap
 * does not talk to the Kubernetes API server), looked up by the container id the cgroup parser
 * (span/resource.c) finds:
 *   containerd  <containerd_state>/<namespace>/<id>/config.json (OCI bundle; annotations
 *               io.kubernetes.cri.image-name, -container-name, -sandbox-name/-namespace/-uid).
 *               containerd records no pod labels: labels_known stays false.
 *   CRI-O       <crio_state>/<id>/userdata/config.json (annotations io.kubernetes.cri-o.ImageName,
 *               ContainerName, Labels; the pod labels are the Labels of the sandbox named by
 *               io.kubernetes.cri-o.SandboxID, read from its own config.json).
 *   Docker      <docker_state>/<id>/config.v2.json (Config.Image, Name, Config.Labels: the
 *               container's labels stand in for pod labels).
 * Lookups are cached (a bounded table; a miss is retried after a few seconds, since a runtime
 * writes its state before the container's first process runs but a root may be mounted late).
 */
#ifndef TOKENTAP_AUDIT_CONTAINER_META_H
#define TOKENTAP_AUDIT_CONTAINER_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTAINER_MAX_LABELS 64
#define CONTAINER_STR 256

struct container_meta_opts {
	const char *containerd_state; /* NULL: /run/containerd/io.containerd.runtime.v2.task */
	const char *crio_state;	      /* NULL: /run/containers/storage/overlay-containers */
	const char *docker_state;     /* NULL: /var/lib/docker/containers */
};

struct container_info {
	char id[65];
	const char *runtime; /* "containerd", "cri-o", "docker" (static) */
	char image[CONTAINER_STR];
	char name[CONTAINER_STR];
	char pod_name[CONTAINER_STR];
	char pod_namespace[CONTAINER_STR];
	char pod_uid[40];
	bool labels_known;		    /* the runtime records labels (not containerd) */
	char *labels[CONTAINER_MAX_LABELS]; /* "key=value", malloc'd */
	size_t n_labels;
};

struct container_meta_stats {
	uint64_t lookups, hits, found, not_found, parse_errors, evicted;
};

struct container_meta;

struct container_meta *container_meta__new(const struct container_meta_opts *o);
/* Metadata of a container (64 lowercase hex digits), or NULL when no runtime root has it.
 * Valid until the next call. */
const struct container_info *container_meta__lookup(struct container_meta *m, const char *id,
						    uint64_t now_ns);
void container_meta__stats(const struct container_meta *m, struct container_meta_stats *st);
void container_meta__free(struct container_meta *m);

/* Parses one runtime's state file into ci (id left as it is). runtime: "containerd",
 * "cri-o" or "docker". Returns 0 or -EINVAL. Exposed for tests and the fuzzer. */
int container_info__parse(const char *runtime, const char *json, size_t len,
			  struct container_info *ci);
/* true when labels hold key=value exactly, or key=<glob> for a selector "key=glob". */
bool container_info__has_label(const struct container_info *ci, const char *selector);
void container_info__clear(struct container_info *ci);

#endif
