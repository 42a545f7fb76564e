import HTTP1

/// `envoy.filters.http.cache` on the data path, with Envoy 1.40's rules (docs/cache.md).
/// decodeHeaders: a GET or HEAD without body, authorization or a conditional field (if-none-match,
/// if-modified-since, if-range: those bypass the cache, as Envoy's) is looked up in the worker's
/// `ResponseCache`. A fresh entry answers (`StreamDecision.cacheHit`); a stale one sends the
/// request upstream with validators (`CacheLookup.validate`); a miss sends it upstream, skipping
/// the filters after the cache as Envoy 1.40 does. Either way a GET that allows storing begins an
/// entry, which the response path fills (ProxyWorker+Cache).
enum CacheFilter {
    @inline(__always)
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: CachePlan) -> FilterStatus {
        guard let cache = ctx.cache, !ctx.requestHasBody, let hostRange = ctx.request.host else { return .continue }
        let r = ctx.request
        let method = r.parser.pointee.method
        guard method == .get || method == .head else { return .continue }
        let b = r.bytes
        var directives = RequestCacheControl()
        var sawCacheControl = false
        var pragmaNoCache = false
        var vary: UInt64 = 0xcbf29ce484222325
        var rangeCount = 0
        var rangeValue = 0..<0
        for i in 0..<r.headerCount {
            let name = r.headerName(i)
            switch name.count {
            case 13 where ASCII.equalsCaseInsensitive(b, name, "authorization"):
                return .continue
            case 13 where ASCII.equalsCaseInsensitive(b, name, "if-none-match"):
                return .continue
            case 17 where ASCII.equalsCaseInsensitive(b, name, "if-modified-since"):
                return .continue
            case 8 where ASCII.equalsCaseInsensitive(b, name, "if-range"):
                return .continue
            case 13 where ASCII.equalsCaseInsensitive(b, name, "cache-control"):
                sawCacheControl = true
                directives.read(b, r.headerValue(i))
            case 5 where ASCII.equalsCaseInsensitive(b, name, "range"):
                rangeCount += 1
                rangeValue = r.headerValue(i)
            case 6 where ASCII.equalsCaseInsensitive(b, name, "pragma"):
                if ASCII.listContainsToken(b, r.headerValue(i), "no-cache") { pragmaNoCache = true }
            default:
                break
            }
            if plan.varies(on: b, name) {
                // The request's values of the allowed vary headers (names lower-cased).
                for k in name { vary = (vary ^ UInt64(ASCII.lowercased(b[k]))) &* 0x100000001b3 }
                ResponseCache.hash(b, r.headerValue(i), into: &vary)
            }
        }
        if plan.ignoreRequestCacheControl {
            directives = RequestCacheControl()
        } else if !sawCacheControl && pragmaNoCache {
            directives.mustValidate = true
        }
        let host = UnsafeRawBufferPointer(rebasing: b[hostRange])
        let pathEnd = r.query?.upperBound ?? r.path.upperBound
        let path = UnsafeRawBufferPointer(rebasing: b[r.path.lowerBound..<max(pathEnd, r.path.upperBound)])
        var key: UInt64 = 0xcbf29ce484222325
        ResponseCache.hash(host, 0..<host.count, into: &key)
        key = (key ^ 0) &* 0x100000001b3
        ResponseCache.hash(path, 0..<path.count, into: &key)

        var lookup = CacheLookup()
        lookup.vary = vary
        lookup.lookedUp = true
        if let i = cache.find(hash: key, host: host, path: path), cache[i].vary == nil || cache[i].vary == vary {
            let now = HTTPDateField.wallNanos()
            let age = cache[i].age(now: now)
            if !cache[i].requiresValidation(directives, age: age) {
                let range = rangeCount == 1 ? CacheRange.of(b, rangeValue, length: cache[i].body.count) : .none
                ctx.decision = .cacheHit(entry: i, age: age, range: range)
                return .stopIteration
            }
            lookup.validate = i
            lookup.validateGeneration = cache[i].generation
        }
        // Envoy stores GET responses only, and not when the request says no-store.
        if method == .get && !directives.noStore, let fill = cache.begin(hash: key, host: host, path: path) {
            lookup.fill = fill
        }
        ctx.cacheLookup = lookup
        // Envoy 1.40 sends a request its cache looked up through its own upstream request (an async
        // client): the filters after the cache, and the connection manager's router (its rq_total),
        // never see it. The route still decides where it goes.
        _ = RouterFilter.decodeHeaders(&ctx)
        ctx.routed = false
        return .stopIteration
    }
}

