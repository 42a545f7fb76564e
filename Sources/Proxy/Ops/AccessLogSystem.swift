import EventLoop
import Glibc
import Synchronization

/// The access logs of a running proxy: one thread takes the records out of every recording
/// listener's worker rings (the rings' single consumer), formats them with that listener's
/// access-log formats and hands the lines to the destinations' writer threads.
///
/// The set of listeners changes when an update adds one (`prepare`, then `add`): the table below
/// grows under a lock and its version moves; the log thread takes a copy only when the version
/// changed, never per record. A removed listener's entry stays, so its last records (requests
/// that finish while it drains) are still written with its own formats.
public final class AccessLogSystem: Sendable {
    struct Logger: Sendable {
        let program: AccessLogProgram
        let sink: Int
    }

    /// One recording listener slot: its workers' rings, its formats per filter chain, and the
    /// request fields its records carry.
    struct Entry: Sendable {
        let rings: [AccessRecordRing]
        let chains: [[Logger]]
        let capture: AccessLogCapture
    }

    /// The loggers of listeners an update adds, compiled and their new destinations opened
    /// before the listeners start (a file that cannot be opened rejects the update).
    public struct Prepared: Sendable {
        /// Per added listener name that logs: its formats per chain and its capture.
        let listeners: [String: (chains: [[Logger]], capture: AccessLogCapture)]
        /// Destinations opened for them, in the sink order after the running ones.
        let opened: [AccessLogDestination]
        let keys: [AccessLogSinkKey]

        /// The request fields listener `name`'s workers record (nil: it has no access log).
        func capture(for name: String) -> AccessLogCapture? { listeners[name]?.capture }
    }

    private struct Table {
        var entries: [Entry] = []
        var sinks: [AccessLogDestination] = []
        var keys: [AccessLogSinkKey] = []
    }

    private let proxy: RunningProxy
    private let table: Mutex<Table>
    /// Moves whenever `table` grows (read by the log thread once per pass).
    private let version = Atomic<Int>(0)
    private let planes: @Sendable (UInt32) -> DataPlane
    private let wallOffsetNanos: Int64
    private let stopFlag = Atomic<Bool>(false)
    private let drained = Atomic<Int>(0)
    private let thread = Mutex<LoopThread.Handle?>(nil)

    /// Opens every destination of `bootstrap`'s access logs and, when a listener records, starts
    /// the log thread (else the first listener added with an access log starts it).
    init(bootstrap: Bootstrap, proxy: RunningProxy, capture: AccessLogCapture,
         planes: @escaping @Sendable (UInt32) -> DataPlane) throws(AccessLogError) {
        var keys: [AccessLogSinkKey] = []
        var entries: [Entry] = []
        for run in proxy.runs where !run.accessRings.isEmpty {
            guard let l = bootstrap.listeners.first(where: { $0.name == run.bound.name }) else { continue }
            entries.append(Entry(rings: run.accessRings, chains: Self.loggers(l, capture: capture, keys: &keys), capture: capture))
        }
        var opened: [AccessLogDestination] = []
        do throws(AccessLogError) {
            for k in keys { opened.append(try AccessLogDestination(k)) }
        } catch {
            for s in opened { s.stop() }
            throw error
        }
        self.proxy = proxy
        self.planes = planes
        table = Mutex(Table(entries: entries, sinks: opened, keys: keys))
        var real = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        let wall = Int64(real.tv_sec) * 1_000_000_000 + Int64(real.tv_nsec)
        wallOffsetNanos = wall - monotonicNanos()
        if !keys.isEmpty && !entries.isEmpty { startThread() }
    }

    /// Listener `l`'s formats per filter chain, compiled for `capture`; their destinations'
    /// keys are added to `keys` (a logger's sink is its key's index).
    private static func loggers(_ l: ListenerConfig, capture: AccessLogCapture, keys: inout [AccessLogSinkKey]) -> [[Logger]] {
        var perChain: [[Logger]] = []
        for configs in l.accessLogsPerChain {
            var list: [Logger] = []
            for c in configs {
                let key = AccessLogSinkKey(c.sink)
                if !keys.contains(key) { keys.append(key) }
                list.append(Logger(program: AccessLogProgram(c.format, omitEmptyValues: c.omitEmptyValues, capture: capture),
                                   sink: keys.firstIndex(of: key)!))
            }
            perChain.append(list)
        }
        return perChain
    }

    private func startThread() {
        thread.withLock { handle in
            guard handle == nil else { return }
            handle = LoopThread.start(name: "access-log-drain", cpu: nil) { [self] in self.run() }
        }
    }

    // MARK: listeners added by an update (under ProxyOps.reloadLock)

