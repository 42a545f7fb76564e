import EventLoop
import Foundation
@testable import Proxy
import XCTest

/// `envoy.filters.http.local_ratelimit`'s shared token bucket, with the clock given (counts,
/// never timings). Behaviour against real Envoy: DifferentialTests (rl-* cases).
final class LocalRateLimitTests: XCTestCase {
    static let second: Int64 = 1_000_000_000

    func testNewBucketIsFullThenEmpty() {
        let b = SharedTokenBucket(maxTokens: 2, tokensPerFill: 1, fillIntervalNanos: Self.second, nowNanos: 0)
        XCTAssertTrue(b.consumeOne(nowNanos: 0))
        XCTAssertTrue(b.consumeOne(nowNanos: 0))
        XCTAssertFalse(b.consumeOne(nowNanos: 0))
    }

    /// tokens_per_fill / fill_interval, continuously: 5 per second gives one every 200 ms.
    func testRefillsAtTheFillRate() {
        let b = SharedTokenBucket(maxTokens: 1, tokensPerFill: 5, fillIntervalNanos: Self.second, nowNanos: 0)
        XCTAssertTrue(b.consumeOne(nowNanos: 0))
        XCTAssertFalse(b.consumeOne(nowNanos: 100_000_000))
        XCTAssertTrue(b.consumeOne(nowNanos: 200_000_000))
        XCTAssertFalse(b.consumeOne(nowNanos: 200_000_000))
    }

    /// Idle time fills the bucket up to max_tokens, no further.
    func testRefillIsCappedAtMaxTokens() {
        let b = SharedTokenBucket(maxTokens: 3, tokensPerFill: 1, fillIntervalNanos: Self.second, nowNanos: 0)
        for _ in 0..<3 { XCTAssertTrue(b.consumeOne(nowNanos: 0)) }
        let later = 3600 * Self.second
        var taken = 0
        while b.consumeOne(nowNanos: later) { taken += 1 }
        XCTAssertEqual(taken, 3)
    }

    func testZeroMaxTokensLimitsEverything() {
        let b = SharedTokenBucket(maxTokens: 0, tokensPerFill: 1, fillIntervalNanos: Self.second, nowNanos: 0)
        XCTAssertFalse(b.consumeOne(nowNanos: 0))
        XCTAssertFalse(b.consumeOne(nowNanos: 3600 * Self.second))
    }

    /// Shared by all workers: threads taking at once get exactly max_tokens between them.
    func testThreadsShareOneBucketExactly() {
        let b = SharedTokenBucket(maxTokens: 1000, tokensPerFill: 1, fillIntervalNanos: 3600 * Self.second, nowNanos: 0)
        let granted = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            var mine = 0
            for _ in 0..<600 where b.consumeOne(nowNanos: 0) { mine += 1 }
            granted.add(mine)
        }
        XCTAssertEqual(granted.value, 1000)
    }

    func testFractionalPercentDraws() {
        XCTAssertTrue(FractionalPercent(numerator: 100, denominator: 100).enabled(12345))
        XCTAssertFalse(FractionalPercent(numerator: 0, denominator: 100).enabled(0))
        let half = FractionalPercent(numerator: 50, denominator: 100)
        XCTAssertEqual((0..<100).filter { half.enabled(UInt64($0)) }.count, 50)
    }

    /// Config errors name the YAML path.
    func testConfigErrorsNameThePath() throws {
        let filter = "\(hcmPath).http_filters[0].typed_config"
        func errors(_ fields: String) -> String {
            let yaml = edited([("          http_filters:\n",
                                "          http_filters:\n          - name: envoy.filters.http.local_ratelimit\n            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, \(fields) }\n")])
            return loadErrors(yaml).joined(separator: "\n")
        }
        XCTAssertTrue(errors("stat_prefix: rl, status: { code: 503 }").contains("\(filter).status: not supported by ballast"))
        XCTAssertTrue(errors("stat_prefix: rl, token_bucket: { max_tokens: 1, fill_interval: 0.02s }").contains("\(filter).token_bucket.fill_interval: must be at least 50ms"))
        XCTAssertTrue(errors("stat_prefix: rl, enable_x_ratelimit_headers: DRAFT_VERSION_03").contains("\(filter).enable_x_ratelimit_headers"))
        XCTAssertTrue(errors("stat_prefix: rl, response_headers_to_add: [ { header: { key: x-a, value: '%START_TIME%' } } ]").contains("\(filter).response_headers_to_add[0].header.value"))
        XCTAssertTrue(errors("token_bucket: { max_tokens: 1, fill_interval: 1s }").contains("\(filter).stat_prefix: required field missing"))
        XCTAssertEqual(errors("stat_prefix: rl, token_bucket: { max_tokens: 1, tokens_per_fill: { value: 2 }, fill_interval: 1s }"), "")
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.lock(); n += k; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
