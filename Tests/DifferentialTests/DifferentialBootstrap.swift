import Foundation

// The one bootstrap both proxies run (ports and the access-log path substituted per proxy).
// Listeners: `plain` (HCM defaults), `remote` (use_remote_address: true), ... (below).

/// Access-log line: every field the suite compares, one `key=value` per field.
let differentialLogFormat =
    "case=%REQ(X-CASE)% code=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% details=%RESPONSE_CODE_DETAILS% "
    + "rid=%REQ(X-REQUEST-ID)% proto=%PROTOCOL% upstream=%UPSTREAM_HOST% sent=%BYTES_SENT% received=%BYTES_RECEIVED% "
    + "ulocal=%UPSTREAM_LOCAL_ADDRESS% term=%CONNECTION_TERMINATION_DETAILS%\\n"

/// Listener names and the HCM settings that differ between them (`; ` separates fields).
let differentialListeners: [(name: String, hcmExtra: String)] = [
    ("plain", ""),
    ("remote", "use_remote_address: true"),
    ("hops", "use_remote_address: true; xff_num_trusted_hops: 1"),
    ("skipxff", "use_remote_address: true; skip_xff_append: true"),
    ("http10", "http_protocol_options: { accept_http_10: true }"),
    ("named", "server_name: ballast-test; server_header_transformation: APPEND_IF_ABSENT"),
    // The per-request timers: short enough to expire well before the upstream's 1 s delay.
    ("idle", "stream_idle_timeout: 0.3s"),
    ("rqtimeout", "request_timeout: 0.3s"),
    ("hdrtimeout", "request_headers_timeout: 0.3s"),
    ("ratelimit", ""),
    ("rloff", ""),
    ("fault", ""),
    ("cors", ""),
    ("headers", ""),
    ("upgrade", "upgrade_configs: [ { upgrade_type: websocket } ]"),
    ("csrf", ""),
    // Not named "rbac": Envoy's Prometheus tag extraction reads "http.rbac." as the RBAC filter's prefix.
    ("authz", ""),
    ("rewrite", ""),
    ("retry", ""),
    ("healthcheck", ""),
    ("buffer", ""),
    // Virtual hosts by Host with and without a port (extra virtual hosts below).
    ("vhosts", ""),
    ("stripany", "strip_any_host_port: true"),
    ("stripmatching", "strip_matching_host_port: true"),
]

/// HTTP filters before the router, per listener (one flow-style YAML mapping per line).
let differentialListenerFilters: [String: [String]] = [
    // A shared bucket of 2 tokens that never refills during the run, enabled and enforced.
    "ratelimit": [localRateLimitYAML("rl", bucket: "{ max_tokens: 2, tokens_per_fill: 1, fill_interval: 3600s }", enabled: 100, enforced: 100,
                                     extra: ", response_headers_to_add: [ { append_action: OVERWRITE_IF_EXISTS_OR_ADD, header: { key: x-local-rate-limit, value: 'true' } } ]")],
    // No filter_enabled: Envoy reads it as 0%, the filter does nothing.
    // Header-controlled faults at 100%: a request without the headers gets none.
    "fault": ["{ name: envoy.filters.http.fault, typed_config: { \(faultType), max_active_faults: 100, "
              + "delay: { header_delay: {}, percentage: { numerator: 100 } }, abort: { header_abort: {}, percentage: { numerator: 100 } } } }"],
    "authz": ["{ name: envoy.filters.http.rbac, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, rules: { action: ALLOW, policies: { by-header: { permissions: [ { any: true } ], principals: [ { header: { name: x-user, string_match: { exact: alice } } } ] }, by-path-method: { permissions: [ { and_rules: { rules: [ { url_path: { path: { prefix: /up/public } } }, { header: { name: \":method\", string_match: { exact: GET } } } ] } } ], principals: [ { any: true } ] } } }, shadow_rules: { action: DENY, policies: { deny-local: { permissions: [ { any: true } ], principals: [ { direct_remote_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } } ] } } }, shadow_rules_stat_prefix: shadow_ } }"],
    "csrf": ["{ name: envoy.filters.http.csrf, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: { default_value: { numerator: 0, denominator: HUNDRED } } } }"],
    "healthcheck": [healthCheckFilterYAML],
    "buffer": ["{ name: envoy.filters.http.buffer, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 10 } }"],
    "cors": ["{ name: envoy.filters.http.cors, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors } }"],
    "rloff": ["{ name: envoy.filters.http.local_ratelimit, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: rl_off, token_bucket: { max_tokens: 1, fill_interval: 3600s } } }"],
]

