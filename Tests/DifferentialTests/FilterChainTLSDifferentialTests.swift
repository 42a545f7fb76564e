import Foundation
import Glibc
import TestSupport
import XCTest

/// TLS on chosen filter chains against real Envoy 1.40: a connection manager's chain terminating
/// TLS beside a passthrough chain, and a tcp_proxy chain terminating TLS; curl's answers, each
/// chain's access-log lines (with `%REQUESTED_SERVER_NAME%`) and the ssl and tcp counters.
final class FilterChainTLSDifferentialTests: XCTestCase {
    /// TLS terminated by the connection manager's chain (SNI localhost; its virtual host has
    /// require_tls, which TLS requests meet), passed through by a tcp_proxy chain (any other
    /// ClientHello), plain bytes to a third chain.
    func testTerminationBesidePassthroughAgreesWithEnvoy() throws {
        let f = try Fixture("fc-terminate")
        defer { f.remove() }
        let format = "%REQUESTED_SERVER_NAME% %DOWNSTREAM_TLS_VERSION% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %REQ(:PATH)%\\n"
        let seen = try observeEnvoyAndBallast("fc-terminate", envoyArgs: ["--file-flush-interval-msec", "10"], config: { port, admin, log in
            f.bootstrap(port: port, admin: admin, clusters: ["hcm", "passthrough", "plain"], chains: """
                - filter_chain_match: {server_names: [localhost], transport_protocol: tls}
                  \(f.tlsSocket)
                  filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: hcm
                      \(Fixture.fileLog(log, format))
                      route_config: {virtual_hosts: [{name: a, domains: ["*"], require_tls: ALL, routes: [{match: {prefix: "/"}, route: {cluster: hcm}}]}]}
                      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
                - filter_chain_match: {transport_protocol: tls}
                  filters: [\(Fixture.tcpProxy("passthrough", log: log, format: format))]
                - filters: [\(Fixture.tcpProxy("plain", log: log, format: format))]
            """)
        }, observe: { proxy, port in
            var out = try ["/one", "/two"].map { "curl \($0): \(try f.curl(port, $0))" }
            let names = ["passthrough", "plain"]
            let before = try FilterChainDifferentialTests.chainCounts(proxy, names)
            let passed = try FilterChainDifferentialTests.connect(port, [ClientHello.bytes(sni: "Other.Example", alpn: ["h2"])])
            out.append("hello other.example: \(try FilterChainDifferentialTests.servedBy(proxy, names, before: before))")
            passed.shutdownBoth()
            out.append("plain: \(try Fixture.plainRequest(port))")
            return out + Fixture.logLines(proxy, count: 4)
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "TLS termination beside passthrough differs from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("curl /one: upstream says hi 200"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("other.example - 0 passthrough -"), "\(seen.ballast)")
    }

    /// TLS terminated by a tcp_proxy chain (chosen by SNI): the upstream gets the plaintext.
    func testTLSTerminatedByTCPProxyAgreesWithEnvoy() throws {
        let f = try Fixture("fc-tcptls")
        defer { f.remove() }
        let format = "%REQUESTED_SERVER_NAME% %DOWNSTREAM_TLS_VERSION% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_CLUSTER%\\n"
        let seen = try observeEnvoyAndBallast("fc-tcptls", envoyArgs: ["--file-flush-interval-msec", "10"], config: { port, admin, log in
            f.bootstrap(port: port, admin: admin, clusters: ["offload", "plain"], chains: """
                - filter_chain_match: {server_names: [localhost]}
                  \(f.tlsSocket)
                  filters: [\(Fixture.tcpProxy("offload", log: log, format: format))]
                - filters: [\(Fixture.tcpProxy("plain", log: log, format: format))]
            """)
        }, observe: { proxy, port in
            var out: [String] = []
            for (path, extra) in [("/one", ["--tls-max", "1.2"]), ("/two", []), ("/three", ["--data-binary", String(repeating: "y", count: 30_000)])] {
                out.append("curl \(path): \(try f.curl(port, path, extra))")
            }
            out.append("plain: \(try Fixture.plainRequest(port))")
            return out + Fixture.logLines(proxy, count: 4)
                + (try FilterChainDifferentialTests.stats(proxy, prefixes: ["tcp.offload.downstream_cx_total", "tcp.offload.downstream_cx_rx_bytes_total",
                                                                            "tcp.offload.downstream_cx_tx_bytes_total", "tcp.plain.downstream_cx_total",
                                                                            "listener.127.0.0.1_"]))
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "TLS terminated by tcp_proxy differs from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("curl /two: upstream says hi 200"), "\(seen.ballast)")
    }

    /// Two connection managers on one listener (Istio's inbound shape: one per server name or
    /// port): TLS for `localhost` terminated by one, plain HTTP served by the other, each with its
    /// own routes, server name, response headers, request-head limit and access-log format; both
    /// under one stat_prefix, which Envoy's scope shares (the counters add up).
    func testTwoConnectionManagersOnOneListenerAgreeWithEnvoy() throws {
        let f = try Fixture("fc-hcms")
        defer { f.remove() }
        func manager(_ name: String, log: String, extra: String) -> String {
            let format = "\(name) %REQUESTED_SERVER_NAME% %DOWNSTREAM_TLS_VERSION% %RESPONSE_CODE% %ROUTE_NAME% %REQ(:PATH)%\\n"
            return """
            - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: edge
                      server_name: \(name)-edge
                      \(extra)
                      \(Fixture.fileLog(log, format))
                      route_config: {virtual_hosts: [{name: a, domains: ["*"], response_headers_to_add: [{header: {key: x-chain, value: \(name)}}],
                                     routes: [{name: direct-\(name), match: {prefix: "/direct"}, direct_response: {status: 202, body: {inline_string: "from \(name)"}}},
                                              {name: to-\(name), match: {prefix: "/"}, route: {cluster: \(name)}}]}]}
                      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
            """
        }
        let big = String(repeating: "b", count: 3000)
        let seen = try observeEnvoyAndBallast("fc-hcms", envoyArgs: ["--file-flush-interval-msec", "10"], config: { port, admin, log in
            f.bootstrap(port: port, admin: admin, clusters: ["secure", "plain"], chains: """
                - filter_chain_match: {server_names: [localhost], transport_protocol: tls}
                  \(f.tlsSocket)
                  filters:
                  \(manager("secure", log: log, extra: "max_request_headers_kb: 8"))
                - filters:
                  \(manager("plain", log: log, extra: "max_request_headers_kb: 2"))
            """)
        }, observe: { proxy, port in
            let headers = ["-w", " %{http_code} %header{server} %header{x-chain}"]
            var out = try ["/one", "/direct"].map { "curl \($0): \(try f.curl(port, $0, headers))" }
            out.append("curl big head: \(try f.curl(port, "/big", headers + ["-H", "x-big: \(big)"]))")
            for (label, path, extra) in [("plain", "/two", ""), ("plain direct", "/direct", ""), ("plain big head", "/big", "x-big: \(big)\r\n")] {
                let c = try RawClient(port: port)
                c.send("GET \(path) HTTP/1.1\r\nHost: h\r\n\(extra)\r\n")
                let r = c.readResponse()
                out.append("\(label): \(r.map { "\($0.status) \($0.text) \($0.header("server") ?? "-") \($0.header("x-chain") ?? "-")" } ?? "none")")
                c.shutdownBoth()
            }
            return out + Fixture.logLines(proxy, count: 6)
                + (try FilterChainDifferentialTests.stats(proxy, prefixes: ["http.edge.downstream_cx_total", "http.edge.downstream_cx_ssl_total",
                                                                            "http.edge.downstream_rq_total", "http.edge.downstream_rq_2xx",
                                                                            "http.edge.downstream_rq_4xx", "http.edge.rq_direct_response",
                                                                            "http.edge.downstream_rq_completed", "listener.127.0.0.1_"]))
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "two connection managers on one listener differ from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("curl /one: upstream says hi 200 secure-edge secure"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("plain direct: 202 from plain plain-edge plain"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("plain big head: 431 Request Header Fields Too Large plain-edge -"), "\(seen.ballast)")
    }

    /// The upstream, the test certificates and the bootstrap pieces both tests use.
    private final class Fixture {
        let upstream: RecordingUpstream
        let certs: String

        /// `label` names the certificate directory (apart from the pair's own, which it empties).
        init(_ label: String) throws {
            upstream = try RecordingUpstream()
            certs = NSTemporaryDirectory() + "ballast-\(label)-certs-\(getpid())"
            let made = try runToCompletion(differentialRoot.appendingPathComponent("scripts/tls-test-certs.sh").path, [certs])
            guard made.status == 0 else { throw DifferentialError("tls-test-certs.sh: \(made.stderr)") }
        }

        func remove() {
            upstream.stop()
            try? FileManager.default.removeItem(atPath: certs)
        }

        /// A chain's `transport_socket` terminating TLS with the test certificate.
        var tlsSocket: String {
            "transport_socket: {name: envoy.transport_sockets.tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {tls_certificates: [{certificate_chain: {filename: \(certs)/server.pem}, private_key: {filename: \(certs)/server.key}}]}}}"
        }

        static func fileLog(_ path: String, _ format: String) -> String {
            "access_log: [{name: envoy.access_loggers.file, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: \(path), log_format: {text_format_source: {inline_string: \"\(format)\"}}}}]"
        }

        static func tcpProxy(_ name: String, log: String, format: String) -> String {
            "{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: \(name), cluster: \(name), \(fileLog(log, format))}}"
        }

        /// One listener with tls_inspector and `chains` (YAML list items), and one cluster of the
        /// upstream per name.
        func bootstrap(port: Int, admin: Int, clusters: [String], chains: String) -> String {
            """
            admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
            static_resources:
              listeners:
              - name: fc
                address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
                listener_filters: [{name: envoy.filters.listener.tls_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]
                filter_chains:
            \(chains)
              clusters:
            \(clusters.map { "  " + staticCluster($0, ports: [upstream.port], extra: "connect_timeout: 1s") }.joined(separator: "\n"))
            """
        }

        /// curl over TLS to `localhost` (the SNI the chains match), the body and status it printed.
        func curl(_ port: Int, _ path: String, _ extra: [String] = []) throws -> String {
            try runToCompletion("/usr/bin/curl", ["-s", "--max-time", "10", "--http1.1", "--cacert", "\(certs)/ca.pem", "-w", " %{http_code}",
                                                  "--resolve", "localhost:\(port):127.0.0.1"] + extra + ["https://localhost:\(port)\(path)"]).stdout
        }

        /// A plain GET on a new connection: the status, or "none".
        static func plainRequest(_ port: Int) throws -> String {
            let c = try FilterChainDifferentialTests.connect(port, [Array("GET /plain HTTP/1.1\r\nHost: h\r\n\r\n".utf8)])
            defer { c.shutdownBoth() }
            return c.readResponse().map { "\($0.status)" } ?? "none"
        }

        /// The access-log lines, sorted, once `count` are there (tcp_proxy sessions log when they
        /// close) or after 3 s.
        static func logLines(_ proxy: ProxyUnderTest, count: Int) -> [String] {
            var lines: [String] = []
            let deadline = Date().addingTimeInterval(3)
            while lines.count < count && Date() < deadline {
                lines = proxy.logLines(after: 0) { _ in true }
                usleep(20_000)
            }
            return lines.sorted()
        }
    }
}
