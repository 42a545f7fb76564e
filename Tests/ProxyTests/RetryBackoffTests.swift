@testable import Proxy
import XCTest

/// Envoy's jittered exponential retry backoff (`RetryPlan.backOffNanos`): a random wait below
/// (2^n - 1) x base_interval for retry n, never above max_interval.
final class RetryBackoffTests: XCTestCase {
    func plan(base: Int64, max: Int64) -> RetryPlan {
        var p = RetryPlan(onConnectFailure: true, onReset: false, on5xx: false, onGatewayError: false, numRetries: 5)
        p.backOffBaseNanos = base
        p.backOffMaxNanos = max
        return p
    }

    func testBoundsFollowEnvoysDefaults() {
        let p = plan(base: 25_000_000, max: 250_000_000)
        let draws: [UInt64] = [0, 1, 7, 24, 25, 74, 1_000_003, UInt64.max]
        for r in draws {
            XCTAssertLessThan(p.backOffNanos(retry: 1, random: r), 25_000_000, "first retry: below 25 ms")
            XCTAssertLessThan(p.backOffNanos(retry: 2, random: r), 75_000_000, "second retry: below 75 ms")
            XCTAssertLessThan(p.backOffNanos(retry: 3, random: r), 175_000_000)
            XCTAssertLessThanOrEqual(p.backOffNanos(retry: 9, random: r), 250_000_000, "never above max_interval")
        }
        XCTAssertEqual(p.backOffNanos(retry: 1, random: 24), 24_000_000, "millisecond steps, as Envoy")
        XCTAssertEqual(p.backOffNanos(retry: 2, random: 74), 74_000_000)
        XCTAssertEqual(p.backOffNanos(retry: 1, random: 25), 0)
    }

    func testConfiguredIntervals() {
        let p = plan(base: 10_000_000, max: 50_000_000)
        XCTAssertEqual(p.backOffNanos(retry: 1, random: 9), 9_000_000)
        XCTAssertEqual(p.backOffNanos(retry: 3, random: 69), 50_000_000, "capped at max_interval")
        XCTAssertLessThanOrEqual(p.backOffNanos(retry: 30, random: UInt64.max), 50_000_000)
    }

    func testRetriableStatuses() {
        var p = plan(base: 25_000_000, max: 250_000_000)
        p.retriableStatusCodes = [418, 503]
        p.onRetriable4xx = true
        XCTAssertTrue(p.retries(status: 418))
        XCTAssertTrue(p.retries(status: 503))
        XCTAssertTrue(p.retries(status: 409))
        XCTAssertFalse(p.retries(status: 500))
        XCTAssertFalse(p.retries(status: 200))
    }
}
