#!/usr/bin/env python3
"""Load-generator benchmark: `ballast load` against wrk (and hey when installed), one nginx backend.

nginx (one process) is pinned to --server-cpus; each load generator is pinned to --load-cpus and run
in turn with the same threads and connections, keep-alive, closed loop (ballast: -qps 0). Runs are
interleaved (repetition x threads x connections x tool, the tool order rotated every round).
Per run: requests/s and latency from the tool's own report, and the tool's CPU time (utime+stime
of the finished child, getrusage) per request: the figure that moves least between runs on these
machines. Targets (issue 6) are ratios against wrk in the same run, median of per-repetition ratios.

Exit code: 0 when every run was measured (whatever the targets say), 1 when a run failed, 2 on bad
usage or missing tools.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    BenchError, Server, children_cpu_times, environment, file_fingerprint, find_tool, fmt_count,
    fmt_latency, fmt_spread, free_port, parse_wrk, pinned, raise_nofile_limit, require_tools, spread,
    wait_until_serving,
)
from bench_server import nginx_config  # noqa: E402
from bench_common import arg_cpu_set, arg_int_list  # noqa: E402

REPO_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TARGET_CPU_VS_WRK = 0.91      # ballast CPU/req <= 0.91x wrk at 1 thread, 128 connections
TARGET_RPS_VS_WRK = 1.0       # and req/s >= wrk's
TARGET_CPU_VS_HEY = 1 / 3     # >= 3x hey's efficiency
TARGET_POINT = (1, 128)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Compare ballast load with wrk (and hey): CPU per request, req/s, latency.")
    p.add_argument("--ballast", default=".build/release/ballast", help="ballast binary (default: %(default)s)")
    p.add_argument("--io", default="auto", help="ballast load -io (default: %(default)s)")
    p.add_argument("--threads", type=arg_int_list, default=[1, 2], help="load threads (default: 1,2)")
    p.add_argument("--connections", type=arg_int_list, default=[16, 128, 1024], help="connections (default: 16,128,1024)")
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--duration", type=int, default=5, help="seconds per run (default: %(default)s)")
    p.add_argument("--body-size", type=int, default=100)
    p.add_argument("--server-cpus", type=arg_cpu_set, default="0")
    p.add_argument("--load-cpus", type=arg_cpu_set, default="1")
    p.add_argument("--no-hey", action="store_true", help="skip hey even when installed")
    p.add_argument("--json", type=Path, metavar="FILE")
    p.add_argument("--markdown", type=Path, metavar="FILE")
    args = p.parse_args(argv)
    if args.repetitions < 1 or args.duration < 1:
        p.error("--repetitions and --duration must be >= 1")
    return args


# ---------------------------------------------------------------------------------------------
# One run of one tool
# ---------------------------------------------------------------------------------------------

def run_child(argv: list[str], timeout_s: float) -> tuple[subprocess.CompletedProcess, float]:
    """Run to completion; return the result and the child's own CPU seconds (user + system)."""
    before = children_cpu_times()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"did not finish within {timeout_s:.0f} s: {shlex.join(argv)}") from e
    return done, (children_cpu_times() - before).total_s


