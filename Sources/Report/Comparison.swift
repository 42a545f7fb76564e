import Foundation

/// A figure of a point that can be compared: throughput or a latency.
public enum Metric: String, CaseIterable, Sendable, Hashable {
    case qps
    case avg
    case p50, p75, p90, p99
    case p999 = "p99.9"
    /// CPU time (user + system) of the system under test per request, µs (measured window).
    case cpuPerRequest = "cpu-per-request"
    /// The load generator's CPU time per request, µs.
    case loadCPUPerRequest = "load-cpu-per-request"
    /// User-space instructions per request under callgrind (epoll): steadier than CPU time.
    case instructionsPerRequest = "instructions-per-request"

    public var higherIsBetter: Bool { self == .qps }

    /// Latencies are in seconds; the CPU metrics in microseconds per request.
    public var isLatency: Bool { self != .qps && self != .cpuPerRequest && self != .loadCPUPerRequest && self != .instructionsPerRequest }

    /// fortio's name for the percentile (`TP90`), or `QPS` / `mean latency`.
    public var title: String {
        switch self {
        case .qps: return "QPS"
        case .avg: return "mean latency"
        case .p50: return "TP50"
        case .p75: return "TP75"
        case .p90: return "TP90"
        case .p99: return "TP99"
        case .p999: return "TP99.9"
        case .cpuPerRequest: return "CPU/req"
        case .loadCPUPerRequest: return "load CPU/req"
        case .instructionsPerRequest: return "instructions/req"
        }
    }

    public var percentile: Double? {
        switch self {
        case .p50: return 50
        case .p75: return 75
        case .p90: return 90
        case .p99: return 99
        case .p999: return 99.9
        default: return nil
        }
    }

    /// QPS in requests per second; latencies in seconds (fortio's unit).
    public func value(of r: PointResult) -> Double? {
        switch self {
        case .qps: return r.actualQPS
        case .avg: return r.durationHistogram.count > 0 ? r.durationHistogram.avg : nil
        case .cpuPerRequest: return r.cpu?.systemMicrosPerRequest
        case .loadCPUPerRequest: return r.cpu?.loadMicrosPerRequest
        case .instructionsPerRequest: return r.cpu?.instructionsPerRequest
        default: return r.durationHistogram.value(atPercentile: percentile!)
        }
    }

