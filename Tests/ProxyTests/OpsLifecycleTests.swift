import Synchronization
import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// Reload and drain (issue 5): counts and outcomes, never timings.
final class OpsLifecycleTests: XCTestCase {
    static func reloadYAML(version: Int, echoPort: Int) -> String {
        let hosts = """
                    - name: all
                      domains: ["*"]
                      routes:
                      - match: { prefix: "/version" }
                        direct_response: { status: 200, body: { inline_string: "v\(version)" } }
                      - match: { prefix: "/" }
                        route: { cluster: echo }
        """
        return opsYAML(virtualHosts: hosts, clusters: dataPathCluster("echo", ports: [echoPort]))
    }

    /// A reload that moves an endpoint to another address: new requests go to the new address,
    /// also on a downstream connection whose upstream connection to the old address sits idle in
    /// the worker's pool (Envoy drains the old host). Before the fix every request kept going to
    /// the old address while /clusters showed the new one.
    func testReloadWithAMovedEndpointSendsNewRequestsToTheNewAddress() throws {
        let a = try UpstreamEchoServer(io: .epoll)
        defer { a.stop() }
        let b = try UpstreamEchoServer(io: .epoll)
        defer { b.stop() }
        let path = opsTempPath("moved.yaml")
        defer { unlink(path) }
        try Self.reloadYAML(version: 0, echoPort: a.port).write(toFile: path, atomically: true, encoding: .utf8)
        let ops = try startOps("", concurrency: 1, configPath: path)
        defer { ops.stop() }
        let c = try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http")))
        XCTAssertEqual(c.get("/?size=1")?.status, 200)
        XCTAssertEqual(try a.acceptedConnections(), 1)

        try Self.reloadYAML(version: 1, echoPort: b.port).write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(ops.reload(), .applied(generation: 1))
        // The worker applies the snapshot at its next turn; the route's answer says when.
        XCTAssertTrue(Wait.until { c.get("/version")?.text == "v1" }, "the reload never reached the worker")
        for _ in 0..<5 { XCTAssertEqual(c.get("/?size=1")?.status, 200) }
        XCTAssertEqual(try b.acceptedConnections(), 1, "requests after the reload go to the new address, on one pooled connection")
        XCTAssertEqual(try a.acceptedConnections(), 1, "nothing more reaches the old address")
    }

    /// A reload that adds an endpoint and then removes the first: the new host takes its share at
    /// once, the removed one gets nothing more and its pooled connection closes.
    func testReloadAddingAndRemovingEndpointsChangesTheHostsForNewRequests() throws {
        let a = try UpstreamEchoServer(io: .epoll)
        defer { a.stop() }
        let b = try UpstreamEchoServer(io: .epoll)
        defer { b.stop() }
        let path = opsTempPath("hosts.yaml")
        defer { unlink(path) }
        func write(_ version: Int, _ ports: [Int]) throws {
            let hosts = """
                        - name: all
                          domains: ["*"]
                          routes:
                          - match: { prefix: "/version" }
                            direct_response: { status: 200, body: { inline_string: "v\(version)" } }
                          - match: { prefix: "/" }
                            route: { cluster: echo }
            """
            try opsYAML(virtualHosts: hosts, clusters: dataPathCluster("echo", ports: ports)).write(toFile: path, atomically: true, encoding: .utf8)
        }
        try write(0, [a.port])
        let ops = try startOps("", concurrency: 1, configPath: path)
        defer { ops.stop() }
        let c = try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http")))
        XCTAssertEqual(c.get("/?size=1")?.status, 200)

        try write(1, [a.port, b.port])
        XCTAssertEqual(ops.reload(), .applied(generation: 1))
        XCTAssertTrue(Wait.until { c.get("/version")?.text == "v1" }, "the reload never reached the worker")
        for _ in 0..<4 { XCTAssertEqual(c.get("/?size=1")?.status, 200) }
        XCTAssertEqual(try b.acceptedConnections(), 1, "the added host takes requests on one pooled connection")
        XCTAssertEqual(try a.acceptedConnections(), 1, "the kept host keeps its pooled connection")

        try write(2, [b.port])
        XCTAssertEqual(ops.reload(), .applied(generation: 2))
        XCTAssertTrue(Wait.until { c.get("/version")?.text == "v2" }, "the reload never reached the worker")
        let (_, before) = adminRequest(ops.adminPort!, "GET", "/stats")
        for _ in 0..<4 { XCTAssertEqual(c.get("/?size=1")?.status, 200) }
        let (_, after) = adminRequest(ops.adminPort!, "GET", "/stats")
        XCTAssertEqual(statValue(after, "cluster.echo.upstream_cx_total"), statValue(before, "cluster.echo.upstream_cx_total"),
                       "every request after removing a reuses b's pooled connection")
        XCTAssertEqual(try a.acceptedConnections(), 1)
        XCTAssertEqual(statValue(after, "cluster.echo.upstream_cx_active"), 1, "a's pooled connection closed at the reload")
    }

