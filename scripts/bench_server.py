#!/usr/bin/env python3
"""Server benchmark: ballast server (epoll, io_uring) against nginx, one worker each, in one run.

Every server is started once, pinned to --server-cpus, and loaded in turn by wrk pinned to
--load-cpus. Runs are interleaved (repetition x connections x variant, the variant order rotated
every round) so drift hits all variants alike. Per run: req/s and latency percentiles from wrk,
and the server's CPU time (utime+stime of the whole process, /proc/PID/stat) per request.

The answer is ratios measured side by side (ballast/nginx, io_uring/epoll), not absolute numbers:
see "Measuring honestly" in DESIGN.md. Exit code: 0 when all runs were measured (whatever the
targets say), 1 when a server died or a run had errors, 2 on bad usage or missing tools.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    arg_choice_list, arg_cpu_set, arg_int_list, ratio_text, median_of, percent, rps_key, exit_on_termination_signals, run_plan,
    BenchError, Server, environment, file_fingerprint, fmt_count, fmt_latency, fmt_num, fmt_spread,
    free_port, machine_cpu_times, parse_cpu_list, process_cpu_times, raise_nofile_limit,
    require_tools, run_wrk, spread, wait_until_serving, wrk_command,
)

REPO_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
VARIANTS = ("ballast-epoll", "ballast-io_uring", "nginx")
BASELINE = "nginx"
# Targets from the spec, judged on the median of the per-repetition ratios.
TARGET_VS_NGINX = 0.83       # ballast CPU/req <= 0.83x nginx at 128 connections, each backend
TARGET_VS_NGINX_CONNS = 128
TARGET_URING_VS_EPOLL = 0.90  # io_uring CPU/req <= 0.90x epoll
# Other load (in cores) above which a run's progress line says it may have been disturbed.
DISTURBED_OTHER_CPU = 0.25


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare ballast server (epoll, io_uring) with nginx: req/s, latency, CPU per request.")
    p.add_argument("--ballast", default=".build/release/ballast", help="ballast binary (default: %(default)s)")
    p.add_argument("--variants", type=arg_choice_list(VARIANTS), default=list(VARIANTS),
                   help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    p.add_argument("--connections", type=arg_int_list, default=[16, 128], help="wrk connection counts (default: 16,128)")
    p.add_argument("--repetitions", type=int, default=3, help="rounds over all points (default: %(default)s)")
    p.add_argument("--duration", type=int, default=5, help="seconds per measured wrk run (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1,
                   help="seconds of unrecorded wrk load before each run (default: %(default)s; 0 = none)")
    p.add_argument("--body-size", type=int, default=100, help="response body bytes (default: %(default)s)")
    p.add_argument("--server-cpus", type=arg_cpu_set, default="0",
                   help="taskset CPU list for the servers, or 'none' (default: %(default)s)")
    p.add_argument("--load-cpus", type=arg_cpu_set, default="1",
                   help="taskset CPU list for wrk, or 'none' (default: %(default)s)")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk -t (default: %(default)s)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write raw runs, summary and environment as JSON")
    p.add_argument("--markdown", type=Path, metavar="FILE",
                   help="write the table, environment and command line as Markdown")
    args = p.parse_args(argv)
    if args.repetitions < 1 or args.duration < 1 or args.warmup < 0 or args.body_size < 0 or args.wrk_threads < 1:
        p.error("--repetitions, --duration, --wrk-threads must be >= 1; --warmup, --body-size >= 0")
    if min(args.connections) < args.wrk_threads:
        p.error("every --connections value must be >= --wrk-threads")
    return args


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------

def nginx_config(workdir: Path, port: int, body_size: int, max_connections: int) -> str:
    """One process that serves (master_process off), so its PID is the one to measure."""
    tmp = workdir / "nginx"
    return f"""\
