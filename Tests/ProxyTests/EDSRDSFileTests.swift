import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// EDS (`type: EDS`, `eds_cluster_config.eds_config`) and RDS (`rds.config_source`) from files:
/// loading, Envoy's one-resource rule, bad input naming the file, and updates applied in place.
final class EDSRDSFileTests: ConfigFilesTestCase {
    override class var directoryLabel: String { "xds" }

    /// A ClusterLoadAssignment named `name` with one endpoint per port (priority 0), or none.
    private func eds(_ version: String, name: String = "svc", ports: [Int]?) -> String {
        guard let ports else { return "version_info: \(version)\nresources: []\n" }
        let endpoints = ports.map { "    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \($0)}}}" }.joined(separator: "\n")
        return """
        version_info: \(version)
        resources:
        - "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
          cluster_name: \(name)
          endpoints:
          - lb_endpoints:
        \(endpoints)

        """
    }

    /// A RouteConfiguration named `name` answering `body` directly, or none.
    private func rds(_ version: String, name: String = "rc", body: String?) -> String {
        guard let body else { return "version_info: \(version)\nresources: []\n" }
        return """
        version_info: \(version)
        resources:
        - "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
          name: \(name)
          virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
            - {match: {prefix: "/direct"}, direct_response: {status: 200, body: {inline_string: "\(body)"}}}
            - {match: {prefix: "/"}, route: {cluster: edsc}}

        """
    }

    private func bootstrap(node: String = "node: {id: a, cluster: b}\n", edsFile: String = "eds.yaml") -> String {
        """
        \(node)admin:
          address: {socket_address: {address: 127.0.0.1, port_value: 0}}
        static_resources:
          listeners:
          - name: l
            address: {socket_address: {address: 127.0.0.1, port_value: 0}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: hp
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                  rds:
                    route_config_name: rc
                    config_source: {resource_api_version: V3, path_config_source: {path: \(dir)/rds.yaml}}
          clusters:
          - name: edsc
            type: EDS
            connect_timeout: 1s
            eds_cluster_config:
              service_name: svc
              eds_config: {resource_api_version: V3, path_config_source: {path: \(dir)/\(edsFile)}}

        """
    }

