import EventLoop
import Foundation
import Glibc
@testable import Proxy
import XCTest

/// Transparent interception without network namespaces (issue 14): the original_dst listener
/// filter, `use_original_dst` and ORIGINAL_DST clusters as config, and the data path of a
/// connection that was not redirected. `SidecarEndToEndTests` covers redirected connections.
final class OriginalDstTests: XCTestCase {
    static let cluster = "static_resources.clusters[0]"
    static let originalDstCluster = ("    type: STATIC\n    lb_policy: ROUND_ROBIN\n    load_assignment:\n      cluster_name: some_service\n      endpoints:\n      - lb_endpoints:\n        - endpoint:\n            address:\n              socket_address: { address: 127.0.0.1, port_value: 8080 }\n",
                                      "    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n")

    func testUseOriginalDstAndAnOriginalDstClusterLoad() throws {
        let yaml = edited([("    filter_chains:", "    use_original_dst: true\n    filter_chains:"), Self.originalDstCluster])
        let loaded = try XCTUnwrap(load(yaml))
        let listener = loaded.bootstrap.listeners[0]
        XCTAssertTrue(listener.useOriginalDst)
        XCTAssertEqual(listener.listenerFilters, [.originalDst], "Envoy adds the original_dst filter for use_original_dst")
        let cluster = loaded.bootstrap.clusters[0]
        XCTAssertEqual(cluster.discoveryType, .originalDst)
        XCTAssertEqual(cluster.lbPolicy, .clusterProvided)
        XCTAssertEqual(cluster.cleanupIntervalNanos, 5_000_000_000, "Envoy's default cleanup_interval")
        XCTAssertTrue(loaded.warnings.isEmpty, "\(loaded.warnings)")
        let plane = try DataPlane.compile(loaded.bootstrap)
        XCTAssertTrue(plane.listeners[0].restoresOriginalDst)
        XCTAssertTrue(plane.clusters[0].isOriginalDst)
        XCTAssertTrue(plane.clusters[0].hosts.isEmpty)
    }

    func testTheListenerFilterAloneAndCleanupInterval() throws {
        let yaml = edited([
            ("    filter_chains:", "    listener_filters:\n    - name: envoy.filters.listener.original_dst\n      typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst }\n    filter_chains:"),
            (Self.originalDstCluster.0, Self.originalDstCluster.1 + "    cleanup_interval: 2.5s\n"),
        ])
        let loaded = try XCTUnwrap(load(yaml))
        XCTAssertFalse(loaded.bootstrap.listeners[0].useOriginalDst)
        XCTAssertTrue(loaded.bootstrap.listeners[0].restoresOriginalDst)
        XCTAssertEqual(loaded.bootstrap.clusters[0].cleanupIntervalNanos, 2_500_000_000)
    }

    func testShippedSidecarConfigLoadsWithoutWarnings() throws {
        let loaded = try BootstrapLoader.load(path: shippedConfigPath("sidecar-outbound.yaml"))
        XCTAssertEqual(loaded.warnings.map(\.description), [])
        XCTAssertTrue(loaded.bootstrap.listeners[0].useOriginalDst)
        XCTAssertEqual(loaded.bootstrap.listeners[0].address.port, 15001)
        XCTAssertEqual(loaded.bootstrap.clusters.map(\.discoveryType), [.originalDst])
    }

    func testRefusals() {
        let twoListeners = """
          - name: second
            address: { socket_address: { address: 127.0.0.1, port_value: 10001 } }
            filter_chains: [ { filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: some_service } } ] } ]
          clusters:
        """
        let cases: [(String, [(String, String)], [String])] = [
            ("ORIGINAL_DST with ROUND_ROBIN",
             [(Self.originalDstCluster.0, "    type: ORIGINAL_DST\n    lb_policy: ROUND_ROBIN\n")],
             ["\(Self.cluster).lb_policy: ROUND_ROBIN is not valid for cluster type ORIGINAL_DST: only CLUSTER_PROVIDED is allowed"]),
            ("CLUSTER_PROVIDED on a STATIC cluster",
             [("lb_policy: ROUND_ROBIN", "lb_policy: CLUSTER_PROVIDED")],
             ["\(Self.cluster).lb_policy: CLUSTER_PROVIDED is valid only with cluster type ORIGINAL_DST (this one is STATIC)"]),
            ("ORIGINAL_DST with endpoints",
             [("type: STATIC\n    lb_policy: ROUND_ROBIN", "type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED")],
             ["\(Self.cluster).load_assignment: an ORIGINAL_DST cluster takes no endpoints: each connection goes to its original destination"]),
            ("zero cleanup_interval",
             [(Self.originalDstCluster.0, Self.originalDstCluster.1 + "    cleanup_interval: 0s\n")],
             ["\(Self.cluster).cleanup_interval: must be greater than 0s"]),
            ("original_dst_lb_config",
             [(Self.originalDstCluster.0, Self.originalDstCluster.1 + "    original_dst_lb_config: { use_http_header: true }\n")],
             ["\(Self.cluster).original_dst_lb_config: not supported by ballast"]),
            ("use_original_dst with a second listener",
             [("    filter_chains:", "    use_original_dst: true\n    filter_chains:"), ("  clusters:\n", twoListeners + "\n")],
             ["static_resources.listeners[0].use_original_dst: not applied by ballast with more than one listener yet (in Envoy: a redirected connection is handed off to the listener bound to its original destination); give one listener, or use the envoy.filters.listener.original_dst listener filter, which does not hand off"]),
        ]
        for (name, edits, expected) in cases {
            let errors = loadErrors(edited(edits))
            XCTAssertEqual(errors.map { $0.components(separatedBy: " (line")[0] }, expected, name)
        }
    }

