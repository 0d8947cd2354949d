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

python3 tests/e2e/test_e2e.py "$@"
rc=$?
# A crash of the runner itself (not a test failure) must not pass silently.
if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
	echo "e2e: the test runner exited with $rc"
	echo "e2e: 0 passed, 1 failed"
	exit 1
fi
exit $rc
