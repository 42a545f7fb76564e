import Foundation
import XCTest
@testable import Report

final class LoadingTests: XCTestCase {
    /// fortio's own output (fields as `fortio load -json` writes them) plus Ballast's keys.
    static let fortioStyle = """
    {
      "RunType": "HTTP", "Labels": "quick", "StartTime": "2025-01-31T12:00:01.123456789Z",
      "RequestedQPS": "max", "RequestedDuration": "5s", "ActualQPS": 12345.5, "ActualDuration": 5000123456,
      "NumThreads": 8, "Version": "1.63.0",
      "DurationHistogram": {"Count": 61728, "Min": 0.00008, "Max": 0.012, "Sum": 9.9, "Avg": 0.00016, "StdDev": 0.00004,
        "Data": [{"Start": 0.00008, "End": 0.0001, "Percent": 12.5, "Count": 7716}],
        "Percentiles": [{"Percentile": 50, "Value": 0.00015}, {"Percentile": 90, "Value": 0.0002}, {"Percentile": 99.9, "Value": 0.004}]},
      "ErrorsDurationHistogram": {"Count": 0, "Min": 0, "Max": 0, "Sum": 0, "Avg": 0, "StdDev": 0, "Data": null},
      "Exactly": 0, "Jitter": false, "Uniform": false, "NoCatchUp": false, "RunID": 0,
      "RetCodes": {"200": 61700, "503": 20, "-1": 8},
      "Sizes": {"Count": 61728, "Min": 100, "Max": 100, "Sum": 6172800, "Avg": 100, "StdDev": 0, "Data": []},
      "HeaderSizes": {"Count": 61728, "Min": 90, "Max": 90, "Sum": 5555520, "Avg": 90, "StdDev": 0},
      "URL": "http://127.0.0.1:8080/echo", "SocketCount": 8, "AbortOn": 0,
      "Ballast": {"correctedHistogram": false, "loadCpus": "0"}
    }
    """

