import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// request_mirror_policies end to end on both backends: every request mirrored once, the main
/// answers unaffected by a dead mirror, and nothing held after clients leave mid-body (the
/// circuit-breaker units of both clusters back to 0, so no shadow is left behind).
final class MirrorEndToEndTests: XCTestCase {
    private func yaml(main: Int, mirror: Int, dead: Int) -> String {
        let hosts = """
                    - name: all
                      domains: ["*"]
                      routes:
                      - match: { prefix: "/dead" }
                        route: { cluster: main, request_mirror_policies: [ { cluster: dead } ] }
                      - match: { prefix: "/" }
                        route: { cluster: main, request_mirror_policies: [ { cluster: mirror } ] }
        """
        return dataPathYAML(virtualHosts: hosts, clusters: dataPathCluster("main", ports: [main]) + "\n"
                            + dataPathCluster("mirror", ports: [mirror]) + "\n" + dataPathCluster("dead", ports: [dead]))
    }

    func testEveryRequestMirroredAndNothingHeldAfterClientsLeave() throws {
        try forEachDataPathBackend { io in
            let main = try DataPathGapsTests.Server(io: io)
            let mirror = try DataPathGapsTests.Server(io: io)
            defer { main.stop(); mirror.stop() }
            let proxy = try startDataPathProxy(yaml(main: main.port, mirror: mirror.port, dead: try closedPort()), io: io, concurrency: 1)
            defer { proxy.stop() }
            let port = proxy.port(of: "http")!
            let c = try TestConnection(port: port)
            var ok = 0
            for _ in 0..<200 where c.get("/?size=1")?.status == 200 { ok += 1 }
            for _ in 0..<50 where c.get("/dead?size=1")?.status == 200 { ok += 1 }
            XCTAssertEqual(ok, 250, "\(io): every main request answered, the dead mirror notwithstanding")
            // Clients that leave in the middle of a body: their copies are dropped with them.
            for _ in 0..<20 {
                let early = try TestConnection(port: port)
                early.send("POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 5000))
                usleep(2_000)
                early.close()
            }
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline && (mirror.requests < 200 || proxy.plane.clusters.contains { $0.resources.requests.load(ordering: .relaxed) != 0 }) {
                usleep(20_000)
            }
            XCTAssertEqual(main.requests, 250, "\(io)")
            XCTAssertEqual(mirror.requests, 200, "\(io): one copy per request to the live mirror (the early-closed uploads never completed)")
            for cluster in proxy.plane.clusters {
                XCTAssertEqual(cluster.resources.requests.load(ordering: .relaxed), 0, "\(io): \(cluster.name) still holds requests")
                XCTAssertEqual(cluster.resources.pendingRequests.load(ordering: .relaxed), 0, "\(io): \(cluster.name) still holds pending requests")
            }
        }
    }
}
