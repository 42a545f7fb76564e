import AdminHTTP
import Balancers
import EventLoop
import Glibc
import Synchronization

/// Structured stderr logs with a level (`-l`, `POST /logging?level=`): `ts level component msg`.
public enum OpsLog {
    static let level = Atomic<Int>(2)  // ProxyLogLevel rank: info

    static func rank(_ l: ProxyLogLevel) -> Int { ProxyLogLevel.allCases.firstIndex(of: l)! }
    public static var current: ProxyLogLevel { ProxyLogLevel.allCases[level.load(ordering: .relaxed)] }
    public static func set(_ l: ProxyLogLevel) { level.store(rank(l), ordering: .relaxed) }

    public static func log(_ l: ProxyLogLevel, _ component: String, _ message: String) {
        guard l != .off, rank(l) >= level.load(ordering: .relaxed) else { return }
        var real = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        let stamp = AccessLogFormatter.startTime(Int64(real.tv_sec) * 1_000_000_000 + Int64(real.tv_nsec), format: nil)
        Log.line("[\(stamp)] [\(l.rawValue)] [\(component)] \(message)")
    }
}

/// The operations side of a running proxy (issue 5): the admin listener, merged stats, access
/// logs, reload, drain and the watchdog. Reload and drain run on the calling thread (the main
/// thread for signals, the admin thread for `POST`s) under one lock; workers only ever see
/// immutable snapshots and messages in their mailboxes.
public final class ProxyOps: Sendable {
    public let proxy: RunningProxy
    public let options: ProxyOptions
    public let startNanos = monotonicNanos()
    let concurrency: Int

    struct State {
        var bootstrap: Bootstrap
        var plane: DataPlane
        var generation: UInt32 = 0
        var reloads = 0
        var reloadFailures = 0
        var healthFailed = false
        var drainStartedNanos: Int64 = 0
        var quitRequested = false
        /// The `-c` file's text as read at start or at the last reload (dynamic updates use it).
        var configText: String?
        var subscriptions: [SubscriptionKey: SubscriptionCounters] = [:]
        var clusterManager: ClusterManagerCounters
        /// SDS secrets read from files, by secret name (ProxyOps+Secrets).
        var secretCounters: [String: SecretCounters] = [:]
        /// `layered_runtime` while running: the disk layers as last read, the admin layer's keys,
        /// disk reloads applied and rejected (ProxyOps+Runtime).
        var runtimeDisk: [String: [String: String]] = [:]
        var runtimeAdmin: [String: String] = [:]
        var runtimeLoads = 0
        var runtimeLoadErrors = 0
        /// Listeners added, modified and removed (at start: each listener added once).
        var listenerManager = ListenerManagerCounters()
        /// Dynamic listeners draining after an update, by slot: their config and version, for
        /// /config_dump's `draining_state` (dropped when the drain ends).
        var drainingListeners: [Int: DrainingListenerDump] = [:]
    }

