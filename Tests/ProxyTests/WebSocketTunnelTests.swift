import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// WebSocket upgrades end to end on both I/O backends: the 101 relayed with its Upgrade fields,
/// a megabyte each way through the tunnel (so both directions fill their queues and pause their
/// source), exact byte counts in the access record, and both ways a tunnel ends. The behaviour
/// against real Envoy is in the differential suite (`tunnelScenarios`).
final class WebSocketTunnelTests: XCTestCase {
    /// Answers 101 to any head, then echoes every byte upper-cased until the peer closes; with
    /// `X-Close-After: n` it closes itself after echoing n bytes.
    private static func tunnelUpstream() throws -> RawUpstream {
        try RawUpstream { fd in
            let head = RawUpstream.readHead(fd).lowercased()
            guard !head.isEmpty else { Glibc.close(fd); return }
            var closeAfter = Int.max
            if let line = head.components(separatedBy: "\r\n").first(where: { $0.hasPrefix("x-close-after:") }) {
                closeAfter = Int(line.dropFirst(14).trimmingCharacters(in: .whitespaces)) ?? Int.max
            }
            RawUpstream.write(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            var echoed = 0
            var buf = [UInt8](repeating: 0, count: 65536)
            while echoed < closeAfter {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, closeAfter - echoed), 0) }
                if n <= 0 { break }
                for i in 0..<n where buf[i] >= 0x61 && buf[i] <= 0x7A { buf[i] -= 0x20 }
                var off = 0
                while off < n {
                    let w = buf.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, n - off, Int32(MSG_NOSIGNAL)) }
                    if w <= 0 { break }
                    off += w
                }
                echoed += n
            }
            Glibc.close(fd)
        }
    }

    private func proxyYAML(upstream: Int) -> String {
        dataPathYAML(virtualHosts: dataPathCatchAll("ws"), clusters: dataPathCluster("ws", ports: [upstream]))
            .replacingOccurrences(of: "stat_prefix: ingress_http\n",
                                  with: "stat_prefix: ingress_http\n          upgrade_configs: [ { upgrade_type: websocket } ]\n")
    }

    private func records(_ proxy: RunningProxy, count: Int) -> [AccessRecord] {
        var out: [AccessRecord] = []
        let ring = proxy.accessRings[0][0]
        Wait.until {
            while let r = ring.pop() { out.append(r) }
            return out.count >= count
        }
        return out
    }

    func testAMegabyteEachWayThenTheClientCloses() throws {
        try forEachDataPathBackend { io in
            let upstream = try Self.tunnelUpstream()
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(proxyYAML(upstream: upstream.port), io: io, concurrency: 1)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            c.send("GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            let head = c.readResponse()
            XCTAssertEqual(head?.status, 101, "\(io)")
            XCTAssertEqual(head?.headers["upgrade"], "websocket", "\(io)")
            XCTAssertEqual(head?.headers["connection"], "Upgrade", "\(io)")
            // A megabyte in, the upper-cased megabyte back: sent from another thread, so neither
            // side waits for the other while the tunnel's queues fill and drain.
            let size = 1 << 20
            let payload = [UInt8]((0..<size).map { UInt8(0x61 + $0 % 26) })
            let fd = c.fd
            Thread.detachNewThread {
                var off = 0
                while off < payload.count {
                    let n = payload.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, payload.count - off, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { return }
                    off += n
                }
            }
            let back = c.readBytes(count: size)
            XCTAssertEqual(back.count, size, "\(io)")
            XCTAssertTrue(back.elementsEqual(payload.map { $0 - 0x20 }), "\(io): the tunnel changed or reordered bytes")
            c.close()
            let r = records(proxy, count: 1)
            XCTAssertEqual(r.count, 1, "\(io)")
            XCTAssertEqual(r.first?.responseCode, 101, "\(io)")
            XCTAssertEqual(r.first?.flags, .downstreamConnectionTermination, "\(io)")
            XCTAssertEqual(r.first?.bytesReceived, size, "\(io)")
            XCTAssertEqual(r.first?.bytesSent, size, "\(io)")
            let stats = proxy.stats[0][0]
            XCTAssertEqual(stats.http[0].downstreamCxUpgradesTotal.load(ordering: .relaxed), 1, "\(io)")
            XCTAssertEqual(stats.http[0].downstreamCxUpgradesActive.load(ordering: .relaxed), 0, "\(io)")
            XCTAssertEqual(stats.downstreamCxActive.load(ordering: .relaxed), 0, "\(io)")
        }
    }

    func testTheUpstreamEndsTheTunnel() throws {
        try forEachDataPathBackend { io in
            let upstream = try Self.tunnelUpstream()
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(proxyYAML(upstream: upstream.port), io: io, concurrency: 1)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            c.send("GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Close-After: 5\r\n\r\nhello")
            XCTAssertEqual(c.readResponse()?.status, 101, "\(io)")
            XCTAssertEqual(String(decoding: c.readBytes(count: 5), as: UTF8.self), "HELLO", "\(io)")
            XCTAssertTrue(c.readsEOF(), "\(io): the client's connection stays open after the upstream ended the tunnel")
            let r = records(proxy, count: 1)
            XCTAssertEqual(r.first?.flags, .upstreamConnectionTermination, "\(io)")
            XCTAssertEqual(r.first?.details, .resetAfterResponseStarted, "\(io)")
            XCTAssertEqual(r.first?.bytesReceived, 5, "\(io)")
            XCTAssertEqual(r.first?.bytesSent, 5, "\(io)")
        }
    }

    func testAnUpgradeNotConfiguredIsRefused() throws {
        try forEachDataPathBackend { io in
            let upstream = try Self.tunnelUpstream()
            defer { upstream.stop() }
            let yaml = dataPathYAML(virtualHosts: dataPathCatchAll("ws"), clusters: dataPathCluster("ws", ports: [upstream.port]))
            let proxy = try startDataPathProxy(yaml, io: io, concurrency: 1)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            c.send("GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            XCTAssertEqual(c.readResponse()?.status, 403, "\(io)")
            XCTAssertTrue(c.readsEOF(), "\(io)")
            XCTAssertEqual(records(proxy, count: 1).first?.details, .upgradeFailed, "\(io)")
            XCTAssertEqual(proxy.stats[0][0].http[0].downstreamRqWsOnNonWsRoute.load(ordering: .relaxed), 1, "\(io)")
            XCTAssertEqual(proxy.stats[0][0].upstreamCxTotal.load(ordering: .relaxed), 0, "\(io): a refused upgrade reached the upstream")
        }
    }
}
