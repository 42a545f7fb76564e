import Histogram
import Synchronization

/// A latency histogram written by one worker and read by the main thread: log-linear buckets
/// (HdrHistogram's layout with 2 significant digits: 64 sub-buckets per power of two) of
/// single-writer atomics, so recording is a relaxed load and store with no lock and no allocation.
/// The main thread merges the workers' buckets into one HdrHistogram for percentiles.
public final class LatencyHistogram: @unchecked Sendable {  // buckets are atomics with one writer
    /// Values below this are exact (microseconds).
    static var linear: Int { 128 }
    static var half: Int { 64 }
    /// Largest shift: values up to 2^(shift+7) microseconds (about 38 hours) are distinguishable.
    static var maxShift: Int { 30 }
    public static var bucketCount: Int { linear + maxShift * half }

    private let buckets: UnsafeMutablePointer<Atomic<Int>>
    /// Sum of recorded values (microseconds), for Prometheus' `_sum`.
    let sumMicros = Atomic<Int>(0)
    let count = Atomic<Int>(0)

    public init() {
        buckets = .allocate(capacity: Self.bucketCount)
        for i in 0..<Self.bucketCount { (buckets + i).initialize(to: Atomic<Int>(0)) }
    }

    deinit {
        buckets.deinitialize(count: Self.bucketCount)
        buckets.deallocate()
    }

    @inline(__always)
    static func index(_ micros: Int) -> Int {
        let v = max(0, micros)
        if v < linear { return v }
        let shift = min(maxShift, (Int.bitWidth - 1 - v.leadingZeroBitCount) - 6)
        let sub = min(linear - 1, v >> shift)
        return linear + (shift - 1) * half + (sub - half)
    }

    /// The smallest and largest value that land in bucket `i`.
    static func range(of i: Int) -> ClosedRange<Int> {
        if i < linear { return i...i }
        let shift = (i - linear) / half + 1
        let sub = (i - linear) % half + half
        return (sub << shift)...(((sub + 1) << shift) - 1)
    }

