import Foundation
import Glibc
import XCTest

/// EDS and RDS from files against real Envoy 1.40: an EDS cluster and a listener whose routes
/// come from an RDS file, both files replaced step by step (atomic rename). After each step both
/// proxies must answer the same statuses and bodies and show the same subscription and membership
/// stats.
final class XDSFilesDifferentialTests: XCTestCase {
    static let statNames = [
        "cluster.edsc.update_attempt", "cluster.edsc.update_success", "cluster.edsc.update_rejected",
        "cluster.edsc.update_failure", "cluster.edsc.update_empty", "cluster.edsc.update_no_rebuild",
        "cluster.edsc.init_fetch_timeout", "cluster.edsc.version", "cluster.edsc.version_text",
        "cluster.edsc.membership_total", "cluster.edsc.membership_healthy", "cluster.edsc.membership_change",
        "http.hp.rds.rc.config_reload", "http.hp.rds.rc.update_attempt", "http.hp.rds.rc.update_success",
        "http.hp.rds.rc.update_rejected", "http.hp.rds.rc.update_failure", "http.hp.rds.rc.update_empty",
        "http.hp.rds.rc.init_fetch_timeout", "http.hp.rds.rc.version", "http.hp.rds.rc.version_text",
    ]

    static let cdsStatNames = ["cluster_manager.cds.update_attempt", "cluster_manager.cds.update_success", "cluster_manager.cds.update_rejected",
                               "cluster_manager.cds.update_failure", "cluster_manager.cds.version", "cluster_manager.cds.version_text"]

    /// A ClusterLoadAssignment for `name` with these ports (one locality), or no resource.
    static func eds(_ version: String, name: String = "svc", ports: [Int]?) -> String {
        guard let ports else { return "version_info: \(version)\nresources: []\n" }
        let endpoints = ports.map { "    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \($0)}}}" }.joined(separator: "\n")
        return """
        version_info: \(version)
        resources:
        - "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
          cluster_name: \(name)
          endpoints:
          - lb_endpoints:
        \(endpoints)

        """
    }

    /// A RouteConfiguration `name`: /direct answers `body`, the rest goes to the EDS cluster.
    static func rds(_ version: String, name: String = "rc", body: String?) -> String {
        guard let body else { return "version_info: \(version)\nresources: []\n" }
        return """
        version_info: \(version)
        resources:
        - "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
          name: \(name)
          virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
            - {match: {prefix: "/direct"}, direct_response: {status: 200, body: {inline_string: "\(body)"}}}
            - {match: {prefix: "/"}, route: {cluster: edsc}}

        """
    }

    /// Each step: the file replaced, its text (given the live upstream's port and two closed
    /// ones), and the subscription's attempt count after it.
    typealias Step = (name: String, file: String, text: @Sendable (_ live: Int, _ dead: [Int]) -> String, attempts: Int)

    static let steps: [Step] = [
        ("rds without its resource at start: every request 404 NR", "", { _, _ in "" }, 1),
        ("rds moved in: the routes apply to the next request", "rds", { _, _ in rds("r1", body: "one") }, 2),
        // Both closed: which host round robin picks first after the update differs (Envoy's start is random).
        ("eds replaces the endpoint by two closed ones (host count 1 -> 2): 503", "eds", { _, d in eds("e2", ports: d) }, 2),
        ("eds removes one (host count 2 -> 1)", "eds", { _, d in eds("e3", ports: [d[0]]) }, 3),
        ("eds with the same endpoints: update_no_rebuild", "eds", { _, d in eds("e4", ports: [d[0]]) }, 4),
        ("eds without its resource: update_empty, the endpoints stay", "eds", { _, _ in eds("e5", ports: nil) }, 5),
        ("eds for another service_name: update_rejected", "eds", { l, _ in eds("e6", name: "other", ports: [l]) }, 6),
        ("eds with two resources: update_rejected", "eds", { l, _ in eds("e7", ports: [l]) + eds("e7", name: "x", ports: [l]).split(separator: "\n").dropFirst(2).joined(separator: "\n") + "\n" }, 7),
        ("eds not YAML: update_failure", "eds", { _, _ in "resources: [ {bad\n" }, 8),
        ("eds with an unknown field: update_rejected", "eds", { l, _ in eds("e9", ports: [l]).replacingOccurrences(of: "port_value", with: "port_valu") }, 9),
        ("eds back on the live endpoint", "eds", { l, _ in eds("e10", ports: [l]) }, 10),
        ("rds changes a route's answer", "rds", { _, _ in rds("r2", body: "two") }, 3),
        ("rds without its resource: update_empty, the routes stay", "rds", { _, _ in rds("r3", body: nil) }, 4),
        ("rds for another route_config_name: update_rejected", "rds", { _, _ in rds("r4", name: "other", body: "x") }, 5),
        ("rds not YAML: update_failure", "rds", { _, _ in "resources: [ {bad\n" }, 6),
        ("rds with an unknown field: update_rejected", "rds", { _, _ in rds("r5", body: "x").replacingOccurrences(of: "inline_string", with: "inline_strin") }, 7),
    ]

