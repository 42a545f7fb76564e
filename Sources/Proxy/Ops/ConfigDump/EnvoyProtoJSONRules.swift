import Yams

/// How Envoy 1.40 prints a resource in /config_dump, as rules over the YAML / JSON the resource
/// was written in. Envoy parses the text into its protobuf message and prints that message with
/// protobuf's JSON printer (field names as in the .proto, defaults left out); Ballast has no
/// protobuf schema, so each rule names the fields it applies to. Each was checked against Envoy
/// 1.40's /config_dump of the same config (ConfigDumpDifferentialTests, ConfigDumpRulesTests):
///
/// 1. Durations print as seconds with 0, 3, 6 or 9 fractional digits: `2.000s` -> `2s`,
///    `0.25s` -> `0.250s`, `{seconds: 1, nanos: 5000000}` -> `1.005s` (`durationFields`).
/// 2. 64-bit integers print as strings: `minimum_ring_size: 1024` -> `"1024"` (`int64Fields`);
///    other numbers print as numbers (a quoted one too in `plainZeroFields`, e.g. `priority`).
/// 3. An enum at its zero value is left out: `codec_type: AUTO`, `lb_policy: ROUND_ROBIN`
///    (`enumZeroValues`). Other enum values print by name, as written.
/// 4. Plain proto3 scalars at their default are left out: `false`, an empty string, and 0 in the
///    plain numeric fields (`plainZeroFields`; not `port_value`, a oneof member). Wrapper fields
///    (`BoolValue`, `UInt32Value`) keep an explicit `false` / 0: `use_remote_address: false`,
///    `max_connections: 0` (`wrapperBoolFields`; other numbers are wrappers or never 0).
/// 5. A null value (`key: ~`) and an empty list are left out; an empty mapping stays `{}` (a
///    message that is set).
/// 6. Fields whose protobuf type is string print as strings even when the YAML scalar looks like
///    a number or a bool (`name: 8080` -> `"8080"`, `stringFields`).
/// 7. Inside `google.protobuf.Struct` values (`metadata`, `filter_metadata`) no rule applies:
///    numbers, strings and bools print as written.
/// 8. `@type` (an `Any`'s type URL) is kept in its place; the Any's fields follow the same rules.
/// 9. Secrets are redacted (Envoy's `sensitive` fields: `private_key`, `password`, a session
///    ticket key, a generic secret): every string inside prints as `[redacted]`, bytes
///    (`inline_bytes`) as that text in base64 (`sensitiveFields`).
/// Key order is the source's (Envoy prints in .proto field order); consumers compare parsed
/// values, for which order does not matter.
enum EnvoyProtoJSONRules {
    /// `google.protobuf.Duration` fields of the messages Ballast accepts.
    static let durationFields: Set<String> = [
        "timeout", "connect_timeout", "per_try_timeout", "per_try_idle_timeout", "idle_timeout", "interval", "interval_jitter",
        "initial_jitter", "no_traffic_interval", "no_traffic_healthy_interval", "unhealthy_interval", "unhealthy_edge_interval",
        "healthy_edge_interval", "dns_refresh_rate", "stats_flush_interval", "drain_timeout", "delayed_close_timeout",
        "stream_idle_timeout", "request_timeout", "request_headers_timeout", "max_connection_duration", "max_stream_duration",
        "max_downstream_connection_duration", "base_interval", "max_interval", "fill_interval", "fixed_delay",
        "base_ejection_time", "max_ejection_time", "max_ejection_time_jitter", "miss_timeout", "megamiss_timeout",
        "kill_timeout", "multikill_timeout", "grpc_timeout_header_max", "grpc_timeout_header_offset", "cleanup_interval",
        "access_log_flush_interval", "initial_fetch_timeout", "listener_filters_timeout", "transport_socket_connect_timeout",
        "flush_interval", "max_grpc_timeout", "grpc_timeout_offset", "session_timeout", "ttl", "refresh_delay",
        "max_hidden_cache_age",
    ]

    /// `int64` / `uint64` fields (`UInt64Value` too), printed as strings. `start` / `end` only
    /// in an `Int64Range` (`expected_statuses`, `range_match`).
    static let int64Fields: Set<String> = [
        "minimum_ring_size", "maximum_ring_size", "table_size", "stats_server_version_override",
        "expected_statuses.start", "expected_statuses.end", "range_match.start", "range_match.end",
        "retriable_statuses.start", "retriable_statuses.end",
    ]

