import Foundation
import TestSupport
import XCTest
@testable import Report

/// `points` with QPS multiplied by `qps` and every latency by `latency`.
func scaled(_ points: [PointResult], qps: Double, latency: Double) -> [PointResult] {
    points.map { p in
        var q = p
        q.actualQPS *= qps
        q.durationHistogram.avg *= latency
        q.durationHistogram.percentiles = q.durationHistogram.percentiles.map { .init(percentile: $0.percentile, value: $0.value * latency) }
        return q
    }
}

/// The fixture with fresh multiplicative noise (σ = 2%) on every figure: a second run of the same build.
func rerun(_ points: [PointResult], seed: UInt64) -> [PointResult] {
    var rng = SeededRandom(seed: seed)
    return points.map { p in
        var q = p
        q.actualQPS *= exp(0.02 * rng.normal())
        let f = exp(0.02 * rng.normal())
        q.durationHistogram.percentiles = q.durationHistogram.percentiles.map { .init(percentile: $0.percentile, value: $0.value * f) }
        return q
    }
}

final class GateTests: XCTestCase {
    func runs(_ baseline: [PointResult], _ candidate: [PointResult]) throws -> (ResultSet, ResultSet, String, String) {
        let a = try temporaryDirectory(self), b = try temporaryDirectory(self)
        try writeRun(baseline, to: a)
        try writeRun(candidate, to: b)
        return (try ResultSet.load(a), try ResultSet.load(b), a, b)
    }

    func gate(_ a: ResultSet, _ b: ResultSet, metrics: [Metric] = [.qps, .p90], threshold: Double = 0.05, perPoint: Bool = false) -> GateResult {
        var o = ComparisonOptions()
        o.metrics = metrics
        var g = GateOptions()
        g.maxRegression = threshold
        g.perPoint = perPoint
        return Gate.evaluate(Compare.run(baseline: a, candidate: b, options: o), options: g)
    }

    func testCompareVariantsWithinOneRun() throws {
        let dir = try temporaryDirectory(self)
        try writeRun(fixtureRun(speedup: 1.25), to: dir)
        let set = try ResultSet.load(dir)
        var o = ComparisonOptions()
        o.baselineVariant = "default"
        o.candidateVariant = "balanced"
        let c = Compare.run(baseline: set, candidate: set, options: o)
        XCTAssertEqual(c.rows.count, (6 + 1) * 4)
        for row in c.rows {
            let e = try XCTUnwrap(row.estimate)
            XCTAssertEqual(e.ratio, row.metric == .qps ? 1.25 : 0.8, accuracy: 1e-9, "\(row.metric) at \(String(describing: row.connections))")
            // Variants of one run are paired; the fixture's 3 pairs are below the single-point minimum (4).
            XCTAssertEqual(e.method, .paired)
            XCTAssertEqual(e.significant, row.connections == nil, "\(row.metric) at \(String(describing: row.connections))")
        }
        let md = c.markdown()
        XCTAssertTrue(md.contains("| balanced vs default | 2 | 3/3 | 1.250 ["), md)
        XCTAssertTrue(md.contains("| balanced vs default | all (6) | 3/3 | 1.250 ["), md)
        XCTAssertTrue(md.contains("▲") && md.contains("▼"))
    }

    func testCompareAcrossRunsMatchesPoints() throws {
        let base = fixtureRun(connections: [2, 4, 8])
        let (a, b, _, _) = try runs(base, scaled(fixtureRun(connections: [4, 8, 16]), qps: 1.1, latency: 1))
        let c = Compare.run(baseline: a, candidate: b)
        XCTAssertEqual(Set(c.rows.compactMap(\.connections)), [4, 8])
        XCTAssertEqual(c.unmatched.count, 4)   // 2 and 16, per variant
        let row = try XCTUnwrap(c.rows.first { $0.series == "default" && $0.connections == 4 && $0.metric == .qps })
        XCTAssertEqual(row.estimate!.ratio, 1.1, accuracy: 1e-9)
        XCTAssertEqual(row.baseline!.mean, 10_400, accuracy: 1e-9)
        XCTAssertEqual(row.candidate!.mean, 11_440, accuracy: 1e-9)
        XCTAssertTrue(c.markdown().contains("only in baseline"))
    }

