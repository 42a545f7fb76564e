import EventLoop
import Glibc
import Synchronization

/// One access-log destination (a file, stdout or stderr) with its own writer thread, as Envoy
/// does: the log thread hands it batches of formatted lines (one lock per batch), the writer
/// thread writes everything queued with one `write` per turn; a full buffer drops the batch's
/// lines and counts them. Nothing here ever blocks a worker (workers only fill their rings).
final class AccessLogDestination: Sendable {
    let sink: AccessLogSinkKey
    static var bufferLimit: Int { 4 << 20 }
    private struct State {
        var buffer: [UInt8] = []
        /// Bytes taken by the writer thread and not yet written.
        var writing = 0
        var fd: Int32 = -1
        var reopen = false
        var stop = false
    }
    private let state = Mutex(State())
    let dropped = Atomic<Int>(0)
    let written = Atomic<Int>(0)
    private let thread = Mutex<LoopThread.Handle?>(nil)

    init(_ sink: AccessLogSinkKey) throws(AccessLogError) {
        self.sink = sink
        let fd = try Self.open(sink)
        state.withLock { $0.fd = fd }
        let handle = LoopThread.start(name: "access-log", cpu: nil) { [self] in self.run() }
        thread.withLock { $0 = handle }
    }

    static func open(_ sink: AccessLogSinkKey) throws(AccessLogError) -> Int32 {
        switch sink {
        case .stdout: return 1
        case .stderr: return 2
        case .file(let path):
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw AccessLogError(description: "cannot open access log '\(path)': \(Log.describe(errno: errno))") }
            return fd
        }
    }

    /// Log thread: queues `lines` whole lines (all dropped and counted when the buffer is full).
    func append(_ batch: UnsafeRawBufferPointer, lines: Int) {
        let ok = state.withLock { s -> Bool in
            guard s.buffer.count + batch.count <= Self.bufferLimit else { return false }
            s.buffer.append(contentsOf: batch)
            return true
        }
        if !ok { dropped.add(lines, ordering: .relaxed) }
    }

    /// SIGUSR1: reopen the file (log rotation) before the next write.
    func requestReopen() { state.withLock { $0.reopen = true } }

    /// Bytes queued or being written.
    var pendingBytes: Int { state.withLock { $0.buffer.count + $0.writing } }

    private func run() {
        var batch: [UInt8] = []
        while true {
            let (fd, reopen, stop) = state.withLock { s -> (Int32, Bool, Bool) in
                swap(&batch, &s.buffer)
                s.writing = batch.count
                let r = s.reopen
                s.reopen = false
                return (s.fd, r, s.stop)
            }
            var out = fd
            if reopen, case .file = sink {
                if let nfd = try? Self.open(sink) {
                    Glibc.close(fd)
                    out = nfd
                    state.withLock { $0.fd = nfd }
                } else {
                    Log.warning("access log \(sink): reopen failed; writing to the old file")
                }
            }
            if !batch.isEmpty {
                batch.withUnsafeBytes { bytes in
                    var off = 0
                    while off < bytes.count {
                        let n = Glibc.write(out, bytes.baseAddress! + off, bytes.count - off)
                        if n <= 0 {
                            if n < 0 && errno == EINTR { continue }
                            break
                        }
                        off += n
                    }
                }
                written.add(batch.count, ordering: .relaxed)
                batch.removeAll(keepingCapacity: true)
                state.withLock { $0.writing = 0 }
            } else if stop {
                if case .file = sink { Glibc.close(out) }
                return
            } else {
                usleep(UInt32(AccessLogSystem.pauseMicros))
            }
        }
    }

    func stop() {
        state.withLock { $0.stop = true }
        thread.withLock { $0 }?.join()
    }
}

public struct AccessLogError: Error, CustomStringConvertible {
    public let description: String
}

enum AccessLogSinkKey: Hashable, Sendable, CustomStringConvertible {
    case file(String), stdout, stderr

    init(_ sink: AccessLogSink) {
        switch sink {
        case .file(let p): self = p == "/dev/stdout" ? .stdout : p == "/dev/stderr" ? .stderr : .file(p)
        case .stdout: self = .stdout
        case .stderr: self = .stderr
        }
    }

    var description: String {
        switch self {
        case .file(let p): p
        case .stdout: "stdout"
        case .stderr: "stderr"
        }
    }
}
