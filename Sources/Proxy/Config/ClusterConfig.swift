/// `static_resources.clusters[]`.
public struct ClusterConfig: Sendable, Hashable {
    /// `name` (required, unique).
    public let name: String
    /// `type` (Envoy default STATIC).
    public let discoveryType: ClusterDiscoveryType
    /// `connect_timeout` (Envoy default 5 s; must be > 0). Expiry counts as a connect failure (UF).
    public let connectTimeoutNanos: Int64
    /// `lb_policy` (Envoy default ROUND_ROBIN).
    public let lbPolicy: LoadBalancingPolicy
    /// `load_assignment.endpoints[].lb_endpoints[]`, flattened in file order (or the v2 `hosts`).
    public let endpoints: [EndpointConfig]
    /// `circuit_breakers.thresholds[]` by priority, Envoy's defaults filled in.
    public let circuitBreakers: CircuitBreakersConfig
    /// Upstream HTTP connection reuse limits (keepalive).
    public let upstreamHTTP: UpstreamHTTPOptions
    /// `upstream_connection_options.tcp_keepalive` (`nil`: no SO_KEEPALIVE).
    public let tcpKeepalive: TCPKeepaliveConfig?
    /// `dns_refresh_rate` (Envoy default 5 s): re-resolution period for DNS clusters.
    public let dnsRefreshRateNanos: Int64
    /// `dns_lookup_family` (Envoy default AUTO: IPv6 first, else IPv4).
    public let dnsLookupFamily: DNSLookupFamily
    /// `respect_dns_ttl` (default false).
    public let respectDNSTTL: Bool
    /// `least_request_lb_config.choice_count` (Envoy default 2: power of two choices).
    public let leastRequestChoiceCount: Int
    /// `ring_hash_lb_config` (defaults when absent).
    public let ringHash: RingHashConfig
    /// `per_connection_buffer_limit_bytes` (Envoy default 1 MiB).
    public let perConnectionBufferLimitBytes: Int
    /// `health_checks[]` (at most one is used per host, as Envoy does; all are kept).
    public let healthChecks: [HealthCheckConfig]
    /// `cleanup_interval` (Envoy default 5 s): an ORIGINAL_DST host unused this long is removed
    /// and its idle connections closed. Ignored by other types, as in Envoy.
    public var cleanupIntervalNanos: Int64 = 5_000_000_000
    /// `transport_socket` (envoy.transport_sockets.tls with an UpstreamTlsContext): TLS origination.
    public var tls: TLSConfig? = nil
    /// `common_lb_config.healthy_panic_threshold` (Envoy default 50%; 0 disables panic routing).
    public var healthyPanicThresholdPercent: Double = 50
    /// `common_lb_config.locality_weighted_lb_config`: a priority's localities share its traffic
    /// by their `load_balancing_weight` (else locality weights are ignored, as Envoy).
    public var localityWeighted = false
    /// `load_assignment.policy.overprovisioning_factor` (percent, Envoy's default 140): a priority
    /// counts as fully available once this times its healthy share reaches 100%.
    public var overprovisioningFactor = 140
    /// `outlier_detection` (nil: none; passive health, docs/outlier-detection.md).
    public var outlierDetection: OutlierDetectionConfig? = nil
    /// `upstream_bind_config.source_address`: every upstream connection (requests, tcp_proxy,
    /// health checks) binds it before connecting (nil: the kernel chooses), e.g. Istio's 127.0.0.6.
    public var sourceAddress: SocketAddressConfig? = nil
}

public enum ClusterDiscoveryType: String, Sendable, Hashable, CaseIterable {
    /// Endpoints are numeric addresses, fixed.
    case `static` = "STATIC"
    /// Every endpoint name is resolved on the main thread; all addresses become hosts.
    case strictDNS = "STRICT_DNS"
    /// One endpoint name; the first address is used for new connections.
    case logicalDNS = "LOGICAL_DNS"
    /// No endpoints: each connection goes to the original destination of the downstream
    /// connection (restored by the original_dst listener filter). lb_policy CLUSTER_PROVIDED.
    case originalDst = "ORIGINAL_DST"
    /// Endpoints from `eds_cluster_config.eds_config`: a file holding a ClusterLoadAssignment,
    /// re-read when replaced (numeric addresses, as static ones).
    case eds = "EDS"

    public var usesDNS: Bool { self == .strictDNS || self == .logicalDNS }
}

public enum LoadBalancingPolicy: String, Sendable, Hashable, CaseIterable {
    case roundRobin = "ROUND_ROBIN"
    /// Power of `leastRequestChoiceCount` choices by active requests.
    case leastRequest = "LEAST_REQUEST"
    case random = "RANDOM"
    /// Consistent hashing on the route's `hash_policy` (session affinity).
    case ringHash = "RING_HASH"
    /// The cluster picks the host itself (ORIGINAL_DST clusters only, as in Envoy).
    case clusterProvided = "CLUSTER_PROVIDED"
}

