import EventLoop
import HTTP1
@testable import Proxy
import TestSupport
import XCTest

/// The router's tables without sockets: virtual-host precedence, port stripping, route matching.
final class DataPathRoutingTests: XCTestCase {
    let yaml = dataPathYAML(virtualHosts: """
                - name: exact
                  domains: ["api.example.com", "api.example.com:8443"]
                  routes:
                  - match: { path: "/exact" }
                    direct_response: { status: 200, body: { inline_string: "exact-path" } }
                  - match: { prefix: "/v1/", case_sensitive: false }
                    route: { cluster: a, prefix_rewrite: "/internal/" }
                  - match: { prefix: "/", headers: [{ name: x-canary, string_match: { exact: "yes" } }] }
                    route: { cluster: b }
                  - match: { prefix: "/" }
                    route: { cluster: a }
                - name: suffix-long
                  domains: ["*.long.example.com"]
                  routes:
                  - match: { prefix: "/" }
                    direct_response: { status: 201 }
                - name: suffix-short
                  domains: ["*.example.com"]
                  routes:
                  - match: { prefix: "/" }
                    direct_response: { status: 202 }
                - name: prefix
                  domains: ["shop.*"]
                  routes:
                  - match: { prefix: "/" }
                    direct_response: { status: 203 }
                - name: fallback
                  domains: ["*"]
                  routes:
                  - match: { prefix: "/", query_parameters: [{ name: debug, string_match: { exact: "1" } }] }
                    direct_response: { status: 204 }
    """, clusters: dataPathCluster("a", ports: [1]) + "\n" + dataPathCluster("b", ports: [2]))

    func table() throws -> RouteTable {
        let loaded = try BootstrapLoader.load(yaml: yaml)
        let plane = try DataPlane.compile(loaded.bootstrap)
        guard let http = plane.listeners[0].http else { throw TestSetupError("the first listener is not an HTTP listener") }
        return http.routes
    }

    func host(_ t: RouteTable, _ h: String) -> String? {
        Array(h.utf8).withUnsafeBytes { t.virtualHost(for: $0).map { t.virtualHosts[$0].name } }
    }

    func testVirtualHostPrecedence() throws {
        let t = try table()
        XCTAssertEqual(host(t, "api.example.com"), "exact")
        XCTAssertEqual(host(t, "API.Example.COM"), "exact")
        XCTAssertEqual(host(t, "api.example.com:8443"), "exact")
        XCTAssertEqual(host(t, "api.example.com:9999"), "fallback", "the port is part of the Host matched (Envoy 1.40)")
        XCTAssertEqual(host(t, "x.example.com:80"), "fallback", "a *.suffix does not match a Host with a port")
        XCTAssertEqual(host(t, "shop.x:80"), "prefix", "a prefix.* matches a Host with a port")
        XCTAssertEqual(host(t, "x.long.example.com"), "suffix-long", "the longest suffix wins")
        XCTAssertEqual(host(t, "x.example.com"), "suffix-short")
        XCTAssertEqual(host(t, "example.com"), "fallback", "a suffix needs at least one more character")
        XCTAssertEqual(host(t, "shop.anything"), "prefix")
        XCTAssertEqual(host(t, "elsewhere"), "fallback")
        XCTAssertEqual(host(t, ""), "fallback")
    }

    /// Parses a request and returns the matched route's index (or nil).
    func route(_ t: RouteTable, _ request: String) -> Int? {
        let parser = UnsafeMutablePointer<RequestHeadParser>.allocate(capacity: 1)
        parser.initialize(to: RequestHeadParser())
        defer { parser.deinitialize(count: 1); parser.deallocate() }
        return Array(request.utf8).withUnsafeBytes { bytes -> Int? in
            guard case .complete = parser.pointee.parse(bytes) else { return nil }
            let view = RequestView(bytes: bytes, path: parser.pointee.pathRange, query: parser.pointee.queryRange,
                                   host: parser.pointee.hostRange, parser: parser)
            let host = parser.pointee.hostRange.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
            guard let vh = t.virtualHost(for: host) else { return nil }
            return t.route(in: vh, request: view)?.index
        }
    }

