# moat — top-level entry points. Every target installs what it needs (scripts/deps.sh).
BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_RUNS   ?= 1000000
JOBS        ?= $(shell nproc)
CMAKE_FLAGS ?=
# Our own targets (and CI, which runs them) keep the tree warning-clean; a plain
# `cmake` configure leaves -Werror off (MOAT_WERROR in CMakeLists.txt).
WERROR      := -DMOAT_WERROR=ON
BENCH_OUT ?= /tmp/moat-bench
BENCH_SECONDS ?= 4
BENCH_PASSES ?= 2

.PHONY: all deps build demo test unit integration asan fuzz-smoke fuzz-long fuzz-build bench bench-policy bench-tls bench-alloc stress install clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja $(WERROR) $(CMAKE_FLAGS) >/dev/null
	@ninja -C $(BUILD) -j $(JOBS)

## The demo: a sandboxed command gets its address and pings the gateway, offline.
demo: build
	@bash scripts/demo.sh $(BUILD)

## Every test (unit + integration with the kernel's stack in namespaces).
test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j 2

unit: build
	@ctest --test-dir $(BUILD) --output-on-failure -L unit -j 2

integration: build
	@ctest --test-dir $(BUILD) --output-on-failure -L integration

## The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMOAT_SANITIZE=ON -DMOAT_BENCH=OFF $(WERROR) >/dev/null
	@ninja -C $(ASAN_BUILD) -j $(JOBS)
	@# Same suite; the bulk-transfer integration tests move 64 MiB instead of 1 GiB under ASan.
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  MOAT_IT_BULK_BYTES=67108864 MOAT_IT_SANITIZED=1 ctest --test-dir $(ASAN_BUILD) --output-on-failure -j 2

fuzz-build: deps
	@cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DMOAT_FUZZ=ON -DMOAT_TESTS=OFF -DMOAT_BENCH=OFF $(WERROR) >/dev/null
	@ninja -C $(FUZZ_BUILD) -j $(JOBS)

## Each libFuzzer target for FUZZ_SECONDS over its checked-in corpus.
fuzz-smoke: fuzz-build
	@bash scripts/fuzz-smoke.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

## SPEC R-HARD-6: each libFuzzer target for FUZZ_RUNS (10^6) executions; not part of `make test`.
fuzz-long: fuzz-build
	@bash scripts/fuzz-long.sh $(FUZZ_BUILD) $(FUZZ_RUNS)

## Side-by-side benchmark against pasta and slirp4netns (../shared/bench/netbench); prints ratios.
bench: build
	@bash bench/run.sh $(BENCH_OUT) $(BENCH_SECONDS) $(BENCH_PASSES)

## SPEC R-PERF-2: tcp_out / tcp_crr with 1000 domain rules + 100k block list vs profile all.
bench-policy: build
	@bash bench/policy_overhead.sh $(BENCH_OUT)-policy $(BENCH_SECONDS) $(BENCH_PASSES)

## SPEC R-PERF-5: TLS interception vs direct, HAProxy and mitmproxy (new conn/s, h2 download,
## keep-alive req/s); installs HAProxy and mitmproxy (scripts/deps.sh bench). Prints ratios.
bench-tls: build
	@bash scripts/deps.sh bench
	@bash bench/tls.sh $(BENCH_OUT)-tls $(BENCH_SECONDS) $(BENCH_PASSES)

## Heap allocations per GB / per 1000 connections, queries, transactions on the data path
## (an LD_PRELOAD counter; two run lengths cancel setup), next to throughput.
bench-alloc: build
	@bash bench/alloc.sh $(BENCH_OUT)-alloc

## Floods from a hostile guest (SYN, fragments, UDP, garbage, ARP/NDP/DHCP, DNS, published-port
## connections): moat's peak RSS, CPU and a concurrent download's longest stall. Not in make test.
stress: build
	@bash bench/stress.sh $(BUILD)/src/cli/moat

## Installs the CLI, libmoat (.so/.a), header, pkg-config and CMake package files, man pages,
## shell completions and the systemd unit under PREFIX (default /usr/local).
PREFIX ?= /usr/local
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
