/// `envoy.filters.http.ext_authz` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`) with an
/// `http_service`: every request is first sent (its head only) to the authorization cluster, and
/// goes on only when that answers 200 (docs/ext-authz.md). `grpc_service` and every field whose
/// effect Ballast does not implement are refused with their YAML path.
public struct ExtAuthzConfig: Sendable, Hashable {
    /// `http_service.server_uri.cluster` (must exist).
    public var cluster: String
    /// `http_service.server_uri.timeout` (required, as Envoy's HttpUri).
    public var timeoutNanos: Int64
    /// `http_service.path_prefix`: put before the request's path in the check request.
    public var pathPrefix: String = ""
    /// `authorization_request.allowed_headers`: request fields sent besides Envoy's own
    /// (authorization, method, path, host).
    public var allowedHeaders: [StringMatcherConfig] = []
    /// `authorization_request.headers_to_add`: literal fields on every check request.
    public var headersToAdd: [ExtAuthzHeader] = []
    /// `authorization_response.allowed_upstream_headers`: fields of a 200 set on the request.
    public var allowedUpstreamHeaders: [StringMatcherConfig] = []
    /// `authorization_response.allowed_upstream_headers_to_append`: fields of a 200 appended.
    public var allowedUpstreamHeadersToAppend: [StringMatcherConfig] = []
    /// `authorization_response.allowed_client_headers`: fields of a denial the client gets
    /// (empty: all but Host, as Envoy).
    public var allowedClientHeaders: [StringMatcherConfig] = []
    public var failureModeAllow = false
    public var failureModeAllowHeaderAdd = false
    /// `status_on_error.code` (Envoy's default 403).
    public var statusOnError = 403
    /// `filter_enabled`: the share of requests checked (nil: all); the others count
    /// `ext_authz.disabled` and go on, or get `status_on_error` with `deny_at_disable`.
    public var filterEnabled: FractionalPercent?
    /// `filter_enabled.runtime_key`: a runtime layer's value (an integer percentage) replaces it.
    public var filterEnabledKey: String?
    public var denyAtDisable = false
}

public struct ExtAuthzHeader: Sendable, Hashable {
    public let name: String
    public let value: String
}

extension BootstrapParser {
    static let extAuthzPerRouteType = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"