    let state: Mutex<State>
    /// Serialises reloads (a reload reads files and compiles; the state lock stays short).
    let reloadLock = Mutex(())
    let accessLogs: AccessLogSystem
    /// The Zipkin reporter (nil when no connection manager traces).
    let zipkin = Mutex<ZipkinReporter?>(nil)
    let planeHistory = PlaneHistory()
    let watchdog: Watchdog
    private let adminServer = Mutex<AdminServer?>(nil)
    let dnsRefresher = Mutex<DNSRefresher?>(nil)
    /// inotify on the dynamic-resource files (nil without `dynamic_resources`).
    let dynamicWatcher = Mutex<DynamicConfigWatcher?>(nil)
    /// inotify on the SDS files (nil without secrets from files).
    let secretWatcher = Mutex<SecretFileWatcher?>(nil)
    /// inotify on the disk layers' symlink roots (nil without a disk layer).
    let runtimeWatcher = Mutex<RuntimeDiskWatcher?>(nil)

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts the data path, the access logs, the admin listener (when the bootstrap has one) and
    /// arms the watchdog (ticked by `tick`, from `run`'s main loop or a test).
    public static func start(_ bootstrap: Bootstrap, options: ProxyOptions, runtime: ProxyRuntimeOptions,
                             configText: String? = nil) throws(StartError) -> ProxyOps {
        OpsLog.set(options.logLevel)
        var rt = runtime
        let capture = AccessLogCapture(bootstrap)
        if !AccessLogCapture.templates(bootstrap).isEmpty {
            rt.recordAccess = true
            rt.capture = capture
        }
        let proxy: RunningProxy
        do { proxy = try ProxyRuntime.start(bootstrap, options: rt) } catch { throw StartError(description: error.description) }
        let ops: ProxyOps
        do {
            ops = try ProxyOps(proxy: proxy, bootstrap: bootstrap, options: options, concurrency: max(1, rt.concurrency),
                               capture: rt.capture ?? capture)
        } catch {
            proxy.stop()
            throw StartError(description: error.description)
        }
        let reporter = ZipkinReporter.start(proxy, node: bootstrap.node) { [ops] in ops.currentPlane }
        ops.zipkin.withLock { $0 = reporter }
        let refresher = DNSRefresher.start(ops)
        ops.dnsRefresher.withLock { $0 = refresher }
        ops.state.withLock { $0.configText = configText }
        if !bootstrap.dynamic.sources.isEmpty {
            let sources = bootstrap.dynamic.sources
            let failure = ops.dynamicWatcher.withLock { slot -> String? in
                do throws(DynamicConfigWatcher.WatchError) { slot = try DynamicConfigWatcher(sources) } catch { return error.description }
                return nil
            }
            if let failure {
                ops.stop()
                throw StartError(description: failure)
            }
        }
        if !bootstrap.secrets.sources.isEmpty {
            let secrets = bootstrap.secrets
            let failure = ops.secretWatcher.withLock { slot -> String? in
                do throws(DynamicConfigWatcher.WatchError) { slot = try SecretFileWatcher(secrets) } catch { return error.description }
                return nil
            }
            if let failure {
                ops.stop()
                throw StartError(description: failure)
            }
        }
        ops.adoptRuntime(bootstrap)
        let layers = bootstrap.runtime.layers
        ops.runtimeWatcher.withLock { $0 = RuntimeDiskWatcher(layers) }
        if let admin = bootstrap.admin {
            do {
                let server = try AdminServer(host: admin.address.address, port: admin.address.port) { [ops] request in
                    ops.respond(to: request)
                }
                ops.adminServer.withLock { $0 = server }
            } catch {
                ops.stop()
                throw StartError(description: "admin listener \(admin.address): \(error)")
            }
        }
        return ops
    }

    private init(proxy: RunningProxy, bootstrap: Bootstrap, options: ProxyOptions, concurrency: Int,
                 capture: AccessLogCapture) throws(AccessLogError) {
        self.proxy = proxy
        self.options = options
        self.concurrency = concurrency
        state = Mutex(State(bootstrap: bootstrap, plane: proxy.plane, subscriptions: Self.initialSubscriptions(bootstrap),
                            clusterManager: ClusterManagerCounters(bootstrap), secretCounters: Self.initialSecretCounters(bootstrap),
                            listenerManager: ListenerManagerCounters(added: proxy.plane.listeners.count + proxy.plane.udpListeners.count)))
        let history = planeHistory
        history.add(0, proxy.plane)
        accessLogs = try AccessLogSystem(bootstrap: bootstrap, proxy: proxy, capture: capture) { history.plane($0) }
        watchdog = Watchdog(proxy: proxy, worker: bootstrap.workerWatchdog)
    }

    /// The admin listener's port (nil without `admin`).
    public var adminPort: Int? { adminServer.withLock { $0?.port } }

    public var currentPlane: DataPlane { state.withLock { $0.plane } }
    public var generation: UInt32 { state.withLock { $0.generation } }
    public var isDraining: Bool { state.withLock { $0.drainStartedNanos != 0 } }

    // MARK: stats

    public func stats() -> ProxyStatsSnapshot {
        let (plane, draining, failed, subscriptions, dynamic) = state.withLock {
            ($0.plane, $0.drainStartedNanos != 0, $0.healthFailed, $0.subscriptions, $0.bootstrap.dynamic)
        }
        let (secretCounters, bootstrap, listenerManager, clusterManager) = state.withLock {
            ($0.secretCounters, $0.bootstrap, $0.listenerManager, $0.clusterManager)
        }
        var inputs = StatsInputs(plane: plane)
        inputs.secrets = secretCounters
        inputs.listenerManager = listenerManager
        inputs.secretVersionTexts = bootstrap.secrets.versionInfo
        (inputs.sdsListenerUpdates, inputs.sdsClusterUpdates) = Self.sdsContextUpdates(bootstrap, secretCounters)
        inputs.subscriptions = subscriptions
        inputs.clusterManager = clusterManager
        inputs.versionTexts = dynamic.versionInfo
        inputs.routeStatPrefixes = dynamic.routeStatPrefixes
        inputs.zipkin = zipkin.withLock { $0 }
        inputs.watchdogMiss = watchdog.misses
        inputs.watchdogMegaMiss = watchdog.megaMisses
        inputs.accessLogDropped = accessLogs.dropped
        inputs.uptimeSeconds = Int((monotonicNanos() - startNanos) / 1_000_000_000)
        inputs.draining = draining
        inputs.healthFailed = failed
        return ProxyStatsSnapshot(proxy: proxy, inputs: inputs)
    }

