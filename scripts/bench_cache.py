#!/usr/bin/env python3
"""CPU per request of a cache hit vs a proxied request through `ballast proxy` (cache filter,
access log on), and of a proxied request on a listener without the cache filter, interleaved in
one run.

usage: scripts/bench_cache.py BALLAST [ROUNDS] [REQUESTS]

One `ballast server` echo backend and one `ballast proxy` (one worker per listener) with two
listeners: cache + router, and router alone. Per round, in rotating order: REQUESTS requests
(`ballast load -qps 0 -c 4 -n`) to a path whose 1 KiB answer is cacheable (every request after the
first of the run is a hit), to a path whose answer is not (looked up, missed, proxied), and that
path on the listener without the filter. The proxy's CPU time (utime + stime from /proc) over each
batch gives CPU per request; `ballast load` gives req/s. Prints the median and range of each, and
the ratios to the filterless proxied request per round.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


CONFIG = """admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}}}
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          access_log: [{{name: envoy.access_loggers.file, typed_config: {{"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: {log}}}}}]
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: "/"}}, route: {{cluster: echo}}}}]}}]}}
          http_filters:
          - {{name: envoy.filters.http.cache, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig, typed_config: {{"@type": type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig}}}}}}
          - {{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {plain}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: plain
          access_log: [{{name: envoy.access_loggers.file, typed_config: {{"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: {log}}}}}]
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: "/"}}, route: {{cluster: echo}}}}]}}]}}
          http_filters:
          - {{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}
  clusters:
  - {{name: echo, type: STATIC, load_assignment: {{cluster_name: echo, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {echo}}}}}}}}}]}}]}}}}
"""

# A date in the future keeps the entry fresh for the whole run (no apparent age).
HIT = "/hit?size=1024&header=cache-control:max-age%3D3600&header=date:Fri,%2001%20Jan%202100%2000:00:00%20GMT"
PROXIED = "/proxied?size=1024"


def main():
    ballast = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    requests = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    work = tempfile.mkdtemp(prefix="bench-cache-")
    echo, port, plain, admin = free_port(), free_port(), free_port(), free_port()
    config = os.path.join(work, "proxy.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(admin=admin, port=port, plain=plain, echo=echo, log=os.path.join(work, "access.log")))
    procs = []
    try:
        procs.append(subprocess.Popen([ballast, "server", "--port", str(echo), "--address", "127.0.0.1", "--workers", "1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(echo)
        proxy = subprocess.Popen([ballast, "proxy", "-c", config, "--concurrency", "1", "-l", "error"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proxy)
        wait_port(port)
        wait_port(plain)
        kinds = ("hit", "proxied", "plain")
        results = {k: [] for k in kinds}

        def batch(kind):
            url = f"http://127.0.0.1:{plain if kind == 'plain' else port}" + (HIT if kind == "hit" else PROXIED)
            before = cpu_seconds(proxy.pid)
            out = subprocess.run([ballast, "load", "-qps", "0", "-c", "4", "-n", str(requests), "-json", "-", url],
                                 capture_output=True, text=True, check=True).stdout
            cpu = cpu_seconds(proxy.pid) - before
            qps = json.loads(out)["ActualQPS"]
            return cpu / requests * 1e6, qps

        batch("hit")  # warm: the entry is stored, pools and buffers grown
        batch("proxied")
        batch("plain")
        for r in range(rounds):
            for k in range(3):
                kind = kinds[(r + k) % 3]
                results[kind].append(batch(kind))
        for kind in kinds:
            cpu = [c for c, _ in results[kind]]
            qps = [q for _, q in results[kind]]
            print(f"{kind:8} CPU/request median {statistics.median(cpu):6.2f} us (range {min(cpu):.2f}-{max(cpu):.2f}); "
                  f"req/s median {statistics.median(qps):8.0f} (range {min(qps):.0f}-{max(qps):.0f})")
        for kind in ("hit", "proxied"):
            cpu_ratio = [a[0] / b[0] for a, b in zip(results[kind], results["plain"])]
            qps_ratio = [a[1] / b[1] for a, b in zip(results[kind], results["plain"])]
            print(f"{kind}/plain CPU per request: median {statistics.median(cpu_ratio):.2f} (range {min(cpu_ratio):.2f}-{max(cpu_ratio):.2f}); "
                  f"req/s: median {statistics.median(qps_ratio):.2f} (range {min(qps_ratio):.2f}-{max(qps_ratio):.2f})")
        print(f"{rounds} rounds of {requests} requests per kind, 4 connections, access log on, 1 KiB bodies")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
