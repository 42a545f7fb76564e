import Balancers
import EventLoop
import Glibc
import Synchronization

/// The bootstrap compiled for the workers: routes and domains as bytes, clusters with resolved
/// host addresses, circuit-breaker counters. Immutable after `compile` (the breaker counters are
/// atomics), shared by every worker as one snapshot; a reload (issue 5) builds a new one and
/// publishes it to each worker's mailbox.
public final class DataPlane: Sendable {
    public let listeners: [ListenerPlan]
    /// Every cluster slot (docs/dynamic-config.md, "Cluster slots"): a cluster keeps its slot
    /// (`ClusterPlan.index`) from snapshot to snapshot, so indices held by streams, pools and
    /// per-worker arrays stay valid; a removed cluster leaves a tombstone (`removed`) there.
    public let clusters: [ClusterPlan]
    /// The configured clusters, in configuration order (no tombstones): what admin, stats,
    /// health checks and name lookups go through.
    public let activeClusters: [ClusterPlan]
    /// udp_proxy listeners (served by a thread of their own each, not the workers).
    public let udpListeners: [UDPListenerPlan]
    /// `overload.global_downstream_max_connections` (Int.max: none) and the open downstream
    /// connections over every listener (lent from snapshot to snapshot).
    public let globalConnectionLimit: Int
    public let globalConnections: ConnectionCount
    /// `/healthcheck/fail` state (lent from snapshot to snapshot).
    public let serverHealth: ServerHealth
    /// The runtime keys read per request (the fault filters'), lent while the key set stays.
    public var runtime: RuntimeValues { runtimeValues }
    private let runtimeValues: RuntimeValues

    init(listeners: [ListenerPlan], clusters: [ClusterPlan], activeClusters: [ClusterPlan]? = nil, globalConnectionLimit: Int = .max,
         globalConnections: ConnectionCount = ConnectionCount(), serverHealth: ServerHealth = ServerHealth(),
         udpListeners: [UDPListenerPlan] = [],
         runtime: RuntimeValues = RuntimeValues(keys: [])) {
        self.runtimeValues = runtime
        self.listeners = listeners
        self.udpListeners = udpListeners
        self.clusters = clusters
        self.activeClusters = activeClusters ?? clusters
        self.serverHealth = serverHealth
        self.globalConnectionLimit = globalConnectionLimit
        self.globalConnections = globalConnections
    }

