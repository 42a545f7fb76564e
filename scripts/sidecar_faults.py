#!/usr/bin/env python3
"""The talk's two sidecar faults, reproduced in network namespaces (issue 14).

Two namespaces joined by a veth pair, no other network:
  gw   a front proxy (`ballast proxy`, or Envoy 1.40 with --peer envoy): listener 127.0.0.1:10000,
       routes /a -> cluster a (pod:8001) and /b -> cluster b (pod:8002), access log with
       %UPSTREAM_LOCAL_ADDRESS%;
  pod  the application (`ballast server` on 8001 and 8002) behind its sidecar: `ballast proxy` as
       uid 1337 with Istio's virtual inbound listener on 15006 (original_dst, an ORIGINAL_DST cluster
       that binds 127.0.0.6 as Istio 1.10+ does), and `ballast sidecar-init` redirecting inbound TCP
       to 15006.

Fault 1, a 5-tuple collision after REDIRECT: every inbound connection becomes pod:15006 <->
gw:P after NAT, whatever application port it was for, and the gateway's kernel may give one source
port P to connections to two application ports (a one-port ephemeral range forces it here). While
the pod's conntrack entry of the first lives, NAT sees the clash and remaps the second; once it
expired while the sockets live on (the pod's nf_conntrack_tcp_timeout_established is set to 2 s
and the connection idles 4 s), the second SYN lands on the live socket: a challenge ACK
(TcpExtTCPChallengeACK in the pod), the gateway's reset, and the old connection fails its next
request (503 UC here; 503 UF in the talk, where the SYN was lost). Rows: the fault, upstream
tcp_keepalive every 1 s (the entry never expires), the default port range.

Fault 2, 503 UO: cluster a with circuit_breakers max_connections 1 / max_pending_requests 1 and a
200 ms application; 8 concurrent clients overflow the pending queue: 503 UO and
upstream_rq_pending_overflow. The fix is the breaker sized for the concurrency.

Usage (root): scripts/sidecar_faults.py [--rounds N] [--requests N] [--out FILE] [--peer ballast|envoy] [--ballast BIN]
Writes a Markdown report (default results/sidecar-faults/<date>-<peer>.md) and prints it.
BALLAST_FAULTS_DEBUG=1 adds the first log lines of each row and of the sidecar.
"""
import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOG_FORMAT = "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_HOST% %DOWNSTREAM_REMOTE_ADDRESS% %RESPONSE_CODE_DETAILS% %REQ(:PATH)%\\n"


