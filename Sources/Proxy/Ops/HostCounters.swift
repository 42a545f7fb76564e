import Synchronization

/// One worker's figures for one upstream host (Envoy's per-host `/clusters` lines: `cx_*`,
/// `rq_*`). Held by the worker's host pool; the worker is the only writer (relaxed load and
/// store), the admin thread sums every worker's counters for a host by name.
public final class HostCounters: Sendable {
    public let cxActive = Atomic<Int>(0)
    public let cxConnectFail = Atomic<Int>(0)
    public let cxTotal = Atomic<Int>(0)
    public let rqActive = Atomic<Int>(0)
    /// Streams waiting for a connection to the host (Envoy's pending requests).
    public let rqPendingActive = Atomic<Int>(0)
    public let rqError = Atomic<Int>(0)
    public let rqSuccess = Atomic<Int>(0)
    public let rqTimeout = Atomic<Int>(0)
    public let rqTotal = Atomic<Int>(0)

    public init() {}

    /// A request went out to the host (a stream's attempt, a mirror copy, an ext_authz check).
    @inline(__always)
    func requestSent() {
        inc(rqTotal)
        inc(rqActive)
    }

    /// The request sent ended: answered (`error`: 5xx), reset, or timed out.
    @inline(__always)
    func requestEnded(error: Bool, timeout: Bool) {
        inc(rqActive, by: -1)
        if error { inc(rqError) } else { inc(rqSuccess) }
        if timeout { inc(rqTimeout) }
    }
}

/// Which host each of a worker's pool slots serves, for the admin thread: the worker records a
/// slot when it creates or frees a pool (start-up, reload, DNS change, a new original
/// destination: never per request), the admin reads the list under the same lock.
public final class HostCounterRegistry: Sendable {
    public struct Entry: Sendable {
        public let cluster: String
        public let host: String
        public let counters: HostCounters
    }

    private let slots = Mutex<[Entry?]>([])

    public init() {}

    func set(_ slot: Int, cluster: String, host: String, counters: HostCounters) {
        slots.withLock { s in
            while s.count <= slot { s.append(nil) }
            s[slot] = Entry(cluster: cluster, host: host, counters: counters)
        }
    }

    func clear(_ slot: Int) {
        slots.withLock { s in if slot < s.count { s[slot] = nil } }
    }

    /// The live entries (admin thread).
    public func entries() -> [Entry] {
        slots.withLock { $0.compactMap { $0 } }
    }
}
