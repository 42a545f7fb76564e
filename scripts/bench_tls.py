#!/usr/bin/env python3
"""TLS benchmark: ballast proxy (epoll, io_uring) against nginx, HAProxy and Envoy 1.40, in one run.

Each proxy terminates TLS (the same throwaway ECDSA P-256 certificate from
scripts/tls-test-certs.sh) in front of one `ballast server` upstream (plain HTTP, keep-alive), with
one worker (`--concurrency 1`, `nbthread 1`, `worker_processes 1`) and an access log to a file. Everything is pinned to
CPU 0, as bench_proxy.py does. Two loads per proxy, from wrk over TLS:

- keep-alive: `wrk -c16` on 16 persistent TLS connections: req/s and the proxy's CPU per request;
- handshakes: the same with `Connection: close`, so every request is a new connection with a full
  handshake (wrk does not resume sessions): handshakes/s and CPU per handshake.

Runs are interleaved (round x load x proxy, the proxy order rotated every round). The result is
ratios to HAProxy per round (median, min-max), printed as a Markdown table.

Usage: scripts/bench_tls.py [--ballast .build/release/ballast] [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    BenchError, Server, fmt_spread, free_port, interleaved_wrk_rounds, per_round_ratios, raise_nofile_limit, require_tools,
    spread,
)

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
LOG_FORMAT = "[%START_TIME%] %REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %DOWNSTREAM_TLS_VERSION%\\n"


def bootstrap(port: int, upstream: int, certs: Path, log: Path) -> str:
    return f"""static_resources:
  listeners:
  - name: tls
    address: {{ socket_address: {{ address: {HOST}, port_value: {port} }} }}
    filter_chains:
    - transport_socket: {{ name: envoy.transport_sockets.tls, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {{ alpn_protocols: [http/1.1], tls_certificates: [ {{ certificate_chain: {{ filename: {certs}/server.pem }}, private_key: {{ filename: {certs}/server.key }} }} ] }} }} }}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: tls
          codec_type: HTTP1
          access_log:
          - name: envoy.access_loggers.file
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: {log}, log_format: {{ text_format_source: {{ inline_string: "{LOG_FORMAT}" }} }} }}
          route_config: {{ virtual_hosts: [ {{ name: all, domains: ["*"], routes: [ {{ match: {{ prefix: "/" }}, route: {{ cluster: echo }} }} ] }} ] }}
          http_filters: [ {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }} ]
  clusters:
  - name: echo
    connect_timeout: 1s
    load_assignment: {{ cluster_name: echo, endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: {HOST}, port_value: {upstream} }} }} }} }} ] }} ] }}
"""


def nginx_conf(port: int, upstream: int, certs: Path, work: Path, log: Path) -> str:
    """nginx terminating TLS (OpenSSL, like Ballast and HAProxy), one worker, keep-alive upstream."""
    return f"""worker_processes 1;