    // MARK: reload

    public enum ReloadOutcome: Sendable, Equatable {
        case applied(generation: UInt32)
        case rejected(reason: String)
    }

    /// Re-reads the configuration (`-c` file and `--config-yaml`), compiles it, and publishes the
    /// snapshot to every worker. A config that does not load, or that changes what a reload
    /// cannot change (listeners, the clusters' names and order), is rejected with the reason logged;
    /// the running one stays.
    @discardableResult
    public func reload() -> ReloadOutcome {
        reloadLock.withLock { _ in
            let loaded: LoadedBootstrap
            do throws(ConfigLoadError) {
                loaded = try BootstrapLoader.load(path: options.configPath, overlayYAML: options.configYAML)
            } catch {
                let reason = error.errors.map(\.located).joined(separator: "; ")
                return reject("configuration is invalid: \(reason)")
            }
            let before = state.withLock { $0.bootstrap }
            let outcome = reload(loaded.bootstrap)
            if case .applied = outcome {
                state.withLock {
                    $0.configText = loaded.configText
                    $0.clusterManager.count(old: before, new: loaded.bootstrap)
                }
                adoptSubscriptions(old: before, new: loaded.bootstrap)
            }
            return outcome
        }
    }

    /// Publishes `bootstrap` (already loaded) as the next snapshot. `listenerSource`: the update
    /// may change listeners' own configuration (a reload, an LDS update), so a kept listener
    /// whose config differs counts `listener_modified`; an RDS, SDS, CDS or EDS update changes
    /// what a listener's config embeds (routes, certificates) without modifying it, as in Envoy.
    public func reload(_ bootstrap: Bootstrap, listenerSource: Bool = true) -> ReloadOutcome {
        let outcome = publish(bootstrap, listenerSource: listenerSource)
        if case .applied = outcome { state.withLock { $0.reloads += 1 } }
        return outcome
    }

    /// The DNS refresher found new address sets: the running configuration is compiled again
    /// (resolving the names anew) and published like a reload.
    func refreshDNS(changed: [String]) {
        reloadLock.withLock { _ in
            let bootstrap = state.withLock { $0.bootstrap }
            OpsLog.log(.info, "dns", "cluster(s) \(changed.joined(separator: ", ")): the resolved addresses changed")
            _ = publish(bootstrap, listenerSource: false)
        }
    }

    private func publish(_ bootstrap: Bootstrap, listenerSource: Bool) -> ReloadOutcome {
        let (old, oldBootstrap, next) = state.withLock { ($0.plane, $0.bootstrap, $0.generation &+ 1) }
        let plane: DataPlane
        do {
            plane = try DataPlane.compile(bootstrap, previous: old, generation: next, canReclaim: { [proxy] in Self.unreferenced($0, proxy) })
        } catch { return reject(error.description) }
        if let why = Self.incompatibility(old, plane) { return reject(why) }
        let diff = ListenerDiff(old: old, new: plane, oldBootstrap: oldBootstrap, newBootstrap: bootstrap, countsConfigChanges: listenerSource)
        if let why = Self.addedListenerRefusal(diff.added) { return reject(why) }
        if let why = Self.keptListenerLogChange(old: old, new: plane, oldBootstrap: oldBootstrap, newBootstrap: bootstrap) { return reject(why) }
        if let checker = proxy.healthChecker {
            // Hosts whose checks or address changed are checked before the snapshot goes out.
            checker.update(plane)
            HealthChecker.waitForFirstChecks(plane)
        } else if plane.activeClusters.contains(where: { $0.healthCheck != nil }) {
            return reject("health_checks added to a proxy started without any; that needs a restart")
        }
        // The re-read disk layers and the admin layer's keys (those still read) go into the new
        // snapshot's runtime values before it goes out.
        adoptRuntime(bootstrap)
        state.withLock { $0.runtimeAdmin = $0.runtimeAdmin.filter { plane.runtime.keys.contains($0.key) } }
        publishRuntime(plane, bootstrap)
        // Added listeners start on the new snapshot (their records resolve in it); one that
        // cannot bind rejects the update and the running set stays.
        planeHistory.add(next, plane)
        // An added listener's access logs: compiled and their files opened before it starts.
        let logs: AccessLogSystem.Prepared
        do throws(AccessLogError) {
            logs = try accessLogs.prepare(diff.added.compactMap { l in bootstrap.listeners.first { $0.name == l.name } })
        } catch { return reject(error.description) }
        let started: [ListenerRun]
        switch startAddedListeners(diff.added, plane: plane, generation: next, logs: logs) {
        case .success(let runs): started = runs
        case .failure(let error):
            accessLogs.abandon(logs)
            return reject(error.description)
        }
        accessLogs.add(logs, runs: started)
        let generation = state.withLock { s -> UInt32 in
            s.generation = next
            s.plane = plane
            s.bootstrap = bootstrap
            return s.generation
        }
        proxy.postToWorkers(includingDraining: false, .publish(plane, generation: generation))
        if !diff.isEmpty || diff.modified > 0 { finishListenerChange(diff, started: started, oldBootstrap: oldBootstrap) }
        OpsLog.log(.info, "config", "reload: configuration generation \(generation) published to every worker")
        return .applied(generation: generation)
    }