worker_processes 1;
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections {max(1024, 2 * max_connections + 64)}; }}
http {{
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {HOST}:{port};
        location / {{ return 200 "{'x' * body_size}"; }}
    }}
}}
"""


def make_server(variant: str, args: argparse.Namespace, tools: dict[str, str],
                workdir: Path) -> tuple[Server, int, str]:
    """The Server for a variant, its port and the URL path to load."""
    port = free_port(HOST)
    if variant == "nginx":
        (workdir / "nginx").mkdir()
        conf = workdir / "nginx" / "nginx.conf"
        conf.write_text(nginx_config(workdir, port, args.body_size, max(args.connections)))
        argv = [tools["nginx"], "-p", f"{workdir}/nginx/", "-c", str(conf), "-e", f"{workdir}/nginx/error.log"]
        server = Server(variant, argv, workdir, args.server_cpus, extra_logs=[workdir / "nginx" / "error.log"])
        return server, port, "/"
    backend = variant.removeprefix("ballast-")
    argv = [str(Path(args.ballast).resolve()), "server", "--port", str(port), "--workers", "1",
            "--io", backend, "--address", HOST]
    return Server(variant, argv, workdir, args.server_cpus), port, f"/?size={args.body_size}"


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

def measure(server: Server, url: str, conns: int, args: argparse.Namespace, wrk: str) -> dict:
    """One warmed-up wrk run against a running server, with the server's CPU time around it."""
    def load(argv: list[str]):
        try:
            return run_wrk(argv, timeout_s=args.duration + args.warmup + 30)
        except BenchError:
            server.check_alive()  # a dead server is the news, not wrk's "connection refused"
            raise

    server.check_alive()
    if args.warmup > 0:
        load(wrk_command(wrk, url, conns, args.warmup, args.wrk_threads, args.load_cpus, latency=False))
    argv = wrk_command(wrk, url, conns, args.duration, args.wrk_threads, args.load_cpus)
    machine_before, cpu_before, t0 = machine_cpu_times(), process_cpu_times(server.pid), time.monotonic()
    result, output, wrk_cpu = load(argv)
    cpu_after, wall, machine_after = process_cpu_times(server.pid), time.monotonic() - t0, machine_cpu_times()
    server.check_alive()
    cpu, machine = cpu_after - cpu_before, machine_after - machine_before
    ok = result.errors == 0 and result.requests > 0
    return {
        "ok": ok,
        "errors": None if ok else result.error_text(),
        "wrk": result.to_dict(),
        "wrk_command": argv,
        "wall_s": wall,
        "server_cpu_user_s": cpu.user_s,
        "server_cpu_system_s": cpu.system_s,
        "server_cpu_us_per_request": cpu.total_s / result.requests * 1e6 if result.requests else None,
        "server_cpu_utilization": cpu.total_s / wall,
        "wrk_cpu_utilization": wrk_cpu.total_s / wall,
        # Everything else that ran meanwhile (kernel threads, ksoftirqd, other processes), in cores:
        # a high value means the run was disturbed.
        "other_cpu_utilization": max(0.0, machine.busy_s - cpu.total_s - wrk_cpu.total_s) / wall,
        "steal_utilization": machine.steal_s / wall,
        "bytes_per_response": result.bytes_read / result.requests if result.requests else None,
        "wrk_output": output,
    }


def progress(i: int, total: int, run: dict) -> str:
    w = run["wrk"]
    head = f"[{i}/{total}] {run['variant']} c={run['connections']} rep {run['repetition']}: "
    body = (f"{w['requests_per_second']:,.0f} req/s, p90 {fmt_latency(w['latency_s'].get('90'))}, "
            f"{fmt_num(run['server_cpu_us_per_request'])} µs CPU/req, server CPU {run['server_cpu_utilization']:.0%}")
    if run["other_cpu_utilization"] > DISTURBED_OTHER_CPU:
        body += f", other CPU {run['other_cpu_utilization']:.0%} (disturbed?)"
    return head + body + ("" if run["ok"] else f"  FAILED POINT: {run['errors']}")


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------

def per_rep_ratios(runs: list[dict], num: str, den: str, conns: int, key) -> dict | None:
    """Spread of num/den over repetitions where both points were measured without errors."""
    by = {(r["variant"], r["repetition"]): r for r in runs if r["connections"] == conns and r["ok"]}
    ratios = []
    for (variant, rep), r in by.items():
        d = by.get((den, rep))
        if variant == num and d is not None and key(d):
            ratios.append(key(r) / key(d))
    return spread(ratios)


def cpu_key(r: dict) -> float:
    return r["server_cpu_us_per_request"]


def summarize(runs: list[dict], variants: list[str], connections: list[int]) -> dict:
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
                "server_cpu_us_per_request": spread([cpu_key(r) for r in good]),
                "server_cpu_utilization": spread([r["server_cpu_utilization"] for r in good]),
                "wrk_cpu_utilization": spread([r["wrk_cpu_utilization"] for r in good]),
                "other_cpu_utilization": spread([r["other_cpu_utilization"] for r in good]),
                "bytes_per_response": spread([r["bytes_per_response"] for r in good]),
            }
            if v != BASELINE and BASELINE in variants:
                row["vs_nginx"] = {"cpu_per_request": per_rep_ratios(runs, v, BASELINE, c, cpu_key),
                                   "requests_per_second": per_rep_ratios(runs, v, BASELINE, c, rps_key)}
            rows.append(row)
    uring_vs_epoll = []
    if {"ballast-epoll", "ballast-io_uring"} <= set(variants):
        for c in connections:
            uring_vs_epoll.append({
                "connections": c,
                "cpu_per_request": per_rep_ratios(runs, "ballast-io_uring", "ballast-epoll", c, cpu_key),
                "requests_per_second": per_rep_ratios(runs, "ballast-io_uring", "ballast-epoll", c, rps_key),
            })
    return {"rows": rows, "io_uring_vs_epoll": uring_vs_epoll}