    func testCompactAddressRoundTrips() {
        for text in ["10.1.2.3", "fd00::1:2"] {
            let a = SocketAddress(host: text, port: 8080)!
            let c = CompactAddress(a)
            XCTAssertTrue(c.isSet)
            XCTAssertEqual(c.socketAddress.description, a.description)
            XCTAssertEqual(c.socketAddress.port, 8080)
        }
        XCTAssertFalse(CompactAddress().isSet)
    }

    /// A connection that was not redirected has no original destination: an ORIGINAL_DST cluster
    /// has no host for it (503 UH, `original_dst_host_invalid`), as in Envoy.
    func testWithoutAnOriginalDestinationTheClusterHasNoHost() throws {
        let hosts = dataPathCatchAll("passthrough")
        let clusters = """
          - name: passthrough
            connect_timeout: 0.5s
            type: ORIGINAL_DST
            lb_policy: CLUSTER_PROVIDED
        """
        let log = opsTempPath("original-dst.log")
        let ops = try startOps(opsYAML(virtualHosts: hosts, clusters: clusters,
                                       accessLog: opsFileLogger(log, logFormat: "                text_format_source:\n                  inline_string: \"%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST% %DOWNSTREAM_LOCAL_ADDRESS%\\n\"")),
                               concurrency: 1)
        defer {
            ops.stop()
            unlink(log)
        }
        let port = ops.proxy.port(of: "http")!
        for _ in 0..<3 { XCTAssertEqual(try TestConnection(port: port).get("/")?.status, 503) }
        let lines = waitForLines(log, count: 3)
        XCTAssertEqual(lines, Array(repeating: "503 UH - 127.0.0.1:\(port)", count: 3))
        let (status, stats) = adminRequest(ops.adminPort!, "GET", "/stats")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(statValue(stats, "cluster.passthrough.original_dst_host_invalid"), 3)
        XCTAssertEqual(statValue(stats, "cluster.passthrough.upstream_cx_total"), 0)
    }

    /// tcp_proxy to an ORIGINAL_DST cluster (Istio's PassthroughCluster) without a restored
    /// destination: the connection is closed and counted, nothing is connected.
    func testTCPProxyWithoutAnOriginalDestinationClosesTheConnection() throws {
        let yaml = """
        admin:
          address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
        static_resources:
          listeners:
          - name: tcp
            address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
            filter_chains: [ { filters: [ { name: envoy.filters.network.tcp_proxy, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: passthrough, cluster: passthrough } } ] } ]
          clusters:
          - { name: passthrough, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED, connect_timeout: 0.5s }
        """
        let ops = try startOps(yaml, concurrency: 1)
        defer { ops.stop() }
        for _ in 0..<2 {
            let c = try TestConnection(port: ops.proxy.port(of: "tcp")!)
            XCTAssertTrue(c.readsEOF())
        }
        let (_, stats) = adminRequest(ops.adminPort!, "GET", "/stats")
        XCTAssertEqual(statValue(stats, "cluster.passthrough.original_dst_host_invalid"), 2)
        XCTAssertEqual(statValue(stats, "cluster.passthrough.upstream_cx_total"), 0)
    }

    /// A proxy behind another (or a redirect loop) sets x-envoy-upstream-service-time, replacing
    /// the upstream's, as Envoy does: one field per response, not one per hop.
    func testUpstreamServiceTimeIsReplacedNotAppended() throws {
        let raw = try RawUpstream { fd in
            _ = RawUpstream.readHead(fd)
            RawUpstream.write(fd, "HTTP/1.1 200 OK\r\nx-envoy-upstream-service-time: 999\r\nX-Envoy-Upstream-Service-Time: 998\r\ncontent-length: 2\r\n\r\nok")
            RawUpstream.drain(fd)
            Glibc.close(fd)
        }
        defer { raw.stop() }
        let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("raw"), clusters: dataPathCluster("raw", ports: [raw.port])),
                                           io: .epoll, concurrency: 1)
        defer { proxy.stop() }
        let c = try TestConnection(port: proxy.port(of: "http")!)
        c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(c.fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        let head = String(decoding: data, as: UTF8.self).lowercased()
        XCTAssertTrue(head.hasPrefix("http/1.1 200"), head)
        XCTAssertEqual(head.components(separatedBy: "x-envoy-upstream-service-time:").count, 2, head)
        XCTAssertFalse(head.contains("service-time: 999") || head.contains("service-time: 998"), head)
    }
}
