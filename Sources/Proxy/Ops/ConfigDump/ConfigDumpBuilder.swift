import Glibc
import Yams

/// Envoy's /config_dump: its typed dumps in Envoy's order (bootstrap, clusters, endpoints with
/// `?include_eds`, listeners, scoped routes, routes, secrets). Each resource is the text it was
/// read from printed by `EnvoyProtoJSONRules`: the bootstrap (the `-c` file with `--config-yaml`
/// merged over it) at load (`Bootstrap.printed`), each subscription's last good file here. The
/// endpoints are the clusters' current hosts, as Envoy rebuilds them from its host sets.
/// Admin thread only.
struct ConfigDumpBuilder {
    let bootstrap: Bootstrap
    let plane: DataPlane
    /// `?name_regex=`: only resources whose name matches in full (the bootstrap is always shown).
    var nameRegex: RE2Regex? = nil
    /// Per dynamic cluster: the CDS `version_info` that added or last changed it, and when (Envoy
    /// keeps both per cluster; a cluster an update left as it was keeps its own).
    var clusterVersions: [String: String] = [:]
    var clusterUpdatedMillis: [String: Int64] = [:]
    /// Listeners an update removed or replaced, draining (Envoy's `draining_state`).
    var drainingListeners: [DrainingListenerDump] = []

    private func named(_ resource: ProtoJSON, _ field: String = "name") -> Bool {
        guard let nameRegex else { return true }
        var name = resource[field]?.stringValue ?? ""
        return name.withUTF8 { nameRegex.fullMatch(UnsafeRawBufferPointer($0)) }
    }

    private static let admin = "type.googleapis.com/envoy.admin.v3."

    /// The top-level dumps.
    func configs(includeEDS: Bool) -> [ProtoJSON] {
        var out = [bootstrapDump(), clustersDump()]
        if includeEDS { out.append(endpointsDump()) }
        out.append(listenersDump())
        // Envoy registers the route dumps with its first http_connection_manager.
        if listeners(named: false).contains(where: { !Self.connectionManagers($0.0).isEmpty }) {
            out += [.object([("@type", .string(Self.admin + "ScopedRoutesConfigDump"))]), routesDump()]
        }
        out.append(secretsDump())
        return out
    }

    private var dynamic: DynamicResourceState { bootstrap.dynamic }

    private func bootstrapDump() -> ProtoJSON {
        var fields: [(String, ProtoJSON)] = [("@type", .string(Self.admin + "BootstrapConfigDump"))]
        if case .object(var printed)? = bootstrap.printed.json {
            // As Envoy fills the node with its own name (and build), Ballast names itself.
            var node: [(String, ProtoJSON)] = []
            if let i = printed.firstIndex(where: { $0.0 == "node" }), case .object(let written) = printed[i].1 { node = written }
            node = node.filter { $0.0 != "user_agent_name" } + [("user_agent_name", .string("ballast"))]
            if let i = printed.firstIndex(where: { $0.0 == "node" }) { printed[i].1 = .object(node) } else { printed.insert(("node", .object(node)), at: 0) }
            fields.append(("bootstrap", .object(printed)))
        }
        fields.append(("last_updated", .string(Self.timestamp(dynamic.readTimes.bootstrapMillis))))
        return .object(fields)
    }

    /// `version_info` when not empty (Envoy leaves an empty string out).
    private func version(_ key: SubscriptionKey) -> [(String, ProtoJSON)] {
        guard let v = dynamic.versionInfo[key], !v.isEmpty else { return [] }
        return [("version_info", .string(v))]
    }

    private func updated(_ key: SubscriptionKey?) -> (String, ProtoJSON) {
        let millis = key.flatMap { dynamic.readTimes.subscriptionMillis[$0] } ?? dynamic.readTimes.bootstrapMillis
        return ("last_updated", .string(Self.timestamp(millis)))
    }

    /// A resource as an `Any`: its type URL first.
    private static func any(_ typeURL: String, _ resource: ProtoJSON) -> ProtoJSON {
        guard case .object(let fields) = resource else { return resource }
        return .object([("@type", .string(typeURL))] + fields.filter { $0.0 != "@type" })
    }

    /// `static_resources.<field>` of the bootstrap, printed.
    private func staticResources(_ field: String) -> [ProtoJSON] {
        (bootstrap.printed.json?["static_resources"]?[field]?.arrayValue ?? []).filter { named($0) }
    }

