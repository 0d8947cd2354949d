#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make bench`: builds the benchmark helpers into $BUILD/bench (a TLS loop linked against the
# system libssl.so.3, an empty-probe "floor" tracer, the user-space replay driver) and runs
# tests/bench/bench.py, which prints a table and writes $BUILD/bench/report.json.
# Environment: BUILD (default build), TOKENTAP_BIN (default $BUILD/tokentap), BENCH_ARGS
# (passed to bench.py, e.g. "--quick" or "--only cost,pipeline").
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
TOKENTAP_BIN=${TOKENTAP_BIN:-$BUILD/tokentap}
out=$BUILD/bench
mkdir -p "$out"

arch=$(uname -m)
multiarch=$(gcc -print-multiarch 2>/dev/null || echo "$arch-linux-gnu")
pkgs=$(sed -n 's/^PKGS := //p' Makefile)
libs="$(pkg-config --libs $pkgs 2>/dev/null) -lssl -lcrypto -lpthread -lm"

make --no-print-directory BUILD="$BUILD" "$BUILD/libtokentap.a" "$TOKENTAP_BIN" >/dev/null
clang -O2 -g -Wall -std=gnu11 tests/bench/tls_loop.c -lssl -lcrypto -o "$out/tls_loop"
clang -O2 -g -Wall tests/bench/floor.c -lbpf -o "$out/floor"
clang -g -O2 -target bpf -I"/usr/include/$multiarch" -c tests/bench/floor.bpf.c -o "$out/floor.bpf.o"
clang -O2 -g -Wall -std=gnu11 -D_GNU_SOURCE -Iinclude -Isrc -I"$BUILD" -I"$BUILD/gen" \
	tests/bench/pipeline_bench.c "$BUILD/libtokentap.a" $libs -o "$out/pipeline_bench"
clang -O2 -g -Wall -std=gnu11 -D_GNU_SOURCE -Iinclude -Isrc -I"$BUILD" \
	tests/bench/sites_cost.c "$BUILD/libtokentap.a" $libs -o "$out/sites_cost"

exec python3 tests/bench/bench.py --build "$BUILD" --tokentap "$TOKENTAP_BIN" \
	--out "$out/report.json" ${BENCH_ARGS:-}
