import Foundation
import Glibc
@testable import Proxy
import XCTest

/// SDS from files as config (docs/tls.md): secrets that load on both sides, and every refusal
/// with its YAML path (inside the secret file, the file's path comes first, as for LDS / CDS).
final class SDSConfigTests: XCTestCase {
    static let common = TLSConfigTests.common
    var certs: TestCertificates!

    override func setUpWithError() throws { certs = try TestCertificates() }
    override func tearDown() { certs?.remove() }

    /// Writes an SDS file (`version_info` and the resources given as YAML list items) and returns its path.
    func secretFile(_ name: String, _ resources: [String], version: String? = nil) throws -> String {
        let path = certs.path(name)
        let text = (version.map { "version_info: \($0)\n" } ?? "") + "resources:\n" + resources.map { "- " + $0 }.joined(separator: "\n") + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func certificateSecret(_ name: String, key: String = "server.key") -> String {
        "{\"@type\": \(BootstrapParser.secretType), name: \(name), tls_certificate: {certificate_chain: {filename: \(certs.path("server.pem"))}, private_key: {filename: \(certs.path(key))}}}"
    }

    func caSecret(_ name: String) -> String {
        "{\"@type\": \(BootstrapParser.secretType), name: \(name), validation_context: {trusted_ca: {filename: \(certs.path("ca.pem"))}}}"
    }

    /// The base config with a node, a listener whose certificate is secret `name` from `source`
    /// (an sds_config), and (when `caSource` is given) a cluster whose CA is secret `ca` from it.
    func config(_ name: String = "cert", source: String, caSource: String? = nil, node: Bool = true) -> String {
        var edits = [("    - filters:", "    - transport_socket: { name: envoy.transport_sockets.tls, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: { tls_certificate_sds_secret_configs: [ { name: \(name), sds_config: \(source) } ] } } }\n      filters:")]
        if let caSource {
            edits.append(("    type: STATIC\n", "    type: STATIC\n    transport_socket: { name: envoy.transport_sockets.tls, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: localhost, common_tls_context: { validation_context_sds_secret_config: { name: ca, sds_config: \(caSource) } } } }\n"))
        }
        return (node ? "node: {id: n1, cluster: c1}\n" : "") + edited(edits)
    }

    func testSecretsLoadOnBothSides() throws {
        let certFile = try secretFile("cert.yaml", [certificateSecret("cert")], version: "v1")
        let caFile = try secretFile("ca.yaml", [caSecret("ca")])
        let loaded = try XCTUnwrap(load(config(source: "{path_config_source: {path: \(certFile)}, resource_api_version: V3}",
                                               caSource: "{path_config_source: {path: \(caFile), watched_directory: {path: \(certs.dir)}}}")))
        let listenerTLS = try XCTUnwrap(loaded.bootstrap.listeners[0].filterChains[0].tls)
        XCTAssertEqual(listenerTLS.secretNames, ["cert"])
        XCTAssertEqual(listenerTLS.certificateChain, try String(contentsOfFile: certs.path("server.pem"), encoding: .utf8))
        let clusterTLS = try XCTUnwrap(loaded.bootstrap.clusters[0].tls)
        XCTAssertEqual(clusterTLS.secretNames, ["ca"])
        XCTAssertEqual(clusterTLS.trustedCA, try String(contentsOfFile: certs.path("ca.pem"), encoding: .utf8))
        XCTAssertEqual(loaded.bootstrap.secrets.sources["cert"], FileConfigSource(path: certFile, watchedDirectory: nil))
        XCTAssertEqual(loaded.bootstrap.secrets.sources["ca"], FileConfigSource(path: caFile, watchedDirectory: certs.dir))
        XCTAssertEqual(loaded.bootstrap.secrets.versionInfo, ["cert": "v1", "ca": ""])
        XCTAssertTrue(loaded.warnings.isEmpty, "\(loaded.warnings)")
        // The older `sds_config: {path: FILE}` loads with a deprecation warning, as for LDS / CDS.
        let old = try XCTUnwrap(load(config(source: "{path: \(certFile)}")))
        XCTAssertEqual(old.warnings.map(\.description),
                       ["static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.path: deprecated; use path_config_source.path"])
    }

    func testRefusalsNameTheirYAMLPath() throws {
        let sds = "\(Self.common).tls_certificate_sds_secret_configs[0]"
        let good = try secretFile("cert.yaml", [certificateSecret("cert")])
        let two = try secretFile("two.yaml", [certificateSecret("cert"), caSecret("ca")])
        let mismatched = try secretFile("mismatch.yaml", [certificateSecret("cert", key: "client.key")])
        let other = try secretFile("other.yaml", [certificateSecret("other")])
        let ca = try secretFile("ca.yaml", [caSecret("cert")])
        let broken = certs.path("broken.yaml")
        try "resources: [ {".write(toFile: broken, atomically: true, encoding: .utf8)
        let missing = certs.path("missing.yaml")
        let cases: [(String, String, [String])] = [
            ("gRPC source", config(source: "{api_config_source: {api_type: GRPC, grpc_services: [{envoy_grpc: {cluster_name: sds}}]}}"),
             ["\(sds).sds_config.api_config_source: not supported by ballast"]),
            ("ADS source", config(source: "{ads: {}}"), ["\(sds).sds_config.ads: not supported by ballast"]),
            ("a static secret", config(source: "{path: \(good)}").replacingOccurrences(of: ", sds_config: {path: \(good)}", with: ""),
             ["\(sds): a secret without sds_config comes from static_resources.secrets, which ballast does not support; read it from a file with sds_config.path_config_source"]),
            ("no node", config(source: "{path: \(good)}", node: false),
             ["node: node 'id' and 'cluster' are required with sds_config (\(sds).sds_config; Envoy refuses the config without them)"]),
            ("missing file", config(source: "{path_config_source: {path: \(missing)}}"),
             ["[\"\(missing)\"]: paths must refer to an existing path in the system: '\(missing)' cannot be read (No such file or directory)"]),
            ("not YAML", config(source: "{path_config_source: {path: \(broken)}}"), ["\(broken): YAML syntax error"]),
            ("two secrets in the file", config(source: "{path_config_source: {path: \(two)}}"),
             ["[\"\(two)\"].resources: an SDS file holds exactly one Secret (Envoy rejects any other count); found 2"]),
            ("another name", config(source: "{path_config_source: {path: \(other)}}"),
             ["[\"\(other)\"].resources[0].name: the file holds secret 'other', not 'cert' (Envoy rejects it)"]),
            ("a key that does not match", config(source: "{path_config_source: {path: \(mismatched)}}"),
             ["[\"\(mismatched)\"].resources[0].tls_certificate.private_key: OpenSSL refused it: private_key: "]),
            ("a CA where a certificate is expected", config(source: "{path_config_source: {path: \(ca)}}"),
             ["\(sds): secret 'cert' holds no tls_certificate ([\"\(ca)\"].resources[0].validation_context)"]),
        ]
        for (name, yaml, expected) in cases {
            let errors = loadErrors(yaml).map { $0.components(separatedBy: " (line")[0] }
            XCTAssertEqual(errors.count, expected.count, "\(name): \(errors)")
            for (e, x) in zip(errors, expected) { XCTAssertTrue(e.hasPrefix(x), "\(name):\n  got      \(e)\n  expected \(x)") }
        }
    }
}
