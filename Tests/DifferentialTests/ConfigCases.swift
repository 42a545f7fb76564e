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
private let cluster = "static_resources.clusters[0]"
private let hcmAnchor = "          stat_prefix: main\n"
private let clusterAnchor = "    connect_timeout: 1s\n"

let configCases: [ConfigCase] = [
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
               edits: [("match: { prefix: \"/\" }", "match: { safe_regex: { regex: \"^/a.*\" } }")],
               refusalPath: "\(route).match.safe_regex"),
    ConfigCase(name: "health-checks", feature: "Cluster health_checks",
               edits: [(clusterAnchor, clusterAnchor + "    health_checks: [ { timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 1, http_health_check: { path: /healthz } } ]\n")],
               refusalPath: "\(cluster).health_checks"),
    ConfigCase(name: "dns-refresh-rate", feature: "Cluster dns_refresh_rate",
               edits: [("    type: STATIC\n", "    type: STRICT_DNS\n    dns_refresh_rate: 10s\n")], refusalPath: "\(cluster).dns_refresh_rate"),
    ConfigCase(name: "request-timeout", feature: "HCM request_timeout", edits: [(hcmAnchor, hcmAnchor + "          request_timeout: 10s\n")],
               refusalPath: "\(hcm).request_timeout"),
    ConfigCase(name: "request-headers-timeout", feature: "HCM request_headers_timeout",
               edits: [(hcmAnchor, hcmAnchor + "          request_headers_timeout: 5s\n")]),
    ConfigCase(name: "stream-idle-timeout", feature: "HCM stream_idle_timeout",
               edits: [(hcmAnchor, hcmAnchor + "          stream_idle_timeout: 30s\n")], refusalPath: "\(hcm).stream_idle_timeout"),
    ConfigCase(name: "max-connection-duration", feature: "HCM common_http_protocol_options.max_connection_duration",
               edits: [(hcmAnchor, hcmAnchor + "          common_http_protocol_options: { max_connection_duration: 60s }\n")],
               refusalPath: "\(hcm).common_http_protocol_options.max_connection_duration"),
    ConfigCase(name: "route-idle-timeout", feature: "Route idle_timeout",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, idle_timeout: 5s }")],
               refusalPath: "\(route).route.idle_timeout"),
    ConfigCase(name: "per-try-timeout", feature: "Retry per_try_timeout",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: 5xx, per_try_timeout: 0.5s } }")],
               refusalPath: "\(route).route.retry_policy.per_try_timeout"),
    ConfigCase(name: "filter-chain-match", feature: "filter_chain_match",
               edits: [("    - filters:\n", "    - filter_chain_match: { destination_port: 10000 }\n      filters:\n")],
               refusalPath: "static_resources.listeners[0].filter_chains[0].filter_chain_match"),
    ConfigCase(name: "tcp-keepalive", feature: "Cluster upstream_connection_options.tcp_keepalive",
               edits: [(clusterAnchor, clusterAnchor + "    upstream_connection_options: { tcp_keepalive: { keepalive_time: 30 } }\n")]),
    ConfigCase(name: "endpoint-priority", feature: "Endpoint priority levels",
               edits: [("      - lb_endpoints:\n", "      - priority: 1\n        lb_endpoints:\n")],
               refusalPath: "\(cluster).load_assignment.endpoints[0].priority"),
    ConfigCase(name: "least-request-weights", feature: "LEAST_REQUEST with unequal endpoint weights",
               edits: [(clusterAnchor, clusterAnchor + "    lb_policy: LEAST_REQUEST\n"),
                       ("port_value: 8080 } } }\n", "port_value: 8080 } } }\n          load_balancing_weight: 3\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8081 } } }\n")],
               refusalPath: "\(cluster).load_assignment"),
    ConfigCase(name: "retriable-status-codes", feature: "retry_on retriable-status-codes",
               edits: [("route: { cluster: web, timeout: 2s }", "route: { cluster: web, timeout: 2s, retry_policy: { retry_on: retriable-status-codes, retriable_status_codes: [503] } }")],
               refusalPath: "\(route).route.retry_policy.retry_on"),
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
]
