import Foundation
import Glibc
@testable import Proxy
import XCTest

/// `transport_socket` (envoy.transport_sockets.tls) as config: what loads, and every refusal with
/// its YAML path (docs/tls.md). A bad certificate, key or file stops the start, in validate mode too.
final class TLSConfigTests: XCTestCase {
    static let chain = "static_resources.listeners[0].filter_chains[0]"
    static let socket = chain + ".transport_socket"
    static let context = socket + ".typed_config"
    static let common = context + ".common_tls_context"
    static let cluster = "static_resources.clusters[0]"

    /// The base config's HCM, and a tcp_proxy in its place.
    static let hcmBlock: String = {
        let start = baseConfig.range(of: "      - name: envoy.filters.network.http_connection_manager")!.lowerBound
        let end = baseConfig.range(of: "  clusters:")!.lowerBound
        return String(baseConfig[start..<end])
    }()
    static let tcpBlock = "      - name: envoy.filters.network.tcp_proxy\n        typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: some_service }\n"

    var certs: TestCertificates!

    override func setUpWithError() throws { certs = try TestCertificates() }
    override func tearDown() { certs?.remove() }

    /// The base config with a DownstreamTlsContext on the chain: `extra` fields of the context,
    /// `common` fields of common_tls_context before the certificate, and the certificate (`cert`).
    func downstream(extra: String = "", common: String = "", cert: String? = nil, type: String = "DownstreamTlsContext",
                    name: String = "envoy.transport_sockets.tls") -> String {
        let certificate = cert ?? "tls_certificates: [ { certificate_chain: { filename: \(certs.path("server.pem")) }, private_key: { filename: \(certs.path("server.key")) } } ]"
        let socket = "    - transport_socket: { name: \(name), typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.\(type), \(extra) common_tls_context: { \(common) \(certificate) } } }\n      filters:"
        return edited([("    - filters:", socket)])
    }

    func upstream(_ fields: String) -> String {
        edited([("    type: STATIC\n", "    type: STATIC\n    transport_socket: { name: envoy.transport_sockets.tls, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, \(fields) } }\n")])
    }

    func testContextsLoadFromFilesAndInlineStrings() throws {
        let inlineKey = try String(contentsOfFile: certs.path("server.key"), encoding: .utf8)
        let inlineChain = try String(contentsOfFile: certs.path("server.pem"), encoding: .utf8)
        func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\n", with: "\\n") + "\"" }
        let yaml = downstream(
            extra: "require_client_certificate: true,",
            common: "alpn_protocols: [http/1.1], tls_params: { tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3, cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256] }, validation_context: { trusted_ca: { filename: \(certs.path("ca.pem")) } },",
            cert: "tls_certificates: [ { certificate_chain: { inline_string: \(quoted(inlineChain)) }, private_key: { inline_string: \(quoted(inlineKey)) } } ]")
        let loaded = try XCTUnwrap(load(yaml))
        let tls = try XCTUnwrap(loaded.bootstrap.listeners[0].filterChains[0].tls)
        XCTAssertEqual(tls.side, .downstream)
        XCTAssertTrue(tls.requireClientCertificate)
        XCTAssertEqual(tls.minVersion, 0x0303)
        XCTAssertEqual(tls.maxVersion, 0x0304)
        XCTAssertEqual(tls.cipherList, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
        XCTAssertEqual(tls.alpn, ["http/1.1"])
        XCTAssertNotNil(tls.trustedCA)
        XCTAssertTrue(loaded.warnings.isEmpty, "\(loaded.warnings)")
        let plane = try DataPlane.compile(loaded.bootstrap)
        XCTAssertNotNil(plane.listeners[0].httpTLS[0])

        let up = try XCTUnwrap(load(upstream("sni: api.example.com, common_tls_context: { validation_context: { trusted_ca: { filename: \(certs.path("ca.pem")) } } }")))
        let cluster = try XCTUnwrap(up.bootstrap.clusters[0].tls)
        XCTAssertEqual(cluster.side, .upstream)
        XCTAssertEqual(cluster.sni, "api.example.com")
        XCTAssertEqual(cluster.maxVersion, 0x0303, "Envoy 1.40's client default is TLS 1.2 at most")
        XCTAssertEqual(cluster.sessionKeys, 1, "Envoy's max_session_keys default: resumption on")
        XCTAssertEqual(load(upstream("max_session_keys: 0"))?.bootstrap.clusters[0].tls?.sessionKeys, 0)
        XCTAssertNotNil(try DataPlane.compile(up.bootstrap).clusters[0].tls)
        // No common_tls_context: TLS without verification, as Envoy.
        XCTAssertNotNil(load(upstream("sni: x"))?.bootstrap.clusters[0].tls)
    }