    static var stepNames: [String] { steps.map(\.name) }

    /// The directory holding one proxy's eds.yaml / rds.yaml (next to its access log).
    static func filesDirectory(_ log: String) -> String { String(log.dropLast(".log".count)) + "-xds" }

    func testEDSAndRDSFilesAgreeWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let dead = [try freePort(), try freePort()]
        let seen = try observeEnvoyAndBallast("xds-files", config: { port, admin, log in
            let dir = Self.filesDirectory(log)
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? Self.eds("e1", ports: [upstream.port]).write(toFile: dir + "/eds.yaml", atomically: false, encoding: .utf8)
            try? Self.rds("r0", body: nil).write(toFile: dir + "/rds.yaml", atomically: false, encoding: .utf8)
            return Self.edsAndRDSBootstrap(port: port, admin: admin, dir: dir)
        }, observe: { proxy, port in
            try Self.walk(Self.steps, proxy: proxy, port: port, live: upstream.port, dead: dead)
        })
        let differences = zip(seen.envoy, seen.ballast).filter { $0 != $1 }.map { "envoy: \($0.0)\nballast: \($0.1)" }
        XCTAssertEqual(seen.envoy.count, seen.ballast.count)
        // Sanity: the steps did what they say (in Ballast; Envoy agreed above).
        XCTAssertTrue(seen.ballast.contains("rds without its resource at start: every request 404 NR: / 404, /direct 404 "), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("rds with an unknown field: update_rejected: / 200, /direct 200 two"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("eds with an unknown field: update_rejected: cluster.edsc.update_rejected 3"))
        XCTAssertEqual(seen.ballast.filter { $0.hasPrefix("eds replaces the endpoint by two closed ones (host count 1 -> 2): 503: /clusters edsc::") && $0.contains("::weight::1") }.count, 2,
                       "both hosts in /clusters")
        XCTAssertTrue(seen.ballast.contains("eds replaces the endpoint by two closed ones (host count 1 -> 2): 503: cluster.edsc.membership_total 2"))
        if !differences.isEmpty { XCTFail("EDS / RDS from files differ from Envoy 1.40:\n" + differences.joined(separator: "\n")) }
    }

    /// A listener whose routes come from `dir`/rds.yaml and an EDS cluster reading `dir`/eds.yaml.
    static func edsAndRDSBootstrap(port: Int, admin: Int, dir: String) -> String {
        """
        node: {id: diff, cluster: diff}
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
        static_resources:
          listeners:
          - name: l
            address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: hp
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                  rds:
                    route_config_name: rc
                    config_source: {resource_api_version: V3, path_config_source: {path: \(dir)/rds.yaml}}
          clusters:
          - name: edsc
            type: EDS
            connect_timeout: 1s
            eds_cluster_config:
              service_name: svc
              eds_config: {resource_api_version: V3, path_config_source: {path: \(dir)/eds.yaml}}
        """
    }

