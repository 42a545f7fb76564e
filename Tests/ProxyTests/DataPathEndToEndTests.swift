import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// `ballast proxy`'s data path end to end over loopback, on both I/O backends: the proxy runs in
/// this process (`ProxyRuntime.start`), `ballast server` processes or raw sockets are upstreams.
/// Assertions are on behaviour and counts, never on timings.
final class DataPathEndToEndTests: XCTestCase {
    func testGetThroughProxy() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("echo"),
                                                            clusters: dataPathCluster("echo", ports: [upstream.port])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            let r = try XCTUnwrap(c.get("/?size=1000"), "\(io)")
            XCTAssertEqual(r.status, 200, "\(io)")
            XCTAssertEqual(r.body.count, 1000, "\(io)")
            XCTAssertEqual(r.headers["server"], "envoy", "\(io)")
            XCTAssertNotNil(r.headers["x-envoy-upstream-service-time"], "\(io)")
            XCTAssertEqual(r.flags, "-", "\(io)")
            let s = try XCTUnwrap(c.get("/?status=201&size=10"), "\(io)")
            XCTAssertEqual(s.status, 201, "\(io)")
            XCTAssertEqual(s.body.count, 10, "\(io)")
            // HEAD: the head only.
            c.send("HEAD /?size=100 HTTP/1.1\r\nHost: x\r\n\r\n")
            let h = try XCTUnwrap(c.readResponse(isHEAD: true), "\(io)")
            XCTAssertEqual(h.status, 200, "\(io)")
            let after = try XCTUnwrap(c.get("/?size=3"), "\(io)")
            XCTAssertEqual(after.body.count, 3, "\(io)")
        }
    }

    func testKeepAliveReusesOneUpstreamConnection() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("echo"),
                                                            clusters: dataPathCluster("echo", ports: [upstream.port])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            let requests = 1000
            var ok = 0
            for i in 0..<requests {
                if let r = c.get("/?size=\(i % 50)"), r.status == 200, r.body.count == i % 50 { ok += 1 }
            }
            XCTAssertEqual(ok, requests, "\(io)")
            XCTAssertEqual(try upstream.acceptedConnections(), 1, "\(io): \(requests) sequential requests over one downstream connection use one upstream connection")
        }
    }

    func testPostEchoContentLengthAndChunked() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("echo"),
                                                            clusters: dataPathCluster("echo", ports: [upstream.port])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            let body = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
            c.send(body)
            let r = try XCTUnwrap(c.readResponse(), "\(io)")
            XCTAssertEqual(r.status, 200, "\(io)")
            XCTAssertEqual(r.body, body, "\(io): Content-Length body echoed byte for byte")

            var chunked: [UInt8] = Array("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            var expected: [UInt8] = []
            for size in [1, 100, 4096, 70_000, 3] {
                let piece = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ size) }
                expected += piece
                chunked += Array(String(size, radix: 16).utf8) + [13, 10] + piece + [13, 10]
            }
            chunked += Array("0\r\n\r\n".utf8)
            c.send(chunked)
            let rc = try XCTUnwrap(c.readResponse(), "\(io)")
            XCTAssertEqual(rc.status, 200, "\(io)")
            XCTAssertEqual(rc.body, expected, "\(io): chunked body echoed")
            // The connection is still in step.
            XCTAssertEqual(c.get("/?size=5")?.body.count, 5, "\(io)")
        }
    }

    func testPipelinedRequestsAnsweredInOrder() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("echo"),
                                                            clusters: dataPathCluster("echo", ports: [upstream.port])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            let sizes = [10, 0, 300, 7, 5000, 1, 42, 999, 2, 64]
            c.send(sizes.map { "GET /?size=\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }.joined())
            for (i, size) in sizes.enumerated() {
                let r = try XCTUnwrap(c.readResponse(), "\(io): response \(i)")
                XCTAssertEqual(r.status, 200, "\(io)")
                XCTAssertEqual(r.body.count, size, "\(io): response \(i) in order")
            }
        }
    }

    func testNoRouteIs404NR() throws {
        try forEachDataPathBackend { io in
            let hosts = """
                        - name: only
                          domains: ["example.com", "*.example.org"]
                          routes:
                          - match: { prefix: "/api" }
                            route: { cluster: echo }
                          - match: { path: "/direct" }
                            direct_response: { status: 418, body: { inline_string: "teapot" } }
            """
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: hosts, clusters: dataPathCluster("echo", ports: [try closedPort()])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            let r = try XCTUnwrap(c.get("/api", host: "other.com"), "\(io)")
            XCTAssertEqual(r.status, 404, "\(io)")
            XCTAssertEqual(r.flags, "NR", "\(io)")
            let r2 = try XCTUnwrap(c.get("/elsewhere", host: "example.com"), "\(io)")
            XCTAssertEqual(r2.status, 404, "\(io)")
            XCTAssertEqual(r2.flags, "NR", "\(io)")
            let d = try XCTUnwrap(c.get("/direct", host: "a.example.org"), "\(io)")
            XCTAssertEqual(d.status, 418, "\(io)")
            XCTAssertEqual(d.text, "teapot", "\(io)")
            // The port is part of the Host matched (Envoy 1.40): no domain here has one.
            let p = try XCTUnwrap(c.get("/direct", host: "a.example.org:8080"), "\(io)")
            XCTAssertEqual(p.status, 404, "\(io)")
            XCTAssertEqual(p.flags, "NR", "\(io)")
        }
    }

    func testUpstreamDownIs503UF() throws {
        try forEachDataPathBackend { io in
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("down"),
                                                            clusters: dataPathCluster("down", ports: [try closedPort()])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            for _ in 0..<3 {
                let r = try XCTUnwrap(c.get("/"), "\(io)")
                XCTAssertEqual(r.status, 503, "\(io)")
                XCTAssertEqual(r.flags, "UF", "\(io)")
                XCTAssertTrue(r.text.hasPrefix("upstream connect error or disconnect/reset before headers"), "\(io): \(r.text)")
            }
        }
    }

    func testCircuitBreakersOverflowIs503UO() throws {
        try forEachDataPathBackend { io in
            // An upstream that reads requests and never answers: requests stay in flight.
            let arrived = DispatchSemaphore(value: 0)
            let raw = try RawUpstream { fd in
                while !RawUpstream.readHead(fd).isEmpty { arrived.signal() }
                Glibc.close(fd)
            }
            defer { raw.stop() }
            // max_requests 1: a second request while one is in flight overflows.
            let cluster = dataPathCluster("held", ports: [raw.port], extra: "    circuit_breakers: { thresholds: [{ max_requests: 1 }] }")
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("held"), clusters: cluster), io: io, concurrency: 1)
            defer { proxy.stop() }
            let port = proxy.port(of: "http")!
            let first = try TestConnection(port: port)
            first.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(arrived.wait(timeout: .now() + 10), .success, "\(io): the first request reached the upstream")
            let second = try TestConnection(port: port)
            let r = try XCTUnwrap(second.get("/second"), "\(io)")
            XCTAssertEqual(r.status, 503, "\(io)")
            XCTAssertEqual(r.flags, "UO", "\(io)")

            // max_pending_requests 0: a request that must wait for a connection overflows (Envoy's rule).
            let pendingCluster = dataPathCluster("nopending", ports: [raw.port], extra: "    circuit_breakers: { thresholds: [{ max_pending_requests: 0 }] }")
            let proxy2 = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("nopending"), clusters: pendingCluster), io: io, concurrency: 1)
            defer { proxy2.stop() }
            let c2 = try TestConnection(port: proxy2.port(of: "http")!)
            let r2 = try XCTUnwrap(c2.get("/"), "\(io)")
            XCTAssertEqual(r2.status, 503, "\(io)")
            XCTAssertEqual(r2.flags, "UO", "\(io)")

            // max_connections 1, max_pending_requests 1: one in flight, one queued, the third overflows.
            let oneConn = dataPathCluster("oneconn", ports: [raw.port], extra: "    circuit_breakers: { thresholds: [{ max_connections: 1, max_pending_requests: 1 }] }")
            let proxy3 = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("oneconn"), clusters: oneConn), io: io, concurrency: 1)
            defer { proxy3.stop() }
            let port3 = proxy3.port(of: "http")!
            let a = try TestConnection(port: port3)
            a.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(arrived.wait(timeout: .now() + 10), .success, "\(io)")
            let b = try TestConnection(port: port3)
            let c = try TestConnection(port: port3)
            b.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            c.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
            // Exactly one of b and c is answered (503 UO); the other waits in the queue: wait for
            // the first answer (a condition), then the other connection has nothing to read.
            var answered: TestConnection? = nil
            Wait.until {
                answered = [b, c].first { Client.pendingBytes($0.fd) != 0 }
                return answered != nil
            }
            let overflowed = try XCTUnwrap(answered, "\(io): neither request was answered")
            let overflow = overflowed.readResponse()
            XCTAssertEqual(overflow?.status, 503, "\(io)")
            XCTAssertEqual(overflow?.flags, "UO", "\(io)")
            let queued = overflowed === b ? c : b
            XCTAssertEqual(Client.pendingBytes(queued.fd), 0, "\(io): the queued request must still wait")
        }
    }

    func testRouteTimeoutIs504UT() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("echo", routeExtra: ", timeout: 0.5s"),
                                                            clusters: dataPathCluster("echo", ports: [upstream.port])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            let r = try XCTUnwrap(c.get("/?delay=2s"), "\(io)")
            XCTAssertEqual(r.status, 504, "\(io)")
            XCTAssertEqual(r.flags, "UT", "\(io)")
            XCTAssertEqual(r.text, "upstream request timeout", "\(io)")
            // The connection carries on.
            XCTAssertEqual(c.get("/?size=4")?.body.count, 4, "\(io)")
        }
    }

    func testMalformedUpstreamResponseIs502() throws {
        try forEachDataPathBackend { io in
            let raw = try RawUpstream { fd in
                _ = RawUpstream.readHead(fd)
                RawUpstream.write(fd, "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n")
                RawUpstream.drain(fd)
                Glibc.close(fd)
            }
            defer { raw.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("bad"),
                                                            clusters: dataPathCluster("bad", ports: [raw.port])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            let r = try XCTUnwrap(c.get("/"), "\(io)")
            XCTAssertEqual(r.status, 502, "\(io)")
            XCTAssertEqual(r.flags, "UPE", "\(io)")
        }
    }

    func testUpstreamResetBeforeHeadersIs503UC() throws {
        try forEachDataPathBackend { io in
            let raw = try RawUpstream { fd in
                _ = RawUpstream.readHead(fd)
                Sockets.setResetOnClose(fd)
                Glibc.close(fd)
            }
            defer { raw.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("reset"),
                                                            clusters: dataPathCluster("reset", ports: [raw.port])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            let r = try XCTUnwrap(c.get("/"), "\(io)")
            XCTAssertEqual(r.status, 503, "\(io)")
            XCTAssertEqual(r.flags, "UC", "\(io)")
        }
    }

    func testUntilCloseResponseIsRechunked() throws {
        try forEachDataPathBackend { io in
            let raw = try RawUpstream { fd in
                _ = RawUpstream.readHead(fd)
                RawUpstream.write(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello, ")
                usleep(20_000)
                RawUpstream.write(fd, "world")
                Glibc.close(fd)
            }
            defer { raw.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("raw"),
                                                            clusters: dataPathCluster("raw", ports: [raw.port])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            let r = try XCTUnwrap(c.get("/"), "\(io)")
            XCTAssertEqual(r.status, 200, "\(io)")
            XCTAssertEqual(r.headers["transfer-encoding"], "chunked", "\(io)")
            XCTAssertEqual(r.text, "hello, world", "\(io)")
            XCTAssertNil(r.headers["connection"], "\(io): the downstream connection stays open")
            let again = try XCTUnwrap(c.get("/"), "\(io)")
            XCTAssertEqual(again.text, "hello, world", "\(io)")
        }
    }

    func testThousandConcurrentConnections() throws {
        FileLimit.raise(to: 1 << 15)
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io, workers: 2)
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("echo"),
                                                            clusters: dataPathCluster("echo", ports: [upstream.port])), io: io)
            defer { proxy.stop() }
            let port = proxy.port(of: "http")!
            var conns: [TestConnection] = []
            for _ in 0..<1024 { conns.append(try TestConnection(port: port, timeoutSeconds: 20)) }
            for (i, c) in conns.enumerated() { c.send("GET /?size=\(i % 100) HTTP/1.1\r\nHost: x\r\n\r\n") }
            var answered = 0
            for (i, c) in conns.enumerated() {
                if let r = c.readResponse(), r.status == 200, r.body.count == i % 100 { answered += 1 }
            }
            XCTAssertEqual(answered, 1024, "\(io)")
        }
    }

    func testTCPProxyForwardsHalfClose() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let yaml = """
            static_resources:
              listeners:
              - name: tcp
                address:
                  socket_address: { address: 127.0.0.1, port_value: 0 }
                filter_chains:
                - filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                      stat_prefix: tcp
                      cluster: echo
              clusters:
            \(dataPathCluster("echo", ports: [upstream.port]))
            """
            let proxy = try startDataPathProxy(yaml, io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "tcp")!)
            let body = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
            c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
            c.send(body)
            let r = try XCTUnwrap(c.readResponse(), "\(io)")
            XCTAssertEqual(r.status, 200, "\(io)")
            XCTAssertEqual(r.body, body, "\(io)")
            // Our end of stream reaches the upstream only through the proxy (SHUT_WR forwarded);
            // the server then closes, and that end comes back the same way.
            c.shutdownWrite()
            XCTAssertTrue(c.readsEOF(), "\(io): the upstream's close comes through")
        }
    }

    func testLateReaderOfPipelinedResponsesGetsEveryByteInOrder() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: dataPathCatchAll("echo"),
                                                            clusters: dataPathCluster("echo", ports: [upstream.port])), io: io)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            // 12 pipelined 256 KiB responses (3 MiB) to a client that starts reading only after the
            // upstream saw the first request: every byte arrives, in order. (That the proxy pauses
            // instead of buffering is not observable here without a pause counter; the event-loop
            // suite proves the pause itself.)
            let count = 12
            c.send((0..<count).map { _ in "GET /?size=262144 HTTP/1.1\r\nHost: x\r\n\r\n" }.joined())
            XCTAssertTrue(Wait.until { ((try? upstream.acceptedConnections()) ?? 0) >= 1 }, "\(io): nothing reached the upstream")
            var complete = 0
            for _ in 0..<count {
                if let r = c.readResponse(), r.status == 200, r.body.count == 262_144 { complete += 1 }
            }
            XCTAssertEqual(complete, count, "\(io)")
        }
    }

    func testAccessRecordsCarryFlagsAndCounts() throws {
        try forEachDataPathBackend { io in
            let upstream = try UpstreamEchoServer(io: io)
            defer { upstream.stop() }
            let hosts = dataPathCatchAll("echo").replacingOccurrences(of: "domains: [\"*\"]", with: "domains: [\"known\"]")
            let proxy = try startDataPathProxy(dataPathYAML(virtualHosts: hosts, clusters: dataPathCluster("echo", ports: [upstream.port])),
                                               io: io, concurrency: 1)
            defer { proxy.stop() }
            let c = try TestConnection(port: proxy.port(of: "http")!)
            XCTAssertEqual(c.get("/?size=123", host: "known")?.status, 200)
            XCTAssertEqual(c.get("/", host: "unknown")?.status, 404)
            c.send("POST / HTTP/1.1\r\nHost: known\r\nContent-Length: 7\r\n\r\npayload")
            XCTAssertEqual(c.readResponse()?.text, "payload")
            var records: [AccessRecord] = []
            let ring = proxy.accessRings[0][0]
            Wait.until {
                while let r = ring.pop() { records.append(r) }
                return records.count >= 3
            }
            XCTAssertEqual(records.count, 3, "\(io)")
            guard records.count == 3 else { return }
            XCTAssertEqual(records[0].responseCode, 200)
            XCTAssertEqual(records[0].bytesSent, 123)
            XCTAssertEqual(records[0].flags, [])
            XCTAssertEqual(proxy.plane.clusters[Int(records[0].cluster)].hosts[Int(records[0].host)].address.port, upstream.port)
            XCTAssertEqual(records[1].responseCode, 404)
            XCTAssertEqual(records[1].flags, .noRouteFound)
            XCTAssertEqual(records[2].bytesReceived, 7)
            XCTAssertEqual(records[2].bytesSent, 7)
            let stats = proxy.stats[0][0].http[0]
            XCTAssertEqual(stats.downstreamRqTotal.load(ordering: .relaxed), 3)
            XCTAssertEqual(stats.downstreamRq2xx.load(ordering: .relaxed), 2)
            XCTAssertEqual(stats.downstreamRq4xx.load(ordering: .relaxed), 1)
        }
    }
}
