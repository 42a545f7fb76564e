import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// Listeners added, removed and moved by a reload (the machinery LDS updates use): the kept
/// listener's keep-alive connection goes on serving, an added one answers, a removed one
/// refuses new connections and closes its idle ones, the counters move as Envoy's. The drain's
/// end is driven by the test's clock (`finishListenerDrains(now:)`), never waited for.
final class ListenerAddRemoveTests: XCTestCase {
    /// Listeners answering `name body` themselves, each on a port of the kernel's choice unless given.
    /// `logged`: the listeners with a stdout access log; `exact`: those balanced by an acceptor
    /// thread (Envoy's exact_balance), the others by SO_REUSEPORT.
    static func yaml(_ listeners: [(name: String, body: String, port: Int)], logged: Set<String> = [], exact: Set<String> = [],
                     logger: String = stdoutLog) -> String {
        let items = listeners.map { l in
            """
              - name: \(l.name)
                address:
                  socket_address: { address: 127.0.0.1, port_value: \(l.port) }
            \(exact.contains(l.name) ? "    connection_balance_config: { exact_balance: {} }" : "")
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: \(l.name)
            \(logged.contains(l.name) ? logger : "")
                      route_config:
                        virtual_hosts:
                        - name: all
                          domains: ["*"]
                          routes:
                          - name: route_\(l.name)
                            match: { prefix: "/" }
                            direct_response: { status: 200, body: { inline_string: "\(l.name) \(l.body)" } }
                      http_filters:
                      - name: envoy.filters.http.router
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
            """
        }.joined(separator: "\n")
        return """
        admin:
          address:
            socket_address: { address: 127.0.0.1, port_value: 0 }
        static_resources:
          listeners:
        \(items)
        """
    }

    static let stdoutLog = """
                  access_log:
                  - name: envoy.access_loggers.stdout
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog}
        """

    /// A file logger writing `%DOWNSTREAM_LOCAL_ADDRESS% %ROUTE_NAME% %RESPONSE_CODE%` lines.
    static func fileLog(_ path: String) -> String {
        """
                  access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: \(path)
                      log_format: {text_format_source: {inline_string: "%DOWNSTREAM_LOCAL_ADDRESS% %ROUTE_NAME% %RESPONSE_CODE%\\n"}}
        """
    }

