import Glibc
import Histogram

/// Why a request failed without an HTTP status.
public enum LoadErrorKind: Int, CaseIterable, Sendable {
    /// The connection was refused (nothing listens on the port).
    case refused
    /// The peer reset the connection (ECONNRESET, EPIPE).
    case reset
    /// No complete response within `-timeout`.
    case timeout
    /// The response could not be parsed (bad status line, framing, chunked body).
    case malformed
    /// The server closed the connection before the response was complete.
    case closed
    /// Anything else (out of ports or files, unreachable, ...).
    case other

    public var name: String {
        switch self {
        case .refused: "refused"
        case .reset: "reset"
        case .timeout: "timeout"
        case .malformed: "malformed"
        case .closed: "closed"
        case .other: "other"
        }
    }

    static func from(errno e: Int32) -> LoadErrorKind {
        switch e {
        case ECONNREFUSED: .refused
        case ECONNRESET, EPIPE, ECONNABORTED: .reset
        case ETIMEDOUT: .timeout
        default: .other
        }
    }
}

/// Latency histogram settings shared by every thread (merging needs the same layout).
enum LatencyHistogram {
    /// Nanoseconds, 3 significant digits, up to an hour (larger values are clamped).
    static let highestNanos: UInt64 = 3_600_000_000_000

    static func make() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highestNanos, numberOfSignificantValueDigits: .three)
    }
}

/// Everything one load thread measured. Written only by its loop thread (through a pointer, so
/// no exclusivity checks on the hot path), read by the main thread after the thread has ended.
public struct LoadTally {
    /// Latency from the actual start of each request (connect or send), ns. fortio's semantics.
    public var latency = LatencyHistogram.make()
    /// Open loop only: latency from the intended start (coordinated-omission corrected), ns.
    public var corrected = LatencyHistogram.make()
    /// Latency of failed calls (socket errors and non-2xx), ns.
    public var errorLatency = LatencyHistogram.make()
    /// fortio's `DurationHistogram` and `ErrorsDurationHistogram` shapes (seconds).
    public var duration: BucketHistogram
    public var errorDuration: BucketHistogram
    /// Exact min/max/sum of the corrected latency (open loop).
    public var correctedStats = BucketHistogram(scale: 1e-9, divider: 1)
    /// Whole response (head + body) and head sizes, bytes.
    public var sizes = BucketHistogram(scale: 1, divider: 100)
    public var headerSizes = BucketHistogram(scale: 1, divider: 5)
    /// Calls per status code; index 0 counts socket errors (fortio's code -1).
    public var statusCounts = [Int](repeating: 0, count: 600)
    public var errorKinds = [Int](repeating: 0, count: LoadErrorKind.allCases.count)
    /// Measured calls per connection of this thread, and sockets opened per connection.
    public var perConnection: [Int]
    public var socketsPerConnection: [Int]
    /// Requests started more than one schedule interval after their intended time (open loop).
    public var lateStarts = 0
    /// Calls completed during the warm-up (not recorded elsewhere).
    public var warmupCalls = 0
    /// Monotonic time of the last recorded completion.
    public var lastCompletionNanos: Int64 = 0
    /// Set when `-abort-on` matched.
    public var aborted = false

    public init(connections: Int, resolution: Double) {
        duration = BucketHistogram(scale: 1e-9, divider: resolution)
        errorDuration = BucketHistogram(scale: 1e-9, divider: resolution)
        perConnection = [Int](repeating: 0, count: connections)
        socketsPerConnection = [Int](repeating: 0, count: connections)
    }

    /// One finished call: `status` is the HTTP status, or -1 for a socket error.
    @inline(__always)
    mutating func record(status: Int, latencyNanos: Int64, correctedNanos: Int64?, headerBytes: Int, totalBytes: Int) {
        let l = UInt64(max(0, min(latencyNanos, Int64(LatencyHistogram.highestNanos))))
        latency.record(l)
        duration.record(Int(l))
        if let correctedNanos {
            let c = UInt64(max(0, min(correctedNanos, Int64(LatencyHistogram.highestNanos))))
            corrected.record(c)
            correctedStats.record(Int(c))
        }
        let ok = status >= 200 && status < 300
        if !ok {
            errorLatency.record(l)
            errorDuration.record(Int(l))
        }
        statusCounts[status < 0 ? 0 : status] &+= 1
        sizes.record(totalBytes)
        headerSizes.record(headerBytes)
    }

    /// Adds another thread's tally (connection lists are appended in thread order).
    public mutating func merge(_ other: LoadTally) {
        latency.add(other.latency)
        corrected.add(other.corrected)
        errorLatency.add(other.errorLatency)
        duration.add(other.duration)
        errorDuration.add(other.errorDuration)
        correctedStats.add(other.correctedStats)
        sizes.add(other.sizes)
        headerSizes.add(other.headerSizes)
        for i in 0..<statusCounts.count { statusCounts[i] += other.statusCounts[i] }
        for i in 0..<errorKinds.count { errorKinds[i] += other.errorKinds[i] }
        perConnection += other.perConnection
        socketsPerConnection += other.socketsPerConnection
        lateStarts += other.lateStarts
        warmupCalls += other.warmupCalls
        lastCompletionNanos = max(lastCompletionNanos, other.lastCompletionNanos)
        aborted = aborted || other.aborted
    }

    /// Total recorded calls.
    public var calls: Int { duration.count }
    public var socketErrors: Int { statusCounts[0] }
}
