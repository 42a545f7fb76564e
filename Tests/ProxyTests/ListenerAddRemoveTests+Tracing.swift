import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// A Zipkin collector for the tests: each POST's chunked body is kept, the answer is 202.
final class TestZipkinCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var bodies: [String] = []
    private var server: RawUpstream!

    init() throws {
        server = try RawUpstream { [weak self] fd in
            defer { Glibc.close(fd) }
            let head = RawUpstream.readHead(fd)
            guard !head.isEmpty else { return }
            // The reporter sends one chunk and the last chunk: read until "0\r\n\r\n".
            var data: [UInt8] = []
            var byte: UInt8 = 0
            while recv(fd, &byte, 1, 0) == 1 {
                data.append(byte)
                if data.count >= 5 && data.suffix(5) == Array("0\r\n\r\n".utf8) { break }
            }
            self?.lock.withLock { self?.bodies.append(String(decoding: data, as: UTF8.self)) }
            RawUpstream.write(fd, "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
        }
    }

    var port: Int { server.port }
    var reports: [String] { lock.withLock { bodies } }
    /// Spans over every report (each span is one `"kind":"SERVER"` object).
    var spans: Int { reports.reduce(0) { $0 + $1.components(separatedBy: "\"kind\":\"SERVER\"").count - 1 } }

    func stop() { server.stop() }
}

extension ListenerAddRemoveTests {
    /// Listener `name` routing to `echo`, traced with Zipkin to cluster `collector` when `traced`.
    static func tracedListener(_ name: String, traced: Bool) -> String {
        let tracing = traced ? """
                  tracing:
                    provider:
                      name: envoy.tracers.zipkin
                      typed_config:
                        "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                        collector_cluster: collector
                        collector_endpoint: /api/v2/spans
                        collector_endpoint_version: HTTP_JSON

        """ : ""
        return Self.routedListener(name, log: nil).replacingOccurrences(of: "          route_config:\n", with: tracing + "          route_config:\n")
    }

    static func tracedYAML(_ listeners: [String], upstream: Int, collector: Int) -> String {
        Self.routedYAML(listeners, upstream: upstream) + """

          - name: collector
            connect_timeout: 1s
            load_assignment:
              cluster_name: collector
              endpoints:
              - lb_endpoints:
                - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: \(collector) } } }
        """
    }

    /// The proxy starts with no tracing (no reporter); an update adds a listener that traces:
    /// its spans reach its collector (5 requests: one report of 5, Envoy's min_flush_spans); an
    /// update removes it while a request is in flight: that span is still reported to the
    /// listener's collector (the 5 s timer flush), not skipped.
    func testAListenerAddedWithTracingReportsItsSpansAndItsLastOneAfterRemoval() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let collector = try TestZipkinCollector()
        defer { collector.stop() }
        func yaml(_ listeners: [String]) -> String { Self.tracedYAML(listeners, upstream: upstream.port, collector: collector.port) }
        let ops = try startOps(yaml([Self.tracedListener("http", traced: false)]), concurrency: 1)
        defer { ops.stop() }
        XCTAssertNil(ops.zipkin.withLock { $0 })
        let update = yaml([Self.tracedListener("http", traced: false), Self.tracedListener("traced", traced: true)])
        XCTAssertEqual(ops.reload(try Self.load(update)), .applied(generation: 1))
        let reporter = try XCTUnwrap(ops.zipkin.withLock { $0 }, "the first listener that traces starts the reporter")
        let port = try XCTUnwrap(ops.proxy.port(of: "traced"))
        for _ in 0..<5 { XCTAssertEqual(try TestConnection(port: port).get("/")?.status, 200) }
        XCTAssertEqual(try TestConnection(port: try XCTUnwrap(ops.proxy.port(of: "http"))).get("/")?.status, 200)
        // The collector keeps a body before it answers: the reporter counts the report after.
        XCTAssertTrue(Wait.until { reporter.reportsSent.load(ordering: .relaxed) == 1 }, "no report of the added listener's spans")
        XCTAssertEqual(collector.spans, 5, "one span per request of the traced listener, none of the other")

        let held = try TestConnection(port: port)
        held.send("GET /?delay=3s HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(Wait.until { statValue(adminRequest(ops.adminPort!, "GET", "/stats").1, "cluster.echo.upstream_rq_active") == 1 })
        XCTAssertEqual(ops.reload(try Self.load(yaml([Self.tracedListener("http", traced: false)]))), .applied(generation: 2))
        XCTAssertEqual(held.readResponse()?.status, 200)
        XCTAssertTrue(Wait.until { reporter.reportsSent.load(ordering: .relaxed) == 2 }, "the removed listener's last span was not reported")
        XCTAssertEqual(collector.reports.count, 2)
        XCTAssertEqual(collector.spans, 6)
        XCTAssertEqual(reporter.spansSent.load(ordering: .relaxed), 6)
        XCTAssertEqual(reporter.reportsSkippedNoCluster.load(ordering: .relaxed), 0)
    }
}
