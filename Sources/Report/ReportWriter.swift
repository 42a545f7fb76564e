import Foundation

public struct ReportOptions: Sendable {
    /// Variant the deltas are against; default: the manifest's `baseline`, else the first variant.
    public var baseline: String?
    public var level = 0.95
    public var resamples = Bootstrap.defaultResamples
    public var seed = Bootstrap.defaultSeed
    public init(baseline: String? = nil) { self.baseline = baseline }
}

public struct ReportError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// One row of the key table: a series at one connection count.
public struct SummaryRow: Sendable {
    public var series: SeriesKey
    public var connections: Int
    public var runs: Int
    public var qps: MeanEstimate?
    public var p50: MeanEstimate?
    public var p90: MeanEstimate?
    public var p99: MeanEstimate?
    /// Mean latency, TP99.9 and CPU per request of the system under test (µs), when recorded.
    public var avg: MeanEstimate? = nil
    public var p999: MeanEstimate? = nil
    public var cpuPerRequest: MeanEstimate? = nil
    /// Non-2xx responses and socket errors, summed over runs.
    public var errors: Int
    /// B/A against the baseline series at the same connection count (absent for the baseline).
    public var deltas: [Metric: RatioEstimate]
    public var isBaseline: Bool
}

/// Per-worker figures of a point, averaged over its runs.
public struct WorkerBalance: Sendable {
    public var series: SeriesKey
    public var connections: Int
    /// Share of the point's accepted connections / requests per worker, in percent (mean over runs).
    public var connectionShares: [Double]
    public var requestShares: [Double]
    /// Mean over runs of max/mean and Jain's index.
    public var connectionsMaxOverMean: Double
    public var connectionsJain: Double
    public var requestsMaxOverMean: Double
    public var requestsJain: Double
    /// Live rebalancing: connections moved between workers during the point (mean over runs),
    /// nil when no run reported moves.
    public var moves: Double? = nil

    /// False when the system keeps no per-worker request counts (Envoy): no request charts then.
    public var hasRequests: Bool { requestShares.contains { $0 > 0 } }
}

/// Everything a report holds, before it is written anywhere.
public struct RenderedReport: Sendable {
    public var html: String
    public var summaryMarkdown: String
    public var csv: String
    /// File name (under `charts/`) -> SVG text.
    public var charts: [(name: String, svg: String)]
    public var rows: [SummaryRow]
    public var balance: [WorkerBalance]
    public var baseline: String
    /// The first lines of `summary.md` worth printing after a run.
    public var headlines: [String]
}

public enum ReportWriter {
    /// Builds the report of `set` and writes `report.html`, `summary.md`, `points.csv` and
    /// `charts/*.svg` into `outDirectory` (created if needed). Returns what it wrote.
    @discardableResult
    public static func write(_ set: ResultSet, to outDirectory: String, options: ReportOptions = ReportOptions()) throws -> RenderedReport {
        let report = try render(set, options: options)
        let fm = FileManager.default
        let charts = (outDirectory as NSString).appendingPathComponent("charts")
        try fm.createDirectory(atPath: charts, withIntermediateDirectories: true)
        func put(_ text: String, _ path: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        }
        try put(report.html, (outDirectory as NSString).appendingPathComponent("report.html"))
        try put(report.summaryMarkdown, (outDirectory as NSString).appendingPathComponent("summary.md"))
        try put(report.csv, (outDirectory as NSString).appendingPathComponent("points.csv"))
        for chart in report.charts { try put(chart.svg, (charts as NSString).appendingPathComponent(chart.name)) }
        return report
    }

