import Foundation
import Glibc
import XCTest

/// tcp_proxy against real Envoy 1.40: one access-log line per connection (flags, bytes, host,
/// failure reason, `-` for the request fields) and the cluster and `tcp.` counters, after the
/// same connections: one proxied, one to a dead host, two attempts to dead hosts
/// (max_connect_attempts), one over max_connections, one to a cluster without hosts.
final class TCPProxyDifferentialTests: XCTestCase {
    static let listeners = ["ok", "dead", "retry", "full", "empty"]
    static let format = "%RESPONSE_FLAGS%|%RESPONSE_CODE%|%RESPONSE_CODE_DETAILS%|%UPSTREAM_CLUSTER%|%UPSTREAM_HOST%|%BYTES_RECEIVED%|%BYTES_SENT%|%PROTOCOL%|%REQ(:PATH)%|%UPSTREAM_TRANSPORT_FAILURE_REASON%|%ROUTE_NAME%"

    func testAccessLogAndCountersAgreeWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let deadPorts = [try freePort(), try freePort()]  // nothing listens there
        var ports: [String: Int] = [:]
        for l in Self.listeners { ports[l] = try freePort() }
        // Each proxy gets its own listener ports (the admin port from the pair's allocation).
        var round = 0
        let both = try observeEnvoyAndBallast("tcp", envoyArgs: ["--file-flush-interval-msec", "50"], config: { _, admin, log in
            if round > 0 { for l in Self.listeners { ports[l] = (try? freePort()) ?? 0 } }
            round += 1
            return bootstrap(ports: ports, admin: admin, upstream: upstream.port, dead: deadPorts, log: log)
        }, observe: { proxy, _ in try observe(proxy, ports: ports) })
        let seen = ["envoy": both.envoy, "ballast": both.ballast]
        let envoy = seen["envoy"]!, ballast = seen["ballast"]!
        if envoy != ballast {
            var report: [String] = []
            for i in 0..<max(envoy.count, ballast.count) {
                let e = i < envoy.count ? envoy[i] : "<none>", b = i < ballast.count ? ballast[i] : "<none>"
                if e != b { report.append("  envoy:   \(e)\n  ballast: \(b)") }
            }
            XCTFail("tcp_proxy differs from Envoy 1.40:\n" + report.joined(separator: "\n"))
        }
        // What both printed, pinned (so a change in both is noticed too).
        XCTAssertTrue(ballast.contains("dead: UF,URX|0|-|dead|127.0.0.1:\(deadPorts[0])|0|0|-|-|delayed_connect_error:_Connection_refused|-"), "\(ballast)")
        XCTAssertTrue(ballast.contains("cluster.retry.upstream_cx_connect_fail: 2"), "\(ballast)")
        XCTAssertTrue(ballast.contains("full: UO|0|-|full|-|0|0|-|-|-|-"), "\(ballast)")
        XCTAssertTrue(ballast.contains("empty: UH|0|-|empty|-|0|0|-|-|-|-"), "\(ballast)")
    }

    /// HTTP's side of `upstream_cx_overflow`: with max_connections 1, three requests at once (the
    /// upstream holds each 1 s): Envoy counts a refusal for each stream that has to wait and again
    /// whenever a connection becomes ready or frees up while streams still wait: 3 here (two
    /// waiting, then one left waiting when the first response ends).
    func testConnectionOverflowCountsAgreeWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let seen = try observeEnvoyAndBallast("cx-overflow", config: { port, admin, _ in
            singleListenerBootstrap(port: port, admin: admin, routes: ["{match: {prefix: \"/\"}, route: {cluster: up}}"],
                                    clusters: [staticCluster("up", ports: [upstream.port], extra: "circuit_breakers: {thresholds: [{max_connections: 1}]}")])
        }, observe: { proxy, port in
            let clients = try (0..<3).map { _ in try RawClient(port: port) }
            // The first request's connection is up (its head reached the upstream) before the
            // other two arrive, so the count does not depend on when the connect completes.
            _ = upstream.takeHeads()
            clients[0].send("GET /slow HTTP/1.1\r\nHost: h\r\nx-reply-delay: 1\r\n\r\n")
            let deadline = Date().addingTimeInterval(10)
            while upstream.takeHeads().isEmpty && Date() < deadline { usleep(5_000) }
            for c in clients.dropFirst() { c.send("GET /slow HTTP/1.1\r\nHost: h\r\nx-reply-delay: 1\r\n\r\n") }
            let out = clients.map { c in c.readResponse().map { "\($0.status)" } ?? "none" }
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
            return out + stats.filter { $0.hasPrefix("cluster.up.upstream_cx_overflow:") || $0.hasPrefix("cluster.up.upstream_cx_total:") }.sorted()
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "upstream_cx_overflow differs from Envoy 1.40")
        XCTAssertEqual(seen.ballast, ["200", "200", "200", "cluster.up.upstream_cx_overflow: 3", "cluster.up.upstream_cx_total: 1"])
    }

    /// One connection per listener, in order; then each listener's log line and the counters.
    private func observe(_ proxy: ProxyUnderTest, ports: [String: Int]) throws -> [String] {
        var out: [String] = []
        for l in Self.listeners {
            let offset = proxy.logOffset()
            let c = try RawClient(port: ports[l]!)
            c.send("GET /through HTTP/1.1\r\nHost: tcp\r\n\r\n")
            if l == "ok" {
                out.append("ok response: \(c.readResponse().map { "\($0.status) \($0.body)" } ?? "none")")
                c.shutdownBoth()
            } else {
                _ = c.readToEnd()  // the proxy closes (Envoy resets, Ballast closes: not compared)
            }
            let lines = proxy.logLines(after: offset) { _ in true }
            out.append(contentsOf: lines.map { "\(l): \($0)" })
            if lines.isEmpty { out.append("\(l): no log line") }
        }
        let wanted = ["upstream_cx_total", "upstream_cx_connect_fail", "upstream_cx_overflow", "upstream_cx_none_healthy",
                      "upstream_cx_connect_attempts_exceeded"]
        let tcpWanted = ["downstream_cx_total", "downstream_cx_rx_bytes_total", "downstream_cx_tx_bytes_total", "idle_timeout"]
        let deadline = Date().addingTimeInterval(10)
        var stats: [String] = []
        repeat {
            let text = (try? proxy.adminGet("/stats").text) ?? ""
            stats = text.split(separator: "\n").map(String.init).filter { line in
                let parts = line.split(separator: ".")
                guard parts.count >= 3 else { return false }
                let stat = String(line.split(separator: ":")[0].split(separator: ".").last!)
                if parts[0] == "cluster", Self.listeners.contains(String(parts[1])) { return wanted.contains(stat) }
                if parts[0] == "tcp", Self.listeners.contains(String(parts[1])) { return tcpWanted.contains(stat) }
                return false
            }.sorted()
            // The ok session's bytes are counted when it closes.
        } while !stats.contains(where: { $0.hasPrefix("tcp.ok.downstream_cx_tx_bytes_total: ") && !$0.hasSuffix(": 0") }) && Date() < deadline
        return out + stats
    }

    private func bootstrap(ports: [String: Int], admin: Int, upstream: Int, dead: [Int], log: String) -> String {
        func listener(_ name: String, extra: String = "") -> String {
            """
              - name: \(name)
                address: {socket_address: {address: 127.0.0.1, port_value: \(ports[name]!)}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                      stat_prefix: \(name)
                      cluster: \(name)\(extra)
                      access_log:
                      - name: envoy.access_loggers.file
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                          path: \(log)
                          log_format: {text_format_source: {inline_string: "\(Self.format)\\n"}}

            """
        }
        func endpoints(_ list: [Int]) -> String {
            list.map { "{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \($0)}}}}" }.joined(separator: ", ")
        }
        return """
        admin:
          address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}
        static_resources:
          listeners:
        \(listener("ok"))\(listener("dead"))\(listener("retry", extra: "\n          max_connect_attempts: 2"))\(listener("full"))\(listener("empty"))
          clusters:
          - name: ok
            type: STATIC
            load_assignment: {cluster_name: ok, endpoints: [{lb_endpoints: [\(endpoints([upstream]))]}]}
          - name: dead
            type: STATIC
            load_assignment: {cluster_name: dead, endpoints: [{lb_endpoints: [\(endpoints([dead[0]]))]}]}
          - name: retry
            type: STATIC
            load_assignment: {cluster_name: retry, endpoints: [{lb_endpoints: [\(endpoints([dead[1]]))]}]}
          - name: full
            type: STATIC
            circuit_breakers: {thresholds: [{max_connections: 0}]}
            load_assignment: {cluster_name: full, endpoints: [{lb_endpoints: [\(endpoints([upstream]))]}]}
          - name: empty
            type: STATIC
            load_assignment: {cluster_name: empty}
        """
    }
}
