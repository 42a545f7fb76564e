import Foundation
import Glibc
import XCTest

/// `layered_runtime` static-layer connection limits against real Envoy 1.40: the same
/// connections opened against both proxies are answered or closed alike, and counted alike.
final class RuntimeDifferentialTests: XCTestCase {
    /// The cases, as the README's feature table lists them.
    static let cases: [(name: String, layer: String, overflowStat: String)] = [
        ("`envoy.resource_limits.listener.<name>.connection_limit: 2`",
         "envoy:\n        resource_limits:\n          listener:\n            limited:\n              connection_limit: 2", "downstream_cx_overflow"),
        ("`overload.global_downstream_max_connections: 2`",
         "overload:\n        global_downstream_max_connections: 2", "downstream_global_cx_overflow"),
    ]

    func testConnectionLimitsAgreeWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-runtime-differential-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        var report: [String] = []
        for c in Self.cases {
            var seen: [String: [String]] = [:]
            for name in ["envoy", "ballast"] {
                let port = try freePort()
                let admin = try freePort()
                let config = root.appendingPathComponent("\(name).yaml").path
                try bootstrap(port: port, admin: admin, layer: c.layer).write(toFile: config, atomically: false, encoding: .utf8)
                let (exe, args) = name == "envoy"
                    ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
                    : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
                let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: [:], adminPort: admin,
                                               accessLog: root.appendingPathComponent("\(name).log").path, directory: root)
                defer { proxy.stop() }
                seen[name] = try observe(proxy, port: port, overflowStat: c.overflowStat)
            }
            if seen["envoy"]! != seen["ballast"]! {
                report.append("\(c.name):\n  envoy:   \(seen["envoy"]!)\n  ballast: \(seen["ballast"]!)")
            }
            XCTAssertEqual(seen["ballast"]!, ["200", "200", "closed", "\(c.overflowStat) 1"], c.name)
        }
        if !report.isEmpty { XCTFail("connection limits differ from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }

    /// Two connections answered, a third closed unanswered, the overflow counted (the admin
    /// connection counts toward Envoy's global limit: it is opened only with one client left).
    private func observe(_ proxy: ProxyUnderTest, port: Int, overflowStat: String) throws -> [String] {
        func get(_ c: RawClient) -> String {
            c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return c.readResponse().map { "\($0.status)" } ?? "closed"
        }
        // Ready when a listener connection is answered (not /ready: an admin connection would
        // count toward Envoy's global limit until Envoy has closed it).
        var ready: (RawClient, String)?
        let start = Date().addingTimeInterval(20)
        while ready == nil && Date() < start {
            if let c = try? RawClient(port: port) {
                let status = get(c)
                if status == "200" { ready = (c, status) }
            }
            if ready == nil { usleep(50_000) }
        }
        guard let (first, firstStatus) = ready else { throw DifferentialError("\(proxy.name) did not answer on \(port)") }
        let second = try RawClient(port: port)
        var out = [firstStatus, get(second)]
        let third = try RawClient(port: port)
        out.append(get(third))
        shutdown(first.fd, Int32(SHUT_RDWR))
        let addr = "listener.127.0.0.1_\(port)."
        var overflow = "-"
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let stats = (try? proxy.adminGet("/stats").text) ?? ""
            let lines = stats.split(separator: "\n")
            if lines.contains(where: { $0 == "\(addr)downstream_cx_active: 1" }),
               let line = lines.first(where: { $0.hasPrefix("\(addr)\(overflowStat): ") }) {
                overflow = "\(overflowStat) \(line.split(separator: " ").last!)"
                break
            }
            usleep(20_000)
        }
        out.append(overflow)
        withExtendedLifetime(second) {}
        withExtendedLifetime(third) {}
        return out
    }

    private func bootstrap(port: Int, admin: Int, layer: String) -> String {
        """
        static_resources:
          listeners:
          - name: limited
            address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: limited
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                  route_config:
                    virtual_hosts:
                    - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: ok}}}]}
        admin:
          address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}
        layered_runtime:
          layers:
          - name: static_layer_0
            static_layer:
              \(layer)
        """
    }
}