let healthCheckFilterYAML = "{ name: envoy.filters.http.health_check, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck, "
    + "pass_through_mode: false, headers: [ { name: \":path\", string_match: { exact: /healthz } } ] } }"

let faultType = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

let corsPolicyType = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"

/// `{ header: { key: k, value: v } }` with the option's other fields.
func headerOption(_ key: String, _ value: String, _ extra: String = "") -> String {
    "{ header: { key: \(key), value: \"\(value)\" }\(extra.isEmpty ? "" : ", " + extra) }"
}

/// Route-configuration fields per listener (after `name`).
let differentialRouteConfigExtra: [String: String] = [
    "headers": """
                request_headers_to_add: [ \(headerOption("x-global", "global")), \(headerOption("x-level", "global", "append_action: OVERWRITE_IF_EXISTS_OR_ADD")) ]
                response_headers_to_add: [ \(headerOption("x-resp-global", "g")), \(headerOption("x-resp-level", "global", "append_action: ADD_IF_ABSENT")) ]
                response_headers_to_remove: [ x-resp-route-removed ]

    """,
]

/// Virtual-host fields per listener (after `domains`).
let differentialVirtualHostExtra: [String: String] = [
    "csrf": """
                  typed_per_filter_config:
                    envoy.filters.http.csrf: { "@type": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: { default_value: { numerator: 100, denominator: HUNDRED }, runtime_key: csrf.enabled }, additional_origins: [ { suffix: ".friend.test" } ] }

    """,
    "headers": """
                  request_headers_to_add: [ \(headerOption("x-level", "vhost")), \(headerOption("x-client", "vhost", "append_action: ADD_IF_ABSENT")), \(headerOption("x-vh-proto", "%PROTOCOL%")) ]
                  request_headers_to_remove: [ x-drop-me ]
                  response_headers_to_add: [ \(headerOption("x-resp-level", "vhost")), \(headerOption("x-resp-proto", "%PROTOCOL% 100%%")) ]

    """,
    "cors": """
                  typed_per_filter_config:
                    envoy.filters.http.cors: { \(corsPolicyType), allow_origin_string_match: [ { exact: "https://a.example" } ], allow_methods: "GET, POST", allow_headers: "x-a, x-b", expose_headers: "x-up", max_age: "600", allow_credentials: true }

    """,
]

/// Virtual hosts after `main`, per listener.
let differentialExtraVirtualHosts: [String: String] = [
    "vhosts": ["port.test:8080", "*.wild.test", "pre.*", "*"].enumerated().map { i, domain in
        """
                    - name: extra\(i)
                      domains: ["\(domain)"]
                      routes:
                      - match: { prefix: "/" }
                        direct_response: { status: 200, body: { inline_string: "virtual host \(domain)" } }

        """
    }.joined() + ["ALL", "EXTERNAL_ONLY"].map { mode in
        """
                    - name: tls-\(mode.lowercased())
                      domains: ["tls-\(mode.lowercased()).test", "tls-\(mode.lowercased()).test:80"]
                      require_tls: \(mode)
                      routes:
                      - name: tls-only
                        match: { prefix: "/" }
                        direct_response: { status: 200, body: { inline_string: "over tls" } }

        """
    }.joined(),
]

