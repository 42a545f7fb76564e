import Foundation

// The one bootstrap both proxies run (ports and the access-log path substituted per proxy).
// Listeners: `plain` (HCM defaults), `remote` (use_remote_address: true), ... (below).

/// Access-log line: every field the suite compares, one `key=value` per field.
let differentialLogFormat =
    "case=%REQ(X-CASE)% code=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% details=%RESPONSE_CODE_DETAILS% "
    + "rid=%REQ(X-REQUEST-ID)% proto=%PROTOCOL% upstream=%UPSTREAM_HOST% sent=%BYTES_SENT% received=%BYTES_RECEIVED%\\n"

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
]

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
                    virtual_hosts:
                    - name: main
                      domains: ["example.com"]
                      routes:
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

        """
        listeners += """
                  http_filters:
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