    public struct CompileError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Builds the snapshot. Resolves STRICT_DNS/LOGICAL_DNS endpoint names once (main thread).
    /// On reload, `previous` lends its circuit-breaker counters to clusters of the same name, so
    /// requests in flight give back what they took, and each of its clusters keeps its slot.
    /// `generation` is the one this snapshot will be published as; `canReclaim` says whether a
    /// tombstone's slot may go to a new cluster (nothing refers to it any more, `ProxyOps`).
    public static func compile(_ bootstrap: Bootstrap, previous: DataPlane? = nil, generation: UInt32 = 0,
                               canReclaim: (ClusterPlan) -> Bool = { _ in false }) throws(CompileError) -> DataPlane {
        var slots = ClusterSlots(previous: previous, keeping: Set(bootstrap.clusters.map(\.name)), generation: generation, canReclaim: canReclaim)
        var active: [ClusterPlan] = []
        var clusterIndex: [String: Int] = [:]
        for c in bootstrap.clusters {
            let hosts = Self.hosts(of: c, warn: true)
            let before = slots.previousLive[c.name]
            let resources = before?.resources ?? ClusterResources()
            if before == nil {
                // The first host set of this cluster, and (DNS) its first resolution.
                if !hosts.isEmpty { resources.membershipChange.wrappingAdd(1, ordering: .relaxed) }
                if c.discoveryType.usesDNS {
                    resources.updateAttempt.wrappingAdd(1, ordering: .relaxed)
                    if hosts.isEmpty {
                        resources.updateFailure.wrappingAdd(1, ordering: .relaxed)
                    } else {
                        resources.updateSuccess.wrappingAdd(1, ordering: .relaxed)
                    }
                }
            } else if let before, Set(before.hosts.map(\.name)) != Set(hosts.map(\.name)) {
                resources.membershipChange.wrappingAdd(1, ordering: .relaxed)
            }
            // Host health survives a reload that changes neither the checks nor the hosts.
            // Outlier detection lives in the same object (its ejections survive such a reload too).
            var health: ClusterHealth?
            if c.healthChecks.first != nil || c.outlierDetection != nil {
                if let before, let kept = before.health, before.healthCheck == c.healthChecks.first,
                   kept.outlier?.config == c.outlierDetection,
                   before.hosts.map(\.healthCheckKey) == hosts.map(\.healthCheckKey) {
                    health = kept
                } else {
                    health = ClusterHealth(hostCount: hosts.count, activeChecks: !c.healthChecks.isEmpty, outlier: c.outlierDetection)
                }
            }
            let i = slots.slot(for: c.name)
            let plan = ClusterPlan(index: i, config: c, hosts: hosts, resources: resources, health: health,
                                   since: before?.since ?? generation)
            slots.plans[i] = plan
            active.append(plan)
            clusterIndex[c.name] = i
        }
        slots.finish(previous: previous)
        let clusters = slots.plans.map { $0! }
        var listeners: [ListenerPlan] = []
        let serverHealth = previous?.serverHealth ?? ServerHealth()
        // The keys the fault filters read; the values as the layers have them at load (ProxyOps
        // publishes the admin layer's and the live disk layers' on top).
        let runtime = previous.flatMap { Set($0.runtime.keys) == bootstrap.runtime.faultKeys ? $0.runtime : nil }
            ?? RuntimeValues(keys: bootstrap.runtime.faultKeys)
        runtime.publish(RuntimeValues.merge(bootstrap.runtime.layers.map(\.entries)))
        for (li, l) in bootstrap.listeners.enumerated() {
            guard let address = l.address.socketAddress else {
                throw CompileError(description: "listener '\(l.name)': address \(l.address) is not numeric")
            }
            let configChains = l.filterChains + (l.defaultFilterChain.map { [$0] } ?? [])
            guard !configChains.isEmpty else {
                throw CompileError(description: "listener '\(l.name)': no filter chain")
            }
            var chains: [ListenerPlan.Chain] = []
            var httpPlans: [HTTPPlan] = []
            var httpTLS: [TLSContext?] = []
            var httpChains: [UInt16] = []
            var tcpPlans: [TCPPlan] = []
            for chain in configChains {
                guard let terminal = chain.filters.last else {
                    throw CompileError(description: "listener '\(l.name)': a filter chain without filters")
                }
                switch terminal {
                case .httpConnectionManager(let hcm):
                    guard httpPlans.count < ListenerPlan.maxConnectionManagers else {
                        throw CompileError(description: "listener '\(l.name)': more than \(ListenerPlan.maxConnectionManagers) http_connection_manager chains")
                    }
                    httpChains.append(UInt16(chains.count))
                    chains.append(.http(httpPlans.count))
                    httpPlans.append(try HTTPPlan(hcm, clusterIndex: clusterIndex, listener: l.name, runtime: runtime,
                                                  serviceCluster: bootstrap.node?.cluster ?? "", health: serverHealth))
                    httpTLS.append(chain.tls?.context)
                case .tcpProxy(let tcp):
                    guard let ci = clusterIndex[tcp.cluster] else {
                        throw CompileError(description: "listener '\(l.name)': tcp_proxy cluster '\(tcp.cluster)' is not defined")
                    }
                    chains.append(.tcp(tcpPlans.count))
                    tcpPlans.append(TCPPlan(cluster: ci, idleTimeoutNanos: tcp.idleTimeoutNanos, statPrefix: tcp.statPrefix,
                                            maxConnectAttempts: tcp.maxConnectAttempts, tls: chain.tls?.context))
                }
            }
            // The Zipkin reporter posts a listener's spans to one collector.
            let collectors = Set(httpPlans.compactMap { $0.tracing.map { "\($0.collectorCluster) \($0.collectorEndpoint) \($0.collectorHostname)" } })
            guard collectors.count <= 1 else {
                throw CompileError(description: "listener '\(l.name)': its http_connection_managers trace to different Zipkin collectors; ballast reports a listener's spans to one (use one collector_cluster / collector_endpoint / collector_hostname)")
            }
            // One chain for every connection, nothing to inspect: chosen at accept without a look.
            let selects = configChains.count > 1 || l.filterChains.first?.match != nil || l.filterChains.isEmpty
            let selector = selects ? FilterChainSelector(chains: l.filterChains.map(\.match),
                                                         defaultChain: l.defaultFilterChain == nil ? nil : l.filterChains.count) : nil
            let inspection = ListenerInspection(l)
            // A listener whose address changed is another listener (the old one drains with its count).
            let connections = previous?.listeners.first { $0.name == l.name && $0.address.description == address.description }?.connections
                ?? ConnectionCount()
            listeners.append(ListenerPlan(index: li, name: l.name, address: address, balance: l.balance,
                                          bufferLimitBytes: l.perConnectionBufferLimitBytes,
                                          chains: chains, httpPlans: httpPlans, tcpPlans: tcpPlans, selector: selector, inspection: inspection,
                                          restoresOriginalDst: l.restoresOriginalDst,
                                          connectionLimit: bootstrap.runtime.listenerConnectionLimits[l.name] ?? .max,
                                          connections: connections, httpTLS: httpTLS, httpChains: httpChains))
        }
        var udp: [UDPListenerPlan] = []
        for u in bootstrap.udpListeners {
            guard let address = u.address.socketAddress else {
                throw CompileError(description: "listener '\(u.name)': address \(u.address) is not numeric")
            }
            guard let ci = clusterIndex[u.cluster] else {
                throw CompileError(description: "listener '\(u.name)': udp_proxy cluster '\(u.cluster)' is not defined")
            }
            udp.append(UDPListenerPlan(name: u.name, address: address, statPrefix: u.statPrefix, cluster: ci,
                                       idleTimeoutNanos: u.idleTimeoutNanos))
        }
        return DataPlane(listeners: listeners, clusters: clusters, activeClusters: active,
                         globalConnectionLimit: bootstrap.runtime.globalDownstreamMaxConnections ?? .max,
                         globalConnections: previous?.globalConnections ?? ConnectionCount(), serverHealth: serverHealth,
                         udpListeners: udp, runtime: runtime)
    }

