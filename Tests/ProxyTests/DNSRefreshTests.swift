import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// STRICT_DNS refresh (`dns_refresh_rate`): the test hook makes a name resolve to addresses the
/// test chooses (127.0.0.1 and 127.0.0.2, both on this machine's loopback), then changes them.
/// Waits are for states, bounded; assertions are counts.
final class DNSRefreshTests: XCTestCase {
    static let name = "svc.ballast-dns-refresh.test"

    static func answering(_ body: String, host: String, port: Int = 0) throws -> RawUpstream {
        try RawUpstream(host: host, port: port) { fd in
            while !RawUpstream.readHead(fd).isEmpty {
                RawUpstream.write(fd, "HTTP/1.1 200 OK\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)")
            }
            Glibc.close(fd)
        }
    }

    func hosts(_ ops: ProxyOps) -> [String] {
        let (_, text) = adminRequest(ops.adminPort!, "GET", "/clusters")
        return text.split(separator: "\n").filter { $0.hasSuffix("::health_flags::healthy") }.map { String($0.split(separator: ":")[1]) }.sorted()
    }

    func testChangedAddressesBecomeTheClustersHostsForNewRequests() throws {
        let a = try Self.answering("a", host: "127.0.0.1")
        defer { a.stop() }
        let b = try Self.answering("b", host: "127.0.0.2", port: a.port)
        defer { b.stop() }
        TestHooks.overrideDNS(Self.name, ["127.0.0.1"])
        defer { TestHooks.overrideDNS(Self.name, nil) }
        let cluster = """
          - name: web
            connect_timeout: 0.5s
            type: STRICT_DNS
            dns_refresh_rate: 0.05s
            load_assignment:
              cluster_name: web
              endpoints:
              - lb_endpoints:
                - endpoint: { address: { socket_address: { address: \(Self.name), port_value: \(a.port) } } }
        """
        let ops = try startOps(opsYAML(virtualHosts: dataPathCatchAll("web"), clusters: cluster), concurrency: 1)
        defer { ops.stop() }
        let c = try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http")))
        XCTAssertEqual(hosts(ops), ["127.0.0.1"])
        for _ in 0..<2 { XCTAssertEqual(c.get("/")?.text, "a") }

        // A second address: both hosts take requests.
        TestHooks.overrideDNS(Self.name, ["127.0.0.1", "127.0.0.2"])
        XCTAssertTrue(Wait.until { self.hosts(ops) == ["127.0.0.1", "127.0.0.2"] }, "the refresh never added 127.0.0.2")
        XCTAssertTrue(Wait.until { c.get("/")?.text == "b" }, "the new host never took a request")
        var bodies: [String] = []
        for _ in 0..<4 { bodies.append(c.get("/")?.text ?? "-") }
        XCTAssertEqual(bodies.sorted(), ["a", "a", "b", "b"], "round robin over both resolved addresses")

        // The first address goes away: every request goes to the one left.
        TestHooks.overrideDNS(Self.name, ["127.0.0.2"])
        XCTAssertTrue(Wait.until { self.hosts(ops) == ["127.0.0.2"] }, "the refresh never removed 127.0.0.1")
        XCTAssertTrue(Wait.until { c.get("/")?.text == "b" })
        for _ in 0..<4 { XCTAssertEqual(c.get("/")?.text, "b") }

        // A resolution that returns nothing keeps the hosts (as Envoy).
        let resolutions = ops.dnsRefresher.withLock { $0 }!.resolutions.load(ordering: .relaxed)
        TestHooks.overrideDNS(Self.name, [])
        XCTAssertTrue(Wait.until { ops.dnsRefresher.withLock { $0 }!.resolutions.load(ordering: .relaxed) >= resolutions + 2 })
        XCTAssertEqual(hosts(ops), ["127.0.0.2"])
        XCTAssertEqual(c.get("/")?.text, "b")
        XCTAssertEqual(ops.dnsRefresher.withLock { $0 }!.changes.load(ordering: .relaxed), 2, "two changes published, no more")
        // Envoy's figures: the first host set and two changes; resolutions that changed nothing,
        // and the empty ones as failures.
        let (_, stats) = adminRequest(ops.adminPort!, "GET", "/stats")
        XCTAssertEqual(statValue(stats, "cluster.web.membership_change"), 3)
        XCTAssertGreaterThanOrEqual(statValue(stats, "cluster.web.update_failure") ?? 0, 2)
        XCTAssertEqual(statValue(stats, "cluster.web.update_attempt"),
                       (statValue(stats, "cluster.web.update_success") ?? 0) + (statValue(stats, "cluster.web.update_failure") ?? 0))
    }
}
