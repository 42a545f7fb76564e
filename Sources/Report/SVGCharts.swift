import Foundation

/// Escapes text for XML content and attribute values.
func xmlEscape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for ch in s {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(ch)
        }
    }
    return out
}

/// Colour-blind-safe series colours (Okabe & Ito), then a few darker extras.
let seriesColors = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B",
                    "#7F7F7F", "#BCBD22", "#17BECF", "#9467BD"]
/// Dash patterns, cycled after the colours so that 13+ series stay distinct.
let seriesDashes = ["", "6 3", "2 3", "8 3 2 3"]

/// A tiny SVG writer: elements appended as text, rendered with a fixed style sheet.
struct SVGCanvas {
    var width: Double
    var height: Double
    var body: [String] = []

    init(width: Double, height: Double) { self.width = width; self.height = height }

    static func n(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    mutating func raw(_ s: String) { body.append(s) }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, cls: String, extra: String = "") {
        body.append("<line class=\"\(cls)\" x1=\"\(Self.n(x1))\" y1=\"\(Self.n(y1))\" x2=\"\(Self.n(x2))\" y2=\"\(Self.n(y2))\"\(extra)/>")
    }

    mutating func text(_ s: String, x: Double, y: Double, cls: String, anchor: String = "start", extra: String = "") {
        body.append("<text class=\"\(cls)\" x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" text-anchor=\"\(anchor)\"\(extra)>\(xmlEscape(s))</text>")
    }

    func render(title: String) -> String {
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.n(width))\" height=\"\(Self.n(height))\" "
        out += "viewBox=\"0 0 \(Self.n(width)) \(Self.n(height))\" role=\"img\" aria-label=\"\(xmlEscape(title))\">\n"
        out += "<title>\(xmlEscape(title))</title>\n"
        out += """
        <style>
        text { font-family: 'DejaVu Sans', 'Helvetica Neue', Arial, sans-serif; fill: #222; }
        .title { font-size: 16px; font-weight: bold; }
        .subtitle { font-size: 11.5px; fill: #555; }
        .axis-label { font-size: 13px; }
        .tick { font-size: 11.5px; fill: #333; }
        .legend { font-size: 12px; }
        .note { font-size: 10.5px; fill: #555; }
        .grid { stroke: #e3e3e3; stroke-width: 1; }
        .axis { stroke: #555; stroke-width: 1; }
        .ref { stroke: #666; stroke-width: 1.2; stroke-dasharray: 5 4; }
        </style>
        <rect x="0" y="0" width="\(Self.n(width))" height="\(Self.n(height))" fill="#ffffff"/>

        """
        out += body.joined(separator: "\n")
        out += "\n</svg>\n"
        return out
    }
}

/// Axis scales and their ticks.
enum Scale {
    /// Tick step for a range: 1, 2, 2.5 or 5 times a power of ten, about `count` ticks.
    static func niceStep(_ range: Double, count: Int) -> Double {
        guard range > 0, range.isFinite else { return 1 }
        let raw = range / Double(max(1, count))
        let p = pow(10, floor(log10(raw)))
        for m in [1.0, 2, 2.5, 5, 10] where m * p >= raw { return m * p }
        return 10 * p
    }

    /// Linear ticks from 0 (or below the data) to at least `maxValue`.
    static func linearTicks(min lo: Double, max hi: Double, count: Int = 6) -> [Double] {
        let hi = hi > lo ? hi : lo + 1
        let step = niceStep(hi - lo, count: count)
        var t = floor(lo / step) * step
        var out: [Double] = []
        while t < hi + step * 0.999 && out.count < 50 {
            out.append(abs(t) < step * 1e-9 ? 0 : t)
            if t >= hi { break }
            t += step
        }
        return out
    }

