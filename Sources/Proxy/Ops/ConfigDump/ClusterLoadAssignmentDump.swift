/// Envoy's EDS dump entry of a cluster: a ClusterLoadAssignment rebuilt from the hosts in use
/// (Envoy rebuilds it from its host sets, not from the configuration).
extension ConfigDumpBuilder {
    /// Hosts grouped by priority and locality (in that order), each with its health status
    /// (UNHEALTHY when an active check or outlier detection failed it) and weight.
    static func loadAssignment(_ c: ClusterPlan) -> ProtoJSON {
        var groups: [(priority: Int, locality: Int, endpoints: [ProtoJSON])] = []
        for (i, h) in c.hosts.enumerated() {
            var endpoint: [(String, ProtoJSON)] = [("address", .object([("socket_address", .object(
                [("address", .string(h.address.host)), ("port_value", .number(String(h.address.port)))]))]))]
            // Envoy: the health-check port only when it differs from the host's.
            endpoint.append(("health_check_config", .object(h.healthCheckPort.map { [("port_value", .number(String($0)))] } ?? [])))
            if !h.hostname.isEmpty { endpoint.append(("hostname", .string(h.hostname))) }
            let flags = c.health?.flags(i) ?? []
            let healthy = !flags.contains(.failedActiveHC) && !flags.contains(.failedOutlierCheck)
            // A resolved (DNS) host carries its endpoint's (empty) metadata in Envoy's dump.
            let lbEndpoint = ProtoJSON.object([("endpoint", .object(endpoint))] + (h.hostname.isEmpty ? [] : [("metadata", .object([]))])
                + [("health_status", .string(healthy ? "HEALTHY" : "UNHEALTHY")), ("load_balancing_weight", .number(String(h.weight)))])
            if let g = groups.firstIndex(where: { $0.priority == h.priority && $0.locality == h.locality }) {
                groups[g].endpoints.append(lbEndpoint)
            } else {
                groups.append((h.priority, h.locality, [lbEndpoint]))
            }
        }
        groups.sort { ($0.priority, $0.locality) < ($1.priority, $1.locality) }
        let endpoints: [ProtoJSON] = groups.map { g in
            let place = g.locality < c.localities.count ? c.localities[g.locality] : LocalityConfig()
            var locality: [(String, ProtoJSON)] = []
            if !place.region.isEmpty { locality.append(("region", .string(place.region))) }
            if !place.zone.isEmpty { locality.append(("zone", .string(place.zone))) }
            if !place.subZone.isEmpty { locality.append(("sub_zone", .string(place.subZone))) }
            var fields: [(String, ProtoJSON)] = [("locality", .object(locality)), ("lb_endpoints", .array(g.endpoints)),
                                                 ("load_balancing_weight", .number(String(place.weight)))]
            if g.priority != 0 { fields.append(("priority", .number(String(g.priority)))) }
            return .object(fields)
        }
        var fields: [(String, ProtoJSON)] = [("cluster_name", .string(c.name))]
        if !endpoints.isEmpty { fields.append(("endpoints", .array(endpoints))) }
        fields.append(("policy", .object([("overprovisioning_factor", .number(String(c.overprovisioningFactor)))])))
        return .object(fields)
    }
}
