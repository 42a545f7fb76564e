import Glibc
import Yams

/// `envoy.extensions.filters.http.rbac.v3.RBAC`: enforced `rules` and counted-only
/// `shadow_rules`, each an action and named policies (permissions on the request, principals on
/// the caller). The subset Ballast applies is below; every other field is refused with its path.
public struct RBACConfig: Sendable, Hashable {
    public let rules: RBACRulesConfig?
    public let shadowRules: RBACRulesConfig?
    /// `rules_stat_prefix` / `shadow_rules_stat_prefix`: inserted after `rbac.` in the stat names.
    public let rulesStatPrefix: String
    public let shadowRulesStatPrefix: String
}

public struct RBACRulesConfig: Sendable, Hashable {
    public enum Action: String, Sendable, Hashable, CaseIterable {
        case allow = "ALLOW", deny = "DENY"
    }
    public let action: Action
    /// Sorted by name: Envoy keeps policies in an ordered map, so the first match is by name.
    public let policies: [RBACPolicyConfig]
}

public struct RBACPolicyConfig: Sendable, Hashable {
    public let name: String
    /// A policy matches when any permission and any principal match.
    public let permissions: [RBACPermissionConfig]
    public let principals: [RBACPrincipalConfig]
}

public indirect enum RBACPermissionConfig: Sendable, Hashable {
    case any
    case header(HeaderMatcherConfig)
    /// `url_path.path`: the path without the query.
    case urlPath(StringMatcherConfig)
    case and([RBACPermissionConfig])
    case or([RBACPermissionConfig])
    case not(RBACPermissionConfig)
    case destinationPort(UInt16)
}

public indirect enum RBACPrincipalConfig: Sendable, Hashable {
    case any
    case header(HeaderMatcherConfig)
    case urlPath(StringMatcherConfig)
    case and([RBACPrincipalConfig])
    case or([RBACPrincipalConfig])
    case not(RBACPrincipalConfig)
    /// `direct_remote_ip` (and the deprecated `source_ip`): the connection's peer.
    case directRemoteIP(CIDRRange)
    /// `remote_ip`: the client address after x-forwarded-for processing.
    case remoteIP(CIDRRange)
}

/// `config.core.v3.CidrRange`: an IPv4 or IPv6 prefix.
public struct CIDRRange: Sendable, Hashable {
    public let family: Int32
    /// The address as two big-endian halves (IPv4 in the low 32 bits of `low`), masked.
    public let high: UInt64
    public let low: UInt64
    public let prefixLength: Int

    /// The prefix of `family` (AF_INET, AF_INET6) address bytes `high`/`low`.
    func contains(family f: Int32, high h: UInt64, low l: UInt64) -> Bool {
        guard f == family else { return false }
        if family == AF_INET { return l & Self.mask4(prefixLength) == low }
        let (mh, ml) = Self.mask6(prefixLength)
        return h & mh == high && l & ml == low
    }

    static func mask4(_ n: Int) -> UInt64 {
        n == 0 ? 0 : (0xFFFF_FFFF << UInt64(32 - n)) & 0xFFFF_FFFF
    }

    static func mask6(_ n: Int) -> (UInt64, UInt64) {
        let hi: UInt64 = n >= 64 ? ~0 : (n == 0 ? 0 : ~0 << UInt64(64 - n))
        let lo: UInt64 = n <= 64 ? 0 : (n >= 128 ? ~0 : ~0 << UInt64(128 - n))
        return (hi, lo)
    }
}

extension BootstrapParser {
    static let rbacPerRouteType = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"

    func parseRBAC(_ value: ConfigValue?, typed: Bool) -> RBACConfig? {
        guard let value else { return RBACConfig(rules: nil, shadowRules: nil, rulesStatPrefix: "", shadowRulesStatPrefix: "") }
        guard let f = value.fields(known: (typed ? ["@type"] : []) + ["rules", "shadow_rules", "rules_stat_prefix", "shadow_rules_stat_prefix"],
                                   unsupported: ["matcher", "shadow_matcher", "track_per_rule_stats"]) else { return nil }
        var ok = true
        let rules = f["rules"].map { parseRBACRules($0) }
        let shadow = f["shadow_rules"].map { parseRBACRules($0) }
        if case .some(nil) = rules { ok = false }
        if case .some(nil) = shadow { ok = false }
        let prefix = f["rules_stat_prefix"].map { $0.string() } ?? ""
        let shadowPrefix = f["shadow_rules_stat_prefix"].map { $0.string() } ?? ""
        guard ok, let prefix, let shadowPrefix else { return nil }
        return RBACConfig(rules: rules ?? nil, shadowRules: shadow ?? nil, rulesStatPrefix: prefix, shadowRulesStatPrefix: shadowPrefix)
    }

