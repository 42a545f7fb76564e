import Foundation
import Glibc
import TestSupport
import XCTest

/// Filter-chain matching, tls_inspector and http_inspector against real Envoy 1.40: connections
/// with crafted ClientHellos (SNI, ALPN, split over receives and over TLS records), plain HTTP and
/// plain bytes go through listeners of tcp_proxy (and HTTP) chains; which chain served each is
/// read from the chains' own counters (`tcp.<prefix>.downstream_cx_total`), with the
/// inspectors' and the listener's counters.
final class FilterChainDifferentialTests: XCTestCase {
    /// The rows this test adds to README.md's feature table (FeatureTableTests): each compared
    /// with Envoy 1.40 and found the same.
    static let tableRows = [
        "tls_inspector: the chain chosen by server name (exact, wildcard, case), transport and ALPN order; ClientHellos split over receives and records; its counters",
        "filter_chain_match: an exact destination port never falls back to a chain without one; no match and no default chain: closed, no_filter_chain_match",
        "http_inspector: HTTP/1.1, HTTP/1.0, h2c preface and other bytes to their chains; source_type, source_ports, default_filter_chain",
        "listener_filters_timeout: closed (downstream_pre_cx_timeout), or served with continue_on_listener_filters_timeout",
        "TLS terminated by a chosen chain beside TLS passthrough and plain chains; %REQUESTED_SERVER_NAME% from tls_inspector",
        "TLS terminated by a tcp_proxy chain: plaintext upstream, TLS 1.2 and 1.3, an upload; bytes, log lines, ssl and tcp counters",
        "several http_connection_managers per listener (by server name with TLS, or by HTTP version): each connection's routes, head limits, server name, access log and counters; a shared stat_prefix adds up",
    ]

