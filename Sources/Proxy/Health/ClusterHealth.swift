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
    /// `/failed_outlier_check`: ejected by outlier detection (no traffic unless in panic).
    public static let failedOutlierCheck = HostHealthFlags(rawValue: 1 << 3)
    /// Either flag keeps a host out of the pick (outside panic), as Envoy's `healthy()`.
    static let unhealthy: HostHealthFlags = [.failedActiveHC, .failedOutlierCheck]

    /// Envoy's `/clusters` text: `healthy`, or the set flags as `/name` in Envoy's order.
    public var envoyText: String {
        var s = ""
        if contains(.failedActiveHC) { s += "/failed_active_hc" }
        if contains(.failedOutlierCheck) { s += "/failed_outlier_check" }
        if contains(.pendingActiveHC) { s += "/pending_active_hc" }
        if contains(.activeHCTimeout) { s += "/active_hc_timeout" }
        return s.isEmpty ? "healthy" : s
    }
}

/// The health of one cluster's hosts as the health checker and the outlier detector see it,
/// shared with every worker: one atomic word per host (the checker and the detector write their
/// own bits; workers read one word per pick with a relaxed load: no lock on the hot path) and the
/// count of hosts with neither failure flag (for the panic threshold). Also the cluster's
/// `health_check.*` counters, which only the checker thread bumps.
public final class ClusterHealth: @unchecked Sendable {  // the atomics are the shared state
    public let hostCount: Int
    private let words: UnsafeMutablePointer<Atomic<UInt32>>
    /// Hosts with neither `failed_active_hc` nor `failed_outlier_check` (`membership_healthy`).
    public let healthyHosts = Atomic<Int>(0)
    /// Hosts without `failed_active_hc` (`health_check.healthy`).
    public let activeHealthyHosts = Atomic<Int>(0)
    /// Grows each time a host turns healthy or failed (workers rebuild their priority tables).
    public let version = Atomic<Int>(0)
    /// Passive health (`outlier_detection`), nil when the cluster has none.
    public let outlier: OutlierDetector?

    // `cluster.<name>.health_check.*`, Envoy's names.
    public let attempt = Atomic<Int>(0)
    public let success = Atomic<Int>(0)
    public let failure = Atomic<Int>(0)
    public let networkFailure = Atomic<Int>(0)

    /// With active checks every host starts as Envoy starts a host of a cluster with a health
    /// checker: failed and pending until its first check. Without, every host starts healthy.
    public init(hostCount: Int, activeChecks: Bool = true, outlier: OutlierDetectionConfig? = nil) {
        self.hostCount = hostCount
        self.outlier = outlier.map { OutlierDetector($0, hostCount: hostCount) }
        words = .allocate(capacity: max(1, hostCount))
        let start: HostHealthFlags = activeChecks ? [.failedActiveHC, .pendingActiveHC] : []
        for i in 0..<max(1, hostCount) {
            (words + i).initialize(to: Atomic(start.rawValue))
        }
        if !activeChecks {
            healthyHosts.store(hostCount, ordering: .relaxed)
            activeHealthyHosts.store(hostCount, ordering: .relaxed)
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
        (words + host).pointee.load(ordering: .relaxed) & HostHealthFlags.unhealthy.rawValue == 0
    }

    /// The checker's update of host `host` (the checker thread is the only writer of its bits;
    /// the outlier bit is kept).
    func set(_ host: Int, _ flags: HostHealthFlags) {
        let kept = HostHealthFlags.failedOutlierCheck.rawValue  // the detector's bit
        var old = (words + host).pointee.load(ordering: .relaxed)
        while true {
            let new = (old & kept) | (flags.rawValue & ~kept)
            let (done, seen) = (words + host).pointee.compareExchange(expected: old, desired: new, ordering: .relaxed)
            if done { break }
            old = seen
        }
        let was = HostHealthFlags(rawValue: old)
        if was.contains(.failedActiveHC) != flags.contains(.failedActiveHC) {
            activeHealthyHosts.wrappingAdd(flags.contains(.failedActiveHC) ? -1 : 1, ordering: .relaxed)
        }
        changed(from: old, to: (old & kept) | (flags.rawValue & ~kept))
    }

    /// Sets or clears `failed_outlier_check`; true when this call changed it (one thread wins a race).
    @discardableResult
    func setOutlierEjected(_ host: Int, _ ejected: Bool) -> Bool {
        let bit = HostHealthFlags.failedOutlierCheck.rawValue
        let old = ejected ? (words + host).pointee.bitwiseOr(bit, ordering: .relaxed).oldValue
                          : (words + host).pointee.bitwiseAnd(~bit, ordering: .relaxed).oldValue
        guard (old & bit != 0) != ejected else { return false }
        changed(from: old, to: ejected ? old | bit : old & ~bit)
        return true
    }

    private func changed(from old: UInt32, to new: UInt32) {
        let mask = HostHealthFlags.unhealthy.rawValue
        let wasHealthy = old & mask == 0, isHealthy = new & mask == 0
        guard wasHealthy != isHealthy else { return }
        healthyHosts.wrappingAdd(isHealthy ? 1 : -1, ordering: .relaxed)
        version.wrappingAdd(1, ordering: .relaxed)
    }
}