    /// Builds the report in memory.
    public static func render(_ set: ResultSet, options: ReportOptions = ReportOptions()) throws -> RenderedReport {
        let variants = set.orderedSeries().map(\.variant).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let baseline = options.baseline ?? set.manifest?.baseline.flatMap { variants.contains($0) ? $0 : nil } ?? variants.first ?? ""
        guard variants.contains(baseline) else {
            throw ReportError(message: "baseline variant '\(baseline)' is not in \(set.directory) (variants: \(variants.joined(separator: ", ")))")
        }
        let rows = summaryRows(set, baseline: baseline, options: options)
        let balance = workerBalance(set)
        let charts = makeCharts(set, rows: rows, balance: balance)
        let aggregates = headlineComparisons(set, baseline: baseline, variants: variants, options: options)
        let headlines = headlineLines(aggregates, baseline: baseline)
        var summary = summaryMarkdown(set, rows: rows, baseline: baseline, headlines: headlines, level: options.level)
        var page = html(set, rows: rows, balance: balance, charts: charts, baseline: baseline, headlines: headlines)
        // The experiment's own pair tables and what actually ran, after the headlines.
        if let at = summary.range(of: "| variant | connections |") { summary.insert(contentsOf: ExperimentTables.markdown(set, options: options), at: at.lowerBound) }
        if let at = page.range(of: "<h2>Environment</h2>") { page.insert(contentsOf: ExperimentTables.html(set, options: options), at: at.lowerBound) }
        return RenderedReport(
            html: page,
            summaryMarkdown: summary,
            csv: csv(set), charts: charts, rows: rows, balance: balance, baseline: baseline, headlines: headlines)
    }

    // MARK: Model

    static func summaryRows(_ set: ResultSet, baseline: String, options: ReportOptions) -> [SummaryRow] {
        let groups = set.groups()
        var rows: [SummaryRow] = []
        for g in groups {
            func est(_ m: Metric) -> MeanEstimate? {
                let v = g.values(m)
                return Bootstrap.mean(v, level: options.level, resamples: options.resamples,
                                      seed: SeededRandom.seed("\(g.series)|\(g.connections)|\(m.rawValue)", base: options.seed))
            }
            var deltas: [Metric: RatioEstimate] = [:]
            let isBaseline = g.series.variant == baseline
            if !isBaseline, let base = groups.first(where: { $0.series.variant == baseline && $0.series.axes == g.series.axes && $0.connections == g.connections })
                ?? groups.first(where: { $0.series.variant == baseline && $0.connections == g.connections && groups.filter { $0.series.variant == baseline && $0.connections == g.connections }.count == 1 }) {
                // Runs of one sweep are interleaved: ratio per pair (same repetition), bootstrap over pairs.
                for m in ReportWriter.deltaMetrics {
                    let pairs = PairedBootstrap.pairs(base.valuesByRepetition(m), g.valuesByRepetition(m))
                    let seed = SeededRandom.seed("delta|\(g.series)|\(g.connections)|\(m.rawValue)", base: options.seed)
                    if let e = PairedBootstrap.ratio(pairs, level: options.level, resamples: options.resamples, seed: seed)
                        ?? Compare.pointRatio(pairs.map(\.a), pairs.map(\.b), options.level) {
                        deltas[m] = e.asSinglePoint()
                    }
                }
            }
            var row = SummaryRow(series: g.series, connections: g.connections, runs: g.repetitions.count,
                                 qps: est(.qps), p50: est(.p50), p90: est(.p90), p99: est(.p99),
                                 errors: g.repetitions.reduce(0) { $0 + $1.result.errorCount },
                                 deltas: deltas, isBaseline: isBaseline)
            row.avg = est(.avg)
            row.p999 = est(.p999)
            row.cpuPerRequest = est(.cpuPerRequest)
            rows.append(row)
        }
        return rows
    }

