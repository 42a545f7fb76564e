import Foundation
import Glibc
import XCTest

/// Locality priorities, locality weights and endpoint weights against real Envoy 1.40: four
/// upstreams (A, B at priority 0; C, D at priority 1), some failing their health checks; the same
/// requests through both proxies; how many each host got. Where Envoy is deterministic (all
/// traffic to one priority, weighted rotations over whole cycles) the counts must be equal;
/// where it draws (a partial spill), each proxy's share must be within 5 sigma of Envoy's formula.
final class PriorityDifferentialTests: XCTestCase {
    struct Scenario {
        let name: String
        /// Hosts (0...3 = A...D) that fail their health checks.
        let failing: Set<Int>
        /// The cluster's lb settings and its `endpoints[]` (placeholders {A}...{D}).
        let cluster: String
        let requests: Int
        /// Exact counts per host, or nil when the spill is a random draw (then `shares`).
        let exact: [Int]?
        /// Expected share of each host (draws), compared within 5 sigma.
        var shares: [Double] = []
    }

    private static func endpoint(_ host: String, weight: Int = 1) -> String {
        "{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: \(host) } } }\(weight == 1 ? "" : ", load_balancing_weight: \(weight)") }"
    }
    private static let twoPriorities = "lb_policy: ROUND_ROBIN, load_assignment: { cluster_name: backend, endpoints: [ "
        + "{ locality: { region: near }, lb_endpoints: [ \(endpoint("{A}")), \(endpoint("{B}")) ] }, "
        + "{ locality: { region: far }, priority: 1, lb_endpoints: [ \(endpoint("{C}")), \(endpoint("{D}")) ] } ] }"

