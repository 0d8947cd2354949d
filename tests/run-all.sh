#!/usr/bin/env bash
# `make test`: every suite in turn, then one closing "N passed, N failed" line over all of them.
# Suites: unit tests, unit tests under ASan+UBSan, a short run of every fuzz target, and the
# end-to-end tests with BPF attached (real clients, mock provider, OTLP receiver).
set -u
cd "$(dirname "$0")/.."
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
total_p=0 total_f=0 failed_suites=()

run_suite() { # name command...
	local name=$1; shift
	echo "=== $name"
	"$@" 2>&1 | tee "$log/$name.out"
	local rc=${PIPESTATUS[0]}
	local line p=0 f=0
	line=$(grep -E '(^|[ :])[0-9]+ passed, [0-9]+ failed' "$log/$name.out" | tail -n1)
	if [ -n "$line" ]; then
		p=$(sed -E 's/.*[^0-9]([0-9]+) passed.*/\1/;s/^([0-9]+) passed.*/\1/' <<<"$line")
		f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	[ "$f" -ne 0 ] && failed_suites+=("$name")
	total_p=$((total_p + p)); total_f=$((total_f + f))
}

run_suite unit tests/run-unit.sh build/tests/test_*
run_suite asan make --no-print-directory test-asan
run_suite fuzz tests/fuzz/run.sh "${FUZZ_SMOKE_SECONDS:-10}"
run_suite e2e tests/e2e/run.sh

[ ${#failed_suites[@]} -gt 0 ] && echo "failing suites: ${failed_suites[*]}"
echo "all: $total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
