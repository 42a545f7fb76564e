import Foundation
import Testbed
import XCTest

final class ExperimentTests: XCTestCase {
    let minimal = """
    name: t
    system: {kind: server}
    """

    func testDefaultsAndMatrix() throws {
        let e = try Experiment.parse(yaml: """
        name: quick
        duration: 2s
        warmup: 300ms
        repetitions: 2
        connections: [4, 16]
        baseline: shared/epoll
        system: {kind: server, args: [--workers, "4"]}
        load: {args: [-threads, "1"], path: "/?size=1"}
        matrix:
          io: [epoll, io_uring]
          balance: [shared, least-loaded]
        """)
        XCTAssertEqual(e.durationNanos, 2_000_000_000)
        XCTAssertEqual(e.warmupNanos, 300_000_000)
        XCTAssertEqual(e.variants.map(\.name), ["shared/epoll", "shared/io_uring", "least-loaded/epoll", "least-loaded/io_uring"])
        XCTAssertEqual(e.variants[1].args, ["--balance", "shared", "--io", "io_uring"])
        XCTAssertEqual(e.variants[1].axes, ["balance": "shared", "io": "io_uring"])
        XCTAssertEqual(e.loadPath, "/?size=1")
        let d = try Experiment.parse(yaml: minimal)
        XCTAssertEqual(d.repetitions, 3)
        XCTAssertEqual(d.connections, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])
        XCTAssertEqual(d.variants.map(\.name), ["default"])
    }

    func testSchemaErrorsNameThePath() {
        let cases: [(String, String)] = [
            ("name: t\nsystem: {kind: server}\ndurations: 1s", "durations: unknown field"),
            ("system: {kind: server}", "name: required"),
            ("name: t\nsystem: {kind: vm}", "system.kind: expected server, proxy, envoy or command, got 'vm'"),
            ("name: t\nsystem: {kind: server}\nconnections: [4, -1]", "connections[1]: expected an integer"),
            ("name: t\nsystem: {kind: server}\nduration: fast", "duration: expected a duration"),
            ("name: t\nsystem: {kind: proxy}", "system.config: a proxy needs a bootstrap config template"),
            ("name: t\nsystem: {kind: server}\nbaseline: nope\nvariants: [{name: a}]", "baseline: no variant is named 'nope'"),
            ("name: t\nsystem: {kind: server}\nvariants: [{name: a}, {name: a}]", "variants[1].name: duplicate variant name 'a'"),
            ("name: t\nsystem: {kind: server}\nplacement: {gpu: \"0\"}", "placement.gpu: unknown process"),
            ("name: a b\nsystem: {kind: server}", "name: use letters"),
            ("name: t\nsystem: {kind: server, argz: []}", "system.argz: unknown field"),
            ("name: [", "not valid YAML"),
        ]
        for (yaml, expected) in cases {
            XCTAssertThrowsError(try Experiment.parse(yaml: yaml), yaml) { error in
                XCTAssertTrue("\(error)".hasPrefix(expected) || "\(error)".contains(expected), "\(yaml) -> \(error)")
            }
        }
    }

    func testInterleavedOrderRotatesVariantsAndCoversEveryPointOnce() throws {
        let e = try Experiment.parse(yaml: """
        name: t
        repetitions: 2
        connections: [2, 4]
        system: {kind: server}
        variants: [{name: a}, {name: b}, {name: c}]
        """)
        let points = SweepPlan.points(e)
        XCTAssertEqual(points.count, 12)
        XCTAssertEqual(points.prefix(6).map(\.variant.name), ["a", "b", "c", "b", "c", "a"])
        XCTAssertEqual(points.prefix(6).map(\.connections), [2, 2, 2, 4, 4, 4])
        let keys = Set(points.map { "\($0.variant.name)-\($0.connections)-\($0.repetition)" })
        XCTAssertEqual(keys.count, 12)
    }

    func testRandomOrderIsASeededPermutation() throws {
        let yaml = "name: t\nrepetitions: 3\nconnections: [2, 4, 8]\norder: random\nseed: 7\nsystem: {kind: server}\nvariants: [{name: a}, {name: b}]"
        let a = SweepPlan.points(try Experiment.parse(yaml: yaml))
        let b = SweepPlan.points(try Experiment.parse(yaml: yaml))
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.count, 18)
        XCTAssertEqual(Set(a.map { "\($0.variant.name)-\($0.connections)-\($0.repetition)" }).count, 18)
        let other = SweepPlan.points(try Experiment.parse(yaml: yaml.replacingOccurrences(of: "seed: 7", with: "seed: 8")))
        XCTAssertNotEqual(a, other)
    }

    func testQuickKeepsThreeConnectionCountsAndOneRepetition() throws {
        let e = SweepPlan.quick(try Experiment.parse(yaml: minimal))
        XCTAssertEqual(e.repetitions, 1)
        XCTAssertEqual(e.connections, [2, 64, 1024])
        XCTAssertLessThanOrEqual(e.durationNanos, 1_000_000_000)
    }

    func testShippedExperimentsParse() throws {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let dir = root.appendingPathComponent("Experiments")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertFalse(files.isEmpty)
        for f in files {
            XCTAssertNoThrow(try Experiment.load(file: dir.appendingPathComponent(f).path), f)
        }
    }
}
