/// `envoy.extensions.filters.http.cors.v3.CorsPolicy`, given to `envoy.filters.http.cors` through
/// `typed_per_filter_config` of a virtual host or a route (the route's fields win, field by
/// field, as in Envoy). The filter's own typed_config (`envoy.extensions.filters.http.cors.v3.Cors`)
/// has no fields.
public struct CorsPolicyConfig: Sendable, Hashable {
    public let allowOrigins: [StringMatcherConfig]
    public let allowMethods: String?
    public let allowHeaders: String?
    public let exposeHeaders: String?
    public let maxAge: String?
    public let allowCredentials: Bool?
    /// nil: unset (enabled: 100%; shadow: off).
    public let filterEnabled: FractionalPercent?
    public let shadowEnabled: FractionalPercent?
    public let forwardNotMatchingPreflights: Bool?
}

extension BootstrapParser {
    func parseCorsPolicy(_ value: ConfigValue) -> CorsPolicyConfig? {
        guard let f = value.fields(
            known: ["@type", "allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers", "max_age",
                    "allow_credentials", "filter_enabled", "shadow_enabled", "forward_not_matching_preflights",
                    "allow_private_network_access"]) else { return nil }
        var ok = true
        var origins: [StringMatcherConfig] = []
        for item in f["allow_origin_string_match"]?.list() ?? [] {
            // safe_regex origins match the whole origin with RE2; parseStringMatcher compiled them.
            guard let m = parseStringMatcher(item) else { ok = false; continue }
            origins.append(m)
        }
        func text(_ key: String) -> String? {
            guard let v = f[key] else { return nil }
            guard let s = v.string() else { ok = false; return nil }
            if s.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) { v.error("may not hold CR, LF or NUL"); ok = false; return nil }
            return s.isEmpty ? nil : s
        }
        let methods = text("allow_methods")
        let headers = text("allow_headers")
        // "*" echoes the request's Access-Control-Request-Method/-Headers in Envoy; not done here.
        for (key, v) in [("allow_methods", methods), ("allow_headers", headers)] where v == "*" {
            f.error(key, "'*' (echo the request's access-control-request-*) is not supported by ballast; list the values")
            ok = false
        }
        let expose = text("expose_headers")
        let maxAge = text("max_age")
        func flag(_ key: String) -> Bool? {
            guard let v = f[key] else { return nil }
            if case .mapping = v.node {
                guard let g = v.fields(known: ["value"]) else { ok = false; return nil }
                let b = g["value"]?.bool() ?? false
                return b
            }
            guard let b = v.bool() else { ok = false; return nil }
            return b
        }
        let credentials = flag("allow_credentials")
        let forward = flag("forward_not_matching_preflights")
        if flag("allow_private_network_access") == true {
            f.error("allow_private_network_access", "true is not supported by ballast")
            ok = false
        }
        var enabled: FractionalPercent?
        var shadow: FractionalPercent?
        if let v = f["filter_enabled"] { enabled = parseRuntimeFractionalPercent(v); if enabled == nil { ok = false } }
        if let v = f["shadow_enabled"] { shadow = parseRuntimeFractionalPercent(v); if shadow == nil { ok = false } }
        guard ok else { return nil }
        return CorsPolicyConfig(allowOrigins: origins, allowMethods: methods, allowHeaders: headers, exposeHeaders: expose,
                                maxAge: maxAge, allowCredentials: credentials, filterEnabled: enabled, shadowEnabled: shadow,
                                forwardNotMatchingPreflights: forward)
    }
}
