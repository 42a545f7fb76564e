import Balancers

/// `static_resources.listeners[]`.
public struct ListenerConfig: Sendable, Equatable {
    /// `name` (unique). When the file has none, Envoy-style `<address>:<port>` is used.
    public let name: String
    /// `address.socket_address` (numeric IP; port 0 picks a free one).
    public let address: SocketAddressConfig
    /// `filter_chains[]`: at least one unless `default_filter_chain` is set. With more than one,
    /// their `filter_chain_match`es do not overlap; each connection runs the one that matches
    /// (`FilterChainSelector`).
    public let filterChains: [FilterChainConfig]
    /// `default_filter_chain`: the chain of connections that match none of `filterChains`
    /// (without it they are closed and counted as `no_filter_chain_match`).
    public var defaultFilterChain: FilterChainConfig? = nil
    /// `listener_filters[]`, run in order on each accepted connection before a chain is chosen.
    public let listenerFilters: [ListenerFilterConfig]
    /// `listener_filters_timeout` (Envoy default 15 s; `nil` when set to 0s: wait forever).
    public let listenerFiltersTimeoutNanos: Int64?
    /// `continue_on_listener_filters_timeout` (default false: close the connection on timeout).
    public let continueOnListenerFiltersTimeout: Bool
    /// `enable_reuse_port` (Envoy default true on Linux: one SO_REUSEPORT socket per worker).
    public let enableReusePort: Bool
    /// `connection_balance_config: {exact_balance: {}}` was given.
    public let exactBalance: Bool
    /// `ballast_balance`: the Ballast extension that names the accept strategy, if given.
    public let ballastBalance: BalanceSpec?
    /// The accept strategy this listener runs with, from (in order) `ballast_balance`,
    /// `connection_balance_config.exact_balance` (least-loaded by connections, as Envoy),
    /// `enable_reuse_port: false` (shared socket) or Envoy's default (reuseport).
    /// `ballast proxy --balance` overrides it for every listener: see `effectiveBalance(override:)`.
    public let balance: BalanceSpec
    /// `per_connection_buffer_limit_bytes` (Envoy default 1 MiB): read-buffer high-water mark.
    public let perConnectionBufferLimitBytes: Int
    /// `tcp_backlog_size`; `nil`: the kernel's `net.core.somaxconn`, as Envoy on Linux.
    public let tcpBacklogSize: Int?
    /// `stat_prefix`: replaces the address in `listener.<address>.*` stats names when set.
    public let statPrefix: String?
    /// `traffic_direction` (informational, as Istio sets it).
    public let trafficDirection: TrafficDirection
    /// `use_original_dst`: restore the original destination of redirected connections (the
    /// original_dst listener filter is then in `listenerFilters`, as Envoy adds it). Envoy would
    /// also hand such a connection to the listener bound to that destination; Ballast accepts the
    /// field only in a bootstrap with one listener, where that hand-off cannot happen.
    public var useOriginalDst: Bool = false

    /// Whether accepted connections get their pre-redirect destination as local address.
    public var restoresOriginalDst: Bool { listenerFilters.contains(.originalDst) }

    /// The strategy after the command line's `--balance`, which wins when given.
    public func effectiveBalance(override: BalanceSpec?) -> BalanceSpec { override ?? balance }
}

public enum TrafficDirection: String, Sendable, Hashable, CaseIterable {
    case unspecified = "UNSPECIFIED"
    case inbound = "INBOUND"
    case outbound = "OUTBOUND"
}

/// The Ballast extension field on a listener, `ballast_balance` (not an Envoy field; Envoy would
/// reject it), read into Balancers' `BalanceSpec`:
///
/// ```yaml
/// ballast_balance:
///   strategy: least-loaded   # reuseport | shared | dispatch | least-loaded | p2c   (required)
///   metric: connections      # connections | requests | busy: least-loaded and p2c only (default connections)
///   epoll_exclusive: true    # shared only: EPOLLEXCLUSIVE wake-ups (default false)
///   accept_batch: 64         # accepts per readiness event before other work (default: until EAGAIN)
///   msg_ring: true           # dispatch, least-loaded, p2c: io_uring hand-off by IORING_OP_MSG_RING (default false)
/// ```
///
/// `ballast proxy --balance NAME[:OPTIONS]` takes the same choice in `BalanceSpec.parse` form and
/// overrides every listener's.
public enum BallastBalanceField {
    public static let name = "ballast_balance"
}

/// `listener_filters[]`: run on each accepted connection before a filter chain is chosen.
public enum ListenerFilterConfig: Sendable, Hashable {
    /// `envoy.filters.listener.http_inspector`: detects HTTP/1.x from the first bytes.
    case httpInspector
    /// `envoy.filters.listener.original_dst`: restores the pre-redirect destination (SO_ORIGINAL_DST).
    case originalDst
    /// `envoy.filters.listener.tls_inspector`: detects TLS from the ClientHello, with its SNI and ALPN.
    case tlsInspector

    public var name: String {
        switch self {
        case .httpInspector: FilterNames.httpInspector
        case .originalDst: FilterNames.originalDst
        case .tlsInspector: FilterNames.tlsInspector
        }
    }

