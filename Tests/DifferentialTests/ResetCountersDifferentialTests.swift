import Foundation
import Glibc
import XCTest

/// Streams that end without a whole exchange, counted as Envoy 1.40 counts them: an upstream that
/// closes before its response (503), one that cuts its response short after the head, and a client
/// that leaves while its request is upstream. Envoy charges HTTP/1 upstream closes to
/// `upstream_cx_destroy_remote_with_active_rq` (never `upstream_rq_rx_reset`), a cut response to
/// both `downstream_rq_tx_reset` and `downstream_rq_rx_reset`, and a client that left to
/// `downstream_cx_destroy_remote_active_rq` without completing its request.
final class ResetCountersDifferentialTests: XCTestCase {
    static let stats = ["http.h.downstream_rq_completed", "http.h.downstream_rq_rx_reset", "http.h.downstream_rq_tx_reset",
                        "http.h.downstream_cx_destroy_remote_active_rq", "http.h.downstream_rq_2xx", "http.h.downstream_rq_5xx",
                        "cluster.up.upstream_rq_completed", "cluster.up.upstream_cx_destroy_remote_with_active_rq",
                        "cluster.up.upstream_cx_destroy_local_with_active_rq"]

    func testResetsAreCountedAsEnvoy() throws {
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let seen = try observeEnvoyAndBallast("resets", config: { port, admin, _ in
            singleListenerBootstrap(port: port, admin: admin, routes: ["{match: {prefix: \"/\"}, route: {cluster: up}}"],
                                    clusters: [staticCluster("up", ports: [upstream.port])])
        }, observe: { proxy, port in
            var out: [String] = []
            let early = try RawClient(port: port)
            early.send("GET /early HTTP/1.1\r\nHost: h\r\nx-reply-close: 1\r\n\r\n")
            out.append("early: \(early.readResponse()?.status ?? 0)")
            let cut = try RawClient(port: port)
            cut.send("GET /cut HTTP/1.1\r\nHost: h\r\nx-reply-cut: 1\r\n\r\n")
            out.append("cut: " + cut.readToEnd().prefix(15))
            // The client leaves once its request reached the upstream (which holds it 1 s).
            _ = upstream.takeHeads()
            let gone = try RawClient(port: port)
            gone.send("GET /gone HTTP/1.1\r\nHost: h\r\nx-reply-delay: 1\r\n\r\n")
            let deadline = Date().addingTimeInterval(10)
            while upstream.takeHeads().isEmpty && Date() < deadline { usleep(5_000) }
            gone.shutdownBoth()
            // Wait for the last stream's end to be counted (the client's close).
            var lines: [String] = []
            repeat {
                let text = (try? proxy.adminGet("/stats").text) ?? ""
                lines = text.split(separator: "\n").map(String.init).filter { line in Self.stats.contains { line.hasPrefix($0 + ": ") } }.sorted()
                if lines.contains("http.h.downstream_cx_destroy_remote_active_rq: 1") { break }
                usleep(20_000)
            } while Date() < deadline
            return out + lines
        })
        XCTAssertEqual(seen.ballast, seen.envoy, "reset counters differ from Envoy 1.40")
        XCTAssertTrue(seen.ballast.contains("http.h.downstream_rq_tx_reset: 1"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("cluster.up.upstream_cx_destroy_remote_with_active_rq: 2"), "\(seen.ballast)")
        XCTAssertTrue(seen.ballast.contains("cluster.up.upstream_cx_destroy_local_with_active_rq: 1"), "\(seen.ballast)")
    }
}
