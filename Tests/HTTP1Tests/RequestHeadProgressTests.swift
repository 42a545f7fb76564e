import HTTP1
import XCTest

/// One parser shared by several connections, each keeping its `RequestHeadProgress` between reads
/// (the proxy worker's use): the head is scanned once, and the result is the whole-head result.
final class RequestHeadProgressTests: XCTestCase {
    private let head = bytes("POST /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nX-Long: "
                             + String(repeating: "v", count: 300) + "\r\n\r\n")

    /// Feeds `raw` one byte more per call, switching the parser to another connection's head in
    /// between, and returns the final result and the scan offsets seen after each call.
    private func feedInterleaved(_ raw: [UInt8], parser: inout RequestHeadParser) -> (RequestParseResult, [Int]) {
        var progress = RequestHeadProgress()
        var scanned: [Int] = []
        let other = bytes("GET /other HTTP/1.1\r\nHost: o\r\n\r\n")
        for n in 1...raw.count {
            let result = raw.withUnsafeBytes { all -> RequestParseResult in
                parser.resume(progress)
                return parser.parse(UnsafeRawBufferPointer(rebasing: all[0..<n]))
            }
            switch result {
            case .incomplete:
                progress = parser.progress
                scanned.append(progress.scannedBytes)
                // Another connection uses the parser in between.
                other.withUnsafeBytes { _ = parser.parse($0) }
            default:
                return (result, scanned)
            }
        }
        return (.incomplete, scanned)
    }

    func testHeadInOneByteSegmentsMatchesTheWholeHead() {
        var parser = RequestHeadParser()
        let (result, _) = feedInterleaved(head, parser: &parser)
        XCTAssertEqual(result, .complete(headLength: head.count))
        head.withUnsafeBytes { b in
            XCTAssertEqual(parser.method, .post)
            XCTAssertEqual(text(b, parser.pathRange), "/a/b")
            XCTAssertEqual(text(b, parser.queryRange!), "x=1")
            XCTAssertEqual(text(b, parser.hostRange!), "example.com")
            XCTAssertEqual(parser.bodyFraming, .contentLength(5))
            XCTAssertEqual(parser.headerCount, 3)
            XCTAssertEqual(text(b, parser.headerNameRange(at: 2)), "X-Long")
        }
    }

    /// Each call resumes where the last one stopped: the scan offset never goes back, and it
    /// follows the bytes received (at most one byte held back to judge a CR).
    func testScanResumesInsteadOfStartingOver() {
        var parser = RequestHeadParser()
        let (_, scanned) = feedInterleaved(head, parser: &parser)
        XCTAssertEqual(scanned.count, head.count - 1)
        for (i, s) in scanned.enumerated() {
            let received = i + 1
            XCTAssertTrue(s >= received - 1 && s <= received, "after \(received) bytes the scan is at \(s)")
            if i > 0 { XCTAssertGreaterThanOrEqual(s, scanned[i - 1]) }
        }
    }

    func testBadRequestLineFailsAsSoonAsItIsCompleteWhenResumed() {
        var parser = RequestHeadParser()
        let raw = bytes("GET /\u{01} HTTP/1.1\r\nHost: h\r\n")
        let (result, _) = feedInterleaved(raw, parser: &parser)
        guard case .failure(let e) = result else { return XCTFail("expected a failure, got \(result)") }
        XCTAssertEqual(e.status, 400)
    }

    func testOversizedHeadFailsWhenResumed() {
        var parser = RequestHeadParser(maxHeaderBytes: 64)
        let raw = bytes("GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 100) + "\r\n\r\n")
        let (result, _) = feedInterleaved(raw, parser: &parser)
        guard case .failure(let e) = result else { return XCTFail("expected a failure, got \(result)") }
        XCTAssertEqual(e.status, 431)
    }
}
