import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// Listeners added by an update with access logs (as Envoy applies them): the new listener's
/// workers record, the log thread writes its lines with its own format and file, and a removed
/// listener's last request (in flight while it drains) is written once.
extension ListenerAddRemoveTests {
    /// Listener `name` on a port of the kernel's choice routing to cluster `echo`; `log`: a file
    /// access log whose format prints `tag` first (it tells the listeners' formats apart) and the
    /// request's `x-tag` header (a field no format of the start captured).
    static func routedListener(_ name: String, log: String?, tag: String = "L") -> String {
        let accessLog = log.map { path in
            """
                      access_log:
                      - name: envoy.access_loggers.file
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                          path: \(path)
                          log_format: {text_format_source: {inline_string: "\(tag) %DOWNSTREAM_LOCAL_ADDRESS% %ROUTE_NAME% %RESPONSE_CODE% %REQ(X-TAG)%\\n"}}

            """
        } ?? ""
        return """
          - name: \(name)
            address:
              socket_address: { address: 127.0.0.1, port_value: 0 }
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: \(name)
        \(accessLog)          route_config:
                    virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                      - name: route_\(name)
                        match: { prefix: "/" }
                        route: { cluster: echo }
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router

        """
    }

    static func routedYAML(_ listeners: [String], upstream: Int) -> String {
        """
        admin:
          address:
            socket_address: { address: 127.0.0.1, port_value: 0 }
        static_resources:
          listeners:
        \(listeners.joined())
          clusters:
          - name: echo
            connect_timeout: 1s
            load_assignment:
              cluster_name: echo
              endpoints:
              - lb_endpoints:
                - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: \(upstream) } } }
        """
    }

    /// The lines of `path` once at least `count` are there and the log is flushed (so a line
    /// too many would show).
    func logLines(_ ops: ProxyOps, _ path: String, count: Int) -> [String] {
        _ = waitForLines(path, count: count)
        ops.accessLogs.flush()
        return ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func testAListenerAddedWithAnAccessLogWritesItsLinesAndItsLastOneAfterRemoval() throws {
        try forEachDataPathBackend { io in try addedThenRemoved(io) }
    }

    /// The proxy starts with no access log at all (no log thread); an update adds a listener
    /// that logs: N requests, N lines; then an update removes it while a request is in flight:
    /// that request's line is written once, after its response.
    func addedThenRemoved(_ io: IOBackendKind) throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let log = opsTempPath("lds-added-\(io.rawValue).log")
        defer { unlink(log) }
        let ops = try startOps(Self.routedYAML([Self.routedListener("http", log: nil)], upstream: upstream.port), io: io, concurrency: 2)
        defer { ops.stop() }
        let withLog = Self.routedYAML([Self.routedListener("http", log: nil), Self.routedListener("logged", log: log)], upstream: upstream.port)
        XCTAssertEqual(ops.reload(try Self.load(withLog)), .applied(generation: 1), "\(io)")
        let port = try XCTUnwrap(ops.proxy.port(of: "logged"))
        let n = 5
        for i in 0..<n {
            let c = try TestConnection(port: port)
            XCTAssertEqual(c.get("/", extra: "x-tag: r\(i)\r\n")?.status, 200, "\(io)")
        }
        XCTAssertEqual(try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http"))).get("/")?.status, 200)
        let served = (0..<n).map { "L 127.0.0.1:\(port) route_logged 200 r\($0)" }
        // Two workers, two rings: lines come in the order the log thread drains them, not the requests'.
        XCTAssertEqual(logLines(ops, log, count: n).sorted(), served, "\(io): one line per request of the added listener, none of the other")

        // Removed with a request in flight: the upstream holds it until after the update.
        let held = try TestConnection(port: port)
        held.send("GET /?delay=3s HTTP/1.1\r\nHost: x\r\nx-tag: inflight\r\n\r\n")
        XCTAssertTrue(Wait.until { statValue(adminRequest(ops.adminPort!, "GET", "/stats").1, "cluster.echo.upstream_rq_active") == 1 }, "\(io)")
        XCTAssertEqual(ops.reload(try Self.load(Self.routedYAML([Self.routedListener("http", log: nil)], upstream: upstream.port))),
                       .applied(generation: 2))
        XCTAssertEqual(statValue(adminRequest(ops.adminPort!, "GET", "/stats").1, "listener_manager.total_listeners_draining"), 1)
        let response = held.readResponse()
        XCTAssertEqual(response?.status, 200, "\(io): the request in flight on the removed listener finishes")
        XCTAssertEqual(response?.headers["connection"], "close")
        let all = logLines(ops, log, count: n + 1)
        XCTAssertEqual(all.sorted(), (served + ["L 127.0.0.1:\(port) route_logged 200 inflight"]).sorted(), "\(io)")
        XCTAssertEqual(all.last, "L 127.0.0.1:\(port) route_logged 200 inflight", "\(io): written after its response")
        // Its drain over, its slot stopped: nothing more, nothing twice.
        ops.finishListenerDrains(now: monotonicNanos() + ops.options.drainTimeNanos)
        XCTAssertEqual(logLines(ops, log, count: n + 1).count, n + 1, "\(io)")
    }

    /// A proxy started with an access log: an update adds one listener writing to the same file
    /// (its own format) and one writing to a new file; each line names its listener's route.
    func testAddedListenersShareARunningFileOrOpenANewOne() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let shared = opsTempPath("lds-shared.log"), own = opsTempPath("lds-own.log")
        defer { unlink(shared); unlink(own) }
        let first = Self.routedListener("first", log: shared, tag: "F")
        let ops = try startOps(Self.routedYAML([first], upstream: upstream.port), concurrency: 1)
        defer { ops.stop() }
        let update = Self.routedYAML([first, Self.routedListener("second", log: shared, tag: "S"), Self.routedListener("third", log: own, tag: "T")],
                               upstream: upstream.port)
        XCTAssertEqual(ops.reload(try Self.load(update)), .applied(generation: 1))
        var ports: [String: Int] = [:]
        for name in ["first", "second", "third"] {
            let p = try XCTUnwrap(ops.proxy.port(of: name))
            ports[name] = p
            XCTAssertEqual(try TestConnection(port: p).get("/", extra: "x-tag: \(name)\r\n")?.status, 200)
        }
        XCTAssertEqual(logLines(ops, shared, count: 2).sorted(), ["F 127.0.0.1:\(ports["first"]!) route_first 200 first",
                                                               "S 127.0.0.1:\(ports["second"]!) route_second 200 second"])
        XCTAssertEqual(logLines(ops, own, count: 1), ["T 127.0.0.1:\(ports["third"]!) route_third 200 third"])
    }

