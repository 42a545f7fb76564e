import Foundation
import Report
import Simulator
import Testbed
import XCTest

final class SimulationRunnerTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "ballast-sim-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: scratch) }

    func testASimulatedSweepIsAResultSetTheReportReads() throws {
        let file = "\(scratch)/tiny.yaml"
        try """
        name: tiny
        duration: 0.5s
        repetitions: 2
        connections: [4, 16]
        system: {kind: server, args: [--workers, "4", --worker-cost, "block:200us"]}
        matrix: {balance: [shared, least-loaded]}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        var options = SimulationRunner.Options(experimentFile: file, version: "test", command: "ballast simulate tiny.yaml")
        options.outRoot = scratch
        let outcome = try SimulationRunner(options: options).run()
        let set = try ResultSet.load(outcome.directory)
        XCTAssertEqual(set.points.count, 8)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(outcome.directory)/report.html"))
        for p in set.points {
            XCTAssertNotNil(p.result.otherFields["simulated"], p.file)
            XCTAssertEqual(p.result.workers?.map(\.active).reduce(0, +), p.connections, p.file)
        }
        // Back-to-back connects: shared piles every connection on one worker, least-loaded spreads them exactly.
        let shared16 = set.points.filter { $0.result.variant == "shared" && $0.connections == 16 }
        XCTAssertEqual(shared16.map { $0.result.workers!.map(\.active).sorted() }, [[0, 0, 0, 16], [0, 0, 0, 16]])
        let least16 = set.points.filter { $0.result.variant == "least-loaded" && $0.connections == 16 }
        XCTAssertEqual(least16.map { $0.result.workers!.map(\.active) }, [[4, 4, 4, 4], [4, 4, 4, 4]])
    }

    func testAVariantWithoutWorkersOrWithAnUnsimulatedMetricIsRefused() throws {
        let file = "\(scratch)/bad.yaml"
        try """
        name: bad
        connections: [4]
        system: {kind: server, args: [--worker-cost, "block:200us"]}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        var options = SimulationRunner.Options(experimentFile: file, version: "test", command: "")
        options.outRoot = scratch
        XCTAssertThrowsError(try SimulationRunner(options: options).run()) {
            XCTAssertTrue("\($0)".contains("no --workers or --concurrency"), "\($0)")
        }
        try """
        name: bad
        connections: [4]
        system: {kind: server, args: [--workers, "4", --balance, "least-loaded:requests", --worker-cost, "block:200us"]}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SimulationRunner(options: options).run()) {
            XCTAssertTrue("\($0)".contains("by open connections only"), "\($0)")
        }
    }

    /// The committed replication sweep: one cost and round trip for the whole sweep, then each point
    /// simulated with its measured placement. The model must stay within the documented accuracy.
    func testValidationAgainstTheCommittedReplicationSweep() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("results/envoy-talk-replication/20261126T163148Z").path
        let v = try SimulationValidation.run(try ResultSet.load(dir), simulatedSeconds: 1)
        XCTAssertEqual(v.rows.count, 90)
        XCTAssertEqual(v.calibration.cost, 316.6e-6, accuracy: 0.5e-6)
        XCTAssertLessThan(v.meanAbsolutePercentError(\.qps), 5)
        XCTAssertLessThan(v.meanAbsolutePercentError(\.p90), 9)
    }
}