    /// Replaces the files step by step (atomic rename) and records, after each, the answers to
    /// `/` and `/direct`, the EDS cluster's hosts in /clusters and `statNames`. The wait for each update is bounded (10 s).
    static func walk(_ steps: [Step], proxy: ProxyUnderTest, port: Int, live: Int, dead: [Int]) throws -> [String] {
        let dir = filesDirectory(proxy.accessLog)
        func stats() throws -> [String: String] {
            var out: [String: String] = [:]
            for line in try proxy.adminGet("/stats").text.split(separator: "\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = String(line[..<colon])
                if statNames.contains(name) || cdsStatNames.contains(name) { out[name] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces) }
            }
            return out
        }
        func get(_ path: String) throws -> String {
            let c = try RawClient(port: port)
            c.send("GET \(path) HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
            guard let r = c.readResponse() else { return "no response" }
            return path == "/direct" ? "\(r.status) \(r.text)" : "\(r.status)"
        }
        var lines: [String] = []
        for step in steps {
            if !step.file.isEmpty {
                let tmp = "\(dir)/\(step.file).yaml.tmp"
                try step.text(live, dead).write(toFile: tmp, atomically: false, encoding: .utf8)
                XCTAssertEqual(rename(tmp, "\(dir)/\(step.file).yaml"), 0)
            }
            // Wait (bounded) for the subscription to count the update; the start is read at once.
            let stat = ["eds": "cluster.edsc.update_attempt", "cds": "cluster_manager.cds.update_attempt"][step.file] ?? "http.hp.rds.rc.update_attempt"
            let deadline = Date().addingTimeInterval(10)
            while try !step.file.isEmpty && (Int(stats()[stat] ?? "") ?? 0) < step.attempts && Date() < deadline { usleep(20_000) }
            let s = try stats()
            lines.append("\(step.name): / \(try get("/")), /direct \(try get("/direct"))")
            // The EDS cluster's hosts in /clusters: flags, weight, priority (sorted: the order may differ).
            let hosts = try proxy.adminGet("/clusters").text.split(separator: "\n").filter {
                $0.hasPrefix("edsc::127.") && ["::health_flags::", "::weight::", "::priority::"].contains(where: $0.contains)
            }
            lines += hosts.map(String.init).sorted().map { "\(step.name): /clusters \($0)" }
            lines += s.keys.sorted().map { "\(step.name): \($0) \(s[$0] ?? "-")" }
        }
        return lines
    }

    /// A CDS cluster of type EDS (`connect_timeout` varies).
    static func cds(_ version: String, timeout: String, dir: String) -> String {
        """
        version_info: \(version)
        resources:
        - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
          name: edsc
          type: EDS
          connect_timeout: \(timeout)
          eds_cluster_config:
            service_name: svc
            eds_config: {resource_api_version: V3, path_config_source: {path: \(dir)/eds.yaml}}

        """
    }

    static let cdsSteps: [Step] = [
        ("start", "", { _, _ in "" }, 1),
        ("cds changes the EDS cluster: Envoy re-creates it, its EDS file is read again", "cds", { _, _ in "" }, 2),
        ("cds with the same cluster (a new version_info only): not re-created", "cds", { _, _ in "" }, 3),
        ("eds moved in: the endpoints of the CDS cluster change", "eds", { _, d in eds("e2", ports: d) }, 3),
    ]

    static var cdsStepNames: [String] { cdsSteps.map(\.name).dropFirst().map { $0 } }

