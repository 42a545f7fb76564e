import Foundation

/// A table an experiment asks its report for: named variant pairs (candidate vs baseline), each a
/// row of changes (geometric mean over the connection counts, bootstrap CI over runs).
///
/// ```yaml
/// tables:
///   - title: Envoy exact_balance vs shared
///     pairs: [[envoy/exact_balance, envoy/shared]]
/// ```
public struct ComparisonTableSpec: Codable, Sendable, Equatable {
    public var title: String
    /// `[candidate, baseline]` variant names.
    public var pairs: [[String]]

    public init(title: String, pairs: [[String]]) {
        self.title = title
        self.pairs = pairs
    }
}

/// What a sweep actually ran, next to what its experiment file asks for (a committed run is
/// often shorter than the file's method).
public struct RunSettings: Codable, Sendable, Equatable {
    public var durationNanos: Int64
    public var warmupNanos: Int64
    public var repetitions: Int
    public var fileDurationNanos: Int64
    public var fileRepetitions: Int
    public var quick: Bool

    public init(durationNanos: Int64, warmupNanos: Int64, repetitions: Int, fileDurationNanos: Int64, fileRepetitions: Int, quick: Bool) {
        self.durationNanos = durationNanos; self.warmupNanos = warmupNanos; self.repetitions = repetitions
        self.fileDurationNanos = fileDurationNanos; self.fileRepetitions = fileRepetitions; self.quick = quick
    }

    func seconds(_ v: Double) -> String {
        v == v.rounded() ? "\(Int(v)) s" : "\(String(format: "%g", v)) s"
    }

    /// "3 repetitions x 3 s per point after 1 s warm-up (the experiment file: 3 x 30 s)".
    public var sentence: String {
        func s(_ n: Int64) -> String { seconds(Double(n) / 1e9) }
        var out = "\(repetitions) repetition\(repetitions == 1 ? "" : "s") x \(s(durationNanos)) per point"
        if warmupNanos > 0 { out += " after \(s(warmupNanos)) warm-up" }
        if durationNanos != fileDurationNanos || repetitions != fileRepetitions || quick {
            out += " (the experiment file: \(fileRepetitions) x \(s(fileDurationNanos))\(quick ? "; --quick" : ""))"
        }
        return out
    }
}

/// One row of an experiment table: a pair and its changes per metric.
public struct PairChange: Sendable {
    public var candidate: String
    public var baseline: String
    public var connectionCounts: Int
    public var changes: [Metric: RatioEstimate]
}

public enum ExperimentTables {
    public static let latencyMetrics: [Metric] = [.qps, .avg, .p50, .p90, .p99]

    /// The table's metrics: CPU per request joins when the sweep recorded it.
    static func metrics(_ set: ResultSet) -> [Metric] {
        set.points.contains(where: { $0.result.cpu?.systemMicrosPerRequest != nil }) ? latencyMetrics + [.cpuPerRequest] : latencyMetrics
    }

    static func rows(_ spec: ComparisonTableSpec, _ set: ResultSet, options: ReportOptions) -> [PairChange] {
        let metrics = metrics(set)
        return spec.pairs.compactMap { pair in
            guard pair.count == 2 else { return nil }
            var o = ComparisonOptions()
            o.metrics = metrics
            o.level = options.level; o.resamples = options.resamples; o.seed = options.seed
            o.candidateVariant = pair[0]; o.baselineVariant = pair[1]
            let c = Compare.run(baseline: set, candidate: set, options: o)
            var changes: [Metric: RatioEstimate] = [:]
            var counts = 0
            for m in metrics {
                let rows = c.rows.filter { $0.metric == m }
                // The aggregate row, or the single point's row when there is one connection count.
                guard let r = rows.first(where: { $0.connections == nil }) ?? (rows.count == 1 ? rows.first : nil) else { continue }
                changes[m] = r.estimate
                counts = r.connections == nil ? r.pointCount : 1
            }
            guard !changes.isEmpty else { return nil }
            return PairChange(candidate: pair[0], baseline: pair[1], connectionCounts: counts, changes: changes)
        }
    }

    public static func markdown(_ set: ResultSet, options: ReportOptions) -> String {
        var out = ""
        if let s = set.manifest?.runSettings { out += "Run: \(s.sentence).\n\n" }
        let metrics = metrics(set)
        for spec in set.manifest?.tables ?? [] {
            let rows = rows(spec, set, options: options)
            guard !rows.isEmpty else { continue }
            out += "### \(spec.title)\n\n| variant | vs | " + metrics.map { "Δ\($0.title)" }.joined(separator: " | ") + " |\n"
            out += "|---|---|" + metrics.map { _ in "--:|" }.joined() + "\n"
            for r in rows {
                out += "| \(Fmt.cell(r.candidate)) | \(Fmt.cell(r.baseline)) | "
                out += metrics.map { r.changes[$0].map(Fmt.change) ?? "—" }.joined(separator: " | ") + " |\n"
            }
            out += "\n"
        }
        if !out.isEmpty && !(set.manifest?.tables ?? []).isEmpty {
            out += "Changes are geometric means over the connection counts with a \(Int((options.level * 100).rounded()))% bootstrap CI over runs; ▲/▼ the CI excludes no change.\n\n"
        }
        return out
    }

    public static func html(_ set: ResultSet, options: ReportOptions) -> String {
        let e = xmlEscape
        var h = ""
        if let s = set.manifest?.runSettings { h += "<p class=\"muted\">Run: \(e(s.sentence)).</p>\n" }
        let metrics = metrics(set)
        for spec in set.manifest?.tables ?? [] {
            let rows = rows(spec, set, options: options)
            guard !rows.isEmpty else { continue }
            h += "<h2>\(e(spec.title))</h2>\n<table>\n<tr><th class=\"l\">variant</th><th class=\"l\">vs</th>"
            h += metrics.map { "<th>Δ\(e($0.title))</th>" }.joined() + "</tr>\n"
            for r in rows {
                h += "<tr><td class=\"l\">\(e(r.candidate))</td><td class=\"l\">\(e(r.baseline))</td>"
                for m in metrics {
                    guard let x = r.changes[m] else { h += "<td>—</td>"; continue }
                    h += "<td\(x.significant ? " class=\"sig\"" : "")>\(e(Fmt.change(x)))</td>"
                }
                h += "</tr>\n"
            }
            h += "</table>\n<p class=\"muted\">Geometric mean over \(rows.first?.connectionCounts ?? 0) connection counts, 95% bootstrap CI over runs.</p>\n"
        }
        return h
    }
}
