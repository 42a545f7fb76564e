import EventLoop

/// Envoy's per-subscription stats (`listener_manager.lds.*`, `cluster_manager.cds.*`,
/// `cluster.<name>.*` of an EDS cluster, `http.<stat_prefix>.rds.<name>.*`).
struct SubscriptionCounters: Sendable, Equatable {
    var attempt = 0
    var success = 0
    /// The file parsed but its resources were refused (or the update cannot be applied).
    var rejected = 0
    /// The file could not be read or is not valid YAML / JSON.
    var failure = 0
    /// xxHash64 of the last applied `version_info`.
    var version: UInt64 = 0
    /// EDS / RDS: a file without the resource (counted with a success; the last resource stays).
    var empty = 0
    /// EDS: an update that left the endpoints as they were.
    var noRebuild = 0
    /// RDS: route configurations applied that differ from the one before (`config_reload`).
    var configReload = 0
}

/// File-based LDS / CDS / EDS / RDS updates: a replaced file is re-read and, with the other sources'
/// last good texts and the bootstrap as read at start, compiled and published through the reload
/// machinery (requests in flight finish on their snapshot). A file that fails keeps the last good
/// version, logs why with its path, and is counted as Envoy counts it.
extension ProxyOps {
    /// Counters as at start: each configured source was read once, successfully.
    static func initialSubscriptions(_ bootstrap: Bootstrap) -> [SubscriptionKey: SubscriptionCounters] {
        var result: [SubscriptionKey: SubscriptionCounters] = [:]
        let dynamic = bootstrap.dynamic
        for key in dynamic.sources.keys {
            if let unparsable = dynamic.startFailures[key] {
                // Envoy started without the resource: no success, version 0.
                result[key] = SubscriptionCounters(attempt: 1, rejected: unparsable ? 0 : 1, failure: unparsable ? 1 : 0)
                continue
            }
            let empty = dynamic.empty.contains(key)
            var counters = SubscriptionCounters(attempt: 1, success: 1, version: XXHash64.hash(dynamic.versionInfo[key] ?? ""))
            counters.empty = empty ? 1 : 0
            if case .routes = key, !empty { counters.configReload = 1 }
            result[key] = counters
        }
        return result
    }

    var subscriptions: [SubscriptionKey: SubscriptionCounters] { state.withLock { $0.subscriptions } }

    /// Applies the updates of every source whose file was replaced since the last call. Main
    /// loop (every turn) and tests.
    public func pollDynamicConfig() {
        let changed = dynamicWatcher.withLock { $0?.poll() ?? [] }
        for kind in changed { applyDynamicUpdate(kind) }
    }

    /// Re-reads `kind`'s file and applies it; the outcome is counted in the subscription's stats.
    /// The attempt is counted together with its outcome (one lock), after what the update
    /// changed, so /stats never shows an attempt without its result (the admin runs on its own
    /// thread; Envoy's on the main thread, which also applies the update).
    @discardableResult
    func applyDynamicUpdate(_ kind: SubscriptionKey) -> ReloadOutcome {
        reloadLock.withLock { _ in
            let (bootstrap, configText) = state.withLock { ($0.bootstrap, $0.configText) }
            let path = bootstrap.dynamic.sources[kind]?.path ?? "?"
            let loaded: LoadedBootstrap
            do throws(ConfigLoadError) {
                loaded = try BootstrapLoader.load(path: options.configPath, overlayYAML: options.configYAML,
                                                  configText: configText, previousDynamic: bootstrap.dynamic, rereading: kind,
                                                  secretTexts: bootstrap.secrets.texts)
            } catch {
                let failed = error.unparsableDynamicFiles.contains(kind)
                state.withLock {
                    $0.subscriptions[kind, default: SubscriptionCounters()].attempt += 1
                    if failed { $0.subscriptions[kind]!.failure += 1 } else { $0.subscriptions[kind]!.rejected += 1 }
                }
                let reason = error.errors.map(\.located).joined(separator: "; ")
                OpsLog.log(.warning, "config", "\(kind) update from \(path) \(failed ? "failed" : "rejected"), the last good version stays: \(reason)")
                return .rejected(reason: reason)
            }
            let outcome = reload(loaded.bootstrap, listenerSource: kind == .listener)
            if case .applied = outcome {
                if kind == .cluster { countRecreatedEDSClusters(old: bootstrap, new: loaded.bootstrap) }
                adoptSubscriptions(old: bootstrap, new: loaded.bootstrap)
            }
            state.withLock {
                $0.subscriptions[kind, default: SubscriptionCounters()].attempt += 1
                switch outcome {
                case .applied:
                    if kind == .cluster { $0.clusterManager.count(old: bootstrap, new: loaded.bootstrap) }
                    $0.subscriptions[kind]!.success += 1
                    $0.subscriptions[kind]!.version = XXHash64.hash(loaded.bootstrap.dynamic.versionInfo[kind] ?? "")
                    Self.countResourceChange(kind, old: bootstrap, new: loaded.bootstrap, into: &$0.subscriptions[kind]!)
                case .rejected:
                    $0.subscriptions[kind]!.rejected += 1
                }
            }
            if case .rejected(let reason) = outcome {
                OpsLog.log(.warning, "config", "\(kind) update from \(path) rejected, the last good version stays: \(reason)")
            } else {
                OpsLog.log(.info, "config", "\(kind) update from \(path) applied (version_info '\(loaded.bootstrap.dynamic.versionInfo[kind] ?? "")')")
            }
            return outcome
        }
    }

