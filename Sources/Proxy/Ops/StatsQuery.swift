import Foundation

/// `/stats` and `/stats/prometheus` query parameters as Envoy reads them: `filter=REGEX` keeps
/// the stats whose name the regular expression matches anywhere (RE2 partial match, as Envoy),
/// `usedonly` keeps the stats that have been
/// written (non-zero counters and gauges, histograms with samples), `format=json|prometheus`.
struct StatsQuery {
    var filter: RE2Regex?
    var usedOnly = false
    var format: String?

    struct BadFilter: Error, CustomStringConvertible {
        let description: String
    }

    init(_ query: String) throws {
        for part in query.split(separator: "&") {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(pieces[0])
            let value = pieces.count > 1 ? (String(pieces[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(pieces[1])) : ""
            switch key {
            case "filter":
                guard !value.isEmpty else { continue }
                do { filter = try RE2Regex(value) } catch { throw BadFilter(description: "Invalid re2 regex: \(error.description)") }
            case "usedonly": usedOnly = true
            case "format": format = value
            default: break
            }
        }
    }

    func keeps(_ name: String) -> Bool {
        guard let filter else { return true }
        return filter.partialMatch(name)
    }
}

extension ProxyStatsSnapshot {
    func filtered(_ q: StatsQuery) -> ProxyStatsSnapshot {
        guard q.filter != nil || q.usedOnly else { return self }
        var out = self
        // Envoy marks a gauge used once it was ever set; here a zero gauge counts as used when a
        // counter beside it (same name prefix) moved, i.e. the component has seen traffic.
        var activePrefixes: Set<Substring> = []
        if q.usedOnly {
            for v in values where v.kind == .counter && v.value != 0 {
                if let dot = v.name.lastIndex(of: ".") { activePrefixes.insert(v.name[..<dot]) }
            }
        }
        func used(_ v: Value) -> Bool {
            if v.value != 0 { return true }
            guard v.kind == .gauge, let dot = v.name.lastIndex(of: ".") else { return false }
            return activePrefixes.contains(v.name[..<dot])
        }
        out.values = values.filter { q.keeps($0.name) && (!q.usedOnly || used($0)) }
        out.textReadouts = textReadouts.filter { q.keeps($0.name) && (!q.usedOnly || !$0.value.isEmpty) }
        out.histograms = histograms.filter { q.keeps($0.name) && (!q.usedOnly || $0.merged.count > 0) }
        return out
    }
}