    func testReloadUnderLoadDropsNothingAndNewRoutesTakeEffect() throws {
        let upstream = try UpstreamEchoServer(io: .epoll, workers: 2)
        defer { upstream.stop() }
        let path = opsTempPath("reload.yaml")
        defer { unlink(path) }
        try Self.reloadYAML(version: 0, echoPort: upstream.port).write(toFile: path, atomically: true, encoding: .utf8)
        let ops = try startOps("", configPath: path)
        defer { ops.stop() }
        let port = ops.proxy.port(of: "http")!
        XCTAssertEqual(try TestConnection(port: port).get("/version")?.text, "v0")

        let threads = 8
        let connectionsPerThread = 8
        let requestsPerConnection = 20_000 / (threads * connectionsPerThread)  // 312 -> 19,968 requests
        let ok = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                let conns = (0..<connectionsPerThread).compactMap { _ in try? TestConnection(port: port) }
                failed.add(connectionsPerThread - conns.count, ordering: .relaxed)
                for _ in 0..<requestsPerConnection {
                    for c in conns {
                        if let r = c.get("/?size=10"), r.status == 200, r.body.count == 10 {
                            ok.add(1, ordering: .relaxed)
                        } else {
                            failed.add(1, ordering: .relaxed)
                        }
                    }
                }
            }
        }
        // 10 reloads while the load runs, and one invalid config that is rejected.
        for version in 1...10 {
            usleep(20_000)
            try Self.reloadYAML(version: version, echoPort: upstream.port).write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertEqual(ops.reload(), .applied(generation: UInt32(version)))
            if version == 5 {
                try "static_resources: { listeners: [ { nme: x } ] }".write(toFile: path, atomically: true, encoding: .utf8)
                guard case .rejected(let reason) = ops.reload() else { return XCTFail("an invalid config was applied") }
                XCTAssertTrue(reason.contains("nme"), reason)
                XCTAssertEqual(try TestConnection(port: port).get("/version")?.text, "v5", "the old config stays")
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 300), .success)
        let total = threads * connectionsPerThread * requestsPerConnection
        XCTAssertEqual(failed.load(ordering: .relaxed), 0, "zero failed requests across 10 reloads")
        XCTAssertEqual(ok.load(ordering: .relaxed), total)
        XCTAssertEqual(try TestConnection(port: port).get("/version")?.text, "v10", "the new routes take effect")
        XCTAssertEqual(ops.generation, 10)
        XCTAssertEqual(ops.stats().value("http.ingress_http.downstream_rq_total"), total + 3)
    }

    func testSIGTERMDrainsSlowRequestsRefusesNewOnesAndExitsZero() throws {
        let upstream = try UpstreamEchoServer(io: .epoll, workers: 2)
        defer { upstream.stop() }
        let path = opsTempPath("drain.yaml")
        defer { unlink(path) }
        try opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream.port]))
            .write(toFile: path, atomically: true, encoding: .utf8)
        let child = try DataPathChild(["proxy", "-c", path, "--concurrency", "2", "--io", "epoll", "--drain-time-s", "30"])
        defer { child.stop() }
        let line = try child.requireLine(containing: "listening on", what: "ballast proxy")
        let port = try XCTUnwrap(line.components(separatedBy: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) })
        // An idle keep-alive connection, and slow requests in flight.
        let idle = try TestConnection(port: port)
        XCTAssertEqual(idle.get("/?size=1")?.status, 200)
        let slow = try (0..<6).map { _ in try TestConnection(port: port) }
        for c in slow { c.send("GET /?delay=500ms&size=3 HTTP/1.1\r\nHost: x\r\n\r\n") }
        // The requests reach the upstream before the signal (the upstream counts the proxy's connections).
        XCTAssertTrue(Wait.until { ((try? upstream.acceptedConnections()) ?? 0) >= 6 }, "the slow requests reached the upstream")
        kill(child.process.processIdentifier, SIGTERM)
        let refused = Wait.until { (try? TestConnection(port: port)) == nil }
        XCTAssertTrue(refused, "new connections are refused once the drain starts")
        var completed = 0
        for c in slow {
            if let r = c.readResponse(), r.status == 200, r.body.count == 3 {
                completed += 1
                XCTAssertEqual(r.headers["connection"], "close", "keep-alive connections are told to close")
            }
        }
        XCTAssertEqual(completed, slow.count, "every in-flight request completes")
        XCTAssertTrue(idle.readsEOF(), "the idle keep-alive connection is closed")
        child.process.waitUntilExit()
        XCTAssertEqual(child.process.terminationReason, .exit)
        XCTAssertEqual(child.process.terminationStatus, 0)
    }
}
