import Foundation

/// Number formats shared by tables, charts and the CSV.
enum Fmt {
    static func fixed(_ v: Double, _ decimals: Int) -> String {
        String(format: "%.\(decimals)f", v)
    }

    /// 12345.6 -> "12,346"; 812.34 -> "812.3".
    static func qps(_ v: Double) -> String {
        if abs(v) >= 1000 { return grouped(Int(v.rounded())) }
        return fixed(v, abs(v) >= 100 ? 1 : 2)
    }

    static func grouped(_ n: Int) -> String {
        let digits = String(abs(n))
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return n < 0 ? "-" + out : out
    }

    /// Seconds -> milliseconds with 3 or so significant digits, no unit.
    static func ms(_ seconds: Double) -> String {
        let v = seconds * 1000
        let a = abs(v)
        if a >= 100 { return fixed(v, 0) }
        if a >= 10 { return fixed(v, 1) }
        if a >= 1 { return fixed(v, 2) }
        return fixed(v, 3)
    }

    static func ratio(_ r: Double) -> String {
        r.isFinite ? fixed(r, 3) : "—"
    }

    /// 0.121 -> "+12.1%".
    static func percent(_ fraction: Double) -> String {
        guard fraction.isFinite else { return "—" }
        let v = fraction * 100
        let s = fixed(v, abs(v) >= 10 ? 0 : 1)
        return (v >= 0 && !s.hasPrefix("-") ? "+" : "") + s + "%"
    }

    /// A metric value in its table unit (requests/s or ms); `normalized` values are ratios.
    static func value(_ v: Double, _ metric: Metric, normalized: Bool = false) -> String {
        if normalized { return fixed(v, 3) + "×" }
        if metric == .instructionsPerRequest { return grouped(Int(v.rounded())) }
        if !metric.isLatency && metric != .qps { return micros(v) + " µs" }
        return metric == .qps ? qps(v) : ms(v) + " ms"
    }

    /// Microseconds with 3 or so significant digits, no unit.
    static func micros(_ v: Double) -> String {
        abs(v) >= 100 ? fixed(v, 0) : abs(v) >= 10 ? fixed(v, 1) : fixed(v, 2)
    }

    /// "12,345 (12,100–12,600)".
    static func mean(_ e: MeanEstimate, _ metric: Metric) -> String {
        func f(_ v: Double) -> String {
            metric == .qps ? qps(v) : metric.isLatency ? ms(v) : metric == .instructionsPerRequest ? grouped(Int(v.rounded())) : micros(v)
        }
        if e.count < 2 { return f(e.mean) }
        return "\(f(e.mean)) (\(f(e.lower))–\(f(e.upper)))"
    }

    /// "1.121 [1.080, 1.160] ▲".
    static func estimate(_ e: RatioEstimate) -> String {
        guard e.lower.isFinite, e.upper.isFinite else { return "\(ratio(e.ratio)) (n<2)" }
        let mark = e.significant ? (e.ratio > 1 ? " ▲" : " ▼") : ""
        return "\(ratio(e.ratio)) [\(ratio(e.lower)), \(ratio(e.upper))]\(mark)"
    }

    /// A change in percent with its CI: "+12% [+8.0%, +16%] ▲".
    static func change(_ e: RatioEstimate) -> String {
        guard e.lower.isFinite, e.upper.isFinite else { return "\(percent(e.ratio - 1)) (n<2)" }
        let mark = e.significant ? (e.ratio > 1 ? " ▲" : " ▼") : ""
        return "\(percent(e.ratio - 1)) [\(percent(e.lower - 1)), \(percent(e.upper - 1))]\(mark)"
    }

    /// Points found on one side only: the first few, then a count.
    static func unmatchedLines(_ unmatched: [String]) -> String {
        let shown = unmatched.count > 8 ? 5 : unmatched.count
        var out = unmatched.prefix(shown).map { "\n- unmatched: \($0)" }.joined()
        if unmatched.count > shown { out += "\n- … and \(unmatched.count - shown) more points found on one side only" }
        return out
    }

    /// Escapes `|` for a Markdown table cell.
    static func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
}

