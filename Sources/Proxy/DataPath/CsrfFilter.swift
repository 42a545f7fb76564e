import HTTP1
import Synchronization

/// `envoy.filters.http.csrf` on the data path. decodeHeaders: for a state-changing request (POST,
/// PUT, DELETE, PATCH) under an enabled or shadow policy (the route's, else the virtual host's,
/// else the filter's), the source origin (Origin's host and port; Referer's when Origin is absent;
/// none for `null`) must equal the request's Host or match an additional origin. A missing source or a
/// mismatch is counted and, unless only shadowed, answered 403 "Invalid origin"
/// (`csrf_origin_mismatch`), as Envoy 1.40 does (the differential suite checks each case).
enum CsrfFilter {
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: CsrfPlan) -> FilterStatus {
        let policy = ctx.route.flatMap { plan.perRoute[$0.index] } ?? plan.filter
        let enabled = policy.filterEnabled.enabled(ctx.random >> 23)
        let shadow = policy.shadowEnabled?.enabled(ctx.random >> 29) ?? false
        guard enabled || shadow else { return .continue }
        switch ctx.request.parser.pointee.method {
        case .post, .put, .delete, .patch: break
        default: return .continue
        }
        let bytes = ctx.request.bytes
        var source = ctx.request.firstValue(CsrfHeaders.origin)
        if let o = source, o.isEmpty { source = nil }
        if source == nil { source = ctx.request.firstValue(CsrfHeaders.referer) }
        var origin = source.map { Self.hostAndPort(bytes, $0) } ?? (0..<0)
        // An opaque origin ("null", sent by sandboxed pages) is no source: Envoy does not fall back to Referer.
        if origin.count == 4 && ASCII.equalsCaseInsensitive(bytes, origin, "null") { origin = 0..<0 }
        if origin.isEmpty {
            plan.stats.missingSourceOrigin.wrappingAdd(1, ordering: .relaxed)
        } else if policy.accepts(bytes, origin, host: ctx.request.host) {
            plan.stats.requestValid.wrappingAdd(1, ordering: .relaxed)
            return .continue
        } else {
            plan.stats.requestInvalid.wrappingAdd(1, ordering: .relaxed)
        }
        guard enabled else { return .continue }
        ctx.decision = .localReply(LocalReply(status: 403, body: .text("Invalid origin"), flags: [], details: .csrfOriginMismatch))
        return .stopIteration
    }

    /// The host and port of a URL value (`scheme://host:port/...` -> `host:port`); a value
    /// without `://` is taken as it is (as Envoy takes what its URL parser refuses).
    static func hostAndPort(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Range<Int> {
        var i = value.lowerBound
        while i + 2 < value.upperBound {
            if bytes[i] == 0x3A && bytes[i + 1] == 0x2F && bytes[i + 2] == 0x2F {  // "://"
                let start = i + 3
                var end = start
                while end < value.upperBound, bytes[end] != 0x2F, bytes[end] != 0x3F, bytes[end] != 0x23 { end += 1 }
                return start..<end
            }
            i += 1
        }
        return value
    }
}

enum CsrfHeaders {
    static let origin = Array("origin".utf8)
    static let referer = Array("referer".utf8)
}

/// A compiled CSRF policy.
public struct CsrfPolicy: Sendable {
    let filterEnabled: FractionalPercent
    let shadowEnabled: FractionalPercent?
    let additionalOrigins: CompiledStringMatchers

    init(_ c: CsrfPolicyConfig) {
        filterEnabled = c.filterEnabled
        shadowEnabled = c.shadowEnabled
        additionalOrigins = CompiledStringMatchers(c.additionalOrigins, filter: "csrf")
    }

    /// The source origin is the request's own host (byte for byte), or an additional origin.
    func accepts(_ bytes: UnsafeRawBufferPointer, _ origin: Range<Int>, host: Range<Int>?) -> Bool {
        if let host, host.count == origin.count {
            var same = true
            for k in 0..<host.count where bytes[host.lowerBound + k] != bytes[origin.lowerBound + k] { same = false; break }
            if same { return true }
        }
        return additionalOrigins.matchesAny(UnsafeRawBufferPointer(rebasing: bytes[origin]))
    }
}

/// The filter in a chain: the filter's policy, per route index the most specific override (nil:
/// the filter's), and the HCM's `csrf.*` stats.
public struct CsrfPlan: Sendable {
    let filter: CsrfPolicy
    let perRoute: [CsrfPolicy?]
    let stats: CsrfStats
}

/// `http.<stat_prefix>.csrf.missing_source_origin` / `request_invalid` / `request_valid`.
public final class CsrfStats: Sendable {
    public let missingSourceOrigin = Atomic<Int>(0)
    public let requestInvalid = Atomic<Int>(0)
    public let requestValid = Atomic<Int>(0)
}
