import Glibc
import HTTP1
import Synchronization

/// `envoy.filters.http.rbac` on the data path. decodeHeaders: the route's RBACPerRoute (which may
/// turn the filter off) else the filter's config; the shadow rules are evaluated and counted
/// first, then the enforced rules: ALLOW lets a request through when some policy matches, DENY
/// when none does. A refused request gets 403 "RBAC: access denied" with
/// `rbac_access_denied_matched_policy[NAME]` (`[none]` when an ALLOW matched nothing), as Envoy
/// 1.40 (the differential suite checks each case). Policies are tried in name order, as Envoy's
/// ordered map does.
enum RBACFilter {
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: RBACPlan) -> FilterStatus {
        let engine: RBACEngine
        if let route = ctx.route, route.index < plan.perRoute.count, let override = plan.perRoute[route.index] {
            guard let e = override else { return .continue }  // RBACPerRoute without rbac: off here
            engine = e
        } else {
            engine = plan.filter
        }
        if let shadow = engine.shadow {
            let matched = shadow.firstMatch(ctx) != nil
            let allowed = (shadow.action == .allow) == matched
            if allowed {
                engine.stats.shadowAllowed.wrappingAdd(1, ordering: .relaxed)
            } else {
                engine.stats.shadowDenied.wrappingAdd(1, ordering: .relaxed)
            }
        }
        guard let rules = engine.rules else { return .continue }
        let match = rules.firstMatch(ctx)
        let allowed = (rules.action == .allow) == (match != nil)
        if allowed {
            engine.stats.allowed.wrappingAdd(1, ordering: .relaxed)
            return .continue
        }
        engine.stats.denied.wrappingAdd(1, ordering: .relaxed)
        // The matched DENY policy's name, or none (an ALLOW that matched nothing).
        let detail = rules.action == .deny ? UInt16(rules.policies[match!].detailIndex) : 0
        var reply = LocalReply(status: 403, body: .text("RBAC: access denied"), flags: [], details: .rbacAccessDenied)
        reply.detailsArgument = detail
        ctx.decision = .localReply(reply)
        return .stopIteration
    }
}

/// One RBAC config compiled: its rules, shadow rules and stats.
public struct RBACEngine: Sendable {
    let rules: RBACRules?
    let shadow: RBACRules?
    let stats: RBACStats
}

struct RBACRules: Sendable {
    let action: RBACRulesConfig.Action
    let policies: [RBACPolicy]

    /// The index of the first policy (by name) matching the request, or nil.
    func firstMatch(_ ctx: FilterContext) -> Int? {
        for (i, p) in policies.enumerated() where p.permissions.contains(where: { $0.matches(ctx) }) && p.principals.contains(where: { $0.matches(ctx) }) {
            return i
        }
        return nil
    }
}

struct RBACPolicy: Sendable {
    let permissions: [RBACMatcher]
    let principals: [RBACMatcher]
    /// Index into the plan's `rbacDetails` (the `rbac_access_denied_matched_policy[NAME]` text).
    let detailIndex: Int
}

