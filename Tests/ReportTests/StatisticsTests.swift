import XCTest
@testable import Report

final class StatisticsTests: XCTestCase {
    func testSummaryStatisticsOfKnownData() {
        let xs = [2.0, 4, 4, 4, 5, 5, 7, 9]
        XCTAssertEqual(Stats.mean(xs), 5)
        XCTAssertEqual(Stats.median(xs), 4.5)
        XCTAssertEqual(Stats.median([3, 1, 2]), 2)
        XCTAssertEqual(Stats.standardDeviation(xs)!, (32.0 / 7).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(Stats.standardDeviation([7]), 0)
        XCTAssertEqual(Stats.quantile([1, 2, 3, 4, 5], 0.25), 2)
        XCTAssertEqual(Stats.quantile([10, 20], 0.5), 15)
        XCTAssertNil(Stats.mean([]))
        XCTAssertNil(Stats.median([]))
    }

    func testJainIndexAndMaxOverMean() {
        XCTAssertEqual(Stats.jainIndex([5, 5, 5, 5]), 1)
        XCTAssertEqual(Stats.jainIndex([8, 0, 0, 0]), 0.25)
        XCTAssertEqual(Stats.jainIndex([1, 2, 3])!, 36.0 / 42.0, accuracy: 1e-12)
        XCTAssertEqual(Stats.jainIndex([0, 0]), 1)
        XCTAssertEqual(Stats.maxOverMean([5, 5, 5, 5]), 1)
        XCTAssertEqual(Stats.maxOverMean([8, 0, 0, 0]), 4)
        XCTAssertEqual(Stats.maxOverMean([1, 2, 3]), 1.5)
        XCTAssertNil(Stats.jainIndex([]))
    }

    func testStudentTQuantilesMatchTables() {
        XCTAssertEqual(StudentT.quantile(0.975, degreesOfFreedom: 1), 12.706, accuracy: 0.001)
        XCTAssertEqual(StudentT.quantile(0.975, degreesOfFreedom: 2), 4.303, accuracy: 0.001)
        XCTAssertEqual(StudentT.quantile(0.975, degreesOfFreedom: 4), 2.776, accuracy: 0.001)
        XCTAssertEqual(StudentT.quantile(0.975, degreesOfFreedom: 30), 2.042, accuracy: 0.001)
        XCTAssertEqual(StudentT.quantile(0.95, degreesOfFreedom: 10), 1.812, accuracy: 0.001)
    }

    func testSeededRandomIsDeterministic() {
        var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42), c = SeededRandom(seed: 43)
        let xa = (0..<5).map { _ in a.next() }, xb = (0..<5).map { _ in b.next() }, xc = (0..<5).map { _ in c.next() }
        XCTAssertEqual(xa, xb)
        XCTAssertNotEqual(xa, xc)
        XCTAssertEqual(SeededRandom.seed("x", base: 1), SeededRandom.seed("x", base: 1))
        XCTAssertNotEqual(SeededRandom.seed("x", base: 1), SeededRandom.seed("y", base: 1))
    }

    func testBootstrapRatioIsDeterministicAndBracketsTheRatio() throws {
        let a = [100.0, 102, 98, 101, 99], b = [110.0, 112, 108, 111, 109]
        let e1 = try XCTUnwrap(Bootstrap.ratioOfMeans(a: a, b: b, seed: 7))
        let e2 = try XCTUnwrap(Bootstrap.ratioOfMeans(a: a, b: b, seed: 7))
        XCTAssertEqual(e1, e2)
        XCTAssertEqual(e1.ratio, 1.1, accuracy: 1e-12)
        XCTAssertLessThan(e1.lower, 1.1)
        XCTAssertGreaterThan(e1.upper, 1.1)
        XCTAssertTrue(e1.significant)
        // Too few repetitions: no interval.
        XCTAssertNil(Bootstrap.ratioOfMeans(a: [100], b: [110, 111]))
        XCTAssertNil(Bootstrap.ratioOfMeans(a: [0, 0], b: [1, 1]))
        // Identical samples: ratio 1, not significant.
        let same = try XCTUnwrap(Bootstrap.ratioOfMeans(a: a, b: a))
        XCTAssertEqual(same.ratio, 1)
        XCTAssertFalse(same.significant)
    }

    func testMeanIntervalCoversTheMean() throws {
        let e = try XCTUnwrap(Bootstrap.mean([10, 11, 12, 13, 14]))
        XCTAssertEqual(e.mean, 12)
        XCTAssertLessThan(e.lower, 12)
        XCTAssertGreaterThan(e.upper, 12)
        XCTAssertGreaterThanOrEqual(e.lower, 10)
        XCTAssertLessThanOrEqual(e.upper, 14)
        let single = try XCTUnwrap(Bootstrap.mean([5]))
        XCTAssertEqual([single.lower, single.mean, single.upper], [5, 5, 5])
    }

    // MARK: Known answers on synthetic data

    /// `n` repetitions per side of a figure with multiplicative (log-normal) noise `sigma`;
    /// B is A's level times `factor`. Returns A and B.
    static func sample(_ rng: inout SeededRandom, n: Int, sigma: Double, factor: Double) -> ([Double], [Double]) {
        let a = (0..<n).map { _ in 10_000 * exp(sigma * rng.normal()) }
        let b = (0..<n).map { _ in 10_000 * factor * exp(sigma * rng.normal()) }
        return (a, b)
    }

