import Foundation
import XCTest
@testable import Report

/// A point as the sweep runner would write it, with round numbers the tests can look for.
func fixturePoint(variant: String, connections: Int, repetition: Int, qps: Double,
                  p50: Double, p90: Double, p99: Double, axes extra: [String: AxisValue] = [:],
                  workers: [(accepted: Int, requests: Int)]? = nil) -> PointResult {
    let histogram = FortioHistogram(
        count: Int(qps * 5), min: p50 / 4, max: p99 * 2, sum: qps * 5 * p50, avg: p50 * 1.1, stdDev: p50 / 3,
        data: [.init(start: p50 / 4, end: p50, percent: 50, count: Int(qps * 2.5))],
        percentiles: [.init(percentile: 50, value: p50), .init(percentile: 75, value: (p50 + p90) / 2),
                      .init(percentile: 90, value: p90), .init(percentile: 99, value: p99), .init(percentile: 99.9, value: p99 * 1.5)])
    var axes = extra
    axes["connections"] = .int(connections)
    axes["repetition"] = .int(repetition)
    var p = PointResult(variant: variant, axes: axes, actualQPS: qps, durationHistogram: histogram,
                        workers: workers.map { ws in ws.enumerated().map { WorkerFigures(worker: $0.offset, accepted: $0.element.accepted, active: $0.element.accepted, requests: $0.element.requests) } },
                        environment: RunEnvironment(kernel: "6.8.0-test", cpuModel: "Test CPU", cores: 2, pinning: ["proxy": "1", "load": "0"],
                                                    gitCommit: "abc1234", ballastVersion: "0.1.0", configHash: "sha256:00", workerCost: "block:200us"))
    p.runType = "HTTP"
    p.labels = "\(variant) c\(connections) r\(repetition)"
    p.requestedQPS = "max"
    p.requestedDuration = "5s"
    p.actualDuration = 5_000_000_000
    p.numThreads = connections
    p.version = "ballast 0.1.0"
    p.retCodes = ["200": Int(qps * 5)]
    p.url = "http://127.0.0.1:8080/"
    return p
}

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("ballast-report-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// Writes `points` (and a manifest listing them) into `dir` the way the sweep runner does.
@discardableResult
func writeRun(_ points: [PointResult], to dir: String, experiment: String = "fixture", baseline: String? = nil) throws -> [String] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    var manifest = Manifest(experiment: experiment)
    manifest.startedAt = "2025-01-31T12:00:00Z"
    manifest.baseline = baseline
    manifest.complete = true
    manifest.environment = points.first?.environment
    var variants: [String] = []
    var entries: [ManifestPoint] = []
    var files: [String] = []
    for p in points {
        if !variants.contains(p.variant) { variants.append(p.variant) }
        let name = "\(p.variant)-c\(p.axes["connections"]!)-r\(p.axes["repetition"]!)" + p.axes.filter { $0.key != "connections" && $0.key != "repetition" }.sorted { $0.key < $1.key }.map { "-\($0.value)" }.joined() + ".json"
        try encoder.encode(p).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent(name)))
        entries.append(ManifestPoint(file: name, variant: p.variant, axes: p.axes))
        files.append(name)
    }
    manifest.variants = variants
    manifest.points = entries
    try encoder.encode(manifest).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("manifest.json")))
    return files
}

/// Two variants over 2..64 connections, 3 repetitions; "balanced" has exactly `speedup` times
/// the QPS and 1/`speedup` the latencies of "default", plus a small fixed wobble per repetition.
func fixtureRun(speedup: Double = 1.25, connections: [Int] = [2, 4, 8, 16, 32, 64], repetitions: Int = 3,
                variants: [String] = ["default", "balanced"]) -> [PointResult] {
    var points: [PointResult] = []
    let wobble = [1.0, 1.01, 0.99, 1.005, 0.995]
    for c in connections {
        for r in 1...repetitions {
            for (i, v) in variants.enumerated() {
                let factor = i == 0 ? 1.0 : speedup
                let w = wobble[(r - 1) % wobble.count]
                let qps = (10_000 + Double(c) * 100) * factor * w
                let p50 = Double(c) * 0.0001 / factor * w
                let workers: [(Int, Int)] = i == 0 ? [(c * 3 / 4 + 1, Int(qps * 3.5)), (c / 4, Int(qps * 1.5))] : [(c / 2, Int(qps * 2.5)), (c - c / 2, Int(qps * 2.5))]
                points.append(fixturePoint(variant: v, connections: c, repetition: r, qps: qps, p50: p50, p90: p50 * 3, p99: p50 * 8, workers: workers))
            }
        }
    }
    return points
}
