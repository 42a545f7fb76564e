import Foundation
import Glibc
import XCTest

/// Outlier detection against Envoy 1.40: two ROUND_ROBIN hosts, one answering every request with
/// a fixed failing status (or refusing connections); N sequential requests on one connection. Both
/// proxies must send the failing host the same number of requests (it is ejected after the
/// threshold and takes nothing more), print the same `/clusters` health flags and outlier lines,
/// and count the same `outlier_detection.*` stats. Intervals are long (60 s), so no unejection or
/// success-rate pass runs during a case. The pause after a failed response is for Envoy, whose
/// ejection reaches its worker through the main thread (Ballast's worker ejects at once), and
/// whose host updates within 1 s of the previous one wait for `update_merge_window`.
final class OutlierDetectionDifferentialTests: XCTestCase {
    struct Case {
        let name: String
        let outlier: String
        /// The failing host's status; nil: it refuses connections (a closed port).
        let status: Int?
        let requests: Int
        var retry = false
        /// Both hosts fail (the second like the first): both ejected, the cluster in panic.
        var bothFail = false
        /// Requests whose failure is followed by 1.1 s: Envoy merges host updates within
        /// `update_merge_window` (1 s), so an ejection that follows another by less reaches its
        /// worker late (Ballast applies each at once).
        var settle = 0
        /// The failing host alone at priority 0, the other at priority 1: its ejection spills
        /// all traffic to priority 1.
        var priorities = false
    }

    static let cases: [Case] = [
        Case(name: "consecutive-5xx-503", outlier: "{consecutive_5xx: 3, interval: 60s, base_ejection_time: 60s, max_ejection_percent: 50}",
             status: 503, requests: 12),
        Case(name: "consecutive-5xx-500", outlier: "{consecutive_5xx: 2, consecutive_gateway_failure: 1, enforcing_consecutive_gateway_failure: 100, interval: 60s, max_ejection_percent: 50}",
             status: 500, requests: 10),
        Case(name: "gateway-detected-not-enforced", outlier: "{consecutive_gateway_failure: 2, interval: 60s, max_ejection_percent: 50}",
             status: 502, requests: 14),
        Case(name: "gateway-enforced", outlier: "{consecutive_gateway_failure: 2, enforcing_consecutive_gateway_failure: 100, consecutive_5xx: 9, interval: 60s, max_ejection_percent: 50}",
             status: 504, requests: 10),
        Case(name: "max-ejection-percent-overflow", outlier: "{consecutive_5xx: 2, interval: 60s}",
             status: 503, requests: 10),
        Case(name: "always-eject-one-host", outlier: "{consecutive_5xx: 2, interval: 60s, always_eject_one_host: true}",
             status: 503, requests: 10),
        Case(name: "enforcing-0", outlier: "{consecutive_5xx: 2, enforcing_consecutive_5xx: 0, interval: 60s, max_ejection_percent: 50}",
             status: 503, requests: 10),
        Case(name: "connect-failure", outlier: "{consecutive_5xx: 3, interval: 60s, max_ejection_percent: 50}",
             status: nil, requests: 10),
        Case(name: "split-local-origin", outlier: "{split_external_local_origin_errors: true, consecutive_local_origin_failure: 2, consecutive_5xx: 2, interval: 60s, max_ejection_percent: 50}",
             status: nil, requests: 10),
        Case(name: "retried-503", outlier: "{consecutive_5xx: 3, interval: 60s, max_ejection_percent: 50}",
             status: 503, requests: 8, retry: true),
        Case(name: "both-ejected-panic", outlier: "{consecutive_5xx: 2, interval: 60s, max_ejection_percent: 100}",
             status: 503, requests: 12, bothFail: true, settle: 4),
        Case(name: "priority-0-ejected", outlier: "{consecutive_5xx: 3, interval: 60s, max_ejection_percent: 50}",
             status: 503, requests: 10, priorities: true),
    ]

    /// Envoy 1.40's `cluster.<name>.outlier_detection.*` stats (counters and the active gauge).
    static let statCount = 21

