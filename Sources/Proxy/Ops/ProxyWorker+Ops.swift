import EventLoop
import Glibc

/// Reload and drain state of one proxy worker (its loop thread only).
struct WorkerOpsState {
    /// The data-plane generation new streams start under.
    var generation: UInt32 = 0
    /// Streams alive that started under `generation`.
    var live = 0
    /// Earlier HTTP plans, kept while streams that started under them are alive.
    var retired: [RetiredPlan] = []
    /// Draining: the listener is shut, every response says `connection: close`.
    var draining = false
}

struct RetiredPlan {
    let generation: UInt32
    let httpPlans: [HTTPPlan]
    var live: Int
}

/// What the per-request paths test of a connection manager without reading (retaining) its plan.
struct HTTPTraits {
    /// The connection manager has `tracing`.
    let tracing: Bool
    /// Some route's response headers read the request with %REQ(...)%.
    let readsRequest: Bool

    init(_ plan: HTTPPlan) {
        tracing = plan.tracing != nil
        readsRequest = plan.responseReadsRequest
    }
}

/// Operations on the worker's loop thread: snapshots published by a reload, drain, and the
/// figures the main thread merges (latency histograms, per-cluster counters).
extension ProxyWorker {
    /// A new stream: it resolves its route indices in the current generation's plan.
    @inline(__always)
    func streamBegan(_ s: UnsafeMutablePointer<Stream>) {
        s.pointee.generation = ops.generation
        ops.live += 1
        inc(httpStats(s).downstreamRqActive)
    }

    /// A stream ended: an older plan is let go when the last stream of its generation ends.
    @inline(__always)
    func streamEnded(_ s: UnsafeMutablePointer<Stream>) {
        inc(httpStats(s).downstreamRqActive, by: -1)
        let g = s.pointee.generation
        if g == ops.generation {
            ops.live -= 1
            return
        }
        if let i = ops.retired.firstIndex(where: { $0.generation == g }) {
            ops.retired[i].live -= 1
            if ops.retired[i].live <= 0 {
                ops.retired.remove(at: i)
                publishOldestLiveGeneration()
            }
        }
    }

    /// The oldest generation a stream of this worker runs on (ProxyOps reuses a removed
    /// cluster's slot once every worker is past the generation that removed it).
    func publishOldestLiveGeneration() {
        let oldest = ops.retired.map(\.generation).min() ?? ops.generation
        stats.oldestLiveGeneration.store(oldest, ordering: .relaxed)
    }

    /// The plan of connection manager `m` that a stream of generation `g` routes with.
    @inline(__always)
    func httpPlan(_ g: UInt32, _ m: UInt8) -> HTTPPlan? {
        if g == ops.generation { return Int(m) < httpPlans.count ? httpPlans[Int(m)] : nil }
        for r in ops.retired where r.generation == g { return Int(m) < r.httpPlans.count ? r.httpPlans[Int(m)] : nil }
        return nil
    }

    /// The plan a stream routes with (its generation's, its connection's manager).
    @inline(__always)
    func hcm(_ s: UnsafeMutablePointer<Stream>) -> HTTPPlan? { httpPlan(s.pointee.generation, s.pointee.hcm) }

    /// A connection's http_connection_manager in the current generation.
    @inline(__always)
    func hcm(_ d: UnsafeMutablePointer<Downstream>) -> HTTPPlan? {
        Int(d.pointee.hcm) < httpPlans.count ? httpPlans[Int(d.pointee.hcm)] : nil
    }

    @inline(__always)
    func traits(_ d: UnsafeMutablePointer<Downstream>) -> HTTPTraits? {
        Int(d.pointee.hcm) < httpTraits.count ? httpTraits[Int(d.pointee.hcm)] : nil
    }

    /// The `http.<prefix>.*` counters of a connection's / a stream's manager on this worker.
    @inline(__always)
    func httpStats(_ d: UnsafeMutablePointer<Downstream>) -> HTTPCounters { stats.http[Int(d.pointee.hcm)] }
    @inline(__always)
    func httpStats(_ s: UnsafeMutablePointer<Stream>) -> HTTPCounters { stats.http[Int(s.pointee.hcm)] }

