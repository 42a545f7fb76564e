/// `envoy.filters.network.http_connection_manager` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`).
public struct HTTPConnectionManagerConfig: Sendable, Hashable {
    /// `stat_prefix` (required): `http.<stat_prefix>.*` stats.
    public let statPrefix: String
    /// `codec_type`: AUTO or HTTP1 (both mean HTTP/1.x here; HTTP2/HTTP3 are not supported).
    public let codecType: HTTPCodecType
    /// `route_config` (inline; `rds` is not supported).
    public let routeConfig: RouteConfiguration
    /// `http_filters[]`: the decoder/encoder chain; the router is always last.
    public let httpFilters: [HTTPFilterConfig]
    /// `access_log[]`.
    public let accessLog: [AccessLogConfig]
    /// `common_http_protocol_options.idle_timeout`: close a downstream connection with no active
    /// stream after this (Envoy default 1 h; `nil` when set to 0s: never).
    public let idleTimeoutNanos: Int64?
    /// `common_http_protocol_options.max_connection_duration` (`nil`: unlimited, Envoy's default).
    public let maxConnectionDurationNanos: Int64?
    /// `common_http_protocol_options.max_headers_count` (Envoy default 100; more gets 431).
    public let maxHeadersCount: Int
    /// `common_http_protocol_options.max_stream_duration` (`nil`: unlimited).
    public let maxStreamDurationNanos: Int64?
    /// `max_request_headers_kb` (Envoy default 60 KiB; more gets 431).
    public let maxRequestHeadersKiB: Int
    /// `request_timeout`: whole request received within this (`nil`: disabled, Envoy's default).
    public let requestTimeoutNanos: Int64?
    /// `request_headers_timeout`: request head received within this (`nil`: disabled).
    public let requestHeadersTimeoutNanos: Int64?
    /// `strip_any_host_port` / `strip_matching_host_port` (at most one).
    public var stripHostPort = HostPortStripping.none
    /// `tracing` (Zipkin; nil: none).
    public var tracing: HTTPTracingConfig?
    /// `stream_idle_timeout` (Envoy default 5 min; `nil` when set to 0s: disabled).
    public let streamIdleTimeoutNanos: Int64?
    /// `drain_timeout` (Envoy default 5 s): grace period for in-flight work when draining.
    public let drainTimeoutNanos: Int64
    /// `delayed_close_timeout` (Envoy default 1 s; `nil` when 0s: close at once).
    public let delayedCloseTimeoutNanos: Int64?
    /// `use_remote_address` (default false): the peer address is the client address for XFF.
    public let useRemoteAddress: Bool
    /// `xff_num_trusted_hops` (default 0).
    public let xffNumTrustedHops: Int
    /// `generate_request_id` (default true): add `x-request-id` when missing.
    public let generateRequestID: Bool
    /// `server_name` (default `envoy`): the `server` response header.
    public let serverName: String
    /// `server_header_transformation` (default OVERWRITE).
    public let serverHeaderTransformation: ServerHeaderTransformation
    /// `skip_xff_append` (default false): with use_remote_address, leave x-forwarded-for as sent.
    public var skipXffAppend = false
    /// `http_protocol_options.accept_http_10` (default false: HTTP/1.0 requests get 426).
    public var acceptHTTP10 = false
    /// `upgrade_configs[]`: the Upgrade values (WebSocket...) tunnelled after a 101; others get 403.
    public var upgradeConfigs: [UpgradeConfig] = []
}

/// One `upgrade_configs[]` entry, of the connection manager or of a route (which overrides the
/// manager's entry for the same type).
public struct UpgradeConfig: Sendable, Hashable {
    /// `upgrade_type`, matched against the request's Upgrade value ASCII case-insensitively.
    public let upgradeType: String
    /// `enabled` (default true).
    public let enabled: Bool
}

/// `strip_any_host_port` / `strip_matching_host_port`: the port removed from the Host before
/// routing (and so upstream), as Envoy's connection manager does.
public enum HostPortStripping: Sendable, Hashable {
    case none
    /// Any numeric port.
    case any
    /// Only the port the connection arrived on.
    case matching
}

public enum HTTPCodecType: String, Sendable, Hashable, CaseIterable {
    case auto = "AUTO"
    case http1 = "HTTP1"
}

public enum ServerHeaderTransformation: String, Sendable, Hashable, CaseIterable {
    case overwrite = "OVERWRITE"
    case appendIfAbsent = "APPEND_IF_ABSENT"
    case passThrough = "PASS_THROUGH"
}

