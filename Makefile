# SPDX-License-Identifier: Apache-2.0
# tokentap: `make` builds build/tokentap; `make run` and `make test` do everything on a fresh host.

ARCH_UNAME := $(shell uname -m)
BPF_ARCH := $(patsubst x86_64,x86,$(patsubst aarch64,arm64,$(ARCH_UNAME)))
VMLINUX := vmlinux/$(ARCH_UNAME)/vmlinux.h

CC := clang
BPFTOOL ?= bpftool
PROTOC_C ?= protoc-c
BUILD ?= build
SAN ?=

PKGS := libbpf libelf zlib libprotobuf-c libcurl json-c libmicrohttpd ncursesw libnghttp2 libbrotlidec libzstd capstone
OPT ?= -O2 -g
override CFLAGS += $(OPT) -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	  -D_GNU_SOURCE -Iinclude -Isrc -I$(BUILD) -I$(BUILD)/gen $(SAN)
LDLIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lbpf -lelf -lz -lprotobuf-c -lcurl -ljson-c -lmicrohttpd -lncursesw -ltinfo -lnghttp2 -lbrotlidec -lzstd -lcapstone) \
	  -lssl -lcrypto -lpthread
LDFLAGS += $(SAN)

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -Ivmlinux/$(ARCH_UNAME) -Iinclude -Wall \
	      -Wno-unused-function $(BPF_EXTRA)

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/bpf/%.bpf.o)
SKEL := $(BUILD)/tokentap.skel.h

PROTOS := $(wildcard src/export/proto/*.proto)
PROTO_C := $(PROTOS:src/export/proto/%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_OBJS := $(PROTO_C:.c=.o)

SRCS := $(shell find src -name '*.c' | sort)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(PROTO_OBJS)
LIB := $(BUILD)/libtokentap.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

.SECONDARY:
.PHONY: all deps run test test-unit test-e2e test-asan fuzz fuzz-smoke bench vmlinux clean fmt soak test-unit-asan
all: $(BUILD)/tokentap

# ---- dependencies (Debian packages, npm for the tests) --------------------------------------
deps:
	@deploy/deps.sh

# ---- BPF -----------------------------------------------------------------------------------
$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.bpf.h) include/tokentap_abi.h $(VMLINUX)
	@mkdir -p $(@D)
	$(CC) $(BPF_CFLAGS) -c $< -o $@.tmp.o
	$(BPFTOOL) gen object $@ $@.tmp.o
	@rm -f $@.tmp.o

$(BUILD)/bpf/tokentap.o: $(BPF_OBJS)
	$(BPFTOOL) gen object $@ $^

$(SKEL): $(BUILD)/bpf/tokentap.o
	$(BPFTOOL) gen skeleton $< name tokentap_bpf > $@

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX)

# ---- user space ----------------------------------------------------------------------------
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: src/export/proto/%.proto
	@mkdir -p $(@D)
	$(PROTOC_C) --c_out=$(BUILD)/gen -Isrc/export/proto $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(CFLAGS) -w -c $< -o $@

$(BUILD)/src/%.o: src/%.c $(SKEL) $(PROTO_C) $(shell find src include -name '*.h')
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

# The built-in pricing table is deploy/pricing.json, .incbin'd by this object.
$(BUILD)/src/span/pricing_data.o: deploy/pricing.json

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# Objects, not the archive: subcommands are weak references that an archive would not pull in.
$(BUILD)/tokentap: $(BUILD)/src/main.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# ---- run -----------------------------------------------------------------------------------
# Installs what is missing, builds, runs tokentap on this host with its default output.
run: deps all
	$(BUILD)/tokentap $(ARGS)

# ---- tests ---------------------------------------------------------------------------------
$(BUILD)/tests/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/unit $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

test-unit: $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

# The README's test command: installs, builds, runs every test, prints "N passed, N failed".
test: export TOKENTAP_TEST_DEPS=1
test: deps all $(UNIT_BINS)
	@tests/run-all.sh

test-e2e: all
	@tests/e2e/run.sh

# Unit tests and the e2e suites again under AddressSanitizer + UndefinedBehaviorSanitizer
# (tests/run-asan.sh; E2E_ASAN=0 for the unit tests alone).
test-asan:
	$(MAKE) BUILD=build/asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		OPT="-O1 -g" build/asan/tokentap test-unit-asan

test-unit-asan: $(UNIT_BINS)
	@BUILD=$(BUILD) tests/run-asan.sh

# Mixed traffic for DURATION (90s, 10m, 2h) with memory sampled; reports loss and flatness.
DURATION ?= 10m
soak: all
	@python3 tests/bench/soak.py --tokentap $(BUILD)/tokentap --duration $(DURATION) \
		--out $(BUILD)/soak/report.json

# libFuzzer targets: `make fuzz FUZZ_SECONDS=600` runs each for that long; fuzz-smoke is short.
FUZZ_SECONDS ?= 60
fuzz:
	@tests/fuzz/run.sh $(FUZZ_SECONDS)
fuzz-smoke:
	@tests/fuzz/run.sh 10

bench: all
	@tests/bench/run.sh

fmt:
	clang-format -i $(shell find src include tests/unit tests/fuzz -name '*.[ch]') bpf/*.c

clean:
	rm -rf build
