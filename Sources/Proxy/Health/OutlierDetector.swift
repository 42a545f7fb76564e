import Foundation
import Synchronization

/// Envoy's outlier ejection types (`envoy.data.cluster.v3.OutlierEjectionType`), with the suffix
/// of their `outlier_detection.ejections_{detected,enforced}_*` stats.
public enum OutlierEjectionType: Int, CaseIterable, Sendable {
    case consecutive5xx, consecutiveGatewayFailure, consecutiveLocalOriginFailure
    case successRate, localOriginSuccessRate, failurePercentage, localOriginFailurePercentage

    public var statSuffix: String {
        switch self {
        case .consecutive5xx: "consecutive_5xx"
        case .consecutiveGatewayFailure: "consecutive_gateway_failure"
        case .consecutiveLocalOriginFailure: "consecutive_local_origin_failure"
        case .successRate: "success_rate"
        case .localOriginSuccessRate: "local_origin_success_rate"
        case .failurePercentage: "failure_percentage"
        case .localOriginFailurePercentage: "local_origin_failure_percentage"
        }
    }
}

/// One host's outlier state: the consecutive-error counters and this interval's request counts
/// (workers add with relaxed atomics), the ejection bookkeeping (written by whichever thread
/// ejects or unejects; the host's health bit decides which one wins).
public final class OutlierHostState: Sendable {
    let consecutive5xx = Atomic<Int>(0)
    let consecutiveGatewayFailure = Atomic<Int>(0)
    let consecutiveLocalOriginFailure = Atomic<Int>(0)
    /// This interval's responses (external origin) and connection results (local origin, split mode).
    let total = Atomic<Int>(0)
    let success = Atomic<Int>(0)
    let localTotal = Atomic<Int>(0)
    let localSuccess = Atomic<Int>(0)
    let ejectedAt = Atomic<Int64>(0)
    /// -1: never unejected.
    let unejectedAt = Atomic<Int64>(-1)
    let numEjections = Atomic<Int>(0)
    /// Envoy's ejection time backoff: the multiple of base_ejection_time of the current ejection.
    let backoff = Atomic<Int>(0)
    let jitterNanos = Atomic<Int64>(0)
    /// The last interval's success rates for /clusters (Double bits; -1: none).
    let successRate = Atomic<UInt64>((-1.0).bitPattern)
    let localSuccessRate = Atomic<UInt64>((-1.0).bitPattern)

    /// The last interval's success rates (-1: none), for /clusters.
    public var rates: (external: Double, local: Double) {
        (Double(bitPattern: successRate.load(ordering: .relaxed)), Double(bitPattern: localSuccessRate.load(ordering: .relaxed)))
    }
}

/// A cluster's outlier detector (`outlier_detection`), as Envoy 1.40's: workers feed each host's
/// results and, when a consecutive-error counter reaches its threshold, eject the host
/// themselves (lock-free: compare-and-swap on the active-ejection count and the host's health
/// bit, so the next pick already avoids it); the ops thread runs the interval timer (unejection
/// after base_ejection_time x backoff, success-rate and failure-percentage ejections).
/// docs/outlier-detection.md.
public final class OutlierDetector: Sendable {
    public let config: OutlierDetectionConfig
    public let hosts: [OutlierHostState]

    // `cluster.<name>.outlier_detection.*`, Envoy's names.
    public let ejectionsActive = Atomic<Int>(0)
    public let ejectionsOverflow = Atomic<Int>(0)
    public let ejectionsEnforcedTotal = Atomic<Int>(0)
    /// Deprecated in Envoy, still counted: ejections_total, ejections_consecutive_5xx, ejections_success_rate.
    public let ejectionsTotal = Atomic<Int>(0)
    public let ejectionsConsecutive5xx = Atomic<Int>(0)
    public let ejectionsSuccessRate = Atomic<Int>(0)
    private let perType: [TypeCounters]

    /// `ejections_detected_<type>` and `ejections_enforced_<type>`.
    private final class TypeCounters: Sendable {
        let detected = Atomic<Int>(0)
        let enforced = Atomic<Int>(0)
    }
    /// Success-rate mean and ejection threshold of the last interval (Double bits; -1: not computed).
    public let successRateAverage = Atomic<UInt64>((-1.0).bitPattern)
    public let successRateThreshold = Atomic<UInt64>((-1.0).bitPattern)
    public let localSuccessRateAverage = Atomic<UInt64>((-1.0).bitPattern)
    public let localSuccessRateThreshold = Atomic<UInt64>((-1.0).bitPattern)
    /// The last interval's success-rate means and ejection thresholds (-1: none), for /clusters.
    public var clusterRates: (average: Double, threshold: Double, localAverage: Double, localThreshold: Double) {
        func v(_ a: borrowing Atomic<UInt64>) -> Double { Double(bitPattern: a.load(ordering: .relaxed)) }
        return (v(successRateAverage), v(successRateThreshold), v(localSuccessRateAverage), v(localSuccessRateThreshold))
    }

