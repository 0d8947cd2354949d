// SPDX-License-Identifier: Apache-2.0
/*
 * The JSON Lines schema (`--format json`) written by jsonl__write_span, read back with json-c:
 * every field, every attribute type, hostile strings (quotes, control bytes, invalid UTF-8).
 * Also the attribute builders and the text exporter's line.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "export/export.h"
#include "export/utf8.h"
#include "tt_test.h"

static struct resource *resource_new(uint32_t pid, const char *exe)
{
	struct resource *r = calloc(1, sizeof(*r));

	r->refs = 1;
	r->pid = pid;
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "service.name", exe);
	attrs__add_int(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.pid", pid);
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.executable.name", exe);
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "process.executable.path",
		       "/usr/bin/curl");
	attrs__add_str(r->attrs, &r->n_attrs, SPAN_MAX_RES_ATTRS, "host.name", "node-1");
	return r;
}

#define ADD_STR(s, k, v) attrs__add_str((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)
#define ADD_INT(s, k, v) attrs__add_int((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)
#define ADD_DBL(s, k, v) attrs__add_double((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)
#define ADD_BOOL(s, k, v) attrs__add_bool((s)->attrs, &(s)->n_attrs, SPAN_MAX_ATTRS, k, v)

static struct span *span_new(struct resource *r, bool parent)
{
	static const char *const reasons[] = { "stop", "length\"\n" };
	struct span *s = calloc(1, sizeof(*s));
	int i;

	for (i = 0; i < 16; i++)
		s->trace_id[i] = (uint8_t)(0xa0 + i);
	for (i = 0; i < 8; i++) {
		s->span_id[i] = (uint8_t)(0x01 + i);
		s->parent_span_id[i] = (uint8_t)(0xf0 + i);
	}
	s->has_parent = parent;
	snprintf(s->name, sizeof(s->name), "chat gpt-4o");
	s->kind = SPAN_KIND_CLIENT;
	s->start_unix_ns = 1717243200123456789ull;
	s->end_unix_ns = 1717243200987654321ull;
	s->status = SPAN_STATUS_ERROR;
	snprintf(s->status_message, sizeof(s->status_message), "HTTP 429 \"rate\"\tlimited");
	s->resource = r;
	ADD_STR(s, "gen_ai.operation.name", "chat");
	ADD_STR(s, "gen_ai.provider.name", "openai");
	ADD_STR(s, "gen_ai.request.model", "gpt-4o");
	ADD_STR(s, "gen_ai.response.model", "gpt-4o-2024-08-06");
	ADD_STR(s, "gen_ai.response.id", "a\"b\\c\x01\x1f/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	ADD_STR(s, "error.type", "bad\xff\xfe end\xe2\x82");
	ADD_STR(s, "url.path", "\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80");
	attrs__add_str_array(s->attrs, &s->n_attrs, SPAN_MAX_ATTRS,
			     "gen_ai.response.finish_reasons", reasons, 2);
	ADD_INT(s, "gen_ai.usage.input_tokens", 1234);
	ADD_INT(s, "gen_ai.usage.output_tokens", 0);
	ADD_INT(s, "thread.id", INT64_MIN);
	ADD_INT(s, "tokentap.capture.lost_bytes", INT64_MAX);
	ADD_DBL(s, "gen_ai.request.temperature", 0.7);
	ADD_DBL(s, "gen_ai.response.time_to_first_chunk", 1.0 / 3.0);
	ADD_DBL(s, "test.nan", NAN);
	ADD_BOOL(s, "gen_ai.request.stream", true);
	ADD_BOOL(s, "tokentap.capture.partial", false);
	return s;
}

static char *write_span(const struct span *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	jsonl__write_span(f, s);
	fclose(f);
	return buf;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Raw bytes < 0x20 must never appear inside JSON output, and it must be valid UTF-8. */
