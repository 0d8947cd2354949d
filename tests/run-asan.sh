#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make test-asan`: the unit tests and the end-to-end suites against an AddressSanitizer +
# UndefinedBehaviorSanitizer build (BUILD, default build/asan). A leak, an invalid access or
# undefined behaviour in tokentap aborts it, and the e2e test that stopped it sees a non-zero exit.
# E2E_ASAN_SUITES picks suites (default: every tests/e2e/test_*.py); E2E_ASAN=0 skips them.
# Last line: "asan: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/asan}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
total_p=0 total_f=0

count() { # log file -> adds its last "N passed, N failed"
	local line p=0 f=0
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1)
	if [ -n "$line" ]; then
		p=$(sed -E 's/.*[^0-9]([0-9]+) passed.*/\1/;s/^([0-9]+) passed.*/\1/' <<<"$line")
		f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
	fi
	[ "$2" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	total_p=$((total_p + p)); total_f=$((total_f + f))
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
tests/run-unit.sh "$BUILD"/tests/test_* 2>&1 | tee "$out"
count "$out" "${PIPESTATUS[0]}"
if [ "${E2E_ASAN:-1}" != 0 ]; then
	E2E_SUITES=${E2E_ASAN_SUITES:-} TOKENTAP_BIN=$BUILD/tokentap \
		TOKENTAP_REQUIRE_BPF=${TOKENTAP_REQUIRE_BPF:-1} tests/e2e/run.sh 2>&1 | tee "$out"
	count "$out" "${PIPESTATUS[0]}"
fi
echo "asan: $total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
