import Foundation
import Glibc
import XCTest

/// Envoy 1.40 and `ballast proxy` started on a bad LDS and a bad CDS file (the dynamic-config-fs
/// set-up of `DynamicConfigDifferentialTests`): both start without those sources' resources, then
/// take a good CDS file and a good LDS file moved in. After each step the status on the listener's
/// port, the lds / cds and listener / cluster manager stats and the names in /listeners must agree.
final class LenientStartDifferentialTests: XCTestCase {
    static let statNames = DynamicConfigDifferentialTests.statNames + [
        "listener_manager.listener_added", "listener_manager.total_listeners_active",
        "cluster_manager.cluster_added", "cluster_manager.active_clusters",
    ]

    /// The cases, as the README's feature table lists them (each followed by its two moves).
    static let caseNames = [
        "cds not YAML, lds with a Cluster @type",
        "cds refused for its content (connect_timeout 0s), lds routing to its cluster",
    ]

    static let stepNames = ["start", "good cds moved in", "good lds moved in"]

    func testBadCDSNotYAMLAndLDSWithAnotherType() throws {
        let seen = try run(Self.caseNames[0], cds: "resources: [ {bad\n") { _ in
            DynamicConfigDifferentialTests.clusters(version: "l1", port: 1)
        }
        XCTAssertEqual(seen[0].stats["cluster_manager.cds.update_failure"], "1")
        XCTAssertEqual(seen[0].stats["listener_manager.lds.update_rejected"], "1")
    }

    func testBadCDSContentAndLDSNamingItsCluster() throws {
        let bad = DynamicConfigDifferentialTests.clusters(version: "c1", port: 1)
            .replacingOccurrences(of: "connect_timeout: 1s", with: "connect_timeout: 0s")
        let seen = try run(Self.caseNames[1], cds: bad) { port in
            DynamicConfigDifferentialTests.listeners(version: "l1", port: port, direct: nil)
        }
        XCTAssertEqual(seen[0].stats["cluster_manager.cds.update_rejected"], "1")
        XCTAssertEqual(seen[0].stats["listener_manager.lds.update_rejected"], "1")
    }

    struct Observation: Equatable {
        var status: String
        var stats: [String: String]
        var listeners: [String]
    }

    /// Starts both proxies on `cds` and `lds(port)`, moves in a good CDS file, then a good LDS file;
    /// fails on any difference and returns Ballast's observations (start, after CDS, after LDS).
    private func run(_ name: String, cds: String, lds: @escaping (Int) -> String) throws -> [Observation] {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-lenient-\(getpid())-\(self.name.filter(\.isLetter).suffix(30))")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        typealias Subject = DynamicConfigDifferentialTests.Subject
        let envoy = try Subject("envoy", root: root, dead: 1, listeners: { port, _ in lds(port) }, clustersText: cds, listening: false) { config in
            (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
        }
        defer { envoy.proxy.stop() }
        let ballast = try Subject("ballast", root: root, dead: 1, listeners: { port, _ in lds(port) }, clustersText: cds, listening: false) { config in
            (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
        }
        defer { ballast.proxy.stop() }
        try envoy.proxy.waitReady()
        try ballast.proxy.waitReady()

        typealias Step = (act: (Subject) throws -> Void, stat: String, value: Int)
        let steps: [Step] = [
            ({ _ in }, "listener_manager.lds.update_attempt", 1),
            ({ try $0.replace("cds.yaml", DynamicConfigDifferentialTests.clusters(version: "c2", port: upstream.port)) }, "cluster_manager.cds.update_attempt", 2),
            ({ s in  // the set-up watches lds.yaml through watched_directory: a move into it re-reads the file
                try DynamicConfigDifferentialTests.listeners(version: "l2", port: s.listenerPort, direct: nil)
                    .write(toFile: s.dir.appendingPathComponent("lds.yaml").path, atomically: false, encoding: .utf8)
                try "x".write(toFile: s.dir.appendingPathComponent("trigger").path, atomically: false, encoding: .utf8)
                XCTAssertEqual(rename(s.dir.appendingPathComponent("trigger").path, s.dir.appendingPathComponent("lds/trigger").path), 0)
            }, "listener_manager.lds.update_attempt", 2),
        ]
        var report: [String] = []
        var ballastSeen: [Observation] = []
        for (i, step) in steps.enumerated() {
            var seen: [String: Observation] = [:]
            for s in [envoy, ballast] {
                try step.act(s)
                try s.wait(step.stat, step.value)
                seen[s.proxy.name] = try observe(s)
            }
            let e = seen["envoy"]!, b = seen["ballast"]!
            ballastSeen.append(b)
            let label = "\(name): \(Self.stepNames[i])"
            if e.status != b.status { report.append("\(label): status envoy '\(e.status)' ballast '\(b.status)'") }
            if e.listeners != b.listeners { report.append("\(label): /listeners envoy \(e.listeners) ballast \(b.listeners)") }
            for stat in Self.statNames where e.stats[stat] != b.stats[stat] {
                report.append("\(label): \(stat) envoy \(e.stats[stat] ?? "-") ballast \(b.stats[stat] ?? "-")")
            }
        }
        // The steps did what they say (in Ballast; Envoy agreed above).
        XCTAssertEqual(ballastSeen.map(\.status), ["refused", "refused", "200"])
        XCTAssertEqual(ballastSeen.map(\.listeners), [[], [], ["dyn_listener"]])
        XCTAssertEqual(ballastSeen.map { $0.stats["cluster_manager.active_clusters"] }, ["0", "1", "1"])
        XCTAssertEqual(ballastSeen.map { $0.stats["listener_manager.lds.update_success"] }, ["0", "0", "1"])
        XCTAssertEqual(ballastSeen.map { $0.stats["cluster_manager.cds.update_success"] }, ["0", "1", "1"])
        if !report.isEmpty { XCTFail("a bad LDS / CDS file at start differs from Envoy 1.40:\n" + report.joined(separator: "\n")) }
        return ballastSeen
    }

    private func observe(_ s: DynamicConfigDifferentialTests.Subject) throws -> Observation {
        var stats: [String: String] = [:]
        for line in try s.proxy.adminGet("/stats").text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            if Self.statNames.contains(name) { stats[name] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces) }
        }
        let listeners = try s.proxy.adminGet("/listeners").text.split(separator: "\n")
            .compactMap { $0.components(separatedBy: "::").first }.filter { !$0.isEmpty }.sorted()
        var status = "refused"
        if let c = try? RawClient(port: s.listenerPort) {
            c.send("GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
            status = c.readResponse().map { "\($0.status)" } ?? "no response"
        }
        return Observation(status: status, stats: stats, listeners: listeners)
    }
}