    static func workerBalance(_ set: ResultSet) -> [WorkerBalance] {
        var out: [WorkerBalance] = []
        for g in set.groups() {
            let runs = g.repetitions.compactMap(\.result.workers).filter { !$0.isEmpty }
            guard !runs.isEmpty else { continue }
            let n = (runs.flatMap { $0.map(\.worker) }.max() ?? 0) + 1
            guard n <= 4096 else { continue }
            func perWorker(_ run: [WorkerFigures], _ f: (WorkerFigures) -> Int) -> [Double] {
                var v = [Double](repeating: 0, count: n)
                for w in run { v[w.worker] = Double(f(w)) }
                return v
            }
            func shares(_ v: [Double]) -> [Double] {
                let total = v.reduce(0, +)
                return total > 0 ? v.map { $0 / total * 100 } : v.map { _ in 0 }
            }
            func meanVector(_ vs: [[Double]]) -> [Double] {
                (0..<n).map { i in vs.map { $0[i] }.reduce(0, +) / Double(vs.count) }
            }
            let conns = runs.map { perWorker($0, \.accepted) }, reqs = runs.map { perWorker($0, \.requests) }
            out.append(WorkerBalance(
                series: g.series, connections: g.connections,
                connectionShares: meanVector(conns.map(shares)), requestShares: meanVector(reqs.map(shares)),
                connectionsMaxOverMean: Stats.mean(conns.compactMap(Stats.maxOverMean)) ?? 1,
                connectionsJain: Stats.mean(conns.compactMap(Stats.jainIndex)) ?? 1,
                requestsMaxOverMean: Stats.mean(reqs.compactMap(Stats.maxOverMean)) ?? 1,
                requestsJain: Stats.mean(reqs.compactMap(Stats.jainIndex)) ?? 1,
                moves: Stats.mean(runs.compactMap { run in
                    run.contains { $0.movesOut != nil } ? Double(run.reduce(0) { $0 + ($1.movesOut ?? 0) }) : nil
                })))
        }
        return out
    }

    /// The figures every summary row is compared on against the baseline.
    static let deltaMetrics: [Metric] = [.qps, .avg, .p50, .p90, .p99, .p999, .cpuPerRequest]

    static func headlineComparisons(_ set: ResultSet, baseline: String, variants: [String], options: ReportOptions) -> [ComparisonRow] {
        var rows: [ComparisonRow] = []
        for v in variants where v != baseline {
            var o = ComparisonOptions()
            o.metrics = set.points.contains(where: { $0.result.cpu?.systemMicrosPerRequest != nil })
                ? [.qps, .avg, .p50, .p90, .p99, .cpuPerRequest] : [.qps, .avg, .p50, .p90, .p99]
            o.level = options.level; o.resamples = options.resamples; o.seed = options.seed
            o.baselineVariant = baseline; o.candidateVariant = v
            let c = Compare.run(baseline: set, candidate: set, options: o)
            // Per series: the aggregate row, or the single point's row when there is one point.
            let aggregated = Set(c.rows.filter { $0.connections == nil }.map(\.series))
            rows += c.rows.filter { $0.connections == nil || !aggregated.contains($0.series) }
        }
        return rows
    }

    static func headlineLines(_ rows: [ComparisonRow], baseline: String) -> [String] {
        var order: [String] = []
        for r in rows where !order.contains(r.series) { order.append(r.series) }
        return order.map { series in
            let rs = rows.filter { $0.series == series }
            let over = rs.first.map { $0.connections == nil ? "geometric mean over \($0.pointCount) connection counts" : "at \($0.connections!) connections" } ?? ""
            let parts = rs.compactMap { r in r.estimate.map { "\(r.metric.title) \(Fmt.change($0))" } }
            return "**\(series)**: " + parts.joined(separator: ", ") + " (\(over))"
        }
    }

    // MARK: Charts

    static func slug(_ s: String) -> String {
        var out = ""
        for ch in s.lowercased() {
            if ch.isASCII && (ch.isLetter || ch.isNumber) { out.append(ch) } else if out.last != "-" { out.append("-") }
        }
        while out.hasSuffix("-") { out.removeLast() }
        return out.isEmpty ? "series" : out
    }

