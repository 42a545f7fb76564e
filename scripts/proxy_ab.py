#!/usr/bin/env python3
"""Interleaved A/B of two ballast binaries as proxies (same upstream, same run): CPU per request
(proxy utime+stime / requests) per backend and round, and the ratio B/A per round. Reuses bench_proxy.

Usage: python3 scripts/proxy_ab.py BALLAST_A BALLAST_B ROUNDS [--log]   (release builds; wrk installed)
--log: both proxies write a file access log (Envoy's default format), as proxy benchmarks should.
"""
import copy, statistics, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy as bp
from bench_common import raise_nofile_limit
raise_nofile_limit()
a_bin, b_bin, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
suffix = bp.LOG_SUFFIX if "--log" in sys.argv[4:] else ""
backends = [b + suffix for b in ("ballast-epoll", "ballast-io_uring")]
args = bp.parse_args(["--ballast", a_bin, "--duration", "3", "--skip-memory"])
wrk = "/usr/bin/wrk"
with tempfile.TemporaryDirectory() as d:
    work = Path(d)
    up, port = bp.upstream_server(args, work)
    up.start()
    proxies = {}
    try:
        for backend in backends:
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
                res[k].append((m["proxy_cpu_us_per_request"], m["wrk"]["requests_per_second"]))
        for backend in backends:
            a = [x[0] for x in res[(backend, "A")]]; b = [x[0] for x in res[(backend, "B")]]
            ratios = [bb / aa for aa, bb in zip(a, b)]
            print(f"{backend}: A cpu us/req {['%.2f' % x for x in a]}  B {['%.2f' % x for x in b]}  "
                  f"B/A per round {['%.3f' % x for x in ratios]}  median {statistics.median(ratios):.3f}")
            ra = [x[1] for x in res[(backend, "A")]]; rb = [x[1] for x in res[(backend, "B")]]
            rr = [y / x for x, y in zip(ra, rb)]
            print(f"{backend}: A req/s {['%.0f' % x for x in ra]}  B {['%.0f' % x for x in rb]}  "
                  f"B/A per round {['%.3f' % x for x in rr]}  median {statistics.median(rr):.3f}")
    finally:
        for p, _ in proxies.values(): p.stop()
        up.stop()
