import Foundation
@testable import ProxyTestSupport
import XCTest

/// The whole-connection fuzz target's driver (`runConnectionScript`) on its committed seed corpus
/// and on every crash the fuzzer found (each a regression test): every invariant holds.
final class ConnectionScriptTests: XCTestCase {
    private func run(_ bytes: [UInt8]) -> String? { bytes.withUnsafeBytes { runConnectionScript($0) } }

    /// Byte 0 seed, byte 1 script length, the script, then the client's bytes.
    private func input(seed: UInt8, script: [UInt8], _ text: String) -> [UInt8] {
        [seed, UInt8(script.count)] + script + Array(text.utf8)
    }

    func testSeedCorpusHoldsEveryInvariant() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Corpus/FuzzProxyConnection").standardizedFileURL
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertGreaterThanOrEqual(names.count, 10)
        for name in names {
            let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent(name)))
            XCTAssertNil(run(bytes), name)
        }
    }

    /// The driver really serves: whole and pipelined requests in pieces are answered by the
    /// scripted upstream, a request with both Content-Length and chunked is refused with 400.
    func testDriverServesAndRefuses() throws {
        func output(_ bytes: [UInt8]) -> String {
            let r = bytes.withUnsafeBytes { runConnectionScriptDetailed($0) }
            XCTAssertNil(r.problem)
            return String(decoding: r.clientOutput, as: UTF8.self)
        }
        let get = "GET /up HTTP/1.1\r\nHost: a\r\n\r\n"
        let one = output(input(seed: 0, script: [], get))
        XCTAssertTrue(one.hasPrefix("HTTP/1.1 200 OK\r\n") && one.hasSuffix("hello"), one)
        let two = output(input(seed: 7, script: [0, 3], get + get))
        XCTAssertEqual(two.components(separatedBy: "HTTP/1.1 200 OK\r\n").count - 1, 2, two)
        let bad = output(input(seed: 0, script: [], "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
        XCTAssertTrue(bad.hasPrefix("HTTP/1.1 400 "), bad)
    }

    /// The clock and reload ops: a request whose upstream never connects gets the connect
    /// timeout's 503 once the clock passes 0.5 s; a reload between two requests leaves both
    /// answered; every invariant holds after each.
    func testTimersAndReloads() throws {
        func output(_ bytes: [UInt8]) -> String {
            let r = bytes.withUnsafeBytes { runConnectionScriptDetailed($0) }
            XCTAssertNil(r.problem)
            return String(decoding: r.clientOutput, as: UTF8.self)
        }
        let get = "GET /up HTTP/1.1\r\nHost: a\r\n\r\n"
        // Op 2 with step 10 (op 2 | 10 << 3): the clock moves 1.024 s before the connect completes.
        let timedOut = output(input(seed: 0, script: [2 | 10 << 3], get))
        XCTAssertTrue(timedOut.hasPrefix("HTTP/1.1 503 "), timedOut)
        let reloaded = output(input(seed: 7, script: [1, 3, 1, 0], get + get))
        XCTAssertEqual(reloaded.components(separatedBy: "HTTP/1.1 200 OK\r\n").count - 1, 2, reloaded)
    }

    /// The checks can fail: malformed status lines are rejected, and the cuts cover the input.
    func testStatusLineCheckAndCuts() throws {
        XCTAssertNil(run(input(seed: 0, script: [], "GET /up HTTP/1.1\r\nHost: a\r\n\r\n")))
        XCTAssertEqual(connectionScriptCuts(seed: 0, count: 10), [10])
        XCTAssertEqual(connectionScriptCuts(seed: 7, count: 10).last, 10)
        XCTAssertNotNil(statusLineProblem(Array("HTTP/1.0 200 OK\r\n".utf8)))
        XCTAssertNotNil(statusLineProblem(Array("HTTP/1.1 2x0 OK\r\n".utf8)))
        XCTAssertNil(statusLineProblem(Array("HTTP/1.1 400 Bad Request\r\n".utf8)))
    }
}