    static func qpsTick(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1000 { return trim(String(format: "%.2f", v / 1000)) + "k" }
        return trim(String(format: "%.2f", v))
    }

    static func trim(_ s: String) -> String {
        guard s.contains(".") else { return s }
        var t = s
        while t.hasSuffix("0") { t.removeLast() }
        if t.hasSuffix(".") { t.removeLast() }
        return t
    }

    static func msTick(_ v: Double) -> String { trim(String(format: "%.4f", v)) }

    static func makeCharts(_ set: ResultSet, rows: [SummaryRow], balance: [WorkerBalance]) -> [(name: String, svg: String)] {
        let groups = set.groups()
        let series = set.orderedSeries()
        let runs = Set(groups.map(\.repetitions.count))
        let runsText = runs.count == 1 ? "\(runs.first!) run\(runs.first! == 1 ? "" : "s")" : "\(runs.min()!)–\(runs.max()!) runs"
        let spread = (runs.max() ?? 1) > 1 ? "; bars and band: min–max over runs" : ""
        let place = "\(set.experiment) · mean of \(runsText) per point\(spread)"
        var charts: [(String, String)] = []

        func lineSeries(_ metric: Metric, scale: Double) -> [ChartSeries] {
            series.map { key in
                ChartSeries(name: key.description, points: groups.filter { $0.series == key }.compactMap { g in
                    let v = g.values(metric).map { $0 * scale }
                    guard let m = Stats.mean(v) else { return nil }
                    return ChartPoint(x: Double(g.connections), mean: m, low: v.min()!, high: v.max()!, count: v.count)
                })
            }
        }
        let xLabel = "Connections (log₂ scale)"
        let qps = LineChart(title: "Throughput vs connections", subtitle: place, xLabel: xLabel,
                            yLabel: "Throughput (requests/s)", series: lineSeries(.qps, scale: 1), yScale: .linearFromZero,
                            yTick: qpsTick, yValue: { Fmt.qps($0) + " requests/s" })
        charts.append(("qps.svg", qps.svg()))
        for m in [Metric.avg, .p50, .p90, .p99] {
            let s = lineSeries(m, scale: 1000)
            guard s.contains(where: { !$0.points.isEmpty }) else { continue }
            let what = m == .avg ? "Mean latency" : "\(m.title) latency"
            let chart = LineChart(title: "\(what) vs connections", subtitle: place, xLabel: xLabel,
                                  yLabel: "\(what) (ms)", series: s, yScale: .auto,
                                  yTick: msTick, yValue: { Fmt.ms($0 / 1000) + " ms" })
            charts.append((m == .avg ? "mean.svg" : "\(m.title.lowercased()).svg", chart.svg()))
        }
        if !balance.isEmpty {
            for (field, name, label) in [(\WorkerBalance.connectionsMaxOverMean, "connections", "accepted connections"),
                                         (\WorkerBalance.requestsMaxOverMean, "requests", "requests")] {
                let s = series.map { key in
                    ChartSeries(name: key.description, points: balance.filter { $0.series == key && (name == "connections" || $0.hasRequests) }.map {
                        ChartPoint(x: Double($0.connections), mean: $0[keyPath: field], low: $0[keyPath: field], high: $0[keyPath: field], count: 1)
                    })
                }.filter { !$0.points.isEmpty }
                let chart = LineChart(title: "Imbalance of \(label) across workers", subtitle: "\(set.experiment) · max/mean per worker (1 = even, number of workers = one worker takes all), mean over runs",
                                      xLabel: xLabel, yLabel: "max / mean \(label) per worker", series: s, yScale: .linearFromZero,
                                      yTick: { trim(String(format: "%.2f", $0)) }, yValue: { String(format: "%.2f", $0) })
                charts.append(("imbalance-\(name).svg", chart.svg()))
            }
            for key in series {
                let bs = balance.filter { $0.series == key }.sorted { $0.connections < $1.connections }
                guard let workers = bs.map({ $0.connectionShares.count }).max(), workers > 0 else { continue }
                let names = (0..<workers).map { "worker \($0)" }
                for (what, shares, mm, jain) in [("connections", \WorkerBalance.connectionShares, \WorkerBalance.connectionsMaxOverMean, \WorkerBalance.connectionsJain),
                                                 ("requests", \WorkerBalance.requestShares, \WorkerBalance.requestsMaxOverMean, \WorkerBalance.requestsJain)] {
                    if what == "requests" && !bs.contains(where: \.hasRequests) { continue }  // not counted (Envoy)
                    let chart = BarChart(
                        title: "\(key.description): \(what == "connections" ? "accepted connections" : "requests") per worker",
                        subtitle: "\(set.experiment) · share of the point's total, mean over runs · under each group: max/mean and Jain's index",
                        xLabel: "Connections", yLabel: "Share of \(what) (%)", barNames: names,
                        groups: bs.map { b in
                            BarChart.Group(label: String(b.connections), values: b[keyPath: shares],
                                           notes: [String(format: "%.2f×", b[keyPath: mm]), String(format: "J %.2f", b[keyPath: jain])])
                        },
                        reference: (100 / Double(workers), String(format: "even share (%.3g%%)", 100 / Double(workers))),
                        yTick: { trim(String(format: "%.1f", $0)) })
                    charts.append(("workers-\(slug(key.description))-\(what).svg", chart.svg()))
                }
            }
        }
        return charts
    }

