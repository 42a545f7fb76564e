import Foundation
import Glibc
import TestSupport
import XCTest

/// Transparent interception end to end (issue 14), in network namespaces the test creates: an
/// app namespace joined to this one by a veth pair; `ballast server` (the upstream) here on the
/// veth's address, `ballast proxy` in the app namespace as uid 1337 with an outbound listener on
/// 15001 (`use_original_dst`, an ORIGINAL_DST cluster) and its admin on 15000, and
/// `ballast sidecar-init` redirecting the app namespace's traffic. The app (`ballast load`)
/// calls the upstream's address; with the rules its requests go through the proxy, which logs
/// the original destination; before and after them, they go straight to the upstream.
/// Skips (saying why) only when network namespaces cannot be created. Everything it creates
/// (namespace, veth, processes, files) is removed at the end, also on failure.
final class SidecarEndToEndTests: XCTestCase {
    static let proxyUID = "1337"

    /// Runs a command to completion (killed after 30 s): exit status and output.
    @discardableResult
    static func run(_ argv: [String]) -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { return (127, "", "\(argv[0]): \(error)") }
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
                String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    static func which(_ name: String) -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin"]
        return dirs.map { $0 + "/" + name }.first { access($0, X_OK) == 0 }
    }

    /// A long-running child (`ip netns exec ... argv`), stopped at teardown.
    final class Child {
        let process = Process()
        let out = Pipe()
        let err = Pipe()

        init(_ argv: [String]) throws {
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            process.standardOutput = out
            process.standardError = err
            try process.run()
        }

        /// Reads stdout until a line containing `marker` (nil when the process ends or 20 s pass).
        func waitForLine(containing marker: String) -> String? {
            let fd = out.fileHandleForReading.fileDescriptor
            var line: [UInt8] = []
            let deadline = Date().addingTimeInterval(20)
            var byte: UInt8 = 0
            while Date() < deadline {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, 200) <= 0 { if !process.isRunning { return nil }; continue }
                if read(fd, &byte, 1) != 1 { return nil }
                if byte == 10 {
                    let text = String(decoding: line, as: UTF8.self)
                    if text.contains(marker) { return text }
                    line.removeAll()
                } else {
                    line.append(byte)
                }
            }
            return nil
        }

        func stop() {
            guard process.isRunning else { return }
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }

        /// What the process wrote to stderr (after it stopped).
        var stderrText: String { String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
    }

    /// GET over a fresh connection from this namespace; (status, body).
    static func get(_ host: String, _ port: Int, _ path: String) -> (Int, String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return (-1, "") }
        defer { close(fd) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &sin.sin_addr)
        let rc = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { return (-1, "") }
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        let text = String(decoding: data, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? -1
        return (status, text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n"))
    }

    static func stat(_ text: String, _ name: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + ": ") { return Int(line.dropFirst(name.count + 2)) }
        return nil
    }

    func testSidecarInitRefusesBadUseWithoutTouchingRules() throws {
        let ballast = ballastBinary()
        let dry = Self.run([ballast, "sidecar-init", "--dry-run", "--exclude-inbound-ports", "15000"])
        XCTAssertEqual(dry.status, 0, dry.err)
        XCTAssertTrue(dry.out.contains("-A BALLAST_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"), dry.out)
        XCTAssertTrue(dry.out.contains("-A BALLAST_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"), dry.out)
        // This test's own namespace is the root one (or cannot be told apart from it): refused.
        // (Not asked when the test itself runs in another namespace than pid 1's: it would install.)
        let elsewhere = namespaceInode("/proc/1/ns/net").map { $0 != namespaceInode("/proc/self/ns/net") } ?? false
        if !elsewhere {
            let root = Self.run([ballast, "sidecar-init"])
            XCTAssertEqual(root.status, 1, root.out + root.err)
            XCTAssertTrue(root.err.contains("root network namespace") || root.err.contains("cannot tell whether"), root.err)
        }
        let missing = Self.run([ballast, "sidecar-init", "--netns", "ballast-no-such-namespace-\(getpid())"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.err.contains("cannot read /run/netns/ballast-no-such-namespace-"), missing.err)
        let usage = Self.run([ballast, "sidecar-init", "--outbound-ports", "80,http"])
        XCTAssertEqual(usage.status, 2)
        XCTAssertTrue(usage.err.contains("'http' is not a port (1-65535)"), usage.err)
    }

    /// On each I/O backend of the proxy (io_uring only where the kernel allows it).
    func testRedirectedRequestsGoThroughTheProxyWithTheirOriginalDestination() throws {
        var index = 0
        try forEachDataPathBackend { io in
            try scenario(io: io.rawValue, index: index)
            index += 1
        }
    }

    /// A network namespace (the "pod") joined to this one by a veth pair: this side `hostIP`, the
    /// pod `podIP`. Its processes, the namespace (with the veth) and its files go at teardown.
    final class Pod {
        let ip: String
        let name: String
        let hostEnd: String
        let hostIP: String
        let podIP: String
        let dir: String
        var children: [Child] = []

        init(ip: String, index: Int) {
            let pid = Int(getpid())
            self.ip = ip
            name = "ballast-sidecar-\(pid)-\(index)"
            hostEnd = "bsc\(pid % 100000)h\(index)"
            hostIP = "10.213.\(pid % 250).\(4 * index + 1)"
            podIP = "10.213.\(pid % 250).\(4 * index + 2)"
            dir = NSTemporaryDirectory() + "ballast-sidecar-\(pid)-\(index)"
        }

        /// `argv` run inside the pod.
        func inside(_ argv: [String]) -> [String] { [ip, "netns", "exec", name] + argv }

        func start(_ argv: [String]) throws -> Child {
            let c = try Child(argv)
            children.append(c)
            return c
        }

        func remove() {
            for c in children.reversed() { c.stop() }
            SidecarEndToEndTests.run([ip, "netns", "del", name])  // takes the veth pair with it
            SidecarEndToEndTests.run([ip, "link", "del", hostEnd])  // in case it was never moved
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// Creates the pod (skipping the test when namespaces cannot be created); nil when a later
    /// step failed (reported).
    func makePod(index: Int) throws -> Pod? {
        guard getuid() == 0 else { throw XCTSkip("network namespaces cannot be created: not root (uid \(getuid()))") }
        guard let ip = Self.which("ip") else { throw XCTSkip("network namespaces cannot be created: no ip command (iproute2)") }
        let pod = Pod(ip: ip, index: index)
        let created = Self.run([ip, "netns", "add", pod.name])
        guard created.status == 0 else {
            throw XCTSkip("network namespaces cannot be created here: ip netns add: \(created.err.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        addTeardownBlock { pod.remove() }
        let podEnd = "bsc\(Int(getpid()) % 100000)a\(index)"
        for step in [[ip, "link", "add", pod.hostEnd, "type", "veth", "peer", "name", podEnd],
                     [ip, "link", "set", podEnd, "netns", pod.name],
                     [ip, "addr", "add", "\(pod.hostIP)/30", "dev", pod.hostEnd],
                     [ip, "link", "set", pod.hostEnd, "up"],
                     pod.inside([ip, "addr", "add", "\(pod.podIP)/30", "dev", podEnd]),
                     pod.inside([ip, "link", "set", podEnd, "up"]),
                     pod.inside([ip, "link", "set", "lo", "up"])] {
            let r = Self.run(step)
            XCTAssertEqual(r.status, 0, "\(step.joined(separator: " ")): \(r.err)")
            guard r.status == 0 else { return nil }
        }
        try FileManager.default.createDirectory(atPath: pod.dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        chmod(pod.dir, 0o777)  // the proxy runs as the proxy uid: its config and log live here
        return pod
    }

    /// `ballast proxy` in the pod as the proxy uid, from `yaml` (admin on 15000); nil when it did not start.
    func startProxy(_ pod: Pod, _ yaml: String, io: String) throws -> Child? {
        let config = pod.dir + "/sidecar.yaml"
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        chmod(config, 0o644)
        guard let setpriv = Self.which("setpriv") else {
            XCTFail("setpriv (util-linux) is needed to run the proxy as uid \(Self.proxyUID)")
            return nil
        }
        let proxy = try pod.start(pod.inside([setpriv, "--reuid", Self.proxyUID, "--regid", Self.proxyUID, "--clear-groups",
                                              ballastBinary(), "proxy", "-c", config, "--concurrency", "1", "--io", io]))
        guard proxy.waitForLine(containing: "ballast proxy admin on") != nil else {
            proxy.stop()
            XCTFail("ballast proxy did not start: \(proxy.stderrText)")
            return nil
        }
        return proxy
    }

    /// Both of Istio's virtual listeners in one proxy, each with the original_dst listener filter:
    /// outbound 15001 to an ORIGINAL_DST cluster, inbound 15006 to the app on 127.0.0.1:8080 (the
    /// pre-1.10 Istio inbound cluster). A client here calls the app at the pod's address; PREROUTING
    /// sends it to 15006 and the proxy logs the original destination. The app calls out through 15001.
    func testInboundAndOutboundListenersInOneSidecar() throws {
        guard let pod = try makePod(index: 2) else { return }
        let ballast = ballastBinary()
        let app = try pod.start(pod.inside([ballast, "server", "--address", "0.0.0.0", "--port", "8080", "--workers", "1", "--io", "epoll"]))
        guard app.waitForLine(containing: "listening on") != nil else { return XCTFail("the app did not start") }
        let outside = try pod.start([ballast, "server", "--address", pod.hostIP, "--port", "0", "--workers", "1", "--io", "epoll"])
        guard let line = outside.waitForLine(containing: "listening on"),
              let outsidePort = line.components(separatedBy: ":").dropFirst().compactMap({ Int($0.prefix { $0.isNumber }) }).first
        else { return XCTFail("the outside server did not start") }

        func listener(_ name: String, _ port: Int, _ prefix: String, _ cluster: String) -> String {
            """
              - name: \(name)
                address: { socket_address: { address: 0.0.0.0, port_value: \(port) } }
                listener_filters:
                - name: envoy.filters.listener.original_dst
                  typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst }
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: \(prefix)
                      access_log:
                      - name: envoy.access_loggers.file
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                          path: \(pod.dir)/\(prefix).log
                          log_format:
                            text_format_source:
                              inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %DOWNSTREAM_LOCAL_ADDRESS% %REQ(:PATH)%\\n"
                      route_config:
                        virtual_hosts:
                        - name: all
                          domains: ["*"]
                          routes:
                          - match: { prefix: "/" }
                            route: { cluster: \(cluster) }
                      http_filters:
                      - name: envoy.filters.http.router
                        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
            """
        }
        let yaml = """
        admin:
          address: { socket_address: { address: 0.0.0.0, port_value: 15000 } }
        static_resources:
          listeners:
        \(listener("virtualOutbound", 15001, "outbound", "PassthroughCluster"))
        \(listener("virtualInbound", 15006, "inbound", "inbound_app"))
          clusters:
          - { name: PassthroughCluster, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 1s }
          - name: inbound_app
            type: STATIC
            connect_timeout: 1s
            load_assignment:
              cluster_name: inbound_app
              endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } } } ] } ]
        """
        guard try startProxy(pod, yaml, io: "epoll") != nil else { return }
        let install = Self.run([ballast, "sidecar-init", "--netns", pod.name, "--proxy-uid", Self.proxyUID, "--exclude-inbound-ports", "15000"])
        XCTAssertEqual(install.status, 0, install.err)

        // Inbound: 5 connections from here to the app's port on the pod's address.
        for i in 0..<5 { XCTAssertEqual(Self.get(pod.podIP, 8080, "/in/\(i)").0, 200) }
        // Outbound: the app namespace calls the outside server.
        let load = Self.run(pod.inside([ballast, "load", "-qps", "0", "-n", "5", "-c", "1", "http://\(pod.hostIP):\(outsidePort)/out"]))
        XCTAssertTrue(load.out.contains("Code 200 : 5 "), load.out + load.err)

        let stats = Self.get(pod.podIP, 15000, "/stats").1
        XCTAssertEqual(Self.stat(stats, "listener.0.0.0.0_15006.downstream_cx_total"), 5, stats)
        XCTAssertEqual(Self.stat(stats, "http.inbound.downstream_rq_2xx"), 5)
        XCTAssertEqual(Self.stat(stats, "cluster.inbound_app.upstream_rq_total"), 5)
        XCTAssertEqual(Self.stat(stats, "listener.0.0.0.0_15001.downstream_cx_total"), 1)
        XCTAssertEqual(Self.stat(stats, "http.outbound.downstream_rq_2xx"), 5)
        XCTAssertEqual(waitForLines(pod.dir + "/inbound.log", count: 5),
                       (0..<5).map { "200 - inbound_app 127.0.0.1:8080 \(pod.podIP):8080 /in/\($0)" })
        let target = "\(pod.hostIP):\(outsidePort)"
        XCTAssertEqual(waitForLines(pod.dir + "/outbound.log", count: 5), Array(repeating: "200 - PassthroughCluster \(target) \(target) /out", count: 5))
        // The original destination is a host of the ORIGINAL_DST cluster in /clusters, as in Envoy.
        let clusters = Self.get(pod.podIP, 15000, "/clusters").1
        XCTAssertTrue(clusters.contains("PassthroughCluster::\(target)::rq_total::5\n"), clusters)
        XCTAssertTrue(clusters.contains("PassthroughCluster::\(target)::rq_success::5\n"), clusters)
    }

    /// Envoy 1.40 (scripts/ensure-envoy.sh, as the differential suite) as the sidecar in the same
    /// set-up writes the same access-log fields for redirected requests as `ballast proxy`.
    func testEnvoyLogsTheSameOriginalDestinationAsBallast() throws {
        guard let pod = try makePod(index: 3) else { return }
        let ballast = ballastBinary()
        let ensure = Self.run([repositoryRoot.appendingPathComponent("scripts/ensure-envoy.sh").path])
        guard ensure.status == 0, let envoy = ensure.out.split(separator: "\n").last.map(String.init) else {
            return XCTFail("scripts/ensure-envoy.sh failed (\(ensure.status)): \(ensure.err)")
        }
        let upstream = try pod.start([ballast, "server", "--address", pod.hostIP, "--port", "0", "--workers", "1", "--io", "epoll"])
        guard let line = upstream.waitForLine(containing: "listening on"),
              let port = line.components(separatedBy: ":").dropFirst().compactMap({ Int($0.prefix { $0.isNumber }) }).first
        else { return XCTFail("the upstream did not start") }
        let install = Self.run([ballast, "sidecar-init", "--netns", pod.name, "--proxy-uid", Self.proxyUID, "--exclude-inbound-ports", "15000"])
        XCTAssertEqual(install.status, 0, install.err)
        guard let setpriv = Self.which("setpriv") else { return XCTFail("setpriv (util-linux) is needed") }

        func lines(_ name: String, _ command: [String]) throws -> [String] {
            let log = pod.dir + "/\(name).log"
            let config = pod.dir + "/\(name).yaml"
            try """
            admin:
              address: { socket_address: { address: 0.0.0.0, port_value: 15000 } }
            static_resources:
              listeners:
              - name: virtualOutbound
                address: { socket_address: { address: 0.0.0.0, port_value: 15001 } }
                use_original_dst: true
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: outbound
                      access_log:
                      - name: envoy.access_loggers.file
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                          path: \(log)
                          log_format: { text_format_source: { inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %REQ(:PATH)%\\n" } }
                      route_config:
                        virtual_hosts:
                        - name: all
                          domains: ["*"]
                          routes: [ { match: { prefix: "/" }, route: { cluster: PassthroughCluster } } ]
                      http_filters:
                      - name: envoy.filters.http.router
                        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
              clusters:
              - { name: PassthroughCluster, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 1s }
            """.write(toFile: config, atomically: true, encoding: .utf8)
            chmod(config, 0o644)
            let proxy = try pod.start(pod.inside([setpriv, "--reuid", Self.proxyUID, "--regid", Self.proxyUID, "--clear-groups"] + command + ["-c", config]))
            defer { proxy.stop() }
            var ready = false
            for _ in 0..<200 where !ready {
                ready = Self.get(pod.podIP, 15000, "/ready").0 == 200
                if !ready { usleep(50_000) }
            }
            XCTAssertTrue(ready, "\(name) did not become ready")
            let load = Self.run(pod.inside([ballast, "load", "-qps", "0", "-n", "3", "-c", "1", "http://\(pod.hostIP):\(port)/same"]))
            XCTAssertTrue(load.out.contains("Code 200 : 3 "), "\(name): \(load.out)\(load.err)")
            return waitForLines(log, count: 3)
        }
        let fromBallast = try lines("ballast", [ballast, "proxy", "--concurrency", "1"])
        let fromEnvoy = try lines("envoy", [envoy, "--disable-hot-restart", "--concurrency", "1", "-l", "warning"])
        let target = "\(pod.hostIP):\(port)"
        XCTAssertEqual(fromBallast, Array(repeating: "200 - via_upstream PassthroughCluster \(target) \(target) \(pod.hostIP) /same", count: 3))
        XCTAssertEqual(fromEnvoy, fromBallast)
    }

    func scenario(io: String, index: Int) throws {
        let ballast = ballastBinary()
        guard let pod = try makePod(index: index) else { return }
        let (ns, upstreamIP, appIP) = (pod.name, pod.hostIP, pod.podIP)
        let ip = pod.ip

        // The upstream, in this namespace on the veth address.
        let upstream = try pod.start([ballast, "server", "--address", upstreamIP, "--port", "0", "--workers", "1", "--io", "epoll", "--admin-port", "0"])
        guard let line = upstream.waitForLine(containing: "listening on") else { return XCTFail("ballast server did not start") }
        let ports = line.components(separatedBy: ":").dropFirst().compactMap { Int($0.prefix { $0.isNumber }) }
        XCTAssertEqual(ports.count, 2, line)
        guard ports.count == 2 else { return }
        let (upstreamPort, upstreamAdmin) = (ports[0], ports[1])
        func upstreamAccepted() -> Int {
            let (_, body) = Self.get("127.0.0.1", upstreamAdmin, "/workers")
            return body.components(separatedBy: "\"accepted\": ").dropFirst().reduce(0) { $0 + (Int($1.prefix { $0.isNumber }) ?? 0) }
        }

        // The proxy, in the app namespace as the proxy uid.
        let log = pod.dir + "/access.log"
        let yaml = """
        admin:
          address: { socket_address: { address: 0.0.0.0, port_value: 15000 } }
        static_resources:
          listeners:
          - name: virtualOutbound
            address: { socket_address: { address: 0.0.0.0, port_value: 15001 } }
            use_original_dst: true
            traffic_direction: OUTBOUND
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: outbound
                  access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: \(log)
                      log_format:
                        text_format_source:
                          inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %DOWNSTREAM_LOCAL_ADDRESS% %REQ(:PATH)%\\n"
                  route_config:
                    virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                      - match: { prefix: "/" }
                        route: { cluster: PassthroughCluster }
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          clusters:
          - name: PassthroughCluster
            type: ORIGINAL_DST
            lb_policy: CLUSTER_PROVIDED
            connect_timeout: 1s
            cleanup_interval: 1s
        """
        guard try startProxy(pod, yaml, io: io) != nil else { return }
        func proxyStats() -> String { Self.get(appIP, 15000, "/stats").1 }

        // The app: 10 keep-alive requests to the upstream's own address, as root (not the proxy uid).
        func app(_ path: String) -> String {
            let r = Self.run([ip, "netns", "exec", ns, ballast, "load", "-qps", "0", "-n", "10", "-c", "1",
                              "http://\(upstreamIP):\(upstreamPort)\(path)"])
            XCTAssertEqual(r.status, 0, r.err)
            return r.out + r.err
        }

        // 1. No rules yet: straight to the upstream, the proxy sees nothing.
        XCTAssertTrue(app("/before?size=3").contains("Code 200 : 10 "))
        XCTAssertEqual(upstreamAccepted(), 1)
        XCTAssertEqual(Self.stat(proxyStats(), "http.outbound.downstream_rq_total"), 0)

        // 2. sidecar-init: the same calls now pass through the proxy.
        let install = Self.run([ballast, "sidecar-init", "--netns", ns, "--proxy-uid", Self.proxyUID, "--exclude-inbound-ports", "15000"])
        XCTAssertEqual(install.status, 0, install.err)
        XCTAssertTrue(app("/through?size=3").contains("Code 200 : 10 "))
        let stats = proxyStats()
        XCTAssertEqual(Self.stat(stats, "http.outbound.downstream_rq_total"), 10, stats)
        XCTAssertEqual(Self.stat(stats, "http.outbound.downstream_rq_2xx"), 10)
        XCTAssertEqual(Self.stat(stats, "listener.0.0.0.0_15001.downstream_cx_total"), 1, "one keep-alive connection redirected to 15001")
        XCTAssertEqual(Self.stat(stats, "cluster.PassthroughCluster.upstream_rq_total"), 10)
        XCTAssertEqual(Self.stat(stats, "cluster.PassthroughCluster.upstream_cx_total"), 1, "the proxy reused its upstream connection")
        XCTAssertEqual(Self.stat(stats, "cluster.PassthroughCluster.original_dst_host_invalid"), 0)
        XCTAssertEqual(upstreamAccepted(), 2, "one more connection: the proxy's, not redirected again (uid excluded)")
        let expected = "200 - PassthroughCluster \(upstreamIP):\(upstreamPort) \(upstreamIP):\(upstreamPort) /through?size=3"
        let lines = waitForLines(log, count: 10)
        XCTAssertEqual(lines, Array(repeating: expected, count: 10))

        // The destination unused for cleanup_interval (1 s): the host is removed, its idle connection closed.
        var active = -1
        for _ in 0..<100 where active != 0 {
            usleep(100_000)
            active = Self.stat(proxyStats(), "cluster.PassthroughCluster.upstream_cx_active") ?? -1
        }
        XCTAssertEqual(active, 0, "cleanup_interval closed the idle upstream connection")

        // 3. --remove: straight to the upstream again; the proxy's figures stay.
        let removal = Self.run([ballast, "sidecar-init", "--netns", ns, "--remove"])
        XCTAssertEqual(removal.status, 0, removal.err)
        XCTAssertEqual(Self.run([ip, "netns", "exec", ns, "iptables", "-t", "nat", "-S", "BALLAST_OUTPUT"]).status, 1, "the chain is gone")
        XCTAssertTrue(app("/after?size=3").contains("Code 200 : 10 "))
        XCTAssertEqual(Self.stat(proxyStats(), "http.outbound.downstream_rq_total"), 10)
        XCTAssertEqual(upstreamAccepted(), 3)
    }
}

/// The inode of a namespace file (nil when unreadable); outside the class, whose `stat` is another.
private func namespaceInode(_ path: String) -> UInt? {
    var st = stat()
    return stat(path, &st) == 0 ? UInt(st.st_ino) : nil
}
