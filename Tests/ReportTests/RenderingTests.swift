import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import Report

final class RenderingTests: XCTestCase {
    /// Parses `text` as XML; returns the element names, or fails with the parser's error.
    func parseXML(_ text: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        final class Collector: NSObject, XMLParserDelegate {
            var elements: [String] = []
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                elements.append(name)
            }
        }
        let parser = XMLParser(data: Data(text.utf8))
        let collector = Collector()
        parser.delegate = collector
        let ok = parser.parse()
        XCTAssertTrue(ok, "\(name) is not well-formed XML: \(String(describing: parser.parserError))", file: file, line: line)
        return collector.elements
    }

    func render(_ points: [PointResult], baseline: String? = nil) throws -> (String, RenderedReport) {
        let dir = try temporaryDirectory(self)
        try writeRun(points, to: dir)
        let set = try ResultSet.load(dir)
        let out = (dir as NSString).appendingPathComponent("report")
        let report = try ReportWriter.write(set, to: out, options: ReportOptions(baseline: baseline))
        return (out, report)
    }

    func testReportFilesAreWrittenAndChartsAreXML() throws {
        let (out, report) = try render(fixtureRun())
        let fm = FileManager.default
        for name in ["report.html", "summary.md", "points.csv", "charts/qps.svg", "charts/mean.svg", "charts/tp50.svg", "charts/tp90.svg", "charts/tp99.svg",
                     "charts/imbalance-connections.svg", "charts/imbalance-requests.svg",
                     "charts/workers-default-connections.svg", "charts/workers-balanced-requests.svg"] {
            XCTAssertTrue(fm.fileExists(atPath: (out as NSString).appendingPathComponent(name)), name)
        }
        XCTAssertEqual(report.charts.count, 5 + 2 + 4)
        for chart in report.charts {
            let elements = parseXML(chart.svg, chart.name)
            XCTAssertEqual(elements.first, "svg", chart.name)
            XCTAssertTrue(elements.contains("text"), chart.name)
        }
        // A line per variant, with a legend entry naming it.
        let qps = try XCTUnwrap(report.charts.first { $0.name == "qps.svg" }?.svg)
        XCTAssertEqual(qps.components(separatedBy: "<polyline").count - 1, 2)
        XCTAssertTrue(qps.contains(">default</text>") && qps.contains(">balanced</text>"))
        XCTAssertTrue(qps.contains("Throughput (requests/s)") && qps.contains("Connections (log₂ scale)"))
        for tick in ["2", "4", "8", "16", "32", "64"] { XCTAssertTrue(qps.contains(">\(tick)</text>"), "x tick \(tick)") }
        XCTAssertTrue(try XCTUnwrap(report.charts.first { $0.name == "tp90.svg" }?.svg).contains("TP90 latency (ms"))

        // The HTML carries every chart inline and fetches nothing.
        let html = report.html
        for chart in report.charts { XCTAssertTrue(html.contains(chart.svg), chart.name) }
        for pattern in ["src=", "<link", "<script", "@import", "url("] { XCTAssertFalse(html.contains(pattern), pattern) }
        let withoutNamespace = html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
        XCTAssertFalse(withoutNamespace.contains("http://") || withoutNamespace.contains("https://"))
        XCTAssertTrue(html.contains("6.8.0-test") && html.contains("block:200us"), "environment shown")
    }

    func testSummaryTableNumbersEqualTheInputs() throws {
        let points = fixtureRun()
        let (_, report) = try render(points)
        let md = report.summaryMarkdown
        // default at 2 connections: QPS 10,200 x (1, 1.01, 0.99) -> mean 10,200; TP50 0.2 ms; TP90 0.6 ms; TP99 1.6 ms.
        let row = try XCTUnwrap(md.split(separator: "\n").first { $0.hasPrefix("| default | 2 |") })
        let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(cells[2], "3")
        XCTAssertTrue(cells[3].hasPrefix("10,200 ("), cells[3])
        XCTAssertTrue(cells[4].hasPrefix("0.220 ("), cells[4])   // mean latency: the fixture's avg is 1.1 x TP50
        XCTAssertTrue(cells[5].hasPrefix("0.200 ("), cells[5])
        XCTAssertTrue(cells[6].hasPrefix("0.600 ("), cells[6])
        XCTAssertTrue(cells[7].hasPrefix("1.60 ("), cells[7])
        XCTAssertTrue(cells[8].hasPrefix("2.40 ("), cells[8])    // TP99.9
        XCTAssertEqual(cells[9], "baseline")
        // balanced: exactly 1.25x the QPS and 0.8x the latencies of default -> +25% and -20%; with 3
        // pairs per point (below the single-point minimum of 4) the point is not marked, the
        // geometric mean over the 6 connection counts is.
        let b = try XCTUnwrap(md.split(separator: "\n").first { $0.hasPrefix("| balanced | 64 |") })
        let bc = b.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertTrue(bc[3].hasPrefix("20,500 ("), bc[3])   // (10,000 + 6,400) x 1.25
        XCTAssertTrue(bc[9].hasPrefix("+25% [") && !bc[9].contains("▲"), bc[9])
        XCTAssertTrue(bc[11].hasPrefix("-20% [") && !bc[11].contains("▼"), bc[11])
        XCTAssertTrue(md.contains("**balanced vs default**: QPS +25% ["), md)
        XCTAssertTrue(md.contains("Method: deltas against the baseline are the ratio per pair of interleaved runs"), md)
        XCTAssertTrue(md.contains("Run: 5.00 s measured per point; 3 runs per point."), md)
        XCTAssertTrue(md.contains("geometric mean over 6 connection counts"))

        // The model behind the table holds the inputs exactly.
        let r = try XCTUnwrap(report.rows.first { $0.series.variant == "default" && $0.connections == 8 })
        XCTAssertEqual(r.qps!.mean, 10_800, accuracy: 1e-9)
        XCTAssertEqual(r.p90!.mean, 8 * 0.0001 * 3, accuracy: 1e-15)
        XCTAssertEqual(r.errors, 0)
        let d = try XCTUnwrap(report.rows.first { $0.series.variant == "balanced" && $0.connections == 8 }?.deltas[.qps])
        XCTAssertEqual(d.ratio, 1.25, accuracy: 1e-12)

        // Worker balance: default at 8 connections accepted 7 and 2 -> max/mean 7/4.5, Jain 81/106.
        let w = try XCTUnwrap(report.balance.first { $0.series.variant == "default" && $0.connections == 8 })
        XCTAssertEqual(w.connectionsMaxOverMean, 7 / 4.5, accuracy: 1e-12)
        XCTAssertEqual(w.connectionsJain, 81.0 / 106.0, accuracy: 1e-12)
        XCTAssertEqual(w.connectionShares[0], 700.0 / 9, accuracy: 1e-9)
        let even = try XCTUnwrap(report.balance.first { $0.series.variant == "balanced" && $0.connections == 8 })
        XCTAssertEqual(even.connectionsJain, 1)
        XCTAssertEqual(even.requestsMaxOverMean, 1, accuracy: 1e-9)
    }

    func testCSVHoldsEveryPointAsRecorded() throws {
        let points = fixtureRun(connections: [2, 16])
        let (_, report) = try render(points)
        let lines = report.csv.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 1 + points.count)
        let header = lines[0].split(separator: ",").map(String.init)
        let col = { (name: String) in header.firstIndex(of: name)! }
        for line in lines.dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let p = try XCTUnwrap(points.first {
                $0.variant == f[col("variant")] && $0.axes["connections"]?.description == f[col("connections")]
                    && $0.axes["repetition"]?.description == f[col("repetition")]
            })
            XCTAssertEqual(Double(f[col("qps")]), p.actualQPS)
            XCTAssertEqual(Double(f[col("p90_ms")])!, p.durationHistogram.value(atPercentile: 90)! * 1000, accuracy: 1e-12)
            XCTAssertEqual(Double(f[col("p99.9_ms")])!, p.durationHistogram.value(atPercentile: 99.9)! * 1000, accuracy: 1e-12)
            XCTAssertEqual(Int(f[col("requests")]), p.durationHistogram.count)
            XCTAssertEqual(Int(f[col("workers")]), 2)
            XCTAssertEqual(Double(f[col("duration_s")]), 5)
        }
    }

    func testSeriesAxesSplitAVariantAndOddInputRenders() throws {
        // io varies within each variant -> a series per (variant, io); one run per point, no workers.
        var points: [PointResult] = []
        for io in ["epoll", "io_uring"] {
            for c in [1, 1024] {
                for v in ["shared", "least-loaded"] {
                    points.append(fixturePoint(variant: v, connections: c, repetition: 1, qps: c == 1 ? 900 : 45_000,
                                               p50: c == 1 ? 0.00005 : 0.02, p90: c == 1 ? 0.0001 : 0.05, p99: c == 1 ? 0.0002 : 0.4,
                                               axes: ["io": .string(io), "label": .string("a<b & \"c\"")]))
                }
            }
        }
        let (_, report) = try render(points, baseline: "shared")
        XCTAssertEqual(Set(report.rows.map(\.series.description)),
                       ["shared (io=epoll)", "shared (io=io_uring)", "least-loaded (io=epoll)", "least-loaded (io=io_uring)"])
        for chart in report.charts { _ = parseXML(chart.svg, chart.name) }
        // One run per point: deltas without an interval, never "significant".
        let row = try XCTUnwrap(report.rows.first { $0.series.description == "least-loaded (io=epoll)" && $0.connections == 1 })
        XCTAssertEqual(row.deltas[.qps]?.ratio, 1)
        XCTAssertEqual(row.deltas[.qps]?.significant, false)
        XCTAssertTrue(report.summaryMarkdown.contains("(n<2)"))
        // Latency spanning 3 decades gets a log axis.
        XCTAssertTrue(try XCTUnwrap(report.charts.first { $0.name == "tp99.svg" }).svg.contains(">100</text>"))
    }

    func testUnknownBaselineIsAnError() throws {
        let dir = try temporaryDirectory(self)
        try writeRun(fixtureRun(connections: [2]), to: dir)
        XCTAssertThrowsError(try ReportWriter.render(ResultSet.load(dir), options: ReportOptions(baseline: "nope"))) { error in
            XCTAssertTrue("\(error)".contains("nope") && "\(error)".contains("default"), "\(error)")
        }
    }

    func testTicks() {
        XCTAssertEqual(Scale.linearTicks(min: 0, max: 21_000), [0, 5000, 10_000, 15_000, 20_000, 25_000])
        // Ticks are multiples of 0.2 up to the first one at or above the maximum; compared with a
        // tolerance (the exact binary value of 3 x 0.2 is an accident of floating point).
        let ticks = Scale.linearTicks(min: 0, max: 0.93)
        XCTAssertEqual(ticks.count, 6, "\(ticks)")
        for (tick, expected) in zip(ticks, [0, 0.2, 0.4, 0.6, 0.8, 1.0]) { XCTAssertEqual(tick, expected, accuracy: 1e-9) }
        XCTAssertEqual(Scale.logTicks(min: 0.05, max: 60), [0.1, 1, 10])
        XCTAssertEqual(Scale.logTicks(min: 1, max: 30), [1, 2, 5, 10, 20])
        XCTAssertEqual(ReportWriter.qpsTick(12_500), "12.5k")
        XCTAssertEqual(ReportWriter.msTick(0.25), "0.25")
        XCTAssertEqual(Fmt.grouped(1_234_567), "1,234,567")
        XCTAssertEqual(Fmt.percent(-0.2), "-20%")
        XCTAssertEqual(Fmt.percent(0.031), "+3.1%")
    }
}

