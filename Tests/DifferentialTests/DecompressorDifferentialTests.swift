import CZlib
import Foundation
import Glibc
import XCTest

/// `envoy.filters.http.decompressor` (gzip, request direction, as Envoy's gzip example) against
/// real Envoy 1.40: request bodies with content-encoding gzip (and not) through both proxies to
/// an upstream that answers with what it received (framing fields, body size, checksum, start).
/// Compared: status, fields, that answer, and every `decompressor.*` stat at the end.
final class DecompressorDifferentialTests: XCTestCase {
    /// Decompressor stats compared per listener (Envoy's 14).
    static let statCount = 14
    static let text = Array(String(repeating: "hello upload ", count: 20).utf8)
    static let large = Array(String(repeating: "0123456789abcdef", count: 4096).utf8)

    /// (id, README feature text, listener, request bytes).
    static var cases: [(name: String, feature: String, listener: String, request: [UInt8])] {
        let body = gzip(text)
        return [
            ("dz-gzip", "decompressor: a gzip request body inflated, content-encoding and content-length dropped, sent chunked", "dz",
             post(["Content-Encoding: gzip"], body)),
            ("dz-upper", "decompressor: content-encoding GZIP (case-insensitive)", "dz", post(["Content-Encoding: GZIP"], body)),
            ("dz-list", "decompressor: content-encoding gzip, br: gzip removed, br kept", "dz", post(["Content-Encoding: gzip, br"], body)),
            ("dz-inner", "decompressor: content-encoding br, gzip (gzip not outermost): untouched", "dz", post(["Content-Encoding: br, gzip"], body)),
            ("dz-plain", "decompressor: no content-encoding: untouched", "dz", post([], Array("plain body".utf8))),
            ("dz-no-transform", "decompressor: cache-control no-transform: untouched", "dz", post(["Content-Encoding: gzip", "Cache-Control: no-transform"], body)),
            ("dz-corrupt", "decompressor: a corrupt gzip body: empty body upstream, zlib_data_error, 200 (as Envoy)", "dz",
             post(["Content-Encoding: gzip"], Array("this is not gzip at all".utf8))),
            ("dz-no-body", "decompressor: a GET with content-encoding and no body: not counted", "dz",
             Array("GET /a HTTP/1.1\r\nHost: example.com\r\nX-Echo: 1\r\nContent-Encoding: gzip\r\n\r\n".utf8)),
            ("dz-chunked", "decompressor: a chunked gzip body", "dz",
             Array("POST /a HTTP/1.1\r\nHost: example.com\r\nX-Echo: 1\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n\(String(body.count, radix: 16))\r\n".utf8)
                + body + Array("\r\n0\r\n\r\n".utf8)),
            ("dz-truncated", "decompressor: a truncated gzip body: what inflates goes upstream", "dz", post(["Content-Encoding: gzip"], Array(body.dropLast(8)))),
            ("dz-trailing", "decompressor: bytes after the gzip member dropped", "dz", post(["Content-Encoding: gzip"], body + Array("JUNK".utf8))),
            ("dz-large", "decompressor: a 64 KiB body (inflate ratio under max_inflate_ratio)", "dz", post(["Content-Encoding: gzip"], gzip(large))),
            ("dr-ratio", "decompressor: max_inflate_ratio exceeded: the first chunk_size bytes, then zlib_data_error", "dr", post(["Content-Encoding: gzip"], gzip(large))),
        ]
    }

    static func post(_ fields: [String], _ body: [UInt8]) -> [UInt8] {
        Array("POST /a HTTP/1.1\r\nHost: example.com\r\nX-Echo: 1\r\n\(fields.map { $0 + "\r\n" }.joined())Content-Length: \(body.count)\r\n\r\n".utf8) + body
    }

    /// A gzip member (zlib's default level, 15-bit window).
    static func gzip(_ data: [UInt8]) -> [UInt8] {
        let z = ballast_deflate_new(-1, 15 + 16, 8, 0)!
        defer { ballast_deflate_free(z) }
        var out = [UInt8](repeating: 0, count: data.count + 1024)
        var used = 0, written = 0
        let count = out.count
        _ = data.withUnsafeBytes { d in out.withUnsafeMutableBytes { ballast_deflate(z, d.baseAddress, d.count, $0.baseAddress, count, Int32(BALLAST_Z_FINISH), &used, &written) } }
        return Array(out[0..<written])
    }

    func testDecompressorAgreesWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-decompressor-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try ShapedUpstream()
        defer { upstream.stop() }
        let allocator = PortAllocator()
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let ports = ["dz": try allocator.next(), "dr": try allocator.next()]
            let admin = try allocator.next()
            let config = root.appendingPathComponent("\(name).yaml").path
            try bootstrap(ports: ports, admin: admin, upstream: upstream.port).write(toFile: config, atomically: false, encoding: .utf8)
            let (exe, args) = name == "envoy"
                ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
                : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
            let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: ports, adminPort: admin,
                                           accessLog: root.appendingPathComponent("\(name).log").path, directory: root)
            defer { proxy.stop() }
            try proxy.waitReady()
            var out: [String] = []
            for c in Self.cases {
                let client = try RawClient(port: ports[c.listener]!)
                client.send(c.request)
                guard let r = client.readResponse() else { out.append("\(c.name): (no response)"); continue }
                let fields = r.fields.map { "\($0.name.lowercased()): \(normalized($0.name, $0.value))" }.sorted().joined(separator: " | ")
                out.append("\(c.name): \(r.statusLine) | \(fields) | \(r.text)")
            }
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n").filter { $0.contains(".decompressor.") }
            out.append("stats: " + stats.sorted().joined(separator: ", "))
            if ProcessInfo.processInfo.environment["BALLAST_COMPRESSOR_SHOW"] == "1" { print(out.joined(separator: "\n")) }
            seen[name] = out
        }
        let e = seen["envoy"]!, b = seen["ballast"]!
        XCTAssertEqual(e.count, b.count)
        XCTAssertTrue(b.contains { $0.hasPrefix("dz-gzip:") && $0.contains("transfer-encoding: chunked | body 260 bytes") }, "\(b)")
        XCTAssertEqual(b.last!.components(separatedBy: "http.dz.decompressor.").count - 1, Self.statCount, b.last!)
        var report: [String] = []
        for (x, y) in zip(e, b) where x != y { report.append("envoy:   \(x)\nballast: \(y)") }
        if !report.isEmpty { XCTFail("decompressor differs from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }

    private func bootstrap(ports: [String: Int], admin: Int, upstream: Int) -> String {
        func listener(_ name: String, library: String) -> String {
            """
              - name: \(name)
                address: {socket_address: {address: 127.0.0.1, port_value: \(ports[name]!)}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: \(name)
                      http_filters:
                      - name: envoy.filters.http.decompressor
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor
                          decompressor_library: {name: upload, typed_config: {"@type": type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip, \(library)}}
                          response_direction_config: {common_config: {enabled: {default_value: false, runtime_key: response_decompressor_enabled}}}
                      - name: envoy.filters.http.router
                        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                      route_config:
                        virtual_hosts:
                        - name: main
                          domains: ["example.com"]
                          routes:
                          - match: {prefix: "/"}
                            route: {cluster: up}

            """
        }
        return "static_resources:\n  listeners:\n"
            + listener("dz", library: "window_bits: 15, chunk_size: 8192, max_inflate_ratio: 1000")
            + listener("dr", library: "max_inflate_ratio: 2")
            + "  clusters:\n  - {name: up, type: STATIC, connect_timeout: 1s, load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(upstream)}}}}]}]}}\n"
            + "admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}\n"
    }
}
