import Foundation
import Report
import Simulator

/// Simulates every point of a measured sweep with the placement it measured (per-worker connection
/// counts) and one cost and round trip for the whole sweep (`SimulationCalibration`), and compares:
/// how far the model is from the machine.
public struct SimulationValidation: Sendable {
    public struct Row: Sendable {
        public var variant: String
        public var connections: Int
        public var repetition: Int
        public var placement: [Int]
        public var measured: Figures
        public var simulated: Figures
    }

    public struct Figures: Sendable {
        public var qps: Double
        public var mean: Double
        public var p50: Double
        public var p90: Double
    }

    public var calibration: SimulationCalibration
    public var rows: [Row]
    public var skipped: [String]

    public static func run(_ set: ResultSet, costShape: SimulationRunner.CostShape = .fixed,
                           simulatedSeconds: Double = 5) throws -> SimulationValidation {
        let calibration = try SimulationCalibration.from(set)
        let cost: CostDistribution
        switch costShape {
        case .fixed, .nominal: cost = .fixed(calibration.cost)
        case .exponential: cost = .exponential(mean: calibration.cost)
        case .empirical: cost = .empirical(calibration.costSamples)
        }
        var rows: [Row] = []
        var skipped: [String] = []
        for p in set.points {
            let name = "\(p.result.variant) c=\(p.connections) r\(p.repetition)"
            guard let workers = p.result.workers, !workers.isEmpty else { skipped.append("\(name): no per-worker figures"); continue }
            let placement = workers.sorted { $0.worker < $1.worker }.map(\.active)
            let connections = placement.reduce(0, +)
            guard connections > 0 else { skipped.append("\(name): no open connections sampled"); continue }
            guard p.result.errorCount == 0 else { skipped.append("\(name): \(p.result.errorCount) errors"); continue }
            let model = SimulationModel(workers: placement.count, connections: connections, placement: .measured(placement),
                                        cost: cost, roundTrip: calibration.roundTrip, duration: simulatedSeconds,
                                        warmup: 0.5, seed: UInt64(rows.count + 1))
            let r = try Simulation(model).run()
            let h = p.result.durationHistogram
            rows.append(Row(variant: p.result.variant, connections: p.connections, repetition: p.repetition, placement: placement,
                            measured: Figures(qps: p.result.actualQPS, mean: h.avg, p50: h.value(atPercentile: 50) ?? .nan,
                                              p90: h.value(atPercentile: 90) ?? .nan),
                            simulated: Figures(qps: r.qps, mean: r.mean, p50: r.percentile(50), p90: r.percentile(90))))
        }
        return SimulationValidation(calibration: calibration, rows: rows, skipped: skipped)
    }

    /// Mean absolute percentage error of a figure over the rows (NaN figures skipped).
    public func meanAbsolutePercentError(_ figure: KeyPath<Figures, Double>, variant: String? = nil) -> Double {
        let errors = rows.filter { variant == nil || $0.variant == variant }.compactMap { row -> Double? in
            let m = row.measured[keyPath: figure]
            let s = row.simulated[keyPath: figure]
            guard m.isFinite, s.isFinite, m > 0 else { return nil }
            return abs(s - m) / m * 100
        }
        return errors.isEmpty ? .nan : errors.reduce(0, +) / Double(errors.count)
    }

    /// The validation as Markdown: the error summary per variant, then every point.
    public func markdown(title: String) -> String {
        var out = "# Simulator validation: \(title)\n\n"
        out += String(format: "Calibrated once for the whole sweep: cost %.1f us per request (median of %d saturated points), round trip %.1f us (%d unqueued points).\n\n",
                      calibration.cost * 1e6, calibration.saturatedPoints, calibration.roundTrip * 1e6, calibration.unqueuedPoints)
        out += "Mean absolute % error (simulated vs measured, per point, placement = the measured connections per worker):\n\n"
        out += "| series | points | QPS | mean | TP50 | TP90 |\n|---|---:|---:|---:|---:|---:|\n"
        var variants: [String] = []
        for r in rows where !variants.contains(r.variant) { variants.append(r.variant) }
        for v in variants + [nil] as [String?] {
            out += "| \(v ?? "**all**") | \(rows.filter { v == nil || $0.variant == v }.count) | "
            out += [\Figures.qps, \.mean, \.p50, \.p90].map { String(format: "%.1f%%", meanAbsolutePercentError($0, variant: v)) }.joined(separator: " | ")
            out += " |\n"
        }
        out += "\n| series | conns | rep | placement | QPS measured | QPS simulated | TP90 measured | TP90 simulated |\n|---|---:|---:|---|---:|---:|---:|---:|\n"
        for r in rows.sorted(by: { ($0.variant, $0.connections, $0.repetition) < ($1.variant, $1.connections, $1.repetition) }) {
            out += "| \(r.variant) | \(r.connections) | \(r.repetition) | \(r.placement.map(String.init).joined(separator: ",")) | "
            out += String(format: "%.0f | %.0f | %.2fms | %.2fms |\n", r.measured.qps, r.simulated.qps, r.measured.p90 * 1000, r.simulated.p90 * 1000)
        }
        if !skipped.isEmpty { out += "\nSkipped: " + skipped.joined(separator: "; ") + "\n" }
        return out
    }
}