    /// An EDS cluster delivered by CDS: a CDS update that changes it makes Envoy re-create it (its
    /// EDS subscription reads the file again); one that does not leaves it alone.
    func testEDSClusterFromCDSAgreesWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let dead = [try freePort(), try freePort()]
        let seen = try observeEnvoyAndBallast("xds-cds-eds", config: { port, admin, log in
            let dir = Self.filesDirectory(log)
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? Self.eds("e1", ports: [upstream.port]).write(toFile: dir + "/eds.yaml", atomically: false, encoding: .utf8)
            try? Self.cds("c1", timeout: "1s", dir: dir).write(toFile: dir + "/cds.yaml", atomically: false, encoding: .utf8)
            return """
            node: {id: diff, cluster: diff}
            admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
            dynamic_resources:
              cds_config: {resource_api_version: V3, path_config_source: {path: \(dir)/cds.yaml}}
            static_resources:
              listeners:
              - name: l
                address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: hp
                      http_filters:
                      - name: envoy.filters.http.router
                        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                      route_config:
                        validate_clusters: false  # Envoy: edsc comes from CDS after the listener is built
                        virtual_hosts:
                        - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: edsc}}]}
            """
        }, observe: { proxy, port in
            let dir = Self.filesDirectory(proxy.accessLog)
            // The CDS texts name this proxy's own EDS file.
            let steps: [Step] = Self.cdsSteps.enumerated().map { i, step in
                switch i {
                case 1: (step.name, step.file, { _, _ in Self.cds("c2", timeout: "2s", dir: dir) }, step.attempts)
                case 2: (step.name, step.file, { _, _ in Self.cds("c3", timeout: "2s", dir: dir) }, step.attempts)
                default: step
                }
            }
            return try Self.walk(steps, proxy: proxy, port: port, live: upstream.port, dead: dead)
        })
        let differences = zip(seen.envoy, seen.ballast).filter { $0 != $1 }.map { "envoy: \($0.0)\nballast: \($0.1)" }
        XCTAssertEqual(seen.envoy.count, seen.ballast.count)
        let changed = Self.cdsSteps[1].name
        XCTAssertTrue(seen.ballast.contains("\(changed): cluster.edsc.update_attempt 2"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("\(changed): cluster.edsc.membership_change 2"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains { $0.hasPrefix("eds moved in: the endpoints of the CDS cluster change: / 503,") }, "\(seen.ballast)")
        if !differences.isEmpty { XCTFail("an EDS cluster from CDS differs from Envoy 1.40:\n" + differences.joined(separator: "\n")) }
    }

    static let startSteps: [Step] = [
        ("start with an EDS file for another service_name and an RDS file that is not YAML", "", { _, _ in "" }, 1),
        ("rds moved in after the failed start", "rds", { _, _ in rds("r1", body: "one") }, 2),
        ("eds moved in after the failed start", "eds", { l, _ in eds("e1", ports: [l]) }, 2),
    ]

    static var startStepNames: [String] { startSteps.map(\.name) }

    /// The proxy starts although both files fail (Envoy's start: no hosts, no routes, the
    /// failures counted), and takes the files once good ones are moved in.
    func testBadFilesAtStartAgreeWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let dead = [try freePort(), try freePort()]
        let seen = try observeEnvoyAndBallast("xds-start", config: { port, admin, log in
            let dir = Self.filesDirectory(log)
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try? Self.eds("e0", name: "other", ports: [upstream.port]).write(toFile: dir + "/eds.yaml", atomically: false, encoding: .utf8)
            try? "resources: [ {bad\n".write(toFile: dir + "/rds.yaml", atomically: false, encoding: .utf8)
            return Self.edsAndRDSBootstrap(port: port, admin: admin, dir: dir)
        }, observe: { proxy, port in
            try Self.walk(Self.startSteps, proxy: proxy, port: port, live: upstream.port, dead: dead)
        })
        let differences = zip(seen.envoy, seen.ballast).filter { $0 != $1 }.map { "envoy: \($0.0)\nballast: \($0.1)" }
        XCTAssertEqual(seen.envoy.count, seen.ballast.count)
        let start = Self.startSteps[0].name
        XCTAssertTrue(seen.ballast.contains("\(start): / 404, /direct 404 "), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("\(start): cluster.edsc.update_rejected 1"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("\(start): http.hp.rds.rc.update_failure 1"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("eds moved in after the failed start: / 200, /direct 200 one"), "\(seen.ballast)")
        if !differences.isEmpty { XCTFail("bad EDS / RDS files at start differ from Envoy 1.40:\n" + differences.joined(separator: "\n")) }
    }
}
