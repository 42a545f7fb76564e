#!/usr/bin/env python3
"""Interleaved A/B of two ballast binaries as proxies (same upstream, same run): CPU per request
(proxy utime+stime / requests) per backend and round, and the ratio B/A per round. Reuses bench_proxy.

With --log both proxies write Envoy's default access log to a file (the `+log` variants).

Usage: python3 scripts/proxy_ab.py BALLAST_A BALLAST_B ROUNDS [--log]   (release builds; wrk installed)
"""
import copy, statistics, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy as bp
from bench_common import raise_nofile_limit
raise_nofile_limit()
a_bin, b_bin, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
args = bp.parse_args(["--ballast", a_bin, "--duration", "3", "--skip-memory"])
wrk = "/usr/bin/wrk"
with tempfile.TemporaryDirectory() as d:
    work = Path(d)
    up, port = bp.upstream_server(args, work)
    up.start()
    proxies = {}
    try:
        log = bp.LOG_SUFFIX if "--log" in sys.argv[4:] else ""
        for backend in ("ballast-epoll" + log, "ballast-io_uring" + log):
            for tag, binary in (("A", a_bin), ("B", b_bin)):
                a = copy.copy(args); a.ballast = binary
                p, pport, _ = bp.make_proxy(backend, a, {}, work, port, tag)
                p.start()
                bp.wait_until_serving(p, bp.HOST, pport, f"/?size={args.body_size}", expect_body_bytes=args.body_size)
                proxies[(backend, tag)] = (p, pport)
        keys = list(proxies)
        res = {k: [] for k in keys}
        for r in range(rounds):
            order = keys[r % len(keys):] + keys[:r % len(keys)]
            for k in order:
                p, pport = proxies[k]
                m = bp.measure(p, up, f"http://{bp.HOST}:{pport}/?size={args.body_size}", 128, args, wrk)
                res[k].append((m["proxy_cpu_us_per_request"],))
        for backend in ("ballast-epoll" + log, "ballast-io_uring" + log):
            a = [x[0] for x in res[(backend, "A")]]; b = [x[0] for x in res[(backend, "B")]]
            ratios = [bb / aa for aa, bb in zip(a, b)]
            print(f"{backend}: A cpu us/req {['%.2f' % x for x in a]}  B {['%.2f' % x for x in b]}  "
                  f"B/A per round {['%.3f' % x for x in ratios]}  median {statistics.median(ratios):.3f}")
    finally:
        for p, _ in proxies.values(): p.stop()
        up.stop()
