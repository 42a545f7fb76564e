import Foundation
@testable import Proxy
import XCTest

/// The talk's configuration and its v3 equivalent, as shipped in Experiments/configs/.
final class ShippedConfigTests: XCTestCase {
    func testLegacyTalkConfigLoadsWithExactlyTheDeprecationWarnings() throws {
        let loaded = try BootstrapLoader.load(path: shippedConfigPath("talk-envoy-legacy.yaml"))
        let filter = "static_resources.listeners[0].filter_chains[0].filters[0]"
        XCTAssertEqual(loaded.warnings.map(\.description), [
            "\(filter).name: deprecated network filter name 'envoy.http_connection_manager'; use envoy.filters.network.http_connection_manager",
            "\(filter).config: deprecated v2 field; use typed_config with \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "\(filter).config.http_filters[0].name: deprecated HTTP filter name 'envoy.router'; use envoy.filters.http.router",
            "static_resources.clusters[0].hosts: deprecated v2 field; use load_assignment.endpoints[].lb_endpoints[].endpoint.address",
        ])
        XCTAssertTrue(loaded.warnings.allSatisfy { $0.severity == .warning && $0.location != nil })
        XCTAssertEqual(loaded.warnings.map { $0.location!.line }, [17, 18, 30, 36])
    }

    func testV3TalkConfigLoadsWithoutWarnings() throws {
        let loaded = try BootstrapLoader.load(path: shippedConfigPath("talk-envoy-v3.yaml"))
        XCTAssertEqual(loaded.warnings.map(\.description), [])
    }

    func testLegacyAndV3ConfigsGiveTheSameModel() throws {
        let legacy = try BootstrapLoader.load(path: shippedConfigPath("talk-envoy-legacy.yaml")).bootstrap
        let v3 = try BootstrapLoader.load(path: shippedConfigPath("talk-envoy-v3.yaml")).bootstrap
        XCTAssertEqual(legacy, v3)
    }

    func testTalkConfigModel() throws {
        let b = try BootstrapLoader.load(path: shippedConfigPath("talk-envoy-v3.yaml")).bootstrap
        XCTAssertEqual(b.admin?.address.description, "127.0.0.1:9901")
        XCTAssertEqual(b.admin?.accessLogPath, "/tmp/admin_access.log")
        XCTAssertEqual(b.listeners.count, 1)
        let listener = b.listeners[0]
        XCTAssertEqual(listener.name, "listener_0")
        XCTAssertEqual(listener.address, SocketAddressConfig(address: "0.0.0.0", port: 10000, kind: .ipv4))
        XCTAssertTrue(listener.address.isWildcard)
        XCTAssertEqual(listener.balance.description, "reuseport", "Envoy's default on Linux")
        XCTAssertTrue(listener.enableReusePort)
        XCTAssertEqual(listener.filterChains.count, 1)
        guard case .httpConnectionManager(let hcm) = listener.filterChains[0].filters[0] else { return XCTFail("not an HCM") }
        XCTAssertEqual(hcm.statPrefix, "ingress_http")
        XCTAssertEqual(hcm.codecType, .auto)
        XCTAssertEqual(hcm.httpFilters, [.router(.default)])
        XCTAssertEqual(hcm.routeConfig.name, "local_route")
        XCTAssertEqual(hcm.routeConfig.virtualHosts.map(\.name), ["local_service"])
        XCTAssertEqual(hcm.routeConfig.virtualHosts[0].domains, [.any])
        let route = hcm.routeConfig.virtualHosts[0].routes[0]
        XCTAssertEqual(route.match.path, .prefix("/"))
        guard case .forward(let forward) = route.action else { return XCTFail("not a forward") }
        XCTAssertEqual(forward.target, .cluster("some_service"))
        XCTAssertEqual(forward.timeoutNanos, 15_000_000_000, "Envoy's default route timeout")
        // Envoy's defaults where the file says nothing.
        XCTAssertEqual(hcm.streamIdleTimeoutNanos, 300_000_000_000)
        XCTAssertEqual(hcm.idleTimeoutNanos, 3_600_000_000_000)
        XCTAssertEqual(hcm.maxRequestHeadersKiB, 60)
        XCTAssertEqual(hcm.maxHeadersCount, 100)
        XCTAssertEqual(hcm.drainTimeoutNanos, 5_000_000_000)
        XCTAssertNil(hcm.requestTimeoutNanos)
        XCTAssertTrue(hcm.generateRequestID)
        XCTAssertEqual(hcm.accessLog, [])

        let cluster = try XCTUnwrap(b.cluster(named: "some_service"))
        XCTAssertEqual(cluster.discoveryType, .static)
        XCTAssertEqual(cluster.lbPolicy, .roundRobin)
        XCTAssertEqual(cluster.connectTimeoutNanos, 250_000_000)
        XCTAssertEqual(cluster.endpoints.map(\.address.description), ["127.0.0.1:8080"])
        XCTAssertEqual(cluster.endpoints[0].address.socketAddress?.port, 8080)
        XCTAssertEqual(cluster.circuitBreakers, .envoyDefault)
        XCTAssertEqual(cluster.circuitBreakers.defaultPriority.maxConnections, 1024)
        XCTAssertEqual(cluster.upstreamHTTP, .envoyDefault)
    }

    func testShippedLegacyConfigIsTheSharedExample() throws {
        // ../shared beside the checkout (as on the developers' machines and in CI).
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { root.deleteLastPathComponent() }
        let shared = root.appendingPathComponent("shared/examples/talk-envoy-legacy.yaml")
        guard FileManager.default.fileExists(atPath: shared.path) else { throw XCTSkip("shared examples not present") }
        XCTAssertEqual(try String(contentsOf: shared, encoding: .utf8),
                       try String(contentsOfFile: shippedConfigPath("talk-envoy-legacy.yaml"), encoding: .utf8))
    }
}