    /// Enum fields and the name of their zero value.
    static let enumZeroValues: [String: String] = [
        "codec_type": "AUTO", "lb_policy": "ROUND_ROBIN", "dns_lookup_family": "AUTO", "protocol": "TCP",
        "resource_api_version": "AUTO", "transport_api_version": "AUTO", "forward_client_cert_details": "SANITIZE",
        "server_header_transformation": "OVERWRITE", "headers_with_underscores_action": "ALLOW",
        "path_with_escaped_slashes_action": "IMPLEMENTATION_SPECIFIC_DEFAULT",
        "cluster_not_found_response_code": "SERVICE_UNAVAILABLE", "response_code": "MOVED_PERMANENTLY",
        "denominator": "HUNDRED", "action": "ALLOW", "hash_function": "XX_HASH", "health_status": "UNKNOWN",
        "require_tls": "NONE", "internal_redirect_action": "PASS_THROUGH_INTERNAL_REDIRECT", "traffic_direction": "UNSPECIFIED",
        "drain_type": "DEFAULT", "tls_minimum_protocol_version": "TLS_AUTO", "tls_maximum_protocol_version": "TLS_AUTO",
        "codec_client_type": "HTTP1", "priority": "DEFAULT", "operation_name": "INGRESS", "append_action": "APPEND_IF_EXISTS_OR_ADD",
    ]

    /// `google.protobuf.BoolValue` fields: an explicit `false` is printed.
    static let wrapperBoolFields: Set<String> = [
        "use_remote_address", "generate_request_id", "normalize_path", "case_sensitive", "dynamic_stats",
        "stream_error_on_invalid_http_message", "bind_to_port", "transparent", "freebind", "use_original_dst",
        "allow_credentials", "allow_private_network_access", "forward_not_matching_preflights", "reuse_connection",
        "pass_through_mode", "always_eject_one_host", "auto_host_rewrite", "include_vh_rate_limits", "trace_sampled",
        "enabled", "append", "default_value", "reuse_port", "enable_reuse_port", "allow_absolute_url", "http1_safe_max_connection_duration_enabled",
    ]

    /// Plain (non-wrapper) numeric fields: 0 is their default and is left out. A double `value`
    /// is a `Percent`'s. (`port_value` is in a oneof: Envoy prints `port_value: 0`.)
    static let plainZeroFields: Set<String> = [
        "priority", "value", "numerator", "start", "end", "interval_jitter_percent", "max_tokens",
        "default_value", "status", "keepalive_probes", "choice_count", "seconds", "nanos",
    ]

    /// String fields whose values may look like numbers or bools in YAML.
    static let stringFields: Set<String> = [
        "name", "stat_prefix", "cluster", "cluster_name", "version_info", "id", "prefix", "path", "exact", "suffix",
        "contains", "inline_string", "domains", "key", "address", "retry_on", "runtime_key", "sni", "hostname",
        "route_config_name", "header_name", "host_rewrite_literal", "prefix_rewrite", "region", "zone", "sub_zone",
        "header.value", "exact_match", "safe_regex.regex", "regex", "inline_bytes", "filename", "user_agent_name",
        "server_name", "text_format", "upgrade_type", "path_prefix", "allowed_headers", "expose_headers", "max_age",
        "allow_methods", "allow_headers", "string_match", "present_match_string",
    ]

    /// Fields marked `(udpa.annotations.sensitive)` in Envoy's protos (a `keys` list only under
    /// `session_ticket_keys`, a `secret` only under `generic_secret`).
    static let sensitiveFields: Set<String> = [
        "private_key", "password", "session_ticket_keys.keys", "generic_secret.secret", "hmac_secret", "token_secret",
    ]

    /// `google.protobuf.Struct` fields: printed as written.
    static let structFields: Set<String> = ["metadata", "filter_metadata", "json_format", "fields"]

    /// The resource (a YAML / JSON node) as Envoy prints it; nil when it prints nothing.
    static func normalise(_ node: Node) -> ProtoJSON? {
        value(node, key: nil, parent: nil)
    }

    /// A YAML / JSON text's root, printed (nil when it is not YAML).
    static func normalise(yaml: String) -> ProtoJSON? {
        (try? Yams.compose(yaml: yaml)).flatMap { $0.flatMap(normalise) }
    }

    private static func value(_ node: Node, key: String?, parent: String?) -> ProtoJSON? {
        let qualified = key.map { k in parent.map { "\($0).\(k)" } ?? k }
        if let key, sensitiveFields.contains(key) || sensitiveFields.contains(qualified ?? "") { return redacted(node, key: key) }
        switch node {
        case .alias: return nil
        case .mapping(let mapping):
            if let key, durationFields.contains(key), let d = durationObject(mapping) { return .string(d) }
            if let key, structFields.contains(key) { return literal(node) }
            var fields: [(String, ProtoJSON)] = []
            for (k, v) in mapping {
                guard let name = k.scalar?.string else { continue }
                if name == "@type", let url = v.scalar?.string { fields.append((name, .string(url))); continue }
                if let printed = value(v, key: name, parent: key) { fields.append((name, printed)) }
            }
            return .object(fields)
        case .sequence(let sequence):
            let items = sequence.compactMap { value($0, key: key, parent: parent) }
            return items.isEmpty ? nil : .array(items)
        case .scalar(let scalar):
            guard !node.isNull else { return nil }
            return self.scalar(scalar.string, plain: scalar.style == .plain, key: key ?? "", qualified: qualified ?? "")
        }
    }

