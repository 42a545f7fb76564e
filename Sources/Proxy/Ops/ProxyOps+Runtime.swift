import AdminHTTP
import Glibc

/// `layered_runtime` while running: the admin layer (`/runtime_modify`), disk layers re-read
/// when their symlink is swapped (moved onto `symlink_root`, Envoy's watch), `/runtime`. Every
/// change is merged over the layers in order and stored into the snapshot's `RuntimeValues`
/// (one atomic per key the fault filters read), which workers read per request without a lock.
extension ProxyOps {
    /// The layers (of `bootstrap`, else the running one) with their current entries, in order.
    func runtimeLayers(_ bootstrap: Bootstrap? = nil) -> [(layer: RuntimeLayer, entries: [String: String])] {
        state.withLock { s in
            (bootstrap ?? s.bootstrap).runtime.layers.map { layer in
                switch layer.kind {
                case .staticLayer: (layer, layer.entries)
                case .disk: (layer, s.runtimeDisk[layer.name] ?? layer.entries)
                case .admin: (layer, s.runtimeAdmin)
                }
            }
        }
    }

    /// Stores the merged layers into `plane`'s values (before a snapshot goes out, and on changes).
    func publishRuntime(_ plane: DataPlane, _ bootstrap: Bootstrap? = nil) {
        plane.runtime.publish(RuntimeValues.merge(runtimeLayers(bootstrap).map(\.entries)))
    }

    /// A reload re-read the disk layers: they become the live ones.
    func adoptRuntime(_ bootstrap: Bootstrap) {
        state.withLock { s in
            for layer in bootstrap.runtime.layers { if case .disk = layer.kind { s.runtimeDisk[layer.name] = layer.entries } }
        }
    }

    /// Envoy's `/runtime` JSON: the layer names, and per key its value in each layer ("" when
    /// the layer does not set it) and the final one.
    func runtimeJSON() -> String {
        let layers = runtimeLayers()
        let keys = Set(layers.flatMap { $0.entries.keys }).sorted()
        let merged = RuntimeValues.merge(layers.map(\.entries))
        let entries = keys.map { key in
            let values = layers.map { JSONText.string($0.entries[key] ?? "") }.joined(separator: ", ")
            return "  \(JSONText.string(key)): {\"final_value\": \(JSONText.string(merged[key] ?? "")), \"layer_values\": [\(values)]}"
        }
        return "{\"entries\": {\n" + entries.joined(separator: ",\n") + "\n}, \"layers\": [" + layers.map { JSONText.string($0.layer.name) }.joined(separator: ", ") + "]}\n"
    }

    /// `POST /runtime_modify?key=value&...`: sets (or with an empty value removes) admin-layer
    /// keys. Only keys Ballast applies live (the fault filters') with unsigned integer values;
    /// anything else is refused naming it, and nothing is changed.
    func runtimeModify(_ query: String) -> AdminServer.Response {
        let plane = currentPlane
        guard state.withLock({ $0.bootstrap.runtime.layers.contains { $0.kind == .admin } }) else {
            return AdminServer.Response(status: 503, body: "No admin layer specified\n")
        }
        var changes: [(String, String)] = []
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            guard plane.runtime.keys.contains(key) else {
                let applied = plane.runtime.keys.isEmpty ? "none: no fault filter reads a runtime key" : plane.runtime.keys.joined(separator: ", ")
                return AdminServer.Response(status: 400, body: "runtime key '\(key)' is not applied live by ballast (applied: \(applied))\n")
            }
            guard value.isEmpty || RuntimeValues.parse(value) != nil else {
                return AdminServer.Response(status: 400, body: "runtime key '\(key)': expected an unsigned integer, got '\(value)'\n")
            }
            changes.append((key, value))
        }
        guard !changes.isEmpty else { return AdminServer.Response(status: 400, body: "usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n") }
        reloadLock.withLock { _ in
            state.withLock { s in
                for (key, value) in changes { s.runtimeAdmin[key] = value.isEmpty ? nil : value }
            }
            publishRuntime(currentPlane)
        }
        OpsLog.log(.info, "runtime", "admin layer: " + changes.map { "\($0.0)=\($0.1)" }.joined(separator: ", "))
        return AdminServer.Response(body: "OK\n")
    }

    /// A disk layer's symlink was swapped: re-read every disk layer and apply them, unless a
    /// file sets a key Ballast does not apply live or a value is not an integer (then the last
    /// good version stays, as after a bad dynamic-config file). Main loop and tests.
    public func pollRuntimeDisk() {
        guard runtimeWatcher.withLock({ $0?.poll() ?? false }) else { return }
        reloadRuntimeDisk()
    }

    @discardableResult
    func reloadRuntimeDisk() -> String? {
        reloadLock.withLock { _ -> String? in
            let plane = currentPlane
            let layers = state.withLock { $0.bootstrap.runtime.layers }
            var fresh: [String: [String: String]] = [:]
            for layer in layers {
                guard case .disk(let disk) = layer.kind else { continue }
                switch disk.read() {
                case .success(let entries):
                    for (key, value) in entries.sorted(by: { $0.key < $1.key }) {
                        if !plane.runtime.keys.contains(key) {
                            return rejectRuntime("runtime key '\(key)' (file under \(disk.directory)) is not applied by ballast (applied live: \(plane.runtime.keys.joined(separator: ", ")))")
                        }
                        if RuntimeValues.parse(value) == nil {
                            return rejectRuntime("runtime key '\(key)' (file under \(disk.directory)): expected an unsigned integer, got '\(value)'")
                        }
                    }
                    fresh[layer.name] = entries
                case .failure(let e):
                    return rejectRuntime(e.description)
                }
            }
            state.withLock { s in
                for (name, entries) in fresh { s.runtimeDisk[name] = entries }
                s.runtimeLoads += 1
            }
            publishRuntime(plane)
            OpsLog.log(.info, "runtime", "disk layer(s) reloaded")
            return nil
        }
    }

    private func rejectRuntime(_ reason: String) -> String {
        state.withLock { $0.runtimeLoadErrors += 1 }
        OpsLog.log(.error, "runtime", "disk layer reload rejected, the last good values stay: \(reason)")
        return reason
    }
}

/// inotify on the directories holding the disk layers' `symlink_root`: a change is a file moved
/// onto that name (`mv -T new current`, the atomic swap Envoy watches for).
final class RuntimeDiskWatcher {
    private let fd: Int32
    private var watches: [(descriptor: Int32, name: String)] = []
    private var buffer = [UInt8](repeating: 0, count: 8192)

    init?(_ layers: [RuntimeLayer]) {
        let disks = layers.compactMap { layer -> DiskLayerConfig? in
            if case .disk(let d) = layer.kind { return d }
            return nil
        }
        guard !disks.isEmpty else { return nil }
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        for disk in disks {
            let (directory, name) = disk.watchedDirectory
            let wd = inotify_add_watch(fd, directory, UInt32(IN_MOVED_TO))
            if wd >= 0 {
                watches.append((wd, name))
            } else {
                OpsLog.log(.warning, "runtime", "cannot watch '\(directory)' for the disk layer: \(String(cString: strerror(errno)))")
            }
        }
    }

    deinit { close(fd) }

    /// True when a watched symlink root was replaced since the last call.
    func poll() -> Bool {
        var changed = false
        InotifyEvents.drain(fd, buffer: &buffer) { wd, mask, name in
            if mask & UInt32(IN_MOVED_TO) != 0 && watches.contains(where: { $0.descriptor == wd && $0.name == name }) { changed = true }
        }
        return changed
    }
}
