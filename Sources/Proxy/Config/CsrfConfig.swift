/// `envoy.extensions.filters.http.csrf.v3.CsrfPolicy`: the filter's own config, and the policy a
/// virtual host or route gives it through `typed_per_filter_config` (the most specific one
/// replaces the others whole, as in Envoy).
public struct CsrfPolicyConfig: Sendable, Hashable {
    /// `filter_enabled` (required): the share of requests checked and refused on a mismatch.
    public let filterEnabled: FractionalPercent
    /// `shadow_enabled`: the share checked and counted, not refused (nil: none).
    public let shadowEnabled: FractionalPercent?
    /// `additional_origins`: source origins accepted besides the request's own host.
    public let additionalOrigins: [StringMatcherConfig]
}

extension BootstrapParser {
    /// `typed`: the body carries `@type` (a typed_config or per-filter config).
    func parseCsrfPolicy(_ value: ConfigValue?, typed: Bool, at path: ConfigPath) -> CsrfPolicyConfig? {
        guard let value else {
            diagnostics.error(path.appending("typed_config"), "required field missing (\(FilterNames.csrf) needs filter_enabled)")
            return nil
        }
        guard let f = value.fields(known: (typed ? ["@type"] : []) + ["filter_enabled", "shadow_enabled", "additional_origins"]) else { return nil }
        var ok = true
        var enabled: FractionalPercent?
        if let v = f.required("filter_enabled") { enabled = parseRuntimeFractionalPercent(v) }
        var shadow: FractionalPercent?
        if let v = f["shadow_enabled"] { shadow = parseRuntimeFractionalPercent(v); if shadow == nil { ok = false } }
        var origins: [StringMatcherConfig] = []
        for item in f["additional_origins"]?.list() ?? [] {
            if let m = parseStringMatcher(item) { origins.append(m) } else { ok = false }
        }
        guard ok, let enabled else { return nil }
        return CsrfPolicyConfig(filterEnabled: enabled, shadowEnabled: shadow, additionalOrigins: origins)
    }
}
