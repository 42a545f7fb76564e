import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// `envoy.filters.http.buffer`: the upstream sees a request only once its body is whole; large
/// bodies in many segments, chunked bodies re-framed, `Expect: 100-continue`, config errors.
final class BufferFilterTests: XCTestCase {
    private func yaml(upstream: Int, maxBytes: Int) -> String {
        opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream]))
            .replacingOccurrences(of: "          http_filters:\n", with: """
                      http_filters:
                      - name: envoy.filters.http.buffer
                        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: \(maxBytes) }

            """)
    }

    func testUpstreamSeesTheRequestOnlyWhenTheBodyIsWhole() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let ops = try startOps(yaml(upstream: upstream.port, maxBytes: 1 << 20), concurrency: 1)
        defer { ops.stop() }
        let port = try XCTUnwrap(ops.proxy.port(of: "http"))
        let admin = try XCTUnwrap(ops.adminPort)
        func upstreamRequests() -> Int? { statValue(adminRequest(admin, "GET", "/stats").1, "cluster.echo.upstream_rq_total") }

        let held = try TestConnection(port: port)
        held.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        // A request on a second connection, answered: the one worker has read the first by then.
        let other = try TestConnection(port: port)
        other.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(other.readResponse()?.status, 200)
        XCTAssertEqual(upstreamRequests(), 1, "the held request has not gone upstream")
        held.send("world")
        let r = try XCTUnwrap(held.readResponse())
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.text, "helloworld")
        XCTAssertEqual(upstreamRequests(), 2)
    }

    func testLargeChunkedBodyInManySegmentsIsForwardedWithContentLength() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let ops = try startOps(yaml(upstream: upstream.port, maxBytes: 1 << 20), concurrency: 1)
        defer { ops.stop() }
        let port = try XCTUnwrap(ops.proxy.port(of: "http"))
        let c = try TestConnection(port: port)
        c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
        let cont = try XCTUnwrap(c.readResponse())
        XCTAssertEqual(cont.status, 100, "100 Continue while buffering")
        var expected: [UInt8] = []
        for i in 0..<30 {
            let chunk = [UInt8](repeating: UInt8(0x41 + i % 26), count: 10_000)
            expected += chunk
            c.send(String(chunk.count, radix: 16) + "\r\n")
            c.send(chunk)
            c.send("\r\n")
        }
        c.send("0\r\n\r\n")
        let r = try XCTUnwrap(c.readResponse())
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.body.count, expected.count)
        XCTAssertTrue(r.body == expected)
    }

    func testBodyOverTheLimitGets413AndCloses() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let ops = try startOps(yaml(upstream: upstream.port, maxBytes: 100_000), concurrency: 1)
        defer { ops.stop() }
        let port = try XCTUnwrap(ops.proxy.port(of: "http"))
        let admin = try XCTUnwrap(ops.adminPort)
        let c = try TestConnection(port: port)
        c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
        c.send([UInt8](repeating: 0x61, count: 150_000))
        let r = try XCTUnwrap(c.readResponse())
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(r.text, "Payload Too Large")
        XCTAssertEqual(r.headers["connection"], "close")
        let stats = adminRequest(admin, "GET", "/stats").1
        XCTAssertEqual(statValue(stats, "http.ingress_http.downstream_rq_too_large"), 1)
        XCTAssertEqual(statValue(stats, "cluster.echo.upstream_rq_total"), 0)
    }

    func testConfigErrorsNameThePath() {
        let base = dataPathYAML(virtualHosts: dataPathCatchAll("c"), clusters: dataPathCluster("c", ports: [9]))
        func with(_ fields: String) -> [String] {
            loadErrors(base.replacingOccurrences(of: "          http_filters:\n", with: """
                      http_filters:
                      - name: envoy.filters.http.buffer
                        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\(fields) }

            """))
        }
        let path = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config"
        XCTAssertEqual(with(""), ["\(path).max_request_bytes: required field missing"])
        XCTAssertEqual(with(", max_request_bytes: 0"), ["\(path).max_request_bytes: must be greater than 0"])
        XCTAssertEqual(with(", max_request_bytes: 20000000"),
                       ["\(path).max_request_bytes: 20000000 is above what ballast buffers (16777216 bytes: the body waits in the connection's input buffer)"])
        XCTAssertEqual(with(", max_request_bytes: { value: 5 }"), [])
    }
}