    /// 1-2-5 ticks per decade between lo and hi (both > 0); only powers of ten when that is plenty.
    static func logTicks(min lo: Double, max hi: Double) -> [Double] {
        var out: [Double] = []
        var e = floor(log10(lo))
        while pow(10, e) <= hi * 1.0001 && out.count < 100 {
            for m in [1.0, 2, 5] {
                let v = m * pow(10, e)
                if v >= lo * 0.9999 && v <= hi * 1.0001 { out.append(v) }
            }
            e += 1
        }
        if out.count > 9 { out = out.filter { abs(log10($0) - log10($0).rounded()) < 1e-9 } }
        return out
    }
}

/// One line of a line chart: a mean per x with a min..max spread from repetitions.
public struct ChartSeries: Sendable {
    public var name: String
    public var points: [ChartPoint]
    public init(name: String, points: [ChartPoint]) { self.name = name; self.points = points }
}

public struct ChartPoint: Sendable {
    public var x: Double
    public var mean: Double
    public var low: Double
    public var high: Double
    public var count: Int
    public init(x: Double, mean: Double, low: Double, high: Double, count: Int) {
        self.x = x; self.mean = mean; self.low = low; self.high = high; self.count = count
    }
}

/// A line chart against a log2 x axis (connections).
public struct LineChart: Sendable {
    public enum YScale: Sendable { case linearFromZero, log, auto }

    public var title: String
    public var subtitle: String
    public var xLabel: String
    public var yLabel: String
    public var series: [ChartSeries]
    public var yScale: YScale = .auto
    /// Formats a y tick (in the data's unit).
    public var yTick: @Sendable (Double) -> String
    /// Formats a value for tooltips, with its unit.
    public var yValue: @Sendable (Double) -> String
    public var width = 780.0
    public var height = 450.0

    public init(title: String, subtitle: String, xLabel: String, yLabel: String, series: [ChartSeries],
                yScale: YScale = .auto, yTick: @escaping @Sendable (Double) -> String, yValue: @escaping @Sendable (Double) -> String) {
        self.title = title; self.subtitle = subtitle; self.xLabel = xLabel; self.yLabel = yLabel
        self.series = series; self.yScale = yScale; self.yTick = yTick; self.yValue = yValue
    }