    // MARK: Text outputs

    static func runTitle(_ set: ResultSet) -> String {
        let stamp = set.manifest?.startedAt ?? (set.directory as NSString).lastPathComponent
        return "\(set.experiment) (\(stamp))"
    }

    static func summaryMarkdown(_ set: ResultSet, rows: [SummaryRow], baseline: String, headlines: [String], level: Double) -> String {
        var out = "## Ballast report: \(runTitle(set))\n\n"
        let pct = Int((level * 100).rounded())
        out += runLine(set) + "\n\n"
        if !headlines.isEmpty {
            out += "Against **\(baseline)**, \(pct)% bootstrap CI; ▲/▼ the CI excludes no change:\n\n"
            for h in headlines { out += "- \(h)\n" }
            out += "\n"
        }
        out += methodNote(level: level) + "\n\n"
        let hasCPU = rows.contains { $0.cpuPerRequest != nil }
        out += "| variant | connections | runs | QPS (\(pct)% CI) | mean ms | TP50 ms | TP90 ms | TP99 ms | TP99.9 ms |"
        out += (hasCPU ? " CPU µs/req |" : "") + " ΔQPS vs \(Fmt.cell(baseline)) | Δmean | ΔTP90 | ΔTP99 |" + (hasCPU ? " ΔCPU/req |" : "") + " errors |\n"
        out += "|---|--:|--:|--:|--:|--:|--:|--:|--:|" + (hasCPU ? "--:|" : "") + "--:|--:|--:|--:|" + (hasCPU ? "--:|" : "") + "--:|\n"
        for r in rows {
            func d(_ m: Metric) -> String { r.isBaseline ? "baseline" : (r.deltas[m].map(Fmt.change) ?? "—") }
            func m(_ e: MeanEstimate?, _ metric: Metric) -> String { e.map { Fmt.mean($0, metric) } ?? "—" }
            out += "| \(Fmt.cell(r.series.description)) | \(r.connections) | \(r.runs) | \(m(r.qps, .qps)) | \(m(r.avg, .avg)) | "
            out += "\(m(r.p50, .p50)) | \(m(r.p90, .p90)) | \(m(r.p99, .p99)) | \(m(r.p999, .p999)) | "
            if hasCPU { out += "\(m(r.cpuPerRequest, .cpuPerRequest)) | " }
            out += "\(d(.qps)) | \(d(.avg)) | \(d(.p90)) | \(d(.p99)) | "
            if hasCPU { out += "\(d(.cpuPerRequest)) | " }
            out += "\(r.errors) |\n"
        }
        out += "\nEnvironment: "
        out += (set.environment?.rows.map { "\($0.0) \($0.1)" }.joined(separator: "; ")).flatMap { $0.isEmpty ? nil : $0 } ?? "not recorded"
        out += ".\n"
        for w in set.warnings { out += "\n- note: \(w)" }
        if !set.warnings.isEmpty { out += "\n" }
        return out
    }

