import EventLoop

/// One worker's precomputed picks for a cluster with priority levels or locality weighting, as
/// Envoy 1.40's load balancer base computes them: each priority's health (1.4 x its healthy
/// share, the overprovisioning factor 140, capped at 100), the priority loads (health spilled in
/// priority order, scaled when the total is below 100), panic per priority (or total panic by
/// host counts when no priority has health), and with `locality_weighted_lb_config` each
/// locality's effective weight (its weight x its capped availability). Rebuilt only when the
/// cluster plan or a host's health changes; a pick allocates nothing. docs/health-checks.md.
struct PriorityTable {
    /// What the table was built from: the plan object and `ClusterHealth.version` (-1: never).
    var plan: ObjectIdentifier? = nil
    var healthVersion = -1
    /// Cumulative load per priority, percent: priority p takes draws below `cumulative[p]`.
    var cumulative: [Int] = []
    var levels: [Level] = []
    var groups: [Group] = []

    struct Level {
        /// Its groups in `groups`: the whole level first, then its localities (when weighted).
        var whole = 0
        var localities: Range<Int> = 0..<0
        var panic = false
        /// The localities' effective weights' sum (0: pick from the whole level).
        var localityTotal = 0
    }

    /// Candidate hosts (host indices in the cluster) with their weights and smooth
    /// weighted-round-robin state; for a locality, its effective weight and state among its level's.
    struct Group {
        var hosts: [Int] = []
        var weights: [Int] = []
        var current: [Int] = []
        var totalWeight = 0
        var equalWeights = true
        var cursor = 0
        var localityWeight = 0
        var localityCurrent = 0
    }

    /// Smooth weighted round robin (equal weights: plain rotation): an exact share per cycle.
    mutating func nextInGroup(_ g: Int) -> Int {
        if groups[g].equalWeights {
            let i = groups[g].cursor % groups[g].hosts.count
            groups[g].cursor = i + 1
            return groups[g].hosts[i]
        }
        var best = 0
        for i in 0..<groups[g].hosts.count {
            groups[g].current[i] += groups[g].weights[i]
            if groups[g].current[i] > groups[g].current[best] { best = i }
        }
        groups[g].current[best] -= groups[g].totalWeight
        return groups[g].hosts[best]
    }

    /// The level's locality by smooth weighted round robin over effective weights.
    mutating func nextLocality(_ level: Int) -> Int {
        let range = levels[level].localities
        var best = -1
        for g in range where groups[g].localityWeight > 0 {
            groups[g].localityCurrent += groups[g].localityWeight
            if best < 0 || groups[g].localityCurrent > groups[best].localityCurrent { best = g }
        }
        groups[best].localityCurrent -= levels[level].localityTotal
        return best
    }

    /// An empty table (built on its cluster's first pick).
    init() {}

    /// Builds the table from the cluster's hosts and their health now.
    init(_ cluster: ClusterPlan, worker: Int) {
        plan = ObjectIdentifier(cluster)
        healthVersion = cluster.health?.version.load(ordering: .relaxed) ?? 0
        let n = cluster.hosts.count
        let count = cluster.priorityCount
        func healthy(_ h: Int) -> Bool { cluster.health?.isHealthy(h) ?? true }
        var total = [Int](repeating: 0, count: count)
        var healthyCount = [Int](repeating: 0, count: count)
        for (h, host) in cluster.hosts.enumerated() {
            total[host.priority] += 1
            if healthy(h) { healthyCount[host.priority] += 1 }
        }
        let factor = cluster.overprovisioningFactor
        let health = (0..<count).map { p in total[p] == 0 ? 0 : min(100, factor * healthyCount[p] / total[p]) }
        let normalized = min(100, health.reduce(0, +))
        var load = [Int](repeating: 0, count: count)
        var panic = [Bool](repeating: false, count: count)
        if normalized == 0 {
            // Total panic (Envoy's recalculateLoadInTotalPanic): every priority by its host count.
            var left = 100
            for p in 0..<count where n > 0 {
                load[p] = total[p] * 100 / n
                left -= load[p]
                panic[p] = true
            }
            if let first = (0..<count).first(where: { total[$0] > 0 }) { load[first] += left }
        } else {
            var left = 100
            for p in 0..<count {
                load[p] = min(left, health[p] * 100 / normalized)
                left -= load[p]
            }
            if left > 0, let first = (0..<count).first(where: { load[$0] > 0 }) { load[first] += left }
            for p in 0..<count where normalized < 100 && total[p] > 0 {
                panic[p] = Double(100 * healthyCount[p] / total[p]) < cluster.healthyPanicThresholdPercent
            }
        }
        var running = 0
        cumulative = load.map { running += $0; return running }
        for p in 0..<count {
            var level = Level()
            level.panic = panic[p]
            let eligible = (0..<n).filter { cluster.hosts[$0].priority == p && (panic[p] || healthy($0)) }
            level.whole = groups.count
            groups.append(Self.group(eligible, cluster, worker: worker))
            if cluster.localityWeighted {
                let start = groups.count
                var seen: [Int] = []
                for h in 0..<n where cluster.hosts[h].priority == p && !seen.contains(cluster.hosts[h].locality) {
                    seen.append(cluster.hosts[h].locality)
                }
                for locality in seen {
                    let all = (0..<n).filter { cluster.hosts[$0].priority == p && cluster.hosts[$0].locality == locality }
                    let usable = all.filter { panic[p] || healthy($0) }
                    var g = Self.group(usable, cluster, worker: worker)
                    // Envoy: weight x min(1, overprovisioning x available share), here in hundredths.
                    g.localityWeight = usable.isEmpty ? 0 : cluster.localityWeights[locality] * min(100, factor * usable.count / all.count)
                    level.localityTotal += g.localityWeight
                    groups.append(g)
                }
                level.localities = start..<groups.count
            }
            levels.append(level)
        }
    }

