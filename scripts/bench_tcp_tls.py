#!/usr/bin/env python3
"""tcp_proxy TLS origination benchmark: ballast proxy (epoll, io_uring) against Envoy 1.40 and HAProxy, in one run.

Each proxy under test accepts plain TCP and forwards it with tcp_proxy (HAProxy: `mode tcp`) to a
cluster that originates TLS (TLS 1.2, the cluster default in Envoy, sni localhost, the CA verified)
to one shared TLS terminator (a `ballast proxy` whose tcp_proxy passes the plaintext to a
`ballast server`). One worker each, an access log to a file (HAProxy: to stdout), everything pinned
to CPU 0. Two loads from wrk over plain HTTP:

- keep-alive: `wrk -c16` on 16 persistent connections, each one upstream TLS connection: req/s and
  the proxy's CPU per request;
- handshakes: the same with `Connection: close`, so every request is a new upstream connection with
  a full TLS handshake (no resumption: `max_session_keys: 0`, HAProxy `no-ssl-reuse`): connections/s and
  CPU per connection.

Runs are interleaved (round x load x proxy, the order rotated every round); ratios are per round
against HAProxy (median, min-max), printed as a Markdown table.

Usage: scripts/bench_tcp_tls.py [--ballast .build/release/ballast] [--rounds 3] [--seconds 5]
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
LOG_FORMAT = "[%START_TIME%] %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %UPSTREAM_HOST%\\n"


def tcp_proxy(log: Path) -> str:
    return (f'{{ name: envoy.filters.network.tcp_proxy, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, '
            f'stat_prefix: t, cluster: next, access_log: [ {{ name: envoy.access_loggers.file, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, '
            f'path: {log}, log_format: {{ text_format_source: {{ inline_string: "{LOG_FORMAT}" }} }} }} }} ] }} }}')


def cluster(port: int, tls: str = "") -> str:
    return (f"  - name: next\n    connect_timeout: 1s\n{tls}"
            f"    load_assignment: {{ cluster_name: next, endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: {HOST}, port_value: {port} }} }} }} }} ] }} ] }}\n")


def originating(port: int, next_port: int, certs: Path, log: Path) -> str:
    tls = (f'    transport_socket: {{ name: envoy.transport_sockets.tls, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, '
           f'sni: localhost, max_session_keys: 0, common_tls_context: {{ validation_context: {{ trusted_ca: {{ filename: {certs}/ca.pem }} }} }} }} }}\n')
    return (f"static_resources:\n  listeners:\n  - name: plain\n    address: {{ socket_address: {{ address: {HOST}, port_value: {port} }} }}\n"
            f"    filter_chains: [ {{ filters: [ {tcp_proxy(log)} ] }} ]\n  clusters:\n" + cluster(next_port, tls))


def terminating(port: int, upstream: int, certs: Path, log: Path) -> str:
    socket = (f'{{ name: envoy.transport_sockets.tls, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, '
              f'common_tls_context: {{ tls_certificates: [ {{ certificate_chain: {{ filename: {certs}/server.pem }}, private_key: {{ filename: {certs}/server.key }} }} ] }} }} }}')
    return (f"static_resources:\n  listeners:\n  - name: tls\n    address: {{ socket_address: {{ address: {HOST}, port_value: {port} }} }}\n"
            f"    filter_chains: [ {{ transport_socket: {socket}, filters: [ {tcp_proxy(log)} ] }} ]\n  clusters:\n" + cluster(upstream))


def haproxy_cfg(port: int, next_port: int, certs: Path) -> str:
    return f"""global
    nbthread 1
    maxconn 4000
    log stdout format raw local0
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend plain
    bind {HOST}:{port}
    default_backend next