    /// `RBACPerRoute`: `rbac` replaces the filter's config on the route; without it the filter is
    /// off for the route (nil).
    func parseRBACPerRoute(_ value: ConfigValue) -> RBACConfig?? {
        guard let f = value.fields(known: ["@type", "rbac"]) else { return .none }
        guard let r = f["rbac"] else { return .some(nil) }
        guard let config = parseRBAC(r, typed: false) else { return .none }
        return .some(config)
    }

    private func parseRBACRules(_ value: ConfigValue) -> RBACRulesConfig? {
        guard let f = value.fields(known: ["action", "policies"], unsupported: ["audit_logging_options"]) else { return nil }
        var action = RBACRulesConfig.Action.allow
        if let a = f["action"] {
            if a.string() == "LOG" {
                a.error("action LOG (dynamic metadata only) is not supported by ballast; use ALLOW or DENY")
                return nil
            }
            guard let parsed = a.enumeration(RBACRulesConfig.Action.self) else { return nil }
            action = parsed
        }
        var policies: [RBACPolicyConfig] = []
        var ok = true
        if let p = f["policies"] {
            guard case .mapping(let mapping) = p.node else {
                p.error("expected a mapping from policy name to policy, got \(p.node.foundDescription)")
                return nil
            }
            for (keyNode, node) in mapping {
                guard let name = keyNode.scalar?.string else { p.error("policy names must be strings"); ok = false; continue }
                let item = ConfigValue(node: node, path: p.path.appending(name), diagnostics: diagnostics)
                if let policy = parseRBACPolicy(item, name: name) { policies.append(policy) } else { ok = false }
            }
        }
        guard ok else { return nil }
        return RBACRulesConfig(action: action, policies: policies.sorted { $0.name < $1.name })
    }

    private func parseRBACPolicy(_ value: ConfigValue, name: String) -> RBACPolicyConfig? {
        guard let f = value.fields(known: ["permissions", "principals"], unsupported: ["condition", "checked_condition"]) else { return nil }
        var ok = true
        var permissions: [RBACPermissionConfig] = []
        var principals: [RBACPrincipalConfig] = []
        for item in f.required("permissions")?.list() ?? [] {
            if let p = parseRBACPermission(item) { permissions.append(p) } else { ok = false }
        }
        for item in f.required("principals")?.list() ?? [] {
            if let p = parseRBACPrincipal(item) { principals.append(p) } else { ok = false }
        }
        if f["permissions"]?.list()?.isEmpty == true { f.error("permissions", "needs at least one permission"); ok = false }
        if f["principals"]?.list()?.isEmpty == true { f.error("principals", "needs at least one principal"); ok = false }
        guard ok, f["permissions"] != nil, f["principals"] != nil else { return nil }
        return RBACPolicyConfig(name: name, permissions: permissions, principals: principals)
    }

    private func parseRBACPermission(_ value: ConfigValue) -> RBACPermissionConfig? {
        let kinds = ["any", "header", "url_path", "and_rules", "or_rules", "not_rule", "destination_port"]
        let refused = ["destination_ip", "destination_port_range", "metadata", "requested_server_name", "matcher", "uri_template", "sourced_metadata"]
        guard let f = value.fields(known: kinds, unsupported: refused),
              let key = f.oneOf(kinds, unsupportedAlternatives: refused) else { return nil }
        let v = f[key]!
        switch key {
        case "any":
            guard v.bool() == true else { if v.bool() == false { v.error("must be true") }; return nil }
            return .any
        case "header": return parseHeaderMatcher(v).flatMap { checkPseudoHeader($0, v) }.map { .header($0) }
        case "url_path": return parseRBACPath(v).map { .urlPath($0) }
        case "and_rules", "or_rules":
            guard let g = v.fields(known: ["rules"]), let items = g.required("rules")?.list() else { return nil }
            let rules = items.compactMap(parseRBACPermission)
            guard rules.count == items.count else { return nil }
            return key == "and_rules" ? .and(rules) : .or(rules)
        case "not_rule": return parseRBACPermission(v).map { .not($0) }
        default:
            return v.int(0...65535).map { .destinationPort(UInt16($0)) }
        }
    }

