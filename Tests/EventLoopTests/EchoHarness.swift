import EventLoop
import Glibc
import Synchronization
import TestSupport

enum TestMessage: Sendable {
    case note(poster: Int, sequence: Int)
    case connectTo(port: Int)
    case postTo(address: Int32, value: Int32)
    /// Arm the receives of connections accepted while `deferReceives` held them back.
    case armDeferred
    /// Copy the io_uring receive-buffer counters into the observations.
    case reportReceiveBuffers
}

/// Observations a test reads after the loop stopped (or while it runs, through the mutex).
final class EchoObservations: Sendable {
    struct State {
        var accepted = 0
        var closedByPeer = 0
        var resets = 0
        var receiveErrors: [Int32] = []
        var maxPendingBytes = 0
        var pauses = 0
        var timersFired: [UInt64] = []
        var messages: [TestMessage] = []
        var connectResults: [Int32] = []
        var outboundEcho: [UInt8] = []
        var messageValues: [Int32] = []
        var postResults: [Bool] = []
        var messageAddress: Int32 = -2
        var stopped = false
        var open = 0
        /// io_uring only (`reportReceiveBuffers`): buffers ever in use, and the window now.
        var receiveBuffersTouched = -1
        var receiveBufferWindow = -1
    }
    let state = Mutex(State())
}

/// An echo server handler with backpressure: data is echoed back; while more than `highWater`
/// bytes wait to be sent, receiving is paused.
final class EchoHandler<B: IOBackend>: LoopHandler {
    typealias Backend = B
    typealias Message = TestMessage

    struct Conn {
        var fd: Int32 = -1
        var pending: [UInt8] = []
        var inFlight = 0
        var paused = false
        var outbound = false
    }

    let listener: Int32
    let observations: EchoObservations
    let highWater: Int
    /// Accepted connections are not armed until `.armDeferred`: their data waits in the socket.
    let deferReceives: Bool
    var deferred: [Int32] = []
    var conns: [Int32: Conn] = [:]

    init(listener: Int32, observations: EchoObservations, highWater: Int = 64 * 1024, deferReceives: Bool = false) {
        self.listener = listener
        self.observations = observations
        self.highWater = highWater
        self.deferReceives = deferReceives
    }

    func handle(_ c: Completion, loop: EventLoop<B, TestMessage>) {
        switch c.kind {
        case .accept:
            guard c.result >= 0 else { return }
            let fd = c.result
            conns[fd] = Conn(fd: fd)
            observations.state.withLock { $0.accepted += 1; $0.open += 1 }
            if deferReceives { deferred.append(fd) } else { loop.backend.armReceive(fd: fd, token: UInt64(fd)) }
        case .receive:
            guard var conn = conns[c.fd] else { return }
            if c.result <= 0 {
                observations.state.withLock {
                    if c.result == 0 { $0.closedByPeer += 1 }
                    else if c.result == -ECONNRESET { $0.resets += 1 }
                    else { $0.receiveErrors.append(c.result) }
                }
                closeConn(c.fd, loop)
                return
            }
            if conn.outbound {
                observations.state.withLock { $0.outboundEcho.append(contentsOf: c.bytes) }
                return
            }
            conn.pending.append(contentsOf: c.bytes)
            let pending = conn.pending.count
            observations.state.withLock { $0.maxPendingBytes = max($0.maxPendingBytes, pending) }
            if pending > highWater && !conn.paused {
                conn.paused = true
                loop.backend.pauseReceive(fd: c.fd)
                observations.state.withLock { $0.pauses += 1 }
            }
            conns[c.fd] = conn
            flush(c.fd, loop)
        case .send:
            guard var conn = conns[c.fd] else { return }
            guard c.result >= 0 else { closeConn(c.fd, loop); return }
            conn.pending.removeFirst(Int(c.result))
            conn.inFlight = 0
            if conn.paused && conn.pending.count < highWater / 2 {
                conn.paused = false
                loop.backend.resumeReceive(fd: c.fd)
            }
            conns[c.fd] = conn
            flush(c.fd, loop)
        case .message:
            observations.state.withLock { $0.messageValues.append(c.result) }
        case .detach:
            break  // this harness never detaches
        case .connect:
            observations.state.withLock { $0.connectResults.append(c.result) }
            guard c.result == 0 else { closeConn(c.fd, loop); return }
            loop.backend.armReceive(fd: c.fd, token: UInt64(c.fd))
            conns[c.fd]!.pending = Array("ping-from-loop".utf8)
            flush(c.fd, loop)
        }
    }

