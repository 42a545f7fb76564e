#!/usr/bin/env python3
"""Balance benchmark: how the accept strategy spreads long-lived connections over workers, and what
that does to QPS and latency (issue 3, "Benchmark"); plus the hand-off cost in ns per connection.

Sweep: `ballast server` with N workers (default 4) and an emulated per-request cost (default
`block:200us` and `exp:200us`: the worker blocks in nanosleep, so it is unavailable without using a
core and 4 emulated CPU-bound workers fit on this 2-core machine). wrk drives closed-loop keepalive
load at several connection counts. Strategies are interleaved (order rotated every round) and every
run gets a FRESH server: connections are long-lived, so the spread is decided at connect time and a
fresh server (on a fresh port) makes each run an independent draw of the kernel's hash.
Per run: QPS and p50/p90/p99 from wrk; the per-worker connections (`active`, sampled from
`/workers` in the middle of the run, when every wrk connection is open) and requests/accepted/busy
(read from `/workers` right after wrk ends, before the server is stopped).

Hand-off phase (`--handoff`, on by default): a 2-worker server with no worker cost under
connection-per-request load (wrk with `Connection: close`), for reuseport, dispatch and
least-loaded, interleaved and repeated; server CPU time (utime+stime, /proc/PID/stat, whole
process) per connection, and the paired difference to reuseport in ns per connection: the cost of
the acceptor thread + mailbox post + wake-up.

The answer is ratios measured side by side (strategy / baseline within one repetition), not
absolute numbers: see "Measuring honestly" in DESIGN.md. Exit code: 0 when every run was measured,
1 when a server died or a run had errors, 2 on bad usage or missing tools.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    arg_choice_list, arg_cpu_set, arg_int_list, ratio_text, exit_on_termination_signals,
    BenchError, Server, _signal_group, children_cpu_times, environment, file_fingerprint, fmt_count,
    fmt_latency, fmt_num, fmt_spread, http_get, machine_cpu_times, parse_cpu_list, parse_wrk,
    pinned, process_cpu_times, raise_nofile_limit, require_tools, spread,
)

REPO_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ALL_STRATEGIES = ("reuseport", "shared", "shared:exclusive", "dispatch", "least-loaded",
                  "least-loaded:requests", "least-loaded:busy", "p2c")
HANDOFF_STRATEGIES = ("reuseport", "dispatch", "least-loaded")
LISTENING = re.compile(r"ballast server listening on [^:\s]+:(\d+) \(.*?admin [^:\s]+:(\d+)")
# Other load (in cores) above which a run's progress line says it may have been disturbed.
DISTURBED_OTHER_CPU = 0.5


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def name_list(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return list(dict.fromkeys(names))


def io_list(text: str) -> list[str]:
    names = name_list(text)
    bad = [n for n in names if n not in ("epoll", "io_uring")]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown I/O backend(s) {bad}; choose from epoll, io_uring")
    return names


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Accept-strategy benchmark: QPS, latency and per-worker spread per strategy, "
                    "plus the hand-off cost per connection.")
    p.add_argument("--ballast", default=".build/release/ballast", help="ballast binary (default: %(default)s)")
    p.add_argument("--strategies", type=name_list, default=list(ALL_STRATEGIES),
                   help="comma-separated --balance values (default: %(default)s)")
    p.add_argument("--baseline", default="reuseport",
                   help="strategy the ratios are taken against (default: %(default)s)")
    p.add_argument("--reference", default="shared",
                   help="second strategy to show ratios against, or 'none' (default: %(default)s)")
    p.add_argument("--connections", type=arg_int_list, default=[4, 8, 16, 64, 256],
                   help="wrk connection counts (default: 4,8,16,64,256)")
    p.add_argument("--io", type=io_list, default=["epoll"],
                   help="I/O backend(s), comma-separated: epoll, io_uring (default: epoll)")
    p.add_argument("--workers", type=int, default=4, help="server worker threads (default: %(default)s)")
    p.add_argument("--cost", type=name_list, default=["block:200us", "exp:200us"],
                   help="--worker-cost value(s), comma-separated; each is its own sweep "
                        "(default: block:200us,exp:200us)")
    p.add_argument("--repetitions", type=int, default=3, help="rounds over all points (default: %(default)s)")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default: %(default)s)")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk -t (default: %(default)s)")
    p.add_argument("--server-cpus", type=arg_cpu_set, default=None,
                   help="taskset CPU list for the servers (default: not pinned)")
    p.add_argument("--load-cpus", type=arg_cpu_set, default=None,
                   help="taskset CPU list for wrk (default: not pinned)")
    p.add_argument("--nice", type=int, default=0,
                   help="run servers and wrk under `nice -n N` (e.g. -10 to win the CPU from other work on "
                        "a shared machine; default: %(default)s = as is)")
    p.add_argument("--handoff", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure the hand-off cost per connection (default: on)")
    p.add_argument("--handoff-strategies", type=name_list, default=list(HANDOFF_STRATEGIES),
                   help="strategies of the hand-off phase; the first is the reference (default: %(default)s)")
    p.add_argument("--handoff-workers", type=int, default=2, help="workers in the hand-off phase (default: %(default)s)")
    p.add_argument("--handoff-connections", type=int, default=8,
                   help="wrk connections in the hand-off phase (default: %(default)s)")
    p.add_argument("--handoff-duration", type=int, default=3,
                   help="seconds per hand-off run (default: %(default)s)")
    p.add_argument("--handoff-repetitions", type=int, default=3,
                   help="rounds of the hand-off phase (default: %(default)s)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write raw runs, summary and environment as JSON")
    p.add_argument("--markdown", type=Path, metavar="FILE",
                   help="write the tables, environment and command line as Markdown")
    args = p.parse_args(argv)
    if min(args.repetitions, args.duration, args.wrk_threads, args.workers, args.handoff_workers,
           args.handoff_connections, args.handoff_duration, args.handoff_repetitions) < 1:
        p.error("counts and durations must be >= 1")
    if min(args.connections) < args.wrk_threads or args.handoff_connections < args.wrk_threads:
        p.error("every connection count must be >= --wrk-threads")
    if args.reference.lower() == "none" or args.reference == args.baseline:
        args.reference = None
    return args


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------

def server_argv(args: argparse.Namespace, io: str, strategy: str, workers: int, cost: str | None) -> list[str]:
    """Port 0 for both listeners: the kernel picks ports nobody holds. (A fixed port is a trap:
    with SO_REUSEPORT, binding a port that another process of the same user already listens on
    succeeds, and the kernel then splits the connections between the two processes.)"""
    argv = [str(Path(args.ballast).resolve()), "server", "--port", "0", "--address", HOST,
            "--workers", str(workers), "--io", io, "--balance", strategy, "--admin-port", "0"]
    if cost:
        argv += ["--worker-cost", cost]
    return niced(argv, args.nice)


def niced(argv: list[str], nice: int) -> list[str]:
    """Prefix argv with `nice -n N` (nice execs, so the PID stays the program's)."""
    return ["nice", "-n", str(nice), *argv] if nice else argv


def start_server(name: str, argv: list[str], workdir: Path, cpus: str | None,
                 timeout: float = 10.0) -> tuple[Server, int, int]:
    """Start a server and wait for its 'listening' line; return it with its port and admin port."""
    server = Server(name, argv, workdir, cpus)
    server.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            m = LISTENING.search(server.log_path.read_text(errors="replace"))
        except OSError:
            m = None
        if m:
            return server, int(m.group(1)), int(m.group(2))
        server.check_alive()
        if time.monotonic() >= deadline:
            server.stop()
            raise BenchError(f"{name} printed no 'listening' line within {timeout:.0f} s\n"
                             f"--- tail of its output ---\n{server.log_tail()}")
        time.sleep(0.02)


def admin_json(server: Server, admin_port: int, path: str):
    try:
        status, _, body = http_get(HOST, admin_port, path, timeout=5.0)
    except OSError as e:
        server.check_alive()
        raise BenchError(f"{server.name}: GET {path} on the admin port failed: {e}") from e
    if status != 200:
        raise BenchError(f"{server.name}: GET {path} answered {status}")
    try:
        return json.loads(body)
    except ValueError as e:
        raise BenchError(f"{server.name}: GET {path} is not JSON: {body[:200]!r}") from e


def workers_snapshot(server: Server, admin_port: int) -> list[dict]:
    doc = admin_json(server, admin_port, "/workers")
    if not isinstance(doc, list) or not all(isinstance(w, dict) and "worker" in w for w in doc):
        raise BenchError(f"{server.name}: /workers is not a list of worker objects")
    return sorted(doc, key=lambda w: w["worker"])


def per_worker_delta(before: list[dict], after: list[dict], key: str) -> list[int]:
    return [a.get(key, 0) - b.get(key, 0) for b, a in zip(before, after)]


# ---------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------

def wrk_argv(wrk: str, port: int, connections: int, duration_s: int, threads: int, cpus: str | None,
             nice: int, headers: tuple[str, ...] = ()) -> list[str]:
    argv = [*niced([], nice), wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    return pinned([*argv, f"http://{HOST}:{port}/"], cpus)


class Wrk:
    """A wrk run in the background (own process group, so it can be killed for sure)."""

    def __init__(self, argv: list[str], timeout_s: float):
        self.argv, self.timeout_s = argv, timeout_s
        self.cpu_before = children_cpu_times()
        self.started = time.monotonic()
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)

    def finish(self):
        try:
            out, err = self.process.communicate(timeout=max(1.0, self.timeout_s - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired as e:
            self.kill()
            raise BenchError(f"wrk did not finish within {self.timeout_s:.0f} s: {shlex.join(self.argv)}") from e
        used = children_cpu_times() - self.cpu_before
        output = out + err
        if self.process.returncode != 0:
            raise BenchError(f"wrk exited with code {self.process.returncode}: {shlex.join(self.argv)}\n{output.strip()}")
        try:
            return parse_wrk(out), output, used
        except ValueError as e:
            raise BenchError(f"cannot parse wrk output ({e}):\n{output.strip()}") from e

    def kill(self) -> None:
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# ---------------------------------------------------------------------------------------------
# Statistics on a spread over workers
# ---------------------------------------------------------------------------------------------

def jain(values: list[float]) -> float | None:
    """Jain's fairness index: (sum x)^2 / (n sum x^2); 1 = even, 1/n = all on one."""
    sq = sum(v * v for v in values)
    return (sum(values) ** 2) / (len(values) * sq) if sq > 0 else None


def imbalance(values: list[float]) -> float | None:
    """max / mean; 1 = even, n = all on one."""
    total = sum(values)
    return max(values) / (total / len(values)) if total > 0 else None


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

_live: dict = {"server": None, "wrk": None}  # what `finally` must stop


def measure_sweep_run(args: argparse.Namespace, wrk: str, workdir: Path, io: str, cost: str,
                      strategy: str, conns: int) -> dict:
    """One fresh server, one wrk run; the spread sampled mid-run and the counters right after."""
    argv = server_argv(args, io, strategy, args.workers, cost)
    server, port, admin = start_server(f"ballast-{io}-{strategy}".replace(":", "_"), argv, workdir, args.server_cpus)
    _live["server"] = server
    try:
        info = admin_json(server, admin, "/server_info")
        before = workers_snapshot(server, admin)
        machine0, cpu0, t0 = machine_cpu_times(), process_cpu_times(server.pid), time.monotonic()
        load = Wrk(wrk_argv(wrk, port, conns, args.duration, args.wrk_threads, args.load_cpus, args.nice),
                   timeout_s=args.duration + 30)
        _live["wrk"] = load
        time.sleep(args.duration / 2)
        mid = workers_snapshot(server, admin)
        try:
            result, output, wrk_cpu = load.finish()
        except BenchError:
            server.check_alive()
            raise
        _live["wrk"] = None
        cpu1, wall, machine1 = process_cpu_times(server.pid), time.monotonic() - t0, machine_cpu_times()
        after = workers_snapshot(server, admin)
        server.check_alive()
        threads = server.describe().get("threads")
    finally:
        server.stop()
        _live["server"] = None
    cpu, machine = cpu1 - cpu0, machine1 - machine0
    active_mid = [w.get("active", 0) for w in mid]
    requests = per_worker_delta(before, after, "requests")
    accepted = per_worker_delta(before, after, "accepted")
    busy_ns = per_worker_delta(before, after, "busy_ns")
    idle_ns = per_worker_delta(before, after, "idle_ns")
    ok = result.errors == 0 and result.requests > 0
    notes = []
    if sum(active_mid) != conns:
        notes.append(f"mid-run active connections sum to {sum(active_mid)}, not {conns}")
    if result.requests and abs(sum(requests) - result.requests) > max(conns, 0.01 * result.requests):
        notes.append(f"server counted {sum(requests)} requests, wrk {result.requests}")
    return {
        "ok": ok, "errors": None if ok else result.error_text(), "notes": notes,
        "server_info": info, "server_threads": threads, "server_command": server.command,
        "wrk": result.to_dict(), "wrk_command": load.argv, "wall_s": wall,
        "connections_per_worker": active_mid,          # open connections, mid-run
        "accepted_per_worker": accepted,                # includes wrk's address-probe connection
        "requests_per_worker": requests,
        "busy_fraction_per_worker": [b / (b + i) if b + i > 0 else None for b, i in zip(busy_ns, idle_ns)],
        "busy_us_per_request": sum(busy_ns) / sum(requests) / 1e3 if sum(requests) else None,
        "imbalance_connections": imbalance(active_mid),
        "jain_requests": jain(requests),
        "server_cpu_s": cpu.total_s, "server_cpu_utilization": cpu.total_s / wall,
        "wrk_cpu_utilization": wrk_cpu.total_s / wall,
        "other_cpu_utilization": max(0.0, machine.busy_s - cpu.total_s - wrk_cpu.total_s) / wall,
        "steal_utilization": machine.steal_s / wall,
        "wrk_output": output,
    }


def measure_handoff_run(args: argparse.Namespace, wrk: str, workdir: Path, io: str, strategy: str) -> dict:
    """A fresh server without worker cost under connection-per-request load; CPU per connection."""
    argv = server_argv(args, io, strategy, args.handoff_workers, None)
    server, port, admin = start_server(f"handoff-{io}-{strategy}".replace(":", "_"), argv, workdir, args.server_cpus)
    _live["server"] = server
    try:
        info = admin_json(server, admin, "/server_info")
        before = workers_snapshot(server, admin)
        machine0, cpu0, t0 = machine_cpu_times(), process_cpu_times(server.pid), time.monotonic()
        load = Wrk(wrk_argv(wrk, port, args.handoff_connections, args.handoff_duration, args.wrk_threads,
                            args.load_cpus, args.nice, headers=("Connection: close",)),
                   timeout_s=args.handoff_duration + 30)
        _live["wrk"] = load
        try:
            result, output, wrk_cpu = load.finish()
        except BenchError:
            server.check_alive()
            raise
        _live["wrk"] = None
        cpu1, wall, machine1 = process_cpu_times(server.pid), time.monotonic() - t0, machine_cpu_times()
        after = workers_snapshot(server, admin)
        server.check_alive()
        threads = server.describe().get("threads")
    finally:
        server.stop()
        _live["server"] = None
    cpu, machine = cpu1 - cpu0, machine1 - machine0
    accepted = per_worker_delta(before, after, "accepted")
    conns = sum(accepted)
    ok = result.errors == 0 and result.requests > 0 and conns > 0
    return {
        "ok": ok, "errors": None if ok else (result.error_text() or "no connection accepted"),
        "server_info": info, "server_threads": threads, "server_command": server.command,
        "wrk": result.to_dict(), "wrk_command": load.argv, "wall_s": wall,
        "accepted_per_worker": accepted, "connections": conns,
        "requests_per_worker": per_worker_delta(before, after, "requests"),
        "connections_per_second": conns / wall,
        "server_cpu_user_s": cpu.user_s, "server_cpu_system_s": cpu.system_s,
        "server_cpu_ns_per_connection": cpu.total_s / conns * 1e9 if conns else None,
        "server_cpu_utilization": cpu.total_s / wall,
        "wrk_cpu_utilization": wrk_cpu.total_s / wall,
        "other_cpu_utilization": max(0.0, machine.busy_s - cpu.total_s - wrk_cpu.total_s) / wall,
        "wrk_output": output,
    }


def sweep_plan(args: argparse.Namespace, strategies_by_io: dict[str, list[str]]) -> list[dict]:
    """(io, cost, repetition, connections, strategy) in run order; strategy order rotates per round."""
    plan = []
    for io in args.io:
        strategies = strategies_by_io[io]
        if not strategies:
            continue
        for cost in args.cost:
            round_no = 0
            for rep in range(1, args.repetitions + 1):
                for conns in args.connections:
                    k = round_no % len(strategies)
                    plan += [{"io": io, "cost": cost, "repetition": rep, "connections": conns, "strategy": s}
                             for s in strategies[k:] + strategies[:k]]
                    round_no += 1
    return plan


def handoff_plan(args: argparse.Namespace, usable: dict[str, list[str]]) -> list[dict]:
    plan = []
    for io in args.io:
        strategies = [s for s in args.handoff_strategies if s in usable.get(io, [])]
        for rep in range(1, args.handoff_repetitions + 1):
            k = (rep - 1) % max(1, len(strategies))
            plan += [{"io": io, "repetition": rep, "strategy": s} for s in strategies[k:] + strategies[:k]]
    return plan


def preflight(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[str]], dict, list[str]]:
    """Start every (io, strategy, cost) once: a strategy the server refuses is skipped up front,
    not discovered 10 minutes in. Returns the usable strategies per io (sweep and hand-off ones),
    the /server_info of each, and what was skipped."""
    usable: dict[str, list[str]] = {}
    infos: dict[str, dict] = {}
    skipped: list[str] = []
    wanted = list(dict.fromkeys(args.strategies + (args.handoff_strategies if args.handoff else [])))
    for io in args.io:
        usable[io] = []
        for strategy in wanted:
            good = True
            for cost in [*args.cost, None]:
                if cost is None and (not args.handoff or strategy not in args.handoff_strategies):
                    continue
                name = f"preflight-{io}-{strategy}".replace(":", "_")
                argv = server_argv(args, io, strategy, args.workers if cost else args.handoff_workers, cost)
                server = None
                try:
                    server, _, admin = start_server(name, argv, workdir, args.server_cpus)
                    _live["server"] = server
                    info = admin_json(server, admin, "/server_info")
                    infos[f"{io} {strategy} {cost or 'no cost'}"] = info
                except BenchError as e:
                    first = str(e).strip().splitlines()
                    detail = next((ln for ln in reversed(first) if "error" in ln.lower()), first[0] if first else "")
                    skipped.append(f"{io} {strategy} (cost {cost or 'none'}): server refused: {detail.strip()}")
                    good = False
                finally:
                    if server:
                        server.stop()
                    _live["server"] = None
                if not good:
                    break
            if good:
                usable[io].append(strategy)
    return usable, infos, skipped


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------

def p90(r: dict) -> float | None:
    return r["wrk"]["latency_s"].get("90")


def qps(r: dict) -> float:
    return r["wrk"]["requests_per_second"]


def paired_ratios(runs: list[dict], strategy: str, reference: str, key) -> dict | None:
    """Spread over repetitions of key(strategy)/key(reference), both measured in the same round."""
    by = {(r["strategy"], r["repetition"]): r for r in runs if r["ok"]}
    ratios = []
    for (s, rep), r in by.items():
        ref = by.get((reference, rep))
        if s == strategy and ref is not None and key(ref) and key(r) is not None:
            ratios.append(key(r) / key(ref))
    return spread(ratios)


def median_run(good: list[dict]) -> dict | None:
    """The run with the median QPS (the lower middle one for an even count)."""
    if not good:
        return None
    ordered = sorted(good, key=qps)
    return ordered[(len(ordered) - 1) // 2]


def summarize_sweep(runs: list[dict], args: argparse.Namespace, strategies_by_io: dict[str, list[str]]) -> list[dict]:
    sections = []
    for io in args.io:
        strategies = strategies_by_io[io]
        if not strategies:
            continue
        for cost in args.cost:
            rows = []
            for conns in args.connections:
                point = [r for r in runs if r["io"] == io and r["cost"] == cost and r["connections"] == conns]
                for s in strategies:
                    mine = [r for r in point if r["strategy"] == s]
                    good = [r for r in mine if r["ok"]]
                    lat = lambda p: spread([r["wrk"]["latency_s"][p] for r in good if p in r["wrk"]["latency_s"]])
                    mr = median_run(good)
                    row = {
                        "strategy": s, "connections": conns, "runs": len(mine), "failed": len(mine) - len(good),
                        "qps": spread([qps(r) for r in good]),
                        "latency_s": {p: lat(p) for p in ("50", "90", "99")},
                        "median_run_connections_per_worker": mr["connections_per_worker"] if mr else None,
                        "connections_per_worker_all_runs": [r["connections_per_worker"] for r in good],
                        "imbalance_connections": spread([r["imbalance_connections"] for r in good
                                                         if r["imbalance_connections"] is not None]),
                        "jain_requests": spread([r["jain_requests"] for r in good if r["jain_requests"] is not None]),
                        "busy_us_per_request": spread([r["busy_us_per_request"] for r in good
                                                       if r["busy_us_per_request"] is not None]),
                        "other_cpu_utilization": spread([r["other_cpu_utilization"] for r in good]),
                        "vs": {},
                    }
                    for ref in (args.baseline, args.reference):
                        if ref and ref in strategies and ref != s:
                            row["vs"][ref] = {"qps": paired_ratios(point, s, ref, qps),
                                              "p90": paired_ratios(point, s, ref, p90)}
                    rows.append(row)
            sections.append({"io": io, "cost": cost, "rows": rows})
    return sections


def summarize_handoff(runs: list[dict], args: argparse.Namespace) -> list[dict]:
    out = []
    for io in args.io:
        mine = [r for r in runs if r["io"] == io]
        if not mine:
            continue
        strategies = list(dict.fromkeys(r["strategy"] for r in mine))
        ref = args.handoff_strategies[0]
        by = {(r["strategy"], r["repetition"]): r for r in mine if r["ok"]}
        rows = []
        for s in strategies:
            good = [r for r in mine if r["strategy"] == s and r["ok"]]
            diffs = [r["server_cpu_ns_per_connection"] - by[(ref, r["repetition"])]["server_cpu_ns_per_connection"]
                     for r in good if (ref, r["repetition"]) in by]
            rows.append({
                "strategy": s, "runs": len([r for r in mine if r["strategy"] == s]), "failed":
                    len([r for r in mine if r["strategy"] == s and not r["ok"]]),
                "connections_per_second": spread([r["connections_per_second"] for r in good]),
                "server_cpu_ns_per_connection": spread([r["server_cpu_ns_per_connection"] for r in good]),
                "server_cpu_utilization": spread([r["server_cpu_utilization"] for r in good]),
                "other_cpu_utilization": spread([r["other_cpu_utilization"] for r in good]),
                "threads": good[0]["server_threads"] if good else None,
                "minus_reference_ns_per_connection": spread(diffs) if s != ref else None,
            })
        out.append({"io": io, "reference": ref, "rows": rows})
    return out


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------

def med(s: dict | None) -> float | None:
    return s["median"] if s else None


def spread_list(values: list[int] | None) -> str:
    return "–" if values is None else "[" + ",".join(str(v) for v in values) + "]"


def short_ratio(s: dict | None) -> str:
    return "–" if s is None else f"{s['median']:.2f}"


def sweep_tables(section: dict, args: argparse.Namespace) -> str:
    refs = [r for r in (args.baseline, args.reference) if r]
    head = ["conns", "strategy", "QPS median (min–max)", "p50", "p90", "p99",
            "conns/worker (median run)", "max/mean conns (min–max)", "Jain req"]
    for ref in refs:
        head += [f"QPS vs {ref} (min–max)", f"TP90 vs {ref} (min–max)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---:", "---"] + ["---:"] * (len(head) - 2)) + "|"]
    for r in section["rows"]:
        failed = f" ⚠ {r['failed']}/{r['runs']} failed" if r["failed"] else ""
        cells = [str(r["connections"]), r["strategy"] + failed, fmt_spread(r["qps"], fmt_count),
                 *[fmt_latency(med(r["latency_s"][p])) for p in ("50", "90", "99")],
                 spread_list(r["median_run_connections_per_worker"]),
                 fmt_spread(r["imbalance_connections"]), fmt_num(med(r["jain_requests"]), 3)]
        for ref in refs:
            if r["strategy"] == ref:
                cells += ["(ref)", "(ref)"]
            else:
                vs = r["vs"].get(ref)
                cells += [ratio_text(vs["qps"], 2), ratio_text(vs["p90"], 2)] if vs else ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")

    # Compact view: strategy x connections, median QPS ratio / TP90 ratio vs the baseline.
    base = args.baseline
    conns = list(dict.fromkeys(r["connections"] for r in section["rows"]))
    strategies = list(dict.fromkeys(r["strategy"] for r in section["rows"]))
    if base in strategies:
        lines += ["", f"Median ratios vs {base}, QPS / TP90 (paired per repetition):", "",
                  "| strategy | " + " | ".join(f"c={c}" for c in conns) + " |",
                  "|---|" + "---:|" * len(conns)]
        for s in strategies:
            if s == base:
                continue
            cells = []
            for c in conns:
                r = next((x for x in section["rows"] if x["strategy"] == s and x["connections"] == c), None)
                vs = r["vs"].get(base) if r else None
                cells.append(f"{short_ratio(vs['qps'])} / {short_ratio(vs['p90'])}" if vs else "–")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
    busy = [med(r["busy_us_per_request"]) for r in section["rows"] if r["busy_us_per_request"]]
    if busy:
        lines += ["", f"Worker busy time per request (all runs, median of medians): "
                      f"{statistics.median(busy):.0f} µs (the nominal cost is {section['cost']}; "
                      f"nanosleep overshoots by the timer slack)."]
    return "\n".join(lines)


def handoff_table(section: dict, args: argparse.Namespace) -> str:
    ref = section["reference"]
    lines = [f"| strategy | conn/s median (min–max) | server CPU ns/conn median (min–max) | server CPU "
             f"| threads | minus {ref}, ns/conn (min–max) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in section["rows"]:
        failed = f" ⚠ {r['failed']}/{r['runs']} failed" if r["failed"] else ""
        diff = "(ref)" if r["strategy"] == ref else fmt_spread(r["minus_reference_ns_per_connection"],
                                                               lambda x: f"{x:+,.0f}")
        util = med(r["server_cpu_utilization"])
        lines.append(f"| {r['strategy']}{failed} | {fmt_spread(r['connections_per_second'], fmt_count)} "
                     f"| {fmt_spread(r['server_cpu_ns_per_connection'], fmt_count)} "
                     f"| {'–' if util is None else f'{100 * util:.0f}%'} | {r['threads'] or '–'} | {diff} |")
    return "\n".join(lines)


def placement_text(args: argparse.Namespace) -> str:
    where = lambda cpus: f"pinned to CPU {cpus} (taskset)" if cpus else "not pinned"
    prio = f"nice {args.nice}" if args.nice else "default priority (nice 0)"
    return (f"Placement: servers {where(args.server_cpus)}, wrk -t{args.wrk_threads} {where(args.load_cpus)}; "
            f"{prio}. Block-mode workers sleep instead of computing, so they leave the CPUs mostly idle.")


def report(args: argparse.Namespace, command: str, env: dict, sweep: list[dict], handoff: list[dict],
           failed: list[dict], odd: list[str], skipped: list[str], other_cpu: dict | None) -> str:
    lines = [
        "## Balance benchmark: accept strategies under emulated worker cost", "",
        f"Command: `{command}`", "",
        placement_text(args),
        f"Sweep: `ballast server --workers {args.workers}`, worker cost {', '.join(args.cost)}; wrk "
        f"closed-loop keepalive, connections {','.join(map(str, args.connections))}; "
        f"{args.repetitions} repetition(s) x {args.duration} s; strategies interleaved, order rotated every "
        f"round; a fresh server (fresh ports) for every run, so every run is an independent draw of the "
        f"connection spread.",
        "conns/worker = open connections per worker (`active` from `/workers`, sampled mid-run) of the run "
        "with the median QPS; max/mean = that spread's maximum over its mean (1 = even); Jain req = "
        "Jain's fairness index of requests per worker (1 = even, 1/workers = one worker did all). "
        "Ratios are strategy/reference within the same repetition, median (min–max) over repetitions; "
        "TP90 ratio < 1 is better. Latency is wrk's closed-loop latency. wrk first opens one extra "
        "connection to probe the address (it carries no request): `accepted` in the JSON counts it, the "
        "spread here does not. Under closed-loop load a worker with a couple of connections is already "
        "saturated, so requests per worker even out (Jain near 1) once every worker has some; an uneven "
        "connection spread then shows up in latency rather than in QPS.", "",
    ]
    for sec in sweep:
        lines += [f"### {sec['io']}, worker cost {sec['cost']}", "", sweep_tables(sec, args), ""]
    if handoff:
        lines += [f"### Hand-off cost (no worker cost, {args.handoff_workers} workers, wrk -c"
                  f"{args.handoff_connections} with `Connection: close`: one connection per request; "
                  f"{args.handoff_repetitions} x {args.handoff_duration} s, interleaved)", "",
                  "Server CPU = utime+stime of the whole server process (/proc/PID/stat, all threads) "
                  "over the run / connections accepted (from `/workers`). The difference to the reference is "
                  "paired per repetition: for dispatch it is the acceptor thread + mailbox post + wake-up. "
                  "Closed-loop load: the strategies run at different connection rates, and batching at a "
                  "higher rate lowers CPU per connection, so read the difference with the rates beside it.", ""]
        for sec in handoff:
            lines += [f"{sec['io']}:", "", handoff_table(sec, args), ""]
    if failed:
        lines += [f"{len(failed)} FAILED run(s) (wrk errors or server died), left out of the medians and ratios:"]
        lines += [f"- {r.get('phase')} {r.get('io')} {r.get('cost', '')} {r['strategy']} c={r.get('connections', '')} "
                  f"rep {r['repetition']}: {r['errors']}" for r in failed]
        lines.append("")
    if odd:
        lines += ["Notes from the runs:"] + [f"- {n}" for n in odd] + [""]
    git, tools = env["git"], env["tools"]
    lines += [
        "Environment:",
        f"- date {env['date']} .. {env.get('finished')}, commit {git['commit']}"
        f"{' (dirty tree)' if git['dirty'] else ''}",
        f"- kernel {env['kernel']}, CPU {env['cpu_model']}, {env['nproc']} CPUs; {tools.get('wrk')}",
        f"- ballast binary {env['ballast_binary']['path']} (sha256 {env['ballast_binary']['sha256_12']}, "
        f"built {env['ballast_binary']['modified']})",
        f"- load average at start {env.get('loadavg_start')}, at end {env.get('loadavg_end')}",
    ]
    if other_cpu:
        lines.append(f"- other CPU load during the sweep runs (machine busy minus server and wrk, in cores): "
                     f"median {other_cpu['median']:.2f}, max {other_cpu['max']:.2f}")
    lines += [f"- skipped: {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def progress(i: int, total: int, r: dict) -> str:
    w = r["wrk"]
    if r["phase"] == "sweep":
        head = f"[{i}/{total}] {r['io']} {r['cost']} c={r['connections']} rep {r['repetition']} {r['strategy']}: "
        body = (f"{w['requests_per_second']:,.0f} req/s, p90 {fmt_latency(w['latency_s'].get('90'))}, "
                f"conns {spread_list(r['connections_per_worker'])}, req jain {fmt_num(r['jain_requests'], 3)}")
    else:
        head = f"[{i}/{total}] handoff {r['io']} rep {r['repetition']} {r['strategy']}: "
        body = (f"{r['connections_per_second']:,.0f} conn/s, "
                f"{fmt_count(r['server_cpu_ns_per_connection'])} ns CPU/conn, accepted {r['accepted_per_worker']}")
    if r["other_cpu_utilization"] > DISTURBED_OTHER_CPU:
        body += f", other CPU {r['other_cpu_utilization']:.0%} (disturbed?)"
    for n in r.get("notes", []):
        body += f"  NOTE: {n}"
    return head + body + ("" if r["ok"] else f"  FAILED: {r['errors']}")


def loadavg() -> str | None:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = "python3 " + shlex.join(sys.argv)
    tools = require_tools("wrk", *(["taskset"] if args.server_cpus or args.load_cpus else []))
    if not Path(args.ballast).is_file():
        print(f"error: ballast binary {args.ballast} not found (build it with `swift build -c release`)",
              file=sys.stderr)
        return 2
    raise_nofile_limit()
    env = environment(REPO_DIR, tools)
    env["ballast_binary"] = file_fingerprint(args.ballast)
    env["loadavg_start"] = loadavg()

    exit_on_termination_signals()

    runs: list[dict] = []
    skipped: list[str] = []
    infos: dict = {}
    strategies_by_io: dict[str, list[str]] = {io: [] for io in args.io}
    exit_code = 0
    with tempfile.TemporaryDirectory(prefix="ballast-bench-balance-") as tmp:
        workdir = Path(tmp)
        try:
            usable, infos, skipped = preflight(args, workdir)
            strategies_by_io = {io: [s for s in args.strategies if s in usable[io]] for io in args.io}
            for s in skipped:
                print(f"skipping {s}", file=sys.stderr)
            plan = [{"phase": "sweep", **p} for p in sweep_plan(args, strategies_by_io)]
            if args.handoff:
                plan += [{"phase": "handoff", **p} for p in handoff_plan(args, usable)]
            if not plan:
                print("error: nothing left to measure", file=sys.stderr)
                return 1
            est = sum((args.duration if p["phase"] == "sweep" else args.handoff_duration) + 0.4 for p in plan)
            print(placement_text(args), file=sys.stderr)
            print(f"{len(plan)} runs ≈ {est / 60:.1f} min", file=sys.stderr, flush=True)
            for i, p in enumerate(plan, 1):
                try:
                    if p["phase"] == "sweep":
                        m = measure_sweep_run(args, tools["wrk"], workdir, p["io"], p["cost"], p["strategy"],
                                              p["connections"])
                    else:
                        m = measure_handoff_run(args, tools["wrk"], workdir, p["io"], p["strategy"])
                except BenchError as e:  # one bad run (a server died, wrk failed) does not stop the sweep
                    print(f"[{i}/{len(plan)}] {p}: FAILED: {e}", file=sys.stderr, flush=True)
                    runs.append({**p, "index": i, "ok": False, "errors": str(e).splitlines()[0]})
                    continue
                run = {**p, "index": i, **m}
                runs.append(run)
                print(progress(i, len(plan), run), file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            exit_code = 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if _live["wrk"] is not None:
                _live["wrk"].kill()
            if _live["server"] is not None:
                _live["server"].stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    sweep_runs = [r for r in runs if r["phase"] == "sweep"]
    handoff_runs = [r for r in runs if r["phase"] == "handoff"]
    sweep = summarize_sweep(sweep_runs, args, strategies_by_io)
    handoff = summarize_handoff(handoff_runs, args) if handoff_runs else []
    failed = [r for r in runs if not r["ok"]]
    odd = [f"{r['phase']} {r['io']} {r.get('cost', '')} {r['strategy']} c={r.get('connections', '')} "
           f"rep {r['repetition']}: {n}" for r in runs for n in r.get("notes", [])]
    other = spread([r["other_cpu_utilization"] for r in sweep_runs if r["ok"]])
    env["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    env["loadavg_end"] = loadavg()
    text = report(args, command, env, sweep, handoff, failed, odd, skipped, other)
    print(text)
    if args.json:
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        doc = {"benchmark": "bench_balance", "command": command, "config": config,
               "placement": {"server_cpus": args.server_cpus, "load_cpus": args.load_cpus,
                             "pinned": bool(args.server_cpus or args.load_cpus), "nice": args.nice},
               "environment": env, "skipped": skipped, "server_info": infos,
               "runs": runs, "summary": {"sweep": sweep, "handoff": handoff}, "failed_runs": len(failed)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
        print(f"wrote {args.markdown}", file=sys.stderr)
    if exit_code:
        return exit_code
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