/// Routes before the common ones, per listener.
let differentialListenerRoutes: [String: String] = [
    "rewrite": """
                  - match: { prefix: "/m", headers: [ { name: ":method", string_match: { exact: POST } } ] }
                    direct_response: { status: 200, body: { inline_string: "method post" } }
                  - match: { prefix: "/pre/" }
                    route: { cluster: up, timeout: 5s, prefix_rewrite: "/new/" }
                  - match: { path: "/exact" }
                    route: { cluster: up, timeout: 5s, prefix_rewrite: "/exact-new" }
                  - match: { prefix: "/rx/" }
                    route: { cluster: up, timeout: 5s, regex_rewrite: { pattern: { regex: "^/rx/([^/]+)/(.*)$" }, substitution: "/\\\\2/\\\\1" } }
                  - match: { prefix: "/g/" }
                    route: { cluster: up, timeout: 5s, regex_rewrite: { pattern: { regex: "o" }, substitution: "0" } }
                  - match: { prefix: "/e/" }
                    route: { cluster: up, timeout: 5s, regex_rewrite: { pattern: { regex: "x*" }, substitution: "-" } }

    """,
    "authz": """
                  - match: { prefix: "/rbacopen" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute }
                  - match: { prefix: "/rbacdeny" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.rbac: { "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute, rbac: { rules_stat_prefix: rp_, rules: { action: DENY, policies: { deny-admin: { permissions: [ { or_rules: { rules: [ { url_path: { path: { prefix: /rbacdeny/admin } } }, { header: { name: ":path", string_match: { prefix: /rbacdeny/secret } } } ] } } ], principals: [ { not_id: { header: { name: x-user, string_match: { exact: root } } } } ] }, deny-ip: { permissions: [ { any: true } ], principals: [ { and_ids: { ids: [ { remote_ip: { address_prefix: 10.1.0.0, prefix_len: 16 } }, { header: { name: x-ip-test, present_match: true } } ] } } ] } } } } }

    """,
    "csrf": """
                  - match: { prefix: "/csrfshadow" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.csrf: { "@type": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy, filter_enabled: { default_value: { numerator: 0, denominator: HUNDRED } }, shadow_enabled: { default_value: { numerator: 100, denominator: HUNDRED } } }

    """,
    "upgrade": """
                  - match: { prefix: "/ws-off" }
                    route: { cluster: up, timeout: 5s, upgrade_configs: [ { upgrade_type: websocket, enabled: false } ] }
                  - match: { prefix: "/custom" }
                    route: { cluster: up, timeout: 5s, upgrade_configs: [ { upgrade_type: custom-proto } ] }

    """,
    "buffer": """
                  - match: { prefix: "/nobuf" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.buffer: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, disabled: true }
                  - match: { prefix: "/bigbuf" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.buffer: { "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, buffer: { max_request_bytes: 100 } }

    """,
    "ratelimit": differentialRateLimitRoutes,
    "rloff": differentialRateLimitRoutes,
    "cors": """
                  - match: { prefix: "/corsregex" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.cors: { \(corsPolicyType), allow_origin_string_match: [ { safe_regex: { regex: "https://[a-z]+\\\\.regex\\\\.test" } } ] }
                  - match: { prefix: "/corsstar" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.cors: { \(corsPolicyType), allow_origin_string_match: [ { safe_regex: { regex: "\\\\*" } } ] }
                  - match: { prefix: "/corsroute" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.cors: { \(corsPolicyType), allow_origin_string_match: [ { suffix: ".other.test", ignore_case: true } ], forward_not_matching_preflights: false }

    """,
    "headers": """
                  - match: { prefix: "/rd/https" }
                    redirect: { https_redirect: true }
                    response_headers_to_add: [ \(headerOption("x-resp-route", "redirect")) ]
                  - match: { prefix: "/rd/host" }
                    redirect: { host_redirect: other.test, port_redirect: 8443, response_code: FOUND }
                  - match: { prefix: "/rd/pathq" }
                    redirect: { path_redirect: "/new?a=b", strip_query: true }
                  - match: { prefix: "/rd/path" }
                    redirect: { path_redirect: "/new/place", response_code: TEMPORARY_REDIRECT }
                  - match: { prefix: "/rd/prefix/" }
                    redirect: { prefix_rewrite: "/p2/", strip_query: true, response_code: PERMANENT_REDIRECT }
                  - match: { path: "/rd/scheme" }
                    redirect: { scheme_redirect: HTTP, host_redirect: "example.org", response_code: SEE_OTHER }
                  - match: { prefix: "/hdrdirect" }

                    direct_response: { status: 200, body: { inline_string: "direct body" } }
                    response_headers_to_add: [ \(headerOption("x-resp-route", "direct")), \(headerOption("content-type", "text/x-direct", "append_action: OVERWRITE_IF_EXISTS_OR_ADD")) ]
                  - match: { prefix: "/hdrdead" }
                    route: { cluster: dead }
                    response_headers_to_add: [ \(headerOption("x-resp-route", "dead")) ]
                  - match: { prefix: "/hdr" }
                    route: { cluster: up, timeout: 5s }
                    request_headers_to_add:
                    - \(headerOption("x-copy", "copy of %REQ(X-Client)%"))
                    - \(headerOption("x-client", "overwritten", "append_action: OVERWRITE_IF_EXISTS"))
                    - \(headerOption("x-level", "route"))
                    - \(headerOption("x-peer", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"))
                    - \(headerOption("x-authority", "%REQ(:authority)%"))
                    - \(headerOption("x-missing-copy", "%REQ(x-missing)%"))
                    - \(headerOption("x-empty-kept", "", "keep_empty_value: true"))
                    - \(headerOption("x-empty-dropped", ""))
                    - \(headerOption("x-only-if-there", "no", "append_action: OVERWRITE_IF_EXISTS"))
                    - \(headerOption("x-twice", "a"))
                    - \(headerOption("x-twice", "b"))
                    - \(headerOption("x-legacy", "old", "append: false"))
                    request_headers_to_remove: [ x-remove-me, x-forwarded-proto ]
                    response_headers_to_add:
                    - \(headerOption("x-resp-route", "r"))
                    - \(headerOption("x-resp-route-removed", "gone"))
                    - \(headerOption("x-resp-peer", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"))
                    response_headers_to_remove: [ content-type ]

    """,
    "retry": """
                  - match: { prefix: "/rt/cf" }
                    route: { cluster: dead, retry_policy: { retry_on: connect-failure, num_retries: 2 } }
                  - match: { prefix: "/rt/backoff" }
                    route: { cluster: dead, retry_policy: { retry_on: connect-failure, num_retries: 1, retry_back_off: { base_interval: 0.01s, max_interval: 0.05s } } }
                  - match: { prefix: "/rt/status" }
                    route: { cluster: up, timeout: 0s, retry_policy: { retry_on: retriable-status-codes, retriable_status_codes: [503, 418], num_retries: 2 } }
                  - match: { prefix: "/rt/gw" }
                    route: { cluster: up, timeout: 0s, retry_policy: { retry_on: gateway-error, num_retries: 1 } }
                  - match: { prefix: "/rt/pertry" }
                    route: { cluster: up, timeout: 0s, retry_policy: { retry_on: 5xx, per_try_timeout: 0.2s, num_retries: 1 } }
                  - match: { prefix: "/rt/pertryonly" }
                    route: { cluster: up, timeout: 0s, retry_policy: { retry_on: connect-failure, per_try_timeout: 0.2s, num_retries: 1 } }

    """,
    "fault": """
                  - match: { prefix: "/faultabort" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.fault: { \(faultType), abort: { http_status: 503, percentage: { numerator: 100 } } }
                  - match: { prefix: "/faultdelay" }
                    route: { cluster: up, timeout: 5s }
                    typed_per_filter_config:
                      envoy.filters.http.fault: { \(faultType), delay: { fixed_delay: 0.2s, percentage: { numerator: 1000000, denominator: MILLION } } }

    """,
]

