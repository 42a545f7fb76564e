import CBrotli
import CZlib
import CZstd
import Foundation
import Glibc
import XCTest

/// `envoy.filters.http.compressor` (gzip) against real Envoy 1.40: the same requests through both
/// proxies in front of one upstream whose reply each request shapes (size, content-type, extra
/// fields, framing). Compared: status, fields (sorted, date and service time masked), framing
/// (chunked / content-length / until close), the body after gunzip when content-encoding is gzip
/// (zlib builds may differ in the compressed bytes), whether the connection stays open, and
/// every `compressor.*` stat at the end.
final class CompressorDifferentialTests: XCTestCase {
    /// (id, README feature text, listener, request). Requests carry `X-Size` / `X-Type` /
    /// `X-Field` / `X-Framing` for the upstream (ShapedUpstream).
    static let cases: [(name: String, feature: String, listener: String, request: String)] = [
        ("cz-gzip", "compressor: accept-encoding gzip: content-encoding gzip, vary, chunked, no content-length", "cz", get("/a", ae: "gzip")),
        ("cz-no-accept", "compressor: no accept-encoding: not compressed, vary added (no_accept_header)", "cz", get("/a")),
        ("cz-identity", "compressor: accept-encoding identity (header_identity)", "cz", get("/a", ae: "identity")),
        ("cz-wildcard", "compressor: accept-encoding * (header_wildcard)", "cz", get("/a", ae: "*")),
        ("cz-q0", "compressor: gzip;q=0 refuses gzip even with * (header_not_valid)", "cz", get("/a", ae: "gzip;q=0, *")),
        ("cz-qvalues", "compressor: q-values: gzip chosen among codings it cannot produce", "cz", get("/a", ae: "br;q=0.9, gzip;q=0.5, deflate")),
        ("cz-tie", "compressor: identity and gzip at the same q: the first wins", "cz", get("/a", ae: "identity, gzip")),
        ("cz-bad-q", "compressor: an unparsable q-value drops its coding", "cz", get("/a", ae: "gzip;q=x")),
        ("cz-upper", "compressor: GZIP (codings compared case-sensitively, as Envoy)", "cz", get("/a", ae: "GZIP")),
        ("cz-small", "compressor: content-length below min_content_length (content_length_too_small)", "cz", get("/a", ae: "gzip", size: 99)),
        ("cz-type", "compressor: content-type not listed", "cz", get("/a", ae: "gzip", type: "image/png")),
        ("cz-type-params", "compressor: content-type with parameters, upper case", "cz", get("/a", ae: "gzip", type: "Application/JSON; charset=utf-8")),
        ("cz-no-type", "compressor: no content-type", "cz", get("/a", ae: "gzip", type: "none")),
        ("cz-strong-etag", "compressor: a strong etag removed from a compressed response", "cz", get("/a", ae: "gzip", fields: ["ETag: \"v1\""])),
        ("cz-weak-etag", "compressor: a weak etag kept", "cz", get("/a", ae: "gzip", fields: ["ETag: W/\"v1\""])),
        ("cz-encoded", "compressor: a response with content-encoding is left alone", "cz", get("/a", ae: "gzip", fields: ["Content-Encoding: br"])),
        ("cz-no-transform", "compressor: cache-control no-transform", "cz", get("/a", ae: "gzip", fields: ["Cache-Control: max-age=5, No-Transform"])),
        ("cz-vary", "compressor: the upstream's vary values joined, then Accept-Encoding", "cz",
         get("/a", ae: "gzip", fields: ["Vary: Origin", "Vary: Cookie"])),
        ("cz-head", "compressor: HEAD: vary only", "cz", get("/a", ae: "gzip", method: "HEAD")),
        ("cz-chunked", "compressor: a chunked upstream body compressed", "cz", get("/a", ae: "gzip", framing: "chunked")),
        ("cz-close", "compressor: an until-close upstream body compressed and chunked", "cz", get("/a", ae: "gzip", framing: "close")),
        ("cz-status", "compressor: a 500 compressed too", "cz", get("/a", ae: "gzip", fields: ["X-Status: 500"])),
        ("cz-route-off", "compressor: CompressorPerRoute disabled on a route: no vary, only not_compressed counted", "cz", get("/off", ae: "gzip")),
        ("cz-route-off-small", "compressor: CompressorPerRoute disabled: a short body is not content_length_too_small", "cz", get("/off", ae: "gzip", size: 20)),
        ("cz-post", "compressor: a POST (request direction counted, not compressed)", "cz",
         "POST /a HTTP/1.1\r\nHost: example.com\r\nAccept-Encoding: gzip\r\nX-Size: 300\r\nContent-Type: text/plain\r\nContent-Length: 120\r\n\r\n" + String(repeating: "p", count: 120)),
        ("cd-etag", "compressor: disable_on_etag_header (not_compressed_etag)", "cd", get("/a", ae: "gzip", fields: ["ETag: \"v1\""])),
        ("cd-etag-no-accept", "compressor: disable_on_etag_header without accept-encoding", "cd", get("/a", fields: ["ETag: \"v1\""])),
        ("cd-default-type", "compressor: Envoy's default content types and min_content_length 30", "cd", get("/a", ae: "gzip", size: 40, type: "text/html")),
        ("cd-default-refused", "compressor: a type outside the default list", "cd", get("/a", ae: "gzip", size: 40, type: "application/octet-stream")),
        ("cd-direct", "compressor: a direct_response compressed (local replies pass the encoder filters)", "cd", get("/direct", ae: "gzip")),
        ("cd-dead", "compressor: the router's 503 UF body compressed", "cd", get("/dead", ae: "gzip")),
        ("cd-remove-ae", "compressor: remove_accept_encoding_header: the upstream gets no accept-encoding", "cd",
         get("/a", ae: "gzip", echo: true)),
        ("cd-remove-ae-route-off", "compressor: remove_accept_encoding_header does not apply on a route with CompressorPerRoute disabled", "cd",
         get("/off", ae: "gzip", echo: true)),
        ("cd-http10", "compressor: an HTTP/1.0 client gets the compressed body unchunked, then close", "cd", get("/a", ae: "gzip", version: "HTTP/1.0")),
        ("cb-br", "compressor (brotli): accept-encoding br: content-encoding br", "cb", get("/a", ae: "br")),
        ("cb-gzip", "compressor (brotli): accept-encoding gzip only: not compressed (header_not_valid)", "cb", get("/a", ae: "gzip")),
        ("cb-prefer", "compressor (brotli): gzip preferred but not produced: br", "cb", get("/a", ae: "gzip, br;q=0.5")),
        ("cb-chunked", "compressor (brotli): a chunked upstream body", "cb", get("/a", ae: "br", size: 5000, framing: "chunked")),
        ("cb-direct", "compressor (brotli): a direct_response", "cb", get("/direct", ae: "*")),
        ("cs-zstd", "compressor (zstd): accept-encoding zstd: content-encoding zstd, one frame at the end", "cs", get("/a", ae: "zstd")),
        ("cs-chunked", "compressor (zstd): a chunked upstream body", "cs", get("/a", ae: "gzip;q=0.1, zstd", size: 5000, framing: "chunked")),
        ("cs-gzip", "compressor (zstd): accept-encoding gzip only: not compressed", "cs", get("/a", ae: "gzip")),
    ]

