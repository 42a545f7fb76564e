import Foundation
import Glibc
import XCTest

/// `max_connection_duration` against real Envoy 1.40, on the connection manager and on the
/// cluster (0.5 s each): an idle client connection that reached it answers its next request with
/// `connection: close`; a request in flight when it is reached gets `connection: close` too; the
/// counters `downstream_cx_max_duration_reached` and `upstream_cx_max_duration_reached` move.
final class MaxConnectionDurationDifferentialTests: XCTestCase {
    func testDurationDrainsConnectionsAsEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let options = "typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, common_http_protocol_options: {max_connection_duration: 0.5s}, explicit_http_config: {http_protocol_options: {}}}}"
        let seen = try observeEnvoyAndBallast("max-duration", config: { port, admin, _ in
            singleListenerBootstrap(port: port, admin: admin, routes: ["{match: {prefix: \"/\"}, route: {cluster: up}}"],
                                    hcmExtra: "common_http_protocol_options: {max_connection_duration: 0.5s}",
                                    clusters: [staticCluster("up", ports: [upstream.port], extra: options)])
        }, observe: { proxy, port in
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
            return out
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "max_connection_duration differs from Envoy 1.40")
        XCTAssertEqual(seen.ballast, ["idle first: 200 connection=-", "reached: 1", "idle after: 200 connection=close",
                                      "busy: 200 connection=close", "reached: 2", "upstream reached: true"])
    }

    /// `drain_timeout` and `delayed_close_timeout` set (0.3 s and 0 s): an idle connection that
    /// reached max_connection_duration is closed by the proxy at the end of that drain, long
    /// before the defaults' 6 s; with the defaults it is still open after 3 s.
    func testDrainTimeoutsCloseIdleConnectionsAsEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        for timeouts in ["drain_timeout: 0.3s, delayed_close_timeout: 0s", ""] {
            let seen = try observeEnvoyAndBallast("drain-timeout", config: { port, admin, _ in
                singleListenerBootstrap(port: port, admin: admin, routes: ["{match: {prefix: \"/\"}, route: {cluster: up}}"],
                                        hcmExtra: "common_http_protocol_options: {max_connection_duration: 0.5s}" + (timeouts.isEmpty ? "" : "\n          " + timeouts.replacingOccurrences(of: ", ", with: "\n          ")),
                                        clusters: [staticCluster("up", ports: [upstream.port])])
            }, observe: { _, port in
                let idle = try RawClient(port: port)
                idle.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
                let first = idle.readResponse().map { "\($0.status)" } ?? "none"
                // Closed within 3 s of the request, or still open (a bounded wait, not a timing).
                return ["first: \(first)", "then: \(idle.closedWithin(seconds: 3))"]
            })
            XCTAssertEqual(seen.ballast, seen.envoy, "drain with '\(timeouts)' differs from Envoy 1.40")
            XCTAssertEqual(seen.ballast, ["first: 200", timeouts.isEmpty ? "then: open" : "then: closed"], timeouts)
        }
    }
}
