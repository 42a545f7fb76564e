import EventLoop
import Foundation
import TestSupport
import XCTest

/// Live rebalancing of idle keep-alive connections (`--balance ...:rebalance=N`) against real
/// sockets, each race on epoll and on io_uring (where a move first cancels the multishot receive). The imbalance is made deterministic with least-loaded: connection i of 2W goes to
/// worker i % 2, then the odd ones are closed, so worker 0 holds many and worker 1 few. Every
/// response is distinguished by its body size, so a lost, reordered or repeated response shows.
final class RebalanceEndToEndTests: XCTestCase {
    struct Worker: Decodable {
        let active: Int
        let accepted: Int
        let requests: Int
        let movesOut: Int
        let movesIn: Int
        let moveRefusals: Int
        enum CodingKeys: String, CodingKey {
            case active, accepted, requests
            case movesOut = "moves_out"
            case movesIn = "moves_in"
            case moveRefusals = "move_refusals"
        }
    }

    final class Server {
        let child: ChildProcess
        let port: Int
        let adminPort: Int

        init(balance: String, workers: Int = 2, io: IOBackendKind) throws {
            child = try ChildProcess(["server", "--port", "0", "--address", "127.0.0.1", "--workers", "\(workers)",
                                      "--io", io.rawValue, "--balance", balance, "--admin-port", "0"])
            let line = try child.requireLine(containing: "listening on", what: "ballast server --io \(io.rawValue) --balance \(balance)")
            let parts = line.components(separatedBy: "127.0.0.1:")
            port = Int(parts[1].prefix { $0.isNumber })!
            adminPort = Int(parts[2].prefix { $0.isNumber })!
        }

        func workers() throws -> [Worker] {
            let c = try TestConnection(port: adminPort)
            let response = try XCTUnwrap(c.get("/workers"))
            return try JSONDecoder().decode([Worker].self, from: Data(response.body))
        }

        func stats() throws -> String {
            let c = try TestConnection(port: adminPort)
            return String(decoding: try XCTUnwrap(c.get("/stats")).body, as: UTF8.self)
        }
    }

    static func request(size: Int) -> String { "GET /?size=\(size) HTTP/1.1\r\nHost: test\r\n\r\n" }

    /// Reads one response and checks it is the one for `size=size`.
    func expectResponse(_ c: TestConnection, size: Int, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let response = c.readResponse()
        XCTAssertEqual(response?.status, 200, what, file: file, line: line)
        XCTAssertEqual(response?.body.count, size, "\(what): the response for size=\(size) expected next", file: file, line: line)
    }

    /// `2 * heavy` connections through least-loaded on 2 workers (one request each), then the odd
    /// ones closed but `light`: worker 0 keeps `heavy` connections, worker 1 `light`.
    func imbalanced(_ server: Server, heavy: Int, light: Int) throws -> [TestConnection] {
        var conns: [TestConnection] = []
        for i in 0..<(2 * heavy) {
            let c = try TestConnection(port: server.port)
            XCTAssertEqual(try c.get("/?size=1")?.status, 200)
            _ = i
            conns.append(c)
        }
        // Connection i went to worker i % 2; keep all even ones and the last `light` odd ones.
        var kept: [TestConnection] = []
        for (i, c) in conns.enumerated() where i % 2 == 0 || i >= 2 * (heavy - light) { kept.append(c) }
        conns.removeAll()
        var workers: [Worker] = []
        XCTAssertTrue(try Wait.until {
            workers = try server.workers()
            return workers.map(\.active) == [heavy, light]
        }, "closing the odd connections: \(workers.map(\.active))")
        return kept
    }

    /// Worker 0 with 10, worker 1 with 2, margin 1: worker 0 moves idle connections at its request
    /// boundaries while it holds more than mean (6) + 1, so exactly 3 move, and every response
    /// arrives in order on its own connection.
    func testConnectionCountsConvergeToTheMarginAndEveryResponseIsCorrect() throws {
        try TestBackends.each { try connectionCountsConvergeToTheMarginAndEveryResponseIsCorrect($0) }
    }