    private func parseRBACPrincipal(_ value: ConfigValue) -> RBACPrincipalConfig? {
        let kinds = ["any", "header", "url_path", "and_ids", "or_ids", "not_id", "direct_remote_ip", "source_ip", "remote_ip"]
        let refused = ["authenticated", "metadata", "filter_state", "sourced_metadata", "custom"]
        guard let f = value.fields(known: kinds, unsupported: refused),
              let key = f.oneOf(kinds, unsupportedAlternatives: refused) else { return nil }
        let v = f[key]!
        switch key {
        case "any":
            guard v.bool() == true else { if v.bool() == false { v.error("must be true") }; return nil }
            return .any
        case "header": return parseHeaderMatcher(v).flatMap { checkPseudoHeader($0, v) }.map { .header($0) }
        case "url_path": return parseRBACPath(v).map { .urlPath($0) }
        case "and_ids", "or_ids":
            guard let g = v.fields(known: ["ids"]), let items = g.required("ids")?.list() else { return nil }
            let ids = items.compactMap(parseRBACPrincipal)
            guard ids.count == items.count else { return nil }
            return key == "and_ids" ? .and(ids) : .or(ids)
        case "not_id": return parseRBACPrincipal(v).map { .not($0) }
        case "remote_ip": return parseCIDR(v).map { .remoteIP($0) }
        default:
            if key == "source_ip" { v.warning("deprecated; use direct_remote_ip") }
            return parseCIDR(v).map { .directRemoteIP($0) }
        }
    }

    /// `url_path`: a PathMatcher (`path` string matcher).
    private func parseRBACPath(_ value: ConfigValue) -> StringMatcherConfig? {
        guard let f = value.fields(known: ["path"]), let p = f.required("path") else { return nil }
        return parseStringMatcher(p)
    }

    /// Pseudo-headers the HTTP/1 data path can answer (`:authority`, `:path`, `:method`); any
    /// other would never match here while it does in Envoy: refused.
    private func checkPseudoHeader(_ h: HeaderMatcherConfig, _ v: ConfigValue) -> HeaderMatcherConfig? {
        guard h.name.hasPrefix(":"), ![":authority", ":path", ":method"].contains(h.name) else { return h }
        v.error("header '\(h.name)' is not supported by ballast (supported pseudo-headers: :authority, :path, :method)")
        return nil
    }

    func parseCIDR(_ value: ConfigValue) -> CIDRRange? {
        guard let f = value.fields(known: ["address_prefix", "prefix_len"]),
              let text = f.required("address_prefix")?.nonEmptyString() else { return nil }
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            let n = f["prefix_len"]?.int(0...32) ?? 32
            if f["prefix_len"] != nil && f["prefix_len"]?.int(0...32) == nil { return nil }
            let a = UInt64(UInt32(bigEndian: v4.s_addr))
            return CIDRRange(family: AF_INET, high: 0, low: a & CIDRRange.mask4(n), prefixLength: n)
        }
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let n = f["prefix_len"]?.int(0...128) ?? 128
            if f["prefix_len"] != nil && f["prefix_len"]?.int(0...128) == nil { return nil }
            var hi: UInt64 = 0, lo: UInt64 = 0
            withUnsafeBytes(of: v6) { b in
                for i in 0..<8 { hi = hi << 8 | UInt64(b[i]) }
                for i in 8..<16 { lo = lo << 8 | UInt64(b[i]) }
            }
            let (mh, ml) = CIDRRange.mask6(n)
            return CIDRRange(family: AF_INET6, high: hi & mh, low: lo & ml, prefixLength: n)
        }
        f.error("address_prefix", "'\(text)' is not an IPv4 or IPv6 address")
        return nil
    }
}