/// A permission or principal, compiled (both share the leaf kinds the data path evaluates).
indirect enum RBACMatcher: Sendable {
    case any
    case header(CompiledHeaderMatcher)
    case path(CompiledHeaderMatcher.Test, ignoreCase: Bool)
    case and([RBACMatcher])
    case or([RBACMatcher])
    case not(RBACMatcher)
    case destinationPort(UInt16)
    case directRemoteIP(CIDRRange)
    case remoteIP(CIDRRange)

    func matches(_ ctx: FilterContext) -> Bool {
        switch self {
        case .any: return true
        case .header(let h): return CompiledRoute.headerMatches(h, ctx.request)
        case .path(let t, let ignoreCase):
            return CompiledRoute.test(t, UnsafeRawBufferPointer(rebasing: ctx.request.bytes[ctx.request.path]), ignoreCase: ignoreCase)
        case .and(let all): return all.allSatisfy { $0.matches(ctx) }
        case .or(let any): return any.contains { $0.matches(ctx) }
        case .not(let m): return !m.matches(ctx)
        case .destinationPort(let p): return ctx.connection.destinationPort == p
        case .directRemoteIP(let r):
            let peer = ctx.connection.peer
            return r.contains(family: peer.family, high: peer.high, low: peer.low)
        case .remoteIP(let r):
            let a = RBACMatcher.remoteAddress(ctx)
            return r.contains(family: a.family, high: a.high, low: a.low)
        }
    }

    /// Envoy's downstream remote address: without use_remote_address, the x-forwarded-for entry
    /// `xff_num_trusted_hops` before the last; with it, the peer (or, with trusted hops, the entry
    /// that many from the right). The peer when that entry is missing or not an address.
    static func remoteAddress(_ ctx: FilterContext) -> (family: Int32, high: UInt64, low: UInt64) {
        let peer = ctx.connection.peer
        let xff = ctx.plan.forwardedFor
        let fromRight = xff.useRemoteAddress ? xff.trustedHops : xff.trustedHops + 1
        guard fromRight > 0 else { return (peer.family, peer.high, peer.low) }
        var last: Range<Int>? = nil
        let r = ctx.request
        for i in 0..<r.headerCount {
            let n = r.headerName(i)
            if n.count == 15 && ASCII.equalsCaseInsensitive(r.bytes, n, "x-forwarded-for") { last = r.headerValue(i) }
        }
        guard let last, let entry = ForwardedForPolicy.element(fromRight: fromRight, of: r.bytes, last),
              let a = parseAddress(UnsafeRawBufferPointer(rebasing: r.bytes[entry])) else { return (peer.family, peer.high, peer.low) }
        return a
    }

    /// An IPv4 or IPv6 address in text (copied to the stack for inet_pton; no allocation).
    static func parseAddress(_ text: UnsafeRawBufferPointer) -> (family: Int32, high: UInt64, low: UInt64)? {
        guard text.count > 0 && text.count < 64 else { return nil }
        return withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { buf -> (Int32, UInt64, UInt64)? in
            buf.copyMemory(from: text)
            buf[text.count] = 0
            let cstr = buf.baseAddress!.assumingMemoryBound(to: CChar.self)
            var v4 = in_addr()
            if inet_pton(AF_INET, cstr, &v4) == 1 { return (AF_INET, 0, UInt64(UInt32(bigEndian: v4.s_addr))) }
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, cstr, &v6) == 1 else { return nil }
            var hi: UInt64 = 0, lo: UInt64 = 0
            withUnsafeBytes(of: v6) { b in
                for i in 0..<8 { hi = hi << 8 | UInt64(b[i]) }
                for i in 8..<16 { lo = lo << 8 | UInt64(b[i]) }
            }
            return (AF_INET6, hi, lo)
        }
    }
}

/// The filter in a chain: the filter's engine, and per route index its RBACPerRoute (outer nil:
/// none, the filter's applies; inner nil: the filter is off on that route).
public struct RBACPlan: Sendable {
    let filter: RBACEngine
    let perRoute: [RBACEngine??]
}

/// `http.<stat_prefix>.rbac.[rules_stat_prefix.]allowed/denied` and the shadow pair.
public final class RBACStats: Sendable {
    public let rulesPrefix: String
    public let shadowPrefix: String
    public let allowed = Atomic<Int>(0)
    public let denied = Atomic<Int>(0)
    public let shadowAllowed = Atomic<Int>(0)
    public let shadowDenied = Atomic<Int>(0)

    init(rulesPrefix: String, shadowPrefix: String) {
        self.rulesPrefix = rulesPrefix
        self.shadowPrefix = shadowPrefix
    }
}

/// Compiles RBAC configs of one connection manager; the denial details texts are collected in
/// one list (the access log names the matched policy by index).
struct RBACCompiler {
    var details: [String] = ["rbac_access_denied_matched_policy[none]"]
    var stats: [RBACStats] = []

