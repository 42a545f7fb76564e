import Balancers
import Glibc
import Yams

/// Walks a composed YAML tree into the model. One instance per load; not thread-safe.
/// Errors go to `diagnostics`; a function returns nil when its part is unusable, and the caller
/// carries on so that every error in the file is reported.
final class BootstrapParser {
    let diagnostics: ConfigDiagnostics

    /// A name that must exist among the clusters, checked once every cluster is read.
    struct ClusterReference {
        let name: String
        let value: ConfigValue
    }

    var clusterReferences: [ClusterReference] = []
    /// Names and their paths, for the duplicate checks.
    var listenerNames: [(name: String, value: ConfigValue)] = []
    var clusterNames: [(name: String, value: ConfigValue)] = []
    /// Listener addresses (and the admin's), for the port-collision check.
    var boundAddresses: [(what: String, address: SocketAddressConfig, value: ConfigValue)] = []
    /// `use_original_dst: true` values (hand-off between listeners is not implemented: see below).
    var useOriginalDstFields: [ConfigValue] = []
    /// What the dynamic sources delivered to the running configuration: an update re-reads only
    /// the file of `rereading` and takes the others' last good texts from here (nil: read every file).
    var previousDynamic: DynamicResourceState?
    var rereading: SubscriptionKey?
    /// The load at the process's start: EDS / RDS files that fail are tolerated (Envoy's start).
    var atStart = false
    /// LDS / CDS sources whose file failed at start (true: not YAML / JSON): this load takes them
    /// as delivering no resource, as Envoy starts without them (`BootstrapLoader.loadAtStart`).
    var failedAtStart: [SubscriptionKey: Bool] = [:]
    /// Whether the listeners being parsed are (re)created by this load, as Envoy creates them: at
    /// start and on a reload every one, on an LDS update the LDS ones; a CDS / EDS / RDS update
    /// keeps them (their inline routes are not validated again).
    var creatingListeners = true
    /// Subscriptions whose file could not be read (refused even at start, as Envoy).
    var unreadableDynamicFiles: Set<SubscriptionKey> = []
    /// What this load's dynamic sources deliver (LDS, CDS, EDS, RDS).
    var dynamic = DynamicResourceState()
    /// Dynamic-resource files whose text is not valid YAML / JSON (Envoy counts update_failure for
    /// those, update_rejected for the other errors).
    var unparsableDynamicFiles: Set<SubscriptionKey> = []
    /// SDS: the secrets read, their files' texts to use instead of reading them (an update keeps
    /// the last good text of the files it did not replace), the SDS files that are not YAML / JSON,
    /// each secret parsed once (nil: it failed), and the sds_config values (for the node check).
    var secrets = SecretState()
    var secretTexts: [String: String] = [:]
    var unparsableSecretFiles: Set<String> = []
    var parsedSecrets: [String: (content: SecretContent, at: ConfigPath)?] = [:]
    var sdsConfigValues: [ConfigValue] = []
    /// Listener names that runtime connection limits refer to (checked against the listeners).
    var runtimeListenerKeys: [(name: String, value: ConfigValue)] = []
    /// Runtime keys the fault filters read (a runtime layer may set only these and the limits).
    var faultRuntimeKeys: Set<String> = []
    /// Runtime entries other than connection limits, checked once every filter is parsed.
    var pendingRuntimeKeys: [(key: String, text: String, value: ConfigValue, place: String)] = []

    init(diagnostics: ConfigDiagnostics) {
        self.diagnostics = diagnostics
    }

    // MARK: - Bootstrap

