// Config cases: the same bootstrap through `envoy --mode validate` and `ballast proxy --mode
// validate`. Both must accept or both refuse, unless IntentionalDifferences.swift lists
// `config/<name>` (Ballast refuses a field it would otherwise ignore, or is stricter on purpose);
// a Ballast refusal must name the YAML path given here.

struct ConfigCase {
    let name: String
    let feature: String
    /// (old, new) replacements applied to `configCaseBase`.
    let edits: [(String, String)]
    /// The YAML path Ballast's error names when it refuses.
    var refusalPath: String? = nil
}

let configCaseBase = """
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: web, timeout: 2s }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: web
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: web
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }

"""

private let hcm = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
private let route = "\(hcm).route_config.virtual_hosts[0].routes[0]"
/// A tcp_proxy and an http_connection_manager, as filter lists of a second chain.
private let secondTCPProxy = "      - { name: envoy.filters.network.tcp_proxy, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: web } }\n"
private let secondConnectionManager = """
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: second
          route_config: { virtual_hosts: [ { name: b, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: web } } ] } ] }
          http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]

"""
private let cluster = "static_resources.clusters[0]"
private let hcmAnchor = "          stat_prefix: main\n"
private let clusterAnchor = "    connect_timeout: 1s\n"
private let filtersAnchor = "          http_filters:\n"
private let routeAnchor = "                route: { cluster: web, timeout: 2s }\n"
private let rlType = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"