    /// Server names, ALPN and transport: exact name over wildcard over none, the longest
    /// wildcard, names before protocols, the first ALPN protocol a chain lists, plain bytes.
    func testChainsBySNIAndALPNAgreeWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let chains: [(String, String)] = [
            ("exact", "server_names: [a.example.com], transport_protocol: tls"),
            ("wild", "server_names: [\"*.example.com\"], transport_protocol: tls"),
            ("deeper", "server_names: [\"*.b.example.com\"]"),
            ("h2", "transport_protocol: tls, application_protocols: [h2]"),
            ("tls", "transport_protocol: tls"),
            ("plain", ""),
        ]
        let cases: [(String, [[UInt8]])] = [
            ("sni a.example.com", [ClientHello.bytes(sni: "a.example.com")]),
            ("sni A.Example.COM", [ClientHello.bytes(sni: "A.Example.COM")]),
            ("sni x.example.com", [ClientHello.bytes(sni: "x.example.com")]),
            ("sni y.b.example.com", [ClientHello.bytes(sni: "y.b.example.com")]),
            ("sni example.com", [ClientHello.bytes(sni: "example.com")]),
            ("sni other.org alpn h2,http/1.1", [ClientHello.bytes(sni: "other.org", alpn: ["h2", "http/1.1"])]),
            ("alpn http/1.1,h2", [ClientHello.bytes(sni: nil, alpn: ["http/1.1", "h2"])]),
            ("alpn http/1.1", [ClientHello.bytes(sni: nil, alpn: ["http/1.1"])]),
            ("sni a.example.com alpn h2", [ClientHello.bytes(sni: "a.example.com", alpn: ["h2"])]),
            ("split over two sends", split(ClientHello.bytes(sni: "a.example.com", alpn: ["h2"]), at: 40)),
            ("split over two records", [ClientHello.bytes(sni: "x.example.com", recordSize: 50)]),
            ("plain http", [Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)]),
            ("plain bytes", [Array("hello\r\n".utf8)]),
        ]
        let seen = try observeEnvoyAndBallast("fc-sni", config: { port, admin, _ in
            Self.bootstrap(port: port, admin: admin, upstream: upstream.port, listenerFilters: ["envoy.filters.listener.tls_inspector"], chains: chains)
        }, observe: { proxy, port in
            var out: [String] = []
            for (label, sends) in cases {
                let before = try Self.chainCounts(proxy, chains.map(\.0))
                let c = try Self.connect(port, sends)
                out.append("\(label): \(try Self.servedBy(proxy, chains.map(\.0), before: before))")
                c.shutdownBoth()
            }
            return out + (try Self.stats(proxy, prefixes: ["tls_inspector.", "listener.127.0.0.1_"]))
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "filter-chain choice differs from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("sni y.b.example.com: deeper"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("alpn http/1.1,h2: h2"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("plain bytes: plain"), "\(seen.ballast)")
    }

    /// Envoy does not go back: a connection whose destination port has chains of its own is
    /// served by one of them or by none (closed, `no_filter_chain_match`), never by a chain
    /// without a port; the default chain serves what no chain matches; source type and ports.
    func testNoBacktrackingAndDefaultChainAgreeWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let seen = try observeEnvoyAndBallast("fc-port", config: { port, admin, _ in
            Self.bootstrap(port: port, admin: admin, upstream: upstream.port, listenerFilters: ["envoy.filters.listener.tls_inspector"],
                           chains: [("porttls", "destination_port: \(port), transport_protocol: tls"),
                                    ("anyport", "")])
        }, observe: { proxy, port in
            var out: [String] = []
            for (label, sends) in [("tls", [ClientHello.bytes(sni: "a.example.com")]), ("plain", [Array("hello\r\n".utf8)])] {
                let before = try Self.chainCounts(proxy, ["porttls", "anyport"])
                let c = try Self.connect(port, sends)
                let served = try Self.servedBy(proxy, ["porttls", "anyport"], before: before)
                // A connection no chain took is closed by the proxy.
                out.append("\(label): \(served)\(served == "none" ? " " + c.closedWithin(seconds: 3) : "")")
                c.shutdownBoth()
            }
            return out + (try Self.stats(proxy, prefixes: ["listener.127.0.0.1_"]))
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "filter-chain fallback differs from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("plain: none closed"), "\(seen.ballast)")
    }

    /// http_inspector: HTTP/1.1 to the connection manager's chain, HTTP/1.0 to a tcp_proxy chain,
    /// anything else to the default chain; source_type and source_ports.
    func testHTTPInspectorAndDefaultChainAgreeWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let seen = try observeEnvoyAndBallast("fc-http", config: { port, admin, _ in
            Self.bootstrap(port: port, admin: admin, upstream: upstream.port, listenerFilters: ["envoy.filters.listener.http_inspector"],
                           chains: [("http10", "application_protocols: [http/1.0], source_type: SAME_IP_OR_LOOPBACK"),
                                    ("external", "application_protocols: [http/1.0], source_type: EXTERNAL, source_ports: [1]")],
                           http: "application_protocols: [http/1.1]", defaultChain: "fallback")
        }, observe: { proxy, port in
            var out: [String] = []
            let names = ["http10", "external", "fallback"]
            for (label, text) in [("http/1.1", "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"), ("http/1.0", "GET /zero HTTP/1.0\r\nHost: h\r\n\r\n"),
                                  ("not http", "hello there\r\n"), ("h2c preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")] {
                let before = try Self.chainCounts(proxy, names)
                let c = try RawClient(port: port)
                c.send(text)
                var status = ""
                if label == "http/1.1" { status = c.readResponse().map { " \($0.status)" } ?? " none" }
                out.append("\(label): \(try Self.servedBy(proxy, names, before: before))\(status)")
                c.shutdownBoth()
            }
            return out + (try Self.stats(proxy, prefixes: ["http_inspector.", "http.hcm.downstream_cx_total", "listener.127.0.0.1_"]))
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "http_inspector chain choice differs from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("http/1.1: none 200"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("http/1.0: http10"), "\(seen.ballast)")
    }

    /// Two connection managers chosen by http_inspector: HTTP/1.0 to one that accepts it, HTTP/1.1
    /// to one with a max_headers_count of 3 (one parser serves both: the limits are each
    /// connection's); keep-alive on each; each manager's own counters.
    func testConnectionManagerPerHTTPVersionAgreesWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        func manager(_ name: String, _ extra: String) -> String {
            """
                - filter_chain_match: {application_protocols: [\(name == "old" ? "http/1.0" : "http/1.1")]}
                  filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: \(name)
                      \(extra)
                      route_config: {virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: \(name)}}]}]}
                      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
            """
        }
        let seen = try observeEnvoyAndBallast("fc-versions", config: { port, admin, _ in
            """
            admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
            static_resources:
              listeners:
              - name: fc
                address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
                listener_filters: [{name: envoy.filters.listener.http_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector}}]
                filter_chains:
            \(manager("old", "http_protocol_options: {accept_http_10: true}"))
            \(manager("new", "common_http_protocol_options: {max_headers_count: 3}"))
              clusters:
              \(staticCluster("old", ports: [upstream.port], extra: "connect_timeout: 1s"))
              \(staticCluster("new", ports: [upstream.port], extra: "connect_timeout: 1s"))
            """
        }, observe: { proxy, port in
            var out: [String] = []
            let fields = "Host: h\r\nx-a: 1\r\nx-b: 2\r\nx-c: 3\r\nx-d: 4\r\n"
            for (label, requests) in [("http/1.0 five fields", ["GET /a HTTP/1.0\r\n\(fields)Connection: keep-alive\r\n\r\n", "GET /b HTTP/1.0\r\nHost: h\r\n\r\n"]),
                                      ("http/1.1 two fields", ["GET /c HTTP/1.1\r\nHost: h\r\nx-a: 1\r\n\r\n", "GET /d HTTP/1.1\r\nHost: h\r\n\r\n"]),
                                      ("http/1.1 five fields", ["GET /e HTTP/1.1\r\n\(fields)\r\n"])] {
                let c = try RawClient(port: port)
                var answers: [String] = []
                for request in requests {
                    c.send(request)
                    guard let r = c.readResponse() else { answers.append("none"); break }
                    answers.append("\(r.status)\(r.closed ? " closed" : "")")
                }
                out.append("\(label): \(answers.joined(separator: ", "))")
                c.shutdownBoth()
            }
            return out + (try Self.stats(proxy, prefixes: ["http.old.downstream_cx_total", "http.old.downstream_rq_total", "http.old.downstream_rq_2xx",
                                                         "http.new.downstream_cx_total", "http.new.downstream_rq_total", "http.new.downstream_rq_2xx",
                                                         "http.new.downstream_rq_4xx", "http_inspector.", "cluster.old.upstream_rq_total",
                                                         "cluster.new.upstream_rq_total"]))
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "connection managers chosen by HTTP version differ from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("http/1.1 five fields: 431"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("http.old.downstream_rq_total: 2"), "\(seen.ballast)")
    }

    /// A client that sends nothing: closed at listener_filters_timeout, or (continue) served by
    /// the chain that matches without inspection.
    func testListenerFiltersTimeoutAgreesWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        for keepGoing in [false, true] {
            let seen = try observeEnvoyAndBallast("fc-timeout", config: { port, admin, _ in
                Self.bootstrap(port: port, admin: admin, upstream: upstream.port, listenerFilters: ["envoy.filters.listener.tls_inspector"],
                               chains: [("tls", "transport_protocol: tls"), ("raw", "transport_protocol: raw_buffer")],
                               listenerExtra: "listener_filters_timeout: 0.3s\n    continue_on_listener_filters_timeout: \(keepGoing)")
            }, observe: { proxy, port in
                let before = try Self.chainCounts(proxy, ["tls", "raw"])
                let c = try RawClient(port: port)
                // Nothing sent until the timeout passed; then a request, which only a served
                // connection answers.
                usleep(800_000)
                c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                let answered = c.readResponse()?.status == 200
                return ["answered: \(answered)", "served by: \(try Self.servedBy(proxy, ["tls", "raw"], before: before))"]
                    + (try Self.stats(proxy, prefixes: ["listener.127.0.0.1_", "tls_inspector."]))
            })
            XCTAssertEqual(seen.ballast, seen.envoy, "listener_filters_timeout (continue: \(keepGoing)) differs from Envoy 1.40")
            XCTAssertTrue(seen.ballast.contains("answered: \(keepGoing)"), "\(seen.ballast)")
        }
    }

    // MARK: - helpers

    private func split(_ bytes: [UInt8], at: Int) -> [[UInt8]] { [Array(bytes[..<at]), Array(bytes[at...])] }

    /// Sends each piece (a short pause between them, so they arrive apart) on a new connection,
    /// which stays open: a client that ends its stream before the listener filters ran is reset by
    /// Envoy (docs/filter-chains.md, "Differences from Envoy").
    static func connect(_ port: Int, _ sends: [[UInt8]]) throws -> RawClient {
        let c = try RawClient(port: port)
        for (i, s) in sends.enumerated() {
            if i > 0 { usleep(100_000) }
            c.send(s)
        }
        return c
    }

    /// `tcp.<chain>.downstream_cx_total` of each chain.
    static func chainCounts(_ proxy: ProxyUnderTest, _ names: [String]) throws -> [String: Int] {
        let lines = try proxy.adminGet("/stats").text.split(separator: "\n")
        var counts: [String: Int] = [:]
        for name in names {
            let key = "tcp.\(name).downstream_cx_total: "
            counts[name] = lines.first { $0.hasPrefix(key) }.flatMap { Int($0.dropFirst(key.count)) } ?? 0
        }
        return counts
    }

    /// The chain whose count grew since `before` (waiting for the count: a closed connection's
    /// session may end a moment after the client saw the end), or "none".
    static func servedBy(_ proxy: ProxyUnderTest, _ names: [String], before: [String: Int]) throws -> String {
        let deadline = Date().addingTimeInterval(1)
        repeat {
            let now = try chainCounts(proxy, names)
            let grown = names.filter { now[$0]! > before[$0]! }
            if !grown.isEmpty { return grown.joined(separator: ",") }
            usleep(20_000)
        } while Date() < deadline
        return "none"
    }

    /// The counters under `prefixes` (the listener's address-rooted ones with the port removed).
    static func stats(_ proxy: ProxyUnderTest, prefixes: [String]) throws -> [String] {
        let lines = try proxy.adminGet("/stats").text.split(separator: "\n").map(String.init)
        var out: [String] = []
        for line in lines where prefixes.contains(where: { line.hasPrefix($0) }) {
            // tls_inspector.bytes_processed: a histogram Ballast does not keep (docs/filter-chains.md).
            guard !line.contains(".worker_"), !line.hasPrefix("tls_inspector.bytes_processed") else { continue }
            var l = line
            if l.hasPrefix("listener.127.0.0.1_") {
                // listener.127.0.0.1_<port>.<name>: the port differs between the two proxies.
                let rest = l.dropFirst("listener.127.0.0.1_".count)
                guard let dot = rest.firstIndex(of: ".") else { continue }
                let name = String(rest[rest.index(after: dot)...])
                guard ["downstream_cx_total", "no_filter_chain_match", "downstream_pre_cx_timeout", "downstream_pre_cx_active",
                       "ssl.handshake", "ssl.connection_error", "ssl.no_certificate", "ssl.session_reused"]
                    .contains(where: { name.hasPrefix($0 + ":") }) else { continue }
                l = "listener." + name
            }
            out.append(l)
        }
        return out.sorted()
    }

    /// One listener with `listenerFilters`, one tcp_proxy chain per `chains` entry (name =
    /// stat_prefix = cluster), an optional http_connection_manager chain (`http`: its match) and
    /// an optional default chain (a tcp_proxy named `defaultChain`).
    static func bootstrap(port: Int, admin: Int, upstream: Int, listenerFilters: [String], chains: [(String, String)],
                          http: String? = nil, defaultChain: String? = nil, listenerExtra: String = "") -> String {
        func tcpProxy(_ name: String) -> String {
            "{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: \(name), cluster: \(name)}}"
        }
        var chainLines = chains.map { name, match in
            "    - {\(match.isEmpty ? "" : "filter_chain_match: {\(match)}, ")filters: [\(tcpProxy(name))]}"
        }
        if let http {
            chainLines.append("""
                - filter_chain_match: {\(http)}
                  filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: hcm
                      route_config: {virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: hcm}}]}]}
                      http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
            """)
        }
        let filters = listenerFilters.map { name -> String in
            let type = name.hasSuffix("tls_inspector") ? "tls_inspector.v3.TlsInspector" : "http_inspector.v3.HttpInspector"
            return "{name: \(name), typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.\(type)}}"
        }
        let clusterNames = chains.map(\.0) + (http == nil ? [] : ["hcm"]) + (defaultChain.map { [$0] } ?? [])
        return """
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
        static_resources:
          listeners:
          - name: fc
            address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
            listener_filters: [\(filters.joined(separator: ", "))]
            \(listenerExtra)
            filter_chains:
        \(chainLines.joined(separator: "\n"))
            \(defaultChain.map { "default_filter_chain: {filters: [\(tcpProxy($0))]}" } ?? "")
          clusters:
        \(clusterNames.map { "  " + staticCluster($0, ports: [upstream], extra: "connect_timeout: 1s") }.joined(separator: "\n"))
        """
    }
}
