// SPDX-License-Identifier: Apache-2.0
/*
 * llm/jseq: NDJSON and streamed JSON arrays, fed whole, split at every boundary and in 1-byte
 * pieces; garbage, non-object values, oversized objects, lost bytes and a cut end are counted
 * and the objects around them still come out.
 */
#include <stdlib.h>

#include "tt_test.h"
#include "llm/jseq.h"

struct seen {
	int n;
	char ids[16][32];
	uint64_t ts[16];
};

static void on_obj(void *ctx, struct json_object *o, uint64_t ts)
{
	struct seen *s = ctx;
	struct json_object *id;

	if (s->n < 16) {
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s",
			 json_object_object_get_ex(o, "id", &id) ? json_object_get_string(id)
								 : "?");
		s->ts[s->n] = ts;
	}
	s->n++;
}

static struct seen run(const char *d, size_t n, size_t cut, size_t piece, struct jseq_stats *st,
		       bool *cut_short)
{
	struct seen s = {0};
	struct jseq *j = jseq__new(on_obj, &s);

	if (piece) {
		for (size_t at = 0; at < n; at += piece)
			jseq__feed(j, (const uint8_t *)d + at, n - at < piece ? n - at : piece, at);
	} else {
		jseq__feed(j, (const uint8_t *)d, cut, 1);
		jseq__feed(j, (const uint8_t *)d + cut, n - cut, 2);
	}
	*cut_short = jseq__end(j);
	*st = *jseq__stats(j);
	jseq__free(j);
	return s;
}

/* Every split gives the same objects and no error. */
static void check_all_splits(const char *d, int want, const char *last_id)
{
	size_t n = strlen(d);
	struct jseq_stats st;
	bool cut;
	int bad = 0;
	struct seen s;

	for (size_t c = 0; c <= n; c++) {
		s = run(d, n, c, 0, &st, &cut);
		bad += s.n != want || st.errors || st.oversized || cut ||
		       strcmp(s.ids[want - 1], last_id);
	}
	s = run(d, n, 0, 1, &st, &cut);
	bad += s.n != want || st.errors || strcmp(s.ids[want - 1], last_id);
	CHECK_EQ_INT(bad, 0);
}

TEST(ndjson)
{
	check_all_splits("{\"id\":\"a\",\"done\":false}\n{\"id\":\"b\",\"x\":[1,{\"y\":\"}\"}]}\n"
			 "\n{\"id\":\"c\",\"done\":true}\n",
			 3, "c");
	check_all_splits("{\"id\":\"a\"}\r\n{\"id\":\"b\"}", 2, "b"); /* no final newline */
}

TEST(json_array)
{
	check_all_splits("[{\n  \"id\": \"g1\",\n  \"candidates\": [{\"index\": 0}]\n}\n,\r\n"
			 "{\n  \"id\": \"g2\"\n}\n]",
			 2, "g2");
	check_all_splits("  [ {\"id\":\"a\"} , {\"id\":\"b\"} ]  ", 2, "b");
}

TEST(timestamps)
{
	struct jseq_stats st;
	bool cut;
	const char *d = "{\"id\":\"a\"}\n{\"id\":\"b\"}\n";
	struct seen s = run(d, strlen(d), 5, 0, &st, &cut);

	CHECK_EQ_INT(s.n, 2);
	CHECK_EQ_INT(s.ts[0], 2); /* completed by the second piece */
	CHECK_EQ_INT(s.ts[1], 2);
}

TEST(errors_resume_at_next_line)
{
	static const char d[] =
	    "garbage here\n{\"id\":\"a\"}\n[1,2]\n{\"id\":\"b\"}\n{\"id\": nope}\n"
	    "\"str\"\n{\"id\":\"c\"}\n";
	struct jseq_stats st;
	bool cut;
	struct seen s;

	for (size_t piece = 0; piece <= 1; piece++) {
		s = run(d, strlen(d), 17, piece, &st, &cut);
		CHECK_EQ_INT(s.n, 3);
		CHECK_EQ_STR(s.ids[0], "a");
		CHECK_EQ_STR(s.ids[1], "b");
		CHECK_EQ_STR(s.ids[2], "c");
		CHECK_EQ_INT(st.errors, 4); /* garbage, the number 1, the bad object, the string */
		CHECK_EQ_INT(st.objects, 3);
		CHECK(!cut);
	}
}