/// Live-rebalancing move counts: read from `/workers` as the server names them, kept in the point
/// file through a write and a load, and shown as the mean connections moved per point.
final class MoveCountTests: XCTestCase {
    func testMovesAreReadFromWorkersJSONAndKeptInPointFiles() throws {
        let workersJSON = """
        [{"worker": 0, "accepted": 9, "active": 7, "requests": 120, "busy_ns": 5, "moves_out": 3, "moves_in": 0, "move_refusals": 1},
         {"worker": 1, "accepted": 3, "active": 5, "requests": 80, "moves_out": 0, "moves_in": 3, "move_refusals": 0}]
        """
        let figures = try JSONDecoder().decode([WorkerFigures].self, from: Data(workersJSON.utf8))
        XCTAssertEqual(figures.map(\.movesOut), [3, 0])
        XCTAssertEqual(figures.map(\.movesIn), [0, 3])
        XCTAssertEqual(figures.map(\.moveRefusals), [1, 0])
        let encoded = try JSONEncoder().encode(figures)
        XCTAssertEqual(try JSONDecoder().decode([WorkerFigures].self, from: encoded), figures)
        // Older point files have no moves: nil, not 0.
        let old = try JSONDecoder().decode(WorkerFigures.self, from: Data(#"{"worker": 0, "accepted": 1, "active": 1, "requests": 2}"#.utf8))
        XCTAssertNil(old.movesOut)
        XCTAssertThrowsError(try JSONDecoder().decode(WorkerFigures.self, from: Data(#"{"worker": 0, "accepted": 1, "active": 1, "requests": 2, "moves_out": -1}"#.utf8)))
    }

    func testReportShowsTheMeanMovesPerPoint() throws {
        var points: [PointResult] = []
        for (rep, moved) in [(1, 3), (2, 5)] {
            var p = fixturePoint(variant: "rebalanced", connections: 8, repetition: rep, qps: 1000, p50: 0.001, p90: 0.002, p99: 0.003,
                                 workers: [(accepted: 5, requests: 100), (accepted: 3, requests: 100)])
            p.workers![0].movesOut = moved
            p.workers![1].movesIn = moved
            p.workers![1].movesOut = 0
            points.append(p)
        }
        points.append(fixturePoint(variant: "plain", connections: 8, repetition: 1, qps: 900, p50: 0.001, p90: 0.002, p99: 0.003,
                                   workers: [(accepted: 6, requests: 100), (accepted: 2, requests: 100)]))
        let dir = try temporaryDirectory(self)
        try writeRun(points, to: dir)
        let set = try ResultSet.load(dir)
        let report = try ReportWriter.write(set, to: (dir as NSString).appendingPathComponent("report"), options: ReportOptions())
        XCTAssertEqual(try XCTUnwrap(report.balance.first { $0.series.variant == "rebalanced" }).moves, 4)
        XCTAssertNil(try XCTUnwrap(report.balance.first { $0.series.variant == "plain" }).moves)
        XCTAssertTrue(report.html.contains("<th>connections moved</th>"))
        XCTAssertTrue(report.html.contains("<td>4.0</td>"), report.html)
    }
}