    public func svg() -> String {
        let width = max(self.width, 84 + Double(subtitle.count) * 6.4 + 12, 84 + Double(title.count) * 9.6 + 12)
        var c = SVGCanvas(width: width, height: height)
        let longest = series.map(\.name.count).max() ?? 8
        let legendWidth = min(260, max(130, Double(longest) * 7.2 + 44))
        let left = 84.0, right = legendWidth + 16, top = 62.0, bottom = 58.0
        let plotW = width - left - right, plotH = height - top - bottom

        c.text(title, x: left, y: 24, cls: "title")
        c.text(subtitle, x: left, y: 43, cls: "subtitle")

        let all = series.flatMap(\.points)
        let xs = all.map(\.x).filter { $0 > 0 }
        let lo2 = xs.min().map(log2) ?? 0, hi2 = xs.max().map(log2) ?? 1
        let pad = hi2 > lo2 ? 0.35 : 1
        let x0 = lo2 - pad, x1 = hi2 + pad
        func px(_ x: Double) -> Double { left + (log2(x) - x0) / (x1 - x0) * plotW }

        let highs = all.map { max($0.high, $0.mean) }.filter { $0.isFinite }
        let lows = all.map { min($0.low, $0.mean) }.filter { $0.isFinite && $0 > 0 }
        let maxY = highs.max() ?? 1, minY = lows.min() ?? maxY
        let useLog: Bool
        switch yScale {
        case .log: useLog = minY > 0
        case .linearFromZero: useLog = false
        case .auto: useLog = minY > 0 && maxY / minY > 40
        }
        let ticks: [Double]
        let y0: Double, y1: Double
        if useLog {
            let lo = pow(10, floor(log10(minY) * 4) / 4), hi = pow(10, ceil(log10(maxY) * 4) / 4)
            ticks = Scale.logTicks(min: lo, max: hi)
            y0 = log10(min(lo, ticks.first ?? lo)); y1 = log10(max(hi, ticks.last ?? hi))
        } else {
            ticks = Scale.linearTicks(min: 0, max: maxY > 0 ? maxY * 1.04 : 1)
            y0 = 0; y1 = ticks.last ?? 1
        }
        func py(_ y: Double) -> Double {
            let v = useLog ? log10(max(y, pow(10, y0))) : y
            return top + plotH - (v - y0) / (y1 - y0) * plotH
        }

        // Grid and y ticks.
        for t in ticks {
            let y = py(t)
            c.line(left, y, left + plotW, y, cls: "grid")
            c.text(yTick(t), x: left - 8, y: y + 4, cls: "tick", anchor: "end")
        }
        // x ticks at powers of two.
        var powers: [Int] = []
        var e = Int(ceil(x0))
        while Double(e) <= x1 { powers.append(e); e += 1 }
        let every = powers.count > 12 ? 2 : 1
        for (i, p) in powers.enumerated() {
            let x = px(pow(2, Double(p)))
            c.line(x, top, x, top + plotH, cls: "grid")
            c.line(x, top + plotH, x, top + plotH + 5, cls: "axis")
            if i % every == 0 || every == 1 {
                c.text(p >= 0 ? String(Int(pow(2, Double(p)))) : "1/\(Int(pow(2, Double(-p))))", x: x, y: top + plotH + 19, cls: "tick", anchor: "middle")
            }
        }
        c.line(left, top + plotH, left + plotW, top + plotH, cls: "axis")
        c.line(left, top, left, top + plotH, cls: "axis")
        c.text(xLabel, x: left + plotW / 2, y: height - 14, cls: "axis-label", anchor: "middle")
        let ly = top + plotH / 2
        var yTitle = yLabel
        if useLog { yTitle = yLabel.hasSuffix(")") ? String(yLabel.dropLast()) + ", log scale)" : yLabel + " (log scale)" }
        c.text(yTitle, x: 20, y: ly, cls: "axis-label", anchor: "middle", extra: " transform=\"rotate(-90 20 \(SVGCanvas.n(ly)))\"")

        // Series: band, error bars, line, markers.
        for (i, s) in series.enumerated() {
            let color = seriesColors[i % seriesColors.count]
            let dash = seriesDashes[(i / seriesColors.count) % seriesDashes.count]
            let pts = s.points.filter { $0.x > 0 && $0.mean.isFinite }.sorted { $0.x < $1.x }
            guard !pts.isEmpty else { continue }
            if pts.count > 1 && pts.contains(where: { $0.high > $0.low }) {
                let upper = pts.map { "\(SVGCanvas.n(px($0.x))),\(SVGCanvas.n(py($0.high)))" }
                let lower = pts.reversed().map { "\(SVGCanvas.n(px($0.x))),\(SVGCanvas.n(py($0.low)))" }
                c.raw("<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(color)\" fill-opacity=\"0.13\" stroke=\"none\"/>")
            }
            for p in pts where p.high > p.low {
                let x = px(p.x)
                let style = " stroke=\"\(color)\" stroke-width=\"1.3\""
                c.line(x, py(p.low), x, py(p.high), cls: "bar", extra: style)
                c.line(x - 4, py(p.low), x + 4, py(p.low), cls: "bar", extra: style)
                c.line(x - 4, py(p.high), x + 4, py(p.high), cls: "bar", extra: style)
            }
            let path = pts.map { "\(SVGCanvas.n(px($0.x))),\(SVGCanvas.n(py($0.mean)))" }.joined(separator: " ")
            c.raw("<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2.2\"\(dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\"") stroke-linejoin=\"round\"/>")
            for p in pts {
                let tip = "\(s.name), \(Int(p.x)) connections: \(yValue(p.mean))" + (p.count > 1 ? " (min \(yValue(p.low)), max \(yValue(p.high)), \(p.count) runs)" : "")
                c.raw(marker(i, x: px(p.x), y: py(p.mean), color: color, tip: tip))
            }
        }

