import Foundation
import Glibc
import XCTest

/// Clusters added and removed by CDS file updates, against real Envoy 1.40, on the set-up of
/// `DynamicConfigDifferentialTests` (both proxies from the same LDS / CDS files, replaced step by
/// step). After each step both must agree on the request's status and body, its access-log
/// line (status, flags, details, cluster), the `cluster_manager.*`, `cds` / `lds` and per-cluster
/// stats (a removed cluster's are gone), the cluster names of /clusters and /config_dump's
/// `dynamic_active_clusters` with their versions.
final class CDSAddRemoveDifferentialTests: XCTestCase {
    typealias Subject = DynamicConfigDifferentialTests.Subject

    static let statNames = DynamicConfigDifferentialTests.statNames + [
        "cluster_manager.cluster_added", "cluster_manager.cluster_modified", "cluster_manager.cluster_removed",
        "cluster_manager.cluster_updated", "cluster_manager.active_clusters", "cluster_manager.warming_clusters",
        "http.dyn.no_cluster", "http.dyn.no_route",
    ] + ["dyn_cluster", "extra", "slow"].flatMap { c in
        ["upstream_rq_total", "upstream_cx_total", "membership_total", "membership_change"].map { "cluster.\(c).\($0)" }
    }

    /// The steps, as the README's feature table lists them.
    static let stepNames = [
        "lds routes to clusters CDS has not delivered (validate_clusters false): 503 NC",
        "cds adds a cluster and changes the route's one",
        "cds removes the route's cluster: 503 NC, its stats go",
        "cds adds it back: the next request reaches it, its stats start afresh",
        "cds removes a cluster while a request to it is in flight: the request finishes",
        "lds routes to an unknown cluster with validate_clusters on: update_rejected",
        "cds removes every cluster: 503 NC",
    ]

    static func cluster(_ name: String, port: Int) -> String {
        """
        - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
          name: \(name)
          type: STATIC
          connect_timeout: 1s
          load_assignment:
            cluster_name: \(name)
            endpoints:
            - lb_endpoints:
              - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}}

        """
    }

    static func clusters(_ version: String, _ list: [(String, Int)]) -> String {
        list.isEmpty ? "version_info: \"\(version)\"\nresources: []\n"
            : "version_info: \"\(version)\"\nresources:\n" + list.map { cluster($0.0, port: $0.1) }.joined()
    }

    /// The listener: an access log into the file the test reads, `/slow` to slow, the rest to `cluster`.
    static func listener(_ version: String, port: Int, log: String, cluster: String, validate: Bool) -> String {
        """
        version_info: "\(version)"
        resources:
        - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
          name: dyn_listener
          address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
          filter_chains:
          - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: dyn
                access_log:
                - name: envoy.access_loggers.file
                  typed_config:
                    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                    path: \(log)
                    log_format: {text_format_source: {inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_CLUSTER%\\n"}}
                http_filters:
                - name: envoy.filters.http.router
                  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                route_config:
                  validate_clusters: \(validate)
                  virtual_hosts:
                  - name: all
                    domains: ["*"]
                    routes:
                    - match: {prefix: "/slow"}
                      route: {cluster: slow}
                    - match: {prefix: "/"}
                      route: {cluster: \(cluster)}

        """
    }

    /// What one subject showed after a step.
    struct Seen: Equatable {
        var responses: [String] = []
        var log: [String] = []
        var stats: [String: String] = [:]
        var clusters: [String] = []
        var dumped: [String] = []
    }

    func testClustersAddedAndRemovedAgreeWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-cds-add-remove-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let slowUpstream = try RecordingUpstream(replyDelayMicros: 700_000)
        defer { slowUpstream.stop() }
        let dead = try freePort()
        // The first listener logs already (Ballast sets up access logs at start).
        let first = { (port: Int, log: String) in Self.listener("l1", port: port, log: log, cluster: "dyn_cluster", validate: false) }
        let envoy = try Subject("envoy", root: root, dead: dead, listeners: first) { config in
            (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0",
                           "--file-flush-interval-msec", "10"])
        }
        defer { envoy.proxy.stop() }
        let ballast = try Subject("ballast", root: root, dead: dead, listeners: first) { config in
            (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
        }
        defer { ballast.proxy.stop() }
        try envoy.proxy.waitReady()
        try ballast.proxy.waitReady()

        let up = upstream.port, slow = slowUpstream.port
        func lds(_ s: Subject, _ version: String, cluster: String = "dyn_cluster", validate: Bool = false) throws {
            try s.replace("lds.yaml", Self.listener(version, port: s.listenerPort, log: s.proxy.accessLog, cluster: cluster, validate: validate))
            // The set-up's LDS source has a watched_directory: a file moved into it re-reads lds.yaml.
            let trigger = s.dir.appendingPathComponent("trigger-\(version)").path
            try "x".write(toFile: trigger, atomically: false, encoding: .utf8)
            XCTAssertEqual(rename(trigger, s.dir.appendingPathComponent("lds/trigger-\(version)").path), 0)
        }
        // A request held at the slow upstream while the update lands (step 5), per subject.
        var held: [String: RawClient] = [:]
        typealias Step = (name: String, act: (Subject) throws -> Void, stat: String, value: Int, path: String)
        let cds = "cluster_manager.cds.update_attempt"
        let ldsAttempts = "listener_manager.lds.update_attempt"
        let steps: [Step] = [
            (Self.stepNames[0], { try lds($0, "l2") }, ldsAttempts, 2, "/slow"),
            (Self.stepNames[1], { try $0.replace("cds.yaml", Self.clusters("c2", [("dyn_cluster", up), ("extra", up)])) }, cds, 2, "/"),
            (Self.stepNames[2], { try $0.replace("cds.yaml", Self.clusters("c3", [("extra", up)])) }, cds, 3, "/"),
            (Self.stepNames[3], { try $0.replace("cds.yaml", Self.clusters("c4", [("dyn_cluster", up), ("extra", up), ("slow", slow)])) }, cds, 4, "/"),
            (Self.stepNames[4], { s in
                let c = try RawClient(port: s.listenerPort)
                c.send("GET /slow HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
                held[s.proxy.name] = c
                let deadline = Date().addingTimeInterval(5)
                while slowUpstream.takeHeads().isEmpty && Date() < deadline { usleep(5_000) }
                try s.replace("cds.yaml", Self.clusters("c5", [("dyn_cluster", up), ("extra", up)]))
            }, cds, 5, "/slow"),
            (Self.stepNames[5], { try lds($0, "l3", cluster: "nowhere", validate: true) }, ldsAttempts, 3, "/"),
            (Self.stepNames[6], { try $0.replace("cds.yaml", Self.clusters("c6", [])) }, cds, 6, "/"),
        ]
        var report: [String] = []
        for step in steps {
            var seen: [String: Seen] = [:]
            for s in [envoy, ballast] {
                let offset = s.proxy.logOffset()
                try step.act(s)
                try s.wait(step.stat, step.value)
                var v = Seen()
                if let c = held.removeValue(forKey: s.proxy.name) {
                    v.responses.append("held: " + (c.readResponse().map { "\($0.status) \($0.text)" } ?? "no response"))
                }
                v.responses.append(try s.status(step.path))
                let expected = v.responses.count
                v.log = s.proxy.logLines(after: offset) { _ in true }
                let deadline = Date().addingTimeInterval(3)
                while v.log.count < expected && Date() < deadline {
                    usleep(10_000)
                    v.log = s.proxy.logLines(after: offset) { _ in true }
                }
                v.stats = try Self.stats(s)
                v.clusters = try Self.clusterNames(s)
                v.dumped = try Self.dumpedClusters(s)
                seen[s.proxy.name] = v
            }
            let e = seen["envoy"]!, b = seen["ballast"]!
            if e.responses != b.responses { report.append("\(step.name): responses envoy \(e.responses) ballast \(b.responses)") }
            if e.log.sorted() != b.log.sorted() { report.append("\(step.name): access log envoy \(e.log) ballast \(b.log)") }
            for name in Self.statNames where e.stats[name] != b.stats[name] {
                report.append("\(step.name): \(name) envoy \(e.stats[name] ?? "-") ballast \(b.stats[name] ?? "-")")
            }
            if e.clusters != b.clusters { report.append("\(step.name): /clusters envoy \(e.clusters) ballast \(b.clusters)") }
            if e.dumped != b.dumped { report.append("\(step.name): dynamic_active_clusters envoy \(e.dumped) ballast \(b.dumped)") }
        }
        // Sanity: the steps did what they say (in Ballast, and Envoy agreed above).
        let final = try Self.stats(ballast)
        XCTAssertEqual(final["cluster_manager.cds.update_success"], "6")
        XCTAssertEqual(final["cluster_manager.cluster_removed"], "4")
        XCTAssertEqual(final["listener_manager.lds.update_rejected"], "1")
        XCTAssertEqual(final["http.dyn.no_cluster"], "4")
        XCTAssertTrue(report.isEmpty, "Ballast and Envoy 1.40 disagree:\n" + report.joined(separator: "\n"))
    }

    static func stats(_ s: Subject) throws -> [String: String] {
        var out: [String: String] = [:]
        for line in try s.proxy.adminGet("/stats").text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            if statNames.contains(name) { out[name] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces) }
        }
        return out
    }

    /// The cluster names /clusters lists, sorted.
    static func clusterNames(_ s: Subject) throws -> [String] {
        let lines = try s.proxy.adminGet("/clusters").text.split(separator: "\n")
        return Set(lines.compactMap { line in line.range(of: "::observability_name::").map { String(line[..<$0.lowerBound]) } }).sorted()
    }

    /// `dynamic_active_clusters` as "name@version", sorted.
    static func dumpedClusters(_ s: Subject) throws -> [String] {
        let data = Data(try s.proxy.adminGet("/config_dump").text.utf8)
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let configs = json["configs"] as? [[String: Any]],
              let dump = configs.first(where: { ($0["@type"] as? String)?.hasSuffix("ClustersConfigDump") == true }) else { return ["no dump"] }
        let active = dump["dynamic_active_clusters"] as? [[String: Any]] ?? []
        return active.map { entry in
            let name = (entry["cluster"] as? [String: Any])?["name"] as? String ?? "?"
            return "\(name)@\(entry["version_info"] as? String ?? "")"
        }.sorted()
    }
}
