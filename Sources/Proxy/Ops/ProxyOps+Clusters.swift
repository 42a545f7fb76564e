/// Envoy's `cluster_manager.*` figures: clusters added (at start too), modified and removed by
/// CDS updates and reloads; `active_clusters` is the snapshot's cluster count (no cluster warms:
/// a new cluster serves from the snapshot that adds it; health-checked ones are checked first).
struct ClusterManagerCounters: Sendable, Equatable {
    var added = 0
    var modified = 0
    var removed = 0
    /// Per dynamic cluster: the CDS `version_info` that added or last changed it (`/config_dump`).
    var versions: [String: String] = [:]

    init(_ bootstrap: Bootstrap) {
        added = bootstrap.clusters.count
        for c in bootstrap.clusters where bootstrap.dynamic.isDynamic(.cluster, c.name) {
            versions[c.name] = bootstrap.dynamic.versionInfo[.cluster] ?? ""
        }
    }

    /// Counts what `new` adds, changes and removes against `old`, as Envoy's cluster manager.
    mutating func count(old: Bootstrap, new: Bootstrap) {
        var before: [String: ClusterConfig] = [:]
        for c in old.clusters { before[c.name] = c }
        let version = new.dynamic.versionInfo[.cluster] ?? ""
        for c in new.clusters {
            let dynamic = new.dynamic.isDynamic(.cluster, c.name)
            if let was = before.removeValue(forKey: c.name) {
                guard was != c else { continue }
                modified += 1
            } else {
                added += 1
            }
            if dynamic { versions[c.name] = version }
        }
        removed += before.count
        for name in before.keys { versions[name] = nil }
        versions = versions.filter { name, _ in new.dynamic.isDynamic(.cluster, name) }
    }
}
