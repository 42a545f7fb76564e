// Compiled only where Proxy is testable (debug builds, and the fuzz build, which passes
// -enable-testing -DBALLAST_TESTABLE): `swift build -c release` builds an empty module.
#if BALLAST_TESTABLE
import EventLoop
import Glibc

/// An `IOBackend` that does no I/O: it records what the worker asks for (receives armed, sends,
/// connects, closes, pauses) and the caller hands the worker completions one by one. The
/// downstream connection's and the stream's state machines then run on exact, repeatable event
/// sequences: partial reads, a head in 1-byte segments, short writes, resets in every state.
/// (The real backends retry EAGAIN themselves and never report it; a short write is how a full
/// socket buffer reaches the worker.) Used by `ScriptedBackendTests` and the whole-connection fuzz
/// target (Fuzz/Sources/FuzzProxyConnection); never linked into `ballast`.
final class ScriptedBackend: IOBackend {
    static var kind: IOBackendKind { .epoll }
    var receiveTokens: [Int32: UInt64] = [:]
    var connects: [(fd: Int32, token: UInt64)] = []
    var sends: [(fd: Int32, bytes: [UInt8])] = []
    var closed: [Int32] = []
    var paused: Set<Int32> = []
    /// Operations issued and not yet completed by the caller, oldest first; dropped when their fd
    /// closes (the fd number may be reused by the next socket).
    var pendingSends: [(fd: Int32, count: Int)] = []
    var pendingConnects: [(fd: Int32, token: UInt64)] = []

    init(options: BackendOptions, wakeFD: Int32) throws(SystemError) {}

    func armAccept(listener fd: Int32, token: UInt64) {}
    func disarmAccept(listener fd: Int32) {}
    func armReceive(fd: Int32, token: UInt64) { receiveTokens[fd] = token }
    func pauseReceive(fd: Int32) { paused.insert(fd) }
    func resumeReceive(fd: Int32) { paused.remove(fd) }
    func send(fd: Int32, bytes: UnsafeRawPointer, count: Int) {
        sends.append((fd, Array(UnsafeRawBufferPointer(start: bytes, count: count))))
        pendingSends.append((fd, count))
    }
    func connect(fd: Int32, token: UInt64, address: SocketAddress) {
        connects.append((fd, token))
        pendingConnects.append((fd, token))
    }
    func close(fd: Int32) {
        closed.append(fd)
        pendingSends.removeAll { $0.fd == fd }
        pendingConnects.removeAll { $0.fd == fd }
        Glibc.close(fd)
    }
    func detach(fd: Int32) -> DetachProgress { .refused }
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
#endif
