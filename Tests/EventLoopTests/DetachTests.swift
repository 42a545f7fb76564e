import CBallast
import EventLoop
import Glibc
import TestSupport
import XCTest

/// Detaching a connected socket from one backend and attaching it to another (live rebalancing),
/// driven turn by turn on the test's thread over an AF_UNIX stream pair: every byte is delivered
/// once, in order, by exactly one of the two backends.
final class DetachTests: XCTestCase {
    struct Seen: Equatable, CustomStringConvertible {
        var kind: CompletionKind
        var result: Int32
        var bytes: String = ""
        var description: String { "\(kind)(\(result))\(bytes.isEmpty ? "" : " \"\(bytes)\"")" }
    }

    /// One backend driven by hand on this thread (an io_uring ring is single-issuer).
    final class Driven<B: IOBackend> {
        let backend: B
        let wakeFD: Int32
        var batch: CompletionBatch

        init() throws {
            wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
            var options = BackendOptions()
            options.receiveBufferCount = 16
            options.receiveBufferWindow = 4
            options.batchSize = 64
            options.ringEntries = 64
            backend = try B(options: options, wakeFD: wakeFD)
            batch = CompletionBatch(capacity: options.batchSize)
        }

        /// One loop turn. `fill`: the batch starts full, so the backend submits and lets the kernel
        /// post completions but takes none of them (they wait in the completion queue).
        func turn(fill: Bool = false, waitNanos: Int64 = 0) -> [Seen] {
            batch.count = fill ? batch.capacity : 0
            _ = backend.poll(timeoutNanos: waitNanos, into: &batch)
            var seen: [Seen] = []
            if !fill {
                for i in 0..<batch.count {
                    let c = batch.storage[i]
                    seen.append(Seen(kind: c.kind, result: c.result, bytes: String(decoding: c.bytes, as: UTF8.self)))
                }
            }
            backend.endTurn()
            return seen
        }

        /// Turns (at most 200, each waiting up to 10 ms for a completion) until `done` holds for
        /// everything seen.
        func turns(until done: ([Seen]) -> Bool) -> [Seen] {
            var all: [Seen] = []
            for _ in 0..<200 where !done(all) { all += turn(waitNanos: 10_000_000) }
            return all
        }

        func stop() {
            backend.shutdown()
            close(wakeFD)
        }
    }

