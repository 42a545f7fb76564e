import Foundation
import Glibc
import XCTest

/// `x-envoy-expected-rq-timeout-ms` on a retry is the time left of the route timeout, in Envoy
/// 1.40 and in Ballast: the upstream holds each attempt 1 s, so the retry's value is at least
/// 1000 below the first attempt's (60000); both proxies are held to the same rule (the exact
/// value depends on the clock).
final class RetryTimeoutHeaderDifferentialTests: XCTestCase {
    func testRetryCarriesTheTimeLeft() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let route = "{match: {prefix: \"/\"}, route: {cluster: up, timeout: 60s, retry_policy: {retry_on: 5xx, num_retries: 1, retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}}}}"
        let seen = try observeEnvoyAndBallast("retry-timeout", config: { port, admin, _ in
            singleListenerBootstrap(port: port, admin: admin, routes: [route], clusters: [staticCluster("up", ports: [upstream.port])])
        }, observe: { proxy, port in
            _ = upstream.takeHeads()
            let client = try RawClient(port: port)
            client.send("GET / HTTP/1.1\r\nHost: h\r\nx-reply-status: 503\r\nx-reply-delay: 1\r\n\r\n")
            let status = client.readResponse()?.status ?? 0
            let values = upstream.takeHeads().compactMap { head in
                head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("x-envoy-expected-rq-timeout-ms:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
            }
            // The rule, not the clock: first 60000, the retry at least the upstream's 1 s less.
            return ["status \(status)", "attempts \(values.count)", "first \(values.first ?? -1)",
                    "retry within (0, 59000]: \(values.count == 2 && values[1] > 0 && values[1] <= 59000)"]
        })
        XCTAssertEqual(seen.ballast, seen.envoy)
        XCTAssertEqual(seen.ballast, ["status 503", "attempts 2", "first 60000", "retry within (0, 59000]: true"])
    }
}