/// `http_filters[]`.
public enum HTTPFilterConfig: Sendable, Hashable {
    /// `envoy.filters.http.router` (`type.googleapis.com/envoy.extensions.filters.http.router.v3.Router`).
    case router(RouterFilterConfig)
    /// `ballast.filters.http.worker_cost` (Ballast's extension).
    case workerCost(WorkerCostFilterConfig)
    /// `envoy.filters.http.local_ratelimit`; `configName` is the entry's `name` (the key a
    /// route's `typed_per_filter_config` uses).
    case localRateLimit(LocalRateLimitConfig, configName: String)
    /// `envoy.filters.http.fault`.
    case fault(FaultConfig, configName: String)
    /// `envoy.filters.http.cors` (its policies come from `typed_per_filter_config`).
    case cors(configName: String)
    /// `envoy.filters.http.csrf` (virtual hosts and routes may replace its policy).
    case csrf(CsrfPolicyConfig, configName: String)
    /// `envoy.filters.http.rbac` (routes may replace it or turn it off: RBACPerRoute).
    case rbac(RBACConfig, configName: String)
    /// `envoy.filters.http.health_check` (non-pass-through).
    case healthCheck(HealthCheckFilterConfig)
    /// `envoy.filters.http.buffer`; `configName` keys a route's `BufferPerRoute`.
    case buffer(BufferFilterConfig, configName: String)
    /// `envoy.filters.http.compressor` with the gzip library.
    case compressor(CompressorConfig, configName: String)
    /// `envoy.filters.http.decompressor` with the gzip library, request direction.
    case decompressor(DecompressorConfig)
    /// `envoy.filters.http.cache` with the simple in-memory cache.
    case cache(CacheFilterConfig)
    /// `envoy.filters.http.ext_authz` with an http_service; `configName` keys a route's ExtAuthzPerRoute.
    case extAuthz(ExtAuthzConfig, configName: String)

    public var name: String {
        switch self {
        case .router: FilterNames.router
        case .workerCost: FilterNames.workerCost
        case .localRateLimit: FilterNames.localRateLimit
        case .fault: FilterNames.fault
        case .cors: FilterNames.cors
        case .csrf: FilterNames.csrf
        case .rbac: FilterNames.rbac
        case .healthCheck: FilterNames.healthCheck
        case .compressor: FilterNames.compressor
        case .decompressor: FilterNames.decompressor
        case .buffer: FilterNames.buffer
        case .cache: FilterNames.cache
        case .extAuthz: FilterNames.extAuthz
        }
    }
}

/// The router filter's own options.
public struct RouterFilterConfig: Sendable, Hashable {
    /// `suppress_envoy_headers` (default false): do not add `x-envoy-upstream-service-time` and friends.
    public let suppressEnvoyHeaders: Bool

    public static let `default` = RouterFilterConfig(suppressEnvoyHeaders: false)
}

/// `route_config`.
public struct RouteConfiguration: Sendable, Hashable {
    /// `name` (optional in Envoy; empty when absent).
    public let name: String
    /// `virtual_hosts[]`: chosen by the request's Host (domains are unique across virtual hosts).
    public let virtualHosts: [VirtualHostConfig]
    /// The route configuration's header mutations (applied last, as Envoy).
    public var headerMutations: HeaderMutationsConfig = .none
}

/// `virtual_hosts[]`.
public struct VirtualHostConfig: Sendable, Hashable {
    /// `name` (required).
    public let name: String
    /// `domains[]` (at least one), lowercased.
    public let domains: [DomainPattern]
    /// `routes[]`: first match wins.
    public let routes: [RouteConfig]
    /// `retry_policy`: the default for routes without their own.
    public let retryPolicy: RetryPolicyConfig?
    /// `typed_per_filter_config` (CORS policies only at this level).
    public var perFilterConfigs: [String: PerRouteFilterConfig] = [:]
    /// The virtual host's header mutations.
    public var headerMutations: HeaderMutationsConfig = .none
    /// `require_tls`: a plain-text request gets a 301 to its https:// URL before any route.
    public var requireTLS: RequireTLS = .none
}

/// `virtual_hosts[].require_tls`. Ballast knows no internal addresses (Envoy 1.40's default
/// `internal_address_config` has none either), so every request is external: EXTERNAL_ONLY acts as ALL.
public enum RequireTLS: String, Sendable, Hashable, CaseIterable {
    case none = "NONE"
    case externalOnly = "EXTERNAL_ONLY"
    case all = "ALL"
}

