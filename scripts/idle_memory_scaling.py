#!/usr/bin/env python3
"""RSS growth per idle keep-alive connection at two connection counts (reuses bench_proxy's
measure_memory): a fixed first-touch cost shrinks per connection as the count grows, real
per-connection state does not.

Usage: python3 scripts/idle_memory_scaling.py BALLAST   (a release build)
"""
import sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy as bp
from bench_common import raise_nofile_limit
raise_nofile_limit()
binary = sys.argv[1]
for n in (4000, 16000):
    args = bp.parse_args(["--ballast", binary, "--variants", "ballast-epoll,ballast-io_uring", "--memory-connections", str(n)])
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        up, port = bp.upstream_server(args, work)
        up.start()
        try:
            for v in ("ballast-epoll", "ballast-io_uring"):
                r = bp.measure_memory(v, f"-{n}", args, {}, work, port)
                print(f"{v} {n} conns: {r['rss_growth_bytes_per_connection']/1024:.2f} KiB/conn "
                      f"({(r['rss_after_bytes']-r['rss_before_bytes'])/1048576:.1f} MiB), answered {r['answered']}", flush=True)
        finally:
            up.stop()
