import Foundation
import Report
@testable import Testbed
import XCTest

/// Envoy's admin figures, config rendering and the pre-flight check, without running Envoy.
final class EnvoySystemTests: XCTestCase {
    func testPerWorkerFiguresFromEnvoyStats() throws {
        let text = """
        listener.127.0.0.1_10000.worker_1.downstream_cx_active: 5
        listener.127.0.0.1_10000.worker_0.downstream_cx_active: 2\r
        listener.127.0.0.1_10000.worker_0.downstream_cx_total: 3
        listener.127.0.0.1_10000.worker_1.downstream_cx_total: 7
        listener.127.0.0.1_10000.worker_1.downstream_cx_destroy: 2
        listener.admin.downstream_cx_active: 1
        """
        let workers = try XCTUnwrap(EnvoySystem.parseWorkerStats(text))
        XCTAssertEqual(workers.map(\.worker), [0, 1])
        XCTAssertEqual(workers.map(\.accepted), [3, 7])
        XCTAssertEqual(workers.map(\.active), [2, 5])
        XCTAssertEqual(workers.map(\.requests), [0, 0])
        XCTAssertNil(EnvoySystem.parseWorkerStats("server.live: 1\n"))
    }

    func testChunkedAdminBodyIsDecoded() {
        XCTAssertEqual(AdminClient.dechunk("5\r\nhello\r\n7;x=1\r\n, world\r\n0\r\n\r\n"), "hello, world")
        XCTAssertEqual(AdminClient.dechunk("0\r\n\r\n"), "")
    }

    func testConfigKeepsTheTemplateExtensionAndFillsVariantVars() throws {
        let dir = NSTemporaryDirectory() + "ballast-launch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "port: {{LISTEN_PORT}}\nadmin: {{ADMIN_PORT}}\n{{LISTENER_OPTIONS}}\n".write(toFile: "\(dir)/t.yaml", atomically: true, encoding: .utf8)
        let system = Experiment.SystemSpec(kind: .envoy, args: ["--concurrency", "4"], config: "\(dir)/t.yaml")
        var variant = Experiment.Variant(name: "envoy/shared", args: [], axes: [:])
        variant.configVars = ["LISTENER_OPTIONS": "enable_reuse_port: false"]
        let launch = SystemLaunch(system: system, variant: variant)
        let path = try XCTUnwrap(launch.renderConfig(ports: .init(listen: 10, admin: 11, upstream: 12), directory: dir, tag: "p1-envoy/shared"))
        XCTAssertEqual(path, "\(dir)/p1-envoy_shared.yaml")
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "port: 10\nadmin: 11\nenable_reuse_port: false\n")
        XCTAssertEqual(launch.commandLine(ballast: "b", envoy: "/e", config: path, validate: true),
                       ["/e", "-c", path, "--disable-hot-restart", "--concurrency", "4", "--mode", "validate"])

        let unset = SystemLaunch(system: system, variant: Experiment.Variant(name: "v", args: [], axes: [:]))
        XCTAssertThrowsError(try unset.renderConfig(ports: .init(listen: 1, admin: 2, upstream: 3), directory: dir, tag: "x")) {
            XCTAssertTrue("\($0)".contains("{{LISTENER_OPTIONS}}"), "\($0)")
        }
    }

    func testPeerValidationCommands() {
        let nginx = Experiment.SystemSpec(kind: .command, config: "n.conf", command: ["nginx", "-c", "{{CONFIG}}"])
        let haproxy = Experiment.SystemSpec(kind: .command, config: "h.cfg", command: ["haproxy", "-f", "{{CONFIG}}"])
        let v = Experiment.Variant(name: "v", args: [], axes: [:])
        XCTAssertEqual(SystemLaunch(system: nginx, variant: v).commandLine(ballast: "b", envoy: nil, config: "/r.conf", validate: true),
                       ["nginx", "-t", "-c", "/r.conf"])
        XCTAssertEqual(SystemLaunch(system: haproxy, variant: v).commandLine(ballast: "b", envoy: nil, config: "/r.cfg", validate: true),
                       ["haproxy", "-c", "-f", "/r.cfg"])
        let server = Experiment.SystemSpec(kind: .server, args: ["--workers", "2"])
        let bad = Experiment.Variant(name: "v", args: ["--balance", "leastloaded"], axes: [:])
        XCTAssertEqual(SystemLaunch(system: server, variant: bad).commandLine(ballast: "b", envoy: nil, config: nil, validate: true).suffix(5),
                       ["--workers", "2", "--balance", "leastloaded", "--check"])
    }

    func testEnvoyKindAndConfigVarsParse() throws {
        let e = try Experiment.parse(yaml: """
        name: t
        system: {kind: proxy, config: p.yaml}
        variants:
          - {name: envoy, system: {kind: envoy, config: e.yaml, args: [--concurrency, "4"]}, config_vars: {LISTENER_OPTIONS: "enable_reuse_port: false"}}
          - {name: ballast, args: [--balance, shared]}
        """)
        XCTAssertEqual(e.system(for: e.variants[0]).kind, .envoy)
        XCTAssertEqual(e.variants[0].configVars, ["LISTENER_OPTIONS": "enable_reuse_port: false"])
        XCTAssertThrowsError(try Experiment.parse(yaml: "name: t\nsystem: {kind: envoy}\n")) {
            XCTAssertTrue("\($0)".hasPrefix("system.config:"), "\($0)")
        }
        XCTAssertThrowsError(try Experiment.parse(yaml: "name: t\nsystem: {kind: server}\nvariants: [{name: a, config_vars: {K: [1]}}]\n")) {
            XCTAssertTrue("\($0)".hasPrefix("variants[0].config_vars.K:"), "\($0)")
        }
    }

    func testTablesNameExistingVariants() throws {
        let base = "name: t\nsystem: {kind: server}\nvariants: [{name: a}, {name: b}]\n"
        let e = try Experiment.parse(yaml: base + "tables: [{title: a vs b, pairs: [[a, b]]}]\n")
        XCTAssertEqual(e.tables, [ComparisonTableSpec(title: "a vs b", pairs: [["a", "b"]])])
        XCTAssertThrowsError(try Experiment.parse(yaml: base + "tables: [{title: x, pairs: [[a, c]]}]\n")) {
            XCTAssertEqual("\($0)", "tables[0].pairs[0]: no variant is named 'c'")
        }
        XCTAssertThrowsError(try Experiment.parse(yaml: base + "tables: [{title: x, pairs: [[a]]}]\n")) {
            XCTAssertEqual("\($0)", "tables[0].pairs[0]: expected [candidate, baseline]")
        }
    }

    func testShippedEnvoyExperimentValidatesEveryPair() throws {
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let e = try Experiment.load(file: root.appendingPathComponent("Experiments/envoy-vs-ballast.yaml").path)
        XCTAssertEqual(e.variants.count, 9)
        XCTAssertEqual(e.connections, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])
        XCTAssertEqual(e.durationNanos, 30_000_000_000)
        XCTAssertEqual(e.repetitions, 3)
        XCTAssertEqual(e.tables.map(\.title), ["Envoy exact_balance vs shared", "ballast least-loaded vs shared", "ballast vs Envoy, same strategy"])
    }
}
