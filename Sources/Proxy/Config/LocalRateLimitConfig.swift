/// `envoy.filters.http.local_ratelimit` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`), in the
/// HCM's `http_filters` or in a route's `typed_per_filter_config` (which then replaces it for
/// that route, with a token bucket of its own). What Ballast implements: the token bucket (shared
/// by all workers, as Envoy's), `filter_enabled` / `filter_enforced` (their `default_value`: Ballast
/// has no runtime layer that sets it (layered_runtime refuses other keys), so the runtime key is never set and Envoy uses the default too),
/// `response_headers_to_add` on the 429, and the four stats. Everything else is refused.
public struct LocalRateLimitConfig: Sendable, Hashable {
    public struct TokenBucket: Sendable, Hashable {
        public let maxTokens: Int
        public let tokensPerFill: Int
        public let fillIntervalNanos: Int64
    }

    public let statPrefix: String
    /// nil: no bucket (allowed only in the HCM's filter; every enabled request is then limited).
    public let tokenBucket: TokenBucket?
    /// nil: unset, which Envoy reads as 0% (the filter does nothing).
    public let filterEnabled: FractionalPercent?
    public let filterEnforced: FractionalPercent?
    public let responseHeadersToAdd: [HeaderToAdd]
}

/// A `RuntimeFractionalPercent`'s `default_value` (or a bare `FractionalPercent`).
public struct FractionalPercent: Sendable, Hashable {
    public let numerator: UInt64
    /// 100, 10,000 or 1,000,000 (`HUNDRED`, `TEN_THOUSAND`, `MILLION`).
    public let denominator: UInt64

    /// Envoy's draw: a random value modulo the denominator, below the numerator.
    @inline(__always)
    func enabled(_ random: UInt64) -> Bool {
        numerator >= denominator || random % denominator < numerator
    }

    enum Denominator: String, CaseIterable {
        case hundred = "HUNDRED", tenThousand = "TEN_THOUSAND", million = "MILLION"
        var value: UInt64 {
            switch self {
            case .hundred: 100
            case .tenThousand: 10_000
            case .million: 1_000_000
            }
        }
    }
}

/// A `HeaderValueOption` added to a local reply: a literal name and value.
public struct HeaderToAdd: Sendable, Hashable {
    public let name: String
    public let value: String
}

extension BootstrapParser {
    /// `perRoute`: the config sits in a route's `typed_per_filter_config`, where Envoy requires a
    /// token bucket.
    func parseLocalRateLimit(_ body: ConfigValue?, typed: Bool, at path: ConfigPath, perRoute: Bool) -> LocalRateLimitConfig? {
        guard let body else {
            diagnostics.error(path.appending("typed_config"), "\(FilterNames.localRateLimit) needs typed_config with a stat_prefix")
            return nil
        }
        guard let f = body.fields(
            known: (typed ? ["@type"] : []) + ["stat_prefix", "token_bucket", "filter_enabled", "filter_enforced",
                                                "response_headers_to_add", "local_rate_limit_per_downstream_connection",
                                                "always_consume_default_token_bucket", "stage", "enable_x_ratelimit_headers", "shadow_mode"],
            unsupported: ["status", "request_headers_to_add_when_not_enforced", "descriptors", "local_cluster_rate_limit",
                          "vh_rate_limits", "rate_limited_as_resource_exhausted", "rate_limits", "max_dynamic_descriptors"])
        else { return nil }
        var ok = true
        let statPrefix = f.required("stat_prefix")?.nonEmptyString()
        if statPrefix == nil { ok = false }
        var bucket: LocalRateLimitConfig.TokenBucket?
        if let b = f["token_bucket"] {
            bucket = parseTokenBucket(b)
            if bucket == nil { ok = false }
        } else if perRoute {
            f.error("token_bucket", "required in typed_per_filter_config (Envoy: local rate limit token bucket must be set for per filter configs)")
            ok = false
        }
        let enabled = f["filter_enabled"].flatMap { v -> FractionalPercent? in
            let p = parseRuntimeFractionalPercent(v)
            if p == nil { ok = false }
            return p
        }
        let enforced = f["filter_enforced"].flatMap { v -> FractionalPercent? in
            let p = parseRuntimeFractionalPercent(v)
            if p == nil { ok = false }
            return p
        }
        var headers: [HeaderToAdd] = []
        for item in f["response_headers_to_add"]?.list() ?? [] {
            if let h = parseLocalReplyHeader(item) {
                if !h.name.isEmpty { headers.append(h) }  // empty name: the option adds nothing
            } else {
                ok = false
            }
        }
        // Fields whose defaults Ballast implements; any other value is refused.
        if let v = f["local_rate_limit_per_downstream_connection"], let on = v.bool() {
            if on { v.error("true (a bucket per downstream connection) is not supported by ballast; only the shared bucket") ; ok = false }
        } else if f["local_rate_limit_per_downstream_connection"] != nil { ok = false }
        if let v = f["stage"], let stage = v.int(0...10) {
            // The stage selects route rate_limits entries, which only descriptors use.
            if stage != 0 { v.error("a stage other than 0 is not supported by ballast (it selects descriptors, which ballast does not implement)"); ok = false }
        } else if f["stage"] != nil { ok = false }
        if let v = f["enable_x_ratelimit_headers"], let text = v.string() {
            if text != "OFF" { v.error("'\(text)': x-ratelimit-* headers are not supported by ballast; only OFF"); ok = false }
        }
        if let v = f["shadow_mode"], let on = v.bool() {
            if on { v.error("true is not supported by ballast (use filter_enforced to count without enforcing)"); ok = false }
        } else if f["shadow_mode"] != nil { ok = false }
        // Without descriptors the default bucket is always consumed, whatever this says.
        _ = f["always_consume_default_token_bucket"]?.bool()
        guard ok, let statPrefix else { return nil }
        return LocalRateLimitConfig(statPrefix: statPrefix, tokenBucket: bucket, filterEnabled: enabled,
                                    filterEnforced: enforced, responseHeadersToAdd: headers)
    }

