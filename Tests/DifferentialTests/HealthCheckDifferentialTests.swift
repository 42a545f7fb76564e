import Foundation
import Glibc
import XCTest

/// Active health checks against real Envoy 1.40: the same bootstrap (clusters with a live and a
/// dead host, a dead host only, a host whose check path answers 503), run one proxy after the
/// other in front of one recording upstream. Compared: the checks' request heads, what each
/// request got and where it went (access log), /clusters health flags and the health stats.
/// The interval (30 s) is longer than the test, so exactly the start-up round of checks runs.
final class HealthCheckDifferentialTests: XCTestCase {
    func testHealthChecksAgreeWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-hc-differential-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let upstream2 = try RecordingUpstream()
        defer { upstream2.stop() }
        let dead = try freePort()

        var observed: [String: [String: String]] = [:]
        for name in ["envoy", "ballast"] {
            let admin = try freePort()
            let port = try freePort()
            let log = directory.appendingPathComponent("\(name)-access.log").path
            let config = directory.appendingPathComponent("\(name).yaml").path
            try healthCheckBootstrap(admin: admin, port: port, upstream: upstream.port, upstream2: upstream2.port, dead: dead, accessLog: log)
                .write(toFile: config, atomically: true, encoding: .utf8)
            let (executable, arguments) = name == "envoy"
                ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error",
                                 "--file-flush-interval-msec", "10", "--drain-time-s", "0"])
                : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
            _ = upstream.takeHeads()
            let proxy = try ProxyUnderTest(name: name, executable: executable, arguments: arguments, ports: ["hc": port],
                                           adminPort: admin, accessLog: log, directory: directory)
            defer { proxy.stop() }
            try proxy.waitReady()
            var aspects: [String: String] = [:]
            func names(_ text: String) -> String {
                text.replacingOccurrences(of: "127.0.0.1:\(upstream.port)", with: "<up>")
                    .replacingOccurrences(of: "127.0.0.1:\(upstream2.port)", with: "<up2>")
                    .replacingOccurrences(of: "127.0.0.1:\(dead)", with: "<dead>")
            }
            // The start-up round's requests, as the upstream received them (clusters in any order).
            aspects["checks/upstream"] = upstream.takeHeads().map(normalizedHead).sorted().joined(separator: " || ")
            for c in healthCheckCases {
                let offset = proxy.logOffset()
                let client = try RawClient(port: port)
                var got: [String] = []
                for i in 0..<c.count {
                    client.send("GET \(c.path) HTTP/1.1\r\nHost: example.com\r\nX-Case: \(c.name)-\(i)\r\n\r\n")
                    guard let r = client.readResponse() else { got.append("(no response)"); break }
                    got.append("\(r.statusLine) \(r.text)")
                }
                aspects["\(c.name)/responses"] = got.joined(separator: " | ")
                // Every request's line (bounded wait: the proxies flush their logs every 10 ms or so).
                var lines = proxy.logLines(after: offset) { _ in true }
                let deadline = Date().addingTimeInterval(3)
                while lines.count < got.count && Date() < deadline {
                    usleep(10_000)
                    lines = proxy.logLines(after: offset) { _ in true }
                }
                if c.countsOnly {
                    // Where the requests went, not in which order (a worker's schedule starts anywhere).
                    var counts: [String: Int] = [:]
                    for line in lines {
                        let host = line.split(separator: " ").first { $0.hasPrefix("upstream=") }.map(String.init) ?? "-"
                        counts[names(host), default: 0] += 1
                    }
                    aspects["\(c.name)/hosts"] = counts.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", ")
                } else {
                    aspects["\(c.name)/log"] = names(lines.map(normalizedLogLine).sorted().joined(separator: " || "))
                }
            }
            aspects["admin/clusters health_flags"] = names(try proxy.adminGet("/clusters").text.split(separator: "\n")
                .filter { $0.contains("::health_flags::") }.sorted().joined(separator: " | "))
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n")
            for name in healthCheckStats {
                aspects["stats/\(name)"] = stats.first { $0.hasPrefix(name + ": ") }.map { String($0.dropFirst(name.count + 2)) } ?? "(absent)"
            }
            observed[name] = aspects
        }
        let envoy = observed["envoy"]!, ballast = observed["ballast"]!
        // BALLAST_DIFF_DUMP=DIR keeps what Envoy did, for a look by hand.
        if let dump = ProcessInfo.processInfo.environment["BALLAST_DIFF_DUMP"] {
            try? FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
            try? envoy.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "\n")
                .write(toFile: "\(dump)/envoy.health", atomically: true, encoding: .utf8)
        }
        var report: [String] = []
        var seen = Set<String>()
        for (key, ev) in envoy.sorted(by: { $0.key < $1.key }) {
            let bv = ballast[key] ?? "(missing)"
            guard ev != bv else { continue }
            seen.insert("health/\(key)")
            if IntentionalDifferences.reason(for: "health/\(key)") == nil {
                report.append("health/\(key): not an intentional difference\n  envoy:   \(ev)\n  ballast: \(bv)")
            }
        }
        for entry in intentionalDifferences where entry.key.hasPrefix("health/") && !seen.contains(entry.key) {
            report.append("\(entry.key): listed in IntentionalDifferences.swift but Envoy and Ballast now agree; remove the entry")
        }
        if !report.isEmpty { XCTFail("\(report.count) difference(s) against Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }
}

/// One request sequence of the health-check suite (a row of the README's table).
struct HealthCheckCase {
    let name: String
    let feature: String
    let path: String
    let count: Int
    /// Compare only how many requests each host got.
    var countsOnly = false
}

let healthCheckCases: [HealthCheckCase] = [
    HealthCheckCase(name: "one-dead", feature: "Health checks: of a live and a dead host, every request goes to the live one after the first checks",
                    path: "/two", count: 4),
    HealthCheckCase(name: "panic", feature: "Health checks: every host failed, below healthy_panic_threshold (50%): routed to all hosts (503 UF)",
                    path: "/panic", count: 2),
    HealthCheckCase(name: "no-panic", feature: "Health checks: healthy_panic_threshold 0 and no healthy host: 503 UH no_healthy_upstream",
                    path: "/nopanic", count: 1),
    HealthCheckCase(name: "bad-status", feature: "Health checks: an unexpected status fails the host at once (no unhealthy_threshold); panic routing",
                    path: "/badstatus", count: 1),
    HealthCheckCase(name: "host-field", feature: "Health checks: http_health_check.host and expected_statuses",
                    path: "/hostfield", count: 1),
    HealthCheckCase(name: "weighted-least-request", feature: "LEAST_REQUEST with load_balancing_weight 3 and 1: 12 sequential requests split 9 and 3",
                    path: "/weighted", count: 12, countsOnly: true),
]

/// Stats compared after the same traffic: the health checker's, the load balancer's and the
/// membership figures (a STRICT_DNS cluster resolved once at start: update_attempt 1).
let healthCheckStats: [String] = ["two", "weighted", "dnsc"].flatMap { c in
    ["membership_change", "membership_healthy", "membership_total", "membership_degraded", "membership_excluded",
     "update_attempt", "update_success", "update_failure", "update_no_rebuild", "update_empty"].map { "cluster.\(c).\($0)" }
} + ["two", "panic", "nopanic", "badstatus", "hostfield"].flatMap { c in
    ["attempt", "success", "failure", "network_failure", "passive_failure", "verify_cluster", "healthy", "degraded"].map { "cluster.\(c).health_check.\($0)" }
        + ["membership_healthy", "membership_total", "lb_healthy_panic", "upstream_rq_total", "upstream_cx_connect_fail",
           "upstream_rq_completed"].map { "cluster.\(c).\($0)" }
}

func healthCheckBootstrap(admin: Int, port: Int, upstream: Int, upstream2: Int, dead: Int, accessLog: String) -> String {
    func cluster(_ name: String, _ ports: [Int], path: String = "/healthz", extra: String = "", check: String = "", checked: Bool = true,
                 weights: [Int]? = nil, type: String = "STATIC", host: String = "127.0.0.1") -> String {
        let endpoints = ports.enumerated().map { i, p in
            "        - endpoint: { address: { socket_address: { address: \(host), port_value: \(p) } } }"
                + (weights.map { "\n          load_balancing_weight: \($0[i])" } ?? "")
        }
        let checks = checked ? "    health_checks: [ { timeout: 1s, interval: 30s, unhealthy_threshold: 2, healthy_threshold: 2, http_health_check: { path: \"\(path)\"\(check) } } ]" : ""
        return """
          - name: \(name)
            connect_timeout: 1s
            type: \(type)
        \(extra)
        \(checks)
            load_assignment:
              cluster_name: \(name)
              endpoints:
              - lb_endpoints:
        \(endpoints.joined(separator: "\n"))

        """
    }
    return """
    admin:
      address: { socket_address: { address: 127.0.0.1, port_value: \(admin) } }
    static_resources:
      listeners:
      - name: hc
        address: { socket_address: { address: 127.0.0.1, port_value: \(port) } }
        filter_chains:
        - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: hc
              access_log:
              - name: envoy.access_loggers.file
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                  path: \(accessLog)
                  log_format: { text_format_source: { inline_string: "\(differentialLogFormat)" } }
              route_config:
                virtual_hosts:
                - name: main
                  domains: ["*"]
                  routes:
                  - { match: { prefix: "/two" }, route: { cluster: two } }
                  - { match: { prefix: "/panic" }, route: { cluster: panic } }
                  - { match: { prefix: "/nopanic" }, route: { cluster: nopanic } }
                  - { match: { prefix: "/badstatus" }, route: { cluster: badstatus } }
                  - { match: { prefix: "/hostfield" }, route: { cluster: hostfield } }
                  - { match: { prefix: "/weighted" }, route: { cluster: weighted } }
              http_filters:
              - name: envoy.filters.http.router
                typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
      clusters:
    \(cluster("two", [upstream, dead]))
    \(cluster("panic", [dead]))
    \(cluster("nopanic", [dead], extra: "    common_lb_config: { healthy_panic_threshold: { value: 0 } }"))
    \(cluster("badstatus", [upstream], path: "/hc-fail"))
    \(cluster("hostfield", [upstream], check: ", host: hc.example, expected_statuses: [ { start: 200, end: 204 } ]"))
    \(cluster("weighted", [upstream, upstream2], extra: "    lb_policy: LEAST_REQUEST", checked: false, weights: [3, 1]))
    \(cluster("dnsc", [upstream], extra: "    dns_refresh_rate: 60s\n    dns_lookup_family: V4_ONLY", checked: false, type: "STRICT_DNS", host: "localhost"))
    """
}
