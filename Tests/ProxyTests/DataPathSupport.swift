import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

// Support for the data-path end-to-end tests: `ballast server` upstreams, a blocking HTTP/1.1
// test client, a raw TCP upstream for faults, and an in-process proxy from YAML.

/// Runs `body` on epoll, then on io_uring. The io_uring half is a visible skip with the kernel's
/// reason when it refuses io_uring (a failure under CI=true): never a silently dropped half.
func forEachDataPathBackend(file: StaticString = #filePath, line: UInt = #line, _ body: (IOBackendKind) throws -> Void) throws {
    try TestBackends.each(file: file, line: line, body)
}

/// The process helper of TestSupport, under the name the proxy tests used.
typealias DataPathChild = ChildProcess

func dataPathBallastBinary() -> String { ballastBinary() }

/// A `ballast server` upstream on 127.0.0.1 with its admin port.
final class UpstreamEchoServer {
    let child: DataPathChild
    let port: Int
    let adminPort: Int

    init(io: IOBackendKind, workers: Int = 1) throws {
        child = try DataPathChild(["server", "--port", "0", "--address", "127.0.0.1", "--workers", "\(workers)",
                                   "--io", io.rawValue, "--admin-port", "0", "--max-echo-delay", "5s"])
        let line = try child.requireLine(containing: "listening on", what: "ballast server (upstream)")
        // "listening on 127.0.0.1:PORT (..., admin 127.0.0.1:ADMIN, ...)"
        let ports = line.components(separatedBy: "127.0.0.1:").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }
        guard ports.count >= 2 else { throw TestSetupError("unexpected server line: \(line)") }
        port = ports[0]
        adminPort = ports[1]
    }

    /// Connections the server accepted, over all its workers (`/workers` `accepted`).
    func acceptedConnections() throws -> Int {
        let conn = try TestConnection(port: adminPort)
        conn.send("GET /workers HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        guard let r = conn.readResponse() else { return -1 }
        let text = String(decoding: r.body, as: UTF8.self)
        var total = 0
        for part in text.components(separatedBy: "\"accepted\": ").dropFirst() {
            total += Int(part.prefix { $0.isNumber }) ?? 0
        }
        return total
    }

    func stop() { child.stop() }
}

