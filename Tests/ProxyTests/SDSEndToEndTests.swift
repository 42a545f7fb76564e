import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// SDS rotation on both I/O backends (docs/tls.md): a secret file moved onto its path switches
/// new handshakes to the new certificate while a connection opened before keeps being served; a
/// file that is not YAML keeps the last good certificate and counts one update_failure.
final class SDSEndToEndTests: XCTestCase {
    func testRotationServesNewHandshakesAndKeepsOpenConnections() throws {
        let first = try TestCertificates()
        let second = try TestCertificates()
        defer { first.remove(); second.remove() }
        try TestBackends.each { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let log = opsTempPath("sds-\(io.rawValue)")
            let secretPath = opsTempPath("sds-\(io.rawValue)-cert.yaml")
            let staging = secretPath + ".next"
            defer { unlink(log); unlink(secretPath); unlink(staging) }
            func secret(_ certs: TestCertificates, version: String) -> String {
                "version_info: \(version)\nresources:\n- {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret, name: cert, tls_certificate: {certificate_chain: {filename: \(certs.path("server.pem"))}, private_key: {filename: \(certs.path("server.key"))}}}\n"
            }
            func replace(_ text: String) throws {
                try text.write(toFile: staging, atomically: false, encoding: .utf8)
                XCTAssertEqual(rename(staging, secretPath), 0)
            }
            try secret(first, version: "one").write(toFile: secretPath, atomically: true, encoding: .utf8)
            let socket = "transport_socket: { name: envoy.transport_sockets.tls, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: { tls_certificate_sds_secret_configs: [ { name: cert, sds_config: { path_config_source: { path: \(secretPath) } } } ] } } }"
            let yaml = "node: {id: n, cluster: c}\n" + TLSEndToEndTests.terminatingYAML(socket, upstreamPort: upstream.port, logPath: log)
            // From a file, as `-c` gives it: an update re-reads the bootstrap text kept from start.
            let configPath = opsTempPath("sds-\(io.rawValue).yaml")
            defer { unlink(configPath) }
            try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
            let ops = try startOps("", io: io, configPath: configPath)
            defer { ops.stop() }
            let url = "https://127.0.0.1:\(ops.proxy.port(of: "http")!)/"
            let fetch = ["-o", "/dev/null", "-w", "%{http_code}"]
            XCTAssertEqual(curlTLS(first, [url], extra: fetch).stdout, "200", "\(io)")
            let open = try OpenSSLClient(port: ops.proxy.port(of: "http")!, caFile: first.path("ca.pem"))
            defer { open.stop() }
            let request = "GET /?size=4 HTTP/1.1\r\nHost: x\r\n\r\n"
            XCTAssertTrue(open.exchange(request, expect: "\r\n\r\n").hasPrefix("HTTP/1.1 200"), "\(io): before the rotation")

            try replace(secret(second, version: "two"))
            XCTAssertTrue(Wait.until { ops.pollSecretFiles(); return ops.secretCounters["cert"]?.subscription.success == 2 }, "\(io)")
            XCTAssertEqual(curlTLS(second, [url], extra: fetch).stdout, "200", "\(io): new handshakes get the new certificate")
            XCTAssertEqual(curlTLS(first, [url], extra: fetch).stdout, "000", "\(io): the old CA no longer verifies it")
            let after = open.exchange(request, expect: "content-length: 4")
            XCTAssertTrue(after.contains("HTTP/1.1 200"), "\(io): the connection opened before is still served: \(after)")

            try replace("resources: [ {\n")
            XCTAssertTrue(Wait.until { ops.pollSecretFiles(); return ops.secretCounters["cert"]?.subscription.failure == 1 }, "\(io)")
            XCTAssertEqual(curlTLS(second, [url], extra: fetch).stdout, "200", "\(io): the last good certificate stays")
            let counters = try XCTUnwrap(ops.secretCounters["cert"]).subscription
            XCTAssertEqual([counters.attempt, counters.success, counters.rejected, counters.failure], [3, 2, 0, 1], "\(io)")
            let text = ops.stats().text()
            XCTAssertTrue(text.contains("sds.cert.version_text: \"two\"\n"), "\(io)")
            XCTAssertTrue(text.contains(".server_ssl_socket_factory.ssl_context_update_by_sds: 2\n"), "\(io)")
        }
    }
}
