@testable import Balancers
import EventLoop
import Foundation
import Glibc
@testable import Proxy
import XCTest

/// An `IOBackend` that does no I/O: it records what the worker asks for (receives armed, sends,
/// connects, closes, pauses) and the test hands the worker completions one by one. The
/// downstream connection's and the stream's state machines then run on exact, repeatable event
/// sequences: partial reads, a head in 1-byte segments, short writes, resets in every state.
/// (The real backends retry EAGAIN themselves and never report it; a short write is how a full
/// socket buffer reaches the worker.)
final class ScriptedBackend: IOBackend {
    static var kind: IOBackendKind { .epoll }
    var receiveTokens: [Int32: UInt64] = [:]
    var connects: [(fd: Int32, token: UInt64)] = []
    var sends: [(fd: Int32, bytes: [UInt8])] = []
    var closed: [Int32] = []
    var paused: Set<Int32> = []

    init(options: BackendOptions, wakeFD: Int32) throws(SystemError) {}

    func armAccept(listener fd: Int32, token: UInt64) {}
    func disarmAccept(listener fd: Int32) {}
    func armReceive(fd: Int32, token: UInt64) { receiveTokens[fd] = token }
    func pauseReceive(fd: Int32) { paused.insert(fd) }
    func resumeReceive(fd: Int32) { paused.remove(fd) }
    func send(fd: Int32, bytes: UnsafeRawPointer, count: Int) {
        sends.append((fd, Array(UnsafeRawBufferPointer(start: bytes, count: count))))
    }
    func connect(fd: Int32, token: UInt64, address: SocketAddress) { connects.append((fd, token)) }
    func close(fd: Int32) {
        closed.append(fd)
        Glibc.close(fd)
    }
    func detach(fd: Int32) -> Bool { false }
    var messageAddress: Int32 { -1 }
    func postMessage(to address: Int32, value: Int32) -> Bool { false }
    func poll(timeoutNanos: Int64, into batch: inout CompletionBatch) -> Bool { false }
    func endTurn() {}
    func shutdown() {}

    /// What was sent on `fd`, concatenated.
    func sent(on fd: Int32) -> String {
        String(decoding: sends.filter { $0.fd == fd }.flatMap(\.bytes), as: UTF8.self)
    }
}

final class ScriptedBackendTests: XCTestCase {
    typealias Worker = ProxyWorker<ScriptedBackend>

    /// One worker on a scripted loop, one cluster `echo` on 127.0.0.1:9 (never really connected).
    final class Harness {
        let loop: EventLoop<ScriptedBackend, ProxyMessage>
        let worker: Worker
        let plane: DataPlane
        var backend: ScriptedBackend { loop.backend }
        private var peers: [Int32] = []

        init() throws {
            let yaml = dataPathYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [9]))
            plane = try DataPlane.compile(BootstrapLoader.load(yaml: yaml).bootstrap)
            loop = try EventLoop<ScriptedBackend, ProxyMessage>(index: 0, options: BackendOptions(), mailbox: Mailbox())
            let settings = ProxyWorkerSettings(plane: plane, listener: plane.listeners[0], debugResponseFlags: true, accessRings: nil)
            worker = Worker(seat: WorkerSeat(index: 0, listener: -1, loads: WorkerLoads(workers: 1)), settings: settings,
                            stats: DataPathStats(clusters: plane.clusters.count))
        }

        deinit { for p in peers { Glibc.close(p) } }

        /// A new client connection (a real socket pair, so socket options work): its fd and token.
        func connectClient() -> (fd: Int32, token: UInt64) {
            var fds: [Int32] = [0, 0]
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
            peers.append(fds[1])
            worker.received(.adopt(fd: fds[0]), loop: loop)
            return (fds[0], backend.receiveTokens[fds[0]]!)
        }

        func receive(_ text: String, fd: Int32) { receive(Array(text.utf8), fd: fd) }

        func receive(_ bytes: [UInt8], fd: Int32) {
            bytes.withUnsafeBytes { b in
                worker.handle(Completion(kind: .receive, fd: fd, result: Int32(b.count), token: backend.receiveTokens[fd]!,
                                         buffer: b.baseAddress), loop: loop)
            }
        }

        /// The peer of `fd` closed (0) or reset (-errno).
        func receiveEnd(_ result: Int32, fd: Int32) {
            worker.handle(Completion(kind: .receive, fd: fd, result: result, token: backend.receiveTokens[fd]!), loop: loop)
        }

        /// The latest send on `fd` completed with `written` bytes (all of it by default).
        func complete(sendOn fd: Int32, written: Int? = nil) {
            let last = backend.sends.last { $0.fd == fd }!
            let token = backend.receiveTokens[fd] ?? backend.connects.first { $0.fd == fd }!.token
            worker.handle(Completion(kind: .send, fd: fd, result: Int32(written ?? last.bytes.count), token: token), loop: loop)
        }

        /// The upstream connect started for the last stream succeeded: its fd.
        func connectUpstream() -> Int32 {
            let c = backend.connects.last!
            worker.handle(Completion(kind: .connect, fd: c.fd, result: 0, token: c.token), loop: loop)
            return c.fd
        }

        var resources: ClusterResources { plane.clusters[0].resources }
    }

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
        let h = try Harness()
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
        let h = try Harness()
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
        let h = try Harness()
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
            let h = try Harness()
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
        let h = try Harness()
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
        let h = try Harness()
        let (fd, _) = h.connectClient()
        h.receive("GET /x HT", fd: fd)
        h.receiveEnd(0, fd: fd)
        XCTAssertEqual(h.backend.closed.filter { $0 == fd }.count, 1)
        XCTAssertEqual(h.backend.sent(on: fd), "")
        XCTAssertEqual(h.backend.connects.count, 0)
    }
}
