// Envoy's own examples (the envoyproxy/examples repository: one directory per example, each with
// the Envoy configs its docker-compose setup runs). For each example whose configs Envoy 1.40
// accepts, a bootstrap of our own that combines the same features as its main config: the same
// filters, route and cluster features, listeners and TLS, in our words (none of their text is
// copied; hostnames become 127.0.0.1 and the suite's upstream). ExampleConfigTests runs each
// through both proxies' validate mode and, where both accept, the same requests through both.
//
// Placeholders: {ADMIN}, {PORT0}, {PORT1} (listener ports), {UP} (the recording upstream),
// {CERT}, {KEY}, {CA} (a throwaway certificate made with the openssl CLI), {DIR} (files the config
// reads, written there first).

struct ExampleConfig {
    /// The example's directory in envoyproxy/examples, and the config it mirrors.
    let example: String
    let features: String
    let yaml: String
    /// Raw requests sent to listener {PORT0} of both proxies when both accept (status, fields and body compared).
    var requests: [String] = []
    /// When Ballast refuses: fragments its errors must name (the unsupported fields). Empty: accepted.
    var ballastRefuses: [String] = []
    /// Files the config reads, written into the run's directory ({DIR}) with placeholders filled.
    var files: [String: String] = [:]
    /// Why an accepted example sends no requests here (the table shows it).
    var noRequestsBecause: String? = nil
}

private let router = "{ name: envoy.filters.http.router, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }"
private let hcmType = "\"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

/// A DownstreamTlsContext with the test certificate (for a filter chain's `transport_socket`).
private let downstreamTLS = "{ name: envoy.transport_sockets.tls, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: { tls_certificates: [ { certificate_chain: { filename: \"{CERT}\" }, private_key: { filename: \"{KEY}\" } } ] } } }"
/// An UpstreamTlsContext with an SNI (for a cluster's `transport_socket`).
private func upstreamTLS(sni: String = "localhost") -> String {
    "{ name: envoy.transport_sockets.tls, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: \(sni) } }"
}

/// An HTTP listener: one filter chain with an http_connection_manager (flow-style YAML throughout).
private func httpListener(_ name: String, port: String = "{PORT0}", hcm: String = "", vhost: String = "", routes: [String],
                          filters: [String] = [], chainExtra: String = "", listenerExtra: String = "") -> String {
    let vh = "{ name: \(name)_vh, domains: [\"*\"], \(vhost.isEmpty ? "" : vhost + ", ")routes: [ \(routes.joined(separator: ", ")) ] }"
    return """
      - name: \(name)
        address: { socket_address: { address: 127.0.0.1, port_value: \(port) } }
        \(listenerExtra)
        filter_chains:
        - \(chainExtra.isEmpty ? "" : chainExtra + "\n      ")filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config: { \(hcmType), stat_prefix: \(name), \(hcm.isEmpty ? "" : hcm + ", ")route_config: { name: \(name)_routes, virtual_hosts: [ \(vh) ] }, http_filters: [ \((filters + [router]).joined(separator: ", ")) ] }

    """
}

/// A cluster of the recording upstream: STATIC 127.0.0.1:{UP} unless `dns` (STRICT_DNS localhost, IPv4).
private func cluster(_ name: String, dns: Bool = true, extra: String = "") -> String {
    """
      - { name: \(name), connect_timeout: 1s, type: \(dns ? "STRICT_DNS, dns_lookup_family: V4_ONLY" : "STATIC"), lb_policy: ROUND_ROBIN\(extra.isEmpty ? "" : ", " + extra), load_assignment: { cluster_name: \(name), endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: \(dns ? "localhost" : "127.0.0.1"), port_value: {UP} } } } } ] } ] } }

    """
}

private func bootstrap(_ listeners: [String], _ clusters: [String], extra: String = "") -> String {
    """
    admin: { address: { socket_address: { address: 127.0.0.1, port_value: {ADMIN} } } }
    static_resources:
      listeners:
    \(listeners.joined())
      clusters:
    \(clusters.joined())
    \(extra)
    """
}

