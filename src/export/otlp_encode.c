// SPDX-License-Identifier: Apache-2.0
/*
 * Spans -> ExportTraceServiceRequest bytes with the protobuf-c code generated from
 * src/export/proto/. The message tree is built in a throwaway arena and points into the spans
 * wherever a string is already valid UTF-8, so a batch costs a few allocations.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "trace_service.pb-c.h"

#include "export/otlp_encode.h"
#include "export/utf8.h"

typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Common__V1__ArrayValue ArrayValue;
typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans ResourceSpans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans ScopeSpans;
typedef Opentelemetry__Proto__Trace__V1__Span Span;
typedef Opentelemetry__Proto__Trace__V1__Status Status;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest Request;

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	alignas(max_align_t) unsigned char data[];
};

struct arena {
	struct arena_block *head;
};

#define ARENA_BLOCK 16384

/* Zeroed, aligned memory freed all at once by arena__free; NULL when out of memory. */
static void *arena__alloc(struct arena *a, size_t size)
{
	struct arena_block *b = a->head;
	size_t need = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
	void *p;

	if (!b || b->cap - b->used < need) {
		size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;

		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->next = a->head;
		b->used = 0;
		b->cap = cap;
		a->head = b;
	}
	p = b->data + b->used;
	b->used += need;
	return memset(p, 0, size);
}

static void arena__free(struct arena *a)
{
	struct arena_block *b, *next;

	for (b = a->head; b; b = next) {
		next = b->next;
		free(b);
	}
	a->head = NULL;
}

/* The span's own string when it is valid UTF-8, else a repaired copy in the arena. */
static char *arena__utf8(struct arena *a, const char *s)
{
	char *fixed = utf8__repair(s ? s : ""), *copy;

	if (!fixed)
		return (char *)(s ? s : "");
	copy = arena__alloc(a, strlen(fixed) + 1);
	if (copy)
		strcpy(copy, fixed);
	free(fixed);
	return copy;
}

static int encode__string_array(struct arena *a, AnyValue *v, const struct attr *at)
{
	ArrayValue *arr = arena__alloc(a, sizeof(*arr));
	AnyValue *items = arena__alloc(a, at->arr.n * sizeof(*items) + 1);
	AnyValue **ptrs = arena__alloc(a, at->arr.n * sizeof(*ptrs) + 1);
	size_t i;

	if (!arr || !items || !ptrs)
		return -1;
	opentelemetry__proto__common__v1__array_value__init(arr);
	for (i = 0; i < at->arr.n; i++) {
		opentelemetry__proto__common__v1__any_value__init(&items[i]);
		items[i].value_case =
			OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
		items[i].string_value = arena__utf8(a, at->arr.v[i]);
		if (!items[i].string_value)
			return -1;
		ptrs[i] = &items[i];
	}
	arr->n_values = at->arr.n;
	arr->values = ptrs;
	v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
	v->array_value = arr;
	return 0;
}

static int encode__value(struct arena *a, AnyValue *v, const struct attr *at)
{
	switch (at->type) {
	case ATTR_STRING:
		v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
		v->string_value = arena__utf8(a, at->s);
		return v->string_value ? 0 : -1;
	case ATTR_INT:
		v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
		v->int_value = at->i;
		return 0;
	case ATTR_DOUBLE:
		v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
		v->double_value = at->d;
		return 0;
	case ATTR_BOOL:
		v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
		v->bool_value = at->b;
		return 0;
	case ATTR_STRING_ARRAY:
		return encode__string_array(a, v, at);
	}
	return 0; /* unknown type: sent as an empty value rather than failing the batch */
}

static KeyValue **encode__attrs(struct arena *a, const struct attr *at, size_t n)
{
	KeyValue *kv = arena__alloc(a, n * sizeof(*kv) + 1);
	AnyValue *vals = arena__alloc(a, n * sizeof(*vals) + 1);
	KeyValue **ptrs = arena__alloc(a, n * sizeof(*ptrs) + 1);
	size_t i;

	if (!kv || !vals || !ptrs)
		return NULL;
	for (i = 0; i < n; i++) {
		opentelemetry__proto__common__v1__key_value__init(&kv[i]);
		opentelemetry__proto__common__v1__any_value__init(&vals[i]);
		kv[i].key = arena__utf8(a, at[i].key);
		if (!kv[i].key || encode__value(a, &vals[i], &at[i]) < 0)
			return NULL;
		kv[i].value = &vals[i];
		ptrs[i] = &kv[i];
	}
	return ptrs;
}