    func testOutlierDetectionAsEnvoy() throws {
        var failures: [String] = []
        for c in Self.cases {
            let good = try RecordingUpstream()
            let bad = try RecordingUpstream()
            defer { good.stop(); bad.stop() }
            bad.answersStatus = c.status
            if c.bothFail { good.answersStatus = c.status }
            let badPort = c.status == nil ? try freePort() : bad.port
            let route = c.retry ? "{match: {prefix: \"/\"}, route: {cluster: up, retry_policy: {retry_on: 5xx, num_retries: 1, retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}}}}"
                                : "{match: {prefix: \"/\"}, route: {cluster: up}}"
            let seen = try observeEnvoyAndBallast("outlier-\(c.name)", config: { port, admin, _ in
                let endpoint = { (p: Int) in "{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(p)}}}}" }
                let cluster = c.priorities
                    ? "- {name: up, type: STATIC, connect_timeout: 1s, outlier_detection: \(c.outlier), load_assignment: {cluster_name: up, endpoints: [{priority: 0, lb_endpoints: [\(endpoint(badPort))]}, {priority: 1, lb_endpoints: [\(endpoint(good.port))]}]}}"
                    : staticCluster("up", ports: [good.port, badPort], extra: "connect_timeout: 1s, outlier_detection: \(c.outlier)")
                return singleListenerBootstrap(port: port, admin: admin, routes: [route], clusters: [cluster])
            }, observe: { proxy, port in
                _ = good.takeHeads()
                _ = bad.takeHeads()
                var statuses: [Int] = []
                let client = try RawClient(port: port)
                for i in 0..<c.requests {
                    client.send("GET /r\(i) HTTP/1.1\r\nHost: h\r\n\r\n")
                    let status = client.readResponse()?.status ?? 0
                    statuses.append(status)
                    // An ejection reaches Envoy's worker through its main thread: after a failure,
                    // give it time (a busy machine delayed it past 20 ms).
                    usleep(status == 200 ? 20_000 : i < c.settle ? 1_100_000 : 150_000)
                }
                // Counts, not the order: Envoy's round robin starts at a random host.
                var out = ["statuses: \(statuses.filter { $0 == 200 }.count) x 200, \(statuses.filter { $0 != 200 }.count) failed",
                           "good host received: \(good.takeHeads().count)", "failing host received: \(bad.takeHeads().count)"]
                let clusters = try proxy.adminGet("/clusters").text.split(separator: "\n").map(String.init)
                out += clusters.filter { $0.contains("::outlier::") || $0.contains("::health_flags::") || $0.contains("success_rate::") }
                    .map { $0.replacingOccurrences(of: "\(badPort)", with: "BAD").replacingOccurrences(of: "\(good.port)", with: "GOOD") }.sorted()
                let stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
                let outlierStats = stats.filter { $0.hasPrefix("cluster.up.outlier_detection.") }
                XCTAssertEqual(outlierStats.count, Self.statCount, "\(proxy.name): \(outlierStats)")
                out += (outlierStats + stats.filter { $0.hasPrefix("cluster.up.membership_healthy") }).sorted()
                return out
            })
            if seen.ballast != seen.envoy {
                let diff = Set(seen.envoy).symmetricDifference(seen.ballast).sorted()
                failures.append("\(c.name): envoy \(seen.envoy.filter(diff.contains)) ballast \(seen.ballast.filter(diff.contains))")
            }
        }
        XCTAssertTrue(failures.isEmpty, failures.joined(separator: "\n"))
    }

