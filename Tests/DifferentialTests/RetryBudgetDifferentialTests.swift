import Foundation
import Glibc
import XCTest

/// `circuit_breakers.thresholds[].retry_budget` against Envoy 1.40: one host answering 503, a
/// route retrying 5xx twice, sequential requests (one active at a time). A budget of 0% with
/// min_retry_concurrency 0 allows no retry (each one overflows, the 503 goes out flagged UO);
/// 100% of one active request allows one retry at a time (every request makes its two retries);
/// an empty retry_budget takes Envoy's 20% / 3. `/clusters` shows the budget's current limit as
/// max_retries. A host refusing connections with no budget left: the refused retry flags UO before
/// the connect failure's UF, and Envoy prints its flags in the order they were set (`UO,UF`).
final class RetryBudgetDifferentialTests: XCTestCase {
    /// Each case's budget and lines Ballast must show (besides matching Envoy).
    static let cases: [(name: String, budget: String, refused: Bool, expect: [String])] = [
        ("no-budget-left", "{budget_percent: {value: 0}, min_retry_concurrency: 0}", false,
         ["host received: 4", "cluster.up.upstream_rq_retry_overflow: 4", "up::default_priority::max_retries::0", "flags: [\"UO\", \"UO\", \"UO\", \"UO\"]"]),
        ("connect-failure-no-budget-left", "{budget_percent: {value: 0}, min_retry_concurrency: 0}", true,
         ["statuses: [503, 503, 503, 503]", "cluster.up.upstream_rq_retry_overflow: 4", "flags: [\"UO,UF\", \"UO,UF\", \"UO,UF\", \"UO,UF\"]"]),
        ("one-per-active-request", "{budget_percent: {value: 100}, min_retry_concurrency: 0}", false,
         ["host received: 12", "cluster.up.upstream_rq_retry: 8", "cluster.up.upstream_rq_retry_limit_exceeded: 4"]),
        ("defaults", "{}", false, ["host received: 12", "up::default_priority::max_retries::3"]),
    ]
    static let stats = ["upstream_rq_retry", "upstream_rq_retry_overflow", "upstream_rq_retry_limit_exceeded", "upstream_rq_total", "upstream_rq_503"]

    func testRetryBudgetsAsEnvoy() throws {
        var failures: [String] = []
        for c in Self.cases {
            let bad = try RecordingUpstream()
            defer { bad.stop() }
            bad.answersStatus = 503
            let hostPort = c.refused ? try freePort() : bad.port
            let route = "{match: {prefix: \"/\"}, route: {cluster: up, retry_policy: {retry_on: \"5xx,connect-failure\", num_retries: 2, retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}}}}"
            let seen = try observeEnvoyAndBallast("retry-budget-\(c.name)", envoyArgs: ["--file-flush-interval-msec", "10"], config: { port, admin, log in
                singleListenerBootstrap(port: port, admin: admin, routes: [route],
                                        hcmExtra: "access_log: [{name: envoy.access_loggers.file, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: \(log), log_format: {text_format_source: {inline_string: \"%RESPONSE_FLAGS%\\n\"}}}}]",
                                        clusters: [staticCluster("up", ports: [hostPort], extra: "circuit_breakers: {thresholds: [{retry_budget: \(c.budget)}]}")])
            }, observe: { proxy, port in
                _ = bad.takeHeads()
                var statuses: [Int] = []
                let client = try RawClient(port: port)
                for i in 0..<4 {
                    client.send("GET /r\(i) HTTP/1.1\r\nHost: h\r\n\r\n")
                    statuses.append(client.readResponse()?.status ?? 0)
                }
                var out = ["statuses: \(statuses)", "host received: \(bad.takeHeads().count)"]
                let stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
                out += stats.filter { line in Self.stats.contains { line.hasPrefix("cluster.up.\($0): ") } }.sorted()
                out += try proxy.adminGet("/clusters").text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("up::default_priority::max_retries") }
                // The access log's flags, once all four lines are written.
                let deadline = Date().addingTimeInterval(5)
                var flags: [String] = []
                repeat {
                    flags = ((try? String(contentsOfFile: proxy.accessLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
                    if flags.count >= 4 { break }
                    usleep(20_000)
                } while Date() < deadline
                return out + ["flags: \(flags)"]
            })
            for line in c.expect where !seen.ballast.contains(line) { failures.append("\(c.name): no '\(line)' in \(seen.ballast)") }
            if seen.ballast != seen.envoy { failures.append("\(c.name):\n  envoy:   \(seen.envoy)\n  ballast: \(seen.ballast)") }
        }
        XCTAssertTrue(failures.isEmpty, failures.joined(separator: "\n"))
    }
}