daemon off;
master_process on;
pid {work}/nginx.pid;
error_log {work}/nginx.error.log;
events {{ worker_connections 4096; }}
http {{
    access_log {log};
    client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work}; uwsgi_temp_path {work}; scgi_temp_path {work};
    keepalive_requests 1000000;
    upstream backend {{ server {HOST}:{upstream}; keepalive 64; }}
    server {{
        listen {HOST}:{port} ssl;
        ssl_certificate {certs}/server.pem;
        ssl_certificate_key {certs}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
}}
"""


def haproxy_cfg(port: int, upstream: int, pem: Path) -> str:
    return f"""global
    nbthread 1
    maxconn 4000
    log stdout format raw local0
defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend tls
    bind {HOST}:{port} ssl crt {pem} alpn http/1.1
    default_backend echo
backend echo
    server s1 {HOST}:{upstream}
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ballast", default=str(REPO / ".build/release/ballast"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--cpus", default="0", help="taskset CPU list for every process (default 0)")
    args = p.parse_args()
    tools = require_tools("wrk", "haproxy", "nginx", "taskset", "openssl")
    raise_nofile_limit()
    envoy = subprocess.run([str(REPO / "scripts/ensure-envoy.sh")], capture_output=True, text=True, check=True).stdout.split()[-1]
    work = Path(tempfile.mkdtemp(prefix="ballast-bench-tls-"))
    certs = work / "certs"
    subprocess.run([str(REPO / "scripts/tls-test-certs.sh"), str(certs)], check=True)
    pem = work / "haproxy.pem"
    pem.write_text((certs / "server.pem").read_text() + (certs / "server.key").read_text())

    upstream_port = free_port()
    servers: dict[str, Server] = {}
    upstream = Server("upstream", [args.ballast, "server", "--port", str(upstream_port), "--address", HOST, "--workers", "1"],
                      work, cpus=args.cpus)
    ports: dict[str, int] = {}
    for name in ("ballast-epoll", "ballast-io_uring", "envoy", "nginx", "haproxy"):
        ports[name] = free_port()
        log = work / f"{name}-access.log"
        if name.startswith("ballast"):
            config = work / f"{name}.yaml"
            config.write_text(bootstrap(ports[name], upstream_port, certs, log))
            argv = [args.ballast, "proxy", "-c", str(config), "--concurrency", "1", "--io", name.split("-")[1]]
        elif name == "envoy":
            config = work / "envoy.yaml"
            config.write_text(bootstrap(ports[name], upstream_port, certs, log))
            argv = [envoy, "-c", str(config), "--concurrency", "1", "--disable-hot-restart", "-l", "error"]
        elif name == "nginx":
            config = work / "nginx.conf"
            config.write_text(nginx_conf(ports[name], upstream_port, certs, work, log))
            argv = [tools["nginx"], "-p", f"{work}/", "-c", str(config), "-e", str(work / "nginx.error.log")]
        else:
            config = work / "haproxy.cfg"
            config.write_text(haproxy_cfg(ports[name], upstream_port, pem))
            argv = [tools["haproxy"], "-f", str(config)]  # its access log goes to stdout: <name>.out
        servers[name] = Server(name, argv, work, cpus=args.cpus)
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        upstream.start()
        for s in servers.values():
            s.start()
        time.sleep(1.0)
        for name, s in servers.items():
            s.check_alive()
        urls = {name: f"https://{HOST}:{ports[name]}/?size=100" for name in servers}
        results = interleaved_wrk_rounds(servers, urls, tools["wrk"], args.rounds, args.seconds, args.connections, args.cpus)
    finally:
        for s in [*servers.values(), upstream]:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    def ratios(name: str, load: str, key: str) -> dict | None:
        return per_round_ratios(results, name, "haproxy", load, key)

    print("| proxy | keep-alive req/s | CPU/request | CPU/request vs HAProxy | handshakes/s | CPU/handshake | handshakes per CPU-second vs HAProxy | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name in servers:
        ka, hs = results[(name, "keep-alive")], results[(name, "handshakes")]
        hs_per_cpu = ratios(name, "handshakes", "cpu_us")
        inverse = None if hs_per_cpu is None else {"median": 1 / hs_per_cpu["median"], "min": 1 / hs_per_cpu["max"], "max": 1 / hs_per_cpu["min"], "n": hs_per_cpu["n"]}
        print(f"| {name} | {fmt_spread(spread([x['rps'] for x in ka]), fmt=lambda v: f'{v:.0f}')} "
              f"| {fmt_spread(spread([x['cpu_us'] for x in ka]), fmt=lambda v: f'{v:.1f}', suffix=' us')} "
              f"| {fmt_spread(ratios(name, 'keep-alive', 'cpu_us'), fmt=lambda v: f'{v:.2f}')} "
              f"| {fmt_spread(spread([x['rps'] for x in hs]), fmt=lambda v: f'{v:.0f}')} "
              f"| {fmt_spread(spread([x['cpu_us'] for x in hs]), fmt=lambda v: f'{v:.0f}', suffix=' us')} "
              f"| {fmt_spread(inverse, fmt=lambda v: f'{v:.2f}')} "
              f"| {sum(x['errors'] for x in ka + hs)} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench_tls: {e}", file=sys.stderr)
        sys.exit(1)
