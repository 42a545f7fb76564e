import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// `envoy.filters.http.cache` where Envoy 1.40 gives nothing to compare with (CacheDifferentialTests
/// covers the rest): a response varying on an allowed header (Envoy 1.40 crashes on one).
final class CacheFilterTests: XCTestCase {
    private func yaml(upstream: Int) -> String {
        opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream]))
            .replacingOccurrences(of: "          http_filters:\n", with: """
                      http_filters:
                      - name: envoy.filters.http.cache
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig
                          typed_config: { "@type": type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig }
                          allowed_vary_headers: [ { exact: accept } ]

            """)
    }

    /// One variant per key, stored under the request's values of the allowed headers: the same
    /// accept hits, another one misses and replaces it.
    func testVaryOnAnAllowedHeaderKeepsOneVariantPerKey() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let ops = try startOps(yaml(upstream: upstream.port), concurrency: 1)
        defer { ops.stop() }
        let port = try XCTUnwrap(ops.proxy.port(of: "http"))
        let admin = try XCTUnwrap(ops.adminPort)
        func upstreamRequests() -> Int? { statValue(adminRequest(admin, "GET", "/stats").1, "cluster.echo.upstream_rq_total") }
        // A date in the future: no apparent age, so the entry stays fresh for the test.
        let target = "/v?size=8&header=cache-control:max-age%3D600&header=vary:accept&header=date:Fri,%2001%20Jan%202100%2000:00:00%20GMT"
        let c = try TestConnection(port: port)
        var seen: [String] = []
        for accept in ["a", "a", "b", "b", "a", "c"] {
            c.send("GET \(target) HTTP/1.1\r\nHost: x\r\nAccept: \(accept)\r\n\r\n")
            let r = try XCTUnwrap(c.readResponse())
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.body.count, 8)
            seen.append("\(accept) \(r.headers["age"] == nil ? "miss" : "hit") upstream \(upstreamRequests() ?? -1)")
        }
        XCTAssertEqual(seen, ["a miss upstream 1", "a hit upstream 1", "b miss upstream 2", "b hit upstream 2", "a miss upstream 3", "c miss upstream 4"])
    }
}
