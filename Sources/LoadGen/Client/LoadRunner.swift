import EventLoop
import Glibc
import Synchronization

/// A finished run: the merged tally and what is needed to report it.
public struct LoadResult {
    public var options: LoadOptions
    public var tally: LoadTally
    /// Event-loop threads used, and the backend they ran.
    public var threads: Int
    public var backend: IOBackendKind
    /// Wall-clock time of the start (CLOCK_REALTIME).
    public var startSeconds: Int
    public var startNanosecond: Int
    /// From the end of the warm-up to the end of the last call, ns.
    public var actualDurationNanos: Int64
    /// Stopped by SIGINT/SIGTERM, or by `-abort-on`.
    public var interrupted: Bool
    public var aborted: Bool
    /// CPU time (user + system) of this process during the run, ns.
    public var cpuNanos: Int64
    /// CPU time of this process over the measured window only (warm-up excluded), ns.
    public var measuredCPUNanos: Int64 = 0

    public var calls: Int { tally.calls }

    public var actualQPS: Double {
        actualDurationNanos > 0 ? Double(tally.calls) / (Double(actualDurationNanos) / 1e9) : 0
    }
}

/// Why a run could not start.
public struct LoadStartError: Error, CustomStringConvertible {
    public let description: String
}

/// Runs `ballast load`: starts the load threads, shows progress, waits, merges their tallies.
public enum LoadRunner {
    /// Open loop: the schedule starts this long after the threads are launched, so every thread is
    /// ready for its first intended send time.
    static var leadNanos: Int64 { 20_000_000 }

    /// Runs the load described by `options`. `progress`: draw a progress line on stderr.
    /// Call from the main thread; SIGINT/SIGTERM stop the run early (the summary still follows).
    public static func run(_ options: LoadOptions, progress: Bool) throws(LoadStartError) -> LoadResult {
        let choice: BackendSelection.Choice
        do { choice = try BackendSelection.resolve(options.io) } catch { throw LoadStartError(description: error.description) }
        if let note = choice.note { Log.info(note) }
        switch choice.kind {
        case .ioUring: return try run(options, progress: progress, IoUringBackend.self)
        default: return try run(options, progress: progress, EpollBackend.self)
        }
    }

    /// The connection range and request budget of each thread.
    static func plans(_ options: LoadOptions, threads: Int, startNanos: Int64) -> [LoadWorkerPlan] {
        let c = options.connections
        let measureStart = startNanos + options.warmupNanos
        let end: Int64 = options.exactly > 0 || options.durationNanos <= 0 ? Int64.max : measureStart + options.durationNanos
        let interval: Int64 = options.qps > 0 ? max(1, Int64((Double(c) / options.qps * 1e9).rounded())) : 0
        var plans: [LoadWorkerPlan] = []
        var first = 0
        for t in 0..<threads {
            let n = c / threads + (t < c % threads ? 1 : 0)
            var budget = 0
            if options.exactly > 0 {
                // Split by connections so each thread's share matches its load.
                let before = options.exactly * first / c
                let after = options.exactly * (first + n) / c
                budget = after - before
            }
            plans.append(LoadWorkerPlan(
                index: t, firstConnection: first, connectionCount: n, totalConnections: c,
                budget: options.exactly > 0 ? budget : 0, startNanos: startNanos, measureStartNanos: measureStart,
                endNanos: end, intervalNanos: interval, timeoutNanos: options.timeoutNanos,
                uniform: options.uniform, jitter: options.jitter, rampNanos: options.rampNanos, abortOn: options.abortOn, seed: options.seed))
            first += n
        }
        return plans
    }