/// One `domains[]` entry, matched against the Host header (lowercased, its port included as
/// sent, as Envoy 1.40). Precedence: exact, then longest suffix, then longest prefix, then `*`.
public enum DomainPattern: Sendable, Hashable, CustomStringConvertible {
    /// `*`
    case any
    /// `example.com`, `example.com:8080`
    case exact(String)
    /// `*.example.com` or `*-bar.example.com`: the host ends with the text after `*`
    /// (and has at least one more character).
    case suffix(String)
    /// `example.*`: the host starts with the text before `*`.
    case prefix(String)

    public var description: String {
        switch self {
        case .any: "*"
        case .exact(let s): s
        case .suffix(let s): "*" + s
        case .prefix(let s): s + "*"
        }
    }
}

/// `routes[]`.
public struct RouteConfig: Sendable, Hashable {
    /// `name` (optional): `%ROUTE_NAME%` in access logs.
    public let name: String?
    public let match: RouteMatchConfig
    public let action: RouteActionConfig
    /// `typed_per_filter_config`: per HTTP filter name, that filter's config for this route.
    public var perFilterConfigs: [String: PerRouteFilterConfig] = [:]
    /// The route's header mutations (applied first, as Envoy).
    public var headerMutations: HeaderMutationsConfig = .none
    /// `decorator`: the span's name for requests on this route.
    public var decorator: RouteDecoratorConfig?
}

/// A filter's config in a route's `typed_per_filter_config`.
public enum PerRouteFilterConfig: Sendable, Hashable {
    case localRateLimit(LocalRateLimitConfig)
    case fault(FaultConfig)
    case cors(CorsPolicyConfig)
    case csrf(CsrfPolicyConfig)
    /// RBACPerRoute: nil turns the filter off on the route.
    case rbac(RBACConfig?)
    case buffer(BufferPerRouteConfig)
    /// CompressorPerRoute `disabled: true`.
    case compressorDisabled
    /// ExtAuthzPerRoute `disabled: true`.
    case extAuthzDisabled
}

/// `routes[].match`.
public struct RouteMatchConfig: Sendable, Hashable {
    /// Exactly one of `prefix`, `path`, `safe_regex`.
    public let path: PathMatch
    /// `case_sensitive` (default true).
    public let caseSensitive: Bool
    /// `headers[]`: all must match.
    public let headers: [HeaderMatcherConfig]
    /// `query_parameters[]`: all must match.
    public let queryParameters: [QueryParameterMatcherConfig]
}

public enum PathMatch: Sendable, Hashable {
    /// `prefix`: the path (without query) starts with this.
    case prefix(String)
    /// `path`: the path (without query) equals this.
    case path(String)
    /// `safe_regex.regex`: the whole path (without query) matches (RE2 syntax; checked at load).
    case safeRegex(String)
}

/// `headers[]` of a route match.
public struct HeaderMatcherConfig: Sendable, Hashable {
    /// `name`, lowercased (`:authority`, `:method`, `:path` are allowed).
    public let name: String
    public let match: HeaderMatch
    /// `invert_match` (default false).
    public let invert: Bool
}

public enum HeaderMatch: Sendable, Hashable {
    /// `present_match: true/false`.
    case present(Bool)
    /// `string_match`, or the older `exact_match`, `prefix_match`, `suffix_match`,
    /// `contains_match`, `safe_regex_match`.
    case string(StringMatcherConfig)
}

/// Envoy's StringMatcher.
public struct StringMatcherConfig: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case exact, prefix, suffix, contains
        case safeRegex = "safe_regex"
    }

    public let kind: Kind
    /// The text, or the regex for `safeRegex` (whole-value match).
    public let value: String
    /// `ignore_case` (not allowed with `safe_regex`).
    public let ignoreCase: Bool
}

/// `query_parameters[]` of a route match.
public struct QueryParameterMatcherConfig: Sendable, Hashable {
    public let name: String
    /// `nil` for `present_match: true`.
    public let stringMatch: StringMatcherConfig?
}

/// What a matched route does.
public enum RouteActionConfig: Sendable, Hashable {
    /// `route`: forward to a cluster.
    case forward(RouteForwardConfig)
    /// `direct_response`: answer locally.
    case directResponse(DirectResponseConfig)
    /// `redirect`: answer locally with a 3xx and `location`.
    case redirect(RedirectConfig)
}