def measure(tool: str, paths: dict, url: str, threads: int, conns: int, args: argparse.Namespace) -> dict:
    d = args.duration
    if tool == "wrk":
        argv = pinned([paths["wrk"], f"-t{threads}", f"-c{conns}", f"-d{d}s", "--latency", url], args.load_cpus)
    elif tool == "ballast":
        argv = pinned([str(Path(args.ballast).resolve()), "load", "-qps", "0", "-c", str(conns), "-t", f"{d}s",
                       "-threads", str(threads), "-io", args.io, "-json", "-", url], args.load_cpus)
    else:  # hey: -cpus is its GOMAXPROCS
        argv = pinned([paths["hey"], "-z", f"{d}s", "-c", str(conns), "-cpus", str(threads), url], args.load_cpus)
    t0 = time.monotonic()
    done, cpu_s = run_child(argv, timeout_s=d + 60)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise BenchError(f"{tool} exited with {done.returncode}: {shlex.join(argv)}\n{(done.stdout + done.stderr)[-2000:]}")
    if tool == "wrk":
        r = parse_wrk(done.stdout)
        requests, rps, latency, errors = r.requests, r.requests_per_second, r.latency_s, r.errors
    elif tool == "ballast":
        doc = json.loads(done.stdout)
        h = doc["DurationHistogram"]
        requests, rps = h["Count"], doc["ActualQPS"]
        latency = {f"{p['Percentile']:g}": p["Value"] for p in h.get("Percentiles") or []}
        errors = sum(n for code, n in doc["RetCodes"].items() if not code.startswith("2"))
    else:
        out = done.stdout
        rps = float(re.search(r"Requests/sec:\s*([0-9.]+)", out).group(1))
        requests = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
        latency = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s*(\d+)%+ in ([0-9.]+) secs", out, re.M)}
        errors = sum(int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out) if not code.startswith("2"))
        errors += sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s+Get", out, re.M))
    return {"ok": errors == 0 and requests > 0, "errors": errors, "requests": requests, "requests_per_second": rps,
            "latency_s": latency, "cpu_s": cpu_s, "wall_s": wall,
            "cpu_us_per_request": cpu_s / requests * 1e6 if requests else None, "command": argv}


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------

def ratios(runs: list[dict], num: str, den: str, threads: int, conns: int, key: str) -> dict | None:
    by = {(r["tool"], r["repetition"]): r for r in runs if r["threads"] == threads and r["connections"] == conns and r["ok"]}
    values = [by[(num, rep)][key] / by[(den, rep)][key] for (tool, rep) in by
              if tool == num and (den, rep) in by and by[(den, rep)][key]]
    return spread(values)


def summarize(runs: list[dict], tools: list[str], threads: list[int], conns: list[int]) -> list[dict]:
    rows = []
    for t in threads:
        for c in conns:
            for tool in tools:
                good = [r for r in runs if r["tool"] == tool and r["threads"] == t and r["connections"] == c and r["ok"]]
                rows.append({
                    "tool": tool, "threads": t, "connections": c, "runs": len(good),
                    "requests_per_second": spread([r["requests_per_second"] for r in good]),
                    "cpu_us_per_request": spread([r["cpu_us_per_request"] for r in good]),
                    "p50": spread([r["latency_s"]["50"] for r in good if "50" in r["latency_s"]]),
                    "p99": spread([r["latency_s"]["99"] for r in good if "99" in r["latency_s"]]),
                    "cpu_vs_wrk": ratios(runs, tool, "wrk", t, c, "cpu_us_per_request") if tool != "wrk" else None,
                    "rps_vs_wrk": ratios(runs, tool, "wrk", t, c, "requests_per_second") if tool != "wrk" else None,
                })
    return rows


def targets(runs: list[dict], tools: list[str]) -> list[str]:
    t, c = TARGET_POINT
    out = []
    cpu = ratios(runs, "ballast", "wrk", t, c, "cpu_us_per_request")
    rps = ratios(runs, "ballast", "wrk", t, c, "requests_per_second")
    verdict = lambda s, ok: "not measured" if s is None else f"{s['median']:.3f}x {'PASS' if ok(s['median']) else 'FAIL'}"
    out.append(f"ballast CPU/req <= {TARGET_CPU_VS_WRK}x wrk at {t} thread, {c} connections: {verdict(cpu, lambda m: m <= TARGET_CPU_VS_WRK)}")
    out.append(f"ballast req/s >= wrk's at {t} thread, {c} connections: {verdict(rps, lambda m: m >= TARGET_RPS_VS_WRK)}")
    if "hey" in tools:
        hey = ratios(runs, "ballast", "hey", t, c, "cpu_us_per_request")
        out.append(f"ballast CPU/req <= 1/3 of hey's at {t} thread, {c} connections: {verdict(hey, lambda m: m <= TARGET_CPU_VS_HEY)}")
    return out


