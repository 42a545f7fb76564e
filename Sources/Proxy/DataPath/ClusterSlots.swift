/// Assigns clusters to slots of `DataPlane.clusters` while a snapshot is compiled (CDS updates
/// and reloads add and remove clusters; docs/dynamic-config.md, "Cluster slots"):
/// - a cluster of the previous snapshot keeps its slot (streams, pools, per-worker counters
///   and the route tables of older snapshots hold slot numbers);
/// - a cluster that is gone leaves a tombstone in its slot;
/// - a new cluster (a re-added name too: Envoy starts it afresh) takes a tombstone's slot once
///   `canReclaim` says nothing refers to it any more, else a new slot at the end.
struct ClusterSlots {
    /// The slots; nil: to be filled by `slot(for:)` (every nil is filled before the snapshot is built).
    var plans: [ClusterPlan?]
    /// The previous snapshot's configured clusters, by name.
    let previousLive: [String: ClusterPlan]
    private var reusable: [Int]

    init(previous: DataPlane?, keeping names: Set<String>, generation: UInt32, canReclaim: (ClusterPlan) -> Bool) {
        let slots = previous?.clusters ?? []
        var live: [String: ClusterPlan] = [:]
        for c in previous?.activeClusters ?? [] { live[c.name] = c }
        previousLive = live
        plans = []
        reusable = []
        for c in slots {
            if c.removed {
                if canReclaim(c) {
                    plans.append(nil)
                    reusable.append(c.index)
                } else {
                    plans.append(c)
                }
            } else if names.contains(c.name) {
                plans.append(nil)  // kept: the compile fills it
            } else {
                plans.append(c.tombstone(removedIn: generation))
            }
        }
        reusable.reverse()  // lowest first
    }

    /// The slot of cluster `name`: its previous one, a reclaimed tombstone's, or a new one.
    mutating func slot(for name: String) -> Int {
        if let kept = previousLive[name] { return kept.index }
        if let free = reusable.popLast() { return free }
        plans.append(nil)
        return plans.count - 1
    }

    /// Reclaimed slots no new cluster took: they stay tombstones of what was there.
    mutating func finish(previous: DataPlane?) {
        for i in reusable { plans[i] = previous?.clusters[i] }
        reusable = []
    }
}