    /// How the ▲/▼ marks were decided, for the report's readers.
    static func methodNote(level: Double) -> String {
        let pct = Int((level * 100).rounded())
        return "Method: deltas against the baseline are the \(IntervalMethod.paired.text), with a \(pct)% expanded percentile "
            + "bootstrap interval; ▲/▼ when it excludes no change. A single point is marked only with at least "
            + "\(IntervalMethod.paired.minimumForPointMark) pairs (below that its false-positive rate on synthetic noise is above 5%); "
            + "headlines are the geometric mean over connection counts. CPU µs/req: user+system time of the system under "
            + "test's process tree over the measured window (warm-up excluded) divided by its requests."
    }

    /// Duration and repetitions as actually run (the sweep's command may override the experiment file).
    static func runLine(_ set: ResultSet) -> String {
        let durations = set.points.compactMap(\.result.actualDuration).map { Double($0) / 1e9 }
        let reps = set.groups().map(\.repetitions.count)
        var parts: [String] = []
        if let lo = durations.min(), let hi = durations.max() {
            parts.append(abs(hi - lo) < 0.05 ? String(format: "%.2f s measured per point", lo) : String(format: "%.2f–%.2f s measured per point", lo, hi))
        }
        if let lo = reps.min(), let hi = reps.max() { parts.append(lo == hi ? "\(lo) runs per point" : "\(lo)–\(hi) runs per point") }
        if let command = set.manifest?.command { parts.append("command `\(command)`") }
        return "Run: " + (parts.isEmpty ? "not recorded" : parts.joined(separator: "; ")) + "."
    }

