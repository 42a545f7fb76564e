import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// The rbac filter's connection-level matchers on both I/O backends: destination_port (the
/// listener's port, read once per connection) and direct_remote_ip (the peer). The request-level
/// matchers and the replies are checked against Envoy in the differential suite.
final class RBACEndToEndTests: XCTestCase {
    private func yaml(listenerPort: Int, upstream: Int, rules: String) -> String {
        dataPathYAML(virtualHosts: dataPathCatchAll("up"), clusters: dataPathCluster("up", ports: [upstream]))
            .replacingOccurrences(of: "port_value: 0 }", with: "port_value: \(listenerPort) }")
            .replacingOccurrences(of: "          - name: envoy.filters.http.router\n",
                                  with: "          - name: envoy.filters.http.rbac\n            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, rules: \(rules) }\n          - name: envoy.filters.http.router\n")
    }

    func testDestinationPortAndPeerAddress() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let port = try TestPorts.closed()
            // DENY: requests to this listener's port from a loopback peer, unless they carry x-let-in.
            let rules = "{ action: DENY, policies: { this-port: { permissions: [ { destination_port: \(port) } ], "
                + "principals: [ { and_ids: { ids: [ { direct_remote_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }, "
                + "{ not_id: { header: { name: x-let-in, present_match: true } } } ] } } ] } } }"
            let proxy = try startDataPathProxy(yaml(listenerPort: port, upstream: upstream.port, rules: rules), io: io, concurrency: 1)
            defer { proxy.stop() }
            XCTAssertEqual(proxy.port(of: "http"), port, "\(io)")
            let c = try TestConnection(port: port)
            let denied = c.get("/")
            XCTAssertEqual(denied?.status, 403, "\(io)")
            XCTAssertEqual(denied?.text, "RBAC: access denied", "\(io)")
            XCTAssertEqual(c.get("/", extra: "X-Let-In: 1\r\n")?.status, 200, "\(io): the same connection, a request the policy excludes")
            var records: [AccessRecord] = []
            let ring = proxy.accessRings[0][0]
            Wait.until {
                while let r = ring.pop() { records.append(r) }
                return records.count >= 2
            }
            XCTAssertEqual(records.first?.details, .rbacAccessDenied, "\(io)")
            XCTAssertEqual(proxy.plane.listeners[0].rbacDetails(records.first?.detailsArgument), "rbac_access_denied_matched_policy[this-port]", "\(io)")
        }
    }
}

private extension ListenerPlan {
    func rbacDetails(_ index: UInt16?) -> String? {
        guard let h = http, let index, Int(index) < h.rbacDetails.count else { return nil }
        return h.rbacDetails[Int(index)]
    }
}
