import Foundation
import Glibc
import XCTest

/// Zipkin tracing against real Envoy 1.40: the same config and requests through both, a small
/// Python collector (started and stopped here) receiving each proxy's reports. Compared: the
/// responses' status and x-envoy-decorator-operation, the x-request-id and B3 fields the upstream
/// saw, the spans (count, name, kind, parent/child structure, ids where they are not random, tags
/// but the request id, local endpoint, annotations), the reports' request head, and the tracing
/// stats (timer_flushed aside: it counts time).
final class TracingDifferentialTests: XCTestCase {
    /// x-request-ids: the first 8 hex digits mod 10,000 decide random_sampling (50% here).
    static let sampledID = "00000001-0000-4000-8000-000000000001"
    static let unsampledID = "00001388-0000-4000-8000-000000000002"  // 5000: not below 5000
    static let alreadySampledID = "00001388-0000-9000-8000-000000000003"

    /// (name, request line target, extra fields, body). Thirteen of them are reported: two full
    /// reports of 5 spans, and three that the 5 s flush timer sends.
    static let cases: [(name: String, target: String, fields: String, body: String)] = [
        ("root-decorated", "/dec/a?q=1", "X-Request-Id: \(sampledID)\r\nUser-Agent: ua-1\r\n", ""),
        ("not-sampled", "/plain", "X-Request-Id: \(unsampledID)\r\n", ""),
        ("b3-context", "/plain", "X-Request-Id: \(unsampledID)\r\nX-B3-TraceId: 463ac35c9f6413ad\r\nX-B3-SpanId: a2fb4a1d1a96d312\r\nX-B3-ParentSpanId: 0020000000000001\r\nX-B3-Sampled: 1\r\n", ""),
        ("b3-128bit", "/plain", "X-Request-Id: \(sampledID)\r\nX-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124\r\nX-B3-SpanId: a2fb4a1d1a96d313\r\n", ""),
        ("b3-zero-high", "/plain", "X-Request-Id: \(sampledID)\r\nX-B3-TraceId: 0000000000000000a2fb4a1d1a96d314\r\nX-B3-SpanId: a2fb4a1d1a96d314\r\n", ""),
        ("b3-single", "/plain", "X-Request-Id: \(unsampledID)\r\nb3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90\r\n", ""),
        ("b3-not-sampled", "/plain", "X-Request-Id: \(sampledID)\r\nX-B3-Sampled: 0\r\n", ""),
        ("b3-malformed", "/plain", "X-Request-Id: \(sampledID)\r\nX-B3-TraceId: xyz\r\nX-B3-SpanId: a2fb4a1d1a96d315\r\n", ""),
        ("trace-id-only", "/plain", "X-Request-Id: \(unsampledID)\r\nX-B3-TraceId: 463ac35c9f6413ad\r\n", ""),
        ("already-sampled-id", "/plain", "X-Request-Id: \(alreadySampledID)\r\n", ""),
        ("client-trace-id", "/plain", "X-Request-Id: \(unsampledID)\r\nX-Client-Trace-Id: abc\r\n", ""),
        ("force-trace-external", "/plain", "X-Request-Id: \(unsampledID)\r\nX-Envoy-Force-Trace: 1\r\n", ""),
        // Envoy 1.40 counts no client as internal without internal_address_config: not forced.
        ("force-trace-private-xff", "/plain", "X-Request-Id: \(unsampledID)\r\nX-Envoy-Force-Trace: 1\r\nX-Forwarded-For: 10.1.2.3\r\n", ""),
        ("forced-id", "/plain", "X-Request-Id: 00001388-0000-a000-8000-000000000004\r\n", ""),
        ("operation-override", "/dec/b", "X-Request-Id: \(sampledID)\r\nX-Envoy-Decorator-Operation: fromClient\r\n", ""),
        ("no-propagate", "/quiet", "X-Request-Id: \(sampledID)\r\nX-Envoy-Downstream-Service-Cluster: edge\r\n", ""),
        ("direct-response", "/direct", "X-Request-Id: \(sampledID)\r\n", ""),
        ("post-body", "/plain", "X-Request-Id: \(sampledID)\r\nContent-Type: text/plain\r\n", "hello"),
        ("upstream-reset", "/plain", "X-Request-Id: \(sampledID)\r\nX-Reply-Close: 1\r\n", ""),
    ]
    static let reportedSpans = 13