    func testFilesLoadWithEnvoysOneResourceRule() throws {
        write("eds.yaml", """
        version_info: e1
        resources:
        - "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
          cluster_name: svc
          policy: {overprovisioning_factor: 200}
          endpoints:
          - load_balancing_weight: 3
            lb_endpoints:
            - {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}, load_balancing_weight: 2}
          - priority: 1
            lb_endpoints:
            - endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: 9}}}

        """)
        write("rds.yaml", rds("r1", body: "one"))
        let b = try XCTUnwrap(load(bootstrap())).bootstrap
        let cluster = try XCTUnwrap(b.clusters.first)
        XCTAssertEqual(cluster.discoveryType, .eds)
        XCTAssertEqual(cluster.endpoints.map(\.address.description), ["127.0.0.1:9", "127.0.0.2:9"])
        XCTAssertEqual(cluster.endpoints.map(\.weight), [2, 1])
        XCTAssertEqual(cluster.endpoints.map(\.priority), [0, 1])
        XCTAssertEqual(cluster.endpoints.map(\.place.weight), [3, 0])
        XCTAssertEqual(cluster.overprovisioningFactor, 200)
        XCTAssertEqual(b.dynamic.routeConfigs["rc"]?.virtualHosts.map(\.name), ["all"])
        XCTAssertEqual(b.dynamic.versionInfo[.endpoints(cluster: "edsc")], "e1")
        XCTAssertEqual(b.dynamic.versionInfo[.routes(name: "rc")], "r1")
        XCTAssertEqual(b.dynamic.routeStatPrefixes, ["rc": "hp"])
        XCTAssertEqual(b.dynamic.empty, [])

        // No resource: the cluster has no hosts, the routes are empty (Envoy: 503 UH, 404 NR).
        write("eds.yaml", eds("e0", ports: nil))
        write("rds.yaml", rds("r0", body: nil))
        let empty = try XCTUnwrap(load(bootstrap())).bootstrap
        XCTAssertEqual(empty.clusters.first?.endpoints, [])
        XCTAssertEqual(empty.dynamic.routeConfigs["rc"]?.virtualHosts, [])
        XCTAssertEqual(empty.dynamic.empty, [.endpoints(cluster: "edsc"), .routes(name: "rc")])

        // Envoy's rejections: another name, more than one resource, an unknown field.
        let edsPath = "[\"\(dir)/eds.yaml\"]"
        let rdsPath = "[\"\(dir)/rds.yaml\"]"
        write("rds.yaml", rds("r1", body: "one"))
        write("eds.yaml", eds("e2", name: "other", ports: [9]))
        XCTAssertEqual(loadErrors(bootstrap()), ["\(edsPath).resources[0].cluster_name: Unexpected EDS cluster (expecting svc): other"])
        write("eds.yaml", eds("e2", ports: [9]) + eds("e2", name: "x", ports: [9]).split(separator: "\n").dropFirst(2).joined(separator: "\n") + "\n")
        XCTAssertEqual(loadErrors(bootstrap()), ["\(edsPath).resources: Unexpected EDS resource length: 2 (a file for one EDS subscription holds one resource; Envoy rejects it too)"])
        write("eds.yaml", eds("e2", ports: [9]).replacingOccurrences(of: "port_value", with: "port_valu"))
        XCTAssertTrue(loadErrors(bootstrap()).contains("\(edsPath).resources[0].endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_valu: unknown field; did you mean port_value?"))
        write("eds.yaml", eds("e2", ports: [9]))
        write("rds.yaml", rds("r2", name: "other", body: "x"))
        XCTAssertEqual(loadErrors(bootstrap()), ["\(rdsPath).resources[0].name: Unexpected RDS configuration (expecting rc): other"])
        write("rds.yaml", rds("r2", body: "x").replacingOccurrences(of: "RouteConfiguration", with: "Cluster"))
        XCTAssertEqual(loadErrors(bootstrap()).first,
                       "\(rdsPath).resources[0].@type: Unable to unpack as envoy.config.route.v3.RouteConfiguration: the resource is 'type.googleapis.com/envoy.config.route.v3.Cluster'")
        // A missing file, and no node.
        write("rds.yaml", rds("r1", body: "one"))
        XCTAssertEqual(loadErrors(bootstrap(edsFile: "missing.yaml")).first?.hasPrefix(
            "static_resources.clusters[0].eds_cluster_config.eds_config: paths must refer to an existing path in the system: '\(dir)/missing.yaml'"), true)
        XCTAssertEqual(loadErrors(bootstrap(node: "")), ["node: node 'id' and 'cluster' are required with eds_config / rds sources (Envoy refuses the config without them)"])
    }