struct TestResponse {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var flags: String? { headers["x-ballast-response-flags"] }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking HTTP/1.1 client connection with a receive timeout.
final class TestConnection {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, timeoutSeconds: Int = 30) throws {
        fd = try Client.connect(port: port, timeoutSeconds: timeoutSeconds)
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Reads more bytes; false on end of stream, error or timeout.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        var n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        // io_uring task work aimed at this thread interrupts a receive with a timeout (EINTR).
        while n < 0 && errno == EINTR { n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
        if n <= 0 { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    private func headEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    /// Reads one response (Content-Length, chunked, or until close). nil on timeout or early end.
    func readResponse(isHEAD: Bool = false) -> TestResponse? {
        var end: Int? = headEnd()
        while end == nil {
            guard fill() else { return nil }
            end = headEnd()
        }
        let head = String(decoding: buffer[0..<end!], as: UTF8.self)
        buffer.removeFirst(end!)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body: [UInt8] = []
        if isHEAD || status == 204 || status == 304 || status < 200 {
            // no body
        } else if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                var lineEnd: Int? = nil
                while lineEnd == nil {
                    if let i = firstCRLF() { lineEnd = i } else if !fill() { return nil }
                }
                let sizeText = String(decoding: buffer[0..<lineEnd!], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
                buffer.removeFirst(lineEnd! + 2)
                if size == 0 {
                    // trailers until an empty line
                    while true {
                        var le: Int? = nil
                        while le == nil {
                            if let i = firstCRLF() { le = i } else if !fill() { return nil }
                        }
                        buffer.removeFirst(le! + 2)
                        if le == 0 { break }
                    }
                    break
                }
                while buffer.count < size + 2 { guard fill() else { return nil } }
                body.append(contentsOf: buffer[0..<size])
                buffer.removeFirst(size + 2)
            }
        } else if let cl = headers["content-length"], let n = Int(cl) {
            while buffer.count < n { guard fill() else { return nil } }
            body = Array(buffer[0..<n])
            buffer.removeFirst(n)
        } else {
            while fill() {}
            body = buffer
            buffer = []
        }
        return TestResponse(status: status, headers: headers, body: body)
    }

    private func firstCRLF() -> Int? {
        guard buffer.count >= 2 else { return nil }
        for i in 0..<(buffer.count - 1) where buffer[i] == 13 && buffer[i + 1] == 10 { return i }
        return nil
    }

    /// `count` raw bytes (fewer when the peer ends or the receive times out first).
    func readBytes(count: Int) -> [UInt8] {
        while buffer.count < count { guard fill() else { break } }
        let n = min(count, buffer.count)
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Closes both directions now (the descriptor itself closes with the object).
    func close() { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    /// True when the peer closed (reads return end of stream) within the timeout.
    func readsEOF() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0  // not a timeout (-1), not data
    }

    /// `GET path` with keep-alive, and its response.
    func get(_ path: String, host: String = "example.com", extra: String = "") -> TestResponse? {
        send("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\(extra)\r\n")
        return readResponse()
    }
}

/// A raw TCP upstream for fault cases: each accepted connection runs `handler` on its own thread.
final class RawUpstream: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let lock = NSLock()
    private var connections: [Int32] = []
    private var thread: Thread?

    init(host: String = "127.0.0.1", port wanted: Int = 0, handler: @escaping @Sendable (Int32) -> Void) throws {
        fd = try Sockets.listen(on: SocketAddress(host: host, port: wanted)!, reusePort: false)
        // Blocking accepts on this thread.
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        port = try Sockets.localAddress(fd).port
        let listenFD = fd
        let t = Thread { [weak self] in
            while true {
                let c = accept(listenFD, nil, nil)
                if c < 0 { return }
                self?.lock.lock()
                self?.connections.append(c)
                self?.lock.unlock()
                Thread.detachNewThread { handler(c) }
            }
        }
        thread = t
        t.start()
    }

    /// Reads until the end of a request head; returns its text ("" on end of stream).
    static func readHead(_ fd: Int32) -> String {
        var data: [UInt8] = []
        var byte: UInt8 = 0
        while recv(fd, &byte, 1, 0) == 1 {
            data.append(byte)
            if data.count >= 4 && data.suffix(4) == [13, 10, 13, 10] { break }
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Waits for the peer to close.
    static func drain(_ fd: Int32) {
        var buf = [UInt8](repeating: 0, count: 4096)
        while buf.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) > 0 {}
    }

    func stop() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
        lock.lock()
        for c in connections { Glibc.shutdown(c, Int32(SHUT_RDWR)) }
        lock.unlock()
    }
}

/// A v3 bootstrap with one HTTP listener on 127.0.0.1:0 and the given routes and clusters.
func dataPathYAML(virtualHosts: String, clusters: String) -> String {
    """
    static_resources:
      listeners:
      - name: http
        address:
          socket_address: { address: 127.0.0.1, port_value: 0 }
        filter_chains:
        - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: ingress_http
              route_config:
                name: local_route
                virtual_hosts:
    \(virtualHosts)
              http_filters:
              - name: envoy.filters.http.router
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
      clusters:
    \(clusters)
    """
}

/// One cluster entry (indented for `dataPathYAML`).
func dataPathCluster(_ name: String, ports: [Int], extra: String = "") -> String {
    let endpoints = ports.map { p in
        """
                - endpoint:
                    address:
                      socket_address: { address: 127.0.0.1, port_value: \(p) }
        """
    }.joined(separator: "\n")
    return """
      - name: \(name)
        connect_timeout: 0.5s
        type: STATIC
    \(extra)
        load_assignment:
          cluster_name: \(name)
          endpoints:
          - lb_endpoints:
    \(endpoints)
    """
}

/// A catch-all virtual host routing `/` to `cluster` (indented for `dataPathYAML`).
func dataPathCatchAll(_ cluster: String, routeExtra: String = "") -> String {
    """
                - name: all
                  domains: ["*"]
                  routes:
                  - match: { prefix: "/" }
                    route: { cluster: \(cluster)\(routeExtra) }
    """
}

/// Starts the proxy in this process from YAML on one backend.
func startDataPathProxy(_ yaml: String, io: IOBackendKind, concurrency: Int = 2, file: StaticString = #filePath, line: UInt = #line) throws -> RunningProxy {
    let loaded: LoadedBootstrap
    do {
        loaded = try BootstrapLoader.load(yaml: yaml)
    } catch {
        XCTFail("config did not load:\n\(error)\n\(yaml)", file: file, line: line)
        throw error
    }
    var options = ProxyRuntimeOptions()
    options.concurrency = concurrency
    options.io = io
    options.debugResponseFlags = true
    options.recordAccess = true
    signal(SIGPIPE, SIG_IGN)
    return try ProxyRuntime.start(loaded.bootstrap, options: options)
}

/// A port on 127.0.0.1 nothing listens on.
func closedPort() throws -> Int { try TestPorts.closed() }