    /// When the interval timer fires next (ops thread; 0: not armed yet).
    private let nextTick = Atomic<Int64>(0)

    init(_ config: OutlierDetectionConfig, hostCount: Int) {
        self.config = config
        hosts = (0..<hostCount).map { _ in OutlierHostState() }
        perType = OutlierEjectionType.allCases.map { _ in TypeCounters() }
    }

    public func detectedCount(_ type: OutlierEjectionType) -> Int { perType[type.rawValue].detected.load(ordering: .relaxed) }
    public func enforcedCount(_ type: OutlierEjectionType) -> Int { perType[type.rawValue].enforced.load(ordering: .relaxed) }

    // MARK: results (workers)

    /// An upstream response status (Envoy's putHttpResponseCode); also how a local-origin failure
    /// counts when errors are not split (connect failure or reset 503, timeout 504).
    func putResponse(_ h: Int, code: Int, _ health: ClusterHealth, now: Int64, random: UInt64) {
        let s = hosts[h]
        s.total.wrappingAdd(1, ordering: .relaxed)
        guard code >= 500 && code <= 599 else {
            s.success.wrappingAdd(1, ordering: .relaxed)
            s.consecutive5xx.store(0, ordering: .relaxed)
            s.consecutiveGatewayFailure.store(0, ordering: .relaxed)
            return
        }
        if code >= 502 && code <= 504 {
            if s.consecutiveGatewayFailure.wrappingAdd(1, ordering: .relaxed).newValue == config.consecutiveGatewayFailure {
                consecutiveError(h, .consecutiveGatewayFailure, health, now: now, random: random)
            }
        } else {
            s.consecutiveGatewayFailure.store(0, ordering: .relaxed)
        }
        if s.consecutive5xx.wrappingAdd(1, ordering: .relaxed).newValue == config.consecutive5xx {
            consecutiveError(h, .consecutive5xx, health, now: now, random: random)
        }
    }

    /// A connect failure, a reset (`code` 503) or a timeout (504) of an attempt on host `h`.
    func putLocalFailure(_ h: Int, code: Int, _ health: ClusterHealth, now: Int64, random: UInt64) {
        guard config.splitExternalLocalOriginErrors else {
            putResponse(h, code: code, health, now: now, random: random)
            return
        }
        let s = hosts[h]
        s.localTotal.wrappingAdd(1, ordering: .relaxed)
        if s.consecutiveLocalOriginFailure.wrappingAdd(1, ordering: .relaxed).newValue == config.consecutiveLocalOriginFailure {
            consecutiveError(h, .consecutiveLocalOriginFailure, health, now: now, random: random)
        }
    }

    /// A connection to host `h` served an attempt (split mode only: Envoy ignores it otherwise).
    @inline(__always)
    func putConnectSuccess(_ h: Int) {
        guard config.splitExternalLocalOriginErrors else { return }
        let s = hosts[h]
        s.localTotal.wrappingAdd(1, ordering: .relaxed)
        s.localSuccess.wrappingAdd(1, ordering: .relaxed)
        s.consecutiveLocalOriginFailure.store(0, ordering: .relaxed)
    }

    /// Envoy's onConsecutiveErrorWorker: an ejected host is left alone (its counter is not reset);
    /// otherwise detection is counted, the host ejected when allowed, and the counter reset.
    private func consecutiveError(_ h: Int, _ type: OutlierEjectionType, _ health: ClusterHealth, now: Int64, random: UInt64) {
        guard !health.flags(h).contains(.failedOutlierCheck) else { return }
        perType[type.rawValue].detected.wrappingAdd(1, ordering: .relaxed)
        eject(h, type, health, now: now, random: random)
        switch type {
        case .consecutive5xx:
            ejectionsConsecutive5xx.wrappingAdd(1, ordering: .relaxed)
            hosts[h].consecutive5xx.store(0, ordering: .relaxed)
        case .consecutiveGatewayFailure: hosts[h].consecutiveGatewayFailure.store(0, ordering: .relaxed)
        case .consecutiveLocalOriginFailure: hosts[h].consecutiveLocalOriginFailure.store(0, ordering: .relaxed)
        default: break
        }
    }