    func testTenPercentSlowdownFailsTheGate() throws {
        let base = rerun(fixtureRun(), seed: 1)
        let (a, b, _, _) = try runs(base, scaled(rerun(fixtureRun(), seed: 2), qps: 0.9, latency: 1.1))
        let result = gate(a, b)
        XCTAssertFalse(result.passed)
        XCTAssertEqual(result.exitCode, 1)
        XCTAssertEqual(Set(result.failures.map(\.metric)), [.qps, .p90])
        XCTAssertTrue(result.failures.allSatisfy { $0.connections == nil })
        let md = result.markdown()
        XCTAssertTrue(md.hasPrefix("### ballast gate: FAIL"), md)
        XCTAssertTrue(md.contains("**REGRESSION**"))
        // A threshold above the slowdown lets it pass: significant but tolerated.
        let tolerant = gate(a, b, threshold: 0.15)
        XCTAssertTrue(tolerant.passed)
        XCTAssertTrue(tolerant.markdown().contains("regression within threshold"))
    }

    func testSameBuildTwicePassesTheGate() throws {
        for seed in 0..<3 as Range<UInt64> {
            let (a, b, _, _) = try runs(rerun(fixtureRun(), seed: 100 + seed), rerun(fixtureRun(), seed: 200 + seed))
            let result = gate(a, b)
            XCTAssertTrue(result.passed, result.markdown())
            XCTAssertEqual(result.exitCode, 0)
        }
    }

    func testImprovementAndSmallRegressionPass() throws {
        let (a, b, _, _) = try runs(fixtureRun(), scaled(fixtureRun(), qps: 1.2, latency: 0.7))
        let better = gate(a, b)
        XCTAssertTrue(better.passed)
        XCTAssertTrue(better.markdown().contains("improvement"))
        let (c, d, _, _) = try runs(fixtureRun(), scaled(fixtureRun(), qps: 0.97, latency: 1.03))
        XCTAssertTrue(gate(c, d).passed)
    }

    func testNormalisedGateCancelsAFasterMachine() throws {
        // The candidate machine is 30% faster for every variant: absolute figures "improve",
        // but balanced lost 10% relative to default, measured side by side.
        let base = fixtureRun(speedup: 1.25)
        var cand = scaled(fixtureRun(speedup: 1.25), qps: 1.3, latency: 1 / 1.3)
        cand = cand.map { $0.variant == "balanced" ? scaled([$0], qps: 0.9, latency: 1 / 0.9)[0] : $0 }
        let (a, b, _, _) = try runs(base, cand)
        XCTAssertTrue(gate(a, b).passed)
        var o = ComparisonOptions()
        o.metrics = [.qps, .p90]
        o.normalizeBy = "default"
        let result = Gate.evaluate(Compare.run(baseline: a, candidate: b, options: o))
        XCTAssertFalse(result.passed, result.markdown())
        XCTAssertEqual(Set(result.failures.map(\.series)), ["balanced"])
        XCTAssertEqual(result.failures.first { $0.metric == .qps }!.estimate!.ratio, 0.9, accuracy: 1e-9)
    }