    func parseBootstrap(_ root: ConfigValue) -> Bootstrap? {
        guard let f = root.fields(
            known: ["node", "admin", "static_resources", "stats_flush_interval", "watchdog", "watchdogs", "dynamic_resources",
                    "layered_runtime"],
            unsupported: [
                "cluster_manager", "hds_config", "flags_path", "stats_sinks", "stats_config",
                "stats_flush_on_admin", "tracing", "runtime", "overload_manager",
                "enable_dispatcher_stats", "header_prefix", "stats_server_version_override",
                "use_tcp_for_dns_lookups", "dns_resolution_config", "typed_dns_resolver_config",
                "bootstrap_extensions", "fatal_actions", "config_sources", "default_config_source",
                "default_socket_interface", "certificate_provider_instances", "inline_headers",
                "perf_tracing_file_path", "default_regex_engine", "xds_delegate_extension",
                "xds_config_tracker_extension", "listener_manager", "application_log_config",
                "grpc_async_client_manager_config", "memory_allocator_manager", "node_context_params",
            ]) else { return nil }

        let node = f["node"].flatMap(parseNodeIdentity)
        let admin = f["admin"].flatMap(parseAdmin)
        let flush = f["stats_flush_interval"]?.duration()
        if let flush, flush < 1_000_000 || flush >= 300_000_000_000 {
            f.error("stats_flush_interval", "must be at least 0.001s and less than 300s")
        }
        var mainWatchdog = WatchdogConfig.envoyDefault
        var workerWatchdog = WatchdogConfig.envoyDefault
        if f.has("watchdog") && f.has("watchdogs") {
            f.error("watchdogs", "set either watchdog (deprecated) or watchdogs, not both")
        } else if let w = f["watchdog"] {
            f.warning("watchdog", "deprecated; use watchdogs.main_thread_watchdog and watchdogs.worker_watchdog")
            if let parsed = parseWatchdog(w) { mainWatchdog = parsed; workerWatchdog = parsed }
        } else if let ws = f["watchdogs"]?.fields(known: ["main_thread_watchdog", "worker_watchdog"]) {
            if let parsed = ws["main_thread_watchdog"].flatMap(parseWatchdog) { mainWatchdog = parsed }
            if let parsed = ws["worker_watchdog"].flatMap(parseWatchdog) { workerWatchdog = parsed }
        }

        var listeners: [ListenerConfig] = []
        var clusters: [ClusterConfig] = []
        let resources = f["static_resources"]?.fields(known: ["listeners", "clusters"], unsupported: ["secrets"])
        let dynamicConfig = f["dynamic_resources"].flatMap { parseDynamicResources($0, node: node, nodeValue: f["node"]) }
        // Static clusters first, then CDS's, then the listeners (Envoy initialises CDS before LDS).
        for item in resources?["clusters"]?.list() ?? [] {
            if let cluster = parseCluster(item) { clusters.append(cluster) }
        }
        if let source = dynamicConfig?.cds {
            let fromFile = parseDynamicFile(source, .cluster) { parseCluster($0) }
            dynamic.names[.cluster] = fromFile.map(\.name)
            clusters += fromFile
        }
        var udpListeners: [UDPListenerConfig] = []
        creatingListeners = rereading == nil
        for item in resources?["listeners"]?.list() ?? [] {
            if isUDPListener(item) {
                if let udp = parseUDPListener(item) { udpListeners.append(udp) }
            } else if let listener = parseListener(item) {
                listeners.append(listener)
            }
        }
        if let source = dynamicConfig?.lds {
            creatingListeners = rereading == nil || rereading == .listener
            let fromFile = parseDynamicFile(source, .listener) { parseListener($0) }
            dynamic.names[.listener] = fromFile.map(\.name)
            listeners += fromFile
        }
        if dynamicConfig?.lds == nil && dynamicConfig?.cds == nil && !dynamic.sources.isEmpty
            && ((node?.id ?? "").isEmpty || (node?.cluster ?? "").isEmpty) {
            // Envoy checks the node for every xDS subscription, EDS / RDS files included.
            diagnostics.error(f["node"]?.path ?? .root.appending("node"),
                              "node 'id' and 'cluster' are required with eds_config / rds sources (Envoy refuses the config without them)",
                              at: (f["node"] ?? root).node)
        }
        let runtime = f["layered_runtime"].flatMap { parseLayeredRuntime($0, serviceCluster: node?.cluster) }
        checkRuntimeKeys()
        checkCrossReferences()
        checkSDSNode(node, nodeValue: f["node"])
        let listenerNameSet = Set(listeners.map(\.name))
        for (name, v) in runtimeListenerKeys where !listenerNameSet.contains(name) {
            v.warning("no listener is named '\(name)': the key has no effect (as in Envoy)")
        }
        if listeners.count > 1 {
            for v in useOriginalDstFields {
                v.error("not applied by ballast with more than one listener yet (in Envoy: a redirected connection is handed off to the listener bound to its original destination); give one listener, or use the envoy.filters.listener.original_dst listener filter, which does not hand off")
            }
        }
        guard diagnostics.errors.isEmpty else { return nil }
        var bootstrap = Bootstrap(
            node: node, admin: admin, listeners: listeners, clusters: clusters,
            statsFlushIntervalNanos: flush ?? 5_000_000_000,
            mainThreadWatchdog: mainWatchdog, workerWatchdog: workerWatchdog)
        bootstrap.dynamicResources = dynamicConfig
        bootstrap.dynamic = dynamic
        bootstrap.secrets = secrets
        bootstrap.runtime = runtime ?? RuntimeConfig()
        bootstrap.udpListeners = udpListeners
        bootstrap.runtime.faultKeys = faultRuntimeKeys
        return bootstrap
    }