    /// The cases, as the README's feature table lists them.
    static let scenarios: [Scenario] = [
        Scenario(name: "all hosts healthy: every request to priority 0", failing: [], cluster: twoPriorities,
                 requests: 20, exact: [10, 10, 0, 0]),
        Scenario(name: "priority 0 failed its health checks: every request to priority 1", failing: [0, 1], cluster: twoPriorities,
                 requests: 20, exact: [0, 0, 10, 10]),
        Scenario(name: "one of two priority-0 hosts failed: 70% stay (1.4 x 50%), 30% spill to priority 1", failing: [0], cluster: twoPriorities,
                 requests: 400, exact: nil, shares: [0, 0.7, 0.15, 0.15]),
        Scenario(name: "two of three priority-0 hosts failed: 46% (1.4 x 1/3) stay, 54% to priority 1", failing: [0, 1],
                 cluster: "lb_policy: ROUND_ROBIN, load_assignment: { cluster_name: backend, endpoints: [ "
                     + "{ lb_endpoints: [ \(endpoint("{A}")), \(endpoint("{B}")), \(endpoint("{C}")) ] }, "
                     + "{ priority: 1, lb_endpoints: [ \(endpoint("{D}")) ] } ] }",
                 requests: 400, exact: nil, shares: [0, 0, 0.46, 0.54]),
        Scenario(name: "LEAST_REQUEST, priority 0 failed: every request to priority 1", failing: [0, 1],
                 cluster: twoPriorities.replacingOccurrences(of: "ROUND_ROBIN", with: "LEAST_REQUEST"),
                 requests: 400, exact: nil, shares: [0, 0, 0.5, 0.5]),
        Scenario(name: "every host failed: total panic, load by host count over both priorities", failing: [0, 1, 2, 3], cluster: twoPriorities,
                 requests: 400, exact: nil, shares: [0.25, 0.25, 0.25, 0.25]),
        Scenario(name: "one priority, 1 of 4 hosts failed, healthy_panic_threshold 80: no panic (1.4 x 75% reaches 100%)", failing: [0],
                 cluster: "lb_policy: ROUND_ROBIN, common_lb_config: { healthy_panic_threshold: { value: 80 } }, load_assignment: { cluster_name: backend, endpoints: [ "
                     + "{ lb_endpoints: [ \(endpoint("{A}")), \(endpoint("{B}")), \(endpoint("{C}")), \(endpoint("{D}")) ] } ] }",
                 requests: 30, exact: [0, 10, 10, 10]),
        Scenario(name: "one priority, 2 of 4 hosts failed, healthy_panic_threshold 60: panic, every host", failing: [0, 1],
                 cluster: "lb_policy: ROUND_ROBIN, common_lb_config: { healthy_panic_threshold: { value: 60 } }, load_assignment: { cluster_name: backend, endpoints: [ "
                     + "{ lb_endpoints: [ \(endpoint("{A}")), \(endpoint("{B}")), \(endpoint("{C}")), \(endpoint("{D}")) ] } ] }",
                 requests: 40, exact: [10, 10, 10, 10]),
        Scenario(name: "locality_weighted_lb_config: localities weighted 1 and 3", failing: [],
                 cluster: "lb_policy: ROUND_ROBIN, common_lb_config: { locality_weighted_lb_config: {} }, load_assignment: { cluster_name: backend, endpoints: [ "
                     + "{ locality: { zone: a }, load_balancing_weight: 1, lb_endpoints: [ \(endpoint("{A}")) ] }, "
                     + "{ locality: { zone: b }, load_balancing_weight: 3, lb_endpoints: [ \(endpoint("{B}")) ] }, "
                     + "{ locality: { zone: c }, priority: 1, load_balancing_weight: 1, lb_endpoints: [ \(endpoint("{C}")), \(endpoint("{D}")) ] } ] }",
                 requests: 40, exact: [10, 30, 0, 0]),
        Scenario(name: "locality weights without locality_weighted_lb_config: ignored", failing: [],
                 cluster: "lb_policy: ROUND_ROBIN, load_assignment: { cluster_name: backend, endpoints: [ "
                     + "{ locality: { zone: a }, load_balancing_weight: 1, lb_endpoints: [ \(endpoint("{A}")) ] }, "
                     + "{ locality: { zone: b }, load_balancing_weight: 3, lb_endpoints: [ \(endpoint("{B}")) ] } ] }",
                 requests: 40, exact: [20, 20, 0, 0]),
        Scenario(name: "overprovisioning_factor 200: one of two priority-0 hosts failed, priority 0 keeps every request (2.0 x 50%)", failing: [0],
                 cluster: twoPriorities.replacingOccurrences(of: "load_assignment: { cluster_name: backend, ",
                                                             with: "load_assignment: { cluster_name: backend, policy: { overprovisioning_factor: 200 }, "),
                 requests: 20, exact: [0, 20, 0, 0]),
        Scenario(name: "endpoint weights 1 and 3 in priority 0 (ROUND_ROBIN)", failing: [],
                 cluster: "lb_policy: ROUND_ROBIN, load_assignment: { cluster_name: backend, endpoints: [ "
                     + "{ lb_endpoints: [ \(endpoint("{A}")), \(endpoint("{B}", weight: 3)) ] }, "
                     + "{ priority: 1, lb_endpoints: [ \(endpoint("{C}")) ] } ] }",
                 requests: 40, exact: [10, 30, 0, 0]),
    ]

