import Synchronization

/// Envoy's active health-check flags of a host (the bits of `ClusterHealth`'s word per host).
public struct HostHealthFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `/failed_active_hc`: the host takes no traffic (unless the cluster is in panic).
    public static let failedActiveHC = HostHealthFlags(rawValue: 1 << 0)
    /// `/active_hc_timeout`: the failing host's last check timed out.
    public static let activeHCTimeout = HostHealthFlags(rawValue: 1 << 1)
    /// `/pending_active_hc`: not checked yet.
    public static let pendingActiveHC = HostHealthFlags(rawValue: 1 << 2)

    /// Envoy's `/clusters` text: `healthy`, or the set flags as `/name` in Envoy's order.
    public var envoyText: String {
        var s = ""
        if contains(.failedActiveHC) { s += "/failed_active_hc" }
        if contains(.pendingActiveHC) { s += "/pending_active_hc" }
        if contains(.activeHCTimeout) { s += "/active_hc_timeout" }
        return s.isEmpty ? "healthy" : s
    }
}

/// The health of one cluster's hosts as the health checker sees it, shared with every worker:
/// one atomic word per host (the checker writes, workers read one word per pick with a relaxed
/// load: no lock on the hot path) and the count of healthy hosts (for the panic threshold).
/// Also the cluster's `health_check.*` counters, which only the checker thread bumps.
public final class ClusterHealth: @unchecked Sendable {  // the atomics are the shared state
    public let hostCount: Int
    private let words: UnsafeMutablePointer<Atomic<UInt32>>
    /// Hosts without `failed_active_hc` (`health_check.healthy`, `membership_healthy`).
    public let healthyHosts = Atomic<Int>(0)
    /// Grows each time a host turns healthy or failed (workers rebuild their priority tables).
    public let version = Atomic<Int>(0)

    // `cluster.<name>.health_check.*`, Envoy's names.
    public let attempt = Atomic<Int>(0)
    public let success = Atomic<Int>(0)
    public let failure = Atomic<Int>(0)
    public let networkFailure = Atomic<Int>(0)

    /// Every host starts as Envoy starts a host of a cluster with a health checker: failed and
    /// pending until its first check.
    public init(hostCount: Int) {
        self.hostCount = hostCount
        words = .allocate(capacity: max(1, hostCount))
        for i in 0..<max(1, hostCount) {
            (words + i).initialize(to: Atomic(HostHealthFlags([.failedActiveHC, .pendingActiveHC]).rawValue))
        }
    }

    deinit {
        words.deinitialize(count: max(1, hostCount))
        words.deallocate()
    }

    @inline(__always)
    public func flags(_ host: Int) -> HostHealthFlags {
        HostHealthFlags(rawValue: (words + host).pointee.load(ordering: .relaxed))
    }

    /// A host takes traffic outside panic.
    @inline(__always)
    public func isHealthy(_ host: Int) -> Bool {
        (words + host).pointee.load(ordering: .relaxed) & HostHealthFlags.failedActiveHC.rawValue == 0
    }

    /// The checker's update of host `host` (the checker thread is the only writer).
    func set(_ host: Int, _ flags: HostHealthFlags) {
        let old = HostHealthFlags(rawValue: (words + host).pointee.exchange(flags.rawValue, ordering: .relaxed))
        if old.contains(.failedActiveHC) && !flags.contains(.failedActiveHC) {
            healthyHosts.wrappingAdd(1, ordering: .relaxed)
            version.wrappingAdd(1, ordering: .relaxed)
        } else if !old.contains(.failedActiveHC) && flags.contains(.failedActiveHC) {
            healthyHosts.wrappingSubtract(1, ordering: .relaxed)
            version.wrappingAdd(1, ordering: .relaxed)
        }
    }
}
