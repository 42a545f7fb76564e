import Foundation
import Glibc
import XCTest

/// `/clusters` against real Envoy 1.40: after the same requests (a 200, an upstream 503, an
/// upstream that closes mid-exchange, a dead host, a route timeout, another 200) every line is
/// the same, the per-host `cx_*` / `rq_*` counters included. The locality lines (`region`,
/// `zone`, `sub_zone`, `priority`) are not printed by Ballast yet and are left out of the comparison.
final class ClustersAdminDifferentialTests: XCTestCase {
    static let notPrinted: Set<String> = ["region", "zone", "sub_zone", "priority"]

    func testClustersOutputAgreesWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-clusters-differential-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let dead = try freePort()
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let port = try freePort(), admin = try freePort()
            let config = root.appendingPathComponent("\(name).yaml").path
            try bootstrap(port: port, admin: admin, upstream: upstream.port, dead: dead).write(toFile: config, atomically: false, encoding: .utf8)
            let (exe, args) = name == "envoy"
                ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
                : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
            let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: ["h": port], adminPort: admin,
                                           accessLog: root.appendingPathComponent("\(name).log").path, directory: root)
            defer { proxy.stop() }
            try proxy.waitReady()
            var statuses: [String] = []
            let client = try RawClient(port: port)
            for extra in ["", "x-reply-status: 503\r\n", "x-reply-close: 1\r\n"] {
                client.send("GET / HTTP/1.1\r\nHost: h\r\n\(extra)\r\n")
                statuses.append(client.readResponse().map { "\($0.status)" } ?? "none")
            }
            for path in ["/dead", "/timeout"] {
                client.send("GET \(path) HTTP/1.1\r\nHost: h\r\nx-reply-delay: 1\r\n\r\n")
                statuses.append(client.readResponse().map { "\($0.status)" } ?? "none")
            }
            client.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            statuses.append(client.readResponse().map { "\($0.status)" } ?? "none")
            XCTAssertEqual(statuses, ["200", "503", "503", "503", "504", "200"], name)
            // Counters settle when the timed-out upstream connection is closed: wait for rq_active 0.
            var lines: [String] = []
            let deadline = Date().addingTimeInterval(10)
            repeat {
                lines = try proxy.adminGet("/clusters").text.split(separator: "\n").map(String.init)
                    .filter { line in
                        let parts = line.components(separatedBy: "::")  // cluster::host::field::value
                        return !(parts.count == 4 && Self.notPrinted.contains(parts[2]))
                    }.sorted()
                if lines.contains("up::127.0.0.1:\(upstream.port)::rq_active::0") { break }
                usleep(20_000)
            } while Date() < deadline
            seen[name] = lines
        }
        let envoy = seen["envoy"]!, ballast = seen["ballast"]!
        XCTAssertEqual(ballast.filter { !envoy.contains($0) }, [], "lines only Ballast prints")
        XCTAssertEqual(envoy.filter { !ballast.contains($0) }, [], "lines only Envoy prints")
        let host = "up::127.0.0.1:\(upstream.port)::"
        for line in ["rq_total::5", "rq_success::2", "rq_error::3", "rq_timeout::1", "cx_total::3", "cx_active::1"] {
            XCTAssertTrue(ballast.contains(host + line), "\(host + line) in \(ballast)")
        }
        XCTAssertTrue(ballast.contains("dead::127.0.0.1:\(dead)::cx_connect_fail::1"))
        XCTAssertTrue(ballast.contains("dead::127.0.0.1:\(dead)::rq_error::1"))
    }

    private func bootstrap(port: Int, admin: Int, upstream: Int, dead: Int) -> String {
        """
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
        static_resources:
          listeners:
          - address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: h
                  route_config: {virtual_hosts: [{name: a, domains: ["*"], routes: [
                    {match: {prefix: "/dead"}, route: {cluster: dead}},
                    {match: {prefix: "/timeout"}, route: {cluster: up, timeout: 0.3s}},
                    {match: {prefix: "/"}, route: {cluster: up}}]}]}
                  http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          clusters:
          - name: up
            type: STATIC
            load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(upstream)}}}}]}]}
          - name: dead
            type: STATIC
            load_assignment: {cluster_name: dead, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(dead)}}}}]}]}
        """
    }
}
