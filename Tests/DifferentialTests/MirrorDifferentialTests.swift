import Foundation
import Glibc
import XCTest

/// `request_mirror_policies` against real Envoy 1.40: the same requests through both proxies,
/// each with its own main, mirror and slow-mirror upstreams; compared: what the client got, what
/// the main upstream and each mirror received (heads normalized, bodies), and the mirror
/// clusters' counters (answered, dead, timed out, overflowing).
final class MirrorDifferentialTests: XCTestCase {
    struct Case {
        let name: String
        let request: String
        /// Requests the mirror upstreams get for it (the test waits for them).
        let mirrored: Int
        /// Sent this many times, one connection each, one after the other.
        var repeats = 1
    }

    /// The cases, as the README's feature table lists them.
    static let cases: [Case] = [
        Case(name: "GET mirrored, Host with a port: `foo.test-shadow:8080`, x-envoy-internal, x-forwarded-for 192.0.2.2",
             request: "GET /m?q=1 HTTP/1.1\r\nHost: foo.test:8080\r\nX-Request-Id: mirror-1\r\n\r\n", mirrored: 1),
        Case(name: "POST body mirrored; x-forwarded-for appended to",
             request: "POST /m HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-2\r\nX-Forwarded-For: 10.0.0.1\r\nContent-Length: 11\r\n\r\nhello world", mirrored: 1),
        Case(name: "chunked body mirrored (payload compared: chunk boundaries follow the reads, for the main request too)",
             request: "POST /m HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", mirrored: 1),
        Case(name: "300 KB body mirrored whole",
             request: "POST /m HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-4\r\nContent-Length: 300000\r\n\r\n" + String(repeating: "b", count: 300_000), mirrored: 1),
        Case(name: "disable_shadow_host_suffix_append: Host unchanged",
             request: "GET /nosuffix HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-5\r\n\r\n", mirrored: 1),
        Case(name: "runtime_fraction 0%: not mirrored",
             request: "GET /never HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-6\r\n\r\n", mirrored: 0),
        Case(name: "two policies: two copies",
             request: "GET /two HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-7\r\n\r\n", mirrored: 2),
        Case(name: "mirror cluster down: the main request unaffected, 503 on the mirror cluster",
             request: "GET /dead HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-8\r\n\r\n", mirrored: 0),
        Case(name: "mirror slower than the route timeout: the main answer at once, 504 on the mirror cluster",
             request: "GET /slow HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-9\r\n\r\n", mirrored: 1),
        Case(name: "cluster_header: the request's x-mirror-cluster names the mirror",
             request: "GET /hdr HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-11\r\nX-Mirror-Cluster: mirror\r\n\r\n", mirrored: 1),
        Case(name: "cluster_header absent: not mirrored",
             request: "GET /hdr HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-12\r\n\r\n", mirrored: 0),
        Case(name: "cluster_header naming no cluster: not mirrored, the main request unaffected",
             request: "GET /hdr HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-13\r\nX-Mirror-Cluster: nowhere\r\n\r\n", mirrored: 0),
        Case(name: "mirror cluster at max_connections 1 and max_pending_requests 1: the third copy dropped as overflow, the main requests unaffected",
             request: "GET /tight HTTP/1.1\r\nHost: foo.test\r\nX-Request-Id: mirror-10\r\n\r\n", mirrored: 2, repeats: 3),
    ]

    static let statNames = ["upstream_rq_total", "upstream_rq_completed", "upstream_rq_200", "upstream_rq_503", "upstream_rq_504",
                            "upstream_rq_timeout", "upstream_cx_connect_fail", "upstream_rq_pending_overflow", "upstream_cx_total"]

