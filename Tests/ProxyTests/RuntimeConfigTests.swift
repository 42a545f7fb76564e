@testable import Proxy
import TestSupport
import XCTest

/// `layered_runtime`: the keys applied, and every other key refused naming it.
final class RuntimeConfigTests: XCTestCase {
    private func yaml(_ runtime: String) -> String {
        dataPathYAML(virtualHosts: dataPathCatchAll("c"), clusters: dataPathCluster("c", ports: [9])) + "\nlayered_runtime:\n" + runtime
    }

    private func warnings(_ yaml: String) -> [String] { (try? BootstrapLoader.load(yaml: yaml).warnings.map(\.description)) ?? ["did not load"] }

    func testStaticLayersApplyInOrderNestedOrDotted() throws {
        let y = yaml("""
          layers:
          - name: a
            static_layer:
              overload: {global_downstream_max_connections: 100}
              envoy.resource_limits.listener.http.connection_limit: 5
          - name: b
            static_layer:
              envoy: {resource_limits: {listener: {http: {connection_limit: 7}}}}
        """)
        let runtime = try XCTUnwrap(load(y)).bootstrap.runtime
        XCTAssertEqual(runtime.globalDownstreamMaxConnections, 100)
        XCTAssertEqual(runtime.listenerConnectionLimits, ["http": 7], "the later layer wins")
        let plane = try DataPlane.compile(try XCTUnwrap(load(y)).bootstrap)
        XCTAssertEqual(plane.listeners[0].connectionLimit, 7)
        XCTAssertEqual(plane.globalConnectionLimit, 100)
        XCTAssertTrue(warnings(y).contains { $0.contains("deprecated in Envoy") })
    }

    func testOtherKeysAndLayersAreRefusedNamingThem() {
        XCTAssertEqual(loadErrors(yaml("  layers:\n  - name: a\n    static_layer: {re2.max_program_size.error_level: 200}")),
                       ["layered_runtime.layers[0].static_layer[\"re2.max_program_size.error_level\"]: runtime key 're2.max_program_size.error_level' is not applied by ballast (applied: overload.global_downstream_max_connections, envoy.resource_limits.listener.<listener name>.connection_limit)"])
        XCTAssertEqual(loadErrors(yaml("  layers:\n  - name: d\n    disk_layer: {symlink_root: /srv/runtime/current}")),
                       ["layered_runtime.layers[0].disk_layer.symlink_root: unable to add a filesystem watch for '/srv/runtime/current': '/srv/runtime': No such file or directory"])
        XCTAssertEqual(loadErrors(yaml("  layers:\n  - name: r\n    rtds_layer: {name: x}")),
                       ["layered_runtime.layers[0].rtds_layer: not supported by ballast"])
        XCTAssertEqual(loadErrors(yaml("  layers:\n  - name: admin\n    admin_layer: {}\n  - name: admin2\n    admin_layer: {}")),
                       ["layered_runtime.layers[1].admin_layer: a second admin layer (Envoy allows one)"])
        XCTAssertEqual(loadErrors(yaml("  layers:\n  - name: a\n    static_layer: {overload: {global_downstream_max_connections: lots}}")),
                       ["layered_runtime.layers[0].static_layer.overload.global_downstream_max_connections: expected an integer, got 'lots'"])
        // A limit for a listener that does not exist has no effect (as in Envoy): a warning.
        XCTAssertTrue(warnings(yaml("  layers:\n  - name: a\n    static_layer: {envoy.resource_limits.listener.nope.connection_limit: 3}"))
            .contains { $0.contains("no listener is named 'nope'") })
    }

