/// `routes[].redirect`: answered locally with a 3xx and `location`, as Envoy's router does.
public struct RedirectConfig: Sendable, Hashable {
    /// `https_redirect: true` ("https") or `scheme_redirect` (as written, as Envoy).
    public let scheme: String?
    /// `host_redirect`.
    public let host: String?
    /// `port_redirect`.
    public let port: Int?
    /// `path_redirect` (may carry its own query).
    public let path: String?
    /// `prefix_rewrite`: replaces the matched prefix.
    public let prefixRewrite: String?
    /// `strip_query`.
    public let stripQuery: Bool
    /// `response_code` (MOVED_PERMANENTLY 301 by default).
    public let status: Int
    /// Not a config field: the Host goes into the location as sent, its port kept whatever the
    /// scheme (Envoy's `require_tls` redirect; a route's https_redirect drops `:80`).
    public var keepsHost = false
}

extension BootstrapParser {
    static let redirectCodes: [String: Int] = ["MOVED_PERMANENTLY": 301, "FOUND": 302, "SEE_OTHER": 303,
                                               "TEMPORARY_REDIRECT": 307, "PERMANENT_REDIRECT": 308]

    func parseRedirect(_ value: ConfigValue, pathMatch: PathMatch?) -> RedirectConfig? {
        guard let f = value.fields(known: ["https_redirect", "scheme_redirect", "host_redirect", "port_redirect", "path_redirect",
                                           "prefix_rewrite", "strip_query", "response_code"],
                                   unsupported: ["regex_rewrite"]) else { return nil }
        var ok = true
        var scheme: String?
        if f.has("https_redirect") && f.has("scheme_redirect") {
            f.error("scheme_redirect", "only one of https_redirect and scheme_redirect may be set")
            ok = false
        }
        if let v = f["https_redirect"] {
            if let on = v.bool() { if on { scheme = "https" } } else { ok = false }
        }
        if let v = f["scheme_redirect"] {
            if let s = v.nonEmptyString() { scheme = s } else { ok = false }
        }
        let host = f["host_redirect"].flatMap { v -> String? in
            let s = v.nonEmptyString()
            if s == nil { ok = false }
            return s
        }
        var port: Int?
        if let v = f["port_redirect"] {
            if let n = v.int(0...65535) { port = n == 0 ? nil : n } else { ok = false }
        }
        if f.has("path_redirect") && f.has("prefix_rewrite") {
            f.error("prefix_rewrite", "only one of path_redirect and prefix_rewrite may be set")
            ok = false
        }
        let path = f["path_redirect"].flatMap { v -> String? in
            let s = v.string()
            if s == nil { ok = false }
            return s
        }
        let prefix = f["prefix_rewrite"].flatMap { v -> String? in
            let s = v.string()
            if s == nil { ok = false }
            return s
        }
        if prefix != nil, case .safeRegex = pathMatch {
            f.error("prefix_rewrite", "a redirect's prefix_rewrite with a safe_regex match is not supported by ballast")
            ok = false
        }
        for (key, text) in [("host_redirect", host), ("path_redirect", path), ("prefix_rewrite", prefix), ("scheme_redirect", scheme)] {
            if let text, text.utf8.contains(where: { $0 < 0x21 || $0 == 0x7F }) {
                f.error(key, "'\(text)' may not hold whitespace or control characters")
                ok = false
            }
        }
        var stripQuery = false
        if let v = f["strip_query"] {
            if let b = v.bool() { stripQuery = b } else { ok = false }
        }
        var status = 301
        if let v = f["response_code"] {
            if let s = v.string(), let code = Self.redirectCodes[s] {
                status = code
            } else {
                v.error("expected MOVED_PERMANENTLY, FOUND, SEE_OTHER, TEMPORARY_REDIRECT or PERMANENT_REDIRECT")
                ok = false
            }
        }
        guard ok else { return nil }
        return RedirectConfig(scheme: scheme, host: host, port: port, path: path, prefixRewrite: prefix, stripQuery: stripQuery, status: status)
    }
}
