import Foundation
import Glibc
@testable import Proxy
import XCTest

/// Pieces of the Envoy-fidelity behaviour that the differential suite cannot pin exactly
/// (dates, address lists); DifferentialTests compares the rest against real Envoy.
final class FidelityUnitTests: XCTestCase {
    func testDateFieldIsIMFFixdate() {
        var line = [UInt8](repeating: 0, count: HTTPDateField.lineLength)
        HTTPDateField.format(784_111_777, into: &line)
        XCTAssertEqual(String(decoding: line, as: UTF8.self), "date: Sun, 06 Nov 1994 08:49:37 GMT\r\n")
        HTTPDateField.format(1_798_761_599, into: &line)
        XCTAssertEqual(String(decoding: line, as: UTF8.self), "date: Thu, 31 Dec 2026 23:59:59 GMT\r\n")
    }

    func testTrustedHopsCountFromTheRight() {
        let text = Array("10.0.0.1, 10.0.0.2,10.0.0.3".utf8)
        text.withUnsafeBytes { b in
            func at(_ n: Int) -> String? {
                ForwardedForPolicy.element(fromRight: n, of: b, 0..<b.count).map { String(decoding: b[$0], as: UTF8.self) }
            }
            XCTAssertEqual(at(1), "10.0.0.3")
            XCTAssertEqual(at(2), "10.0.0.2")
            XCTAssertEqual(at(3), "10.0.0.1")
            XCTAssertNil(at(4))
        }
    }

    /// codec_type AUTO: an HTTP/2 preface gets SETTINGS + GOAWAY(HTTP_1_1_REQUIRED) and a close,
    /// counted in http.<prefix>.ballast.http2_preface_refused; HTTP/1.1 on the next connection works.
    func testHTTP2PrefaceIsRefusedAndCounted() throws {
        try forEachDataPathBackend { io in
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: """
                            - name: all
                              domains: ["*"]
                              routes:
                              - match: { prefix: "/" }
                                direct_response: { status: 200, body: { inline_string: "ok" } }
                """, clusters: dataPathCluster("unused", ports: [1])), io: io, concurrency: 1)
            defer { proxy.stop() }
            let port = try XCTUnwrap(proxy.port(of: "http"))
            let c = try TestConnection(port: port)
            c.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            var got: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                got += chunk[0..<n]
            }
            XCTAssertEqual(got, http2RefusalFrames, "\(io): SETTINGS then GOAWAY, then the close")
            XCTAssertEqual(Array(got[9..<18]), [0, 0, UInt8(8 + got.count - 26), 7, 0, 0, 0, 0, 0], "\(io): a GOAWAY frame header")
            XCTAssertEqual(Array(got[22..<26]), [0, 0, 0, 0x0D], "\(io): HTTP_1_1_REQUIRED")
            XCTAssertEqual(proxy.stats[0].reduce(0) { $0 + $1.http[0].http2PrefaceRefused.load(ordering: .relaxed) }, 1, "\(io)")
            XCTAssertEqual(try TestConnection(port: port).get("/")?.status, 200, "\(io)")
        }
    }

    /// upstream_connection_options.tcp_keepalive reaches the proxy's upstream sockets (the proxy
    /// runs in this process, so its sockets are ours to inspect).
    func testTCPKeepaliveIsAppliedToUpstreamSockets() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let cluster = dataPathCluster("echo", ports: [upstream.port],
                                      extra: "    upstream_connection_options: { tcp_keepalive: { keepalive_probes: 4, keepalive_time: 33, keepalive_interval: 7 } }")
        let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("echo"), clusters: cluster), io: .epoll, concurrency: 1)
        defer { proxy.stop() }
        let c = try TestConnection(port: try XCTUnwrap(proxy.port(of: "http")))
        XCTAssertEqual(c.get("/?size=2")?.status, 200)
        var checked = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            guard let fd = Int32(name) else { continue }
            var addr = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let rc = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) } }
            guard rc == 0, addr.sin_family == sa_family_t(AF_INET), Int(UInt16(bigEndian: addr.sin_port)) == upstream.port else { continue }
            func option(_ level: Int32, _ name: Int32) -> Int32 {
                var v: Int32 = -1
                var l = socklen_t(MemoryLayout<Int32>.size)
                _ = getsockopt(fd, level, name, &v, &l)
                return v
            }
            XCTAssertEqual(option(SOL_SOCKET, SO_KEEPALIVE), 1)
            XCTAssertEqual(option(Int32(IPPROTO_TCP), TCP_KEEPCNT), 4)
            XCTAssertEqual(option(Int32(IPPROTO_TCP), TCP_KEEPIDLE), 33)
            XCTAssertEqual(option(Int32(IPPROTO_TCP), TCP_KEEPINTVL), 7)
            checked += 1
        }
        XCTAssertEqual(checked, 1, "one pooled upstream connection")
    }
}