    /// A disk layer: files under symlink_root/subdirectory[/node.cluster] become keys; only keys
    /// a fault filter reads are accepted (with integer values), and the merged value reaches the
    /// snapshot's runtime slots.
    func testDiskLayerKeysAreTheFaultFiltersOnly() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-disk-layer-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        func file(_ path: String, _ text: String) throws {
            let full = root + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: false, encoding: .utf8)
        }
        try file("current/envoy/fault/http/abort/abort_percent", "7\n")
        try file("current/envoy/edge/fault/http/abort/abort_percent", "9")
        try file("current/envoy/.hidden", "x")
        let fault = "{ name: envoy.filters.http.fault, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: { http_status: 503, percentage: { numerator: 0 } } } }"
        func config(_ layer: String, node: String = "") -> String {
            let base = dataPathYAML(virtualHosts: dataPathCatchAll("c"), clusters: dataPathCluster("c", ports: [9]))
                .replacingOccurrences(of: "http_filters:\n", with: "http_filters:\n          - \(fault)\n")
            return node + base + "\nlayered_runtime:\n  layers:\n  - name: d\n    disk_layer: \(layer)\n"
        }
        // Without append_service_cluster the layer holds edge.fault... too, which no filter reads:
        // refused, naming the key and the directory (the hidden file is skipped).
        let errors = loadErrors(config("{symlink_root: \"\(root)/current\", subdirectory: envoy}"))
        XCTAssertEqual(errors.count, 1, "\(errors)")
        XCTAssertTrue(errors.first?.contains("runtime key 'edge.fault.http.abort.abort_percent' (file under \(root)/current/envoy) is not applied by ballast") ?? false, "\(errors)")
        // append_service_cluster reads the node's cluster's directory only.
        let edge = try XCTUnwrap(load(config("{symlink_root: \"\(root)/current\", subdirectory: envoy, append_service_cluster: true}",
                                             node: "node: { id: n, cluster: edge }\n")))
        XCTAssertEqual(edge.bootstrap.runtime.layers.first?.entries, ["fault.http.abort.abort_percent": "9"])
        let plane = try DataPlane.compile(edge.bootstrap)
        XCTAssertEqual(plane.runtime.keys, ["fault.http.abort.abort_percent", "fault.http.abort.http_status"])
        XCTAssertEqual(plane.runtime.value(plane.runtime.slot("fault.http.abort.abort_percent")), 9)
        XCTAssertNil(plane.runtime.value(plane.runtime.slot("fault.http.abort.http_status")))
        XCTAssertEqual(loadErrors(config("{symlink_root: \"\(root)/current\", append_service_cluster: true}")),
                       ["layered_runtime.layers[0].disk_layer.append_service_cluster: needs the node's cluster (node.cluster)"])
    }

    /// Two connections served, the third closed at accept and counted; a slot given back is reused.
    func testListenerConnectionLimitClosesTheConnectionOverIt() throws {
        let ops = try startOps(opsYAML(virtualHosts: """
                    - name: all
                      domains: ["*"]
                      routes:
                      - match: { prefix: "/" }
                        direct_response: { status: 200, body: { inline_string: ok } }
        """, clusters: dataPathCluster("c", ports: [9])) + "\nlayered_runtime:\n  layers:\n  - name: s\n    static_layer: {envoy.resource_limits.listener.http.connection_limit: 2}\n")
        defer { ops.stop() }
        let port = try XCTUnwrap(ops.proxy.port(of: "http"))
        let admin = try XCTUnwrap(ops.adminPort)
        func get(_ c: TestConnection) -> Int? {
            c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return c.readResponse()?.status
        }
        var first: TestConnection? = try TestConnection(port: port)
        let second = try TestConnection(port: port)
        XCTAssertEqual(get(first!), 200)
        XCTAssertEqual(get(second), 200)
        let third = try TestConnection(port: port)
        XCTAssertNil(get(third), "closed at accept")
        let addr = "listener.127.0.0.1_\(port)."
        XCTAssertEqual(statValue(adminRequest(admin, "GET", "/stats").1, addr + "downstream_cx_overflow"), 1)
        first = nil
        XCTAssertTrue(Wait.until { ops.currentPlane.listeners[0].connections.active.load(ordering: .relaxed) == 1 })
        XCTAssertEqual(get(try TestConnection(port: port)), 200)
        XCTAssertEqual(statValue(adminRequest(admin, "GET", "/stats").1, addr + "downstream_global_cx_overflow"), 0)
    }
}