    /// A cluster's hosts: its numeric endpoints, and what its endpoint names resolve to now
    /// (STRICT_DNS: every address; LOGICAL_DNS: the first).
    static func hosts(of c: ClusterConfig, warn: Bool) -> [HostPlan] {
        var hosts: [HostPlan] = []
        for e in c.endpoints {
            if let address = e.address.socketAddress {
                hosts.append(HostPlan(address: address, name: address.description, weight: e.weight, healthCheckPort: e.healthCheckPort,
                                      priority: e.priority, locality: e.locality))
            } else {
                let resolved = resolve(e.address.address, port: e.address.port, family: c.dnsLookupFamily)
                if resolved.isEmpty && warn {
                    Log.warning("cluster '\(c.name)': cannot resolve '\(e.address.address)'; the host is left out")
                }
                for a in (c.discoveryType == .logicalDNS ? Array(resolved.prefix(1)) : resolved) {
                    hosts.append(HostPlan(address: a, name: a.description, weight: e.weight, healthCheckPort: e.healthCheckPort,
                                          hostname: e.address.address, priority: e.priority, locality: e.locality))
                }
            }
        }
        return hosts
    }

    /// getaddrinfo (start-up and reload on the calling thread, refresh on the DNS thread). Names
    /// in `TestHooks.dnsOverrides` resolve to their listed addresses instead.
    static func resolve(_ name: String, port: Int, family: DNSLookupFamily) -> [SocketAddress] {
        if let fixed = TestHooks.dnsOverride(name) { return fixed.compactMap { SocketAddress(host: $0, port: port) } }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        switch family {
        case .v4Only: hints.ai_family = AF_INET
        case .v6Only: hints.ai_family = AF_INET6
        default: hints.ai_family = AF_UNSPEC
        }
        var result: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(name, String(port), &hints, &result) == 0 else { return [] }
        defer { freeaddrinfo(result) }
        var v4: [SocketAddress] = []
        var v6: [SocketAddress] = []
        var p = result
        while let ai = p {
            if let sa = ai.pointee.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.baseAddress!.copyMemory(from: sa, byteCount: Int(ai.pointee.ai_addrlen))
                }
                let a = SocketAddress(storage: storage, length: ai.pointee.ai_addrlen)
                if ai.pointee.ai_family == AF_INET { v4.append(a) } else if ai.pointee.ai_family == AF_INET6 { v6.append(a) }
            }
            p = ai.pointee.ai_next
        }
        switch family {
        case .v4Preferred: return v4.isEmpty ? v6 : v4
        case .auto: return v6.isEmpty ? v4 : v6
        default: return v4 + v6
        }
    }
}

/// One listener: where it binds, how it balances, what its connections run.
public struct ListenerPlan: Sendable {
    /// What one filter chain runs: one of the listener's http_connection_managers (an index into
    /// `httpPlans`) or one of its tcp_proxies (an index into `tcpPlans`).
    public enum Chain: Sendable, Equatable {
        case http(Int)
        case tcp(Int)
    }

    /// A connection records its connection manager in a byte (`Downstream.hcm`).
    static let maxConnectionManagers = 255

    public let index: Int
    public let name: String
    public let address: SocketAddress
    public let balance: BalanceSpec
    public let bufferLimitBytes: Int
    /// Its filter chains in order (`filter_chains`, then `default_filter_chain`).
    public let chains: [Chain]
    /// The http_connection_managers of its HTTP chains, in chain order.
    public let httpPlans: [HTTPPlan]
    public let tcpPlans: [TCPPlan]
    /// Chooses each connection's chain (nil: every connection runs chain 0).
    let selector: FilterChainSelector?
    /// The listener filters that read a connection's first bytes before its chain is chosen.
    public let inspection: ListenerInspection?
    /// The original_dst listener filter runs (or `use_original_dst`): each accepted connection's
    /// pre-redirect destination (SO_ORIGINAL_DST) becomes its local address.
    public let restoresOriginalDst: Bool
    /// `envoy.resource_limits.listener.<name>.connection_limit` (Int.max: none) and the open
    /// connections of this listener over its workers (lent from snapshot to snapshot).
    public let connectionLimit: Int
    public let connections: ConnectionCount
    /// Per connection manager: the TLS termination of its chain (`transport_socket`), or nil.
    public let httpTLS: [TLSContext?]
    /// Per connection manager: the index of its chain in `chains`, as access records carry it.
    let httpChains: [UInt16]