    func parseTokenBucket(_ value: ConfigValue) -> LocalRateLimitConfig.TokenBucket? {
        guard let f = value.fields(known: ["max_tokens", "tokens_per_fill", "fill_interval"]) else { return nil }
        let maxTokens = f.required("max_tokens")?.int(0...Int(UInt32.max))  // 0: Envoy accepts it, and limits every request
        var tokensPerFill = 1
        if let v = f["tokens_per_fill"] {
            // A UInt32Value: `tokens_per_fill: 5` or `{ value: 5 }`.
            guard let n = wrappedUInt32(v, range: 1...Int(UInt32.max)) else { return nil }
            tokensPerFill = n
        }
        let fill = f.required("fill_interval")?.duration()
        guard let maxTokens, let fill else { return nil }
        guard fill >= 50_000_000 else {
            f.error("fill_interval", "must be at least 50ms (Envoy: local rate limit token bucket fill timer must be >= 50ms), got \(EnvoyDuration.format(nanos: fill))")
            return nil
        }
        return LocalRateLimitConfig.TokenBucket(maxTokens: maxTokens, tokensPerFill: tokensPerFill, fillIntervalNanos: fill)
    }

    private func wrappedUInt32(_ v: ConfigValue, range: ClosedRange<Int>) -> Int? {
        if case .mapping = v.node {
            guard let g = v.fields(known: ["value"]) else { return nil }
            return g.required("value")?.int(range)
        }
        return v.int(range)
    }

    /// `{ runtime_key, default_value: { numerator, denominator } }`.
    func parseRuntimeFractionalPercent(_ value: ConfigValue) -> FractionalPercent? {
        guard let f = value.fields(known: ["runtime_key", "default_value"]) else { return nil }
        // layered_runtime refuses filter keys: the key is never set, so Envoy uses default_value too.
        _ = f["runtime_key"]?.string()
        guard let d = f.required("default_value") else { return nil }
        return parseFractionalPercent(d)
    }

    func parseFractionalPercent(_ value: ConfigValue) -> FractionalPercent? {
        guard let f = value.fields(known: ["numerator", "denominator"]) else { return nil }
        let numerator = f["numerator"].map { $0.int(0...Int(UInt32.max)) } ?? 0
        var denominator = FractionalPercent.Denominator.hundred
        if let v = f["denominator"] {
            guard let d = v.enumeration(FractionalPercent.Denominator.self) else { return nil }
            denominator = d
        }
        guard let numerator else { return nil }
        return FractionalPercent(numerator: UInt64(numerator), denominator: denominator.value)
    }

    /// A `HeaderValueOption` for a local reply: a literal header (no `%...%` substitution).
    func parseLocalReplyHeader(_ value: ConfigValue) -> HeaderToAdd? {
        guard let f = value.fields(known: ["header", "append", "append_action", "keep_empty_value"]) else { return nil }
        guard let h = f.required("header"), let g = h.fields(known: ["key", "value"], unsupported: ["raw_value"]) else { return nil }
        guard let key = g.required("key")?.nonEmptyString() else { return nil }
        let text = g["value"]?.string() ?? ""
        let name = key.lowercased()
        guard name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
            g.error("key", "'\(key)' is not a valid header name"); return nil
        }
        guard !text.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
            g.error("value", "a header value may not hold CR, LF or NUL"); return nil
        }
        if text.contains("%") {
            g.error("value", "%...% substitutions in headers are not supported by ballast here")
            return nil
        }
        // The local reply's own fields: appending or overwriting them is not implemented.
        if ["content-length", "content-type", "date", "server", "connection", "transfer-encoding"].contains(name) {
            g.error("key", "'\(key)' is a field of the local reply itself; adding it is not supported by ballast")
            return nil
        }
        // Every append mode adds a field the reply does not have yet; an empty value is added only
        // with keep_empty_value, as in Envoy.
        _ = f["append"]?.bool()
        if let v = f["append_action"] {
            guard v.string().map({ ["APPEND_IF_EXISTS_OR_ADD", "ADD_IF_ABSENT", "OVERWRITE_IF_EXISTS_OR_ADD", "OVERWRITE_IF_EXISTS"].contains($0) }) == true else {
                v.error("expected APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD or OVERWRITE_IF_EXISTS")
                return nil
            }
            // OVERWRITE_IF_EXISTS adds nothing when the field is absent, which it always is here.
            if v.string() == "OVERWRITE_IF_EXISTS" { return HeaderToAdd(name: "", value: "") }
        }
        let keepEmpty = f["keep_empty_value"]?.bool() ?? false
        if text.isEmpty && !keepEmpty { return HeaderToAdd(name: "", value: "") }
        return HeaderToAdd(name: name, value: text)
    }
}
