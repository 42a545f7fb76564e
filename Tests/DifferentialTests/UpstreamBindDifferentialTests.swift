import Foundation
import Glibc
import TestSupport
import XCTest

/// `upstream_bind_config.source_address` against real Envoy 1.40: a cluster's upstream
/// connections leave from the bound address (Istio's 127.0.0.6 inbound passthrough source), a
/// cluster without one from the kernel's choice, and a source address the machine does not have
/// fails the connect (503 UF).
final class UpstreamBindDifferentialTests: XCTestCase {
    static let tableRows = [
        "upstream_bind_config.source_address: upstream connections from 127.0.0.6 (port left to connect), an address not on this machine is 503 UF",
    ]

    func testSourceAddressAgreesWithEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let format = "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %REQ(:PATH)%\\n"
        let seen = try observeEnvoyAndBallast("upstream-bind", envoyArgs: ["--file-flush-interval-msec", "10"], config: { port, admin, log in
            singleListenerBootstrap(port: port, admin: admin,
                                    routes: ["{match: {prefix: \"/bound\"}, route: {cluster: bound}}",
                                             "{match: {prefix: \"/elsewhere\"}, route: {cluster: elsewhere}}",
                                             "{match: {prefix: \"/\"}, route: {cluster: plain}}"],
                                    hcmExtra: "access_log: [{name: envoy.access_loggers.file, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: \(log), log_format: {text_format_source: {inline_string: \"\(format)\"}}}}]",
                                    clusters: [staticCluster("bound", ports: [upstream.port], extra: "connect_timeout: 1s, upstream_bind_config: {source_address: {address: 127.0.0.6, port_value: 0}}"),
                                               staticCluster("elsewhere", ports: [upstream.port], extra: "connect_timeout: 1s, upstream_bind_config: {source_address: {address: 192.0.2.1, port_value: 0}}"),
                                               staticCluster("plain", ports: [upstream.port], extra: "connect_timeout: 1s")])
        }, observe: { proxy, port in
            var out: [String] = []
            for path in ["/bound/1", "/bound/2", "/plain", "/elsewhere"] {
                let c = try RawClient(port: port)
                c.send("GET \(path) HTTP/1.1\r\nHost: h\r\n\r\n")
                out.append("\(path): \(c.readResponse().map { "\($0.status)" } ?? "none")")
                c.shutdownBoth()
            }
            // The upstream connection's own port differs from run to run.
            var lines: [String] = []
            let deadline = Date().addingTimeInterval(3)
            while lines.count < 4 && Date() < deadline {
                lines = proxy.logLines(after: 0) { _ in true }
                usleep(20_000)
            }
            return out + lines.map { $0.replacingOccurrences(of: #":[0-9]+ "#, with: ":port ", options: .regularExpression) }.sorted()
                + (try FilterChainDifferentialTests.stats(proxy, prefixes: ["cluster.elsewhere.upstream_cx_connect_fail", "cluster.bound.upstream_cx_total"]))
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "upstream_bind_config differs from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("200 - bound 127.0.0.6:port /bound/1"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("/elsewhere: 503"), "\(seen.ballast)")
    }
}