    /// Envoy's ejectHost: within max_ejection_percent of all hosts (or the first ejection with
    /// always_eject_one_host), enforced with the type's enforcing_* chance.
    func eject(_ h: Int, _ type: OutlierEjectionType, _ health: ClusterHealth, now: Int64, random: UInt64) {
        let n = max(1, hosts.count)
        var active = ejectionsActive.load(ordering: .relaxed)
        while true {
            let allowed = 100 * (active + 1) <= min(100, config.maxEjectionPercent) * n
                || (config.alwaysEjectOneHost && active == 0)
            guard allowed else {
                ejectionsOverflow.wrappingAdd(1, ordering: .relaxed)
                return
            }
            if type == .consecutive5xx || type == .successRate { ejectionsTotal.wrappingAdd(1, ordering: .relaxed) }
            guard Int(random % 100) < enforcing(type) else { return }
            let (done, seen) = ejectionsActive.compareExchange(expected: active, desired: active + 1, ordering: .relaxed)
            if done { break }
            active = seen
            if type == .consecutive5xx || type == .successRate { ejectionsTotal.wrappingSubtract(1, ordering: .relaxed) }
        }
        guard health.setOutlierEjected(h, true) else {
            ejectionsActive.wrappingSubtract(1, ordering: .relaxed)  // another thread ejected it first
            return
        }
        ejectionsEnforcedTotal.wrappingAdd(1, ordering: .relaxed)
        perType[type.rawValue].enforced.wrappingAdd(1, ordering: .relaxed)
        let s = hosts[h]
        s.numEjections.wrappingAdd(1, ordering: .relaxed)
        s.ejectedAt.store(now, ordering: .relaxed)
        let jitterMs = config.maxEjectionJitterNanos / 1_000_000
        s.jitterNanos.store(Int64((random >> 8) % UInt64(jitterMs + 1)) * 1_000_000, ordering: .relaxed)
        let backoff = s.backoff.load(ordering: .relaxed)
        if Int64(backoff) * config.baseEjectionNanos < config.maxEjectionNanos + config.baseEjectionNanos {
            s.backoff.store(backoff + 1, ordering: .relaxed)
        }
    }

    private func enforcing(_ type: OutlierEjectionType) -> Int {
        switch type {
        case .consecutive5xx: config.enforcingConsecutive5xx
        case .consecutiveGatewayFailure: config.enforcingConsecutiveGatewayFailure
        case .consecutiveLocalOriginFailure: config.enforcingConsecutiveLocalOriginFailure
        case .successRate: config.enforcingSuccessRate
        case .localOriginSuccessRate: config.enforcingLocalOriginSuccessRate
        case .failurePercentage: config.enforcingFailurePercentage
        case .localOriginFailurePercentage: config.enforcingFailurePercentageLocalOrigin
        }
    }

    /// Returns host `h` to the pick and resets its consecutive counters (interval timer, or a
    /// passed active health check).
    func uneject(_ h: Int, _ health: ClusterHealth, now: Int64) {
        guard health.setOutlierEjected(h, false) else { return }
        ejectionsActive.wrappingSubtract(1, ordering: .relaxed)
        let s = hosts[h]
        s.consecutive5xx.store(0, ordering: .relaxed)
        s.consecutiveGatewayFailure.store(0, ordering: .relaxed)
        s.consecutiveLocalOriginFailure.store(0, ordering: .relaxed)
        s.unejectedAt.store(now, ordering: .relaxed)
    }

    // MARK: interval timer (ops thread)

    /// Runs the interval timer when it is due (the first call arms it, as Envoy's at creation).
    public func tick(_ health: ClusterHealth, now: Int64, random: () -> UInt64) {
        let due = nextTick.load(ordering: .relaxed)
        if due == 0 {
            nextTick.store(now + config.intervalNanos, ordering: .relaxed)
            return
        }
        guard now >= due else { return }
        onInterval(health, now: now, random: random)
        nextTick.store(now + config.intervalNanos, ordering: .relaxed)
    }