    private func reject(_ reason: String) -> ReloadOutcome {
        state.withLock { $0.reloadFailures += 1 }
        OpsLog.log(.error, "config", "reload rejected, the running configuration stays: \(reason)")
        return .rejected(reason: reason)
    }

    /// Why `new` cannot replace `old` without a restart, or nil. Listeners are matched by name:
    /// added, removed and moved ones are started and drained (ProxyOps+Listeners).
    static func incompatibility(_ old: DataPlane, _ new: DataPlane) -> String? {
        for b in new.listeners {
            guard let a = old.listeners.first(where: { $0.name == b.name }), a.address.description == b.address.description else { continue }
            guard a.chains == b.chains else {
                return "listener '\(a.name)' changed its filter chains (their number, or between http_connection_manager and tcp_proxy); that needs a restart"
            }
            // The workers' span rings exist only for listeners that traced at start.
            if !a.httpPlans.contains(where: { $0.tracing != nil }) && b.httpPlans.contains(where: { $0.tracing != nil }) {
                return "listener '\(a.name)': tracing added; that needs a restart"
            }
        }
        // Clusters may come and go (each keeps its slot, `ClusterSlots`); a UDP listener's
        // cluster stays (its reference is always checked) in the same slot.
        guard old.udpListeners == new.udpListeners,
              old.udpListeners.allSatisfy({ u in old.clusters[u.cluster].hosts.map(\.name) == new.clusters[u.cluster].hosts.map(\.name) }) else {
            return "a UDP listener, or the hosts of its cluster, changed; that needs a restart"
        }
        for b in new.activeClusters where b.index < old.clusters.count {
            let a = old.clusters[b.index]
            guard a.removed || a.resources !== b.resources || a.isOriginalDst == b.isOriginalDst else {
                return "cluster '\(a.name)' changed to or from type ORIGINAL_DST; that needs a restart (removing it and adding it back in a later update works)"
            }
        }
        return nil
    }

    /// Whether nothing refers to removed cluster `c` any more, so its slot may go to a new
    /// cluster: every worker applied the snapshot that removed it and has no stream left on an
    /// older one (a newer snapshot's routes cannot name it), and no connection, request or
    /// retry of it is left (mirrors and upstream connections outlive their streams).
    static func unreferenced(_ c: ClusterPlan, _ proxy: RunningProxy) -> Bool {
        let r = c.resources
        guard r.connections.load(ordering: .relaxed) == 0, r.requests.load(ordering: .relaxed) == 0,
              r.pendingRequests.load(ordering: .relaxed) == 0, r.retries.load(ordering: .relaxed) == 0 else { return false }
        // A removed listener's workers take no later snapshot: while they drain they may still
        // hold streams naming the slot (so they keep it); once stopped they hold nothing.
        return proxy.unstoppedStats.allSatisfy { workers in
            workers.allSatisfy { $0.appliedGeneration.load(ordering: .relaxed) >= c.since && $0.oldestLiveGeneration.load(ordering: .relaxed) >= c.since }
        }
    }

    // MARK: health, drain, quit

    public func setHealthFailed(_ failed: Bool) {
        state.withLock {
            $0.healthFailed = failed
            $0.plane.serverHealth.failed.store(failed, ordering: .relaxed)
        }
        OpsLog.log(.info, "admin", failed ? "health check set to fail" : "health check set to ok")
    }

