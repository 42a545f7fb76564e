# Ballast: `make demo` runs the main job, `make test` runs the tests. Both install what they need.
SWIFT ?= swift
# iptables and iproute2: ballast sidecar-init and its namespace test (SidecarEndToEndTests).
SYSTEM_PACKAGES := liburing-dev libssl-dev libnuma-dev pkg-config iptables iproute2
BENCH_PACKAGES := wrk nginx-light hey
BALLAST := .build/release/ballast

.PHONY: all deps build test demo bench-server bench-balance bench-load bench-proxy bench-gate clean

all: build

deps:
	@scripts/ensure-packages.sh $(SYSTEM_PACKAGES)

build: deps
	$(SWIFT) build -c release

# Debug build of everything (tests use the debug `ballast` binary), then the whole suite.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

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

# ballast proxy (each backend) vs nginx vs HAProxy vs direct, in front of the same ballast server.
bench-proxy: build
	@scripts/ensure-packages.sh wrk nginx-light haproxy
	python3 scripts/bench_proxy.py --ballast $(BALLAST) --markdown bench-out/bench-proxy.md --json bench-out/bench-proxy.json

# The CI gate on real data: 10 same-build sweep pairs (should pass), 3 with worker cost +10% (should fail).
bench-gate: build
	scripts/gate_check.sh $(BALLAST) 10 3

clean:
	rm -rf .build bench-out
