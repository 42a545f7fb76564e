import EventLoop
import Foundation
import Glibc
@testable import Proxy
import Synchronization
import TestSupport
import XCTest

/// Active health checks over time (the differential suite covers the start-up round against
/// Envoy): hosts that start failing and recover, thresholds, reload. Short intervals; every wait
/// is for a state, bounded, and the assertions are counts.
final class HealthCheckTests: XCTestCase {
    /// An upstream whose `/healthz` answers `healthStatus`; other requests get 200 and its name.
    final class CheckedUpstream: @unchecked Sendable {
        /// Shared with the connection threads, which may outlive the test's reference.
        final class Counters: Sendable {
            let healthStatus = Atomic<Int>(200)
            let served = Atomic<Int>(0)
            let checks = Atomic<Int>(0)
        }
        let counters = Counters()
        var raw: RawUpstream!

        init(name: String) throws {
            let counters = self.counters
            raw = try RawUpstream { fd in
                while true {
                    let head = RawUpstream.readHead(fd)
                    if head.isEmpty { Glibc.close(fd); return }
                    if head.hasPrefix("GET /healthz ") {
                        counters.checks.wrappingAdd(1, ordering: .relaxed)
                        let status = counters.healthStatus.load(ordering: .relaxed)
                        RawUpstream.write(fd, "HTTP/1.1 \(status) X\r\ncontent-length: 0\r\n\r\n")
                    } else {
                        counters.served.wrappingAdd(1, ordering: .relaxed)
                        RawUpstream.write(fd, "HTTP/1.1 200 OK\r\ncontent-length: \(name.utf8.count)\r\n\r\n\(name)")
                    }
                }
            }
        }

        var port: Int { raw.port }
        func stop() { raw.stop() }
    }

    static let fastCheck = "    health_checks: [ { timeout: 0.5s, interval: 0.05s, no_traffic_interval: 0.05s, unhealthy_threshold: 2, healthy_threshold: 2, http_health_check: { path: /healthz } } ]"

    static func yaml(_ ports: [Int], check: String = fastCheck) -> String {
        opsYAML(virtualHosts: dataPathCatchAll("web"), clusters: dataPathCluster("web", ports: ports, extra: check))
    }

    func flags(_ ops: ProxyOps) -> [String] {
        let (_, text) = adminRequest(ops.adminPort!, "GET", "/clusters")
        return text.split(separator: "\n").filter { $0.contains("::health_flags::") }.map { String($0.split(separator: ":").last!) }
    }

    func testAFailingHostIsSkippedAtOnceAndTakesTrafficAgainAfterHealthyThreshold() throws {
        let a = try CheckedUpstream(name: "a")
        defer { a.stop() }
        let b = try CheckedUpstream(name: "b")
        defer { b.stop() }
        let ops = try startOps(Self.yaml([a.port, b.port]), concurrency: 1)
        defer { ops.stop() }
        XCTAssertEqual(flags(ops), ["healthy", "healthy"], "both hosts passed their first check before the listener served")
        let c = try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http")))
        var bodies: [String] = []
        for _ in 0..<4 { bodies.append(c.get("/")?.text ?? "-") }
        XCTAssertEqual(bodies.sorted(), ["a", "a", "b", "b"], "round robin over two healthy hosts")

        // A 503 from /healthz fails the host at its next check, without waiting for unhealthy_threshold.
        b.counters.healthStatus.store(503, ordering: .relaxed)
        XCTAssertTrue(Wait.until { self.flags(ops) == ["healthy", "/failed_active_hc"] }, "b never failed")
        let servedByB = b.counters.served.load(ordering: .relaxed)
        for _ in 0..<6 { XCTAssertEqual(c.get("/")?.text, "a") }
        XCTAssertEqual(b.counters.served.load(ordering: .relaxed), servedByB, "no request reaches the failed host")
        let (_, stats) = adminRequest(ops.adminPort!, "GET", "/stats")
        XCTAssertEqual(statValue(stats, "cluster.web.membership_healthy"), 1)
        XCTAssertEqual(statValue(stats, "cluster.web.health_check.healthy"), 1)
        XCTAssertGreaterThanOrEqual(statValue(stats, "cluster.web.health_check.failure") ?? 0, 1)
        XCTAssertEqual(statValue(stats, "cluster.web.health_check.network_failure"), 0, "a bad status is not a network failure")
        XCTAssertEqual(statValue(stats, "cluster.web.lb_healthy_panic"), 0, "one of two healthy is not below 50%")

        // Back to 200: healthy again after two passing checks, and b takes its share again.
        let checksBefore = b.counters.checks.load(ordering: .relaxed)
        b.counters.healthStatus.store(200, ordering: .relaxed)
        XCTAssertTrue(Wait.until { self.flags(ops) == ["healthy", "healthy"] }, "b never recovered")
        XCTAssertGreaterThanOrEqual(b.counters.checks.load(ordering: .relaxed) - checksBefore, 2, "healthy_threshold 2: two passes at least")
        bodies = []
        for _ in 0..<4 { bodies.append(c.get("/")?.text ?? "-") }
        XCTAssertEqual(bodies.sorted(), ["a", "a", "b", "b"])
    }