    /// The resources of a subscription's last good file that are in use (by name in `names`).
    private func delivered(_ key: SubscriptionKey, named: Bool = true) -> [ProtoJSON] {
        guard let text = dynamic.texts[key], let root = try? Yams.compose(yaml: text), case .mapping(let m) = root,
              let list = m["resources"], case .sequence(let items) = list else { return [] }
        return items.compactMap(EnvoyProtoJSONRules.normalise).filter { !named || self.named($0) }
    }

    private func clustersDump() -> ProtoJSON {
        let type = SubscriptionKey.cluster.typeURL
        // Envoy lists clusters by name.
        let statics = Self.byName(staticResources("clusters")).map { ProtoJSON.object([("cluster", Self.any(type, $0)), updated(nil)]) }
        let active = Self.byName(delivered(.cluster).filter { dynamic.isDynamic(.cluster, $0["name"]?.stringValue ?? "") }).map { c in
            let name = c["name"]?.stringValue ?? ""
            let version: [(String, ProtoJSON)] = (clusterVersions[name] ?? dynamic.versionInfo[.cluster]).map { $0.isEmpty ? [] : [("version_info", .string($0))] } ?? []
            let updated = clusterUpdatedMillis[name].map { ("last_updated", ProtoJSON.string(Self.timestamp($0))) } ?? self.updated(.cluster)
            return ProtoJSON.object(version + [("cluster", Self.any(type, c)), updated])
        }
        return Self.dump("ClustersConfigDump", version(.cluster), [("static_clusters", statics), ("dynamic_active_clusters", active)])
    }

    private func listenersDump() -> ProtoJSON {
        let type = SubscriptionKey.listener.typeURL
        let statics = staticResources("listeners").map { ProtoJSON.object([("listener", Self.any(type, $0)), updated(nil)]) }
        // Envoy's DynamicListener: `active_state`, and `draining_state` while an update's old copy
        // drains (a removed listener has only that one).
        func drainingState(_ name: String) -> (String, ProtoJSON)? {
            guard let d = drainingListeners.last(where: { $0.name == name }) else { return nil }
            let version: [(String, ProtoJSON)] = d.versionInfo.isEmpty ? [] : [("version_info", .string(d.versionInfo))]
            return ("draining_state", .object(version + [("listener", Self.any(type, d.listener)), ("last_updated", .string(Self.timestamp(d.updatedMillis)))]))
        }
        var active = delivered(.listener).filter { dynamic.isDynamic(.listener, $0["name"]?.stringValue ?? "") }.map { l in
            let name = l["name"]?.stringValue ?? ""
            return ProtoJSON.object([("name", .string(name)),
                                     ("active_state", .object(version(.listener) + [("listener", Self.any(type, l)), updated(.listener)]))]
                                    + (drainingState(name).map { [$0] } ?? []))
        }
        let activeNames = Set(active.map { $0["name"]?.stringValue ?? "" })
        for name in Set(drainingListeners.map(\.name)).sorted() where !activeNames.contains(name) && named(.object([("name", .string(name))])) {
            active.append(.object([("name", .string(name)), drainingState(name)!]))
        }
        return Self.dump("ListenersConfigDump", version(.listener), [("static_listeners", statics), ("dynamic_listeners", active)])
    }

    /// The listener named `name` as its LDS file delivered it (for a removed listener's dump).
    func deliveredListener(named name: String) -> ProtoJSON? {
        delivered(.listener, named: false).first { $0["name"]?.stringValue == name }
    }

    /// Inline route configurations of every listener's connection managers (Envoy's static route
    /// configs), then each RDS subscription's.
    private func routesDump() -> ProtoJSON {
        let type = SubscriptionKey.routes(name: "").typeURL
        var statics: [ProtoJSON] = []
        for (listener, key) in listeners(named: false) {
            for routes in Self.connectionManagers(listener).compactMap({ $0["route_config"] }) where named(routes) {
                statics.append(.object([("route_config", Self.any(type, routes)), updated(key)]))
            }
        }
        let dynamicRoutes: [ProtoJSON] = dynamic.routeConfigs.keys.sorted().filter { named(.object([("name", .string($0))])) }.compactMap { name in
            let key = SubscriptionKey.routes(name: name)
            guard let routes = delivered(key).first else { return nil }
            return .object(version(key) + [("route_config", Self.any(type, routes)), updated(key)])
        }
        return Self.dump("RoutesConfigDump", [], [("static_route_configs", statics), ("dynamic_route_configs", dynamicRoutes)])
    }