    /// A port nothing listens on now (the kernel's choice, released).
    static func freeTCPPort() throws -> Int {
        let fd = try Sockets.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false)
        defer { close(fd) }
        return try Sockets.localAddress(fd).port
    }

    static func load(_ yaml: String) throws -> Bootstrap { try BootstrapLoader.load(yaml: yaml).bootstrap }

    func stats(_ ops: ProxyOps) -> String { adminRequest(ops.adminPort!, "GET", "/stats").1 }

    func testReloadAddsAndRemovesListenersWhileTheKeptOneServesOn() throws {
        for io in [IOBackendKind.epoll, .ioUring] { try addRemoveAndMove(io) }
    }

    func addRemoveAndMove(_ io: IOBackendKind) throws {
        let ops = try startOps(Self.yaml([("http", "v0", 0), ("extra", "v0", 0)], exact: ["extra"]), io: io, concurrency: 2)
        defer { ops.stop() }
        let httpPort = try XCTUnwrap(ops.proxy.port(of: "http"))
        let extraPort = try XCTUnwrap(ops.proxy.port(of: "extra"))
        let kept = try TestConnection(port: httpPort)
        XCTAssertEqual(kept.get("/")?.text, "http v0", "\(io)")
        let idle = try TestConnection(port: extraPort)
        XCTAssertEqual(idle.get("/")?.text, "extra v0")
        let first = adminRequest(ops.adminPort!, "GET", "/stats")
        XCTAssertEqual(statValue(first.1, "listener_manager.listener_added"), 2, "\(io) \(first.0) \(first.1.prefix(300))")

        XCTAssertEqual(ops.reload(try Self.load(Self.yaml([("http", "v1", 0), ("added", "v1", 0)]))), .applied(generation: 1))
        // The kept listener's connection serves on, with the new snapshot.
        XCTAssertTrue(Wait.until { kept.get("/")?.text == "http v1" }, "the kept listener's connection did not get the new snapshot")
        let addedPort = try XCTUnwrap(ops.proxy.port(of: "added"))
        XCTAssertEqual(try TestConnection(port: addedPort).get("/")?.text, "added v1")
        // The removed listener: no new connections, its idle keep-alive connection closed.
        XCTAssertNil(ops.proxy.port(of: "extra"))
        XCTAssertNil(try? TestConnection(port: extraPort), "the removed listener still accepts")
        // Its worker takes the drain message at its next turn; the connection closes then.
        XCTAssertTrue(Wait.until { idle.get("/") == nil }, "the removed listener's idle connection stayed open")
        var text = stats(ops)
        XCTAssertEqual(statValue(text, "listener_manager.listener_added"), 3)
        XCTAssertEqual(statValue(text, "listener_manager.listener_removed"), 1)
        XCTAssertEqual(statValue(text, "listener_manager.listener_modified"), 1, "http's route changed")
        XCTAssertEqual(statValue(text, "listener_manager.total_listeners_active"), 2)
        XCTAssertEqual(statValue(text, "listener_manager.total_listeners_draining"), 1)
        XCTAssertEqual(statValue(text, "listener.127.0.0.1_\(extraPort).downstream_cx_total"), 1, "a draining listener's stats stay")
        XCTAssertEqual(adminRequest(ops.adminPort!, "GET", "/listeners").1,
                       "http::127.0.0.1:\(httpPort)\nadded::127.0.0.1:\(addedPort)\n")

        // The drain time over (the test's clock): the group stops, its listener stats go.
        ops.finishListenerDrains(now: monotonicNanos() + ops.options.drainTimeNanos)
        text = stats(ops)
        XCTAssertEqual(statValue(text, "listener_manager.total_listeners_draining"), 0)
        XCTAssertNil(statValue(text, "listener.127.0.0.1_\(extraPort).downstream_cx_total"))
        XCTAssertEqual(statValue(text, "http.extra.downstream_rq_total"), nil)
        XCTAssertEqual(kept.get("/")?.text, "http v1", "the kept connection is still open")

        // A second update moving `added` to another port: the old port refuses, the new one answers.
        XCTAssertEqual(ops.reload(try Self.load(Self.yaml([("http", "v1", 0), ("added", "v1", try Self.freeTCPPort())]))), .applied(generation: 2))
        let movedPort = try XCTUnwrap(ops.proxy.port(of: "added"))
        XCTAssertNotEqual(movedPort, addedPort)
        XCTAssertEqual(try TestConnection(port: movedPort).get("/")?.text, "added v1")
        XCTAssertNil(try? TestConnection(port: addedPort), "the old address still accepts")
        text = stats(ops)
        XCTAssertEqual(statValue(text, "listener_manager.listener_modified"), 2)
        XCTAssertEqual(statValue(text, "listener_manager.listener_added"), 3)
        XCTAssertEqual(statValue(text, "listener_manager.total_listeners_draining"), 1)
        XCTAssertEqual(kept.get("/")?.text, "http v1")
    }

    func testAListenerOnAPortInUseIsRejectedAndTheRunningSetStays() throws {
        let ops = try startOps(Self.yaml([("http", "v0", 0)]), concurrency: 1)
        defer { ops.stop() }
        let holder = try Sockets.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false)
        defer { close(holder) }
        let taken = try Sockets.localAddress(holder).port
        let outcome = ops.reload(try Self.load(Self.yaml([("http", "v1", 0), ("clash", "v1", taken)])))
        XCTAssertEqual(outcome, .rejected(reason: "listener 'clash': cannot listen on 127.0.0.1:\(taken): the port is already in use"))
        XCTAssertEqual(ops.generation, 0)
        XCTAssertEqual(ops.proxy.listeners.map(\.name), ["http"])
        XCTAssertEqual(try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http"))).get("/")?.text, "http v0")
        let text = stats(ops)
        XCTAssertEqual(statValue(text, "listener_manager.listener_added"), 1)
        XCTAssertEqual(statValue(text, "listener_manager.total_listeners_active"), 1)
    }

}

