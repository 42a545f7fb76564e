import Yams

/// A listener with `address.socket_address.protocol: UDP` and the
/// `envoy.filters.udp_listener.udp_proxy` listener filter
/// (`type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig`): datagrams from
/// each client address form a session with one upstream host of `cluster`.
public struct UDPListenerConfig: Sendable, Hashable {
    public let name: String
    public let address: SocketAddressConfig
    /// `stat_prefix`: `udp.<stat_prefix>.*` stats.
    public let statPrefix: String
    /// The cluster: the matcher's `on_no_match` route (or the deprecated `cluster` field).
    public let cluster: String
    /// `idle_timeout` (Envoy default 60 s): a session without datagrams this long ends.
    public let idleTimeoutNanos: Int64
}

extension BootstrapParser {
    static let udpProxyName = "envoy.filters.udp_listener.udp_proxy"
    static let udpProxyType = "type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig"
    static let udpRouteType = "type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route"

    /// Whether a listener's address says `protocol: UDP`.
    func isUDPListener(_ value: ConfigValue) -> Bool {
        func child(_ node: Node?, _ key: String) -> Node? {
            guard case .mapping(let m)? = node else { return nil }
            for (k, v) in m { if case .scalar(let s) = k, s.string == key { return v } }
            return nil
        }
        guard case .scalar(let p)? = child(child(child(value.node, "address"), "socket_address"), "protocol") else { return false }
        return p.string == "UDP"
    }

    func parseUDPListener(_ value: ConfigValue) -> UDPListenerConfig? {
        guard let f = value.fields(known: ["name", "address", "listener_filters", "enable_reuse_port", "reuse_port", "stat_prefix"],
                                   unsupported: ["udp_listener_config", "filter_chains", "socket_options", "transparent", "freebind",
                                                 "default_filter_chain", "bind_to_port", "access_log", "additional_addresses",
                                                 "connection_balance_config", "listener_filters_timeout", "per_connection_buffer_limit_bytes",
                                                 "tcp_backlog_size", "traffic_direction", "metadata", "drain_type"]) else { return nil }
        // With one socket served by one thread, SO_REUSEPORT changes nothing: either value holds.
        _ = f["enable_reuse_port"]?.bool()
        _ = f["reuse_port"]?.bool()
        _ = f["stat_prefix"]?.string()
        let address = f.required("address").flatMap { a -> SocketAddressConfig? in
            guard let af = a.fields(known: ["socket_address"], unsupported: ["pipe", "envoy_internal_address"]),
                  let socket = af.required("socket_address") else { return nil }
            return parseSocketAddress(socket, allowHostname: false, allowUDP: true)
        }
        let name = f["name"]?.nonEmptyString() ?? address.map { "\($0)" }
        if let name, let v = f["name"] ?? f["address"] { listenerNames.append((name, v)) }
        var proxy: (prefix: String, cluster: String, idle: Int64)?
        let filters = f.required("listener_filters")?.list()
        if let filters {
            if filters.count != 1 {
                f.error("listener_filters", "a UDP listener needs exactly one listener filter, \(Self.udpProxyName) (others are not supported by ballast)")
            } else {
                proxy = parseUDPProxyFilter(filters[0])
            }
        }
        guard let name, let address, let proxy else { return nil }
        return UDPListenerConfig(name: name, address: address, statPrefix: proxy.prefix, cluster: proxy.cluster, idleTimeoutNanos: proxy.idle)
    }

    private func parseUDPProxyFilter(_ value: ConfigValue) -> (prefix: String, cluster: String, idle: Int64)? {
        guard let f = value.fields(known: ["name", "typed_config"], unsupported: ["config_discovery"]) else { return nil }
        guard let name = f.required("name")?.nonEmptyString() else { return nil }
        guard name == Self.udpProxyName else {
            f.error("name", "'\(name)' is not supported on a UDP listener by ballast (supported: \(Self.udpProxyName))")
            return nil
        }
        guard let body = f.required("typed_config"),
              let t = body.fields(known: ["@type", "stat_prefix", "cluster", "matcher", "idle_timeout"],
                                  unsupported: ["use_original_src_ip", "hash_policies", "upstream_socket_config", "use_per_packet_load_balancing",
                                                "access_log", "proxy_access_log", "session_filters", "tunneling_config", "access_log_options"])
        else { return nil }
        if let type = t.required("@type")?.string(), type != Self.udpProxyType {
            t.error("@type", "expected \(Self.udpProxyType), got '\(type)'")
            return nil
        }
        let prefix = t.required("stat_prefix")?.nonEmptyString()
        var cluster: String?
        var clusterValue: ConfigValue?
        if t.has("cluster") && t.has("matcher") {
            t.error("matcher", "set either matcher or the deprecated cluster, not both")
        } else if let c = t["cluster"] {
            t.warning("cluster", "deprecated; use matcher.on_no_match with a route action")
            cluster = c.nonEmptyString()
            clusterValue = c
        } else if let m = t.required("matcher")?.fields(known: ["on_no_match"], unsupported: ["matcher_tree", "matcher_list"]) {
            if let action = m.required("on_no_match")?.fields(known: ["action"], unsupported: ["matcher", "keep_matching"])?
                .required("action")?.fields(known: ["name", "typed_config"]),
               let route = action.required("typed_config")?.fields(known: ["@type", "cluster"]) {
                if let type = route.required("@type")?.string(), type != Self.udpRouteType {
                    route.error("@type", "expected \(Self.udpRouteType), got '\(type)'")
                } else {
                    cluster = route.required("cluster")?.nonEmptyString()
                    clusterValue = route["cluster"]
                }
            }
        }
        if let cluster, let clusterValue { clusterReferences.append(ClusterReference(name: cluster, value: clusterValue)) }
        let idle = timeout(t, "idle_timeout", default: 60_000_000_000)
        guard let prefix, let cluster else { return nil }
        guard let idle else {
            t.error("idle_timeout", "0s (no idle timeout) is not supported by ballast on UDP sessions: give a duration")
            return nil
        }
        return (prefix, cluster, idle)
    }
}
