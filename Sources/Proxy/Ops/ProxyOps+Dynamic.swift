import EventLoop

/// Envoy's per-subscription stats (`listener_manager.lds.*`, `cluster_manager.cds.*`).
struct SubscriptionCounters: Sendable, Equatable {
    var attempt = 0
    var success = 0
    /// The file parsed but its resources were refused (or the update cannot be applied).
    var rejected = 0
    /// The file could not be read or is not valid YAML / JSON.
    var failure = 0
    /// xxHash64 of the last applied `version_info`.
    var version: UInt64 = 0
}

/// File-based LDS / CDS updates: a replaced file is re-read and, with the other source's last
/// good text and the bootstrap as read at start, compiled and published through the reload
/// machinery (requests in flight finish on their snapshot). A file that fails keeps the last good
/// version, logs why with its path, and is counted as Envoy counts it.
extension ProxyOps {
    /// Counters as at start: each configured source was read once, successfully.
    static func initialSubscriptions(_ bootstrap: Bootstrap) -> [DynamicResourceKind: SubscriptionCounters] {
        var result: [DynamicResourceKind: SubscriptionCounters] = [:]
        for kind in DynamicResourceKind.allCases where bootstrap.dynamicResources?.source(kind) != nil {
            result[kind] = SubscriptionCounters(attempt: 1, success: 1, version: XXHash64.hash(bootstrap.dynamic.versionInfo[kind] ?? ""))
        }
        return result
    }

    var subscriptions: [DynamicResourceKind: SubscriptionCounters] { state.withLock { $0.subscriptions } }

    /// Applies the updates of every source whose file was replaced since the last call. Main
    /// loop (every turn) and tests.
    public func pollDynamicConfig() {
        let changed = dynamicWatcher.withLock { $0?.poll() ?? [] }
        for kind in changed { applyDynamicUpdate(kind) }
    }

    /// Re-reads `kind`'s file and applies it; the outcome is counted in the subscription's stats.
    @discardableResult
    func applyDynamicUpdate(_ kind: DynamicResourceKind) -> ReloadOutcome {
        reloadLock.withLock { _ in
            let (bootstrap, configText) = state.withLock { s -> (Bootstrap, String?) in
                s.subscriptions[kind, default: SubscriptionCounters()].attempt += 1
                return (s.bootstrap, s.configText)
            }
            let path = bootstrap.dynamicResources?.source(kind)?.path ?? "?"
            var texts = bootstrap.dynamic.texts
            texts[kind] = nil
            let loaded: LoadedBootstrap
            do throws(ConfigLoadError) {
                loaded = try BootstrapLoader.load(path: options.configPath, overlayYAML: options.configYAML,
                                                  configText: configText, dynamicTexts: texts, secretTexts: bootstrap.secrets.texts)
            } catch {
                let failed = error.unparsableDynamicFiles.contains(kind)
                state.withLock {
                    if failed { $0.subscriptions[kind]!.failure += 1 } else { $0.subscriptions[kind]!.rejected += 1 }
                }
                let reason = error.errors.map(\.located).joined(separator: "; ")
                OpsLog.log(.warning, "config", "\(kind.configField) update from \(path) \(failed ? "failed" : "rejected"), the last good version stays: \(reason)")
                return .rejected(reason: reason)
            }
            let outcome = reload(loaded.bootstrap)
            state.withLock {
                switch outcome {
                case .applied:
                    $0.subscriptions[kind]!.success += 1
                    $0.subscriptions[kind]!.version = XXHash64.hash(loaded.bootstrap.dynamic.versionInfo[kind] ?? "")
                case .rejected:
                    $0.subscriptions[kind]!.rejected += 1
                }
            }
            if case .rejected(let reason) = outcome {
                OpsLog.log(.warning, "config", "\(kind.configField) update from \(path) rejected, the last good version stays: \(reason)")
            } else {
                OpsLog.log(.info, "config", "\(kind.configField) update from \(path) applied (version_info '\(loaded.bootstrap.dynamic.versionInfo[kind] ?? "")')")
            }
            return outcome
        }
    }
}
