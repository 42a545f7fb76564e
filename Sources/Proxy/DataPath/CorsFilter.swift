import EventLoop
import HTTP1
import Synchronization

/// `envoy.filters.http.cors` on the data path. decodeHeaders: on a forwarding route (Envoy skips
/// direct_response routes, which have no route entry), the route's effective policy (route
/// fields over virtual-host fields, merged when the plan is compiled); with an `origin` header,
/// count it valid or invalid; a preflight (OPTIONS with `access-control-request-method`) from an
/// allowed origin, or from any origin with `forward_not_matching_preflights: false`, is answered
/// 200 here; an allowed origin is kept in the stream so every response it gets (upstream or
/// local) carries `access-control-allow-origin` and the policy's credentials / expose fields
/// (Envoy's encodeHeaders), replacing the upstream's own.
enum CorsFilter {
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: CorsPlan) -> FilterStatus {
        // Envoy's filter skips routes without a route entry: direct_response (and redirects).
        guard let route = ctx.route, case .forward = route.action, let policy = plan.perRoute[route.index] else { return .continue }
        let enabled = policy.filterEnabled?.enabled(ctx.random >> 11) ?? true
        let shadow = policy.shadowEnabled?.enabled(ctx.random >> 17) ?? false
        guard enabled || shadow else { return .continue }
        guard let origin = ctx.request.firstValue(CorsHeaders.origin), !origin.isEmpty else { return .continue }
        let allowed = policy.allows(UnsafeRawBufferPointer(rebasing: ctx.request.bytes[origin]))
        if allowed {
            plan.stats.originValid.wrappingAdd(1, ordering: .relaxed)
        } else {
            plan.stats.originInvalid.wrappingAdd(1, ordering: .relaxed)
        }
        guard enabled else { return .continue }
        if allowed { ctx.corsOrigin = origin; ctx.corsRoute = route.index }
        guard ctx.request.parser.pointee.method == .options,
              let m = ctx.request.firstValue(CorsHeaders.requestMethod), !m.isEmpty else { return .continue }
        if !allowed && policy.forwardNotMatchingPreflights { return .continue }
        ctx.decision = .localReply(LocalReply(status: 200, body: .text(""), flags: [], details: .corsResponse,
                                              headers: allowed ? policy.preflightAllowed : policy.preflightDenied))
        return .stopIteration
    }
}

enum CorsHeaders {
    static let origin = Array("origin".utf8)
    static let requestMethod = Array("access-control-request-method".utf8)
    static let allowOrigin = Array("access-control-allow-origin".utf8)
    static let allowCredentials = Array("access-control-allow-credentials".utf8)
    static let exposeHeaders = Array("access-control-expose-headers".utf8)
}

/// The filter in a chain: per route index the effective policy (nil: none), and the HCM's
/// `cors.*` stats.
public struct CorsPlan: Sendable {
    let perRoute: [CorsPolicy?]
    let stats: CorsStats
}

/// `http.<stat_prefix>.cors.origin_valid` / `origin_invalid`.
public final class CorsStats: Sendable {
    public let originValid = Atomic<Int>(0)
    public let originInvalid = Atomic<Int>(0)
}

/// A route's effective CORS policy, compiled.
public struct CorsPolicy: Sendable {
    let origins: CompiledStringMatchers
    let filterEnabled: FractionalPercent?
    let shadowEnabled: FractionalPercent?
    let forwardNotMatchingPreflights: Bool
    let allowCredentials: Bool
    let exposeHeaders: [UInt8]?
    /// Preflight reply fields from an allowed origin (the stream's decoration adds the origin,
    /// credentials and expose fields) and from a refused one (credentials here, no origin).
    let preflightAllowed: [UInt8]
    let preflightDenied: [UInt8]