private func route(_ prefix: String, _ cluster: String, _ extra: String = "") -> String {
    "{ match: { prefix: \"\(prefix)\" }, route: { cluster: \(cluster)\(extra.isEmpty ? "" : ", " + extra) } }"
}

private func get(_ path: String, _ extra: String = "") -> String { "GET \(path) HTTP/1.1\r\nHost: example.com\r\n\(extra)\r\n" }

private let stdoutLog = "access_log: [ { name: envoy.access_loggers.stdout, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog } } ]"
private let corsFilter = "{ name: envoy.filters.http.cors, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors } }"
private func corsPolicy(_ fields: String) -> String {
    "envoy.filters.http.cors: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy, \(fields) }"
}
private func percent(_ n: Int) -> String { "{ default_value: { numerator: \(n), denominator: HUNDRED } }" }
private let zipkinTracing = "tracing: { provider: { name: envoy.tracers.zipkin, typed_config: { \"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, collector_cluster: collector, collector_endpoint: \"/api/v2/spans\", collector_endpoint_version: HTTP_JSON } } }"
private func compressor(_ library: String, _ type: String) -> String {
    "{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, response_direction_config: { common_config: { min_content_length: 100, content_type: [ text/plain ] } }, compressor_library: { name: \(library), typed_config: { \"@type\": \(type) } } } }"
}
private let http2Upstream = "typed_extension_protocol_options: { envoy.extensions.upstreams.http.v3.HttpProtocolOptions: { \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } }"

