import Foundation
import Glibc
import XCTest

/// TLS termination and origination, real Envoy 1.40 and `ballast proxy` on one bootstrap
/// (docs/tls.md): the same curl requests and bad bytes to both, then status, body, access-log
/// fields and the `ssl.*` stats compared. The one known difference, the text of an upstream
/// verification failure in `%RESPONSE_CODE_DETAILS%` (BoringSSL's error string in Envoy,
/// OpenSSL's in Ballast), is compared up to that text.
final class TLSDifferentialTests: XCTestCase {
    func testTerminationAndOriginationAgreeWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-tls-differential-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        signal(SIGPIPE, SIG_IGN)
        let certs = directory.appendingPathComponent("certs").path
        let made = try runToCompletion(differentialRoot.appendingPathComponent("scripts/tls-test-certs.sh").path, [certs])
        guard made.status == 0 else { throw DifferentialError("tls-test-certs.sh: \(made.stderr)") }
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }

        func start(_ name: String, _ command: (String) -> (String, [String])) throws -> ProxyUnderTest {
            let admin = try freePort()
            let ports = ["tls": try freePort(), "mtls": try freePort()]
            let log = directory.appendingPathComponent("\(name)-access.log").path
            let config = directory.appendingPathComponent("\(name).yaml").path
            try tlsDifferentialBootstrap(admin: admin, ports: ports, upstream: upstream.port, certs: certs, accessLog: log)
                .write(toFile: config, atomically: true, encoding: .utf8)
            let (executable, arguments) = command(config)
            return try ProxyUnderTest(name: name, executable: executable, arguments: arguments, ports: ports,
                                      adminPort: admin, accessLog: log, directory: directory)
        }
        let envoy = try start("envoy") { (envoyBinary, ["-c", $0, "--concurrency", "1", "--disable-hot-restart", "-l", "error",
                                                        "--file-flush-interval-msec", "10", "--drain-time-s", "0"]) }
        defer { envoy.stop() }
        let ballast = try start("ballast") { (differentialBallastBinary(), ["proxy", "-c", $0, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"]) }
        defer { ballast.stop() }
        try envoy.waitReady()
        try ballast.waitReady()

        var differences: [String] = []
        func compare(_ what: String, _ observe: (ProxyUnderTest) throws -> String) rethrows {
            let e = try observe(envoy)
            let b = try observe(ballast)
            // BALLAST_TLS_DIFF_PRINT=1 prints every observation pair, for a look by hand.
            if ProcessInfo.processInfo.environment["BALLAST_TLS_DIFF_PRINT"] != nil { print("OBS \(what): \(e) ## \(b)") }
            if e != b { differences.append("\(what):\n  envoy:   \(e)\n  ballast: \(b)") }
        }
        func curl(_ p: ProxyUnderTest, _ listener: String, _ path: String, _ extra: [String] = [], lines: Int = 1) throws -> String {
            let offset = p.logOffset()
            let r = try runToCompletion("/usr/bin/curl", ["-s", "--max-time", "10", "--http1.1", "--cacert", "\(certs)/ca.pem", "-w", "\n%{http_code}"]
                                        + extra + ["https://127.0.0.1:\(p.ports[listener]!)\(path)"])
            let answered = !r.stdout.hasSuffix("000")
            // Sorted: two listeners' lines (origination through the mtls one) may come in either order.
            var logged: [String] = []
            let deadline = Date().addingTimeInterval(3)
            while answered && logged.count < lines && Date() < deadline { logged = p.logLines(after: offset) { _ in true } }
            let line = answered ? logged.map(Self.comparable).sorted().joined(separator: " || ") : "(not logged)"
            return "curl exit \(r.status == 0 ? "0" : "non-zero") | \(r.stdout.replacingOccurrences(of: "\n", with: " / ")) | \(line)"
        }
        func raw(_ p: ProxyUnderTest, _ bytes: [UInt8], halfClose: Bool) throws -> String {
            let c = try RawClient(port: p.ports["tls"]!)
            c.send(bytes)
            if halfClose { shutdown(c.fd, Int32(SHUT_WR)) }
            var received = 0
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { received += n; continue }
                return n == 0 || errno == ECONNRESET ? "closed, \(received > 0 ? "some bytes (an alert)" : "nothing") received" : "still open after 5 s"
            }
        }

        try compare("GET over TLS 1.3") { try curl($0, "tls", "/a") }
        try compare("GET over TLS 1.2") { try curl($0, "tls", "/b", ["--tls-max", "1.2"]) }
        try compare("POST over TLS") { try curl($0, "tls", "/c", ["--data-binary", String(repeating: "x", count: 40_000)]) }
        try compare("upstream certificate that does not verify") { try curl($0, "tls", "/bad") }
        // Three upstream connections (max_requests_per_connection: 1) to the mTLS listener: the
        // second and third resume the first's session, as Envoy's max_session_keys (1) does.
        for i in 1...3 { try compare("origination with a client certificate, request \(i)") { try curl($0, "tls", "/good/\(i)", lines: 2) } }
        try compare("mTLS without a client certificate") { try curl($0, "mtls", "/d") }
        try compare("mTLS with a client certificate") { try curl($0, "mtls", "/e", ["--cert", "\(certs)/client.pem", "--key", "\(certs)/client.key"]) }
        try compare("plain HTTP to the TLS port") { try raw($0, Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), halfClose: false) }
        try compare("truncated ClientHello, then end of stream") { try raw($0, [0x16, 0x03, 0x01, 0x02, 0x00, 0x01], halfClose: true) }
        // (Garbage that is not a TLS record: Envoy answers with an alert, OpenSSL closes without one;
        // both close and count a connection_error, compared in the stats below.)
        _ = try raw(envoy, [UInt8](repeating: 0x80, count: 300), halfClose: false)
        _ = try raw(ballast, [UInt8](repeating: 0x80, count: 300), halfClose: false)

        for suffix in ["handshake", "connection_error", "fail_verify_no_cert", "fail_verify_error", "no_certificate", "session_reused",
                       "fail_verify_san", "fail_verify_cert_hash"] {
            for listener in ["tls", "mtls"] {
                try compare("stats listener \(listener) ssl.\(suffix)") { p in
                    Self.stat(try p.adminGet("/stats").text, "listener.127.0.0.1_\(p.ports[listener]!).ssl.\(suffix)")
                }
            }
        }
        for name in ["cluster.goodtls.ssl.handshake", "cluster.goodtls.ssl.session_reused", "cluster.goodtls.ssl.no_certificate",
                     "cluster.goodtls.upstream_cx_total", "cluster.badtls.ssl.fail_verify_error", "cluster.badtls.ssl.connection_error", "cluster.badtls.ssl.handshake",
                     "cluster.badtls.upstream_cx_connect_fail", "http.tls.downstream_cx_ssl_total", "http.mtls.downstream_cx_ssl_total",
                     "http.tls.downstream_rq_total"] {
            try compare("stats \(name)") { Self.stat(try $0.adminGet("/stats").text, name) }
        }
        if !differences.isEmpty {
            XCTFail("\(differences.count) difference(s) against Envoy 1.40:\n" + differences.joined(separator: "\n"))
        }
    }

    /// The rows this test adds to README.md's feature table (FeatureTableTests), with its verdicts.
    static let tableRows: [(feature: String, verdict: String)] = [
        ("TLS termination (DownstreamTlsContext: certificate, TLS 1.2/1.3; %DOWNSTREAM_TLS_VERSION%, %REQUESTED_SERVER_NAME% without tls_inspector)", "same"),
        ("mTLS (require_client_certificate, validation_context.trusted_ca): with and without a client certificate", "same"),
        ("TLS origination (UpstreamTlsContext, sni, trusted_ca): a server that does not verify is 503 UF", "differs: %RESPONSE_CODE_DETAILS% and %UPSTREAM_TRANSPORT_FAILURE_REASON% carry OpenSSL's error text where Envoy has BoringSSL's (same frame, flags, body and stats)"),
        ("Upstream session resumption (max_session_keys, 1 by default) and close_notify on close", "same"),
        ("Plain HTTP or a truncated handshake on a TLS port: closed, counted", "same"),
        ("ssl.* stats of listeners and clusters, http.<prefix>.downstream_cx_ssl_total", "same"),
    ]

    static func stat(_ text: String, _ name: String) -> String {
        text.split(separator: "\n").first { $0.hasPrefix(name + ": ") }.map { String($0.dropFirst(name.count + 2)) } ?? "(absent)"
    }

    /// The access-log line with the TLS library's error texts (BoringSSL's in Envoy, OpenSSL's
    /// here) left out: in %RESPONSE_CODE_DETAILS% and in %UPSTREAM_TRANSPORT_FAILURE_REASON%.
    static func comparable(_ line: String) -> String {
        guard let r = line.range(of: "|TLS_error:") else { return line }
        let rest = line.components(separatedBy: "TLS_error_end}").last ?? ""
        var out = String(line[..<r.lowerBound]) + "|TLS_error:(library text)}"
        if let start = rest.range(of: "TLS_error:|"), let end = rest.range(of: ":TLS_error_end") {
            out += String(rest[..<start.upperBound]) + "(library text)" + String(rest[end.lowerBound...])
        } else {
            out += rest
        }
        return out
    }
}

