import Foundation
import TestSupport
import XCTest

/// `-ramp`: connections open spread over the ramp instead of all at once. Counts only: a ramp far
/// longer than the run leaves the later connections unopened.
final class LoadRampTests: XCTestCase {
    /// Connections the server accepted, from its exit log.
    func accepted(_ server: ServerUnderTest) -> String? {
        server.stop()
        let (_, log) = server.child.waitForExit()
        return log.components(separatedBy: "connections per worker [").last.map { String($0.prefix { $0 != "]" }) }
    }

    func testARampLongerThanTheRunOpensOnlyTheFirstConnection() throws {
        // Connection k of 10 opens at k s; a 400 ms run ends before connection 1 is due.
        let server = try ServerUnderTest(io: "epoll", workers: 1)
        let run = try runLoad(["-qps", "0", "-c", "10", "-ramp", "10s", "-t", "400ms", "http://127.0.0.1:\(server.port)/"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.json["SocketCount"] as? Int, 1)
        XCTAssertEqual(accepted(server), "1")
        XCTAssertEqual(run.ballast["RampNanos"] as? Int, 10_000_000_000)
    }

    func testAShortRampOpensEveryConnection() throws {
        let server = try ServerUnderTest(io: "epoll", workers: 1)
        let run = try runLoad(["-qps", "0", "-c", "10", "-ramp", "50ms", "-warmup", "100ms", "-t", "300ms", "http://127.0.0.1:\(server.port)/"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.json["SocketCount"] as? Int, 10)
        XCTAssertEqual(accepted(server), "10")
    }

    func testRampIsClosedLoopOnly() throws {
        for args in [["-qps", "100", "-ramp", "1s"], ["-ramp", "soon"]] {
            let child = try ChildProcess(["load"] + args + ["-t", "1s", "http://127.0.0.1:1/"])
            let (status, err) = child.waitForExit()
            XCTAssertEqual(status, 2, "\(args): \(err)")
            XCTAssertTrue(err.contains("-ramp"), err)
        }
    }
}