    /// Route fields first, then the virtual host's, field by field (Envoy's per-filter configs,
    /// most specific first); enabled / shadow come from the most specific policy.
    init?(route: CorsPolicyConfig?, virtualHost: CorsPolicyConfig?) {
        let policies = [route, virtualHost].compactMap { $0 }
        guard let first = policies.first else { return nil }
        origins = CompiledStringMatchers(policies.first { !$0.allowOrigins.isEmpty }?.allowOrigins ?? [], filter: "cors")
        filterEnabled = first.filterEnabled
        shadowEnabled = first.shadowEnabled
        forwardNotMatchingPreflights = policies.compactMap(\.forwardNotMatchingPreflights).first ?? true
        allowCredentials = policies.compactMap(\.allowCredentials).first ?? false
        let methods = policies.compactMap(\.allowMethods).first
        let headers = policies.compactMap(\.allowHeaders).first
        let maxAge = policies.compactMap(\.maxAge).first
        exposeHeaders = policies.compactMap(\.exposeHeaders).first.map { Array($0.utf8) }
        var common = ""
        if let methods { common += "access-control-allow-methods: \(methods)\r\n" }
        if let headers { common += "access-control-allow-headers: \(headers)\r\n" }
        if let maxAge { common += "access-control-max-age: \(maxAge)\r\n" }
        preflightAllowed = Array(common.utf8)
        preflightDenied = Array(((allowCredentials ? "access-control-allow-credentials: true\r\n" : "") + common).utf8)
    }

    /// Envoy: a matcher that matches the literal `*` allows every origin.
    func allows(_ origin: UnsafeRawBufferPointer) -> Bool {
        origins.matchesAny(UnsafeRawBufferPointer(staticString: "*")) || origins.matchesAny(origin)
    }
}

extension RequestView {
    /// The value range of the first field named `name` (lower-case), nil when absent.
    func firstValue(_ name: [UInt8]) -> Range<Int>? {
        for i in 0..<headerCount {
            let n = headerName(i)
            guard n.count == name.count else { continue }
            var same = true
            for k in 0..<name.count where ASCII.lowercased(bytes[n.lowerBound + k]) != name[k] { same = false; break }
            if same { return headerValue(i) }
        }
        return nil
    }
}

extension ProxyWorker {
    /// The CORS policy decorating this stream's response (an allowed origin was kept), if any.
    func corsDecoration(_ s: UnsafeMutablePointer<Stream>) -> CorsPolicy? {
        guard s.pointee.corsOrigin.count > 0, s.pointee.corsRoute >= 0, let plan = hcm(s)?.cors,
              Int(s.pointee.corsRoute) < plan.perRoute.count else { return nil }
        return plan.perRoute[Int(s.pointee.corsRoute)]
    }

    /// Bytes `writeCorsFields` may write.
    func corsFieldsLength(_ policy: CorsPolicy?, _ s: UnsafeMutablePointer<Stream>) -> Int {
        guard let policy else { return 0 }
        return 128 + s.pointee.corsOrigin.count + (policy.exposeHeaders?.count ?? 0)
    }

    /// Whether the upstream's field `name` is one the decoration replaces (Envoy sets them).
    func corsReplaces(_ policy: CorsPolicy, _ head: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        if name.count == 27 && ASCII.equalsCaseInsensitive(head, name, "access-control-allow-origin") { return true }
        if policy.allowCredentials && name.count == 32 && ASCII.equalsCaseInsensitive(head, name, "access-control-allow-credentials") { return true }
        if policy.exposeHeaders != nil && name.count == 29 && ASCII.equalsCaseInsensitive(head, name, "access-control-expose-headers") { return true }
        return false
    }

    func writeCorsFields(_ policy: CorsPolicy, _ s: UnsafeMutablePointer<Stream>, _ w: inout ByteWriter) {
        w.put("access-control-allow-origin: ")
        w.put(s.pointee.corsOrigin.bytes)
        w.crlf()
        if policy.allowCredentials { w.put("access-control-allow-credentials: true\r\n") }
        if let expose = policy.exposeHeaders {
            w.put("access-control-expose-headers: ")
            w.put(expose)
            w.crlf()
        }
    }
}