    func parseNodeIdentity(_ value: ConfigValue) -> NodeIdentity? {
        guard let f = value.fields(known: ["id", "cluster", "metadata", "locality"],
                                   unsupported: ["user_agent_name", "user_agent_version", "user_agent_build_version",
                                                 "extensions", "client_features", "listening_addresses", "dynamic_parameters"])
        else { return nil }
        // metadata is a free-form Struct: any mapping will do; it is not used.
        if let metadata = f["metadata"], case .mapping = metadata.node {} else if let metadata = f["metadata"] {
            metadata.error("expected a mapping, got \(metadata.node.foundDescription)")
        }
        _ = f["locality"]?.fields(known: ["region", "zone", "sub_zone"])
        return NodeIdentity(id: f["id"]?.string(), cluster: f["cluster"]?.string())
    }

    func parseWatchdog(_ value: ConfigValue) -> WatchdogConfig? {
        guard let f = value.fields(known: ["miss_timeout", "megamiss_timeout", "kill_timeout", "multikill_timeout", "multikill_threshold"],
                                   unsupported: ["actions", "max_kill_timeout_jitter"]) else { return nil }
        let d = WatchdogConfig.envoyDefault
        var threshold = 0.0
        if let t = f["multikill_threshold"]?.fields(known: ["value"]) {
            threshold = t.required("value")?.double(0...100) ?? 0
        }
        return WatchdogConfig(
            missTimeoutNanos: f["miss_timeout"]?.duration() ?? d.missTimeoutNanos,
            megamissTimeoutNanos: f["megamiss_timeout"]?.duration() ?? d.megamissTimeoutNanos,
            killTimeoutNanos: nonZero(f["kill_timeout"]?.duration()),
            multikillTimeoutNanos: nonZero(f["multikill_timeout"]?.duration()),
            multikillThresholdPercent: threshold)
    }

    // MARK: - Admin and addresses

    func parseAdmin(_ value: ConfigValue) -> AdminConfig? {
        guard let f = value.fields(known: ["address", "access_log_path", "access_log"],
                                   unsupported: ["profile_path", "socket_options", "ignore_global_conn_limit"]) else { return nil }
        let address = f.required("address").flatMap { parseAddress($0, allowHostname: false) }
        let path = f["access_log_path"]?.nonEmptyString()
        let logs = parseAccessLogs(f["access_log"])
        guard let address, let logs else { return nil }
        if let addressValue = f["address"] { boundAddresses.append(("admin", address, addressValue)) }
        return AdminConfig(address: address, accessLogPath: path, accessLog: logs)
    }

