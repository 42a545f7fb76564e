#!/usr/bin/env python3
"""Soak: `ballast proxy` under steady load and faults for a bounded time (`make soak`, not in CI).

The proxy (2 workers, access log on in Envoy's default format) serves an open-loop load of
`--connections` keep-alive clients at `--rate` requests/s (`ballast load -uniform`), while:
- the upstream (`ballast server`) is killed (SIGKILL) and restarted on the same port every
  `--upstream-restart` seconds (requests then get 503 UF or UC, as flagged in the access log);
- the configuration is reloaded (`POST /reload`, the route timeout alternating) every `--reload` s;
- `--slow-clients` clients trickle each request head one byte at a time (well inside
  request_headers_timeout), and one client sends malformed requests (a field line without a colon).

Every second it samples the proxy's RSS and open file descriptors; at the end it checks:
- no response lost: the load generator's socket errors are 0, every load response has exactly one
  access-log line, every non-200 load response is a 503 flagged UF/UC/URX, slow clients got an
  answer each time, every malformed request got a 400;
- RSS and open fds grew less than 5% from the end of the warm-up to the end of the run;
- no watchdog miss.
It writes report.md, samples.csv and resources.svg into `--out/<UTC timestamp>/` and exits 1 when a
check fails (2 on bad usage or a process that would not start).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    BenchError, Server, environment, free_port, http_get, raise_nofile_limit, tree_rss_bytes, wait_until_serving,
)

REPO_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
LOAD_PATH = "/?size=100"
SLOW_PATH = "/slow?size=10"
GROWTH_LIMIT = 0.05
# Envoy's default access-log format: `[time] "METHOD PATH PROTO" CODE FLAGS ...`
LOG_LINE = re.compile(r'^\[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\S+) ')


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Soak ballast proxy under load, upstream restarts, reloads, slow and malformed clients.")
    p.add_argument("--ballast", default=str(REPO_DIR / ".build/release/ballast"), help="the ballast binary")
    p.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    p.add_argument("--warmup", type=float, default=60.0,
                   help="seconds before the growth baseline is taken, at the earliest (default 60; later if the clients' connections are still opening)")
    p.add_argument("--rate", type=int, default=2000, help="load requests per second, open loop (default 2000)")
    p.add_argument("--connections", type=int, default=1024, help="keep-alive load connections (default 1024)")
    p.add_argument("--upstream-restart", type=float, default=30.0, help="seconds between upstream kills (default 30; 0: none)")
    p.add_argument("--reload", type=float, default=10.0, help="seconds between config reloads (default 10; 0: none)")
    p.add_argument("--slow-clients", type=int, default=8, help="clients trickling their heads (default 8)")
    p.add_argument("--io", default="epoll", choices=["epoll", "io_uring"], help="the proxy's I/O backend")
    p.add_argument("--out", default=str(REPO_DIR / "results/soak"), help="report directory (a timestamped folder inside)")
    a = p.parse_args(argv)
    a.ballast = os.path.abspath(a.ballast)
    if a.minutes <= 0 or a.rate <= 0 or a.connections <= 0:
        p.error("--minutes, --rate and --connections must be positive")
    if a.warmup >= a.minutes * 60:
        p.error(f"--warmup ({a.warmup:g} s) must be shorter than the run ({a.minutes * 60:g} s)")
    if not os.access(a.ballast, os.X_OK):
        p.error(f"{a.ballast} is not an executable (make build)")
    return a


def proxy_config(listen: int, admin: int, upstream: int, log: Path, route_timeout: str) -> str:
    return f"""\
admin:
  address: {{socket_address: {{address: {HOST}, port_value: {admin}}}}}
