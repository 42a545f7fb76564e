import Foundation
import Glibc
import XCTest

/// SDS from files (docs/tls.md), Envoy 1.40 and `ballast proxy` on the same files: a TLS listener
/// whose certificate is secret `server_cert` (a file replaced by a move onto its path), and a
/// cluster that originates TLS to that listener, verifying it with secret `upstream_ca` (a file in
/// a watched_directory). The certificate rotates to one from another CA (the cluster then fails
/// verification), the CA follows, then a file that is not YAML and one whose key does not match
/// are moved in. After each step: the certificate served (serial and subject, as a client sees
/// them), the answer through the cluster, and at the end the sds.* and ssl stats.
final class SDSDifferentialTests: XCTestCase {
    func testRotationAgreesWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let dir = NSTemporaryDirectory() + "ballast-sds-differential-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for set in ["one", "two"] {
            let made = try runToCompletion(differentialRoot.appendingPathComponent("scripts/tls-test-certs.sh").path, ["\(dir)/\(set)"])
            guard made.status == 0 else { throw DifferentialError("tls-test-certs.sh: \(made.stderr)") }
        }
        let secrets = "\(dir)/secrets", watched = "\(dir)/watched", staging = "\(dir)/staging"
        for d in [secrets, watched, staging] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        /// Writes a file elsewhere, then moves it onto `path` (the atomic replace Envoy's docs ask for).
        func replace(_ path: String, _ text: String) throws {
            let temp = "\(staging)/next"
            try text.write(toFile: temp, atomically: false, encoding: .utf8)
            guard rename(temp, path) == 0 else { throw DifferentialError("rename onto \(path): errno \(errno)") }
        }
        func certificate(_ version: String, chain: String, key: String) -> String {
            "version_info: \(version)\nresources:\n- {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret, name: server_cert, tls_certificate: {certificate_chain: {filename: \(dir)/\(chain)}, private_key: {filename: \(dir)/\(key)}}}\n"
        }
        func ca(_ version: String, _ set: String) -> String {
            "version_info: \(version)\nresources:\n- {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret, name: upstream_ca, validation_context: {trusted_ca: {filename: \(dir)/\(set)/ca.pem}}}\n"
        }
        var plainPort = 0
        let seen = try observeEnvoyAndBallast("sds", config: { port, admin, _ in
            // Each proxy starts from the first certificate and CA.
            try? replace("\(secrets)/server.yaml", certificate("c1", chain: "one/server.pem", key: "one/server.key"))
            try? replace("\(watched)/ca.yaml", ca("a1", "one"))
            plainPort = (try? freePort()) ?? 0
            return Self.bootstrap(tls: port, plain: plainPort, admin: admin, upstream: upstream.port, secrets: secrets, watched: watched)
        }, observe: { proxy, port in
            var out: [String] = []
            func served() throws -> String {
                let r = try runToCompletion("/bin/sh", ["-c", "echo | openssl s_client -connect 127.0.0.1:\(port) -servername localhost 2>/dev/null | openssl x509 -noout -serial -subject"])
                return r.stdout.replacingOccurrences(of: "\n", with: " ")
            }
            func through() throws -> String {
                let r = try runToCompletion("/usr/bin/curl", ["-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(plainPort)/x"])
                return r.stdout
            }
            func stat(_ name: String) throws -> String {
                let text = try proxy.adminGet("/stats").text
                return text.split(separator: "\n").first { $0.hasPrefix(name + ": ") }.map(String.init) ?? "\(name): (absent)"
            }
            /// Waits (at most 5 s) until `secret` counted one more update attempt than `before`.
            func waitForAttempt(_ secret: String, after before: String) throws {
                let deadline = Date().addingTimeInterval(5)
                while try stat("sds.\(secret).update_attempt") == before && Date() < deadline { usleep(20_000) }
                usleep(100_000)
            }
            func step(_ label: String, _ secret: String, _ path: String, _ text: String) throws {
                let before = try stat("sds.\(secret).update_attempt")
                try replace(path, text)
                try waitForAttempt(secret, after: before)
                out.append("\(label): served \(try served()) | through the cluster \(try through())")
            }
            out.append("start: served \(try served()) | through the cluster \(try through())")
            out.append("/certs at start: \(try Self.certs(proxy))")
            try step("certificate rotated to another CA's", "server_cert", "\(secrets)/server.yaml",
                     certificate("c2", chain: "two/server.pem", key: "two/server.key"))
            try step("CA rotated (watched_directory)", "upstream_ca", "\(watched)/ca.yaml", ca("a2", "two"))
            try step("not YAML", "server_cert", "\(secrets)/server.yaml", "resources: [ {\n")
            try step("key does not match", "server_cert", "\(secrets)/server.yaml",
                     certificate("c3", chain: "one/server.pem", key: "two/server.key"))
            out.append("/certs at the end: \(try Self.certs(proxy))")
            for name in ["sds.server_cert.update_attempt", "sds.server_cert.update_success", "sds.server_cert.update_rejected",
                         "sds.server_cert.update_failure", "sds.server_cert.version", "sds.server_cert.version_text",
                         "sds.server_cert.key_rotation_failed", "sds.server_cert.init_fetch_timeout",
                         "sds.upstream_ca.update_attempt", "sds.upstream_ca.update_success", "sds.upstream_ca.version_text",
                         "cluster.origin.client_ssl_socket_factory.ssl_context_update_by_sds", "cluster.origin.ssl.handshake",
                         "cluster.origin.ssl.fail_verify_error", "listener.127.0.0.1_\(port).ssl.handshake"] {
                out.append(try stat(name).replacingOccurrences(of: "_\(port).", with: "_<port>."))
            }
            out.append(try stat("listener.127.0.0.1_\(port).server_ssl_socket_factory.ssl_context_update_by_sds")
                .replacingOccurrences(of: "_\(port).", with: "_<port>."))
            return out
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "SDS rotation differs from Envoy 1.40")
        XCTAssertEqual(seen.ballast.count, 23)
        XCTAssertTrue(seen.ballast[0].hasSuffix("through the cluster 200"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast[2].hasSuffix("through the cluster 503"), "\(seen.ballast)")
        XCTAssertNotEqual(seen.ballast[0].components(separatedBy: " | ")[0], seen.ballast[2].components(separatedBy: " | ")[0], "the certificate rotated")
    }

    /// Envoy's key rotation: the certificate files a secret names are watched too. A chain moved
    /// in alone (its key no longer matches) fails, counted in key_rotation_failed once per named
    /// file in that directory; the key following it rotates the certificate without an SDS update.
    func testNamedFilesMovedInRotateAsEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let dir = NSTemporaryDirectory() + "ballast-sds-named-files-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for set in ["one", "two"] {
            let made = try runToCompletion(differentialRoot.appendingPathComponent("scripts/tls-test-certs.sh").path, ["\(dir)/\(set)"])
            guard made.status == 0 else { throw DifferentialError("tls-test-certs.sh: \(made.stderr)") }
        }
        let live = "\(dir)/live", secrets = "\(dir)/secrets", watched = "\(dir)/watched"
        for d in [live, secrets, watched] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        /// Copies `from` into the live directory under a temporary name, then moves it onto `name`.
        func moveIn(_ from: String, _ name: String) throws {
            try? FileManager.default.removeItem(atPath: "\(live)/incoming")
            try FileManager.default.copyItem(atPath: from, toPath: "\(live)/incoming")
            guard rename("\(live)/incoming", "\(live)/\(name)") == 0 else { throw DifferentialError("rename: errno \(errno)") }
        }
        let seen = try observeEnvoyAndBallast("sds-keys", config: { port, admin, _ in
            for name in ["server.pem", "server.key"] {
                try? FileManager.default.removeItem(atPath: "\(live)/\(name)")
                try? FileManager.default.copyItem(atPath: "\(dir)/one/\(name)", toPath: "\(live)/\(name)")
            }
            let secret = "resources:\n- {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret, name: server_cert, tls_certificate: {certificate_chain: {filename: \(live)/server.pem}, private_key: {filename: \(live)/server.key}}}\n"
            let ca = "resources:\n- {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret, name: upstream_ca, validation_context: {trusted_ca: {filename: \(dir)/one/ca.pem}}}\n"
            for (text, path) in [(secret, "\(secrets)/server.yaml"), (ca, "\(watched)/ca.yaml")] {
                do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch { XCTFail("\(path): \(error)") }
            }
            return Self.bootstrap(tls: port, plain: (try? freePort()) ?? 0, admin: admin, upstream: upstream.port, secrets: secrets, watched: watched)
        }, observe: { proxy, port in
            func served() throws -> String {
                try runToCompletion("/bin/sh", ["-c", "echo | openssl s_client -connect 127.0.0.1:\(port) -servername localhost 2>/dev/null | openssl x509 -noout -serial"]).stdout
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            func stat(_ name: String) throws -> String {
                let text = try proxy.adminGet("/stats").text
                return text.split(separator: "\n").first { $0.hasPrefix(name + ": ") }.map(String.init) ?? "\(name): (absent)"
            }
            func waitUntil(_ done: () throws -> Bool) throws {
                let deadline = Date().addingTimeInterval(5)
                while try !done() && Date() < deadline { usleep(20_000) }
                usleep(100_000)
            }
            let factory = "listener.127.0.0.1_\(port).server_ssl_socket_factory.ssl_context_update_by_sds"
            var out = ["start: \(try served())"]
            try moveIn("\(dir)/two/server.pem", "server.pem")
            try waitUntil { try stat("sds.server_cert.key_rotation_failed") != "sds.server_cert.key_rotation_failed: 0" }
            out.append("chain alone: \(try served())")
            let first = try served()
            try moveIn("\(dir)/two/server.key", "server.key")
            try waitUntil { try served() != first }
            out.append("key follows: \(try served())")
            for name in ["sds.server_cert.key_rotation_failed", "sds.server_cert.update_attempt", "sds.server_cert.update_success",
                         "sds.server_cert.update_rejected", factory] {
                out.append(try stat(name).replacingOccurrences(of: "_\(port).", with: "_<port>."))
            }
            return out
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "key rotation differs from Envoy 1.40")
        XCTAssertEqual(seen.ballast.count, 8)
        XCTAssertNotEqual(seen.ballast[0].dropFirst(7), seen.ballast[2].dropFirst(13), "the certificate rotated: \(seen.ballast)")
        // Two named files in the directory: two failed re-reads; one rotation on top of the start's delivery.
        XCTAssertEqual(Array(seen.ballast[3...]), ["sds.server_cert.key_rotation_failed: 2", "sds.server_cert.update_attempt: 1",
                                                   "sds.server_cert.update_success: 1", "sds.server_cert.update_rejected: 0",
                                                   "listener.127.0.0.1_<port>.server_ssl_socket_factory.ssl_context_update_by_sds: 2"])
    }

    /// The rows this test adds to README.md's feature table (FeatureTableTests), with its verdicts.
    static let tableRows: [(feature: String, verdict: String)] = [
        ("SDS from files (tls_certificate_sds_secret_configs, validation_context_sds_secret_config; path_config_source with and without watched_directory): rotation, a bad file keeps the last good secret, sds.<name>.* and ssl_context_update_by_sds, /certs", "same"),
        ("SDS key rotation: a certificate file a secret names moved into its directory (a chain alone fails: key_rotation_failed; the key following it rotates)", "same"),
    ]

    /// /certs essentials: per context (sorted), its CA's and certificate's path, serial and SANs.
    static func certs(_ proxy: ProxyUnderTest) throws -> String {
        let body = try proxy.adminGet("/certs").text
        guard let root = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              let list = root["certificates"] as? [[String: Any]] else { return "not JSON: \(body)" }
        func describe(_ items: Any?) -> String {
            ((items as? [[String: Any]]) ?? []).map { c in
                let sans = ((c["subject_alt_names"] as? [[String: Any]]) ?? []).map { $0.map { "\($0.key)=\($0.value)" }.joined() }
                // (days_until_expiration is left out: the test certificates live two days, and
                // Envoy's figure for them at start is 2 or 1 depending on a clock it caches.)
                return "\(c["path"] ?? "-") \(c["serial_number"] ?? "-") [\(sans.joined(separator: ","))] days \(c["days_until_expiration"] != nil)"
            }.joined(separator: "; ")
        }
        return list.map { "{ca: \(describe($0["ca_cert"])) chain: \(describe($0["cert_chain"]))}" }.sorted().joined(separator: " ")
    }

    static func bootstrap(tls: Int, plain: Int, admin: Int, upstream: Int, secrets: String, watched: String) -> String {
        func hcm(_ prefix: String, _ cluster: String) -> String {
            "{name: envoy.filters.network.http_connection_manager, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: \(prefix), route_config: {virtual_hosts: [{name: a, domains: [\"*\"], routes: [{match: {prefix: /}, route: {cluster: \(cluster)}}]}]}, http_filters: [{name: envoy.filters.http.router, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]}}"
        }
        return """
        node: {id: sds-test, cluster: sds-test}
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
        static_resources:
          listeners:
          - name: tls
            address: {socket_address: {address: 127.0.0.1, port_value: \(tls)}}
            filter_chains:
            - transport_socket:
                name: envoy.transport_sockets.tls
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
                  common_tls_context:
                    tls_certificate_sds_secret_configs:
                    - name: server_cert
                      sds_config: {path_config_source: {path: \(secrets)/server.yaml}, resource_api_version: V3}
              filters: [\(hcm("tls", "web"))]
          - name: plain
            address: {socket_address: {address: 127.0.0.1, port_value: \(plain)}}
            filter_chains: [{filters: [\(hcm("plain", "origin"))]}]
          clusters:
          \(staticCluster("web", ports: [upstream], extra: "connect_timeout: 1s"))
          - name: origin
            connect_timeout: 1s
            max_requests_per_connection: 1
            transport_socket:
              name: envoy.transport_sockets.tls
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
                sni: localhost
                common_tls_context:
                  validation_context_sds_secret_config:
                    name: upstream_ca
                    sds_config: {path_config_source: {path: \(watched)/ca.yaml, watched_directory: {path: \(watched)}}, resource_api_version: V3}
            load_assignment: {cluster_name: origin, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(tls)}}}}]}]}
        """
    }
}
