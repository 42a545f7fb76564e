import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

// Support for the operations tests (issue 5): a bootstrap with an admin listener and an access
// log, an in-process `ProxyOps`, and small admin and file helpers.

/// A v3 bootstrap: admin on 127.0.0.1:0, one HTTP listener with `accessLog` (YAML list items
/// indented for the HCM), the given virtual hosts and clusters.
func opsYAML(virtualHosts: String, clusters: String, accessLog: String = "") -> String {
    let base = dataPathYAML(virtualHosts: virtualHosts, clusters: clusters)
    let withLog = accessLog.isEmpty ? base : base.replacingOccurrences(of: "          stat_prefix: ingress_http\n",
                                                                        with: "          stat_prefix: ingress_http\n          access_log:\n\(accessLog)\n")
    return """
    admin:
      address:
        socket_address: { address: 127.0.0.1, port_value: 0 }
    \(withLog)
    """
}

/// A file access logger (YAML list item for the HCM's `access_log`); `format` is the
/// `log_format` mapping's body (default: Envoy's default format).
func opsFileLogger(_ path: String, logFormat: String? = nil) -> String {
    var s = """
              - name: envoy.access_loggers.file
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                  path: \(path)
    """
    if let logFormat { s += "\n              log_format:\n\(logFormat)" }
    return s
}

func opsTempPath(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "ballast-ops-\(getpid())-\(name)"
    unlink(path)
    return path
}

/// Starts the proxy with its operations in this process.
func startOps(_ yaml: String, io: IOBackendKind = .epoll, concurrency: Int = 2, configPath: String? = nil,
              file: StaticString = #filePath, line: UInt = #line) throws -> ProxyOps {
    let loaded: LoadedBootstrap
    do {
        loaded = try configPath.map { try BootstrapLoader.load(path: $0) } ?? BootstrapLoader.load(yaml: yaml)
    } catch {
        XCTFail("config did not load:\n\(error)\n\(yaml)", file: file, line: line)
        throw error
    }
    var options = ProxyOptions()
    options.concurrency = concurrency
    options.io = io
    options.configPath = configPath
    options.logLevel = .warning
    var runtime = ProxyRuntimeOptions(options)
    runtime.debugResponseFlags = true
    signal(SIGPIPE, SIG_IGN)
    return try ProxyOps.start(loaded.bootstrap, options: options, runtime: runtime)
}

/// One admin request; (status, body).
func adminRequest(_ port: Int, _ method: String, _ target: String) -> (Int, String) {
    guard let c = try? TestConnection(port: port) else { return (-1, "") }
    c.send("\(method) \(target) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    guard let r = c.readResponse() else { return (-1, "") }
    return (r.status, r.text)
}

/// `name: value` of `/stats`.
func statValue(_ text: String, _ name: String) -> Int? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + ": ") {
        return Int(line.dropFirst(name.count + 2))
    }
    return nil
}

/// Lines of a file, waiting (a generous bound) until there are at least `count`.
func waitForLines(_ path: String, count: Int) -> [String] {
    var lines: [String] = []
    Wait.until {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        lines = text.split(separator: "\n").map(String.init)
        return lines.count >= count
    }
    return lines
}

/// The entries of `field` in /config_dump's dump of type `dump` (e.g. "ClustersConfigDump").
func configDumpEntries(_ text: String, _ dump: String, _ field: String) -> [[String: Any]] {
    guard let root = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
          let configs = root["configs"] as? [[String: Any]],
          let config = configs.first(where: { $0["@type"] as? String == "type.googleapis.com/envoy.admin.v3." + dump }) else { return [] }
    return config[field] as? [[String: Any]] ?? []
}