static_resources:
  listeners:
    - name: soak
      address: {{socket_address: {{address: {HOST}, port_value: {listen}}}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: soak
                request_headers_timeout: 20s
                access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: {log}
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes: [{{match: {{prefix: "/"}}, route: {{cluster: backend, timeout: {route_timeout}}}}}]
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
    - name: backend
      connect_timeout: 0.25s
      type: STATIC
      lb_policy: ROUND_ROBIN
      load_assignment:
        cluster_name: backend
        endpoints:
          - lb_endpoints:
              - endpoint: {{address: {{socket_address: {{address: {HOST}, port_value: {upstream}}}}}}}
"""


@dataclass
class ClientTally:
    """Outcomes of the slow and malformed clients (updated by their threads under `lock`)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict = field(default_factory=dict)

    def add(self, key: str) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1


def read_status(sock: socket.socket) -> int | None:
    """The status code of the first response on `sock`, or None when the connection ends first."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def slow_client(port: int, stop: threading.Event, tally: ClientTally) -> None:
    """One request per connection, its head sent a byte every 40 ms (about 2.5 s per head)."""
    head = f"GET {SLOW_PATH} HTTP/1.1\r\nHost: soak\r\nUser-Agent: slow\r\nConnection: close\r\n\r\n".encode()
    while not stop.is_set():
        try:
            with socket.create_connection((HOST, port), timeout=30) as s:
                for b in head:
                    if stop.is_set():
                        return
                    s.sendall(bytes([b]))
                    time.sleep(0.04)
                status = read_status(s)
                tally.add(f"slow {status}" if status else "slow no answer")
        except OSError as e:
            tally.add(f"slow error {type(e).__name__}")
            time.sleep(0.2)


def malformed_client(port: int, stop: threading.Event, tally: ClientTally) -> None:
    """About 20 malformed requests per second, one per connection: each must get a 400."""
    bad = b"GET /bad HTTP/1.1\r\nHost: soak\r\nthis line has no colon\r\n\r\n"
    while not stop.is_set():
        try:
            with socket.create_connection((HOST, port), timeout=10) as s:
                s.sendall(bad)
                status = read_status(s)
                tally.add(f"malformed {status}" if status else "malformed no answer")
        except OSError as e:
            tally.add(f"malformed error {type(e).__name__}")
        time.sleep(0.05)


def post(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("POST", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def stat_values(admin: int, names: list[str]) -> dict:
    try:
        _, _, body = http_get(HOST, admin, "/stats", timeout=5)
    except OSError:
        return {}
    values = {}
    for line in body.decode(errors="replace").splitlines():
        name, _, value = line.partition(": ")
        if name in names and value.strip().lstrip("-").isdigit():
            values[name] = int(value)
    return values


def svg_chart(samples: list[dict], warmup: float) -> str:
    """Two stacked line charts (RSS MiB, open fds) against seconds, the warm-up shaded."""
    w, h, pad = 720, 200, 50
    t_max = max(s["t"] for s in samples) or 1

    def panel(key: str, label: str, y0: int, scale: float, second: str | None = None) -> str:
        vals = [s[key] * scale for s in samples]
        v_max = max(vals) * 1.1 or 1

        def line(values: list[float], colour: str) -> str:
            pts = " ".join(f"{pad + s['t'] / t_max * (w - 2 * pad):.1f},{y0 + h - v / v_max * h:.1f}" for s, v in zip(samples, values))
            return f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        shade = warmup / t_max * (w - 2 * pad)
        return (f'<rect x="{pad}" y="{y0}" width="{shade:.1f}" height="{h}" fill="#eee"/>'
                f'<rect x="{pad}" y="{y0}" width="{w - 2 * pad}" height="{h}" fill="none" stroke="#999"/>'
                + line(vals, "#1f77b4") + (line([s[second] * scale for s in samples], "#999") if second else "") +
                f'<text x="{pad}" y="{y0 - 6}" font-size="13">{label} (max {max(vals):,.1f}; warm-up shaded)</text>'
                f'<text x="{pad - 4}" y="{y0 + 10}" font-size="10" text-anchor="end">{v_max:,.0f}</text>'
                f'<text x="{pad - 4}" y="{y0 + h}" font-size="10" text-anchor="end">0</text>')
    body = (panel("rss", "proxy RSS, MiB", 30, 1 / 1048576)
            + panel("fds", "proxy open file descriptors (grey: without upstream connections)", 30 + h + 50, 1, "other_fds"))
    axis = f'<text x="{w / 2}" y="{2 * h + 120}" font-size="11" text-anchor="middle">seconds (0 to {t_max:,.0f})</text>'
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{2 * h + 130}" font-family="sans-serif">{body}{axis}</svg>\n'


def count_log(path: Path) -> dict:
    """Access-log lines by (path kind, code, flags)."""
    counts: dict = {}
    with path.open(errors="replace") as f:
        for line in f:
            m = LOG_LINE.match(line)
            if not m:
                counts[("unparsed", "", "")] = counts.get(("unparsed", "", ""), 0) + 1
                continue
            target = m.group(2)
            kind = "load" if target == LOAD_PATH else "slow" if target == SLOW_PATH else "other"
            key = (kind, m.group(3), m.group(4))
            counts[key] = counts.get(key, 0) + 1
    return counts


def binary_commit(binary: str, head: str) -> str:
    """HEAD, marked `-stale` when the binary is older than the last commit that changed the
    sources (a copied or old build: the figures are not HEAD's)."""
    out = subprocess.run(["git", "-C", str(REPO_DIR), "log", "-1", "--format=%ct", "--", "Sources", "Package.swift"],
                         capture_output=True, text=True)
    try:
        return head + "-stale" if os.path.getmtime(binary) < float(out.stdout.strip()) else head
    except (OSError, ValueError):
        return head


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    raise_nofile_limit()
    duration = a.minutes * 60
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(a.out) / stamp
    work = Path(tempfile.mkdtemp(prefix="ballast-soak."))
    listen, admin, upstream_port = free_port(), free_port(), free_port()
    log = work / "access.log"
    config = work / "proxy.yaml"
    timeouts = ["15s", "16s"]
    config.write_text(proxy_config(listen, admin, upstream_port, log, timeouts[0]))

    def new_upstream() -> Server:
        s = Server("upstream", [a.ballast, "server", "--port", str(upstream_port), "--address", HOST, "--workers", "1"], work)
        s.start()
        wait_until_serving(s, HOST, upstream_port, "/?size=1", expect_body_bytes=1)
        return s

    upstream = new_upstream()
    proxy = Server("proxy", [a.ballast, "proxy", "-c", str(config), "--concurrency", "2", "--io", a.io], work)
    proxy.start()
    load = None
    stop = threading.Event()
    tally = ClientTally()
    threads: list[threading.Thread] = []
    samples: list[dict] = []
    events = {"upstream restarts": 0, "reloads accepted": 0, "reloads refused": 0}
    try:
        wait_until_serving(proxy, HOST, listen, "/?size=1", expect_body_bytes=1)
        base = {"rss": tree_rss_bytes(proxy.pid), "fds": open_fds(proxy.pid)}
        load_json = work / "load.json"
        load = subprocess.Popen([a.ballast, "load", "-qps", str(a.rate), "-c", str(a.connections), "-t", f"{int(duration)}s",
                                 "-uniform", "-timeout", "10s", "-json", str(load_json), f"http://{HOST}:{listen}{LOAD_PATH}"],
                                stdout=subprocess.DEVNULL, stderr=(work / "load.err").open("wb"), cwd=work)
        for _ in range(a.slow_clients):
            threads.append(threading.Thread(target=slow_client, args=(listen, stop, tally), daemon=True))
        threads.append(threading.Thread(target=malformed_client, args=(listen, stop, tally), daemon=True))
        for t in threads:
            t.start()
        start = time.monotonic()
        # 0 turns a fault off (an isolation run: steady load only, or one fault at a time).
        never = float("inf")
        next_restart = a.upstream_restart or never
        next_reload = a.reload or never
        next_progress = 60.0
        while load.poll() is None:
            time.sleep(1)
            t = time.monotonic() - start
            proxy.check_alive()
            upstream_cx = stat_values(admin, ["cluster.backend.upstream_cx_active"]).get("cluster.backend.upstream_cx_active", 0)
            fds = open_fds(proxy.pid)
            # The upstream pool grows and shrinks with bursts (after every upstream restart):
            # what must not grow is everything else.
            samples.append({"t": round(t, 1), "rss": tree_rss_bytes(proxy.pid), "fds": fds, "upstream": upstream_cx,
                            "other_fds": fds - upstream_cx})
            if t >= next_restart:
                next_restart += a.upstream_restart
                os.killpg(upstream.pid, signal.SIGKILL)
                upstream.process.wait()
                time.sleep(0.5)  # half a second without an upstream: 503 UF for what arrives meanwhile
                upstream = new_upstream()
                events["upstream restarts"] += 1
            if t >= next_reload:
                next_reload += a.reload
                n = events["reloads accepted"] + events["reloads refused"] + 1
                config.write_text(proxy_config(listen, admin, upstream_port, log, timeouts[n % 2]))
                events["reloads accepted" if post(admin, "/reload") == 200 else "reloads refused"] += 1
            if t >= next_progress:
                next_progress += 60
                s = samples[-1]
                print(f"soak: {t / 60:.0f}/{a.minutes:g} min, RSS {s['rss'] / 1048576:.1f} MiB, {s['fds']} fds, "
                      f"{events['upstream restarts']} upstream restarts, {events['reloads accepted']} reloads", file=sys.stderr)
            if t > duration + 120:
                load.kill()
                raise BenchError("ballast load ran 2 minutes past its duration; killed")
        stop.set()
        for t in threads:
            t.join(timeout=35)
        stats = stat_values(admin, ["server.watchdog_miss", "server.watchdog_mega_miss", "http.soak.downstream_rq_total",
                                    "http.soak.downstream_cx_total", "cluster.backend.upstream_cx_connect_fail"])
    finally:
        stop.set()
        if load and load.poll() is None:
            load.kill()
        proxy.stop()
        upstream.stop()

    result = json.loads(load_json.read_text())
    codes = {int(k): v for k, v in result["RetCodes"].items()}
    socket_errors = result["Ballast"]["SocketErrors"]
    time.sleep(0.5)
    log_counts = count_log(log)
    load_lines = sum(v for (kind, _, _), v in log_counts.items() if kind == "load")
    bad_load = {f"{code} {flags}": v for (kind, code, flags), v in log_counts.items()
                if kind == "load" and code != "200" and not (code == "503" and set(flags.split(",")) <= {"UF", "UC", "URX"})}
    end = [s for s in samples if s["t"] <= duration - 2][-1]  # still under load (the last seconds wind down)
    # The baseline: after the warm-up and once the clients' connections are all open (a busy machine
    # can take longer than the warm-up to open them; growth measured from the ramp is not growth).
    settled = 0.98 * max(s["other_fds"] for s in samples if s["t"] <= end["t"])
    after_warmup = next((s for s in samples if s["t"] >= a.warmup and s["other_fds"] >= settled),
                        next(s for s in samples if s["t"] >= a.warmup))
    growth = {k: (end[k] - after_warmup[k]) / after_warmup[k] for k in ("rss", "other_fds")}
    clients = dict(sorted(tally.counts.items()))
    client_failures = {k: v for k, v in clients.items() if not (k in ("slow 200", "slow 503", "malformed 400"))}
    checks = [
        ("load: no socket errors (no lost response)", socket_errors == 0, f"{socket_errors}"),
        ("load: one access-log line per response", load_lines == sum(codes.values()),
         f"{load_lines:,} lines, {sum(codes.values()):,} responses"),
        ("load: every non-200 is a 503 UF/UC/URX", not bad_load, json.dumps(bad_load) if bad_load else "yes"),
        ("slow and malformed clients: each answered as expected (slow 200/503, malformed 400)", not client_failures,
         json.dumps(client_failures) if client_failures else "yes"),
        (f"RSS growth after warm-up < {GROWTH_LIMIT:.0%}", growth["rss"] < GROWTH_LIMIT,
         f"{after_warmup['rss'] / 1048576:.1f} -> {end['rss'] / 1048576:.1f} MiB ({growth['rss']:+.1%}; baseline at {after_warmup['t']:.0f} s)"),
        (f"open fds (not counting upstream connections) growth after warm-up < {GROWTH_LIMIT:.0%}", growth["other_fds"] < GROWTH_LIMIT,
         f"{after_warmup['other_fds']} -> {end['other_fds']} ({growth['other_fds']:+.1%}); with upstream connections "
         f"{after_warmup['fds']} -> {end['fds']}, {max(s['upstream'] for s in samples)} upstream connections at the most"),
        ("no watchdog miss", stats.get("server.watchdog_miss", -1) == 0 and stats.get("server.watchdog_mega_miss", -1) == 0,
         f"miss {stats.get('server.watchdog_miss')}, mega miss {stats.get('server.watchdog_mega_miss')}"),
        ("every reload accepted", events["reloads refused"] == 0, f"{events['reloads accepted']} accepted"),
    ]
    out.mkdir(parents=True)
    (out / "load.json").write_text(load_json.read_text())
    (out / "resources.svg").write_text(svg_chart(samples, after_warmup["t"]))
    with (out / "samples.csv").open("w") as f:
        f.write("seconds,rss_bytes,open_fds,upstream_connections\n")
        for s in samples:
            f.write(f"{s['t']},{s['rss']},{s['fds']},{s['upstream']}\n")
    env = environment(REPO_DIR, {})
    commit = binary_commit(a.ballast, env.get("git", {}).get("commit") or "?")
    md = [f"# Soak: ballast proxy, {a.minutes:g} minutes\n",
          f"`python3 scripts/soak.py --minutes {a.minutes:g} --rate {a.rate} --connections {a.connections} --io {a.io}` "
          f"({a.slow_clients} slow clients, 1 malformed client, upstream killed every {a.upstream_restart:g} s, "
          f"reload every {a.reload:g} s, warm-up {a.warmup:g} s). Proxy: 2 workers, access log on. "
          f"Machine: {env.get('cpu_model', '?')}, {os.cpu_count()} cores, kernel {os.uname().release}; "
          f"commit {commit}.\n",
          "| check | result | figures |", "|---|---|---|"]
    md += [f"| {name} | {'pass' if ok else '**FAIL**'} | {detail} |" for name, ok, detail in checks]
    md += ["", "| load responses | count |", "|---|--:|"] + [f"| {c} | {v:,} |" for c, v in sorted(codes.items())]
    md += ["", "| access-log lines (path, code, flags) | count |", "|---|--:|"]
    md += [f"| {k[0]} {k[1]} {k[2]} | {v:,} |" for k, v in sorted(log_counts.items())]
    md += ["", "| slow / malformed clients | count |", "|---|--:|"] + [f"| {k} | {v:,} |" for k, v in clients.items()]
    md += ["", "| events and proxy stats | value |", "|---|--:|"]
    md += [f"| {k} | {v:,} |" for k, v in events.items()] + [f"| {k} | {v:,} |" for k, v in sorted(stats.items())]
    md += [f"| RSS at start (before load) | {base['rss'] / 1048576:.1f} MiB |", f"| open fds at start (before load) | {base['fds']} |"]
    md += ["", "![RSS and open fds](resources.svg)", ""]
    (out / "report.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"\nsoak report: {out}/report.md", file=sys.stderr)
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"soak: {e}", file=sys.stderr)
        sys.exit(2)
