import Foundation

/// Summary statistics over plain arrays. Empty input gives `nil` (or 0 where noted).
public enum Stats {
    public static func mean(_ xs: [Double]) -> Double? {
        xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count)
    }

    public static func median(_ xs: [Double]) -> Double? {
        quantile(xs, 0.5)
    }

    /// Sample standard deviation (n − 1 in the denominator); 0 for a single value.
    public static func standardDeviation(_ xs: [Double]) -> Double? {
        guard let m = mean(xs) else { return nil }
        guard xs.count > 1 else { return 0 }
        return (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)).squareRoot()
    }

    /// Quantile `q` (0...1) with linear interpolation between order statistics (type 7).
    public static func quantile(_ xs: [Double], _ q: Double) -> Double? {
        guard !xs.isEmpty else { return nil }
        return quantileSorted(xs.sorted(), q)
    }

    static func quantileSorted(_ s: [Double], _ q: Double) -> Double {
        let h = Double(s.count - 1) * Swift.min(1, Swift.max(0, q))
        let lo = Int(h.rounded(.down)), hi = Swift.min(lo + 1, s.count - 1)
        return s[lo] + (h - Double(lo)) * (s[hi] - s[lo])
    }

    /// Jain's fairness index (Σx)² / (n·Σx²): 1 when all equal, 1/n when one takes everything.
    /// 1 for all-zero input (nothing to be unfair about).
    public static func jainIndex(_ xs: [Double]) -> Double? {
        guard !xs.isEmpty else { return nil }
        let sum = xs.reduce(0, +), squares = xs.reduce(0) { $0 + $1 * $1 }
        guard squares > 0 else { return 1 }
        return sum * sum / (Double(xs.count) * squares)
    }

    /// max / mean: 1 when all equal, n when one takes everything. 1 for all-zero input.
    public static func maxOverMean(_ xs: [Double]) -> Double? {
        guard let m = mean(xs), let top = xs.max() else { return nil }
        return m > 0 ? top / m : 1
    }
}

