import Foundation
import Glibc
import XCTest

/// `layered_runtime` disk and admin layers against real Envoy 1.40, with the fault filter's
/// runtime keys: the same steps through both proxies (each with its own runtime directory), and
/// after each the answer to a request, `/runtime` (parsed) and the fault counters compared.
final class RuntimeLayerDifferentialTests: XCTestCase {
    /// The steps, as the README's feature table lists them.
    static let steps = [
        "disk layer at start: fault.http.abort.abort_percent 100 and http_status 418 override the filter's 0% and 503",
        "admin layer: /runtime_modify abort_percent=0 overrides the disk layer",
        "admin layer: /runtime_modify abort_percent= (empty) removes the override",
        "disk layer swapped (symlink moved onto symlink_root): delay fixed_delay_percent 100, fixed_duration_ms 1, abort 0",
    ]

    func testRuntimeLayersAgreeWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-runtime-layers-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let rt = root.appendingPathComponent("\(name)-rt").path
            try write(["fault/http/abort/abort_percent": "100", "fault/http/abort/http_status": "418"], into: "\(rt)/v1/envoy")
            try write(["fault/http/abort/abort_percent": "0", "fault/http/delay/fixed_delay_percent": "100", "fault/http/delay/fixed_duration_ms": "1"],
                      into: "\(rt)/v2/envoy")
            XCTAssertEqual(symlink("v1", "\(rt)/current"), 0)
            let allocator = PortAllocator()
            let port = try allocator.next()
            let admin = try allocator.next()
            let config = root.appendingPathComponent("\(name).yaml").path
            try bootstrap(port: port, admin: admin, upstream: upstream.port, runtime: "\(rt)/current").write(toFile: config, atomically: false, encoding: .utf8)
            let (exe, args) = name == "envoy"
                ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
                : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
            let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: ["fault": port], adminPort: admin,
                                           accessLog: root.appendingPathComponent("\(name).log").path, directory: root)
            defer { proxy.stop() }
            try proxy.waitReady()
            var out: [String] = []
            func observe(_ step: String) throws {
                let client = try RawClient(port: port)
                client.send("GET /f HTTP/1.1\r\nHost: rt.test\r\n\r\n")
                let r = client.readResponse()
                out.append("\(step): \(r.map { "\($0.status) \($0.text)" } ?? "(no response)")")
                out.append("\(step): /runtime \(try runtimeEntries(proxy))")
            }
            try observe(Self.steps[0])
            out.append("modify: " + (try post(proxy, "/runtime_modify?fault.http.abort.abort_percent=0")))
            try observe(Self.steps[1])
            out.append("modify: " + (try post(proxy, "/runtime_modify?fault.http.abort.abort_percent=")))
            try observe(Self.steps[2])
            // The atomic swap Envoy's docs describe: a new link moved onto the old one.
            XCTAssertEqual(symlink("v2", "\(rt)/next"), 0)
            XCTAssertEqual(rename("\(rt)/next", "\(rt)/current"), 0)
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline, !(try runtimeEntries(proxy)).contains("fixed_duration_ms") { usleep(20_000) }
            try observe(Self.steps[3])
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n")
            for stat in ["http.fault.fault.aborts_injected", "http.fault.fault.delays_injected"] {
                out.append(stats.first { $0.hasPrefix(stat + ":") }.map(String.init) ?? "\(stat): (absent)")
            }
            if name == "ballast" {
                // Ballast refuses a key it does not apply (Envoy would store it): nothing changes.
                let refused = try proxy.adminPost("/runtime_modify?re2.max_program_size.error_level=200")
                XCTAssertEqual(refused.status, 400, refused.text)
                XCTAssertTrue(refused.text.contains("re2.max_program_size.error_level"), refused.text)
            }
            seen[name] = out
        }
        let envoy = seen["envoy"]!, ballast = seen["ballast"]!
        var report: [String] = []
        for (e, b) in zip(envoy, ballast) where e != b { report.append("  envoy:   \(e)\n  ballast: \(b)") }
        if ProcessInfo.processInfo.environment["RUNTIME_DUMP"] != nil { print(ballast.joined(separator: "\n")) }
        if !report.isEmpty { XCTFail("runtime layers differ from Envoy 1.40:\n" + report.joined(separator: "\n")) }
        XCTAssertTrue(ballast[0].hasSuffix("418 fault filter abort"), "\(ballast)")
    }

    private func write(_ files: [String: String], into directory: String) throws {
        for (path, value) in files {
            let full = directory + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try value.write(toFile: full, atomically: false, encoding: .utf8)
        }
    }

    /// `/runtime` as sorted `key=[layer values]->final` text, and the layer names.
    private func runtimeEntries(_ proxy: ProxyUnderTest) throws -> String {
        let json = try JSONSerialization.jsonObject(with: Data(proxy.adminGet("/runtime").text.utf8)) as? [String: Any]
        let entries = (json?["entries"] as? [String: [String: Any]] ?? [:]).map { key, e in
            "\(key)=\((e["layer_values"] as? [String]) ?? [])->\(e["final_value"] ?? "-")"
        }.sorted()
        return entries.joined(separator: " ") + " layers \((json?["layers"] as? [String]) ?? [])"
    }

    private func post(_ proxy: ProxyUnderTest, _ path: String) throws -> String {
        let r = try proxy.adminPost(path)
        return "\(r.status) \(r.text)"
    }

    private func bootstrap(port: Int, admin: Int, upstream: Int, runtime: String) -> String {
        """
        static_resources:
          listeners:
          - name: fault
            address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: fault
                  http_filters:
                  - name: envoy.filters.http.fault
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                      abort: {http_status: 503, percentage: {numerator: 0, denominator: HUNDRED}}
                      delay: {fixed_delay: 3s, percentage: {numerator: 0, denominator: HUNDRED}}
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                  route_config:
                    virtual_hosts:
                    - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: backend}}]}
          clusters:
          - {name: backend, connect_timeout: 1s, type: STATIC, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(upstream)}}}}]}]}}
        admin:
          address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}
        layered_runtime:
          layers:
          - {name: static_layer_0, static_layer: {fault.http.delay.fixed_delay_percent: 0}}
          - {name: disk_layer_0, disk_layer: {symlink_root: "\(runtime)", subdirectory: envoy}}
          - {name: admin_layer_0, admin_layer: {}}
        """
    }
}

extension ProxyUnderTest {
    func adminPost(_ path: String) throws -> RawResponse {
        let c = try RawClient(port: adminPort)
        c.send("POST \(path) HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        guard let r = c.readResponse() else { throw DifferentialError("\(name) admin POST \(path): no response") }
        return r
    }
}
