/// EDS from a file: `type: EDS` with `eds_cluster_config {eds_config: <file source>, service_name}`.
/// The file is a DiscoveryResponse holding at most one ClusterLoadAssignment, named
/// `service_name` (or the cluster's name); its endpoints are parsed as a static load_assignment.
extension BootstrapParser {
    func parseEDSEndpoints(_ f: ConfigFields, clusterName: String, overprovisioning: inout Int) -> [EndpointConfig]? {
        guard let e = f.required("eds_cluster_config")?.fields(known: ["eds_config", "service_name"]),
              let sourceValue = e.required("eds_config"), let source = parseFileConfigSource(sourceValue) else { return nil }
        let serviceName = e["service_name"]?.string().flatMap { $0.isEmpty ? nil : $0 } ?? clusterName
        let key = SubscriptionKey.endpoints(cluster: clusterName)
        var policy = overprovisioning
        let endpoints = toleratingAtStart(key, fallback: []) { () -> [EndpointConfig]? in
            guard let resources = readDiscoveryResponse(source, key, field: sourceValue.path) else { return nil }
            switch singleResource(resources, source, api: "EDS", nameField: "cluster_name", expected: serviceName) {
            case .none:
                return []  // Envoy: the cluster starts with no hosts (503 no_healthy_upstream)
            case .invalid:
                return nil
            case .one(let assignment):
                // EDS addresses are not resolved (Envoy refuses a hostname as a malformed IP address).
                return parseLoadAssignment(assignment, allowHostname: false, overprovisioning: &policy)
            }
        }
        if endpoints != nil, dynamic.startFailures[key] == nil { overprovisioning = policy }
        return endpoints
    }
}