    func testPrioritiesAgreeWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-priority-differential-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstreams = try (0..<4).map { _ in try RecordingUpstream() }
        defer { upstreams.forEach { $0.stop() } }
        var report: [String] = []
        for s in Self.scenarios {
            for (i, u) in upstreams.enumerated() { u.failsHealthChecks = s.failing.contains(i) }
            var counts: [String: [Int]] = [:]
            var clusters: [String: String] = [:]
            for name in ["envoy", "ballast"] {
                let allocator = PortAllocator()
                let port = try allocator.next()
                let admin = try allocator.next()
                var cluster = s.cluster
                for (i, letter) in ["{A}", "{B}", "{C}", "{D}"].enumerated() { cluster = cluster.replacingOccurrences(of: letter, with: "\(upstreams[i].port)") }
                let config = root.appendingPathComponent("\(name).yaml").path
                try bootstrap(port: port, admin: admin, cluster: cluster).write(toFile: config, atomically: false, encoding: .utf8)
                let (exe, args) = name == "envoy"
                    ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
                    : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
                let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: ["lb": port], adminPort: admin,
                                               accessLog: root.appendingPathComponent("\(name).log").path, directory: root)
                defer { proxy.stop() }
                try proxy.waitReady()
                try waitForHealth(proxy, failing: s.failing.count)
                // /clusters: each host's priority, locality, weight and health flags.
                var text = try proxy.adminGet("/clusters").text
                for (i, u) in upstreams.enumerated() { text = text.replacingOccurrences(of: "127.0.0.1:\(u.port)", with: ["A", "B", "C", "D"][i]) }
                clusters[name] = text.split(separator: "\n").filter { line in
                    line.hasPrefix("backend::") && ["::priority::", "::region::", "::zone::", "::sub_zone::", "::weight::", "::health_flags::"].contains { line.contains($0) }
                }.sorted().joined(separator: " | ")
                for u in upstreams { _ = u.takeRequests() }
                let client = try RawClient(port: port)
                for _ in 0..<s.requests {
                    client.send("GET /p HTTP/1.1\r\nHost: lb.test\r\nX-Case: priority\r\n\r\n")
                    guard client.readResponse()?.status == 200 else { throw DifferentialError("\(name) \(s.name): a request failed") }
                }
                counts[name] = upstreams.map { u in u.takeRequests().filter { $0.head.contains("X-Case: priority") || $0.head.contains("x-case: priority") }.count }
            }
            if clusters["envoy"] != clusters["ballast"] {
                report.append("\(s.name): /clusters\n  envoy:   \(clusters["envoy"]!)\n  ballast: \(clusters["ballast"]!)")
            }
            let e = counts["envoy"]!, b = counts["ballast"]!
            if ProcessInfo.processInfo.environment["PRIORITY_DUMP"] != nil { print("\(s.name): envoy \(e) ballast \(b)") }
            if let exact = s.exact {
                if e != exact || b != exact { report.append("\(s.name): expected \(exact), envoy \(e), ballast \(b)") }
            } else {
                for (name, got) in [("envoy", e), ("ballast", b)] {
                    for (i, share) in s.shares.enumerated() {
                        let mean = share * Double(s.requests)
                        let sigma = (Double(s.requests) * share * (1 - share)).squareRoot()
                        if abs(Double(got[i]) - mean) > 5 * sigma + 0.5 {
                            report.append("\(s.name): \(name) host \(i) got \(got[i]) of \(s.requests), expected \(mean) (5 sigma \(5 * sigma)); all: \(got)")
                        }
                    }
                }
            }
        }
        if !report.isEmpty { XCTFail("priorities differ from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }

    /// Until /clusters shows `failing` hosts with /failed_active_hc (the first checks are in).
    private func waitForHealth(_ proxy: ProxyUnderTest, failing: Int) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let text = (try? proxy.adminGet("/clusters").text) ?? ""
            let lines = text.split(separator: "\n").filter { $0.hasPrefix("backend::") && $0.contains("::health_flags::") }
            if lines.count >= 2 && lines.filter({ $0.contains("/failed_active_hc") }).count == failing
                && !lines.contains(where: { $0.contains("/pending_active_hc") }) { return }
            usleep(50_000)
        }
        throw DifferentialError("\(proxy.name): health checks did not settle")
    }

    private func bootstrap(port: Int, admin: Int, cluster: String) -> String {
        """
        static_resources:
          listeners:
          - name: lb
            address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: lb
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                  route_config:
                    virtual_hosts:
                    - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: backend}}]}
          clusters:
          - { name: backend, connect_timeout: 1s, type: STATIC, health_checks: [ { interval: 1s, timeout: 1s, unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: /hc } } ], \(cluster) }
        admin:
          address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}
        """
    }
}