/// A local_ratelimit entry before the router, with `fields` in its typed_config.
private func localRateLimit(_ fields: String) -> (String, String) {
    (filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.local_ratelimit\n            typed_config: { \(rlType), stat_prefix: rl, \(fields) }\n")
}

/// A route-level typed_per_filter_config for local_ratelimit.
private func perRouteRateLimit(_ fields: String) -> (String, String) {
    (routeAnchor, routeAnchor + "                typed_per_filter_config:\n                  envoy.filters.http.local_ratelimit: { \(rlType), stat_prefix: rl_route, \(fields) }\n")
}
private let faultTypeField = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

/// A fault entry before the router, with `fields` in its typed_config.
private func fault(_ fields: String) -> (String, String) {
    (filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.fault\n            typed_config: { \(faultTypeField), \(fields) }\n")
}
/// A health_check entry before the router, with `fields` in its typed_config.
private func healthCheck(_ fields: String) -> (String, String) {
    (filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.health_check\n            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck, \(fields) }\n")
}

/// A buffer entry before the router, with `fields` in its typed_config.
private func bufferFilter(_ fields: String) -> (String, String) {
    (filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.buffer\n            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\(fields.isEmpty ? "" : ", " + fields) }\n")
}

/// A layered_runtime with one static layer (`layer`: a flow mapping).
private func runtime(_ layer: String) -> (String, String) {
    ("static_resources:\n", "layered_runtime: { layers: [ { name: static_layer_0, static_layer: \(layer) } ] }\nstatic_resources:\n")
}
private let vhostAnchor = "              domains: [\"*\"]\n"
private let csrfType = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy"

/// An rbac entry before the router, with `fields` in its typed_config.
private func rbacFilter(_ fields: String) -> (String, String) {
    (filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.rbac\n            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, \(fields) }\n")
}

/// A csrf entry before the router, with `fields` in its typed_config.
private func csrfFilter(_ fields: String) -> (String, String) {
    (filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.csrf\n            typed_config: { \(csrfType)\(fields.isEmpty ? "" : ", " + fields) }\n")
}
private let corsFilter = (filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.cors\n            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }\n")

/// The cors filter and a virtual-host CorsPolicy with `fields`.
private func corsPolicy(_ fields: String) -> [(String, String)] {
    [corsFilter, (vhostAnchor, vhostAnchor + "              typed_per_filter_config:\n                envoy.filters.http.cors: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy, \(fields) }\n")]
}
/// Route-level fields after the route's action.
private func routeHeaders(_ fields: String) -> (String, String) {
    (routeAnchor, routeAnchor + fields.split(separator: "|").map { "                " + $0.trimmingCharacters(in: .whitespaces) + "\n" }.joined())
}
private let vhostPath = "\(hcm).route_config.virtual_hosts[0]"
private let rlBucket = "token_bucket: { max_tokens: 10, tokens_per_fill: 5, fill_interval: 1s }"
private let rlFilter = "\(hcm).http_filters[0].typed_config"

/// A cache filter entry before the router (the simple in-memory cache unless `storage` says otherwise), with `fields`.
private func cacheFilter(_ fields: String, storage: String? = "typed_config: { \"@type\": type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig }") -> (String, String) {
    let body = ([storage].compactMap { $0 } + (fields.isEmpty ? [] : [fields])).joined(separator: ", ")
    return (filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.cache\n            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig\(body.isEmpty ? "" : ", " + body) }\n")
}

/// The base's cluster `web` as an EDS cluster reading `source`.
private func edsCluster(_ source: String) -> (String, String) {
    ("    type: STATIC\n    load_assignment:\n      cluster_name: web\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }\n",
     "    type: EDS\n    eds_cluster_config: { eds_config: \(source) }\n")
}

/// The base's route_config replaced by `rds` reading `source`.
private func rdsSource(_ source: String) -> (String, String) {
    ("          route_config:\n            virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n              routes:\n              - match: { prefix: \"/\" }\n                route: { cluster: web, timeout: 2s }\n",
     "          rds: { route_config_name: r, config_source: \(source) }\n")
}

let configCases: [ConfigCase] = [
    ConfigCase(name: "cache", feature: "cache with allowed_vary_headers, max_body_bytes, ignore_request_cache_control_header",
               edits: [cacheFilter("allowed_vary_headers: [ { exact: accept }, { prefix: x-v } ], max_body_bytes: 4096, ignore_request_cache_control_header: true")]),
    ConfigCase(name: "cache-disabled", feature: "cache disabled: true without a storage (a no-op filter)",
               edits: [cacheFilter("disabled: true", storage: nil)]),
    ConfigCase(name: "cache-no-storage", feature: "cache without its storage typed_config", edits: [cacheFilter("", storage: nil)],
               refusalPath: "\(rlFilter).typed_config"),
    ConfigCase(name: "cache-key-creator-params", feature: "cache key_creator_params", edits: [cacheFilter("key_creator_params: { exclude_host: true }")],
               refusalPath: "\(rlFilter).key_creator_params"),
    ConfigCase(name: "cache-thundering-herd", feature: "cache thundering_herd_handler (newer than Envoy 1.40: unknown in both)",
               edits: [cacheFilter("thundering_herd_handler: { none: {} }")],
               refusalPath: "\(rlFilter).thundering_herd_handler"),
    ConfigCase(name: "cache-with-compressor", feature: "cache and compressor in one chain",
               edits: [cacheFilter(""), (filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.compressor\n            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: { name: gz, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip } } }\n")],
               refusalPath: "\(hcm).http_filters"),
    ConfigCase(name: "base", feature: "A minimal bootstrap (codec_type AUTO, one route, one STATIC cluster)", edits: []),
    ConfigCase(name: "no-http-filters", feature: "http_connection_manager without http_filters",
               edits: [("          http_filters:\n          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n", "")],
               refusalPath: "\(hcm).http_filters"),
    ConfigCase(name: "dns-underscore", feature: "STRICT_DNS hostname with an underscore (web_service)",
               edits: [("    type: STATIC\n", "    type: STRICT_DNS\n"), ("address: 127.0.0.1, port_value: 8080", "address: web_service, port_value: 8080")]),
    ConfigCase(name: "choice-count", feature: "LEAST_REQUEST with least_request_lb_config.choice_count",
               edits: [(clusterAnchor, clusterAnchor + "    lb_policy: LEAST_REQUEST\n    least_request_lb_config: { choice_count: 3 }\n")]),
    ConfigCase(name: "timeouts-disabled", feature: "request_timeout / stream_idle_timeout set to 0s (disabled)",
               edits: [(hcmAnchor, hcmAnchor + "          request_timeout: 0s\n          stream_idle_timeout: 0s\n")]),
    ConfigCase(name: "bad-port", feature: "port_value out of range", edits: [("port_value: 10000", "port_value: 70000")]),
    ConfigCase(name: "unknown-field", feature: "Misspelled field (lb_polcy)", edits: [(clusterAnchor, clusterAnchor + "    lb_polcy: ROUND_ROBIN\n")]),
    ConfigCase(name: "safe-regex", feature: "Route match safe_regex",
               edits: [("match: { prefix: \"/\" }", "match: { safe_regex: { regex: \"^/a.*\" } }")]),
    ConfigCase(name: "safe-regex-invalid", feature: "safe_regex that RE2 cannot compile",
               edits: [("match: { prefix: \"/\" }", "match: { safe_regex: { regex: \"^/a(\" } }")],
               refusalPath: "\(route).match.safe_regex.regex"),
    ConfigCase(name: "safe-regex-program-size", feature: "safe_regex above RE2 program size 100",
               edits: [("match: { prefix: \"/\" }", "match: { safe_regex: { regex: \"/(a|b|c|d|e|f|g|h|i|j)+[0-9]{5,20}x{3,30}\" } }")],
               refusalPath: "\(route).match.safe_regex.regex"),
    ConfigCase(name: "safe-regex-max-program-size", feature: "safe_regex with google_re2.max_program_size raised",
               edits: [("match: { prefix: \"/\" }", "match: { safe_regex: { google_re2: { max_program_size: 1000 }, regex: \"/(a|b|c|d|e|f|g|h|i|j)+[0-9]{5,20}x{3,30}\" } }")]),
    ConfigCase(name: "header-safe-regex-invalid", feature: "Header safe_regex_match that RE2 cannot compile",
               edits: [("match: { prefix: \"/\" }", "match: { prefix: \"/\", headers: [ { name: x-a, safe_regex_match: { regex: \"a[\" } } ] }")],
               refusalPath: "\(route).match.headers[0].safe_regex_match.regex"),
    ConfigCase(name: "health-checks", feature: "Cluster health_checks (HTTP: path, host, expected_statuses; interval_jitter, no_traffic_interval)",
               edits: [(clusterAnchor, clusterAnchor + "    health_checks: [ { timeout: 1s, interval: 5s, interval_jitter: 1s, no_traffic_interval: 10s, unhealthy_threshold: 2, healthy_threshold: 1, http_health_check: { path: /healthz, host: web.test, expected_statuses: [ { start: 200, end: 300 } ] } } ]\n")]),
    ConfigCase(name: "tcp-health-check", feature: "Cluster tcp_health_check (connect only)",
               edits: [(clusterAnchor, clusterAnchor + "    health_checks: [ { timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 1, tcp_health_check: {} } ]\n")]),
    ConfigCase(name: "two-health-checks", feature: "Two health_checks on one cluster",
               edits: [(clusterAnchor, clusterAnchor + "    health_checks: [ { timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 1, http_health_check: { path: /a } }, { timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 1, http_health_check: { path: /b } } ]\n")],
               refusalPath: "\(cluster).health_checks[1]"),
    ConfigCase(name: "health-check-bad-status-range", feature: "health check expected_statuses with start >= end",
               edits: [(clusterAnchor, clusterAnchor + "    health_checks: [ { timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 1, http_health_check: { path: /a, expected_statuses: [ { start: 300, end: 200 } ] } } ]\n")],
               refusalPath: "\(cluster).health_checks[0].http_health_check.expected_statuses[0]"),
    ConfigCase(name: "health-check-port", feature: "Endpoint health_check_config.port_value",
               edits: [("port_value: 8080 } } }\n", "port_value: 8080 } }, health_check_config: { port_value: 8081 } }\n")]),
    ConfigCase(name: "healthy-panic-threshold", feature: "common_lb_config.healthy_panic_threshold",
               edits: [(clusterAnchor, clusterAnchor + "    common_lb_config: { healthy_panic_threshold: { value: 25 } }\n")]),
    ConfigCase(name: "outlier-detection", feature: "Cluster outlier_detection (consecutive 5xx / gateway / local-origin failures, success rate, failure percentage, ejection times)",
               edits: [(clusterAnchor, clusterAnchor + "    outlier_detection: { consecutive_5xx: 3, consecutive_gateway_failure: 2, enforcing_consecutive_gateway_failure: 100, interval: 5s, base_ejection_time: 10s, max_ejection_time: 60s, max_ejection_time_jitter: 1s, max_ejection_percent: 50, success_rate_minimum_hosts: 3, success_rate_request_volume: 10, success_rate_stdev_factor: 1500, failure_percentage_threshold: 70, enforcing_failure_percentage: 50, split_external_local_origin_errors: true, consecutive_local_origin_failure: 4 }\n")]),
    ConfigCase(name: "outlier-detection-max-below-base", feature: "outlier_detection.max_ejection_time below base_ejection_time",
               edits: [(clusterAnchor, clusterAnchor + "    outlier_detection: { base_ejection_time: 60s, max_ejection_time: 10s }\n")],
               refusalPath: "\(cluster).outlier_detection.max_ejection_time"),
    ConfigCase(name: "outlier-detection-monitors", feature: "outlier_detection.monitors (extensions)",
               edits: [(clusterAnchor, clusterAnchor + "    outlier_detection: { monitors: [] }\n")],
               refusalPath: "\(cluster).outlier_detection.monitors"),
    ConfigCase(name: "common-lb-zone-aware", feature: "common_lb_config.zone_aware_lb_config",
               edits: [(clusterAnchor, clusterAnchor + "    common_lb_config: { zone_aware_lb_config: { min_cluster_size: 3 } }\n")],
               refusalPath: "\(cluster).common_lb_config.zone_aware_lb_config"),
    ConfigCase(name: "dns-refresh-rate", feature: "Cluster dns_refresh_rate",
               edits: [("    type: STATIC\n", "    type: STRICT_DNS\n    dns_refresh_rate: 10s\n")]),
    ConfigCase(name: "request-timeout", feature: "HCM request_timeout", edits: [(hcmAnchor, hcmAnchor + "          request_timeout: 10s\n")]),
    ConfigCase(name: "request-headers-timeout", feature: "HCM request_headers_timeout",
               edits: [(hcmAnchor, hcmAnchor + "          request_headers_timeout: 5s\n")]),
    ConfigCase(name: "stream-idle-timeout", feature: "HCM stream_idle_timeout",
               edits: [(hcmAnchor, hcmAnchor + "          stream_idle_timeout: 30s\n")]),
    ConfigCase(name: "max-connection-duration", feature: "HCM common_http_protocol_options.max_connection_duration",
               edits: [(hcmAnchor, hcmAnchor + "          common_http_protocol_options: { max_connection_duration: 60s }\n")]),
    ConfigCase(name: "strip-any-host-port", feature: "HCM strip_any_host_port",
               edits: [(hcmAnchor, hcmAnchor + "          strip_any_host_port: true\n")]),
    ConfigCase(name: "strip-matching-host-port", feature: "HCM strip_matching_host_port",
               edits: [(hcmAnchor, hcmAnchor + "          strip_matching_host_port: true\n")]),
    ConfigCase(name: "strip-both-host-port", feature: "HCM strip_any_host_port with strip_matching_host_port",
               edits: [(hcmAnchor, hcmAnchor + "          strip_any_host_port: true\n          strip_matching_host_port: true\n")]),
    ConfigCase(name: "route-idle-timeout", feature: "Route idle_timeout",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, idle_timeout: 5s }")]),
    ConfigCase(name: "per-try-timeout", feature: "Retry per_try_timeout",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: 5xx, per_try_timeout: 0.5s } }")]),
    ConfigCase(name: "retry-back-off", feature: "Retry retry_back_off",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: 5xx, retry_back_off: { base_interval: 0.1s, max_interval: 1s } } }")]),
    ConfigCase(name: "retry-back-off-max-below-base", feature: "retry_back_off max_interval below base_interval",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: 5xx, retry_back_off: { base_interval: 1s, max_interval: 0.1s } } }")],
               refusalPath: "\(route).route.retry_policy.retry_back_off.max_interval"),
    ConfigCase(name: "retry-previous-hosts", feature: "Retry retry_host_predicate previous_hosts, host_selection_retry_max_attempts",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: 5xx, host_selection_retry_max_attempts: 3, retry_host_predicate: [ { name: envoy.retry_host_predicates.previous_hosts, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } } ] } }")]),
    ConfigCase(name: "retry-omit-canary-hosts", feature: "Retry retry_host_predicate omit_canary_hosts",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: 5xx, retry_host_predicate: [ { name: envoy.retry_host_predicates.omit_canary_hosts, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.omit_canary_hosts.v3.OmitCanaryHostsPredicate } } ] } }")],
               refusalPath: "\(route).route.retry_policy.retry_host_predicate[0].name"),
    ConfigCase(name: "retry-priority", feature: "Retry retry_priority previous_priorities",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: 5xx, retry_priority: { name: envoy.retry_priorities.previous_priorities, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig, update_frequency: 2 } } } }")],
               refusalPath: "\(route).route.retry_policy.retry_priority"),
    ConfigCase(name: "retry-budget", feature: "circuit_breakers.thresholds[].retry_budget (budget_percent, min_retry_concurrency)",
               edits: [(clusterAnchor, clusterAnchor + "    circuit_breakers: { thresholds: [ { max_retries: 5, retry_budget: { budget_percent: { value: 25 }, min_retry_concurrency: 2 } } ] }\n")]),
    ConfigCase(name: "retry-budget-percent-over-100", feature: "retry_budget.budget_percent above 100",
               edits: [(clusterAnchor, clusterAnchor + "    circuit_breakers: { thresholds: [ { retry_budget: { budget_percent: { value: 150 } } } ] }\n")],
               refusalPath: "\(cluster).circuit_breakers.thresholds[0].retry_budget.budget_percent.value"),
    ConfigCase(name: "retriable-4xx", feature: "retry_on retriable-4xx",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: retriable-4xx } }")]),
    ConfigCase(name: "filter-chain-match", feature: "filter_chain_match",
               edits: [("    - filters:\n", "    - filter_chain_match: { destination_port: 10000 }\n      filters:\n")]),
    ConfigCase(name: "filter-chain-match-all-fields", feature: "filter_chain_match with every field, and tls_inspector",
               edits: [("    filter_chains:\n", "    listener_filters: [ { name: envoy.filters.listener.tls_inspector, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector } } ]\n    filter_chains:\n"),
                       ("    - filters:\n", "    - filter_chain_match: { destination_port: 10000, prefix_ranges: [ { address_prefix: 127.0.0.0, prefix_len: 8 } ], server_names: [ \"*.example.com\", a.example.org ], transport_protocol: tls, application_protocols: [ h2, http/1.1 ], direct_source_prefix_ranges: [ { address_prefix: 10.0.0.0, prefix_len: 8 } ], source_type: EXTERNAL, source_prefix_ranges: [ { address_prefix: \"::\", prefix_len: 0 } ], source_ports: [ 1000, 2000 ] }\n      filters:\n")]),
    ConfigCase(name: "filter-chains-tcp-beside-http", feature: "a tcp_proxy chain beside the http_connection_manager chain, and a default_filter_chain",
               edits: [("    - filters:\n", "    - filter_chain_match: { transport_protocol: tls }\n      filters:\n\(secondTCPProxy)    - filters:\n"),
                       ("  clusters:\n", "    default_filter_chain:\n      filters:\n\(secondTCPProxy)  clusters:\n")]),
    ConfigCase(name: "filter-chains-overlapping", feature: "two filter chains whose matches overlap (the same server name)",
               edits: [("    - filters:\n", "    - filter_chain_match: { server_names: [ a.example.com, b.example.com ] }\n      filters:\n\(secondTCPProxy)    - filter_chain_match: { server_names: [ b.example.com ] }\n      filters:\n")],
               refusalPath: "static_resources.listeners[0].filter_chains[1].filter_chain_match"),
    ConfigCase(name: "filter-chains-two-connection-managers", feature: "two http_connection_manager chains in one listener",
               edits: [("    - filters:\n", "    - filter_chain_match: { server_names: [ a.example.com ] }\n      filters:\n\(secondConnectionManager)    - filters:\n")]),
    ConfigCase(name: "tls-inspector-ja3", feature: "tls_inspector enable_ja3_fingerprinting",
               edits: [("    filter_chains:\n", "    listener_filters: [ { name: envoy.filters.listener.tls_inspector, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector, enable_ja3_fingerprinting: true } } ]\n    filter_chains:\n")],
               refusalPath: "static_resources.listeners[0].listener_filters[0].typed_config.enable_ja3_fingerprinting"),
    ConfigCase(name: "server-names-star", feature: "a server name that is only a wildcard",
               edits: [("    - filters:\n", "    - filter_chain_match: { server_names: [ \"*\" ] }\n      filters:\n")],
               refusalPath: "static_resources.listeners[0].filter_chains[0].filter_chain_match.server_names[0]"),
    ConfigCase(name: "drain-and-delayed-close-timeouts", feature: "Connection manager drain_timeout and delayed_close_timeout",
               edits: [("          stat_prefix: main\n", "          stat_prefix: main\n          drain_timeout: 2s\n          delayed_close_timeout: 0s\n")]),
    ConfigCase(name: "require-tls", feature: "Virtual host require_tls",
               edits: [("              domains: [\"*\"]\n", "              domains: [\"*\"]\n              require_tls: EXTERNAL_ONLY\n")]),
    ConfigCase(name: "require-tls-unknown", feature: "Virtual host require_tls with an unknown value",
               edits: [("              domains: [\"*\"]\n", "              domains: [\"*\"]\n              require_tls: SOMETIMES\n")],
               refusalPath: "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].require_tls"),
    ConfigCase(name: "overprovisioning-factor", feature: "load_assignment.policy.overprovisioning_factor",
               edits: [("      cluster_name: web\n", "      cluster_name: web\n      policy: { overprovisioning_factor: 120 }\n")]),
    ConfigCase(name: "tcp-keepalive", feature: "Cluster upstream_connection_options.tcp_keepalive",
               edits: [(clusterAnchor, clusterAnchor + "    upstream_connection_options: { tcp_keepalive: { keepalive_time: 30 } }\n")]),
    ConfigCase(name: "upstream-bind-config", feature: "Cluster upstream_bind_config.source_address",
               edits: [(clusterAnchor, clusterAnchor + "    upstream_bind_config: { source_address: { address: 127.0.0.6, port_value: 0 } }\n")]),
    ConfigCase(name: "upstream-bind-config-freebind", feature: "Cluster upstream_bind_config.freebind",
               edits: [(clusterAnchor, clusterAnchor + "    upstream_bind_config: { source_address: { address: 127.0.0.6, port_value: 0 }, freebind: true }\n")],
               refusalPath: "static_resources.clusters[0].upstream_bind_config.freebind"),
    ConfigCase(name: "endpoint-priority", feature: "Locality priority levels (priority 0 and 1)",
               edits: [("        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }\n",
                        "        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }\n"
                        + "      - priority: 1\n        lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8081 } } }\n")]),
    ConfigCase(name: "locality-weighted", feature: "common_lb_config.locality_weighted_lb_config with locality load_balancing_weight",
               edits: [(clusterAnchor, clusterAnchor + "    common_lb_config: { locality_weighted_lb_config: {} }\n"),
                       ("      - lb_endpoints:\n", "      - locality: { zone: a }\n        load_balancing_weight: 2\n        lb_endpoints:\n")]),
    ConfigCase(name: "ring-hash-priority", feature: "RING_HASH with locality priorities",
               edits: [(clusterAnchor, clusterAnchor + "    lb_policy: RING_HASH\n"),
                       ("        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }\n",
                        "        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }\n"
                        + "      - priority: 1\n        lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8081 } } }\n")],
               refusalPath: "\(cluster).load_assignment"),
    ConfigCase(name: "request-mirror", feature: "Route request_mirror_policies (cluster, runtime_fraction, disable_shadow_host_suffix_append)",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, request_mirror_policies: [ { cluster: web, runtime_fraction: { default_value: { numerator: 50 } }, disable_shadow_host_suffix_append: true } ] }")]),
    ConfigCase(name: "request-mirror-cluster-header", feature: "request_mirror_policies cluster_header",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, request_mirror_policies: [ { cluster_header: x-mirror } ] }")]),
    ConfigCase(name: "least-request-weights", feature: "LEAST_REQUEST with unequal endpoint weights",
               edits: [(clusterAnchor, clusterAnchor + "    lb_policy: LEAST_REQUEST\n"),
                       ("port_value: 8080 } } }\n", "port_value: 8080 } } }\n          load_balancing_weight: 3\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8081 } } }\n")]),
    ConfigCase(name: "retriable-status-codes", feature: "retry_on retriable-status-codes",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: retriable-status-codes, retriable_status_codes: [503] } }")]),
    ConfigCase(name: "original-dst", feature: "Listener filter original_dst",
               edits: [("    filter_chains:\n", "    listener_filters: [ { name: envoy.filters.listener.original_dst, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst } } ]\n    filter_chains:\n")]),
    ConfigCase(name: "original-dst-cluster", feature: "use_original_dst with an ORIGINAL_DST cluster (CLUSTER_PROVIDED)",
               edits: [("    filter_chains:\n", "    use_original_dst: true\n    filter_chains:\n"),
                       ("    type: STATIC\n    load_assignment:\n      cluster_name: web\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }\n", "    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n    cleanup_interval: 2s\n")]),
    ConfigCase(name: "original-dst-round-robin", feature: "ORIGINAL_DST cluster with the default lb_policy (ROUND_ROBIN)",
               edits: [("    type: STATIC\n    load_assignment:\n      cluster_name: web\n      endpoints:\n      - lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }\n", "    type: ORIGINAL_DST\n")],
               refusalPath: "\(cluster).lb_policy"),
    ConfigCase(name: "original-dst-endpoints", feature: "ORIGINAL_DST cluster with endpoints",
               edits: [("    type: STATIC\n", "    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n")],
               refusalPath: "\(cluster).load_assignment"),
    ConfigCase(name: "use-original-dst-two-listeners", feature: "use_original_dst with a second listener",
               edits: [("    filter_chains:\n", "    use_original_dst: true\n    filter_chains:\n"),
                       ("  clusters:\n", "  - name: other\n    address: { socket_address: { address: 127.0.0.1, port_value: 10001 } }\n    filter_chains: [ { filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: web } } ] } ]\n  clusters:\n")],
               refusalPath: "static_resources.listeners[0].use_original_dst"),
    ConfigCase(name: "duplicate-listener", feature: "Two listeners with the same name",
               edits: [("  clusters:\n", "  - name: main\n    address: { socket_address: { address: 127.0.0.1, port_value: 10001 } }\n    filter_chains: [ { filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: web } } ] } ]\n  clusters:\n")],
               refusalPath: "static_resources.listeners[1].name"),
    ConfigCase(name: "codec-http2", feature: "codec_type HTTP2", edits: [("codec_type: AUTO", "codec_type: HTTP2")],
               refusalPath: "\(hcm).codec_type"),
    ConfigCase(name: "local-ratelimit", feature: "local_ratelimit with token_bucket, filter_enabled/enforced, response_headers_to_add and a per-route override",
               edits: [localRateLimit("\(rlBucket), filter_enabled: { runtime_key: e, default_value: { numerator: 50, denominator: HUNDRED } }, filter_enforced: { default_value: { numerator: 100 } }, response_headers_to_add: [ { append: false, header: { key: x-rl, value: 'yes' } } ]"),
                       perRouteRateLimit(rlBucket)]),
    ConfigCase(name: "local-ratelimit-no-bucket", feature: "local_ratelimit without token_bucket in http_filters", edits: [localRateLimit("filter_enabled: { default_value: { numerator: 0 } }")]),
    ConfigCase(name: "local-ratelimit-fill-interval", feature: "local_ratelimit fill_interval below 50ms",
               edits: [localRateLimit("token_bucket: { max_tokens: 1, fill_interval: 0.01s }")], refusalPath: "\(rlFilter).token_bucket.fill_interval"),
    ConfigCase(name: "local-ratelimit-max-tokens", feature: "local_ratelimit max_tokens 0 (every enabled request limited)",
               edits: [localRateLimit("token_bucket: { max_tokens: 0, fill_interval: 1s }")]),
    ConfigCase(name: "local-ratelimit-stat-prefix", feature: "local_ratelimit without stat_prefix",
               edits: [(filtersAnchor, filtersAnchor + "          - name: envoy.filters.http.local_ratelimit\n            typed_config: { \(rlType), \(rlBucket) }\n")],
               refusalPath: "\(rlFilter).stat_prefix"),
    ConfigCase(name: "local-ratelimit-route-no-bucket", feature: "local_ratelimit per-route config without token_bucket",
               edits: [localRateLimit(rlBucket), perRouteRateLimit("filter_enabled: { default_value: { numerator: 100 } }")],
               refusalPath: "\(route).typed_per_filter_config[\"envoy.filters.http.local_ratelimit\"].token_bucket"),
    ConfigCase(name: "local-ratelimit-descriptors", feature: "local_ratelimit descriptors",
               edits: [localRateLimit("\(rlBucket), descriptors: [ { entries: [ { key: k, value: v } ], token_bucket: { max_tokens: 1, fill_interval: 1s } } ]")],
               refusalPath: "\(rlFilter).descriptors"),
    ConfigCase(name: "local-ratelimit-per-connection", feature: "local_ratelimit local_rate_limit_per_downstream_connection: true",
               edits: [localRateLimit("\(rlBucket), local_rate_limit_per_downstream_connection: true")],
               refusalPath: "\(rlFilter).local_rate_limit_per_downstream_connection"),
    ConfigCase(name: "fault", feature: "fault with fixed delay, abort, max_active_faults and a per-route override",
               edits: [fault("max_active_faults: 10, delay: { fixed_delay: 1s, percentage: { numerator: 10 } }, abort: { http_status: 503, percentage: { numerator: 5, denominator: TEN_THOUSAND } }"),
                       (routeAnchor, routeAnchor + "                typed_per_filter_config:\n                  envoy.filters.http.fault: { \(faultTypeField), abort: { header_abort: {}, percentage: { numerator: 100 } } }\n")]),
    ConfigCase(name: "fault-empty", feature: "fault with an empty config", edits: [fault("delay_percent_runtime: x")]),
    ConfigCase(name: "fault-http-status", feature: "fault abort http_status 600", edits: [fault("abort: { http_status: 600, percentage: { numerator: 1 } }")],
               refusalPath: "\(rlFilter).abort.http_status"),
    ConfigCase(name: "fault-grpc-status", feature: "fault abort grpc_status", edits: [fault("abort: { grpc_status: 14, percentage: { numerator: 1 } }")],
               refusalPath: "\(rlFilter).abort.grpc_status"),
    ConfigCase(name: "fault-headers", feature: "fault headers (request matching)", edits: [fault("headers: [ { name: x-fault, present_match: true } ], abort: { http_status: 503 }")],
               refusalPath: "\(rlFilter).headers"),
    ConfigCase(name: "fault-rate-limit", feature: "fault response_rate_limit", edits: [fault("response_rate_limit: { fixed_limit: { limit_kbps: 10 }, percentage: { numerator: 100 } }")],
               refusalPath: "\(rlFilter).response_rate_limit"),
    ConfigCase(name: "cors", feature: "cors with a virtual-host CorsPolicy (origins, methods, headers, max_age, credentials)",
               edits: corsPolicy("allow_origin_string_match: [ { prefix: \"https://\" } ], allow_methods: GET, allow_headers: x-a, max_age: \"60\", allow_credentials: true, filter_enabled: { default_value: { numerator: 100 } }")),
    ConfigCase(name: "cors-star-methods", feature: "cors allow_methods \"*\"", edits: corsPolicy("allow_methods: \"*\""),
               refusalPath: "\(vhostPath).typed_per_filter_config[\"envoy.filters.http.cors\"].allow_methods"),
    ConfigCase(name: "cors-regex-origin", feature: "cors safe_regex origin", edits: corsPolicy("allow_origin_string_match: [ { safe_regex: { regex: \"https://.*\" } } ]")),
    ConfigCase(name: "vhost-local-ratelimit", feature: "local_ratelimit in a virtual host's typed_per_filter_config",
               edits: [localRateLimit(rlBucket), (vhostAnchor, vhostAnchor + "              typed_per_filter_config:\n                envoy.filters.http.local_ratelimit: { \(rlType), stat_prefix: v, \(rlBucket) }\n")],
               refusalPath: "\(vhostPath).typed_per_filter_config[\"envoy.filters.http.local_ratelimit\"]"),
    ConfigCase(name: "route-headers", feature: "request/response_headers_to_add/remove at route, virtual host and route config with %REQ(x)%, %HOSTNAME%, %DOWNSTREAM_REMOTE_ADDRESS%",
               edits: [routeHeaders("request_headers_to_add: [ { header: { key: x-a, value: \"%REQ(x-b)% %HOSTNAME%\" }, append_action: ADD_IF_ABSENT } ] | request_headers_to_remove: [ x-c ]"),
                       (vhostAnchor, vhostAnchor + "              response_headers_to_add: [ { header: { key: x-d, value: \"%DOWNSTREAM_REMOTE_ADDRESS%\" }, keep_empty_value: true } ]\n"),
                       ("          route_config:\n", "          route_config:\n            response_headers_to_remove: [ x-e ]\n")]),
    ConfigCase(name: "header-unsupported-operator", feature: "headers_to_add value with a %...% operator ballast does not implement (%START_TIME%)",
               edits: [routeHeaders("request_headers_to_add: [ { header: { key: x-a, value: \"%START_TIME%\" } } ]")],
               refusalPath: "\(route).request_headers_to_add[0].header.value"),
    ConfigCase(name: "header-remove-host", feature: "request_headers_to_remove: host",
               edits: [routeHeaders("request_headers_to_remove: [ host ]")], refusalPath: "\(route).request_headers_to_remove[0]"),
    ConfigCase(name: "header-add-pseudo", feature: "request_headers_to_add with a :-prefixed key",
               edits: [routeHeaders("request_headers_to_add: [ { header: { key: \":path\", value: /x } } ]")], refusalPath: "\(route).request_headers_to_add[0].header.key"),
    ConfigCase(name: "header-append-and-action", feature: "headers_to_add with both append and append_action",
               edits: [routeHeaders("response_headers_to_add: [ { header: { key: x-a, value: b }, append: true, append_action: ADD_IF_ABSENT } ]")],
               refusalPath: "\(route).response_headers_to_add[0].append"),
    ConfigCase(name: "most-specific-header-mutations-wins", feature: "most_specific_header_mutations_wins: true",
               edits: [("          route_config:\n", "          route_config:\n            most_specific_header_mutations_wins: true\n")],
               refusalPath: "\(hcm).route_config.most_specific_header_mutations_wins"),
    ConfigCase(name: "redirect", feature: "route redirect with https_redirect, host_redirect, port_redirect, prefix_rewrite, strip_query, response_code",
               edits: [("route: { cluster: web, timeout: 2s }", "redirect: { https_redirect: true, host_redirect: a.test, port_redirect: 8443, prefix_rewrite: /b, strip_query: true, response_code: FOUND }")]),
    ConfigCase(name: "redirect-regex-rewrite", feature: "redirect regex_rewrite",
               edits: [("route: { cluster: web, timeout: 2s }", "redirect: { regex_rewrite: { pattern: { regex: \"^/a\" }, substitution: /b } }")],
               refusalPath: "\(route).redirect.regex_rewrite"),
    ConfigCase(name: "redirect-bad-code", feature: "redirect response_code that is not a redirect code",
               edits: [("route: { cluster: web, timeout: 2s }", "redirect: { response_code: OK }")],
               refusalPath: "\(route).redirect.response_code"),
    ConfigCase(name: "redirect-two-schemes", feature: "redirect with both https_redirect and scheme_redirect",
               edits: [("route: { cluster: web, timeout: 2s }", "redirect: { https_redirect: true, scheme_redirect: http }")],
               refusalPath: "\(route).redirect.scheme_redirect"),
    ConfigCase(name: "csrf", feature: "csrf filter with runtime_key, additional_origins (exact, safe_regex), shadow_enabled, a virtual-host policy",
               edits: [csrfFilter("filter_enabled: { default_value: { numerator: 100, denominator: HUNDRED }, runtime_key: csrf.on }, shadow_enabled: { default_value: { numerator: 0 } }, additional_origins: [ { exact: a.test }, { safe_regex: { regex: \"[a-z]+[.]b[.]test\" } } ]"),
                       (vhostAnchor, vhostAnchor + "              typed_per_filter_config:\n                envoy.filters.http.csrf: { \(csrfType), filter_enabled: { default_value: { numerator: 0 } } }\n")]),
    ConfigCase(name: "csrf-no-filter-enabled", feature: "csrf without filter_enabled (required)", edits: [csrfFilter("")],
               refusalPath: "\(hcm).http_filters[0].typed_config.filter_enabled"),
    ConfigCase(name: "rbac", feature: "rbac: ALLOW and shadow DENY rules, header / url_path / and_rules / not_rule / destination_port permissions, direct_remote_ip / remote_ip / or_ids principals, stat prefixes",
               edits: [rbacFilter("rules: { action: ALLOW, policies: { p1: { permissions: [ { and_rules: { rules: [ { url_path: { path: { prefix: /a } } }, { not_rule: { destination_port: 8080 } } ] } } ], principals: [ { or_ids: { ids: [ { direct_remote_ip: { address_prefix: 10.0.0.0, prefix_len: 8 } }, { remote_ip: { address_prefix: \"::1\", prefix_len: 128 } } ] } } ] } } }, shadow_rules: { action: DENY, policies: { s: { permissions: [ { header: { name: \":method\", string_match: { exact: POST } } } ], principals: [ { any: true } ] } } }, rules_stat_prefix: r_, shadow_rules_stat_prefix: s_")]),
    ConfigCase(name: "rbac-authenticated", feature: "rbac principal authenticated (mTLS identity)",
               edits: [rbacFilter("rules: { policies: { p: { permissions: [ { any: true } ], principals: [ { authenticated: { principal_name: { exact: spiffe://a } } } ] } } }")],
               refusalPath: "\(hcm).http_filters[0].typed_config.rules.policies.p.principals[0].authenticated"),
    ConfigCase(name: "rbac-log-action", feature: "rbac action LOG",
               edits: [rbacFilter("rules: { action: LOG, policies: {} }")],
               refusalPath: "\(hcm).http_filters[0].typed_config.rules.action"),
    ConfigCase(name: "rbac-scheme-header", feature: "rbac header matcher on :scheme",
               edits: [rbacFilter("rules: { policies: { p: { permissions: [ { header: { name: \":scheme\", string_match: { exact: https } } } ], principals: [ { any: true } ] } } }")],
               refusalPath: "\(hcm).http_filters[0].typed_config.rules.policies.p.permissions[0].header"),
    ConfigCase(name: "regex-rewrite", feature: "route regex_rewrite with group references",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, regex_rewrite: { pattern: { regex: \"^/(a)/(b)\" }, substitution: \"/\\\\2/\\\\1\" } }")]),
    ConfigCase(name: "regex-rewrite-and-prefix", feature: "regex_rewrite together with prefix_rewrite",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, prefix_rewrite: /x, regex_rewrite: { pattern: { regex: a }, substitution: b } }")],
               refusalPath: "\(route).route.regex_rewrite"),
    ConfigCase(name: "regex-rewrite-missing-group", feature: "regex_rewrite substitution naming a group the pattern lacks",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, regex_rewrite: { pattern: { regex: \"^/(a)\" }, substitution: \"/\\\\2\" } }")],
               refusalPath: "\(route).route.regex_rewrite.substitution"),
    ConfigCase(name: "upgrade-websocket", feature: "upgrade_configs websocket on the manager, disabled on a route",
               edits: [(hcmAnchor, hcmAnchor + "          upgrade_configs: [ { upgrade_type: websocket } ]\n"),
                       ("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, upgrade_configs: [ { upgrade_type: websocket, enabled: false } ] }")]),
    ConfigCase(name: "upgrade-duplicate", feature: "upgrade_configs listing a type twice (case-insensitively)",
               edits: [(hcmAnchor, hcmAnchor + "          upgrade_configs: [ { upgrade_type: websocket }, { upgrade_type: WebSocket } ]\n")],
               refusalPath: "\(hcm).upgrade_configs[1].upgrade_type"),
    ConfigCase(name: "upgrade-connect", feature: "upgrade_configs CONNECT",
               edits: [(hcmAnchor, hcmAnchor + "          upgrade_configs: [ { upgrade_type: CONNECT } ]\n")],
               refusalPath: "\(hcm).upgrade_configs[0].upgrade_type"),
    ConfigCase(name: "upgrade-filters", feature: "upgrade_configs with a filter chain of its own",
               edits: [(hcmAnchor, hcmAnchor + "          upgrade_configs: [ { upgrade_type: websocket, filters: [ { name: envoy.filters.http.router, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ] } ]\n")],
               refusalPath: "\(hcm).upgrade_configs[0].filters"),
    ConfigCase(name: "health-check", feature: "health_check pass_through_mode false with a :path header matcher",
               edits: [healthCheck("pass_through_mode: false, headers: [ { name: \":path\", string_match: { exact: /healthz } } ]")]),
    ConfigCase(name: "health-check-no-mode", feature: "health_check without pass_through_mode", edits: [healthCheck("headers: []")],
               refusalPath: "\(rlFilter).pass_through_mode"),
    ConfigCase(name: "health-check-pass-through", feature: "health_check pass_through_mode true", edits: [healthCheck("pass_through_mode: true")],
               refusalPath: "\(rlFilter).pass_through_mode"),
    ConfigCase(name: "health-check-min-healthy", feature: "health_check cluster_min_healthy_percentages",
               edits: [healthCheck("pass_through_mode: false, cluster_min_healthy_percentages: { web: { value: 50 } }")],
               refusalPath: "\(rlFilter).cluster_min_healthy_percentages"),
    ConfigCase(name: "runtime-connection-limit", feature: "layered_runtime static_layer with a listener connection_limit and the global limit",
               edits: [runtime("{ envoy: { resource_limits: { listener: { main: { connection_limit: 100 } } } }, overload: { global_downstream_max_connections: 1000 } }")]),
    ConfigCase(name: "runtime-other-key", feature: "layered_runtime static_layer with another key (re2.max_program_size.error_level)",
               edits: [runtime("{ re2.max_program_size.error_level: 200 }")],
               refusalPath: "layered_runtime.layers[0].static_layer[\"re2.max_program_size.error_level\"]"),
    ConfigCase(name: "runtime-disk-layer", feature: "layered_runtime disk_layer whose symlink_root's directory does not exist (no watch)",
               edits: [("static_resources:\n", "layered_runtime: { layers: [ { name: disk, disk_layer: { symlink_root: /srv/runtime/current } } ] }\nstatic_resources:\n")],
               refusalPath: "layered_runtime.layers[0].disk_layer.symlink_root"),
    ConfigCase(name: "runtime-disk-admin-layers", feature: "layered_runtime disk_layer (an existing directory) and admin_layer",
               edits: [("static_resources:\n", "layered_runtime: { layers: [ { name: disk, disk_layer: { symlink_root: /tmp/ballast-no-runtime-here, subdirectory: envoy } }, { name: admin, admin_layer: {} } ] }\nstatic_resources:\n")]),
    ConfigCase(name: "dynamic-missing-file", feature: "dynamic_resources cds_config path_config_source naming a missing file",
               edits: [("static_resources:\n", "node: { id: a, cluster: b }\ndynamic_resources: { cds_config: { path_config_source: { path: /nonexistent/ballast-cds.yaml } } }\nstatic_resources:\n")],
               refusalPath: "dynamic_resources.cds_config"),
    ConfigCase(name: "eds-missing-file", feature: "EDS cluster whose eds_config path_config_source names a missing file",
               edits: [("static_resources:\n", "node: { id: a, cluster: b }\nstatic_resources:\n"), edsCluster("{ path_config_source: { path: /nonexistent/ballast-eds.yaml } }")],
               refusalPath: "\(cluster).eds_cluster_config.eds_config"),
    ConfigCase(name: "eds-no-node", feature: "EDS cluster from a file without node id and cluster",
               edits: [edsCluster("{ path_config_source: { path: /nonexistent/ballast-eds.yaml } }")],
               refusalPath: "node"),
    ConfigCase(name: "rds-missing-file", feature: "rds whose config_source path_config_source names a missing file",
               edits: [("static_resources:\n", "node: { id: a, cluster: b }\nstatic_resources:\n"), rdsSource("{ path_config_source: { path: /nonexistent/ballast-rds.yaml } }")],
               refusalPath: "\(hcm).rds.config_source"),
    ConfigCase(name: "rds-grpc", feature: "rds over gRPC (api_config_source)",
               edits: [("static_resources:\n", "node: { id: a, cluster: b }\nstatic_resources:\n"),
                       rdsSource("{ resource_api_version: V3, api_config_source: { api_type: GRPC, transport_api_version: V3, grpc_services: [ { envoy_grpc: { cluster_name: web } } ] } }")],
               refusalPath: "\(hcm).rds.config_source.api_config_source"),
    ConfigCase(name: "buffer", feature: "buffer max_request_bytes with a BufferPerRoute limit on a route",
               edits: [bufferFilter("max_request_bytes: 1024"),
                       (routeAnchor, routeAnchor + "                typed_per_filter_config:\n                  envoy.filters.http.buffer: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, buffer: { max_request_bytes: 10 } }\n")]),
    ConfigCase(name: "buffer-no-max", feature: "buffer without max_request_bytes", edits: [bufferFilter("")],
               refusalPath: "\(rlFilter).max_request_bytes"),
    ConfigCase(name: "buffer-route-disabled-false", feature: "BufferPerRoute disabled: false",
               edits: [bufferFilter("max_request_bytes: 1024"),
                       (routeAnchor, routeAnchor + "                typed_per_filter_config:\n                  envoy.filters.http.buffer: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, disabled: false }\n")],
               refusalPath: "\(route).typed_per_filter_config[\"envoy.filters.http.buffer\"].disabled"),
]