    /// Envoy's onIntervalTimer: unejections, the interval's success rates, the success-rate and
    /// failure-percentage ejections, then the backoff of hosts that stayed in.
    func onInterval(_ health: ClusterHealth, now: Int64, random: () -> UInt64) {
        var external: [(Int, Double, Int)] = []
        var local: [(Int, Double, Int)] = []
        for (h, s) in hosts.enumerated() {
            if health.flags(h).contains(.failedOutlierCheck) {
                let wait = min(config.baseEjectionNanos * Int64(s.backoff.load(ordering: .relaxed)), config.maxEjectionNanos)
                    + s.jitterNanos.load(ordering: .relaxed)
                if wait <= now - s.ejectedAt.load(ordering: .relaxed) { uneject(h, health, now: now) }
            }
            // The interval's bucket; a host ejected now still had its counts taken out.
            let total = s.total.exchange(0, ordering: .relaxed), success = s.success.exchange(0, ordering: .relaxed)
            let lt = s.localTotal.exchange(0, ordering: .relaxed), ls = s.localSuccess.exchange(0, ordering: .relaxed)
            s.successRate.store((-1.0).bitPattern, ordering: .relaxed)
            s.localSuccessRate.store((-1.0).bitPattern, ordering: .relaxed)
            guard !health.flags(h).contains(.failedOutlierCheck) else { continue }
            if total > 0 { external.append((h, Double(success) * 100 / Double(total), total)) }
            if lt > 0 { local.append((h, Double(ls) * 100 / Double(lt), lt)) }
        }
        successRateEjections(external, local: false, health, now: now, random: random)
        successRateEjections(local, local: true, health, now: now, random: random)
        for (h, s) in hosts.enumerated() where !health.flags(h).contains(.failedOutlierCheck) {
            let back = s.unejectedAt.load(ordering: .relaxed)
            if back >= 0 && now - back >= config.intervalNanos {
                let b = s.backoff.load(ordering: .relaxed)
                if b > 0 { s.backoff.store(b - 1, ordering: .relaxed) }
            }
        }
    }

    private func storeRates(local: Bool, average: Double, threshold: Double) {
        if local {
            localSuccessRateAverage.store(average.bitPattern, ordering: .relaxed)
            localSuccessRateThreshold.store(threshold.bitPattern, ordering: .relaxed)
        } else {
            successRateAverage.store(average.bitPattern, ordering: .relaxed)
            successRateThreshold.store(threshold.bitPattern, ordering: .relaxed)
        }
    }

    /// Envoy's processSuccessRateEjections for one origin: `rates` are (host, success %, volume).
    private func successRateEjections(_ rates: [(Int, Double, Int)], local: Bool, _ health: ClusterHealth, now: Int64, random: () -> UInt64) {
        storeRates(local: local, average: -1, threshold: -1)
        let c = config
        guard hosts.count >= c.successRateMinimumHosts || hosts.count >= c.failurePercentageMinimumHosts else { return }
        for (h, rate, volume) in rates where volume >= min(c.successRateRequestVolume, c.failurePercentageRequestVolume) {
            if local {
                hosts[h].localSuccessRate.store(rate.bitPattern, ordering: .relaxed)
            } else {
                hosts[h].successRate.store(rate.bitPattern, ordering: .relaxed)
            }
        }
        let bySuccess = rates.filter { $0.2 >= c.successRateRequestVolume }
        if !bySuccess.isEmpty && bySuccess.count >= c.successRateMinimumHosts {
            let mean = bySuccess.reduce(0.0) { $0 + $1.1 } / Double(bySuccess.count)
            let variance = bySuccess.reduce(0.0) { $0 + ($1.1 - mean) * ($1.1 - mean) } / Double(bySuccess.count)
            let limit = mean - Double(c.successRateStdevFactor) / 1000 * variance.squareRoot()
            storeRates(local: local, average: mean, threshold: limit)
            for (h, rate, _) in bySuccess where rate < limit {
                ejectionsSuccessRate.wrappingAdd(1, ordering: .relaxed)
                let type: OutlierEjectionType = local ? .localOriginSuccessRate : .successRate
                perType[type.rawValue].detected.wrappingAdd(1, ordering: .relaxed)
                eject(h, type, health, now: now, random: random())
            }
        }
        let byFailure = rates.filter { $0.2 >= c.failurePercentageRequestVolume }
        if !byFailure.isEmpty && byFailure.count >= c.failurePercentageMinimumHosts {
            for (h, rate, _) in byFailure where 100 - rate >= Double(c.failurePercentageThreshold) {
                let type: OutlierEjectionType = local ? .localOriginFailurePercentage : .failurePercentage
                perType[type.rawValue].detected.wrappingAdd(1, ordering: .relaxed)
                eject(h, type, health, now: now, random: random())
            }
        }
    }
}
