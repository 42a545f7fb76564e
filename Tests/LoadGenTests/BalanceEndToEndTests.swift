import EventLoop
import Foundation
import TestSupport
import XCTest

/// Accept strategies against real sockets: 4 workers, per-worker figures read from `/workers`.
final class BalanceEndToEndTests: XCTestCase {
    struct Worker: Decodable {
        let worker: Int
        let accepted: Int
        let active: Int
        let requests: Int
        let requestsInFlight: Int
        let busyNanos: Int
        enum CodingKeys: String, CodingKey {
            case worker, accepted, active, requests
            case requestsInFlight = "requests_in_flight"
            case busyNanos = "busy_ns"
        }
    }

    final class Balanced {
        let child: ChildProcess
        let port: Int
        let adminPort: Int

        init(io: String, balance: String, workers: Int = 4, extra: [String] = []) throws {
            child = try ChildProcess(["server", "--port", "0", "--address", "127.0.0.1", "--workers", "\(workers)",
                                      "--io", io, "--balance", balance, "--admin-port", "0"] + extra)
            let line = try child.requireLine(containing: "listening on", what: "ballast server --balance \(balance)")
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
        try onEachBackendName(body)
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
            try Wait.until {
                workers = try server.workers()
                return workers[0].active == 0
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

    /// Every strategy: the per-worker figures agree with each other worker by worker (16
    /// connections, one request each, none closed: a worker's accepted, open and served counts are
    /// equal, and they sum to 16), whatever the kernel's or the random choices were.
    func testEveryStrategyServesAllConnectionsAndReportsTheDistribution() throws {
        try onEachBackend { io in
            for balance in ["reuseport", "shared", "shared:exclusive", "p2c", "least-loaded:requests", "least-loaded:busy"] {
                let server = try Balanced(io: io, balance: balance)
                defer { server.child.stop() }
                let conns = try openServed(16, port: server.port)
                let workers = try server.workers()
                XCTAssertEqual(workers.map(\.worker), [0, 1, 2, 3], "\(io) \(balance)")
                XCTAssertEqual(workers.map(\.active).reduce(0, +), 16, "\(io) \(balance)")
                XCTAssertEqual(workers.map(\.accepted), workers.map(\.active), "\(io) \(balance): per worker, accepted = open")
                XCTAssertEqual(workers.map(\.requests), workers.map(\.active), "\(io) \(balance): per worker, served = open")
                _ = conns
            }
        }
    }

    /// p2c by connections: a worker takes a connection only when it is the less loaded of two
    /// distinct workers, so the most loaded worker is at most one ahead of the second most loaded
    /// (by construction, whatever the random draws): with 16 connections on 4 workers nobody has
    /// more than 8.
    func testPowerOfTwoChoicesKeepsTheTopWorkerAtMostOneAheadOfTheNext() throws {
        try onEachBackend { io in
            let server = try Balanced(io: io, balance: "p2c")
            defer { server.child.stop() }
            let conns = try openServed(16, port: server.port)
            let active = try server.workers().map(\.active).sorted(by: >)
            XCTAssertEqual(active.reduce(0, +), 16, io)
            XCTAssertLessThanOrEqual(active[0] - active[1], 1, "\(io): \(active)")
            XCTAssertLessThanOrEqual(active[0], 8, "\(io): \(active)")
            _ = conns
        }
    }

    /// least-loaded by requests in flight: with one connection holding a request that is not
    /// answered yet (a long delay), that worker is never chosen while any other worker is idle.
    func testLeastLoadedByRequestsAvoidsTheWorkerWithARequestInFlight() throws {
        try onEachBackend { io in
            let server = try Balanced(io: io, balance: "least-loaded:requests", extra: ["--max-echo-delay", "60s"])
            defer { server.child.stop() }
            let busy = try TestConnection(port: server.port)
            try busy.write("GET /?delay=60s HTTP/1.1\r\nHost: t\r\n\r\n")
            // The delayed request is in flight on one worker (its `requests` counts it).
            var loaded = -1
            try Wait.until {
                let w = try server.workers()
                loaded = w.firstIndex { $0.requestsInFlight == 1 } ?? -1
                return loaded >= 0
            }
            XCTAssertGreaterThanOrEqual(loaded, 0, io)
            let conns = try openServed(9, port: server.port)
            let workers = try server.workers()
            XCTAssertEqual(workers[loaded].active, 1, "\(io): the worker with a request in flight got no connection: \(workers.map(\.active))")
            XCTAssertEqual(workers.map(\.active).reduce(0, +), 10, io)
            _ = conns
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

    /// `--worker-cost block:10ms` is spent once per request, also for pipelined requests that
    /// arrive in one read: 100 requests in 10 writes of 10 keep the worker busy for at least
    /// 100 x 10 ms (a lower bound that holds by construction: a nanosleep never returns early; a
    /// cost spent per read would give about 10 x 10 ms, far below the bound however slow the
    /// machine serves 100 plain requests). No upper bound: the machine may be slow.
    func testWorkerCostIsSpentOncePerRequest() throws {
        let server = try Balanced(io: "epoll", balance: "reuseport", workers: 1, extra: ["--worker-cost", "block:10ms"])
        defer { server.child.stop() }
        let c = try TestConnection(port: server.port)
        let batch = String(repeating: "GET /?size=1 HTTP/1.1\r\nHost: t\r\n\r\n", count: 10)
        var answered = 0
        for _ in 0..<10 {
            try c.write(batch)
            for _ in 0..<10 where c.readResponse()?.body.count == 1 { answered += 1 }
        }
        XCTAssertEqual(answered, 100)
        // The loop publishes its busy time at the end of each turn: wait for the turn that served
        // the last batch to be counted (a condition, bounded), then check the bound.
        var worker = try XCTUnwrap(server.workers().first)
        try Wait.until {
            worker = try XCTUnwrap(server.workers().first)
            return worker.busyNanos >= 100 * 10_000_000
        }
        XCTAssertEqual(worker.requests, 100)
        XCTAssertGreaterThanOrEqual(worker.busyNanos, 100 * 10_000_000, "busy \(worker.busyNanos) ns for 100 requests at 10 ms each")
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
