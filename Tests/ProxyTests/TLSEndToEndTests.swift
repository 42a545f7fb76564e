import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// TLS termination and origination end to end (docs/tls.md): real certificates (made by the
/// `openssl` CLI per test), `curl` and raw sockets as clients, an in-process proxy on each I/O
/// backend, exact counts of Envoy's `ssl.*` stats and access-log lines.
final class TLSEndToEndTests: XCTestCase {
    static let logFormat = "                text_format_source: { inline_string: \"%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %DOWNSTREAM_TLS_VERSION% %REQUESTED_SERVER_NAME%\\n\" }"

    /// A `transport_socket` for a filter chain (flow style); `extra` goes into the DownstreamTlsContext.
    static func downstreamTLS(_ certs: TestCertificates, extra: String = "", common: String = "") -> String {
        "transport_socket: { name: envoy.transport_sockets.tls, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, \(extra) common_tls_context: { \(common) tls_certificates: [ { certificate_chain: { filename: \(certs.path("server.pem")) }, private_key: { filename: \(certs.path("server.key")) } } ] } } }"
    }

    static func upstreamTLS(ca: String, sni: String = "localhost", clientCert: TestCertificates? = nil) -> String {
        var common = "validation_context: { trusted_ca: { filename: \(ca) } }"
        if let c = clientCert {
            common += ", tls_certificates: [ { certificate_chain: { filename: \(c.path("client.pem")) }, private_key: { filename: \(c.path("client.key")) } } ]"
        }
        return "    transport_socket: { name: envoy.transport_sockets.tls, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: \(sni), common_tls_context: { \(common) } } }"
    }