extension ListenerAddRemoveTests {
    /// A listener (with an acceptor thread) removed and then added again on the same port while
    /// the first still drains: its shut socket does not hold the port.
    func testAListenerReAddedOnItsPortWhileTheOldOneDrains() throws {
        let port = try Self.freeTCPPort()
        let ops = try startOps(Self.yaml([("http", "v0", 0), ("extra", "v0", port)], exact: ["extra"]), concurrency: 2)
        defer { ops.stop() }
        XCTAssertEqual(ops.reload(try Self.load(Self.yaml([("http", "v0", 0)]))), .applied(generation: 1))
        XCTAssertTrue(Wait.until { (try? TestConnection(port: port)) == nil }, "the removed listener still accepts")
        XCTAssertEqual(ops.reload(try Self.load(Self.yaml([("http", "v0", 0), ("extra", "v2", port)]))), .applied(generation: 2))
        XCTAssertEqual(try TestConnection(port: port).get("/")?.text, "extra v2")
    }
}

extension ListenerAddRemoveTests {
    /// The access log after the first listener is removed: the second's records (its plane index
    /// moved from 1 to 0, its slot stayed 1) still name its own address and route.
    func testAccessLogLinesKeepTheirListenerAfterAnEarlierOneIsRemoved() throws {
        let log = opsTempPath("lds-remove.log")
        defer { unlink(log) }
        let ops = try startOps(Self.yaml([("first", "v0", 0), ("second", "v0", 0)], logged: ["first", "second"], logger: Self.fileLog(log)),
                               concurrency: 1)
        defer { ops.stop() }
        let firstPort = try XCTUnwrap(ops.proxy.port(of: "first"))
        let secondPort = try XCTUnwrap(ops.proxy.port(of: "second"))
        XCTAssertEqual(try TestConnection(port: firstPort).get("/")?.text, "first v0")
        let kept = try TestConnection(port: secondPort)
        XCTAssertEqual(kept.get("/")?.text, "second v0")
        XCTAssertEqual(ops.reload(try Self.load(Self.yaml([("second", "v1", 0)], logged: ["second"], logger: Self.fileLog(log)))),
                       .applied(generation: 1))
        var served = 2
        XCTAssertTrue(Wait.until { served += 1; return kept.get("/")?.text == "second v1" })
        let lines = waitForLines(log, count: served)
        XCTAssertEqual(lines, ["127.0.0.1:\(firstPort) route_first 200"]
                       + Array(repeating: "127.0.0.1:\(secondPort) route_second 200", count: served - 1))
    }
}

extension ListenerAddRemoveTests {
    /// `listener_modified` counts a kept listener's own change (LDS, reload), not routes or
    /// certificates an RDS or SDS update puts into its config (Envoy does not modify the listener).
    func testOnlyAListenerSourceCountsAKeptListenerModified() throws {
        let ops = try startOps(Self.yaml([("http", "v0", 0)]), concurrency: 1)
        defer { ops.stop() }
        XCTAssertEqual(ops.reload(try Self.load(Self.yaml([("http", "v1", 0)])), listenerSource: false), .applied(generation: 1))
        XCTAssertEqual(statValue(stats(ops), "listener_manager.listener_modified"), 0)
        XCTAssertEqual(ops.reload(try Self.load(Self.yaml([("http", "v2", 0)]))), .applied(generation: 2))
        XCTAssertEqual(statValue(stats(ops), "listener_manager.listener_modified"), 1)
        XCTAssertEqual(try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http"))).get("/")?.text, "http v2")
    }
}
