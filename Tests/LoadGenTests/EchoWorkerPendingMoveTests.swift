@testable import Balancers
import EventLoop
import Glibc
import XCTest
@testable import LoadGen

/// The echo worker's side of a pending move (io_uring: `detach` answers `.pending`, a `.detach`
/// completion follows), on exact event sequences: a scripted backend records what the worker asks
/// for, and the test hands it completions one by one. Covers what the end-to-end tests cannot
/// force: a request that the cancelled receive had already pulled in, delivered while the detach
/// is pending.
final class EchoWorkerPendingMoveTests: XCTestCase {
    /// Records sends and detaches; every detach is left pending.
    final class PendingBackend: IOBackend {
        static var kind: IOBackendKind { .ioUring }
        var receiveTokens: [Int32: UInt64] = [:]
        var sends: [(fd: Int32, bytes: [UInt8])] = []
        var detaches: [Int32] = []
        var closed: [Int32] = []

        init(options: BackendOptions, wakeFD: Int32) throws(SystemError) {}
        func armAccept(listener fd: Int32, token: UInt64) {}
        func disarmAccept(listener fd: Int32) {}
        func armReceive(fd: Int32, token: UInt64) { receiveTokens[fd] = token }
        func pauseReceive(fd: Int32) {}
        func resumeReceive(fd: Int32) {}
        func send(fd: Int32, bytes: UnsafeRawPointer, count: Int) {
            sends.append((fd, Array(UnsafeRawBufferPointer(start: bytes, count: count))))
        }
        func connect(fd: Int32, token: UInt64, address: SocketAddress) {}
        func close(fd: Int32) { closed.append(fd) }
        func detach(fd: Int32) -> DetachProgress {
            detaches.append(fd)
            return .pending
        }
        var messageAddress: Int32 { -1 }
        func postMessage(to address: Int32, value: Int32) -> Bool { false }
        func poll(timeoutNanos: Int64, into batch: inout CompletionBatch) -> Bool { false }
        func endTurn() {}
        func shutdown() {}
    }

    final class Moves: @unchecked Sendable {  // written and read on the test's thread only
        var posted: [(fd: Int32, worker: Int)] = []
    }

    struct Rig {
        let loop: EventLoop<PendingBackend, EchoMessage>
        let worker: EchoWorker<PendingBackend>
        let stats: EchoWorkerStats
        let loads: WorkerLoads
        let moves: Moves
        var backend: PendingBackend { loop.backend }

        /// Worker 0 of 2, margin 0, with `connections` accepted (fake fds 100, 101, ...).
        init(connections: Int) throws {
            loop = try EventLoop(index: 0, options: BackendOptions(), mailbox: Mailbox<EchoMessage>())
            loads = WorkerLoads(workers: 2)
            let moves = Moves()
            self.moves = moves
            let peers = PeerHandOff { fd, worker in moves.posted.append((fd, worker)) }
            stats = EchoWorkerStats()
            worker = EchoWorker(seat: WorkerSeat(index: 0, listener: -1, loads: loads, peers: peers), limits: EchoLimits(),
                                stats: stats, cost: nil, seed: 1, balance: try BalanceSpec.parse("least-loaded:rebalance=0"))
            for i in 0..<connections {
                worker.handle(Completion(kind: .accept, fd: -1, result: Int32(100 + i), token: WorkerSeat.listenerToken), loop: loop)
            }
        }

        func token(_ fd: Int32) -> UInt64 { backend.receiveTokens[fd]! }

        func receive(_ fd: Int32, _ text: String) {
            let bytes = Array(text.utf8)
            bytes.withUnsafeBytes {
                worker.handle(Completion(kind: .receive, fd: fd, result: Int32($0.count), token: token(fd), buffer: $0.baseAddress), loop: loop)
            }
        }

        func endOfStream(_ fd: Int32) {
            worker.handle(Completion(kind: .receive, fd: fd, result: 0, token: token(fd)), loop: loop)
        }

        /// The last send on `fd` finishes whole; then the end of the turn (due timers: the move).
        func sendFinishes(_ fd: Int32) {
            let count = backend.sends.last { $0.fd == fd }!.bytes.count
            worker.handle(Completion(kind: .send, fd: fd, result: Int32(count), token: token(fd)), loop: loop)
            endTurn()
        }

        func endTurn() {
            while let id = loop.timers.popExpired(now: Int64.max) { worker.timerFired(id, loop: loop) }
        }