    /// An added listener's log file that cannot be opened rejects the update, naming both; the
    /// running set stays.
    func testAnAddedListenersLogThatCannotBeOpenedRejectsTheUpdate() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let ops = try startOps(Self.routedYAML([Self.routedListener("http", log: nil)], upstream: upstream.port), concurrency: 1)
        defer { ops.stop() }
        let bad = "/nonexistent-ballast-dir/x.log"
        let update = Self.routedYAML([Self.routedListener("http", log: nil), Self.routedListener("logged", log: bad)], upstream: upstream.port)
        XCTAssertEqual(ops.reload(try Self.load(update)),
                       .rejected(reason: "listener 'logged': cannot open access log '\(bad)': No such file or directory"))
        XCTAssertEqual(ops.proxy.listeners.map(\.name), ["http"])
        XCTAssertEqual(ops.generation, 0)
    }
}

extension ListenerAddRemoveTests {
    /// A kept listener's access_log changed by an update is refused with its reason (its workers
    /// record what its start's formats need); the running one stays and logs as before.
    func testAKeptListenersChangedAccessLogIsRefused() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let log = opsTempPath("lds-kept.log"), other = opsTempPath("lds-kept-other.log")
        defer { unlink(log); unlink(other) }
        let ops = try startOps(Self.routedYAML([Self.routedListener("http", log: log)], upstream: upstream.port), concurrency: 1)
        defer { ops.stop() }
        let reason = "listener 'http': access_log changed on a running listener; that needs a restart (or a new name or address)"
        for changed in [Self.routedListener("http", log: other), Self.routedListener("http", log: log, tag: "X"), Self.routedListener("http", log: nil)] {
            XCTAssertEqual(ops.reload(try Self.load(Self.routedYAML([changed], upstream: upstream.port))), .rejected(reason: reason))
        }
        XCTAssertEqual(ops.reload(try Self.load(Self.routedYAML([Self.routedListener("http", log: log)], upstream: upstream.port))),
                       .applied(generation: 1), "the same access log: applied")
        let port = try XCTUnwrap(ops.proxy.port(of: "http"))
        XCTAssertEqual(try TestConnection(port: port).get("/", extra: "x-tag: kept\r\n")?.status, 200)
        XCTAssertEqual(logLines(ops, log, count: 1), ["L 127.0.0.1:\(port) route_http 200 kept"])
    }
}