    func connectionCountsConvergeToTheMarginAndEveryResponseIsCorrect(_ io: IOBackendKind) throws {
        let server = try Server(balance: "least-loaded:rebalance=1", io: io)
        defer { server.child.stop() }
        let conns = try imbalanced(server, heavy: 10, light: 2)
        XCTAssertEqual(conns.count, 12)
        var size = 10
        for round in 0..<3 {
            for (k, c) in conns.enumerated() {
                size += 1
                try c.write(Self.request(size: size))
                expectResponse(c, size: size, "round \(round), connection \(k)")
            }
        }
        let workers = try server.workers()
        XCTAssertEqual(workers.map(\.active), [7, 5])
        XCTAssertEqual(workers.map(\.movesOut), [3, 0])
        XCTAssertEqual(workers.map(\.movesIn), [0, 3])
        XCTAssertEqual(workers.map(\.moveRefusals), [0, 0])
        XCTAssertEqual(workers.map(\.accepted), [10, 10], "a move is not an accept")
        XCTAssertEqual(workers.map(\.requests).reduce(0, +), 20 + 36, "every request answered exactly once")
        let stats = try server.stats()
        XCTAssertTrue(stats.contains(".worker_0.rebalance_cx_moved_out: 3"), stats)
        XCTAssertTrue(stats.contains(".worker_1.rebalance_cx_moved_in: 3"), stats)
        XCTAssertTrue(stats.contains(".rebalance_cx_moved: 3"), stats)
        XCTAssertTrue(stats.contains(".rebalance_cx_refused: 0"), stats)
    }

    /// A connection with half a request buffered is not idle: at the boundary after the request
    /// before it, another (idle) connection of the same worker moves instead. Once the rest and two
    /// more arrive pipelined, the three answers come in order, this connection moves too, and the
    /// requests after the move are answered by the new worker, each exactly once.
    func testPipelinedRequestsOnAMovingConnectionAreAnsweredInOrderExactlyOnce() throws {
        try TestBackends.each { try pipelinedRequestsOnAMovingConnectionAreAnsweredInOrderExactlyOnce($0) }
    }

    func pipelinedRequestsOnAMovingConnectionAreAnsweredInOrderExactlyOnce(_ io: IOBackendKind) throws {
        let server = try Server(balance: "least-loaded:rebalance=1", io: io)
        defer { server.child.stop() }
        let conns = try imbalanced(server, heavy: 10, light: 2)
        let c = conns[0]  // on worker 0
        let b = Array(Self.request(size: 102).utf8)
        try c.write(Array(Self.request(size: 101).utf8) + b[0..<10])
        expectResponse(c, size: 101, "A")
        var workers: [Worker] = []
        XCTAssertTrue(try Wait.until { workers = try server.workers(); return workers[1].movesIn == 1 })
        try c.write(Array(b[10...]) + Array((Self.request(size: 103) + Self.request(size: 104)).utf8))
        expectResponse(c, size: 102, "B")
        expectResponse(c, size: 103, "C")
        expectResponse(c, size: 104, "D")
        XCTAssertTrue(try Wait.until { workers = try server.workers(); return workers[1].movesIn == 2 })
        try c.write(Self.request(size: 105) + Self.request(size: 106))
        expectResponse(c, size: 105, "E")
        expectResponse(c, size: 106, "F")
        workers = try server.workers()
        XCTAssertEqual(workers.map(\.active), [8, 4])
        XCTAssertEqual(workers.map(\.movesOut), [2, 0])
        XCTAssertEqual(workers.map(\.moveRefusals), [0, 0])
        XCTAssertEqual(workers.map(\.requests), [10 + 4, 10 + 2], "A-D on worker 0, E and F on worker 1, once each")
    }

    /// Nothing idle on the worker: a refusal, counted. Worker 0 holds 3 connections, worker 1 none
    /// (margin 0). Two wait for a delayed response (held), the third has half a request buffered
    /// when its previous request's answer is sent. Later, the first delayed connection to finish
    /// moves at its boundary (3 -> 2 against 0 -> 1), and then nothing more moves.
    func testBoundaryWithNoIdleConnectionIsRefused() throws {
        try TestBackends.each { try boundaryWithNoIdleConnectionIsRefused($0) }
    }

    func boundaryWithNoIdleConnectionIsRefused(_ io: IOBackendKind) throws {
        let server = try Server(balance: "least-loaded:rebalance=0", io: io)
        defer { server.child.stop() }
        let conns = try imbalanced(server, heavy: 3, light: 0)
        try conns[1].write(Self.request(size: 201).replacingOccurrences(of: "size=201", with: "size=201&delay=1s"))
        try conns[2].write(Self.request(size: 202).replacingOccurrences(of: "size=202", with: "size=202&delay=1s"))
        let b = Array(Self.request(size: 102).utf8)
        try conns[0].write(Array(Self.request(size: 101).utf8) + b[0..<10])
        expectResponse(conns[0], size: 101, "A")
        var workers: [Worker] = []
        XCTAssertTrue(try Wait.until { workers = try server.workers(); return workers[0].moveRefusals == 1 })
        expectResponse(conns[1], size: 201, "delayed 1")
        expectResponse(conns[2], size: 202, "delayed 2")
        try conns[0].write(Array(b[10...]))
        expectResponse(conns[0], size: 102, "B")
        for (k, c) in conns.enumerated() {
            try c.write(Self.request(size: 300 + k))
            expectResponse(c, size: 300 + k, "after, connection \(k)")
        }
        workers = try server.workers()
        XCTAssertEqual(workers.map(\.active), [2, 1])
        XCTAssertEqual(workers.map(\.movesOut), [1, 0])
        XCTAssertEqual(workers.map(\.moveRefusals), [1, 0])
        XCTAssertEqual(workers.map(\.requests).reduce(0, +), 6 + 4 + 3)
    }

