import EventLoop
import Foundation
import Glibc
@testable import Proxy
import XCTest

/// Request heads that arrive in pieces, end to end on both backends: a head sent one byte per
/// write is served (each connection resumes its own scan), and a partial head is answered 408 and
/// closed when `request_headers_timeout` runs out (Envoy's request header timeout).
final class DataPathRequestHeadTests: XCTestCase {
    private func yaml(upstream: Int, headersTimeout: String? = nil) -> String {
        var text = dataPathYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream]))
        if let headersTimeout {
            // Beside stat_prefix, at its indentation.
            let line = text.split(separator: "\n").first { $0.contains("stat_prefix: ingress_http") }!
            let indent = String(line.prefix { $0 == " " })
            text = text.replacingOccurrences(of: line + "\n", with: line + "\n" + indent + "request_headers_timeout: \(headersTimeout)\n")
        }
        return text
    }

    /// Two connections interleave their heads one byte per write (the worker's one parser serves
    /// both); both are answered, then a pipelined pair on the first.
    func testHeadsInOneByteWritesOnTwoConnections() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(yaml(upstream: upstream.port), io: io, concurrency: 1)
            defer { proxy.stop() }
            let port = proxy.port(of: "http")!
            let a = try TestConnection(port: port)
            let b = try TestConnection(port: port)
            var one: Int32 = 1
            setsockopt(a.fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(b.fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let headA = Array("GET /?size=3 HTTP/1.1\r\nHost: a.example\r\nX-Pad: \(String(repeating: "p", count: 200))\r\n\r\n".utf8)
            let headB = Array("GET /?size=5 HTTP/1.1\r\nHost: b.example\r\n\r\n".utf8)
            for i in 0..<max(headA.count, headB.count) {
                if i < headA.count { a.send([headA[i]]) }
                if i < headB.count { b.send([headB[i]]) }
            }
            let ra = try XCTUnwrap(a.readResponse(), "\(io)")
            let rb = try XCTUnwrap(b.readResponse(), "\(io)")
            XCTAssertEqual(ra.status, 200, "\(io)")
            XCTAssertEqual(ra.body.count, 3, "\(io)")
            XCTAssertEqual(rb.status, 200, "\(io)")
            XCTAssertEqual(rb.body.count, 5, "\(io)")
            // The connection is clean for what follows: a pipelined pair, the second split mid-head.
            a.send("GET /?size=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /?size=2 HTTP/1.1\r\nHo")
            a.send("st: a\r\n\r\n")
            XCTAssertEqual(a.readResponse()?.body.count, 1, "\(io)")
            XCTAssertEqual(a.readResponse()?.body.count, 2, "\(io)")
        }
    }

    /// A head that never completes gets 408 and the connection closes; a complete head on another
    /// connection of the same proxy is unaffected.
    func testPartialHeadTimesOutWith408() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(yaml(upstream: upstream.port, headersTimeout: "0.2s"), io: io, concurrency: 1)
            defer { proxy.stop() }
            let port = proxy.port(of: "http")!
            let slow = try TestConnection(port: port)
            slow.send("GET /?size=3 HTTP/1.1\r\nHost: example.com\r\nX-Half: ")
            let r = try XCTUnwrap(slow.readResponse(), "\(io): an answer before the client's own 10 s timeout")
            XCTAssertEqual(r.status, 408, "\(io)")
            XCTAssertEqual(r.text, "request header timeout", "\(io)")
            XCTAssertEqual(r.headers["connection"], "close", "\(io)")
            XCTAssertTrue(slow.readsEOF(), "\(io): closed after 408")
            XCTAssertEqual(try upstream.acceptedConnections(), 0, "\(io): nothing reached the upstream")

            let ok = try TestConnection(port: port)
            XCTAssertEqual(ok.get("/?size=2")?.status, 200, "\(io)")
        }
    }
}
