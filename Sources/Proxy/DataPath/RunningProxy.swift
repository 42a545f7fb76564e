import Balancers
import EventLoop
import Glibc
import Synchronization

/// One listener's worker group and what the admin, log and main threads read of it. A slot's
/// index in `RunningProxy.runs` never changes: the watchdog keeps per-slot tables, the access-log
/// and span threads keep its rings, and a removed listener's slot stays (stopped) so theirs stay
/// valid and its last records are still drained.
public final class ListenerRun: Sendable {
    public let slot: Int
    public let bound: RunningProxy.BoundListener
    /// Per worker.
    public let stats: [DataPathStats]
    /// Per worker (empty unless access logs record).
    public let accessRings: [AccessRecordRing]
    /// Per worker: sampled spans for the Zipkin reporter (empty without `tracing`).
    public let traceRings: [AccessRecordRing]
    /// The listener's tracing when it started: where the reporter sends its spans once no
    /// running listener has its name (removed, draining).
    let tracing: TracingPlan?
    let group: WorkerGroup<ProxyMessage>

    init(slot: Int, bound: RunningProxy.BoundListener, stats: [DataPathStats], accessRings: [AccessRecordRing],
         traceRings: [AccessRecordRing], tracing: TracingPlan?, group: WorkerGroup<ProxyMessage>) {
        self.slot = slot
        self.bound = bound
        self.stats = stats
        self.accessRings = accessRings
        self.traceRings = traceRings
        self.tracing = tracing
        self.group = group
    }

    /// Open downstream connections over the listener's workers.
    var activeConnections: Int { stats.reduce(0) { $0 + $1.downstreamCxActive.load(ordering: .relaxed) } }
}

/// Where a listener slot is in its life: serving, draining after an update removed it (Envoy's
/// listener drain: no accepts, `connection: close`, closed at the end of the drain time), or
/// stopped (threads joined, sockets closed; its counters still add to the clusters' figures).
public enum ListenerPhase: Sendable {
    case active
    /// `plan` is the listener as it was last published (its stats layout).
    case draining(sinceNanos: Int64, plan: ListenerPlan)
    case stopped
}

/// A running proxy: one worker group per listener. The set of listeners changes when an update
/// adds or removes one (main or admin thread, under `ProxyOps.reloadLock`); readers take a copy
/// of the slot table under a lock, never per request.
public final class RunningProxy: Sendable {
    public struct BoundListener: Sendable {
        public let name: String
        public let address: SocketAddress
        /// The bound port (the kernel's choice when the config says 0).
        public let port: Int
        public let balance: BalanceSpec

        /// The line printed when the listener starts serving (at start, or added by an update);
        /// `note` ends the parenthesis (the open-file limit, or how it was added).
        public func listeningLine(workers: Int, io: IOBackendKind, note: String) -> String {
            "ballast proxy listening on \(address.host):\(port) (listener \(name), workers \(workers), io \(io.rawValue), balance \(balance), \(note))"
        }
    }

    /// Starts a listener's group on the running backend: (listener, plane, generation, slot, the
    /// request fields its workers record for the access log; nil: no records).
    typealias Starter = @Sendable (ListenerPlan, DataPlane, UInt32, Int, AccessLogCapture?) throws(ProxyRuntime.StartError) -> ListenerRun

    public let backend: IOBackendKind
    /// The plane the proxy started with.
    public let plane: DataPlane
    /// The active health checker (nil when no cluster has health checks).
    public let healthChecker: HealthChecker?
    /// udp_proxy listeners, in `plane.udpListeners` order.
    public let udpProxies: [UDPProxy]
    /// Workers per listener.
    public let workersPerListener: Int
    private let slots: Mutex<[(run: ListenerRun, phase: ListenerPhase)]>
    /// How many slots there are (grows when an update adds a listener): the log and span threads
    /// compare it once per pass and take the slot table only when it moved.
    let slotCount = Atomic<Int>(0)
    private let starter: Starter

    init(backend: IOBackendKind, plane: DataPlane, runs: [ListenerRun], workers: Int, healthChecker: HealthChecker?,
         udpProxies: [UDPProxy], starter: @escaping Starter) {
        self.healthChecker = healthChecker
        self.udpProxies = udpProxies
        self.backend = backend
        self.plane = plane
        self.workersPerListener = workers
        self.starter = starter
        slots = Mutex(runs.map { ($0, .active) })
        slotCount.store(runs.count, ordering: .releasing)
    }

    // MARK: reading (admin, log and main threads)

    /// Every slot ever started, by slot index, with its phase.
    public var slotTable: [(run: ListenerRun, phase: ListenerPhase)] { slots.withLock { $0 } }

    /// Every slot ever started, by slot index.
    public var runs: [ListenerRun] { slots.withLock { $0.map(\.run) } }

    /// The listeners serving now (the configuration's set), in slot order.
    public var activeRuns: [ListenerRun] {
        slots.withLock { table in
            var list: [ListenerRun] = []
            for s in table { if case .active = s.phase { list.append(s.run) } }
            return list
        }
    }

    /// The listeners serving now.
    public var listeners: [BoundListener] { activeRuns.map(\.bound) }