    /// Each request is written the moment the previous response was read, so it often arrives
    /// while its connection is between loops (detached, not yet adopted); whichever way the race
    /// goes, it is answered exactly once, in order. 20 against 2, margin 1: exactly 8 moves.
    func testRequestsArrivingDuringTheHandOffAreAnsweredExactlyOnce() throws {
        try TestBackends.each { try requestsArrivingDuringTheHandOffAreAnsweredExactlyOnce($0) }
    }

    func requestsArrivingDuringTheHandOffAreAnsweredExactlyOnce(_ io: IOBackendKind) throws {
        let server = try Server(balance: "least-loaded:rebalance=1", io: io)
        defer { server.child.stop() }
        let conns = try imbalanced(server, heavy: 20, light: 2)
        var size = 1000
        for (k, c) in conns.enumerated() {
            size += 1
            try c.write(Self.request(size: size))
            for step in 0..<4 {
                expectResponse(c, size: size, "connection \(k), request \(step)")
                size += 1
                try c.write(Self.request(size: size))  // right behind the response: during the move
            }
            expectResponse(c, size: size, "connection \(k), last request")
        }
        // One more round: every connection, moved or not, is served where it now lives.
        for (k, c) in conns.enumerated() {
            size += 1
            try c.write(Self.request(size: size))
            expectResponse(c, size: size, "final round, connection \(k)")
        }
        let workers = try server.workers()
        XCTAssertEqual(workers.map(\.active), [12, 10])
        XCTAssertEqual(workers.map(\.movesOut), [8, 0])
        XCTAssertEqual(workers.map(\.movesIn), [0, 8])
        XCTAssertEqual(workers.map(\.requests).reduce(0, +), 40 + 22 * 6, "every request answered exactly once")
    }

    /// reuseport places by the kernel's hash; with rebalance=1 the counts end within the margin of
    /// the mean whatever the hash did, and the moves out and in agree.
    func testReusePortCountsEndWithinTheMargin() throws {
        try TestBackends.each { try reusePortCountsEndWithinTheMargin($0) }
    }

    func reusePortCountsEndWithinTheMargin(_ io: IOBackendKind) throws {
        let server = try Server(balance: "reuseport:rebalance=1", workers: 4, io: io)
        defer { server.child.stop() }
        var conns: [TestConnection] = []
        for _ in 0..<24 { conns.append(try TestConnection(port: server.port)) }
        var size = 10
        for _ in 0..<6 {
            for (k, c) in conns.enumerated() {
                size += 1
                try c.write(Self.request(size: size))
                expectResponse(c, size: size, "connection \(k)")
            }
        }
        let workers = try server.workers()
        let active = workers.map(\.active)
        XCTAssertEqual(active.reduce(0, +), 24)
        XCTAssertLessThanOrEqual(active.max()!, 6 + 1, "\(active)")
        XCTAssertEqual(workers.map(\.movesOut).reduce(0, +), workers.map(\.movesIn).reduce(0, +))
        XCTAssertEqual(workers.map(\.accepted).reduce(0, +), 24)
        XCTAssertEqual(workers.map(\.requests).reduce(0, +), 24 * 6)
    }

    /// The proxy refuses the option (built for the echo server only); --io auto no longer steers
    /// rebalancing to epoll: it picks io_uring where the kernel allows it, and serves.
    func testProxyRefusesAndAutoPicksTheUsualBackend() throws {
        let proxy = try ChildProcess(["proxy", "--config-yaml", "{}", "--balance", "reuseport:rebalance=1"])
        let (proxyStatus, proxyErr) = proxy.waitForExit()
        XCTAssertNotEqual(proxyStatus, 0)
        XCTAssertTrue(proxyErr.contains("ballast server only"), proxyErr)
        let auto = try ChildProcess(["server", "--port", "0", "--address", "127.0.0.1", "--balance", "reuseport:rebalance=1"])
        defer { auto.stop() }
        let line = try auto.requireLine(containing: "listening on", what: "ballast server --io auto")
        let expected = TestBackends.ioUringUnavailableReason == nil ? "io io_uring" : "io epoll"
        XCTAssertTrue(line.contains(expected), line)
        let port = Int(line.components(separatedBy: "127.0.0.1:")[1].prefix { $0.isNumber })!
        let c = try TestConnection(port: port)
        try c.write(Self.request(size: 7))
        expectResponse(c, size: 7, "served under --io auto")
    }
}
