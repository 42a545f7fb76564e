import Balancers
import EventLoop
import Glibc

/// What the command line adds to a bootstrap for the data path.
public struct ProxyRuntimeOptions: Sendable {
    /// Workers per listener (`--concurrency`).
    public var concurrency = 2
    /// I/O backend (`--io`), resolved with `BackendSelection`.
    public var io: IOBackendKind = .auto
    /// `--balance`: overrides every listener's accept strategy.
    public var balanceOverride: BalanceSpec?
    /// `--cpus`: worker i is pinned to the i-th CPU (round robin); empty: no pinning.
    public var cpus: [Int] = []
    /// `--drain-time-s` in nanoseconds (used by the drain of issue 5).
    public var drainTimeNanos: Int64 = 600_000_000_000
    /// Adds `x-ballast-response-flags` to every response (debug logging, tests).
    public var debugResponseFlags = false
    /// Keep each worker's finished-request records in a ring (`RunningProxy.accessRings`) for an
    /// access-log writer.
    public var recordAccess = false
    /// Request fields each record carries for the access log; nil with `recordAccess`: what the
    /// bootstrap's access-log formats use.
    public var capture: AccessLogCapture?
    /// Receive-buffer and batch sizes of each worker's backend.
    public var backend = BackendOptions()

    public init() {}

    /// From the command line's options (`ProxyOptions`): debug flags with `-l debug` or `trace`.
    public init(_ o: ProxyOptions) {
        concurrency = o.concurrency
        io = o.io
        balanceOverride = o.balanceOverride
        cpus = o.cpus
        drainTimeNanos = o.drainTimeNanos
        debugResponseFlags = o.logLevel <= .debug
    }
}

/// A running proxy: one worker group per listener.
public final class RunningProxy: Sendable {
    public struct BoundListener: Sendable {
        public let name: String
        public let address: SocketAddress
        /// The bound port (the kernel's choice when the config says 0).
        public let port: Int
        public let balance: BalanceSpec
    }

    public let backend: IOBackendKind
    public let plane: DataPlane
    public let listeners: [BoundListener]
    /// Per listener, per worker.
    public let stats: [[DataPathStats]]
    /// Per listener, per worker (when `recordAccess`).
    public let accessRings: [[AccessRecordRing]]
    /// Per listener, per worker: sampled spans for the Zipkin reporter (empty without `tracing`).
    public let traceRings: [[AccessRecordRing]]
    /// The active health checker (nil when no cluster has health checks).
    public let healthChecker: HealthChecker?
    /// udp_proxy listeners, in `plane.udpListeners` order.
    public let udpProxies: [UDPProxy]
    private let groups: [WorkerGroup<ProxyMessage>]

    init(backend: IOBackendKind, plane: DataPlane, listeners: [BoundListener], stats: [[DataPathStats]],
         accessRings: [[AccessRecordRing]], traceRings: [[AccessRecordRing]], groups: [WorkerGroup<ProxyMessage>], healthChecker: HealthChecker?,
         udpProxies: [UDPProxy] = []) {
        self.healthChecker = healthChecker
        self.traceRings = traceRings
        self.udpProxies = udpProxies
        self.backend = backend
        self.plane = plane
        self.listeners = listeners
        self.stats = stats
        self.accessRings = accessRings
        self.groups = groups
    }

    /// The bound port of the listener named `name`.
    public func port(of name: String) -> Int? { listeners.first { $0.name == name }?.port }

    /// Worker loads (connections, requests in flight) of listener `i`.
    public func loads(ofListener i: Int) -> WorkerLoads { groups[i].loads }

    /// Loop counters (turns, busy, idle) of listener `i`'s workers.
    public func loopStats(ofListener i: Int) -> [LoopStats] { groups[i].loopStats }

    /// Posts `message` to every worker of every listener (reload, drain).
    public func postToWorkers(_ message: @autoclosure () -> ProxyMessage) {
        for g in groups { for m in g.mailboxes { m.post(message()) } }
    }

    /// Posts `message` to worker `worker` of listener `i` (test hooks).
    public func post(_ message: ProxyMessage, listener i: Int, worker: Int) { groups[i].mailboxes[worker].post(message) }

    /// Wakes worker `worker` of listener `i` for one loop turn (the watchdog's touch).
    public func wake(listener i: Int, worker: Int) { groups[i].mailboxes[worker].wake() }

    /// Stops every worker (connections close) and waits for them.
    public func stop() {
        healthChecker?.stop()
        for u in udpProxies { u.stop() }
        for g in groups { g.stop() }
    }
}