    /// Compressor stats compared per listener (Envoy's 17 minus total_compressed_bytes).
    static let statCount = 16

    static func get(_ path: String, ae: String? = nil, size: Int = 200, type: String = "text/plain", fields: [String] = [],
                    framing: String = "length", method: String = "GET", version: String = "HTTP/1.1", echo: Bool = false) -> String {
        var r = "\(method) \(path) \(version)\r\nHost: example.com\r\nX-Size: \(size)\r\nX-Type: \(type)\r\nX-Framing: \(framing)\r\n"
        if echo { r += "X-Echo: 1\r\n" }
        if let ae { r += "Accept-Encoding: \(ae)\r\n" }
        for f in fields { r += "X-Field: \(f)\r\n" }
        return r + "\r\n"
    }

    func testCompressorAgreesWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-compressor-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try ShapedUpstream()
        defer { upstream.stop() }
        let allocator = PortAllocator()
        let dead = try allocator.next()
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let ports = ["cz": try allocator.next(), "cd": try allocator.next(), "cb": try allocator.next(), "cs": try allocator.next()]
            let admin = try allocator.next()
            let config = root.appendingPathComponent("\(name).yaml").path
            try bootstrap(ports: ports, admin: admin, upstream: upstream.port, dead: dead).write(toFile: config, atomically: false, encoding: .utf8)
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
                guard let r = client.readResponse(isHEAD: c.request.hasPrefix("HEAD")) else { out.append("\(c.name): (no response)"); continue }
                let fields = r.fields.map { "\($0.name.lowercased()): \(normalized($0.name, $0.value))" }.sorted().joined(separator: " | ")
                let framing = r.header("transfer-encoding") != nil ? "chunked" : r.header("content-length") != nil ? "length" : "until close"
                let body: String
                switch r.header("content-encoding") {
                case "gzip": body = Self.gunzip(r.body).map { "gunzip: " + String(decoding: $0, as: UTF8.self) } ?? "(not gzip)"
                case "zstd": body = Self.unzstd(r.body).map { "unzstd: " + String(decoding: $0.prefix(300), as: UTF8.self) + " (\($0.count) bytes)" } ?? "(not zstd)"
                case "br": body = Self.unbrotli(r.body).map { "unbrotli: " + String(decoding: $0.prefix(300), as: UTF8.self) + " (\($0.count) bytes)" } ?? "(not brotli)"
                default: body = r.text
                }
                client.send("GET /direct HTTP/1.1\r\nHost: example.com\r\n\r\n")
                let open = client.readResponse() != nil
                out.append("\(c.name): \(r.statusLine) | \(fields) | \(framing) | \(body) | \(open ? "kept open" : "closed")")
            }
            // total_compressed_bytes depends on the zlib build (Envoy links zlib-ng, whose deflate
            // output differs from zlib's for the same input and level; the bodies inflate the same).
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n").filter { $0.contains(".compressor.") && !$0.contains("response.total_compressed_bytes") }
            out.append("stats: " + stats.sorted().joined(separator: ", "))
            if ProcessInfo.processInfo.environment["BALLAST_COMPRESSOR_SHOW"] == "1" { print(out.joined(separator: "\n")) }
            seen[name] = out
        }
        let e = seen["envoy"]!, b = seen["ballast"]!
        XCTAssertEqual(e.count, b.count)
        // The suite must see compression happen (else every comparison could agree vacuously).
        XCTAssertTrue(b.contains { $0.hasPrefix("cz-gzip:") && $0.contains("content-encoding: gzip") && $0.contains("gunzip: hello") }, "\(b)")
        XCTAssertTrue(b.last!.contains("http.cz.compressor.text_optimized.gzip.response.compressed: "), b.last!)
        XCTAssertEqual(b.last!.components(separatedBy: "http.cz.compressor.").count - 1, Self.statCount, b.last!)
        var report: [String] = []
        for (x, y) in zip(e, b) where x != y { report.append("envoy:   \(x)\nballast: \(y)") }
        if !report.isEmpty { XCTFail("compressor differs from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }

    /// Whole zstd frames decoded (at most 1 MiB), or nil.
    static func unzstd(_ data: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 1 << 20)
        let count = out.count
        let n = data.withUnsafeBytes { d in out.withUnsafeMutableBytes { ballast_zstd_decompress(d.baseAddress, d.count, $0.baseAddress, count) } }
        return n >= 0 ? Array(out[0..<n]) : nil
    }

    /// A whole brotli stream decoded (at most 1 MiB), or nil.
    static func unbrotli(_ data: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 1 << 20)
        var count = out.count
        let ok = data.withUnsafeBytes { d in out.withUnsafeMutableBytes { ballast_brotli_decompress(d.baseAddress, d.count, $0.baseAddress, &count) } }
        return ok == 1 ? Array(out[0..<count]) : nil
    }

    /// The whole gzip member, or nil when it is not one.
    static func gunzip(_ data: [UInt8]) -> [UInt8]? {
        guard let z = ballast_inflate_new(15 + 16) else { return nil }
        defer { ballast_inflate_free(z) }
        var out: [UInt8] = []
        var offset = 0
        var scratch = [UInt8](repeating: 0, count: 65536)
        while true {
            var used = 0, written = 0
            let rc = data.withUnsafeBytes { input in
                scratch.withUnsafeMutableBytes { ballast_inflate(z, input.baseAddress! + offset, input.count - offset, $0.baseAddress, $0.count, &used, &written) }
            }
            offset += used
            out += scratch[0..<written]
            if rc == Int32(BALLAST_Z_STREAM_END) { return offset == data.count ? out : nil }
            if rc != Int32(BALLAST_Z_OK) || (used == 0 && written == 0) { return nil }
        }
    }

    private func bootstrap(ports: [String: Int], admin: Int, upstream: Int, dead: Int) -> String {
        func listener(_ name: String, filter: String, hcm: String = "") -> String {
            """
              - name: \(name)
                address: {socket_address: {address: 127.0.0.1, port_value: \(ports[name]!)}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: \(name)
                      \(hcm)
                      http_filters:
                      - \(filter)
                      - name: envoy.filters.http.router
                        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                      route_config:
                        virtual_hosts:
                        - name: main
                          domains: ["example.com"]
                          routes:
                          - match: {prefix: "/direct"}
                            direct_response: {status: 200, body: {inline_string: "a direct response long enough to be compressed here"}}
                          - match: {prefix: "/dead"}
                            route: {cluster: dead}
                          - match: {prefix: "/off"}
                            route: {cluster: up}
                            typed_per_filter_config:
                              envoy.filters.http.compressor: {"@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute, disabled: true}
                          - match: {prefix: "/"}
                            route: {cluster: up}

            """
        }
        let gzip = "compressor_library: {name: text_optimized, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip, memory_level: 3, window_bits: 10}}"
        let cz = "{name: envoy.filters.http.compressor, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, response_direction_config: {common_config: {min_content_length: 100, content_type: [text/plain, application/json]}}, \(gzip)}}"
        let cd = "{name: envoy.filters.http.compressor, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, response_direction_config: {disable_on_etag_header: true, remove_accept_encoding_header: true}, compressor_library: {name: defaults, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip, compression_level: BEST_SPEED, compression_strategy: DEFAULT_STRATEGY, chunk_size: 8192}}}}"
        let cb = "{name: envoy.filters.http.compressor, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, response_direction_config: {common_config: {min_content_length: 40}}, compressor_library: {name: text_optimized, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli, window_bits: 10}}}}"
        let cs = "{name: envoy.filters.http.compressor, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, response_direction_config: {common_config: {min_content_length: 100}}, compressor_library: {name: text_optimized, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd, compression_level: 10}}}}"
        func cluster(_ name: String, _ port: Int) -> String {
            "  - {name: \(name), type: STATIC, connect_timeout: 1s, load_assignment: {cluster_name: \(name), endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}}}]}]}}\n"
        }
        return "static_resources:\n  listeners:\n" + listener("cz", filter: cz)
            + listener("cd", filter: cd, hcm: "http_protocol_options: {accept_http_10: true}")
            + listener("cb", filter: cb) + listener("cs", filter: cs)
            + "  clusters:\n" + cluster("up", upstream) + cluster("dead", dead)
            + "admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}\n"
    }
}

