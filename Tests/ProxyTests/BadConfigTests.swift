@testable import Proxy
import XCTest

/// Each bad config gives exactly the expected errors, each naming its YAML path.
final class BadConfigTests: XCTestCase {
    struct Case {
        let name: String
        let yaml: String
        let errors: [String]
    }

    static let cluster = "static_resources.clusters[0]"
    static let endpoint = "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address"
    static let route = "\(hcmPath).route_config.virtual_hosts[0].routes[0]"

    func testTable() {
        let cases: [Case] = [
            Case(name: "misspelt field",
                 yaml: edited([("lb_policy: ROUND_ROBIN", "lb_polcy: ROUND_ROBIN")]),
                 errors: ["\(Self.cluster).lb_polcy: unknown field; did you mean lb_policy?"]),
            Case(name: "unknown field, nothing close",
                 yaml: edited([("lb_policy: ROUND_ROBIN", "lb_policy: ROUND_ROBIN\n    colour: blue")]),
                 errors: ["\(Self.cluster).colour: unknown field"]),
            Case(name: "camelCase field",
                 yaml: edited([("connect_timeout:", "connectTimeout:")]),
                 errors: ["\(Self.cluster).connectTimeout: unknown field; did you mean connect_timeout?"]),
            Case(name: "Envoy field Ballast does not implement",
                 yaml: edited([("lb_policy: ROUND_ROBIN", "lb_policy: ROUND_ROBIN\n    outlier_detection: {detect_degraded_hosts: true}")]),
                 errors: ["\(Self.cluster).outlier_detection.detect_degraded_hosts: not supported by ballast"]),
            Case(name: "wrong type: word for a port",
                 yaml: edited([("port_value: 8080", "port_value: eighty")]),
                 errors: ["\(Self.endpoint).port_value: expected an integer, got 'eighty'"]),
            Case(name: "wrong type: mapping for a string",
                 yaml: edited([("stat_prefix: ingress_http", "stat_prefix: { a: b }")]),
                 errors: ["\(hcmPath).stat_prefix: expected a string, got a mapping"]),
            Case(name: "wrong type: scalar for a list",
                 yaml: edited([("domains: [\"*\"]", "domains: \"*\"")]),
                 errors: ["\(hcmPath).route_config.virtual_hosts[0].domains: expected a list, got '*'"]),
            Case(name: "wrong type: bool",
                 yaml: edited([("    filter_chains:", "    enable_reuse_port: sometimes\n    filter_chains:")]),
                 errors: ["static_resources.listeners[0].enable_reuse_port: expected true or false, got 'sometimes'"]),
            Case(name: "listener port out of range",
                 yaml: edited([("port_value: 10000", "port_value: 65536")]),
                 errors: ["static_resources.listeners[0].address.socket_address.port_value: 65536 is out of range 0...65535"]),
            Case(name: "upstream port 0",
                 yaml: edited([("port_value: 8080", "port_value: 0")]),
                 errors: ["\(Self.endpoint).port_value: 0 is out of range 1...65535"]),
            Case(name: "duration in milliseconds",
                 yaml: edited([("connect_timeout: 0.25s", "connect_timeout: 250ms")]),
                 errors: ["\(Self.cluster).connect_timeout: expected a duration in seconds such as 0.25s (Envoy durations use only the unit 's', not 'ms'), got '250ms'"]),
            Case(name: "zero connect timeout",
                 yaml: edited([("connect_timeout: 0.25s", "connect_timeout: 0s")]),
                 errors: ["\(Self.cluster).connect_timeout: must be greater than 0s"]),
            Case(name: "route to an unknown cluster",
                 yaml: edited([("route: { cluster: some_service,", "route: { cluster: other_service,")]),
                 errors: ["\(Self.route).route.cluster: unknown cluster 'other_service'"]),
            Case(name: "route to a misspelt cluster",
                 yaml: edited([("route: { cluster: some_service,", "route: { cluster: some_servce,")]),
                 errors: ["\(Self.route).route.cluster: unknown cluster 'some_servce'; did you mean some_service?"]),
            Case(name: "router not last",
                 yaml: edited([("v3.Router", "v3.Router\n          - name: envoy.filters.http.lua")]),
                 errors: [
                    "\(hcmPath).http_filters[0].name: envoy.filters.http.router must be the last HTTP filter (it is 1 of 2)",
                    "\(hcmPath).http_filters[1].name: HTTP filter 'envoy.filters.http.lua' is not supported by ballast (ballast implements envoy.filters.http.router, ballast.filters.http.worker_cost, envoy.filters.http.local_ratelimit, envoy.filters.http.fault, envoy.filters.http.cors, envoy.filters.http.csrf, envoy.filters.http.rbac, envoy.filters.http.health_check, envoy.filters.http.buffer, envoy.filters.http.compressor, envoy.filters.http.decompressor, envoy.filters.http.cache, envoy.filters.http.ext_authz)",
                 ]),
            Case(name: "no router",
                 yaml: edited([("          http_filters:\n          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                                "          http_filters: []")]),
                 errors: ["\(hcmPath).http_filters: no HTTP filters: Envoy accepts this and leaves every request unanswered (no router); add envoy.filters.http.router"]),
            Case(name: "router twice",
                 yaml: edited([("v3.Router", "v3.Router\n          - name: envoy.router")]),
                 errors: ["\(hcmPath).http_filters[0].name: envoy.filters.http.router must be the last HTTP filter (it is 1 of 2)",
                          "\(hcmPath).http_filters[1].name: envoy.filters.http.router appears twice (first at \(hcmPath).http_filters[0].name); it must be the last HTTP filter, once"]),
            Case(name: "listener without filter chains",
                 yaml: edited([("    filter_chains:\n    - filters:", "    filter_chains: []\n    unused:\n    - filters:")]),
                 errors: [
                    "static_resources.listeners[0].unused: unknown field",
                    "static_resources.listeners[0].filter_chains: a listener needs at least one filter chain",
                 ].reversed()),
            Case(name: "duplicate listener names and a port collision",
                 yaml: edited([("  clusters:\n",
                                "  - name: listener_0\n"
                                + "    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }\n"
                                + "    filter_chains:\n"
                                + "    - filters:\n"
                                + "      - name: envoy.filters.network.tcp_proxy\n"
                                + "        typed_config:\n"
                                + "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
                                + "          stat_prefix: tcp\n"
                                + "          cluster: some_service\n"
                                + "  clusters:\n")]),
                 errors: [
                    "static_resources.listeners[1].name: duplicate listener name 'listener_0' (first at static_resources.listeners[0].name)",
                    "static_resources.listeners[1].address: port 10000 on 127.0.0.1 collides with listener 'listener_0' on 0.0.0.0:10000 (static_resources.listeners[0].address)",
                 ]),
            Case(name: "listener on the admin port",
                 yaml: edited([("port_value: 10000", "port_value: 9901")]),
                 errors: ["static_resources.listeners[0].address: port 9901 on 0.0.0.0 collides with admin on 127.0.0.1:9901 (admin.address)"]),
            Case(name: "duplicate cluster names",
                 yaml: baseConfig + "  - name: some_service\n    load_assignment: { cluster_name: some_service, endpoints: [] }\n",
                 errors: ["static_resources.clusters[1].name: duplicate cluster name 'some_service' (first at static_resources.clusters[0].name)"]),
            Case(name: "@type does not match the filter name",
                 yaml: edited([("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy")]),
                 errors: ["\(hcmPath).@type: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy' does not match network filter envoy.filters.network.http_connection_manager; expected type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"]),
            Case(name: "typed_config without @type",
                 yaml: edited([("          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n", "")]),
                 errors: ["\(hcmPath).@type: required field missing"]),
            Case(name: "misspelt filter name (no @type to go by)",
                 yaml: edited([("          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                                "          - name: envoy.filters.http.routr")]),
                 errors: ["\(hcmPath).http_filters[0].name: unknown HTTP filter 'envoy.filters.http.routr'; did you mean envoy.filters.http.router?"]),
            Case(name: "unknown filter name, nothing close",
                 yaml: edited([("          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                                "          - name: my.filter")]),
                 errors: ["\(hcmPath).http_filters[0].name: unknown HTTP filter 'my.filter' (ballast implements envoy.filters.http.router, ballast.filters.http.worker_cost, envoy.filters.http.local_ratelimit, envoy.filters.http.fault, envoy.filters.http.cors, envoy.filters.http.csrf, envoy.filters.http.rbac, envoy.filters.http.health_check, envoy.filters.http.buffer, envoy.filters.http.compressor, envoy.filters.http.decompressor, envoy.filters.http.cache, envoy.filters.http.ext_authz)"]),
            Case(name: "cache: another storage",
                 yaml: edited([("          http_filters:\n", "          http_filters:\n          - { name: envoy.filters.http.cache, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.http.cache.file_system_http_cache.v3.FileSystemHttpCacheConfig } } }\n")]),
                 errors: ["\(hcmPath).http_filters[0].typed_config.typed_config.@type: 'type.googleapis.com/envoy.extensions.http.cache.file_system_http_cache.v3.FileSystemHttpCacheConfig': this cache storage is not supported by ballast (ballast implements type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig)"]),
            Case(name: "cache: key_creator_params, a negative max_body_bytes, no storage",
                 yaml: edited([("          http_filters:\n", "          http_filters:\n          - { name: envoy.filters.http.cache, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig, key_creator_params: {}, max_body_bytes: -1 } }\n")]),
                 errors: ["\(hcmPath).http_filters[0].typed_config.typed_config: required field missing (the cache storage; required unless disabled)",
                          "\(hcmPath).http_filters[0].typed_config.key_creator_params: not supported by ballast",
                          "\(hcmPath).http_filters[0].typed_config.max_body_bytes: -1 is out of range 0...4294967295"]),
            Case(name: "both config and typed_config",
                 yaml: edited([("        typed_config:\n", "        config: {}\n        typed_config:\n")]),
                 errors: ["static_resources.listeners[0].filter_chains[0].filters[0].config: set either typed_config or the deprecated v2 config, not both"]),
            Case(name: "hostname in a STATIC cluster",
                 yaml: edited([("address: 127.0.0.1, port_value: 8080", "address: backend.local, port_value: 8080")]),
                 errors: ["\(Self.endpoint).address: expected a numeric IPv4 or IPv6 address, got 'backend.local' (hostnames are allowed only in STRICT_DNS and LOGICAL_DNS clusters)"]),
            Case(name: "hostname on a listener",
                 yaml: edited([("address: 0.0.0.0, port_value: 10000", "address: localhost, port_value: 10000")]),
                 errors: ["static_resources.listeners[0].address.socket_address.address: expected a numeric IPv4 or IPv6 address, got 'localhost' (hostnames are allowed only in STRICT_DNS and LOGICAL_DNS clusters)"]),
            Case(name: "IPv6 in brackets",
                 yaml: edited([("address: 0.0.0.0, port_value: 10000", "address: \"[::1]\", port_value: 10000")]),
                 errors: ["static_resources.listeners[0].address.socket_address.address: expected an IPv6 address without brackets, got '[::1]'"]),
            Case(name: "bad IPv4",
                 yaml: edited([("address: 127.0.0.1, port_value: 8080", "address: 127.0.0.300, port_value: 8080")]),
                 errors: ["\(Self.endpoint).address: expected a numeric IPv4 or IPv6 address, got '127.0.0.300'"]),
            Case(name: "MAGLEV is rejected clearly",
                 yaml: edited([("lb_policy: ROUND_ROBIN", "lb_policy: MAGLEV")]),
                 errors: ["\(Self.cluster).lb_policy: MAGLEV is not supported by ballast (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, CLUSTER_PROVIDED)"]),
            Case(name: "misspelt enum value",
                 yaml: edited([("lb_policy: ROUND_ROBIN", "lb_policy: ROUND_ROBN")]),
                 errors: ["\(Self.cluster).lb_policy: unknown value 'ROUND_ROBN' (expected one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, CLUSTER_PROVIDED); did you mean ROUND_ROBIN?"]),
            Case(name: "EDS cluster without eds_cluster_config, with load_assignment",
                 yaml: edited([("type: STATIC", "type: EDS")]),
                 errors: ["\(Self.cluster).eds_cluster_config: required field missing",
                          "\(Self.cluster).load_assignment: an EDS cluster takes its endpoints from eds_cluster_config.eds_config, not from load_assignment"]),
            Case(name: "EDS over gRPC",
                 yaml: edited([("    type: STATIC\n", "    type: EDS\n    eds_cluster_config: {eds_config: {api_config_source: {api_type: GRPC}}}\n"),
                               ("    load_assignment:", "    load_assignmnt:")]),
                 errors: ["\(Self.cluster).eds_cluster_config.eds_config.api_config_source: not supported by ballast",
                          "\(Self.cluster).load_assignmnt: unknown field; did you mean load_assignment?"]),
            Case(name: "eds_cluster_config on a STATIC cluster",
                 yaml: edited([("    type: STATIC\n", "    type: STATIC\n    eds_cluster_config: {service_name: x}\n")]),
                 errors: ["\(Self.cluster).eds_cluster_config: used only by a cluster of type EDS (this one is STATIC)"]),
            Case(name: "HTTP/2 codec",
                 yaml: edited([("codec_type: AUTO", "codec_type: HTTP2")]),
                 errors: ["\(hcmPath).codec_type: HTTP2 is not supported by ballast (supported: AUTO, HTTP1)"]),
            Case(name: "missing stat_prefix",
                 yaml: edited([("          stat_prefix: ingress_http\n", "")]),
                 errors: ["\(hcmPath).stat_prefix: required field missing"]),
            Case(name: "missing cluster name",
                 yaml: edited([("  - name: some_service\n", "  - type: STATIC\n")]).replacingOccurrences(of: "    type: STATIC\n    lb_policy", with: "    lb_policy"),
                 errors: ["\(Self.route).route.cluster: unknown cluster 'some_service'", "\(Self.cluster).name: required field missing"]),
            Case(name: "rds instead of route_config",
                 yaml: edited([("          route_config:\n", "          rds: {}\n          route_confg:\n")]),
                 errors: ["\(hcmPath).rds.route_config_name: required field missing", "\(hcmPath).rds.config_source: required field missing",
                          "\(hcmPath).route_confg: unknown field; did you mean route_config?"]),
            Case(name: "rds over gRPC",
                 yaml: edited([("          route_config:\n", "          rds: {route_config_name: r, config_source: {ads: {}}}\n          route_confg:\n")]),
                 errors: ["\(hcmPath).rds.config_source.ads: not supported by ballast", "\(hcmPath).route_confg: unknown field; did you mean route_config?"]),
            Case(name: "scoped_routes",
                 yaml: edited([("          route_config:\n", "          scoped_routes: {}\n          route_confg:\n")]),
                 errors: ["\(hcmPath).scoped_routes: not supported by ballast", "\(hcmPath).route_confg: unknown field; did you mean route_config?"]),
            Case(name: "ballast_balance: misspelt strategy",
                 yaml: edited([("    filter_chains:", "    ballast_balance: { strategy: least-loded }\n    filter_chains:")]),
                 errors: ["static_resources.listeners[0].ballast_balance.strategy: unknown value 'least-loded' (expected one of reuseport, shared, dispatch, least-loaded, p2c); did you mean least-loaded?"]),
            Case(name: "ballast_balance: metric on reuseport",
                 yaml: edited([("    filter_chains:", "    ballast_balance: { strategy: reuseport, metric: requests }\n    filter_chains:")]),
                 errors: ["static_resources.listeners[0].ballast_balance.metric: strategy reuseport takes no metric (only least-loaded and p2c do)"]),
            Case(name: "ballast_balance: reuseport without SO_REUSEPORT",
                 yaml: edited([("    filter_chains:", "    enable_reuse_port: false\n    ballast_balance: { strategy: reuseport }\n    filter_chains:")]),
                 errors: ["static_resources.listeners[0].ballast_balance: strategy reuseport needs SO_REUSEPORT, but enable_reuse_port is false"]),
            Case(name: "retry condition misspelt",
                 yaml: edited([("timeout: 1.5s }", "timeout: 1.5s, retry_policy: { retry_on: \"5xx,connect-failur\" } }")]),
                 errors: ["\(Self.route).route.retry_policy.retry_on: unknown retry condition 'connect-failur'; did you mean connect-failure?"]),
            Case(name: "mirror to an unknown cluster",
                 yaml: edited([("timeout: 1.5s }", "timeout: 1.5s, request_mirror_policies: [ { cluster: shadw } ] }")]),
                 errors: ["\(Self.route).route.request_mirror_policies[0].cluster: unknown cluster 'shadw'"]),
            Case(name: "mirror cluster_header not a header name",
                 yaml: edited([("timeout: 1.5s }", "timeout: 1.5s, request_mirror_policies: [ { cluster_header: \"x mirror\" } ] }")]),
                 errors: ["\(Self.route).route.request_mirror_policies[0].cluster_header: 'x mirror' is not a valid header name"]),
            Case(name: "mirror trace_sampled (no tracing: not applied, refused)",
                 yaml: edited([("timeout: 1.5s }", "timeout: 1.5s, request_mirror_policies: [ { cluster: some_service, trace_sampled: false } ] }")]),
                 errors: ["\(Self.route).route.request_mirror_policies[0].trace_sampled: not supported by ballast"]),
            Case(name: "mirror without a cluster",
                 yaml: edited([("timeout: 1.5s }", "timeout: 1.5s, request_mirror_policies: [ { disable_shadow_host_suffix_append: true } ] }")]),
                 errors: ["\(Self.route).route.request_mirror_policies[0]: needs one of cluster, cluster_header"]),
            Case(name: "mirror fraction without default_value",
                 yaml: edited([("timeout: 1.5s }", "timeout: 1.5s, request_mirror_policies: [ { cluster: some_service, runtime_fraction: { runtime_key: k } } ] }")]),
                 errors: ["\(Self.route).route.request_mirror_policies[0].runtime_fraction.default_value: required field missing"]),
            Case(name: "direct response status out of range",
                 yaml: edited([("route: { cluster: some_service, timeout: 1.5s }", "direct_response: { status: 700 }")]),
                 errors: ["\(Self.route).direct_response.status: 700 is out of range 100...599"]),
            Case(name: "route with both route and direct_response",
                 yaml: edited([("route: { cluster: some_service, timeout: 1.5s }", "route: { cluster: some_service }\n                direct_response: { status: 200 }")]),
                 errors: ["\(Self.route): set only one of route, direct_response"]),
            Case(name: "bad wildcard domain",
                 yaml: edited([("domains: [\"*\"]", "domains: [\"a.*.com\"]")]),
                 errors: ["\(hcmPath).route_config.virtual_hosts[0].domains[0]: 'a.*.com': a wildcard '*' may appear only once, as the whole domain, its first or its last character"]),
            Case(name: "unknown access-log operator",
                 yaml: edited([("          http_filters:",
                                "          access_log:\n"
                                + "          - name: envoy.access_loggers.stdout\n"
                                + "            typed_config:\n"
                                + "              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n"
                                + "              log_format: { text_format: \"%START_TIME% %RESPONSE_FLAG%\\n\" }\n"
                                + "          http_filters:")]),
                 errors: ["\(hcmPath).access_log[0].typed_config.log_format.text_format: unknown command operator %RESPONSE_FLAG%; did you mean %RESPONSE_FLAGS%?"]),
            Case(name: "circuit breaker negative",
                 yaml: edited([("    lb_policy: ROUND_ROBIN\n", "    lb_policy: ROUND_ROBIN\n    circuit_breakers: { thresholds: [ { max_pending_requests: -1 } ] }\n")]),
                 errors: ["\(Self.cluster).circuit_breakers.thresholds[0].max_pending_requests: -1 is out of range 0...4294967295"]),
            Case(name: "LOGICAL_DNS with two endpoints",
                 yaml: edited([("type: STATIC", "type: LOGICAL_DNS"),
                               ("socket_address: { address: 127.0.0.1, port_value: 8080 }",
                                "socket_address: { address: a.example, port_value: 8080 }\n"
                                + "        - endpoint: { address: { socket_address: { address: b.example, port_value: 8080 } } }")]),
                 errors: ["\(Self.cluster).load_assignment: a LOGICAL_DNS cluster takes exactly one endpoint, got 2"]),
            Case(name: "UDP on a cluster endpoint",
                 yaml: edited([("port_value: 8080 }", "port_value: 8080, protocol: UDP }")]),
                 errors: ["\(Self.endpoint).protocol: UDP is supported by ballast only on a listener with the envoy.filters.udp_listener.udp_proxy listener filter"]),
            Case(name: "udp_proxy field Ballast does not implement",
                 yaml: edited([("  clusters:\n", "  - name: udp\n    address: { socket_address: { protocol: UDP, address: 127.0.0.1, port_value: 10001 } }\n    listener_filters: [ { name: envoy.filters.udp_listener.udp_proxy, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig, stat_prefix: u, access_log: [], matcher: { on_no_match: { action: { name: route, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route, cluster: some_service } } } } } } ]\n  clusters:\n")]),
                 errors: ["static_resources.listeners[1].listener_filters[0].typed_config.access_log: not supported by ballast"]),
            Case(name: "udp_proxy to an unknown cluster",
                 yaml: edited([("  clusters:\n", "  - name: udp\n    address: { socket_address: { protocol: UDP, address: 127.0.0.1, port_value: 10001 } }\n    listener_filters: [ { name: envoy.filters.udp_listener.udp_proxy, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig, stat_prefix: u, matcher: { on_no_match: { action: { name: route, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route, cluster: nowhere } } } } } } ]\n  clusters:\n")]),
                 errors: ["static_resources.listeners[1].listener_filters[0].typed_config.matcher.on_no_match.action.typed_config.cluster: unknown cluster 'nowhere'"]),
            Case(name: "root is not a mapping",
                 yaml: "- just\n- a list\n",
                 errors: ["expected a mapping, got a list"]),
            Case(name: "empty file",
                 yaml: "# nothing\n",
                 errors: ["the configuration is empty"]),
            Case(name: "duplicate YAML key",
                 yaml: "admin: {}\nadmin: {}\n",
                 errors: ["YAML error at line 1, column 1: duplicate key 'admin' in a mapping"]),
        ]
        for c in cases {
            XCTAssertEqual(loadErrors(c.yaml), c.errors, "case: \(c.name)")
        }
        // A YAML syntax error: one error with its position. The wording after the position is
        // libyaml's (not ours to promise), so only our part is asserted.
        let syntax = loadErrors("admin:\n  address: [1, 2\nstatic_resources: {}\n")
        XCTAssertEqual(syntax.count, 1, "\(syntax)")
        XCTAssertNotNil(syntax.first?.range(of: #"^YAML syntax error at line \d+, column \d+: \S"#, options: .regularExpression), "\(syntax)")
    }

    /// Envoy v3 picks an extension by its @type; a name it does not know only warns.
    func testUnknownNameWithKnownTypeWarns() throws {
        let yaml = edited([("name: envoy.filters.network.http_connection_manager", "name: envoy.filters.network.http_connection_manger")])
        let loaded = try XCTUnwrap(load(yaml))
        XCTAssertEqual(loaded.warnings.map(\.description), [
            "static_resources.listeners[0].filter_chains[0].filters[0].name: 'envoy.filters.network.http_connection_manger' is not a network filter name ballast knows; loaded as envoy.filters.network.http_connection_manager, which its @type names",
        ])
        XCTAssertEqual(loaded.bootstrap.listeners[0].filterChains[0].filters[0].name, "envoy.filters.network.http_connection_manager")
    }

    /// A STRICT_DNS cluster may name hosts (the counterpart of the STATIC case above).
    func testHostnamesAllowedInDNSClusters() throws {
        let yaml = edited([("type: STATIC", "type: STRICT_DNS"), ("address: 127.0.0.1, port_value: 8080", "address: backend.local, port_value: 8080")])
        let b = try XCTUnwrap(load(yaml)).bootstrap
        XCTAssertEqual(b.clusters[0].discoveryType, .strictDNS)
        XCTAssertEqual(b.clusters[0].endpoints[0].address.kind, .hostname)
        XCTAssertNil(b.clusters[0].endpoints[0].address.socketAddress)
    }

    /// Every error is reported in one run, in document order, each with its path and location.
    func testAllErrorsAreCollectedInDocumentOrder() {
        let yaml = edited([
            ("port_value: 10000", "port_value: 99999"),
            ("codec_type: AUTO", "codec_type: HTTP3"),
            ("route: { cluster: some_service,", "route: { cluster: nowhere,"),
            ("connect_timeout: 0.25s", "connect_timeout: soon"),
            ("lb_policy: ROUND_ROBIN", "lb_polcy: ROUND_ROBIN"),
            ("port_value: 8080", "port_value: -1"),
        ])
        do {
            _ = try BootstrapLoader.load(yaml: yaml)
            XCTFail("loaded")
        } catch {
            XCTAssertEqual(error.errors.map(\.description), [
                "static_resources.listeners[0].address.socket_address.port_value: 99999 is out of range 0...65535",
                "\(hcmPath).codec_type: HTTP3 is not supported by ballast (supported: AUTO, HTTP1)",
                "\(Self.route).route.cluster: unknown cluster 'nowhere'",
                "\(Self.cluster).connect_timeout: expected a duration in seconds such as 0.25s, 1.5s or 300s, got 'soon'",
                "\(Self.cluster).lb_polcy: unknown field; did you mean lb_policy?",
                "\(Self.endpoint).port_value: -1 is out of range 1...65535",
            ])
            XCTAssertEqual(error.errors.map { $0.location?.line }, [8, 15, 23, 30, 32, 39])
            XCTAssertEqual(error.errors[4].located, "\(Self.cluster).lb_polcy: unknown field; did you mean lb_policy? (line 32, column 5)")
            XCTAssertEqual(error.errors[4].path, ConfigPath(parsing: "static_resources.clusters[0].lb_polcy"))
        }
    }

    func testPathPrinting() {
        let path = ConfigPath.root.appending("static_resources").appending("clusters").appending(index: 0)
            .appending("typed_extension_protocol_options").appending("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
            .appending("@type")
        XCTAssertEqual(path.description,
                       "static_resources.clusters[0].typed_extension_protocol_options[\"envoy.extensions.upstreams.http.v3.HttpProtocolOptions\"].@type")
        XCTAssertEqual(ConfigPath(parsing: path.description), path)
        XCTAssertEqual(ConfigPath.root.description, "")
    }
}