static bool json_text_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k;

	while (i < n) {
		k = utf8__seq_len(p + i, n - i);
		if (!k || p[i] < 0x20)
			return false;
		i += k;
	}
	return true;
}

TEST(schema_top_level)
{
	struct span *s;
	char *text;
	json_object *o, *st;

	s = span_new(resource_new(4242, "curl"), true);
	text = write_span(s);
	CHECK(json_text_clean(text));
	CHECK(strchr(text, '\n') == NULL);
	o = json_tokener_parse(text);
	CHECK(o != NULL);
	if (o) {
		CHECK_EQ_INT(json_object_object_length(o), 10);
		CHECK_EQ_STR(get_str(o, "trace_id"), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
		CHECK_EQ_STR(get_str(o, "span_id"), "0102030405060708");
		CHECK_EQ_STR(get_str(o, "parent_span_id"), "f0f1f2f3f4f5f6f7");
		CHECK_EQ_STR(get_str(o, "name"), "chat gpt-4o");
		CHECK_EQ_STR(get_str(o, "kind"), "client");
		CHECK(json_object_is_type(get(o, "start_time_unix_nano"), json_type_int));
		CHECK(json_object_get_uint64(get(o, "start_time_unix_nano")) ==
		      1717243200123456789ull);
		CHECK(json_object_get_uint64(get(o, "end_time_unix_nano")) ==
		      1717243200987654321ull);
		st = get(o, "status");
		CHECK_EQ_INT(json_object_object_length(st), 2);
		CHECK_EQ_STR(get_str(st, "code"), "error");
		CHECK_EQ_STR(get_str(st, "message"), "HTTP 429 \"rate\"\tlimited");
	}
	json_object_put(o);
	free(text);
	span__free(s);
}

TEST(schema_no_parent_no_resource)
{
	struct span *s;
	char *text;
	json_object *o;

	s = span_new(NULL, false);
	s->status = SPAN_STATUS_OK;
	s->status_message[0] = '\0';
	text = write_span(s);
	o = json_tokener_parse(text);
	CHECK(o != NULL);
	CHECK_EQ_STR(get_str(o, "parent_span_id"), "");
	CHECK_EQ_STR(get_str(get(o, "status"), "code"), "ok");
	CHECK_EQ_STR(get_str(get(o, "status"), "message"), "");
	CHECK(json_object_is_type(get(o, "resource"), json_type_object));
	CHECK_EQ_INT(json_object_object_length(get(o, "resource")), 0);
	s->status = SPAN_STATUS_UNSET;
	free(text);
	json_object_put(o);
	text = write_span(s);
	o = json_tokener_parse(text);
	CHECK_EQ_STR(get_str(get(o, "status"), "code"), "unset");
	json_object_put(o);
	free(text);
	span__free(s);
}

TEST(resource_object)
{
	struct span *s;
	char *text;
	json_object *o, *r;

	s = span_new(resource_new(4242, "curl"), false);
	text = write_span(s);
	o = json_tokener_parse(text);
	r = get(o, "resource");
	CHECK(r != NULL);
	CHECK_EQ_INT(json_object_object_length(r), 5);
	CHECK_EQ_STR(get_str(r, "service.name"), "curl");
	CHECK(json_object_is_type(get(r, "process.pid"), json_type_int));
	CHECK_EQ_INT(json_object_get_int64(get(r, "process.pid")), 4242);
	CHECK_EQ_STR(get_str(r, "process.executable.name"), "curl");
	CHECK_EQ_STR(get_str(r, "process.executable.path"), "/usr/bin/curl");
	CHECK_EQ_STR(get_str(r, "host.name"), "node-1");
	json_object_put(o);
	free(text);
	span__free(s);
}

TEST(attribute_types)
{
	struct span *s;
	char *text;
	json_object *o, *a, *arr, *v;

	s = span_new(NULL, false);
	text = write_span(s);
	o = json_tokener_parse(text);
	a = get(o, "attributes");
	CHECK(a != NULL);
	CHECK_EQ_INT(json_object_object_length(a), (int)s->n_attrs);
	CHECK_EQ_STR(get_str(a, "gen_ai.operation.name"), "chat");
	CHECK_EQ_STR(get_str(a, "gen_ai.response.model"), "gpt-4o-2024-08-06");
	arr = get(a, "gen_ai.response.finish_reasons");
	CHECK(json_object_is_type(arr, json_type_array));
	CHECK_EQ_INT(json_object_array_length(arr), 2);
	CHECK_EQ_STR(json_object_get_string(json_object_array_get_idx(arr, 0)), "stop");
	CHECK_EQ_STR(json_object_get_string(json_object_array_get_idx(arr, 1)), "length\"\n");
	v = get(a, "gen_ai.usage.input_tokens");
	CHECK(json_object_is_type(v, json_type_int));
	CHECK_EQ_INT(json_object_get_int64(v), 1234);
	CHECK_EQ_INT(json_object_get_int64(get(a, "gen_ai.usage.output_tokens")), 0);
	CHECK(json_object_get_int64(get(a, "thread.id")) == INT64_MIN);
	CHECK(json_object_get_int64(get(a, "tokentap.capture.lost_bytes")) == INT64_MAX);
	v = get(a, "gen_ai.request.temperature");
	CHECK(json_object_is_type(v, json_type_double));
	CHECK(json_object_get_double(v) == 0.7);
	CHECK(strstr(text, "\"gen_ai.request.temperature\":0.7,") != NULL);
	CHECK(json_object_get_double(get(a, "gen_ai.response.time_to_first_chunk")) == 1.0 / 3.0);
	CHECK(json_object_object_get_ex(a, "test.nan", &v) && v == NULL); /* JSON null */
	v = get(a, "gen_ai.request.stream");
	CHECK(json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v));
	v = get(a, "tokentap.capture.partial");
	CHECK(json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v));
	json_object_put(o);
	free(text);
	span__free(s);
}