/// Per-route local_ratelimit overrides (`typed_per_filter_config`) for the listeners with the filter.
let differentialRateLimitRoutes = """
              - match: { prefix: "/direct" }
                direct_response: { status: 200, body: { inline_string: "direct body" } }
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit: \(localRateLimitTyped("rl_direct", bucket: "{ max_tokens: 1000, tokens_per_fill: 1000, fill_interval: 1s }", enabled: 100, enforced: 100))
              - match: { prefix: "/shadow" }
                route: { cluster: up, timeout: 5s }
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit: \(localRateLimitTyped("rl_shadow", bucket: "{ max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s }", enabled: 100, enforced: 0))

"""

func localRateLimitTyped(_ prefix: String, bucket: String, enabled: Int, enforced: Int, extra: String = "") -> String {
    "{ \"@type\": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: \(prefix), token_bucket: \(bucket), "
        + "filter_enabled: { runtime_key: rl_enabled, default_value: { numerator: \(enabled), denominator: HUNDRED } }, "
        + "filter_enforced: { runtime_key: rl_enforced, default_value: { numerator: \(enforced), denominator: HUNDRED } }\(extra) }"
}

func localRateLimitYAML(_ prefix: String, bucket: String, enabled: Int, enforced: Int, extra: String = "") -> String {
    "{ name: envoy.filters.http.local_ratelimit, typed_config: \(localRateLimitTyped(prefix, bucket: bucket, enabled: enabled, enforced: enforced, extra: extra)) }"
}

