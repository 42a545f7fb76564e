import Foundation
import Glibc
import XCTest

/// `/clusters` against real Envoy 1.40: after the same requests (a 200, an upstream 503, an
/// upstream that closes mid-exchange, a dead host, a route timeout, another 200) every line is
/// the same, the per-host `cx_*` / `rq_*` counters and the locality lines included.
final class ClustersAdminDifferentialTests: XCTestCase {

    func testClustersOutputAgreesWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let dead = try freePort()
        let routes = ["{match: {prefix: \"/dead\"}, route: {cluster: dead}}",
                      "{match: {prefix: \"/timeout\"}, route: {cluster: up, timeout: 0.3s}}",
                      "{match: {prefix: \"/\"}, route: {cluster: up}}"]
        let seen = try observeEnvoyAndBallast("clusters", config: { port, admin, _ in
            singleListenerBootstrap(port: port, admin: admin, routes: routes,
                                    clusters: [staticCluster("up", ports: [upstream.port]), staticCluster("dead", ports: [dead])])
        }, observe: { proxy, port in
            var statuses: [String] = []
            let client = try RawClient(port: port)
            for (path, extra) in [("/", ""), ("/", "x-reply-status: 503\r\n"), ("/", "x-reply-close: 1\r\n"),
                                  ("/dead", ""), ("/timeout", "x-reply-delay: 1\r\n"), ("/", "")] {
                client.send("GET \(path) HTTP/1.1\r\nHost: h\r\n\(extra)\r\n")
                statuses.append(client.readResponse().map { "\($0.status)" } ?? "none")
            }
            // Counters settle when the timed-out upstream connection is closed: wait for rq_active 0.
            var lines: [String] = []
            let deadline = Date().addingTimeInterval(10)
            repeat {
                lines = try proxy.adminGet("/clusters").text.split(separator: "\n").map(String.init).sorted()
                if lines.contains("up::127.0.0.1:\(upstream.port)::rq_active::0") { break }
                usleep(20_000)
            } while Date() < deadline
            return statuses + lines
        })
        XCTAssertEqual(seen.ballast.filter { !seen.envoy.contains($0) }, [], "lines only Ballast prints")
        XCTAssertEqual(seen.envoy.filter { !seen.ballast.contains($0) }, [], "lines only Envoy prints")
        XCTAssertEqual(Array(seen.ballast.prefix(6)), ["200", "503", "503", "503", "504", "200"])
        let host = "up::127.0.0.1:\(upstream.port)::"
        for line in ["rq_total::5", "rq_success::2", "rq_error::3", "rq_timeout::1", "cx_total::3", "cx_active::1"] {
            XCTAssertTrue(seen.ballast.contains(host + line), "\(host + line) in \(seen.ballast)")
        }
        XCTAssertTrue(seen.ballast.contains("dead::127.0.0.1:\(dead)::cx_connect_fail::1"))
        XCTAssertTrue(seen.ballast.contains("dead::127.0.0.1:\(dead)::rq_error::1"))
    }
}
