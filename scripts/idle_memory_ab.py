#!/usr/bin/env python3
"""Idle-connection memory of two ballast builds against nginx, in one run: RSS growth of the
process tree per idle keep-alive connection (bench_proxy's memory phase: a fresh proxy, 200
warm-up connections, then N connections opened one after another, one request each, left idle),
at several connection counts, the variants' order rotated every round. Prints per variant and
count the KiB per connection (median, min-max) and, paired by round, the ratio to nginx's.

Usage: python3 scripts/idle_memory_ab.py OLD_BALLAST NEW_BALLAST [ROUNDS] [COUNTS] [BACKENDS]
       (release builds; ROUNDS default 3, COUNTS default 1000,10000, BACKENDS default
       io_uring,epoll: each backend's old and new build are measured)
"""
import statistics, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy as bp
from bench_common import raise_nofile_limit, require_tools

raise_nofile_limit()
old, new = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
counts = [int(c) for c in sys.argv[4].split(",")] if len(sys.argv) > 4 else [1000, 10000]
backends = sys.argv[5].split(",") if len(sys.argv) > 5 else ["io_uring", "epoll"]
tools = require_tools("nginx")
# (label, bench_proxy variant, ballast binary)
variants = [("nginx", "nginx", new)]
for b in backends:
    variants += [(f"old {b}", f"ballast-{b}", old), (f"new {b}", f"ballast-{b}", new)]


def show(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


per_conn: dict[tuple[str, int], list[float]] = {}
with tempfile.TemporaryDirectory() as d:
    work = Path(d)
    base = bp.parse_args(["--ballast", new, "--memory-connections", str(max(counts))])
    up, port = bp.upstream_server(base, work)
    up.start()
    try:
        for r in range(rounds):
            for n in counts:
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                for label, variant, binary in order:
                    args = bp.parse_args(["--ballast", binary, "--memory-connections", str(n)])
                    m = bp.measure_memory(variant, f"-r{r}-{n}-{label.replace(' ', '_')}", args, tools, work, port)
                    if not m["ok"]:
                        sys.exit(f"{label} at {n}: only {m['answered']} of {m['connections']} answered")
                    kib = m["rss_growth_bytes_per_connection"] / 1024
                    per_conn.setdefault((label, n), []).append(kib)
                    print(f"round {r + 1} {n:>6} conns {label:<13} {kib:.3f} KiB/conn", file=sys.stderr, flush=True)
    finally:
        up.stop()

for n in counts:
    nginx = per_conn[("nginx", n)]
    for label, _, _ in variants:
        values = per_conn[(label, n)]
        ratios = [v / g for v, g in zip(values, nginx)]
        print(f"{n:>6} conns  {label:<13} KiB/conn {show(values)}  vs nginx {show(ratios)}")
    for b in backends:
        ratios = [x / y for x, y in zip(per_conn[(f"new {b}", n)], per_conn[(f"old {b}", n)])]
        print(f"{n:>6} conns  new/old {b} {show(ratios)}")