    /// Worker thread only.
    @inline(__always)
    public func record(micros: Int) {
        let b = buckets + Self.index(micros)
        b.pointee.store(b.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        sumMicros.store(sumMicros.load(ordering: .relaxed) &+ micros, ordering: .relaxed)
        count.store(count.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    /// Any thread: the current bucket counts.
    func counts() -> [Int] { (0..<Self.bucketCount).map { (buckets + $0).pointee.load(ordering: .relaxed) } }
}

/// Several workers' histograms merged (main thread).
public struct MergedLatency: Sendable {
    /// Bucket counts, summed over workers.
    public var buckets: [Int]
    public var count: Int
    public var sumMicros: Int

    public init(_ parts: [LatencyHistogram]) {
        var b = [Int](repeating: 0, count: LatencyHistogram.bucketCount)
        var c = 0
        var s = 0
        for p in parts {
            for (i, n) in p.counts().enumerated() { b[i] += n }
            c += p.count.load(ordering: .relaxed)
            s += p.sumMicros.load(ordering: .relaxed)
        }
        buckets = b
        count = c
        sumMicros = s
    }

    /// The merged buckets as an HdrHistogram (each bucket at its middle value).
    public func hdr() -> Histogram<UInt64> {
        var h = Histogram<UInt64>(highestTrackableValue: 1 << 40, numberOfSignificantValueDigits: .two)
        for (i, n) in buckets.enumerated() where n > 0 {
            let r = LatencyHistogram.range(of: i)
            _ = h.record(UInt64((r.lowerBound + r.upperBound) / 2), count: UInt64(n))
        }
        return h
    }

    /// Percentile (0...100) in microseconds; nil with no samples.
    public func percentile(_ p: Double) -> Double? {
        guard count > 0 else { return nil }
        return Double(hdr().valueAtPercentile(p))
    }

    /// Samples at or below `micros` (bucket upper bounds; Prometheus' cumulative `le`).
    public func countAtOrBelow(micros: Double) -> Int {
        var total = 0
        for (i, n) in buckets.enumerated() where n > 0 && Double(LatencyHistogram.range(of: i).upperBound) <= micros {
            total += n
        }
        return total
    }
}

/// One worker's figures for one cluster (`cluster.<name>.*`). Single writer (the worker).
public final class ClusterStats: Sendable {
    public let upstreamCxTotal = Atomic<Int>(0)
    public let upstreamCxActive = Atomic<Int>(0)
    public let upstreamCxConnectFail = Atomic<Int>(0)
    public let upstreamCxConnectTimeout = Atomic<Int>(0)
    /// `upstream_cx_overflow`: a new connection refused by the max_connections breaker.
    public let upstreamCxOverflow = Atomic<Int>(0)
    /// `upstream_cx_none_healthy`: a tcp_proxy connection found no host to connect to.
    public let upstreamCxNoneHealthy = Atomic<Int>(0)
    /// `upstream_cx_connect_attempts_exceeded`: tcp_proxy sessions that used up max_connect_attempts.
    public let upstreamCxConnectAttemptsExceeded = Atomic<Int>(0)
    /// `upstream_cx_max_duration_reached`: connections that reached the cluster's max_connection_duration.
    public let upstreamCxMaxDurationReached = Atomic<Int>(0)
    public let upstreamRqTotal = Atomic<Int>(0)
    public let upstreamRqPendingOverflow = Atomic<Int>(0)
    public let upstreamRqTimeout = Atomic<Int>(0)
    public let upstreamRqRetry = Atomic<Int>(0)
    public let upstreamRqRetryBackoffExponential = Atomic<Int>(0)
    public let upstreamRqRetryLimitExceeded = Atomic<Int>(0)
    public let upstreamRqRetrySuccess = Atomic<Int>(0)
    public let upstreamRqRetryOverflow = Atomic<Int>(0)
    public let upstreamRqPerTryTimeout = Atomic<Int>(0)
    /// Responses that were retried instead of forwarded (`retry.upstream_rq_*`).
    public let retryUpstreamRqCompleted = Atomic<Int>(0)
    public let retryUpstreamRqCodes = StatusCounters()
    /// `upstream_cx_destroy_remote_with_active_rq`: the upstream closed (or reset) a connection
    /// with a request on it. (Envoy 1.40 charges an HTTP/1 upstream's close here, never to
    /// `upstream_rq_rx_reset`, which Ballast therefore does not export.)
    public let upstreamCxDestroyRemoteWithActiveRq = Atomic<Int>(0)
    /// `upstream_cx_destroy_local_with_active_rq`: the proxy closed a connection with a request on
    /// it because the client left.
    public let upstreamCxDestroyLocalWithActiveRq = Atomic<Int>(0)
    /// `ext_authz.{ok,denied,error,failure_mode_allowed}`: outcomes of the ext_authz checks of
    /// requests routed to this cluster (Envoy charges the route's cluster).
    public let extAuthzOk = Atomic<Int>(0)
    public let extAuthzDenied = Atomic<Int>(0)
    public let extAuthzError = Atomic<Int>(0)
    public let extAuthzFailureModeAllowed = Atomic<Int>(0)
    /// `original_dst_host_invalid`: an ORIGINAL_DST cluster had no original destination to use.
    public let originalDstHostInvalid = Atomic<Int>(0)
    /// `lb_healthy_panic`: a host picked among all hosts because too few were healthy.
    public let lbHealthyPanic = Atomic<Int>(0)
    /// `upstream_rq_completed`, `upstream_rq_<class>xx` and `upstream_rq_<code>` (Envoy counts
    /// local failures on the route's cluster too: UF 503, UT 504, UO 503).
    public let upstreamRqCompleted = Atomic<Int>(0)
    public let upstreamRqCodes = StatusCounters()
    /// `upstream_rq_time` (microseconds): from sending upstream to the response head.
    public let upstreamRqTime = LatencyHistogram()
    /// `cluster.<name>.ssl.*` (clusters with a TLS transport socket).
    public let tls = TLSStats()

    public init() {}
}
