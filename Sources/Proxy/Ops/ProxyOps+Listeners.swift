import Balancers
import EventLoop

/// Envoy's `listener_manager.*` counters for listeners added, changed and removed while running.
struct ListenerManagerCounters: Sendable, Equatable {
    var added = 0
    var modified = 0
    var removed = 0
}

/// A dynamic listener that drains, as /config_dump shows it (`draining_state`).
struct DrainingListenerDump: Sendable {
    let name: String
    /// The listener as its LDS file delivered it, printed as Envoy prints it.
    let listener: ProtoJSON
    /// The LDS `version_info` it was delivered with (empty: none), and when that file was read.
    let versionInfo: String
    let updatedMillis: Int64
}

/// How a new snapshot's listeners differ from the running ones, matched by name as Envoy's
/// listener manager matches them: a listener whose address changes is modified, and is
/// replaced as Envoy replaces it (the new one binds, the old one drains).
struct ListenerDiff {
    /// Listeners of the new plane to start (new names, or a new address).
    var added: [ListenerPlan] = []
    /// Listeners of the old plane to drain (gone, or moved to another address).
    var removed: [ListenerPlan] = []
    /// Envoy's `listener_modified`: moved listeners, and kept ones whose config differs (counted
    /// only with `countsConfigChanges`).
    var modified = 0
    /// Listeners with a name the old plane does not have (`listener_added`).
    var newNames = 0
    /// Listeners whose address changed (each in `added` and in `removed`).
    var moved = 0

    init(old: DataPlane, new: DataPlane, oldBootstrap: Bootstrap, newBootstrap: Bootstrap, countsConfigChanges: Bool) {
        for l in new.listeners {
            guard let before = old.listeners.first(where: { $0.name == l.name }) else {
                added.append(l)
                newNames += 1
                continue
            }
            if before.address.description != l.address.description {
                added.append(l)
                removed.append(before)
                modified += 1
                moved += 1
            } else if countsConfigChanges, oldBootstrap.listeners.first(where: { $0.name == l.name }) != newBootstrap.listeners.first(where: { $0.name == l.name }) {
                modified += 1
            }
        }
        for l in old.listeners where !new.listeners.contains(where: { $0.name == l.name }) { removed.append(l) }
    }

    var isEmpty: Bool { added.isEmpty && removed.isEmpty }
}

extension ProxyOps {
    /// Why listeners `added` cannot start in this process, or nil.
    static func addedListenerRefusal(_ added: [ListenerPlan]) -> String? {
        for l in added {
            if l.address.port != 0 && !Sockets.isFree(l.address) {
                return "listener '\(l.name)': cannot listen on \(l.address): the port is already in use"
            }
        }
        return nil
    }

    /// Why a kept listener (same name and address) cannot take the update's access logs, or nil:
    /// its workers record the fields its start's formats need and the log thread formats them
    /// with those formats, so a changed `access_log` would be accepted and ignored. (Moving the
    /// listener, or removing and adding it back, applies it.)
    static func keptListenerLogChange(old: DataPlane, new: DataPlane, oldBootstrap: Bootstrap, newBootstrap: Bootstrap) -> String? {
        for b in new.listeners {
            guard let a = old.listeners.first(where: { $0.name == b.name }), a.address.description == b.address.description,
                  let before = oldBootstrap.listeners.first(where: { $0.name == b.name }),
                  let after = newBootstrap.listeners.first(where: { $0.name == b.name }) else { continue }
            if before.accessLogsPerChain != after.accessLogsPerChain {
                return "listener '\(b.name)': access_log changed on a running listener; that needs a restart (or a new name or address)"
            }
        }
        return nil
    }

    /// Starts the listeners an update adds, on `plane` as generation `generation`; on failure
    /// the ones started are stopped again and the error names the listener.
    /// Those with an access log record the fields `logs` compiled their formats for.
    func startAddedListeners(_ added: [ListenerPlan], plane: DataPlane, generation: UInt32,
                             logs: AccessLogSystem.Prepared) -> Result<[ListenerRun], ProxyRuntime.StartError> {
        var started: [ListenerRun] = []
        for l in added {
            do {
                started.append(try proxy.addListener(l, plane: plane, generation: generation, capture: logs.capture(for: l.name)))
            } catch {
                for r in started { proxy.discard(r) }
                return .failure(error)
            }
        }
        return .success(started)
    }

    /// After the snapshot went out: the removed listeners drain, the added ones are logged as
    /// at start, and Envoy's counters move.
    func finishListenerChange(_ diff: ListenerDiff, started: [ListenerRun], oldBootstrap: Bootstrap) {
        let active = proxy.slotTable
        for l in diff.removed {
            // The running slot of the old listener: same name and configured address.
            guard let slot = active.first(where: { s in
                if case .active = s.phase { s.run.bound.name == l.name && s.run.bound.address.description == l.address.description } else { false }
            })?.run.slot else { continue }
            proxy.beginDrain(slot: slot, plan: l)
            if oldBootstrap.dynamic.isDynamic(.listener, l.name),
               let printed = ConfigDumpBuilder(bootstrap: oldBootstrap, plane: currentPlane).deliveredListener(named: l.name) {
                let dump = DrainingListenerDump(name: l.name, listener: printed, versionInfo: oldBootstrap.dynamic.versionInfo[.listener] ?? "",
                                                updatedMillis: oldBootstrap.dynamic.readTimes.subscriptionMillis[.listener] ?? oldBootstrap.dynamic.readTimes.bootstrapMillis)
                state.withLock { $0.drainingListeners[slot] = dump }
            }
            OpsLog.log(.info, "config", "listener '\(l.name)' (\(l.address)) removed: draining for \(options.drainTimeNanos / 1_000_000_000) s")
        }
        if started.contains(where: { !$0.traceRings.isEmpty }) {
            // The first listener that traces: the reporter starts (it takes added rings itself).
            let node = state.withLock { $0.bootstrap.node }
            zipkin.withLock { reporter in
                if reporter == nil { reporter = ZipkinReporter.start(proxy, node: node) { [self] in self.currentPlane } }
            }
        }
        for r in started {
            Log.out(r.bound.listeningLine(workers: concurrency, io: proxy.backend, note: "added by an update"))
        }
        state.withLock {
            $0.listenerManager.added += diff.newNames
            $0.listenerManager.modified += diff.modified
            $0.listenerManager.removed += diff.removed.count - diff.moved
        }
    }

    /// Main loop: the draining listeners whose drain time is over stop (their last connections
    /// close, their threads end, their listener stats leave /stats as in Envoy).
    func finishListenerDrains(now: Int64 = monotonicNanos()) {
        for r in proxy.finishDrains(drainTimeNanos: options.drainTimeNanos, now: now) {
            state.withLock { _ = $0.drainingListeners.removeValue(forKey: r.slot) }
            OpsLog.log(.info, "config", "listener '\(r.bound.name)' (\(r.bound.address.host):\(r.bound.port)) drained and closed")
        }
    }
}
