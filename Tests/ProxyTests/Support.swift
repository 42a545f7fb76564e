import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// A config shipped in `Experiments/configs/`.
func shippedConfigPath(_ name: String) -> String {
    repositoryRoot.appendingPathComponent("Experiments/configs/\(name)").path
}

/// Runs `ballast` to completion (killed after 20 s) and returns its exit status and output.
func runBallast(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    let out = Pipe()
    let err = Pipe()
    process.executableURL = URL(fileURLWithPath: ballastBinary())
    process.arguments = arguments
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let deadline = Date().addingTimeInterval(20)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return (process.terminationStatus, stdout, stderr)
}

/// Loads `yaml`; on failure returns the error descriptions (`path: message`), on success [].
func loadErrors(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
    do {
        _ = try BootstrapLoader.load(yaml: yaml)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

/// Loads `yaml`, failing the test with the errors when it does not load.
func load(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> LoadedBootstrap? {
    do {
        return try BootstrapLoader.load(yaml: yaml)
    } catch {
        XCTFail("config did not load:\n\(error)", file: file, line: line)
        return nil
    }
}

/// A minimal valid v3 bootstrap in block style; the bad-config table edits it one string at a time.
let baseConfig = """
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: 9901 }
static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: { address: 0.0.0.0, port_value: 10000 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: AUTO
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: some_service, timeout: 1.5s }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: some_service
    connect_timeout: 0.25s
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: some_service
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: 8080 }

"""

/// `baseConfig` with each `(old, new)` replaced once (the test fails if `old` is not there).
func edited(_ edits: [(String, String)], file: StaticString = #filePath, line: UInt = #line) -> String {
    var text = baseConfig
    for (old, new) in edits {
        guard let range = text.range(of: old) else {
            XCTFail("'\(old)' is not in the base config", file: file, line: line)
            continue
        }
        text.replaceSubrange(range, with: new)
    }
    return text
}

/// The base config's path prefix of the HTTP connection manager's typed_config.
let hcmPath = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