func differentialBootstrap(adminPort: Int, ports: [String: Int], upstreamPort: Int, deadPort: Int, accessLog: String) -> String {
    var listeners = ""
    for (name, fields) in differentialListeners {
        let extra = fields.components(separatedBy: "; ").joined(separator: "\n          ")
        listeners += """
          - name: \(name)
            address:
              socket_address: { address: 127.0.0.1, port_value: \(ports[name]!) }
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: \(name)
                  \(extra)
                  access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: \(accessLog)
                      log_format:
                        text_format_source:
                          inline_string: "\(differentialLogFormat)"
                  route_config:
                    name: routes
        \(differentialRouteConfigExtra[name] ?? "")
                    virtual_hosts:
                    - name: main
                      domains: ["example.com"]
        \(differentialVirtualHostExtra[name] ?? "")
                      routes:
        \(differentialListenerRoutes[name] ?? "")
                      - match: { prefix: "/direct" }
                        direct_response: { status: 200, body: { inline_string: "direct body" } }
                      - match: { prefix: "/dead" }
                        route: { cluster: dead }
                      - match: { prefix: "/notimeout" }
                        route: { cluster: up, timeout: 0s }
                      - match: { safe_regex: { regex: "/re/[0-9]+" } }
                        route: { cluster: up, timeout: 5s }
                      - match: { prefix: "/hre", headers: [ { name: x-version, safe_regex_match: { regex: "v[0-9]+" } } ] }
                        direct_response: { status: 200, body: { inline_string: "regex header" } }
                      - match: { prefix: "/ridle0" }
                        route: { cluster: up, timeout: 0s, idle_timeout: 0s }
                      - match: { prefix: "/ridle" }
                        route: { cluster: up, timeout: 0s, idle_timeout: 0.3s }
                      - match: { prefix: "/slow" }
                        route: { cluster: up, timeout: 0.3s }
                      - match: { prefix: "/up" }
                        route: { cluster: up, timeout: 5s }
        \(differentialExtraVirtualHosts[name] ?? "")
        """
        listeners += """
                  http_filters:
        \((differentialListenerFilters[name] ?? []).map { "          - " + $0 + "\n" }.joined())
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router

        """
    }
    return """
    admin:
      address:
        socket_address: { address: 127.0.0.1, port_value: \(adminPort) }
    static_resources:
      listeners:
    \(listeners)
      clusters:
      - name: up
        connect_timeout: 1s
        type: STATIC
        load_assignment:
          cluster_name: up
          endpoints:
          - lb_endpoints:
            - endpoint:
                address:
                  socket_address: { address: 127.0.0.1, port_value: \(upstreamPort) }
      - name: dead
        connect_timeout: 1s
        type: STATIC
        load_assignment:
          cluster_name: dead
          endpoints:
          - lb_endpoints:
            - endpoint:
                address:
                  socket_address: { address: 127.0.0.1, port_value: \(deadPort) }

    """
}