    /// A connected stream pair; the first end (the backends') non-blocking.
    func streamPair() throws -> (ours: Int32, peer: Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw TestSetupError("socketpair: errno \(errno)")
        }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        return (fds[0], fds[1])
    }

    func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }, bytes.count)
    }

    static func hasDetach(_ seen: [Seen]) -> Bool { seen.contains { $0.kind == .detach } }

    /// Bytes the old owner has not received stay in the socket and are read by the new owner,
    /// once: epoll detaches at once, io_uring after its receive's cancellation (a `.detach` 0).
    func testAnIdleFdMovesWithItsUnreadBytesToAnotherBackend() throws {
        try forEachBackend { try moveWithUnreadBytes($0) }
    }

    func moveWithUnreadBytes<B: IOBackend>(_: B.Type) throws {
        let (ours, peer) = try streamPair()
        defer { close(ours); close(peer) }
        let a = try Driven<B>()
        defer { a.stop() }
        let b = try Driven<B>()
        defer { b.stop() }
        a.backend.armReceive(fd: ours, token: 7)
        write(peer, "one")
        XCTAssertEqual(a.turns { !$0.isEmpty }, [Seen(kind: .receive, result: 3, bytes: "one")], "\(B.kind)")
        write(peer, "two")  // before the detach reaches the kernel: stays in the socket
        let progress = a.backend.detach(fd: ours)
        XCTAssertEqual(progress, B.kind == .epoll ? .done : .pending, "\(B.kind)")
        if progress == .pending {
            XCTAssertEqual(a.turns(until: Self.hasDetach), [Seen(kind: .detach, result: 0)], "\(B.kind)")
        }
        b.backend.armReceive(fd: ours, token: 9)
        var received = ""
        _ = b.turns { seen in
            received = seen.map(\.bytes).joined()
            return received == "two" }
        XCTAssertEqual(received, "two", "\(B.kind)")
        write(peer, "three")
        XCTAssertEqual(b.turns { !$0.isEmpty }, [Seen(kind: .receive, result: 5, bytes: "three")], "\(B.kind)")
        XCTAssertEqual(a.turn() + a.turn(), [], "\(B.kind): nothing more for the fd on the old backend")
    }

    /// io_uring's own race: bytes the multishot receive already took from the socket (its
    /// completion waits in the completion queue) when the detach's cancel is submitted. They are
    /// delivered, then the detach reports -EBUSY and the fd stays, receiving; the next detach, with
    /// nothing in flight, moves it.
    func testBytesReceivedBeforeTheCancelAreDeliveredAndTheFdStays() throws {
        try TestBackends.requireIoUring()
        let (ours, peer) = try streamPair()
        defer { close(ours); close(peer) }
        let a = try Driven<IoUringBackend>()
        defer { a.stop() }
        let b = try Driven<IoUringBackend>()
        defer { b.stop() }
        a.backend.armReceive(fd: ours, token: 7)
        XCTAssertEqual(a.turn(), [])
        write(peer, "early")
        XCTAssertEqual(a.turn(fill: true), [])  // received by the kernel, not yet taken
        XCTAssertEqual(a.backend.detach(fd: ours), .pending)
        XCTAssertEqual(a.turns(until: Self.hasDetach),
                       [Seen(kind: .receive, result: 5, bytes: "early"), Seen(kind: .detach, result: -EBUSY)])
        write(peer, "later")
        XCTAssertEqual(a.turns { !$0.isEmpty }, [Seen(kind: .receive, result: 5, bytes: "later")], "still receiving here")
        XCTAssertEqual(a.backend.detach(fd: ours), .pending)
        XCTAssertEqual(a.turns(until: Self.hasDetach), [Seen(kind: .detach, result: 0)])
        b.backend.armReceive(fd: ours, token: 9)
        write(peer, "moved")
        XCTAssertEqual(b.turns { !$0.isEmpty }, [Seen(kind: .receive, result: 5, bytes: "moved")])
        XCTAssertEqual(a.turn() + a.turn(), [])
    }

    /// End of stream while the cancel is in flight is input too: delivered, then -EBUSY.
    func testEndOfStreamDuringTheDetachIsDeliveredAndRefusesIt() throws {
        try TestBackends.requireIoUring()
        let (ours, peer) = try streamPair()
        defer { close(ours) }
        let a = try Driven<IoUringBackend>()
        defer { a.stop() }
        a.backend.armReceive(fd: ours, token: 7)
        XCTAssertEqual(a.turn(), [])
        close(peer)
        XCTAssertEqual(a.turn(fill: true), [])
        XCTAssertEqual(a.backend.detach(fd: ours), .pending)
        XCTAssertEqual(a.turns(until: Self.hasDetach), [Seen(kind: .receive, result: 0), Seen(kind: .detach, result: -EBUSY)])
    }

    /// Closing the fd while its detach is pending: no `.detach` completion follows, nor anything else.
    func testCloseDuringAPendingDetachReportsNothing() throws {
        try TestBackends.requireIoUring()
        let (ours, peer) = try streamPair()
        defer { close(peer) }
        let a = try Driven<IoUringBackend>()
        defer { a.stop() }
        a.backend.armReceive(fd: ours, token: 7)
        XCTAssertEqual(a.turn(), [])
        XCTAssertEqual(a.backend.detach(fd: ours), .pending)
        a.backend.close(fd: ours)
        var seen: [Seen] = []
        for _ in 0..<5 { seen += a.turn(waitNanos: 10_000_000) }
        XCTAssertEqual(seen, [])
    }

    /// A receive cancelled by a pause may still deliver data until its last completion: a detach
    /// then is refused (clearing the entry would drop those bytes); once it ended, the detach works.
    func testDetachIsRefusedWhileAPausedReceiveMayStillDeliver() throws {
        try TestBackends.requireIoUring()
        let (ours, peer) = try streamPair()
        defer { close(ours); close(peer) }
        let a = try Driven<IoUringBackend>()
        defer { a.stop() }
        a.backend.armReceive(fd: ours, token: 7)
        XCTAssertEqual(a.turn(), [])
        a.backend.pauseReceive(fd: ours)
        a.backend.resumeReceive(fd: ours)
        XCTAssertEqual(a.backend.detach(fd: ours), .refused)
        XCTAssertEqual(a.turn() + a.turn(), [])
        XCTAssertEqual(a.backend.detach(fd: ours), .pending)
        XCTAssertEqual(a.turns(until: Self.hasDetach), [Seen(kind: .detach, result: 0)])
    }
}