    /// Stops accepting on every listener, `connection: close` on every response, closes idle
    /// connections. Idempotent.
    public func drain() {
        let first = state.withLock { s -> Bool in
            guard s.drainStartedNanos == 0 else { return false }
            s.drainStartedNanos = monotonicNanos()
            return true
        }
        guard first else { return }
        OpsLog.log(.info, "main", "draining listeners (drain time \(options.drainTimeNanos / 1_000_000_000) s)")
        proxy.postToWorkers(.drain)
    }

    /// `POST /quitquitquit` or SIGTERM: drain, then exit when drained (see `run`).
    public func requestQuit() {
        drain()
        state.withLock { $0.quitRequested = true }
    }

    /// Open downstream connections over every listener and worker.
    public var activeConnections: Int {
        proxy.stats.reduce(0) { sum, ws in ws.reduce(sum) { $0 + $1.downstreamCxActive.load(ordering: .relaxed) } }
    }

    /// True when the drain is over: no connection left, or the drain time passed.
    public var drainFinished: Bool {
        let started = state.withLock { $0.drainStartedNanos }
        guard started != 0 else { return false }
        return activeConnections == 0 || monotonicNanos() - started >= options.drainTimeNanos
    }

    var quitRequested: Bool { state.withLock { $0.quitRequested } }

    /// Stops everything (workers close what is left).
    public func stop() {
        dnsRefresher.withLock { $0 }?.stop()
        adminServer.withLock { $0 }?.stop()
        proxy.stop()
        accessLogs.stop()
        zipkin.withLock { $0 }?.stop()
    }

    // MARK: main thread

    /// Blocks the signals the main thread handles, in every thread started afterwards.
    public static func blockSignals() {
        Signals.blockTermination()
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGUSR1)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// The main thread's loop: signals (SIGTERM/SIGINT drain and exit, SIGHUP reloads, SIGUSR1
    /// reopens access logs), the watchdog, the stats flush, and the end of a drain. Returns 0.
    public func run() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGUSR1] { sigaddset(&set, s) }
        let flushEvery = max(Int64(100_000_000), state.withLock { $0.bootstrap.statsFlushIntervalNanos })
        var nextFlush = monotonicNanos() + flushEvery
        while true {
            var timeout = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            let signal = sigtimedwait(&set, nil, &timeout)
            switch signal {
            case SIGHUP:
                OpsLog.log(.info, "main", "SIGHUP: reloading the configuration")
                reload()
            case SIGUSR1:
                OpsLog.log(.info, "main", "SIGUSR1: reopening access logs")
                accessLogs.reopen()
            case SIGTERM, SIGINT:
                OpsLog.log(.info, "main", "signal \(signal): draining, then exiting")
                requestQuit()
            default:
                break
            }
            pollDynamicConfig()
            pollSecretFiles()
            pollRuntimeDisk()
            finishListenerDrains()
            watchdog.tick()
            let now = monotonicNanos()
            tickOutlierDetectors(now)
            if now >= nextFlush {
                _ = stats()  // the flush: merge the workers' figures
                nextFlush = now + flushEvery
            }
            if quitRequested && drainFinished {
                let left = activeConnections
                OpsLog.log(.info, "main", left == 0 ? "drained; exiting" : "drain time over with \(left) connections open; exiting")
                stop()
                return 0
            }
        }
    }
}

extension ProxyOps {
    /// The outlier detectors' interval timers (Envoy runs them on its main thread): unejections
    /// and success-rate ejections, published through the hosts' health words.
    func tickOutlierDetectors(_ now: Int64) {
        let plane = state.withLock { $0.plane }
        for c in plane.activeClusters {
            guard let health = c.health, let detector = health.outlier else { continue }
            detector.tick(health, now: now, random: { UInt64.random(in: 0...UInt64.max) })
        }
    }
}

/// Recent snapshots by generation: the access log resolves a record's indices in the snapshot
/// it was served under.
final class PlaneHistory: Sendable {
    private let planes = Mutex<[(UInt32, DataPlane)]>([])

    func add(_ generation: UInt32, _ plane: DataPlane) {
        planes.withLock {
            $0.append((generation, plane))
            if $0.count > 16 { $0.removeFirst($0.count - 16) }
        }
    }

    func plane(_ generation: UInt32) -> DataPlane {
        planes.withLock { list in list.last { $0.0 == generation }?.1 ?? list.last!.1 }
    }
}