    func testAllHostsFailingIsPanicAndEveryHostTakesTraffic() throws {
        let a = try CheckedUpstream(name: "a")
        defer { a.stop() }
        let b = try CheckedUpstream(name: "b")
        defer { b.stop() }
        a.counters.healthStatus.store(500, ordering: .relaxed)
        b.counters.healthStatus.store(500, ordering: .relaxed)
        let ops = try startOps(Self.yaml([a.port, b.port]), concurrency: 1)
        defer { ops.stop() }
        XCTAssertEqual(flags(ops), ["/failed_active_hc", "/failed_active_hc"], "hosts start failed; a failing first check keeps them so")
        let c = try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http")))
        var bodies: [String] = []
        for _ in 0..<4 { bodies.append(c.get("/")?.text ?? "-") }
        XCTAssertEqual(bodies.sorted(), ["a", "a", "b", "b"], "below the panic threshold every host takes traffic")
        let (_, stats) = adminRequest(ops.adminPort!, "GET", "/stats")
        XCTAssertEqual(statValue(stats, "cluster.web.lb_healthy_panic"), 4)
        XCTAssertEqual(statValue(stats, "cluster.web.membership_healthy"), 0)
    }

    func testNetworkFailuresCountToUnhealthyThreshold() throws {
        let a = try CheckedUpstream(name: "a")
        defer { a.stop() }
        let b = try CheckedUpstream(name: "b")
        let ops = try startOps(Self.yaml([a.port, b.port]), concurrency: 1)
        defer { ops.stop() }
        XCTAssertEqual(flags(ops), ["healthy", "healthy"])
        b.stop()  // connections refused (and the kept one closed) from now on
        XCTAssertTrue(Wait.until { self.flags(ops) == ["healthy", "/failed_active_hc"] }, "b never failed")
        let (_, stats) = adminRequest(ops.adminPort!, "GET", "/stats")
        XCTAssertGreaterThanOrEqual(statValue(stats, "cluster.web.health_check.network_failure") ?? 0, 2,
                                    "unhealthy_threshold 2: the second network failure fails the host")
        let c = try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http")))
        for _ in 0..<4 { XCTAssertEqual(c.get("/")?.text, "a") }
    }

    func testTCPCheckPassesOnConnectAndHealthCheckPortIsUsed() throws {
        let a = try CheckedUpstream(name: "a")
        defer { a.stop() }
        let b = try CheckedUpstream(name: "b")
        defer { b.stop() }
        let closed = try RawUpstream { Glibc.close($0) }
        let closedPort = closed.port
        closed.stop()  // nothing listens there any more
        let check = "    health_checks: [ { timeout: 0.5s, interval: 30s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} } ]"
        // b's checks go to a port where nothing listens (health_check_config.port_value).
        let yaml = Self.yaml([a.port, b.port], check: check)
            .replacingOccurrences(of: "port_value: \(b.port) }", with: "port_value: \(b.port) }\n            health_check_config: { port_value: \(closedPort) }")
        XCTAssertTrue(yaml.contains("health_check_config"))
        let ops = try startOps(yaml, concurrency: 1)
        defer { ops.stop() }
        XCTAssertEqual(flags(ops), ["healthy", "/failed_active_hc"])
        XCTAssertEqual(a.counters.checks.load(ordering: .relaxed), 0, "a TCP check sends no request")
        let c = try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http")))
        for _ in 0..<3 { XCTAssertEqual(c.get("/")?.text, "a") }
    }

