import Balancers
import Glibc

/// What one request costs its worker, in seconds.
public enum CostDistribution: Sendable, Equatable {
    case fixed(Double)
    case exponential(mean: Double)
    /// Draws uniformly from these samples (e.g. per-request costs derived from a measured sweep).
    case empirical([Double])

    public var mean: Double {
        switch self {
        case .fixed(let v): v
        case .exponential(let m): m
        case .empirical(let s): s.isEmpty ? 0 : s.reduce(0, +) / Double(s.count)
        }
    }

    public var name: String {
        switch self {
        case .fixed(let v): "fixed:\(Self.micros(v))"
        case .exponential(let m): "exp:\(Self.micros(m))"
        case .empirical(let s): "empirical:\(s.count) samples, mean \(Self.micros(mean))"
        }
    }

    static func micros(_ seconds: Double) -> String {
        let us = seconds * 1e6
        return us.rounded() == us ? "\(Int(us))us" : "\(Double(Int(us * 10)) / 10)us"
    }

    func validate() throws(SimulationError) {
        switch self {
        case .fixed(let v), .exponential(let v):
            guard v.isFinite, v > 0 else { throw SimulationError("cost must be > 0 seconds") }
        case .empirical(let s):
            guard !s.isEmpty, s.allSatisfy({ $0.isFinite && $0 >= 0 }), mean > 0 else {
                throw SimulationError("an empirical cost needs samples >= 0 with a mean > 0")
            }
        }
    }

    @inline(__always)
    func draw(_ rng: inout SplitMix64) -> Double {
        switch self {
        case .fixed(let v): return v
        case .exponential(let m): return -m * Self.logOfUniform(&rng)
        case .empirical(let s): return s[Int(rng.next() % UInt64(s.count))]
        }
    }

    /// log(U) for U uniform in (0, 1].
    @inline(__always)
    static func logOfUniform(_ rng: inout SplitMix64) -> Double {
        let u = Double((rng.next() >> 11) + 1) / Double(1 << 53)
        return Glibc.log(u)
    }

}
