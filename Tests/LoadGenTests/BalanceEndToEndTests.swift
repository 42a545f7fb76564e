import EventLoop
import Foundation
import XCTest

/// Accept strategies against real sockets: 4 workers, per-worker figures read from `/workers`.
final class BalanceEndToEndTests: XCTestCase {
    struct Worker: Decodable {
        let worker: Int
        let accepted: Int
        let active: Int
        let requests: Int
    }

    final class Balanced {
        let child: ChildProcess
        let port: Int
        let adminPort: Int

        init(io: String, balance: String, workers: Int = 4, extra: [String] = []) throws {
            child = try ChildProcess(["server", "--port", "0", "--address", "127.0.0.1", "--workers", "\(workers)",
                                      "--io", io, "--balance", balance, "--admin-port", "0"] + extra)
            guard let line = child.waitForLine(containing: "listening on") else {
                throw XCTSkip("server did not start: \(child.waitForExit().stderr)")
            }
            // "... listening on 127.0.0.1:PORT (... admin 127.0.0.1:APORT, ...)"
            let parts = line.components(separatedBy: "127.0.0.1:")
            port = Int(parts[1].prefix { $0.isNumber })!
            adminPort = Int(parts[2].prefix { $0.isNumber })!
        }

        func workers() throws -> [Worker] {
            let c = try TestConnection(port: adminPort)
            let response = try XCTUnwrap(c.get("/workers"))
            XCTAssertEqual(response.status, 200)
            return try JSONDecoder().decode([Worker].self, from: Data(response.body))
        }
    }

    func onEachBackend(_ body: (String) throws -> Void) throws {
        for io in ["epoll", "io_uring"] {
            if io == "io_uring", let reason = IoUringProbe.reason {
                print("SKIP \(name) on io_uring: \(reason)")
                continue
            }
            print("backend: \(io)")
            try body(io)
        }
    }

    /// Opens `count` keep-alive connections and makes one request on each (so every connection has
    /// reached its worker), keeping them open.
    func openServed(_ count: Int, port: Int) throws -> [TestConnection] {
        var conns: [TestConnection] = []
        for _ in 0..<count {
            let c = try TestConnection(port: port)
            XCTAssertEqual(try c.get("/?size=1")?.status, 200)
            conns.append(c)
        }
        return conns
    }

    func testLeastLoadedGivesExactlyFourPerWorker() throws {
        try onEachBackend { io in
            let server = try Balanced(io: io, balance: "least-loaded")
            defer { server.child.stop() }
            let conns = try openServed(16, port: server.port)
            let workers = try server.workers()
            XCTAssertEqual(workers.map(\.active), [4, 4, 4, 4], io)
            XCTAssertEqual(workers.map(\.requests).reduce(0, +), 16)
            _ = conns
        }
    }

    func testLeastLoadedRefillsTheWorkerThatLostConnections() throws {
        try onEachBackend { io in
            let server = try Balanced(io: io, balance: "least-loaded")
            defer { server.child.stop() }
            var conns = try openServed(8, port: server.port)
            // Close the two connections of one worker (connections 0 and 4 went to worker 0).
            conns.remove(at: 4)
            conns.remove(at: 0)
            var workers: [Worker] = []
            for _ in 0..<200 {
                workers = try server.workers()
                if workers[0].active == 0 { break }
                usleep(10_000)
            }
            XCTAssertEqual(workers.map(\.active), [0, 2, 2, 2], io)
            conns += try openServed(2, port: server.port)
            XCTAssertEqual(try server.workers().map(\.active), [2, 2, 2, 2], io)
        }
    }

    func testDispatchGivesFourEach() throws {
        try onEachBackend { io in
            let server = try Balanced(io: io, balance: "dispatch")
            defer { server.child.stop() }
            let conns = try openServed(16, port: server.port)
            XCTAssertEqual(try server.workers().map(\.accepted), [4, 4, 4, 4], io)
            _ = conns
        }
    }

    /// Hand-offs through IORING_OP_MSG_RING give the same exact spreads; on epoll the server says it
    /// falls back to mailboxes and still balances.
    func testMessageRingHandoffGivesTheSameSpreads() throws {
        try onEachBackend { io in
            for balance in ["dispatch:msg-ring", "least-loaded:msg-ring"] {
                let server = try Balanced(io: io, balance: balance)
                defer { server.child.stop() }
                let conns = try openServed(16, port: server.port)
                let workers = try server.workers()
                XCTAssertEqual(workers.map(\.active), [4, 4, 4, 4], "\(io) \(balance)")
                _ = conns
            }
        }
    }

    func testEveryStrategyServesAllConnectionsAndReportsTheDistribution() throws {
        try onEachBackend { io in
            for balance in ["reuseport", "shared", "shared:exclusive", "p2c", "least-loaded:requests", "least-loaded:busy"] {
                let server = try Balanced(io: io, balance: balance)
                defer { server.child.stop() }
                let conns = try openServed(16, port: server.port)
                let workers = try server.workers()
                XCTAssertEqual(workers.count, 4)
                XCTAssertEqual(workers.map(\.active).reduce(0, +), 16, "\(io) \(balance)")
                XCTAssertEqual(workers.map(\.requests).reduce(0, +), 16, "\(io) \(balance)")
                print("\(io) \(balance): active per worker \(workers.map(\.active))")
                _ = conns
            }
        }
    }