def run(argv, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


class Namespaces:
    """gw <-> pod over one veth pair; removed by close()."""

    def __init__(self):
        tag = os.getpid() % 100000
        self.gw, self.pod = f"ballast-gw-{tag}", f"ballast-pod-{tag}"
        net = os.getpid() % 250
        self.gw_ip, self.pod_ip = f"10.214.{net}.1", f"10.214.{net}.2"
        self.children = []
        run(["ip", "netns", "add", self.gw])
        run(["ip", "netns", "add", self.pod])
        a, b = f"bgw{tag}", f"bpod{tag}"
        for step in (["ip", "link", "add", a, "type", "veth", "peer", "name", b],
                     ["ip", "link", "set", a, "netns", self.gw], ["ip", "link", "set", b, "netns", self.pod]):
            run(step)
        for ns, dev, ip in ((self.gw, a, self.gw_ip), (self.pod, b, self.pod_ip)):
            run(self.inside(ns, ["ip", "addr", "add", f"{ip}/30", "dev", dev]))
            run(self.inside(ns, ["ip", "link", "set", dev, "up"]))
            run(self.inside(ns, ["ip", "link", "set", "lo", "up"]))

    @staticmethod
    def inside(ns, argv):
        return ["ip", "netns", "exec", ns] + argv

    def start(self, ns, argv, log):
        p = subprocess.Popen(self.inside(ns, argv), stdout=open(log, "w"), stderr=subprocess.STDOUT)
        self.children.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.children.remove(p)

    def close(self):
        for p in list(self.children):
            self.stop(p)
        run(["ip", "netns", "del", self.gw], check=False)
        run(["ip", "netns", "del", self.pod], check=False)


def wait_for(ns, url, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if run(Namespaces.inside(ns, ["curl", "-s", "-o", "/dev/null", "--max-time", "1", url]), check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"{url} in {ns} did not answer")


def listener(name, address, port, prefix, cluster_route, log, original_dst=False):
    filters = ("\n    listener_filters: [ { name: envoy.filters.listener.original_dst, typed_config: "
               "{ \"@type\": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst } } ]") if original_dst else ""
    return f"""
  - name: {name}
    address: {{ socket_address: {{ address: {address}, port_value: {port} }} }}{filters}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          access_log: [ {{ name: envoy.access_loggers.file, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: {log}, log_format: {{ text_format_source: {{ inline_string: "{LOG_FORMAT}" }} }} }} }} ]
          route_config: {{ virtual_hosts: [ {{ name: all, domains: ["*"], routes: [ {cluster_route} ] }} ] }}
          http_filters: [ {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }} ]"""


def cluster(name, ip, port, extra=""):
    return (f"  - {{ name: {name}, type: STATIC, connect_timeout: 0.25s, {extra}load_assignment: {{ cluster_name: {name}, endpoints: "
            f"[ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }} }} }} ] }} ] }} }}")


def gateway_yaml(pod_ip, log, cluster_extra_a="", cluster_extra_b=""):
    routes = ("{ match: { prefix: \"/a\" }, route: { cluster: a } }, { match: { prefix: \"/b\" }, route: { cluster: b } }")
    return f"""admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 15100 }} }} }}
static_resources:
  listeners:{listener("gateway", "127.0.0.1", 10000, "gateway", routes, log)}
  clusters:
{cluster("a", pod_ip, 8001, cluster_extra_a)}
{cluster("b", pod_ip, 8002, cluster_extra_b)}
"""


def sidecar_yaml(log):
    route = '{ match: { prefix: "/" }, route: { cluster: InboundPassthrough } }'
    return f"""admin: {{ address: {{ socket_address: {{ address: 0.0.0.0, port_value: 15000 }} }} }}
static_resources:
  listeners:{listener("virtualInbound", "0.0.0.0", 15006, "inbound", route, log, original_dst=True)}
  clusters:
  - {{ name: InboundPassthrough, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 1s,
      upstream_bind_config: {{ source_address: {{ address: 127.0.0.6, port_value: 0 }} }} }}
"""


# The client keeps one connection per thread to the gateway, from a fixed source port below the
# narrowed ephemeral range (the range is the gateway's upstream side of the experiment).
CLIENT = r"""
import http.client, sys, collections, concurrent.futures, threading
paths, concurrency, base = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
local = threading.local()
ports = iter(range(base, base + concurrency))
lock = threading.Lock()
def one(path):
    if not hasattr(local, "port"):
        with lock:
            local.port = next(ports)
    try:
        if not hasattr(local, "c"):
            local.c = http.client.HTTPConnection("127.0.0.1", 10000, timeout=10, source_address=("127.0.0.1", local.port))
        local.c.request("GET", path)
        r = local.c.getresponse(); r.read()
        if r.getheader("connection", "").lower() == "close":
            local.c.close(); del local.c
        return r.status
    except Exception as e:
        if hasattr(local, "c"):
            local.c.close(); del local.c
        return type(e).__name__
with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
    counts = collections.Counter(pool.map(one, paths))
print(" ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=str)))
"""


CLIENT_PORTS = iter(range(20000, 30000, 10))


def client(ns, paths, concurrency=1):
    """Each run takes fresh source ports: the last run's are in TIME_WAIT."""
    return run(Namespaces.inside(ns, [sys.executable, "-c", CLIENT, ",".join(paths), str(concurrency), str(next(CLIENT_PORTS))])).stdout.strip()


def stats(ns, names):
    text = run(Namespaces.inside(ns, ["curl", "-s", "http://127.0.0.1:15100/stats"])).stdout
    values = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return {n: values.get(n, "-") for n in names}


IDLE_SECONDS = 4
CONNTRACK_SECONDS = 2


def challenge_acks(ns):
    """The pod's TcpExtTCPChallengeACK: SYNs that landed on an established socket."""
    text = run(ns.inside(ns.pod, ["nstat", "-az", "TcpExtTCPChallengeACK"])).stdout
    for line in text.splitlines():
        if line.startswith("TcpExtTCPChallengeACK"):
            return int(line.split()[1])
    return 0


def summarize(seen):
    """'200=1' per round joined into counts."""
    counts = {}
    for entry in seen:
        for part in entry.split():
            k, v = part.split("=")
            counts[k] = counts.get(k, 0) + int(v)
    return " ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def flags_of(log):
    lines = Path(log).read_text().splitlines() if Path(log).exists() else []
    counts = {}
    for line in lines:
        parts = line.split(" ")
        key = f"{parts[0]} {parts[1]}"
        counts[key] = counts.get(key, 0) + 1
    return lines, counts


def start_gateway(ns, peer, config, work, tag, ballast):
    path = work / f"gateway-{tag}.yaml"
    path.write_text(config)
    if peer == "envoy":
        envoy = run([str(REPO / "scripts/ensure-envoy.sh")]).stdout.split()[-1]
        argv = [envoy, "-c", str(path), "--concurrency", "1", "--disable-hot-restart", "-l", "error",
                "--file-flush-interval-msec", "50", "--base-id", str(os.getpid() % 1000 + 1)]
    else:
        argv = [str(ballast), "proxy", "-c", str(path), "--concurrency", "1", "--io", "epoll"]
    p = ns.start(ns.gw, argv, work / f"gateway-{tag}.out")
    wait_for(ns.gw, "http://127.0.0.1:15100/ready")
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds per 503 UF row")
    ap.add_argument("--requests", type=int, default=200, help="requests per 503 UO row")
    ap.add_argument("--peer", choices=["ballast", "envoy"], default="ballast", help="the front proxy in gw")
    ap.add_argument("--out", type=Path, help="report file (default results/sidecar-faults/<date>-<peer>.md)")
    ap.add_argument("--ballast", type=Path, default=REPO / ".build/release/ballast", help="the ballast binary (release build)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, iptables)")
    for tool, package in (("ip", "iproute2"), ("nstat", "iproute2"), ("iptables", "iptables"), ("curl", "curl"), ("setpriv", "util-linux"), ("conntrack", "conntrack")):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install {package})")
    ballast = args.ballast
    if not ballast.exists():
        raise SystemExit(f"{ballast} missing: swift build -c release")
    work = Path(tempfile.mkdtemp(prefix="ballast-faults-"))
    os.chmod(work, 0o777)
    ns = Namespaces()
    report = [f"# Sidecar faults reproduced ({datetime.date.today()})", "",
              f"`scripts/sidecar_faults.py --rounds {args.rounds} --requests {args.requests} --peer {args.peer}` on {os.uname().nodename}, "
              f"kernel {os.uname().release}; front proxy: {args.peer}; sidecar: ballast proxy.", ""]
    try:
        for port in (8001, 8002):
            ns.start(ns.pod, [str(ballast), "server", "--address", "0.0.0.0", "--port", str(port), "--workers", "1", "--io", "epoll"],
                     work / f"app-{port}.out")
        (work / "sidecar.yaml").write_text(sidecar_yaml(work / "inbound.log"))
        os.chmod(work / "sidecar.yaml", 0o644)
        ns.start(ns.pod, ["setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups", str(ballast), "proxy", "-c",
                          str(work / "sidecar.yaml"), "--concurrency", "1", "--io", "epoll"], work / "sidecar.out")
        wait_for(ns.pod, "http://127.0.0.1:15000/ready")
        wait_for(ns.pod, "http://127.0.0.1:8001/")
        run([str(ballast), "sidecar-init", "--netns", ns.pod, "--proxy-uid", "1337", "--exclude-inbound-ports", "15000"])

        report += ["## A 5-tuple collision after REDIRECT to 15006 (the talk's 503 UF)", "",
                   f"Per round: GET /a (a keep-alive connection gw:P -> pod:8001, redirected to pod:15006), {IDLE_SECONDS} s idle "
                   f"(the pod's conntrack entry expires: nf_conntrack_tcp_timeout_established {CONNTRACK_SECONDS} s there, "
                   "5 days by default), GET /b from the same source port P (a one-port ephemeral range stands in for a crowded "
                   f"one). {args.rounds} rounds per row; connect_timeout 0.25s.", "",
                   "| gateway | client saw for /a | client saw for /b | gateway log (code flags cluster: count) | pod TcpExtTCPChallengeACK |",
                   "|---|---|---|---|---|"]
        examples = []
        run(ns.inside(ns.pod, ["sysctl", "-q", "-w", f"net.netfilter.nf_conntrack_tcp_timeout_established={CONNTRACK_SECONDS}"]))
        rows = (("one source port, no keep-alive probes (the fault)", ""),
                ("fix: tcp_keepalive every 1 s", "upstream_connection_options: { tcp_keepalive: { keepalive_time: 1, keepalive_interval: 1 } }, "),
                ("fix: the default port range", None))
        for i, (label, extra) in enumerate(rows):
            port = 40000 + 10 * i  # a port of its own: the last row's connections are in TIME_WAIT
            span = "32768 60999" if extra is None else f"{port} {port}"
            run(ns.inside(ns.gw, ["sysctl", "-q", "-w", f"net.ipv4.ip_local_port_range={span}"]))
            run(ns.inside(ns.pod, ["conntrack", "-F"]))
            tag = f"uf-{i}"
            log = work / f"{tag}.log"
            gw = start_gateway(ns, args.peer, gateway_yaml(ns.pod_ip, log, extra or "", extra or ""), work, tag, ballast)
            before = challenge_acks(ns)
            a_seen, b_seen, b_times = [], [], []
            for _ in range(args.rounds):
                a_seen.append(client(ns.gw, ["/a"]))
                time.sleep(IDLE_SECONDS)
                started = time.time()
                b_seen.append(client(ns.gw, ["/b"]))
                b_times.append(time.time() - started)
            time.sleep(0.3)
            acks = challenge_acks(ns) - before
            ns.stop(gw)
            lines, _ = flags_of(log)
            counts = {}
            for l in lines:
                key = " ".join(l.split(" ")[:3])
                counts[key] = counts.get(key, 0) + 1
            report.append(f"| {label} | {summarize(a_seen)} | {summarize(b_seen)} (slowest {max(b_times):.2f} s) | "
                          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + f" | {acks} |")
            if i == 0:
                examples = lines[:6]
        report += ["", "The fault's gateway log (format `" + LOG_FORMAT.replace("\\n", "") + "`):", "", "```"]
        report += examples + ["```", ""]
        inbound, inbound_counts = flags_of(work / "inbound.log")
        report += ["The sidecar's inbound log (code flags: count): " + ", ".join(f"{k}: {v}" for k, v in sorted(inbound_counts.items())), ""]
        if os.environ.get("BALLAST_FAULTS_DEBUG"):
            report += ["```"] + inbound[:5] + ["```"]
        conntrack = run(ns.inside(ns.pod, ["conntrack", "-S"]), check=False).stdout.strip()
        if conntrack:
            report += ["Pod namespace `conntrack -S` afterwards:", "", "```", conntrack, "```", ""]

        report += ["## 503 UO: pending-request overflow", "",
                   "Cluster a: circuit_breakers max_connections 1, max_pending_requests 1 (then sized for the load); "
                   f"the application answers after 200 ms (`?delay=200ms`); {args.requests} requests from 8 concurrent clients.", "",
                   "| circuit breaker | client saw | gateway log (code flags: count) | upstream_rq_pending_overflow | upstream_rq_total |",
                   "|---|---|---|---|---|"]
        for label, breaker in (("max_connections 1, max_pending_requests 1", "max_connections: 1, max_pending_requests: 1"),
                               ("max_connections 8, max_pending_requests 8", "max_connections: 8, max_pending_requests: 8")):
            run(ns.inside(ns.gw, ["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=32768 60999"]))
            tag = "uo-" + breaker.split(",")[0].split(": ")[1]
            log = work / f"{tag}.log"
            extra = f"circuit_breakers: {{ thresholds: [ {{ {breaker} }} ] }}, "
            gw = start_gateway(ns, args.peer, gateway_yaml(ns.pod_ip, log, extra), work, tag, ballast)
            seen = client(ns.gw, ["/a?delay=200ms"] * args.requests, concurrency=8)
            time.sleep(0.3)
            s = stats(ns.gw, ["cluster.a.upstream_rq_pending_overflow", "cluster.a.upstream_rq_total"])
            ns.stop(gw)
            lines, counts = flags_of(log)
            report.append(f"| {label} | {seen} | " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + " | "
                          + " | ".join(s.values()) + " |")
            if "1," in label:
                uo = [l for l in lines if " UO " in l][:1]
        report += ["", "A UO line:", "", "```"] + uo + ["```", ""]
    finally:
        ns.close()
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(report) + "\n"
    out = args.out or REPO / "results/sidecar-faults" / f"{datetime.date.today()}-{args.peer}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
