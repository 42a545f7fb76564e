import Foundation
import Glibc
import TestSupport
import XCTest

/// `ballast sweep` as a user runs it: a real binary, real processes on 127.0.0.1.
final class SweepEndToEndTests: XCTestCase {
    func binary() -> String { ballastBinary() }

    func temporaryDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "ballast-sweep-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func start(_ arguments: [String], in directory: String? = nil) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary())
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    func children(of pid: Int32) -> [Int32] { ProcessTable.children(of: pid) }

    /// Runs `ballast sweep ARGS` to its end as this process's child, with this process as the
    /// reaper of orphans: whatever the sweep started and did not stop is re-parented here and found
    /// (and then killed). Returns exit status, stdout, stderr and the leftover processes.
    func sweepLeavingNothingBehind(_ arguments: [String], in directory: String? = nil) throws -> (status: Int32, stdout: String, stderr: String, leftovers: [Int32]) {
        try ProcessTable.asSubreaper {
            // Children this process already has (e.g. a sanitizer's symbolizer) are not the sweep's.
            let before = Set(children(of: getpid()))
            let (p, out, err) = try start(arguments, in: directory)
            // stderr is drained on its own thread: a sweep that writes more than a pipe holds
            // while the test reads stdout to its end would otherwise deadlock.
            let errText = ReceivedText()
            let reader = Thread { errText.set(err.fileHandleForReading.readDataToEndOfFile()) }
            reader.start()
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            let stderr = errText.wait()
            let leftovers = children(of: getpid()).filter { !before.contains($0) }
            ProcessTable.killAndReap(leftovers)
            return (p.terminationStatus, stdout, stderr, leftovers)
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
        let (status, stdout, stderr, leftovers) = try sweepLeavingNothingBehind(["sweep", file, "--out", dir])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertEqual(leftovers, [], "processes the sweep left running")
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
    }

    /// A bootstrap template for the proxy and command kinds (the sweep fills the ports).
    func proxyTemplate(in dir: String) throws -> String {
        let path = "\(dir)/proxy-template.yaml"
        try String(contentsOf: repositoryRoot.appendingPathComponent("Experiments/configs/ballast-proxy.yaml"), encoding: .utf8)
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Checks a finished one-point run of `name`: complete manifest, one point whose every call
    /// got 200.
    func assertOnePointOf(_ name: String, variant: String, in dir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/\(name)")
        XCTAssertEqual(runs.count, 1, file: file, line: line)
        let run = "\(dir)/\(name)/\(runs[0])"
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/manifest.json"))) as! [String: Any]
        XCTAssertEqual(manifest["complete"] as? Bool, true, file: file, line: line)
        XCTAssertEqual((manifest["points"] as? [Any])?.count, 1, file: file, line: line)
        let point = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/\(variant)-c2-r1.json"))) as! [String: Any]
        let codes = try XCTUnwrap(point["RetCodes"] as? [String: Any], file: file, line: line)
        XCTAssertEqual(Array(codes.keys), ["200"], "every call through the system got 200", file: file, line: line)
        XCTAssertGreaterThan((codes["200"] as? Int) ?? 0, 0, file: file, line: line)
    }

    /// system.kind proxy: the sweep starts a backend and `ballast proxy` from a template, loads
    /// it, and stops both.
    func testProxyKindSweepRunsThroughTheProxyAndStopsEverything() throws {
        let dir = try temporaryDirectory()
        let template = try proxyTemplate(in: dir)
        let file = "\(dir)/viaproxy.yaml"
        try """
        name: viaproxy
        duration: 300ms
        repetitions: 1
        connections: [2]
        system: {kind: proxy, config: \(template), args: [--concurrency, "1"]}
        backend: {args: [--workers, "1"]}
        load: {path: "/?size=10"}
        variants: [{name: proxied}]
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let (status, _, stderr, leftovers) = try sweepLeavingNothingBehind(["sweep", file, "--out", dir])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertEqual(leftovers, [], "processes the sweep left running")
        try assertOnePointOf("viaproxy", variant: "proxied", in: dir)
    }

    /// system.kind command: a peer started from a command line and a config template (here the
    /// ballast binary itself as the peer, so the test needs nothing installed).
    func testCommandKindSweepRunsThePeerAndStopsEverything() throws {
        let dir = try temporaryDirectory()
        let template = try proxyTemplate(in: dir)
        let file = "\(dir)/peer.yaml"
        try """
        name: peer
        duration: 300ms
        repetitions: 1
        connections: [2]
        system: {kind: command, command: ["\(binary())", proxy, -c, "{{CONFIG}}", --concurrency, "1"], config: \(template)}
        backend: {args: [--workers, "1"]}
        load: {path: "/?size=10"}
        variants: [{name: peer}]
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let (status, _, stderr, leftovers) = try sweepLeavingNothingBehind(["sweep", file, "--out", dir])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertEqual(leftovers, [], "processes the sweep left running")
        try assertOnePointOf("peer", variant: "peer", in: dir)
    }

    /// A relative `--out`: a peer still gets an absolute config path (nginx would resolve a
    /// relative one against its own prefix). The peer here refuses a relative path.
    func testRelativeOutGivesPeersAnAbsoluteConfigPath() throws {
        let dir = try temporaryDirectory()
        let template = try proxyTemplate(in: dir)
        let script = "case \"$1\" in /*) exec \"\(binary())\" proxy -c \"$1\" --concurrency 1 ;; *) echo relative config path \"$1\" >&2; exit 3 ;; esac"
        try """
        name: relative
        duration: 300ms
        repetitions: 1
        connections: [2]
        system: {kind: command, command: [/bin/sh, -c, '\(script)', sh, "{{CONFIG}}"], config: \(template)}
        backend: {args: [--workers, "1"]}
        load: {path: "/?size=10"}
        variants: [{name: peer}]
        """.write(toFile: "\(dir)/relative.yaml", atomically: true, encoding: .utf8)
        let (status, _, stderr, leftovers) = try sweepLeavingNothingBehind(["sweep", "relative.yaml", "--out", "out"], in: dir)
        XCTAssertEqual(status, 0, stderr)
        XCTAssertEqual(leftovers, [], "processes the sweep left running")
        try assertOnePointOf("relative", variant: "peer", in: "\(dir)/out")
    }

    /// `instructions: N`: each point also counts the server's instructions per request under
    /// callgrind (epoll), twice the same way; the counts are plausible and of one size (valgrind
    /// counts every user-space instruction; the loop's wake-ups vary with the machine's load).
    func testInstructionsPerRequestUnderCallgrind() throws {
        try skipCallgrindUnderSanitizers()
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
        XCTAssertLessThan(first, 1_000_000)
        // A sanity bound, not the metric's steadiness (a benchmark's business): how many requests
        // the loop serves per wake-up varies with the machine's load (12% apart on a busy CI
        // machine, 0.5-3% on a quiet one), but start-up or shutdown leaking into the difference
        // of the two callgrind runs would be far outside a factor of 1.5.
        XCTAssertEqual(second / first, 1, accuracy: 0.5, "\(first) vs \(second)")
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
        Wait.until(timeout: 60) {
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/long")) ?? []
            if let run = runs.first,
               let files = try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/long/\(run)"),
               files.contains(where: { $0.hasSuffix("-r1.json") && $0 != "manifest.json" }) {
                seenChildren = children(of: p.processIdentifier)
            }
            return !seenChildren.isEmpty
        }
        XCTAssertFalse(seenChildren.isEmpty, "the sweep should be running a point")
        // This process adopts whatever the sweep leaves behind once it exits, so a survivor is
        // found here (a zombie already reaped elsewhere is not a survivor).
        let leftovers = ProcessTable.asSubreaper { () -> [Int32] in
            let before = Set(children(of: getpid())).subtracting([p.processIdentifier])
            kill(p.processIdentifier, SIGINT)
            p.waitUntilExit()
            let left = children(of: getpid()).filter { !before.contains($0) }
            ProcessTable.killAndReap(left)
            return left
        }
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertEqual(leftovers, [], "processes that survived the Ctrl-C")
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

    func testValidateFindsATypoInAVariantBeforeAnyPointRuns() throws {
        let dir = try temporaryDirectory()
        let file = "\(dir)/typo.yaml"
        try """
        name: typo
        duration: 300ms
        repetitions: 1
        connections: [2]
        system: {kind: server, args: [--workers, "2"]}
        variants:
          - {name: shared, args: [--balance, shared]}
          - {name: least, args: [--balance, leastloaded]}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        for extra in [["--validate"], []] {
            let (p, out, err) = try start(["sweep", file, "--out", dir] + extra)
            p.waitUntilExit()
            _ = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(p.terminationStatus, 2, stderr)
            XCTAssertTrue(stderr.contains("variant 'least' does not validate"), stderr)
            XCTAssertTrue(stderr.contains("leastloaded"), stderr)
            XCTAssertFalse(stderr.contains("[1/"), "no point may run: \(stderr)")
        }
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/typo")) ?? [], [])
    }

    func testValidateAcceptsAGoodExperiment() throws {
        let dir = try temporaryDirectory()
        let file = "\(dir)/good.yaml"
        try "name: good\nsystem: {kind: server}\nvariants: [{name: a, args: [--balance, least-loaded]}]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let (p, out, _) = try start(["sweep", file, "--validate", "--out", dir])
        p.waitUntilExit()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertTrue(stdout.contains("a: ok"), stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/good"))
    }

    func testMissingEnvoyIsAClearErrorBeforeAnythingStarts() throws {
        let dir = try temporaryDirectory()
        let file = "\(dir)/envoy.yaml"
        try "name: envoy\nsystem: {kind: envoy, config: e.yaml}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary())
        p.arguments = ["sweep", file, "--out", dir]
        p.environment = ProcessInfo.processInfo.environment.merging(["BALLAST_ENVOY": "/nonexistent/envoy"]) { $1 }
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 2, stderr)
        XCTAssertTrue(stderr.contains("scripts/ensure-envoy.sh"), stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/envoy"))
    }

    func testValidateChecksTheLoadFlags() throws {
        let dir = try temporaryDirectory()
        let file = "\(dir)/load.yaml"
        try "name: load\nsystem: {kind: server}\nload: {args: [-ramp, soon]}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let (p, out, err) = try start(["sweep", file, "--validate", "--out", dir])
        p.waitUntilExit()
        _ = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 2, stderr)
        XCTAssertTrue(stderr.contains("load.args does not validate"), stderr)
        XCTAssertTrue(stderr.contains("-ramp"), stderr)
    }
}

/// Text read on another thread, handed over once.
final class ReceivedText: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()

    func set(_ d: Data) {
        data = d
        done.signal()
    }

    /// Waits (at most 60 s) for the reader.
    func wait() -> String {
        _ = done.wait(timeout: .now() + 60)
        return String(decoding: data, as: UTF8.self)
    }
}
