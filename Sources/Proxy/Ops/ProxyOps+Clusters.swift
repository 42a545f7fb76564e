/// Envoy's `cluster_manager.*` figures: clusters added (at start too), modified and removed by
/// CDS updates and reloads; `active_clusters` is the snapshot's cluster count (no cluster warms:
/// a new cluster serves from the snapshot that adds it; health-checked ones are checked first).
struct ClusterManagerCounters: Sendable, Equatable {
    var added = 0
    var modified = 0
    var removed = 0
    /// Per dynamic cluster: the CDS `version_info` that added or last changed it, and when
    /// (`/config_dump`'s `version_info` and `last_updated`, as Envoy keeps them per cluster).
    var versions: [String: String] = [:]
    var updatedMillis: [String: Int64] = [:]

    init(_ bootstrap: Bootstrap) {
        added = bootstrap.clusters.count
        let read = bootstrap.dynamic.readTimes.subscriptionMillis[.cluster] ?? bootstrap.dynamic.readTimes.bootstrapMillis
        for c in bootstrap.clusters where bootstrap.dynamic.isDynamic(.cluster, c.name) {
            versions[c.name] = bootstrap.dynamic.versionInfo[.cluster] ?? ""
            updatedMillis[c.name] = read
        }
    }

    /// Counts what `new` adds, changes and removes against `old`, as Envoy's cluster manager.
    mutating func count(old: Bootstrap, new: Bootstrap) {
        var before: [String: ClusterConfig] = [:]
        for c in old.clusters { before[c.name] = c }
        let version = new.dynamic.versionInfo[.cluster] ?? ""
        let read = new.dynamic.readTimes.subscriptionMillis[.cluster] ?? new.dynamic.readTimes.bootstrapMillis
        for c in new.clusters {
            let dynamic = new.dynamic.isDynamic(.cluster, c.name)
            if let was = before.removeValue(forKey: c.name) {
                guard was != c else { continue }
                modified += 1
            } else {
                added += 1
            }
            if dynamic {
                versions[c.name] = version
                updatedMillis[c.name] = read
            }
        }
        removed += before.count
        for name in before.keys {
            versions[name] = nil
            updatedMillis[name] = nil
        }
        versions = versions.filter { name, _ in new.dynamic.isDynamic(.cluster, name) }
        updatedMillis = updatedMillis.filter { name, _ in new.dynamic.isDynamic(.cluster, name) }
    }
}