    func testFortioResultIsWrappedAndRoundTrips() throws {
        let point = try PointResult.make(fortioJSON: Data(Self.fortioStyle.utf8), source: "load.json", variant: "shared",
                                         axes: ["connections": .int(8), "io": .string("epoll")],
                                         workers: [WorkerFigures(worker: 0, accepted: 5, active: 5, requests: 40000),
                                                   WorkerFigures(worker: 1, accepted: 3, active: 3, requests: 21728)],
                                         environment: RunEnvironment(kernel: "6.8", cores: 2))
        XCTAssertEqual(point.actualQPS, 12345.5)
        XCTAssertEqual(point.actualDuration, 5_000_123_456)
        XCTAssertEqual(point.requestedQPS, "max")
        XCTAssertEqual(point.durationHistogram.value(atPercentile: 99.9), 0.004)
        XCTAssertEqual(point.errorCount, 28)
        XCTAssertEqual(point.variant, "shared")
        XCTAssertEqual(point.axes["io"], .string("epoll"))
        XCTAssertEqual(point.workers?.count, 2)
        // fortio keys this model does not know are kept.
        XCTAssertNotNil(point.otherFields["ErrorsDurationHistogram"])
        XCTAssertEqual(point.otherFields["NoCatchUp"], .bool(false))
        XCTAssertEqual(point.otherFields["RunID"], .number(0))
        XCTAssertEqual(point.ballast, .object(["correctedHistogram": .bool(false), "loadCpus": .string("0")]))

        let again = try JSONDecoder().decode(PointResult.self, from: JSONEncoder().encode(point))
        XCTAssertEqual(again, point)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(point)) as? [String: Any])
        XCTAssertEqual(object["RequestedQPS"] as? String, "max")
        XCTAssertEqual(object["ActualDuration"] as? Int, 5_000_123_456)
        XCTAssertNotNil(object["ErrorsDurationHistogram"])
    }

    func testWriteHelpersAndFileNames() throws {
        let dir = try temporaryDirectory(self)
        let p = fixturePoint(variant: "least-loaded", connections: 64, repetition: 2, qps: 1000, p50: 0.001, p90: 0.002, p99: 0.003,
                             axes: ["io": .string("io_uring"), "strategy": .string("least-loaded")])
        let name = ResultFiles.pointFileName(variant: p.variant, axes: p.axes)
        XCTAssertEqual(name, "least-loaded-io_uring-c64-r2.json")
        XCTAssertEqual(ResultFiles.pointFileName(variant: "a/b c", axes: ["connections": .int(2)]), "a-b-c-c2.json")
        try p.write(to: (dir as NSString).appendingPathComponent(name))
        var m = Manifest(experiment: "quick")
        m.points = [ManifestPoint(file: name, variant: p.variant, axes: p.axes)]
        try m.write(to: (dir as NSString).appendingPathComponent("manifest.json"))
        let set = try ResultSet.load(dir)
        XCTAssertEqual(set.points.first?.result, p)
        XCTAssertEqual(set.manifest?.format, Manifest.currentFormat)
        XCTAssertTrue(ResultFiles.runDirectory(experiment: "quick", date: Date(timeIntervalSince1970: 0)).hasSuffix("results/quick/19700101T000000Z"))
    }

    func testRunDirectoryLoads() throws {
        let dir = try temporaryDirectory(self)
        try writeRun(fixtureRun(), to: dir, baseline: "default")
        let set = try ResultSet.load(dir)
        XCTAssertEqual(set.points.count, 6 * 3 * 2)
        XCTAssertEqual(set.experiment, "fixture")
        XCTAssertEqual(set.manifest?.baseline, "default")
        XCTAssertEqual(set.environment?.workerCost, "block:200us")
        XCTAssertEqual(set.orderedSeries().map(\.description), ["default", "balanced"])
        let groups = set.groups()
        XCTAssertEqual(groups.count, 12)
        XCTAssertEqual(groups[0].connections, 2)
        XCTAssertEqual(groups[0].repetitions.map(\.repetition), [1, 2, 3])
        // manifest.json and the parent experiment directory lead to the same run.
        XCTAssertEqual(try ResultSet.load((dir as NSString).appendingPathComponent("manifest.json")).points.count, 36)
        let parent = try temporaryDirectory(self)
        let older = (parent as NSString).appendingPathComponent("20250101T000000Z")
        let newer = (parent as NSString).appendingPathComponent("20250202T000000Z")
        for d in [older, newer] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try writeRun(fixtureRun(connections: [2]), to: older)
        try writeRun(fixtureRun(connections: [2, 4]), to: newer)
        let newest = try ResultSet.load(parent)
        XCTAssertEqual(newest.directory, newer)
        XCTAssertEqual(newest.points.count, 12)
    }

    func testDirectoryWithoutManifestAndRepetitionsFromOrder() throws {
        let dir = try temporaryDirectory(self)
        for (i, qps) in [100.0, 110, 120].enumerated() {
            var p = fixturePoint(variant: "direct", connections: 4, repetition: 1, qps: qps, p50: 0.001, p90: 0.002, p99: 0.003)
            p.axes["repetition"] = nil
            try JSONEncoder().encode(p).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("p\(i).json")))
        }
        let set = try ResultSet.load(dir)
        XCTAssertEqual(set.points.map(\.repetition).sorted(), [1, 2, 3])
        XCTAssertTrue(set.warnings.contains { $0.contains("no manifest.json") })
    }

    // MARK: Malformed input: an error naming the file and the field, never a crash

    func malformed(_ json: String, name: String = "bad.json", file: StaticString = #filePath, line: UInt = #line) throws -> ResultFileError {
        let dir = try temporaryDirectory(self)
        let good = fixturePoint(variant: "v", connections: 2, repetition: 1, qps: 100, p50: 0.001, p90: 0.002, p99: 0.003)
        try JSONEncoder().encode(good).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("good.json")))
        let path = (dir as NSString).appendingPathComponent(name)
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try ResultSet.load(dir)
            XCTFail("loaded a malformed file", file: file, line: line)
            return ResultFileError(file: "", field: nil, message: "")
        } catch let error as ResultFileError {
            XCTAssertEqual(error.file, path, file: file, line: line)
            XCTAssertTrue(error.description.contains(name), error.description, file: file, line: line)
            return error
        }
    }

    /// A good point as a JSON object the tests can break.
    func goodObject() throws -> [String: Any] {
        let p = fixturePoint(variant: "v", connections: 2, repetition: 2, qps: 100, p50: 0.001, p90: 0.002, p99: 0.003, workers: [(1, 10), (1, 10)])
        return try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(p)) as? [String: Any])
    }

    func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    func testMalformedFilesNameTheFileAndField() throws {
        var e = try malformed("{ not json")
        XCTAssertNil(e.field)
        XCTAssertTrue(e.message.hasPrefix("not valid JSON"), e.description)

        e = try malformed("[1, 2]")
        XCTAssertNil(e.field)

        var o = try goodObject(); o["ActualQPS"] = nil
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "ActualQPS"); XCTAssertEqual(e.message, "missing")

        o = try goodObject(); o["ActualQPS"] = "fast"
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "ActualQPS"); XCTAssertEqual(e.message, "expected a number")

        o = try goodObject(); o["ActualQPS"] = -5
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "ActualQPS")

        o = try goodObject()
        var h = o["DurationHistogram"] as! [String: Any]
        var ps = h["Percentiles"] as! [[String: Any]]
        ps[1]["Value"] = "slow"
        h["Percentiles"] = ps; o["DurationHistogram"] = h
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "DurationHistogram.Percentiles[1].Value")

        o = try goodObject(); h = o["DurationHistogram"] as! [String: Any]; ps = h["Percentiles"] as! [[String: Any]]
        ps[0]["Percentile"] = 150; h["Percentiles"] = ps; o["DurationHistogram"] = h
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "DurationHistogram.Percentiles[0].Percentile")

        o = try goodObject(); o["variant"] = nil
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "variant")

        o = try goodObject(); o["axes"] = ["connections": 0]
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "axes.connections")

        o = try goodObject(); o["axes"] = ["connections": ["a"]]
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "axes.connections")

        o = try goodObject(); var ws = o["workers"] as! [[String: Any]]; ws[1]["requests"] = -1; o["workers"] = ws
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "workers[1].requests")

        o = try goodObject(); ws = o["workers"] as! [[String: Any]]; ws[1]["worker"] = 0; o["workers"] = ws
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "workers[1].worker")

        o = try goodObject(); o["environment"] = ["cores": "two"]
        e = try malformed(try json(o))
        XCTAssertEqual(e.field, "environment.cores")

        // Same variant, connections and repetition as good.json.
        o = try goodObject(); o["axes"] = ["connections": 2, "repetition": 1]
        e = try malformed(try json(o), name: "later.json")
        XCTAssertEqual(e.field, "axes.repetition")
        XCTAssertTrue(e.message.contains("good.json"), e.message)
    }

    func testMalformedManifestAndMissingFiles() throws {
        let dir = try temporaryDirectory(self)
        try writeRun(fixtureRun(connections: [2]), to: dir)
        let manifest = (dir as NSString).appendingPathComponent("manifest.json")
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifest))) as? [String: Any])
        var points = object["points"] as! [[String: Any]]
        points[1]["file"] = "gone.json"
        object["points"] = points
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: manifest))
        XCTAssertThrowsError(try ResultSet.load(dir)) { error in
            XCTAssertTrue("\(error)".contains("gone.json"), "\(error)")
        }
        points[1]["file"] = "../../etc/passwd"
        object["points"] = points
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: manifest))
        XCTAssertThrowsError(try ResultSet.load(dir)) { error in
            XCTAssertEqual((error as? ResultFileError)?.field, "points[1].file")
        }
        object["experiment"] = 7
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: manifest))
        XCTAssertThrowsError(try ResultSet.load(dir)) { error in
            XCTAssertEqual((error as? ResultFileError)?.file, manifest)
            XCTAssertEqual((error as? ResultFileError)?.field, "experiment")
        }
        XCTAssertThrowsError(try ResultSet.load((dir as NSString).appendingPathComponent("nope"))) { error in
            XCTAssertTrue("\(error)".contains("nope"))
        }
        let empty = try temporaryDirectory(self)
        XCTAssertThrowsError(try ResultSet.load(empty)) { error in
            XCTAssertTrue("\(error)".contains("no point files"), "\(error)")
        }
    }

    func testFailedPointsInTheManifestAreSkipped() throws {
        let dir = try temporaryDirectory(self)
        try writeRun(fixtureRun(connections: [2]), to: dir)
        let manifestPath = (dir as NSString).appendingPathComponent("manifest.json")
        var manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifestPath)))
        manifest.points!.append(ManifestPoint(file: "never-written.json", status: .failed, error: "proxy exited with signal 11"))
        manifest.complete = false
        try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: manifestPath))
        let set = try ResultSet.load(dir)
        XCTAssertEqual(set.points.count, 6)
        XCTAssertTrue(set.warnings.contains { $0.contains("signal 11") })
        XCTAssertTrue(set.warnings.contains { $0.contains("did not complete") })
    }
}
