/// Envoy's `sds.<secret name>.*` stats of one secret read from a file.
struct SecretCounters: Sendable, Equatable {
    var subscription = SubscriptionCounters()
    /// Always 0: Ballast does not watch the files a secret names (docs/tls.md).
    var keyRotationFailed = 0
}

/// SDS from files: a replaced secret file is re-read and, with every other file's last good text
/// (LDS, CDS and the other secrets) and the bootstrap as read at start, compiled and published
/// through the reload machinery, so new handshakes use the new certificate while connections
/// already open keep theirs. A file that fails keeps the last good secret, logs why with its
/// path, and is counted for each secret it holds as Envoy counts it (docs/tls.md).
extension ProxyOps {
    /// Counters as at start: each secret was read once, successfully.
    static func initialSecretCounters(_ bootstrap: Bootstrap) -> [String: SecretCounters] {
        var result: [String: SecretCounters] = [:]
        for name in bootstrap.secrets.sources.keys {
            result[name] = SecretCounters(subscription: SubscriptionCounters(
                attempt: 1, success: 1, version: XXHash64.hash(bootstrap.secrets.versionInfo[name] ?? "")))
        }
        return result
    }

    var secretCounters: [String: SecretCounters] { state.withLock { $0.secretCounters } }

    /// Applies the secret files replaced since the last call. Main loop (every turn) and tests.
    public func pollSecretFiles() {
        let changed = secretWatcher.withLock { $0?.poll() ?? [] }
        if !changed.isEmpty { applySecretUpdate(changed) }
    }

    /// Re-reads the SDS files at `paths` and applies them; counted for every secret they hold.
    @discardableResult
    func applySecretUpdate(_ paths: Set<String>) -> ReloadOutcome {
        reloadLock.withLock { _ in
            let (bootstrap, configText) = state.withLock { s -> (Bootstrap, String?) in (s.bootstrap, s.configText) }
            let names = paths.sorted().flatMap { bootstrap.secrets.names(readFrom: $0) }
            state.withLock { s in for name in names { s.secretCounters[name, default: SecretCounters()].subscription.attempt += 1 } }
            var texts = bootstrap.secrets.texts
            for path in paths { texts[path] = nil }
            let files = paths.sorted().joined(separator: ", ")
            let loaded: LoadedBootstrap
            do throws(ConfigLoadError) {
                loaded = try BootstrapLoader.load(path: options.configPath, overlayYAML: options.configYAML, configText: configText,
                                                  dynamicTexts: bootstrap.dynamic.texts, secretTexts: texts)
            } catch {
                let unparsable = error.unparsableSecretFiles
                state.withLock { s in
                    for path in paths.sorted() {
                        for name in bootstrap.secrets.names(readFrom: path) {
                            if unparsable.contains(path) { s.secretCounters[name]!.subscription.failure += 1 } else { s.secretCounters[name]!.subscription.rejected += 1 }
                        }
                    }
                }
                let reason = error.errors.map(\.located).joined(separator: "; ")
                OpsLog.log(.warning, "config", "SDS update from \(files) rejected, the last good secret stays: \(reason)")
                return .rejected(reason: reason)
            }
            let outcome = reload(loaded.bootstrap)
            state.withLock { s in
                for name in names {
                    switch outcome {
                    case .applied:
                        s.secretCounters[name]!.subscription.success += 1
                        s.secretCounters[name]!.subscription.version = XXHash64.hash(loaded.bootstrap.secrets.versionInfo[name] ?? "")
                    case .rejected:
                        s.secretCounters[name]!.subscription.rejected += 1
                    }
                }
            }
            if case .rejected(let reason) = outcome {
                OpsLog.log(.warning, "config", "SDS update from \(files) rejected, the last good secret stays: \(reason)")
            } else {
                OpsLog.log(.info, "config", "SDS update from \(files) applied (secrets \(names.joined(separator: ", ")))")
            }
            return outcome
        }
    }

    /// `ssl_context_update_by_sds` of each listener (by index) and cluster (by name): every
    /// successful delivery of a secret its contexts use, the first one at start included.
    static func sdsContextUpdates(_ bootstrap: Bootstrap, _ counters: [String: SecretCounters]) -> (listeners: [Int: Int], clusters: [String: Int]) {
        func updates(_ tls: TLSConfig?) -> Int { tls?.secretNames.reduce(0) { $0 + (counters[$1]?.subscription.success ?? 0) } ?? 0 }
        var listeners: [Int: Int] = [:]
        for (i, l) in bootstrap.listeners.enumerated() {
            let chains = l.filterChains + (l.defaultFilterChain.map { [$0] } ?? [])
            if chains.contains(where: { !($0.tls?.secretNames.isEmpty ?? true) }) { listeners[i] = chains.reduce(0) { $0 + updates($1.tls) } }
        }
        var clusters: [String: Int] = [:]
        for c in bootstrap.clusters where !(c.tls?.secretNames.isEmpty ?? true) { clusters[c.name] = updates(c.tls) }
        return (listeners, clusters)
    }
}
