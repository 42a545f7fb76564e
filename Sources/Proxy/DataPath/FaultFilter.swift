import Balancers
import HTTP1
import Synchronization

/// `envoy.filters.http.fault` on the data path. decodeHeaders: the route's config
/// (`typed_per_filter_config`) or the filter's; over `max_active_faults`: `faults_overflow`, no
/// fault. A delay (fixed, or `x-envoy-fault-delay-request` ms) drawn at its percentage stops the
/// chain: the worker arms the stream's deadline on its own timer (no sleep) and resumes this
/// filter when it passes, which then draws the abort; an abort (fixed status, or
/// `x-envoy-fault-abort-request`) answers `fault filter abort` with response flag FI.
enum FaultFilter {
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: FaultPlan, index: Int) -> FilterStatus {
        let routeConfig = ctx.route.flatMap { plan.perRoute[$0.index] }
        let config = routeConfig ?? plan.filter
        let slots = routeConfig != nil ? plan.perRouteSlots[ctx.route!.index] : plan.filterSlots
        var rng = SplitMix64(seed: ctx.random ^ 0x6661_756C_7400)
        if ctx.resumingDelay {
            // Back from the delay: an abort may follow it, as in Envoy.
            ctx.resumingDelay = false
            return abortIfDrawn(&ctx, config, slots, plan, &rng)
        }
        // Runtime keys (fault.http.* or the *_runtime names) override the config per request.
        if let configured = config.maxActiveFaults,
           plan.stats.activeFaults.load(ordering: .relaxed) >= plan.runtime.value(slots.maxActiveFaults).map({ Int($0) }) ?? configured {
            plan.stats.faultsOverflow.wrappingAdd(1, ordering: .relaxed)
            return .continue
        }
        if let delay = config.delay, let nanos = delayNanos(delay, config, slots, plan.runtime, ctx.request, &rng) {
            plan.stats.delaysInjected.wrappingAdd(1, ordering: .relaxed)
            markActive(&ctx, plan)
            ctx.decision = .delay(nanos: nanos, resumeAt: index)
            return .stopIteration
        }
        return abortIfDrawn(&ctx, config, slots, plan, &rng)
    }

    private static func abortIfDrawn(_ ctx: inout FilterContext, _ config: FaultConfig, _ slots: FaultSlots, _ plan: FaultPlan,
                                     _ rng: inout SplitMix64) -> FilterStatus {
        guard let abort = config.abort else { return .continue }
        let drawn = drawnPercentage(config.abortPercentage, header: abort == .header ? FaultHeaders.abortPercentage : nil, ctx.request)
        guard runtimePercentage(drawn, slots.abortPercent, plan.runtime).enabled(rng.next()) else { return .continue }
        var status: Int
        switch abort {
        case .httpStatus(let code): status = code
        case .header:
            guard let code = ctx.request.firstDecimal(FaultHeaders.abort), (200..<600).contains(code) else { return .continue }
            status = Int(code)
        }
        if let v = plan.runtime.value(slots.abortHTTPStatus), (200..<600).contains(v) { status = Int(v) }
        plan.stats.abortsInjected.wrappingAdd(1, ordering: .relaxed)
        markActive(&ctx, plan)
        ctx.decision = .localReply(LocalReply(status: status, body: .text("fault filter abort"), flags: .faultInjected, details: .faultFilterAbort))
        return .stopIteration
    }

    private static func delayNanos(_ delay: FaultConfig.Delay, _ config: FaultConfig, _ slots: FaultSlots, _ runtime: RuntimeValues,
                                   _ request: RequestView, _ rng: inout SplitMix64) -> Int64? {
        let drawn = drawnPercentage(config.delayPercentage, header: delay == .header ? FaultHeaders.delayPercentage : nil, request)
        guard runtimePercentage(drawn, slots.delayPercent, runtime).enabled(rng.next()) else { return nil }
        var ms: Int64
        switch delay {
        case .fixed(let nanos):
            // Envoy counts the delay in whole milliseconds and injects none below 1 ms.
            ms = nanos / 1_000_000
        case .header:
            guard let h = request.firstDecimal(FaultHeaders.delay), h < UInt64(Int64.max / 1_000_000) else { return nil }
            ms = Int64(h)
        }
        // The runtime duration replaces the configured or requested one (Envoy's getInteger).
        if let v = runtime.value(slots.delayDuration) { ms = min(v, Int64.max / 1_000_000) }
        return ms > 0 ? ms * 1_000_000 : nil
    }

    /// A runtime percentage replaces the numerator, in the configured denominator (Envoy's
    /// featureEnabled with a FractionalPercent default).
    @inline(__always)
    private static func runtimePercentage(_ configured: FractionalPercent, _ slot: Int, _ runtime: RuntimeValues) -> FractionalPercent {
        guard let v = runtime.value(slot) else { return configured }
        return FractionalPercent(numerator: UInt64(v), denominator: configured.denominator)
    }

    /// A header-driven fault's percentage: the request's `...-percentage` header, capped at the
    /// configured numerator (same denominator); the configured one when absent or not a number.
    private static func drawnPercentage(_ configured: FractionalPercent, header: [UInt8]?, _ request: RequestView) -> FractionalPercent {
        guard let header, let n = request.firstDecimal(header) else { return configured }
        return FractionalPercent(numerator: min(n, configured.numerator), denominator: configured.denominator)
    }

    /// One active fault per stream however many faults it gets (Envoy's `maybeIncActiveFaults`);
    /// the stream gives it back when it ends.
    private static func markActive(_ ctx: inout FilterContext, _ plan: FaultPlan) {
        guard !ctx.faultActive else { return }
        plan.stats.activeFaults.wrappingAdd(1, ordering: .relaxed)
        ctx.faultActive = true
    }
}

