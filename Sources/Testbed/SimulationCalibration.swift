import Report
import Simulator

/// Per-request cost and round trip taken from a measured sweep, once for the whole sweep (never
/// fitted per point), so a simulation of the same experiment can be checked against it.
///
/// - cost: at points where every worker that holds connections holds at least two, each such worker
///   is never idle (the next request is queued before the current one ends, as long as the round
///   trip is shorter than a request), so QPS = busy workers / cost. The median over those points.
/// - round trip: at points where every worker holds at most one connection nothing queues, so mean
///   latency = round trip + cost. The median over those points, less the cost.
/// - cost distribution (optional): the latencies of those one-connection points, less the round
///   trip, as empirical samples (their mean is scaled to the cost above).
public struct SimulationCalibration: Sendable, Equatable {
    public var cost: Double
    public var roundTrip: Double
    public var saturatedPoints: Int
    public var unqueuedPoints: Int
    /// Quantiles (0.5%..99.5%) of the per-request cost seen at the unqueued points.
    public var costSamples: [Double]

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func from(_ set: ResultSet) throws -> SimulationCalibration {
        var costs: [Double] = []
        var unqueued: [(mean: Double, point: PointResult)] = []
        for p in set.points {
            guard let workers = p.result.workers, !workers.isEmpty, p.result.errorCount == 0 else { continue }
            let holding = workers.filter { $0.active > 0 }
            guard !holding.isEmpty, p.result.actualQPS > 0 else { continue }
            if holding.allSatisfy({ $0.active >= 2 }) {
                costs.append(Double(holding.count) / p.result.actualQPS)
            } else if holding.allSatisfy({ $0.active == 1 }) {
                unqueued.append((p.result.durationHistogram.avg, p.result))
            }
        }
        guard !costs.isEmpty else {
            throw Failure(description: "no point where every busy worker holds 2+ connections: cannot measure the per-request cost")
        }
        guard !unqueued.isEmpty else {
            throw Failure(description: "no point where every worker holds at most one connection: cannot measure the round trip")
        }
        let cost = median(costs)
        let roundTrip = max(0, median(unqueued.map(\.mean)) - cost)
        var samples: [Double] = []
        for (_, point) in unqueued {
            samples += quantiles(of: point.durationHistogram).map { max(0, $0 - roundTrip) }
        }
        let sampleMean = samples.isEmpty ? 0 : samples.reduce(0, +) / Double(samples.count)
        if sampleMean > 0 { samples = samples.map { $0 * cost / sampleMean } }
        return SimulationCalibration(cost: cost, roundTrip: roundTrip, saturatedPoints: costs.count,
                                     unqueuedPoints: unqueued.count, costSamples: samples)
    }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// 200 evenly spaced quantiles of a fortio histogram (from its buckets; else its percentiles).
    static func quantiles(of h: FortioHistogram) -> [Double] {
        let total = h.data.reduce(0) { $0 + $1.count }
        guard total > 0 else { return h.percentiles.map(\.value) }
        var out: [Double] = []
        var bucket = 0
        var seen = 0
        for k in 0..<200 {
            let target = (Double(k) + 0.5) / 200 * Double(total)
            while bucket < h.data.count - 1 && Double(seen + h.data[bucket].count) < target {
                seen += h.data[bucket].count
                bucket += 1
            }
            let b = h.data[bucket]
            let within = b.count > 0 ? (target - Double(seen)) / Double(b.count) : 0.5
            out.append(b.start + (b.end - b.start) * min(max(within, 0), 1))
        }
        return out
    }
}