        // Legend.
        let lx = left + plotW + 22
        var y = top + 8
        for (i, s) in series.enumerated() {
            let color = seriesColors[i % seriesColors.count]
            let dash = seriesDashes[(i / seriesColors.count) % seriesDashes.count]
            c.raw("<line x1=\"\(SVGCanvas.n(lx))\" y1=\"\(SVGCanvas.n(y))\" x2=\"\(SVGCanvas.n(lx + 26))\" y2=\"\(SVGCanvas.n(y))\" stroke=\"\(color)\" stroke-width=\"2.2\"\(dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\"")/>")
            c.raw(marker(i, x: lx + 13, y: y, color: color, tip: nil))
            c.text(s.name, x: lx + 34, y: y + 4, cls: "legend")
            y += 20
        }
        let maxRuns = all.map(\.count).max() ?? 1
        if maxRuns > 1 {
            y += 6
            c.text("line: mean of runs", x: lx, y: y, cls: "note")
            c.text("bars, band: min–max", x: lx, y: y + 14, cls: "note")
        }
        return c.render(title: title)
    }

    /// Circle, square, triangle, diamond, ... so series differ without colour too.
    func marker(_ i: Int, x: Double, y: Double, color: Color, tip: String?) -> String {
        let n = SVGCanvas.n
        let t = tip.map { "<title>\(xmlEscape($0))</title>" } ?? ""
        let open = "fill=\"\(color)\" stroke=\"#fff\" stroke-width=\"1\""
        switch i % 4 {
        case 0: return "<circle cx=\"\(n(x))\" cy=\"\(n(y))\" r=\"4.2\" \(open)>\(t)</circle>"
        case 1: return "<rect x=\"\(n(x - 3.8))\" y=\"\(n(y - 3.8))\" width=\"7.6\" height=\"7.6\" \(open)>\(t)</rect>"
        case 2: return "<polygon points=\"\(n(x)),\(n(y - 5)) \(n(x + 4.6)),\(n(y + 3.6)) \(n(x - 4.6)),\(n(y + 3.6))\" \(open)>\(t)</polygon>"
        default: return "<polygon points=\"\(n(x)),\(n(y - 5)) \(n(x + 5)),\(n(y)) \(n(x)),\(n(y + 5)) \(n(x - 5)),\(n(y))\" \(open)>\(t)</polygon>"
        }
    }
}

typealias Color = String

/// Grouped bars: one group per connection count, one bar per worker.
public struct BarChart: Sendable {
    public struct Group: Sendable {
        public var label: String
        public var values: [Double]
        /// Lines of small text under the group's label (imbalance figures).
        public var notes: [String]
        public init(label: String, values: [Double], notes: [String]) { self.label = label; self.values = values; self.notes = notes }
    }

    public var title: String
    public var subtitle: String
    public var xLabel: String
    public var yLabel: String
    public var barNames: [String]
    public var groups: [Group]
    /// A dashed horizontal line (the fair share) and its label.
    public var reference: (value: Double, label: String)?
    public var yTick: @Sendable (Double) -> String
    public var height = 430.0

    public init(title: String, subtitle: String, xLabel: String, yLabel: String, barNames: [String], groups: [Group],
                reference: (value: Double, label: String)?, yTick: @escaping @Sendable (Double) -> String) {
        self.title = title; self.subtitle = subtitle; self.xLabel = xLabel; self.yLabel = yLabel
        self.barNames = barNames; self.groups = groups; self.reference = reference; self.yTick = yTick
    }