    /// `Address`: only `socket_address`.
    func parseAddress(_ value: ConfigValue, allowHostname: Bool, portRange: ClosedRange<Int> = 0...65535) -> SocketAddressConfig? {
        guard let f = value.fields(known: ["socket_address"], unsupported: ["pipe", "envoy_internal_address"]) else { return nil }
        guard f.oneOf(["socket_address"], unsupportedAlternatives: ["pipe", "envoy_internal_address"]) != nil,
              let socket = f["socket_address"] else { return nil }
        return parseSocketAddress(socket, allowHostname: allowHostname, portRange: portRange)
    }

    func parseSocketAddress(_ value: ConfigValue, allowHostname: Bool, portRange: ClosedRange<Int> = 0...65535,
                            allowUDP: Bool = false) -> SocketAddressConfig? {
        guard let f = value.fields(known: ["address", "port_value", "protocol"],
                                   unsupported: ["named_port", "resolver_name", "ipv4_compat", "network_namespace_filepath"]) else { return nil }
        let protocolOK = f["protocol"].map { p in
            guard let text = p.string() else { return false }
            if text == "TCP" || (text == "UDP" && allowUDP) { return true }
            p.error(text == "UDP" ? "UDP is supported by ballast only on a listener with the \(Self.udpProxyName) listener filter" : "unknown value '\(text)' (expected TCP or UDP)")
            return false
        } ?? true
        let udp = f["protocol"]?.string() == "UDP"
        var kind: SocketAddressConfig.HostKind?
        var host: String?
        if let a = f.required("address"), let text = a.nonEmptyString() {
            host = text
            switch Self.classifyHost(text) {
            case .some(.hostname) where !allowHostname:
                a.error("expected a numeric IPv4 or IPv6 address, got '\(text)' (hostnames are allowed only in STRICT_DNS and LOGICAL_DNS clusters)")
            case .some(let k):
                kind = k
            case nil:
                if text.hasPrefix("[") {
                    a.error("expected an IPv6 address without brackets, got '\(text)'")
                } else {
                    a.error(allowHostname ? "expected an IP address or a hostname, got '\(text)'" : "expected a numeric IPv4 or IPv6 address, got '\(text)'")
                }
            }
        }
        let port = f.required("port_value")?.int(portRange)
        guard protocolOK, let host, let kind, let port else { return nil }
        var address = SocketAddressConfig(address: host, port: port, kind: kind)
        address.isUDP = udp
        return address
    }