    /// Endpoints added and removed (the host count changes), a file without the resource (the hosts
    /// stay), a rejected file; routes changed for the next request. Counted as Envoy counts them.
    func testUpdatesApplyAndAreCountedAsEnvoy() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let dead = try closedPort()
        write("eds.yaml", eds("e1", ports: [upstream.port]))
        write("rds.yaml", rds("r1", body: "one"))
        write("bootstrap.yaml", bootstrap())
        let ops = try startOps("", configPath: "\(dir)/bootstrap.yaml")
        defer { ops.stop() }
        let port = try XCTUnwrap(ops.proxy.port(of: "l"))
        let admin = try XCTUnwrap(ops.adminPort)
        func stat(_ name: String) -> Int? { statValue(adminRequest(admin, "GET", "/stats").1, name) }
        func get(_ path: String) throws -> (Int?, String) {
            let c = try TestConnection(port: port)
            c.send("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let r = c.readResponse()
            return (r?.status, r?.text ?? "")
        }
        let edsKey = SubscriptionKey.endpoints(cluster: "edsc")
        let rdsKey = SubscriptionKey.routes(name: "rc")
        func update(_ key: SubscriptionKey, _ file: String, _ text: String) {
            let before = ops.subscriptions[key]?.attempt ?? 0
            replace(file, text)
            XCTAssertTrue(Wait.until { ops.pollDynamicConfig(); return ops.subscriptions[key]?.attempt == before + 1 })
        }
        XCTAssertEqual(try get("/direct").1, "one")
        XCTAssertEqual(try get("/").0, 200)
        XCTAssertEqual(stat("cluster.edsc.update_success"), 1)
        XCTAssertEqual(stat("http.hp.rds.rc.config_reload"), 1)

        // A second endpoint (host count 1 -> 2) while a request is in flight: it finishes on its
        // snapshot; then only the dead one.
        let held = try TestConnection(port: port)
        held.send("GET /?delay=1s HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(Wait.until { stat("cluster.edsc.upstream_rq_active") == 1 })
        update(edsKey, "eds.yaml", eds("e2", ports: [upstream.port, dead]))
        XCTAssertEqual(ops.currentPlane.clusters[0].hosts.count, 2)
        XCTAssertEqual(held.readResponse()?.status, 200, "the request in flight is not dropped")
        update(edsKey, "eds.yaml", eds("e3", ports: [dead]))
        XCTAssertEqual(try get("/").0, 503)
        // The same endpoints again: update_no_rebuild. No resource: the dead endpoint stays.
        update(edsKey, "eds.yaml", eds("e4", ports: [dead]))
        update(edsKey, "eds.yaml", eds("e5", ports: nil))
        XCTAssertEqual(ops.currentPlane.clusters[0].hosts.map(\.name), ["127.0.0.1:\(dead)"])
        // Another name: rejected; not YAML: failure. Then the live endpoint back.
        update(edsKey, "eds.yaml", eds("e6", name: "other", ports: [upstream.port]))
        update(edsKey, "eds.yaml", "resources: [ {bad\n")
        XCTAssertEqual(try get("/").0, 503)
        update(edsKey, "eds.yaml", eds("e8", ports: [upstream.port]))
        XCTAssertEqual(try get("/").0, 200)
        XCTAssertEqual(ops.subscriptions[edsKey], SubscriptionCounters(attempt: 8, success: 6, rejected: 1, failure: 1, version: XXHash64.hash("e8"),
                                                                       empty: 1, noRebuild: 1))
        XCTAssertEqual(stat("cluster.edsc.membership_change"), 4)
        XCTAssertEqual(stat("cluster.edsc.update_rejected"), 1)
        XCTAssertEqual(stat("cluster.edsc.update_empty"), 1)

        // Routes: changed (config_reload), empty (kept, update_empty), unknown field (rejected).
        update(rdsKey, "rds.yaml", rds("r2", body: "two"))
        XCTAssertEqual(try get("/direct").1, "two")
        update(rdsKey, "rds.yaml", rds("r3", body: nil))
        update(rdsKey, "rds.yaml", rds("r4", body: "x").replacingOccurrences(of: "inline_string", with: "inline_strin"))
        XCTAssertEqual(try get("/direct").1, "two")
        XCTAssertEqual(ops.subscriptions[rdsKey], SubscriptionCounters(attempt: 4, success: 3, rejected: 1, version: XXHash64.hash("r3"),
                                                                       empty: 1, configReload: 2))
        let text = adminRequest(admin, "GET", "/stats").1
        XCTAssertTrue(text.contains("http.hp.rds.rc.version_text: \"r3\"\n"), text)
        XCTAssertTrue(text.contains("cluster.edsc.version_text: \"e8\"\n"))
        XCTAssertEqual(statValue(text, "http.hp.rds.rc.update_rejected"), 1)
        let dump = adminRequest(admin, "GET", "/config_dump").1
        let routes = try XCTUnwrap(configDumpEntries(dump, "RoutesConfigDump", "dynamic_route_configs").first)
        XCTAssertEqual(routes["version_info"] as? String, "r3")
        XCTAssertEqual((routes["route_config"] as? [String: Any])?["name"] as? String, "rc")
        XCTAssertFalse(dump.contains("EndpointsConfigDump"), "only with ?include_eds, as Envoy")
        let withEDS = adminRequest(admin, "GET", "/config_dump?include_eds").1
        // As Envoy: the hosts in use, without version_info (EDS cluster from the bootstrap: static).
        let endpoints = try XCTUnwrap(configDumpEntries(withEDS, "EndpointsConfigDump", "static_endpoint_configs").first)
        XCTAssertEqual((endpoints["endpoint_config"] as? [String: Any])?["cluster_name"] as? String, "edsc")
    }

    /// An LDS update that names another route configuration (another file): the new subscription
    /// starts counting, the old one is dropped, and the new file is watched from then on.
    func testAnLDSUpdateNamingOtherRoutesSubscribesToThem() throws {
        func listener(_ routeName: String, _ file: String) -> String {
            """
            resources:
            - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
              name: l
              address: {socket_address: {address: 127.0.0.1, port_value: 0}}
              filter_chains:
              - filters:
                - name: envoy.filters.network.http_connection_manager
                  typed_config:
                    "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                    stat_prefix: dyn
                    http_filters:
                    - name: envoy.filters.http.router
                      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                    rds: {route_config_name: \(routeName), config_source: {path_config_source: {path: \(dir)/\(file)}}}

            """
        }
        write("eds.yaml", eds("e1", ports: [9]))
        write("rds.yaml", rds("r1", body: "one"))
        write("rds2.yaml", rds("s1", name: "rc2", body: "two"))
        write("lds.yaml", listener("rc", "rds.yaml"))
        // The base bootstrap's cluster, its listener replaced by the LDS file.
        let cluster = bootstrap().components(separatedBy: "  clusters:\n")[1]
        write("bootstrap.yaml", """
        node: {id: a, cluster: b}
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
        dynamic_resources:
          lds_config: {path_config_source: {path: \(dir)/lds.yaml}}
        static_resources:
          clusters:
        \(cluster)
        """)
        let ops = try startOps("", configPath: "\(dir)/bootstrap.yaml")
        defer { ops.stop() }
        XCTAssertEqual(Set(ops.subscriptions.keys), [.listener, .endpoints(cluster: "edsc"), .routes(name: "rc")])
        replace("lds.yaml", listener("rc2", "rds2.yaml"))
        XCTAssertTrue(Wait.until { ops.pollDynamicConfig(); return ops.subscriptions[.listener]?.attempt == 2 })
        XCTAssertEqual(Set(ops.subscriptions.keys), [.listener, .endpoints(cluster: "edsc"), .routes(name: "rc2")])
        XCTAssertEqual(ops.subscriptions[.routes(name: "rc2")], SubscriptionCounters(attempt: 1, success: 1, version: XXHash64.hash("s1"), configReload: 1))
        replace("rds2.yaml", rds("s2", name: "rc2", body: "three"))
        XCTAssertTrue(Wait.until { ops.pollDynamicConfig(); return ops.subscriptions[.routes(name: "rc2")]?.attempt == 2 }, "the new file is watched")
        let admin = try XCTUnwrap(ops.adminPort)
        XCTAssertEqual(statValue(adminRequest(admin, "GET", "/stats").1, "http.dyn.rds.rc2.update_success"), 2)
    }

    /// At the process's start (`loadAtStart`) a file that fails leaves its cluster without hosts
    /// or its routes empty, with a warning naming the file, as Envoy starts; a missing file is
    /// still refused, and a plain load (a reload) refuses the bad file.
    func testBadFilesAtStartAreToleratedAsEnvoy() throws {
        write("eds.yaml", eds("e1", name: "other", ports: [9]))
        // validate_clusters (off by default for RDS, as Envoy) makes the unknown cluster an error.
        write("rds.yaml", rds("r1", body: "x").replacingOccurrences(of: "cluster: edsc", with: "cluster: edcs")
            .replacingOccurrences(of: "  name: rc\n", with: "  name: rc\n  validate_clusters: true\n"))
        write("bootstrap.yaml", bootstrap())
        let loaded = try BootstrapLoader.loadAtStart(path: "\(dir)/bootstrap.yaml", overlayYAML: nil)
        XCTAssertEqual(loaded.bootstrap.clusters.first?.endpoints, [])
        XCTAssertEqual(loaded.bootstrap.dynamic.routeConfigs["rc"]?.virtualHosts, [])
        XCTAssertEqual(loaded.bootstrap.dynamic.startFailures, [.endpoints(cluster: "edsc"): false, .routes(name: "rc"): false])
        XCTAssertEqual(loaded.warnings.map(\.description).filter { $0.contains("at start, as Envoy") }, [
            "[\"\(dir)/eds.yaml\"].resources[0].cluster_name: Unexpected EDS cluster (expecting svc): other (at start, as Envoy: eds_config of cluster 'edsc' goes on without its resource)",
            "[\"\(dir)/rds.yaml\"].resources[0].virtual_hosts[0].routes[1].route.cluster: unknown cluster 'edcs'; did you mean edsc? (at start, as Envoy: rds route_config_name 'rc' goes on without its resource)",
        ])
        XCTAssertEqual(ProxyOps.initialSubscriptions(loaded.bootstrap)[.routes(name: "rc")], SubscriptionCounters(attempt: 1, rejected: 1))
        XCTAssertThrowsError(try BootstrapLoader.load(path: "\(dir)/bootstrap.yaml", overlayYAML: nil))
        write("rds.yaml", "resources: [ {bad\n")
        XCTAssertEqual(try BootstrapLoader.loadAtStart(path: "\(dir)/bootstrap.yaml", overlayYAML: nil).bootstrap.dynamic.startFailures[.routes(name: "rc")], true)
        write("bootstrap.yaml", bootstrap(edsFile: "missing.yaml"))
        XCTAssertThrowsError(try BootstrapLoader.loadAtStart(path: "\(dir)/bootstrap.yaml", overlayYAML: nil))
    }

    /// Two connection managers naming the same route configuration share its subscription (as
    /// Envoy; stats in the first one's stat_prefix); the same name from another file is refused.
    func testConnectionManagersNamingTheSameRoutesShareOneSubscription() throws {
        write("eds.yaml", eds("e1", ports: [9]))
        write("rds.yaml", rds("r1", body: "one"))
        write("other.yaml", rds("o1", body: "two"))
        func second(_ file: String) -> String {
            bootstrap().replacingOccurrences(of: "  clusters:\n", with: """
              - name: l2
                address: {socket_address: {address: 127.0.0.1, port_value: 0}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: second
                      http_filters:
                      - name: envoy.filters.http.router
                        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                      rds: {route_config_name: rc, config_source: {path_config_source: {path: \(dir)/\(file)}}}
              clusters:

            """)
        }
        let b = try XCTUnwrap(load(second("rds.yaml"))).bootstrap
        XCTAssertEqual(Set(b.dynamic.sources.keys), [.endpoints(cluster: "edsc"), .routes(name: "rc")])
        XCTAssertEqual(b.dynamic.routeStatPrefixes, ["rc": "hp"])
        XCTAssertEqual(b.dynamic.routeConfigs["rc"]?.virtualHosts.count, 1)
        XCTAssertEqual(loadErrors(second("other.yaml")), [
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.rds.config_source: route_config_name 'rc' is already read from '\(dir)/rds.yaml' by another http_connection_manager; ballast keeps one subscription per route configuration name",
        ])
    }
}
