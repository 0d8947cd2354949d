// SPDX-License-Identifier: Apache-2.0
/*
 * Span and resource attributes: typed key/value pairs with owned string copies, and the
 * reference counting that lets the pipeline and exporter threads share one resource.
 */
#include <stdlib.h>
#include <string.h>

#include "span/span.h"

static void attr__clear(struct attr *a)
{
	size_t i;

	if (a->type == ATTR_STRING) {
		free(a->s);
	} else if (a->type == ATTR_STRING_ARRAY) {
		for (i = 0; i < a->arr.n; i++)
			free(a->arr.v[i]);
	}
	memset(a, 0, sizeof(*a));
}

/*
 * Returns the slot for `key`: the existing one (cleared: a later value replaces an earlier one,
 * as in OpenTelemetry) or a new one, NULL when the array is full.
 */
static struct attr *attrs__slot(struct attr *a, size_t *n, size_t cap, const char *key)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		if (strcmp(a[i].key, key) == 0) {
			attr__clear(&a[i]);
			a[i].key = key;
			return &a[i];
		}
	}
	if (*n >= cap)
		return NULL;
	memset(&a[*n], 0, sizeof(a[*n]));
	a[*n].key = key;
	return &a[(*n)++];
}

/* A slot whose copy failed (out of memory) must not stay behind half made. */
static void attrs__remove(struct attr *a, size_t *n, struct attr *slot)
{
	size_t idx = (size_t)(slot - a);

	attr__clear(slot);
	memmove(&a[idx], &a[idx + 1], (*n - idx - 1) * sizeof(*a));
	(*n)--;
}

void attrs__add_str(struct attr *a, size_t *n, size_t cap, const char *key, const char *v)
{
	struct attr *slot = attrs__slot(a, n, cap, key);

	if (!slot)
		return;
	slot->type = ATTR_STRING;
	slot->s = strdup(v ? v : "");
	if (!slot->s)
		attrs__remove(a, n, slot);
}

void attrs__add_int(struct attr *a, size_t *n, size_t cap, const char *key, int64_t v)
{
	struct attr *slot = attrs__slot(a, n, cap, key);

	if (!slot)
		return;
	slot->type = ATTR_INT;
	slot->i = v;
}

void attrs__add_double(struct attr *a, size_t *n, size_t cap, const char *key, double v)
{
	struct attr *slot = attrs__slot(a, n, cap, key);

	if (!slot)
		return;
	slot->type = ATTR_DOUBLE;
	slot->d = v;
}

void attrs__add_bool(struct attr *a, size_t *n, size_t cap, const char *key, bool v)
{
	struct attr *slot = attrs__slot(a, n, cap, key);

	if (!slot)
		return;
	slot->type = ATTR_BOOL;
	slot->b = v;
}

void attrs__add_str_array(struct attr *a, size_t *n, size_t cap, const char *key,
			  const char *const *v, size_t nv)
{
	struct attr *slot = attrs__slot(a, n, cap, key);
	size_t i;

	if (!slot)
		return;
	slot->type = ATTR_STRING_ARRAY;
	if (nv > SPAN_MAX_ARRAY)
		nv = SPAN_MAX_ARRAY;
	for (i = 0; i < nv; i++) {
		slot->arr.v[i] = strdup(v[i] ? v[i] : "");
		if (!slot->arr.v[i]) {
			attrs__remove(a, n, slot);
			return;
		}
		slot->arr.n = i + 1;
	}
}

void attrs__free(struct attr *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		attr__clear(&a[i]);
}

const struct attr *span__find_attr(const struct span *s, const char *key)
{
	size_t i;

	for (i = 0; i < s->n_attrs; i++) {
		if (strcmp(s->attrs[i].key, key) == 0)
			return &s->attrs[i];
	}
	return NULL;
}

void resource__get(struct resource *r)
{
	if (r)
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
}

void resource__put(struct resource *r)
{
	if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	attrs__free(r->attrs, r->n_attrs);
	free(r);
}

void span__free(struct span *s)
{
	if (!s)
		return;
	attrs__free(s->attrs, s->n_attrs);
	resource__put(s->resource);
	free(s->chunk_gaps);
	free(s);
}
