import Foundation
import Glibc
import XCTest

/// `x-envoy-expected-rq-timeout-ms` on a retry is the time left of the route timeout, in Envoy
/// 1.40 and in Ballast: the upstream holds each attempt 1 s, so the retry's value is at least
/// 1000 below the first attempt's (60000); both proxies are held to the same rule (the exact
/// value depends on the clock).
final class RetryTimeoutHeaderDifferentialTests: XCTestCase {
    func testRetryCarriesTheTimeLeft() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-retry-timeout-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        for name in ["envoy", "ballast"] {
            let port = try freePort(), admin = try freePort()
            let config = root.appendingPathComponent("\(name).yaml").path
            try """
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
                      route_config: {virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: up, timeout: 60s,
                        retry_policy: {retry_on: 5xx, num_retries: 1, retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}}}}]}]}
                      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
              clusters:
              - name: up
                type: STATIC
                load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(upstream.port)}}}}]}]}
            """.write(toFile: config, atomically: false, encoding: .utf8)
            let (exe, args) = name == "envoy"
                ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
                : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
            let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: ["h": port], adminPort: admin,
                                           accessLog: root.appendingPathComponent("\(name).log").path, directory: root)
            defer { proxy.stop() }
            try proxy.waitReady()
            _ = upstream.takeHeads()
            let client = try RawClient(port: port)
            client.send("GET / HTTP/1.1\r\nHost: h\r\nx-reply-status: 503\r\nx-reply-delay: 1\r\n\r\n")
            XCTAssertEqual(client.readResponse()?.status, 503, name)
            let values = upstream.takeHeads().compactMap { head in
                head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("x-envoy-expected-rq-timeout-ms:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
            }
            XCTAssertEqual(values.count, 2, "\(name): \(values)")
            guard values.count == 2 else { continue }
            XCTAssertEqual(values[0], 60000, name)
            XCTAssertTrue(values[1] <= 59000 && values[1] > 0, "\(name): the retry says \(values[1]) ms left")
        }
    }
}