static Span *encode__span(struct arena *a, const struct span *s)
{
	Span *sp = arena__alloc(a, sizeof(*sp));
	Status *st = arena__alloc(a, sizeof(*st));

	if (!sp || !st)
		return NULL;
	opentelemetry__proto__trace__v1__span__init(sp);
	opentelemetry__proto__trace__v1__status__init(st);
	sp->trace_id.data = (uint8_t *)s->trace_id;
	sp->trace_id.len = sizeof(s->trace_id);
	sp->span_id.data = (uint8_t *)s->span_id;
	sp->span_id.len = sizeof(s->span_id);
	if (s->has_parent) {
		sp->parent_span_id.data = (uint8_t *)s->parent_span_id;
		sp->parent_span_id.len = sizeof(s->parent_span_id);
	}
	sp->name = arena__utf8(a, s->name);
	sp->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)s->kind;
	sp->start_time_unix_nano = s->start_unix_ns;
	sp->end_time_unix_nano = s->end_unix_ns;
	sp->n_attributes = s->n_attrs;
	sp->attributes = encode__attrs(a, s->attrs, s->n_attrs);
	st->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)s->status;
	st->message = arena__utf8(a, s->status_message);
	sp->status = st;
	if (!sp->name || !sp->attributes || !st->message)
		return NULL;
	return sp;
}

/* A ResourceSpans for `r` with room for n spans in its single ScopeSpans. */
static ResourceSpans *encode__resource_spans(struct arena *a, const struct resource *r, size_t n)
{
	ResourceSpans *rs = arena__alloc(a, sizeof(*rs));
	Resource *res = arena__alloc(a, sizeof(*res));
	ScopeSpans *ss = arena__alloc(a, sizeof(*ss));
	ScopeSpans **ssp = arena__alloc(a, sizeof(*ssp));
	Scope *scope = arena__alloc(a, sizeof(*scope));

	if (!rs || !res || !ss || !ssp || !scope)
		return NULL;
	opentelemetry__proto__trace__v1__resource_spans__init(rs);
	opentelemetry__proto__resource__v1__resource__init(res);
	opentelemetry__proto__trace__v1__scope_spans__init(ss);
	opentelemetry__proto__common__v1__instrumentation_scope__init(scope);
	scope->name = OTLP_SCOPE_NAME;
	scope->version = TOKENTAP_VERSION;
	ss->scope = scope;
	ss->spans = arena__alloc(a, n * sizeof(*ss->spans) + 1);
	if (r) {
		res->n_attributes = r->n_attrs;
		res->attributes = encode__attrs(a, r->attrs, r->n_attrs);
		if (!res->attributes)
			return NULL;
	}
	if (!ss->spans)
		return NULL;
	*ssp = ss;
	rs->resource = res;
	rs->n_scope_spans = 1;
	rs->scope_spans = ssp;
	return rs;
}

/* Fills req with one ResourceSpans per distinct resource; group[i] is span i's ResourceSpans. */
static int encode__group(struct arena *a, Request *req, const struct span *const *spans, size_t n)
{
	const struct resource **res = arena__alloc(a, n * sizeof(*res) + 1);
	size_t *group = arena__alloc(a, n * sizeof(*group) + 1);
	size_t *count = arena__alloc(a, n * sizeof(*count) + 1);
	size_t i, j, n_res = 0;

	req->resource_spans = arena__alloc(a, n * sizeof(*req->resource_spans) + 1);
	if (!res || !group || !count || !req->resource_spans)
		return -1;
	for (i = 0; i < n; i++) {
		for (j = 0; j < n_res && res[j] != spans[i]->resource; j++)
			;
		if (j == n_res)
			res[n_res++] = spans[i]->resource;
		group[i] = j;
		count[j]++;
	}
	for (j = 0; j < n_res; j++) {
		req->resource_spans[j] = encode__resource_spans(a, res[j], count[j]);
		if (!req->resource_spans[j])
			return -1;
	}
	req->n_resource_spans = n_res;
	for (i = 0; i < n; i++) {
		ScopeSpans *ss = req->resource_spans[group[i]]->scope_spans[0];

		ss->spans[ss->n_spans] = encode__span(a, spans[i]);
		if (!ss->spans[ss->n_spans++])
			return -1;
	}
	return 0;
}

uint8_t *otlp__encode(const struct span *const *spans, size_t n, size_t *len)
{
	Request req =
		OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
	struct arena a = { 0 };
	uint8_t *buf = NULL;

	if (encode__group(&a, &req, spans, n) == 0) {
		*len = opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
			&req);
		buf = malloc(*len ? *len : 1);
		if (buf)
			opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(
				&req, buf);
	}
	arena__free(&a);
	return buf;
}