    private static func run<B: IOBackend>(_ options: LoadOptions, progress: Bool, _: B.Type) throws(LoadStartError) -> LoadResult {
        let threads = options.resolvedThreads
        let (limit, note) = FileLimit.raise(to: UInt64(options.connections + 256))
        if let note { Log.warning(note) }
        if limit < UInt64(options.connections + 32) {
            throw LoadStartError(description: "open-file limit \(limit) is too low for \(options.connections) connections")
        }
        Signals.blockTermination()
        var mailboxes: [Mailbox<LoadMessage>] = []
        do {
            for _ in 0..<threads { mailboxes.append(try Mailbox<LoadMessage>()) }
        } catch {
            throw LoadStartError(description: "cannot create a mailbox: \(error)")
        }
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        let cpuBefore = processCPUNanos()
        let startNanos = monotonicNanos() + (options.qps > 0 ? leadNanos : 0)
        let plans = plans(options, threads: threads, startNanos: startNanos)
        let control = LoadRunControl()
        let shared = (0..<threads).map { _ in LoadWorkerShared() }
        var handles: [LoopThread.Handle] = []
        for t in 0..<threads {
            let plan = plans[t]
            let mailbox = mailboxes[t]
            let box = shared[t]
            var sizes = options.backend
            sizes.receiveBufferCount = Self.receiveBuffers(connections: plan.connectionCount)
            let backendOptions = sizes
            handles.append(LoopThread.start(name: "load-\(t)", cpu: CPUList.cpu(forWorker: t, in: options.cpus)) {
                let loop: EventLoop<B, LoadMessage>
                do {
                    loop = try EventLoop<B, LoadMessage>(index: t, options: backendOptions, mailbox: mailbox)
                } catch {
                    box.failure = "load thread \(t): \(B.kind.rawValue) backend failed: \(error)"
                    box.state.store(-1, ordering: .releasing)
                    return
                }
                let worker = LoadWorker<B>(plan: plan, options: options, shared: box, control: control)
                box.state.store(1, ordering: .releasing)
                worker.begin(loop: loop)
                loop.run(worker)
            })
        }
        var interrupted = false
        var stopSent = false
        // The measured window's CPU time, and a stderr marker at each end of it, so a sweep can
        // sample the system under test over the same window (warm-up excluded).
        let windowStart = startNanos + options.warmupNanos
        var cpuAtWindowStart: Int64? = nil
        let reporter = progress ? ProgressLine(options: options, measureStart: startNanos + options.warmupNanos) : nil
        while true {
            if shared.allSatisfy({ $0.done.load(ordering: .acquiring) || $0.state.load(ordering: .acquiring) == -1 }) { break }
            if cpuAtWindowStart == nil && monotonicNanos() >= windowStart {
                cpuAtWindowStart = processCPUNanos()
                Log.info(LoadRunner.windowStartMarker)
            }
            let untilWindow = cpuAtWindowStart == nil ? max(1_000_000, windowStart - monotonicNanos()) : 100_000_000
            if let signal = waitForSignal(nanos: min(100_000_000, untilWindow)) {
                if !interrupted { Log.info("stopping on signal \(signal)") }
                interrupted = true
            }
            if (interrupted || control.abortRequested.load(ordering: .acquiring)) && !stopSent {
                stopSent = true
                for m in mailboxes { m.post(.stop) }
            }
            reporter?.draw(calls: shared.reduce(0) { $0 + $1.calls.load(ordering: .relaxed) },
                           errors: shared.reduce(0) { $0 + $1.errors.load(ordering: .relaxed) })
        }
        reporter?.clear()
        let endNanos = monotonicNanos()
        let cpuAtWindowEnd = processCPUNanos()
        Log.info(LoadRunner.windowEndMarker)
        for m in mailboxes { m.requestStop() }
        for h in handles { h.join() }
        let cpuNanos = processCPUNanos() - cpuBefore
        if let failure = shared.compactMap({ $0.failure }).first {
            throw LoadStartError(description: failure)
        }
        var merged = LoadTally(connections: 0, resolution: options.resolution)
        for s in shared { if let t = s.tally { merged.merge(t) } }
        let measureStart = startNanos + options.warmupNanos
        let lastEvent = merged.lastCompletionNanos > 0 ? merged.lastCompletionNanos : endNanos
        return LoadResult(
            options: options, tally: merged, threads: threads, backend: B.kind,
            startSeconds: Int(wall.tv_sec), startNanosecond: Int(wall.tv_nsec),
            actualDurationNanos: max(0, lastEvent - measureStart), interrupted: interrupted,
            aborted: merged.aborted, cpuNanos: cpuNanos,
            measuredCPUNanos: cpuAtWindowStart.map { cpuAtWindowEnd - $0 } ?? 0)
    }

    /// stderr lines at the start and the end of the measured window (after the warm-up).
    public static let windowStartMarker = "measured window starts"
    public static let windowEndMarker = "measured window ends"


    /// Receive buffers per thread: about one per connection, a power of two in 256...1024.
    static func receiveBuffers(connections: Int) -> Int {
        var n = 256
        while n < connections && n < 1024 { n *= 2 }
        return n
    }

    /// Waits up to `nanos` for SIGINT/SIGTERM/SIGHUP (blocked in every thread); nil on timeout.
    static func waitForSignal(nanos: Int64) -> Int32? {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        var timeout = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
        let signal = sigtimedwait(&set, nil, &timeout)
        return signal > 0 ? signal : nil
    }
}

/// The one-line progress display on a terminal (stderr): elapsed/remaining, QPS so far, errors.
final class ProgressLine {
    let options: LoadOptions
    let measureStart: Int64
    var lastDraw: Int64 = 0
    var lastCalls = 0
    var lastNanos: Int64 = 0

    init(options: LoadOptions, measureStart: Int64) {
        self.options = options
        self.measureStart = measureStart
    }

    func draw(calls: Int, errors: Int) {
        let now = monotonicNanos()
        guard now - lastDraw >= 500_000_000 else { return }
        let qps = lastNanos > 0 ? Double(calls - lastCalls) / (Double(now - lastNanos) / 1e9) : 0
        lastDraw = now
        lastCalls = calls
        lastNanos = now
        let elapsed = Double(now - measureStart) / 1e9
        var text = "\r\u{1B}[K"
        if elapsed < 0 {
            text += "warming up, \(LoadFormat.c("%.1f", -elapsed))s left"
        } else if options.exactly > 0 {
            text += "\(LoadFormat.c("%.1f", elapsed))s, \(calls)/\(options.exactly) calls"
        } else if options.durationNanos > 0 {
            let total = Double(options.durationNanos) / 1e9
            text += "\(LoadFormat.c("%.1f", elapsed))s of \(LoadFormat.g(total))s, \(LoadFormat.c("%.1f", max(0, total - elapsed)))s left"
        } else {
            text += "\(LoadFormat.c("%.1f", elapsed))s (until interrupted)"
        }
        text += ", \(LoadFormat.c("%.0f", qps)) qps, \(calls) calls, \(errors) errors"
        write(text)
    }

    func clear() { write("\r\u{1B}[K") }

    private func write(_ text: String) {
        var t = text
        t.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