    /// Per slot, per worker: every listener's counters, removed ones included (cluster figures).
    public var stats: [[DataPathStats]] { runs.map(\.stats) }
    /// The counters of listeners whose workers still run (active or draining).
    public var unstoppedStats: [[DataPathStats]] {
        slots.withLock { table in
            table.compactMap { s -> [DataPathStats]? in
                if case .stopped = s.phase { return nil }
                return s.run.stats
            }
        }
    }
    /// Per slot, per worker (when `recordAccess`).
    public var accessRings: [[AccessRecordRing]] { runs.map(\.accessRings) }
    /// Per slot, per worker: sampled spans.
    public var traceRings: [[AccessRecordRing]] { runs.map(\.traceRings) }

    /// Listeners active and draining (Envoy's `total_listeners_active` / `_draining`).
    public var listenerCounts: (active: Int, draining: Int) {
        slots.withLock { table in
            var a = 0, d = 0
            for s in table {
                switch s.phase {
                case .active: a += 1
                case .draining: d += 1
                case .stopped: break
                }
            }
            return (a, d)
        }
    }

    /// The bound port of the active listener named `name`.
    public func port(of name: String) -> Int? { listeners.first { $0.name == name }?.port }

    /// Worker loads (connections, requests in flight) of slot `i`.
    public func loads(ofListener i: Int) -> WorkerLoads { slots.withLock { $0[i].run.group.loads } }

    /// Loop counters (turns, busy, idle) of slot `i`'s workers.
    public func loopStats(ofListener i: Int) -> [LoopStats] { slots.withLock { $0[i].run.group.loopStats } }

    // MARK: messages

    /// Posts `message` to every worker of every active listener (and of draining ones with
    /// `draining`: a server drain; a reload's snapshot goes to active listeners only).
    public func postToWorkers(includingDraining draining: Bool = true, _ message: @autoclosure () -> ProxyMessage) {
        for s in slotTable {
            switch s.phase {
            case .active: break
            case .draining: if !draining { continue }
            case .stopped: continue
            }
            for m in s.run.group.mailboxes { m.post(message()) }
        }
    }

    /// Posts `message` to worker `worker` of slot `i` (test hooks).
    public func post(_ message: ProxyMessage, listener i: Int, worker: Int) { slots.withLock { $0[i].run }.group.mailboxes[worker].post(message) }

    /// Wakes worker `worker` of slot `i` for one loop turn (the watchdog's touch).
    public func wake(listener i: Int, worker: Int) { slots.withLock { $0[i].run }.group.mailboxes[worker].wake() }

    // MARK: changing the set (under ProxyOps.reloadLock)

    /// Binds and starts `listener` of `plane` (its workers serve under `generation`) in a new
    /// slot; with `capture` its workers record finished requests for the access log.
    func addListener(_ listener: ListenerPlan, plane: DataPlane, generation: UInt32,
                     capture: AccessLogCapture?) throws(ProxyRuntime.StartError) -> ListenerRun {
        let slot = slots.withLock { $0.count }
        let run = try starter(listener, plane, generation, slot, capture)
        let count = slots.withLock { table -> Int in
            table.append((run, .active))
            return table.count
        }
        slotCount.store(count, ordering: .releasing)
        return run
    }

    /// Stops a slot started by `addListener` whose update was not published after all.
    func discard(_ run: ListenerRun) {
        run.group.stop()
        slots.withLock { $0[run.slot].phase = .stopped }
    }

    /// Envoy's listener drain for a listener an update removed: its sockets stop accepting now
    /// (new connections are refused), its workers answer `connection: close` and close idle
    /// connections; `finishDrains` stops it when the drain time is over.
    func beginDrain(slot: Int, plan: ListenerPlan, now: Int64 = monotonicNanos()) {
        let run = slots.withLock { s -> ListenerRun in
            s[slot].phase = .draining(sinceNanos: now, plan: plan)
            return s[slot].run
        }
        run.group.shutdownListeners()
        for m in run.group.mailboxes { m.post(.drain) }
    }

    /// Stops the draining listeners whose drain time is over (their last connections close);
    /// returns them. Main thread.
    func finishDrains(drainTimeNanos: Int64, now: Int64 = monotonicNanos()) -> [ListenerRun] {
        let due = slots.withLock { table -> [ListenerRun] in
            var due: [ListenerRun] = []
            for i in table.indices {
                if case .draining(let since, _) = table[i].phase, now - since >= drainTimeNanos {
                    due.append(table[i].run)
                    table[i].phase = .stopped
                }
            }
            return due
        }
        for run in due { run.group.stop() }
        return due
    }

    /// Stops every worker (connections close) and waits for them.
    public func stop() {
        healthChecker?.stop()
        for u in udpProxies { u.stop() }
        let running = slots.withLock { table -> [ListenerRun] in
            var list: [ListenerRun] = []
            for s in table {
                if case .stopped = s.phase { continue }
                list.append(s.run)
            }
            for i in table.indices { table[i].phase = .stopped }
            return list
        }
        for run in running { run.group.stop() }
    }
}
