/// Envoy's `sds.<secret name>.*` stats of one secret read from a file.
struct SecretCounters: Sendable, Equatable {
    var subscription = SubscriptionCounters()
    /// Re-reads of the files the secret names (a move into their directory) that failed.
    var keyRotationFailed = 0
    /// Secret deliveries its contexts took: updates and key rotations applied, the first at start
    /// included (`ssl_context_update_by_sds`).
    var contextUpdates = 0
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
                attempt: 1, success: 1, version: XXHash64.hash(bootstrap.secrets.versionInfo[name] ?? "")), contextUpdates: 1)
        }
        return result
    }

    var secretCounters: [String: SecretCounters] { state.withLock { $0.secretCounters } }

    /// Applies the secret files replaced, and the named files moved, since the last call. Main
    /// loop (every turn) and tests. The watcher follows the configuration's secrets and files.
    public func pollSecretFiles() {
        let changes = secretWatcher.withLock { $0?.poll() ?? SecretFileWatcher.Changes() }
        if !changes.files.isEmpty { applySecretUpdate(changes.files) }
        // A secret whose own file was replaced was re-read with its named files just now.
        let current = state.withLock { $0.bootstrap.secrets }
        let replaced = Set(changes.files.flatMap { current.names(readFrom: $0) })
        let rotations = changes.keyFiles.filter { !replaced.contains($0.key) }
        if !rotations.isEmpty { applyKeyRotation(rotations) }
        let secrets = state.withLock { s in
            // A secret first named by a later configuration (an LDS / CDS update, a reload) was read once.
            for name in s.bootstrap.secrets.sources.keys where s.secretCounters[name] == nil {
                s.secretCounters[name] = Self.initialSecretCounters(s.bootstrap)[name]
            }
            return s.bootstrap.secrets
        }
        secretWatcher.withLock { slot in
            guard let current = slot, current.sources != secrets.sources || current.files != secrets.files else { return }
            do throws(DynamicConfigWatcher.WatchError) { slot = try SecretFileWatcher(secrets) } catch {
                OpsLog.log(.warning, "config", "SDS: \(error.description); the files keep their last watch")
            }
        }
    }

    /// A file a secret names was moved into its directory (`callbacks`: per secret, the named
    /// files in directories that saw a move): the configuration is compiled again from the texts
    /// as they are (the named files re-read); a secret whose certificate or CA changed is
    /// published as an update of its contexts, as Envoy's key rotation; a failure counts
    /// `key_rotation_failed` once per callback, as Envoy's one watch per file does.
    func applyKeyRotation(_ callbacks: [String: Int]) {
        reloadLock.withLock { _ in
            let (bootstrap, configText) = state.withLock { s -> (Bootstrap, String?) in (s.bootstrap, s.configText) }
            let loaded: LoadedBootstrap
            do throws(ConfigLoadError) {
                loaded = try BootstrapLoader.load(path: options.configPath, overlayYAML: options.configYAML, configText: configText,
                                                  previousDynamic: bootstrap.dynamic, rereading: nil, secretTexts: bootstrap.secrets.texts)
            } catch {
                state.withLock { s in for (name, n) in callbacks { s.secretCounters[name]?.keyRotationFailed += n } }
                let reason = error.errors.map(\.located).joined(separator: "; ")
                OpsLog.log(.warning, "config", "SDS key rotation of \(callbacks.keys.sorted().joined(separator: ", ")) failed, the last good files stay: \(reason)")
                return
            }
            let rotated = callbacks.keys.sorted().filter { Self.material(bootstrap, $0) != Self.material(loaded.bootstrap, $0) }
            guard !rotated.isEmpty else { return }
            let outcome = reload(loaded.bootstrap, listenerSource: false)
            state.withLock { s in
                for name in rotated {
                    if case .applied = outcome { s.secretCounters[name]?.contextUpdates += 1 } else { s.secretCounters[name]?.keyRotationFailed += 1 }
                }
            }
            OpsLog.log(.info, "config", "SDS key rotation of \(rotated.joined(separator: ", ")): \(outcome)")
        }
    }

    /// The certificates, keys and CAs of the contexts that use secret `name`.
    static func material(_ bootstrap: Bootstrap, _ name: String) -> [String?] {
        var contexts = bootstrap.clusters.compactMap(\.tls)
        for l in bootstrap.listeners { contexts += (l.filterChains + (l.defaultFilterChain.map { [$0] } ?? [])).compactMap(\.tls) }
        return contexts.filter { $0.secretNames.contains(name) }.flatMap { [$0.certificateChain, $0.privateKey, $0.trustedCA] }
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
                                                  previousDynamic: bootstrap.dynamic, rereading: nil, secretTexts: texts)
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
            let outcome = reload(loaded.bootstrap, listenerSource: false)
            state.withLock { s in
                for name in names {
                    switch outcome {
                    case .applied:
                        s.secretCounters[name]!.subscription.success += 1
                        s.secretCounters[name]!.contextUpdates += 1
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
    /// delivery of a secret its contexts use (updates and key rotations), the first at start included.
    static func sdsContextUpdates(_ bootstrap: Bootstrap, _ counters: [String: SecretCounters]) -> (listeners: [Int: Int], clusters: [String: Int]) {
        func updates(_ tls: TLSConfig?) -> Int { tls?.secretNames.reduce(0) { $0 + (counters[$1]?.contextUpdates ?? 0) } ?? 0 }
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