    /// Compiles the access logs of `added` (listeners an update adds), each against the request
    /// fields of its own formats, and opens the destinations not open yet.
    func prepare(_ added: [ListenerConfig]) throws(AccessLogError) -> Prepared {
        var keys = table.withLock { $0.keys }
        let running = keys.count
        var listeners: [String: (chains: [[Logger]], capture: AccessLogCapture)] = [:]
        var opened: [AccessLogDestination] = []
        for l in added {
            let capture = AccessLogCapture(listeners: [l])
            let chains = Self.loggers(l, capture: capture, keys: &keys)
            guard chains.contains(where: { !$0.isEmpty }) else { continue }
            listeners[l.name] = (chains, capture)
            do throws(AccessLogError) {
                for k in keys[(running + opened.count)...] { opened.append(try AccessLogDestination(k)) }
            } catch {
                for s in opened { s.stop() }
                throw AccessLogError(description: "listener '\(l.name)': \(error.description)")
            }
        }
        let newKeys = Array(keys[running...])
        return Prepared(listeners: listeners, opened: opened, keys: newKeys)
    }

    /// The update was not applied: closes what `prepare` opened.
    func abandon(_ prepared: Prepared) {
        for s in prepared.opened { s.stop() }
    }

    /// The added listeners started (`runs`): the log thread drains their rings from its next pass.
    func add(_ prepared: Prepared, runs: [ListenerRun]) {
        guard !prepared.listeners.isEmpty else { return }
        var any = false
        table.withLock { t in
            t.sinks += prepared.opened
            t.keys += prepared.keys
            for run in runs where !run.accessRings.isEmpty {
                guard let l = prepared.listeners[run.bound.name] else { continue }
                t.entries.append(Entry(rings: run.accessRings, chains: l.chains, capture: l.capture))
                any = true
            }
        }
        version.add(1, ordering: .releasing)
        if any { startThread() }
    }

    // MARK: reading

    private var snapshot: Table { table.withLock { $0 } }

    /// Lines dropped: full worker rings plus full destination buffers (`access_log.dropped`).
    public var dropped: Int {
        let t = snapshot
        var n = t.sinks.reduce(0) { $0 + $1.dropped.load(ordering: .relaxed) }
        for e in t.entries { for r in e.rings { n += r.dropped.load(ordering: Synchronization.AtomicLoadOrdering.relaxed) } }
        return n
    }

    /// SIGUSR1.
    public func reopen() { for s in snapshot.sinks { s.requestReopen() } }

    /// Records taken out of the rings so far.
    public var recordsDrained: Int { drained.load(ordering: .relaxed) }

    /// A batch handed to a destination once it holds this many bytes (else at the end of a pass).
    static var batchBytes: Int { 256 << 10 }
    /// How long the log and writer threads sleep when they found nothing to do. Each wake-up costs
    /// a timer and a context switch (dearer in a VM), so not too often; a worker's ring (4,096
    /// records) fills in 10 ms only above ~400,000 requests/s on that worker.
    static var pauseMicros: Int { 10_000 }

    /// The log thread's view of one entry: formatters it owns and the line its capture reads.
    private struct Drain {
        let rings: [AccessRecordRing]
        let chains: [[(AccessLogFormatter, Int)]]
        let capture: AccessLogCapture
        let line: AccessLogLine
    }

    /// The log thread: drains every ring, formats each record with its listener's formats into
    /// one batch per destination, and hands the batches over once per pass.
    private func run() {
        // A record's listener index is its plane's; the bound port is the running slot's (the
        // last one of that name and address: a listener moved back and forth is the newest).
        let boundAddress: (ListenerPlan) -> [UInt8]? = { [proxy] l in
            proxy.runs.last { $0.bound.name == l.name && $0.bound.address.description == l.address.description }
                .map { Array("\($0.bound.address.host):\($0.bound.port)".utf8) }
        }
        var drains: [Drain] = []
        var sinks: [AccessLogDestination] = []
        var batches: [AccessLogBytes] = []
        var lines: [Int] = []
        var seen = -1
        func refresh() {
            let t = snapshot
            sinks = t.sinks
            while batches.count < sinks.count {
                batches.append(AccessLogBytes(capacity: Self.batchBytes + 4096))
                lines.append(0)
            }
            for e in t.entries[drains.count...] {
                // Entries with the same capture (the listeners of the start) share one line.
                let line = drains.first { $0.capture === e.capture }?.line
                    ?? AccessLogLine(fields: AccessLogFields(e.capture), boundAddress: boundAddress, planes: planes)
                drains.append(Drain(rings: e.rings, chains: e.chains.map { list in list.map { (AccessLogFormatter($0.program), $0.sink) } },
                                    capture: e.capture, line: line))
            }
        }
        func hand(_ sink: Int) {
            guard lines[sink] > 0 else { return }
            sinks[sink].append(batches[sink].bytes, lines: lines[sink])
            batches[sink].count = 0
            lines[sink] = 0
        }
        while true {
            let stopping = stopFlag.load(ordering: .acquiring)
            let v = version.load(ordering: .acquiring)
            if v != seen {
                refresh()
                seen = v
            }
            var taken = 0
            for d in drains {
                let chains = d.chains
                let line = d.line
                for ring in d.rings {
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
            let t = snapshot
            var pushed = 0
            for e in t.entries { for r in e.rings { pushed += r.pushed } }
            if drained.load(ordering: .acquiring) >= pushed && t.sinks.allSatisfy({ $0.pendingBytes == 0 }) { return }
            usleep(1_000)
        }
    }

    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        thread.withLock { $0 }?.join()
        for s in snapshot.sinks { s.stop() }
    }
}