    /// README feature-table rows (`FeatureTableTests`): what the three tests compare.
    static let tableRows = [
        "Zipkin tracing: trace decision from x-request-id (random/overall/client sampling, reason in its 15th character), stats http.*.tracing.*",
        "Zipkin tracing: B3 context in (x-b3-*, b3, 128-bit, malformed) and out to the upstream; route decorator and x-envoy-decorator-operation",
        "Zipkin tracing: the spans reported (names, ids, parent, tags, local endpoint), the reports' head, tracing.zipkin.* stats; an unreachable collector",
    ]

    func testZipkinTracingAgreesWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-tracing-differential-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let collector = try ZipkinCollector(directory: root, name: name)
            defer { collector.stop() }
            let port = try freePort(), admin = try freePort()
            let config = root.appendingPathComponent("\(name).yaml").path
            try Self.bootstrap(port: port, admin: admin, upstream: upstream.port, collector: collector.port)
                .write(toFile: config, atomically: false, encoding: .utf8)
            let proxy = try Self.start(name, envoyBinary, config: config, port: port, admin: admin, directory: root)
            defer { proxy.stop() }
            try proxy.waitReady()
            _ = upstream.takeHeads()
            var out: [String] = []
            for c in Self.cases {
                let client = try RawClient(port: port)
                let length = c.body.isEmpty ? "" : "Content-Length: \(c.body.utf8.count)\r\n"
                client.send("\(c.body.isEmpty ? "GET" : "POST") \(c.target) HTTP/1.1\r\nHost: traced.example\r\n\(c.fields)\(length)\r\n\(c.body)")
                let r = client.readResponse()
                out.append("\(c.name)/response: \(r?.statusLine ?? "(none)") decorator=\(r?.header("x-envoy-decorator-operation") ?? "-")")
                let heads = upstream.takeHeads()
                out.append("\(c.name)/upstream: " + heads.map(Self.traceFields).joined(separator: " || "))
            }
            let reports = collector.waitForSpans(Self.reportedSpans, seconds: 10)
            out.append("spans: \(reports.flatMap(\.spans).count)")
            out += reports.flatMap(\.spans).map(Self.normalizedSpan).sorted()
            out += reports.map { "report: POST \($0.path) " + Self.reportFields($0.headers, collectorPort: collector.port) }
            out.append("stats: " + (try Self.settledStats(proxy, reports: reports.count)))
            seen[name] = out
        }
        let e = seen["envoy"]!, b = seen["ballast"]!
        if ProcessInfo.processInfo.environment["BALLAST_TRACING_SHOW"] == "1" { print(e.joined(separator: "\n")) }
        XCTAssertEqual(e.count, b.count, "envoy:\n\(e.joined(separator: "\n"))\nballast:\n\(b.joined(separator: "\n"))")
        var report: [String] = []
        for (x, y) in zip(e, b) where x != y { report.append("envoy:   \(x)\nballast: \(y)") }
        XCTAssertTrue(b.contains("spans: \(Self.reportedSpans)"), b.joined(separator: "\n"))
        if !report.isEmpty { XCTFail("tracing differs from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }

    /// The other options: overall_sampling, client_sampling, trace_id_128bit, collector_hostname,
    /// max_path_tag_length; a request without a route; a request without x-request-id.
    func testTracingOptionsAgreeWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-tracing-options-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        // overall_sampling 40%: ids below 4000 keep their decision, the rest become not traceable.
        let cases: [(String, String)] = [
            ("/plain/a-long-path-cut-at-ten", "X-Request-Id: 00000fa0-0000-4000-8000-000000000001\r\n"),  // 4000: not traced
            ("/plain/b", "X-Request-Id: 00000001-0000-4000-8000-000000000001\r\n"),
            ("/plain/c", "X-Request-Id: 00000001-0000-4000-8000-000000000001\r\nX-Client-Trace-Id: c1\r\n"),  // client_sampling 0
            ("/nowhere", "X-Request-Id: 00000002-0000-4000-8000-000000000001\r\n"),
            ("/plain/d", "X-Request-Id: 00000fa0-0000-9000-8000-000000000001\r\n"),  // sampled before, overall says no
            ("/plain/e", "X-Request-Id: 00000003-0000-4000-8000-000000000001\r\nX-B3-TraceId: 463ac35c9f6413ad\r\nX-B3-SpanId: a2fb4a1d1a96d312\r\n"),
            ("/plain/f/a-long-path-cut-at-ten", "X-Request-Id: 00000004-0000-4000-8000-000000000001\r\n"),
            ("/plain/g", "X-Request-Id: not-a-uuid\r\n"),
            ("/plain/h", "X-Request-Id: 00000005\r\n"),
        ]
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let collector = try ZipkinCollector(directory: root, name: name)
            defer { collector.stop() }
            let port = try freePort(), admin = try freePort()
            let config = root.appendingPathComponent("\(name).yaml").path
            try Self.bootstrap(port: port, admin: admin, upstream: upstream.port, collector: collector.port,
                               tracing: ["overall_sampling: {value: 40}", "client_sampling: {value: 0}", "max_path_tag_length: 10"]
                                .joined(separator: "\n" + String(repeating: " ", count: 12)),
                               zipkin: "trace_id_128bit: true\n" + String(repeating: " ", count: 16) + "collector_hostname: zipkin.example",
                               catchAll: "/plain").write(toFile: config, atomically: false, encoding: .utf8)
            let proxy = try Self.start(name, envoyBinary, config: config, port: port, admin: admin, directory: root)
            defer { proxy.stop() }
            try proxy.waitReady()
            _ = upstream.takeHeads()
            var out: [String] = []
            for (target, fields) in cases {
                let client = try RawClient(port: port)
                client.send("GET \(target) HTTP/1.1\r\nHost: traced.example\r\n\(fields)\r\n")
                out.append("\(target): \(client.readResponse()?.statusLine ?? "(none)") upstream: " + upstream.takeHeads().map(Self.traceFields).joined(separator: " || "))
            }
            // Six are sampled: a report of 5 at once, the sixth when the 5 s flush timer fires.
            let reports = collector.waitForSpans(6, seconds: 10)
            out.append("spans: \(reports.flatMap(\.spans).count)")
            out += reports.flatMap(\.spans).map(Self.normalizedSpan).sorted()
            out += reports.map { "report: POST \($0.path) " + Self.reportFields($0.headers, collectorPort: collector.port) }
            out.append("stats: " + (try Self.settledStats(proxy, reports: reports.count)))
            seen[name] = out
        }
        let e = seen["envoy"]!, b = seen["ballast"]!
        if ProcessInfo.processInfo.environment["BALLAST_TRACING_SHOW"] == "1" { print(e.joined(separator: "\n")) }
        XCTAssertEqual(e.count, b.count, "envoy:\n\(e.joined(separator: "\n"))\nballast:\n\(b.joined(separator: "\n"))")
        var report: [String] = []
        for (x, y) in zip(e, b) where x != y { report.append("envoy:   \(x)\nballast: \(y)") }
        if !report.isEmpty { XCTFail("tracing options differ from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }

    /// A collector that cannot be reached: requests are unaffected, and the reports count as Envoy counts them.
    func testUnreachableCollectorAgreesWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-tracing-unreachable-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let port = try freePort(), admin = try freePort(), closed = try freePort()
            let config = root.appendingPathComponent("\(name).yaml").path
            try Self.bootstrap(port: port, admin: admin, upstream: upstream.port, collector: closed).write(toFile: config, atomically: false, encoding: .utf8)
            let proxy = try Self.start(name, envoyBinary, config: config, port: port, admin: admin, directory: root)
            defer { proxy.stop() }
            try proxy.waitReady()
            var out: [String] = []
            for i in 0..<10 {
                let client = try RawClient(port: port)
                client.send("GET /plain HTTP/1.1\r\nHost: traced.example\r\nX-Request-Id: \(Self.sampledID)\r\n\r\n")
                out.append("request \(i): \(client.readResponse()?.statusLine ?? "(none)")")
            }
            // Two reports of 5 spans each, both failing; wait for their outcome.
            var stats: [String] = []
            let deadline = Date().addingTimeInterval(10)
            repeat {
                stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
                    .filter { $0.hasPrefix("tracing.zipkin.") && !$0.contains("timer_flushed") }.sorted()
                if stats.contains("tracing.zipkin.reports_dropped: 2") || stats.contains("tracing.zipkin.reports_failed: 2") { break }
                usleep(50_000)
            } while Date() < deadline
            out.append("stats: " + stats.joined(separator: ", "))
            seen[name] = out
        }
        if ProcessInfo.processInfo.environment["BALLAST_TRACING_SHOW"] == "1" { print(seen["envoy"]!.joined(separator: "\n")) }
        XCTAssertEqual(seen["envoy"]!, seen["ballast"]!)
        XCTAssertTrue(seen["ballast"]!.last!.contains("tracing.zipkin.spans_sent: 10"), seen["ballast"]!.last!)
        XCTAssertEqual(seen["ballast"]!.filter { $0.contains("200 OK") }.count, 10)
    }

    // MARK: helpers

    /// The tracing stats once `reports` reports were answered (the collector has a report before
    /// the proxy has its answer), timer_flushed aside (it counts time).
    static func settledStats(_ proxy: ProxyUnderTest, reports: Int) throws -> String {
        var stats: [String] = []
        let deadline = Date().addingTimeInterval(5)
        repeat {
            stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
                .filter { ($0.hasPrefix("tracing.zipkin.") || $0.hasPrefix("http.traced.tracing.")) && !$0.contains("timer_flushed") }.sorted()
            if stats.contains("tracing.zipkin.reports_sent: \(reports)") { break }
            usleep(20_000)
        } while Date() < deadline
        return stats.joined(separator: ", ")
    }

    static func start(_ name: String, _ envoyBinary: String, config: String, port: Int, admin: Int, directory: URL) throws -> ProxyUnderTest {
        let (exe, args) = name == "envoy"
            ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
            : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
        return try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: ["traced": port], adminPort: admin,
                                  accessLog: directory.appendingPathComponent("\(name).log").path, directory: directory)
    }

    /// The upstream request's tracing fields; a root span's random id (trace id = span id) as `<root>`.
    static func traceFields(_ head: String) -> String {
        var fields: [(String, String)] = []
        for line in head.components(separatedBy: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let n = line[..<colon].lowercased(), v = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if n.hasPrefix("x-b3-") || n == "b3" || n == "x-request-id" || n == "x-envoy-force-trace" || n == "x-envoy-decorator-operation"
                || n == "x-envoy-internal" {
                fields.append((n, v))
            }
        }
        let trace = fields.first { $0.0 == "x-b3-traceid" }?.1, span = fields.first { $0.0 == "x-b3-spanid" }?.1
        return fields.map { f in
            if (f.0 == "x-b3-traceid" || f.0 == "x-b3-spanid"), let trace, let span, trace.hasSuffix(span) { return "\(f.0): <root \(trace.count)>" }
            if f.0 == "x-request-id" && f.1.count == 36 && !f.1.hasPrefix("0000") { return "x-request-id: <generated \(f.1.count) chars, 15th '\(Array(f.1)[14])'>" }
            return "\(f.0): \(f.1)"
        }.sorted().joined(separator: ", ")
    }

    /// A span with its random parts (a root's id, its times) replaced.
    static func normalizedSpan(_ s: [String: Any]) -> String {
        var span = s
        // A root span's id is its trace id's low half (the whole id when 64-bit).
        let root = ((s["traceId"] as? String) ?? "").hasSuffix((s["id"] as? String) ?? "-")
        if root { span["id"] = "<root>"; span["traceId"] = "<root \((s["traceId"] as? String)?.count ?? 0)>" }
        // Times are the machine's; a local reply can take under a microsecond.
        span["timestamp"] = (s["timestamp"] as? Int).map { $0 > 0 ? "<positive>" : "\($0)" }
        span["duration"] = (s["duration"] as? Int).map { $0 >= 0 ? "<non-negative>" : "\($0)" }
        if let a = s["annotations"] as? [[String: Any]] {
            span["annotations"] = a.map { ["value": $0["value"] ?? "", "timestamp": (($0["timestamp"] as? Int) ?? 0) >= ((s["timestamp"] as? Int) ?? 0) ? "<after start>" : "<before start>"] }
        }
        var tags = s["tags"] as? [String: String] ?? [:]
        if let id = tags["guid:x-request-id"], id.count == 36, !id.hasPrefix("0000") { tags["guid:x-request-id"] = "<generated>" }
        if let url = tags["http.url"] { tags["http.url"] = url }
        span["tags"] = tags
        let data = try! JSONSerialization.data(withJSONObject: span, options: [.sortedKeys])
        return "span: " + String(decoding: data, as: UTF8.self)
    }

    static func reportFields(_ headers: [String: String], collectorPort: Int) -> String {
        headers.map { "\($0.key.lowercased()): \($0.value)" }.sorted().joined(separator: ", ")
    }

    static func bootstrap(port: Int, admin: Int, upstream: Int, collector: Int, tracing: String = "random_sampling: {value: 50}",
                          zipkin: String = "", catchAll: String = "/") -> String {
        """
        node: {id: diff-node, cluster: diff-service}
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
        static_resources:
          listeners:
          - name: traced
            address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: traced
                  tracing:
                    \(tracing)
                    provider:
                      name: envoy.tracers.zipkin
                      typed_config:
                        "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                        collector_cluster: collector
                        collector_endpoint: /api/v2/spans
                        collector_endpoint_version: HTTP_JSON
                        \(zipkin)
                  route_config:
                    virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                      - {match: {prefix: /dec}, route: {cluster: upstream}, decorator: {operation: checkAvailability}}
                      - {match: {prefix: /quiet}, route: {cluster: upstream}, decorator: {operation: quietOperation, propagate: false}}
                      - {match: {prefix: /direct}, direct_response: {status: 200, body: {inline_string: direct}}, decorator: {operation: directOperation}}
                      - {match: {prefix: \(catchAll)}, route: {cluster: upstream}}
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          clusters:
          - name: upstream
            connect_timeout: 1s
            type: STATIC
            load_assignment: {cluster_name: upstream, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(upstream)}}}}]}]}
          - name: collector
            connect_timeout: 1s
            type: STATIC
            load_assignment: {cluster_name: collector, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(collector)}}}}]}]}
        """
    }
}