/// Two TLS listeners (`tls`: server certificate; `mtls`: client certificates required) in front
/// of the recording upstream; `/bad` goes to a cluster that does not trust the server's CA.
func tlsDifferentialBootstrap(admin: Int, ports: [String: Int], upstream: Int, certs: String, accessLog: String) -> String {
    // Only on the `tls` listener: `/good` goes on to the `mtls` one (whose routes lack it: no loop).
    let goodRoute = "\n              - match: { prefix: \"/good\" }\n                route: { cluster: goodtls }"
    func listener(_ name: String, mutual: Bool) -> String {
        let client = mutual ? "require_client_certificate: true, " : ""
        let ca = mutual ? "validation_context: { trusted_ca: { filename: \(certs)/ca.pem } }, " : ""
        return """
          - name: \(name)
            address: { socket_address: { address: 127.0.0.1, port_value: \(ports[name]!) } }
            filter_chains:
            - transport_socket:
                name: envoy.transport_sockets.tls
                typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, \(client)common_tls_context: { \(ca)tls_certificates: [ { certificate_chain: { filename: \(certs)/server.pem }, private_key: { filename: \(certs)/server.key } } ] } }
              filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: \(name)
                  access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: \(accessLog)
                      log_format: { text_format_source: { inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_TRANSPORT_FAILURE_REASON% %DOWNSTREAM_TLS_VERSION% %REQUESTED_SERVER_NAME% %PROTOCOL% %REQ(:PATH)% %BYTES_RECEIVED%\\n" } }
                  route_config:
                    virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:\(mutual ? "" : goodRoute)
                      - match: { prefix: "/bad" }
                        route: { cluster: badtls }
                      - match: { prefix: "/" }
                        route: { cluster: web }
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
        """
    }
    return """
    admin:
      address: { socket_address: { address: 127.0.0.1, port_value: \(admin) } }
    static_resources:
      listeners:
    \(listener("tls", mutual: false))
    \(listener("mtls", mutual: true))
      clusters:
      - name: web
        connect_timeout: 1s
        load_assignment:
          cluster_name: web
          endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: \(upstream) } } } } ] } ]
      - name: goodtls
        connect_timeout: 1s
        max_requests_per_connection: 1
        transport_socket:
          name: envoy.transport_sockets.tls
          typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: localhost, common_tls_context: { validation_context: { trusted_ca: { filename: \(certs)/ca.pem } }, tls_certificates: [ { certificate_chain: { filename: \(certs)/client.pem }, private_key: { filename: \(certs)/client.key } } ] } }
        load_assignment:
          cluster_name: goodtls
          endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: \(ports["mtls"]!) } } } } ] } ]
      - name: badtls
        connect_timeout: 1s
        transport_socket:
          name: envoy.transport_sockets.tls
          typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: localhost, common_tls_context: { validation_context: { trusted_ca: { filename: \(certs)/other-ca.pem } } } }
        load_assignment:
          cluster_name: badtls
          endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: \(ports["tls"]!) } } } } ] } ]

    """
}
