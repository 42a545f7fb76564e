import EventLoop
import Foundation
import Glibc
import TestSupport
import XCTest

/// A `ballast load` run as a child process: exit status, stdout (the summary), stderr, JSON.
struct LoadRun {
    var status: Int32
    var summary: String
    var stderr: String
    var json: [String: Any]

    var retCodes: [String: Int] { (json["RetCodes"] as? [String: Any] ?? [:]).mapValues { ($0 as? NSNumber)?.intValue ?? -1 } }
    var calls: Int { ((json["DurationHistogram"] as? [String: Any])?["Count"] as? NSNumber)?.intValue ?? -1 }
    var ballast: [String: Any] { json["Ballast"] as? [String: Any] ?? [:] }

    /// Percentile values (seconds) of a histogram object, in the order given.
    static func percentiles(_ histogram: Any?) -> [(Double, Double)] {
        guard let list = (histogram as? [String: Any])?["Percentiles"] as? [[String: Any]] else { return [] }
        return list.map { (($0["Percentile"] as? NSNumber)?.doubleValue ?? -1, ($0["Value"] as? NSNumber)?.doubleValue ?? -1) }
    }

    static func value(at percentile: Double, in histogram: Any?) -> Double? {
        percentiles(histogram).first { $0.0 == percentile }?.1
    }
}

/// Runs `ballast load ARGS -json FILE` (bounded by its own -n/-t and the child's 20 s limit).
func runLoad(_ arguments: [String]) throws -> LoadRun {
    let path = NSTemporaryDirectory() + "ballast-load-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json"
    defer { unlink(path) }
    let child = try ChildProcess(["load"] + arguments + ["-json", path])
    let (status, err) = child.waitForExit()
    let out = String(decoding: child.stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    var json: [String: Any] = [:]
    if let data = FileManager.default.contents(atPath: path) {
        json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], "JSON does not parse")
    }
    return LoadRun(status: status, summary: out, stderr: err, json: json)
}

/// `ballast load` against `ballast server` on loopback, on both backends. Counts and behaviour
/// only, never timings.
final class LoadEndToEndTests: XCTestCase {
    /// epoll, then io_uring; the io_uring half is a visible skip with the kernel's reason (a
    /// failure under CI=true) when it refuses io_uring.
    func forEachIO(file: StaticString = #filePath, line: UInt = #line, _ body: (String) throws -> Void) throws {
        try onEachBackendName(file: file, line: line, body)
    }