/// Starts the data path for a bootstrap: for each listener a `WorkerGroup` of `ProxyWorker`s
/// with the listener's (or the overriding) accept strategy, on the chosen I/O backend.
public enum ProxyRuntime {
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Binds every listener and returns once every worker serves; on failure everything started
    /// is stopped again and the error names the cause.
    public static func start(_ bootstrap: Bootstrap, options: ProxyRuntimeOptions) throws(StartError) -> RunningProxy {
        let choice: BackendSelection.Choice
        do { choice = try BackendSelection.resolve(options.io) } catch { throw StartError(description: error.description) }
        if let note = choice.note { Log.info(note) }
        var options = options
        if options.recordAccess && options.capture == nil { options.capture = AccessLogCapture(bootstrap) }
        let plane: DataPlane
        do { plane = try DataPlane.compile(bootstrap) } catch { throw StartError(description: error.description) }
        switch choice.kind {
        case .ioUring: return try start(plane, options, IoUringBackend.self)
        default: return try start(plane, options, EpollBackend.self)
        }
    }

    private static func start<B: IOBackend>(_ plane: DataPlane, _ options: ProxyRuntimeOptions, _: B.Type) throws(StartError) -> RunningProxy {
        // Envoy's cluster warming: listeners open once every checked host had its first check.
        let checker = HealthChecker.start(plane)
        if checker != nil { HealthChecker.waitForFirstChecks(plane) }
        var groups: [WorkerGroup<ProxyMessage>] = []
        var bound: [RunningProxy.BoundListener] = []
        var allStats: [[DataPathStats]] = []
        var allRings: [[AccessRecordRing]] = []
        var allTraceRings: [[AccessRecordRing]] = []
        let workers = max(1, options.concurrency)
        for l in plane.listeners {
            let balance = options.balanceOverride ?? l.balance
            let stats = (0..<workers).map { _ in
                DataPathStats(clusters: plane.clusters.count, tcpProxies: l.tcpPlans.count, connectionManagers: l.httpPlans.count)
            }
            let rings = options.recordAccess ? (0..<workers).map { _ in AccessRecordRing() } : []
            var workerSettings = ProxyWorkerSettings(plane: plane, listener: l, debugResponseFlags: options.debugResponseFlags,
                                                     accessRings: options.recordAccess ? rings : nil)
            workerSettings.capture = options.capture
            let traced = l.httpPlans.contains { $0.tracing != nil }
            let traceRings = traced ? (0..<workers).map { _ in AccessRecordRing(capacity: 1024, extraBytes: TraceRecordLayout.recordBytes) } : []
            if traced { workerSettings.traceRings = traceRings }
            let settings = workerSettings
            let groupOptions = WorkerGroupOptions(address: l.address, workers: workers, balance: balance, cpus: options.cpus,
                                                  backend: options.backend, name: "proxy\(l.index)")
            do {
                let group = try WorkerGroup<ProxyMessage>.start(groupOptions, backend: B.self) { seat, _ in
                    ProxyWorker<B>(seat: seat, settings: settings, stats: stats[seat.index])
                }
                groups.append(group)
                bound.append(RunningProxy.BoundListener(name: l.name, address: l.address, port: group.port, balance: balance))
                allStats.append(stats)
                allRings.append(rings)
                allTraceRings.append(traceRings)
            } catch {
                for g in groups { g.stop() }
                checker?.stop()
                throw StartError(description: "listener '\(l.name)': \(error.description)")
            }
        }
        var udp: [UDPProxy] = []
        for u in plane.udpListeners {
            do {
                udp.append(try UDPProxy(u, hosts: plane.clusters[u.cluster].hosts.map(\.address)))
            } catch {
                for p in udp { p.stop() }
                for g in groups { g.stop() }
                checker?.stop()
                throw StartError(description: error.description)
            }
        }
        for p in udp { p.start() }
        let statsForProbe = allStats
        checker?.setTrafficProbe { ci in
            statsForProbe.contains { workers in
                workers.contains { w in
                    let list = w.clusters
                    return ci < list.count && list[ci].upstreamCxTotal.load(ordering: .relaxed) > 0
                }
            }
        }
        return RunningProxy(backend: B.kind, plane: plane, listeners: bound, stats: allStats, accessRings: allRings, traceRings: allTraceRings, groups: groups,
                            healthChecker: checker, udpProxies: udp)
    }

    /// Serves until SIGINT or SIGTERM (main thread), then stops. Returns the exit status (0).
    /// SIGHUP is left for reload (issue 5): logged and ignored here.
    public static func run(_ bootstrap: Bootstrap, options: ProxyRuntimeOptions) throws(StartError) -> Int32 {
        let (limit, note) = FileLimit.raise(to: 1 << 17)
        if let note { Log.warning(note) }
        Signals.blockTermination()
        let proxy = try start(bootstrap, options: options)
        for l in proxy.listeners {
            Log.out("ballast proxy listening on \(l.address.host):\(l.port) (listener \(l.name), workers \(max(1, options.concurrency)), io \(proxy.backend.rawValue), balance \(l.balance), open-file limit \(limit))")
        }
        while true {
            let signal = Signals.waitForTermination()
            if signal == SIGHUP {
                Log.info("SIGHUP: reload is not implemented yet; the configuration stays")
                continue
            }
            Log.info("proxy stopping (signal \(signal))")
            proxy.stop()
            return 0
        }
    }
}
