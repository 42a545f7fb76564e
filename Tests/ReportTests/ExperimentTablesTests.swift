import Foundation
import XCTest
@testable import Report

/// The experiment's pair tables, the run-settings line, and per-worker charts for systems that
/// count no requests per worker (Envoy).
final class ExperimentTablesTests: XCTestCase {
    func renderWithManifest(_ points: [PointResult], edit: (inout Manifest) -> Void) throws -> RenderedReport {
        let dir = try temporaryDirectory(self)
        try writeRun(points, to: dir)
        let path = (dir as NSString).appendingPathComponent("manifest.json")
        var manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        edit(&manifest)
        try manifest.write(to: path)
        return try ReportWriter.render(try ResultSet.load(dir))
    }

    func testPairTablesAndRunSettingsAreShown() throws {
        let report = try renderWithManifest(fixtureRun()) { m in
            m.tables = [ComparisonTableSpec(title: "balanced vs default", pairs: [["balanced", "default"]])]
            m.runSettings = RunSettings(durationNanos: 3_000_000_000, warmupNanos: 1_000_000_000, repetitions: 3,
                                        fileDurationNanos: 30_000_000_000, fileRepetitions: 3, quick: false)
        }
        let md = report.summaryMarkdown
        XCTAssertTrue(md.contains("Run: 3 repetitions x 3 s per point after 1 s warm-up (the experiment file: 3 x 30 s)."), md)
        XCTAssertTrue(md.contains("### balanced vs default"), md)
        // balanced: 1.25x the QPS and 0.8x every latency (mean included) of default.
        let row = try XCTUnwrap(md.split(separator: "\n").first { $0.hasPrefix("| balanced | default |") })
        let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertTrue(cells[2].hasPrefix("+25% [") && cells[2].hasSuffix("▲"), cells[2])
        for i in 3...6 { XCTAssertTrue(cells[i].hasPrefix("-20% [") && cells[i].hasSuffix("▼"), cells[i]) }
        XCTAssertTrue(report.html.contains("<h2>balanced vs default</h2>"))
        XCTAssertTrue(report.html.contains("the experiment file: 3 x 30 s"))
    }

    func testSameSettingsAsTheFileSayNothingExtra() {
        let s = RunSettings(durationNanos: 500_000_000, warmupNanos: 0, repetitions: 1, fileDurationNanos: 500_000_000, fileRepetitions: 1, quick: false)
        XCTAssertEqual(s.sentence, "1 repetition x 0.5 s per point")
    }

    func testNoPerWorkerRequestCountsMeansNoRequestCharts() throws {
        // Envoy: accepted connections per worker, requests 0 everywhere.
        var points: [PointResult] = []
        for r in 1...2 {
            for c in [4, 8] {
                points.append(fixturePoint(variant: "envoy", connections: c, repetition: r, qps: 1000, p50: 0.001, p90: 0.002, p99: 0.004,
                                           workers: [(c, 0), (0, 0)]))
            }
        }
        let report = try ReportWriter.render(try { () -> ResultSet in
            let dir = try temporaryDirectory(self)
            try writeRun(points, to: dir)
            return try ResultSet.load(dir)
        }())
        let names = report.charts.map(\.name)
        XCTAssertTrue(names.contains("workers-envoy-connections.svg"), "\(names)")
        XCTAssertFalse(names.contains("workers-envoy-requests.svg"), "\(names)")
        XCTAssertTrue(report.html.contains("<td>—</td><td>—</td></tr>"))
    }
}
