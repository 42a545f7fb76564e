import Foundation
import Glibc
import XCTest

/// `retry_host_predicate` previous_hosts against Envoy 1.40: two RANDOM hosts, one answering 503,
/// `retry_on: 5xx` with one retry. With the predicate and host_selection_retry_max_attempts 100
/// the retry of a request that drew the failing host goes to the other one (a second draw of the
/// tried host has probability 2^-100): every request ends 200, the good host receives each
/// request once, and each request the failing host received was retried exactly once.
final class RetryHostPredicateDifferentialTests: XCTestCase {
    static let requests = 24

    func testRetriesAvoidTheTriedHostAsEnvoy() throws {
        let good = try RecordingUpstream()
        let bad = try RecordingUpstream()
        defer { good.stop(); bad.stop() }
        bad.answersStatus = 503
        let route = "{match: {prefix: \"/\"}, route: {cluster: up, retry_policy: {retry_on: 5xx, num_retries: 1, host_selection_retry_max_attempts: 100, retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}], retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}}}}"
        let seen = try observeEnvoyAndBallast("retry-previous-hosts", config: { port, admin, _ in
            singleListenerBootstrap(port: port, admin: admin, routes: [route],
                                    clusters: [staticCluster("up", ports: [good.port, bad.port], extra: "lb_policy: RANDOM")])
        }, observe: { proxy, port in
            _ = good.takeHeads()
            _ = bad.takeHeads()
            var statuses: [Int] = []
            let client = try RawClient(port: port)
            for i in 0..<Self.requests {
                client.send("GET /r\(i) HTTP/1.1\r\nHost: h\r\n\r\n")
                statuses.append(client.readResponse()?.status ?? 0)
            }
            let badCount = bad.takeHeads().count
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
            let retries = stats.first { $0.hasPrefix("cluster.up.upstream_rq_retry: ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? -1
            // The failing host's share is a draw; what must hold exactly is printed.
            return ["statuses: \(Set(statuses).sorted())", "good host received: \(good.takeHeads().count)",
                    "retries == failing host's requests: \(retries == badCount)", "failing host drawn at least once: \(badCount > 0)"]
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "previous_hosts differs from Envoy 1.40")
        XCTAssertEqual(seen.ballast, ["statuses: [200]", "good host received: \(Self.requests)",
                                      "retries == failing host's requests: true", "failing host drawn at least once: true"])
    }

    /// RING_HASH retries: the retry hashes the request again, so without a predicate every attempt
    /// goes to the host that owns the key (each request lands 3 times on one host of the three);
    /// with previous_hosts each host-selection attempt takes the next point on the ring, so the
    /// three attempts reach three different hosts. Every host answers 503 so that each attempt
    /// is seen. Which host owns a key is compared by the next test; this one compares the shape
    /// per request.
    func testRingHashRetriesPickOnTheRingAsEnvoy() throws {
        let hosts = try (0..<3).map { _ in try RecordingUpstream() }
        defer { hosts.forEach { $0.stop() } }
        for h in hosts { h.answersStatus = 503 }
        let predicate = "host_selection_retry_max_attempts: 50, retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}], "
        for (label, extra) in [("same-key", ""), ("previous-hosts", predicate)] {
            let route = "{match: {prefix: \"/\"}, route: {cluster: up, hash_policy: [{header: {header_name: x-key}}], retry_policy: {retry_on: 5xx, num_retries: 2, \(extra)retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}}}}"
            let seen = try observeEnvoyAndBallast("retry-ring-hash-\(label)", config: { port, admin, _ in
                singleListenerBootstrap(port: port, admin: admin, routes: [route],
                                        clusters: [staticCluster("up", ports: hosts.map(\.port), extra: "lb_policy: RING_HASH")])
            }, observe: { _, port in
                for h in hosts { _ = h.takeHeads() }
                var shapes: [String] = []
                let client = try RawClient(port: port)
                for key in 0..<8 {
                    client.send("GET /k HTTP/1.1\r\nHost: h\r\nx-key: key-\(key)\r\n\r\n")
                    let status = client.readResponse()?.status ?? 0
                    let counts = hosts.map { $0.takeHeads().count }.sorted()
                    shapes.append("\(status) \(counts)")
                }
                return shapes
            })
            XCTAssertEqual(seen.ballast, seen.envoy, "\(label): RING_HASH retries differ from Envoy 1.40")
            let expected = label == "same-key" ? "503 [0, 0, 3]" : "503 [1, 1, 1]"
            XCTAssertEqual(seen.ballast, Array(repeating: expected, count: 8), label)
        }
    }

    /// RING_HASH places keys as Envoy does: the ring is built from the same points (xxHash64 of
    /// "ip:port_i", Envoy's scale and running sums) and request keys hash with xxHash64, so each of
    /// 24 header keys, a cookie key and the source IP reach the same host (by port) in both proxies.
    func testRingHashKeysLandOnEnvoysHosts() throws {
        let hosts = try (0..<3).map { _ in try RecordingUpstream() }
        defer { hosts.forEach { $0.stop() } }
        let routes = [
            "{match: {prefix: \"/header\"}, route: {cluster: up, hash_policy: [{header: {header_name: x-key}}]}}",
            "{match: {prefix: \"/cookie\"}, route: {cluster: up, hash_policy: [{cookie: {name: session}}]}}",
            "{match: {prefix: \"/source\"}, route: {cluster: up, hash_policy: [{connection_properties: {source_ip: true}}]}}",
            "{match: {prefix: \"/weighted\"}, route: {cluster: weighted, hash_policy: [{header: {header_name: x-key}}]}}",
        ]
        let weightedEndpoints = hosts.enumerated().map { i, h in
            "{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(h.port)}}}, load_balancing_weight: \(i + 1)}"
        }.joined(separator: ", ")
        let weighted = "- {name: weighted, type: STATIC, lb_policy: RING_HASH, ring_hash_lb_config: {minimum_ring_size: 64}, load_assignment: {cluster_name: weighted, endpoints: [{lb_endpoints: [\(weightedEndpoints)]}]}}"
        let seen = try observeEnvoyAndBallast("ring-hash-keys", config: { port, admin, _ in
            singleListenerBootstrap(port: port, admin: admin, routes: routes,
                                    clusters: [staticCluster("up", ports: hosts.map(\.port), extra: "lb_policy: RING_HASH"), weighted])
        }, observe: { _, port in
            for h in hosts { _ = h.takeHeads() }
            let client = try RawClient(port: port)
            func landed(_ request: String) -> String {
                client.send(request)
                let status = client.readResponse()?.status ?? 0
                let counts = hosts.map { $0.takeHeads().count }
                return "\(status) host \(counts.firstIndex(of: 1).map(String.init) ?? "\(counts)")"
            }
            var out: [String] = []
            for key in 0..<24 { out.append("header key-\(key): " + landed("GET /header HTTP/1.1\r\nHost: h\r\nx-key: key-\(key)\r\n\r\n")) }
            for key in 0..<8 { out.append("cookie s\(key): " + landed("GET /cookie HTTP/1.1\r\nHost: h\r\nCookie: a=1; session=s\(key)\r\n\r\n")) }
            out.append("source ip: " + landed("GET /source HTTP/1.1\r\nHost: h\r\n\r\n"))
            for key in 0..<16 { out.append("weighted key-\(key): " + landed("GET /weighted HTTP/1.1\r\nHost: h\r\nx-key: key-\(key)\r\n\r\n")) }
            return out
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "RING_HASH places keys differently from Envoy 1.40")
        // Not all on one host (the keys spread), and every request answered.
        XCTAssertGreaterThan(Set(seen.ballast.prefix(24).map { $0.split(separator: " ").last! }).count, 1)
        XCTAssertTrue(seen.ballast.allSatisfy { $0.contains(": 200 host ") }, "\(seen.ballast)")
    }
}