TEST(hostile_strings)
{
	struct span *s;
	char *text;
	json_object *o, *a;

	s = span_new(NULL, false);
	/* A name with every control byte, a quote and a backslash. */
	for (int i = 1; i < 32; i++)
		s->name[i - 1] = (char)i;
	strcpy(s->name + 31, "\"\\\x7f");
	text = write_span(s);
	CHECK(json_text_clean(text));
	o = json_tokener_parse(text);
	CHECK(o != NULL);
	CHECK_EQ_STR(get_str(o, "name"), s->name);
	a = get(o, "attributes");
	CHECK_EQ_STR(get_str(a, "gen_ai.response.id"), "a\"b\\c\x01\x1f/"
						       "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	/* One U+FFFD per byte that does not start a valid sequence. */
	CHECK_EQ_STR(get_str(a, "error.type"), "bad\xef\xbf\xbd\xef\xbf\xbd "
					       "end\xef\xbf\xbd\xef\xbf\xbd");
	/* Overlong, surrogate, above U+10FFFF: all rejected. */
	CHECK_EQ_STR(get_str(a, "url.path"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
					     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
					     "\xef\xbf\xbd");
	json_object_put(o);
	free(text);
	span__free(s);
}

TEST(utf8_repair)
{
	char *r;

	CHECK(utf8__repair("plain \xc3\xa9\xf0\x9f\x98\x80") == NULL);
	CHECK(utf8__repair("") == NULL);
	r = utf8__repair("a\x80z");
	CHECK_EQ_STR(r, "a\xef\xbf\xbdz");
	free(r);
	r = utf8__repair("\xf0\x9f\x98");
	CHECK_EQ_STR(r, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	free(r);
	CHECK_EQ_INT(utf8__seq_len((const unsigned char *)"\xe0\x9f\x80", 3), 0);
	CHECK_EQ_INT(utf8__seq_len((const unsigned char *)"\xe0\xa0\x80", 3), 3);
	CHECK_EQ_INT(utf8__seq_len((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
}

TEST(attrs_builders)
{
	struct attr a[3];
	size_t n = 0;
	const char *many[SPAN_MAX_ARRAY + 3] = { 0 };
	struct span *s = calloc(1, sizeof(*s));

	for (int i = 0; i < SPAN_MAX_ARRAY + 3; i++)
		many[i] = "x";
	attrs__add_str(a, &n, 3, "k1", "v1");
	attrs__add_int(a, &n, 3, "k2", 2);
	attrs__add_str(a, &n, 3, "k1", "v1b"); /* replaces, keeps its place */
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_STR(a[0].s, "v1b");
	attrs__add_str_array(a, &n, 3, "k3", many, SPAN_MAX_ARRAY + 3);
	CHECK_EQ_INT(a[2].type, ATTR_STRING_ARRAY);
	CHECK_EQ_INT(a[2].arr.n, SPAN_MAX_ARRAY);
	attrs__add_bool(a, &n, 3, "k4", true); /* full: ignored */
	CHECK_EQ_INT(n, 3);
	attrs__add_double(a, &n, 3, "k2", 2.5); /* type change on replace */
	CHECK_EQ_INT(a[1].type, ATTR_DOUBLE);
	CHECK(a[1].d == 2.5);
	attrs__add_str(a, &n, 3, "k3", NULL); /* array -> string, NULL -> "" */
	CHECK_EQ_STR(a[2].s, "");
	memcpy(s->attrs, a, sizeof(a));
	s->n_attrs = n;
	CHECK(span__find_attr(s, "k2") == &s->attrs[1]);
	CHECK(span__find_attr(s, "nope") == NULL);
	span__free(s); /* ASan reports a leak if an attribute string stayed behind */
	span__free(NULL);
}

TEST(resource_refs)
{
	struct resource *r = resource_new(1, "x");
	struct span *s = calloc(1, sizeof(*s));

	s->resource = r;
	resource__get(r);
	CHECK_EQ_INT(r->refs, 2);
	span__free(s); /* drops one reference */
	CHECK_EQ_INT(r->refs, 1);
	resource__put(r); /* frees: ASan's leak check would catch a miss */
	resource__put(NULL);
}

/* The exporter builds lines in memory with its own escaper: it must write exactly what
 * utf8__write_json_string (the stdio reference) writes, for every byte value in every
 * position and for random byte soup, and read back as the same string. */
static char *ref_json_string(const char *v)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	utf8__write_json_string(f, v);
	fclose(f);
	return buf;
}

/* The "gen_ai.response.id" value as written by jsonl__write_span. */
static char *span_json_string(const char *v)
{
	struct span *s = calloc(1, sizeof(*s));
	char *line, *at, *end, *out;

	ADD_STR(s, "gen_ai.response.id", v);
	line = write_span(s);
	at = strstr(line, "\"gen_ai.response.id\":");
	at = at ? at + strlen("\"gen_ai.response.id\":") : line;
	end = strrchr(line, '}'); /* attributes object, then the span object */
	end = end && end > at ? end - 1 : at;
	out = strndup(at, (size_t)(end - at));
	free(line);
	span__free(s);
	return out;
}

static bool escape_matches(const char *v)
{
	char *a = ref_json_string(v), *b = span_json_string(v);
	bool same = !strcmp(a, b);

	if (!same)
		fprintf(stderr, "escape mismatch: ref %s got %s\n", a, b);
	free(a);
	free(b);
	return same;
}

TEST(escape_same_as_reference)
{
	char v[16];
	unsigned rng = 12345;
	int bad = 0;

	for (int c = 1; c < 256; c++) {
		snprintf(v, sizeof(v), "a%cb%c", c, c);
		bad += !escape_matches(v);
		snprintf(v, sizeof(v), "%c\xe2\x82%c\xac", c, c);
		bad += !escape_matches(v);
	}
	for (int i = 0; i < 2000; i++) {
		char soup[64];
		size_t n = 1 + i % 62;

		for (size_t k = 0; k < n; k++) {
			rng = rng * 1103515245u + 12345u;
			soup[k] = (char)(1 + (rng >> 16) % 255);
		}
		soup[n] = '\0';
		bad += !escape_matches(soup);
	}
	bad += !escape_matches("");
	CHECK_EQ_INT(bad, 0);
}

TEST(integers_exact)
{
	static const int64_t vals[] = {0, 1, -1, 9, 10, 99, 100, INT64_MAX, INT64_MIN,
				       INT64_MIN + 1, 1234567890123456789ll};
	struct span *s = calloc(1, sizeof(*s));
	char key[16][32], *line;
	json_object *root, *attrs;
	size_t i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		snprintf(key[i], sizeof(key[i]), "k%zu", i);
		ADD_INT(s, key[i], vals[i]);
	}
	s->start_unix_ns = UINT64_MAX;
	line = write_span(s);
	root = json_tokener_parse(line);
	attrs = get(root, "attributes");
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		CHECK(json_object_get_int64(get(attrs, key[i])) == vals[i]);
	CHECK(strstr(line, "\"start_time_unix_nano\":18446744073709551615,") != NULL);
	json_object_put(root);
	free(line);
	span__free(s);
}

TEST(exporter_lines)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct exporter *e = jsonl_exporter__new(f);
	struct export_stats st;
	struct span *s;
	char *nl;

	s = span_new(NULL, false);
	e->ops->export(e, s);
	e->ops->export(e, s);
	e->ops->stats(e, &st);
	CHECK_EQ_INT(st.exported, 2);
	CHECK_EQ_INT(st.dropped, 0);
	fflush(f);
	nl = strchr(buf, '\n');
	CHECK(nl != NULL && nl[1] == '{' && buf[len - 1] == '\n');
	CHECK(strchr(nl + 1, '\n') == buf + len - 1);
	e->ops->destroy(e);
	fclose(f);
	free(buf);
	span__free(s);
}

static char *text_line(const struct span *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct exporter *e = text_exporter__new(f);

	e->ops->export(e, s);
	e->ops->destroy(e);
	fclose(f);
	return buf;
}

TEST(text_line)
{
	struct span *s;
	char *line;

	s = span_new(resource_new(4242, "curl"), false);
	s->end_unix_ns = s->start_unix_ns + 523400000;
	line = text_line(s);
	CHECK(strstr(line, " curl[4242] openai gpt-4o-2024-08-06 in=1234 out=0 latency=523ms "
			   "ttft=333ms error=bad") != NULL);
	CHECK(strstr(line, "(HTTP 429 \"rate\"?limited)\n") != NULL);
	CHECK(strstr(line, "partial") == NULL);
	CHECK(line[23] == ' ' && line[19] == '.'); /* "YYYY-MM-DD HH:MM:SS.mmm " */
	free(line);

	s->status = SPAN_STATUS_OK;
	ADD_STR(s, "error.type", "");
	ADD_STR(s, "gen_ai.response.model", "\x1b[31mred");
	ADD_BOOL(s, "tokentap.capture.partial", true);
	line = text_line(s);
	CHECK(strstr(line, " openai ?[31mred in=1234") != NULL);
	CHECK(strstr(line, " ok partial(lost 9223372036854775807 bytes)\n") != NULL);
	free(line);
	span__free(s);
}

int main(void)
{
	RUN(schema_top_level);
	RUN(schema_no_parent_no_resource);
	RUN(resource_object);
	RUN(attribute_types);
	RUN(hostile_strings);
	RUN(utf8_repair);
	RUN(attrs_builders);
	RUN(resource_refs);
	RUN(escape_same_as_reference);
	RUN(integers_exact);
	RUN(exporter_lines);
	RUN(text_line);
	TT_DONE();
}
