/* SPDX-License-Identifier: Apache-2.0 */
/*
 * span/: an LLM call + facts about the calling process -> an OpenTelemetry span with GenAI
 * semantic-convention attributes (semantic-conventions v1.41.0). Exporters only see this.
 * Times become wall clock here, once.
 */
#ifndef TOKENTAP_SPAN_H
#define TOKENTAP_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPAN_MAX_ATTRS 64 /* GenAI + transport + cost/tenant + audit verdict and content */
#define SPAN_MAX_RES_ATTRS 24
#define SPAN_MAX_ARRAY 8

enum attr_type {
	ATTR_STRING = 1,
	ATTR_INT = 2,
	ATTR_DOUBLE = 3,
	ATTR_BOOL = 4,
	ATTR_STRING_ARRAY = 5,
};

struct attr {
	const char *key; /* static string */
	enum attr_type type;
	union {
		char *s;  /* owned by the span */
		int64_t i;
		double d;
		bool b;
		struct {
			char *v[SPAN_MAX_ARRAY]; /* owned by the span */
			size_t n;
		} arr;
	};
};

/* Resource: one per traced process, shared by its spans (reference counted). */
struct resource {
	int refs;
	uint32_t pid;
	struct attr attrs[SPAN_MAX_RES_ATTRS];
	size_t n_attrs;
};

enum span_kind { SPAN_KIND_CLIENT = 3 }; /* OTLP Span.SpanKind value */
enum span_status { SPAN_STATUS_UNSET = 0, SPAN_STATUS_OK = 1, SPAN_STATUS_ERROR = 2 };

/*
 * Streams: the gaps between consecutive output chunks, in seconds, for the
 * gen_ai.client.operation.time_per_output_chunk metric (not an attribute). Gaps past those kept
 * are folded: counted and summed.
 */
struct span_chunk_gaps {
	uint32_t n, folded;
	double folded_s;
	float v[];
};

struct span {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t parent_span_id[8];
	bool has_parent;
	char name[300];
	enum span_kind kind;
	uint64_t start_unix_ns, end_unix_ns;
	enum span_status status;
	char status_message[128];
	struct attr attrs[SPAN_MAX_ATTRS];
	size_t n_attrs;
	struct resource *resource;
	struct span_chunk_gaps *chunk_gaps; /* owned; NULL when the call had no two chunks */
};

/* Attribute builders (copy strings). Silently stop at SPAN_MAX_ATTRS: the caller sized it. */
void attrs__add_str(struct attr *a, size_t *n, size_t cap, const char *key, const char *v);
void attrs__add_int(struct attr *a, size_t *n, size_t cap, const char *key, int64_t v);
void attrs__add_double(struct attr *a, size_t *n, size_t cap, const char *key, double v);
void attrs__add_bool(struct attr *a, size_t *n, size_t cap, const char *key, bool v);
/* Copies up to SPAN_MAX_ARRAY strings of v[0..nv). */
void attrs__add_str_array(struct attr *a, size_t *n, size_t cap, const char *key,
			  const char *const *v, size_t nv);
void attrs__free(struct attr *a, size_t n);
const struct attr *span__find_attr(const struct span *s, const char *key);

/* refs starts at 1 on a malloc'd resource; the last resource__put frees it and its attributes.
 * Atomic: exporter threads hold references too. Attributes are read-only once shared. */
void resource__get(struct resource *r);
void resource__put(struct resource *r);

/* Frees a heap span (calloc'd, as span_builder__build returns), its attribute strings and its
 * resource reference. NULL is fine. */
void span__free(struct span *s);

#endif
