import EventLoop
import HTTP1

/// A route configuration compiled to bytes: virtual hosts chosen by Host with Envoy's precedence
/// (exact, longest `*.suffix`, longest `prefix*`, `*`), then the first matching route. Matching
/// reads the request's bytes in place and allocates nothing.
public struct RouteTable: Sendable {
    public let virtualHosts: [CompiledVirtualHost]
    let exact: [(domain: [UInt8], host: Int)]
    let suffixes: [(suffix: [UInt8], host: Int)]
    let prefixes: [(prefix: [UInt8], host: Int)]
    let wildcard: Int?
    /// Every route of every virtual host, flattened (an access record's route index), then one
    /// https redirect per virtual host with `require_tls`.
    public let allRoutes: [CompiledRoute]
    /// The config of each of `allRoutes`, by the same index (filters compile per-route configs from it).
    let allConfigs: [RouteConfig]

    init(_ config: RouteConfiguration, clusterIndex: [String: Int], listener: String) throws(DataPlane.CompileError) {
        var hosts: [CompiledVirtualHost] = []
        var exact: [(domain: [UInt8], host: Int)] = []
        var suffixes: [(suffix: [UInt8], host: Int)] = []
        var prefixes: [(prefix: [UInt8], host: Int)] = []
        var wildcard: Int? = nil
        var all: [CompiledRoute] = []
        var configs: [RouteConfig] = []
        for vh in config.virtualHosts {
            for r in vh.routes {
                all.append(try CompiledRoute(r, index: all.count, virtualHostRetry: vh.retryPolicy, clusterIndex: clusterIndex, listener: listener,
                                             enclosingMutations: [vh.headerMutations, config.headerMutations]))
                configs.append(r)
            }
        }
        var first = 0
        for (hi, vh) in config.virtualHosts.enumerated() {
            let routes = Array(all[first..<(first + vh.routes.count)])
            first += vh.routes.count
            // Envoy's SSL redirect route: unnamed, a 301 to https:// with the Host and path as sent,
            // no header mutations.
            var tlsRedirect: CompiledRoute?
            if vh.requireTLS != .none {
                let r = RouteConfig(name: nil, match: RouteMatchConfig(path: .prefix("/"), caseSensitive: true, headers: [], queryParameters: []),
                                    action: .redirect(RedirectConfig(scheme: "https", host: nil, port: nil, path: nil, prefixRewrite: nil,
                                                                     stripQuery: false, status: 301, keepsHost: true)))
                tlsRedirect = try CompiledRoute(r, index: all.count, virtualHostRetry: nil, clusterIndex: clusterIndex, listener: listener,
                                                enclosingMutations: [])
                all.append(tlsRedirect!)
                configs.append(r)
            }
            hosts.append(CompiledVirtualHost(name: vh.name, routes: routes, tlsRedirect: tlsRedirect))
            for d in vh.domains {
                switch d {
                case .any: if wildcard == nil { wildcard = hi }
                case .exact(let s): exact.append((Array(s.lowercased().utf8), hi))
                case .suffix(let s): suffixes.append((Array(s.lowercased().utf8), hi))
                case .prefix(let s): prefixes.append((Array(s.lowercased().utf8), hi))
                }
            }
        }
        // Longest first; ties keep file order (stable sort).
        self.suffixes = suffixes.enumerated().sorted { ($0.element.suffix.count, -$0.offset) > ($1.element.suffix.count, -$1.offset) }.map(\.element)
        self.prefixes = prefixes.enumerated().sorted { ($0.element.prefix.count, -$0.offset) > ($1.element.prefix.count, -$1.offset) }.map(\.element)
        self.exact = exact
        self.wildcard = wildcard
        self.virtualHosts = hosts
        self.allRoutes = all
        self.allConfigs = configs
    }