def verdict(ratio: dict | None, limit: float) -> str:
    if ratio is None:
        return "not measured"
    return f"{ratio['median']:.3f}x {'PASS' if ratio['median'] <= limit else 'FAIL'}"


def targets(summary: dict, connections: list[int]) -> list[dict]:
    """The spec's targets, each with what was measured and PASS/FAIL (or 'not measured')."""
    out = []
    for backend in ("epoll", "io_uring"):
        row = next((r for r in summary["rows"] if r["variant"] == f"ballast-{backend}"
                    and r["connections"] == TARGET_VS_NGINX_CONNS), None)
        ratio = row["vs_nginx"]["cpu_per_request"] if row and "vs_nginx" in row else None
        out.append({"target": f"ballast-{backend} CPU/req <= {TARGET_VS_NGINX:.2f}x nginx "
                              f"at {TARGET_VS_NGINX_CONNS} connections",
                    "ratio": ratio, "verdict": verdict(ratio, TARGET_VS_NGINX)})
    by_conns = {u["connections"]: u for u in summary["io_uring_vs_epoll"]}
    for c in connections:
        ratio = by_conns[c]["cpu_per_request"] if c in by_conns else None
        out.append({"target": f"io_uring CPU/req <= {TARGET_URING_VS_EPOLL:.2f}x epoll at {c} connections",
                    "ratio": ratio, "verdict": verdict(ratio, TARGET_URING_VS_EPOLL)})
    return out


def vs_nginx_cells(row: dict) -> tuple[str, str]:
    if row["variant"] == BASELINE:
        return "(baseline)", "(baseline)"
    vs = row.get("vs_nginx")
    if not vs:
        return "–", "–"
    return ratio_text(vs["cpu_per_request"]), ratio_text(vs["requests_per_second"])


