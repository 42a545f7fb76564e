/// RDS from a file: `rds {route_config_name, config_source: <file source>}`. The file is a
/// DiscoveryResponse holding at most one RouteConfiguration named `route_config_name`; without
/// one the routes are empty (every request: 404 NR, as Envoy).
extension BootstrapParser {
    func parseRDS(_ value: ConfigValue, statPrefix: String?) -> RouteConfiguration? {
        guard let f = value.fields(known: ["route_config_name", "config_source"]) else { return nil }
        let name = f.required("route_config_name")?.nonEmptyString()
        let sourceValue = f.required("config_source")
        guard let source = sourceValue.flatMap(parseFileConfigSource), let name, let sourceValue else { return nil }
        let key = SubscriptionKey.routes(name: name)
        if let known = dynamic.sources[key] {
            // Envoy shares one subscription between the managers naming the same configuration.
            guard known == source else {
                sourceValue.error("route_config_name '\(name)' is already read from '\(known.path)' by another http_connection_manager; ballast keeps one subscription per route configuration name")
                return nil
            }
            return dynamic.routeConfigs[name]
        }
        if let statPrefix { dynamic.routeStatPrefixes[name] = statPrefix }
        let empty = RouteConfiguration(name: name, virtualHosts: [])
        let config = toleratingAtStart(key, fallback: empty) { () -> RouteConfiguration? in
            guard let resources = readDiscoveryResponse(source, key, field: sourceValue.path) else { return nil }
            switch singleResource(resources, source, api: "RDS", nameField: "name", expected: name) {
            case .none: return empty
            case .invalid: return nil
            case .one(let body):
                let references = clusterReferences.count
                let parsed = parseRouteConfiguration(body, rds: name)
                checkClusterReferences(since: references)
                return parsed
            }
        }
        dynamic.routeConfigs[name] = config
        return config
    }
}
