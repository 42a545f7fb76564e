#!/usr/bin/env python3
"""CPU cost of HTTP filters in `ballast proxy`: one release binary, two configs in the same run,
interleaved: A = the bench proxy config with an access log, B = A plus the filters under test
(local_ratelimit enabled and enforced with a bucket that never empties, fault with header-driven
delay and abort at 100% that the load's requests do not trigger, cors when the binary knows it).
Prints CPU per request (proxy utime+stime / requests, from /proc) and req/s per round, and B - A.

With --hc-buffer, B = A plus health_check (matching /healthz only, which the load never asks
for) and buffer (the load's GETs have no body), instead of the filters above.

With --compressor, B = A plus the compressor filter (gzip, Envoy's default content types and
minimum length); the load sends no accept-encoding, so B pays the decision and `vary`, not deflate.

With --ext-authz, B = A plus ext_authz with an http_service whose authorization cluster is the
backend itself (it answers the check, GET /?size=N, with 200): each request pays a whole second
exchange (the check request, its response read and kept, the head rewritten and parsed again).

Usage: python3 scripts/filter_ab.py BALLAST ROUNDS [--cors | --hc-buffer | --compressor | --ext-authz]   (release build; wrk installed)
"""
import copy, statistics, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy as bp
from bench_common import raise_nofile_limit

FILTERS = """                http_filters:
                  - name: envoy.filters.http.local_ratelimit
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                      stat_prefix: bench_rl
                      token_bucket: {max_tokens: 4000000000, tokens_per_fill: 4000000000, fill_interval: 1s}
                      filter_enabled: {default_value: {numerator: 100}}
                      filter_enforced: {default_value: {numerator: 100}}
                  - name: envoy.filters.http.fault
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                      delay: {header_delay: {}, percentage: {numerator: 100}}
                      abort: {header_abort: {}, percentage: {numerator: 100}}
"""
HC_BUFFER = """                http_filters:
                  - name: envoy.filters.http.health_check
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
                      pass_through_mode: false
                      headers: [{name: ":path", string_match: {exact: /healthz}}]
                  - name: envoy.filters.http.buffer
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 65536}
"""
COMPRESSOR = """                http_filters:
                  - name: envoy.filters.http.compressor
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
                      compressor_library: {name: bench, typed_config: {"@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip}}
"""
EXT_AUTHZ = """                http_filters:
                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      http_service: {server_uri: {uri: authz, cluster: backend, timeout: 1s}}
"""
CORS = """                  - name: envoy.filters.http.cors
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}
"""
ACCESS_LOG = """                stat_prefix: ingress_http
                access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: {{WORKDIR}}/access.log
"""


def configs(with_cors: bool, hc_buffer: bool = False, compressor: bool = False, ext_authz: bool = False) -> dict[str, str]:
    base = (bp.CONFIG_DIR / "ballast-proxy.yaml").read_text()
    a = base.replace("                stat_prefix: ingress_http\n", ACCESS_LOG)
    assert a != base
    filters = EXT_AUTHZ if ext_authz else COMPRESSOR if compressor else HC_BUFFER if hc_buffer else FILTERS + (CORS if with_cors else "")
    b = a.replace("                http_filters:\n", filters)
    if with_cors:
        b = b.replace('domains: ["*"]', 'domains: ["*"]\n                      typed_per_filter_config:\n'
                      '                        envoy.filters.http.cors: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy, '
                      'allow_origin_string_match: [{exact: "https://example.com"}], allow_methods: "GET,POST"}')
    assert b != a
    return {"A": a, "B": b}


def main() -> None:
    raise_nofile_limit()
    binary, rounds = sys.argv[1], int(sys.argv[2])
    texts = configs("--cors" in sys.argv[3:], hc_buffer="--hc-buffer" in sys.argv[3:], compressor="--compressor" in sys.argv[3:],
                    ext_authz="--ext-authz" in sys.argv[3:])
    args = bp.parse_args(["--ballast", binary, "--duration", "3", "--skip-memory"])
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        up, port = bp.upstream_server(args, work)
        up.start()
        proxies = {}
        try:
            for backend in ("epoll", "io_uring"):
                for tag, text in texts.items():
                    pport, admin = bp.free_port(bp.HOST), bp.free_port(bp.HOST)
                    pd = work / f"{backend}{tag}"
                    pd.mkdir()
                    conf = pd / "proxy.yaml"
                    conf.write_text(bp.render_template(text, {"LISTEN_PORT": pport, "UPSTREAM_PORT": port, "ADMIN_PORT": admin, "WORKDIR": pd}))
                    argv = [str(Path(binary).resolve()), "proxy", "-c", str(conf), "--concurrency", "2", "--io", backend]
                    p = bp.Server(f"{backend}{tag}", argv, pd, args.proxy_cpus)
                    p.start()
                    bp.wait_until_serving(p, bp.HOST, pport, f"/?size={args.body_size}", expect_body_bytes=args.body_size)
                    proxies[(backend, tag)] = (p, pport)
            keys = list(proxies)
            res = {k: [] for k in keys}
            for r in range(rounds):
                order = keys[r % len(keys):] + keys[:r % len(keys)]
                for k in order:
                    p, pport = proxies[k]
                    m = bp.measure(p, up, f"http://{bp.HOST}:{pport}/?size={args.body_size}", 128, args, "/usr/bin/wrk")
                    res[k].append((m["proxy_cpu_us_per_request"], round(m["wrk"]["requests_per_second"])))
            for backend in ("epoll", "io_uring"):
                a = [x[0] for x in res[(backend, "A")]]
                b = [x[0] for x in res[(backend, "B")]]
                ra = [x[1] for x in res[(backend, "A")]]
                rb = [x[1] for x in res[(backend, "B")]]
                diffs = [bb - aa for aa, bb in zip(a, b)]
                print(f"{backend}: cpu us/req A {['%.2f' % x for x in a]} B {['%.2f' % x for x in b]}")
                print(f"  B-A per round (us) {['%+.3f' % x for x in diffs]} median {statistics.median(diffs):+.3f} "
                      f"min {min(diffs):+.3f} max {max(diffs):+.3f}; B/A median {statistics.median([bb / aa for aa, bb in zip(a, b)]):.3f}")
                print(f"  req/s A {ra} B {rb}")
        finally:
            for p, _ in proxies.values():
                p.stop()
            up.stop()


if __name__ == "__main__":
    main()