    @inline(__always)
    func clusterStats(_ ci: Int) -> ClusterStats? {
        ci >= 0 && ci < clusterCounters.count ? clusterCounters[ci] : nil
    }

    /// `downstream_rq_time` and the cluster's `upstream_rq_time`, in microseconds.
    @inline(__always)
    func recordLatency(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        httpStats(s).downstreamRqTime.record(micros: Int((loop.now - s.pointee.startNanos) / 1000))
        if s.pointee.upstreamServiceNanos >= 0, let cs = clusterStats(Int(s.pointee.cluster)) {
            cs.upstreamRqTime.record(micros: Int(s.pointee.upstreamServiceNanos / 1000))
        }
    }

    /// A reload's snapshot: new requests use it; streams in flight keep their plan until they end.
    /// Clusters keep their slots (`ClusterSlots`), so per-cluster figures keep their indices; a
    /// slot may be new, emptied (a removed cluster's tombstone) or given to a new cluster
    /// (`adoptClusterSlots`), and a cluster's hosts may differ (reload, DNS refresh):
    /// `retireMovedHosts` re-maps them to pools by address. Listeners may have been added or
    /// removed, so this worker's listener is found by name (only listeners that stay, with their
    /// address, get the snapshot; a removed one drains on the plane it had).
    func apply(_ newPlane: DataPlane, generation: UInt32, _ loop: Loop) {
        // A listener started by this very update already serves this generation.
        guard generation != ops.generation, let l = newPlane.listeners.first(where: { $0.name == listenerPlan.name }) else { return }
        let old = plane
        if ops.live > 0 { ops.retired.append(RetiredPlan(generation: ops.generation, httpPlans: httpPlans, live: ops.live)) }
        ops.generation = generation
        ops.live = 0
        plane = newPlane
        listenerPlan = l
        inputLimit = Self.inputLimit(l)
        adoptClusterSlots(from: old, loop)
        retireMovedHosts(from: old, loop)
        // Weighted LEAST_REQUEST schedules follow the new hosts and weights.
        for (i, c) in newPlane.clusters.enumerated() where i < weightedLeastRequest.count {
            let before = old.clusters.indices.contains(i) ? old.clusters[i].hosts.map { "\($0.name)/\($0.weight)" } : []
            if before != c.hosts.map({ "\($0.name)/\($0.weight)" }) || (weightedLeastRequest[i] == nil) != (WeightedLeastRequest(c, seed: 0) == nil) {
                weightedLeastRequest[i] = WeightedLeastRequest(c, seed: index)
            }
        }
        stats.appliedGeneration.store(generation, ordering: .relaxed)
        publishOldestLiveGeneration()
        if l.httpPlans.count == httpPlans.count {
            httpPlans = l.httpPlans
            headLimitsDiffer = l.headLimitsDiffer
        }
    }

    /// Per-slot state for the new snapshot's cluster slots: a new slot gets its entries; a slot
    /// whose cluster was removed drops its original-destination hosts; a slot given to a new
    /// cluster (its resources are other ones) starts with fresh counters, as Envoy's new cluster.
    private func adoptClusterSlots(from old: DataPlane, _ loop: Loop) {
        var republish = false
        for c in plane.clusters where c.index >= clusterCounters.count {
            clusterCounters.append(ClusterStats())
            clusterPools.append([])
            roundRobin.append(index)
            weightedLeastRequest.append(nil)
            priorityTables.append(PriorityTable())
            republish = true
        }
        for c in plane.clusters where c.index < old.clusters.count {
            let before = old.clusters[c.index]
            if c.removed && !before.removed { retireOriginalDstHosts(cluster: c.index, loop) }
            guard before.resources !== c.resources else { continue }
            clusterCounters[c.index] = ClusterStats()
            priorityTables[c.index] = PriorityTable()
            republish = true
        }
        if republish { stats.publishClusters(clusterCounters) }
    }

