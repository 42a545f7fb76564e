import Balancers
import EventLoop

/// Transparent interception (issue 14): the original_dst listener filter and ORIGINAL_DST
/// clusters. A connection that iptables redirected to this listener keeps its pre-redirect
/// destination (SO_ORIGINAL_DST, read once at accept); an ORIGINAL_DST cluster sends each
/// request to that destination. Each worker creates a host pool per destination on first use
/// (appended after the configured hosts' pools) and removes it once it has been unused for the
/// cluster's `cleanup_interval`, closing its idle connections, as Envoy removes stale hosts.
struct OriginalDstHosts {
    struct Key: Hashable {
        let cluster: Int32
        let address: CompactAddress
    }

    /// Host pool index per (cluster, destination).
    var pools: [Key: Int] = [:]
    /// Pool slots freed by the cleanup, reused before the pool array grows.
    var free: [Int] = []
    var sweepArmed = false
}

/// What a host pool created for an original destination knows about its host.
struct DynamicHost {
    let address: SocketAddress
    let compact: CompactAddress
    /// `ip:port` (`%UPSTREAM_HOST%`, and the host field of a request that had none).
    let name: String
    var lastUsedNanos: Int64
}

extension ProxyWorker {
    /// Timer id of the cleanup sweep (next to the listener's; connection tokens never reach it).
    static var originalDstSweepToken: UInt64 { WorkerSeat.listenerToken - 1 }

    /// The connection's pre-redirect destination when this listener restores it; unset when the
    /// listener does not, or the connection was not redirected (as Envoy, it keeps its address).
    func restoredDestination(_ fd: Int32) -> CompactAddress {
        guard listenerPlan.restoresOriginalDst,
              let a = try? Sockets.originalDestination(fd, family: listenerPlan.address.family) else { return CompactAddress() }
        return CompactAddress(a)
    }

    /// The host pool of ORIGINAL_DST cluster `ci` for destination `dst`, created on first use;
    /// -1 when the connection has no restored destination (Envoy: no host, 503 UH, and
    /// `cluster.<name>.original_dst_host_invalid`).
    func originalDstPool(_ ci: Int, _ dst: CompactAddress, _ loop: Loop) -> Int {
        guard dst.isSet else {
            if let cs = clusterStats(ci) { inc(cs.originalDstHostInvalid) }
            return -1
        }
        let key = OriginalDstHosts.Key(cluster: Int32(ci), address: dst)
        if let hp = originalDst.pools[key] {
            upstreamPools[hp].dynamicHost?.lastUsedNanos = loop.now
            return hp
        }
        var pool = UpstreamPool(cluster: ci, host: -1)
        let address = dst.socketAddress
        pool.dynamicHost = DynamicHost(address: address, compact: dst, name: address.description, lastUsedNanos: loop.now)
        let hp: Int
        if let slot = originalDst.free.popLast() {
            upstreamPools[slot] = pool
            hp = slot
        } else {
            upstreamPools.append(pool)
            hp = upstreamPools.count - 1
        }
        originalDst.pools[key] = hp
        stats.hosts.set(hp, cluster: plane.clusters[ci].name, host: address.description, counters: upstreamPools[hp].counters)
        armOriginalDstSweep(loop)
        return hp
    }

    /// The address to connect to for host pool `hp`.
    @inline(__always)
    func hostAddress(_ hp: Int) -> SocketAddress {
        if let h = upstreamPools[hp].dynamicHost { return h.address }
        return plane.clusters[Int(upstreamPools[hp].cluster)].hosts[Int(upstreamPools[hp].host)].address
    }

    /// The host's `ip:port` name for host pool `hp`.
    @inline(__always)
    func hostName(_ hp: Int) -> String {
        if let h = upstreamPools[hp].dynamicHost { return h.name }
        return plane.clusters[Int(upstreamPools[hp].cluster)].hosts[Int(upstreamPools[hp].host)].name
    }

    func armOriginalDstSweep(_ loop: Loop) {
        guard !originalDst.sweepArmed, !originalDst.pools.isEmpty else { return }
        var period = Int64.max
        for c in plane.clusters where c.isOriginalDst { period = min(period, c.cleanupIntervalNanos) }
        guard period != Int64.max else { return }
        originalDst.sweepArmed = true
        loop.timers.schedule(at: loop.now + period, id: Self.originalDstSweepToken)
    }

    /// Removes the hosts unused for their cluster's cleanup_interval: idle connections close;
    /// a host with connections or requests still active is looked at again on the next sweep.
    func sweepOriginalDstHosts(_ loop: Loop) {
        originalDst.sweepArmed = false
        let now = loop.now
        var stale: [(OriginalDstHosts.Key, Int)] = []
        for (key, hp) in originalDst.pools {
            guard let h = upstreamPools[hp].dynamicHost, Int(key.cluster) < plane.clusters.count else { continue }
            if now - h.lastUsedNanos >= plane.clusters[Int(key.cluster)].cleanupIntervalNanos { stale.append((key, hp)) }
        }
        for (key, hp) in stale {
            while let up = upstreamPools[hp].popIdle() {
                guard let u = ups.pointer(up) else { continue }
                u.pointee.idleIndex = -1
                closeUpstream(up, loop)
            }
            if upstreamPools[hp].connections == 0 && upstreamPools[hp].activeRequests == 0 {
                originalDst.pools[key] = nil
                upstreamPools[hp].dynamicHost = nil
                originalDst.free.append(hp)
                stats.hosts.clear(hp)
            }
        }
        armOriginalDstSweep(loop)
    }
}