    /// `shared` is the same mechanism on both backends: every worker is woken for a new connection
    /// and the first that calls accept takes it. A worker busy in a blocking 100 ms request cannot,
    /// so the 64 connections (each accepted before the next is opened, each with a request) land
    /// on more than one worker. An exclusive accept (io_uring's multishot accept, which the
    /// first ring keeps) gives all 64 to one worker, however long it is blocked.
    func testSharedWakesEveryWorkerOnBothBackends() throws {
        try onEachBackend { io in
            let server = try Balanced(io: io, balance: "shared", extra: ["--worker-cost", "block:100ms"])
            defer { server.child.stop() }
            var conns: [TestConnection] = []
            for i in 1...64 {
                let c = try TestConnection(port: server.port)
                try c.write("GET /?size=1 HTTP/1.1\r\nHost: t\r\n\r\n")
                conns.append(c)
                var accepted = 0
                for _ in 0..<1000 where accepted < i {  // at most 10 s per connection
                    accepted = try server.workers().map(\.accepted).reduce(0, +)
                    if accepted < i { usleep(10_000) }
                }
                XCTAssertEqual(accepted, i, "\(io): connection \(i) was not accepted")
            }
            for c in conns { XCTAssertEqual(c.readResponse()?.status, 200) }
            let perWorker = try server.workers().map(\.accepted)
            print("\(io) shared, 64 connections: accepted per worker \(perWorker)")
            XCTAssertEqual(perWorker.reduce(0, +), 64)
            XCTAssertGreaterThanOrEqual(perWorker.filter { $0 > 0 }.count, 2, "\(io): \(perWorker)")
        }
    }

    func testMultishotIsRefusedOnEpoll() throws {
        let child = try ChildProcess(["server", "--port", "0", "--io", "epoll", "--balance", "shared:multishot"])
        let (status, err) = child.waitForExit()
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("'multishot' is an io_uring accept"), err)
        let both = try ChildProcess(["server", "--balance", "shared:multishot,accept-batch=4"])
        let (status2, err2) = both.waitForExit()
        XCTAssertEqual(status2, 2)
        XCTAssertTrue(err2.contains("exclude each other"), err2)
    }

    func testThousandSimultaneousConnectsThroughEachStrategyAreAllServed() throws {
        try onEachBackend { io in
            var strategies = ["reuseport", "shared", "dispatch", "least-loaded", "p2c",
                              "shared:accept-batch=1", "reuseport:accept-batch=2", "least-loaded:accept-batch=3"]
            if io == "io_uring" { strategies.append("shared:multishot") }
            for balance in strategies {
                let server = try Balanced(io: io, balance: balance)
                defer { server.child.stop() }
                var conns: [TestConnection] = []
                for _ in 0..<1024 { conns.append(try TestConnection(port: server.port)) }
                for (i, c) in conns.enumerated() { try c.write("GET /?size=\(i % 7) HTTP/1.1\r\nHost: t\r\n\r\n") }
                var served = 0
                for (i, c) in conns.enumerated() where c.readResponse()?.body.count == i % 7 { served += 1 }
                XCTAssertEqual(served, 1024, "\(io) \(balance)")
                let workers = try server.workers()
                XCTAssertEqual(workers.map(\.accepted).reduce(0, +), 1024, "\(io) \(balance)")
            }
        }
    }

    func testStatsUseEnvoyPerWorkerNames() throws {
        let server = try Balanced(io: "epoll", balance: "least-loaded")
        defer { server.child.stop() }
        let conns = try openServed(4, port: server.port)
        let c = try TestConnection(port: server.adminPort)
        let text = String(decoding: try XCTUnwrap(c.get("/stats")).body, as: UTF8.self)
        XCTAssertTrue(text.contains("listener.127.0.0.1_\(server.port).worker_0.downstream_cx_total: 1"), text)
        XCTAssertTrue(text.contains("listener.127.0.0.1_\(server.port).worker_3.downstream_cx_active: 1"), text)
        XCTAssertTrue(text.contains("listener.127.0.0.1_\(server.port).downstream_cx_total: 4"), text)
        _ = conns
    }

    func testUnknownStrategyIsAUsageErrorListingTheValidOnes() throws {
        let child = try ChildProcess(["server", "--balance", "fastest"])
        let (status, err) = child.waitForExit()
        XCTAssertEqual(status, 2)
        XCTAssertTrue(err.contains("reuseport, shared, dispatch, least-loaded, p2c"), err)
        let metric = try ChildProcess(["server", "--balance", "least-loaded:cpu"])
        let (status2, err2) = metric.waitForExit()
        XCTAssertEqual(status2, 2)
        XCTAssertTrue(err2.contains("connections, requests, busy"), err2)
    }
}
