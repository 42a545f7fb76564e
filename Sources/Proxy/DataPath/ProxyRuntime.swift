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
        let starter: RunningProxy.Starter = { l, plane, generation, slot, capture throws(StartError) in
            try startListener(l, plane: plane, generation: generation, slot: slot, capture: capture, options: options, B.self)
        }
        // At start every listener records when any access log needs records.
        let startCapture = options.recordAccess ? options.capture : nil
        var runs: [ListenerRun] = []
        for l in plane.listeners {
            do {
                runs.append(try starter(l, plane, 0, runs.count, startCapture))
            } catch {
                for r in runs { r.group.stop() }
                checker?.stop()
                throw error
            }
        }
        var udp: [UDPProxy] = []
        for u in plane.udpListeners {
            do {
                udp.append(try UDPProxy(u, hosts: plane.clusters[u.cluster].hosts.map(\.address)))
            } catch {
                for p in udp { p.stop() }
                for r in runs { r.group.stop() }
                checker?.stop()
                throw StartError(description: error.description)
            }
        }
        for p in udp { p.start() }
        let proxy = RunningProxy(backend: B.kind, plane: plane, runs: runs, workers: max(1, options.concurrency),
                                 healthChecker: checker, udpProxies: udp, starter: starter)
        checker?.setTrafficProbe { [weak proxy] ci in
            // Every listener's counters, those added later included (weak: the proxy owns the checker).
            guard let proxy else { return false }
            return proxy.stats.contains { workers in
                workers.contains { w in
                    let list = w.clusters
                    return ci < list.count && list[ci].upstreamCxTotal.load(ordering: .relaxed) > 0
                }
            }
        }
        return proxy
    }

    /// One listener's `WorkerGroup` of `ProxyWorker`s with the listener's (or the overriding)
    /// accept strategy, its stats and rings; its workers serve `plane` as generation `generation`.
    /// With `capture` its workers record each finished request (those fields) in their rings,
    /// which the access-log thread drains (`AccessLogSystem.add`).
    static func startListener<B: IOBackend>(_ l: ListenerPlan, plane: DataPlane, generation: UInt32, slot: Int,
                                            capture: AccessLogCapture?, options: ProxyRuntimeOptions,
                                            _: B.Type) throws(StartError) -> ListenerRun {
        let workers = max(1, options.concurrency)
        let balance = options.balanceOverride ?? l.balance
        let stats = (0..<workers).map { _ in
            DataPathStats(clusters: plane.clusters.count, tcpProxies: l.tcpPlans.count, connectionManagers: l.httpPlans.count)
        }
        let records = capture != nil
        let rings = records ? (0..<workers).map { _ in AccessRecordRing() } : []
        var workerSettings = ProxyWorkerSettings(plane: plane, listener: l, debugResponseFlags: options.debugResponseFlags,
                                                 accessRings: records ? rings : nil)
        workerSettings.capture = capture
        workerSettings.generation = generation
        let traced = l.httpPlans.contains { $0.tracing != nil }
        let traceRings = traced ? (0..<workers).map { _ in AccessRecordRing(capacity: 1024, extraBytes: TraceRecordLayout.recordBytes) } : []
        if traced { workerSettings.traceRings = traceRings }
        let settings = workerSettings
        let groupOptions = WorkerGroupOptions(address: l.address, workers: workers, balance: balance, cpus: options.cpus,
                                              backend: options.backend, name: "proxy\(slot)")
        do {
            let group = try WorkerGroup<ProxyMessage>.start(groupOptions, backend: B.self) { seat, _ in
                ProxyWorker<B>(seat: seat, settings: settings, stats: stats[seat.index])
            }
            let bound = RunningProxy.BoundListener(name: l.name, address: l.address, port: group.port, balance: balance)
            return ListenerRun(slot: slot, bound: bound, stats: stats, accessRings: rings, traceRings: traceRings,
                               tracing: l.httpPlans.lazy.compactMap(\.tracing).first, group: group)
        } catch {
            throw StartError(description: "listener '\(l.name)': \(error.description)")
        }
    }

    /// Serves until SIGINT or SIGTERM (main thread), then stops. Returns the exit status (0).
    /// SIGHUP is left for reload (issue 5): logged and ignored here.
    public static func run(_ bootstrap: Bootstrap, options: ProxyRuntimeOptions) throws(StartError) -> Int32 {
        let (limit, note) = FileLimit.raise(to: 1 << 17)
        if let note { Log.warning(note) }
        Signals.blockTermination()
        let proxy = try start(bootstrap, options: options)
        for l in proxy.listeners {
            Log.out(l.listeningLine(workers: max(1, options.concurrency), io: proxy.backend, note: "open-file limit \(limit)"))
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