    /// The first http_connection_manager (the only one of most listeners).
    public var http: HTTPPlan? { httpPlans.first }
    /// Whether any chain terminates TLS (the listener's `ssl.*` stats).
    public var terminatesTLS: Bool { httpTLS.contains { $0 != nil } || tcpPlans.contains { $0.tls != nil } }
    /// Whether an HTTP chain terminates TLS (`http.<prefix>.downstream_cx_ssl_*`).
    public func terminatesTLS(hcm: Int) -> Bool { httpTLS.indices.contains(hcm) && httpTLS[hcm] != nil }
    /// Connection managers whose request-head limits differ: the worker's parser takes each
    /// connection's limits before it parses (one parser per worker, sized for the largest).
    var headLimitsDiffer: Bool {
        httpPlans.contains { $0.maxRequestHeaderBytes != httpPlans[0].maxRequestHeaderBytes || $0.maxHeadersCount != httpPlans[0].maxHeadersCount }
    }
}

/// Open downstream connections shared by workers: taken at accept, given back at close.
public final class ConnectionCount: Sendable {
    public let active = Atomic<Int>(0)

    public init() {}
}

/// tls_inspector and http_inspector of a listener, and how long they may wait for bytes.
public struct ListenerInspection: Sendable {
    /// The inspectors in the listener's order.
    public let inspectors: [ListenerFilterConfig]
    /// `listener_filters_timeout` (nil: wait forever).
    public let timeoutNanos: Int64?
    /// `continue_on_listener_filters_timeout`: on timeout, choose the chain with what was found.
    public let continueOnTimeout: Bool

    init?(_ l: ListenerConfig) {
        inspectors = l.listenerFilters.filter(\.inspectsBytes)
        guard !inspectors.isEmpty else { return nil }
        timeoutNanos = l.listenerFiltersTimeoutNanos
        continueOnTimeout = l.continueOnListenerFiltersTimeout
    }
}

public struct TCPPlan: Sendable {
    public let cluster: Int
    public let idleTimeoutNanos: Int64?
    public let statPrefix: String
    /// `max_connect_attempts`: connections tried (each to a newly picked host) before giving up.
    public let maxConnectAttempts: Int
    /// TLS termination (the chain's `transport_socket`): the client speaks TLS, the upstream plain bytes.
    public var tls: TLSContext? = nil
}

/// One upstream host.
public struct HostPlan: Sendable {
    public let address: SocketAddress
    /// `ip:port` (`%UPSTREAM_HOST%`).
    public let name: String
    public let weight: Int
    /// `health_check_config.port_value`: active checks go to this port (nil: the host's).
    public var healthCheckPort: Int? = nil
    /// The DNS name it was resolved from (STRICT_DNS / LOGICAL_DNS), empty for a numeric endpoint.
    public var hostname: String = ""
    /// Its locality's priority (0 first) and the index of its locality (`endpoints[]` entry).
    public var priority = 0
    public var locality = 0

    /// What a host's health is tied to: the address it is checked at.
    var healthCheckKey: String { "\(name) \(healthCheckPort ?? 0)" }
}

/// Circuit-breaker resources of one cluster, shared by every worker (atomics, as Envoy's
/// resource manager): counted when taken, released when done.
public final class ClusterResources: Sendable {
    public let connections = Atomic<Int>(0)
    public let pendingRequests = Atomic<Int>(0)
    public let requests = Atomic<Int>(0)
    public let retries = Atomic<Int>(0)
    // Membership figures, Envoy's names (they survive reloads with these resources):
    /// `membership_change`: host sets published (1 for the first).
    public let membershipChange = Atomic<Int>(0)
    /// `update_attempt`, `update_success`, `update_failure`, `update_no_rebuild`: DNS resolutions
    /// of a STRICT_DNS/LOGICAL_DNS cluster (at start and each refresh).
    public let updateAttempt = Atomic<Int>(0)
    public let updateSuccess = Atomic<Int>(0)
    public let updateFailure = Atomic<Int>(0)
    public let updateNoRebuild = Atomic<Int>(0)