enum FaultHeaders {
    static let delay = Array("x-envoy-fault-delay-request".utf8)
    static let delayPercentage = Array("x-envoy-fault-delay-request-percentage".utf8)
    static let abort = Array("x-envoy-fault-abort-request".utf8)
    static let abortPercentage = Array("x-envoy-fault-abort-request-percentage".utf8)
}

/// The filter in a chain: its config, per route index a route's override, and the HCM's
/// `fault.*` stats; the runtime slots of each config's keys.
public struct FaultPlan: Sendable {
    let filter: FaultConfig
    let perRoute: [FaultConfig?]
    let stats: FaultStats
    let runtime: RuntimeValues
    let filterSlots: FaultSlots
    let perRouteSlots: [FaultSlots]

    init(filter: FaultConfig, perRoute: [FaultConfig?], stats: FaultStats, runtime: RuntimeValues) {
        self.filter = filter
        self.perRoute = perRoute
        self.stats = stats
        self.runtime = runtime
        filterSlots = FaultSlots(filter.runtimeKeys, runtime)
        perRouteSlots = perRoute.map { FaultSlots($0?.runtimeKeys ?? FaultRuntimeKeys(), runtime) }
    }
}

/// A fault config's runtime keys as slots in `RuntimeValues` (-1: not read).
struct FaultSlots: Sendable {
    let delayPercent: Int
    let delayDuration: Int
    let abortPercent: Int
    let abortHTTPStatus: Int
    let maxActiveFaults: Int

    init(_ keys: FaultRuntimeKeys, _ runtime: RuntimeValues) {
        delayPercent = runtime.slot(keys.delayPercent)
        delayDuration = runtime.slot(keys.delayDuration)
        abortPercent = runtime.slot(keys.abortPercent)
        abortHTTPStatus = runtime.slot(keys.abortHTTPStatus)
        maxActiveFaults = runtime.slot(keys.maxActiveFaults)
    }
}

/// `http.<stat_prefix>.fault.*`, shared by every worker (and by the fault filters of one HCM).
public final class FaultStats: Sendable {
    public let abortsInjected = Atomic<Int>(0)
    public let delaysInjected = Atomic<Int>(0)
    public let faultsOverflow = Atomic<Int>(0)
    public let responseRateLimitInjected = Atomic<Int>(0)
    /// Gauge: streams holding an injected fault (delayed, or aborted and not yet ended).
    public let activeFaults = Atomic<Int>(0)
}

extension RequestView {
    /// The first field named `name` (lower-case) as an unsigned decimal (surrounding spaces
    /// allowed); nil when absent or not a number. Envoy reads only the first value too.
    func firstDecimal(_ name: [UInt8]) -> UInt64? {
        for i in 0..<headerCount {
            let n = headerName(i)
            guard n.count == name.count else { continue }
            var same = true
            for k in 0..<name.count where ASCII.lowercased(bytes[n.lowerBound + k]) != name[k] { same = false; break }
            guard same else { continue }
            let v = headerValue(i)
            var value: UInt64 = 0
            var digits = 0
            for j in v {
                let b = bytes[j]
                if b == 0x20 || b == 0x09 { if digits > 0 { break } else { continue } }
                guard b >= 0x30 && b <= 0x39 else { return nil }
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(UInt64(b - 0x30))
                if o1 || o2 { return nil }
                value = a
                digits += 1
            }
            return digits > 0 ? value : nil
        }
        return nil
    }
}
