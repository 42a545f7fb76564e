/// `envoy.filters.http.cache` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig`) with the simple
/// in-memory cache (`SimpleHttpCacheConfig`), the one storage Ballast has. docs/cache.md.
public struct CacheFilterConfig: Sendable, Hashable {
    /// `allowed_vary_headers`: a response whose `vary` names a header none of these match is not stored.
    public let allowedVaryHeaders: [StringMatcherConfig]
    /// `max_body_bytes` (0: Ballast's own entry limit only). Envoy 1.40 ignores the field
    /// (not implemented there); Ballast applies it (IntentionalDifferences).
    public let maxBodyBytes: Int
    /// `ignore_request_cache_control_header`: the request's cache-control / pragma play no part.
    public let ignoreRequestCacheControl: Bool
}

extension BootstrapParser {
    static let simpleHttpCacheType = "type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig"

    /// The filter's config; nil on an error (reported). `.some(nil)`: `disabled: true` (the
    /// filter is a no-op, as Envoy's).
    func parseCacheFilter(_ body: ConfigValue?, typed: Bool, at path: ConfigPath) -> CacheFilterConfig?? {
        guard let body else {
            diagnostics.error(path.appending("typed_config").appending("typed_config"), "required field missing (the cache storage)", location: nil)
            return nil
        }
        // Envoy 1.40's CacheConfig (thundering_herd_handler came later: unknown there too).
        guard let f = body.fields(known: (typed ? ["@type"] : []) + ["typed_config", "disabled", "allowed_vary_headers", "max_body_bytes",
                                                                     "ignore_request_cache_control_header"],
                                  unsupported: ["key_creator_params"]) else { return nil }
        var ok = true
        var disabled = false
        if let v = f["disabled"] {
            let b: Bool? = if case .mapping = v.node { v.fields(known: ["value"])?.required("value")?.bool() } else { v.bool() }
            if let b { disabled = b } else { ok = false }
        }
        if let storage = f["typed_config"] {
            if !parseCacheStorage(storage) { ok = false }
        } else if !disabled {
            diagnostics.error(f.path.appending("typed_config"), "required field missing (the cache storage; required unless disabled)", at: f.node)
            ok = false
        }
        var vary: [StringMatcherConfig] = []
        for item in f["allowed_vary_headers"]?.list() ?? [] {
            if let m = parseStringMatcher(item) { vary.append(m) } else { ok = false }
        }
        var maxBody = 0
        if let v = f["max_body_bytes"] { if let n = v.int(0...Int(UInt32.max)) { maxBody = n } else { ok = false } }
        var ignoreRequest = false
        if let v = f["ignore_request_cache_control_header"] { if let b = v.bool() { ignoreRequest = b } else { ok = false } }
        guard ok else { return nil }
        if disabled { return .some(nil) }
        return CacheFilterConfig(allowedVaryHeaders: vary, maxBodyBytes: maxBody, ignoreRequestCacheControl: ignoreRequest)
    }

    /// The storage's typed_config: only the simple in-memory cache (it has no fields).
    private func parseCacheStorage(_ value: ConfigValue) -> Bool {
        guard let f = value.fields(known: ["@type"]) else { return false }
        guard let type = f.required("@type")?.nonEmptyString() else { return false }
        guard type == Self.simpleHttpCacheType else {
            f.error("@type", "'\(type)': this cache storage is not supported by ballast (ballast implements \(Self.simpleHttpCacheType))")
            return false
        }
        return true
    }
}
