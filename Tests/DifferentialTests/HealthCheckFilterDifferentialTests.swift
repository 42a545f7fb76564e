import Foundation
import Glibc
import XCTest

/// The health_check filter while the server fails its health checks (`POST /healthcheck/fail`),
/// against real Envoy 1.40 (a process of its own: the shared suite's proxies must stay healthy).
final class HealthCheckFilterDifferentialTests: XCTestCase {
    /// Requests sent after /healthcheck/fail, as the README's feature table lists them.
    static let cases: [(name: String, feature: String, target: String)] = [
        ("hc-failing", "health_check while failing: 503 LH health_check_failed, x-envoy-immediate-health-check-fail, connection: close sent while the connection stays until the drain ends", "/healthz"),
        ("hc-failing-forwarded", "health_check while failing: a forwarded response carries x-envoy-immediate-health-check-fail and connection: close, the connection stays until the drain ends", "/up"),
        ("hc-failing-no-route", "health_check while failing: a 404 NR carries x-envoy-immediate-health-check-fail", "/nowhere"),
    ]

    func testFailingHealthChecksAgreeWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let both = try observeEnvoyAndBallast("hc-differential", envoyArgs: ["--file-flush-interval-msec", "10"], config: { port, admin, log in
            bootstrap(port: port, admin: admin, upstream: upstream.port, log: log)
        }, observe: { proxy, port in
            let post = try RawClient(port: proxy.adminPort)
            post.send("POST /healthcheck/fail HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(post.readResponse()?.status, 200)
            var out: [String] = []
            for c in Self.cases {
                let offset = proxy.logOffset()
                let client = try RawClient(port: port)
                client.send("GET \(c.target) HTTP/1.1\r\nHost: example.com\r\nX-Case: \(c.name)\r\n\r\n")
                let r = client.readResponse()
                out.append("\(c.name)/status: \(r?.statusLine ?? "(none)")")
                out.append("\(c.name)/headers: " + (r?.fields.map { "\($0.name): \(normalized($0.name, $0.value))" }.sorted().joined(separator: " | ") ?? ""))
                out.append("\(c.name)/connection: \(client.closesAfterResponse() ? "closed" : "kept open")")
                out.append("\(c.name)/log: " + proxy.logLines(after: offset) { _ in true }.map(normalizedLogLine).joined(separator: " || "))
            }
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n").filter { $0.hasPrefix("http.hc.health_check.") || $0.hasPrefix("http.hc.downstream_rq_5xx") }
            out.append("stats: " + stats.joined(separator: ", "))
            return out
        })
        let seen = ["envoy": both.envoy, "ballast": both.ballast]
        let e = seen["envoy"]!, b = seen["ballast"]!
        var report: [String] = []
        for (x, y) in zip(e, b) where x != y { report.append("envoy:   \(x)\nballast: \(y)") }
        XCTAssertEqual(e.count, b.count)
        XCTAssertTrue(b.contains("hc-failing/status: HTTP/1.1 503 Service Unavailable"), "\(b)")
        if !report.isEmpty { XCTFail("health_check while failing differs from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }

    private func bootstrap(port: Int, admin: Int, upstream: Int, log: String) -> String {
        """
        node: {id: diff, cluster: svc-a}
        static_resources:
          listeners:
          - name: hc
            address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: hc
                  access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: \(log)
                      log_format: {text_format_source: {inline_string: "\(differentialLogFormat)"}}
                  http_filters:
                  - \(healthCheckFilterYAML)
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                  route_config:
                    virtual_hosts:
                    - name: main
                      domains: ["example.com"]
                      routes:
                      - match: {prefix: "/up"}
                        route: {cluster: up}
          clusters:
          - name: up
            type: STATIC
            load_assignment:
              cluster_name: up
              endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(upstream)}}}}]}]
        admin:
          address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}
        """
    }
}
