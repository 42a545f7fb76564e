import Synchronization

/// Per-status counters (100...599) and per-class counters (1xx...5xx) of one worker: single
/// writer (the worker), relaxed loads by the admin thread; no locks, allocated once.
public final class StatusCounters: @unchecked Sendable {  // the atomics are the shared state
    private let codes: UnsafeMutablePointer<Atomic<Int>>
    private let classes: UnsafeMutablePointer<Atomic<Int>>
    static let lowest = 100
    static let count = 500

    public init() {
        codes = .allocate(capacity: Self.count)
        for i in 0..<Self.count { (codes + i).initialize(to: Atomic(0)) }
        classes = .allocate(capacity: 5)
        for i in 0..<5 { (classes + i).initialize(to: Atomic(0)) }
    }

    deinit {
        codes.deinitialize(count: Self.count)
        codes.deallocate()
        classes.deinitialize(count: 5)
        classes.deallocate()
    }

    @inline(__always)
    func count(_ status: Int) {
        guard status >= Self.lowest && status < Self.lowest + Self.count else { return }
        inc((codes + (status - Self.lowest)).pointee)
        inc((classes + (status / 100 - 1)).pointee)
    }

    func value(code: Int) -> Int { (codes + (code - Self.lowest)).pointee.load(ordering: .relaxed) }
    func value(class c: Int) -> Int { (classes + (c - 1)).pointee.load(ordering: .relaxed) }
}

extension ProxyWorker {
    /// A request left on an upstream connection (each attempt): `upstream_rq_total`.
    func countUpstreamRequest(_ cluster: Int) {
        inc(stats.upstreamRqTotal)
        if let cs = clusterStats(cluster) { inc(cs.upstreamRqTotal) }
    }

    /// A connection's first bytes (Envoy counts a connection that never sends any as no protocol).
    @inline(__always)
    func countHTTP1Connection(_ d: UnsafeMutablePointer<Downstream>) {
        guard !d.pointee.countedHTTP1 else { return }
        d.pointee.countedHTTP1 = true
        inc(httpStats(d).downstreamCxHTTP1Total)
    }

    /// A stream ended: Envoy's completion counters for the connection manager and the cluster.
    func countCompleted(_ s: UnsafeMutablePointer<Stream>) {
        let counters = httpStats(s)
        if s.pointee.flags.contains(.downstreamConnectionTermination) && s.pointee.status == 0 {
            // The client left with its request unanswered: Envoy destroys the stream (reset), it
            // does not complete it.
            inc(counters.downstreamCxDestroyRemoteActiveRq)
            inc(counters.downstreamRqRxReset)
            return
        }
        if s.pointee.resetDownstream {
            inc(counters.downstreamRqTxReset)
            inc(counters.downstreamRqRxReset)  // Envoy 1.40 counts both for a response it cut short
        }
        inc(counters.downstreamRqCompleted)
        if !s.pointee.requestComplete { inc(counters.downstreamRqResponseBeforeRqComplete) }
        var reset = s.pointee.flags.contains(.downstreamConnectionTermination)
        switch s.pointee.details {
        case .directResponse:
            inc(counters.rqDirectResponse)
        case .upgradeFailed:
            inc(counters.downstreamRqWsOnNonWsRoute)
            reset = true  // Envoy resets the refused upgrade's stream
        case .websocketHandshakeUnsuccessful:
            return  // the upstream's answer was dropped: not a completed upstream request
        case .downstreamProtocolError, .lowVersion, .contentLengthAndChunked:
            if s.pointee.route < 0 && s.pointee.cluster < 0 {
                inc(counters.downstreamCxProtocolError)
                reset = true  // Envoy resets the stream the codec refused
            }
        case .streamIdleTimeout, .requestOverallTimeout:
            // Envoy resets a timed-out stream whose request was not read whole or whose response
            // had started (the 504 to a complete request keeps the connection), and charges the
            // cluster only for a response that came from the upstream.
            let local = s.pointee.upstreamServiceNanos < 0
            if !s.pointee.requestComplete || !local { reset = true }
            if local {
                if reset { inc(counters.downstreamRqRxReset) }
                return
            }
        default:
            break
        }
        if reset { inc(counters.downstreamRqRxReset) }
        guard s.pointee.cluster >= 0, s.pointee.status > 0, let cs = clusterStats(Int(s.pointee.cluster)) else { return }
        // A cache hit never went upstream; a validated one is charged the upstream's 304.
        if s.pointee.details == .responseFromCacheFilter && s.pointee.upstreamServiceNanos < 0 { return }
        inc(cs.upstreamRqCompleted)
        cs.upstreamRqCodes.count(s.pointee.cache.upstreamStatus > 0 ? Int(s.pointee.cache.upstreamStatus) : Int(s.pointee.status))
    }
}