def markdown_tables(summary: dict, target_list: list[dict], failed: list[dict]) -> str:
    lines = [
        "| variant | conns | req/s median (min–max) | p50 | p90 | p99 | server CPU µs/req median (min–max) "
        "| server CPU | wrk CPU | other CPU | CPU/req vs nginx (min–max) | req/s vs nginx (min–max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["rows"]:
        failed = f" ⚠ {r['failed']}/{r['runs']} failed" if r["failed"] else ""
        lat = [fmt_latency(median_of(r["latency_s"][p])) for p in ("50", "90", "99")]
        cpu_ratio, rps_ratio = vs_nginx_cells(r)
        lines.append(
            f"| {r['variant']}{failed} | {r['connections']} | {fmt_spread(r['requests_per_second'], fmt_count)} "
            f"| {' | '.join(lat)} | {fmt_spread(r['server_cpu_us_per_request'])} "
            f"| {percent(r['server_cpu_utilization'])} | {percent(r['wrk_cpu_utilization'])} "
            f"| {percent(r['other_cpu_utilization'])} "
            f"| {cpu_ratio} | {rps_ratio} |")
    if summary["io_uring_vs_epoll"]:
        lines += ["", "| conns | io_uring/epoll CPU/req (min–max) | io_uring/epoll req/s (min–max) |",
                  "|---:|---:|---:|"]
        for u in summary["io_uring_vs_epoll"]:
            lines.append(f"| {u['connections']} | {ratio_text(u['cpu_per_request'])} "
                         f"| {ratio_text(u['requests_per_second'])} |")
    lines += ["", "Targets (spec; judged on the median of per-repetition ratios; report only):"]
    lines += [f"- {t['target']}: {t['verdict']}" for t in target_list]
    if failed:
        lines += ["", f"{len(failed)} FAILED point(s) (wrk reported errors), left out of the medians and ratios:"]
        lines += [f"- run {r['index']}: {r['variant']} c={r['connections']} rep {r['repetition']}: {r['errors']}"
                  for r in failed]
    return "\n".join(lines)


def placement_text(args: argparse.Namespace) -> str:
    where = lambda cpus: f"pinned to CPU {cpus}" if cpus else "not pinned"
    return (f"Placement: servers {where(args.server_cpus)} (taskset), wrk -t{args.wrk_threads} "
            f"{where(args.load_cpus)}; 1 worker per server.")


def markdown_report(args: argparse.Namespace, command: str, env: dict, servers: dict, tables: str,
                    skipped: list[str]) -> str:
    tools = env["tools"]
    git = env["git"]
    lines = [
        "## Server benchmark: ballast vs nginx", "",
        f"Command: `{command}`", "",
        placement_text(args),
        f"Load: wrk, {args.repetitions} repetition(s) x connections {','.join(map(str, args.connections))}, "
        f"{args.duration} s per run after {args.warmup} s warm-up, variant order rotated every round; "
        f"body {args.body_size} B.",
        "CPU/req = server utime+stime (/proc/PID/stat, all threads) around the wrk run / requests completed. "
        "Server/wrk/other CPU are in % of one core over the run; other = machine busy time (/proc/stat) "
        "minus server and wrk (kernel threads, other processes): high means a disturbed run. "
        "Latency is wrk's closed-loop latency (not corrected for coordinated omission).", "",
        tables, "",
        "Environment:",
        f"- date {env['date']}, commit {git['commit']}{' (dirty tree)' if git['dirty'] else ''}",
        f"- kernel {env['kernel']}, CPU {env['cpu_model']}, {env['nproc']} CPUs",
        f"- {tools.get('nginx')}, {tools.get('wrk')}",
    ]
    for name, s in servers.items():
        lines.append(f"- {name}: `{shlex.join(s['command'])}` (measured pid {s['pid']}, "
                     f"comm {s.get('comm')}, {s.get('threads')} thread(s), "
                     f"~{s.get('bytes_per_response') or 0:.0f} B/response)")
    lines += [f"- skipped: {s}" for s in skipped]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = "python3 " + shlex.join(sys.argv)
    tools = require_tools("wrk", "nginx", *(["taskset"] if args.server_cpus or args.load_cpus else []))
    raise_nofile_limit()

    variants, skipped = list(args.variants), []
    ballast_variants = [v for v in variants if v.startswith("ballast-")]
    if ballast_variants and not Path(args.ballast).is_file():
        msg = (f"{', '.join(ballast_variants)}: ballast binary {args.ballast} not found "
               f"(build it with `swift build -c release`)")
        print(f"skipping {msg}", file=sys.stderr)
        skipped.append(msg)
        variants = [v for v in variants if v not in ballast_variants]
    if not variants:
        print("error: no variant left to measure", file=sys.stderr)
        return 1

    env = environment(REPO_DIR, tools)  # before starting anything: the date is the start
    if any(v.startswith("ballast-") for v in variants):
        env["ballast_binary"] = file_fingerprint(args.ballast)

    plan = run_plan(variants, args.connections, args.repetitions)
    per_run = args.duration + args.warmup
    print(placement_text(args), file=sys.stderr)
    print(f"{len(plan)} runs x {per_run} s ≈ {len(plan) * per_run / 60:.1f} min "
          f"({', '.join(variants)}; connections {args.connections}; {args.repetitions} repetition(s))", file=sys.stderr)

    exit_on_termination_signals()

    runs: list[dict] = []
    servers: dict[str, Server] = {}
    server_info: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ballast-bench-") as tmp:
        workdir = Path(tmp)
        try:
            urls = {}
            for v in variants:
                server, port, path = make_server(v, args, tools, workdir)
                servers[v] = server
                server.start()
                probe = wait_until_serving(server, HOST, port, path, expect_body_bytes=args.body_size)
                urls[v] = f"http://{HOST}:{port}{path}"
                server_info[v] = {**server.describe(), "url": urls[v], "probe_headers": probe["headers"]}
                if v == "nginx":
                    server_info[v]["config"] = (workdir / "nginx" / "nginx.conf").read_text()
                print(f"{v}: pid {server.pid} ({server_info[v].get('comm')}, "
                      f"{server_info[v].get('threads')} thread(s)) serving {urls[v]}", file=sys.stderr)

            for i, (rep, conns, v) in enumerate(plan, 1):
                run = {"index": i, "variant": v, "connections": conns, "repetition": rep,
                       **measure(servers[v], urls[v], conns, args, tools["wrk"])}
                runs.append(run)
                print(progress(i, len(plan), run), file=sys.stderr, flush=True)
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            for server in servers.values():
                server.stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    summary = summarize(runs, variants, args.connections)
    for row in summary["rows"]:
        if row["bytes_per_response"] and row["variant"] in server_info:
            server_info[row["variant"]]["bytes_per_response"] = row["bytes_per_response"]["median"]
    target_list = targets(summary, args.connections)
    failed = [r for r in runs if not r["ok"]]
    tables = markdown_tables(summary, target_list, failed)
    env["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    print(placement_text(args))
    print()
    print(tables)
    if args.json:
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        doc = {"benchmark": "bench_server", "command": command, "config": config,
               "placement": {"server_cpus": args.server_cpus, "load_cpus": args.load_cpus},
               "environment": env, "skipped": skipped, "servers": server_info,
               "runs": runs, "summary": summary, "targets": target_list, "failed_points": len(failed)}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(markdown_report(args, command, env, server_info, tables, skipped))
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