/* json-c reads past an object for whitespace and comments: a '/' there must not spoil it. */
TEST(object_then_slash)
{
	static const char d[] = "{\"id\":\"a\",\"s\":\"}{\\\"\"}\n\n/]\n{\"id\":\"b\"}";
	struct jseq_stats st;
	bool cut;
	int bad = 0;
	struct seen s;

	for (size_t c = 0; c <= strlen(d); c++) {
		s = run(d, strlen(d), c, 0, &st, &cut);
		bad += s.n != 2 || strcmp(s.ids[0], "a") || strcmp(s.ids[1], "b") || st.errors != 1;
	}
	CHECK_EQ_INT(bad, 0);
}

/* JSON never has a raw NUL; json-c would take one for the end of its input. */
TEST(nul_byte)
{
	static const char d[] = "{\"id\":\"a\0b\"}\n{\"id\":\"c\"}\n";
	struct jseq_stats st;
	bool cut;
	int bad = 0;
	struct seen s;

	for (size_t c = 0; c < sizeof(d); c++) {
		s = run(d, sizeof(d) - 1, c, 0, &st, &cut);
		bad += s.n != 1 || strcmp(s.ids[0], "c") || st.errors != 1 || cut;
	}
	CHECK_EQ_INT(bad, 0);
}

/* json-c judges "2-2" in one piece (bad) and in two ("2-", "2": fine) differently. */
TEST(bad_number_every_split)
{
	static const char d[] = "{\"id\":\"a\",\"n\":2-2}\n{\"id\":\"b\"}\n";
	struct jseq_stats st;
	bool cut;
	int bad = 0;
	struct seen s;

	for (size_t c = 0; c < sizeof(d); c++) {
		s = run(d, sizeof(d) - 1, c, 0, &st, &cut);
		bad += s.n != 1 || strcmp(s.ids[0], "b") || st.errors != 1;
	}
	s = run(d, sizeof(d) - 1, 0, 1, &st, &cut);
	bad += s.n != 1 || st.errors != 1;
	CHECK_EQ_INT(bad, 0);
}

TEST(cut_and_gap)
{
	struct jseq_stats st;
	bool cut;
	struct seen s;
	const char *d = "{\"id\":\"a\"}\n{\"id\":\"b\",\"more\":";
	struct jseq *j;

	s = run(d, strlen(d), 3, 0, &st, &cut);
	CHECK_EQ_INT(s.n, 1);
	CHECK(cut);
	CHECK_EQ_INT(st.errors, 1);

	memset(&s, 0, sizeof(s));
	j = jseq__new(on_obj, &s);
	jseq__feed(j, (const uint8_t *)"{\"id\":\"a\",\"x\":\"abc", 17, 1);
	jseq__gap(j);
	jseq__feed(j, (const uint8_t *)"def\"}\n{\"id\":\"b\"}\n", 17, 2);
	CHECK_EQ_INT(s.n, 1);
	CHECK_EQ_STR(s.ids[0], "b");
	CHECK(!jseq__end(j));
	CHECK_EQ_INT(jseq__stats(j)->errors, 0);
	jseq__free(j);
}

TEST(oversized)
{
	size_t big = JSEQ_MAX_OBJECT + 10;
	char *d = malloc(big + 64), *p = d;
	struct jseq_stats st;
	bool cut;
	struct seen s;

	p += sprintf(p, "{\"id\":\"big\",\"pad\":\"");
	memset(p, 'x', big);
	p += big;
	p += sprintf(p, "\"}\n{\"id\":\"next\"}\n");
	s = run(d, (size_t)(p - d), 1000, 0, &st, &cut);
	CHECK_EQ_INT(s.n, 1);
	CHECK_EQ_STR(s.ids[0], "next");
	CHECK_EQ_INT(st.oversized, 1);
	CHECK_EQ_INT(st.errors, 0);
	s = run(d, (size_t)(p - d), 0, 4096, &st, &cut);
	CHECK_EQ_INT(s.n, 1);
	CHECK_EQ_INT(st.oversized, 1);
	free(d);
}

int main(void)
{
	RUN(ndjson);
	RUN(json_array);
	RUN(timestamps);
	RUN(errors_resume_at_next_line);
	RUN(object_then_slash);
	RUN(nul_byte);
	RUN(bad_number_every_split);
	RUN(cut_and_gap);
	RUN(oversized);
	TT_DONE();
}