/// A Zipkin collector in Python (the test starts and stops it): answers every POST with 202 and
/// appends one JSON line per report (path, fields, spans) to a file.
final class ZipkinCollector {
    let port: Int
    let process = Process()
    let output: String

    static let script = """
    import http.server, json, sys
    out = open(sys.argv[2], 'a')
    class Collector(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        def do_POST(self):
            if self.headers.get('transfer-encoding', '') == 'chunked':
                body = b''
                while True:
                    n = int(self.rfile.readline().strip(), 16)
                    if n == 0:
                        self.rfile.readline()
                        break
                    body += self.rfile.read(n)
                    self.rfile.readline()
            else:
                body = self.rfile.read(int(self.headers.get('content-length', 0)))
            out.write(json.dumps({'path': self.path, 'headers': dict(self.headers), 'spans': json.loads(body)}) + '\\n')
            out.flush()
            self.send_response(202)
            self.send_header('content-length', '0')
            self.end_headers()
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), Collector)
    print('ready', flush=True)
    server.serve_forever()
    """

    struct Report {
        let path: String
        let headers: [String: String]
        let spans: [[String: Any]]
    }

    init(directory: URL, name: String) throws {
        port = try freePort()
        let script = directory.appendingPathComponent("zipkin_collector.py")
        try Self.script.write(to: script, atomically: true, encoding: .utf8)
        output = directory.appendingPathComponent("\(name).spans").path
        FileManager.default.createFile(atPath: output, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, "\(port)", output]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        // Ready once it printed its line.
        _ = pipe.fileHandleForReading.availableData
    }

    func reports() -> [Report] {
        guard let text = try? String(contentsOfFile: output, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Report(path: o["path"] as? String ?? "", headers: o["headers"] as? [String: String] ?? [:],
                          spans: o["spans"] as? [[String: Any]] ?? [])
        }
    }

    /// The reports once they hold `count` spans (or what came within `seconds`).
    func waitForSpans(_ count: Int, seconds: Double) -> [Report] {
        let deadline = Date().addingTimeInterval(seconds)
        var r = reports()
        while r.flatMap(\.spans).count < count && Date() < deadline {
            usleep(20_000)
            r = reports()
        }
        return r
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
}