    func parseExtAuthz(_ body: ConfigValue?, typed: Bool, at path: ConfigPath) -> ExtAuthzConfig? {
        guard let body else {
            diagnostics.error(path.appending("typed_config").appending("http_service"), "required: \(FilterNames.extAuthz) needs an http_service")
            return nil
        }
        guard let f = body.fields(
            known: (typed ? ["@type"] : []) + ["http_service", "grpc_service", "transport_api_version", "failure_mode_allow",
                                                "failure_mode_allow_header_add", "status_on_error", "clear_route_cache",
                                                "include_peer_certificate", "with_request_body", "filter_enabled", "deny_at_disable"],
            unsupported: ["metadata_context_namespaces", "typed_metadata_context_namespaces", "route_metadata_context_namespaces",
                          "route_typed_metadata_context_namespaces", "filter_enabled_metadata",
                          "stat_prefix", "bootstrap_metadata_labels_key", "allowed_headers", "disallowed_headers",
                          "include_tls_session", "charge_cluster_response_stats", "encode_raw_headers",
                          "decoder_header_mutation_rules", "enable_dynamic_metadata_ingestion", "filter_metadata",
                          "emit_filter_state_stats", "validate_mutations", "max_denied_response_body_bytes"])
        else { return nil }
        var ok = true
        if f.has("grpc_service") {
            f.error("grpc_service", "not supported by ballast: its upstreams speak HTTP/1.1 only (gRPC needs HTTP/2); use http_service")
            ok = false
        }
        if f.has("with_request_body") {
            f.error("with_request_body", "not supported by ballast: the check request carries the request's head only (content-length: 0)")
            ok = false
        }
        for key in ["clear_route_cache", "include_peer_certificate"] {
            guard let v = f[key] else { continue }
            guard let b = v.bool() else { ok = false; continue }
            if b { v.error("true is not supported by ballast (the route is not recomputed after the check / no peer certificates are sent)"); ok = false }
        }
        if let v = f["transport_api_version"], let version = v.string(), version != "V3" {
            v.error("'\(version)' is not supported (Envoy 1.40 accepts V3 only)")
            ok = false
        }
        var config = ExtAuthzConfig(cluster: "", timeoutNanos: 0)
        if let v = f["failure_mode_allow"] { if let b = v.bool() { config.failureModeAllow = b } else { ok = false } }
        if let v = f["failure_mode_allow_header_add"] { if let b = v.bool() { config.failureModeAllowHeaderAdd = b } else { ok = false } }
        if let v = f["status_on_error"] {
            if let g = v.fields(known: ["code"]), let code = g.required("code")?.int(100...599) { config.statusOnError = code } else { ok = false }
        }
        if let v = f["filter_enabled"] {
            if let p = parseRuntimeFractionalPercent(v) {
                config.filterEnabled = p
                // A runtime layer may set the key (an unsigned integer: a percentage), as the fault filter's keys.
                if let key = v.fields(known: ["runtime_key", "default_value"])?["runtime_key"]?.string(), !key.isEmpty {
                    config.filterEnabledKey = key
                    faultRuntimeKeys.insert(key)
                }
            } else { ok = false }
        }
        if let v = f["deny_at_disable"] {
            if let g = v.fields(known: ["default_value", "runtime_key"]), let d = g.required("default_value") {
                // Its runtime key is a boolean's, which no layer may set here (refused there): the default applies.
                _ = g["runtime_key"]?.string()
                // A BoolValue: `true` or `{ value: true }`.
                let b: Bool?
                if case .mapping = d.node { b = d.fields(known: ["value"])?.required("value")?.bool() } else { b = d.bool() }
                if let b { config.denyAtDisable = b } else { ok = false }
            } else { ok = false }
        }
        guard !f.has("grpc_service") || f.has("http_service") else { return nil }
        guard let service = f.required("http_service")?.fields(
            known: ["server_uri", "path_prefix", "authorization_request", "authorization_response"],
            unsupported: ["retry_policy"]) else { return nil }
        if let uri = service.required("server_uri")?.fields(known: ["uri", "cluster", "timeout"]) {
            _ = uri.required("uri")?.nonEmptyString()  // Envoy sends the request's own Host and path
            if let c = uri.required("cluster"), let name = c.nonEmptyString() {
                config.cluster = name
                clusterReferences.append(ClusterReference(name: name, value: c))
            } else { ok = false }
            if let t = uri.required("timeout"), let nanos = t.duration() { config.timeoutNanos = nanos } else { ok = false }
        } else { ok = false }
        if let p = service["path_prefix"] {
            if let text = p.string() {
                if !text.isEmpty && !text.hasPrefix("/") { p.error("must start with '/' (Envoy's rule)"); ok = false }
                if text.utf8.contains(where: { $0 < 0x21 || $0 == 0x7F || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
                    p.error("must be a path without spaces, control characters, '?' or '#'"); ok = false
                }
                config.pathPrefix = text
            } else { ok = false }
        }
        if let r = service["authorization_request"] {
            if let g = r.fields(known: ["allowed_headers", "headers_to_add"]) {
                if let l = g["allowed_headers"] { if let m = parseListStringMatcher(l) { config.allowedHeaders = m } else { ok = false } }
                for item in g["headers_to_add"]?.list() ?? [] {
                    guard let h = item.fields(known: ["key", "value"], unsupported: ["raw_value"]),
                          let key = h.required("key")?.nonEmptyString() else { ok = false; continue }
                    let value = h["value"]?.string() ?? ""
                    if value.contains("%") { h.error("value", "'%' substitutions are not supported by ballast here (literal values only)"); ok = false; continue }
                    if !Self.isToken(key) || value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) {
                        h.error("key", "not a valid header name/value"); ok = false; continue
                    }
                    config.headersToAdd.append(ExtAuthzHeader(name: key.lowercased(), value: value))
                }
            } else { ok = false }
        }
        if let r = service["authorization_response"] {
            if let g = r.fields(known: ["allowed_upstream_headers", "allowed_upstream_headers_to_append", "allowed_client_headers"],
                                unsupported: ["allowed_client_headers_on_success", "dynamic_metadata_from_headers"]) {
                if let l = g["allowed_upstream_headers"] { if let m = parseListStringMatcher(l) { config.allowedUpstreamHeaders = m } else { ok = false } }
                if let l = g["allowed_upstream_headers_to_append"] { if let m = parseListStringMatcher(l) { config.allowedUpstreamHeadersToAppend = m } else { ok = false } }
                if let l = g["allowed_client_headers"] { if let m = parseListStringMatcher(l) { config.allowedClientHeaders = m } else { ok = false } }
            } else { ok = false }
        }
        guard ok else { return nil }
        return config
    }

    /// A `ListStringMatcher` (`patterns`, at least one).
    func parseListStringMatcher(_ value: ConfigValue) -> [StringMatcherConfig]? {
        guard let g = value.fields(known: ["patterns"]), let items = g.required("patterns")?.list() else { return nil }
        if items.isEmpty { g.error("patterns", "must not be empty (Envoy's rule)"); return nil }
        var out: [StringMatcherConfig] = []
        for item in items {
            guard let m = parseStringMatcher(item) else { return nil }
            out.append(m)
        }
        return out
    }

    /// `ExtAuthzPerRoute`: `disabled: true` turns the check off on the route (true: disabled).
    func parseExtAuthzPerRoute(_ item: ConfigValue) -> Bool? {
        guard let f = item.fields(known: ["@type", "disabled"], unsupported: ["check_settings"]) else { return nil }
        guard f.oneOf(["disabled"], unsupportedAlternatives: ["check_settings"]) != nil, let v = f["disabled"], let b = v.bool() else { return nil }
        if !b { v.error("must be true (Envoy's rule: disabled or check_settings)"); return nil }
        return true
    }

    static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }
}
