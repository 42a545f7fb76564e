/// `envoy.filters.http.fault` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault`), in `http_filters` or
/// in a route's `typed_per_filter_config` (which replaces it on that route). Implemented: `delay`
/// (`fixed_delay` or `header_delay`) and `abort` (`http_status` or `header_abort`), each with its
/// `percentage`, and `max_active_faults`. Its runtime keys (Envoy's `fault.http.*` or the
/// `*_runtime` names) override those per request when a `layered_runtime` layer sets them
/// (`runtimeKeys`, `RuntimeValues`). Everything else is refused.
public struct FaultConfig: Sendable, Hashable {
    public enum Delay: Sendable, Hashable {
        case fixed(nanos: Int64)
        /// `x-envoy-fault-delay-request` (milliseconds) decides.
        case header
    }

    public enum Abort: Sendable, Hashable {
        case httpStatus(Int)
        /// `x-envoy-fault-abort-request` (a status in 200..<600) decides.
        case header
    }

    public let delay: Delay?
    /// Unset percentage: 0% (protobuf's default FractionalPercent), as in Envoy.
    public let delayPercentage: FractionalPercent
    public let abort: Abort?
    public let abortPercentage: FractionalPercent
    /// nil: no limit.
    public let maxActiveFaults: Int?
    /// The runtime keys this filter reads (Envoy's `fault.http.*` defaults, or the `*_runtime`
    /// fields), only for the parts configured: a layer may set them (docs/dynamic-config.md).
    public var runtimeKeys = FaultRuntimeKeys()
}

/// The runtime keys a fault config reads; nil: the part is not configured (the key is not read).
public struct FaultRuntimeKeys: Sendable, Hashable {
    public var delayPercent: String?
    public var delayDuration: String?
    public var abortPercent: String?
    public var abortHTTPStatus: String?
    public var maxActiveFaults: String?

    public var all: [String] { [delayPercent, delayDuration, abortPercent, abortHTTPStatus, maxActiveFaults].compactMap { $0 } }
}

extension BootstrapParser {
    func parseFault(_ body: ConfigValue?, typed: Bool, at path: ConfigPath) -> FaultConfig? {
        guard let body else { return FaultConfig(delay: nil, delayPercentage: .zero, abort: nil, abortPercentage: .zero, maxActiveFaults: nil) }
        guard let f = body.fields(
            known: (typed ? ["@type"] : []) + ["delay", "abort", "max_active_faults", "delay_percent_runtime", "abort_percent_runtime",
                                                "delay_duration_runtime", "abort_http_status_runtime", "max_active_faults_runtime",
                                                "response_rate_limit_percent_runtime", "abort_grpc_status_runtime",
                                                "disable_downstream_cluster_stats"],
            unsupported: ["upstream_cluster", "headers", "downstream_nodes", "response_rate_limit", "filter_metadata"])
        else { return nil }
        var ok = true
        for key in ["delay_percent_runtime", "abort_percent_runtime", "delay_duration_runtime", "abort_http_status_runtime",
                    "max_active_faults_runtime", "response_rate_limit_percent_runtime", "abort_grpc_status_runtime"] {
            if let v = f[key], v.string() == nil { ok = false }
        }
        // Ballast keeps no per-downstream-cluster fault stats, so there are none to disable.
        if let v = f["disable_downstream_cluster_stats"], v.bool() == nil { ok = false }
        var delay: FaultConfig.Delay?
        var delayPercentage = FractionalPercent.zero
        if let d = f["delay"] {
            if let g = d.fields(known: ["fixed_delay", "header_delay", "percentage"]) {
                switch g.oneOf(["fixed_delay", "header_delay"]) {
                case "fixed_delay":
                    if let nanos = g["fixed_delay"]?.duration() {
                        if nanos <= 0 { g.error("fixed_delay", "must be greater than 0s"); ok = false } else { delay = .fixed(nanos: nanos) }
                    } else { ok = false }
                case "header_delay":
                    if g.present("header_delay")?.fields(known: []) != nil { delay = .header } else { ok = false }
                default:
                    ok = false
                }
                if let p = g["percentage"] {
                    if let fp = parseFractionalPercent(p) { delayPercentage = fp } else { ok = false }
                }
            } else { ok = false }
        }
        var abort: FaultConfig.Abort?
        var abortPercentage = FractionalPercent.zero
        if let a = f["abort"] {
            if let g = a.fields(known: ["http_status", "header_abort", "percentage"], unsupported: ["grpc_status"]) {
                switch g.oneOf(["http_status", "header_abort"], unsupportedAlternatives: ["grpc_status"]) {
                case "http_status":
                    if let code = g["http_status"]?.int(200...599) { abort = .httpStatus(code) } else { ok = false }
                case "header_abort":
                    if g.present("header_abort")?.fields(known: []) != nil { abort = .header } else { ok = false }
                default:
                    ok = false
                }
                if let p = g["percentage"] {
                    if let fp = parseFractionalPercent(p) { abortPercentage = fp } else { ok = false }
                }
            } else { ok = false }
        }
        var maxActive: Int?
        if let v = f["max_active_faults"] {
            if case .mapping = v.node {
                if let g = v.fields(known: ["value"]), let n = g.required("value")?.int(0...Int(UInt32.max)) { maxActive = n } else { ok = false }
            } else if let n = v.int(0...Int(UInt32.max)) { maxActive = n } else { ok = false }
        }
        guard ok else { return nil }
        var config = FaultConfig(delay: delay, delayPercentage: delayPercentage, abort: abort, abortPercentage: abortPercentage, maxActiveFaults: maxActive)
        func key(_ field: String, _ envoyDefault: String) -> String { f[field]?.string() ?? envoyDefault }
        if delay != nil {
            config.runtimeKeys.delayPercent = key("delay_percent_runtime", "fault.http.delay.fixed_delay_percent")
            config.runtimeKeys.delayDuration = key("delay_duration_runtime", "fault.http.delay.fixed_duration_ms")
        }
        if abort != nil {
            config.runtimeKeys.abortPercent = key("abort_percent_runtime", "fault.http.abort.abort_percent")
            config.runtimeKeys.abortHTTPStatus = key("abort_http_status_runtime", "fault.http.abort.http_status")
        }
        if maxActive != nil { config.runtimeKeys.maxActiveFaults = key("max_active_faults_runtime", "fault.http.max_active_faults") }
        faultRuntimeKeys.formUnion(config.runtimeKeys.all)
        return config
    }
}

extension FractionalPercent {
    static let zero = FractionalPercent(numerator: 0, denominator: 100)
}
