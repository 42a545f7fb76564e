/// `dynamic_resources`: listeners and clusters from files (Envoy's `path_config_source`, or the
/// older `path` form). Each file holds a DiscoveryResponse: `version_info` and a `resources` list
/// of typed Listener / Cluster messages. gRPC / REST sources are refused.
public struct DynamicResourcesConfig: Sendable, Hashable {
    /// `lds_config`.
    public let lds: FileConfigSource?
    /// `cds_config`.
    public let cds: FileConfigSource?

    public func source(_ kind: DynamicResourceKind) -> FileConfigSource? { kind == .listener ? lds : cds }
}

/// One file subscription.
public struct FileConfigSource: Sendable, Hashable {
    /// The file Envoy reads (a path not ending in .yaml / .yml is read as JSON, as Envoy).
    public let path: String
    /// `path_config_source.watched_directory.path`: a move into this directory triggers a re-read
    /// (Kubernetes ConfigMap symlink swaps); nil: a move onto `path` itself does.
    public let watchedDirectory: String?
}

/// The two resource types a file can deliver.
public enum DynamicResourceKind: String, Sendable, Hashable, CaseIterable {
    case listener, cluster

    public var typeURL: String {
        switch self {
        case .listener: "type.googleapis.com/envoy.config.listener.v3.Listener"
        case .cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        }
    }

    /// The protobuf message name Envoy's errors use.
    var messageName: String { String(typeURL.dropFirst("type.googleapis.com/".count)) }

    /// Envoy's stats scope of the subscription.
    public var statPrefix: String { self == .listener ? "listener_manager.lds" : "cluster_manager.cds" }

    /// The bootstrap field naming the source.
    var configField: String { self == .listener ? "lds_config" : "cds_config" }
}

/// What the dynamic sources delivered in the load that built a bootstrap.
public struct DynamicResourceState: Sendable, Hashable {
    /// `version_info` per kind ("" when the file has none, as Envoy).
    public var versionInfo: [DynamicResourceKind: String] = [:]
    /// Names of the listeners / clusters that came from a file (the others are static).
    public var names: [DynamicResourceKind: [String]] = [:]
    /// The file text each kind was read from (a later update of one kind re-reads only its file).
    public var texts: [DynamicResourceKind: String] = [:]

    public init() {}

    public func isDynamic(_ kind: DynamicResourceKind, _ name: String) -> Bool { names[kind]?.contains(name) ?? false }
}

extension DynamicResourceState: CustomReflectable {
    /// /config_dump shows versions and names, not the file texts.
    public var customMirror: Mirror {
        Mirror(self, children: ["version_info": versionInfo, "names": names], displayStyle: .struct)
    }
}
