import HTTP1
@testable import Proxy
import XCTest

/// Several http_connection_managers on one listener: each chain's own plan, the chain and TLS
/// bookkeeping the workers read, the parser limits, and the one refusal (two Zipkin collectors).
final class ConnectionManagersPlanTests: XCTestCase {
    /// A listener with http_inspector and one connection manager per HTTP version (`extra[i]`:
    /// fields of manager i), beside a tcp_proxy default chain.
    func yaml(_ extra: [String]) -> String {
        func manager(_ i: Int, _ alpn: String) -> String {
            """
                - filter_chain_match: { application_protocols: [\(alpn)] }
                  filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: m\(i)
                      \(extra[i])
                      route_config: { virtual_hosts: [ { name: v, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: c } } ] } ] }
                      http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
            """
        }
        return """
        static_resources:
          listeners:
          - name: l
            address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
            listener_filters: [ { name: envoy.filters.listener.http_inspector, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector } } ]
            filter_chains:
        \(manager(0, "http/1.0"))
        \(manager(1, "http/1.1"))
            default_filter_chain:
              filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c } } ]
          clusters:
          - { name: c, type: STATIC, load_assignment: { cluster_name: c, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } } ] } ] } }
          - { name: z, type: STATIC, load_assignment: { cluster_name: z, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 2 } } } } ] } ] } }
        """
    }

    func compile(_ extra: [String]) throws -> DataPlane {
        try DataPlane.compile(try BootstrapLoader.load(yaml: yaml(extra)).bootstrap)
    }

    func testEachChainGetsItsOwnManager() throws {
        let l = try compile(["", "max_request_headers_kb: 2"]).listeners[0]
        XCTAssertEqual(l.chains, [.http(0), .http(1), .tcp(0)])
        XCTAssertEqual(l.httpPlans.count, 2)
        XCTAssertEqual(l.httpChains, [0, 1])
        XCTAssertEqual(l.httpTLS.count, 2)
        XCTAssertFalse(l.terminatesTLS)
        XCTAssertEqual(l.httpPlans.map(\.statPrefix), ["m0", "m1"])
        XCTAssertEqual(l.httpPlans.map(\.maxRequestHeaderBytes), [60 * 1024, 2 * 1024])
        XCTAssertTrue(l.headLimitsDiffer)
        XCTAssertFalse(try compile(["", ""]).listeners[0].headLimitsDiffer)
        // The per-worker counters: one block per manager.
        XCTAssertEqual(DataPathStats(connectionManagers: l.httpPlans.count).http.count, 2)
    }

    func testManagersTracingToDifferentCollectorsAreRefused() throws {
        func tracing(_ cluster: String) -> String {
            "tracing: { provider: { name: envoy.tracers.zipkin, typed_config: { \"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, collector_cluster: \(cluster), collector_endpoint: /api/v2/spans, collector_endpoint_version: HTTP_JSON } } }"
        }
        XCTAssertNoThrow(try compile([tracing("z"), tracing("z")]))
        XCTAssertNoThrow(try compile([tracing("z"), ""]))
        XCTAssertThrowsError(try compile([tracing("z"), tracing("c")])) { error in
            XCTAssertTrue("\(error)".contains("listener 'l': its http_connection_managers trace to different Zipkin collectors"), "\(error)")
        }
    }

    /// One parser per worker: sized for the largest max_headers_count, its limits set per head.
    func testParserLimitsFollowTheConnection() {
        var parser = RequestHeadParser(maxHeaderBytes: 1024, maxHeaders: 2, slotCapacity: 8)
        let head = Array("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n".utf8)
        head.withUnsafeBytes { XCTAssertEqual(parser.parse($0), .failure(HTTPParseError(.tooManyHeaders, status: 431))) }
        parser.setLimits(maxHeaderBytes: 1024, maxHeaders: 3)
        parser.reset()
        head.withUnsafeBytes { XCTAssertEqual(parser.parse($0), .complete(headLength: head.count)) }
        parser.setLimits(maxHeaderBytes: 20, maxHeaders: 100)
        XCTAssertEqual(parser.maxHeaders, 8, "capped at the slot table")
        parser.reset()
        head.withUnsafeBytes { XCTAssertEqual(parser.parse($0), .failure(HTTPParseError(.headTooLarge))) }
    }
}
