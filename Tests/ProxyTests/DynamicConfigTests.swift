import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// `dynamic_resources` with file sources: loading, bad input, and updates applied in place.
final class DynamicConfigTests: ConfigFilesTestCase {
    override class var directoryLabel: String { "dyn" }

    private func cds(_ version: String, ports: [Int], name: String = "dyn") -> String {
        let endpoints = ports.map { "      - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \($0)}}}" }.joined(separator: "\n")
        return """
        version_info: \(version)
        resources:
        - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
          name: \(name)
          type: STATIC
          load_assignment:
            cluster_name: \(name)
            endpoints:
            - lb_endpoints:
        \(endpoints)

        """
    }

    private func lds(port: Int = 0, cluster: String = "dyn") -> String {
        """
        resources:
        - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
          name: dyn_listener
          address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
          filter_chains:
          - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: dyn
                http_filters:
                - name: envoy.filters.http.router
                  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                route_config:
                  virtual_hosts:
                  - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: \(cluster)}}]}

        """
    }

    private func bootstrap(cds: String = "cds.yaml", lds: String = "lds.yaml", node: String = "node: {id: a, cluster: b}\n", extra: String = "") -> String {
        """
        \(node)dynamic_resources:
          cds_config: {resource_api_version: V3, path_config_source: {path: \(dir)/\(cds)}}
          lds_config: {path_config_source: {path: \(dir)/\(lds)}}
        admin:
          address: {socket_address: {address: 127.0.0.1, port_value: 0}}
        \(extra)
        """
    }

    func testXXHash64MatchesEnvoysVersionGauges() {
        // Values read from Envoy 1.40's cluster_manager.cds.version after these version_info texts.
        XCTAssertEqual(XXHash64.hash(""), 17_241_709_254_077_376_921)
        XCTAssertEqual(XXHash64.hash("c1"), 814_672_407_442_807_801)
        XCTAssertEqual(XXHash64.hash("c2"), 17_012_810_558_893_514_520)
        XCTAssertEqual(XXHash64.hash("c5"), 14_367_653_810_159_144_906)
        // Longer than one 32-byte stripe (reference value of the published algorithm).
        XCTAssertEqual(XXHash64.hash("Nobody inspects the spammish repetition"), 0xFBCE_A83C_8A37_8BF1)
    }

    func testFilesLoadWithStaticResourcesAndVersions() throws {
        write("cds.yaml", cds("v7", ports: [9]))
        write("lds.yaml", lds())
        let yaml = bootstrap(extra: """
        static_resources:
          clusters:
          - name: static_one
            load_assignment:
              cluster_name: static_one
              endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8}}}}]}]
        """)
        let b = try XCTUnwrap(load(yaml)).bootstrap
        XCTAssertEqual(b.clusters.map(\.name), ["static_one", "dyn"])
        XCTAssertEqual(b.listeners.map(\.name), ["dyn_listener"])
        XCTAssertEqual(b.dynamic.versionInfo[.cluster], "v7")
        XCTAssertEqual(b.dynamic.versionInfo[.listener], "")
        XCTAssertEqual(b.dynamic.names[.cluster], ["dyn"])
        XCTAssertTrue(b.dynamic.isDynamic(.listener, "dyn_listener"))
        XCTAssertFalse(b.dynamic.isDynamic(.cluster, "static_one"))
    }