    /// The ops bootstrap with TLS on its listener's one chain, an access log at `logPath`, and `hcmExtra` in the HCM.
    static func terminatingYAML(_ transportSocket: String, upstreamPort: Int, logPath: String, hcmExtra: String = "") -> String {
        var yaml = opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstreamPort]),
                           accessLog: opsFileLogger(logPath, logFormat: logFormat))
        yaml = yaml.replacingOccurrences(of: "    - filters:", with: "    - \(transportSocket)\n      filters:")
        if !hcmExtra.isEmpty {
            yaml = yaml.replacingOccurrences(of: "          stat_prefix: ingress_http\n", with: "          stat_prefix: ingress_http\n          \(hcmExtra)\n")
        }
        return yaml
    }

    func testTerminationServesKeepAliveRequestsOnBothBackends() throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        try TestBackends.each { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let log = opsTempPath("tls-term-\(io.rawValue)")
            defer { unlink(log) }
            let ops = try startOps(Self.terminatingYAML(Self.downstreamTLS(certs), upstreamPort: upstream.port, logPath: log), io: io)
            defer { ops.stop() }
            let port = ops.proxy.port(of: "http")!
            let base = "https://127.0.0.1:\(port)"
            // Two requests on one connection (one handshake): a small and a multi-record response.
            let keepAlive = curlTLS(certs, ["\(base)/?size=3", "\(base)/?size=200000"],
                                    extra: ["-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{num_connects}\\n"])
            XCTAssertEqual(keepAlive.stdout, "200 3 1\n200 200000 0\n", "\(io): \(keepAlive.stderr)")
            // A 100 KB request body, echoed back, over TLS 1.2.
            let body = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            let bodyPath = opsTempPath("tls-body-\(io.rawValue)")
            defer { unlink(bodyPath) }
            try body.write(to: URL(fileURLWithPath: bodyPath))
            let echoed = opsTempPath("tls-echoed-\(io.rawValue)")
            defer { unlink(echoed) }
            let post = curlTLS(certs, ["\(base)/echo"], extra: ["--tls-max", "1.2", "--data-binary", "@\(bodyPath)", "-o", echoed, "-w", "%{http_code}"])
            XCTAssertEqual(post.stdout, "200", "\(io): \(post.stderr)")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: echoed)), body, "\(io): the body came back unchanged")

            let lines = waitForLines(log, count: 3)
            XCTAssertEqual(lines, ["200 - via_upstream TLSv1.3 -", "200 - via_upstream TLSv1.3 -", "200 - via_upstream TLSv1.2 -"], "\(io)")
            let stats = adminRequest(try XCTUnwrap(ops.adminPort), "GET", "/stats").1
            let l = "listener.127.0.0.1_\(port).ssl."
            XCTAssertEqual(statValue(stats, l + "handshake"), 2, "\(io)")
            XCTAssertEqual(statValue(stats, l + "no_certificate"), 2, "\(io): no client certificates")
            XCTAssertEqual(statValue(stats, l + "connection_error"), 0, "\(io)")
            XCTAssertEqual(statValue(stats, l + "session_reused"), 0, "\(io)")
            XCTAssertEqual(statValue(stats, "http.ingress_http.downstream_cx_ssl_total"), 2, "\(io)")
            XCTAssertEqual(statValue(stats, "http.ingress_http.downstream_rq_total"), 3, "\(io)")
        }
    }

    func testMutualTLSRequiresAClientCertificate() throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        try TestBackends.each { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let log = opsTempPath("tls-mtls-\(io.rawValue)")
            defer { unlink(log) }
            let socket = Self.downstreamTLS(certs, extra: "require_client_certificate: true,",
                                            common: "validation_context: { trusted_ca: { filename: \(certs.path("ca.pem")) } },")
            let ops = try startOps(Self.terminatingYAML(socket, upstreamPort: upstream.port, logPath: log), io: io)
            defer { ops.stop() }
            let port = ops.proxy.port(of: "http")!
            let without = curlTLS(certs, ["https://127.0.0.1:\(port)/"], extra: ["-o", "/dev/null", "-w", "%{http_code}"])
            XCTAssertNotEqual(without.status, 0, "\(io): no certificate, no answer")
            XCTAssertEqual(without.stdout, "000", "\(io)")
            let with = curlTLS(certs, ["https://127.0.0.1:\(port)/?size=5"],
                               extra: ["--cert", certs.path("client.pem"), "--key", certs.path("client.key"), "-o", "/dev/null", "-w", "%{http_code}"])
            XCTAssertEqual(with.stdout, "200", "\(io): \(with.stderr)")
            let admin = try XCTUnwrap(ops.adminPort)
            let l = "listener.127.0.0.1_\(port).ssl."
            var stats = ""
            Wait.until {
                stats = adminRequest(admin, "GET", "/stats").1
                return statValue(stats, l + "fail_verify_no_cert") == 1
            }
            XCTAssertEqual(statValue(stats, l + "fail_verify_no_cert"), 1, "\(io)")
            XCTAssertEqual(statValue(stats, l + "connection_error"), 0, "\(io): as Envoy, a verification failure is not a connection_error")
            XCTAssertEqual(statValue(stats, l + "handshake"), 1, "\(io)")
            XCTAssertEqual(statValue(stats, l + "no_certificate"), 0, "\(io)")
            XCTAssertEqual(waitForLines(log, count: 1), ["200 - via_upstream TLSv1.3 -"], "\(io)")
        }
    }

    /// A plain listener whose clusters originate TLS to a second proxy that terminates it (with
    /// mTLS): a verified server and a client certificate work and are reused; a server that does
    /// not verify is 503 UF with Envoy's details.
    func testOriginationVerifiesTheServerAndSendsAClientCertificate() throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        try TestBackends.each { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let termLog = opsTempPath("tls-orig-term-\(io.rawValue)")
            let log = opsTempPath("tls-orig-\(io.rawValue)")
            defer { unlink(termLog); unlink(log) }
            let socket = Self.downstreamTLS(certs, extra: "require_client_certificate: true,",
                                            common: "validation_context: { trusted_ca: { filename: \(certs.path("ca.pem")) } },")
            let terminating = try startOps(Self.terminatingYAML(socket, upstreamPort: upstream.port, logPath: termLog), io: io)
            defer { terminating.stop() }
            let tlsPort = terminating.proxy.port(of: "http")!

            let hosts = """
                        - name: all
                          domains: ["*"]
                          routes:
                          - match: { prefix: "/bad" }
                            route: { cluster: tls_bad }
                          - match: { prefix: "/" }
                            route: { cluster: tls_ok }
            """
            let clusters = dataPathCluster("tls_ok", ports: [tlsPort], extra: Self.upstreamTLS(ca: certs.path("ca.pem"), clientCert: certs))
                + "\n" + dataPathCluster("tls_bad", ports: [tlsPort], extra: Self.upstreamTLS(ca: certs.path("other-ca.pem"), clientCert: certs))
            let originating = try startOps(opsYAML(virtualHosts: hosts, clusters: clusters, accessLog: opsFileLogger(log, logFormat: Self.logFormat)),
                                           io: io, concurrency: 1)
            defer { originating.stop() }
            let c = try TestConnection(port: originating.proxy.port(of: "http")!)
            for i in 1...3 {
                let r = c.get("/?size=\(i)")
                XCTAssertEqual(r?.status, 200, "\(io)")
                XCTAssertEqual(r?.body.count, i, "\(io)")
            }
            let bad = c.get("/bad")
            XCTAssertEqual(bad?.status, 503, "\(io)")
            XCTAssertEqual(bad?.text, "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure", "\(io)")
            XCTAssertEqual(waitForLines(log, count: 4), Array(repeating: "200 - via_upstream - -", count: 3) + [
                "503 UF upstream_reset_before_response_started{remote_connection_failure|TLS_error:|167772294:SSL_routines::certificate_verify_failed:TLS_error_end} - -",
            ], "\(io)")
            let stats = adminRequest(try XCTUnwrap(originating.adminPort), "GET", "/stats").1
            XCTAssertEqual(statValue(stats, "cluster.tls_ok.ssl.handshake"), 1, "\(io): one connection, reused")
            XCTAssertEqual(statValue(stats, "cluster.tls_ok.upstream_cx_total"), 1, "\(io)")
            XCTAssertEqual(statValue(stats, "cluster.tls_bad.ssl.fail_verify_error"), 1, "\(io)")
            XCTAssertEqual(statValue(stats, "cluster.tls_bad.ssl.connection_error"), 0, "\(io)")
            XCTAssertEqual(statValue(stats, "cluster.tls_bad.ssl.handshake"), 0, "\(io)")
            XCTAssertEqual(statValue(stats, "cluster.tls_bad.upstream_cx_connect_fail"), 1, "\(io)")
            // The terminating side saw the client certificate on the good connection.
            let termStats = adminRequest(try XCTUnwrap(terminating.adminPort), "GET", "/stats").1
            XCTAssertEqual(statValue(termStats, "listener.127.0.0.1_\(tlsPort).ssl.handshake"), 1, "\(io)")
            XCTAssertEqual(statValue(termStats, "listener.127.0.0.1_\(tlsPort).ssl.no_certificate"), 0, "\(io)")
            XCTAssertEqual(waitForLines(termLog, count: 3), Array(repeating: "200 - via_upstream TLSv1.2 -", count: 3),
                           "\(io): an UpstreamTlsContext offers at most TLS 1.2 by default, as in Envoy 1.40")
        }
    }

    /// A reload (SIGHUP, POST /reload) re-reads the certificate files: new connections get the new
    /// certificate; a connection open across the reload keeps its session and is served.
    func testReloadPicksUpANewCertificate() throws {
        let first = try TestCertificates()
        let second = try TestCertificates()
        defer { first.remove(); second.remove() }
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let log = opsTempPath("tls-reload")
        let configPath = opsTempPath("tls-reload.yaml")
        defer { unlink(log); unlink(configPath) }
        // The config names files in `first`'s directory; the reload replaces their contents.
        try Self.terminatingYAML(Self.downstreamTLS(first), upstreamPort: upstream.port, logPath: log)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let ops = try startOps("", configPath: configPath)
        defer { ops.stop() }
        let port = ops.proxy.port(of: "http")!
        let url = "https://127.0.0.1:\(port)/"
        let fetch = ["-o", "/dev/null", "-w", "%{http_code}"]
        XCTAssertEqual(curlTLS(first, [url], extra: fetch).stdout, "200")
        // A connection open across the reload: its session (and the old context) stays usable.
        let open = try OpenSSLClient(port: port, caFile: first.path("ca.pem"))
        defer { open.stop() }
        let request = "GET /?size=4 HTTP/1.1\r\nHost: x\r\n\r\n"
        XCTAssertTrue(open.exchange(request, expect: "\r\n\r\n").hasPrefix("HTTP/1.1 200"), "before the reload")
        for name in ["server.pem", "server.key"] {
            try FileManager.default.removeItem(atPath: first.path(name))
            try FileManager.default.copyItem(atPath: second.path(name), toPath: first.path(name))
        }
        XCTAssertEqual(ops.reload(), .applied(generation: 1))
        let after = open.exchange(request, expect: "content-length: 4")
        XCTAssertTrue(after.contains("HTTP/1.1 200"), "the open connection still serves after the reload: \(after)")
        XCTAssertEqual(curlTLS(second, [url], extra: fetch).stdout, "200", "the new certificate, trusted by the new CA")
        let old = curlTLS(first, [url], extra: fetch)
        XCTAssertEqual(old.stdout, "000", "the old CA no longer verifies it")
        XCTAssertEqual(old.status, 60, "curl: peer certificate cannot be authenticated")
    }

    /// Garbage instead of a ClientHello, plain HTTP to the TLS port, a truncated handshake (ended,
    /// or left open until the idle timeout): each closed and counted as Envoy counts it; the
    /// proxy still serves TLS afterwards.
    func testBadInputIsClosedAndCounted() throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        try TestBackends.each { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let log = opsTempPath("tls-bad-\(io.rawValue)")
            defer { unlink(log) }
            let yaml = Self.terminatingYAML(Self.downstreamTLS(certs), upstreamPort: upstream.port, logPath: log,
                                            hcmExtra: "common_http_protocol_options: { idle_timeout: 1s }")
            let ops = try startOps(yaml, io: io)
            defer { ops.stop() }
            let port = ops.proxy.port(of: "http")!
            var garbage = SplitMix(seed: 14)
            let noise = (0..<300).map { _ in UInt8(truncatingIfNeeded: garbage.next()) | 0x80 }  // never a TLS record type
            let g = rawExchange(port: port, send: noise, halfClose: false)
            XCTAssertTrue(g.closed, "\(io): garbage closes the connection")
            let plain = rawExchange(port: port, send: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), halfClose: false)
            XCTAssertTrue(plain.closed, "\(io): plain HTTP closes the connection")
            XCTAssertFalse(String(decoding: plain.received, as: UTF8.self).contains("HTTP/1.1"), "\(io): and gets no HTTP answer")
            let truncated = rawExchange(port: port, send: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01], halfClose: true)
            XCTAssertTrue(truncated.closed, "\(io): a truncated handshake that ends is closed")
            XCTAssertEqual(truncated.received, [], "\(io)")
            let held = rawExchange(port: port, send: [0x16, 0x03, 0x01], halfClose: false)  // closed by the idle timeout
            XCTAssertTrue(held.closed, "\(io): a handshake that never completes is closed by the idle timeout")

            let ok = curlTLS(certs, ["https://127.0.0.1:\(port)/?size=1"], extra: ["-o", "/dev/null", "-w", "%{http_code}"])
            XCTAssertEqual(ok.stdout, "200", "\(io): still serving")
            let admin = try XCTUnwrap(ops.adminPort)
            var stats = ""
            Wait.until {
                stats = adminRequest(admin, "GET", "/stats").1
                return statValue(stats, "http.ingress_http.downstream_cx_active") == 0
            }
            let l = "listener.127.0.0.1_\(port)."
            XCTAssertEqual(statValue(stats, l + "ssl.connection_error"), 2, "\(io): garbage and plain HTTP (a truncated handshake is not counted, as in Envoy)")
            XCTAssertEqual(statValue(stats, l + "ssl.handshake"), 1, "\(io)")
            XCTAssertEqual(statValue(stats, l + "downstream_cx_total"), 5, "\(io)")
            XCTAssertEqual(statValue(stats, "http.ingress_http.downstream_cx_active"), 0, "\(io)")
            XCTAssertEqual(statValue(stats, "http.ingress_http.downstream_rq_total"), 1, "\(io): only the good request")
        }
    }
}

/// A tiny deterministic generator for test bytes.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