    /// Fraction of `trials` seeded trials in which one point is significant.
    static func pointRate(trials: Int, n: Int, sigma: Double, factor: Double, seed: UInt64) -> Double {
        var rng = SeededRandom(seed: seed)
        var hits = 0
        for t in 0..<trials {
            let (a, b) = sample(&rng, n: n, sigma: sigma, factor: factor)
            if Bootstrap.ratioOfMeans(a: a, b: b, resamples: 1000, seed: UInt64(t))?.significant == true { hits += 1 }
        }
        return Double(hits) / Double(trials)
    }

    /// Fraction of trials in which the gate fails a sweep of `points` connection counts with
    /// `n` repetitions each (QPS; regression when B is lower), threshold `threshold`.
    static func gateRate(trials: Int, points: Int, n: Int, sigma: Double, factor: Double, threshold: Double,
                         perPoint: Bool, seed: UInt64) -> Double {
        var rng = SeededRandom(seed: seed)
        var fails = 0
        for t in 0..<trials {
            var rows: [ComparisonRow] = []
            var strata: [(a: [Double], b: [Double])] = []
            for c in 0..<points {
                let (a, b) = sample(&rng, n: n, sigma: sigma, factor: factor)
                strata.append((a, b))
                if perPoint {
                    rows.append(ComparisonRow(series: "s", connections: 1 << c, pointCount: 1, metric: .qps, baseline: nil, candidate: nil,
                                              estimate: Bootstrap.ratioOfMeans(a: a, b: b, resamples: 1000, seed: UInt64(t * 64 + c)),
                                              repetitionsA: n, repetitionsB: n))
                }
            }
            rows.append(ComparisonRow(series: "s", connections: nil, pointCount: points, metric: .qps, baseline: nil, candidate: nil,
                                      estimate: Bootstrap.geometricMeanRatio(strata, resamples: 1000, seed: UInt64(t)),
                                      repetitionsA: n, repetitionsB: n))
            var options = GateOptions()
            options.maxRegression = threshold
            options.perPoint = perPoint
            let comparison = Comparison(baselineName: "A", candidateName: "B", options: ComparisonOptions(), rows: rows, unmatched: [], notes: [])
            if !Gate.evaluate(comparison, options: options).passed { fails += 1 }
        }
        return Double(fails) / Double(trials)
    }

    // Noise: σ = 3% log-normal per run, about what these 2-core VMs show with everything pinned.

    /// A 10% shift is found: per point with 5 repetitions, and by the gate over a sweep of
    /// 8 connection counts with 2 repetitions (measured: 99% and 100%).
    func testTenPercentShiftIsFlagged() {
        let perPoint = Self.pointRate(trials: 100, n: 5, sigma: 0.03, factor: 0.9, seed: 2)
        XCTAssertGreaterThanOrEqual(perPoint, 0.95, "10% shift flagged in \(perPoint) of trials")
        let up = Self.pointRate(trials: 100, n: 5, sigma: 0.03, factor: 1.1, seed: 5)
        XCTAssertGreaterThanOrEqual(up, 0.95, "10% increase flagged in \(up) of trials")
        let gate = Self.gateRate(trials: 100, points: 8, n: 2, sigma: 0.03, factor: 0.9, threshold: 0.05, perPoint: false, seed: 4)
        XCTAssertGreaterThanOrEqual(gate, 0.95, "gate caught a 10% slowdown in \(gate) of trials")
    }

    /// Pure noise is not flagged. Bounds stated, with the rates measured over these 400 seeded
    /// trials (and over 1000 trials while developing):
    /// - one point, 5 vs 5 runs: "significant" in ≤ 7% of trials (3.25%; 3.1%; nominal 5%);
    /// - a sweep of 8 connection counts x 2 runs, geometric mean: ≤ 6% (2.5%; 2.5%);
    /// - the gate on that sweep at --max-regression 5%: ≤ 1% (0.0%; 0.0%).
    func testPureNoiseIsNotFlagged() {
        let point = Self.pointRate(trials: 400, n: 5, sigma: 0.03, factor: 1, seed: 1)
        XCTAssertLessThanOrEqual(point, 0.07, "noise flagged in \(point) of trials")
        let aggregate = Self.gateRate(trials: 400, points: 8, n: 2, sigma: 0.03, factor: 1, threshold: 0, perPoint: false, seed: 3)
        XCTAssertLessThanOrEqual(aggregate, 0.06, "noise flagged in \(aggregate) of sweeps")
        let gate = Self.gateRate(trials: 400, points: 8, n: 2, sigma: 0.03, factor: 1, threshold: 0.05, perPoint: false, seed: 3)
        XCTAssertLessThanOrEqual(gate, 0.01, "gate failed on noise in \(gate) of sweeps")
        print("false-positive rates: one point 5v5 \(point), sweep 8x2 geometric mean \(aggregate), gate at 5% \(gate)")
    }

    /// Why the gate judges the geometric mean over connection counts: one point with 2 runs a
    /// side is "significant" whenever both B runs beat both A runs, which noise does 1 time in 3
    /// (measured 36%); judged point by point, a sweep of 8 such points fails on noise in ~29%.
    func testTwoRunsPerPointCannotSeparateNoise() {
        let point = Self.pointRate(trials: 300, n: 2, sigma: 0.03, factor: 1, seed: 1)
        XCTAssertEqual(point, 1.0 / 3, accuracy: 0.06)
        let perPointGate = Self.gateRate(trials: 100, points: 8, n: 2, sigma: 0.03, factor: 1, threshold: 0.05, perPoint: true, seed: 3)
        XCTAssertGreaterThan(perPointGate, 0.1)
    }
}