    func testReloadKeepsHealthOfUnchangedHosts() throws {
        let a = try CheckedUpstream(name: "a")
        defer { a.stop() }
        let b = try CheckedUpstream(name: "b")
        defer { b.stop() }
        b.counters.healthStatus.store(503, ordering: .relaxed)
        let path = opsTempPath("hc-reload.yaml")
        defer { unlink(path) }
        let slow = "    health_checks: [ { timeout: 0.5s, interval: 30s, no_traffic_interval: 30s, unhealthy_threshold: 2, healthy_threshold: 2, http_health_check: { path: /healthz } } ]"
        try Self.yaml([a.port, b.port], check: slow).write(toFile: path, atomically: true, encoding: .utf8)
        let ops = try startOps("", concurrency: 1, configPath: path)
        defer { ops.stop() }
        XCTAssertEqual(flags(ops), ["healthy", "/failed_active_hc"])
        b.counters.healthStatus.store(200, ordering: .relaxed)
        // Same checks, same hosts: the reload keeps the health (no new check runs for 30 s).
        XCTAssertEqual(ops.reload(), .applied(generation: 1))
        XCTAssertEqual(flags(ops), ["healthy", "/failed_active_hc"])
        // Changed checks: the hosts are checked again before the snapshot is published.
        try Self.yaml([a.port, b.port], check: slow.replacingOccurrences(of: "timeout: 0.5s", with: "timeout: 0.4s"))
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(ops.reload(), .applied(generation: 2))
        XCTAssertEqual(flags(ops), ["healthy", "healthy"])
    }

    /// A reload may add a health-checked cluster (its hosts are checked before the snapshot goes
    /// out, as a new cluster in Envoy is warmed by its first checks) and remove one (its checks stop,
    /// its /clusters lines go).
    func testReloadAddsAndRemovesAHealthCheckedCluster() throws {
        let a = try CheckedUpstream(name: "a")
        defer { a.stop() }
        let b = try CheckedUpstream(name: "b")
        defer { b.stop() }
        b.counters.healthStatus.store(503, ordering: .relaxed)
        let path = opsTempPath("hc-add-remove.yaml")
        defer { unlink(path) }
        let slow = "    health_checks: [ { timeout: 0.5s, interval: 30s, no_traffic_interval: 30s, unhealthy_threshold: 2, healthy_threshold: 2, http_health_check: { path: /healthz } } ]"
        func write(_ clusters: String) throws {
            try opsYAML(virtualHosts: dataPathCatchAll("web"), clusters: clusters).write(toFile: path, atomically: true, encoding: .utf8)
        }
        let web = dataPathCluster("web", ports: [a.port], extra: slow)
        try write(web)
        let ops = try startOps("", concurrency: 1, configPath: path)
        defer { ops.stop() }
        XCTAssertEqual(flags(ops), ["healthy"])
        try write(web + "\n" + dataPathCluster("api", ports: [b.port], extra: slow))
        XCTAssertEqual(ops.reload(), .applied(generation: 1))
        XCTAssertEqual(flags(ops), ["healthy", "/failed_active_hc"], "the added cluster's host was checked before the reload returned")
        XCTAssertEqual(ops.currentPlane.activeClusters.map(\.name), ["web", "api"])
        try write(web)
        XCTAssertEqual(ops.reload(), .applied(generation: 2))
        XCTAssertEqual(flags(ops), ["healthy"])
        let stats = adminRequest(ops.adminPort!, "GET", "/stats").1
        XCTAssertEqual(statValue(stats, "cluster_manager.cluster_added"), 2)
        XCTAssertEqual(statValue(stats, "cluster_manager.cluster_removed"), 1)
        XCTAssertEqual(statValue(stats, "cluster_manager.active_clusters"), 1)
        XCTAssertFalse(stats.contains("cluster.api."))
        let c = try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http")))
        XCTAssertEqual(c.get("/")?.text, "a")
    }
}