    /// A CDS update that changes an EDS cluster: Envoy re-creates the cluster, and its new EDS
    /// subscription reads the file (one more attempt and success, or empty) and publishes its
    /// first host set (`membership_change`, when it has hosts).
    private func countRecreatedEDSClusters(old: Bootstrap, new: Bootstrap) {
        let plane = currentPlane
        for c in new.clusters where c.discoveryType == .eds {
            guard let before = old.clusters.first(where: { $0.name == c.name }), before != c else { continue }
            let key = SubscriptionKey.endpoints(cluster: c.name)
            state.withLock { s in
                guard s.subscriptions[key] != nil else { return }
                s.subscriptions[key]!.attempt += 1
                s.subscriptions[key]!.success += 1
                s.subscriptions[key]!.version = XXHash64.hash(new.dynamic.versionInfo[key] ?? "")
                if new.dynamic.empty.contains(key) { s.subscriptions[key]!.empty += 1 }
            }
            // The compile counted a change of the host set already; a re-created cluster counts its first one.
            if !c.endpoints.isEmpty, Set(before.endpoints.map(\.address)) == Set(c.endpoints.map(\.address)),
               let resources = plane.activeClusters.first(where: { $0.name == c.name })?.resources {
                resources.membershipChange.wrappingAdd(1, ordering: .relaxed)
            }
        }
    }

    /// After a configuration with another set of subscriptions is applied (an LDS update naming
    /// another route configuration, a CDS update moving an EDS file, a reload): a new subscription
    /// counts its first read, a gone one is dropped, and the watcher follows the files (the old
    /// watcher stays if the new one cannot be set up).
    func adoptSubscriptions(old: Bootstrap, new: Bootstrap) {
        let sources = new.dynamic.sources
        guard old.dynamic.sources != sources else { return }
        let fresh = Self.initialSubscriptions(new)
        state.withLock { s in
            s.subscriptions = s.subscriptions.filter { sources[$0.key] != nil }
            for (key, counters) in fresh where s.subscriptions[key] == nil { s.subscriptions[key] = counters }
        }
        dynamicWatcher.withLock { slot in
            do throws(DynamicConfigWatcher.WatchError) {
                slot = sources.isEmpty ? nil : try DynamicConfigWatcher(sources)
            } catch {
                OpsLog.log(.error, "config", "\(error.description); the files watched before stay watched")
            }
        }
    }

    /// EDS / RDS: `update_empty`, `update_no_rebuild` (same endpoints) and `config_reload` (other routes).
    private static func countResourceChange(_ key: SubscriptionKey, old: Bootstrap, new: Bootstrap, into counters: inout SubscriptionCounters) {
        if new.dynamic.empty.contains(key) {
            counters.empty += 1
            return
        }
        switch key {
        case .endpoints(let name):
            let before = old.clusters.first { $0.name == name }?.endpoints
            if before == new.clusters.first(where: { $0.name == name })?.endpoints { counters.noRebuild += 1 }
        case .routes(let name):
            if old.dynamic.routeConfigs[name] != new.dynamic.routeConfigs[name] { counters.configReload += 1 }
        case .listener, .cluster:
            break
        }
    }
}
