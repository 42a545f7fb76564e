#!/usr/bin/env python3
"""RSS growth of `ballast proxy` per idle TLS keep-alive connection (one request each).

Usage: scripts/tls_idle_memory.py BALLAST CONNECTIONS
Makes throwaway certificates (scripts/tls-test-certs.sh), starts `ballast server` and a proxy
that terminates TLS in front of it, opens CONNECTIONS TLS connections from this process (one
GET each, then idle), and prints the proxy's RSS before and after, per connection.
"""
import os, re, shutil, socket, ssl, subprocess, sys, tempfile, time

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

def main():
    ballast, n = sys.argv[1], int(sys.argv[2])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="ballast-tls-mem-")
    subprocess.run([os.path.join(root, "scripts/tls-test-certs.sh"), tmp], check=True)
    server = subprocess.Popen([ballast, "server", "--port", "0", "--address", "127.0.0.1", "--workers", "1"],
                              stdout=subprocess.PIPE, text=True)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", server.stdout.readline()).group(1))
    s = socket.socket(); s.bind(("127.0.0.1", 0)); proxy_port = s.getsockname()[1]; s.close()
    config = os.path.join(tmp, "proxy.yaml")
    with open(config, "w") as f:
        f.write(f"""static_resources:
  listeners:
  - name: tls
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {proxy_port} }} }}
    filter_chains:
    - transport_socket: {{ name: envoy.transport_sockets.tls, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {{ tls_certificates: [ {{ certificate_chain: {{ filename: {tmp}/server.pem }}, private_key: {{ filename: {tmp}/server.key }} }} ] }} }} }}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: tls
          route_config: {{ virtual_hosts: [ {{ name: all, domains: ["*"], routes: [ {{ match: {{ prefix: "/" }}, route: {{ cluster: echo }} }} ] }} ] }}
          http_filters: [ {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }} ]
  clusters:
  - name: echo
    load_assignment: {{ cluster_name: echo, endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }} ] }} ] }}
""")
    proxy = subprocess.Popen([ballast, "proxy", "-c", config, "--concurrency", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca.pem"))
    conns = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", proxy_port)).close(); break
            except OSError:
                time.sleep(0.05)
        def one():
            c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", proxy_port)), server_hostname="localhost")
            c.sendall(b"GET /?size=10 HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"\r\n\r\n" + b"") and len(data) < 10:
                data += c.recv(4096)
            while b"\r\n\r\n" not in data:
                data += c.recv(4096)
            head, body = data.split(b"\r\n\r\n", 1)
            while len(body) < 10:
                body += c.recv(4096)
            return c
        for _ in range(20): conns.append(one())  # warm-up: pools, first pages
        time.sleep(0.5)
        before = rss_kib(proxy.pid)
        for _ in range(n): conns.append(one())
        time.sleep(0.5)
        after = rss_kib(proxy.pid)
        print(f"connections {n}: RSS {before} KiB -> {after} KiB, {(after - before) / n:.2f} KiB per idle TLS connection")
    finally:
        for c in conns: c.close()
        proxy.terminate(); server.terminate(); proxy.wait(); server.wait()
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    main()