    /// Takes one unit of `counter` if it stays within `limit`.
    @inline(__always)
    static func tryTake(_ counter: borrowing Atomic<Int>, limit: Int) -> Bool {
        let now = counter.wrappingAdd(1, ordering: .relaxed).newValue
        if now > limit {
            counter.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    @inline(__always)
    static func give(_ counter: borrowing Atomic<Int>) {
        counter.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// One cluster as the workers use it.
public final class ClusterPlan: Sendable {
    /// Its slot in `DataPlane.clusters` (stable while the cluster exists).
    public let index: Int
    public let name: String
    /// A tombstone: the cluster was removed (no hosts; a stream that still names it answers
    /// 503 NC); it keeps the slot until nothing refers to it (docs/dynamic-config.md).
    public let removed: Bool
    /// The generation in which this cluster took its slot (a removed one: in which it was removed).
    public let since: UInt32
    let config: ClusterConfig
    public let hosts: [HostPlan]
    public let lbPolicy: LoadBalancingPolicy
    public let leastRequestChoices: Int
    public let connectTimeoutNanos: Int64
    public let maxRequestsPerConnection: Int
    public let idleTimeoutNanos: Int64?
    /// `max_connection_duration` of upstream connections (nil: none): an older connection is
    /// closed when idle and not reused after its exchange.
    public let maxConnectionDurationNanos: Int64?
    public let thresholds: CircuitBreakerThresholds
    /// The HIGH routing priority's thresholds (shown by `/clusters`; routes at HIGH are refused).
    public let highPriorityThresholds: CircuitBreakerThresholds
    public let resources: ClusterResources
    /// Endpoint weights (ROUND_ROBIN, RANDOM) and the RING_HASH ring (`HostSelection.swift`).
    public let schedule: HostSchedule
    /// `upstream_connection_options.tcp_keepalive`, applied to each upstream socket.
    public let tcpKeepalive: TCPKeepaliveConfig?
    /// `upstream_bind_config.source_address` (numeric), bound before each upstream connect.
    public let sourceAddress: SocketAddress?
    /// ORIGINAL_DST: no configured hosts; each worker creates one per original destination
    /// (`ProxyWorker+OriginalDst`) and removes it after `cleanupIntervalNanos` unused.
    public let isOriginalDst: Bool
    public let cleanupIntervalNanos: Int64
    /// TLS origination (the cluster's `transport_socket`) and the SNI it sends, or nil.
    public let tls: TLSContext?
    public let sni: String?
    /// Active health checking (`health_checks[0]`) and outlier detection: the hosts' health,
    /// shared with the checker thread and the ops thread (nil: every host is healthy, as Envoy
    /// without either).
    public let health: ClusterHealth?
    public let healthCheck: HealthCheckConfig?
    var healthCheckTimeoutNanos: Int64 { healthCheck?.timeoutNanos ?? 0 }

    /// Retries allowed in flight: `max_retries`, or with a retry budget Envoy's
    /// `max(budget_percent x (active + pending requests), min_retry_concurrency)`.
    @inline(__always)
    func retryLimit(_ t: CircuitBreakerThresholds) -> Int {
        guard let percent = t.retryBudgetPercent else { return t.maxRetries }
        let active = max(0, resources.requests.load(ordering: .relaxed)) + max(0, resources.pendingRequests.load(ordering: .relaxed))
        return max(Int(percent / 100 * Double(active)), t.minRetryConcurrency)
    }

    /// Every host failed its checks and panic routing is off (threshold 0): no host to use.
    @inline(__always)
    var noHealthyHostWithoutPanic: Bool {
        guard let health, healthyPanicThresholdPercent == 0 else { return false }
        return health.healthyHosts.load(ordering: .relaxed) == 0
    }
    /// `common_lb_config.healthy_panic_threshold` (percent, Envoy's default 50): below this share
    /// of healthy hosts the cluster routes to every host.
    public let healthyPanicThresholdPercent: Double
    /// Priority levels (1 + the highest endpoint priority) and locality weighting: when either
    /// is in use, picks go through `PriorityTable` (ProxyWorker+Priority).
    public let priorityCount: Int
    public let localityWeighted: Bool
    /// Each locality's `load_balancing_weight` (by `endpoints[]` index; 0: unset), and its names
    /// (/clusters prints them).
    public let localityWeights: [Int]
    public let localities: [LocalityConfig]
    var prioritized: Bool { priorityCount > 1 || localityWeighted }
    /// `overprovisioning_factor` (percent): availability is this times the healthy share, capped at 100%.
    public let overprovisioningFactor: Int

    init(index: Int, config: ClusterConfig, hosts: [HostPlan], resources: ClusterResources = ClusterResources(), health: ClusterHealth? = nil,
         since: UInt32 = 0, removed: Bool = false) {
        self.removed = removed
        self.since = since
        self.config = config
        self.resources = resources
        self.health = health
        self.healthCheck = health == nil ? nil : config.healthChecks.first
        self.healthyPanicThresholdPercent = config.healthyPanicThresholdPercent
        self.schedule = HostSchedule(hosts: hosts, policy: config.lbPolicy, minimumRingSize: config.ringHash.minimumRingSize,
                                     maximumRingSize: config.ringHash.maximumRingSize)
        self.index = index
        self.name = config.name
        self.hosts = hosts
        self.lbPolicy = config.lbPolicy
        self.leastRequestChoices = max(2, config.leastRequestChoiceCount)
        self.connectTimeoutNanos = config.connectTimeoutNanos
        self.maxRequestsPerConnection = config.upstreamHTTP.maxRequestsPerConnection ?? Int.max
        self.idleTimeoutNanos = config.upstreamHTTP.idleTimeoutNanos
        self.maxConnectionDurationNanos = config.upstreamHTTP.maxConnectionDurationNanos
        self.tls = config.tls?.context
        self.sni = config.tls?.sni
        self.thresholds = config.circuitBreakers.defaultPriority
        self.highPriorityThresholds = config.circuitBreakers.highPriority
        self.tcpKeepalive = config.tcpKeepalive
        self.sourceAddress = config.sourceAddress?.socketAddress
        self.isOriginalDst = config.discoveryType == .originalDst
        self.cleanupIntervalNanos = config.cleanupIntervalNanos
        self.priorityCount = 1 + (hosts.map(\.priority).max() ?? 0)
        self.localityWeighted = config.localityWeighted
        self.overprovisioningFactor = config.overprovisioningFactor
        var places = [LocalityConfig](repeating: LocalityConfig(), count: 1 + (config.endpoints.map(\.locality).max() ?? 0))
        for e in config.endpoints { places[e.locality] = e.place }
        self.localities = places
        self.localityWeights = places.map(\.weight)
    }
}

extension ClusterPlan {
    /// What stays in the slot of a cluster removed in `generation`: its name and resources (the
    /// breaker counters streams in flight give back), no hosts, no health.
    func tombstone(removedIn generation: UInt32) -> ClusterPlan {
        ClusterPlan(index: index, config: config, hosts: [], resources: resources, since: generation, removed: true)
    }
}

/// The http_connection_manager of a listener, compiled.
public final class HTTPPlan: Sendable {
    public let statPrefix: String
    public let routes: RouteTable
    public let filters: HTTPFilterChain
    /// The local_ratelimit filters' counters, one set per stat prefix.
    public let localRateLimitStats: [LocalRateLimitStats]
    /// `http.<stat_prefix>.fault.*`, when the chain has a fault filter.
    public let faultStats: FaultStats?
    /// `http.<stat_prefix>.cors.*`, when the chain has the cors filter.
    public let corsStats: CorsStats?
    /// `http.<stat_prefix>.health_check.*`, when the chain has the health_check filter.
    public let healthCheckStats: HealthCheckStats?
    /// The server's health, when the chain has the health_check filter (its responses carry
    /// `x-envoy-immediate-health-check-fail` while it fails).
    let healthCheckHealth: ServerHealth?
    /// The largest request body a buffer filter of this chain holds (0: none).
    let maxBufferedRequestBytes: Int
    /// The cors filter's plan (responses read it to decorate a CORS stream's head).
    let cors: CorsPlan?
    /// The compressor filter (its stats: `http.<stat_prefix>.compressor.<library>.gzip.*`).
    public let compressor: CompressorPlan?
    /// The decompressor filter (its stats: `http.<stat_prefix>.decompressor.<library>.gzip.*`).
    public let decompressor: DecompressorPlan?
    /// The cache filter (responses read it to decide what to store).
    let cache: CachePlan?
    /// `http.<stat_prefix>.csrf.*`, when the chain has the csrf filter.
    public let csrfStats: CsrfStats?
    /// `http.<stat_prefix>.ext_authz.*`, when the chain has an ext_authz filter.
    public let extAuthzStats: ExtAuthzStats?
    /// `http.<stat_prefix>.rbac.*` counters, one set per distinct stat-prefix pair.
    public let rbacStats: [RBACStats]
    /// `rbac_access_denied_matched_policy[NAME]` texts, indexed by a record's `detailsArgument`.
    public let rbacDetails: [String]
    /// `server` response header value (bytes).
    let serverName: [UInt8]
    let serverTransformation: ServerHeaderTransformation
    let generateRequestID: Bool
    /// `tracing` (nil: none; the data path then does nothing for tracing).
    public let tracing: TracingPlan?
    /// Some route's response mutations read request fields (%REQ(...)%), and per route index
    /// the names they read.
    let responseReadsRequest: Bool
    let responseRequestNames: [[[UInt8]]]
    /// Per route index: `decorator.operation` (the span's name) and `decorator.propagate`.
    let decorators: [(operation: [UInt8], propagate: Bool)?]
    let suppressEnvoyHeaders: Bool
    /// strip_any_host_port / strip_matching_host_port.
    let stripHostPort: HostPortStripping
    let maxRequestHeaderBytes: Int
    let maxHeadersCount: Int
    let idleTimeoutNanos: Int64?
    /// `common_http_protocol_options.max_connection_duration` (nil: none): then the connection
    /// drains: responses close it, an idle one closes after `drainCloseNanos`.
    let maxConnectionDurationNanos: Int64?
    /// `drain_timeout` + `delayed_close_timeout` (Envoy's 5 s + 1 s): when a drained idle
    /// connection closes.
    let drainCloseNanos: Int64
    /// `delayed_close_timeout` (Envoy's 1 s; nil when 0s): how long a connection the proxy
    /// closes lingers, half-closed, for the client's end of stream; nil: closed once flushed.
    let delayedCloseNanos: Int64?
    /// `request_headers_timeout`: a partial request head older than this gets 408 (nil: none).
    let requestHeadersTimeoutNanos: Int64?
    /// `request_timeout`: the whole request must arrive within this from its first byte (nil: none).
    let requestTimeoutNanos: Int64?
    /// `stream_idle_timeout` (Envoy's default 5 min; nil when 0s): a stream without activity this long ends.
    let streamIdleTimeoutNanos: Int64?
    let forwardedFor: ForwardedForPolicy
    /// `http_protocol_options.accept_http_10`: else HTTP/1.0 requests get 426.
    let acceptHTTP10: Bool
    /// `upgrade_configs`: the connection manager's upgrade types (routes may override).
    let upgrades: UpgradePolicy

    init(_ c: HTTPConnectionManagerConfig, clusterIndex: [String: Int], listener: String, runtime: RuntimeValues,
         serviceCluster: String = "", health: ServerHealth = ServerHealth()) throws(DataPlane.CompileError) {
        statPrefix = c.statPrefix
        routes = try RouteTable(c.routeConfig, clusterIndex: clusterIndex, listener: listener)
        var kinds: [HTTPFilterKind] = []
        var suppress = false
        var rateLimitStats: [String: LocalRateLimitStats] = [:]
        var rateLimitStatsOrder: [LocalRateLimitStats] = []
        func statsFor(_ prefix: String) -> LocalRateLimitStats {
            if let s = rateLimitStats[prefix] { return s }
            let s = LocalRateLimitStats(prefix: prefix)
            rateLimitStats[prefix] = s
            rateLimitStatsOrder.append(s)
            return s
        }
        // Route configs of the routes, by flattened route index (as `RouteTable.allRoutes`).
        let routeConfigs = routes.allConfigs
        var faultStats: FaultStats?
        var corsPlan: CorsPlan?
        var csrf: CsrfStats?
        var rbac = RBACCompiler()
        var healthCheckStats: HealthCheckStats?
        var largestBuffer = 0
        var compressorPlan: CompressorPlan?
        var decompressorPlan: DecompressorPlan?
        var cachePlan: CachePlan?
        var extAuthz: ExtAuthzStats?
        for f in c.httpFilters {
            switch f {
            case .cache(let config):
                let plan = CachePlan(config)
                cachePlan = plan
                kinds.append(.cache(plan))
            case .extAuthz(let config, let name):
                guard let cluster = clusterIndex[config.cluster] else {
                    throw DataPlane.CompileError(description: "listener \(listener): \(FilterNames.extAuthz) names cluster '\(config.cluster)', which does not exist")
                }
                let disabled = routeConfigs.map { r -> Bool in
                    if case .extAuthzDisabled? = r.perFilterConfigs[name] { return true }
                    return false
                }
                let stats = extAuthz ?? ExtAuthzStats()
                extAuthz = stats
                kinds.append(.extAuthz(ExtAuthzPlan(config, cluster: cluster, disabledRoutes: disabled, stats: stats, runtime: runtime)))
            case .rbac(let config, let name):
                let filter = try rbac.engine(config, listener: listener)
                var perRoute: [RBACEngine??] = []
                for r in routeConfigs {
                    guard case .rbac(let override)? = r.perFilterConfigs[name] else { perRoute.append(.none); continue }
                    if let override {
                        perRoute.append(.some(try rbac.engine(override, listener: listener, sharing: filter.stats)))
                    } else {
                        perRoute.append(.some(nil))
                    }
                }
                kinds.append(.rbac(RBACPlan(filter: filter, perRoute: perRoute)))
            case .csrf(let config, let name):
                // The most specific policy replaces the others whole: route, then virtual host.
                let perRoute = c.routeConfig.virtualHosts.flatMap { vh in
                    vh.routes.map { r -> CsrfPolicy? in
                        if case .csrf(let p)? = r.perFilterConfigs[name] { return CsrfPolicy(p) }
                        if case .csrf(let p)? = vh.perFilterConfigs[name] { return CsrfPolicy(p) }
                        return nil
                    }
                }
                let stats = csrf ?? CsrfStats()
                csrf = stats
                kinds.append(.csrf(CsrfPlan(filter: CsrfPolicy(config), perRoute: perRoute, stats: stats)))
            case .buffer(let config, let name):
                let perRoute = routeConfigs.map { r -> Int? in
                    guard case .buffer(let rc)? = r.perFilterConfigs[name] else { return nil }
                    switch rc {
                    case .disabled: return 0
                    case .buffer(let b): return b.maxRequestBytes
                    }
                }
                let plan = BufferPlan(maxBytes: config.maxRequestBytes, perRoute: perRoute)
                largestBuffer = max(largestBuffer, plan.largest)
                kinds.append(.buffer(plan))
            case .decompressor(let config):
                let plan = DecompressorPlan(config)
                decompressorPlan = plan
                kinds.append(.decompressor(plan))
            case .compressor(let config, let name):
                let disabled = routeConfigs.map { r -> Bool in
                    if case .compressorDisabled? = r.perFilterConfigs[name] { return true }
                    return false
                }
                let plan = CompressorPlan(config, disabledRoutes: disabled)
                compressorPlan = plan
                kinds.append(.compressor(plan))
            case .healthCheck(let config):
                var matchers: [CompiledHeaderMatcher] = []
                for h in config.headers {
                    let (test, ignore) = try CompiledRoute.compile(h.match, listener)
                    matchers.append(CompiledHeaderMatcher(name: Array(h.name.lowercased().utf8), test: test, ignoreCase: ignore, invert: h.invert))
                }
                let stats = healthCheckStats ?? HealthCheckStats()
                healthCheckStats = stats
                kinds.append(.healthCheck(HealthCheckPlan(headers: matchers, serviceCluster: serviceCluster, health: health, stats: stats)))
            case .cors(let name):
                let perRoute = c.routeConfig.virtualHosts.flatMap { vh in
                    vh.routes.map { r -> CorsPolicy? in
                        func policy(_ m: [String: PerRouteFilterConfig]) -> CorsPolicyConfig? {
                            if case .cors(let p)? = m[name] { return p }
                            return nil
                        }
                        return CorsPolicy(route: policy(r.perFilterConfigs), virtualHost: policy(vh.perFilterConfigs))
                    }
                }
                let plan = CorsPlan(perRoute: perRoute, stats: CorsStats())
                corsPlan = plan
                kinds.append(.cors(plan))
            case .fault(let config, let name):
                let stats = faultStats ?? FaultStats()
                faultStats = stats
                let perRoute = routeConfigs.map { r -> FaultConfig? in
                    guard case .fault(let rc)? = r.perFilterConfigs[name] else { return nil }
                    return rc
                }
                kinds.append(.fault(FaultPlan(filter: config, perRoute: perRoute, stats: stats, runtime: runtime)))
            case .localRateLimit(let config, let name):
                let filter = LocalRateLimiter(config, stats: statsFor(config.statPrefix))
                let perRoute = routeConfigs.map { r -> LocalRateLimiter? in
                    guard case .localRateLimit(let rc)? = r.perFilterConfigs[name] else { return nil }
                    return LocalRateLimiter(rc, stats: statsFor(rc.statPrefix))
                }
                kinds.append(.localRateLimit(LocalRateLimitPlan(filter: filter, perRoute: perRoute)))
            case .router(let r):
                kinds.append(.router)
                suppress = r.suppressEnvoyHeaders
            case .workerCost(let w):
                kinds.append(.workerCost(w.cost))
            }
        }
        if kinds.isEmpty { kinds.append(.router) }
        filters = HTTPFilterChain(filters: kinds)
        localRateLimitStats = rateLimitStatsOrder
        self.faultStats = faultStats
        cors = corsPlan
        compressor = compressorPlan
        decompressor = decompressorPlan
        cache = cachePlan
        csrfStats = csrf
        extAuthzStats = extAuthz
        rbacStats = rbac.stats
        rbacDetails = rbac.details
        corsStats = corsPlan?.stats
        self.healthCheckStats = healthCheckStats
        maxBufferedRequestBytes = largestBuffer
        healthCheckHealth = healthCheckStats == nil ? nil : health
        suppressEnvoyHeaders = suppress
        serverName = Array(c.serverName.utf8)
        serverTransformation = c.serverHeaderTransformation
        generateRequestID = c.generateRequestID
        responseRequestNames = routes.allRoutes.map { $0.responseMutations.requestNames }
        responseReadsRequest = responseRequestNames.contains { !$0.isEmpty }
        decorators = routeConfigs.map { r in r.decorator.map { (Array($0.operation.utf8), $0.propagate) } }
        tracing = c.tracing.map { TracingPlan($0, collectorCluster: clusterIndex[$0.zipkin.collectorCluster] ?? -1) }
        maxRequestHeaderBytes = max(1024, c.maxRequestHeadersKiB * 1024)
        maxHeadersCount = max(1, c.maxHeadersCount)
        idleTimeoutNanos = c.idleTimeoutNanos
        maxConnectionDurationNanos = c.maxConnectionDurationNanos
        drainCloseNanos = c.drainTimeoutNanos + (c.delayedCloseTimeoutNanos ?? 0)
        delayedCloseNanos = c.delayedCloseTimeoutNanos
        requestHeadersTimeoutNanos = c.requestHeadersTimeoutNanos
        stripHostPort = c.stripHostPort
        requestTimeoutNanos = c.requestTimeoutNanos
        streamIdleTimeoutNanos = c.streamIdleTimeoutNanos
        forwardedFor = ForwardedForPolicy(useRemoteAddress: c.useRemoteAddress, trustedHops: c.xffNumTrustedHops, skipAppend: c.skipXffAppend)
        acceptHTTP10 = c.acceptHTTP10
        upgrades = UpgradePolicy(c.upgradeConfigs)
    }
}