    /// SDS secrets read from files (the only kind Ballast takes), with the file's version_info.
    private func secretsDump() -> ProtoJSON {
        let secrets = bootstrap.secrets
        let entries: [ProtoJSON] = secrets.sources.keys.sorted().compactMap { name in
            guard named(.object([("name", .string(name))])), let source = secrets.sources[name], let text = secrets.texts[source.path],
                  let root = try? Yams.compose(yaml: text), case .mapping(let m) = root, let list = m["resources"], case .sequence(let items) = list,
                  let secret = items.compactMap(EnvoyProtoJSONRules.normalise).first(where: { $0["name"]?.stringValue == name }) else { return nil }
            let version: [(String, ProtoJSON)] = (secrets.versionInfo[name] ?? "").isEmpty ? [] : [("version_info", .string(secrets.versionInfo[name]!))]
            let millis = dynamic.readTimes.secretFileMillis[source.path] ?? dynamic.readTimes.bootstrapMillis
            return .object([("name", .string(name))] + version + [("last_updated", .string(Self.timestamp(millis))),
                            ("secret", Self.any("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", Self.inlined(secret, key: "")))])
        }
        return Self.dump("SecretsConfigDump", [], [("dynamic_active_secrets", entries)])
    }

    static let hcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

    /// Every listener, printed, with the subscription it came from (nil: the bootstrap).
    /// `named`: only those `?name_regex=` matches.
    private func listeners(named: Bool) -> [(ProtoJSON, SubscriptionKey?)] {
        (bootstrap.printed.json?["static_resources"]?["listeners"]?.arrayValue ?? []).map { ($0, nil) }
            + delivered(.listener, named: named).filter { dynamic.isDynamic(.listener, $0["name"]?.stringValue ?? "") }.map { ($0, .listener) }
    }

    /// The http_connection_manager configs in the listener's filter chains.
    static func connectionManagers(_ listener: ProtoJSON) -> [ProtoJSON] {
        var chains = listener["filter_chains"]?.arrayValue ?? []
        if let fallback = listener["default_filter_chain"] { chains.append(fallback) }
        return chains.flatMap { chain in
            (chain["filters"]?.arrayValue ?? []).compactMap { filter in
                guard let config = filter["typed_config"], config["@type"]?.stringValue == hcmType else { return nil }
                return config
            }
        }
    }

    /// Envoy's EDS dump: each cluster's hosts as a ClusterLoadAssignment (grouped by priority and
    /// locality, with health status and weights, and the overprovisioning factor); clusters from
    /// CDS are dynamic, the bootstrap's static.
    private func endpointsDump() -> ProtoJSON {
        var statics: [ProtoJSON] = [], dynamics: [ProtoJSON] = []
        // An ORIGINAL_DST cluster has no configured hosts (the destinations are the workers').
        for c in plane.clusters.sorted(by: { $0.name < $1.name }) where named(.object([("name", .string(c.name))])) {
            let entry = ProtoJSON.object([("endpoint_config", Self.any(SubscriptionKey.endpoints(cluster: "").typeURL, Self.loadAssignment(c)))])
            if dynamic.isDynamic(.cluster, c.name) { dynamics.append(entry) } else { statics.append(entry) }
        }
        return Self.dump("EndpointsConfigDump", [], [("static_endpoint_configs", statics), ("dynamic_endpoint_configs", dynamics)])
    }

    private static func byName(_ resources: [ProtoJSON]) -> [ProtoJSON] {
        resources.sorted { ($0["name"]?.stringValue ?? "") < ($1["name"]?.stringValue ?? "") }
    }

    /// A dump message: its type, then its non-empty lists (protobuf leaves empty ones out).
    private static func dump(_ name: String, _ head: [(String, ProtoJSON)], _ lists: [(String, [ProtoJSON])]) -> ProtoJSON {
        .object([("@type", .string(admin + name))] + head + lists.filter { !$0.1.isEmpty }.map { ($0.0, .array($0.1)) })
    }

    /// protobuf's JSON form of a Timestamp in UTC: `2026-12-08T01:30:51.643Z` (no fraction when whole).
    static func timestamp(_ millis: Int64) -> String {
        var seconds = time_t(millis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let fraction = millis % 1000
        let ms = fraction == 0 ? "" : "." + String(String(fraction + 1000).dropFirst())
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))\(ms)Z"
    }
}
