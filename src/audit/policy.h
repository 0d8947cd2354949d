/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Destination policy (--policy FILE): which providers, hosts, models and API keys each workload
 * may use. Rules are tried in order; the first whose "match" selects the calling process
 * decides. A call is judged against that rule's "allow" lists; a call no rule matches gets the
 * policy's "default". See README "Audit" for the file format.
 *
 * Lives in src/audit/ with the other security facts (process identity, the hash chain): it
 * judges a finished span with the process behind it, which is neither span building nor an
 * exporter; the audit exporter and the log line are two consumers of its verdict.
 */
#ifndef TOKENTAP_AUDIT_POLICY_H
#define TOKENTAP_AUDIT_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/container_meta.h"

#define POLICY_MAX_VIOLATIONS 8

/* What the policy looks at. Any string may be NULL or "" (unknown). */
struct policy_call {
	const char *exe; /* executable path */
	const char *container_id;
	const char *pod_uid;
	const char *user;
	int64_t uid;		     /* -1 unknown */
	const char *provider;	     /* gen_ai.provider.name */
	const char *host;	     /* server.address */
	const char *model;	     /* gen_ai.request.model (else response model) */
	const char *key_fingerprint; /* tokentap.api_key.fingerprint */
	bool shadow_ai;
	/* Container metadata (audit/container_meta.h); NULL when the process is in no container
	 * or its runtime's state was not found. */
	const struct container_info *container;
};

struct policy_verdict {
	bool denied;
	const char *rule; /* name of the rule that matched, NULL for the default */
	const char *violations[POLICY_MAX_VIOLATIONS]; /* static strings */
	int n_violations;
	/* Rules skipped because the call's facts cannot decide them (an image rule for a
	 * container whose metadata is unknown, a pod_labels rule under containerd, which records
	 * no pod labels): reported, never silently passed. */
	struct {
		const char *rule;   /* the rule's name */
		const char *reason; /* static: "image_unknown", "pod_labels_unknown" */
	} unevaluated[POLICY_MAX_VIOLATIONS];
	int n_unevaluated;
};

struct policy_stats {
	uint64_t evaluated;
	uint64_t denied;     /* calls with at least one violation */
	uint64_t violations; /* violations of every kind */
};

struct policy;

/* Parses a policy document. Returns NULL after writing one clear message into err. */
struct policy *policy__parse(const char *json, size_t len, char *err, size_t errcap);
/* Reads FILE (refused when writable by group or others) and parses it; prints on error. */
struct policy *policy__load(const char *path);
void policy__eval(struct policy *p, const struct policy_call *c, struct policy_verdict *v);
void policy__stats(const struct policy *p, struct policy_stats *st);
/* Counters of the policy in use (the one loaded last), for metrics exporters that do not hold
 * the policy: zero when no policy is loaded. */
void policy__global_stats(struct policy_stats *st);
void policy__free(struct policy *p);

/* Glob match for executables: a pattern with a '/' matches the full path, one without matches
 * the file name. */
bool policy__match_exe(const char *pattern, const char *exe);

#endif
