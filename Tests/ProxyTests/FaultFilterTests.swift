import Foundation
import Glibc
@testable import Proxy
import XCTest

/// `envoy.filters.http.fault`: max_active_faults across workers, the delay's stream given back
/// when the client leaves, and config errors naming the YAML path. Behaviour against real Envoy:
/// DifferentialTests (fault-* cases).
final class FaultFilterTests: XCTestCase {
    static let faultType = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

    func startWithFault(_ fields: String) throws -> (ProxyOps, UpstreamEchoServer) {
        let upstream = try UpstreamEchoServer(io: .epoll)
        let base = opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream.port]))
        let yaml = base.replacingOccurrences(of: "          - name: envoy.filters.http.router\n",
                                             with: "          - name: envoy.filters.http.fault\n            typed_config: { \(Self.faultType), \(fields) }\n          - name: envoy.filters.http.router\n")
        XCTAssertNotEqual(yaml, base)
        do {
            return (try startOps(yaml), upstream)
        } catch {
            upstream.stop()
            throw error
        }
    }

    func stats(_ ops: ProxyOps) throws -> String {
        adminRequest(try XCTUnwrap(ops.adminPort), "GET", "/stats").1
    }

    /// Polls (bounded) until the stat has the value; returns the last text.
    func waitForStat(_ ops: ProxyOps, _ name: String, _ value: Int) throws -> String {
        var text = ""
        for _ in 0..<300 {
            text = try stats(ops)
            if statValue(text, name) == value { return text }
            usleep(10_000)
        }
        return text
    }

    func testMaxActiveFaultsOverflowSkipsTheFault() throws {
        let (ops, upstream) = try startWithFault("max_active_faults: 1, delay: { header_delay: {}, percentage: { numerator: 100 } }")
        defer { ops.stop(); upstream.stop() }
        let port = ops.proxy.port(of: "http")!
        let a = try TestConnection(port: port)
        a.send("GET / HTTP/1.1\r\nHost: example.com\r\nX-Envoy-Fault-Delay-Request: 1500\r\n\r\n")
        XCTAssertEqual(statValue(try waitForStat(ops, "http.ingress_http.fault.active_faults", 1), "http.ingress_http.fault.active_faults"), 1)
        // The one active fault is taken: this request is not delayed, and counts an overflow.
        let b = try TestConnection(port: port)
        let rb = b.get("/", extra: "X-Envoy-Fault-Delay-Request: 1500\r\n")
        XCTAssertEqual(rb?.status, 200)
        let mid = try stats(ops)
        XCTAssertEqual(statValue(mid, "http.ingress_http.fault.faults_overflow"), 1, mid)
        XCTAssertEqual(statValue(mid, "http.ingress_http.fault.delays_injected"), 1, mid)
        XCTAssertEqual(a.readResponse()?.status, 200)
        let end = try waitForStat(ops, "http.ingress_http.fault.active_faults", 0)
        XCTAssertEqual(statValue(end, "http.ingress_http.fault.active_faults"), 0, end)
        XCTAssertEqual(statValue(end, "http.ingress_http.downstream_rq_2xx"), 2, end)
    }

    func testClientGoneDuringDelayGivesTheFaultBack() throws {
        let (ops, upstream) = try startWithFault("delay: { fixed_delay: 30s, percentage: { numerator: 100 } }")
        defer { ops.stop(); upstream.stop() }
        let port = ops.proxy.port(of: "http")!
        do {
            let a = try TestConnection(port: port)
            a.send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
            XCTAssertEqual(statValue(try waitForStat(ops, "http.ingress_http.fault.active_faults", 1), "http.ingress_http.fault.active_faults"), 1)
        }  // closed here
        let text = try waitForStat(ops, "http.ingress_http.fault.active_faults", 0)
        XCTAssertEqual(statValue(text, "http.ingress_http.fault.active_faults"), 0, text)
        XCTAssertEqual(statValue(text, "http.ingress_http.fault.delays_injected"), 1, text)
        XCTAssertEqual(statValue(text, "cluster.echo.upstream_rq_total"), 0, text)
    }

    func testConfigErrorsNameThePath() {
        let filter = "\(hcmPath).http_filters[0].typed_config"
        func errors(_ fields: String) -> String {
            let yaml = edited([("          http_filters:\n",
                                "          http_filters:\n          - name: envoy.filters.http.fault\n            typed_config: { \(Self.faultType), \(fields) }\n")])
            return loadErrors(yaml).joined(separator: "\n")
        }
        XCTAssertTrue(errors("abort: { grpc_status: 14, percentage: { numerator: 100 } }").contains("\(filter).abort.grpc_status: not supported by ballast"))
        XCTAssertTrue(errors("abort: { http_status: 600 }").contains("\(filter).abort.http_status"))
        XCTAssertTrue(errors("delay: { fixed_delay: 0s }").contains("\(filter).delay.fixed_delay: must be greater than 0s"))
        XCTAssertTrue(errors("headers: [ { name: x, exact_match: y } ]").contains("\(filter).headers: not supported by ballast"))
        XCTAssertTrue(errors("upstream_cluster: web").contains("\(filter).upstream_cluster: not supported by ballast"))
        XCTAssertTrue(errors("response_rate_limit: { fixed_limit: { limit_kbps: 1 } }").contains("\(filter).response_rate_limit: not supported by ballast"))
        XCTAssertTrue(errors("delay: { percentage: { numerator: 1 } }").contains("\(filter).delay"))
        XCTAssertEqual(errors("max_active_faults: { value: 3 }, abort: { header_abort: {}, percentage: { numerator: 50, denominator: TEN_THOUSAND } }"), "")
    }
}
