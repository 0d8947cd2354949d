#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tokentap's end-to-end suite: BPF attached, a mock provider over HTTPS, real clients.
# Installs the npm test packages when missing, runs tests/e2e/test_e2e.py (arguments are passed
# on, e.g. -k keepalive) and ends with the line "e2e: N passed, N failed"; exits 1 on failure.
# Set TOKENTAP_REQUIRE_BPF=1 (as CI does) to fail instead of skip where BPF cannot run.
set -u
cd "$(dirname "$0")/../.."

if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package.json -nt tests/e2e/node_modules ]; then
	if ! TOKENTAP_TEST_DEPS=1 deploy/deps.sh; then
		echo "e2e: cannot install the test dependencies (TOKENTAP_TEST_DEPS=1 deploy/deps.sh)" >&2
		echo "e2e: 0 passed, 1 failed"
		exit 1
	fi
fi
for tool in curl openssl node python3; do
	if ! command -v "$tool" >/dev/null; then
		echo "e2e: $tool is missing (TOKENTAP_TEST_DEPS=1 deploy/deps.sh installs it)" >&2
		echo "e2e: 0 passed, 1 failed"
		exit 1
	fi
done

# Every tests/e2e/test_*.py is a suite whose last line is "<name>: N passed, N failed".
passed=0 failed=0
# E2E_SUITES (paths, space-separated) runs only those suites.
for suite in ${E2E_SUITES:-tests/e2e/test_*.py}; do
	out=$(mktemp)
	python3 "$suite" "$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$out" | tail -n1)
	rm -f "$out"
	p=0 f=0
	if [ -n "$line" ]; then
		p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<" $line")
		f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
	fi
	# A crash of a runner (not a test failure) must not pass silently.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "e2e: $suite exited with $rc"
		f=1
	fi
	passed=$((passed + p)); failed=$((failed + f))
done
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
