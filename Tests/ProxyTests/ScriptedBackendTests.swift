@testable import Balancers
import EventLoop
import Foundation
import Glibc
@testable import Proxy
@testable import ProxyTestSupport
import XCTest

final class ScriptedBackendTests: XCTestCase {
    typealias Worker = ProxyWorker<ScriptedBackend>

    /// One worker on a scripted loop, one cluster `echo` on 127.0.0.1:9 (never really connected).
    static func makeHarness() throws -> ScriptedProxy {
        try ScriptedProxy(yaml: dataPathYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [9])))
    }
    typealias Harness = ScriptedProxy

    private let head = "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n"
    private let response = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"

    /// Runs a whole exchange after the head was delivered; returns the upstream fd.
    @discardableResult
    private func serve(_ h: Harness, client: Int32) -> Int32 {
        let up = h.connectUpstream()
        XCTAssertTrue(h.backend.sent(on: up).hasPrefix("GET /x HTTP/1.1\r\n"), h.backend.sent(on: up))
        h.complete(sendOn: up)
        h.receive(response, fd: up)
        h.complete(sendOn: client)
        return up
    }

    func testHeadInOneByteSegments() throws {
        let h = try Self.makeHarness()
        let (fd, _) = h.connectClient()
        let bytes = Array(head.utf8)
        for (i, b) in bytes.enumerated() {
            h.receive([b], fd: fd)
            XCTAssertEqual(h.backend.connects.count, i == bytes.count - 1 ? 1 : 0, "after \(i + 1) of \(bytes.count) bytes")
            XCTAssertEqual(h.worker.streams.liveCount, i == bytes.count - 1 ? 1 : 0)
        }
        serve(h, client: fd)
        let out = h.backend.sent(on: fd)
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 200 OK\r\n"), out)
        XCTAssertTrue(out.hasSuffix("\r\n\r\nhello"), out)
        XCTAssertEqual(h.worker.streams.liveCount, 0, "an idle keep-alive connection holds no stream")
        XCTAssertEqual(h.worker.downs.liveCount, 1)
        XCTAssertFalse(h.backend.closed.contains(fd))
        XCTAssertEqual(h.resources.requests.load(ordering: .relaxed), 0)
    }

    /// A pipelined pair split mid-head across reads: two exchanges, in order, on one upstream connection.
    func testPipelinedPairSplitAcrossReads() throws {
        let h = try Self.makeHarness()
        let (fd, _) = h.connectClient()
        let two = Array((head + head).utf8)
        h.receive(Array(two[0..<(head.utf8.count + 7)]), fd: fd)
        h.receive(Array(two[(head.utf8.count + 7)...]), fd: fd)
        let up = serve(h, client: fd)
        // The second request reuses the idle upstream connection: no second connect.
        XCTAssertEqual(h.backend.connects.count, 1)
        XCTAssertEqual(h.backend.sends.filter { $0.fd == up }.count, 2)
        h.complete(sendOn: up)
        h.receive(response, fd: up)
        h.complete(sendOn: fd)
        XCTAssertEqual(h.backend.sent(on: fd).components(separatedBy: "HTTP/1.1 200 OK").count - 1, 2)
        XCTAssertEqual(h.worker.streams.liveCount, 0)
    }

    /// A short write (the socket buffer was full): exactly the rest is sent next.
    func testShortWriteSendsTheRest() throws {
        let h = try Self.makeHarness()
        let (fd, _) = h.connectClient()
        h.receive(head, fd: fd)
        let up = h.connectUpstream()
        h.complete(sendOn: up)
        h.receive(response, fd: up)
        let whole = h.backend.sends.last { $0.fd == fd }!.bytes
        h.complete(sendOn: fd, written: 10)
        let rest = h.backend.sends.last { $0.fd == fd }!.bytes
        XCTAssertEqual(rest, Array(whole[10...]))
        h.complete(sendOn: fd)
        XCTAssertEqual(h.backend.sends.filter { $0.fd == fd }.count, 2)
    }

    /// The client resets in each state of its connection and stream: the connection closes once,
    /// the stream ends, the circuit breakers are given back, and nothing is left in the tables.
    func testClientResetInEveryState() throws {
        let states: [(String, (Harness, Int32) -> Void)] = [
            ("idle", { _, _ in }),
            ("partial head", { h, fd in h.receive("GET /x HTTP/1.1\r\nHo", fd: fd) }),
            ("waiting for the upstream connect", { h, fd in h.receive(self.head, fd: fd) }),
            ("request sent, no response yet", { h, fd in
                h.receive(self.head, fd: fd)
                h.complete(sendOn: h.connectUpstream())
            }),
            ("response head received, send in flight", { h, fd in
                h.receive(self.head, fd: fd)
                let up = h.connectUpstream()
                h.complete(sendOn: up)
                h.receive("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhe", fd: up)
            }),
            ("after a whole exchange", { h, fd in
                h.receive(self.head, fd: fd)
                self.serve(h, client: fd)
            }),
        ]
        for (name, setUp) in states {
            let h = try Self.makeHarness()
            let (fd, _) = h.connectClient()
            setUp(h, fd)
            h.receiveEnd(-ECONNRESET, fd: fd)
            XCTAssertEqual(h.backend.closed.filter { $0 == fd }.count, 1, name)
            XCTAssertEqual(h.worker.downs.liveCount, 0, name)
            XCTAssertEqual(h.worker.streams.liveCount, 0, name)
            XCTAssertEqual(h.resources.requests.load(ordering: .relaxed), 0, name)
            XCTAssertEqual(h.resources.pendingRequests.load(ordering: .relaxed), 0, name)
        }
    }

    /// The upstream resets before its response head: 503 with flag UC, the client keeps its connection.
    func testUpstreamResetBeforeHeadersIs503UC() throws {
        let h = try Self.makeHarness()
        let (fd, _) = h.connectClient()
        h.receive(head, fd: fd)
        let up = h.connectUpstream()
        h.complete(sendOn: up)
        h.receiveEnd(-ECONNRESET, fd: up)
        let out = h.backend.sent(on: fd)
        XCTAssertTrue(out.hasPrefix("HTTP/1.1 503 "), out)
        XCTAssertTrue(out.lowercased().contains("x-ballast-response-flags: uc\r\n"), out)
        XCTAssertEqual(h.backend.closed.filter { $0 == up }.count, 1)
        XCTAssertFalse(h.backend.closed.contains(fd))
        h.complete(sendOn: fd)
        XCTAssertEqual(h.worker.streams.liveCount, 0)
        XCTAssertEqual(h.worker.ups.liveCount, 0)
    }

    /// The client ends its side (FIN) with a partial head: the connection closes, nothing is answered.
    func testClientFinWithPartialHeadCloses() throws {
        let h = try Self.makeHarness()
        let (fd, _) = h.connectClient()
        h.receive("GET /x HT", fd: fd)
        h.receiveEnd(0, fd: fd)
        XCTAssertEqual(h.backend.closed.filter { $0 == fd }.count, 1)
        XCTAssertEqual(h.backend.sent(on: fd), "")
        XCTAssertEqual(h.backend.connects.count, 0)
    }
}
