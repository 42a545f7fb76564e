import CBallast
import EventLoop
import Glibc
import TestSupport
import XCTest

/// One socket suite, run against every backend the kernel allows.
final class EventLoopSocketTests: XCTestCase {
    func testAcceptAndEcho() throws {
        try forEachBackend { backend in
            let echo = try RunningEcho.start(backend)
            defer { echo.stop() }
            let fd = try Client.connect(port: echo.port)
            defer { close(fd) }
            try Client.sendAll(fd, Array("hello".utf8))
            XCTAssertEqual(Client.receive(fd, count: 5), Array("hello".utf8), "\(backend)")
            try Client.sendAll(fd, Array("second".utf8))
            XCTAssertEqual(Client.receive(fd, count: 6), Array("second".utf8), "\(backend)")
        }
    }

    /// A client that sends 8 MiB before reading anything: the server must pause receiving instead
    /// of buffering everything, and every byte must come back in order.
    func testBackpressureBoundsMemoryAndKeepsOrder() throws {
        try forEachBackend { backend in
            let highWater = 64 * 1024
            let echo = try RunningEcho.start(backend, highWater: highWater)
            defer { echo.stop() }
            let fd = try Client.connect(port: echo.port)
            defer { close(fd) }
            let total = 8 << 20
            let payload = (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 13) }
            let writer = LoopThread.start(name: "writer", cpu: nil) {
                try? Client.sendAll(fd, payload)
            }
            // Read nothing until the server has paused receiving (its buffers filled): a condition,
            // not a guessed sleep.
            XCTAssertTrue(Wait.until { echo.observations.state.withLock { $0.pauses } > 0 }, "\(backend): receiving was never paused")
            let back = Client.receive(fd, count: total)
            writer.join()
            XCTAssertEqual(back.count, total, "\(backend)")
            XCTAssertTrue(back == payload, "\(backend): echoed bytes differ")
            let state = echo.observations.state.withLock { $0 }
            XCTAssertGreaterThan(state.pauses, 0, "\(backend): receiving was never paused")
            // Bounded: high water plus what was in flight when the pause took effect.
            XCTAssertLessThanOrEqual(state.maxPendingBytes, highWater + 512 * 1024, "\(backend)")
        }
    }

    func testThousandConcurrentConnections() throws {
        FileLimit.raise(to: 8192)
        try forEachBackend { backend in
            let echo = try RunningEcho.start(backend)
            defer { echo.stop() }
            var fds: [Int32] = []
            for _ in 0..<1024 { fds.append(try Client.connect(port: echo.port)) }
            for (i, fd) in fds.enumerated() { try Client.sendAll(fd, Array("c\(i);".utf8)) }
            var ok = 0
            for (i, fd) in fds.enumerated() where Client.receive(fd, count: "c\(i);".utf8.count) == Array("c\(i);".utf8) { ok += 1 }
            XCTAssertEqual(ok, 1024, "\(backend)")
            XCTAssertEqual(echo.observations.state.withLock { $0.accepted }, 1024, "\(backend)")
            for fd in fds { close(fd) }
            // Every close is seen as end of stream and the slot is released.
            var open = -1
            Wait.until {
                open = echo.observations.state.withLock { $0.open }
                return open == 0
            }
            XCTAssertEqual(open, 0, "\(backend)")
            XCTAssertEqual(echo.observations.state.withLock { $0.closedByPeer }, 1024, "\(backend)")
        }
    }

    func testTimersFireInDeadlineOrder() throws {
        try forEachBackend { backend in
            let ms: Int64 = 1_000_000
            let echo = try RunningEcho.start(backend, timers: [(30 * ms, 3), (10 * ms, 1), (20 * ms, 2), (0, 0), (20 * ms, 22)])
            var fired: [UInt64] = []
            Wait.until {
                fired = echo.observations.state.withLock { $0.timersFired }
                return fired.count == 5
            }
            echo.stop()
            XCTAssertEqual(fired.count, 5, "\(backend)")
            XCTAssertEqual(fired.first, 0)
            XCTAssertEqual(fired.last, 3)
            XCTAssertEqual(Set(fired[1...3]), [1, 2, 22])
            XCTAssertEqual(fired[1], 1)
        }
    }

    func testCrossThreadPostsArriveExactlyOnceInOrderPerPoster() throws {
        try forEachBackend { backend in
            let echo = try RunningEcho.start(backend)
            let posters = (0..<4).map { poster in
                LoopThread.start(name: "poster", cpu: nil) {
                    for sequence in 0..<1000 { echo.mailbox.post(.note(poster: poster, sequence: sequence)) }
                }
            }
            for p in posters { p.join() }
            var messages: [TestMessage] = []
            Wait.until {
                messages = echo.observations.state.withLock { $0.messages }
                return messages.count >= 4000
            }
            echo.stop()
            XCTAssertEqual(messages.count, 4000, "\(backend)")
            var next = [0, 0, 0, 0]
            for case let .note(poster, sequence) in messages {
                XCTAssertEqual(sequence, next[poster], "\(backend): poster \(poster) out of order")
                next[poster] = sequence + 1
            }
            XCTAssertEqual(next, [1000, 1000, 1000, 1000])
        }
    }

    func testPeerResetReleasesTheConnection() throws {
        try forEachBackend { backend in
            let echo = try RunningEcho.start(backend)
            defer { echo.stop() }
            for _ in 0..<20 {
                let fd = try Client.connect(port: echo.port)
                try Client.sendAll(fd, Array("x".utf8))
                _ = Client.receive(fd, count: 1)
                Sockets.setResetOnClose(fd)
                close(fd)
            }
            var state = echo.observations.state.withLock { $0 }
            Wait.until {
                state = echo.observations.state.withLock { $0 }
                return state.open == 0
            }
            XCTAssertEqual(state.open, 0, "\(backend)")
            XCTAssertEqual(state.accepted, 20)
            XCTAssertEqual(state.resets + state.closedByPeer, 20, "\(backend): \(state.receiveErrors)")
            XCTAssertEqual(state.receiveErrors, [], "\(backend)")
            // The loop still serves new connections afterwards.
            let fd = try Client.connect(port: echo.port)
            defer { close(fd) }
            try Client.sendAll(fd, Array("alive".utf8))
            XCTAssertEqual(Client.receive(fd, count: 5), Array("alive".utf8))
        }
    }

    func testOutboundConnectFromTheLoop() throws {
        try forEachBackend { backend in
            let target = try RunningEcho.start(backend)
            let client = try RunningEcho.start(backend)
            client.mailbox.post(.connectTo(port: target.port))
            var echoed: [UInt8] = []
            Wait.until {
                echoed = client.observations.state.withLock { $0.outboundEcho }
                return echoed.count >= 14
            }
            XCTAssertEqual(String(decoding: echoed, as: UTF8.self), "ping-from-loop", "\(backend)")
            XCTAssertEqual(client.observations.state.withLock { $0.connectResults }, [0])
            client.stop()
            target.stop()
        }
    }

    func testConnectRefusedIsReportedAsACompletion() throws {
        try forEachBackend { backend in
            let port = try TestPorts.closed()
            let client = try RunningEcho.start(backend)
            client.mailbox.post(.connectTo(port: port))
            var results: [Int32] = []
            Wait.until {
                results = client.observations.state.withLock { $0.connectResults }
                return !results.isEmpty
            }
            client.stop()
            XCTAssertEqual(results, [-ECONNREFUSED], "\(backend)")
        }
    }

    /// io_uring loops post values straight into each other's rings (IORING_OP_MSG_RING); epoll
    /// says it cannot.
    func testPostMessageBetweenLoops() throws {
        try forEachBackend { backend in
            let sender = try RunningEcho.start(backend)
            let receiver = try RunningEcho.start(backend)
            let address = receiver.observations.state.withLock { $0.messageAddress }
            for value: Int32 in [7, 8, 9] { sender.mailbox.post(.postTo(address: address, value: value)) }
            var values: [Int32] = []
            var results: [Bool] = []
            Wait.until {
                values = receiver.observations.state.withLock { $0.messageValues }
                results = sender.observations.state.withLock { $0.postResults }
                return results.count == 3 && (values.count == 3 || results.allSatisfy { !$0 })
            }
            sender.stop()
            receiver.stop()
            if backend == IoUringBackend.self {
                XCTAssertGreaterThanOrEqual(address, 0)
                XCTAssertEqual(results, [true, true, true])
                XCTAssertEqual(values, [7, 8, 9])
            } else {
                XCTAssertEqual(address, -1)
                XCTAssertEqual(results, [false, false, false])
                XCTAssertEqual(values, [])
            }
        }
    }

    /// Data and the peer's FIN arriving together: both the data and the end of stream are delivered
    /// (with epoll a short read must not end the edge when the peer has hung up).
    func testDataFollowedByCloseDeliversBothDataAndEndOfStream() throws {
        try forEachBackend { backend in
            let echo = try RunningEcho.start(backend)
            defer { echo.stop() }
            for i in 0..<20 {
                let fd = try Client.connect(port: echo.port)
                try Client.sendAll(fd, Array("abc\(i)".utf8))
                shutdown(fd, Int32(SHUT_WR))
                let (bytes, err) = Client.receiveUntilClose(fd)
                XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "abc\(i)", "\(backend)")
                XCTAssertEqual(err, 0, "\(backend): the server must close after the end of stream")
                close(fd)
            }
            var closed = 0
            Wait.until {
                closed = echo.observations.state.withLock { $0.closedByPeer }
                return closed == 20
            }
            XCTAssertEqual(closed, 20, "\(backend)")
        }
    }

    func testCleanStopClosesEverything() throws {
        try forEachBackend { backend in
            let echo = try RunningEcho.start(backend)
            let fd = try Client.connect(port: echo.port)
            try Client.sendAll(fd, Array("x".utf8))
            XCTAssertEqual(Client.receive(fd, count: 1), Array("x".utf8))
            echo.stop()
            XCTAssertTrue(echo.observations.state.withLock { $0.stopped })
            // The server side was closed: the client sees end of stream.
            let (rest, err) = Client.receiveUntilClose(fd)
            XCTAssertEqual(rest, [])
            XCTAssertEqual(err, 0, "\(backend)")
            close(fd)
            // And the listener is gone.
            XCTAssertThrowsError(try Client.connect(port: echo.port))
        }
    }
}