    /// A removed ORIGINAL_DST cluster's hosts: their idle connections close, busy ones after
    /// their exchange, and their pools are freed once empty.
    private func retireOriginalDstHosts(cluster ci: Int, _ loop: Loop) {
        for (key, hp) in originalDst.pools where Int(key.cluster) == ci {
            originalDst.pools[key] = nil
            if let h = upstreamPools[hp].dynamicHost { retirePool(hp, address: h.address, loop) }
        }
    }

    /// After `plane` became the new snapshot (so a queued stream that gets a freed slot connects
    /// to the new address): each cluster's hosts are matched to pools by address. A pool whose
    /// address stays keeps its connections (its host index may change); a new address gets a
    /// new pool; a pool whose address went away is retired: its idle connections close now, busy
    /// ones after their exchange (epoch), and its slot is reused once it is empty.
    private func retireMovedHosts(from old: DataPlane, _ loop: Loop) {
        let newPlane = plane
        for c in newPlane.clusters.indices where c < clusterPools.count {
            let before = c < old.clusters.count ? old.clusters[c].hosts : [], after = newPlane.clusters[c].hosts
            if before.count == after.count && zip(before, after).allSatisfy({ $0.name == $1.name }) { continue }
            var byName: [String: Int] = [:]
            for (h, hp) in clusterPools[c].enumerated() where h < before.count { byName[before[h].name] = hp }
            var pools: [Int] = []
            for (h, host) in after.enumerated() {
                if let hp = byName.removeValue(forKey: host.name) {
                    upstreamPools[hp].host = Int32(h)
                    pools.append(hp)
                } else {
                    pools.append(newPool(cluster: c, host: h))
                }
            }
            for hp in byName.values { retirePool(hp, address: before[Int(upstreamPools[hp].host)].address, loop) }
            clusterPools[c] = pools
        }
        freeEmptyRetiredPools()
    }

    private func newPool(cluster c: Int, host h: Int) -> Int {
        let pool = UpstreamPool(cluster: c, host: h)
        let slot: Int
        if let free = originalDst.free.popLast() {
            upstreamPools[free] = pool
            slot = free
        } else {
            upstreamPools.append(pool)
            slot = upstreamPools.count - 1
        }
        stats.hosts.set(slot, cluster: plane.clusters[c].name, host: plane.clusters[c].hosts[h].name, counters: pool.counters)
        return slot
    }

    /// A host left its cluster: its pool keeps its address (for connections still busy) as a
    /// dynamic host and takes no new requests.
    private func retirePool(_ hp: Int, address: SocketAddress, _ loop: Loop) {
        upstreamPools[hp].epoch &+= 1
        upstreamPools[hp].dynamicHost = DynamicHost(address: address, compact: CompactAddress(address), name: address.description, lastUsedNanos: 0)
        upstreamPools[hp].retired = true
        retiredPools.append(hp)
        while let up = upstreamPools[hp].popIdle() {
            ups.pointer(up)?.pointee.idleIndex = -1
            closeUpstream(up, loop)
        }
    }

    /// Retired pools without connections or requests give their slots back.
    func freeEmptyRetiredPools() {
        retiredPools.removeAll { hp in
            guard upstreamPools[hp].connections == 0 && upstreamPools[hp].activeRequests == 0 else { return false }
            upstreamPools[hp].retired = false
            upstreamPools[hp].dynamicHost = nil
            originalDst.free.append(hp)
            stats.hosts.clear(hp)
            return true
        }
    }

    /// Drain: shut the listening socket (new connections are refused), let streams in flight
    /// finish with `connection: close`, and close idle keep-alive connections now.
    func startDrain(_ loop: Loop) {
        guard !ops.draining else { return }
        ops.draining = true
        if listenerFD >= 0 { Glibc.shutdown(listenerFD, Int32(SHUT_RD)) }
        for t in downs.liveTokens() {
            guard let d = downs.pointer(t) else { continue }
            if let s = stream(of: d) {
                s.pointee.keepAlive = false
            } else if !d.pointee.closeAfterFlush {
                d.pointee.beginClosing()
                pool.release(&d.pointee.input)
                downstreamSettled(t, d, loop)
            }
        }
    }
}