    func testMirroringAgreesWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-mirror-differential-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let main = try RecordingUpstream()
            let mirror = try RecordingUpstream()
            let slow = try RecordingUpstream(replyDelayMicros: 800_000)
            defer { main.stop(); mirror.stop(); slow.stop() }
            let allocator = PortAllocator()
            let port = try allocator.next()
            let admin = try allocator.next()
            let dead = try allocator.next()
            let config = root.appendingPathComponent("\(name).yaml").path
            try bootstrap(port: port, admin: admin, main: main.port, mirror: mirror.port, slow: slow.port, dead: dead)
                .write(toFile: config, atomically: false, encoding: .utf8)
            let (exe, args) = name == "envoy"
                ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"])
                : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
            let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: ["mirror": port], adminPort: admin,
                                           accessLog: root.appendingPathComponent("\(name).log").path, directory: root)
            defer { proxy.stop() }
            try proxy.waitReady()
            var out: [String] = []
            for c in Self.cases {
                for _ in 0..<c.repeats {
                    let client = try RawClient(port: port)
                    client.send(c.request)
                    let r = client.readResponse()
                    out.append("\(c.name): client \(r.map { "\($0.status) \($0.text)" } ?? "(no response)")")
                }
                out.append("\(c.name): main " + describe(main.takeRequests()))
                // Mirrors are fire and forget: wait for the expected copies, then a little for extras.
                let copies = collect(from: [mirror, slow], expected: c.mirrored)
                out.append("\(c.name): mirror " + describe(copies))
            }
            // The slow mirror's route timeout (0.3 s) has passed; its late answer is dropped.
            usleep(1_000_000)
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n")
            for cluster in ["mirror", "mirror_dead", "mirror_slow", "mirror_tight"] {
                for stat in Self.statNames {
                    let key = "cluster.\(cluster).\(stat): "
                    out.append(key + (stats.first { $0.hasPrefix(key) }.map { String($0.dropFirst(key.count)) } ?? "(absent)"))
                }
            }
            // The mirror clusters' hosts count the copies (`/clusters` rq_* lines), as Envoy's.
            let clusters = try proxy.adminGet("/clusters").text.split(separator: "\n").map(String.init)
            out += clusters.filter { line in
                ["mirror::", "mirror_dead::", "mirror_slow::", "mirror_tight::"].contains { line.hasPrefix($0) } && line.contains("::rq_")
            }.map { $0.replacingOccurrences(of: #"127\.0\.0\.1:[0-9]+"#, with: "host", options: .regularExpression) }.sorted()
            seen[name] = out
        }
        let envoy = seen["envoy"]!, ballast = seen["ballast"]!
        var report: [String] = []
        for (e, b) in zip(envoy, ballast) where e != b { report.append("  envoy:   \(e)\n  ballast: \(b)") }
        if !report.isEmpty { XCTFail("mirroring differs from Envoy 1.40:\n" + report.joined(separator: "\n") + (ProcessInfo.processInfo.environment["MIRROR_DUMP"] != nil ? "\n" + envoy.joined(separator: "\n") : "")) }
        // The facts the cases stand for, whatever Envoy does.
        XCTAssertTrue(ballast.contains { $0.hasPrefix(Self.cases[0].name + ": mirror ") && $0.contains("host: foo.test-shadow:8080") }, "\(ballast)")
        XCTAssertTrue(ballast.contains("cluster.mirror_slow.upstream_rq_timeout: 1"), "\(ballast)")
        XCTAssertTrue(ballast.contains("cluster.mirror_dead.upstream_rq_503: 1"), "\(ballast)")
        XCTAssertTrue(ballast.contains("cluster.mirror_tight.upstream_rq_pending_overflow: 1"), "\(ballast)")
    }

    /// Requests from the mirror upstreams: waits (up to 3 s) for `expected`, then 150 ms for more.
    private func collect(from upstreams: [RecordingUpstream], expected: Int) -> [(head: String, body: [UInt8])] {
        var got: [(head: String, body: [UInt8])] = []
        let deadline = Date().addingTimeInterval(3)
        while got.count < expected && Date() < deadline {
            for u in upstreams { got += u.takeRequests() }
            if got.count < expected { usleep(10_000) }
        }
        usleep(150_000)
        for u in upstreams { got += u.takeRequests() }
        return got
    }

    private func describe(_ requests: [(head: String, body: [UInt8])]) -> String {
        if requests.isEmpty { return "(nothing)" }
        return requests.map { r in
            let payload = r.head.lowercased().contains("\r\ntransfer-encoding: chunked") ? dechunked(r.body) : r.body
            let body = payload.count > 64 ? "\(payload.count) bytes" : String(decoding: payload, as: UTF8.self).debugDescription
            return normalizedHead(r.head) + " | body " + body
        }.sorted().joined(separator: " || ")
    }

    /// A chunked body's payload (Envoy re-frames chunks as it reads them, Ballast passes them on).
    private func dechunked(_ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while let lineEnd = (i..<max(i, body.count - 1)).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }),
              let size = Int(String(decoding: body[i..<lineEnd], as: UTF8.self), radix: 16), size > 0, lineEnd + 2 + size <= body.count {
            out += body[(lineEnd + 2)..<(lineEnd + 2 + size)]
            i = lineEnd + 4 + size
        }
        return out
    }

    private func bootstrap(port: Int, admin: Int, main: Int, mirror: Int, slow: Int, dead: Int) -> String {
        func cluster(_ name: String, _ port: Int) -> String {
            "  - {name: \(name), connect_timeout: 1s, type: STATIC, load_assignment: {cluster_name: \(name), endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}}}]}]}}"
        }
        func route(_ prefix: String, _ mirrors: String, timeout: String = "") -> String {
            "                  - {match: {prefix: \"\(prefix)\"}, route: {cluster: main\(timeout), request_mirror_policies: [\(mirrors)]}}"
        }
        return """
        static_resources:
          listeners:
          - name: mirror
            address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: mirror
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                  route_config:
                    virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
        \(route("/m", "{cluster: mirror}"))
        \(route("/nosuffix", "{cluster: mirror, disable_shadow_host_suffix_append: true}"))
        \(route("/never", "{cluster: mirror, runtime_fraction: {default_value: {numerator: 0}, runtime_key: mirror.never}}"))
        \(route("/two", "{cluster: mirror}, {cluster: mirror_slow, runtime_fraction: {default_value: {numerator: 100}}}", timeout: ", timeout: 5s"))
        \(route("/dead", "{cluster: mirror_dead}"))
        \(route("/slow", "{cluster: mirror_slow}", timeout: ", timeout: 0.3s"))
        \(route("/tight", "{cluster: mirror_tight}"))
        \(route("/hdr", "{cluster_header: x-mirror-cluster}"))
          clusters:
        \(cluster("main", main))
        \(cluster("mirror", mirror))
        \(cluster("mirror_slow", slow))
        \(cluster("mirror_dead", dead))
          - {name: mirror_tight, connect_timeout: 1s, type: STATIC, circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 1}]}, load_assignment: {cluster_name: mirror_tight, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(slow)}}}}]}]}}
        admin:
          address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}
        """
    }
}
