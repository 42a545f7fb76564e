import Synchronization

extension ProxyStatsSnapshot {
    /// A listener's filter-chain figures (`listener.<address>.no_filter_chain_match`,
    /// `downstream_pre_cx_*`) and its inspectors' (`tls_inspector.*`, `http_inspector.*`: Envoy
    /// roots them outside the listener, so listeners' figures add up).
    static func addInspectionStats(_ listener: ListenerPlan, _ workers: [DataPathStats], addr: String, labels: [(String, String)],
                                   add: (String, Kind, Int, String, [(String, String)]) -> Void) {
        func sum(_ get: (InspectionCounters) -> Int) -> Int { workers.reduce(0) { $0 + get($1.inspection) } }
        func load(_ a: borrowing Atomic<Int>) -> Int { a.load(ordering: .relaxed) }
        if listener.selector != nil {
            add("listener.\(addr).no_filter_chain_match", .counter, sum { load($0.noFilterChainMatch) },
                "envoy_listener_no_filter_chain_match", labels)
        }
        guard let inspection = listener.inspection else { return }
        add("listener.\(addr).downstream_pre_cx_timeout", .counter, sum { load($0.preCxTimeout) }, "envoy_listener_downstream_pre_cx_timeout", labels)
        add("listener.\(addr).downstream_pre_cx_active", .gauge, sum { load($0.preCxActive) }, "envoy_listener_downstream_pre_cx_active", labels)
        if inspection.inspectors.contains(.tlsInspector) {
            for (name, v) in [("alpn_found", sum { load($0.alpnFound) }), ("alpn_not_found", sum { load($0.alpnNotFound) }),
                              ("client_hello_too_large", sum { load($0.clientHelloTooLarge) }),
                              ("sni_found", sum { load($0.sniFound) }), ("sni_not_found", sum { load($0.sniNotFound) }),
                              ("tls_found", sum { load($0.tlsFound) }), ("tls_not_found", sum { load($0.tlsNotFound) })] {
                add("tls_inspector." + name, .counter, v, "envoy_tls_inspector_" + name, [])
            }
        }
        if inspection.inspectors.contains(.httpInspector) {
            for (name, v) in [("http10_found", sum { load($0.http10Found) }), ("http11_found", sum { load($0.http11Found) }),
                              ("http2_found", sum { load($0.http2Found) }), ("http_not_found", sum { load($0.httpNotFound) }),
                              ("read_error", sum { load($0.readError) })] {
                add("http_inspector." + name, .counter, v, "envoy_http_inspector_" + name, [])
            }
        }
    }
}
