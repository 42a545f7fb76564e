import CBallast
import EventLoop
import Glibc

/// Worker-cost emulation: each request costs this much worker time before it is answered, so a
/// small machine can study CPU-bound workers.
///
/// - `spin:200us` burns CPU for the time. Valid when workers do not outnumber free cores: two
///   spinning workers on one core share it and each request then costs more wall time.
/// - `block:200us` blocks the loop thread (nanosleep): the worker is unavailable, as if its CPU
///   were busy, without using a core, so 4..16 emulated CPU-bound workers fit on 2 cores. It models
///   queueing at the worker, not CPU contention between workers.
/// - `spin-exp:`/`block-exp:` draw each cost from an exponential distribution with that mean;
///   `exp:200us` is short for `block-exp:200us`.
public struct WorkerCost: Sendable, Equatable, CustomStringConvertible {
    public enum Mode: String, Sendable { case spin, block }
    public var mode: Mode
    public var meanNanos: Int64
    public var exponential: Bool

    public init(mode: Mode, meanNanos: Int64, exponential: Bool = false) {
        self.mode = mode
        self.meanNanos = meanNanos
        self.exponential = exponential
    }

    public struct ParseError: Error, CustomStringConvertible { public let description: String }

    /// Parses `MODE:DURATION`; `parseDuration` turns `200us` into nanoseconds.
    public static func parse(_ text: String, parseDuration: (String) -> Int64?) throws(ParseError) -> WorkerCost {
        let parts = text.split(separator: ":", maxSplits: 1)
        let valid = "spin, block, spin-exp, block-exp or exp"
        guard parts.count == 2 else {
            throw ParseError(description: "bad worker cost '\(text)': expected MODE:DURATION such as block:200us (MODE: \(valid))")
        }
        guard let nanos = parseDuration(String(parts[1])), nanos >= 0, nanos <= 10_000_000_000 else {
            throw ParseError(description: "bad worker cost duration '\(parts[1])': expected e.g. 200us or 1ms, at most 10s")
        }
        switch parts[0] {
        case "spin": return WorkerCost(mode: .spin, meanNanos: nanos)
        case "block": return WorkerCost(mode: .block, meanNanos: nanos)
        case "spin-exp": return WorkerCost(mode: .spin, meanNanos: nanos, exponential: true)
        case "block-exp", "exp": return WorkerCost(mode: .block, meanNanos: nanos, exponential: true)
        default: throw ParseError(description: "unknown worker cost mode '\(parts[0])'; valid: \(valid)")
        }
    }

    public var description: String {
        let micros = Double(meanNanos) / 1000
        let amount = micros == micros.rounded() ? "\(Int(micros))us" : "\(micros)us"
        return "\(mode.rawValue)\(exponential ? "-exp" : ""):\(amount)"
    }

    /// One request's cost in nanoseconds, drawn with `rng` when exponential.
    @inlinable
    public func draw<R: RandomNumberGenerator>(using rng: inout R) -> Int64 {
        guard exponential else { return meanNanos }
        // Inverse transform: -mean * ln(U), U in (0, 1].
        let u = Double(rng.next() >> 11 | 1) / Double(1 << 53)
        return Int64(-Double(meanNanos) * log(u))
    }

    /// Call once on each worker thread before serving: `block` waits are nanosleeps, and the
    /// kernel's default 50 µs timer slack would stretch a 200 µs cost by up to a quarter.
    public func prepareThread() {
        if mode == .block { _ = cb_set_timer_slack(1000) }
    }

    /// Spends one request's cost on the calling (loop) thread.
    @inlinable
    public func spend<R: RandomNumberGenerator>(using rng: inout R) {
        let nanos = draw(using: &rng)
        guard nanos > 0 else { return }
        switch mode {
        case .spin:
            let end = monotonicNanos() + nanos
            while monotonicNanos() < end {}
        case .block:
            var request = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
            var remaining = timespec()
            while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
        }
    }
}