    /// The ejected host comes back after base_ejection_time (checked on the 1 s interval timer)
    /// with its count reset: 3 more 503s eject it again, this time for 2 x base.
    func testEjectedHostReturnsAndIsEjectedAgainAsEnvoy() throws {
        let good = try RecordingUpstream()
        let bad = try RecordingUpstream()
        defer { good.stop(); bad.stop() }
        bad.answersStatus = 503
        let seen = try observeEnvoyAndBallast("outlier-return", config: { port, admin, _ in
            singleListenerBootstrap(port: port, admin: admin, routes: ["{match: {prefix: \"/\"}, route: {cluster: up}}"],
                                    clusters: [staticCluster("up", ports: [good.port, bad.port],
                                                             extra: "outlier_detection: {consecutive_5xx: 3, interval: 1s, base_ejection_time: 1s, max_ejection_percent: 50}")])
        }, observe: { proxy, port in
            func flags() throws -> String {
                try proxy.adminGet("/clusters").text.split(separator: "\n").first { $0.hasPrefix("up::127.0.0.1:\(bad.port)::health_flags::") }
                    .map { String($0.split(separator: ":").last!) } ?? "?"
            }
            let client = try RawClient(port: port)
            func send(_ n: Int) -> Int {
                _ = bad.takeHeads()
                for i in 0..<n {
                    client.send("GET /r\(i) HTTP/1.1\r\nHost: h\r\n\r\n")
                    usleep(client.readResponse()?.status == 200 ? 20_000 : 150_000)
                }
                return bad.takeHeads().count
            }
            var out = ["first round, failing host received: \(send(10))", "then: \(try flags())"]
            let deadline = Date().addingTimeInterval(8)
            while try flags() != "healthy" && Date() < deadline { usleep(50_000) }
            out.append("returned: \(try flags())")
            usleep(1_100_000)  // Envoy's update_merge_window: the return and a new ejection are 1 s apart
            out.append("second round, failing host received: \(send(10))")
            out.append("then: \(try flags())")
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
            out += stats.filter { $0.hasPrefix("cluster.up.outlier_detection.ejections_active") || $0.hasPrefix("cluster.up.outlier_detection.ejections_enforced_total") }.sorted()
            return out
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "unejection differs from Envoy 1.40")
        XCTAssertEqual(seen.ballast, ["first round, failing host received: 3", "then: /failed_outlier_check", "returned: healthy",
                                      "second round, failing host received: 3", "then: /failed_outlier_check",
                                      "cluster.up.outlier_detection.ejections_active: 1", "cluster.up.outlier_detection.ejections_enforced_total: 2"])
    }

    /// tcp_proxy feeds the detector too: a refused connect counts as a 503, a connected session
    /// as a 200 (Envoy's LocalOriginConnectFailed / LocalOriginConnectSuccessFinal), so the dead
    /// host is ejected after two refusals and the rest of the sessions go to the live one.
    func testTCPProxySessionsFeedTheDetectorAsEnvoy() throws {
        let good = try RecordingUpstream()
        defer { good.stop() }
        let dead = try freePort()
        let seen = try observeEnvoyAndBallast("outlier-tcp", config: { port, admin, _ in
            """
            admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
            static_resources:
              listeners:
              - address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: up}
              clusters:
              \(staticCluster("up", ports: [good.port, dead], extra: "connect_timeout: 1s, outlier_detection: {consecutive_5xx: 2, interval: 60s, max_ejection_percent: 50}"))
            """
        }, observe: { proxy, port in
            _ = good.takeHeads()
            var answered = 0
            for i in 0..<8 {
                let c = try RawClient(port: port)
                c.send("GET /s\(i) HTTP/1.1\r\nHost: tcp\r\n\r\n")
                let ok = c.readResponse()?.status == 200
                if ok { answered += 1 }
                c.shutdownBoth()
                usleep(ok ? 20_000 : 150_000)  // Envoy's ejection reaches its worker through the main thread
            }
            var out = ["sessions answered: \(answered)", "live host received: \(good.takeHeads().count)"]
            out += try proxy.adminGet("/clusters").text.split(separator: "\n").map(String.init)
                .filter { $0.contains("::health_flags::") }.map { $0.replacingOccurrences(of: "\(dead)", with: "DEAD").replacingOccurrences(of: "\(good.port)", with: "LIVE") }.sorted()
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
            out += stats.filter { $0.hasPrefix("cluster.up.outlier_detection.ejections_") && !$0.hasSuffix(": 0") }.sorted()
            return out
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "tcp_proxy's outlier feed differs from Envoy 1.40")
        XCTAssertEqual(seen.ballast, ["sessions answered: 6", "live host received: 6", "up::127.0.0.1:DEAD::health_flags::/failed_outlier_check",
                                      "up::127.0.0.1:LIVE::health_flags::healthy", "cluster.up.outlier_detection.ejections_active: 1",
                                      "cluster.up.outlier_detection.ejections_consecutive_5xx: 1",
                                      "cluster.up.outlier_detection.ejections_detected_consecutive_5xx: 1",
                                      "cluster.up.outlier_detection.ejections_enforced_consecutive_5xx: 1",
                                      "cluster.up.outlier_detection.ejections_enforced_total: 1", "cluster.up.outlier_detection.ejections_total: 1"])
    }

    /// Mirrored requests feed the mirror cluster's detector as Envoy's shadow router does: its
    /// failing host is ejected after two 503s and the rest of the copies go to the other host.
    func testMirroredRequestsFeedTheDetectorAsEnvoy() throws {
        let main = try RecordingUpstream()
        let good = try RecordingUpstream()
        let bad = try RecordingUpstream()
        defer { main.stop(); good.stop(); bad.stop() }
        bad.answersStatus = 503
        let seen = try observeEnvoyAndBallast("outlier-mirror", config: { port, admin, _ in
            singleListenerBootstrap(port: port, admin: admin, routes: ["{match: {prefix: \"/\"}, route: {cluster: main, request_mirror_policies: [{cluster: mirror}]}}"],
                                    clusters: [staticCluster("main", ports: [main.port]),
                                               staticCluster("mirror", ports: [good.port, bad.port], extra: "outlier_detection: {consecutive_5xx: 2, interval: 60s, max_ejection_percent: 50}")])
        }, observe: { proxy, port in
            for u in [main, good, bad] { _ = u.takeHeads() }
            let client = try RawClient(port: port)
            var answered = 0
            for i in 0..<10 {
                client.send("GET /m\(i) HTTP/1.1\r\nHost: h\r\n\r\n")
                if client.readResponse()?.status == 200 { answered += 1 }
                usleep(150_000)  // the copy's answer (and so the ejection) comes after the main response
            }
            var out = ["answered: \(answered)", "main received: \(main.takeHeads().count)",
                       "mirror hosts received: \(good.takeHeads().count) and \(bad.takeHeads().count)"]
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
            out += stats.filter { $0.hasPrefix("cluster.mirror.outlier_detection.ejections_") && !$0.hasSuffix(": 0") }.sorted()
            return out
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "the mirror's outlier feed differs from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("mirror hosts received: 8 and 2"), "\(seen.ballast)")
    }
}
