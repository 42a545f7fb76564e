import Foundation
@testable import Proxy
import TestSupport
import XCTest

/// `envoy.filters.http.health_check` on the data path: a body arriving in parts, the failing
/// state toggled, the stats.
final class HealthCheckFilterTests: XCTestCase {
    func testBodyInPartsAnsweredWhenReadAndFailingClosesConnections() throws {
        let yaml = opsYAML(virtualHosts: dataPathCatchAll("c"), clusters: dataPathCluster("c", ports: [try closedPort()]))
            .replacingOccurrences(of: "          http_filters:\n", with: """
                      http_filters:
                      - name: envoy.filters.http.health_check
                        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck, pass_through_mode: false, headers: [ { name: ":path", string_match: { prefix: /health } } ] }

            """)
        let ops = try startOps(yaml, concurrency: 1)
        defer { ops.stop() }
        let port = try XCTUnwrap(ops.proxy.port(of: "http"))
        let admin = try XCTUnwrap(ops.adminPort)
        let c = try TestConnection(port: port)
        c.send("POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        let other = try TestConnection(port: port)
        other.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(other.readResponse()?.status, 200)
        c.send("0\r\n\r\n")
        let r = try XCTUnwrap(c.readResponse())
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.headers["x-envoy-upstream-healthchecked-cluster"], "")
        XCTAssertNil(r.headers["connection"], "kept open")
        c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(c.readResponse()?.status, 200, "the same connection serves the next request")

        XCTAssertEqual(adminRequest(admin, "POST", "/healthcheck/fail").0, 200)
        c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        let failing = try XCTUnwrap(c.readResponse())
        XCTAssertEqual(failing.status, 503)
        XCTAssertEqual(failing.headers["x-envoy-immediate-health-check-fail"], "true")
        XCTAssertEqual(failing.headers["connection"], "close")
        let stats = adminRequest(admin, "GET", "/stats").1
        XCTAssertEqual(statValue(stats, "http.ingress_http.health_check.request_total"), 4)
        XCTAssertEqual(statValue(stats, "http.ingress_http.health_check.ok"), 3)
        XCTAssertEqual(statValue(stats, "http.ingress_http.health_check.failed"), 1)
        XCTAssertEqual(statValue(stats, "http.ingress_http.downstream_rq_completed"), 0, "answered checks are not charged")
    }
}