/// An upstream whose replies the request shapes: `X-Size` bytes of "hello world " repeated,
/// `X-Type` (or none), each `X-Field` as a field line, `X-Status`, and `X-Framing` (length,
/// chunked, close). Request bodies (Content-Length) are read and dropped.
final class ShapedUpstream: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let lock = NSLock()
    private var connections: [Int32] = []

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 64)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let listenFD = fd
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(listenFD, nil, nil)
                if c < 0 { return }
                lock.lock(); connections.append(c); lock.unlock()
                Thread.detachNewThread { [self] in serve(c) }
            }
        }
    }

    private func serve(_ c: Int32) {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        func send(_ s: String) { let b = Array(s.utf8); _ = b.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        while true {
            var headEnd: Int? = nil
            while headEnd == nil {
                if data.count >= 4 {
                    for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 { headEnd = i; break }
                }
                if headEnd != nil { break }
                let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { Glibc.close(c); return }
                data.append(contentsOf: chunk[0..<n])
            }
            let head = String(decoding: data[0..<headEnd!], as: UTF8.self)
            data.removeFirst(headEnd! + 4)
            var size = 0, type = "text/plain", framing = "length", status = 200, length = 0
            var fields: [String] = []
            var echo = false, chunkedBody = false, seen: [String] = []
            for line in head.components(separatedBy: "\r\n").dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased(), value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                switch name {
                case "x-size": size = Int(value) ?? 0
                case "x-type": type = value
                case "x-framing": framing = value
                case "x-field": if value.hasPrefix("X-Status:") { status = Int(value.dropFirst(9).trimmingCharacters(in: .whitespaces)) ?? 200 } else { fields.append(value) }
                case "content-length": length = Int(value) ?? 0; seen.append("content-length: \(value)")
                case "transfer-encoding": chunkedBody = value.lowercased() == "chunked"; seen.append("transfer-encoding: \(value)")
                case "content-encoding", "accept-encoding": seen.append("\(name): \(value)")
                case "x-echo": echo = true
                default: break
                }
            }
            func more() -> Bool {
                let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { Glibc.close(c); return false }
                data.append(contentsOf: chunk[0..<n])
                return true
            }
            var received: [UInt8] = []
            if chunkedBody {
                // Chunks (no extensions, no trailers: what the proxies send), payload kept.
                while true {
                    var lineEnd: Int? = nil
                    while lineEnd == nil {
                        if data.count >= 2 { for i in 0..<(data.count - 1) where data[i] == 13 && data[i + 1] == 10 { lineEnd = i; break } }
                        if lineEnd == nil && !more() { return }
                    }
                    let n = Int(String(decoding: data[0..<lineEnd!], as: UTF8.self), radix: 16) ?? 0
                    data.removeFirst(lineEnd! + 2)
                    while data.count < n + 2 { if !more() { return } }
                    received += data[0..<n]
                    data.removeFirst(n + 2)
                    if n == 0 { break }
                }
            } else {
                while data.count < length { if !more() { return } }
                received = Array(data[0..<length])
                data.removeFirst(length)
            }
            var body = String(String(repeating: "hello world ", count: size / 12 + 1).prefix(size))
            if echo {
                // What arrived: the framing fields and the body (its size, a checksum and its start).
                let sum = received.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFFFF }
                body = seen.sorted().joined(separator: ", ") + " | body \(received.count) bytes, sum \(sum): "
                    + String(decoding: received.prefix(40), as: UTF8.self)
            }
            var reply = "HTTP/1.1 \(status) Shaped\r\n"
            if type != "none" { reply += "Content-Type: \(type)\r\n" }
            for f in fields { reply += f + "\r\n" }
            let isHEAD = head.hasPrefix("HEAD ")
            switch framing {
            case "chunked" where !isHEAD:
                send(reply + "Transfer-Encoding: chunked\r\n\r\n\(String(body.utf8.count, radix: 16))\r\n\(body)\r\n0\r\n\r\n")
            case "close" where !isHEAD:
                send(reply + "Connection: close\r\n\r\n" + body)
                Glibc.close(c)
                return
            default:
                send(reply + "Content-Length: \(body.utf8.count)\r\n\r\n" + (isHEAD ? "" : body))
            }
        }
    }

    func stop() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
        lock.lock()
        for c in connections { Glibc.shutdown(c, Int32(SHUT_RDWR)) }
        lock.unlock()
    }
}