        func detachEnds(_ fd: Int32, result: Int32) {
            worker.handle(Completion(kind: .detach, fd: fd, result: result, token: token(fd)), loop: loop)
        }

        /// Response body sizes sent on `fd`, in order.
        func bodySizes(_ fd: Int32) -> [Int] {
            let text = String(decoding: backend.sends.filter { $0.fd == fd }.flatMap(\.bytes), as: UTF8.self)
            return text.components(separatedBy: "Content-Length: ").dropFirst().map { Int($0.prefix { $0.isNumber })! }
        }

        var counts: [Int] { [loads.connections(0), loads.connections(1)] }
    }

    static func request(size: Int) -> String { "GET /?size=\(size) HTTP/1.1\r\nHost: test\r\n\r\n" }

    /// A request the cancelled receive had pulled in arrives while the detach is pending: it is
    /// answered here, once; the backend's -EBUSY ends the move as a refusal (the load goes back).
    /// At the next boundary the connection, idle again, moves.
    func testARequestDeliveredWhileTheDetachIsPendingIsAnsweredAndTheMoveRefused() throws {
        let rig = try Rig(connections: 2)
        XCTAssertEqual(rig.counts, [2, 0])
        rig.receive(100, Self.request(size: 5))
        rig.sendFinishes(100)  // boundary: 2 > mean 1, the connection is idle
        XCTAssertEqual(rig.backend.detaches, [100])
        XCTAssertEqual(rig.counts, [1, 1], "the load moves when the detach starts")
        rig.receive(100, Self.request(size: 6))  // pulled in before the cancel took effect
        rig.detachEnds(100, result: -EBUSY)
        XCTAssertEqual(rig.counts, [2, 0], "refused: the load comes back")
        XCTAssertEqual(rig.stats.moveRefusals.load(ordering: .relaxed), 1)
        XCTAssertEqual(rig.stats.movesOut.load(ordering: .relaxed), 0)
        XCTAssertTrue(rig.moves.posted.isEmpty)
        rig.sendFinishes(100)  // the answer to size=6 went out: a boundary again
        XCTAssertEqual(rig.backend.detaches, [100, 100])
        rig.detachEnds(100, result: 0)
        XCTAssertEqual(rig.moves.posted.map(\.fd), [100])
        XCTAssertEqual(rig.moves.posted.map(\.worker), [1])
        XCTAssertEqual(rig.counts, [1, 1])
        XCTAssertEqual(rig.stats.movesOut.load(ordering: .relaxed), 1)
        XCTAssertEqual(rig.stats.active.load(ordering: .relaxed), 1)
        XCTAssertEqual(rig.bodySizes(100), [5, 6], "each request answered once, in order")
        XCTAssertEqual(rig.stats.requests.load(ordering: .relaxed), 2)
    }

    /// While a detach is pending no other move starts, even at another boundary above the margin.
    func testOneMoveAtATime() throws {
        let rig = try Rig(connections: 4)
        rig.receive(100, Self.request(size: 1))
        rig.sendFinishes(100)
        XCTAssertEqual(rig.backend.detaches, [100])
        rig.receive(101, Self.request(size: 2))
        rig.sendFinishes(101)  // 3 against 1 is still above the mean: but one move is pending
        XCTAssertEqual(rig.backend.detaches, [100])
        rig.detachEnds(100, result: 0)
        XCTAssertEqual(rig.counts, [3, 1])
        XCTAssertEqual(rig.stats.movesOut.load(ordering: .relaxed), 1)
    }

    /// The peer closes while the detach is pending: the connection closes here, its load (already
    /// on the target) is taken off the target, and the move counts as a refusal.
    func testEndOfStreamWhileTheDetachIsPendingClosesAndRefuses() throws {
        let rig = try Rig(connections: 2)
        rig.receive(100, Self.request(size: 5))
        rig.sendFinishes(100)
        XCTAssertEqual(rig.counts, [1, 1])
        rig.endOfStream(100)
        XCTAssertEqual(rig.backend.closed, [100])
        XCTAssertEqual(rig.counts, [1, 0])
        XCTAssertEqual(rig.stats.moveRefusals.load(ordering: .relaxed), 1)
        XCTAssertEqual(rig.stats.active.load(ordering: .relaxed), 1)
        XCTAssertTrue(rig.moves.posted.isEmpty)
    }
}