/// A small, fast, seedable generator (xoshiro256**, seeded through SplitMix64), so every
/// confidence interval in a report is the same on every run.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in 0..<n without modulo bias worth caring about (n is a repetition count).
    @inline(__always)
    mutating func index(_ n: Int) -> Int { Int((next() >> 11) % UInt64(n)) }

    /// A standard normal variate (Box–Muller), for synthetic data in tests and simulations.
    public mutating func normal() -> Double {
        let u1 = (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992.0
        let u2 = Double(next() >> 11) / 9_007_199_254_740_992.0
        return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// A stable 64-bit seed from text (FNV-1a), so each table row gets its own fixed stream.
    public static func seed(_ text: String, base: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ base
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}

/// A ratio B/A with its bootstrap confidence interval.
public struct RatioEstimate: Sendable, Equatable {
    /// The observed ratio (of means; for several points, the geometric mean of their ratios).
    public var ratio: Double
    public var lower: Double
    public var upper: Double
    /// Confidence level of [lower, upper], e.g. 0.95.
    public var level: Double
    /// Fewest repetitions on either side of any point used (paired: fewest pairs).
    public var minRepetitions: Int
    public var method: IntervalMethod = .independent
    /// A single point's estimate with fewer repetitions than `method.minimumForPointMark`: its
    /// interval is shown, but it is never called significant (its false-positive rate is above 5%).
    public var singlePointBelowMinimum = false

    public init(ratio: Double, lower: Double, upper: Double, level: Double, minRepetitions: Int,
                method: IntervalMethod = .independent) {
        self.ratio = ratio; self.lower = lower; self.upper = upper; self.level = level
        self.minRepetitions = minRepetitions; self.method = method
    }

    /// The interval excludes 1: B differs from A (never for a single point below the minimum).
    public var significant: Bool { !singlePointBelowMinimum && (lower > 1 || upper < 1) }

    /// This estimate as the only point of a comparison: marks it when too few repetitions back it.
    public func asSinglePoint() -> RatioEstimate {
        var e = self
        e.singlePointBelowMinimum = minRepetitions < method.minimumForPointMark
        return e
    }
}

/// An interval for one mean.
public struct MeanEstimate: Sendable, Equatable {
    public var mean: Double
    public var lower: Double
    public var upper: Double
    public var count: Int
}

/// Percentile bootstrap over repetitions.
///
/// The plain percentile bootstrap is too narrow with a handful of repetitions (its spread uses
/// the n-denominator variance and normal rather than t quantiles), which turns noise into
/// "significant" results. So the percentiles taken are widened as Hesterberg recommends
/// ("What teachers should know about the bootstrap", 2015, the expanded percentile interval):
/// α' / 2 = Φ(−√(n/(n−1)) · t₍₁₋α/₂, n−1₎). With 2 or 3 repetitions that is the whole bootstrap
/// range, so a single point with 2 repetitions per side is "significant" only when every B is
/// beyond every A, which noise does 1 time in 3: judge such runs over all connection counts
/// (`geometricMeanRatio`), where the repetitions of all points add up.
public enum Bootstrap {
    public static let defaultResamples = 4000
    public static let defaultSeed: UInt64 = 0xBA11A57

    /// CI of mean(b) / mean(a). `nil` unless each side has 2+ values and mean(a) > 0.
    public static func ratioOfMeans(a: [Double], b: [Double], level: Double = 0.95,
                                    resamples: Int = defaultResamples, seed: UInt64 = defaultSeed) -> RatioEstimate? {
        geometricMeanRatio([(a, b)], level: level, resamples: resamples, seed: seed)
    }

    /// The geometric mean over strata (points) of mean(bᵢ) / mean(aᵢ), with a stratified bootstrap:
    /// each replicate resamples the repetitions within each point. `nil` unless every stratum
    /// has 2+ values per side and positive means.
    public static func geometricMeanRatio(_ strata: [(a: [Double], b: [Double])], level: Double = 0.95,
                                          resamples: Int = defaultResamples, seed: UInt64 = defaultSeed) -> RatioEstimate? {
        guard !strata.isEmpty else { return nil }
        var logSum = 0.0
        var minN = Int.max
        var df = 0
        for s in strata {
            guard s.a.count >= 2, s.b.count >= 2,
                  let ma = Stats.mean(s.a), let mb = Stats.mean(s.b), ma > 0, mb > 0,
                  s.a.allSatisfy({ $0.isFinite && $0 >= 0 }), s.b.allSatisfy({ $0.isFinite && $0 >= 0 }) else { return nil }
            logSum += Foundation.log(mb / ma)
            let n = Swift.min(s.a.count, s.b.count)
            minN = Swift.min(minN, n)
            df += n - 1
        }
        let k = Double(strata.count)
        let observed = Foundation.exp(logSum / k)

        var rng = SeededRandom(seed: seed)
        var replicates = [Double]()
        replicates.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var sum = 0.0
            var degenerate = false
            for s in strata {
                let ma = resampledMean(s.a, &rng), mb = resampledMean(s.b, &rng)
                if ma <= 0 || mb <= 0 { degenerate = true; break }
                sum += Foundation.log(mb / ma)
            }
            if !degenerate { replicates.append(sum / k) }
        }
        guard replicates.count >= resamples / 2 else { return nil }
        replicates.sort()
        let tail = expandedTail(level: level, n: minN, df: df)
        let lower = Foundation.exp(Stats.quantileSorted(replicates, tail))
        let upper = Foundation.exp(Stats.quantileSorted(replicates, 1 - tail))
        return RatioEstimate(ratio: observed, lower: Swift.min(lower, observed), upper: Swift.max(upper, observed),
                             level: level, minRepetitions: minN)
    }

    /// CI of a mean over repetitions (expanded percentile bootstrap); a single value gives
    /// a zero-width interval at it.
    public static func mean(_ xs: [Double], level: Double = 0.95, resamples: Int = defaultResamples,
                            seed: UInt64 = defaultSeed) -> MeanEstimate? {
        guard let m = Stats.mean(xs) else { return nil }
        guard xs.count >= 2 else { return MeanEstimate(mean: m, lower: m, upper: m, count: xs.count) }
        var rng = SeededRandom(seed: seed)
        var replicates = (0..<resamples).map { _ in resampledMean(xs, &rng) }
        replicates.sort()
        let tail = expandedTail(level: level, n: xs.count, df: xs.count - 1)
        return MeanEstimate(mean: m, lower: Swift.min(m, Stats.quantileSorted(replicates, tail)),
                            upper: Swift.max(m, Stats.quantileSorted(replicates, 1 - tail)), count: xs.count)
    }

    @inline(__always)
    static func resampledMean(_ xs: [Double], _ rng: inout SeededRandom) -> Double {
        var sum = 0.0
        for _ in 0..<xs.count { sum += xs[rng.index(xs.count)] }
        return sum / Double(xs.count)
    }

    /// The lower tail probability to read off the bootstrap distribution (Hesterberg's expansion).
    static func expandedTail(level: Double, n: Int, df: Int) -> Double {
        let alpha = 1 - level
        guard n >= 2, df >= 1 else { return alpha / 2 }
        let t = StudentT.quantile(1 - alpha / 2, degreesOfFreedom: Double(df))
        let z = (Double(n) / Double(n - 1)).squareRoot() * t
        return 0.5 * erfc(z / 2.0.squareRoot())
    }
}

/// Student's t distribution (for the interval expansion above).
enum StudentT {
    static func cdf(_ t: Double, degreesOfFreedom v: Double) -> Double {
        let x = v / (v + t * t)
        let tail = 0.5 * regularizedIncompleteBeta(x, a: v / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// Inverse CDF by bisection (p in 0.5..<1 is all we need; precise to ~1e-10).
    static func quantile(_ p: Double, degreesOfFreedom v: Double) -> Double {
        if p == 0.5 { return 0 }
        if p < 0.5 { return -quantile(1 - p, degreesOfFreedom: v) }
        var lo = 0.0, hi = 1.0
        while cdf(hi, degreesOfFreedom: v) < p && hi < 1e12 { hi *= 2 }
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if cdf(mid, degreesOfFreedom: v) < p { lo = mid } else { hi = mid }
            if hi - lo < 1e-12 * Swift.max(1, hi) { break }
        }
        return (lo + hi) / 2
    }

    /// I_x(a, b) by its continued fraction (modified Lentz).
    static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let lnPowers: Double = a * Foundation.log(x) + b * Foundation.log(1 - x)
        let lnFront = lnGammas + lnPowers
        if x > (a + 1) / (a + b + 2) {
            return 1 - regularizedIncompleteBeta(1 - x, a: b, b: a)
        }
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var f = d
        for m in 1...300 {
            let m = Double(m)
            var num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + num * d; if abs(d) < tiny { d = tiny }
            c = 1 + num / c; if abs(c) < tiny { c = tiny }
            d = 1 / d; f *= d * c
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + num * d; if abs(d) < tiny { d = tiny }
            c = 1 + num / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            f *= delta
            if abs(delta - 1) < 1e-14 { break }
        }
        return Foundation.exp(lnFront) * f / a
    }
}