    /// Whether the filter reads the connection's first bytes (so a chain is chosen only then).
    public var inspectsBytes: Bool { self != .originalDst }
}

/// `filter_chains[]`.
public struct FilterChainConfig: Sendable, Hashable {
    /// `name` (optional in Envoy).
    public let name: String?
    /// `filter_chain_match`; `nil` matches every connection.
    public let match: FilterChainMatchConfig?
    /// `filters[]`: network filters in order; the last one is terminal (http_connection_manager or tcp_proxy).
    public let filters: [NetworkFilterConfig]
    /// `transport_socket` (envoy.transport_sockets.tls with a DownstreamTlsContext): TLS termination.
    public var tls: TLSConfig? = nil
}

/// `filter_chain_match`: every field of Envoy's, checked in Envoy's order (FilterChainSelector).
/// An unset field matches any connection; a set one must match.
public struct FilterChainMatchConfig: Sendable, Hashable {
    /// `destination_port` (the local port, or the original destination's with original_dst).
    public var destinationPort: Int? = nil
    /// `prefix_ranges`: the destination address.
    public var prefixRanges: [CIDRRange] = []
    /// `server_names` (lower case): exact (`www.example.com`) or wildcard (`*.example.com`), the
    /// SNI tls_inspector found.
    public var serverNames: [String] = []
    /// `transport_protocol`: `tls` (tls_inspector found a ClientHello) or `raw_buffer` (anything else).
    public var transportProtocol: String? = nil
    /// `application_protocols`: the ClientHello's ALPN (tls_inspector) or `http/1.1`, `http/1.0`,
    /// `h2c` (http_inspector).
    public var applicationProtocols: [String] = []
    /// `direct_source_prefix_ranges`: the peer's address.
    public var directSourcePrefixRanges: [CIDRRange] = []
    /// `source_type`.
    public var sourceType: ConnectionSourceType = .any
    /// `source_prefix_ranges`: the peer's address (Ballast reads no PROXY protocol: the same as direct).
    public var sourcePrefixRanges: [CIDRRange] = []
    /// `source_ports`.
    public var sourcePorts: [Int] = []
}

/// `filter_chain_match.source_type`.
public enum ConnectionSourceType: String, Sendable, Hashable, CaseIterable {
    case any = "ANY"
    /// The peer is a loopback address or the connection's own local address.
    case sameIPOrLoopback = "SAME_IP_OR_LOOPBACK"
    case external = "EXTERNAL"
}

/// A network filter of a filter chain.
public enum NetworkFilterConfig: Sendable, Hashable {
    /// `envoy.filters.network.http_connection_manager`.
    case httpConnectionManager(HTTPConnectionManagerConfig)
    /// `envoy.filters.network.tcp_proxy`.
    case tcpProxy(TCPProxyConfig)

    public var name: String {
        switch self {
        case .httpConnectionManager: FilterNames.httpConnectionManager
        case .tcpProxy: FilterNames.tcpProxy
        }
    }
}

/// Envoy's extension names and `@type` URLs that Ballast knows.
public enum FilterNames {
    public static let httpConnectionManager = "envoy.filters.network.http_connection_manager"
    public static let tcpProxy = "envoy.filters.network.tcp_proxy"
    public static let router = "envoy.filters.http.router"
    public static let workerCost = "ballast.filters.http.worker_cost"
    public static let localRateLimit = "envoy.filters.http.local_ratelimit"
    public static let fault = "envoy.filters.http.fault"
    public static let cors = "envoy.filters.http.cors"
    public static let csrf = "envoy.filters.http.csrf"
    public static let rbac = "envoy.filters.http.rbac"
    public static let healthCheck = "envoy.filters.http.health_check"
    public static let buffer = "envoy.filters.http.buffer"
    public static let compressor = "envoy.filters.http.compressor"
    public static let decompressor = "envoy.filters.http.decompressor"
    public static let cache = "envoy.filters.http.cache"
    public static let extAuthz = "envoy.filters.http.ext_authz"
    public static let httpInspector = "envoy.filters.listener.http_inspector"
    public static let originalDst = "envoy.filters.listener.original_dst"
    public static let tlsInspector = "envoy.filters.listener.tls_inspector"
    public static let fileAccessLog = "envoy.access_loggers.file"
    public static let stdoutAccessLog = "envoy.access_loggers.stdout"
    public static let stderrAccessLog = "envoy.access_loggers.stderr"
    public static let upstreamHTTPProtocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
}

extension ListenerConfig {
    /// The access logs of each filter chain's terminal filter (http_connection_manager or
    /// tcp_proxy), the default chain last: what the log thread compiles and what an update may
    /// not change on a running listener.
    var accessLogsPerChain: [[AccessLogConfig]] {
        (filterChains + (defaultFilterChain.map { [$0] } ?? [])).map { chain in
            switch chain.filters.last {
            case .httpConnectionManager(let h): h.accessLog
            case .tcpProxy(let t): t.accessLog
            case nil: []
            }
        }
    }
}
