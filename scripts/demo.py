#!/usr/bin/env python3
"""`make demo`: a short A/B run of ballast server's two I/O backends (epoll vs io_uring) under wrk,
interleaved, ending with a report on disk (results/demo/<UTC timestamp>/report.md and .json).

This is the stand-in for the experiment sweep (`ballast sweep Experiments/quick.yaml`) until that
lands; it reuses the server benchmark's runner with short settings.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ballast", default=".build/release/ballast")
    p.add_argument("--out", default="results/demo", help="parent folder of the timestamped report folder")
    args = p.parse_args()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) / stamp
    out.mkdir(parents=True, exist_ok=True)
    report, raw = out / "report.md", out / "results.json"
    command = [sys.executable, str(HERE / "bench_server.py"), "--ballast", args.ballast,
               "--variants", "ballast-epoll,ballast-io_uring", "--connections", "16,128",
               "--repetitions", "2", "--duration", "3", "--warmup", "1", "--load-cpus", "0",
               "--markdown", str(report), "--json", str(raw)]
    print("demo: epoll vs io_uring, 2 connection counts x 2 repetitions, about 40 s", file=sys.stderr)
    rc = subprocess.call(command)
    if rc != 0:
        print(f"demo: the run failed (exit {rc}); see the messages above", file=sys.stderr)
        return rc
    print(f"\nreport: {report}\nraw results: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