def table(rows: list[dict]) -> str:
    ratio = lambda s: fmt_spread(s, lambda x: f"{x:.3f}", "x") if s else "–"
    lines = ["| tool | threads | conns | req/s median (min–max) | p50 | p99 | CPU µs/req median (min–max) | CPU/req vs wrk | req/s vs wrk |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        med = lambda s: s["median"] if s else None
        lines.append(f"| {r['tool']} | {r['threads']} | {r['connections']} | {fmt_spread(r['requests_per_second'], fmt_count)} "
                     f"| {fmt_latency(med(r['p50']))} | {fmt_latency(med(r['p99']))} | {fmt_spread(r['cpu_us_per_request'])} "
                     f"| {ratio(r['cpu_vs_wrk'])} | {ratio(r['rps_vs_wrk'])} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = "python3 " + shlex.join(sys.argv)
    paths = require_tools("wrk", "nginx", "taskset")
    if not Path(args.ballast).is_file():
        print(f"error: {args.ballast} not found (swift build -c release)", file=sys.stderr)
        return 2
    tools = ["wrk", "ballast"]
    hey = None if args.no_hey else find_tool("hey")
    if hey:
        paths["hey"] = hey
        tools.append("hey")
    else:
        print("hey not found (apt-get install hey): measuring wrk and ballast only", file=sys.stderr)
    raise_nofile_limit()
    plan, k = [], 0
    for rep in range(1, args.repetitions + 1):
        for t in args.threads:
            for c in args.connections:
                if c < t:
                    continue
                order = tools[k % len(tools):] + tools[:k % len(tools)]
                plan += [(rep, t, c, tool) for tool in order]
                k += 1
    print(f"{len(plan)} runs x {args.duration} s; nginx on CPU {args.server_cpus}, load on CPU {args.load_cpus}", file=sys.stderr)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ballast-bench-load-") as tmp:
        workdir = Path(tmp)
        (workdir / "nginx").mkdir()
        port = free_port(HOST)
        conf = workdir / "nginx" / "nginx.conf"
        conf.write_text(nginx_config(workdir, port, args.body_size, max(args.connections)))
        server = Server("nginx", [paths["nginx"], "-p", f"{workdir}/nginx/", "-c", str(conf), "-e", f"{workdir}/nginx/error.log"],
                        workdir, args.server_cpus, extra_logs=[workdir / "nginx" / "error.log"])
        try:
            server.start()
            wait_until_serving(server, HOST, port, "/", expect_body_bytes=args.body_size)
            url = f"http://{HOST}:{port}/"
            for i, (rep, t, c, tool) in enumerate(plan, 1):
                try:
                    run = measure(tool, paths, url, t, c, args)
                except BenchError as e:
                    server.check_alive()
                    run = {"ok": False, "errors": str(e), "requests": 0}
                run.update(tool=tool, threads=t, connections=c, repetition=rep)
                runs.append(run)
                if run["ok"]:
                    print(f"[{i}/{len(plan)}] {tool} t={t} c={c} rep {rep}: {run['requests_per_second']:,.0f} req/s, "
                          f"{run['cpu_us_per_request']:.2f} µs CPU/req", file=sys.stderr, flush=True)
                else:
                    print(f"[{i}/{len(plan)}] {tool} t={t} c={c} rep {rep}: FAILED {run['errors']}", file=sys.stderr, flush=True)
        finally:
            server.stop()
    rows = summarize(runs, tools, args.threads, args.connections)
    text = table(rows) + "\n\nTargets (median of per-repetition ratios, same run):\n" + "\n".join(f"- {t}" for t in targets(runs, tools))
    print(text)
    env = environment(REPO_DIR, paths)
    env["ballast_binary"] = file_fingerprint(args.ballast)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "bench_load", "command": command, "environment": env,
                                         "runs": runs, "rows": rows}, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"## Load generator benchmark: ballast load vs wrk\n\nCommand: `{command}`\n\n"
                                 f"nginx pinned to CPU {args.server_cpus}, load generators to CPU {args.load_cpus}; "
                                 f"{args.duration} s per run, closed loop, keep-alive, body {args.body_size} B. "
                                 f"CPU/req = the tool's own utime+stime / requests.\n\n{text}\n\n"
                                 f"Machine: {env['cpu_model']}, {env['nproc']} CPUs, kernel {env['kernel']}, "
                                 f"commit {env['git']['commit']}{' (dirty)' if env['git']['dirty'] else ''}\n")
    return 1 if any(not r["ok"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
