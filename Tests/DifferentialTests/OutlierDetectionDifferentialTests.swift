import Foundation
import Glibc
import XCTest

/// Outlier detection against Envoy 1.40: two ROUND_ROBIN hosts, one answering every request with
/// a fixed failing status (or refusing connections); N sequential requests on one connection. Both
/// proxies must send the failing host the same number of requests (it is ejected after the
/// threshold and takes nothing more), print the same `/clusters` health flags and outlier lines,
/// and count the same `outlier_detection.*` stats. Intervals are long (60 s), so no unejection or
/// success-rate pass runs during a case.
final class OutlierDetectionDifferentialTests: XCTestCase {
    struct Case {
        let name: String
        let outlier: String
        /// The failing host's status; nil: it refuses connections (a closed port).
        let status: Int?
        let requests: Int
        var retry = false
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
            let badPort = c.status == nil ? try freePort() : bad.port
            let route = c.retry ? "{match: {prefix: \"/\"}, route: {cluster: up, retry_policy: {retry_on: 5xx, num_retries: 1, retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}}}}"
                                : "{match: {prefix: \"/\"}, route: {cluster: up}}"
            let seen = try observeEnvoyAndBallast("outlier-\(c.name)", config: { port, admin, _ in
                singleListenerBootstrap(port: port, admin: admin, routes: [route],
                                        clusters: [staticCluster("up", ports: [good.port, badPort], extra: "connect_timeout: 1s, outlier_detection: \(c.outlier)")])
            }, observe: { proxy, port in
                _ = good.takeHeads()
                _ = bad.takeHeads()
                var statuses: [Int] = []
                let client = try RawClient(port: port)
                for i in 0..<c.requests {
                    client.send("GET /r\(i) HTTP/1.1\r\nHost: h\r\n\r\n")
                    statuses.append(client.readResponse()?.status ?? 0)
                    usleep(20_000)  // the ejection reaches Envoy's worker through its main thread
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
}
