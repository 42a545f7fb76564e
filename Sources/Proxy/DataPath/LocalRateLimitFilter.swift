import Balancers
import EventLoop
import Synchronization

/// `envoy.filters.http.local_ratelimit` on the data path. decodeHeaders: the route's own config
/// (`typed_per_filter_config`) or the filter's; if `filter_enabled` draws true, take a token from
/// the shared bucket (`ok`) or count `rate_limited` and, if `filter_enforced` draws true, answer
/// 429 `local_rate_limited` with `response_headers_to_add` (`enforced`, response flag RL) and stop
/// the chain. Envoy 1.40 sends no `x-envoy-ratelimited` on this reply, whatever its docs say (the
/// differential suite compares the headers), so neither does Ballast.
enum LocalRateLimitFilter {
    @inline(__always)
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: LocalRateLimitPlan) -> FilterStatus {
        let limiter = ctx.route.flatMap { plan.perRoute[$0.index] } ?? plan.filter
        guard let enabled = limiter.enabled, enabled.enabled(ctx.random >> 7) else { return .continue }
        inc(limiter.stats.enabled)
        if let bucket = limiter.bucket, bucket.consumeOne(nowNanos: ctx.now) {
            inc(limiter.stats.ok)
            return .continue
        }
        inc(limiter.stats.rateLimited)
        // A second, independent draw: SplitMix's output for the request's seed.
        var rng = SplitMix64(seed: ctx.random)
        guard let enforced = limiter.enforced, enforced.enabled(rng.next()) else { return .continue }
        inc(limiter.stats.enforced)
        ctx.decision = .localReply(LocalReply(status: 429, body: .text("local_rate_limited"), flags: .rateLimited,
                                              details: .localRateLimited, headers: limiter.replyHeaders))
        return .stopIteration
    }

    /// Shared counters: several workers add to them, so a locked add (not the workers'
    /// single-writer store).
    @inline(__always)
    static func inc(_ counter: borrowing Atomic<Int>) {
        counter.wrappingAdd(1, ordering: .relaxed)
    }
}

/// The filter in a chain: its own limiter and, per route index, a route's override.
public struct LocalRateLimitPlan: Sendable {
    let filter: LocalRateLimiter
    /// Indexed by `CompiledRoute.index`; nil: the route has no override.
    let perRoute: [LocalRateLimiter?]
}

/// One LocalRateLimit config compiled: its bucket, fractions, counters and reply fields.
public final class LocalRateLimiter: Sendable {
    let bucket: SharedTokenBucket?
    let enabled: FractionalPercent?
    let enforced: FractionalPercent?
    let stats: LocalRateLimitStats
    /// `response_headers_to_add`, as field lines.
    let replyHeaders: [UInt8]

    init(_ c: LocalRateLimitConfig, stats: LocalRateLimitStats) {
        bucket = c.tokenBucket.map { SharedTokenBucket(maxTokens: $0.maxTokens, tokensPerFill: $0.tokensPerFill, fillIntervalNanos: $0.fillIntervalNanos) }
        enabled = c.filterEnabled
        enforced = c.filterEnforced
        self.stats = stats
        var lines = ""
        for h in c.responseHeadersToAdd { lines += "\(h.name): \(h.value)\r\n" }
        replyHeaders = Array(lines.utf8)
    }
}

/// `<stat_prefix>.http_local_rate_limit.*`: one set per stat prefix (configs that share a prefix
/// share the counters, as Envoy's stats scope does).
public final class LocalRateLimitStats: Sendable {
    public let prefix: String
    public let enabled = Atomic<Int>(0)
    public let enforced = Atomic<Int>(0)
    public let rateLimited = Atomic<Int>(0)
    public let ok = Atomic<Int>(0)
    /// Requests shadow_mode let through; shadow_mode: true is refused, so always 0 (Envoy lists it).
    public let shadowMode = Atomic<Int>(0)

    init(prefix: String) { self.prefix = prefix }
}

/// A token bucket every worker takes from, without a lock: one atomic holds the time (seconds
/// since the bucket's creation, a Double's bits) at which the bucket would have been empty.
/// Tokens available at `t` are `min(max, (t - emptyAt) * rate)`; taking one moves `emptyAt`
/// forward by `1 / rate` (from the capped level), by compare-and-swap. The refill is continuous
/// at `tokens_per_fill / fill_interval`, as Envoy's atomic token bucket; a new bucket is full.
public final class SharedTokenBucket: Sendable {
    let maxTokens: Double
    /// Tokens per second.
    let rate: Double
    let epochNanos: Int64
    private let emptyAt: Atomic<UInt64>

    init(maxTokens: Int, tokensPerFill: Int, fillIntervalNanos: Int64, nowNanos: Int64 = monotonicNanos()) {
        self.maxTokens = Double(maxTokens)
        rate = Double(tokensPerFill) / (Double(fillIntervalNanos) / 1e9)
        epochNanos = nowNanos
        emptyAt = Atomic((-(Double(maxTokens) / rate)).bitPattern)
    }

    /// Takes one token if there is one.
    func consumeOne(nowNanos: Int64) -> Bool {
        let t = Double(nowNanos - epochNanos) / 1e9
        var old = emptyAt.load(ordering: .relaxed)
        while true {
            let available = min(maxTokens, (t - Double(bitPattern: old)) * rate)
            if available < 1 { return false }
            let new = t - (available - 1) / rate
            let (exchanged, current) = emptyAt.compareExchange(expected: old, desired: new.bitPattern, ordering: .relaxed)
            if exchanged { return true }
            old = current
        }
    }
}
