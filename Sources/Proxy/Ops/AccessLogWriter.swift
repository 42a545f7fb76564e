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


/// The access logs of a running proxy: one thread takes the records out of every worker's
/// ring (the rings' single consumer), formats them with each listener's access-log formats and
/// hands the lines to the destinations' writer threads.
public final class AccessLogSystem: Sendable {
    struct Logger: Sendable {
        let program: AccessLogProgram
        let sink: Int
    }

    private let proxy: RunningProxy
    private let loggers: [[[Logger]]]  // per listener, per filter chain
    private let sinks: [AccessLogDestination]
    private let capture: AccessLogCapture
    private let planes: @Sendable (UInt32) -> DataPlane
    private let wallOffsetNanos: Int64
    private let stopFlag = Atomic<Bool>(false)
    private let drained = Atomic<Int>(0)
    private let thread = Mutex<LoopThread.Handle?>(nil)

    /// Opens every destination of `bootstrap`'s access logs and starts the threads. Nil when the
    /// bootstrap has no access logs.
    init?(bootstrap: Bootstrap, proxy: RunningProxy, capture: AccessLogCapture,
          planes: @escaping @Sendable (UInt32) -> DataPlane) throws(AccessLogError) {
        var keys: [AccessLogSinkKey] = []
        var perListener: [[[Logger]]] = []
        for l in bootstrap.listeners {
            var perChain: [[Logger]] = []
            for chain in l.filterChains + (l.defaultFilterChain.map { [$0] } ?? []) {
                var list: [Logger] = []
                var configs: [AccessLogConfig] = []
                if let terminal = chain.filters.last {
                    switch terminal {
                    case .httpConnectionManager(let h): configs = h.accessLog
                    case .tcpProxy(let t): configs = t.accessLog
                    }
                }
                for c in configs {
                    let key = AccessLogSinkKey(c.sink)
                    if !keys.contains(key) { keys.append(key) }
                    list.append(Logger(program: AccessLogProgram(c.format, omitEmptyValues: c.omitEmptyValues, capture: capture),
                                       sink: keys.firstIndex(of: key)!))
                }
                perChain.append(list)
            }
            perListener.append(perChain)
        }
        guard !keys.isEmpty, !proxy.accessRings.allSatisfy({ $0.isEmpty }) else { return nil }
        var opened: [AccessLogDestination] = []
        do throws(AccessLogError) {
            for k in keys { opened.append(try AccessLogDestination(k)) }
        } catch {
            for s in opened { s.stop() }
            throw error
        }
        self.proxy = proxy
        self.loggers = perListener
        self.sinks = opened
        self.capture = capture
        self.planes = planes
        var real = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        let wall = Int64(real.tv_sec) * 1_000_000_000 + Int64(real.tv_nsec)
        wallOffsetNanos = wall - monotonicNanos()
        let handle = LoopThread.start(name: "access-log-drain", cpu: nil) { [self] in self.run() }
        thread.withLock { $0 = handle }
    }

    /// Lines dropped: full worker rings plus full destination buffers (`access_log.dropped`).
    public var dropped: Int {
        var n = sinks.reduce(0) { $0 + $1.dropped.load(ordering: .relaxed) }
        for rings in proxy.accessRings { for r in rings { n += r.dropped.load(ordering: Synchronization.AtomicLoadOrdering.relaxed) } }
        return n
    }

    /// SIGUSR1.
    public func reopen() { for s in sinks { s.requestReopen() } }

    /// Records taken out of the rings so far.
    public var recordsDrained: Int { drained.load(ordering: .relaxed) }

    /// A batch handed to a destination once it holds this many bytes (else at the end of a pass).
    static var batchBytes: Int { 256 << 10 }
    /// How long the log and writer threads sleep when they found nothing to do. Each wake-up costs
    /// a timer and a context switch (dearer in a VM), so not too often; a worker's ring (4,096
    /// records) fills in 10 ms only above ~400,000 requests/s on that worker.
    static var pauseMicros: Int { 10_000 }

    /// The log thread: drains every ring, formats each record with its listener's formats into
    /// one batch per destination, and hands the batches over once per pass.
    private func run() {
        let fields = AccessLogFields(capture)
        // A record's listener index is its plane's; the bound port is the running slot's (the
        // last one of that name and address: a listener moved back and forth is the newest).
        let line = AccessLogLine(fields: fields, boundAddress: { [proxy] l in
            proxy.runs.last { $0.bound.name == l.name && $0.bound.address.description == l.address.description }
                .map { Array("\($0.bound.address.host):\($0.bound.port)".utf8) }
        }, planes: planes)
        let formatters = loggers.map { chains in chains.map { list in list.map { (AccessLogFormatter($0.program), $0.sink) } } }
        let batches = sinks.map { _ in AccessLogBytes(capacity: Self.batchBytes + 4096) }
        var lines = [Int](repeating: 0, count: sinks.count)
        func hand(_ sink: Int) {
            guard lines[sink] > 0 else { return }
            sinks[sink].append(batches[sink].bytes, lines: lines[sink])
            batches[sink].count = 0
            lines[sink] = 0
        }
        while true {
            let stopping = stopFlag.load(ordering: .acquiring)
            var taken = 0
            for (li, rings) in proxy.accessRings.enumerated() {
                let chains = li < formatters.count ? formatters[li] : []
                for ring in rings {
                    while ring.pop({ r, captured in
                        let chain = Int(r.chain)
                        guard chain < chains.count, !chains[chain].isEmpty else { return }
                        let list = chains[chain]
                        line.load(r, captured: captured, wallOffsetNanos: wallOffsetNanos)
                        for (formatter, sink) in list {
                            formatter.line(line, into: batches[sink])
                            lines[sink] += 1
                            if batches[sink].count >= Self.batchBytes { hand(sink) }
                        }
                    }) != nil {
                        taken += 1
                    }
                }
            }
            for sink in sinks.indices { hand(sink) }
            if taken > 0 { drained.add(taken, ordering: .releasing) }
            if taken == 0 {
                if stopping { return }
                usleep(UInt32(Self.pauseMicros))
            }
        }
    }

    /// Waits (up to `timeoutNanos`) until every record pushed so far is formatted and written.
    public func flush(timeoutNanos: Int64 = 5_000_000_000) {
        let deadline = monotonicNanos() + timeoutNanos
        while monotonicNanos() < deadline {
            var pushed = 0
            for rings in proxy.accessRings { for r in rings { pushed += r.pushed } }
            if drained.load(ordering: .acquiring) >= pushed && sinks.allSatisfy({ $0.pendingBytes == 0 }) { return }
            usleep(1_000)
        }
    }

    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        thread.withLock { $0 }?.join()
        for s in sinks { s.stop() }
    }
}