    /// One line per point file, figures as recorded (latencies in ms, full precision).
    public static func csv(_ set: ResultSet) -> String {
        let axisKeys = Set(set.points.flatMap { $0.result.axes.keys }).subtracting(["connections", "repetition"]).sorted()
        var header = ["file", "variant"] + axisKeys + ["connections", "repetition", "qps", "avg_ms", "p50_ms", "p75_ms", "p90_ms", "p99_ms", "p99.9_ms",
                                                      "requests", "errors", "duration_s", "workers", "accepted_max_over_mean", "accepted_jain",
                                                      "requests_max_over_mean", "requests_jain", "cpu_us_per_req", "load_cpu_us_per_req"]
        header = header.map(csvField)
        var lines = [header.joined(separator: ",")]
        let ordered = set.groups().flatMap(\.repetitions)
        for p in ordered {
            let r = p.result
            func ms(_ m: Metric) -> String { m.value(of: r).map { String($0 * 1000) } ?? "" }
            let w = r.workers ?? []
            let accepted = w.map { Double($0.accepted) }, requests = w.map { Double($0.requests) }
            var f: [String] = [(p.file as NSString).lastPathComponent, r.variant]
            f += axisKeys.map { r.axes[$0]?.description ?? "" }
            f += [String(p.connections), String(p.repetition), String(r.actualQPS), ms(.avg), ms(.p50), ms(.p75), ms(.p90), ms(.p99), ms(.p999),
                  String(r.durationHistogram.count), String(r.errorCount), r.actualDuration.map { String(Double($0) / 1e9) } ?? "",
                  w.isEmpty ? "" : String(w.count),
                  Stats.maxOverMean(accepted).map { String($0) } ?? "", Stats.jainIndex(accepted).map { String($0) } ?? "",
                  Stats.maxOverMean(requests).map { String($0) } ?? "", Stats.jainIndex(requests).map { String($0) } ?? "",
                  r.cpu?.systemMicrosPerRequest.map { String($0) } ?? "", r.cpu?.loadMicrosPerRequest.map { String($0) } ?? ""]
            lines.append(f.map(csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func html(_ set: ResultSet, rows: [SummaryRow], balance: [WorkerBalance], charts: [(name: String, svg: String)],
                     baseline: String, headlines: [String]) -> String {
        let e = xmlEscape
        func inline(_ svg: String) -> String { svg }
        func md(_ s: String) -> String {
            // Headlines use **bold** only.
            var out = "", bold = false
            let parts = e(s).components(separatedBy: "**")
            for (i, p) in parts.enumerated() {
                if i > 0 { out += bold ? "</strong>" : "<strong>"; bold.toggle() }
                out += p
            }
            return out + (bold ? "</strong>" : "")
        }
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <title>Ballast report: \(e(runTitle(set)))</title>
        <style>
        body { font-family: 'DejaVu Sans', 'Helvetica Neue', Arial, sans-serif; margin: 24px auto; max-width: 1180px; color: #222; padding: 0 16px; }
        h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
        th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
        th { background: #f4f4f4; } td.l, th.l { text-align: left; }
        tr.base td { background: #fafafa; }
        .sig { font-weight: bold; } .muted { color: #666; font-size: 13px; }
        .charts svg { display: block; margin: 12px 0 20px; max-width: 100%; height: auto; border: 1px solid #eee; }
        code { background: #f4f4f4; padding: 1px 4px; }
        </style></head><body>
        <h1>Ballast report: \(e(runTitle(set)))</h1>
        <p class="muted">\(set.points.count) point files from <code>\(e(set.directory))</code>; variants: \(e(set.orderedSeries().map(\.description).joined(separator: ", "))); baseline: <strong>\(e(baseline))</strong>.
        Files next to this one: <code>summary.md</code>, <code>points.csv</code>, <code>charts/*.svg</code>.</p>

        """
        if let m = set.manifest {
            var facts: [String] = []
            if let d = m.description { facts.append(e(d)) }
            if let c = m.command { facts.append("command <code>\(e(c))</code>") }
            if let o = m.order { facts.append("order \(e(o))" + (m.seed.map { ", seed \($0)" } ?? "")) }
            if let f = m.finishedAt { facts.append("finished \(e(f))") }
            if m.complete == false { facts.append("<strong>incomplete run</strong>") }
            if !facts.isEmpty { h += "<p class=\"muted\">\(facts.joined(separator: " · "))</p>\n" }
        }
        if !headlines.isEmpty {
            h += "<h2>Against \(e(baseline))</h2>\n<p class=\"muted\">\(e(runLine(set))) \(e(methodNote(level: 0.95)))</p>\n<ul>\n"
            for line in headlines { h += "<li>\(md(line))</li>\n" }
            h += "</ul>\n"
        }
        h += "<h2>Environment</h2>\n"
        if let env = set.environment, !env.rows.isEmpty {
            h += "<table>\n" + env.rows.map { "<tr><th class=\"l\">\(e($0.0))</th><td class=\"l\">\(e($0.1))</td></tr>" }.joined(separator: "\n") + "\n</table>\n"
        } else {
            h += "<p><strong>Not recorded.</strong> Absolute figures from this run do not travel to other machines.</p>\n"
        }
        h += "<h2>Throughput and latency</h2>\n<div class=\"charts\">\n"
        for c in charts where !c.name.hasPrefix("imbalance") && !c.name.hasPrefix("workers") { h += inline(c.svg) }
        h += "</div>\n<h2>Key table</h2>\n<table>\n<tr><th class=\"l\">variant</th><th>connections</th><th>runs</th><th>QPS (95% CI)</th><th>mean ms</th><th>TP50 ms</th><th>TP90 ms</th><th>TP99 ms</th><th>TP99.9 ms</th>"
        let hasCPU = rows.contains { $0.cpuPerRequest != nil }
        h += (hasCPU ? "<th>CPU µs/req</th>" : "") + "<th>ΔQPS vs \(e(baseline))</th><th>Δmean</th><th>ΔTP50</th><th>ΔTP90</th>"
        h += (hasCPU ? "<th>ΔCPU/req</th>" : "") + "<th>errors</th></tr>\n"
        for r in rows {
            func d(_ m: Metric) -> String {
                if r.isBaseline { return "<td>baseline</td>" }
                guard let x = r.deltas[m] else { return "<td>—</td>" }
                return "<td\(x.significant ? " class=\"sig\"" : "")>\(e(Fmt.change(x)))</td>"
            }
            h += "<tr\(r.isBaseline ? " class=\"base\"" : "")><td class=\"l\">\(e(r.series.description))</td><td>\(r.connections)</td><td>\(r.runs)</td>"
            h += "<td>\(e(r.qps.map { Fmt.mean($0, .qps) } ?? "—"))</td><td>\(e(r.avg.map { Fmt.mean($0, .avg) } ?? "—"))</td><td>\(e(r.p50.map { Fmt.mean($0, .p50) } ?? "—"))</td>"
            h += "<td>\(e(r.p90.map { Fmt.mean($0, .p90) } ?? "—"))</td><td>\(e(r.p99.map { Fmt.mean($0, .p99) } ?? "—"))</td>"
            h += "<td>\(e(r.p999.map { Fmt.mean($0, .p999) } ?? "—"))</td>"
            if hasCPU { h += "<td>\(e(r.cpuPerRequest.map { Fmt.mean($0, .cpuPerRequest) } ?? "—"))</td>" }
            h += d(.qps) + d(.avg) + d(.p50) + d(.p90) + (hasCPU ? d(.cpuPerRequest) : "") + "<td>\(r.errors)</td></tr>\n"
        }
        h += "</table>\n"
        if !balance.isEmpty {
            h += "<h2>Worker balance</h2>\n<p class=\"muted\">max/mean: 1 is even, the number of workers means one worker took everything. Jain's index: 1 is even, 1/workers is one worker taking everything.</p>\n"
            let hasMoves = balance.contains { $0.moves != nil }
            h += "<table>\n<tr><th class=\"l\">variant</th><th>connections</th><th>connections max/mean</th><th>connections Jain</th><th>requests max/mean</th><th>requests Jain</th>"
            h += hasMoves ? "<th>connections moved</th></tr>\n" : "</tr>\n"
            for b in balance {
                h += "<tr><td class=\"l\">\(e(b.series.description))</td><td>\(b.connections)</td><td>\(String(format: "%.2f", b.connectionsMaxOverMean))</td>"
                h += "<td>\(String(format: "%.3f", b.connectionsJain))</td>"
                h += b.hasRequests ? "<td>\(String(format: "%.2f", b.requestsMaxOverMean))</td><td>\(String(format: "%.3f", b.requestsJain))</td>" : "<td>—</td><td>—</td>"
                if hasMoves { h += "<td>\(b.moves.map { String(format: "%.1f", $0) } ?? "—")</td>" }
                h += "</tr>\n"
            }
            h += "</table>\n<div class=\"charts\">\n"
            for c in charts where c.name.hasPrefix("imbalance") || c.name.hasPrefix("workers") { h += inline(c.svg) }
            h += "</div>\n"
        }
        if !set.warnings.isEmpty {
            h += "<h2>Notes</h2>\n<ul>\n" + set.warnings.map { "<li>\(e($0))</li>" }.joined(separator: "\n") + "\n</ul>\n"
        }
        h += "</body></html>\n"
        return h
    }
}
