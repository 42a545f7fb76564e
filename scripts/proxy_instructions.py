#!/usr/bin/env python3
"""Instructions per request of `ballast proxy` builds under callgrind (epoll, one worker, access log
on): the deterministic companion of proxy_ab.py, whose wall-clock CPU A/B cannot resolve a few
percent on a busy 2-core machine. For each binary: one run answering N requests and one answering
2N (same start-up, connections and shutdown), the difference divided by N. Also writes each 2N run's
callgrind output, so `callgrind_annotate --inclusive=no` shows where two builds differ.

Usage: python3 scripts/proxy_instructions.py OUTDIR N BALLAST [BALLAST ...]
(release builds; valgrind installed; the upstream is the first binary's `ballast server`).
"""
import socket, subprocess, sys, time
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    s = socket.socket(); s.bind((HOST, 0)); port = s.getsockname()[1]; s.close(); return port


def wait_port(port: int, deadline_s: float = 60) -> None:
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            socket.create_connection((HOST, port), timeout=1).close(); return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on {HOST}:{port} after {deadline_s:.0f} s")


def bootstrap(listen: int, upstream: int, log: Path) -> str:
    return f"""static_resources:
  listeners:
    - name: ingress
      address: {{socket_address: {{address: {HOST}, port_value: {listen}}}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ingress_http
                access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: {log}
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes: [{{match: {{prefix: "/"}}, route: {{cluster: backend}}}}]
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
    - name: backend
      connect_timeout: 1s
      type: STATIC
      load_assignment:
        cluster_name: backend
        endpoints:
          - lb_endpoints:
              - endpoint: {{address: {{socket_address: {{address: {HOST}, port_value: {upstream}}}}}}}
"""


def total_instructions(binary: str, load: str, upstream: int, requests: int, out: Path) -> int:
    port = free_port()
    conf = out.with_suffix(".yaml")
    conf.write_text(bootstrap(port, upstream, out.with_suffix(".access.log")))
    stripped = out.parent / (Path(binary).name + f"-{abs(hash(binary)) % 10**6}-nodebug")
    if not stripped.exists():
        subprocess.run(["objcopy", "--strip-debug", binary, str(stripped)], check=True)
    proxy = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                              str(stripped), "proxy", "-c", str(conf), "--concurrency", "1", "--io", "epoll",
                              "--log-level", "warning"],
                             stdout=subprocess.DEVNULL, stderr=open(out.with_suffix(".stderr"), "w"))
    try:
        wait_port(port)
        subprocess.run([load, "load", "-qps", "0", "-c", "8", "-n", str(requests), f"http://{HOST}:{port}/?size=100"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    finally:
        proxy.terminate()
        proxy.wait(timeout=120)
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise SystemExit(f"callgrind wrote no totals to {out}")


def main() -> None:
    outdir, n, binaries = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    outdir.mkdir(parents=True, exist_ok=True)
    up_port = free_port()
    upstream = subprocess.Popen([binaries[0], "server", "--address", HOST, "--port", str(up_port), "--io", "epoll"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(up_port)
        for i, b in enumerate(binaries):
            once = total_instructions(b, binaries[0], up_port, n, outdir / f"b{i}-n1.callgrind")
            twice = total_instructions(b, binaries[0], up_port, 2 * n, outdir / f"b{i}-n2.callgrind")
            print(f"{b}: {(twice - once) / n:,.0f} instructions per request "
                  f"(totals {once:,} for {n}, {twice:,} for {2 * n}; {outdir}/b{i}-n2.callgrind)", flush=True)
    finally:
        upstream.terminate(); upstream.wait(timeout=30)


if __name__ == "__main__":
    main()