    static func classifyHost(_ text: String) -> SocketAddressConfig.HostKind? {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return .ipv4 }
        if inet_pton(AF_INET6, text, &v6) == 1 { return .ipv6 }
        // A DNS name: dot-separated labels of letters, digits, underscores and inner hyphens (container
        // names such as web_service resolve, and Envoy takes them); not all-numeric at the end.
        let name = text.hasSuffix(".") ? String(text.dropLast()) : text
        guard !name.isEmpty, name.utf8.count <= 253 else { return nil }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-",
                  label.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
            else { return nil }
        }
        if labels.last!.allSatisfy(\.isNumber) { return nil }
        return .hostname
    }

    // MARK: - Listeners

    func parseListener(_ value: ConfigValue) -> ListenerConfig? {
        guard let f = value.fields(
            known: ["name", "address", "filter_chains", "listener_filters", "listener_filters_timeout",
                    "continue_on_listener_filters_timeout", "enable_reuse_port", "reuse_port",
                    "connection_balance_config", "per_connection_buffer_limit_bytes", "tcp_backlog_size",
                    "stat_prefix", "traffic_direction", "ballast_balance", "use_original_dst", "default_filter_chain"],
            unsupported: ["transparent", "freebind", "socket_options",
                          "tcp_fast_open_queue_length", "bind_to_port", "udp_listener_config", "api_listener",
                          "access_log", "metadata", "drain_type", "deprecated_v1", "additional_addresses",
                          "enable_mptcp", "ignore_global_conn_limit", "internal_listener",
                          "max_connections_to_accept_per_socket_event", "filter_chain_matcher", "fcds_config",
                          "listener_specifier", "bypass_overload_manager"]) else { return nil }

        let explicitName = f["name"]?.nonEmptyString()
        let address = f.required("address").flatMap { parseAddress($0, allowHostname: false) }
        let name = explicitName ?? address.map { "\($0)" }
        if let name, let v = f["name"] ?? f["address"] { listenerNames.append((name, v)) }
        if let address, let v = f["address"] { boundAddresses.append(("listener '\(name ?? "")'", address, v)) }

        var chains: [FilterChainConfig] = []
        var chainsOK = true
        var defaultChain: FilterChainConfig?
        if let d = f["default_filter_chain"] {
            defaultChain = parseFilterChain(d, isDefault: true)
            if defaultChain == nil { chainsOK = false }
        }
        if let list = f["filter_chains"]?.list() {
            if list.isEmpty && !f.has("default_filter_chain") { f.error("filter_chains", "a listener needs at least one filter chain") }
            for item in list {
                if let chain = parseFilterChain(item) { chains.append(chain) } else { chainsOK = false }
            }
            if chainsOK && chains.count > 1 && !checkDistinctMatches(chains, list) { chainsOK = false }
        } else if !f.has("filter_chains") {
            if defaultChain == nil && !f.has("default_filter_chain") {
                diagnostics.error(f.path.appending("filter_chains"), "a listener needs at least one filter chain", at: f.node)
                chainsOK = false
            }
        } else {
            chainsOK = false
        }

        var listenerFilters: [ListenerFilterConfig] = []
        var filtersOK = true
        for item in f["listener_filters"]?.list() ?? [] {
            if let lf = parseListenerFilter(item) { listenerFilters.append(lf) } else { filtersOK = false }
        }

        // Envoy adds the original_dst listener filter itself when use_original_dst is set.
        let useOriginalDstValue = f["use_original_dst"]?.bool()
        let useOriginalDst = useOriginalDstValue ?? false
        if f["use_original_dst"] != nil && useOriginalDstValue == nil { filtersOK = false }
        if useOriginalDst, let v = f["use_original_dst"] { useOriginalDstFields.append(v) }
        if useOriginalDst && !listenerFilters.contains(.originalDst) { listenerFilters.append(.originalDst) }

        var reusePort = true
        if f.has("reuse_port") && f.has("enable_reuse_port") {
            f.error("reuse_port", "set only enable_reuse_port (reuse_port is its deprecated name)")
        } else if let r = f["reuse_port"] {
            f.warning("reuse_port", "deprecated field; use enable_reuse_port")
            reusePort = r.bool() ?? true
        } else if let r = f["enable_reuse_port"] {
            reusePort = r.bool() ?? true
        }

        var exact = false
        if let cb = f.present("connection_balance_config")?.fields(known: ["exact_balance"], unsupported: ["extend_balance"]) {
            if cb.oneOf(["exact_balance"], unsupportedAlternatives: ["extend_balance"]) != nil {
                exact = cb.present("exact_balance")?.fields(known: []) != nil
            }
        }
        let ballast = f.present("ballast_balance").flatMap(parseBallastBalance)
        if f.has("ballast_balance") && ballast == nil { filtersOK = false }

        let balance: BalanceSpec
        if let ballast {
            if ballast.strategy == .reuseport && !reusePort {
                f.error("ballast_balance", "strategy reuseport needs SO_REUSEPORT, but enable_reuse_port is false")
            }
            if exact {
                f.warning("connection_balance_config", "ignored: ballast_balance sets the accept strategy")
            }
            balance = ballast
        } else if exact {
            balance = BalanceSpec(strategy: .leastLoaded, metric: .connections)
        } else if !reusePort {
            balance = BalanceSpec(strategy: .shared)
        } else {
            balance = BalanceSpec(strategy: .reuseport)
        }

        let filtersTimeout = timeout(f, "listener_filters_timeout", default: 15_000_000_000)
        let cont = f["continue_on_listener_filters_timeout"]?.bool()
        let bufferLimit = f["per_connection_buffer_limit_bytes"]?.int(1...Int(UInt32.max))
        let backlog = f["tcp_backlog_size"]?.int(1...65535)
        let statPrefix = f["stat_prefix"]?.nonEmptyString()
        let direction = f["traffic_direction"]?.enumeration(TrafficDirection.self)

        guard let name, let address, chainsOK, filtersOK else { return nil }
        return ListenerConfig(
            name: name, address: address, filterChains: chains, defaultFilterChain: defaultChain, listenerFilters: listenerFilters,
            listenerFiltersTimeoutNanos: filtersTimeout,
            continueOnListenerFiltersTimeout: cont ?? false,
            enableReusePort: reusePort, exactBalance: exact, ballastBalance: ballast, balance: balance,
            perConnectionBufferLimitBytes: bufferLimit ?? 1 << 20, tcpBacklogSize: backlog,
            statPrefix: statPrefix, trafficDirection: direction ?? .unspecified, useOriginalDst: useOriginalDst)
    }

    func parseBallastBalance(_ value: ConfigValue) -> BalanceSpec? {
        guard let f = value.fields(known: ["strategy", "metric", "epoll_exclusive", "accept_batch", "msg_ring"]) else { return nil }
        guard let strategy = f.required("strategy")?.enumeration(AcceptStrategy.self) else { return nil }
        var spec = BalanceSpec(strategy: strategy)
        var ok = true
        if let m = f["metric"] {
            if strategy != .leastLoaded && strategy != .p2c {
                m.error("strategy \(strategy.rawValue) takes no metric (only least-loaded and p2c do)")
                ok = false
            } else if let metric = m.enumeration(LoadMetric.self) {
                spec.metric = metric
            } else {
                ok = false
            }
        }
        if let e = f["epoll_exclusive"] {
            if strategy != .shared { e.error("applies only to strategy shared"); ok = false } else if let b = e.bool() { spec.exclusive = b } else { ok = false }
        }
        if let b = f["accept_batch"] {
            if let n = b.int(1...65536) { spec.acceptBatch = n } else { ok = false }
        }
        if let r = f["msg_ring"] {
            if !strategy.usesAcceptor { r.error("applies only to strategies with an acceptor (dispatch, least-loaded, p2c)"); ok = false } else if let b = r.bool() { spec.messageRing = b } else { ok = false }
        }
        return ok ? spec : nil
    }

    /// A `filter_chains[]` entry, or the `default_filter_chain` (which takes no match).
    func parseFilterChain(_ value: ConfigValue, isDefault: Bool = false) -> FilterChainConfig? {
        guard let f = value.fields(
            known: ["filters", "filter_chain_match", "name", "transport_socket"],
            unsupported: ["tls_context", "use_proxy_proto", "metadata",
                          "transport_socket_connect_timeout", "on_demand_configuration"]) else { return nil }
        let name = f["name"]?.string()
        let match = f["filter_chain_match"].flatMap(parseFilterChainMatch)
        var matchOK = !f.has("filter_chain_match") || f["filter_chain_match"] == nil || match != nil
        if isDefault && match != nil {
            f.error("filter_chain_match", "the default_filter_chain takes no filter_chain_match (it serves connections no chain matches)")
            matchOK = false
        }
        var filters: [NetworkFilterConfig] = []
        var ok = true
        let items = f["filters"]?.list()
        if let items {
            for item in items {
                if let filter = parseNetworkFilter(item) { filters.append(filter) } else { ok = false }
            }
            if items.isEmpty {
                f.error("filters", "a filter chain needs a terminal filter (envoy.filters.network.http_connection_manager or envoy.filters.network.tcp_proxy)")
                ok = false
            } else if ok && filters.count > 1 {
                // Both filters Ballast knows are terminal: only one, and it is the last.
                f.error("filters", "only one network filter per chain is supported: \(filters[0].name) is terminal and must be last")
                ok = false
            }
        } else {
            if !f.has("filters") {
                diagnostics.error(f.path.appending("filters"), "a filter chain needs a terminal filter (envoy.filters.network.http_connection_manager or envoy.filters.network.tcp_proxy)", at: f.node)
            }
            ok = false
        }
        let tls = f["transport_socket"].flatMap { parseTransportSocket($0, side: .downstream) }
        let tlsOK = f["transport_socket"] == nil || tls != nil
        guard ok, matchOK, tlsOK else { return nil }
        return FilterChainConfig(name: name, match: match, filters: filters, tls: tls)
    }

    func parseFilterChainMatch(_ value: ConfigValue) -> FilterChainMatchConfig? {
        guard let f = value.fields(
            known: ["destination_port", "prefix_ranges", "server_names", "transport_protocol", "application_protocols",
                    "direct_source_prefix_ranges", "source_type", "source_prefix_ranges", "source_ports"],
            unsupported: ["address_suffix", "suffix_len"]) else { return nil }
        var m = FilterChainMatchConfig()
        var ok = true
        func cidrs(_ key: String) -> [CIDRRange] {
            guard let items = f[key]?.list() else { if f.has(key) && f[key] != nil { ok = false }; return [] }
            return items.compactMap { item in
                let r = parseCIDR(item)
                if r == nil { ok = false }
                return r
            }
        }
        if let p = f["destination_port"] { if let n = p.int(1...65535) { m.destinationPort = n } else { ok = false } }
        m.prefixRanges = cidrs("prefix_ranges")
        if let names = f["server_names"] {
            if let list = names.stringList() {
                for (i, name) in list.enumerated() {
                    let lower = name.lowercased()
                    // Envoy: a wildcard is only a leading "*." label; a bare "*" or an inner "*" is refused.
                    if lower.isEmpty || lower == "*" || lower.dropFirst(lower.hasPrefix("*.") ? 2 : 0).contains("*") {
                        diagnostics.error(names.path.appending(index: i), "'\(name)' is not a server name: give a name or a wildcard '*.example.com'", at: names.node)
                        ok = false
                    } else {
                        m.serverNames.append(lower)
                    }
                }
            } else { ok = false }
        }
        if let t = f["transport_protocol"] {
            if let text = t.nonEmptyString() { m.transportProtocol = text } else { ok = false }
        }
        if let a = f["application_protocols"] { if let list = a.stringList() { m.applicationProtocols = list } else { ok = false } }
        m.directSourcePrefixRanges = cidrs("direct_source_prefix_ranges")
        if let t = f["source_type"] { if let v = t.enumeration(ConnectionSourceType.self) { m.sourceType = v } else { ok = false } }
        m.sourcePrefixRanges = cidrs("source_prefix_ranges")
        if let p = f["source_ports"] {
            if let items = p.list() {
                for item in items { if let n = item.int(1...65535) { m.sourcePorts.append(n) } else { ok = false } }
            } else { ok = false }
        }
        return ok ? m : nil
    }

    /// Envoy refuses a listener two of whose chains would both match some connection ("multiple
    /// filter chains with overlapping matching rules"): each chain's match is expanded into the
    /// combinations of its values, and no combination may repeat.
    private func checkDistinctMatches(_ chains: [FilterChainConfig], _ items: [ConfigValue]) -> Bool {
        var seen: [FilterChainKey: Int] = [:]
        for (i, chain) in chains.enumerated() {
            for key in FilterChainKey.expand(chain.match ?? FilterChainMatchConfig()) {
                if let first = seen[key], first != i {
                    diagnostics.error(items[i].path.appending("filter_chain_match"),
                                      "overlaps the filter_chain_match of \(items[first].path): Envoy refuses filter chains with overlapping matching rules",
                                      at: items[i].node)
                    return false
                }
                seen[key] = i
            }
        }
        return true
    }

    func parseListenerFilter(_ value: ConfigValue) -> ListenerFilterConfig? {
        guard let f = value.fields(known: ["name", "typed_config", "config"], unsupported: ["filter_disabled", "config_discovery"]),
              case .resolved(let resolved) = resolveExtension(f, category: "listener filter", kinds: [.httpInspector, .originalDst, .tlsInspector],
                                                              unsupportedNames: ExtensionKind.unsupportedListenerFilters)
        else { return nil }
        // No filter has options Ballast reads: the body must be empty (beyond @type).
        let unsupported: [String]
        switch resolved.kind {
        case .originalDst: unsupported = ["traffic_direction"]
        case .tlsInspector: unsupported = ["enable_ja3_fingerprinting", "enable_ja4_fingerprinting", "initial_read_buffer_size", "max_client_hello_size"]
        default: unsupported = []
        }
        if let body = resolved.body, body.fields(known: resolved.typed ? ["@type"] : [], unsupported: unsupported) == nil {
            return nil
        }
        switch resolved.kind {
        case .httpInspector: return .httpInspector
        case .tlsInspector: return .tlsInspector
        case .originalDst: return .originalDst
        default: return nil
        }
    }

    func parseNetworkFilter(_ value: ConfigValue) -> NetworkFilterConfig? {
        guard let f = value.fields(known: ["name", "typed_config", "config"], unsupported: ["config_discovery"]),
              case .resolved(let resolved) = resolveExtension(f, category: "network filter", kinds: [.httpConnectionManager, .tcpProxy],
                                                              unsupportedNames: ExtensionKind.unsupportedNetworkFilters)
        else { return nil }
        guard let body = resolved.body else {
            diagnostics.error(value.path.appending("typed_config"), "required field missing", at: value.node)
            return nil
        }
        switch resolved.kind {
        case .httpConnectionManager:
            return parseHTTPConnectionManager(body, typed: resolved.typed).map { .httpConnectionManager($0) }
        case .tcpProxy:
            return parseTCPProxy(body, typed: resolved.typed).map { .tcpProxy($0) }
        default:
            return nil
        }
    }

    // MARK: - Cross references

    func checkCrossReferences() {
        checkDuplicates(listenerNames, what: "listener")
        checkDuplicates(clusterNames, what: "cluster")
        let known = Set(clusterNames.map(\.name))
        let sortedNames = clusterNames.map(\.name)
        for ref in clusterReferences where !known.contains(ref.name) {
            var message = "unknown cluster '\(ref.name)'"
            if let guess = Spelling.closest(to: ref.name, in: sortedNames) { message += "; did you mean \(guess)?" }
            if rereading == .cluster {
                // Only these references are checked on a CDS update (routes are not: 503 NC).
                message += " (this CDS update removes it; ballast refuses to remove a cluster that a tcp_proxy, udp_proxy, ext_authz or tracing collector names, where Envoy would fail those at run time)"
            }
            ref.value.error(message)
        }
        // Two sockets on the same port collide when the addresses are equal, or one is the
        // wildcard of the other's family, or one is `::` (dual-stack, covers IPv4 too).
        for (i, b) in boundAddresses.enumerated() where b.address.port != 0 {
            for a in boundAddresses[..<i] where a.address.port == b.address.port {
                let x = a.address, y = b.address
                let overlap = x.address == y.address
                    || (x.kind == y.kind && (x.isWildcard || y.isWildcard))
                    || (x.kind == .ipv6 && x.isWildcard) || (y.kind == .ipv6 && y.isWildcard)
                if overlap {
                    b.value.error("port \(y.port) on \(y.address) collides with \(a.what) on \(x) (\(a.value.path))")
                    break
                }
            }
        }
    }

    private func checkDuplicates(_ names: [(name: String, value: ConfigValue)], what: String) {
        var first: [String: ConfigPath] = [:]
        for (name, value) in names {
            if let earlier = first[name] {
                value.error("duplicate \(what) name '\(name)' (first at \(earlier))")
            } else {
                first[name] = value.path
            }
        }
    }

    // MARK: - Helpers

    func nonZero(_ nanos: Int64?) -> Int64? { nanos == 0 ? nil : nanos }

    /// An optional timeout with an Envoy default: absent (or null) gives the default, 0s disables (nil).
    func timeout(_ f: ConfigFields, _ key: String, default nanos: Int64?) -> Int64? {
        guard let value = f[key] else { return nanos }
        return nonZero(value.duration())
    }
}
