// SPDX-License-Identifier: Apache-2.0
// FUZZ_SOURCES: src/export/jsonl.c src/export/text.c src/export/utf8.c src/export/otlp_encode.c src/span/attr.c build/gen/common.pb-c.c build/gen/resource.pb-c.c build/gen/trace.pb-c.c build/gen/trace_service.pb-c.c
// FUZZ_LIBS: -ljson-c -lprotobuf-c
/*
 * Exporters on hostile strings: the input, split at NUL bytes, becomes a span's name, status
 * message and string attributes (captured bytes reach exactly these places). The JSON line must
 * parse with json-c and give back each string as utf8__repair makes it; the OTLP bytes must
 * unpack with the generated code and hold the same repaired strings; the text line must be valid
 * UTF-8 without a control byte before its newline. A mismatch aborts.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "trace_service.pb-c.h"

#include "export/export.h"
#include "export/otlp_encode.h"
#include "export/utf8.h"

#define MAX_STR 12

static const char *const KEYS[MAX_STR] = { "k0", "k1", "k2", "k3", "k4",  "k5",
					   "k6", "k7", "k8", "k9", "k10", "k11" };

static char *repaired(const char *s)
{
	char *r = utf8__repair(s);

	return r ? r : strdup(s);
}

static void expect_str(const char *got, const char *raw)
{
	char *want = repaired(raw);

	if (!got || strcmp(got, want) != 0)
		abort();
	free(want);
}

static void check_json(const struct span *s, char **strs, size_t n)
{
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&buf, &len);
	json_object *o, *attrs, *v;

	jsonl__write_span(f, s);
	fclose(f);
	o = json_tokener_parse(buf);
	if (!o || !json_object_object_get_ex(o, "attributes", &attrs))
		abort();
	json_object_object_get_ex(o, "name", &v);
	expect_str(json_object_get_string(v), s->name);
	for (i = 2; i < n; i++) {
		if (!json_object_object_get_ex(attrs, KEYS[i], &v))
			abort();
		expect_str(json_object_get_string(v), strs[i]);
	}
	json_object_put(o);
	free(buf);
}

static void check_otlp(const struct span *s, char **strs, size_t n)
{
	const struct span *one[1] = { s };
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
	Opentelemetry__Proto__Trace__V1__Span *sp;
	size_t len = 0, i;
	uint8_t *buf = otlp__encode(one, 1, &len);

	if (!buf)
		abort();
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
		NULL, len, buf);
	if (!req || req->n_resource_spans != 1)
		abort();
	sp = req->resource_spans[0]->scope_spans[0]->spans[0];
	expect_str(sp->name, s->name);
	expect_str(sp->status->message, s->status_message);
	for (i = 2; i < n; i++)
		expect_str(sp->attributes[i - 2]->value->string_value, strs[i]);
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
		req, NULL);
	free(buf);
}

static void check_text(const struct span *s)
{
	char *buf = NULL;
	size_t len = 0, i, k;
	FILE *f = open_memstream(&buf, &len);
	struct exporter *e = text_exporter__new(f);

	e->ops->export(e, s);
	e->ops->destroy(e);
	fclose(f);
	if (!len || buf[len - 1] != '\n')
		abort();
	for (i = 0; i + 1 < len; i += k) {
		k = utf8__seq_len((const unsigned char *)buf + i, len - 1 - i);
		if (!k || (unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			abort();
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *strs[MAX_STR], *p;
	struct span *s = calloc(1, sizeof(*s));
	size_t n = 0, i;

	memcpy(copy, data, size);
	copy[size] = '\0';
	for (p = copy; n < MAX_STR && p <= copy + size; p += strlen(p) + 1)
		strs[n++] = p;
	snprintf(s->name, sizeof(s->name), "%s", strs[0]);
	if (n > 1)
		snprintf(s->status_message, sizeof(s->status_message), "%s", strs[1]);
	/* snprintf may cut a sequence in two: the exporters must repair that too. */
	for (i = 2; i < n; i++)
		attrs__add_str(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, KEYS[i], strs[i]);
	check_json(s, strs, n);
	check_otlp(s, strs, n);
	attrs__add_str(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "gen_ai.request.model", strs[n - 1]);
	attrs__add_str(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS, "error.type", strs[0]);
	check_text(s);
	span__free(s);
	free(copy);
	return 0;
}