/// A request's byte range against a stored body, as Envoy's cache answers it: one range only
/// (`bytes=first-last`, `first-`, `-suffix`; anything else, or several, is ignored); one
/// covering the whole body is no range.
enum CacheRange: Equatable {
    case none
    case partial(Range<Int>)
    case unsatisfiable

    static func of(_ b: UnsafeRawBufferPointer, _ value: Range<Int>, length: Int) -> CacheRange {
        let prefix: [UInt8] = Array("bytes=".utf8)  // compared as Envoy does: case-sensitively
        guard value.count > 6, (0..<6).allSatisfy({ b[value.lowerBound + $0] == prefix[$0] }) else { return .none }
        var i = value.lowerBound + 6
        for k in i..<value.upperBound where b[k] == ASCII.comma { return .none }
        func digits() -> Int? {
            let start = i
            while i < value.upperBound && b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
            return i > start ? (ASCII.parseDecimal(b, start..<i) ?? Int.max) : nil
        }
        let first = digits()
        guard i < value.upperBound, b[i] == UInt8(ascii: "-") else { return .none }
        i += 1
        let last = digits()
        guard i == value.upperBound, first != nil || last != nil else { return .none }
        if let first, let last, first > last { return .none }
        if length == 0 { return .unsatisfiable }
        guard let first else {
            let suffix = last!
            if suffix == 0 { return .unsatisfiable }
            if suffix >= length { return .none }
            return .partial((length - suffix)..<length)
        }
        if first >= length { return .unsatisfiable }
        if let last, last < length - 1 { return .partial(first..<(last + 1)) }
        return first == 0 ? .none : .partial(first..<length)
    }
}

/// What the cache filter decided for a request that goes upstream.
struct CacheLookup {
    /// The entry being filled from the response (-1: none).
    var fill: Int32 = -1
    /// A stale entry validated with this request (-1: none), and its slot's generation then.
    var validate: Int32 = -1
    var validateGeneration: UInt32 = 0
    /// The request's allowed-vary-header digest.
    var vary: UInt64 = 0
    /// The cache looked the request up (it goes upstream as the cache's own request).
    var lookedUp = false
}

/// The cache filter of a chain, compiled.
public final class CachePlan: Sendable {
    let allowedVary: CompiledStringMatchers
    let hasAllowedVary: Bool
    /// The largest body stored: `max_body_bytes` when set and smaller than Ballast's entry limit.
    let bodyLimit: Int
    let ignoreRequestCacheControl: Bool

    init(_ c: CacheFilterConfig) {
        allowedVary = CompiledStringMatchers(c.allowedVaryHeaders, filter: "cache")
        hasAllowedVary = !c.allowedVaryHeaders.isEmpty
        bodyLimit = c.maxBodyBytes > 0 ? min(c.maxBodyBytes, ResponseCache.bodyLimit) : ResponseCache.bodyLimit
        ignoreRequestCacheControl = c.ignoreRequestCacheControl
    }

    /// The header name is one the response may vary on (matched lower-cased, as Envoy's header names are).
    @inline(__always)
    func varies(on b: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        guard hasAllowedVary else { return false }
        return withUnsafeTemporaryAllocation(byteCount: name.count, alignment: 1) { lower in
            for k in 0..<name.count { lower[k] = ASCII.lowercased(b[name.lowerBound + k]) }
            return allowedVary.matchesAny(UnsafeRawBufferPointer(lower))
        }
    }

    /// Every name listed in a response's vary value is allowed (`*` never is).
    func allowsVary(_ b: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        var cursor = value.lowerBound
        while let item = ASCII.nextListElement(b, cursor: &cursor, end: value.upperBound) {
            if !varies(on: b, item) { return false }
        }
        return true
    }
}
