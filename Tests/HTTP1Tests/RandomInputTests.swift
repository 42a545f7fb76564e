import HTTP1
import XCTest

/// Seeded random inputs built from HTTP-ish pieces: the parsers must never trap (debug builds check
/// every buffer access) and must give the same answer whole and byte by byte.
final class RandomInputTests: XCTestCase {
    struct Generator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    static let pieces: [[UInt8]] = [
        "GET", "HTTP/1.1 200 OK", " ", "/", "?", "HTTP/1.1", "HTTP/1.0", "\r\n", "\r\n", "\r\n\r\n", "\r", "\n", ":",
        "Host: h", "Content-Length", "5", ",", "Transfer-Encoding", "chunked", "Connection: close", "\t", "\u{0}",
        "a", "0", ";", "\u{7F}", "\u{FF}",
    ].map { Array($0.utf8) }

    func randomInput(_ g: inout Generator, prefix: String) -> [UInt8] {
        var out = Array(prefix.utf8)
        for _ in 0..<g.next(24) { out += Self.pieces[g.next(Self.pieces.count)] }
        return out
    }

    func testRequestParserOnRandomInput() {
        var g = Generator(state: 1)
        var completes = 0
        var failures = 0
        for round in 0..<1500 {
            let raw = randomInput(&g, prefix: round % 2 == 0 ? "GET / HTTP/1.1\r\nHost: h\r\n" : "")
            var whole = RequestHeadParser(maxHeaderBytes: 256, maxHeaders: 8)
            let expected = raw.withUnsafeBytes { whole.parse($0) }
            var stepped = RequestHeadParser(maxHeaderBytes: 256, maxHeaders: 8)
            var got = HeadParseResult.incomplete
            raw.withUnsafeBytes { all in
                for k in 0...all.count {
                    got = stepped.parse(UnsafeRawBufferPointer(rebasing: all[0..<k]))
                    if got != .incomplete { break }
                }
            }
            XCTAssertEqual(got, expected, "input \(raw)")
            if case .complete = got { completes += 1 }
            if case .failure = got { failures += 1 }
        }
        XCTAssertGreaterThan(completes, 20)
        XCTAssertGreaterThan(failures, 200)
    }

    func testResponseParserOnRandomInput() {
        var g = Generator(state: 2)
        var completes = 0
        var failures = 0
        for round in 0..<1500 {
            let raw = randomInput(&g, prefix: round % 2 == 0 ? "HTTP/1.1 200 OK\r\n" : "")
            var whole = ResponseHeadParser(maxHeaderBytes: 256, maxHeaders: 8)
            let expected = raw.withUnsafeBytes { whole.parse($0) }
            var stepped = ResponseHeadParser(maxHeaderBytes: 256, maxHeaders: 8)
            var got = HeadParseResult.incomplete
            raw.withUnsafeBytes { all in
                for k in 0...all.count {
                    got = stepped.parse(UnsafeRawBufferPointer(rebasing: all[0..<k]))
                    if got != .incomplete { break }
                }
            }
            XCTAssertEqual(got, expected, "input \(raw)")
            if case .complete = got { completes += 1 }
            if case .failure = got { failures += 1 }
        }
        XCTAssertGreaterThan(completes, 20)
        XCTAssertGreaterThan(failures, 200)
    }

    func testChunkedDecoderOnRandomInput() {
        var g = Generator(state: 3)
        let decoder = ChunkedDecoder(maxExtensionBytes: 16, maxTrailerBytes: 32)
        var done = 0
        for round in 0..<1500 {
            let raw = randomInput(&g, prefix: round % 2 == 0 ? "" : "3;a\r\nabc\r\n0\r\n")
            let whole = runChunked(raw, pieceSize: max(raw.count, 1), decoder: decoder)
            var single = runChunked(raw, pieceSize: 1, decoder: decoder)
            single.dataSteps = whole.dataSteps
            var w = whole
            if case .failure = w.outcome { w.consumed = 0; single.consumed = 0 }
            XCTAssertEqual(w, single, "input \(raw)")
            if w.outcome == .done { done += 1 }
        }
        XCTAssertGreaterThan(done, 20)
    }
}
