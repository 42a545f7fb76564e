import Foundation
import Glibc
import XCTest

/// TLS origination by tcp_proxy (docs/tls.md), Envoy 1.40 and `ballast proxy` on one bootstrap:
/// plain clients on `port` go through tcp_proxy to a cluster that originates TLS (sni, trusted_ca)
/// to the proxy's own TLS listener, which terminates it (tls_inspector logs the SNI it got) and
/// passes the plaintext to the recording upstream. A third listener's cluster trusts another CA:
/// its handshakes fail. Compared: the answers, every access-log line and the ssl / cx stats.
final class TCPProxyTLSDifferentialTests: XCTestCase {
    func testTLSOriginatedByTCPProxyAgreesWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let certs = NSTemporaryDirectory() + "ballast-tcp-origination-certs-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: certs) }
        let made = try runToCompletion(differentialRoot.appendingPathComponent("scripts/tls-test-certs.sh").path, [certs])
        guard made.status == 0 else { throw DifferentialError("tls-test-certs.sh: \(made.stderr)") }
        let format = "%RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_CLUSTER% %REQUESTED_SERVER_NAME% %DOWNSTREAM_TLS_VERSION% %UPSTREAM_TRANSPORT_FAILURE_REASON%\\n"
        var bad = 0
        let seen = try observeEnvoyAndBallast("tcp-origination", envoyArgs: ["--file-flush-interval-msec", "10"], config: { port, admin, log in
            let terminating = (try? freePort()) ?? 0
            bad = (try? freePort()) ?? 0
            return Self.bootstrap(port: port, terminating: terminating, bad: bad, admin: admin, upstream: upstream.port, certs: certs,
                                  log: log, format: format)
        }, observe: { proxy, port in
            var out: [String] = []
            for (path, extra) in [("/one", [String]()), ("/two", ["--data-binary", String(repeating: "z", count: 30_000)])] {
                let r = try runToCompletion("/usr/bin/curl", ["-s", "--max-time", "10", "--http1.1", "-w", " %{http_code}"] + extra
                                            + ["http://127.0.0.1:\(port)\(path)"])
                out.append("curl \(path): exit \(r.status) \(r.stdout)")
            }
            let r = try runToCompletion("/usr/bin/curl", ["-s", "--max-time", "10", "--http1.1", "-w", " %{http_code}", "http://127.0.0.1:\(bad)/bad"])
            // Reset or closed depends on whether the request arrived before the close: either way, no answer.
            out.append("curl /bad: exit \(r.status == 0 ? "0" : "non-zero") \(r.stdout)")
            var lines: [String] = []
            let deadline = Date().addingTimeInterval(3)
            while lines.count < 5 && Date() < deadline {
                lines = proxy.logLines(after: 0) { _ in true }
                usleep(20_000)
            }
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
            let names = ["cluster.origin.ssl.handshake", "cluster.origin.ssl.connection_error", "cluster.origin.ssl.fail_verify_error",
                         "cluster.origin.ssl.no_certificate", "cluster.origin.upstream_cx_total", "cluster.origin.upstream_cx_connect_fail",
                         "cluster.badca.ssl.handshake", "cluster.badca.ssl.fail_verify_error", "cluster.badca.ssl.connection_error",
                         "cluster.badca.upstream_cx_total", "cluster.badca.upstream_cx_connect_fail", "cluster.badca.upstream_cx_connect_attempts_exceeded",
                         "tcp.plain_in.downstream_cx_rx_bytes_total", "tcp.plain_in.downstream_cx_tx_bytes_total",
                         "tcp.tls_in.downstream_cx_rx_bytes_total", "tcp.tls_in.downstream_cx_tx_bytes_total", "tcp.bad_in.downstream_cx_total"]
            return out + lines.map(Self.comparable).sorted() + names.map { n in stats.first { $0.hasPrefix(n + ": ") } ?? "\(n): (absent)" }
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "TLS originated by tcp_proxy differs from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains { $0.hasPrefix("curl /two: exit 0 \(RecordingUpstream.body) 200") }, "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("cluster.badca.ssl.fail_verify_error: 1"), "\(seen.ballast)")
    }

    /// The rows this test adds to README.md's feature table (FeatureTableTests), with its verdicts.
    static let tableRows: [(feature: String, verdict: String)] = [
        ("TLS origination by tcp_proxy (UpstreamTlsContext: sni, trusted_ca; plaintext byte counts; a server that does not verify is UF, counted in ssl.fail_verify_error and upstream_cx_connect_fail)", "differs: %UPSTREAM_TRANSPORT_FAILURE_REASON% carries OpenSSL's error text where Envoy has BoringSSL's (same frame, flags and stats)"),
    ]

    /// A log line up to the TLS library's error text (BoringSSL's in Envoy, OpenSSL's here).
    static func comparable(_ line: String) -> String {
        guard let start = line.range(of: "TLS_error:|"), let end = line.range(of: ":TLS_error_end") else { return line }
        return String(line[..<start.upperBound]) + "(library text)" + String(line[end.lowerBound...])
    }

    static func bootstrap(port: Int, terminating: Int, bad: Int, admin: Int, upstream: Int, certs: String, log: String, format: String) -> String {
        func tcpProxy(_ prefix: String, _ cluster: String) -> String {
            "{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: \(prefix), cluster: \(cluster), access_log: [{name: envoy.access_loggers.file, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: \(log), log_format: {text_format_source: {inline_string: \"\(format)\"}}}}]}}"
        }
        func originating(_ ca: String) -> String {
            "transport_socket: {name: envoy.transport_sockets.tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: localhost, common_tls_context: {validation_context: {trusted_ca: {filename: \(certs)/\(ca)}}}}}"
        }
        return """
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
        static_resources:
          listeners:
          - name: plain
            address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            filter_chains: [{name: plain, filters: [\(tcpProxy("plain_in", "origin"))]}]
          - name: bad
            address: {socket_address: {address: 127.0.0.1, port_value: \(bad)}}
            filter_chains: [{name: bad, filters: [\(tcpProxy("bad_in", "badca"))]}]
          - name: tls
            address: {socket_address: {address: 127.0.0.1, port_value: \(terminating)}}
            listener_filters: [{name: envoy.filters.listener.tls_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]
            filter_chains:
            - name: terminating
              transport_socket: {name: envoy.transport_sockets.tls, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {tls_certificates: [{certificate_chain: {filename: \(certs)/server.pem}, private_key: {filename: \(certs)/server.key}}]}}}
              filters: [\(tcpProxy("tls_in", "web"))]
          clusters:
          \(staticCluster("web", ports: [upstream], extra: "connect_timeout: 1s"))
          \(staticCluster("origin", ports: [terminating], extra: "connect_timeout: 1s, " + originating("ca.pem")))
          \(staticCluster("badca", ports: [terminating], extra: "connect_timeout: 1s, " + originating("other-ca.pem")))
        """
    }
}
