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
    let http: HTTPPlan?
    var live: Int
}

/// Operations on the worker's loop thread: snapshots published by a reload, drain, and the
/// figures the main thread merges (latency histograms, per-cluster counters).
extension ProxyWorker {
    /// A new stream: it resolves its route indices in the current generation's plan.
    @inline(__always)
    func streamBegan(_ s: UnsafeMutablePointer<Stream>) {
        s.pointee.generation = ops.generation
        ops.live += 1
    }

    /// A stream of generation `g` ended: an older plan is let go when its last stream ends.
    @inline(__always)
    func streamEnded(_ g: UInt32) {
        if g == ops.generation {
            ops.live -= 1
            return
        }
        if let i = ops.retired.firstIndex(where: { $0.generation == g }) {
            ops.retired[i].live -= 1
            if ops.retired[i].live <= 0 { ops.retired.remove(at: i) }
        }
    }

    /// The HTTP plan a stream of generation `g` routes with.
    @inline(__always)
    func httpPlan(_ g: UInt32) -> HTTPPlan? {
        if g == ops.generation { return http }
        for r in ops.retired where r.generation == g { return r.http }
        return nil
    }

    @inline(__always)
    func clusterStats(_ ci: Int) -> ClusterStats? {
        ci >= 0 && ci < stats.clusters.count ? stats.clusters[ci] : nil
    }

    /// `downstream_rq_time` and the cluster's `upstream_rq_time`, in microseconds.
    @inline(__always)
    func recordLatency(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        stats.downstreamRqTime.record(micros: Int((loop.now - s.pointee.startNanos) / 1000))
        if s.pointee.upstreamServiceNanos >= 0, let cs = clusterStats(Int(s.pointee.cluster)) {
            cs.upstreamRqTime.record(micros: Int(s.pointee.upstreamServiceNanos / 1000))
        }
    }

    /// A reload's snapshot: new requests use it; streams in flight keep their plan until they end.
    /// The main thread has checked that listeners and the cluster layout are unchanged, so host
    /// pools and per-cluster figures keep their indices. A host whose address changed gets a new
    /// pool epoch: its idle connections close now, busy ones after their exchange, so new
    /// requests go to the new address (as Envoy drains the old host).
    func apply(_ newPlane: DataPlane, generation: UInt32, _ loop: Loop) {
        guard listenerPlan.index < newPlane.listeners.count else { return }
        let old = plane
        let l = newPlane.listeners[listenerPlan.index]
        if ops.live > 0 { ops.retired.append(RetiredPlan(generation: ops.generation, http: http, live: ops.live)) }
        ops.generation = generation
        ops.live = 0
        plane = newPlane
        listenerPlan = l
        inputLimit = Self.inputLimit(l)
        retireMovedHosts(from: old, loop)
        switch l.kind {
        case .http(let h): if http != nil { http = h }
        case .tcp(let t): if tcp != nil { tcp = t }
        }
    }

    /// After `plane` became the new snapshot (so a queued stream that gets a freed slot connects
    /// to the new address).
    private func retireMovedHosts(from old: DataPlane, _ loop: Loop) {
        let newPlane = plane
        for hp in upstreamPools.indices where upstreamPools[hp].dynamicHost == nil {
            let c = Int(upstreamPools[hp].cluster), h = Int(upstreamPools[hp].host)
            guard old.clusters.indices.contains(c), newPlane.clusters.indices.contains(c),
                  old.clusters[c].hosts.indices.contains(h), newPlane.clusters[c].hosts.indices.contains(h),
                  old.clusters[c].hosts[h].address.description != newPlane.clusters[c].hosts[h].address.description
            else { continue }
            upstreamPools[hp].epoch &+= 1
            while let up = upstreamPools[hp].popIdle() {
                ups.pointer(up)?.pointee.idleIndex = -1
                closeUpstream(up, loop)
            }
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