    private static func group(_ hosts: [Int], _ cluster: ClusterPlan, worker: Int) -> Group {
        var g = Group()
        g.hosts = hosts
        g.weights = hosts.map { max(1, cluster.hosts[$0].weight) }
        g.current = [Int](repeating: 0, count: hosts.count)
        g.totalWeight = g.weights.reduce(0, +)
        g.equalWeights = Set(g.weights).count <= 1
        g.cursor = worker  // workers start at different hosts, as for plain round robin
        return g
    }
}

extension ProxyWorker {
    /// The host (index in the cluster) for the next request to a prioritized cluster: a priority
    /// by its load (a random draw, as Envoy's), a locality by weight when locality-weighted, then
    /// a host of it by the cluster's policy.
    func pickPrioritizedHost(_ ci: Int) -> Int {
        let cluster = plane.clusters[ci]
        let version = cluster.health?.version.load(ordering: .relaxed) ?? 0
        if priorityTables[ci].healthVersion != version || priorityTables[ci].plan != ObjectIdentifier(cluster) {
            priorityTables[ci] = PriorityTable(cluster, worker: index)  // health or hosts changed: not per pick
        }
        let draw = Int(rng.next() % 100)
        var level = 0
        while level < priorityTables[ci].cumulative.count - 1 && draw >= priorityTables[ci].cumulative[level] { level += 1 }
        if priorityTables[ci].levels[level].panic, let cs = clusterStats(ci) { inc(cs.lbHealthyPanic) }
        var g = priorityTables[ci].levels[level].whole
        if cluster.localityWeighted && priorityTables[ci].levels[level].localityTotal > 0 {
            g = priorityTables[ci].nextLocality(level)
        }
        let count = priorityTables[ci].groups[g].hosts.count
        guard count > 0 else { return 0 }
        switch cluster.lbPolicy {
        case .random:
            var r = Int(rng.next() % UInt64(priorityTables[ci].groups[g].totalWeight))
            for (i, w) in priorityTables[ci].groups[g].weights.enumerated() {
                if r < w { return priorityTables[ci].groups[g].hosts[i] }
                r -= w
            }
            return priorityTables[ci].groups[g].hosts[0]
        case .leastRequest:
            // Power of `choices` choices by active requests per weight among the candidates.
            let pools = clusterPools[ci]
            func cost(_ i: Int) -> Double {
                let h = priorityTables[ci].groups[g].hosts[i]
                return Double(upstreamPools[pools[h]].activeRequests + 1) / Double(priorityTables[ci].groups[g].weights[i])
            }
            var best = Int(rng.next() % UInt64(count))
            for _ in 1..<cluster.leastRequestChoices {
                let other = Int(rng.next() % UInt64(count))
                if cost(other) < cost(best) { best = other }
            }
            return priorityTables[ci].groups[g].hosts[best]
        case .roundRobin, .clusterProvided, .ringHash:
            return priorityTables[ci].nextInGroup(g)
        }
    }
}