public enum DNSLookupFamily: String, Sendable, Hashable, CaseIterable {
    case auto = "AUTO"
    case v4Only = "V4_ONLY"
    case v6Only = "V6_ONLY"
    case v4Preferred = "V4_PREFERRED"
    case all = "ALL"
}

/// One `lb_endpoints[]` entry.
public struct EndpointConfig: Sendable, Hashable {
    /// `endpoint.address.socket_address` (a hostname only in DNS clusters; port 1...65535).
    public let address: SocketAddressConfig
    /// `load_balancing_weight` (default 1).
    public let weight: Int
    /// The locality's `priority` (default 0; lower is preferred).
    public let priority: Int
    /// `endpoint.health_check_config.port_value`: health checks go here instead (`nil`: same port).
    public let healthCheckPort: Int?
    /// The index of its `endpoints[]` entry (its locality) and that entry's locality and weight.
    public var locality = 0
    public var place = LocalityConfig()
}

/// A `LocalityLbEndpoints` entry's `locality` and `load_balancing_weight` (0: unset).
public struct LocalityConfig: Sendable, Hashable {
    public var region = ""
    public var zone = ""
    public var subZone = ""
    public var weight = 0
}

/// `circuit_breakers.thresholds[]` for the two routing priorities.
public struct CircuitBreakersConfig: Sendable, Hashable {
    public let defaultPriority: CircuitBreakerThresholds
    public let highPriority: CircuitBreakerThresholds

    public static let envoyDefault = CircuitBreakersConfig(defaultPriority: .envoyDefault, highPriority: .envoyDefault)
}

/// One `thresholds[]` entry. Overflow of any of them answers 503 with response flag UO.
public struct CircuitBreakerThresholds: Sendable, Hashable {
    /// `max_connections` (Envoy default 1024) upstream connections per cluster.
    public let maxConnections: Int
    /// `max_pending_requests` (default 1024) waiting for a connection.
    public let maxPendingRequests: Int
    /// `max_requests` (default 1024) in flight.
    public let maxRequests: Int
    /// `max_retries` (default 3) in flight.
    public let maxRetries: Int
    /// `retry_budget.budget_percent` (Envoy's 20 when `retry_budget` is given; nil: no budget,
    /// `max_retries` applies): retries in flight may reach this percent of the requests active
    /// and pending, but always `minRetryConcurrency` (`min_retry_concurrency`, default 3).
    public var retryBudgetPercent: Double? = nil
    public var minRetryConcurrency = 3

    public static let envoyDefault = CircuitBreakerThresholds(maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3)
}

public enum RoutingPriority: String, Sendable, Hashable, CaseIterable {
    case `default` = "DEFAULT"
    case high = "HIGH"
}

/// Upstream HTTP connection options: `common_http_protocol_options` on the cluster, or (v3)
/// `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
/// .common_http_protocol_options`, plus `max_requests_per_connection`.
public struct UpstreamHTTPOptions: Sendable, Hashable {
    /// `idle_timeout`: close a pooled connection idle this long (Envoy default 1 h; `nil` when 0s: never).
    public let idleTimeoutNanos: Int64?
    /// `max_requests_per_connection` (`nil`: unlimited, Envoy's default).
    public let maxRequestsPerConnection: Int?
    /// `max_connection_duration` (`nil`: unlimited).
    public let maxConnectionDurationNanos: Int64?

    public static let envoyDefault = UpstreamHTTPOptions(idleTimeoutNanos: 3_600_000_000_000, maxRequestsPerConnection: nil, maxConnectionDurationNanos: nil)
}

/// `upstream_connection_options.tcp_keepalive` (unset fields: the kernel's defaults).
public struct TCPKeepaliveConfig: Sendable, Hashable {
    public let probes: Int?
    public let timeSeconds: Int?
    public let intervalSeconds: Int?
}

/// `ring_hash_lb_config`.
public struct RingHashConfig: Sendable, Hashable {
    /// `minimum_ring_size` (Envoy default 1024).
    public let minimumRingSize: Int
    /// `maximum_ring_size` (Envoy default 8M).
    public let maximumRingSize: Int

    public static let envoyDefault = RingHashConfig(minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024)
}

/// `health_checks[]`: active checks run by the main thread.
public struct HealthCheckConfig: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// `http_health_check {path, host?, expected_statuses?}`: default expected 200..<201.
        case http(path: String, host: String?, expectedStatuses: [Range<Int>])
        /// `tcp_health_check {}`: a connect is a pass.
        case tcp
    }

    public let kind: Kind
    /// `timeout` (required).
    public let timeoutNanos: Int64
    /// `interval` (required).
    public let intervalNanos: Int64
    /// `unhealthy_threshold` (required).
    public let unhealthyThreshold: Int
    /// `healthy_threshold` (required).
    public let healthyThreshold: Int
    /// `no_traffic_interval` (Envoy default 60 s).
    public let noTrafficIntervalNanos: Int64
    /// `interval_jitter` (default 0).
    public let intervalJitterNanos: Int64
}
