import HTTP1
import XCTest

final class ResponseHeadParserTests: XCTestCase {
    func testOKWithContentLength() {
        let raw = bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")
        let s = checkResponse(raw)
        XCTAssertEqual(s.result, .complete(headLength: raw.count - 5))
        XCTAssertEqual(s.status, 200)
        XCTAssertEqual(s.reason, "OK")
        XCTAssertEqual(s.version, .http1_1)
        XCTAssertEqual(s.framing, .contentLength(5))
        XCTAssertEqual(s.keepAlive, true)
        XCTAssertEqual(s.informational, false)
        XCTAssertEqual(s.fields.map(\.name), ["Content-Length", "Content-Type"])
        XCTAssertEqual(s.fields[0].valueRange, 33..<34)
    }

    func testReasonPhraseMayBeLongOrAbsent() {
        XCTAssertEqual(checkResponse(bytes("HTTP/1.1 404 Not Found Here\r\nContent-Length: 0\r\n\r\n")).reason, "Not Found Here")
        let noSpace = checkResponse(bytes("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"))
        XCTAssertEqual(noSpace.status, 200)
        XCTAssertEqual(noSpace.reason, "")
        XCTAssertEqual(checkResponse(bytes("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")).reason, "")
    }

    func testNoBodyFor204And304() {
        for status in [204, 304] {
            let s = checkResponse(bytes("HTTP/1.1 \(status) X\r\nContent-Length: 10\r\n\r\n"))
            XCTAssertEqual(s.framing, BodyFraming.none, "\(status)")
            XCTAssertEqual(s.keepAlive, true)
        }
        XCTAssertEqual(checkResponse(bytes("HTTP/1.1 204 No Content\r\n\r\n")).framing, BodyFraming.none)
    }

    func testInformationalResponses() {
        let s = checkResponse(bytes("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"))
        XCTAssertEqual(s.informational, true)
        XCTAssertEqual(s.framing, BodyFraming.none)
        let upgrade = checkResponse(bytes("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"))
        XCTAssertEqual(upgrade.status, 101)
        XCTAssertEqual(upgrade.framing, BodyFraming.none)
    }

    func testResponseToHEADHasNoBody() {
        let raw = bytes("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        XCTAssertEqual(checkResponse(raw, isResponseToHEAD: true).framing, BodyFraming.none)
        let chunked = bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        XCTAssertEqual(checkResponse(chunked, isResponseToHEAD: true).framing, BodyFraming.none)
        XCTAssertEqual(checkResponse(bytes("HTTP/1.1 200 OK\r\n\r\n"), isResponseToHEAD: true).framing, BodyFraming.none)
    }

    func testUntilCloseWithoutLength() {
        let s = checkResponse(bytes("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close"))
        XCTAssertEqual(s.framing, .untilClose)
        XCTAssertEqual(s.keepAlive, false)
        let old = checkResponse(bytes("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"))
        XCTAssertEqual(old.framing, .untilClose)
        XCTAssertEqual(old.keepAlive, false)
    }

    func testChunkedResponses() {
        let s = checkResponse(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
        XCTAssertEqual(s.framing, .chunked)
        XCTAssertEqual(s.keepAlive, true)
        let gzip = checkResponse(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"))
        XCTAssertEqual(gzip.framing, .chunked)
        let notFinal = checkResponse(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"))
        XCTAssertEqual(notFinal.framing, .untilClose)
        XCTAssertEqual(notFinal.keepAlive, false)
    }

    func testKeepAliveDefaults() {
        XCTAssertEqual(checkResponse(bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")).keepAlive, false)
        XCTAssertEqual(checkResponse(bytes("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")).keepAlive, false)
        let old = checkResponse(bytes("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n"))
        XCTAssertEqual(old.keepAlive, true)
        XCTAssertEqual(old.version, .http1_0)
    }

    func testBadStatusLines() {
        assertResponseFails("HTTP/1.1 20 OK\r\n\r\n", .badStatusCode)
        assertResponseFails("HTTP/1.1 2000 OK\r\n\r\n", .badStatusCode)
        assertResponseFails("HTTP/1.1 abc OK\r\n\r\n", .badStatusCode)
        assertResponseFails("HTTP/1.1 099 Low\r\n\r\n", .badStatusCode)
        assertResponseFails("HTTP/1.1 600 High\r\n\r\n", .badStatusCode)
        assertResponseFails("HTTP/1.1\r\n\r\n", .badStatusLine)
        assertResponseFails("HTTP/1.1  200 OK\r\n\r\n", .badStatusCode)
        assertResponseFails("ICY 200 OK\r\n\r\n", .badStatusLine)
        assertResponseFails("\r\nHTTP/1.1 200 OK\r\n\r\n", .badStatusLine)
        assertResponseFails("HTTP/1.1 200 O\u{1}K\r\n\r\n", .badStatusLine)
        assertResponseFails("HTTP/x.1 200 OK\r\n\r\n", .badVersion)
        assertResponseFails("HTTP/2.0 200 OK\r\n\r\n", .unsupportedVersion)
    }

    func testFramingErrorsAre502() {
        assertResponseFails("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", .contentLengthWithTransferEncoding)
        assertResponseFails("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", .duplicateContentLength)
        assertResponseFails("HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", .duplicateContentLength)
        assertResponseFails("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", .badContentLength)
        assertResponseFails("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .transferEncodingInHTTP10)
        assertResponseFails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", .badTransferEncoding)
        // Framing fields are validated even when the response has no body.
        assertResponseFails("HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n", .badContentLength)
    }

    func testFieldErrorsAre502() {
        assertResponseFails("HTTP/1.1 200 OK\r\nServer : x\r\n\r\n", .whitespaceBeforeColon)
        assertResponseFails("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", .obsFold)
        assertResponseFails("HTTP/1.1 200 OK\nContent-Length: 0\n\n", .bareLF)
        assertResponseFails("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", .bareCR)
        var parser = ResponseHeadParser(maxHeaderBytes: 32)
        let big = bytes("HTTP/1.1 200 OK\r\nX-Pad: 0123456789\r\n\r\n")
        big.withUnsafeBytes { XCTAssertEqual(parser.parse($0), .failure(HTTPParseError(.headTooLarge, status: 502))) }
        var few = ResponseHeadParser(maxHeaders: 1)
        let two = bytes("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n")
        two.withUnsafeBytes { XCTAssertEqual(few.parse($0), .failure(HTTPParseError(.tooManyHeaders, status: 502))) }
    }

    func testHeaderLookup() {
        let raw = bytes("HTTP/1.1 200 OK\r\nSERVER: ballast\r\nContent-Length: 0\r\n\r\n")
        var parser = ResponseHeadParser()
        raw.withUnsafeBytes { b in
            XCTAssertEqual(parser.parse(b), .complete(headLength: raw.count))
            XCTAssertEqual(parser.firstValueRange(ofHeader: "server", in: b).map { text(b, $0) }, "ballast")
            XCTAssertNil(parser.firstValueRange(ofHeader: "date", in: b))
            XCTAssertEqual(parser.headerCount, 2)
        }
    }
}
