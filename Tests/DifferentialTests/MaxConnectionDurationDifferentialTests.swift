import Foundation
import Glibc
import XCTest

/// `max_connection_duration` against real Envoy 1.40, on the connection manager and on the
/// cluster (0.5 s each): an idle client connection that reached it answers its next request with
/// `connection: close`; a request in flight when it is reached gets `connection: close` too; the
/// counters `downstream_cx_max_duration_reached` and `upstream_cx_max_duration_reached` move.
final class MaxConnectionDurationDifferentialTests: XCTestCase {
    func testDurationDrainsConnectionsAsEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-max-duration-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let port = try freePort(), admin = try freePort()
            let config = root.appendingPathComponent("\(name).yaml").path
            try """
            admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
            static_resources:
              listeners:
              - address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: h
                      common_http_protocol_options: {max_connection_duration: 0.5s}
                      route_config: {virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: up}}]}]}
                      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
              clusters:
              - name: up
                type: STATIC
                typed_extension_protocol_options:
                  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                    common_http_protocol_options: {max_connection_duration: 0.5s}
                    explicit_http_config: {http_protocol_options: {}}
                load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(upstream.port)}}}}]}]}
            """.write(toFile: config, atomically: false, encoding: .utf8)
            let (exe, args) = name == "envoy"
                ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
                : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
            let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: [:], adminPort: admin,
                                           accessLog: root.appendingPathComponent("\(name).log").path, directory: root)
            defer { proxy.stop() }
            try proxy.waitReady()
            func stat(_ key: String) -> Int {
                let text = (try? proxy.adminGet("/stats").text) ?? ""
                return text.split(separator: "\n").first { $0.hasPrefix(key + ": ") }.flatMap { Int($0.split(separator: " ").last!) } ?? -1
            }
            func waitFor(_ key: String, atLeast n: Int) -> Int {
                let deadline = Date().addingTimeInterval(15)
                var v = stat(key)
                while v < n && Date() < deadline { usleep(20_000); v = stat(key) }
                return v
            }
            func closeField(_ r: RawResponse?) -> String {
                guard let r else { return "no response" }
                return "\(r.status) connection=\(r.header("connection") ?? "-")"
            }
            var out: [String] = []
            // Idle when the duration passes: the next response closes the connection.
            let idle = try RawClient(port: port)
            idle.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
            out.append("idle first: " + closeField(idle.readResponse()))
            out.append("reached: \(waitFor("http.h.downstream_cx_max_duration_reached", atLeast: 1))")
            idle.send("GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
            out.append("idle after: " + closeField(idle.readResponse()))
            // Busy when the duration passes (the upstream holds the response 1 s).
            let busy = try RawClient(port: port)
            busy.send("GET /slow HTTP/1.1\r\nHost: h\r\nx-reply-delay: 1\r\n\r\n")
            out.append("busy: " + closeField(busy.readResponse()))
            out.append("reached: \(waitFor("http.h.downstream_cx_max_duration_reached", atLeast: 2))")
            out.append("upstream reached: \(waitFor("cluster.up.upstream_cx_max_duration_reached", atLeast: 1) >= 1)")
            seen[name] = out
        }
        XCTAssertEqual(seen["ballast"]!, seen["envoy"]!, "max_connection_duration differs from Envoy 1.40")
        XCTAssertEqual(seen["ballast"]!, ["idle first: 200 connection=-", "reached: 1", "idle after: 200 connection=close",
                                          "busy: 200 connection=close", "reached: 2", "upstream reached: true"])
    }
}
