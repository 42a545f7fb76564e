@testable import Proxy
import XCTest

final class DurationTests: XCTestCase {
    func testEnvoyStrings() throws {
        let cases: [(String, Int64)] = [
            ("0s", 0), ("0.25s", 250_000_000), ("1.5s", 1_500_000_000), ("300s", 300_000_000_000),
            ("0.000000001s", 1), ("1.000000001s", 1_000_000_001), ("15s", 15_000_000_000), ("0.5s", 500_000_000),
            ("3600s", 3_600_000_000_000), ("9223372035s", 9_223_372_035_000_000_000),
        ]
        for (text, nanos) in cases {
            XCTAssertEqual(try EnvoyDuration.parseNanos(text), nanos, text)
        }
    }

    func testRejected() {
        let cases: [(String, EnvoyDuration.ParseError)] = [
            ("", .malformed), ("s", .malformed), ("1", .malformed), ("1.s", .malformed), (".5s", .malformed),
            ("1.0000000001s", .malformed), ("1,5s", .malformed), ("1e3s", .malformed), (" 1s", .malformed),
            ("250ms", .otherUnit("ms")), ("5m", .otherUnit("m")), ("1h", .otherUnit("h")), ("10us", .otherUnit("us")),
            ("-1s", .negative), ("9223372036s", .tooLarge), ("315576000000s", .tooLarge), ("9999999999999s", .tooLarge),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try EnvoyDuration.parseNanos(text), text) { error in
                XCTAssertEqual(error as? EnvoyDuration.ParseError, expected, text)
            }
        }
    }

    func testObjectFormAndPrinting() throws {
        XCTAssertEqual(try EnvoyDuration.combine(seconds: 1, nanos: 500_000_000), 1_500_000_000)
        XCTAssertThrowsError(try EnvoyDuration.combine(seconds: 0, nanos: 1_000_000_000))
        for (nanos, text) in [(Int64(0), "0s"), (250_000_000, "0.25s"), (1_500_000_000, "1.5s"), (1, "0.000000001s"), (300_000_000_000, "300s")] {
            XCTAssertEqual(EnvoyDuration.format(nanos: nanos), text)
            XCTAssertEqual(try EnvoyDuration.parseNanos(text), nanos)
        }
    }

    /// Both YAML spellings reach the model; 0s disables a timeout that Envoy lets you disable.
    func testDurationsInAConfig() throws {
        let yaml = edited([
            ("connect_timeout: 0.25s", "connect_timeout: { seconds: 1, nanos: 500000000 }"),
            ("timeout: 1.5s", "timeout: 0s"),
            ("codec_type: AUTO", "codec_type: AUTO\n          request_timeout: 0s\n          stream_idle_timeout: 0s\n          common_http_protocol_options: { idle_timeout: 30s }"),
        ])
        let b = try XCTUnwrap(load(yaml)).bootstrap
        XCTAssertEqual(b.clusters[0].connectTimeoutNanos, 1_500_000_000)
        guard case .httpConnectionManager(let hcm) = b.listeners[0].filterChains[0].filters[0],
              case .forward(let route) = hcm.routeConfig.virtualHosts[0].routes[0].action else { return XCTFail() }
        XCTAssertNil(route.timeoutNanos, "0s: no route timeout")
        XCTAssertNil(hcm.requestTimeoutNanos)
        XCTAssertNil(hcm.streamIdleTimeoutNanos)
        XCTAssertEqual(hcm.idleTimeoutNanos, 30_000_000_000)
    }

    /// The per-request timers as Envoy reads them: stream_idle_timeout defaults to 5 minutes when
    /// unset (request_timeout to none); a route's idle_timeout is kept as given, 0s included (it
    /// disables the stream idle timeout for that route), and absent means the manager's.
    func testPerRequestTimerDefaults() throws {
        func hcm(_ yaml: String) throws -> HTTPConnectionManagerConfig {
            let b = try XCTUnwrap(load(yaml)).bootstrap
            guard case .httpConnectionManager(let hcm) = b.listeners[0].filterChains[0].filters[0] else { throw XCTSkip("no HCM") }
            return hcm
        }
        func routeIdle(_ h: HTTPConnectionManagerConfig) -> Int64?? {
            guard case .forward(let route) = h.routeConfig.virtualHosts[0].routes[0].action else { return nil }
            return .some(route.idleTimeoutNanos)
        }
        let defaults = try hcm(edited([]))
        XCTAssertEqual(defaults.streamIdleTimeoutNanos, 300_000_000_000)
        XCTAssertNil(defaults.requestTimeoutNanos)
        XCTAssertEqual(routeIdle(defaults), .some(nil))
        let set = try hcm(edited([("codec_type: AUTO", "codec_type: AUTO\n          request_timeout: 10s\n          stream_idle_timeout: 2.5s"),
                                  ("timeout: 1.5s", "timeout: 1.5s, idle_timeout: 0s")]))
        XCTAssertEqual(set.requestTimeoutNanos, 10_000_000_000)
        XCTAssertEqual(set.streamIdleTimeoutNanos, 2_500_000_000)
        XCTAssertEqual(routeIdle(set), .some(0))
        XCTAssertEqual(loadErrors(edited([("timeout: 1.5s", "timeout: 1.5s, idle_timeout: 5")])).count, 1)
    }

    func testDurationErrors() {
        XCTAssertEqual(loadErrors(edited([("connect_timeout: 0.25s", "connect_timeout: { seconds: 1, nanos: 2000000000 }")])),
                       ["static_resources.clusters[0].connect_timeout.nanos: 2000000000 is out of range 0...999999999"])
        XCTAssertEqual(loadErrors(edited([("connect_timeout: 0.25s", "connect_timeout: { seconds: 1, nano: 5 }")])),
                       ["static_resources.clusters[0].connect_timeout.nano: unknown field; did you mean nanos?"])
        XCTAssertEqual(loadErrors(edited([("connect_timeout: 0.25s", "connect_timeout: -1s")])),
                       ["static_resources.clusters[0].connect_timeout: a negative duration is not allowed, got '-1s'"])
        XCTAssertEqual(loadErrors(edited([("connect_timeout: 0.25s", "connect_timeout: [1]")])),
                       ["static_resources.clusters[0].connect_timeout: expected a duration such as 0.25s, got a list"])
    }
}
