import Foundation
import TestSupport
import XCTest

/// `ballast proxy` as a real process: exit codes and what it prints.
final class ProxyCommandTests: XCTestCase {
    func testValidateShippedConfigs() throws {
        let v3 = try runBallast(["proxy", "--mode", "validate", "-c", shippedConfigPath("talk-envoy-v3.yaml")])
        XCTAssertEqual(v3.status, 0, v3.stderr)
        XCTAssertEqual(v3.stdout, "OK\n")
        XCTAssertEqual(v3.stderr, "")

        let legacy = try runBallast(["proxy", "--mode", "validate", "--config-path", shippedConfigPath("talk-envoy-legacy.yaml")])
        XCTAssertEqual(legacy.status, 0, legacy.stderr)
        XCTAssertEqual(legacy.stdout, "OK\n")
        let warnings = legacy.stderr.split(separator: "\n")
        XCTAssertEqual(warnings.count, 4, legacy.stderr)
        XCTAssertTrue(warnings.allSatisfy { $0.hasPrefix("ballast: warning: ") }, legacy.stderr)
        XCTAssertEqual(warnings.last, "ballast: warning: static_resources.clusters[0].hosts: deprecated v2 field; use load_assignment.endpoints[].lb_endpoints[].endpoint.address (line 36, column 7)")
    }

    func testValidateBadConfigExits1WithEveryError() throws {
        let path = try temporaryConfig(edited([("lb_policy: ROUND_ROBIN", "lb_polcy: ROUND_ROBIN"), ("port_value: 10000", "port_value: 70000")]))
        let result = try runBallast(["proxy", "--mode", "validate", "-c", path])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stdout, "")
        XCTAssertEqual(result.stderr.split(separator: "\n").map(String.init), [
            "ballast: error: static_resources.listeners[0].address.socket_address.port_value: 70000 is out of range 0...65535 (line 8, column 55)",
            "ballast: error: static_resources.clusters[0].lb_polcy: unknown field; did you mean lb_policy? (line 32, column 5)",
            "ballast: configuration '\(path)' is invalid: 2 errors",
        ])
    }

    func testServeBadConfigExits2AndStartsNothing() throws {
        let path = try temporaryConfig(edited([("route: { cluster: some_service,", "route: { cluster: missing,")]))
        let result = try runBallast(["proxy", "-c", path, "--concurrency", "2"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("route.cluster: unknown cluster 'missing'"), result.stderr)
        XCTAssertFalse(result.stderr.contains("not implemented"), result.stderr)
    }

    /// The talk's v3 config (on a free port; its upstream 127.0.0.1:8080 is down) serves with every
    /// command-line option: a request gets Envoy's 503 connect-failure answer; SIGTERM stops it.
    func testServeGoodConfigServesAndStopsOnSIGTERM() throws {
        try serveTalkConfig("talk-envoy-v3.yaml")
    }

    /// The talk's own v2-era file, ports changed, runs the proxy unchanged.
    func testLegacyTalkConfigServes() throws {
        try serveTalkConfig("talk-envoy-legacy.yaml")
    }

    private func serveTalkConfig(_ name: String) throws {
        let port = try closedPort()
        let text = try String(contentsOfFile: shippedConfigPath(name), encoding: .utf8)
            .replacingOccurrences(of: "port_value: 10000", with: "port_value: \(port)")
            .replacingOccurrences(of: "port_value: 9901", with: "port_value: 0")
            .replacingOccurrences(of: "port_value: 8080", with: "port_value: \(try closedPort())")
        let path = try temporaryConfig(text)
        let proxy = try DataPathChild(["proxy", "-c", path, "--io", "epoll", "--balance", "least-loaded:requests",
                                       "--cpus", "0", "-l", "warn", "--drain-time-s", "5"])
        defer { proxy.stop() }
        XCTAssertNotNil(proxy.waitForLine(containing: "listening on"))
        let c = try TestConnection(port: port)
        let r = try XCTUnwrap(c.get("/"))
        XCTAssertEqual(r.status, 503)
        XCTAssertTrue(String(decoding: r.body, as: UTF8.self).contains("upstream connect error"))
        proxy.process.terminate()
        proxy.process.waitUntilExit()
        XCTAssertEqual(proxy.process.terminationStatus, 0)
    }

    func testConfigYAMLFlag() throws {
        let ok = try runBallast(["proxy", "--mode", "validate", "--config-yaml", baseConfig])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(ok.stdout, "OK\n")
        let bad = try runBallast(["proxy", "--mode", "validate", "--config-yaml", "admin: [1"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--config-yaml: YAML syntax error at line"), bad.stderr)
    }

    func testUsageErrorsExit2() throws {
        for arguments in [
            ["proxy", "--mode", "validate"],
            ["proxy", "--mode", "check", "-c", "x.yaml"],
            ["proxy", "-c", "x.yaml", "--balance", "fastest"],
            ["proxy", "-c", "x.yaml", "--concurrency", "0"],
            ["proxy", "-c", "x.yaml", "-l", "loud"],
        ] {
            let result = try runBallast(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
        }
    }

    func testMissingConfigFile() throws {
        let result = try runBallast(["proxy", "--mode", "validate", "-c", "/nonexistent/envoy.yaml"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("cannot read config file '/nonexistent/envoy.yaml'"), result.stderr)
    }

    private func temporaryConfig(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "ballast-proxy-test-\(getpid())-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}