    func testRouteMatching() throws {
        let t = try table()
        XCTAssertEqual(route(t, "GET /exact HTTP/1.1\r\nHost: api.example.com\r\n\r\n"), 0)
        XCTAssertEqual(route(t, "GET /exact/more HTTP/1.1\r\nHost: api.example.com\r\n\r\n"), 3, "path is exact")
        XCTAssertEqual(route(t, "GET /V1/users HTTP/1.1\r\nHost: api.example.com\r\n\r\n"), 1, "case-insensitive prefix")
        XCTAssertEqual(route(t, "GET /x HTTP/1.1\r\nHost: api.example.com\r\nX-Canary: yes\r\n\r\n"), 2, "header match")
        XCTAssertEqual(route(t, "GET /x HTTP/1.1\r\nHost: api.example.com\r\nX-Canary: no\r\n\r\n"), 3)
        XCTAssertEqual(route(t, "GET /?a=2&debug=1 HTTP/1.1\r\nHost: other\r\n\r\n"), 7, "query parameter match")
        XCTAssertNil(route(t, "GET /?debug=2 HTTP/1.1\r\nHost: other\r\n\r\n"), "no route: NR")
    }

    func testResponseFlagNames() {
        XCTAssertEqual(ResponseFlags().description, "-")
        // Printed in the order set, as Envoy 1.40's ordered set: HTTP refuses the retry first,
        // tcp_proxy gives up after the failure.
        var http = ResponseFlags()
        http.insert(.upstreamRetryLimitExceeded)
        http.insert(.upstreamConnectionFailure)
        http.insert(.upstreamRetryLimitExceeded)
        XCTAssertEqual(http.description, "URX,UF")
        XCTAssertEqual(([.upstreamConnectionFailure, .upstreamRetryLimitExceeded] as ResponseFlags).description, "UF,URX")
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        let n = ([.upstreamOverflow, .noRouteFound] as ResponseFlags).write(into: buffer)
        XCTAssertEqual(String(decoding: buffer[0..<n], as: UTF8.self), "UO,NR")
        // A removed flag leaves the others in their order; set again, it goes last.
        var flags: ResponseFlags = [.delayInjected, .upstreamConnectionFailure, .faultInjected]
        flags.remove(.upstreamConnectionFailure)
        XCTAssertEqual(flags.description, "DI,FI")
        XCTAssertFalse(flags.contains(.upstreamConnectionFailure))
        flags.formUnion([.upstreamConnectionFailure, .delayInjected])
        XCTAssertEqual(flags.description, "DI,FI,UF")
        XCTAssertEqual(flags, [.delayInjected, .faultInjected, .upstreamConnectionFailure])
        // Every flag at once: the first twelve in order, the rest by index.
        let names = ["UH", "UF", "UO", "NR", "URX", "UC", "UT", "DC", "DPE", "UPE", "LR", "UR", "DI", "SI", "FI", "RL", "LH", "RFCF", "UAEX"]
        var all = ResponseFlags()
        let singles: [ResponseFlags] = [.noHealthyUpstream, .upstreamConnectionFailure, .upstreamOverflow, .noRouteFound,
                                        .upstreamRetryLimitExceeded, .upstreamConnectionTermination, .upstreamRequestTimeout,
                                        .downstreamConnectionTermination, .downstreamProtocolError, .upstreamProtocolError, .localReset,
                                        .upstreamRemoteReset, .delayInjected, .streamIdleTimeout, .faultInjected, .rateLimited,
                                        .failedLocalHealthCheck, .responseFromCacheFilter, .unauthorizedExternalService]
        for f in singles.reversed() { all.insert(f) }
        let reversed = Array(names.reversed())
        XCTAssertEqual(all.description, (reversed.prefix(12) + reversed.dropFirst(12).reversed()).joined(separator: ","))
        XCTAssertEqual(all.rawValue, (1 << 19) - 1)
    }
}
