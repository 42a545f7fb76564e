import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// LEAST_REQUEST with a busy host: power of two choices (drawn with replacement, as Envoy's)
/// among the worker's active requests per host.
final class LeastRequestTests: XCTestCase {
    /// Two upstreams, one holding a request that is not answered (a long delay): a new request
    /// goes to the busy host only when both draws pick it, so it gets 1/4 of 400 sequential
    /// requests (100 ± 43, 5 sd of Binomial(400, 1/4)) instead of half; the idle one the rest.
    /// With choice_count 5 the busy host needs five draws in a row: 400/32 = 12.5 (at most 12.5 +
    /// 5 sd = 30).
    func testBusyHostIsAvoidedAsTheChoiceCountSays() throws {
        try forEachDataPathBackend { io in
            for (choices, range) in [(2, 57...143), (5, 0...30)] {
                let servers = try (0..<2).map { _ in try DataPathGapsTests.Server(io: io, extra: ["--max-echo-delay", "60s"]) }
                defer { servers.forEach { $0.stop() } }
                let cluster = dataPathCluster("pair", ports: servers.map(\.port),
                                              extra: "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: \(choices) }")
                // No route timeout: the held request stays in flight until the test ends.
                let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("pair", routeExtra: ", timeout: 0s"), clusters: cluster),
                                                   io: io, concurrency: 1)
                defer { proxy.stop() }
                let port = proxy.port(of: "http")!
                let held = try TestConnection(port: port)
                held.send("GET /?delay=60s HTTP/1.1\r\nHost: x\r\n\r\n")
                // The busy host is the one with a request in flight.
                let busy = try XCTUnwrap(Wait.value { servers.firstIndex { $0.figure("requests_in_flight") == 1 } },
                                         "\(io): the held request never reached an upstream")
                let before = servers.map(\.requests)
                let c = try TestConnection(port: port)
                var ok = 0
                for _ in 0..<400 where c.get("/?size=1")?.status == 200 { ok += 1 }
                XCTAssertEqual(ok, 400, "\(io)")
                let counts = zip(servers.map(\.requests), before).map { $0 - $1 }
                XCTAssertEqual(counts.reduce(0, +), 400, "\(io): \(counts)")
                XCTAssertTrue(range.contains(counts[busy]), "\(io) choice_count \(choices): the busy host got \(counts[busy]) of 400 (expected \(range))")
            }
        }
    }
}
