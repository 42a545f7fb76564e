/// `envoy.filters.http.health_check` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck`): the
/// non-pass-through mode, in which requests whose headers match are answered by the proxy itself
/// (200, or 503 while `/healthcheck/fail` is in force) and never forwarded.
public struct HealthCheckFilterConfig: Sendable, Hashable {
    /// `headers`: all must match (none: every request is a health check, as in Envoy).
    public let headers: [HeaderMatcherConfig]
}

extension BootstrapParser {
    func parseHealthCheck(_ body: ConfigValue?, typed: Bool, at path: ConfigPath) -> HealthCheckFilterConfig? {
        guard let body else {
            diagnostics.error(path.appending("typed_config").appending("pass_through_mode"), "required field missing (Envoy requires it)", location: nil)
            return nil
        }
        guard let f = body.fields(known: (typed ? ["@type"] : []) + ["pass_through_mode", "headers"],
                                  unsupported: ["cache_time", "cluster_min_healthy_percentages"]) else { return nil }
        guard let mode = f.required("pass_through_mode") else { return nil }
        // BoolValue: `false` or `{value: false}`.
        var passThrough: Bool?
        if case .mapping = mode.node {
            passThrough = mode.fields(known: ["value"])?["value"]?.bool() ?? false
        } else {
            passThrough = mode.bool()
        }
        guard let passThrough else { return nil }
        if passThrough {
            mode.error("true is not applied by ballast yet (in Envoy: health checks are forwarded and the response cached); use false")
            return nil
        }
        var headers: [HeaderMatcherConfig] = []
        var ok = true
        for item in f["headers"]?.list() ?? [] {
            if let h = parseHeaderMatcher(item) { headers.append(h) } else { ok = false }
        }
        return ok ? HealthCheckFilterConfig(headers: headers) : nil
    }
}