    /// `qps,p90` -> [.qps, .p90]; also accepts `tp90`, `p99.9`, `mean`.
    public static func parseList(_ text: String) throws -> [Metric] {
        var out: [Metric] = []
        for raw in text.split(separator: ",") {
            let name = raw.trimmingCharacters(in: .whitespaces).lowercased()
            let normalized = name.hasPrefix("tp") ? String(name.dropFirst()) : name
            let metric: Metric?
            switch normalized {
            case "mean", "average": metric = .avg
            case "p999": metric = .p999
            case "cpu", "cpu/req": metric = .cpuPerRequest
            case "instructions", "ir": metric = .instructionsPerRequest
            default: metric = Metric(rawValue: normalized)
            }
            guard let metric else {
                throw MetricListError(message: "unknown metric '\(raw)'; expected some of \(Metric.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !out.contains(metric) { out.append(metric) }
        }
        if out.isEmpty { throw MetricListError(message: "no metric given") }
        return out
    }
}

public struct MetricListError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// What to compare and how.
public struct ComparisonOptions: Sendable {
    public var metrics: [Metric] = [.qps, .p50, .p90, .p99]
    public var level = 0.95
    public var resamples = Bootstrap.defaultResamples
    public var seed = Bootstrap.defaultSeed
    /// Compare one variant of the baseline set with one variant of the candidate set (which may
    /// be the same set): variant vs variant within a run.
    public var baselineVariant: String?
    public var candidateVariant: String?
    /// Divide each point's figures by those of this variant at the same connections and
    /// repetition in the same run before comparing runs: a ratio measured side by side, so a
    /// faster or slower machine (or a noisy hour) cancels out.
    public var normalizeBy: String?
    /// Ratio per interleaved pair (same repetition and connection count) and a bootstrap over
    /// pairs. nil: paired when both sides are the same run (variant vs variant), else independent.
    public var paired: Bool?

    public init() {}
}

/// One compared point (or, with `connections == nil`, all connection counts of a series).
public struct ComparisonRow: Sendable {
    public var series: String
    /// nil: the geometric mean over every matched connection count.
    public var connections: Int?
    /// Connection counts behind an aggregate row.
    public var pointCount: Int
    public var metric: Metric
    public var baseline: MeanEstimate?
    public var candidate: MeanEstimate?
    public var estimate: RatioEstimate?
    public var repetitionsA: Int
    public var repetitionsB: Int

    /// How much worse B is than A, as a fraction (0.07 = 7% worse); negative when better.
    public var regression: Double? {
        guard let r = estimate?.ratio else { return nil }
        return metric.higherIsBetter ? 1 - r : r - 1
    }

    /// A regression that is significant and larger than `threshold` (a fraction).
    public func isRegression(threshold: Double) -> Bool {
        guard let e = estimate, e.significant, let reg = regression else { return false }
        return reg > threshold
    }
}

/// The result of `Compare.run`.
public struct Comparison: Sendable {
    public var baselineName: String
    public var candidateName: String
    public var options: ComparisonOptions
    public var rows: [ComparisonRow]
    /// Points found on one side only.
    public var unmatched: [String]
    /// Points dropped by normalisation (no reference variant at the same connections/repetition).
    public var notes: [String]
    public var normalized: Bool { options.normalizeBy != nil }
}

public enum Compare {
    /// Matches points of `baseline` and `candidate` by series and connection count and
    /// estimates B/A for each metric with a bootstrap CI over repetitions; adds one
    /// aggregate row per series and metric (geometric mean over connection counts).
    public static func run(baseline: ResultSet, candidate: ResultSet, options: ComparisonOptions = ComparisonOptions()) -> Comparison {
        let keys = Set(baseline.seriesAxes).union(candidate.seriesAxes)
        var notes: [String] = []
        let sideA = Side(set: baseline, variant: options.baselineVariant, keys: keys, normalizeBy: options.normalizeBy, notes: &notes)
        let sideB = Side(set: candidate, variant: options.candidateVariant, keys: keys, normalizeBy: options.normalizeBy, notes: &notes)

        var rows: [ComparisonRow] = []
        var unmatched: [String] = []
        let seriesOrder = candidate.orderedSeries().map { key -> String in
            options.candidateVariant != nil ? SeriesKey(variant: "", axes: key.axes).description : key.description
        }
        let allSeries = Set(sideA.points.keys).union(sideB.points.keys)
        let ordered = allSeries.sorted { a, b in
            let ia = seriesOrder.firstIndex(of: a) ?? Int.max, ib = seriesOrder.firstIndex(of: b) ?? Int.max
            return ia != ib ? ia < ib : a < b
        }
        let paired = options.paired ?? (baseline.directory == candidate.directory)
        for series in ordered {
            let a = sideA.points[series] ?? [:], b = sideB.points[series] ?? [:]
            for c in Set(a.keys).symmetricDifference(b.keys).sorted() {
                unmatched.append("\(label(series, options)) at \(c) connections: only in \(a[c] == nil ? "candidate" : "baseline")")
            }
            let common = Set(a.keys).intersection(b.keys).sorted()
            guard !common.isEmpty else { continue }
            for metric in options.metrics {
                var strata: [(a: [Double], b: [Double])] = []
                var pairStrata: [[(a: Double, b: Double)]] = []
                var minA = Int.max, minB = Int.max
                for c in common {
                    let ka = sideA.valuesByRepetition(a[c]!, metric), kb = sideB.valuesByRepetition(b[c]!, metric)
                    let va = ka.sorted { $0.key < $1.key }.map(\.value), vb = kb.sorted { $0.key < $1.key }.map(\.value)
                    guard !va.isEmpty, !vb.isEmpty else { continue }
                    let seed = SeededRandom.seed("\(series)|\(c)|\(metric.rawValue)", base: options.seed)
                    let pairs = PairedBootstrap.pairs(ka, kb)
                    let estimate = paired
                        ? PairedBootstrap.ratio(pairs, level: options.level, resamples: options.resamples, seed: seed)
                        : Bootstrap.ratioOfMeans(a: va, b: vb, level: options.level, resamples: options.resamples, seed: seed)
                    rows.append(ComparisonRow(
                        series: label(series, options), connections: c, pointCount: 1, metric: metric,
                        baseline: Bootstrap.mean(va, level: options.level, resamples: options.resamples, seed: seed),
                        candidate: Bootstrap.mean(vb, level: options.level, resamples: options.resamples, seed: seed ^ 1),
                        estimate: (estimate ?? pointRatio(va, vb, options.level))?.asSinglePoint(), repetitionsA: va.count, repetitionsB: vb.count))
                    strata.append((va, vb))
                    pairStrata.append(pairs)
                    minA = min(minA, va.count); minB = min(minB, vb.count)
                }
                if strata.count > 1 {
                    let seed = SeededRandom.seed("\(series)|all|\(metric.rawValue)", base: options.seed)
                    let estimate = paired
                        ? PairedBootstrap.geometricMeanRatio(pairStrata, level: options.level, resamples: options.resamples, seed: seed)
                        : Bootstrap.geometricMeanRatio(strata, level: options.level, resamples: options.resamples, seed: seed)
                    rows.append(ComparisonRow(
                        series: label(series, options), connections: nil, pointCount: strata.count, metric: metric,
                        baseline: nil, candidate: nil,
                        estimate: estimate ?? geometricRatio(strata, options.level), repetitionsA: minA, repetitionsB: minB))
                }
            }
        }
        return Comparison(baselineName: name(baseline, options.baselineVariant), candidateName: name(candidate, options.candidateVariant),
                          options: options, rows: rows, unmatched: unmatched, notes: notes)
    }

    /// A ratio without an interval (too few repetitions): lower = upper = ratio, never significant.
    static func pointRatio(_ a: [Double], _ b: [Double], _ level: Double) -> RatioEstimate? {
        guard let ma = Stats.mean(a), let mb = Stats.mean(b), ma > 0 else { return nil }
        let r = mb / ma
        return RatioEstimate(ratio: r, lower: -.infinity, upper: .infinity, level: level, minRepetitions: min(a.count, b.count))
    }

    static func geometricRatio(_ strata: [(a: [Double], b: [Double])], _ level: Double) -> RatioEstimate? {
        var logSum = 0.0
        for s in strata {
            guard let ma = Stats.mean(s.a), let mb = Stats.mean(s.b), ma > 0, mb > 0 else { return nil }
            logSum += log(mb / ma)
        }
        let minN = strata.map { min($0.a.count, $0.b.count) }.min() ?? 0
        return RatioEstimate(ratio: exp(logSum / Double(strata.count)), lower: -.infinity, upper: .infinity, level: level, minRepetitions: minN)
    }

    static func label(_ series: String, _ options: ComparisonOptions) -> String {
        guard let a = options.baselineVariant, let b = options.candidateVariant else { return series }
        return series.isEmpty ? "\(b) vs \(a)" : "\(b) vs \(a) \(series)"
    }

    static func name(_ set: ResultSet, _ variant: String?) -> String {
        let base = set.directory
        return variant.map { "\(base) [\($0)]" } ?? base
    }

    /// One side of a comparison: its points by match key and connection count.
    struct Side {
        var points: [String: [Int: [LoadedPoint]]] = [:]
        var references: [String: LoadedPoint] = [:]
        var normalizeBy: String?
        var keys: Set<String>

        init(set: ResultSet, variant: String?, keys: Set<String>, normalizeBy: String?, notes: inout [String]) {
            self.keys = keys
            self.normalizeBy = normalizeBy
            if let normalizeBy {
                for p in set.points where p.result.variant == normalizeBy {
                    references["\(p.connections)|\(p.repetition)", default: p] = p
                }
            }
            for p in set.points {
                if let variant, p.result.variant != variant { continue }
                if let normalizeBy, p.result.variant == normalizeBy, variant != normalizeBy { continue }
                if normalizeBy != nil, references["\(p.connections)|\(p.repetition)"] == nil {
                    notes.append("\(p.file): no \(normalizeBy!) point at \(p.connections) connections, repetition \(p.repetition); left out")
                    continue
                }
                let axes = p.result.axes.filter { keys.contains($0.key) }
                let key = SeriesKey(variant: variant == nil ? p.result.variant : "", axes: axes).description
                points[key, default: [:]][p.connections, default: []].append(p)
            }
        }

        /// The metric per repetition; divided by the reference variant's when normalising.
        func values(_ points: [LoadedPoint], _ metric: Metric) -> [Double] {
            valuesByRepetition(points, metric).sorted { $0.key < $1.key }.map(\.value)
        }

        func valuesByRepetition(_ points: [LoadedPoint], _ metric: Metric) -> [Int: Double] {
            var out: [Int: Double] = [:]
            for p in points {
                guard let v = metric.value(of: p.result) else { continue }
                if normalizeBy == nil { out[p.repetition] = v; continue }
                guard let ref = references["\(p.connections)|\(p.repetition)"], let rv = metric.value(of: ref.result), rv > 0 else { continue }
                out[p.repetition] = v / rv
            }
            return out
        }
    }
}

// MARK: - The gate

public struct GateOptions: Sendable {
    /// Largest tolerated regression, as a fraction (0.05 = 5%).
    public var maxRegression = 0.05
    /// Also fail on a single connection count (not only on a series' geometric mean over all).
    public var perPoint = false
    public init() {}
}

/// The verdict of `ballast gate`.
public struct GateResult: Sendable {
    public var comparison: Comparison
    public var options: GateOptions
    /// Rows that fail the gate.
    public var failures: [ComparisonRow]
    /// Rows the gate judged (aggregates; and points with `perPoint` or when a series has one point).
    public var judged: [ComparisonRow]
    public var passed: Bool { failures.isEmpty }
    /// Judged rows with a confidence interval (2+ repetitions a side); with none, nothing can fail.
    public var judgeable: Int { judged.filter { $0.estimate.map { $0.lower.isFinite && $0.upper.isFinite } ?? false }.count }
    /// 0 pass, 1 fail.
    public var exitCode: Int32 { passed ? 0 : 1 }
}

public enum Gate {
    /// Judges a comparison: a row fails when B is worse than A by more than the threshold and
    /// the 95% CI of B/A excludes 1. By default the judged rows are each series' geometric mean
    /// over its connection counts (a series with one connection count: that point), because a
    /// sweep has few repetitions per point and many points: judged one by one, some point would
    /// fail on noise alone in most runs.
    public static func evaluate(_ comparison: Comparison, options: GateOptions = GateOptions()) -> GateResult {
        var judged: [ComparisonRow] = []
        let aggregated = Set(comparison.rows.filter { $0.connections == nil }.map { "\($0.series)|\($0.metric.rawValue)" })
        for row in comparison.rows {
            if row.connections == nil || options.perPoint || !aggregated.contains("\(row.series)|\(row.metric.rawValue)") {
                judged.append(row)
            }
        }
        let failures = judged.filter { $0.isRegression(threshold: options.maxRegression) }
        return GateResult(comparison: comparison, options: options, failures: failures, judged: judged)
    }

    /// `5%` -> 0.05, `0.05` -> 0.05. A bare number of 1 or more is refused as ambiguous.
    public static func parseThreshold(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("%") {
            guard let v = Double(t.dropLast()), v.isFinite, v >= 0, v < 1000 else { return nil }
            return v / 100
        }
        guard let v = Double(t), v.isFinite, v >= 0, v < 1 else { return nil }
        return v
    }
}
