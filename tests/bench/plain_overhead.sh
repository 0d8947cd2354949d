#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What plain-HTTP capture costs traffic that is NOT LLM traffic (needs root). Runs
# tests/bench/http_loop.c (10k small loopback HTTP requests on new connections and on one
# keep-alive connection, 1M file syscalls) ROUNDS times without tokentap and ROUNDS times with it
# (medians printed), then the kernel's own accounting of every tracepoint program tokentap
# attached, over one more pass (kernel.bpf_stats_enabled: runs and mean ns per run, which
# includes the accounting's own clock reads).
# Environment: TOKENTAP_BIN (default build/tokentap), ROUNDS (default 3), REQS, CALLS.
set -eu
cd "$(dirname "$0")/../.."
TOKENTAP_BIN=${TOKENTAP_BIN:-build/tokentap}
ROUNDS=${ROUNDS:-3} REQS=${REQS:-10000} CALLS=${CALLS:-1000000}
out=$(mktemp -d /tmp/tokentap-plain-bench.XXXXXX)
trap '[ "$tt" = 0 ] || kill "$tt" 2>/dev/null; wait 2>/dev/null; sysctl -qw kernel.bpf_stats_enabled="$stats0"; rm -rf "$out"' EXIT
tt=0
stats0=$(sysctl -n kernel.bpf_stats_enabled)

clang -O2 -Wall -std=gnu11 tests/bench/http_loop.c -lpthread -o "$out/http_loop"

rounds() { # label: runs http_loop ROUNDS times, prints the median of each mode
	for _ in $(seq "$ROUNDS"); do "$out/http_loop" "$REQS" "$CALLS"; done >"$out/$1"
	for mode in conn keepalive file_syscalls; do
		med=$(awk -v m="$mode" '$1 == m { print $4 }' "$out/$1" | sort -n |
			awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
		printf '%-8s %-14s %8s ns per op (median of %s)\n' "$1" "$mode" "$med" "$ROUNDS"
	done
}

rounds without
bpftool -j prog show >"$out/before.json"
"$TOKENTAP_BIN" --format json >/dev/null 2>"$out/tt.err" &
tt=$!
for _ in $(seq 300); do grep -q 'tokentap: ready' "$out/tt.err" && break; sleep 0.1; done
grep -q 'tokentap: ready' "$out/tt.err" || { cat "$out/tt.err"; exit 1; }
rounds with
# Per-program accounting costs a clock read or two per run: only for one more pass.
sysctl -qw kernel.bpf_stats_enabled=1
"$out/http_loop" "$REQS" "$CALLS" >/dev/null
sysctl -qw kernel.bpf_stats_enabled="$stats0"
bpftool -j prog show | python3 -c '
import json, sys
old = {p["id"] for p in json.load(open(sys.argv[1]))}
# Programs loaded since tokentap started (bpftool here cannot tell which process holds them).
rows = [p for p in json.load(sys.stdin) if p.get("type") == "tracepoint" and p["id"] not in old]
print("tokentap syscall-tracepoint programs (all processes on the host while the loop ran):")
for p in sorted(rows, key=lambda p: -p.get("run_time_ns", 0)):
    n, name, ns = p.get("run_cnt", 0), p["name"], p.get("run_time_ns", 0)
    if n:
        print(f"  {name:<16} runs {n:>9}  mean {ns / n:7.1f} ns")
' "$out/before.json"
kill -INT "$tt"
wait "$tt" || true
tt=0
grep -o 'plain_rung=.*plain_socks_other=[0-9]*' "$out/tt.err" || true
