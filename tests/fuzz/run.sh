#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds and runs every libFuzzer target tests/fuzz/fuzz_<name>.c for SECONDS each.
# A target names what it links in two comment lines near its top:
#   // FUZZ_SOURCES: src/proto/http1.c src/proto/http.c
#   // FUZZ_LIBS: -ljson-c
# Its seed corpus is tests/fuzz/corpus/<name>/, copied to a scratch directory so that runs do
# not grow the repository. Crashes, leaks, timeouts and build failures fail the target.
# Usage: tests/fuzz/run.sh SECONDS [NAME...]
set -u
cd "$(dirname "$0")/../.."

secs=${1:-}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
	echo "usage: tests/fuzz/run.sh SECONDS [NAME...]" >&2
	exit 2
fi
shift
CC=${FUZZ_CC:-clang}
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=gnu11
	-D_GNU_SOURCE -Iinclude -Isrc -Ibuild -Ibuild/gen"
out=build/fuzz
mkdir -p "$out"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tokentap-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# The value of a "// KEY:" line in a target's source (empty when absent).
directive() {
	sed -n -E "s|^//[[:space:]]*$2:[[:space:]]*(.*)$|\1|p" "$1" | head -n1
}

passed=0 failed=0
targets=()
if [ $# -gt 0 ]; then
	for n in "$@"; do targets+=("tests/fuzz/fuzz_$n.c"); done
else
	targets=(tests/fuzz/fuzz_*.c)
fi
for src in "${targets[@]}"; do
	[ -f "$src" ] || continue
	name=$(basename "$src" .c)
	name=${name#fuzz_}
	bin=$out/fuzz_$name
	log=$out/fuzz_$name.log
	: >"$log"
	srcs=$(directive "$src" FUZZ_SOURCES)
	# Generated sources (build/gen/*.pb-c.c) come from the Makefile's rules.
	for s in $srcs; do
		if [[ $s == build/* && ! -f $s ]]; then
			make -s "$s" >>"$log" 2>&1 || true
		fi
	done
	# shellcheck disable=SC2086 # word splitting of the lists is intended
	if ! $CC $CFLAGS "$src" $srcs -o "$bin" \
		$(directive "$src" FUZZ_LIBS) >"$log" 2>&1; then
		tail -n 20 "$log"
		echo "fuzz $name: FAILED (build, see $log)"
		failed=$((failed + 1))
		continue
	fi
	corpus=$scratch/$name
	mkdir -p "$corpus"
	[ -d "tests/fuzz/corpus/$name" ] && cp -R "tests/fuzz/corpus/$name/." "$corpus/"
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
		"$bin" -max_total_time="$secs" -max_len=65536 -timeout=25 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/${name}-" "$corpus" >"$log" 2>&1
	rc=$?
	runs=$(sed -n -E 's/^stat::number_of_executed_units:[[:space:]]*([0-9]+).*/\1/p' "$log" | tail -n1)
	if [ $rc -eq 0 ]; then
		echo "fuzz $name: ok (${runs:-0} runs)"
		passed=$((passed + 1))
	else
		grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -n 10
		echo "fuzz $name: FAILED (exit $rc after ${runs:-?} runs, log $log)"
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