    private static func scalar(_ text: String, plain: Bool, key: String, qualified: String) -> ProtoJSON? {
        if durationFields.contains(key), let nanos = try? EnvoyDuration.parseNanos(text) { return .string(duration(nanos: nanos)) }
        if int64Fields.contains(qualified) || int64Fields.contains(key) {
            guard let n = Int64(text) else { return .string(text) }
            return n == 0 && plainZeroFields.contains(key) ? nil : .string(String(n))
        }
        if stringFields.contains(key) || stringFields.contains(qualified) {
            return text.isEmpty ? nil : .string(text)
        }
        if let zero = enumZeroValues[key], text == zero { return nil }
        if plain, let flag = bool(text) {
            return !flag && !wrapperBoolFields.contains(key) ? nil : .bool(flag)
        }
        if let number = number(text), plain || plainZeroFields.contains(key) {
            return number.isZero && plainZeroFields.contains(key) ? nil : .number(number.text)
        }
        return text.isEmpty ? nil : .string(text)
    }

    /// The spellings of a bool the config reader takes.
    static func bool(_ text: String) -> Bool? {
        switch text {
        case "true", "True", "TRUE": true
        case "false", "False", "FALSE": false
        default: nil
        }
    }

    /// A YAML number as protobuf's printer spells it (integers without sign or leading zeros;
    /// doubles in their shortest form, integral ones without a fraction).
    static func number(_ text: String) -> (text: String, isZero: Bool)? {
        if let i = Int64(text) { return (String(i), i == 0) }
        guard text.contains(where: { $0.isNumber }), let d = Double(text), d.isFinite else { return nil }
        if d == d.rounded(), abs(d) < 1e15 { return (String(Int64(d)), d == 0) }
        return (String(d), d == 0)
    }

    /// protobuf's JSON form of a Duration: seconds, and 3, 6 or 9 fractional digits when nonzero.
    static func duration(nanos: Int64) -> String {
        let sign = nanos < 0 ? "-" : ""
        let magnitude = nanos.magnitude
        let seconds = magnitude / 1_000_000_000
        let fraction = magnitude % 1_000_000_000
        guard fraction != 0 else { return "\(sign)\(seconds)s" }
        let (value, digits): (UInt64, Int) = fraction % 1_000_000 == 0 ? (fraction / 1_000_000, 3)
            : fraction % 1_000 == 0 ? (fraction / 1_000, 6) : (fraction, 9)
        let text = String(value)
        return "\(sign)\(seconds).\(String(repeating: "0", count: digits - text.count))\(text)s"
    }

    /// `{seconds: 1, nanos: 500000000}`.
    private static func durationObject(_ mapping: Node.Mapping) -> String? {
        var seconds: Int64 = 0, nanos: Int64 = 0
        for (k, v) in mapping {
            guard let text = v.scalar?.string, let n = Int64(text) else { return nil }
            switch k.scalar?.string {
            case "seconds": seconds = n
            case "nanos": nanos = n
            default: return nil
            }
        }
        guard let total = try? EnvoyDuration.combine(seconds: seconds, nanos: nanos) else { return nil }
        return duration(nanos: total)
    }

    /// A sensitive field's value with every string (and bytes field) replaced, as Envoy's `redact`.
    private static func redacted(_ node: Node, key: String) -> ProtoJSON? {
        switch node {
        case .mapping(let mapping):
            return .object(mapping.compactMap { k, v in
                guard let name = k.scalar?.string, let printed = redacted(v, key: name) else { return nil }
                return (name, printed)
            })
        case .sequence(let sequence): return .array(sequence.compactMap { redacted($0, key: key) })
        case .scalar:
            guard !node.isNull else { return nil }
            return .string(key == "inline_bytes" ? "W3JlZGFjdGVkXQ==" : "[redacted]")
        case .alias: return nil
        }
    }

    /// A Struct value: plain numbers and bools as such, everything else as strings.
    private static func literal(_ node: Node) -> ProtoJSON {
        switch node {
        case .mapping(let mapping):
            return .object(mapping.compactMap { k, v in k.scalar.map { ($0.string, literal(v)) } })
        case .sequence(let sequence): return .array(sequence.map(literal))
        case .scalar(let s):
            if s.style == .plain, let flag = bool(s.string) { return .bool(flag) }
            if s.style == .plain, let n = number(s.string) { return .number(n.text) }
            return .string(s.string)
        case .alias: return .string("")
        }
    }
}
