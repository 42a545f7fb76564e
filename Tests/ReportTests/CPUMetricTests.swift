import Foundation
import XCTest
@testable import Report

final class CPUMetricTests: XCTestCase {
    func testOldPointFileWithoutCPULoadsAndHasNoCPUMetric() throws {
        let old = fixturePoint(variant: "a", connections: 4, repetition: 1, qps: 1000, p50: 0.001, p90: 0.002, p99: 0.003)
        let decoded = try JSONDecoder().decode(PointResult.self, from: old.jsonData())
        XCTAssertNil(decoded.cpu)
        XCTAssertNil(Metric.cpuPerRequest.value(of: decoded))
        XCTAssertNil(Metric.loadCPUPerRequest.value(of: decoded))
    }

    func testCPURoundTripsAndIsAMetricInMicroseconds() throws {
        var p = fixturePoint(variant: "a", connections: 4, repetition: 1, qps: 1000, p50: 0.001, p90: 0.002, p99: 0.003)
        p.cpu = PointCPU(requests: 20_000, systemSeconds: 0.5, loadSeconds: 0.2)
        let decoded = try JSONDecoder().decode(PointResult.self, from: p.jsonData())
        XCTAssertEqual(decoded.cpu, p.cpu)
        XCTAssertEqual(Metric.cpuPerRequest.value(of: decoded)!, 25, accuracy: 1e-9)
        XCTAssertEqual(Metric.loadCPUPerRequest.value(of: decoded)!, 10, accuracy: 1e-9)
        XCTAssertFalse(Metric.cpuPerRequest.higherIsBetter)
        XCTAssertEqual(try Metric.parseList("qps,cpu-per-request,load-cpu-per-request"), [.qps, .cpuPerRequest, .loadCPUPerRequest])
        XCTAssertEqual(Fmt.value(25, .cpuPerRequest), "25.0 µs")
    }

    func testNegativeCPUIsRefusedNamingTheField() throws {
        let text = #"{"requests": 10, "systemSeconds": -1}"#
        XCTAssertThrowsError(try JSONDecoder().decode(PointCPU.self, from: Data(text.utf8))) { error in
            XCTAssertTrue("\(error)".contains("systemSeconds"), "\(error)")
        }
    }

    /// The gate judges CPU per request like QPS and TP90: +10% CPU per request fails it.
    func testGateCatchesMoreCPUPerRequest() throws {
        func run(_ factor: Double, seed: UInt64) -> [PointResult] {
            var rng = SeededRandom(seed: seed)
            var out: [PointResult] = []
            for c in [4, 16, 64] {
                for r in 1...3 {
                    var p = fixturePoint(variant: "v", connections: c, repetition: r, qps: 1000, p50: 0.001, p90: 0.002, p99: 0.003)
                    p.cpu = PointCPU(requests: 5000, systemSeconds: 0.1 * factor * exp(0.02 * rng.normal()), loadSeconds: 0.05)
                    out.append(p)
                }
            }
            return out
        }
        let a = try temporaryDirectory(self), b = try temporaryDirectory(self), c = try temporaryDirectory(self)
        _ = try writeRun(run(1, seed: 1), to: a)
        _ = try writeRun(run(1, seed: 2), to: b)
        _ = try writeRun(run(1.1, seed: 3), to: c)
        var o = ComparisonOptions()
        o.metrics = [.cpuPerRequest]
        let same = Gate.evaluate(Compare.run(baseline: try ResultSet.load(a), candidate: try ResultSet.load(b), options: o))
        let slower = Gate.evaluate(Compare.run(baseline: try ResultSet.load(a), candidate: try ResultSet.load(c), options: o))
        XCTAssertTrue(same.passed, same.markdown())
        XCTAssertFalse(slower.passed, slower.markdown())
        XCTAssertTrue(slower.markdown().contains("CPU/req"))
    }
}
