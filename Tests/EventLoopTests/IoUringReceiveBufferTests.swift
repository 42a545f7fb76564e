import EventLoop
import Glibc
import TestSupport
import XCTest

/// The io_uring provided-buffer ring is refilled last-in first-out from a window that grows only
/// when a receive finds it empty: idle connections keep reusing the same few buffers (pages), and
/// a burst larger than the window still arrives whole and in order.
final class IoUringReceiveBufferTests: XCTestCase {
    /// 1,000 connections, one request each, answered before the next opens, then left idle: every
    /// receive lands in one of the window's 32 buffers (a ring posting all 512 would walk them all).
    func testSequentialIdleConnectionsReuseTheWindowsBuffers() throws {
        try TestBackends.requireIoUring()
        FileLimit.raise(to: 4096)
        let echo = try RunningEcho.start(IoUringBackend.self, receiveBufferCount: 512, receiveBufferWindow: 32)
        defer { echo.stop() }
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        var echoed = 0
        for i in 0..<1000 {
            let fd = try Client.connect(port: echo.port)
            fds.append(fd)
            let request = Array("GET /\(i) HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            try Client.sendAll(fd, request)
            if Client.receive(fd, count: request.count) == request { echoed += 1 }
        }
        XCTAssertEqual(echoed, 1000)
        let buffers = echo.receiveBuffers()
        XCTAssertEqual(buffers.window, 32, "no receive should have found the ring empty")
        XCTAssertEqual(buffers.touched, 32, "receives must reuse the window's buffers")
    }

    /// 16 connections whose 16 KiB each wait in their sockets before their receives are armed in
    /// one turn: 64 buffers of 4 KiB are needed at once and only 4 are posted, so receives find
    /// the ring empty (ENOBUFS) and are re-armed after the refill, and the window grows. Every
    /// byte still comes back, in order, split over several completions per connection.
    func testBurstBeyondTheWindowArrivesWholeAndGrowsTheWindow() throws {
        try TestBackends.requireIoUring()
        let echo = try RunningEcho.start(IoUringBackend.self, receiveBufferCount: 64, receiveBufferWindow: 4, deferReceives: true)
        defer { echo.stop() }
        let connections = 16
        let size = 16 * 1024
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        var payloads: [[UInt8]] = []
        for c in 0..<connections {
            let fd = try Client.connect(port: echo.port)
            fds.append(fd)
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ c &* 131 &+ $0 >> 8) }
            payloads.append(payload)
            try Client.sendAll(fd, payload)
        }
        XCTAssertTrue(Wait.until { echo.observations.state.withLock { $0.accepted } == connections })
        echo.mailbox.post(.armDeferred)
        var intact = 0
        for (fd, payload) in zip(fds, payloads) where Client.receive(fd, count: size) == payload { intact += 1 }
        XCTAssertEqual(intact, connections, "every connection's bytes come back whole and in order")
        let buffers = echo.receiveBuffers()
        XCTAssertGreaterThan(buffers.window, 4, "a receive found the ring empty, so the window grew")
        XCTAssertLessThanOrEqual(buffers.window, 64)
        XCTAssertEqual(buffers.touched, buffers.window, "only the window's buffers were ever used")
        XCTAssertEqual(echo.observations.state.withLock { $0.receiveErrors }, [], "ENOBUFS never reaches the handler")
    }
}
