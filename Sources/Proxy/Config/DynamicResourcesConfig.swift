import Glibc

/// `dynamic_resources`: listeners and clusters from files (Envoy's `path_config_source`, or the
/// older `path` form). Each file holds a DiscoveryResponse: `version_info` and a `resources` list
/// of typed Listener / Cluster messages. gRPC / REST sources are refused.
public struct DynamicResourcesConfig: Sendable, Hashable {
    /// `lds_config`.
    public let lds: FileConfigSource?
    /// `cds_config`.
    public let cds: FileConfigSource?
}

/// One file subscription.
public struct FileConfigSource: Sendable, Hashable {
    /// The file Envoy reads (a path not ending in .yaml / .yml is read as JSON, as Envoy).
    public let path: String
    /// `path_config_source.watched_directory.path`: a move into this directory triggers a re-read
    /// (Kubernetes ConfigMap symlink swaps); nil: a move onto `path` itself does.
    public let watchedDirectory: String?
}

/// The two resource types the bootstrap's dynamic_resources deliver (EDS / RDS: `SubscriptionKey`).
public enum DynamicResourceKind: String, Sendable, Hashable, CaseIterable {
    case listener, cluster

    public var typeURL: String {
        switch self {
        case .listener: "type.googleapis.com/envoy.config.listener.v3.Listener"
        case .cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        }
    }

    /// The bootstrap field naming the source.
    var configField: String { self == .listener ? "lds_config" : "cds_config" }
}

/// One file subscription: the bootstrap's LDS and CDS, an EDS cluster's `eds_config`, or an
/// http_connection_manager's `rds`. Declared in the order updates are applied (Envoy's: clusters,
/// their endpoints, listeners, their routes).
public enum SubscriptionKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// `cds_config`.
    case cluster
    /// `eds_cluster_config.eds_config` of the named cluster.
    case endpoints(cluster: String)
    /// `lds_config`.
    case listener
    /// `rds` with this `route_config_name` (one subscription per name, as Envoy shares them).
    case routes(name: String)

    public var typeURL: String {
        switch self {
        case .listener: DynamicResourceKind.listener.typeURL
        case .cluster: DynamicResourceKind.cluster.typeURL
        case .endpoints: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
        case .routes: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
        }
    }

    /// The protobuf message name Envoy's errors use.
    var messageName: String { String(typeURL.dropFirst("type.googleapis.com/".count)) }

    /// What the logs call the subscription.
    public var description: String {
        switch self {
        case .listener: "lds_config"
        case .cluster: "cds_config"
        case .endpoints(let name): "eds_config of cluster '\(name)'"
        case .routes(let name): "rds route_config_name '\(name)'"
        }
    }

    /// EDS and RDS subscriptions deliver one resource; a file without it keeps the last one.
    var isSingleResource: Bool {
        switch self {
        case .endpoints, .routes: true
        case .listener, .cluster: false
        }
    }
}

/// What the dynamic sources delivered in the load that built a bootstrap.
public struct DynamicResourceState: Sendable, Hashable {
    /// `version_info` per subscription ("" when the file has none, as Envoy).
    public var versionInfo: [SubscriptionKey: String] = [:]
    /// Names of the listeners / clusters that came from a file (the others are static).
    public var names: [DynamicResourceKind: [String]] = [:]
    /// The file text each subscription's resources were read from (an update of one re-reads only
    /// its file; the others keep this text).
    public var texts: [SubscriptionKey: String] = [:]
    /// Every subscription and its file (the watcher's list).
    public var sources: [SubscriptionKey: FileConfigSource] = [:]
    /// EDS / RDS subscriptions whose last file held no resource (Envoy's `update_empty`): at start
    /// the cluster has no hosts / the routes are empty; on an update the last resource stays.
    public var empty: Set<SubscriptionKey> = []
    /// RDS: the stat_prefix of the first http_connection_manager naming each route configuration
    /// (Envoy's scope `http.<stat_prefix>.rds.<route_config_name>.`).
    public var routeStatPrefixes: [String: String] = [:]
    /// EDS / RDS files that failed at start (true: not YAML / JSON, Envoy's `update_failure`;
    /// false: refused, `update_rejected`): the cluster has no hosts / the routes are empty.
    public var startFailures: [SubscriptionKey: Bool] = [:]
    /// RDS: the route configurations delivered (for /config_dump and `config_reload`).
    public var routeConfigs: [String: RouteConfiguration] = [:]
    /// When each file was read (/config_dump's `last_updated`).
    public var readTimes = ConfigReadTimes()

    public init() {}

    public func isDynamic(_ kind: DynamicResourceKind, _ name: String) -> Bool { names[kind]?.contains(name) ?? false }
}

/// Wall-clock times (milliseconds since the epoch) at which the configuration's texts were read:
/// the bootstrap's (kept by dynamic updates), each subscription's file and each SDS file. Not
/// configuration: every two values compare equal, so reading the same files again changes nothing.
public struct ConfigReadTimes: Sendable, Hashable {
    public var bootstrapMillis: Int64 = 0
    public var subscriptionMillis: [SubscriptionKey: Int64] = [:]
    /// SDS files, by path.
    public var secretFileMillis: [String: Int64] = [:]

    public init() {}

    public static func == (a: ConfigReadTimes, b: ConfigReadTimes) -> Bool { true }
    public func hash(into hasher: inout Hasher) {}

    static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