    func testRefusalsNameTheirYAMLPath() throws {
        let garbage = certs.path("garbage.pem")
        try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let missing = certs.path("missing.pem")
        let serverPair = "certificate_chain: { filename: \(certs.path("server.pem")) }, private_key: { filename: \(certs.path("server.key")) }"
        let cases: [(String, String, [String])] = [
            ("unreadable file",
             downstream(cert: "tls_certificates: [ { certificate_chain: { filename: \(missing) }, private_key: { filename: \(certs.path("server.key")) } } ]"),
             ["\(Self.common).tls_certificates[0].certificate_chain.filename: cannot read '\(missing)': No such file or directory"]),
            ("not a certificate",
             downstream(cert: "tls_certificates: [ { certificate_chain: { filename: \(garbage) }, private_key: { filename: \(certs.path("server.key")) } } ]"),
             ["\(Self.common).tls_certificates[0].certificate_chain: OpenSSL refused it: certificate_chain: error:0480006C:PEM routines::no start line"]),
            ("key of another certificate",
             downstream(cert: "tls_certificates: [ { certificate_chain: { filename: \(certs.path("server.pem")) }, private_key: { filename: \(certs.path("client.key")) } } ]"),
             ["\(Self.common).tls_certificates[0].private_key: OpenSSL refused it: private_key: error:05800074:x509 certificate routines::key values mismatch"]),
            ("no certificate on a server",
             downstream(cert: ""),
             ["\(Self.common).tls_certificates: a DownstreamTlsContext needs a certificate (certificate_chain and private_key); none given"]),
            ("two certificates",
             downstream(cert: "tls_certificates: [ { \(serverPair) }, { \(serverPair) } ]"),
             ["\(Self.common).tls_certificates[1]: only one certificate per context is supported by ballast"]),
            ("client certificates without a CA",
             downstream(extra: "require_client_certificate: true,"),
             ["\(Self.context).require_client_certificate: needs common_tls_context.validation_context.trusted_ca to verify client certificates"]),
            ("unknown cipher",
             downstream(common: "tls_params: { cipher_suites: [NOT-A-CIPHER] },"),
             ["\(Self.common).tls_params.cipher_suites[0]: unknown cipher suite 'NOT-A-CIPHER'"]),
            ("BoringSSL cipher group",
             downstream(common: "tls_params: { cipher_suites: [\"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]\"] },"),
             ["\(Self.common).tls_params.cipher_suites[0]: equal-preference cipher groups ('[A|B]') are a BoringSSL feature not supported by ballast; list the ciphers one by one"]),
            ("min above max",
             downstream(common: "tls_params: { tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_2 },"),
             ["\(Self.common).tls_params.tls_minimum_protocol_version: above tls_maximum_protocol_version"]),
            ("h2 in ALPN",
             downstream(common: "alpn_protocols: [h2, http/1.1],"),
             ["\(Self.common).alpn_protocols: 'h2' is not supported by ballast (HTTP/1.1 only): it would negotiate HTTP/2; offer http/1.1"]),
            ("require_sni",
             downstream(extra: "require_sni: true,"),
             ["\(Self.context).require_sni: not supported by ballast"]),
            ("SDS and an inline certificate",
             downstream(common: "tls_certificate_sds_secret_configs: [ { name: cert } ],"),
             ["\(Self.common).tls_certificate_sds_secret_configs: ballast holds one certificate per context: give tls_certificates or tls_certificate_sds_secret_configs, not both"]),
            ("SAN matching",
             downstream(common: "validation_context: { trusted_ca: { filename: \(certs.path("ca.pem")) }, match_typed_subject_alt_names: [] },"),
             ["\(Self.common).validation_context.match_typed_subject_alt_names: not supported by ballast"]),
            ("inline_bytes",
             downstream(cert: "tls_certificates: [ { certificate_chain: { inline_bytes: AAAA }, private_key: { filename: \(certs.path("server.key")) } } ]"),
             ["\(Self.common).tls_certificates[0].certificate_chain.inline_bytes: not supported by ballast"]),
            ("upstream context on a listener",
             downstream(type: "UpstreamTlsContext"),
             ["\(Self.context).@type: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext' does not match transport socket envoy.transport_sockets.tls on a filter chain; expected type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"]),
            ("another transport socket",
             downstream(name: "envoy.transport_sockets.alts"),
             ["\(Self.socket).name: transport socket 'envoy.transport_sockets.alts' is not supported by ballast (ballast implements envoy.transport_sockets.tls)"]),
            ("upstream CA file missing",
             upstream("common_tls_context: { validation_context: { trusted_ca: { filename: \(missing) } } }"),
             ["\(Self.cluster).transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename: cannot read '\(missing)': No such file or directory"]),
            ("upstream CA without a certificate",
             upstream("common_tls_context: { validation_context: { trusted_ca: { filename: \(garbage) } } }"),
             ["\(Self.cluster).transport_socket.typed_config.common_tls_context.validation_context.trusted_ca: OpenSSL refused it: trusted_ca: no PEM certificate in it"]),
            ("more than one session key",
             upstream("max_session_keys: 2"),
             ["\(Self.cluster).transport_socket.typed_config.max_session_keys: ballast keeps at most 1 session for resumption; set 0 (off) or 1"]),
            ("upstream auto_host_sni",
             upstream("auto_host_sni: true"),
             ["\(Self.cluster).transport_socket.typed_config.auto_host_sni: not supported by ballast"]),
        ]
        for (name, yaml, expected) in cases {
            let errors = loadErrors(yaml)
            XCTAssertEqual(errors.map { $0.components(separatedBy: " (line")[0] }, expected, name)
        }
    }

    func testValidateModeRefusesABadCertificate() throws {
        let path = certs.path("bad.yaml")
        try downstream(cert: "tls_certificates: [ { certificate_chain: { filename: \(certs.path("server.pem")) }, private_key: { filename: \(certs.path("client.key")) } } ]")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runBallast(["proxy", "--mode", "validate", "-c", path])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(Self.common).tls_certificates[0].private_key: OpenSSL refused it"), r.stderr)
        let good = certs.path("good.yaml")
        try downstream().write(toFile: good, atomically: true, encoding: .utf8)
        let ok = try runBallast(["proxy", "--mode", "validate", "-c", good])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }
}
