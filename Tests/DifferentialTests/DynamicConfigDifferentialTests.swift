import Foundation
import Glibc
import XCTest

/// File-based LDS / CDS (Envoy's dynamic-config-fs shape) against real Envoy 1.40: both proxies
/// start from their own copy of the same files, then get the same file replacements (atomic
/// `rename`, a bad YAML text, a wrong `@type`, an in-place write, a listener change). After each
/// step both must answer the same status and show the same subscription stats.
final class DynamicConfigDifferentialTests: XCTestCase {
    static let statNames = ["cluster_manager.cds.update_attempt", "cluster_manager.cds.update_success",
                            "cluster_manager.cds.update_rejected", "cluster_manager.cds.update_failure",
                            "cluster_manager.cds.version", "listener_manager.lds.update_attempt",
                            "listener_manager.lds.update_success", "listener_manager.lds.update_rejected",
                            "listener_manager.lds.update_failure", "listener_manager.lds.version",
                            "cluster_manager.cds.version_text", "listener_manager.lds.version_text"]

    /// One proxy with its own files.
    final class Subject {
        let proxy: ProxyUnderTest
        let dir: URL
        let listenerPort: Int

        /// `listeners`: the first LDS file's text for a listener port and an access-log path
        /// (nil: `DynamicConfigDifferentialTests.listeners`); `clustersText`: the first CDS file's
        /// (nil: `clusters` to `dead`); `listening`: whether the listener port answers at start.
        init(_ name: String, root: URL, dead: Int, listeners: ((_ port: Int, _ log: String) -> String)? = nil,
             clustersText: String? = nil, listening: Bool = true, command: (String) -> (String, [String])) throws {
            dir = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            listenerPort = try freePort()
            let admin = try freePort()
            try (clustersText ?? DynamicConfigDifferentialTests.clusters(version: "c1", port: dead)).write(toFile: dir.appendingPathComponent("cds.yaml").path, atomically: false, encoding: .utf8)
            let log = dir.appendingPathComponent("unused.log").path
            let lds = listeners?(listenerPort, log) ?? DynamicConfigDifferentialTests.listeners(version: nil, port: listenerPort, direct: nil)
            try lds.write(toFile: dir.appendingPathComponent("lds.yaml").path, atomically: false, encoding: .utf8)
            let bootstrap = """
            node: {id: diff, cluster: diff}
            dynamic_resources:
              cds_config:
                resource_api_version: V3
                path_config_source: {path: \(dir.path)/cds.yaml}
              lds_config:
                resource_api_version: V3
                path_config_source:
                  path: \(dir.path)/lds.yaml
                  watched_directory: {path: \(dir.path)/lds}
            admin:
              address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}
            """
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("lds"), withIntermediateDirectories: true)
            let config = dir.appendingPathComponent("bootstrap.yaml").path
            try bootstrap.write(toFile: config, atomically: false, encoding: .utf8)
            let (exe, args) = command(config)
            proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: listening ? ["l": listenerPort] : [:], adminPort: admin,
                                       accessLog: log, directory: dir)
        }

        /// Writes `text` next to `file` and renames it over `file` (the atomic replace).
        func replace(_ file: String, _ text: String) throws {
            let tmp = dir.appendingPathComponent(file + ".tmp").path
            try text.write(toFile: tmp, atomically: false, encoding: .utf8)
            XCTAssertEqual(rename(tmp, dir.appendingPathComponent(file).path), 0)
        }

        func stats() throws -> [String: String] {
            var out: [String: String] = [:]
            for line in try proxy.adminGet("/stats").text.split(separator: "\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = String(line[..<colon])
                if DynamicConfigDifferentialTests.statNames.contains(name) { out[name] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces) }
            }
            return out
        }

        /// Waits (bounded, 10 s) until `stat` reaches `value`.
        func wait(_ stat: String, _ value: Int) throws {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if let v = try stats()[stat], Int(v) ?? 0 >= value { return }
                usleep(20_000)
            }
            throw DifferentialError("\(proxy.name): \(stat) did not reach \(value): \(try stats())")
        }

        func status(_ path: String = "/") throws -> String {
            let c = try RawClient(port: listenerPort)
            c.send("GET \(path) HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
            guard let r = c.readResponse() else { return "no response" }
            return "\(r.status) \(r.text)"
        }
    }

    /// The steps, as the README's feature table lists them.
    static let stepNames = [
        "start",
        "cds moved in: the endpoint moves to the live upstream",
        "cds not YAML: update_failure, the last good stays",
        "cds with a Listener @type: update_rejected",
        "cds written in place (not noticed), then a good one moved in",
        "cds with an unknown field: update_rejected",
        "lds: a file moved into watched_directory re-reads lds.yaml",
    ]

    static func clusters(version: String, port: Int) -> String {
        """
        version_info: "\(version)"
        resources:
        - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
          name: dyn_cluster
          type: STATIC
          connect_timeout: 1s
          load_assignment:
            cluster_name: dyn_cluster
            endpoints:
            - lb_endpoints:
              - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}}

        """
    }

    /// One listener routing everything to dyn_cluster, or answering `direct` itself.
    static func listeners(version: String?, port: Int, direct: String?) -> String {
        let action = direct.map { "direct_response: {status: 200, body: {inline_string: \"\($0)\"}}" } ?? "route: {cluster: dyn_cluster}"
        return """
        \(version.map { "version_info: \($0)\n" } ?? "")resources:
        - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
          name: dyn_listener
          address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
          filter_chains:
          - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: dyn
                http_filters:
                - name: envoy.filters.http.router
                  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                route_config:
                  virtual_hosts:
                  - name: all
                    domains: ["*"]
                    routes:
                    - match: {prefix: "/"}
                      \(action)

        """
    }

    func testFileUpdatesAgreeWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-dyn-differential-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let dead = try freePort()
        let envoy = try Subject("envoy", root: root, dead: dead) { config in
            (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
        }
        defer { envoy.proxy.stop() }
        let ballast = try Subject("ballast", root: root, dead: dead) { config in
            (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
        }
        defer { ballast.proxy.stop() }
        try envoy.proxy.waitReady()
        try ballast.proxy.waitReady()

        // Each step: what to do to a subject's files, then the stat to wait for and its value.
        typealias Step = (name: String, act: (Subject) throws -> Void, stat: String, value: Int)
        let cds = "cluster_manager.cds.update_attempt"
        let lds = "listener_manager.lds.update_attempt"
        let steps: [Step] = [
            ("start", { _ in }, cds, 1),
            ("cds moved in: the endpoint moves to the live upstream", { try $0.replace("cds.yaml", Self.clusters(version: "c2", port: upstream.port)) }, cds, 2),
            ("cds not YAML: update_failure, the last good stays", { try $0.replace("cds.yaml", "resources: [ {bad\n") }, cds, 3),
            ("cds with a Listener @type: update_rejected", { try $0.replace("cds.yaml", Self.listeners(version: "x", port: 1, direct: nil).replacingOccurrences(of: "version_info: x", with: "version_info: c3")) }, cds, 4),
            ("cds written in place (not noticed), then a good one moved in", { s in
                try Self.clusters(version: "c4", port: dead).write(toFile: s.dir.appendingPathComponent("cds.yaml").path, atomically: false, encoding: .utf8)
                try s.replace("cds.yaml", Self.clusters(version: "c5", port: upstream.port))
            }, cds, 5),
            ("cds with an unknown field: update_rejected", { try $0.replace("cds.yaml", Self.clusters(version: "c6", port: dead).replacingOccurrences(of: "port_value", with: "port_valu")) }, cds, 6),
            ("lds: a file moved into watched_directory re-reads lds.yaml", { s in
                try Self.listeners(version: "l2", port: s.listenerPort, direct: "from lds").write(toFile: s.dir.appendingPathComponent("lds.yaml").path, atomically: false, encoding: .utf8)
                try "x".write(toFile: s.dir.appendingPathComponent("trigger").path, atomically: false, encoding: .utf8)
                XCTAssertEqual(rename(s.dir.appendingPathComponent("trigger").path, s.dir.appendingPathComponent("lds/trigger").path), 0)
            }, lds, 2),
        ]
        XCTAssertEqual(steps.map(\.name), Self.stepNames, "the README table's rows")
        var report: [String] = []
        for step in steps {
            var seen: [String: (String, [String: String])] = [:]
            for s in [envoy, ballast] {
                try step.act(s)
                try s.wait(step.stat, step.value)
                seen[s.proxy.name] = (try s.status(), try s.stats())
            }
            let e = seen["envoy"]!, b = seen["ballast"]!
            if e.0 != b.0 { report.append("\(step.name): status envoy '\(e.0)' ballast '\(b.0)'") }
            for name in Self.statNames where e.1[name] != b.1[name] {
                report.append("\(step.name): \(name) envoy \(e.1[name] ?? "-") ballast \(b.1[name] ?? "-")")
            }
        }
        // Sanity: the steps did what they say (in Ballast, and Envoy agreed above).
        let final = try ballast.stats()
        XCTAssertEqual(final["cluster_manager.cds.update_success"], "3")
        XCTAssertEqual(final["cluster_manager.cds.update_failure"], "1")
        XCTAssertEqual(final["cluster_manager.cds.update_rejected"], "2")
        XCTAssertEqual(try ballast.status(), "200 from lds")
        if !report.isEmpty { XCTFail("dynamic config differs from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }
}
