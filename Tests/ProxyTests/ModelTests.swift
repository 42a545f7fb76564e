import Foundation
@testable import Proxy
import XCTest

/// A v3 bootstrap that uses most of what the model carries, read back field by field.
final class ModelTests: XCTestCase {
    static let yaml = #"""
node: { id: sidecar-1, cluster: ballast, metadata: { anything: [1, 2] } }
stats_flush_interval: 1s
watchdogs:
  worker_watchdog: { miss_timeout: 0.2s, megamiss_timeout: 1s, kill_timeout: 10s }
admin:
  access_log_path: /dev/null
  address: { socket_address: { address: "::1", port_value: 9901 } }
static_resources:
  listeners:
  - name: ingress
    address: { socket_address: { address: 0.0.0.0, port_value: 10000 } }
    enable_reuse_port: false
    connection_balance_config: { exact_balance: {} }
    ballast_balance: { strategy: p2c, metric: busy, accept_batch: 16 }
    per_connection_buffer_limit_bytes: 32768
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: HTTP1
          use_remote_address: true
          xff_num_trusted_hops: 1
          generate_request_id: false
          max_request_headers_kb: 32
          common_http_protocol_options: { idle_timeout: 60s, max_headers_count: 50 }
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /tmp/access.log
              log_format:
                text_format_source:
                  inline_string: "[%START_TIME%] %REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %REQ(USER-AGENT):20%\n"
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                omit_empty_values: true
                json_format: { status: "%RESPONSE_CODE%", flags: "%RESPONSE_FLAGS%", upstream: { host: "%UPSTREAM_HOST%" } }
          route_config:
            name: routes
            virtual_hosts:
            - name: api
              domains: ["api.example.com", "*.api.example.com", "api.*"]
              retry_policy: { retry_on: "connect-failure,reset", num_retries: 2 }
              routes:
              - name: canary
                match:
                  prefix: /v1/
                  headers: [ { name: X-Canary, exact_match: "yes" }, { name: x-debug, present_match: true, invert_match: true } ]
                  query_parameters: [ { name: beta, string_match: { exact: "1" } }, { name: trace } ]
                route:
                  weighted_clusters: { clusters: [ { name: stable, weight: 90 }, { name: canary, weight: 10 } ] }
                  prefix_rewrite: /
                  host_rewrite_literal: backend.internal
                  timeout: 2s
                  retry_policy: { retry_on: "5xx", num_retries: 3, per_try_timeout: 0s }
              - match: { prefix: "/Users/", case_sensitive: false }
                route:
                  cluster: sticky
                  hash_policy: [ { header: { header_name: X-User } }, { cookie: { name: session, ttl: 3600s } }, { connection_properties: { source_ip: true }, terminal: true } ]
            - name: fallback
              domains: ["*"]
              routes:
              - match: { path: /healthz }
                direct_response: { status: 200, body: { inline_string: "ok\n" } }
          http_filters:
          - name: envoy.filters.http.lua
            is_optional: true
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: 10001 } }
    ballast_balance: { strategy: shared, epoll_exclusive: true }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp_echo
          cluster: stable
          idle_timeout: 0s
          max_connect_attempts: 3
  clusters:
  - name: stable
    connect_timeout: 1s
    lb_policy: LEAST_REQUEST
    least_request_lb_config: { choice_count: 3 }
    circuit_breakers:
      thresholds:
      - { priority: DEFAULT, max_connections: 100, max_pending_requests: 1, max_requests: 200, max_retries: 2 }
      - { priority: HIGH, max_connections: 5 }
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: { idle_timeout: 30s, max_requests_per_connection: 1000 }
        explicit_http_config: { http_protocol_options: {} }
    load_assignment:
      cluster_name: stable
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }
          load_balancing_weight: 3
        - endpoint: { address: { socket_address: { address: "::1", port_value: 8081 } } }
          load_balancing_weight: 3
      - priority: 0
        lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.2, port_value: 8080 } } }
          load_balancing_weight: 3
  - name: canary
    type: STRICT_DNS
    dns_lookup_family: V4_ONLY
    common_http_protocol_options: { idle_timeout: 0s }
    max_requests_per_connection: 1
    load_assignment:
      cluster_name: canary
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: canary.local, port_value: 8080 } } } } ] } ]
  - name: sticky
    lb_policy: RING_HASH
    ring_hash_lb_config: { minimum_ring_size: 64, maximum_ring_size: 4096 }
    load_assignment:
      cluster_name: sticky
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8082 } } } } ] } ]
"""#

    func testEverything() throws {
        let loaded = try XCTUnwrap(load(Self.yaml))
        XCTAssertEqual(loaded.warnings.map(\.description), [
            "static_resources.listeners[0].connection_balance_config: ignored: ballast_balance sets the accept strategy",
            "\(hcmPath).http_filters[0].name: optional HTTP filter 'envoy.filters.http.lua' is not implemented by ballast; skipped",
        ])
        let b = loaded.bootstrap
        XCTAssertEqual(b.node, NodeIdentity(id: "sidecar-1", cluster: "ballast"))
        XCTAssertEqual(b.statsFlushIntervalNanos, 1_000_000_000)
        XCTAssertEqual(b.workerWatchdog.killTimeoutNanos, 10_000_000_000)
        XCTAssertEqual(b.mainThreadWatchdog, .envoyDefault)
        XCTAssertEqual(b.admin?.address.kind, .ipv6)
        XCTAssertEqual(b.admin?.address.description, "[::1]:9901")

        // Listener: the Ballast extension wins over exact_balance and enable_reuse_port.
        let ingress = b.listeners[0]
        XCTAssertEqual(ingress.balance.description, "p2c:busy,accept-batch=16")
        XCTAssertEqual(ingress.ballastBalance?.description, "p2c:busy,accept-batch=16")
        XCTAssertTrue(ingress.exactBalance)
        XCTAssertFalse(ingress.enableReusePort)
        XCTAssertEqual(ingress.effectiveBalance(override: nil).description, "p2c:busy,accept-batch=16")
        XCTAssertEqual(ingress.perConnectionBufferLimitBytes, 32768)
        XCTAssertEqual(ingress.listenerFilters, [.httpInspector])
        XCTAssertEqual(ingress.listenerFiltersTimeoutNanos, 15_000_000_000)
        XCTAssertNil(ingress.filterChains[0].match)
        XCTAssertEqual(b.listeners[1].balance.description, "shared:exclusive")

        guard case .httpConnectionManager(let hcm) = ingress.filterChains[0].filters[0] else { return XCTFail() }
        XCTAssertEqual(hcm.codecType, .http1)
        XCTAssertTrue(hcm.useRemoteAddress)
        XCTAssertEqual(hcm.xffNumTrustedHops, 1)
        XCTAssertFalse(hcm.generateRequestID)
        XCTAssertEqual(hcm.maxRequestHeadersKiB, 32)
        XCTAssertEqual(hcm.maxHeadersCount, 50)
        XCTAssertEqual(hcm.idleTimeoutNanos, 60_000_000_000)
        XCTAssertEqual(hcm.httpFilters, [.router(RouterFilterConfig(suppressEnvoyHeaders: true))])

        // Access logs.
        XCTAssertEqual(hcm.accessLog.count, 2)
        XCTAssertEqual(hcm.accessLog[0].sink, .file(path: "/tmp/access.log"))
        guard case .text(let template) = hcm.accessLog[0].format else { return XCTFail() }
        XCTAssertEqual(template.segments.first, .literal("["))
        XCTAssertEqual(template.segments.compactMap { if case .command(let c) = $0 { c.name } else { nil } },
                       ["START_TIME", "REQ", "REQ", "RESPONSE_CODE", "RESPONSE_FLAGS", "REQ"])
        XCTAssertEqual(template.segments.compactMap { if case .command(let c) = $0 { c.argument } else { nil } },
                       [":METHOD", "X-ENVOY-ORIGINAL-PATH?:PATH", "USER-AGENT"])
        XCTAssertEqual(template.segments.last, .literal("\n"))
        XCTAssertEqual(hcm.accessLog[1].sink, .stdout)
        XCTAssertTrue(hcm.accessLog[1].omitEmptyValues)
        guard case .json(let json) = hcm.accessLog[1].format else { return XCTFail() }
        XCTAssertEqual(json.map(\.key), ["status", "flags", "upstream"])
        guard case .object(let nested) = json[2].value else { return XCTFail() }
        XCTAssertEqual(nested.map(\.key), ["host"])

        // Routes.
        let hosts = hcm.routeConfig.virtualHosts
        XCTAssertEqual(hosts[0].domains, [.exact("api.example.com"), .suffix(".api.example.com"), .prefix("api.")])
        XCTAssertEqual(hosts[0].retryPolicy, RetryPolicyConfig(retryOn: [.connectFailure, .reset], numRetries: 2, perTryTimeoutNanos: nil, retriableStatusCodes: []))
        let canary = hosts[0].routes[0]
        XCTAssertEqual(canary.name, "canary")
        XCTAssertEqual(canary.match.path, .prefix("/v1/"))
        XCTAssertEqual(canary.match.headers, [
            HeaderMatcherConfig(name: "x-canary", match: .string(StringMatcherConfig(kind: .exact, value: "yes", ignoreCase: false)), invert: false),
            HeaderMatcherConfig(name: "x-debug", match: .present(true), invert: true),
        ])
        XCTAssertEqual(canary.match.queryParameters, [
            QueryParameterMatcherConfig(name: "beta", stringMatch: StringMatcherConfig(kind: .exact, value: "1", ignoreCase: false)),
            QueryParameterMatcherConfig(name: "trace", stringMatch: nil),
        ])
        guard case .forward(let split) = canary.action else { return XCTFail() }
        XCTAssertEqual(split.target, .weighted([WeightedClusterConfig(name: "stable", weight: 90), WeightedClusterConfig(name: "canary", weight: 10)]))
        XCTAssertEqual(split.target.clusterNames, ["stable", "canary"])
        XCTAssertEqual(split.prefixRewrite, "/")
        XCTAssertEqual(split.hostRewriteLiteral, "backend.internal")
        XCTAssertEqual(split.timeoutNanos, 2_000_000_000)
        XCTAssertEqual(split.retryPolicy, RetryPolicyConfig(retryOn: [.serverError], numRetries: 3, perTryTimeoutNanos: nil, retriableStatusCodes: []))
        let regex = hosts[0].routes[1]
        XCTAssertEqual(regex.match.path, .prefix("/Users/"))
        XCTAssertFalse(regex.match.caseSensitive)
        guard case .forward(let sticky) = regex.action else { return XCTFail() }
        XCTAssertEqual(sticky.hashPolicy, [
            HashPolicyConfig(source: .header("x-user"), terminal: false),
            HashPolicyConfig(source: .cookie(name: "session", ttlNanos: 3_600_000_000_000, path: nil), terminal: false),
            HashPolicyConfig(source: .sourceIP, terminal: true),
        ])
        XCTAssertEqual(hosts[1].routes[0].action, .directResponse(DirectResponseConfig(status: 200, body: "ok\n")))

        // tcp_proxy.
        guard case .tcpProxy(let tcp) = b.listeners[1].filterChains[0].filters[0] else { return XCTFail() }
        XCTAssertEqual(tcp, TCPProxyConfig(statPrefix: "tcp_echo", cluster: "stable", idleTimeoutNanos: nil, maxConnectAttempts: 3, accessLog: []))

        // Clusters.
        let stable = try XCTUnwrap(b.cluster(named: "stable"))
        XCTAssertEqual(stable.lbPolicy, .leastRequest)
        XCTAssertEqual(stable.leastRequestChoiceCount, 3)
        XCTAssertEqual(stable.connectTimeoutNanos, 1_000_000_000)
        XCTAssertEqual(stable.circuitBreakers.defaultPriority, CircuitBreakerThresholds(maxConnections: 100, maxPendingRequests: 1, maxRequests: 200, maxRetries: 2))
        XCTAssertEqual(stable.circuitBreakers.highPriority, CircuitBreakerThresholds(maxConnections: 5, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3))
        XCTAssertEqual(stable.upstreamHTTP, UpstreamHTTPOptions(idleTimeoutNanos: 30_000_000_000, maxRequestsPerConnection: 1000, maxConnectionDurationNanos: nil))
        XCTAssertEqual(stable.endpoints.map(\.address.description), ["127.0.0.1:8080", "[::1]:8081", "127.0.0.2:8080"])
        XCTAssertEqual(stable.endpoints.map(\.weight), [3, 3, 3])
        XCTAssertEqual(stable.endpoints.map(\.priority), [0, 0, 0])
        XCTAssertEqual(stable.healthChecks, [])
        let canaryCluster = try XCTUnwrap(b.cluster(named: "canary"))
        XCTAssertEqual(canaryCluster.discoveryType, .strictDNS)
        XCTAssertEqual(canaryCluster.dnsLookupFamily, .v4Only)
        XCTAssertEqual(canaryCluster.dnsRefreshRateNanos, 5_000_000_000)
        XCTAssertEqual(canaryCluster.upstreamHTTP, UpstreamHTTPOptions(idleTimeoutNanos: nil, maxRequestsPerConnection: 1, maxConnectionDurationNanos: nil))
        XCTAssertNil(canaryCluster.tcpKeepalive)
        XCTAssertEqual(canaryCluster.endpoints[0].address.kind, .hostname)
        let ring = try XCTUnwrap(b.cluster(named: "sticky"))
        XCTAssertEqual(ring.lbPolicy, .ringHash)
        XCTAssertEqual(ring.ringHash, RingHashConfig(minimumRingSize: 64, maximumRingSize: 4096))
    }

    func testBalanceFromEnvoyFields() throws {
        func balance(_ extra: String) throws -> String {
            let yaml = edited([("    filter_chains:", extra + "    filter_chains:")])
            return try XCTUnwrap(load(yaml)).bootstrap.listeners[0].balance.description
        }
        XCTAssertEqual(try balance(""), "reuseport")
        XCTAssertEqual(try balance("    enable_reuse_port: false\n"), "shared")
        XCTAssertEqual(try balance("    connection_balance_config: { exact_balance: {} }\n"), "least-loaded:connections")
        XCTAssertEqual(try balance("    connection_balance_config:\n      exact_balance:\n"), "least-loaded:connections")
        XCTAssertEqual(try balance("    ballast_balance: { strategy: least-loaded, metric: requests }\n"), "least-loaded:requests")
        XCTAssertEqual(try balance("    ballast_balance: { strategy: dispatch, msg_ring: true }\n"), "dispatch:msg-ring")
    }

    /// The Istio sidecar's access-log format (from the talk) parses into its operators.
    func testIstioAccessLogFormatParses() throws {
        let istio = #"[%START_TIME%] [%THREAD_ID%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" "%UPSTREAM_CLUSTER%" %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"# + "\n"
        let template = try AccessLogTemplate(parsing: istio)
        let names = template.segments.compactMap { if case .command(let c) = $0 { c.name } else { nil } }
        XCTAssertEqual(names.count, 25)
        XCTAssertEqual(names.first, "START_TIME")
        XCTAssertEqual(names.last, "ROUTE_NAME")
        XCTAssertEqual(Set(names), ["START_TIME", "THREAD_ID", "REQ", "PROTOCOL", "RESPONSE_CODE", "RESPONSE_FLAGS", "RESPONSE_CODE_DETAILS",
                                    "CONNECTION_TERMINATION_DETAILS", "UPSTREAM_TRANSPORT_FAILURE_REASON", "BYTES_RECEIVED", "BYTES_SENT",
                                    "DURATION", "RESP", "UPSTREAM_HOST", "UPSTREAM_CLUSTER", "UPSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS",
                                    "DOWNSTREAM_REMOTE_ADDRESS", "REQUESTED_SERVER_NAME", "ROUTE_NAME"])
        // Literal text survives between operators.
        let rebuilt = template.segments.map { segment -> String in
            switch segment {
            case .literal(let s): return s
            case .command(let c): return "%" + c.name + (c.argument.map { "(\($0))" } ?? "") + (c.maxLength.map { ":\($0)" } ?? "") + "%"
            }
        }.joined()
        XCTAssertEqual(rebuilt, istio)
        XCTAssertNoThrow(try AccessLogTemplate(parsing: AccessLogFormat.envoyDefaultText))
        // A START_TIME format may hold '%' and ':' inside its parentheses.
        let timed = try AccessLogTemplate(parsing: "%START_TIME(%Y/%m/%dT%H:%M:%S%z)% %REQ(X-USER):8%")
        XCTAssertEqual(timed.segments, [
            .command(AccessLogCommand(name: "START_TIME", argument: "%Y/%m/%dT%H:%M:%S%z", maxLength: nil)),
            .literal(" "),
            .command(AccessLogCommand(name: "REQ", argument: "X-USER", maxLength: 8)),
        ])
    }

    func testAccessLogTemplateErrors() {
        let cases: [(String, String)] = [
            ("%FOO%", "unknown command operator %FOO%"),
            ("%REQ%", "command operator %REQ% needs an argument, e.g. %REQ(X-REQUEST-ID)%"),
            ("%DURATION(x)%", "command operator %DURATION% takes no argument"),
            ("%REQ(A?B?C)%", "command operator %REQ(A?B?C)%: expected HEADER or HEADER?ALTERNATIVE"),
            ("%REQ(X):0%", "malformed command operator %REQ(X):0%: expected ':N' after ')'"),
            ("100%", "unterminated command operator starting at '%'"),
            ("%%", "empty command operator '%%' (a literal percent sign is not supported)"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try AccessLogTemplate(parsing: text), text) { error in
                XCTAssertEqual((error as? AccessLogTemplate.ParseError)?.description, message, text)
            }
        }
    }

    /// `--config-yaml` merged over `-c`: mappings merge, lists append, scalars are replaced.
    func testConfigYAMLOverlay() throws {
        let path = NSTemporaryDirectory() + "ballast-overlay-\(getpid()).yaml"
        try baseConfig.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let overlay = """
        static_resources:
          clusters:
          - name: extra
            load_assignment: { cluster_name: extra, endpoints: [] }
        admin: { address: { socket_address: { port_value: 9902 } } }
        """
        let loaded = try BootstrapLoader.load(path: path, overlayYAML: overlay)
        XCTAssertEqual(loaded.bootstrap.clusters.map(\.name), ["some_service", "extra"])
        XCTAssertEqual(loaded.bootstrap.admin?.address.description, "127.0.0.1:9902")
        XCTAssertEqual(loaded.warnings.map(\.description), ["static_resources.clusters[1]: cluster 'extra' has no endpoints: every request routed to it fails with 503"])
    }

    func testMissingFile() {
        XCTAssertThrowsError(try BootstrapLoader.load(path: "/nonexistent/ballast.yaml")) { error in
            XCTAssertEqual((error as? ConfigLoadError)?.errors.map(\.description), ["cannot read config file '/nonexistent/ballast.yaml': No such file or directory"])
        }
    }
}