    /// The virtual host for a Host value (as received, any case): the port is part of the value,
    /// as in Envoy 1.40 (`example.com:80` matches a domain `example.com:80`, `pre.*` or `*`,
    /// never `example.com`; strip_*_host_port remove it before this).
    public func virtualHost(for host: UnsafeRawBufferPointer) -> Int? {
        match(host) ?? wildcard
    }

    func match(_ host: UnsafeRawBufferPointer) -> Int? {
        for e in exact where e.domain.count == host.count {
            if Self.equalsLowercased(host, 0, e.domain) { return e.host }
        }
        for s in suffixes where host.count > s.suffix.count {
            if Self.equalsLowercased(host, host.count - s.suffix.count, s.suffix) { return s.host }
        }
        for p in prefixes where host.count > p.prefix.count {
            if Self.equalsLowercased(host, 0, p.prefix) { return p.host }
        }
        return nil
    }

    /// `bytes[at..<at+pattern.count]` lowercased equals `pattern` (already lowercase).
    @inline(__always)
    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ pattern: [UInt8]) -> Bool {
        pattern.withUnsafeBufferPointer { p in
            var i = 0
            while i < p.count {
                if ASCII.lowercased(bytes[at + i]) != p[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// The first route of virtual host `vh` that matches the request.
    func route(in vh: Int, request: RequestView) -> CompiledRoute? {
        for r in virtualHosts[vh].routes where r.matches(request) { return r }
        return nil
    }
}

public struct CompiledVirtualHost: Sendable {
    public let name: String
    public let routes: [CompiledRoute]
    /// `require_tls`: the route every plain-text request takes.
    let tlsRedirect: CompiledRoute?
}

/// What the router needs of a parsed request head: its bytes and the parser's ranges.
struct RequestView {
    let bytes: UnsafeRawBufferPointer
    let path: Range<Int>
    let query: Range<Int>?
    let host: Range<Int>?
    /// The worker's parser, holding the field table of the head in `bytes`.
    let parser: UnsafeMutablePointer<RequestHeadParser>
    /// The request came over TLS (the listener chain terminates it): `require_tls` is met.
    var secure = false

    var headerCount: Int { parser.pointee.headerCount }
    func headerName(_ i: Int) -> Range<Int> { parser.pointee.headerNameRange(at: i) }
    func headerValue(_ i: Int) -> Range<Int> { parser.pointee.headerValueRange(at: i) }
}

public enum PathMatcher: Sendable {
    case prefix([UInt8])
    case exact([UInt8])
    /// `safe_regex`: RE2 full match of the path without its query, as Envoy.
    case regex(RE2Regex)
}

public struct CompiledHeaderMatcher: Sendable {
    enum Test: Sendable {
        case present(Bool)
        case exact([UInt8]), prefix([UInt8]), suffix([UInt8]), contains([UInt8])
        /// `safe_regex`: RE2 full match of the whole value.
        case regex(RE2Regex)
    }

    let name: [UInt8]
    let test: Test
    let ignoreCase: Bool
    let invert: Bool
}

public struct CompiledQueryMatcher: Sendable {
    let name: [UInt8]
    let test: CompiledHeaderMatcher.Test
    let ignoreCase: Bool
}

public struct RetryPlan: Sendable {
    public let onConnectFailure: Bool
    public let onReset: Bool
    public let on5xx: Bool
    public let onGatewayError: Bool
    public let numRetries: Int
    /// `retriable-4xx`: 409.
    public var onRetriable4xx = false
    /// `retriable-status-codes` with `retriable_status_codes`.
    public var retriableStatusCodes: [Int] = []
    /// `per_try_timeout` (0: none).
    public var perTryTimeoutNanos: Int64 = 0
    public var backOffBaseNanos: Int64 = 25_000_000
    public var backOffMaxNanos: Int64 = 250_000_000
    /// `retry_host_predicate` previous_hosts: picks for a retry skip tried hosts, at most
    /// `hostSelectionRetryMaxAttempts` times (Envoy's LB then keeps its last pick).
    public var avoidPreviousHosts = false
    public var hostSelectionRetryMaxAttempts = 1
}

/// A class for the reason CompiledRoute is one: `case .forward(let plan)` on every request.
public final class ForwardPlan: Sendable {
    /// (cluster index, weight); one entry for `cluster`.
    public let clusters: [(index: Int, weight: Int)]
    public let totalWeight: Int
    public let timeoutNanos: Int64?
    /// The route's `idle_timeout`: replaces the stream idle timeout once routed (nil: keep it; 0: none).
    public let idleTimeoutNanos: Int64?
    public let prefixRewrite: [UInt8]?
    public let hostRewrite: [UInt8]?
    public let retry: RetryPlan?
    /// `x-envoy-expected-rq-timeout-ms` (0: none): the per-try timeout when it is shorter than
    /// the route timeout (or there is none), else the route timeout, as Envoy sets it.
    public let expectedTimeoutNanos: Int64
    /// `hash_policy[]` (RING_HASH clusters).
    public let hashPolicy: [CompiledHashPolicy]
    /// The route's `upgrade_configs` (nil: none; the connection manager's apply).
    let upgrades: UpgradePolicy?
    /// `regex_rewrite` of the path.
    let regexRewrite: RegexRewrite?
    /// `request_mirror_policies[]`: each request copied to these clusters (ProxyWorker+Mirror).
    let mirrors: [MirrorPlan]

    init(clusters: [(index: Int, weight: Int)], totalWeight: Int, timeoutNanos: Int64?, idleTimeoutNanos: Int64?,
         prefixRewrite: [UInt8]?, hostRewrite: [UInt8]?, retry: RetryPlan?, hashPolicy: [CompiledHashPolicy],
         upgrades: UpgradePolicy?, regexRewrite: RegexRewrite?, mirrors: [MirrorPlan]) {
        self.clusters = clusters
        self.totalWeight = totalWeight
        self.timeoutNanos = timeoutNanos
        self.idleTimeoutNanos = idleTimeoutNanos
        self.prefixRewrite = prefixRewrite
        self.hostRewrite = hostRewrite
        self.retry = retry
        self.hashPolicy = hashPolicy
        self.upgrades = upgrades
        self.regexRewrite = regexRewrite
        self.mirrors = mirrors
        let global = timeoutNanos ?? 0, perTry = retry?.perTryTimeoutNanos ?? 0
        expectedTimeoutNanos = perTry > 0 && (global == 0 || perTry < global) ? perTry : global
    }
}

/// One mirror policy, compiled: the cluster's index, the fraction of requests mirrored (nil:
/// all), whether the Host gets Envoy's `-shadow` suffix.
public struct MirrorPlan: Sendable {
    /// The mirror cluster's index, or -1 when `clusterHeader` names it per request or it does not exist.
    public let cluster: Int
    public var clusterHeader: [UInt8]? = nil
    public let fraction: FractionalPercent?
    public let hostSuffix: Bool
}

public enum CompiledAction: Sendable {
    case forward(ForwardPlan)
    case direct(status: Int, body: [UInt8])
    case redirect(CompiledRedirect)
}

/// A class, not a struct: the route is looked up and handed to the filters, the router and the
/// log on every request, and a ~500-byte struct with a dozen references would be copied (and each
/// reference retained) at every step; a reference costs one retain.
public final class CompiledRoute: Sendable {
    public let index: Int
    public let name: String?
    public let path: PathMatcher
    public let caseSensitive: Bool
    let headers: [CompiledHeaderMatcher]
    let queryParameters: [CompiledQueryMatcher]
    public let action: CompiledAction
    /// `request_headers_to_add/remove` of the route, its virtual host and the route configuration.
    public let requestMutations: HeaderMutationPlan
    /// `response_headers_to_add/remove`, the same levels.
    public let responseMutations: HeaderMutationPlan

    init(_ r: RouteConfig, index: Int, virtualHostRetry: RetryPolicyConfig?, clusterIndex: [String: Int], listener: String,
         enclosingMutations: [HeaderMutationsConfig] = []) throws(DataPlane.CompileError) {
        self.index = index
        let levels = [r.headerMutations] + enclosingMutations
        for level in levels where max(level.requestToAdd.count, level.responseToAdd.count) > HeaderMutationPlan.maxAddsPerLevel {
            throw DataPlane.CompileError(description: "listener '\(listener)': more than \(HeaderMutationPlan.maxAddsPerLevel) headers to add at one level is not supported by ballast")
        }
        requestMutations = HeaderMutationPlan(levels, request: true)
        responseMutations = HeaderMutationPlan(levels, request: false)
        name = r.name
        caseSensitive = r.match.caseSensitive
        switch r.match.path {
        case .prefix(let p): path = .prefix(Array((caseSensitive ? p : p.lowercased()).utf8))
        case .path(let p): path = .exact(Array((caseSensitive ? p : p.lowercased()).utf8))
        case .safeRegex(let re):
            path = .regex(try Self.regex(re, listener))
        }
        var headers: [CompiledHeaderMatcher] = []
        for h in r.match.headers {
            let (test, ignore) = try Self.compile(h.match, listener)
            headers.append(CompiledHeaderMatcher(name: Array(h.name.lowercased().utf8), test: test, ignoreCase: ignore, invert: h.invert))
        }
        self.headers = headers
        var queries: [CompiledQueryMatcher] = []
        for q in r.match.queryParameters {
            var (test, ignore): (CompiledHeaderMatcher.Test, Bool) = (.present(true), false)
            if let s = q.stringMatch { (test, ignore) = try Self.compile(.string(s), listener) }
            queries.append(CompiledQueryMatcher(name: Array(q.name.utf8), test: test, ignoreCase: ignore))
        }
        queryParameters = queries
        switch r.action {
        case .directResponse(let d):
            action = .direct(status: d.status, body: Array((d.body ?? "").utf8))
        case .redirect(let r):
            action = .redirect(CompiledRedirect(r))
        case .forward(let f):
            var list: [(index: Int, weight: Int)] = []
            for name in f.target.clusterNames {
                // A cluster that does not exist (the config parser let it through: validate_clusters
                // off, or removed by CDS since): -1, answered 503 NC when picked, as Envoy.
                let ci = clusterIndex[name] ?? -1
                let weight: Int
                switch f.target {
                case .cluster: weight = 1
                case .weighted(let w): weight = w.first { $0.name == name }?.weight ?? 0
                }
                list.append((ci, weight))
            }
            let retry = (f.retryPolicy ?? virtualHostRetry).map { p in
                RetryPlan(onConnectFailure: p.retryOn.contains(.connectFailure) || p.retryOn.contains(.serverError) || p.retryOn.contains(.gatewayError),
                          onReset: p.retryOn.contains(.reset) || p.retryOn.contains(.serverError) || p.retryOn.contains(.gatewayError),
                          on5xx: p.retryOn.contains(.serverError),
                          onGatewayError: p.retryOn.contains(.gatewayError),
                          numRetries: p.numRetries)
            }.map { plan -> RetryPlan in
                var plan = plan
                let p = (f.retryPolicy ?? virtualHostRetry)!
                plan.onRetriable4xx = p.retryOn.contains(.retriable4xx)
                plan.retriableStatusCodes = p.retryOn.contains(.retriableStatusCodes) ? p.retriableStatusCodes : []
                plan.perTryTimeoutNanos = p.perTryTimeoutNanos ?? 0
                plan.backOffBaseNanos = p.backOffBaseNanos
                plan.backOffMaxNanos = p.backOffMaxNanos
                plan.avoidPreviousHosts = p.avoidPreviousHosts
                plan.hostSelectionRetryMaxAttempts = p.hostSelectionRetryMaxAttempts
                return plan
            }
            var prefixRewrite: [UInt8]? = nil
            if let rw = f.prefixRewrite {
                switch r.match.path {
                case .prefix, .path: prefixRewrite = Array(rw.utf8)  // replaces what the match consumed
                case .safeRegex: break  // refused by the config parser
                }
            }
            var mirrors: [MirrorPlan] = []
            for m in f.mirrorPolicies {
                if let header = m.clusterHeader {
                    var plan = MirrorPlan(cluster: -1, fraction: m.fraction, hostSuffix: !m.disableHostSuffix)
                    plan.clusterHeader = Array(header.utf8)
                    mirrors.append(plan)
                    continue
                }
                // A mirror cluster that does not exist is skipped per request, as Envoy skips it.
                guard let name = m.cluster else { continue }
                let ci = clusterIndex[name] ?? -1
                mirrors.append(MirrorPlan(cluster: ci, fraction: m.fraction, hostSuffix: !m.disableHostSuffix))
            }
            action = .forward(ForwardPlan(clusters: list, totalWeight: max(1, list.reduce(0) { $0 + $1.weight }),
                                          timeoutNanos: f.timeoutNanos, idleTimeoutNanos: f.idleTimeoutNanos, prefixRewrite: prefixRewrite,
                                          hostRewrite: f.hostRewriteLiteral.map { Array($0.utf8) }, retry: retry,
                                          hashPolicy: f.hashPolicy.map(CompiledHashPolicy.init),
                                          upgrades: f.upgradeConfigs.isEmpty ? nil : UpgradePolicy(f.upgradeConfigs),
                                          regexRewrite: try f.regexRewrite.map { c throws(DataPlane.CompileError) in try Self.rewrite(c, listener) },
                                          mirrors: mirrors))
        }
    }

    static func rewrite(_ c: RegexRewriteConfig, _ listener: String) throws(DataPlane.CompileError) -> RegexRewrite {
        do {
            return try RegexRewrite(try regex(c.pattern, listener), substitution: c.substitution)
        } catch {
            throw DataPlane.CompileError(description: "listener '\(listener)': regex_rewrite: \(error)")
        }
    }

    /// A pattern the config parser already compiled once (so this does not fail in practice).
    static func regex(_ pattern: String, _ listener: String) throws(DataPlane.CompileError) -> RE2Regex {
        do {
            return try RE2Regex(pattern)
        } catch {
            throw DataPlane.CompileError(description: "listener '\(listener)': invalid regex '\(pattern)': \(error.description)")
        }
    }

    static func compile(_ m: HeaderMatch, _ listener: String) throws(DataPlane.CompileError) -> (CompiledHeaderMatcher.Test, Bool) {
        switch m {
        case .present(let p): return (.present(p), false)
        case .string(let s):
            let v = Array((s.ignoreCase ? s.value.lowercased() : s.value).utf8)
            switch s.kind {
            case .exact: return (.exact(v), s.ignoreCase)
            case .prefix: return (.prefix(v), s.ignoreCase)
            case .suffix: return (.suffix(v), s.ignoreCase)
            case .contains: return (.contains(v), s.ignoreCase)
            case .safeRegex: return (.regex(try regex(s.value, listener)), false)
            }
        }
    }

    /// Path (and header, query) match.
    func matches(_ r: RequestView) -> Bool {
        let p = UnsafeRawBufferPointer(rebasing: r.bytes[r.path])
        switch path {
        case .prefix(let pre):
            guard p.count >= pre.count, Self.bytesEqual(p, 0, pre, ignoreCase: !caseSensitive) else { return false }
        case .exact(let full):
            guard p.count == full.count, Self.bytesEqual(p, 0, full, ignoreCase: !caseSensitive) else { return false }
        case .regex(let re):
            guard re.fullMatch(p) else { return false }
        }
        for h in headers where !Self.headerMatches(h, r) { return false }
        for q in queryParameters where !queryMatches(q, r) { return false }
        return true
    }

    /// A header matcher over the request, with `:authority` (Host), `:path` (with its query) and
    /// `:method` as Envoy's HTTP/1 codec presents them (route matches and rbac share it).
    static func headerMatches(_ h: CompiledHeaderMatcher, _ r: RequestView) -> Bool {
        var value: Range<Int>? = nil
        let nameIsAuthority = h.name.count == 10 && h.name.elementsEqual(":authority".utf8)
        if h.name.count == 7 && h.name.elementsEqual(":method".utf8) {
            value = r.parser.pointee.methodRange
        } else if nameIsAuthority || (h.name.count == 4 && h.name.elementsEqual("host".utf8)) {
            value = r.host
        } else if h.name.count == 5 && h.name.elementsEqual(":path".utf8) {
            value = r.path.lowerBound..<(r.query?.upperBound ?? r.path.upperBound)
        } else {
            for i in 0..<r.headerCount {
                let n = r.headerName(i)
                if n.count == h.name.count && Self.bytesEqual(UnsafeRawBufferPointer(rebasing: r.bytes[n]), 0, h.name, ignoreCase: true) {
                    value = r.headerValue(i)
                    break
                }
            }
        }
        let result = Self.test(h.test, value.map { UnsafeRawBufferPointer(rebasing: r.bytes[$0]) }, ignoreCase: h.ignoreCase)
        return result != h.invert
    }

    func queryMatches(_ q: CompiledQueryMatcher, _ r: RequestView) -> Bool {
        guard let query = r.query else { return Self.test(q.test, nil, ignoreCase: q.ignoreCase) }
        var i = query.lowerBound
        while i < query.upperBound {
            var end = i
            while end < query.upperBound && r.bytes[end] != 0x26 { end += 1 }  // '&'
            var eq = i
            while eq < end && r.bytes[eq] != 0x3D { eq += 1 }  // '='
            let name = UnsafeRawBufferPointer(rebasing: r.bytes[i..<eq])
            if name.count == q.name.count && Self.bytesEqual(name, 0, q.name, ignoreCase: false) {
                let value = eq < end ? UnsafeRawBufferPointer(rebasing: r.bytes[(eq + 1)..<end]) : UnsafeRawBufferPointer(start: nil, count: 0)
                return Self.test(q.test, value, ignoreCase: q.ignoreCase)
            }
            i = end + 1
        }
        return Self.test(q.test, nil, ignoreCase: q.ignoreCase)
    }

    static func test(_ t: CompiledHeaderMatcher.Test, _ v: UnsafeRawBufferPointer?, ignoreCase: Bool) -> Bool {
        switch t {
        case .present(let want): return (v != nil) == want
        case .regex(let re):
            guard let v else { return false }
            return re.fullMatch(v)
        case .exact(let s):
            guard let v else { return false }
            return v.count == s.count && bytesEqual(v, 0, s, ignoreCase: ignoreCase)
        case .prefix(let s):
            guard let v else { return false }
            return v.count >= s.count && bytesEqual(v, 0, s, ignoreCase: ignoreCase)
        case .suffix(let s):
            guard let v else { return false }
            return v.count >= s.count && bytesEqual(v, v.count - s.count, s, ignoreCase: ignoreCase)
        case .contains(let s):
            guard let v else { return false }
            if s.isEmpty { return true }
            var i = 0
            while i + s.count <= v.count {
                if bytesEqual(v, i, s, ignoreCase: ignoreCase) { return true }
                i += 1
            }
            return false
        }
    }

    /// `bytes[at..<at+pattern.count]` equals `pattern` (lowercased first when `ignoreCase`; the
    /// pattern is then lowercase already).
    @inline(__always)
    static func bytesEqual(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ pattern: [UInt8], ignoreCase: Bool) -> Bool {
        pattern.withUnsafeBufferPointer { p in
            var i = 0
            if ignoreCase {
                while i < p.count {
                    if ASCII.lowercased(bytes[at + i]) != p[i] { return false }
                    i += 1
                }
            } else {
                while i < p.count {
                    if bytes[at + i] != p[i] { return false }
                    i += 1
                }
            }
            return true
        }
    }
}