backend next
    server s1 {HOST}:{next_port} ssl verify required ca-file {certs}/ca.pem sni str(localhost) ssl-max-ver TLSv1.2 no-ssl-reuse
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ballast", default=str(REPO / ".build/release/ballast"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--cpus", default="0", help="taskset CPU list for every process (default 0)")
    args = p.parse_args()
    tools = require_tools("wrk", "haproxy", "taskset", "openssl")
    raise_nofile_limit()
    envoy = subprocess.run([str(REPO / "scripts/ensure-envoy.sh")], capture_output=True, text=True, check=True).stdout.split()[-1]
    work = Path(tempfile.mkdtemp(prefix="ballast-bench-tcp-tls-"))
    certs = work / "certs"
    subprocess.run([str(REPO / "scripts/tls-test-certs.sh"), str(certs)], check=True)

    upstream_port, terminator_port = free_port(), free_port()
    upstream = Server("upstream", [args.ballast, "server", "--port", str(upstream_port), "--address", HOST, "--workers", "1"],
                      work, cpus=args.cpus)
    (work / "terminator.yaml").write_text(terminating(terminator_port, upstream_port, certs, work / "terminator-access.log"))
    terminator = Server("terminator", [args.ballast, "proxy", "-c", str(work / "terminator.yaml"), "--concurrency", "1", "--io", "epoll"],
                        work, cpus=args.cpus)
    servers: dict[str, Server] = {}
    ports: dict[str, int] = {}
    for name in ("ballast-epoll", "ballast-io_uring", "envoy", "haproxy"):
        ports[name] = free_port()
        log = work / f"{name}-access.log"
        config = work / f"{name}.yaml"
        if name.startswith("ballast"):
            config.write_text(originating(ports[name], terminator_port, certs, log))
            argv = [args.ballast, "proxy", "-c", str(config), "--concurrency", "1", "--io", name.split("-")[1]]
        elif name == "envoy":
            config.write_text(originating(ports[name], terminator_port, certs, log))
            argv = [envoy, "-c", str(config), "--concurrency", "1", "--disable-hot-restart", "-l", "error"]
        else:
            config = work / "haproxy.cfg"
            config.write_text(haproxy_cfg(ports[name], terminator_port, certs))
            argv = [tools["haproxy"], "-f", str(config)]
        servers[name] = Server(name, argv, work, cpus=args.cpus)
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        upstream.start()
        terminator.start()
        for s in servers.values():
            s.start()
        time.sleep(1.0)
        for s in [terminator, *servers.values()]:
            s.check_alive()
        urls = {name: f"http://{HOST}:{ports[name]}/?size=100" for name in servers}
        results = interleaved_wrk_rounds(servers, urls, tools["wrk"], args.rounds, args.seconds, args.connections, args.cpus)
    finally:
        for s in [*servers.values(), terminator, upstream]:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    def ratios(name: str, load: str) -> dict | None:
        return per_round_ratios(results, name, "haproxy", load, "cpu_us")

    print("| proxy | keep-alive req/s | CPU/request | CPU/request vs HAProxy | new connections/s | CPU/connection | CPU/connection vs HAProxy | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name in servers:
        ka, hs = results[(name, "keep-alive")], results[(name, "handshakes")]
        print(f"| {name} | {fmt_spread(spread([x['rps'] for x in ka]), fmt=lambda v: f'{v:.0f}')} "
              f"| {fmt_spread(spread([x['cpu_us'] for x in ka]), fmt=lambda v: f'{v:.1f}', suffix=' us')} "
              f"| {fmt_spread(ratios(name, 'keep-alive'), fmt=lambda v: f'{v:.2f}')} "
              f"| {fmt_spread(spread([x['rps'] for x in hs]), fmt=lambda v: f'{v:.0f}')} "
              f"| {fmt_spread(spread([x['cpu_us'] for x in hs]), fmt=lambda v: f'{v:.0f}', suffix=' us')} "
              f"| {fmt_spread(ratios(name, 'handshakes'), fmt=lambda v: f'{v:.2f}')} "
              f"| {sum(x['errors'] for x in ka + hs)} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench_tcp_tls: {e}", file=sys.stderr)
        sys.exit(1)