    public func svg() -> String {
        let legendWidth = 110.0
        let left = 84.0, right = legendWidth + 16, top = 62.0
        let noteLines = Double(groups.map(\.notes.count).max() ?? 0)
        let bottom = 50.0 + noteLines * 13
        let groupW = max(62.0, Double(barNames.count) * 9 + 20)
        let width = max(680, left + right + Double(groups.count) * groupW, left + Double(subtitle.count) * 6.4 + 12, left + Double(title.count) * 9.6 + 12)
        let plotW = width - left - right, plotH = height - top - bottom
        var c = SVGCanvas(width: width, height: height)
        c.text(title, x: left, y: 24, cls: "title")
        c.text(subtitle, x: left, y: 43, cls: "subtitle")

        let maxV = max(groups.flatMap(\.values).max() ?? 1, (reference?.value ?? 0) * 1.15)
        let ticks = Scale.linearTicks(min: 0, max: maxV * 1.05)
        let yMax = ticks.last ?? 1
        func py(_ v: Double) -> Double { top + plotH - v / yMax * plotH }
        for t in ticks {
            c.line(left, py(t), left + plotW, py(t), cls: "grid")
            c.text(yTick(t), x: left - 8, y: py(t) + 4, cls: "tick", anchor: "end")
        }
        let slot = plotW / Double(max(1, groups.count))
        for (g, group) in groups.enumerated() {
            let gx = left + Double(g) * slot
            let inner = slot * 0.78
            let barW = inner / Double(max(1, group.values.count))
            for (i, v) in group.values.enumerated() {
                let x = gx + (slot - inner) / 2 + Double(i) * barW
                let color = seriesColors[i % seriesColors.count]
                let name = i < barNames.count ? barNames[i] : "bar \(i)"
                c.raw("<rect x=\"\(SVGCanvas.n(x + 0.5))\" y=\"\(SVGCanvas.n(py(v)))\" width=\"\(SVGCanvas.n(max(1, barW - 1)))\" height=\"\(SVGCanvas.n(max(0, py(0) - py(v))))\" fill=\"\(color)\"><title>\(xmlEscape("\(group.label) connections, \(name): \(yTick(v))"))</title></rect>")
            }
            c.line(gx + slot / 2, top + plotH, gx + slot / 2, top + plotH + 5, cls: "axis")
            c.text(group.label, x: gx + slot / 2, y: top + plotH + 19, cls: "tick", anchor: "middle")
            for (k, note) in group.notes.enumerated() {
                c.text(note, x: gx + slot / 2, y: top + plotH + 33 + Double(k) * 13, cls: "note", anchor: "middle")
            }
        }
        if let reference {
            c.line(left, py(reference.value), left + plotW, py(reference.value), cls: "ref")
        }
        c.line(left, top + plotH, left + plotW, top + plotH, cls: "axis")
        c.line(left, top, left, top + plotH, cls: "axis")
        c.text(xLabel, x: left + plotW / 2, y: height - 12, cls: "axis-label", anchor: "middle")
        let ly = top + plotH / 2
        c.text(yLabel, x: 20, y: ly, cls: "axis-label", anchor: "middle", extra: " transform=\"rotate(-90 20 \(SVGCanvas.n(ly)))\"")
        let lx = left + plotW + 22
        for (i, name) in barNames.enumerated() {
            let y = top + 8 + Double(i) * 19
            c.raw("<rect x=\"\(SVGCanvas.n(lx))\" y=\"\(SVGCanvas.n(y - 6))\" width=\"12\" height=\"12\" fill=\"\(seriesColors[i % seriesColors.count])\"/>")
            c.text(name, x: lx + 18, y: y + 4, cls: "legend")
        }
        if let reference {
            let y = top + 8 + Double(barNames.count) * 19 + 8
            c.line(lx, y, lx + 22, y, cls: "ref")
            c.text(reference.label, x: lx, y: y + 17, cls: "note")
        }
        return c.render(title: title)
    }
}
