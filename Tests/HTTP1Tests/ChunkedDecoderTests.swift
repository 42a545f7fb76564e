import HTTP1
import XCTest

final class ChunkedDecoderTests: XCTestCase {
    func testTwoChunksAndTerminator() {
        let body = bytes("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        let run = checkChunked(body + bytes("GET / HTTP/1.1\r\n"))
        XCTAssertEqual(run.outcome, .done)
        XCTAssertEqual(String(decoding: run.payload, as: UTF8.self), "hello world")
        XCTAssertEqual(run.consumed, body.count, "bytes of the next message must not be consumed")
        XCTAssertEqual(run.dataSteps, 2)
    }

    func testZeroLengthBody() {
        let run = checkChunked(bytes("0\r\n\r\nNEXT"))
        XCTAssertEqual(run.outcome, .done)
        XCTAssertEqual(run.payload, [])
        XCTAssertEqual(run.consumed, 5)
        XCTAssertEqual(checkChunked(bytes("000\r\n\r\n")).outcome, .done)
    }

    func testHexSizesInBothCases() {
        let payload = Array(repeating: UInt8(ascii: "x"), count: 0x1A) + Array(repeating: UInt8(ascii: "y"), count: 0xF)
        let body = bytes("1a\r\n") + payload[0..<26] + bytes("\r\nF\r\n") + payload[26...] + bytes("\r\n0\r\n\r\n")
        let run = checkChunked(body)
        XCTAssertEqual(run.outcome, .done)
        XCTAssertEqual(run.payload, payload)
        XCTAssertEqual(run.consumed, body.count)
    }

    func testExtensionsAndTrailers() {
        let body = bytes("5;name=value;flag\r\nhello\r\n3 ; q=\"a b\"\r\nabc\r\n0;last=1\r\nX-Checksum: abc123\r\nX-Other:\tv\r\n\r\n")
        let run = checkChunked(body + bytes("tail"))
        XCTAssertEqual(run.outcome, .done)
        XCTAssertEqual(String(decoding: run.payload, as: UTF8.self), "helloabc")
        XCTAssertEqual(run.consumed, body.count)
    }

    func testDataArrivesInPiecesAcrossCalls() {
        var decoder = ChunkedDecoder()
        let head = bytes("a\r\n01234")
        head.withUnsafeBytes { b in
            XCTAssertEqual(decoder.decode(b), .data(3..<8, consumed: 8))
            XCTAssertEqual(decoder.remainingInChunk, 5)
        }
        let rest = bytes("56789\r\n0\r\n\r\n")
        rest.withUnsafeBytes { b in
            XCTAssertEqual(decoder.decode(b), .data(0..<5, consumed: 5))
            XCTAssertEqual(decoder.remainingInChunk, 0)
            let after = UnsafeRawBufferPointer(rebasing: b[5...])
            XCTAssertEqual(decoder.decode(after), .done(consumed: 7))
            XCTAssertTrue(decoder.isDone)
            XCTAssertEqual(decoder.decode(after), .done(consumed: 0))
        }
    }

    func testIncompleteBodyNeedsMore() {
        for raw in ["", "5", "5\r", "5\r\nhel", "5\r\nhello\r", "5\r\nhello\r\n0\r\n", "0\r\nX: 1\r\n", "0\r\n\r"] {
            let run = checkChunked(bytes(raw))
            XCTAssertEqual(run.outcome, .needMore, raw.debugDescription)
            XCTAssertEqual(run.consumed, raw.utf8.count, raw.debugDescription)
        }
    }

    func testResetStartsANewBody() {
        var decoder = ChunkedDecoder()
        bytes("0\r\n\r\n").withUnsafeBytes { XCTAssertEqual(decoder.decode($0), .done(consumed: 5)) }
        decoder.reset()
        bytes("1\r\nz\r\n0\r\n\r\n").withUnsafeBytes { XCTAssertEqual(decoder.decode($0), .data(3..<4, consumed: 4)) }
    }

    func testBadChunkSizes() {
        for raw in ["g\r\n", "\r\n", ";x\r\n", "-1\r\n", "0x5\r\n", "5 \r\nhello\r\n", " 5\r\n", "5\t\r\n"] {
            XCTAssertEqual(checkChunked(bytes(raw)).outcome, .failure(.badChunkSize), raw.debugDescription)
        }
    }

    func testChunkSizeOverflow() {
        XCTAssertEqual(checkChunked(bytes("8000000000000000\r\n")).outcome, .failure(.chunkSizeOverflow))
        XCTAssertEqual(checkChunked(bytes("00000000000000001\r\n")).outcome, .failure(.chunkSizeOverflow))
        XCTAssertEqual(checkChunked(bytes("FFFFFFFFFFFFFFFFFF\r\n")).outcome, .failure(.chunkSizeOverflow))
        // The largest size fits: the decoder waits for its data.
        var decoder = ChunkedDecoder()
        bytes("7fffffffffffffff\r\nab").withUnsafeBytes { b in
            XCTAssertEqual(decoder.decode(b), .data(18..<20, consumed: 20))
            XCTAssertEqual(decoder.remainingInChunk, Int.max - 2)
        }
    }

    func testMissingCRLF() {
        for raw in ["5\rX", "5\r\nhelloX", "5\r\nhello\rX", "5\nhello\r\n", "5\r\nhello\n", "0\r\n\rX", "0\r\nX: 1\rY"] {
            XCTAssertEqual(checkChunked(bytes(raw)).outcome, .failure(.chunkMissingCRLF), raw.debugDescription)
        }
    }

    func testPayloadBeforeAnErrorIsStillDelivered() {
        let run = checkChunked(bytes("3\r\nabcX"))
        XCTAssertEqual(run.outcome, .failure(.chunkMissingCRLF))
        XCTAssertEqual(run.payload, bytes("abc"))
    }

    func testExtensionLimits() {
        let decoder = ChunkedDecoder(maxExtensionBytes: 8)
        let atLimit = bytes("1;12345678\r\nx\r\n0\r\n\r\n")  // 8 bytes after ';'
        XCTAssertEqual(checkChunked(atLimit, decoder: decoder).outcome, .done)
        let over = bytes("1;123456789\r\nx\r\n0\r\n\r\n")
        XCTAssertEqual(checkChunked(over, decoder: decoder).outcome, .failure(.chunkExtensionTooLong))
        XCTAssertEqual(checkChunked(bytes("1;a\u{1}b\r\nx\r\n0\r\n\r\n")).outcome, .failure(.badChunkExtension))
        XCTAssertEqual(checkChunked(bytes("1;a\u{7F}\r\nx\r\n0\r\n\r\n")).outcome, .failure(.badChunkExtension))
    }

    func testTrailerLimits() {
        let decoder = ChunkedDecoder(maxTrailerBytes: 12)
        let atLimit = bytes("0\r\nA: 1\r\nBC:\r\n\r\n")  // "A: 1\r\n" 6 + "BC:\r\n" 5 = 11
        XCTAssertEqual(checkChunked(atLimit, decoder: decoder).outcome, .done)
        let exactly = bytes("0\r\nA: 12\r\nBC:\r\n\r\n")  // 12
        XCTAssertEqual(checkChunked(exactly, decoder: decoder).outcome, .done)
        let over = bytes("0\r\nA: 123\r\nBC:\r\n\r\n")  // 13
        let run = checkChunked(over, decoder: decoder)
        XCTAssertEqual(run.outcome, .failure(.trailerTooLong))
        var d = decoder
        over.withUnsafeBytes { XCTAssertEqual(d.decode($0), .failure(HTTPParseError(.trailerTooLong))) }
        XCTAssertEqual(HTTPParseError(.trailerTooLong).status, 431)
    }

    func testMalformedTrailers() {
        for raw in ["0\r\n X: 1\r\n\r\n", "0\r\nX : 1\r\n\r\n", "0\r\n: v\r\n\r\n", "0\r\nNoColon\r\n\r\n", "0\r\nX: a\u{0}\r\n\r\n"] {
            XCTAssertEqual(checkChunked(bytes(raw)).outcome, .failure(.badTrailer), raw.debugDescription)
        }
    }

    func testFailureIsSticky() {
        var decoder = ChunkedDecoder()
        bytes("z").withUnsafeBytes { XCTAssertEqual(decoder.decode($0), .failure(HTTPParseError(.badChunkSize))) }
        bytes("0\r\n\r\n").withUnsafeBytes { XCTAssertEqual(decoder.decode($0), .failure(HTTPParseError(.badChunkSize))) }
        XCTAssertFalse(decoder.isDone)
    }
}
