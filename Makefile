# Ballast: `make demo` runs the main job, `make test` runs the tests. Both install what they need.
SWIFT ?= swift
SYSTEM_PACKAGES := liburing-dev libssl-dev libnuma-dev pkg-config
BENCH_PACKAGES := wrk nginx-light
BALLAST := .build/release/ballast

.PHONY: all deps build test demo bench-server clean

all: build

deps:
	@scripts/ensure-packages.sh $(SYSTEM_PACKAGES)

build: deps
	$(SWIFT) build -c release

# Debug build of everything (tests use the debug `ballast` binary), then the whole suite.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# A short A/B run (epoll vs io_uring) against `ballast server`; the report lands in results/demo/.
demo: build
	@scripts/ensure-packages.sh wrk
	python3 scripts/demo.py --ballast $(BALLAST) --out results/demo

# wrk drives ballast server (each backend) and nginx, interleaved: req/s, latency, CPU per request.
bench-server: build
	@scripts/ensure-packages.sh $(BENCH_PACKAGES)
	python3 scripts/bench_server.py --ballast $(BALLAST) --load-cpus 0 --markdown bench-out/bench-server.md --json bench-out/bench-server.json

clean:
	rm -rf .build bench-out