    func testExactCountGivesExactRetCodesAndMonotonePercentiles() throws {
        try forEachIO { io in
            let server = try ServerUnderTest(io: io, workers: 2)
            defer { server.stop() }
            let run = try runLoad(["-qps", "0", "-n", "1000", "-c", "8", "-io", io, "http://127.0.0.1:\(server.port)/?size=64"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertEqual(run.retCodes, ["200": 1000], io)
            XCTAssertEqual(run.calls, 1000)
            XCTAssertEqual(run.json["SocketCount"] as? Int, 8)
            let p = LoadRun.percentiles(run.json["DurationHistogram"])
            XCTAssertEqual(p.map(\.0), [50, 75, 90, 99, 99.9])
            for k in 1..<p.count { XCTAssertLessThanOrEqual(p[k - 1].1, p[k].1, "percentiles not monotone: \(p)") }
            let counts = (run.ballast["RequestsPerConnection"] as? [String: Any])?["Counts"] as? [Int] ?? []
            XCTAssertEqual(counts.count, 8)
            XCTAssertEqual(counts.reduce(0, +), 1000)
            XCTAssertTrue(run.summary.contains("All done 1000 calls"), run.summary)
            XCTAssertTrue(run.summary.contains("Code 200 : 1000 (100.0 %)"), run.summary)
        }
    }

    func testWeightedStatusGivesBothCodesWithAnExactSum() throws {
        try forEachIO { io in
            let server = try ServerUnderTest(io: io)
            defer { server.stop() }
            let run = try runLoad(["-qps", "0", "-n", "1000", "-c", "8", "-io", io, "http://127.0.0.1:\(server.port)/?status=503:50"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertEqual(Set(run.retCodes.keys), ["200", "503"], io)
            XCTAssertEqual(run.retCodes.values.reduce(0, +), 1000)
            let errors = run.json["ErrorsDurationHistogram"] as? [String: Any]
            XCTAssertEqual((errors?["Count"] as? Int), run.retCodes["503"])
        }
    }

    func testKeepAliveFalseOpensOneConnectionPerRequest() throws {
        try forEachIO { io in
            let server = try ServerUnderTest(io: io)
            let run = try runLoad(["-qps", "0", "-n", "300", "-c", "4", "-keepalive=false", "-io", io, "http://127.0.0.1:\(server.port)/"])
            server.stop()
            let (_, serverLog) = server.child.waitForExit()
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertEqual(run.retCodes, ["200": 300])
            XCTAssertEqual(run.json["SocketCount"] as? Int, 300)
            XCTAssertEqual(run.json["DisableKeepAlive"] as? Bool, true)
            // The server counts the connections it accepted: one per request.
            let accepted = serverLog.components(separatedBy: "connections per worker [").last?.prefix { $0 != "]" }
            XCTAssertEqual(accepted.map(String.init), "300", serverLog)
        }
    }

    func testOpenLoopSendsRateTimesDuration() throws {
        try forEachIO { io in
            let server = try ServerUnderTest(io: io)
            defer { server.stop() }
            // 400 qps over 4 connections for 1 s: each connection's schedule has exactly 100 slots.
            let run = try runLoad(["-qps", "400", "-t", "1s", "-c", "4", "-io", io, "http://127.0.0.1:\(server.port)/"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let sent = run.retCodes.values.reduce(0, +)
            XCTAssertLessThanOrEqual(abs(sent - 400), 4, "sent \(sent), expected 400 +/- 1 per connection")
            XCTAssertEqual(run.json["RequestedQPS"] as? String, "400")
            XCTAssertEqual(run.ballast["Mode"] as? String, "open")
            XCTAssertNotNil(run.ballast["CorrectedHistogram"] as? [String: Any])
            // Uniform staggering keeps the count too.
            let uniform = try runLoad(["-qps", "400", "-t", "1s", "-c", "4", "-uniform", "-jitter", "-io", io, "http://127.0.0.1:\(server.port)/"])
            XCTAssertLessThanOrEqual(abs(uniform.retCodes.values.reduce(0, +) - 400), 4)
            XCTAssertEqual(uniform.json["Uniform"] as? Bool, true)
            XCTAssertEqual(uniform.json["Jitter"] as? Bool, true)
        }
    }

    /// A server that stalls once for 1 s under a 1,000 QPS schedule: the corrected p99 shows the
    /// stall (about 1,000 requests were due during it), the uncorrected p99 does not (one slow call).
    func testCoordinatedOmissionCorrection() throws {
        let stall = try StallingServer(stallAtRequest: 500, stallSeconds: 1)
        let run = try runLoad(["-qps", "1000", "-n", "3000", "-c", "1", "-io", "epoll", "http://127.0.0.1:\(stall.port)/"])
        stall.stop()
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.retCodes, ["200": 3000])
        let uncorrected = try XCTUnwrap(LoadRun.value(at: 99, in: run.json["DurationHistogram"]))
        let corrected = try XCTUnwrap(LoadRun.value(at: 99, in: run.ballast["CorrectedHistogram"]))
        let maxUncorrected = try XCTUnwrap((run.json["DurationHistogram"] as? [String: Any])?["Max"] as? Double)
        XCTAssertGreaterThan(maxUncorrected, 0.9, "the stalled call itself is recorded")
        // Relations that hold by construction: ~1,000 of 3,000 requests were due during the 1 s
        // stall, so at least 1% of corrected latencies are near 1 s, while only one call was slow.
        XCTAssertGreaterThan(corrected, uncorrected, "corrected p99 \(corrected) should exceed the uncorrected \(uncorrected)")
        XCTAssertGreaterThan(corrected, 0.5, "corrected p99 \(corrected) should reflect the stall")
        XCTAssertTrue(run.summary.contains("Corrected for coordinated omission"), run.summary)
    }

    func testRefusedPortIsSummarisedAndFailsOnlyWhenAsked() throws {
        let port = try TestPorts.closed()
        let run = try runLoad(["-qps", "0", "-n", "20", "-c", "2", "-io", "epoll", "http://127.0.0.1:\(port)/"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.retCodes, ["-1": 20])
        XCTAssertTrue(run.summary.contains("Socket errors: refused 20"), run.summary)
        XCTAssertEqual((run.ballast["Errors"] as? [String: Any])?["refused"] as? Int, 20)
        let asked = try runLoad(["-qps", "0", "-n", "20", "-c", "2", "-abort-on", "-1", "-io", "epoll", "http://127.0.0.1:\(port)/"])
        XCTAssertEqual(asked.status, 1, asked.stderr)
        XCTAssertTrue(asked.summary.contains("refused"), asked.summary)
        XCTAssertEqual(asked.ballast["Aborted"] as? Bool, true)
    }

    func testThousandConnectionsFromOneThread() throws {
        try forEachIO { io in
            let server = try ServerUnderTest(io: io, workers: 2)
            defer { server.stop() }
            let run = try runLoad(["-qps", "0", "-n", "4096", "-c", "1024", "-threads", "1", "-io", io, "http://127.0.0.1:\(server.port)/"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertEqual(run.retCodes, ["200": 4096], io)
            XCTAssertEqual(run.json["SocketCount"] as? Int, 1024)
            XCTAssertEqual(run.ballast["Threads"] as? Int, 1)
            let counts = (run.ballast["RequestsPerConnection"] as? [String: Any])?["Counts"] as? [Int] ?? []
            XCTAssertEqual(counts.count, 1024)
            XCTAssertFalse(counts.contains(0), "every connection made calls")
        }
    }

    func testPostPayloadAndHeadersReachTheServer() throws {
        // A capturing server sees the request bytes themselves: method, headers and payload.
        let capture = try StallingServer(stallAtRequest: 0, stallSeconds: 0)
        let run = try runLoad(["-qps", "0", "-n", "2", "-c", "1", "-payload", "hello world", "-content-type", "text/plain",
                               "-H", "X-Test: 1", "-io", "epoll", "http://127.0.0.1:\(capture.port)/echo"])
        capture.stop()
        XCTAssertEqual(run.retCodes, ["200": 2])
        let first = String(decoding: capture.received.bytes, as: UTF8.self)
        XCTAssertTrue(first.hasPrefix("POST /echo HTTP/1.1\r\n"), first)
        XCTAssertTrue(first.lowercased().contains("\r\nx-test: 1\r\n"), first)
        XCTAssertTrue(first.lowercased().contains("\r\ncontent-type: text/plain\r\n"), first)
        XCTAssertTrue(first.lowercased().contains("\r\ncontent-length: 11\r\n"), first)
        XCTAssertTrue(first.contains("\r\n\r\nhello world"), first)
        // And the echo server returns it: response size = head + 11 bytes of payload.
        let server = try ServerUnderTest(io: "epoll")
        defer { server.stop() }
        let echoed = try runLoad(["-qps", "0", "-n", "10", "-c", "1", "-payload", "hello world", "http://127.0.0.1:\(server.port)/echo"])
        XCTAssertEqual(echoed.retCodes, ["200": 10])
        let sizes = try XCTUnwrap(echoed.json["Sizes"] as? [String: Any])
        let headers = try XCTUnwrap(echoed.json["HeaderSizes"] as? [String: Any])
        XCTAssertEqual((sizes["Min"] as? Double).map { $0 - ((headers["Min"] as? Double) ?? 0) }, 11)
    }

    func testWarmupIsNotRecorded() throws {
        let server = try ServerUnderTest(io: "epoll")
        defer { server.stop() }
        let run = try runLoad(["-qps", "200", "-t", "500ms", "-warmup", "300ms", "-c", "2", "http://127.0.0.1:\(server.port)/"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let recorded = run.retCodes.values.reduce(0, +)
        XCTAssertLessThanOrEqual(abs(recorded - 100), 2, "recorded \(recorded), expected 200 qps x 0.5 s")
        XCTAssertGreaterThanOrEqual(run.ballast["WarmupCalls"] as? Int ?? 0, 58)
    }

}

/// Command-line behaviour of `ballast load`.
final class LoadCommandLineTests: XCTestCase {
    func testUsageErrorsExitWith2() throws {
        for args in [["-qps", "0", "-nosuchflag", "http://127.0.0.1:1/"], ["-n", "5", "http://example.com/"],
                     ["-n", "5", "ftp://127.0.0.1/"], ["-t", "soon", "http://127.0.0.1:1/"],
                     ["-H", "Bad Header: x", "http://127.0.0.1:1/"], ["-p", "50,abc", "http://127.0.0.1:1/"]] {
            let child = try ChildProcess(["load"] + args)
            let (status, err) = child.waitForExit()
            XCTAssertEqual(status, 2, "\(args): \(err)")
        }
    }
}

/// A one-connection HTTP server that answers every request at once, except request number
/// `stallAtRequest`, which it answers after `stallSeconds` (the coordinated-omission test). It
/// keeps the first 64 KiB it received (`received`).
final class StallingServer: @unchecked Sendable {
    let listener: Int32
    let port: Int
    let received = ReceivedBytes()
    private var thread: Thread?

    init(stallAtRequest: Int, stallSeconds: UInt32) throws {
        listener = try Sockets.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false, backlog: 16)
        port = try Sockets.localAddress(listener).port
        // Blocking accept for the helper thread.
        _ = fcntl(listener, F_SETFL, 0)
        let fd = listener
        let received = self.received
        let t = Thread {
            let conn = accept(fd, nil, nil)
            guard conn >= 0 else { return }
            defer { close(conn) }
            var one: Int32 = 1
            setsockopt(conn, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let response = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
            var buffer = [UInt8](repeating: 0, count: 65536)
            var matched = 0  // bytes of "\r\n\r\n" matched so far
            var requests = 0
            let terminator: [UInt8] = [13, 10, 13, 10]
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(conn, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                received.append(buffer[0..<n])
                for i in 0..<n {
                    matched = buffer[i] == terminator[matched] ? matched + 1 : (buffer[i] == 13 ? 1 : 0)
                    if matched == 4 {
                        matched = 0
                        requests += 1
                        if requests == stallAtRequest { sleep(stallSeconds) }
                        _ = response.withUnsafeBytes { send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    }
                }
            }
        }
        thread = t
        t.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

/// Bytes a test server thread received (the first 64 KiB), read by the test thread.
final class ReceivedBytes: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [UInt8] = []

    func append(_ more: ArraySlice<UInt8>) {
        lock.lock()
        if stored.count < 65536 { stored += more }
        lock.unlock()
    }

    var bytes: [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
}
