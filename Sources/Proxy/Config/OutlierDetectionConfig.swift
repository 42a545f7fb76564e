/// A cluster's `outlier_detection` (passive health), Envoy 1.40's fields and defaults. Applied by
/// `OutlierDetector` (Sources/Proxy/Health); docs/outlier-detection.md.
public struct OutlierDetectionConfig: Sendable, Hashable {
    public var consecutive5xx = 5
    public var consecutiveGatewayFailure = 5
    public var consecutiveLocalOriginFailure = 5
    public var intervalNanos: Int64 = 10_000_000_000
    public var baseEjectionNanos: Int64 = 30_000_000_000
    /// Envoy: the larger of 300 s and `base_ejection_time` when unset.
    public var maxEjectionNanos: Int64 = 300_000_000_000
    public var maxEjectionJitterNanos: Int64 = 0
    public var maxEjectionPercent = 10
    public var alwaysEjectOneHost = false
    /// Percent chance that a detected ejection is enforced.
    public var enforcingConsecutive5xx = 100
    public var enforcingConsecutiveGatewayFailure = 0
    public var enforcingConsecutiveLocalOriginFailure = 100
    public var enforcingSuccessRate = 100
    public var enforcingLocalOriginSuccessRate = 100
    public var enforcingFailurePercentage = 0
    public var enforcingFailurePercentageLocalOrigin = 0
    public var successRateMinimumHosts = 5
    public var successRateRequestVolume = 100
    public var successRateStdevFactor = 1900
    public var failurePercentageThreshold = 85
    public var failurePercentageMinimumHosts = 5
    public var failurePercentageRequestVolume = 50
    /// Connect failures, resets and timeouts counted apart from responses.
    public var splitExternalLocalOriginErrors = false
    /// A host that passes an active health check while ejected returns at once.
    public var successfulActiveHealthCheckUnejectHost = true

    public init() {}
}

extension BootstrapParser {
    /// `clusters[].outlier_detection`; nil (errors reported) when a field is invalid.
    func parseOutlierDetection(_ value: ConfigValue) -> OutlierDetectionConfig? {
        let counts = ["consecutive_5xx", "consecutive_gateway_failure", "consecutive_local_origin_failure",
                      "success_rate_minimum_hosts", "success_rate_request_volume", "success_rate_stdev_factor",
                      "failure_percentage_minimum_hosts", "failure_percentage_request_volume"]
        let percents = ["max_ejection_percent", "enforcing_consecutive_5xx", "enforcing_consecutive_gateway_failure",
                        "enforcing_consecutive_local_origin_failure", "enforcing_success_rate",
                        "enforcing_local_origin_success_rate", "enforcing_failure_percentage",
                        "enforcing_failure_percentage_local_origin", "failure_percentage_threshold"]
        let durations = ["interval", "base_ejection_time", "max_ejection_time", "max_ejection_time_jitter"]
        guard let f = value.fields(
            known: counts + percents + durations + ["split_external_local_origin_errors", "always_eject_one_host",
                                                    "successful_active_health_check_uneject_host"],
            unsupported: ["monitors", "detect_degraded_hosts"]) else { return nil }
        var c = OutlierDetectionConfig()
        var ok = true
        func count(_ key: String, _ set: (Int) -> Void) {
            guard let v = f[key] else { return }
            if let n = v.int(0...Int(UInt32.max)) { set(n) } else { ok = false }
        }
        func percent(_ key: String, _ set: (Int) -> Void) {
            guard let v = f[key] else { return }
            if let n = v.int(0...100) { set(n) } else { ok = false }
        }
        func duration(_ key: String, positive: Bool, _ set: (Int64) -> Void) {
            guard let v = f[key] else { return }
            guard let n = v.duration() else { ok = false; return }
            if positive && n <= 0 { v.error("must be greater than 0s"); ok = false; return }
            set(n)
        }
        count("consecutive_5xx") { c.consecutive5xx = $0 }
        count("consecutive_gateway_failure") { c.consecutiveGatewayFailure = $0 }
        count("consecutive_local_origin_failure") { c.consecutiveLocalOriginFailure = $0 }
        count("success_rate_minimum_hosts") { c.successRateMinimumHosts = $0 }
        count("success_rate_request_volume") { c.successRateRequestVolume = $0 }
        count("success_rate_stdev_factor") { c.successRateStdevFactor = $0 }
        count("failure_percentage_minimum_hosts") { c.failurePercentageMinimumHosts = $0 }
        count("failure_percentage_request_volume") { c.failurePercentageRequestVolume = $0 }
        percent("max_ejection_percent") { c.maxEjectionPercent = $0 }
        percent("enforcing_consecutive_5xx") { c.enforcingConsecutive5xx = $0 }
        percent("enforcing_consecutive_gateway_failure") { c.enforcingConsecutiveGatewayFailure = $0 }
        percent("enforcing_consecutive_local_origin_failure") { c.enforcingConsecutiveLocalOriginFailure = $0 }
        percent("enforcing_success_rate") { c.enforcingSuccessRate = $0 }
        percent("enforcing_local_origin_success_rate") { c.enforcingLocalOriginSuccessRate = $0 }
        percent("enforcing_failure_percentage") { c.enforcingFailurePercentage = $0 }
        percent("enforcing_failure_percentage_local_origin") { c.enforcingFailurePercentageLocalOrigin = $0 }
        percent("failure_percentage_threshold") { c.failurePercentageThreshold = $0 }
        duration("interval", positive: true) { c.intervalNanos = $0 }
        duration("base_ejection_time", positive: true) { c.baseEjectionNanos = $0 }
        duration("max_ejection_time_jitter", positive: false) { c.maxEjectionJitterNanos = $0 }
        c.maxEjectionNanos = max(300_000_000_000, c.baseEjectionNanos)
        duration("max_ejection_time", positive: true) { c.maxEjectionNanos = $0 }
        if c.maxEjectionNanos < c.baseEjectionNanos {
            // Envoy's cluster creation fails with this text.
            f.error("max_ejection_time", "outlier detector's max_ejection_time cannot be smaller than base_ejection_time")
            ok = false
        }
        if let b = f["split_external_local_origin_errors"]?.bool() { c.splitExternalLocalOriginErrors = b } else if f.has("split_external_local_origin_errors") { ok = false }
        if let b = f["always_eject_one_host"]?.bool() { c.alwaysEjectOneHost = b } else if f.has("always_eject_one_host") { ok = false }
        if let b = f["successful_active_health_check_uneject_host"]?.bool() { c.successfulActiveHealthCheckUnejectHost = b }
        else if f.has("successful_active_health_check_uneject_host") { ok = false }
        return ok ? c : nil
    }
}