/// `routes[].route`.
public struct RouteForwardConfig: Sendable, Hashable {
    /// `cluster` or `weighted_clusters`.
    public let target: RouteTarget
    /// `timeout`: whole upstream exchange (Envoy default 15 s; `nil` when 0s: none). 504 UT.
    public let timeoutNanos: Int64?
    /// `idle_timeout`: per-stream idle timeout overriding the manager's (`nil`: the manager's; 0: none).
    public let idleTimeoutNanos: Int64?
    /// `prefix_rewrite`: replaces the matched prefix (prefix matches only).
    public let prefixRewrite: String?
    /// `host_rewrite_literal`: the Host sent upstream.
    public let hostRewriteLiteral: String?
    /// `retry_policy`: this route's, else the virtual host's, else none.
    public let retryPolicy: RetryPolicyConfig?
    /// `hash_policy[]`: for RING_HASH clusters (ignored by other policies).
    public let hashPolicy: [HashPolicyConfig]
    /// `upgrade_configs[]`: per-type overrides of the connection manager's.
    public var upgradeConfigs: [UpgradeConfig] = []
    /// `regex_rewrite`: the path rewritten by an RE2 pattern and substitution (never with prefix_rewrite).
    public var regexRewrite: RegexRewriteConfig?
    /// `request_mirror_policies[]`: shadow copies of each request (docs/mirroring.md).
    public var mirrorPolicies: [MirrorPolicyConfig] = []
}

/// A route's `request_mirror_policies` entry.
public struct MirrorPolicyConfig: Sendable, Hashable {
    /// `cluster`, or nil with `cluster_header`.
    public let cluster: String?
    /// `cluster_header` (lower-case): the request's field naming the mirror cluster per request.
    public var clusterHeader: String? = nil
    /// `runtime_fraction.default_value` (nil: every request). Its runtime key is never set
    /// (layered_runtime refuses such keys), so Envoy draws against the default too.
    public let fraction: FractionalPercent?
    /// `disable_shadow_host_suffix_append`: the Host goes to the mirror unchanged.
    public let disableHostSuffix: Bool
}

public struct RegexRewriteConfig: Sendable, Hashable {
    public let pattern: String
    public let substitution: String
}

public enum RouteTarget: Sendable, Hashable {
    case cluster(String)
    /// `weighted_clusters.clusters[]`: split by weight (sum > 0).
    case weighted([WeightedClusterConfig])

    /// Every cluster the route may send to.
    public var clusterNames: [String] {
        switch self {
        case .cluster(let name): [name]
        case .weighted(let list): list.map(\.name)
        }
    }
}

public struct WeightedClusterConfig: Sendable, Hashable {
    public let name: String
    public let weight: Int
}

/// `retry_policy`.
public struct RetryPolicyConfig: Sendable, Hashable {
    /// `retry_on`: a comma-separated list in YAML.
    public let retryOn: [RetryOn]
    /// `num_retries` (Envoy default 1).
    public let numRetries: Int
    /// `per_try_timeout` (`nil`: only the route timeout applies).
    public let perTryTimeoutNanos: Int64?
    /// `retriable_status_codes` (for `retriable-status-codes`).
    public let retriableStatusCodes: [Int]
    /// `retry_back_off.base_interval` (Envoy default 25 ms) and `max_interval` (default 10x base).
    public var backOffBaseNanos: Int64 = 25_000_000
    public var backOffMaxNanos: Int64 = 250_000_000
    /// `retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts}]`: a retry
    /// avoids the hosts already tried.
    public var avoidPreviousHosts = false
    /// `host_selection_retry_max_attempts` (Envoy default 1): picks after the first one that the
    /// predicate may reject.
    public var hostSelectionRetryMaxAttempts = 1
}

/// `retry_on` conditions Ballast implements (HTTP/1.1 meaningful ones).
public enum RetryOn: String, Sendable, Hashable, CaseIterable {
    case serverError = "5xx"
    case gatewayError = "gateway-error"
    case reset = "reset"
    case connectFailure = "connect-failure"
    case retriable4xx = "retriable-4xx"
    case retriableStatusCodes = "retriable-status-codes"
}

/// `hash_policy[]`.
public struct HashPolicyConfig: Sendable, Hashable {
    public enum Source: Sendable, Hashable {
        /// `header.header_name` (lowercased).
        case header(String)
        /// `cookie {name, ttl?, path?}`: with a ttl, a missing cookie is generated (sticky sessions).
        case cookie(name: String, ttlNanos: Int64?, path: String?)
        /// `connection_properties.source_ip: true`.
        case sourceIP
    }

    public let source: Source
    /// `terminal` (default false): stop at this policy when it produced a hash.
    public let terminal: Bool
}

/// `routes[].direct_response`.
public struct DirectResponseConfig: Sendable, Hashable {
    /// `status` (100...599).
    public let status: Int
    /// `body.inline_string` (at most 4 KiB, as Envoy's default limit).
    public let body: String?
}