let exampleConfigs: [ExampleConfig] = [
    ExampleConfig(example: "brotli/envoy.yaml", features: "compressor filter with the brotli library; an HTTPS listener",
                  yaml: bootstrap([httpListener("brotli", routes: [route("/", "service")],
                                                filters: ["{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, response_direction_config: { common_config: { min_content_length: 100, content_type: [ application/json ] }, disable_on_etag_header: true }, compressor_library: { name: text_optimized, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli, window_bits: 10 } } } }"],
                                                chainExtra: "transport_socket: \(downstreamTLS)")], [cluster("service")]),
                  noRequestsBecause: "its only listener is HTTPS; brotli is compared with Envoy in CompressorDifferentialTests"),
    ExampleConfig(example: "cache/envoy.yaml", features: "cache filter with the simple HTTP cache",
                  yaml: bootstrap([httpListener("cache", routes: [route("/service", "service")],
                                                filters: ["{ name: envoy.filters.http.cache, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig } } }"])],
                                  [cluster("service")]),
                  // A date in the future keeps the hit's age at 0 (no apparent age), so both runs agree.
                  requests: [get("/service/1", "x-reply-field: cache-control: max-age=60\r\nx-reply-field: date: Fri, 01 Jan 2100 00:00:00 GMT\r\n"),
                             get("/service/1"),
                             get("/service/2", "x-reply-field: cache-control: private, max-age=60\r\nx-reply-field: date: Fri, 01 Jan 2100 00:00:00 GMT\r\n"),
                             get("/service/2")]),
    ExampleConfig(example: "cors/backend/envoy.yaml", features: "cors filter; virtual-host policy with a safe_regex origin, route policies (disabled, restricted by regex); STRICT_DNS cluster; stdout access log",
                  yaml: bootstrap([httpListener("cors", hcm: stdoutLog,
                                                vhost: "typed_per_filter_config: { \(corsPolicy("allow_origin_string_match: [ { safe_regex: { regex: \"\\\\*\" } } ], allow_methods: GET, filter_enabled: { default_value: { numerator: 100, denominator: HUNDRED }, runtime_key: cors.www.enabled }")) }",
                                                routes: [route("/cors/open", "backend"),
                                                         "{ match: { prefix: \"/cors/disabled\" }, route: { cluster: backend }, typed_per_filter_config: { \(corsPolicy("filter_enabled: \(percent(0))")) } }",
                                                         "{ match: { prefix: \"/cors/restricted\" }, route: { cluster: backend }, typed_per_filter_config: { \(corsPolicy("allow_origin_string_match: [ { safe_regex: { regex: \".*\\\\.example\\\\.org\" } } ], allow_methods: GET")) } }",
                                                         route("/", "backend")],
                                                filters: [corsFilter])],
                                  [cluster("backend")]),
                  requests: [get("/cors/open", "Origin: https://any.test\r\n"), get("/cors/restricted", "Origin: https://any.test\r\n"),
                             get("/cors/restricted", "Origin: https://a.example.org\r\n"), get("/cors/disabled", "Origin: https://any.test\r\n")]),
    ExampleConfig(example: "csrf/samesite/envoy.yaml", features: "csrf and cors filters; virtual-host policies (runtime keys, shadow 0%), route policies: disabled, shadow, additional_origins",
                  yaml: bootstrap([httpListener("csrf", hcm: stdoutLog,
                                                vhost: "typed_per_filter_config: { \(corsPolicy("allow_origin_string_match: [ { safe_regex: { regex: \"\\\\*\" } } ], filter_enabled: \(percent(100))")), envoy.filters.http.csrf: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: { default_value: { numerator: 100, denominator: HUNDRED }, runtime_key: csrf.www.enabled }, shadow_enabled: { default_value: { numerator: 0, denominator: HUNDRED }, runtime_key: csrf.www.shadow_enabled } } }",
                                                routes: ["{ match: { prefix: \"/csrf/disabled\" }, route: { cluster: generic }, typed_per_filter_config: { envoy.filters.http.csrf: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: \(percent(0)) } } }",
                                                         "{ match: { prefix: \"/csrf/shadow\" }, route: { cluster: generic }, typed_per_filter_config: { envoy.filters.http.csrf: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: \(percent(0)), shadow_enabled: \(percent(100)) } } }",
                                                         "{ match: { prefix: \"/csrf/additional_origin\" }, route: { cluster: generic }, typed_per_filter_config: { envoy.filters.http.csrf: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: \(percent(100)), additional_origins: [ { safe_regex: { regex: \".*\" } } ] } } }",
                                                         route("/", "generic")],
                                                filters: [corsFilter, "{ name: envoy.filters.http.csrf, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: \(percent(0)) } }"])],
                                  [cluster("generic")]),
                  requests: ["POST /csrf/enabled HTTP/1.1\r\nHost: example.com\r\nOrigin: https://other.test\r\nContent-Length: 0\r\n\r\n",
                             "POST /csrf/shadow HTTP/1.1\r\nHost: example.com\r\nOrigin: https://other.test\r\nContent-Length: 0\r\n\r\n",
                             "POST /csrf/additional_origin HTTP/1.1\r\nHost: example.com\r\nOrigin: https://other.test\r\nContent-Length: 0\r\n\r\n",
                             "DELETE /x HTTP/1.1\r\nHost: example.com\r\nOrigin: http://example.com\r\n\r\n"]),
    ExampleConfig(example: "datadog-tracing/envoy.yaml", features: "Datadog tracer; health_check filter; route decorator",
                  yaml: bootstrap([httpListener("dd", hcm: "generate_request_id: true, tracing: { provider: { name: envoy.tracers.datadog, typed_config: { \"@type\": type.googleapis.com/envoy.config.trace.v3.DatadogConfig, collector_cluster: collector, service_name: envoy-demo } } }",
                                                routes: ["{ match: { prefix: \"/\" }, route: { cluster: service }, decorator: { operation: checkAvailability } }"],
                                                filters: ["{ name: envoy.filters.http.health_check, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck, pass_through_mode: false, headers: [ { name: \":path\", string_match: { exact: \"/healthz\" } } ] } }"])],
                                  [cluster("service"), cluster("collector")]),
                  ballastRefuses: ["tracing"]),
    ExampleConfig(example: "double-proxy/envoy-frontend.yaml", features: "an HTTP front listener whose cluster speaks TLS with a client certificate to the next proxy (mTLS)",
                  yaml: bootstrap([httpListener("front", routes: [route("/", "proxy_backend")])],
                                  [cluster("proxy_backend", extra: "transport_socket: { name: envoy.transport_sockets.tls, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: localhost, common_tls_context: { tls_certificates: [ { certificate_chain: { filename: \"{CERT}\" }, private_key: { filename: \"{KEY}\" } } ], validation_context: { trusted_ca: { filename: \"{CA}\" } } } } }")]),
                  noRequestsBecause: "its listener or clusters speak TLS; TLS behaviour against Envoy is TLSDifferentialTests'"),
    ExampleConfig(example: "dynamic-config-cp/envoy.yaml", features: "ADS over gRPC from a control plane (dynamic_resources), an HTTP/2 xDS cluster",
                  yaml: bootstrap([], [cluster("xds_cluster", extra: http2Upstream)],
                                  extra: "dynamic_resources: { ads_config: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: xds_cluster } } ] }, cds_config: { resource_api_version: V3, ads: {} }, lds_config: { resource_api_version: V3, ads: {} } }\nnode: { id: test-id, cluster: test-cluster }")
                      .replacingOccurrences(of: "  listeners:\n\n", with: "  listeners: []\n"),
                  ballastRefuses: ["dynamic_resources"]),
    ExampleConfig(example: "dynamic-config-fs/envoy.yaml", features: "LDS and CDS from watched files (path_config_source), a node id",
                  yaml: "node: { id: id_1, cluster: test }\nadmin: { address: { socket_address: { address: 127.0.0.1, port_value: {ADMIN} } } }\n"
                      + "dynamic_resources: { cds_config: { resource_api_version: V3, path_config_source: { path: \"{DIR}/cds.yaml\" } }, lds_config: { resource_api_version: V3, path_config_source: { path: \"{DIR}/lds.yaml\" } } }\n",
                  requests: [get("/"), get("/x?y=1")],
                  files: ["cds.yaml": "resources:\n- { \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: example_proxy_cluster, connect_timeout: 1s, type: STATIC, load_assignment: { cluster_name: example_proxy_cluster, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: {UP} } } } } ] } ] } }\n",
                          "lds.yaml": "resources:\n- { \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener, name: listener_0, address: { socket_address: { address: 127.0.0.1, port_value: {PORT0} } }, filter_chains: [ { filters: [ { name: envoy.filters.network.http_connection_manager, typed_config: { \(hcmType), stat_prefix: ingress_http, route_config: { name: local_route, virtual_hosts: [ { name: all, domains: [\"*\"], routes: [ \(route("/", "example_proxy_cluster")) ] } ] }, http_filters: [ \(router) ] } } ] } ] }\n"]),
    ExampleConfig(example: "ext_authz/config/http-service.yaml", features: "ext_authz filter calling an HTTP authorization service",
                  yaml: bootstrap([httpListener("authz", routes: [route("/", "upstream")],
                                                filters: ["{ name: envoy.filters.http.ext_authz, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz, transport_api_version: V3, http_service: { server_uri: { uri: ext_authz, cluster: ext_authz_service, timeout: 0.25s }, authorization_response: { allowed_upstream_headers: { patterns: [ { exact: x-current-user } ] } } } } }"])],
                                  [cluster("upstream"), cluster("ext_authz_service")]),
                  // Allowed; denied by the service (403, its body and fields); the service failing (503: 403, empty).
                  requests: [get("/"), get("/", "Authorization: Bearer deny\r\n"), get("/hc-fail")]),
    ExampleConfig(example: "fault-injection/envoy.yaml", features: "fault filter (abort and delay at 0% with runtime keys); a layered_runtime with a disk layer and an admin layer",
                  yaml: bootstrap([httpListener("fault", routes: [route("/", "backend")],
                                                filters: ["{ name: envoy.filters.http.fault, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: { http_status: 503, percentage: { numerator: 0, denominator: HUNDRED } }, delay: { fixed_delay: 3s, percentage: { numerator: 0, denominator: HUNDRED } } } }"])],
                                  [cluster("backend")],
                                  extra: "layered_runtime: { layers: [ { name: disk_layer_0, disk_layer: { symlink_root: \"{DIR}/runtime/current\", subdirectory: envoy } }, { name: admin_layer_0, admin_layer: {} } ] }"),
                  requests: [get("/"), get("/a")],
                  files: ["runtime/current/envoy/fault/http/abort/abort_percent": "0", "runtime/current/envoy/fault/http/abort/http_status": "418"]),
    ExampleConfig(example: "front-proxy/envoy.yaml", features: "HTTP and HTTPS listeners routing by prefix to two STRICT_DNS clusters; a layered_runtime static layer",
                  yaml: bootstrap([httpListener("http", routes: [route("/service/1", "service1"), route("/service/2", "service2")]),
                                   httpListener("https", port: "{PORT1}", routes: [route("/service/1", "service1"), route("/service/2", "service2")],
                                                chainExtra: "transport_socket: \(downstreamTLS)")],
                                  [cluster("service1"), cluster("service2")],
                                  extra: "layered_runtime: { layers: [ { name: static_layer_0, static_layer: { envoy: { resource_limits: { listener: { example_listener_name: { connection_limit: 10000 } } } } } } ] }"),
                  requests: [get("/service/1"), get("/service/2/a"), get("/other")]),
    ExampleConfig(example: "grpc-bridge/server/envoy-proxy.yaml", features: "gRPC route match, an HTTP/2 upstream cluster",
                  yaml: bootstrap([httpListener("grpc", routes: ["{ match: { prefix: \"/\", grpc: {} }, route: { cluster: backend_grpc } }"])],
                                  [cluster("backend_grpc", extra: http2Upstream)]),
                  ballastRefuses: ["grpc", "http2_protocol_options"]),
    ExampleConfig(example: "gzip/envoy.yaml", features: "compressor (gzip: application/json over 100 bytes, disable_on_etag_header, memory_level, window_bits) and decompressor (gzip request bodies, max_inflate_ratio; response direction off)",
                  yaml: bootstrap([httpListener("gzip", routes: [route("/", "service")],
                                                filters: ["{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, response_direction_config: { common_config: { min_content_length: 100, content_type: [ application/json ] }, disable_on_etag_header: true }, compressor_library: { name: text_optimized, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip, memory_level: 3, window_bits: 10 } } } }",
                                                          "{ name: envoy.filters.http.decompressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor, decompressor_library: { name: upload, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip, window_bits: 9, chunk_size: 8192, max_inflate_ratio: 1000 } }, response_direction_config: { common_config: { enabled: { default_value: false, runtime_key: response_decompressor_enabled } } } } }"])],
                                  [cluster("service")]),
                  requests: [get("/file.json", "Accept-Encoding: gzip\r\n"), get("/file.txt"),
                             "POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"]),
    ExampleConfig(example: "jaeger-tracing/envoy.yaml", features: "Zipkin-protocol tracing to Jaeger; route decorator",
                  yaml: bootstrap([httpListener("jaeger", hcm: "generate_request_id: true, \(zipkinTracing)",
                                                routes: ["{ match: { prefix: \"/\" }, route: { cluster: service1 }, decorator: { operation: checkAvailability } }"])],
                                  [cluster("service1"), cluster("collector")]),
                  requests: [get("/"), get("/trace", "x-b3-traceid: 463ac35c9f6413ad\r\nx-b3-spanid: a2fb4a1d1a96d312\r\nx-b3-sampled: 1\r\n"),
                             get("/named", "x-envoy-decorator-operation: fromClient\r\n")]),
    ExampleConfig(example: "load-reporting-service/envoy.yaml", features: "load stats reporting (cluster_manager.load_stats_config) over gRPC",
                  yaml: bootstrap([httpListener("lrs", routes: [route("/", "local_service")])],
                                  [cluster("local_service"), cluster("load_reporting_cluster", extra: http2Upstream)],
                                  extra: "cluster_manager: { load_stats_config: { api_type: GRPC, transport_api_version: V3, grpc_services: [ { envoy_grpc: { cluster_name: load_reporting_cluster } } ] } }"),
                  ballastRefuses: ["cluster_manager"]),
    ExampleConfig(example: "local_ratelimit/envoy.yaml", features: "local_ratelimit with token bucket, runtime-keyed filter_enabled/enforced, response_headers_to_add; a second listener",
                  yaml: bootstrap([httpListener("service", routes: [route("/", "service")],
                                                filters: ["{ name: envoy.filters.http.local_ratelimit, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: http_local_rate_limiter, token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: 3600s }, filter_enabled: { runtime_key: local_rate_limit_enabled, default_value: { numerator: 100, denominator: HUNDRED } }, filter_enforced: { runtime_key: local_rate_limit_enforced, default_value: { numerator: 100, denominator: HUNDRED } }, response_headers_to_add: [ { append_action: OVERWRITE_IF_EXISTS_OR_ADD, header: { key: x-local-rate-limit, value: \"true\" } } ] } }"]),
                                   httpListener("stats", port: "{PORT1}", routes: [route("/stats", "service")])],
                                  [cluster("service")]),
                  requests: [get("/a"), get("/b"), get("/c")]),
    ExampleConfig(example: "locality-load-balancing/envoy.yaml", features: "localities with priorities and load_balancing_weight, active health checks, healthy_panic_threshold",
                  yaml: bootstrap([httpListener("lb", routes: [route("/", "backend")])],
                                  ["""
                                      - { name: backend, connect_timeout: 1s, type: STATIC, lb_policy: ROUND_ROBIN, common_lb_config: { healthy_panic_threshold: { value: 50 } }, health_checks: [ { interval: 2s, timeout: 1s, unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: \"/\" } } ], load_assignment: { cluster_name: backend, endpoints: [ { locality: { region: local }, load_balancing_weight: 1, lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: {UP} } } } } ] }, { locality: { region: remote }, priority: 1, load_balancing_weight: 1, lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: {UP} } } } } ] } ] } }

                                  """]),
                  requests: [get("/"), get("/a?b=1")]),
    ExampleConfig(example: "lua/envoy.yaml", features: "lua filter with an inline script",
                  yaml: bootstrap([httpListener("lua", routes: [route("/", "web_service")],
                                                filters: ["{ name: envoy.filters.http.lua, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua, default_source_code: { inline_string: \"function envoy_on_request(h) end\" } } }"])],
                                  [cluster("web_service")]),
                  ballastRefuses: ["envoy.filters.http.lua"]),
    ExampleConfig(example: "lua-cluster-specifier/envoy.yaml", features: "a Lua cluster specifier plugin picking the cluster",
                  yaml: bootstrap([httpListener("luacs", routes: ["{ match: { prefix: \"/\" }, route: { inline_cluster_specifier_plugin: { extension: { name: envoy.router.cluster_specifier_plugin.lua, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.router.cluster_specifiers.lua.v3.LuaConfig, source_code: { inline_string: \"function envoy_on_route(h) return 'web_service' end\" }, default_cluster: web_service } } } } }"])],
                                  [cluster("web_service")]),
                  ballastRefuses: ["inline_cluster_specifier_plugin"]),
    ExampleConfig(example: "opentelemetry/envoy-front-proxy.yaml", features: "OpenTelemetry tracer over gRPC; route decorator; HTTP/2 collector cluster",
                  yaml: bootstrap([httpListener("otel", hcm: "generate_request_id: true, tracing: { provider: { name: envoy.tracers.opentelemetry, typed_config: { \"@type\": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig, grpc_service: { envoy_grpc: { cluster_name: collector }, timeout: 0.25s }, service_name: front-envoy } } }",
                                                routes: ["{ match: { prefix: \"/\" }, route: { cluster: service1 }, decorator: { operation: checkAvailability } }"])],
                                  [cluster("service1"), cluster("collector", extra: http2Upstream)]),
                  ballastRefuses: ["tracing"]),
    ExampleConfig(example: "rbac/envoy.yaml", features: "rbac filter: allow by header and path",
                  yaml: bootstrap([httpListener("rbac", routes: [route("/", "upstream")],
                                                filters: ["{ name: envoy.filters.http.rbac, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, rules: { action: ALLOW, policies: { allow-header: { permissions: [ { any: true } ], principals: [ { header: { name: referer, string_match: { exact: \"https://www.envoyproxy.io/docs/envoy\" } } } ] } } } } }"])],
                                  [cluster("upstream")]),
                  requests: [get("/", "Referer: https://www.envoyproxy.io/docs/envoy\r\n"), get("/", "Referer: https://example.com\r\n"), get("/")]),
    ExampleConfig(example: "redis/envoy.yaml", features: "redis_proxy network filter, MAGLEV cluster",
                  yaml: bootstrap(["""
                                     - name: redis_listener
                                       address: { socket_address: { address: 127.0.0.1, port_value: {PORT0} } }
                                       filter_chains: [ { filters: [ { name: envoy.filters.network.redis_proxy, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy, stat_prefix: egress_redis, settings: { op_timeout: 5s }, prefix_routes: { catch_all_route: { cluster: redis_cluster } } } } ] } ]

                                   """], [cluster("redis_cluster", extra: "").replacingOccurrences(of: "ROUND_ROBIN", with: "MAGLEV")]),
                  ballastRefuses: ["redis_proxy", "MAGLEV"]),
    ExampleConfig(example: "route-mirror/envoy.yaml", features: "request_mirror_policies to a second cluster, and to a cluster named by a request header (cluster_header)",
                  yaml: bootstrap([httpListener("mirror", routes: [route("/service/2", "service2", "request_mirror_policies: [ { cluster_header: x-mirror-cluster } ]"),
                                                                   route("/", "service1", "request_mirror_policies: [ { cluster: service1_mirror } ]")])],
                                  [cluster("service1"), cluster("service1_mirror"), cluster("service2"), cluster("service2_mirror")]),
                  requests: [get("/"), get("/service/1?x=1"), get("/service/2", "x-mirror-cluster: service2_mirror\r\n"), get("/service/2")]),
    ExampleConfig(example: "skywalking/envoy-front-proxy.yaml", features: "SkyWalking tracer; router start_child_span; route decorator",
                  yaml: bootstrap([httpListener("sky", hcm: "tracing: { provider: { name: envoy.tracers.skywalking, typed_config: { \"@type\": type.googleapis.com/envoy.config.trace.v3.SkyWalkingConfig, grpc_service: { envoy_grpc: { cluster_name: skywalking }, timeout: 0.25s }, client_config: { service_name: front-envoy } } } }",
                                                routes: ["{ match: { prefix: \"/\" }, route: { cluster: service1 }, decorator: { operation: checkAvailability } }"])],
                                  [cluster("service1"), cluster("skywalking", extra: http2Upstream)]),
                  ballastRefuses: ["tracing"]),
    ExampleConfig(example: "tls/envoy-https-https.yaml", features: "TLS termination on the listener and TLS origination to the upstream (SNI)",
                  yaml: bootstrap([httpListener("https", routes: [route("/", "service_https", "host_rewrite_literal: localhost")],
                                                chainExtra: "transport_socket: \(downstreamTLS)")],
                                  [cluster("service_https", extra: "transport_socket: \(upstreamTLS())")]),
                  noRequestsBecause: "its listener or clusters speak TLS; TLS behaviour against Envoy is TLSDifferentialTests'"),
    ExampleConfig(example: "tls-inspector/envoy.yaml", features: "tls_inspector listener filter; three tcp_proxy filter chains chosen by transport_protocol and application_protocols (TLS passed through by ALPN, the rest by a chain without a match)",
                  yaml: bootstrap(["""
                                     - name: inspect
                                       address: { socket_address: { address: 127.0.0.1, port_value: {PORT0} } }
                                       listener_filters: [ { name: envoy.filters.listener.tls_inspector, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector } } ]
                                       filter_chains:
                                       - filter_chain_match: { transport_protocol: tls, application_protocols: [ h2 ] }
                                         filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, cluster: service-https1, stat_prefix: https_passthrough } } ]
                                       - filter_chain_match: { transport_protocol: tls, application_protocols: [ http/1.1 ] }
                                         filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, cluster: service-https0, stat_prefix: https_passthrough } } ]
                                       - filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, cluster: service-http, stat_prefix: ingress_http } } ]

                                   """],
                                  [cluster("service-https1"), cluster("service-https0"), cluster("service-http")]),
                  requests: [get("/")]),
    ExampleConfig(example: "tls-sni/envoy-client.yaml", features: "one listener, three TLS clusters with different SNI, routed by prefix",
                  yaml: bootstrap([httpListener("client", routes: [route("/domain1", "proxy-domain1"), route("/domain2", "proxy-domain2")])],
                                  [cluster("proxy-domain1", extra: "transport_socket: \(upstreamTLS(sni: "domain1.example.com"))"),
                                   cluster("proxy-domain2", extra: "transport_socket: \(upstreamTLS(sni: "domain2.example.com"))")]),
                  noRequestsBecause: "its listener or clusters speak TLS; TLS behaviour against Envoy is TLSDifferentialTests'"),
    ExampleConfig(example: "udp/envoy.yaml", features: "udp_proxy listener",
                  yaml: bootstrap(["""
                                     - name: udp
                                       address: { socket_address: { protocol: UDP, address: 127.0.0.1, port_value: {PORT0} } }
                                       listener_filters: [ { name: envoy.filters.udp_listener.udp_proxy, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig, stat_prefix: service, matcher: { on_no_match: { action: { name: route, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route, cluster: service_udp } } } } } } ]

                                   """], [cluster("service_udp", dns: false)]),
                  noRequestsBecause: "UDP: UDPProxyDifferentialTests sends its datagrams through both"),
    ExampleConfig(example: "websocket/envoy-ws-route.yaml", features: "WebSocket upgrade enabled on one route (upgrade_configs), STRICT_DNS cluster",
                  yaml: bootstrap([httpListener("ws", routes: [route("/ws", "service_ws", "upgrade_configs: [ { upgrade_type: websocket } ]"), route("/", "service_ws")])],
                                  [cluster("service_ws")]),
                  requests: [get("/ws", "Connection: Upgrade\r\nUpgrade: websocket\r\n"), get("/other", "Connection: Upgrade\r\nUpgrade: websocket\r\n")]),
    ExampleConfig(example: "zipkin/envoy-front-proxy.yaml", features: "Zipkin tracer; route decorator; response headers from %REQ(...)%",
                  yaml: bootstrap([httpListener("zipkin", hcm: "generate_request_id: true, \(zipkinTracing)",
                                                vhost: "response_headers_to_add: [ { header: { key: x-b3-traceid, value: \"%REQ(x-b3-traceid)%\" } } ]",
                                                routes: ["{ match: { prefix: \"/\" }, route: { cluster: service1 }, decorator: { operation: checkAvailability } }"])],
                                  [cluster("service1"), cluster("collector")]),
                  // The trace id in the response is random unless the request brings one.
                  requests: [get("/", "x-b3-traceid: 463ac35c9f6413ad\r\nx-b3-spanid: a2fb4a1d1a96d312\r\n"),
                             get("/other", "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90\r\n"),
                             get("/third", "x-b3-traceid: 0000000000000000a2fb4a1d1a96d314\r\nx-b3-spanid: a2fb4a1d1a96d314\r\nx-b3-sampled: 0\r\n")]),
    ExampleConfig(example: "zstd/envoy.yaml", features: "compressor filter with the zstd library; an HTTPS listener",
                  yaml: bootstrap([httpListener("zstd", routes: [route("/", "service")],
                                                filters: ["{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, response_direction_config: { common_config: { min_content_length: 100, content_type: [ application/json ] }, disable_on_etag_header: true }, compressor_library: { name: text_optimized, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd, compression_level: 10 } } } }"],
                                                chainExtra: "transport_socket: \(downstreamTLS)")], [cluster("service")]),
                  noRequestsBecause: "its only listener is HTTPS; zstd is compared with Envoy in CompressorDifferentialTests"),
]
