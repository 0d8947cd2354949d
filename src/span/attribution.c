// SPDX-License-Identifier: Apache-2.0
/*
 * Attribution attributes, cost, and the caller's trace context on a span.
 */
#include <string.h>

#include "attribution.h"
#include "pricing.h"

static void add_if_set(struct span *s, const char *key, const char *v)
{
	if (v[0])
		attrs__add_str(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, key, v);
}

void span__add_attribution(struct span *s, const struct llm_call *c)
{
	/* The span joins the caller's trace as a child of the span that sent the request. */
	if (c->has_trace_parent) {
		memcpy(s->trace_id, c->trace_id, sizeof(s->trace_id));
		memcpy(s->parent_span_id, c->parent_span_id, sizeof(s->parent_span_id));
		s->has_parent = true;
	}
	span__add_cost(s, c);
	add_if_set(s, "tokentap.api_key.fingerprint", c->api_key_fingerprint);
	add_if_set(s, "tokentap.openai.organization", c->openai_organization);
	add_if_set(s, "tokentap.openai.project", c->openai_project);
	add_if_set(s, "tokentap.user", c->user);
	add_if_set(s, "tokentap.tenant", c->tenant);
}