    /// The command normalises by the experiment's reference variant by default (the manifest's
    /// `reference`); `--normalize-by none` compares absolute figures.
    func testGateNormalisesByTheExperimentsReferenceByDefault() throws {
        let base = fixtureRun(speedup: 1.25)
        var cand = scaled(fixtureRun(speedup: 1.25), qps: 1.3, latency: 1 / 1.3)
        cand = cand.map { $0.variant == "balanced" ? scaled([$0], qps: 0.9, latency: 1 / 0.9)[0] : $0 }
        let (_, _, a, b) = try runs(base, cand)
        for dir in [a, b] {
            let path = (dir as NSString).appendingPathComponent("manifest.json")
            var manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            manifest.reference = "default"
            try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: path))
        }
        var r = try ballast(["gate", "--baseline", a, "--candidate", b])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("figures divided by `default`'s"), r.stdout)
        XCTAssertTrue(r.stderr.contains("normalising by the experiment's reference variant 'default'"), r.stderr)
        r = try ballast(["gate", "--baseline", a, "--candidate", b, "--normalize-by", "none"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
    }

    func testThresholdParsing() {
        XCTAssertEqual(Gate.parseThreshold("5%"), 0.05)
        XCTAssertEqual(Gate.parseThreshold("0.05"), 0.05)
        XCTAssertEqual(Gate.parseThreshold(" 12.5% "), 0.125)
        XCTAssertNil(Gate.parseThreshold("5"))
        XCTAssertNil(Gate.parseThreshold("-1%"))
        XCTAssertNil(Gate.parseThreshold("abc"))
        XCTAssertEqual(try Metric.parseList("qps, TP90,p99.9,mean"), [.qps, .p90, .p999, .avg])
        XCTAssertThrowsError(try Metric.parseList("qps,p42"))
    }

    // MARK: The command line (the `ballast` binary next to this test bundle, or BALLAST_BIN)

    func ballast(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let binary = ballastBinary()
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw TestSetupError("no ballast binary at \(binary)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testCommandLineExitCodes() throws {
        let (_, _, a, b) = try runs(rerun(fixtureRun(), seed: 1), rerun(fixtureRun(), seed: 2))
        let (_, _, _, slow) = try runs(fixtureRun(), scaled(rerun(fixtureRun(), seed: 3), qps: 0.9, latency: 1.1))

        var r = try ballast(["gate", "--baseline", a, "--candidate", b])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("### ballast gate: pass"), r.stdout)

        r = try ballast(["gate", "--baseline", a, "--candidate", slow, "--max-regression", "5%", "--metric", "qps,p90"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stdout.contains("**REGRESSION**"), r.stdout)

        r = try ballast(["gate", "--baseline", a, "--candidate", slow, "--max-regression", "20%"])
        XCTAssertEqual(r.status, 0, r.stderr)

        r = try ballast(["gate", "--baseline", a, "--candidate", b, "--max-regression", "lots"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--max-regression"), r.stderr)
        r = try ballast(["gate", "--baseline", a, "--candidate", b, "--metric", "p42"])
        XCTAssertEqual(r.status, 2)
        r = try ballast(["gate", "--baseline", a])
        XCTAssertEqual(r.status, 2)
        r = try ballast(["gate", "--baseline", a, "--candidate", b, "--normalize-by", "nosuch"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("nosuch"), r.stderr)

        // An unreadable result names the file, exit 1.
        let broken = (b as NSString).appendingPathComponent("balanced-c2-r1.json")
        try Data("{\"ActualQPS\": \"fast\"}".utf8).write(to: URL(fileURLWithPath: broken))
        r = try ballast(["gate", "--baseline", a, "--candidate", b])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("balanced-c2-r1.json") && r.stderr.contains("ActualQPS"), r.stderr)
        r = try ballast(["compare", a, b])
        XCTAssertEqual(r.status, 1)
        r = try ballast(["report", b])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("balanced-c2-r1.json"), r.stderr)

        r = try ballast(["compare", a, slow])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("| default | all (6) | 3/3 | 0.9"), r.stdout)

        let out = try temporaryDirectory(self)
        r = try ballast(["report", a, "--out", out, "--baseline", "default"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix((out as NSString).appendingPathComponent("report.html")), r.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: (out as NSString).appendingPathComponent("charts/tp90.svg")))
        r = try ballast(["report", a, "--baseline", "nosuch"])
        XCTAssertEqual(r.status, 2)
    }
}
