import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// The watchdog against a really stalled worker (the test hook of TestHooks.swift). Misses and
/// mega misses are driven with a synthetic clock (`tick(now:)`), so the counts do not depend on
/// how fast this machine is; the kill runs in a child process, on its real clock, and is judged by
/// how the process ended and what it logged.
final class WatchdogTests: XCTestCase {
    static let ms: Int64 = 1_000_000

    func watchdogYAML(upstreamPort: Int, worker: String) -> String {
        opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstreamPort]))
            + "\nwatchdogs:\n  worker_watchdog: \(worker)\n"
    }

    /// One tick at `now`, after every worker that is not stalled has turned since the last tick
    /// (the tick wakes them): only the stalled worker can look stuck.
    func tick(_ ops: ProxyOps, at now: Int64, stalled: Int) {
        let loops = ops.proxy.loopStats(ofListener: 0)
        let before = loops.map { $0.turns.load(ordering: .relaxed) }
        ops.watchdog.tick(now: now)
        for (w, loop) in loops.enumerated() where w != stalled {
            XCTAssertTrue(Wait.until { loop.turns.load(ordering: .relaxed) > before[w] }, "worker \(w) did not turn")
        }
    }

    func testStalledWorkerCountsOneMissAndOneMegaMissPerStall() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let yaml = watchdogYAML(upstreamPort: upstream.port, worker: "{miss_timeout: 0.2s, megamiss_timeout: 1s}")
        let ops = try startOps(yaml, concurrency: 2)
        defer { ops.stop() }
        var t: Int64 = 1_000_000 * Self.ms  // the synthetic clock
        for stallNumber in 1...2 {
            let stall = ops.stallWorker(worker: 0)
            XCTAssertTrue(Wait.until { stall.isHolding }, "the worker never entered the stall")
            tick(ops, at: t, stalled: 0)  // the worker's turn counter is frozen from here
            tick(ops, at: t + 200 * Self.ms - 1, stalled: 0)
            XCTAssertEqual(ops.watchdog.misses, stallNumber - 1, "not yet at miss_timeout")
            tick(ops, at: t + 200 * Self.ms, stalled: 0)
            XCTAssertEqual(ops.watchdog.misses, stallNumber, "a miss at miss_timeout")
            XCTAssertEqual(ops.watchdog.megaMisses, stallNumber - 1, "no mega miss before megamiss_timeout")
            tick(ops, at: t + 1_000 * Self.ms, stalled: 0)
            XCTAssertEqual(ops.watchdog.megaMisses, stallNumber, "a mega miss at megamiss_timeout")
            for k in 2...5 { tick(ops, at: t + Int64(k) * 1_000 * Self.ms, stalled: 0) }
            XCTAssertEqual(ops.watchdog.misses, stallNumber, "one miss per stall, however long")
            XCTAssertEqual(ops.watchdog.megaMisses, stallNumber, "one mega miss per stall, however long")
            XCTAssertEqual(ops.stats().value("server.watchdog_miss"), stallNumber)
            XCTAssertEqual(ops.stats().value("server.watchdog_mega_miss"), stallNumber)
            // Released, the worker turns again and the next tick sees progress.
            stall.release()
            let turns = ops.proxy.loopStats(ofListener: 0)[0].turns.load(ordering: .relaxed)
            XCTAssertTrue(Wait.until { ops.proxy.loopStats(ofListener: 0)[0].turns.load(ordering: .relaxed) > turns })
            // The next stall's first tick is at this same instant, so its stuck time starts here.
            t += 10_000 * Self.ms
            tick(ops, at: t, stalled: -1)
        }
        // The worker serves again.
        XCTAssertEqual(try TestConnection(port: ops.proxy.port(of: "http")!).get("/?size=2")?.status, 200)
    }

    /// The same worker, stalled for good in a `ballast proxy` with kill_timeout: the process
    /// aborts, after logging one miss and one mega miss for that worker and the kill.
    func testKillTimeoutAbortsTheProcessAfterOneMissAndOneMegaMiss() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let path = opsTempPath("watchdog-kill.yaml")
        defer { unlink(path) }
        try watchdogYAML(upstreamPort: upstream.port, worker: "{miss_timeout: 0.1s, megamiss_timeout: 0.2s, kill_timeout: 0.5s}")
            .write(toFile: path, atomically: true, encoding: .utf8)
        // No Swift backtracer for the expected abort: under the sanitizers it hung for good,
        // holding the child's stderr open.
        let child = try ChildProcess(["proxy", "-c", path, "--concurrency", "2", "--io", "epoll"],
                                     environment: ["BALLAST_TEST_HOOKS": "1", "SWIFT_BACKTRACE": "enable=no"])
        defer { child.stop() }
        let listening = try child.requireLine(containing: "listening on", what: "ballast proxy")
        let admin = try child.requireLine(containing: "admin on", what: "ballast proxy (admin)")
        let port = try XCTUnwrap(listening.components(separatedBy: "127.0.0.1:").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) })
        let adminPort = try XCTUnwrap(admin.components(separatedBy: ":").last.flatMap { Int($0.prefix { $0.isNumber }) })
        XCTAssertEqual(try TestConnection(port: port).get("/?size=1")?.status, 200)
        XCTAssertEqual(adminRequest(adminPort, "POST", "/test/stall?worker=0").0, 200)
        let (_, stderr) = child.waitForExit(timeout: 60)
        XCTAssertEqual(child.exitSignal, SIGABRT, "exit status \(child.exitStatus.map(String.init) ?? "-"): \(stderr)")
        let lines = stderr.split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.contains("worker 0 ") && $0.hasSuffix("watchdog miss") }.count, 1, stderr)
        XCTAssertEqual(lines.filter { $0.contains("worker 0 ") && $0.hasSuffix("watchdog mega miss") }.count, 1, stderr)
        XCTAssertEqual(lines.filter { $0.contains("worker 0 ") && $0.contains("(kill_timeout): aborting") }.count, 1, stderr)
        XCTAssertFalse(lines.contains { $0.contains("worker 1 ") }, "only the stalled worker is reported:\n\(stderr)")
    }

    /// Without BALLAST_TEST_HOOKS=1 the hook does not exist.
    func testStallHookIsOffWithoutTheFlag() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let ops = try startOps(watchdogYAML(upstreamPort: upstream.port, worker: "{miss_timeout: 0.2s}"), concurrency: 1)
        defer { ops.stop() }
        XCTAssertFalse(TestHooks.enabled, "the test process must not run with BALLAST_TEST_HOOKS=1")
        let admin = try XCTUnwrap(ops.adminPort)
        XCTAssertEqual(adminRequest(admin, "POST", "/test/stall?worker=0").0, 404)
    }
}
