import HTTP1
import XCTest

final class HeadWriterTests: XCTestCase {
    /// Runs `body` with a writer over `capacity` bytes pre-filled with 0xAA; returns the buffer.
    func withBuffer(_ capacity: Int, _ body: (HeadWriter) -> Void) -> [UInt8] {
        var storage = [UInt8](repeating: 0xAA, count: capacity)
        storage.withUnsafeMutableBytes { body(HeadWriter($0)) }
        return storage
    }

    func testResponseHeadRoundTrip() {
        var end = -1
        let rawValue = bytes("v1")
        let out = withBuffer(128) { w in
            guard let a = w.writeStatusLine(404, at: 0),
                  let b = w.writeHeader("Content-Length", decimal: 12, at: a),
                  let c = w.writeHeader("Server", "ballast", at: b),
                  let d = rawValue.withUnsafeBytes({ w.writeHeader("X-Raw", $0, at: c) }),
                  let e = w.writeCRLF(at: d)
            else { return XCTFail("128 bytes should be enough") }
            end = e
        }
        let expected = "HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\nServer: ballast\r\nX-Raw: v1\r\n\r\n"
        XCTAssertEqual(String(decoding: out[0..<end], as: UTF8.self), expected)
        let s = checkResponse(Array(out[0..<end]) + bytes("hello world!"))
        XCTAssertEqual(s.status, 404)
        XCTAssertEqual(s.reason, "Not Found")
        XCTAssertEqual(s.framing, .contentLength(12))
    }

    func testRequestHeadFromParsedBytes() {
        let source = bytes("GET /items?id=7 HTTP/1.1\r\nhost: origin\r\n\r\n")
        var parser = RequestHeadParser()
        var written: [UInt8] = []
        source.withUnsafeBytes { src in
            XCTAssertEqual(parser.parse(src), .complete(headLength: source.count))
            written = withBuffer(96) { w in
                let target = UnsafeRawBufferPointer(rebasing: src[parser.targetRange])
                let name = UnsafeRawBufferPointer(rebasing: src[parser.headerNameRange(at: 0)])
                let value = UnsafeRawBufferPointer(rebasing: src[parser.headerValueRange(at: 0)])
                guard let a = w.writeRequestLine(method: "GET", target: target, version: .http1_0, at: 0),
                      let b = w.writeHeader(name: name, value: value, at: a),
                      let c = w.write("\r\n", at: b)
                else { return XCTFail("96 bytes should be enough") }
                XCTAssertEqual(c, 42)
            }
        }
        XCTAssertEqual(String(decoding: written[0..<42], as: UTF8.self), "GET /items?id=7 HTTP/1.0\r\nhost: origin\r\n\r\n")
        XCTAssertEqual(written[42], 0xAA)
    }

    func testOverflowReturnsNilAndWritesNothing() {
        // "HTTP/1.1 200 OK\r\n" is 17 bytes.
        let exact = withBuffer(17) { w in XCTAssertEqual(w.writeStatusLine(200, at: 0), 17) }
        XCTAssertEqual(String(decoding: exact, as: UTF8.self), "HTTP/1.1 200 OK\r\n")
        let short = withBuffer(16) { w in XCTAssertNil(w.writeStatusLine(200, at: 0)) }
        XCTAssertEqual(short, [UInt8](repeating: 0xAA, count: 16))

        let untouched = withBuffer(10) { w in
            XCTAssertNil(w.writeHeader("Name", "value", at: 0))        // needs 13
            XCTAssertNil(w.writeHeader("N", decimal: 123456, at: 0))   // needs 11
            XCTAssertNil(w.writeDecimal(12345, at: 6))
            XCTAssertNil(w.writeHex(0x12345, at: 6))
            XCTAssertNil(w.write("x", at: 10))
            XCTAssertNil(w.write("x", at: 11))
            XCTAssertNil(w.writeCRLF(at: 9))
            XCTAssertNil(w.writeChunkSize(0xFFFFFFFFF, at: 0))         // 9 digits + CRLF
            XCTAssertNil(w.writeLastChunk(at: 6))
            XCTAssertNil(bytes("12345678901").withUnsafeBytes { w.write($0, at: 0) })
        }
        XCTAssertEqual(untouched, [UInt8](repeating: 0xAA, count: 10))
        let atEnd = withBuffer(10) { w in
            XCTAssertEqual(w.writeDecimal(12345, at: 5), 10)
            XCTAssertEqual(w.write("", at: 10), 10)
            XCTAssertNil(w.writeCRLF(at: -1))
        }
        XCTAssertEqual(Array(atEnd[5...]), bytes("12345"))
    }

    func testDecimalAndHex() {
        let cases: [(Int, String)] = [(0, "0"), (7, "7"), (10, "10"), (-1, "-1"), (Int.max, "9223372036854775807"),
                                      (Int.min, "-9223372036854775808")]
        for (value, expected) in cases {
            let out = withBuffer(24) { w in XCTAssertEqual(w.writeDecimal(value, at: 0), expected.utf8.count) }
            XCTAssertEqual(String(decoding: out[0..<expected.utf8.count], as: UTF8.self), expected)
            XCTAssertEqual(HeadWriter.decimalLength(value), expected.utf8.count)
        }
        for (value, expected) in [(0, "0"), (15, "f"), (16, "10"), (0xABCDEF, "abcdef"), (Int.max, "7fffffffffffffff")] {
            let out = withBuffer(20) { w in XCTAssertEqual(w.writeHex(value, at: 0), expected.utf8.count) }
            XCTAssertEqual(String(decoding: out[0..<expected.utf8.count], as: UTF8.self), expected)
        }
    }

    func testChunkFramingRoundTripsThroughTheDecoder() {
        var end = 0
        let out = withBuffer(64) { w in
            guard let a = w.writeChunkSize(26, at: 0),
                  let b = w.write("abcdefghijklmnopqrstuvwxyz", at: a),
                  let c = w.writeCRLF(at: b),
                  let d = w.writeLastChunk(at: c)
            else { return XCTFail("64 bytes should be enough") }
            end = d
        }
        XCTAssertEqual(String(decoding: out[0..<4], as: UTF8.self), "1a\r\n")
        let run = checkChunked(Array(out[0..<end]))
        XCTAssertEqual(run.outcome, .done)
        XCTAssertEqual(String(decoding: run.payload, as: UTF8.self), "abcdefghijklmnopqrstuvwxyz")
        XCTAssertEqual(run.consumed, end)
    }

    func testReasonPhraseTable() {
        let expected: [Int: String] = [
            200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 206: "Partial Content",
            301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request",
            401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
            415: "Unsupported Media Type", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
        ]
        for (code, phrase) in expected {
            XCTAssertEqual(HeadWriter.reasonPhrase(for: code).map { "\($0)" }, phrase, "\(code)")
        }
        XCTAssertNil(HeadWriter.reasonPhrase(for: 299))
        let unknown = withBuffer(32) { w in XCTAssertEqual(w.writeStatusLine(299, version: .http1_0, at: 0), 15) }
        XCTAssertEqual(String(decoding: unknown[0..<15], as: UTF8.self), "HTTP/1.0 299 \r\n")
    }
}
