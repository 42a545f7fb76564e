import EventLoop

// The typed bootstrap model: what `BootstrapLoader` produces from Envoy v3 YAML (or the v2 shapes
// it still accepts). Every type is an immutable value (`Sendable`), so a loaded bootstrap can be
// published to workers as a snapshot as-is. Defaults are Envoy's and are applied by the loader:
// a field that Envoy defaults is never optional here; an optional timeout means "disabled".
// Durations are `Int64` nanoseconds (`...Nanos`); `EnvoyDuration.format(nanos:)` prints them back.

/// The whole bootstrap file.
public struct Bootstrap: Sendable, Equatable {
    /// `node`: who this proxy is (only reported by the admin API).
    public let node: NodeIdentity?
    /// `admin`: the admin listener; `nil` when the file has no `admin` section (no admin listener).
    public let admin: AdminConfig?
    /// `static_resources.listeners`, in file order.
    public let listeners: [ListenerConfig]
    /// `static_resources.clusters`, in file order; names are unique.
    public let clusters: [ClusterConfig]
    /// `stats_flush_interval` (Envoy default 5 s): how often the main thread merges worker stats.
    public let statsFlushIntervalNanos: Int64
    /// `watchdogs.main_thread_watchdog` (or the deprecated single `watchdog`).
    public let mainThreadWatchdog: WatchdogConfig
    /// `watchdogs.worker_watchdog` (or the deprecated single `watchdog`).
    public let workerWatchdog: WatchdogConfig
    /// `dynamic_resources` (file-based LDS / CDS); nil without.
    public var dynamicResources: DynamicResourcesConfig? = nil
    /// What the dynamic sources delivered: `listeners` / `clusters` above include those resources.
    public var dynamic = DynamicResourceState()
    /// SDS secrets read from files (their certificates are in the TLS configs already).
    public var secrets = SecretState()
    /// `layered_runtime`'s static layers: the keys Ballast applies.
    public var runtime = RuntimeConfig()
    /// `static_resources.listeners` with `protocol: UDP` (udp_proxy), in file order.
    public var udpListeners: [UDPListenerConfig] = []
    /// The bootstrap as written (the -c file with --config-yaml merged over it), as Envoy prints
    /// it in /config_dump (`EnvoyProtoJSONRules`); its static resources are printed from here.
    var printed = PrintedBootstrap()

    public func cluster(named name: String) -> ClusterConfig? { clusters.first { $0.name == name } }
    public func listener(named name: String) -> ListenerConfig? { listeners.first { $0.name == name } }
}

/// `node`: identity strings (`metadata` is accepted and ignored).
public struct NodeIdentity: Sendable, Hashable {
    public let id: String?
    public let cluster: String?
}

/// `admin`.
public struct AdminConfig: Sendable, Hashable {
    /// `admin.address.socket_address` (numeric IP).
    public let address: SocketAddressConfig
    /// `admin.access_log_path`: the admin listener's own request log, if any.
    public let accessLogPath: String?
    /// `admin.access_log`: the v3 replacement of `access_log_path`.
    public let accessLog: [AccessLogConfig]
}

/// `socket_address {address, port_value, protocol}` (`protocol: UDP` only on a udp_proxy listener).
public struct SocketAddressConfig: Sendable, Hashable, CustomStringConvertible {
    public enum HostKind: String, Sendable, Hashable {
        case ipv4
        case ipv6
        /// A DNS name: allowed only for STRICT_DNS and LOGICAL_DNS cluster endpoints.
        case hostname
    }

    /// As written (IPv6 without brackets).
    public let address: String
    /// 0...65535 (0 on a listener asks the kernel for a free port).
    public let port: Int
    public let kind: HostKind
    /// `protocol: UDP`.
    public var isUDP = false

    /// The numeric socket address; `nil` for a hostname (resolve it first).
    public var socketAddress: SocketAddress? {
        kind == .hostname ? nil : SocketAddress(host: address, port: port)
    }

    /// `0.0.0.0` or `::` (any address of the family).
    public var isWildcard: Bool {
        switch kind {
        case .ipv4: address == "0.0.0.0"
        case .ipv6: SocketAddress(host: address, port: 0)?.host == "::"
        case .hostname: false
        }
    }

    public var description: String { kind == .ipv6 ? "[\(address)]:\(port)" : "\(address):\(port)" }
}

/// `watchdogs.*_watchdog` / `watchdog`: when a loop that has not turned counts as a miss, a mega
/// miss, or kills the process (Envoy's defaults: 200 ms, 1 s, kill disabled).
public struct WatchdogConfig: Sendable, Hashable {
    public let missTimeoutNanos: Int64
    public let megamissTimeoutNanos: Int64
    /// `nil`: never kill.
    public let killTimeoutNanos: Int64?
    /// `nil`: never kill for many stuck threads at once.
    public let multikillTimeoutNanos: Int64?
    /// Percent of threads that must be stuck past `multikillTimeoutNanos` (default 0: any).
    public let multikillThresholdPercent: Double

    public static let envoyDefault = WatchdogConfig(
        missTimeoutNanos: 200_000_000, megamissTimeoutNanos: 1_000_000_000,
        killTimeoutNanos: nil, multikillTimeoutNanos: nil, multikillThresholdPercent: 0)
}

/// The bootstrap's text as /config_dump prints it. Not configuration: every two values compare
/// equal, so two spellings of the same configuration (a v2 shape and its v3 form) load equal.
struct PrintedBootstrap: Sendable, Equatable {
    var json: ProtoJSON? = nil

    static func == (a: PrintedBootstrap, b: PrintedBootstrap) -> Bool { true }
}
