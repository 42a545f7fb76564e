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
