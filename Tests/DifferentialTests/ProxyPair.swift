import Foundation
import Glibc
import XCTest

/// Envoy 1.40 and then Ballast, each started alone (one worker) on the bootstrap `config` renders
/// for its own ports, in a temporary directory removed at the end; `observe` drives each and
/// returns what it saw, so a test compares the two lists. `envoyArgs`: extra Envoy flags (e.g. a
/// short `--file-flush-interval-msec` when the access log is read).
func observeEnvoyAndBallast(_ label: String, envoyArgs: [String] = [],
                            config: (_ port: Int, _ admin: Int, _ log: String) -> String,
                            observe: (_ proxy: ProxyUnderTest, _ port: Int) throws -> [String]) throws -> (envoy: [String], ballast: [String]) {
    let envoyBinary = try ensureEnvoyBinary()
    let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-\(label)-\(getpid())")
    try? FileManager.default.removeItem(at: root)
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }
    signal(SIGPIPE, SIG_IGN)
    var seen: [String: [String]] = [:]
    for name in ["envoy", "ballast"] {
        let port = try freePort(), admin = try freePort()
        let path = root.appendingPathComponent("\(name).yaml").path
        let log = root.appendingPathComponent("\(name).log").path
        try config(port, admin, log).write(toFile: path, atomically: false, encoding: .utf8)
        let (exe, args) = name == "envoy"
            ? (envoyBinary, ["-c", path, "--concurrency", "1", "--disable-hot-restart", "-l", "error", "--drain-time-s", "0"] + envoyArgs)
            : (differentialBallastBinary(), ["proxy", "-c", path, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
        let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: [:], adminPort: admin,
                                       accessLog: log, directory: root)
        defer { proxy.stop() }
        try proxy.waitReady()
        seen[name] = try observe(proxy, port)
    }
    return (seen["envoy"]!, seen["ballast"]!)
}

/// A bootstrap with one HTTP listener on `port` (stat_prefix `h`, router only), `routes` (flow
/// YAML list items) in one virtual host, `hcmExtra` fields on the connection manager, and
/// `clusters` (YAML list items, indented as under `clusters:`); `filters`: flow-YAML HTTP filters
/// before the router.
func singleListenerBootstrap(port: Int, admin: Int, routes: [String], hcmExtra: String = "", filters: [String] = [], clusters: [String]) -> String {
    """
    admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
    static_resources:
      listeners:
      - address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
        filter_chains:
        - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: h\(hcmExtra.isEmpty ? "" : "\n          " + hcmExtra)
              route_config: {virtual_hosts: [{name: a, domains: ["*"], routes: [\(routes.joined(separator: ", "))]}]}
              http_filters: [\(filters.map { $0 + ", " }.joined()){name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
      clusters:
    \(clusters.map { "  " + $0 }.joined(separator: "\n"))
    """
}

/// A STATIC cluster of 127.0.0.1 hosts (one YAML list item), with `extra` fields.
func staticCluster(_ name: String, ports: [Int], extra: String = "") -> String {
    let endpoints = ports.map { "{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \($0)}}}}" }.joined(separator: ", ")
    return "- {name: \(name), type: STATIC, \(extra.isEmpty ? "" : extra + ", ")load_assignment: {cluster_name: \(name), endpoints: [{lb_endpoints: [\(endpoints)]}]}}"
}
