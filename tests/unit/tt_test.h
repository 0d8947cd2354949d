/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny test harness: TEST(name) functions registered in main via RUN(name), CHECK* macros
 * that count, and a closing "N passed, N failed" line that tests/run-unit.sh sums up.
 * A test passes when it made at least one check and none failed: a test that asserts nothing
 * is reported as a failure.
 */
#ifndef TT_TEST_H
#define TT_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int tt_checks, tt_failures, tt_passed, tt_failed;
static const char *tt_current;

#define CHECK(cond)                                                                               \
	do {                                                                                      \
		tt_checks++;                                                                      \
		if (!(cond)) {                                                                    \
			tt_failures++;                                                            \
			fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__,   \
				tt_current, #cond);                                               \
		}                                                                                 \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                        \
	do {                                                                                      \
		long long _a = (long long)(a), _b = (long long)(b);                               \
		tt_checks++;                                                                      \
		if (_a != _b) {                                                                   \
			tt_failures++;                                                            \
			fprintf(stderr, "  %s:%d: %s: %s == %lld, expected %lld\n", __FILE__,     \
				__LINE__, tt_current, #a, _a, _b);                                \
		}                                                                                 \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                                        \
	do {                                                                                      \
		const char *_a = (a), *_b = (b);                                                  \
		tt_checks++;                                                                      \
		if (!_a || !_b || strcmp(_a, _b) != 0) {                                          \
			tt_failures++;                                                            \
			fprintf(stderr, "  %s:%d: %s: %s == \"%s\", expected \"%s\"\n", __FILE__, \
				__LINE__, tt_current, #a, _a ? _a : "(null)", _b ? _b : "(null)"); \
		}                                                                                 \
	} while (0)

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                                                 \
	do {                                                                                      \
		int _f0 = tt_failures, _c0 = tt_checks;                                           \
		tt_current = #name;                                                               \
		test_##name();                                                                    \
		if (tt_failures == _f0 && tt_checks > _c0) {                                      \
			tt_passed++;                                                              \
		} else {                                                                          \
			if (tt_checks == _c0)                                                     \
				fprintf(stderr, "  %s: made no check\n", #name);                  \
			tt_failed++;                                                              \
			fprintf(stderr, "FAIL %s\n", #name);                                      \
		}                                                                                 \
	} while (0)

#define TT_DONE()                                                                                 \
	do {                                                                                      \
		printf("%s: %d passed, %d failed (%d checks)\n", __FILE__, tt_passed, tt_failed,  \
		       tt_checks);                                                                \
		return tt_failed ? 1 : 0;                                                         \
	} while (0)

#endif
