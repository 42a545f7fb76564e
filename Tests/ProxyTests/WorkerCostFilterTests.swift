import Balancers
import EventLoop
import Foundation
@testable import Proxy
import XCTest

/// `ballast.filters.http.worker_cost`: its config (errors name the YAML path) and that every
/// request pays the cost once (a count, never a timing).
final class WorkerCostFilterTests: XCTestCase {
    static let filterPath = "\(hcmPath).http_filters[0]"

    static let router = "          http_filters:\n          - name: envoy.filters.http.router\n"

    /// The base config with the worker-cost filter before the router; `body` is its typed_config
    /// body (lines indented by 14 spaces).
    func config(_ body: String) -> String {
        let filter = [
            "          http_filters:",
            "          - name: ballast.filters.http.worker_cost",
            "            typed_config:",
            "              \"@type\": type.googleapis.com/ballast.extensions.filters.http.worker_cost.v1.WorkerCost",
            body,
            "          - name: envoy.filters.http.router",
        ]
        return edited([(Self.router, filter.joined(separator: "\n") + "\n")])
    }

    func testModesAndDurationLoad() throws {
        let cases: [(String, WorkerCost)] = [
            ("block", WorkerCost(mode: .block, meanNanos: 200_000)),
            ("spin", WorkerCost(mode: .spin, meanNanos: 200_000)),
            ("exp", WorkerCost(mode: .block, meanNanos: 200_000, exponential: true)),
            ("block-exp", WorkerCost(mode: .block, meanNanos: 200_000, exponential: true)),
            ("spin-exp", WorkerCost(mode: .spin, meanNanos: 200_000, exponential: true)),
        ]
        for (mode, expected) in cases {
            let loaded = try XCTUnwrap(load(config("              mode: \(mode)\n              duration: 0.0002s")), mode)
            guard case .httpConnectionManager(let hcm) = loaded.bootstrap.listeners[0].filterChains[0].filters[0] else {
                return XCTFail("not an HTTP connection manager")
            }
            XCTAssertEqual(hcm.httpFilters.count, 2)
            XCTAssertEqual(hcm.httpFilters[0], .workerCost(WorkerCostFilterConfig(cost: expected)), mode)
        }
    }

    func testBadConfigNamesThePath() {
        let p = Self.filterPath + ".typed_config"
        let cases: [(String, String)] = [
            ("              duration: 0.0002s", "\(p).mode: required field missing"),
            ("              mode: sleep\n              duration: 0.0002s", "\(p).mode: unknown value 'sleep' (expected one of spin, block, exp, spin-exp, block-exp)"),
            ("              mode: block", "\(p).duration: required field missing"),
            ("              mode: block\n              duration: 200us", "\(p).duration: "),
            ("              mode: block\n              duration: 11s", "\(p).duration: a worker cost of at most 10s, got 11s"),
            ("              mode: block\n              duration: 0.0002s\n              jitter: true", "\(p).jitter: unknown field"),
        ]
        for (body, expected) in cases {
            let errors = loadErrors(config(body))
            XCTAssertEqual(errors.count, 1, "\(body): \(errors)")
            XCTAssertTrue(errors.first?.hasPrefix(expected) == true, "\(body): \(errors)")
        }
        let noBody = edited([(Self.router, "          http_filters:\n          - name: ballast.filters.http.worker_cost\n          - name: envoy.filters.http.router\n")])
        XCTAssertEqual(loadErrors(noBody).count, 1)
        XCTAssertTrue(loadErrors(noBody).first?.hasPrefix("\(Self.filterPath).typed_config: ") == true, "\(loadErrors(noBody))")
    }

    func testEveryRequestPaysTheCostOnce() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let filter = """
                  - name: ballast.filters.http.worker_cost
                    typed_config:
                      "@type": type.googleapis.com/ballast.extensions.filters.http.worker_cost.v1.WorkerCost
                      mode: block-exp
                      duration: 0.00001s
                  - name: envoy.filters.http.router
        """
        let base = opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream.port]))
        let yaml = base.replacingOccurrences(of: "          - name: envoy.filters.http.router\n", with: filter + "\n")
        XCTAssertNotEqual(yaml, base)
        let ops = try startOps(yaml)
        defer { ops.stop() }
        let port = ops.proxy.port(of: "http")!
        var ok = 0
        for _ in 0..<3 {
            let c = try TestConnection(port: port)
            for _ in 0..<20 where c.get("/?size=10")?.status == 200 { ok += 1 }
        }
        XCTAssertEqual(ok, 60)
        let (status, text) = adminRequest(try XCTUnwrap(ops.adminPort), "GET", "/stats")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(statValue(text, "http.ingress_http.worker_cost.applied"), 60, text)
        XCTAssertEqual(statValue(text, "http.ingress_http.downstream_rq_total"), 60)
    }

    func testNoFilterNoStat() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let ops = try startOps(opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream.port])))
        defer { ops.stop() }
        let c = try TestConnection(port: ops.proxy.port(of: "http")!)
        XCTAssertEqual(c.get("/")?.status, 200)
        let (_, text) = adminRequest(try XCTUnwrap(ops.adminPort), "GET", "/stats")
        XCTAssertNil(statValue(text, "http.ingress_http.worker_cost.applied"), text)
    }
}