    /// `sharing`: a route's RBACPerRoute counts into its filter's stats (Envoy's per-route
    /// configs have no counters of their own; their stat prefixes are not used).
    mutating func engine(_ c: RBACConfig, listener: String, sharing: RBACStats? = nil) throws(DataPlane.CompileError) -> RBACEngine {
        let s: RBACStats
        if let sharing {
            s = sharing
        } else if let existing = stats.first(where: { $0.rulesPrefix == c.rulesStatPrefix && $0.shadowPrefix == c.shadowRulesStatPrefix }) {
            s = existing  // two filters with the same prefixes have the same stat names
        } else {
            s = RBACStats(rulesPrefix: c.rulesStatPrefix, shadowPrefix: c.shadowRulesStatPrefix)
            stats.append(s)
        }
        var enforced: RBACRules? = nil
        if let r = c.rules { enforced = try rules(r, listener) }
        var shadow: RBACRules? = nil
        if let r = c.shadowRules { shadow = try rules(r, listener) }
        return RBACEngine(rules: enforced, shadow: shadow, stats: s)
    }

    private mutating func rules(_ r: RBACRulesConfig, _ listener: String) throws(DataPlane.CompileError) -> RBACRules {
        var policies: [RBACPolicy] = []
        for p in r.policies {
            details.append("rbac_access_denied_matched_policy[\(p.name)]")
            var permissions: [RBACMatcher] = []
            for m in p.permissions { permissions.append(try Self.permission(m, listener)) }
            var principals: [RBACMatcher] = []
            for m in p.principals { principals.append(try Self.principal(m, listener)) }
            policies.append(RBACPolicy(permissions: permissions, principals: principals, detailIndex: details.count - 1))
        }
        return RBACRules(action: r.action, policies: policies)
    }

    private static func header(_ h: HeaderMatcherConfig, _ listener: String) throws(DataPlane.CompileError) -> RBACMatcher {
        let (test, ignore) = try CompiledRoute.compile(h.match, listener)
        return .header(CompiledHeaderMatcher(name: Array(h.name.lowercased().utf8), test: test, ignoreCase: ignore, invert: h.invert))
    }

    private static func path(_ s: StringMatcherConfig, _ listener: String) throws(DataPlane.CompileError) -> RBACMatcher {
        let (test, ignore) = try CompiledRoute.compile(.string(s), listener)
        return .path(test, ignoreCase: ignore)
    }

    private static func each<C>(_ items: [C], _ listener: String,
                                _ compile: (C, String) throws(DataPlane.CompileError) -> RBACMatcher) throws(DataPlane.CompileError) -> [RBACMatcher] {
        var out: [RBACMatcher] = []
        for m in items { out.append(try compile(m, listener)) }
        return out
    }

    static func permission(_ p: RBACPermissionConfig, _ listener: String) throws(DataPlane.CompileError) -> RBACMatcher {
        switch p {
        case .any: return .any
        case .header(let h): return try header(h, listener)
        case .urlPath(let s): return try path(s, listener)
        case .and(let all): return .and(try each(all, listener, permission))
        case .or(let any): return .or(try each(any, listener, permission))
        case .not(let m): return .not(try permission(m, listener))
        case .destinationPort(let port): return .destinationPort(port)
        }
    }

    static func principal(_ p: RBACPrincipalConfig, _ listener: String) throws(DataPlane.CompileError) -> RBACMatcher {
        switch p {
        case .any: return .any
        case .header(let h): return try header(h, listener)
        case .urlPath(let s): return try path(s, listener)
        case .and(let all): return .and(try each(all, listener, principal))
        case .or(let any): return .or(try each(any, listener, principal))
        case .not(let m): return .not(try principal(m, listener))
        case .directRemoteIP(let r): return .directRemoteIP(r)
        case .remoteIP(let r): return .remoteIP(r)
        }
    }
}
