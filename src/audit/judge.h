/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Judges each finished span before it is exported: shadow AI detection (LLM traffic to a host
 * that is not a known provider; a known provider reached through a proxy or tunnel) and the
 * destination policy. The outcome is added to the span as attributes, so every exporter (the
 * audit log, JSON lines, OTLP) carries the same verdict:
 *   tokentap.shadow_ai (bool), tokentap.shadow_ai.reason (string),
 *   tokentap.policy.verdict ("allowed" | "denied"), tokentap.policy.violations (string array),
 *   tokentap.policy.rule (string).
 * A denied call is also logged on stderr (one line, rate limited, no secrets).
 */
#ifndef TOKENTAP_AUDIT_JUDGE_H
#define TOKENTAP_AUDIT_JUDGE_H

#include "audit/container_meta.h"
#include "audit/policy.h"
#include "audit/procinfo.h"
#include "span/span.h"

struct audit_judge;

/* procs and policy stay owned by the caller; policy may be NULL (only shadow AI is judged). */
struct audit_judge *audit_judge__new(struct proc_table *procs, struct policy *policy);
void audit_judge__span(struct audit_judge *j, struct span *s);
/* Container metadata for image / pod-label rules and the record (owned by the caller). */
void audit_judge__set_containers(struct audit_judge *j, struct container_meta *m);
void audit_judge__free(struct audit_judge *j);

/* The shadow-AI reason for a span, or NULL when it is not shadow AI. Writes a readable
 * explanation into why. */
const char *shadow__detect(const struct span *s, char *why, size_t cap);

#endif