    func flush(_ fd: Int32, _ loop: EventLoop<B, TestMessage>) {
        guard var conn = conns[fd], conn.inFlight == 0, !conn.pending.isEmpty else { return }
        // Send from a stable copy: the bytes must not move until the completion.
        conn.inFlight = min(conn.pending.count, 256 * 1024)
        conns[fd] = conn
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: conn.inFlight, alignment: 1)
        conn.pending.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: conn.inFlight) }
        inFlightCopies[fd] = pointer
        loop.backend.send(fd: fd, bytes: pointer, count: conn.inFlight)
    }

    var inFlightCopies: [Int32: UnsafeMutableRawPointer] = [:]

    func closeConn(_ fd: Int32, _ loop: EventLoop<B, TestMessage>) {
        guard conns.removeValue(forKey: fd) != nil else { return }
        observations.state.withLock { $0.open -= 1 }
        loop.backend.close(fd: fd)
    }

    func timerFired(_ id: UInt64, loop: EventLoop<B, TestMessage>) {
        observations.state.withLock { $0.timersFired.append(id) }
    }

    func received(_ message: TestMessage, loop: EventLoop<B, TestMessage>) {
        observations.state.withLock { $0.messages.append(message) }
        if case let .postTo(address, value) = message {
            let ok = loop.backend.postMessage(to: address, value: value)
            observations.state.withLock { $0.postResults.append(ok) }
        }
        if case .armDeferred = message {
            for fd in deferred { loop.backend.armReceive(fd: fd, token: UInt64(fd)) }
            deferred.removeAll()
        }
        if case .reportReceiveBuffers = message, let uring = loop.backend as? IoUringBackend {
            let (touched, window) = (uring.receiveBuffersTouched, uring.receiveBufferWindow)
            observations.state.withLock {
                $0.receiveBuffersTouched = touched
                $0.receiveBufferWindow = window
            }
        }
        if case let .connectTo(port) = message {
            let fd = try! Sockets.makeStream(family: AF_INET)
            var conn = Conn(fd: fd)
            conn.outbound = true
            conns[fd] = conn
            loop.backend.connect(fd: fd, token: UInt64(fd), address: SocketAddress(host: "127.0.0.1", port: port)!)
        }
    }

    func stopping(loop: EventLoop<B, TestMessage>) {
        for fd in conns.keys { loop.backend.close(fd: fd) }
        conns.removeAll()
        loop.backend.close(fd: listener)
        observations.state.withLock { $0.stopped = true }
    }
}

/// A running echo loop on its own thread.
struct RunningEcho {
    let port: Int
    let mailbox: Mailbox<TestMessage>
    let observations: EchoObservations
    let thread: LoopThread.Handle
    let stats: LoopStats

    static func start(_ backend: any IOBackend.Type, highWater: Int = 64 * 1024, timers: [(Int64, UInt64)] = [],
                      receiveBufferCount: Int = 64, receiveBufferWindow: Int = BackendOptions().receiveBufferWindow,
                      deferReceives: Bool = false) throws -> RunningEcho {
        func open<B: IOBackend>(_ type: B.Type) throws -> RunningEcho {
            let listener = try Sockets.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false)
            let port = try Sockets.localAddress(listener).port
            let mailbox = try Mailbox<TestMessage>()
            let observations = EchoObservations()
            let stats = LoopStats()
            let ready = Atomic<Int>(0)
            let thread = LoopThread.start(name: "test-loop", cpu: nil) {
                var options = BackendOptions()
                options.receiveBufferCount = receiveBufferCount
                options.receiveBufferSize = 4096
                options.receiveBufferWindow = receiveBufferWindow
                let loop: EventLoop<B, TestMessage>
                do { loop = try EventLoop<B, TestMessage>(index: 0, options: options, mailbox: mailbox, stats: stats) } catch {
                    ready.store(-1, ordering: .releasing)
                    return
                }
                let handler = EchoHandler<B>(listener: listener, observations: observations, highWater: highWater, deferReceives: deferReceives)
                loop.backend.armAccept(listener: listener, token: 1 << 40)
                let address = loop.backend.messageAddress
                observations.state.withLock { $0.messageAddress = address }
                for (delay, id) in timers { loop.timers.schedule(at: loop.now + delay, id: id) }
                ready.store(1, ordering: .releasing)
                loop.run(handler)
            }
            while ready.load(ordering: .acquiring) == 0 { usleep(1000) }
            precondition(ready.load(ordering: .acquiring) == 1, "loop failed to start")
            return RunningEcho(port: port, mailbox: mailbox, observations: observations, thread: thread, stats: stats)
        }
        return try open(backend)
    }

    /// The io_uring receive-buffer counters (touched, window), read on the loop's thread.
    func receiveBuffers() -> (touched: Int, window: Int) {
        observations.state.withLock { $0.receiveBuffersTouched = -1 }
        mailbox.post(.reportReceiveBuffers)
        var result = (touched: -1, window: -1)
        Wait.until {
            result = observations.state.withLock { ($0.receiveBuffersTouched, $0.receiveBufferWindow) }
            return result.touched >= 0
        }
        return result
    }

    func stop() {
        mailbox.requestStop()
        thread.join()
    }
}