extension Comparison {
    /// The comparison as a Markdown table: one row per series and connection count (and an
    /// "all" row per series), one column per metric with B/A and its CI.
    public func markdown() -> String {
        var out = "### ballast compare\n\n"
        out += "A = `\(baselineName)`, B = `\(candidateName)`"
        if let ref = options.normalizeBy { out += "; every figure divided by `\(ref)`'s in the same run first" }
        out += ".\n\nRatio B/A of the mean over repetitions with its \(Int(options.level * 100))% bootstrap CI; "
        out += "▲/▼ the CI excludes 1 (significant). For QPS above 1 is better, for latencies below 1. "
        out += "Rows \"all\": geometric mean over the connection counts.\n\n"
        let metrics = options.metrics
        out += "| series | connections | reps A/B | " + metrics.map { "\($0.title) B/A" }.joined(separator: " | ") + " |\n"
        out += "|---|--:|--:|" + metrics.map { _ in "---" }.joined(separator: "|") + "|\n"
        var keys: [(String, Int?)] = []
        var seen = Set<String>()
        for r in rows where seen.insert("\(r.series)|\(r.connections ?? -1)").inserted { keys.append((r.series, r.connections)) }
        // Points in connection order, the "all" row last in each series.
        var bySeries: [String: [(String, Int?)]] = [:]
        var order: [String] = []
        for k in keys { if bySeries[k.0] == nil { order.append(k.0) }; bySeries[k.0, default: []].append(k) }
        for s in order {
            for (series, c) in bySeries[s]!.sorted(by: { ($0.1 ?? Int.max) < ($1.1 ?? Int.max) }) {
                let cells = rows.filter { $0.series == series && $0.connections == c }
                let reps = cells.first.map { "\($0.repetitionsA)/\($0.repetitionsB)" } ?? ""
                out += "| \(Fmt.cell(series)) | \(c.map(String.init) ?? "all (\(cells.first?.pointCount ?? 0))") | \(reps) | "
                out += metrics.map { m in cells.first { $0.metric == m }?.estimate.map(Fmt.estimate) ?? "—" }.joined(separator: " | ")
                out += " |\n"
            }
        }
        if rows.isEmpty { out += "\nNo point is in both sets.\n" }
        out += Fmt.unmatchedLines(unmatched)
        for n in notes { out += "\n- \(n)" }
        if !unmatched.isEmpty || !notes.isEmpty { out += "\n" }
        return out
    }
}

extension GateResult {
    /// The judged rows as a Markdown table with a verdict per row, headed by the overall verdict.
    public func markdown() -> String {
        let c = comparison
        let threshold = String(format: "%g%%", options.maxRegression * 100)
        var out = "### ballast gate: \(passed ? "pass" : "FAIL")\n\n"
        if passed {
            out += "No significant regression larger than \(threshold).\n\n"
        } else {
            out += "\(failures.count) regression\(failures.count == 1 ? "" : "s") larger than \(threshold) with a 95% CI that excludes no change.\n\n"
        }
        out += "A (baseline) = `\(c.baselineName)`, B (candidate) = `\(c.candidateName)`"
        if let ref = c.options.normalizeBy { out += "; figures divided by `\(ref)`'s in the same run" }
        out += ". Judged: \(options.perPoint ? "every point and " : "")each series' geometric mean over its connection counts"
        out += options.perPoint ? ".\n\n" : " (`--per-point` or `ballast compare` for each point).\n\n"
        out += "| series | connections | metric | A | B | B/A [95% CI] | change | verdict |\n"
        out += "|---|--:|---|--:|--:|---|--:|---|\n"
        for r in judged {
            let a = r.baseline.map { Fmt.value($0.mean, r.metric, normalized: c.normalized) } ?? "—"
            let b = r.candidate.map { Fmt.value($0.mean, r.metric, normalized: c.normalized) } ?? "—"
            let conns = r.connections.map(String.init) ?? "all (\(r.pointCount))"
            let est = r.estimate.map(Fmt.estimate) ?? "—"
            let change = r.estimate.map { Fmt.percent($0.ratio - 1) } ?? "—"
            out += "| \(Fmt.cell(r.series)) | \(conns) | \(r.metric.title) | \(a) | \(b) | \(est) | \(change) | \(verdict(r)) |\n"
        }
        if judged.isEmpty { out += "\nNo point is in both sets.\n" }
        out += Fmt.unmatchedLines(c.unmatched)
        for n in c.notes { out += "\n- \(n)" }
        if !c.unmatched.isEmpty || !c.notes.isEmpty { out += "\n" }
        return out
    }

    func verdict(_ r: ComparisonRow) -> String {
        guard let e = r.estimate else { return "no data" }
        guard e.lower.isFinite, e.upper.isFinite else { return "too few repetitions" }
        if r.isRegression(threshold: options.maxRegression) { return "**REGRESSION**" }
        guard e.significant, let reg = r.regression else { return "no significant change" }
        return reg > 0 ? "regression within threshold" : "improvement"
    }
}