    func testBadInputIsRefusedNamingThePath() {
        write("lds.yaml", lds())
        write("cds.yaml", cds("v1", ports: [9]))
        // A missing file (Envoy: "paths must refer to an existing path in the system").
        XCTAssertEqual(loadErrors(bootstrap(cds: "missing.yaml")).count, 2)  // and the listener's cluster is unknown
        XCTAssertTrue(loadErrors(bootstrap(cds: "missing.yaml")).contains { $0.hasPrefix("dynamic_resources.cds_config: paths must refer to an existing path in the system: '\(dir)/missing.yaml'") },
                      "\(loadErrors(bootstrap(cds: "missing.yaml")))")
        // A Listener in the CDS file.
        write("wrong.yaml", lds())
        XCTAssertTrue(loadErrors(bootstrap(cds: "wrong.yaml")).contains { $0.hasPrefix("[\"\(dir)/wrong.yaml\"].resources[0].@type: Unable to unpack as envoy.config.cluster.v3.Cluster") },
                      "\(loadErrors(bootstrap(cds: "wrong.yaml")))")
        // A dynamic cluster named as a static one.
        let collision = bootstrap(extra: """
        static_resources:
          clusters:
          - name: dyn
            load_assignment:
              cluster_name: dyn
              endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8}}}}]}]
        """)
        XCTAssertEqual(loadErrors(collision), ["[\"\(dir)/cds.yaml\"].resources[0].name: duplicate cluster name 'dyn' (first at static_resources.clusters[0].name)"])
        // Envoy requires node id and cluster with any xDS source.
        XCTAssertEqual(loadErrors(bootstrap(node: "")), ["node: node 'id' and 'cluster' are required with dynamic_resources (Envoy refuses the config without them)"])
        // A file not named .yaml / .yml is JSON to Envoy.
        write("cds.txt", cds("v1", ports: [9]))
        XCTAssertTrue(loadErrors(bootstrap(cds: "cds.txt")).contains { $0.contains("expected JSON") })
        write("cds.json", #"{"version_info": "j", "resources": [{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "dyn", "load_assignment": {"cluster_name": "dyn", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}]}]}}]}"#)
        XCTAssertEqual(loadErrors(bootstrap(cds: "cds.json")), [])
        // gRPC sources and the v2 API.
        XCTAssertEqual(loadErrors("node: {id: a, cluster: b}\ndynamic_resources: {ads_config: {api_type: GRPC}}"), ["dynamic_resources.ads_config: not supported by ballast"])
        XCTAssertTrue(loadErrors(bootstrap().replacingOccurrences(of: "resource_api_version: V3", with: "resource_api_version: V2"))
            .contains("dynamic_resources.cds_config.resource_api_version: the v2 xDS API is gone (Envoy refuses it too); use V3"))
    }

    /// At the process's start (run mode) a bad LDS / CDS file leaves its source without resources,
    /// as Envoy starts: what named its resources fails in turn, the errors become warnings naming
    /// the file, the subscription counts one attempt and one rejected / failure. Validate mode, a
    /// missing file and a static listener naming a cluster only the bad CDS file had still refuse.
    func testBadListenerAndClusterFilesAtStartLeaveTheirSourceEmpty() throws {
        let path = "\(dir)/bootstrap.yaml"
        func start() throws(ConfigLoadError) -> LoadedBootstrap {
            try BootstrapLoader.loadAtStart(path: path, overlayYAML: nil, toleratingListenerAndClusterFiles: true)
        }
        write("bootstrap.yaml", bootstrap())
        write("cds.yaml", lds())  // a Listener in the CDS file: rejected
        write("lds.yaml", lds())  // its route names dyn, which the CDS file would have delivered
        var loaded = try start()
        XCTAssertEqual(loaded.bootstrap.clusters.map(\.name), [])
        XCTAssertEqual(loaded.bootstrap.listeners.map(\.name), [])
        XCTAssertEqual(loaded.bootstrap.dynamic.startFailures, [.cluster: false, .listener: false])
        XCTAssertEqual(loaded.bootstrap.dynamic.sources.keys.sorted(), [.cluster, .listener])
        let warnings = loaded.warnings.map(\.description)
        XCTAssertEqual(warnings.count, 2, "\(warnings)")
        XCTAssertTrue(warnings[0].hasPrefix("[\"\(dir)/cds.yaml\"].resources[0].@type: Unable to unpack as envoy.config.cluster.v3.Cluster"), "\(warnings)")
        XCTAssertTrue(warnings[0].hasSuffix("(at start, as Envoy: cds_config goes on without its resources; a good file moved onto \(dir)/cds.yaml adds them)"), "\(warnings)")
        XCTAssertTrue(warnings[1].hasPrefix("[\"\(dir)/lds.yaml\"].resources[0].filter_chains[0]") && warnings[1].contains("unknown cluster 'dyn'"), "\(warnings)")
        var counters = ProxyOps.initialSubscriptions(loaded.bootstrap)
        XCTAssertEqual(counters[.cluster], SubscriptionCounters(attempt: 1, rejected: 1))
        XCTAssertEqual(counters[.listener], SubscriptionCounters(attempt: 1, rejected: 1))

        // An LDS file that is not YAML (update_failure); the good CDS file delivers its cluster.
        write("cds.yaml", cds("v1", ports: [9]))
        write("lds.yaml", "resources: [ {bad\n")
        loaded = try start()
        XCTAssertEqual(loaded.bootstrap.clusters.map(\.name), ["dyn"])
        XCTAssertEqual(loaded.bootstrap.listeners.map(\.name), [])
        XCTAssertEqual(loaded.bootstrap.dynamic.startFailures, [.listener: true])
        XCTAssertEqual(loaded.warnings.count, 1)
        XCTAssertTrue(loaded.warnings[0].description.hasPrefix("\(dir)/lds.yaml: YAML syntax error"), "\(loaded.warnings)")
        counters = ProxyOps.initialSubscriptions(loaded.bootstrap)
        XCTAssertEqual(counters[.listener], SubscriptionCounters(attempt: 1, failure: 1))
        XCTAssertEqual(counters[.cluster], SubscriptionCounters(attempt: 1, success: 1, version: XXHash64.hash("v1")))

        // Validate mode refuses the same files.
        XCTAssertThrowsError(try BootstrapLoader.loadAtStart(path: path, overlayYAML: nil))
        // A missing file stays refused (as Envoy).
        write("bootstrap.yaml", bootstrap(lds: "missing.yaml"))
        XCTAssertThrowsError(try start()) { error in
            XCTAssertTrue((error as? ConfigLoadError)?.errors.contains { $0.description.hasPrefix("dynamic_resources.lds_config: paths must refer") } == true, "\(error)")
        }
        // A static listener whose route names a cluster only the bad CDS file had: refused, as
        // Envoy refuses it (`route: unknown cluster`), the CDS file's error a warning.
        write("cds.yaml", lds())
        let listener = lds().components(separatedBy: "\n").dropFirst(3)  // from its address on
            .map { "  " + $0 }.joined(separator: "\n")
        write("bootstrap.yaml", bootstrap().replacingOccurrences(of: "  lds_config: {path_config_source: {path: \(dir)/lds.yaml}}\n", with: "")
              + "\nstatic_resources:\n  listeners:\n  - name: static_listener\n" + listener)
        XCTAssertThrowsError(try start()) { error in
            let e = error as? ConfigLoadError
            XCTAssertEqual(e?.errors.map(\.description), ["static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster 'dyn'"])
            XCTAssertEqual(e?.warnings.count, 1, "\(String(describing: e?.warnings))")
        }
    }

    /// A cluster update moves the endpoint while a request is in flight: that request finishes on
    /// the old endpoint, the next goes to the new one; bad files keep the last good version.
    func testUpdatesApplyWithoutDroppingRequestsAndBadFilesAreCounted() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let dead = try closedPort()
        write("cds.yaml", cds("c1", ports: [upstream.port]))
        write("lds.yaml", lds())
        write("bootstrap.yaml", bootstrap())
        let ops = try startOps("", configPath: "\(dir)/bootstrap.yaml")
        defer { ops.stop() }
        let port = try XCTUnwrap(ops.proxy.port(of: "dyn_listener"))
        let admin = try XCTUnwrap(ops.adminPort)
        func stat(_ name: String) -> Int? { statValue(adminRequest(admin, "GET", "/stats").1, name) }
        XCTAssertEqual(stat("cluster_manager.cds.update_success"), 1)

        let held = try TestConnection(port: port)
        held.send("GET /?delay=1s HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(Wait.until { stat("cluster.dyn.upstream_rq_active") == 1 })

        replace("cds.yaml", cds("c2", ports: [dead]))
        XCTAssertTrue(Wait.until { ops.pollDynamicConfig(); return ops.subscriptions[.cluster]?.attempt == 2 })
        XCTAssertEqual(ops.subscriptions[.cluster], SubscriptionCounters(attempt: 2, success: 2, version: XXHash64.hash("c2")))
        XCTAssertEqual(held.readResponse()?.status, 200, "the request in flight finishes on its snapshot")
        let after = try TestConnection(port: port)
        after.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(after.readResponse()?.status, 503, "the next request goes to the new (closed) endpoint")

        // Not YAML: failure; an unknown field: rejected. The dead endpoint stays in both cases.
        replace("cds.yaml", "resources: [ {bad\n")
        XCTAssertTrue(Wait.until { ops.pollDynamicConfig(); return ops.subscriptions[.cluster]?.attempt == 3 })
        replace("cds.yaml", cds("c3", ports: [upstream.port]).replacingOccurrences(of: "port_value", with: "port_valu"))
        XCTAssertTrue(Wait.until { ops.pollDynamicConfig(); return ops.subscriptions[.cluster]?.attempt == 4 })
        XCTAssertEqual(ops.subscriptions[.cluster], SubscriptionCounters(attempt: 4, success: 2, rejected: 1, failure: 1, version: XXHash64.hash("c2")))
        XCTAssertEqual(ops.currentPlane.activeClusters.map(\.name), ["dyn"])
        XCTAssertEqual(stat("cluster_manager.cds.update_rejected"), 1)
        XCTAssertEqual(stat("cluster_manager.cds.update_failure"), 1)
        XCTAssertEqual(stat("listener_manager.lds.update_attempt"), 1)
        let text = adminRequest(admin, "GET", "/stats").1
        XCTAssertTrue(text.contains("cluster_manager.cds.version_text: \"c2\"\n"), "the last applied version_info, as Envoy's text readout")
        XCTAssertTrue(text.contains("listener_manager.lds.version_text: \"\"\n"))
        XCTAssertTrue(adminRequest(admin, "GET", "/stats?format=json").1.contains("{\"name\":\"cluster_manager.cds.version_text\",\"value\":\"c2\"}"))
        let dump = adminRequest(admin, "GET", "/config_dump").1
        let cluster = try XCTUnwrap(configDumpEntries(dump, "ClustersConfigDump", "dynamic_active_clusters").first)
        XCTAssertEqual(cluster["version_info"] as? String, "c2")
        XCTAssertEqual((cluster["cluster"] as? [String: Any])?["name"] as? String, "dyn")
        let listener = try XCTUnwrap(configDumpEntries(dump, "ListenersConfigDump", "dynamic_listeners").first)
        XCTAssertEqual(listener["name"] as? String, "dyn_listener")
        XCTAssertNil((listener["active_state"] as? [String: Any])?["version_info"], "an empty version_info is left out, as Envoy")
        XCTAssertNotNil((listener["active_state"] as? [String: Any])?["listener"])
    }

    /// A listener with two routes: `/` to `dyn` and `/other` to `other`; validate_clusters off
    /// (either may be missing, Envoy then answers 503 NC).
    private func twoRouteLDS() -> String {
        lds().replacingOccurrences(of: "route_config:\n", with: "route_config:\n          validate_clusters: false\n")
            .replacingOccurrences(of: "routes: [{match: {prefix: \"/\"}", with: "routes: [{match: {prefix: \"/other\"}, route: {cluster: other}}, {match: {prefix: \"/\"}")
    }

    /// A CDS update removes a cluster while a request to it is in flight and adds another: the
    /// request finishes (200), the removed cluster's pooled connection closes after it, its
    /// routes answer 503 NC, its stats and /clusters lines go; the new cluster serves the next
    /// request. Adding the name back (Envoy: a new cluster) takes the freed slot with fresh stats.
    func testClustersAddedAndRemovedApplyWithRequestsInFlight() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        write("cds.yaml", cds("c1", ports: [upstream.port]))
        write("lds.yaml", twoRouteLDS())
        write("bootstrap.yaml", bootstrap())
        let ops = try startOps("", configPath: "\(dir)/bootstrap.yaml")
        defer { ops.stop() }
        let port = try XCTUnwrap(ops.proxy.port(of: "dyn_listener"))
        let admin = try XCTUnwrap(ops.adminPort)
        func stats() -> String { adminRequest(admin, "GET", "/stats").1 }
        func stat(_ name: String) -> Int? { statValue(stats(), name) }
        func status(_ path: String) -> Int? {
            guard let c = try? TestConnection(port: port) else { return nil }
            c.send("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return c.readResponse()?.status
        }
        XCTAssertEqual(status("/other"), 503, "other does not exist yet: 503 NC")
        XCTAssertEqual(stat("http.dyn.no_cluster"), 1)
        XCTAssertEqual(status("/"), 200)
        XCTAssertEqual(stat("cluster.dyn.upstream_rq_total"), 1)
        XCTAssertEqual(stat("cluster_manager.cluster_added"), 1)
        XCTAssertEqual(stat("cluster_manager.active_clusters"), 1)

        let held = try TestConnection(port: port)
        held.send("GET /?delay=1s HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(Wait.until { stat("cluster.dyn.upstream_rq_active") == 1 })
        let removed = ops.currentPlane.clusters[0]
        // Its connections: the held one, and one idle pooled connection per worker that served "/".
        XCTAssertGreaterThan(removed.resources.connections.load(ordering: .relaxed), 0)

        replace("cds.yaml", cds("c2", ports: [upstream.port], name: "other"))
        XCTAssertTrue(Wait.until { ops.pollDynamicConfig(); return ops.subscriptions[.cluster]?.attempt == 2 })
        XCTAssertEqual(ops.subscriptions[.cluster], SubscriptionCounters(attempt: 2, success: 2, version: XXHash64.hash("c2")))
        let plane = ops.currentPlane
        XCTAssertEqual(plane.activeClusters.map(\.name), ["other"])
        XCTAssertEqual(plane.clusters.map(\.name), ["dyn", "other"], "dyn's slot holds its tombstone while its request runs")
        XCTAssertEqual(plane.clusters.map(\.removed), [true, false])
        XCTAssertEqual(status("/other"), 200, "the added cluster serves the next request")
        XCTAssertEqual(status("/"), 503, "the removed cluster: 503 NC")
        XCTAssertEqual(stat("http.dyn.no_cluster"), 2)
        XCTAssertEqual(held.readResponse()?.status, 200, "the request in flight to the removed cluster finishes")
        XCTAssertTrue(Wait.until { removed.resources.connections.load(ordering: .relaxed) == 0 },
                      "the removed cluster's idle connections close, the busy one after its exchange")
        let text = stats()
        XCTAssertFalse(text.contains("cluster.dyn."), "a removed cluster's stats go, as Envoy's")
        XCTAssertEqual(statValue(text, "cluster.other.upstream_rq_total"), 1)
        XCTAssertEqual(statValue(text, "cluster_manager.cluster_added"), 2)
        XCTAssertEqual(statValue(text, "cluster_manager.cluster_removed"), 1)
        XCTAssertEqual(statValue(text, "cluster_manager.cluster_modified"), 0)
        XCTAssertEqual(statValue(text, "cluster_manager.active_clusters"), 1)
        XCTAssertEqual(statValue(text, "cluster_manager.warming_clusters"), 0)
        let clusters = adminRequest(admin, "GET", "/clusters").1
        XCTAssertTrue(clusters.contains("other::added_via_api::true"))
        XCTAssertFalse(clusters.contains("dyn::"), clusters)
        // The one dynamic cluster carries the version of the update that added it.
        let dump = try JSONSerialization.jsonObject(with: Data(adminRequest(admin, "GET", "/config_dump").1.utf8)) as? [String: Any]
        let clusterDump = (dump?["configs"] as? [[String: Any]])?.first { ($0["@type"] as? String)?.hasSuffix("ClustersConfigDump") == true }
        let active = clusterDump?["dynamic_active_clusters"] as? [[String: Any]] ?? []
        XCTAssertEqual(active.map { "\($0["version_info"] ?? "-") \((($0["cluster"] as? [String: Any])?["name"]) ?? "-")" }, ["c2 other"])

        // dyn comes back (other changes): once no worker refers to the tombstone, its slot is reused.
        XCTAssertTrue(Wait.until { ProxyOps.unreferenced(removed, ops.proxy) })
        replace("cds.yaml", cds("c3", ports: [upstream.port]) + cds("c3", ports: [upstream.port, upstream.port], name: "other").split(separator: "\n").dropFirst(2).joined(separator: "\n") + "\n")
        XCTAssertTrue(Wait.until { ops.pollDynamicConfig(); return ops.subscriptions[.cluster]?.attempt == 3 })
        XCTAssertEqual(ops.subscriptions[.cluster]?.success, 3)
        XCTAssertEqual(ops.currentPlane.clusters.map(\.name), ["dyn", "other"], "no slot added")
        XCTAssertEqual(ops.currentPlane.clusters.map(\.removed), [false, false])
        XCTAssertEqual(stat("cluster.dyn.upstream_rq_total"), 0, "a cluster added again starts afresh, as Envoy's")
        XCTAssertEqual(status("/"), 200)
        XCTAssertEqual(stat("cluster.dyn.upstream_rq_total"), 1)
        XCTAssertEqual(stat("cluster.other.upstream_rq_total"), 1, "a changed cluster keeps its stats")
        XCTAssertEqual(stat("cluster_manager.cluster_added"), 3)
        XCTAssertEqual(stat("cluster_manager.cluster_modified"), 1)
        XCTAssertEqual(stat("cluster_manager.active_clusters"), 2)
    }

    /// A CDS update that removes a cluster a tcp_proxy names is rejected naming the reference
    /// and why (routes are not checked on a CDS update: they answer 503 NC); the cluster stays.
    func testRemovingAClusterATCPProxyNamesIsRejected() throws {
        write("cds.yaml", cds("c1", ports: [9]))
        write("lds.yaml", lds())
        write("bootstrap.yaml", bootstrap(extra: """
        static_resources:
          listeners:
          - name: tcp
            address: {socket_address: {address: 127.0.0.1, port_value: 0}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.tcp_proxy
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                  stat_prefix: t
                  cluster: dyn
        """))
        let ops = try startOps("", configPath: "\(dir)/bootstrap.yaml")
        defer { ops.stop() }
        write("cds.yaml", cds("c2", ports: [9], name: "other"))
        guard case .rejected(let reason) = ops.applyDynamicUpdate(.cluster) else { return XCTFail("the update was applied") }
        XCTAssertEqual(reason, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster: unknown cluster 'dyn' (this CDS update removes it; ballast refuses to remove a cluster that a tcp_proxy, udp_proxy, ext_authz or tracing collector names, where Envoy would fail those at run time) (line 17, column 20)")
        XCTAssertEqual(ops.subscriptions[.cluster], SubscriptionCounters(attempt: 2, success: 1, rejected: 1, version: XXHash64.hash("c1")))
        XCTAssertEqual(ops.currentPlane.activeClusters.map(\.name), ["dyn"])
    }
}
