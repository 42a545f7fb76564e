import Foundation
import Glibc
import XCTest

/// `ballast sweep` as a user runs it: a real binary, real processes on 127.0.0.1.
final class SweepEndToEndTests: XCTestCase {
    func binary() -> String {
        if let path = ProcessInfo.processInfo.environment["BALLAST_BIN"] { return path }
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent(".build/debug/ballast").path
    }

    func temporaryDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "ballast-sweep-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func start(_ arguments: [String]) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary())
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    /// The pids of every live process whose parent is `pid`.
    func children(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { Int32($0) }.filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid && fields[0] != "Z"
        }
    }

    func testTinySweepWritesPointsManifestAndReport() throws {
        let dir = try temporaryDirectory()
        let file = "\(dir)/tiny.yaml"
        try """
        name: tiny
        duration: 300ms
        warmup: 100ms
        repetitions: 1
        connections: [2]
        system: {kind: server, args: [--workers, "2"]}
        load: {path: "/?size=10"}
        variants:
          - {name: reuseport, args: [--balance, reuseport]}
          - {name: least-loaded, args: [--balance, least-loaded]}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let (p, out, err) = try start(["sweep", file, "--out", dir])
        p.waitUntilExit()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, stderr)
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/tiny")
        XCTAssertEqual(runs.count, 1)
        let run = "\(dir)/tiny/\(runs[0])"
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: run))
        XCTAssertTrue(files.isSuperset(of: ["manifest.json", "report.html", "summary.md", "points.csv",
                                             "reuseport-c2-r1.json", "least-loaded-c2-r1.json"]), "\(files)")
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/manifest.json"))) as! [String: Any]
        XCTAssertEqual(manifest["complete"] as? Bool, true)
        XCTAssertEqual((manifest["points"] as? [Any])?.count, 2)
        let point = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/least-loaded-c2-r1.json"))) as! [String: Any]
        XCTAssertEqual(point["variant"] as? String, "least-loaded")
        XCTAssertNotNil(point["DurationHistogram"])
        XCTAssertNotNil(point["environment"])
        // Two connections over two workers, least-loaded: one each, counted during the point.
        let workers = try XCTUnwrap(point["workers"] as? [[String: Any]])
        XCTAssertEqual(workers.map { $0["accepted"] as? Int }, [1, 1])
        // CPU of the server's process tree and of the load over the measured window, per request.
        let cpu = try XCTUnwrap(point["cpu"] as? [String: Any])
        let histogram = try XCTUnwrap(point["DurationHistogram"] as? [String: Any])
        XCTAssertEqual(cpu["requests"] as? Int, histogram["Count"] as? Int)
        XCTAssertGreaterThan(cpu["systemSeconds"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(cpu["loadSeconds"] as? Double ?? 0, 0)
        let perRequest = try XCTUnwrap(cpu["systemMicrosPerRequest"] as? Double)
        XCTAssertEqual(perRequest, (cpu["systemSeconds"] as! Double) * 1e6 / Double(cpu["requests"] as! Int), accuracy: 1e-6)
        let csv = try String(contentsOfFile: "\(run)/points.csv", encoding: .utf8)
        XCTAssertTrue(csv.split(separator: "\n").first!.hasSuffix("cpu_us_per_req,load_cpu_us_per_req"), csv)
        XCTAssertTrue(stdout.contains("report: "), stdout)
        XCTAssertTrue(children(of: p.processIdentifier).isEmpty)
    }

    /// `instructions: N`: each point also counts the server's instructions per request under
    /// callgrind (epoll), twice the same way; the counts repeat closely (valgrind counts every
    /// user-space instruction; only the loop's wake-ups vary).
    func testInstructionsPerRequestUnderCallgrind() throws {
        let dir = try temporaryDirectory()
        let file = "\(dir)/ir.yaml"
        try """
        name: ir
        duration: 200ms
        repetitions: 2
        connections: [2]
        instructions: 300
        system: {kind: server, args: [--workers, "1"]}
        load: {path: "/?size=10"}
        variants:
          - {name: epoll, args: [--io, epoll]}
          - {name: uring, args: [--io, io_uring]}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let (p, _, err) = try start(["sweep", file, "--out", dir])
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, stderr)
        XCTAssertTrue(stderr.contains("uring: instructions per request are counted on epoll only"), stderr)
        let run = "\(dir)/ir/" + (try FileManager.default.contentsOfDirectory(atPath: "\(dir)/ir"))[0]
        func ir(_ name: String) throws -> Double? {
            let point = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/\(name)"))) as! [String: Any]
            return (point["cpu"] as? [String: Any])?["instructionsPerRequest"] as? Double
        }
        let first = try XCTUnwrap(try ir("epoll-c2-r1.json")), second = try XCTUnwrap(try ir("epoll-c2-r2.json"))
        XCTAssertGreaterThan(first, 1_000)
        XCTAssertEqual(second / first, 1, accuracy: 0.1, "\(first) vs \(second)")  // batching varies by a few %
        XCTAssertNil(try ir("uring-c2-r1.json"))
    }

    func testCtrlCStopsEveryProcessAndKeepsFinishedPoints() throws {
        let dir = try temporaryDirectory()
        let file = "\(dir)/long.yaml"
        try """
        name: long
        duration: 2s
        repetitions: 5
        connections: [2]
        system: {kind: server}
        variants: [{name: a}, {name: b}]
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let (p, _, _) = try start(["sweep", file, "--out", dir])
        // Wait until the first point finished (its file exists) and a later one runs.
        var seenChildren: [Int32] = []
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/long")) ?? []
            if let run = runs.first,
               let files = try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/long/\(run)"),
               files.contains(where: { $0.hasSuffix("-r1.json") && $0 != "manifest.json" }) {
                seenChildren = children(of: p.processIdentifier)
                if !seenChildren.isEmpty { break }
            }
            usleep(50_000)
        }
        XCTAssertFalse(seenChildren.isEmpty, "the sweep should be running a point")
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        for pid in seenChildren {
            XCTAssertNotEqual(kill(pid, 0), 0, "process \(pid) survived the Ctrl-C")
        }
        let run = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/long")[0]
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/long/\(run)/manifest.json"))) as! [String: Any]
        XCTAssertEqual(manifest["complete"] as? Bool, false)
        XCTAssertGreaterThanOrEqual((manifest["points"] as? [Any])?.count ?? 0, 1)
    }

    func testMissingProgramFailsBeforeAnythingStarts() throws {
        let dir = try temporaryDirectory()
        let file = "\(dir)/peer.yaml"
        try """
        name: peer
        connections: [2]
        system: {kind: command, command: [no-such-proxy-binary, -c, "{{CONFIG}}"]}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let (p, _, err) = try start(["sweep", file, "--out", dir])
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 1)
        XCTAssertTrue(stderr.contains("no-such-proxy-binary"), stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/peer"))
    }

    func testBadExperimentIsAUsageErrorNamingThePath() throws {
        let dir = try temporaryDirectory()
        let file = "\(dir)/bad.yaml"
        try "name: bad\nsystem: {kind: server}\nconections: [2]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let (p, _, err) = try start(["sweep", file, "--out", dir])
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 2)
        XCTAssertTrue(stderr.contains("conections: unknown field"), stderr)
    }
}
