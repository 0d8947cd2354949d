#!/usr/bin/env bash
# Runs unit-test binaries; prints each one's result and a closing "N passed, N failed" line.
set -u
passed=0 failed=0
for t in "$@"; do
	out=$("$t" 2>&1); rc=$?
	line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n1)
	if [ -z "$line" ]; then
		printf '%s\n' "$out" | tail -n 20
		echo "FAIL $t (exit $rc, no result line)"; failed=$((failed + 1)); continue
	fi
	p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	[ "$f" -ne 0 ] && printf '%s\n' "$out" | grep -v ' passed, ' | tail -n 40
	echo "unit $(basename "$t"): $p passed, $f failed"
	passed=$((passed + p)); failed=$((failed + f))
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
