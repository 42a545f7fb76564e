import Foundation
import TestSupport
import XCTest

/// Every shipped experiment runs end to end: `ballast sweep FILE --quick --duration 200ms`
/// (one repetition, three connection counts) must finish with every point ok and a report.
/// Envoy is installed on first use (scripts/ensure-envoy.sh); the peers experiment needs nginx and
/// HAProxy (`make bench-proxy` installs them) and is skipped, saying so, where they are missing.
final class ShippedExperimentsEndToEndTests: XCTestCase {
    var root: URL {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }

    func onPath(_ program: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(program)") }
            || FileManager.default.isExecutableFile(atPath: "/usr/sbin/\(program)")
    }

    func runQuick(_ name: String) throws {
        let out = NSTemporaryDirectory() + "ballast-shipped-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ballastBinary())
        p.arguments = ["sweep", "Experiments/\(name)", "--quick", "--duration", "200ms", "--out", out]
        p.currentDirectoryURL = root
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = (env["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"  // nginx, haproxy
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let stderrData = err.fileHandleForReading.readDataToEndOfFile()  // ends when the sweep exits
        p.waitUntilExit()
        let stderr = String(decoding: stderrData, as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, "\(name): \(stderr)")
        let experiment = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: out).first, name)
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(out)/\(experiment)")
        let dir = "\(out)/\(experiment)/\(try XCTUnwrap(runs.first))"
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/manifest.json"))) as? [String: Any])
        XCTAssertEqual(manifest["complete"] as? Bool, true, name)
        let points = try XCTUnwrap(manifest["points"] as? [[String: Any]])
        XCTAssertFalse(points.isEmpty)
        XCTAssertEqual(points.filter { $0["status"] as? String != "ok" }.count, 0, "\(name): \(points)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/report.html"), name)
    }

    func testEveryShippedExperimentHasATestHere() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Experiments").path)
            .filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertEqual(files, ["envoy-talk-replication.yaml", "envoy-vs-ballast-ramp.yaml", "envoy-vs-ballast.yaml",
                               "gate-check.yaml", "instructions.yaml", "peers.yaml", "quick.yaml",
                               "rebalance-u0.5.yaml", "rebalance-u0.7.yaml", "rebalance-u0.9.yaml", "rebalance-uring-u0.7.yaml",
                               "simulate-extrapolation.yaml",
                               "tp90-128.yaml"],
                       "a new experiment needs its test below")
    }

    func testQuick() throws { try runQuick("quick.yaml") }
    func testEnvoyTalkReplication() throws { try runQuick("envoy-talk-replication.yaml") }
    func testGateCheck() throws { try runQuick("gate-check.yaml") }
    /// Runs callgrind twice per point (`make test` installs valgrind).
    func testInstructions() throws {
        try skipCallgrindUnderSanitizers()
        try runQuick("instructions.yaml")
    }
    func testEnvoyVsBallast() throws { try runQuick("envoy-vs-ballast.yaml") }
    func testEnvoyVsBallastRamp() throws { try runQuick("envoy-vs-ballast-ramp.yaml") }
    /// Live rebalancing, open loop at three utilisations (reuseport:rebalance=1 among the variants).
    func testRebalanceU05() throws { try runQuick("rebalance-u0.5.yaml") }
    func testRebalanceU07() throws { try runQuick("rebalance-u0.7.yaml") }
    func testRebalanceU09() throws { try runQuick("rebalance-u0.9.yaml") }
    /// The same on io_uring (a move cancels the multishot receive first), with an epoll peer.
    func testRebalanceUringU07() throws { try runQuick("rebalance-uring-u0.7.yaml") }

    /// For `ballast simulate` only (16-64 workers, up to 100,000 connections): simulated briefly.
    func testSimulateExtrapolation() throws {
        let out = NSTemporaryDirectory() + "ballast-shipped-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ballastBinary())
        p.arguments = ["simulate", "Experiments/simulate-extrapolation.yaml", "--utilisation", "0.5", "--cost-shape", "exponential",
                       "--duration", "50ms", "--repetitions", "1", "--out", out]
        p.currentDirectoryURL = root
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(out)/simulate-extrapolation-sim")
        let dir = "\(out)/simulate-extrapolation-sim/\(try XCTUnwrap(runs.first))"
        let points = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".json") && $0 != "manifest.json" }
        XCTAssertEqual(points.count, 48)                       // 4 strategies x 3 worker counts x 4 connection counts
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/bounds.md"))
    }

    func testPeers() throws {
        for program in ["nginx", "haproxy"] where !onPath(program) {
            throw XCTSkip("peers.yaml needs \(program) (apt-get install nginx-light haproxy, or make bench-proxy)")
        }
        try runQuick("peers.yaml")
    }

    /// The TP90 study (docs/tail-latency.md): HAProxy against ballast with 1 and 2 workers and exact_balance.
    func testTP90At128() throws {
        if !onPath("haproxy") { throw XCTSkip("tp90-128.yaml needs haproxy (apt-get install haproxy, or make bench-proxy)") }
        try runQuick("tp90-128.yaml")
    }
}
