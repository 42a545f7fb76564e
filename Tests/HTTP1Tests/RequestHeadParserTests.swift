import HTTP1
import XCTest

final class RequestHeadParserTests: XCTestCase {
    // MARK: Accepted requests

    func testSimpleGet() {
        let raw = bytes("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        let s = checkRequest(raw)
        XCTAssertEqual(s.result, .complete(headLength: raw.count))
        XCTAssertEqual(s.method, .get)
        XCTAssertEqual(s.methodText, "GET")
        XCTAssertEqual(s.target, "/")
        XCTAssertEqual(s.path, "/")
        XCTAssertNil(s.query)
        XCTAssertEqual(s.version, .http1_1)
        XCTAssertEqual(s.fields, [Field(name: "Host", value: "example.com", nameRange: 16..<20, valueRange: 22..<33)])
        XCTAssertEqual(s.host, "example.com")
        XCTAssertEqual(s.framing, BodyFraming.none)
        XCTAssertEqual(s.keepAlive, true)
        XCTAssertEqual(s.expectsContinue, false)
    }

    func testQueryIsSplitFromPath() {
        let s = checkRequest(bytes("GET /search/items?q=swift&page=2 HTTP/1.1\r\nHost: h\r\n\r\n"))
        XCTAssertEqual(s.target, "/search/items?q=swift&page=2")
        XCTAssertEqual(s.path, "/search/items")
        XCTAssertEqual(s.query, "q=swift&page=2")
        XCTAssertEqual(s.targetRange, 4..<32)
    }

    func testEmptyQueryAndSecondQuestionMark() {
        let empty = checkRequest(bytes("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n"))
        XCTAssertEqual(empty.path, "/a")
        XCTAssertEqual(empty.query, "")
        let twice = checkRequest(bytes("GET /?a?b HTTP/1.1\r\nHost: h\r\n\r\n"))
        XCTAssertEqual(twice.path, "/")
        XCTAssertEqual(twice.query, "a?b")
    }

    func testOtherTargetForms() {
        let absolute = checkRequest(bytes("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n"))
        XCTAssertEqual(absolute.path, "http://example.com/x")
        XCTAssertEqual(absolute.query, "y")
        let connect = checkRequest(bytes("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"))
        XCTAssertEqual(connect.method, .connect)
        XCTAssertEqual(connect.path, "example.com:443")
        let asterisk = checkRequest(bytes("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"))
        XCTAssertEqual(asterisk.method, .options)
        XCTAssertEqual(asterisk.target, "*")
    }

    func testKnownMethods() {
        let expected: [(String, HTTPMethod)] = [
            ("GET", .get), ("HEAD", .head), ("POST", .post), ("PUT", .put), ("DELETE", .delete),
            ("OPTIONS", .options), ("PATCH", .patch), ("TRACE", .trace), ("CONNECT", .connect),
        ]
        for (name, method) in expected {
            let s = checkRequest(bytes("\(name) /x HTTP/1.1\r\nHost: h\r\n\r\n"))
            XCTAssertEqual(s.method, method, name)
            XCTAssertEqual(s.methodText, name)
        }
    }

    func testOtherMethodsKeepTheirRange() {
        // Methods are case-sensitive: "get" is not GET.
        for name in ["get", "PURGE", "M-SEARCH", "GETS", "POSTX"] {
            let s = checkRequest(bytes("\(name) / HTTP/1.1\r\nHost: h\r\n\r\n"))
            XCTAssertEqual(s.method, .other(0..<name.utf8.count), name)
            XCTAssertEqual(s.methodText, name)
        }
    }

    func testHTTP10WithoutHost() {
        let s = checkRequest(bytes("GET /old HTTP/1.0\r\n\r\n"))
        XCTAssertEqual(s.version, .http1_0)
        XCTAssertNil(s.host)
        XCTAssertEqual(s.fields, [])
        XCTAssertEqual(s.keepAlive, false)
    }

    func testLeadingEmptyLinesAreSkipped() {
        let raw = bytes("\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        let s = checkRequest(raw)
        XCTAssertEqual(s.result, .complete(headLength: raw.count))
        XCTAssertEqual(s.targetRange, 8..<10)
        XCTAssertEqual(s.path, "/x")
    }

    func testManyHeadersUpToTheLimit() {
        var head = "POST /upload HTTP/1.1\r\nHost: h\r\n"
        for i in 1..<100 { head += "X-Header-\(i): value \(i)\r\n" }
        let s = checkRequest(bytes(head + "\r\n"))
        XCTAssertEqual(s.fields.count, 100)
        XCTAssertEqual(s.fields[0].name, "Host")
        XCTAssertEqual(s.fields[99], s.fields.last)
        XCTAssertEqual(s.fields[99].name, "X-Header-99")
        XCTAssertEqual(s.fields[99].value, "value 99")
    }

    func testValuesAreTrimmedAndMayBeEmpty() {
        let s = checkRequest(bytes("GET / HTTP/1.1\r\nHost:h\r\nX-A:   a \t b \t \r\nX-Empty:\r\nX-Blank:   \r\n\r\n"))
        XCTAssertEqual(s.field("host"), "h")
        XCTAssertEqual(s.field("x-a"), "a \t b")
        XCTAssertEqual(s.field("x-empty"), "")
        XCTAssertEqual(s.field("x-blank"), "")
    }

    func testObsTextAndTabAllowedInValues() {
        var raw = bytes("GET / HTTP/1.1\r\nHost: h\r\nX-Bin: a\tb")
        raw += [0x80, 0xC3, 0xA9, 0xFF]
        raw += bytes("\r\n\r\n")
        let s = checkRequest(raw)
        XCTAssertEqual(s.fields.count, 2)
        XCTAssertEqual(s.fields[1].valueRange.count, 7)
    }

    func testCaseInsensitiveHeaderLookup() {
        let raw = bytes("GET / HTTP/1.1\r\nHOST: h\r\nContent-Type: text/plain\r\nx-dup: first\r\nX-Dup: second\r\nX-^: caret\r\n\r\n")
        var parser = RequestHeadParser()
        raw.withUnsafeBytes { b in
            XCTAssertEqual(parser.parse(b), .complete(headLength: raw.count))
            XCTAssertEqual(parser.firstValueRange(ofHeader: "content-type", in: b).map { text(b, $0) }, "text/plain")
            XCTAssertEqual(parser.firstValueRange(ofHeader: "CONTENT-TYPE", in: b).map { text(b, $0) }, "text/plain")
            XCTAssertEqual(parser.firstValueRange(ofHeader: "x-DUP", in: b).map { text(b, $0) }, "first")
            XCTAssertEqual(parser.firstValueRange(ofHeader: "host", in: b).map { text(b, $0) }, "h")
            XCTAssertNil(parser.firstValueRange(ofHeader: "content-typ", in: b))
            XCTAssertNil(parser.firstValueRange(ofHeader: "accept", in: b))
            // Only letters fold: '^' (0x5E) and '~' (0x7E) differ by 0x20 but are different tokens.
            XCTAssertEqual(parser.firstValueRange(ofHeader: "x-^", in: b).map { text(b, $0) }, "caret")
            XCTAssertNil(parser.firstValueRange(ofHeader: "x-~", in: b))
            XCTAssertEqual(parser.hostRange.map { text(b, $0) }, "h")
        }
    }

    func testKeepAliveDefaultsForHTTP11() {
        XCTAssertEqual(checkRequest(bytes("GET / HTTP/1.1\r\nHost: h\r\n\r\n")).keepAlive, true)
        XCTAssertEqual(checkRequest(bytes("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")).keepAlive, false)
        XCTAssertEqual(checkRequest(bytes("GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n")).keepAlive, false)
        XCTAssertEqual(checkRequest(bytes("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n")).keepAlive, true)
    }

    func testKeepAliveDefaultsForHTTP10() {
        XCTAssertEqual(checkRequest(bytes("GET / HTTP/1.0\r\n\r\n")).keepAlive, false)
        XCTAssertEqual(checkRequest(bytes("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")).keepAlive, true)
        XCTAssertEqual(checkRequest(bytes("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")).keepAlive, true)
        XCTAssertEqual(checkRequest(bytes("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")).keepAlive, false)
    }

    func testConnectionTokenLists() {
        let upgrade = checkRequest(bytes("GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\n\r\n"))
        XCTAssertEqual(upgrade.keepAlive, true)
        let closeLast = checkRequest(bytes("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade,close\r\n\r\n"))
        XCTAssertEqual(closeLast.keepAlive, false)
        let split = checkRequest(bytes("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: , close ,\r\n\r\n"))
        XCTAssertEqual(split.keepAlive, false)
        let notAToken = checkRequest(bytes("GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n"))
        XCTAssertEqual(notAToken.keepAlive, false)
    }

    func testExpectContinue() {
        XCTAssertEqual(checkRequest(bytes("PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\nabc")).expectsContinue, true)
        XCTAssertEqual(checkRequest(bytes("PUT /f HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc")).expectsContinue, false)
        XCTAssertEqual(checkRequest(bytes("PUT /f HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n")).expectsContinue, false)
    }

    func testUpgradeNeedsTheConnectionToken() {
        XCTAssertEqual(checkRequest(bytes("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket \r\n\r\n")).upgrade, "WebSocket")
        XCTAssertEqual(checkRequest(bytes("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: a\r\nUpgrade: b\r\nConnection: upgrade\r\n\r\n")).upgrade, "a")
        XCTAssertNil(checkRequest(bytes("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")).upgrade)
        XCTAssertNil(checkRequest(bytes("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n")).upgrade)
        XCTAssertNil(checkRequest(bytes("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgraded\r\nUpgrade: websocket\r\n\r\n")).upgrade)
        // A parser reused for the next head forgets the last one's upgrade.
        var p = RequestHeadParser()
        bytes("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n").withUnsafeBytes { _ = p.parse($0) }
        XCTAssertNotNil(p.upgradeRange)
        bytes("GET / HTTP/1.1\r\nHost: h\r\n\r\n").withUnsafeBytes { _ = p.parse($0) }
        XCTAssertNil(p.upgradeRange)
    }

    func testContentLengthFraming() {
        let s = checkRequest(bytes("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"))
        XCTAssertEqual(s.framing, .contentLength(5))
        XCTAssertEqual(s.headLength, 48)
        let zero = checkRequest(bytes("POST /p HTTP/1.1\r\nHost: h\r\ncontent-length: 000\r\n\r\n"))
        XCTAssertEqual(zero.framing, .contentLength(0))
    }

    func testChunkedFraming() {
        let s = checkRequest(bytes("POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
        XCTAssertEqual(s.framing, .chunked)
        XCTAssertEqual(s.keepAlive, true)
    }

    func testHeaderRangesAreOffsetsIntoTheBuffer() {
        let raw = bytes("GET /p?q HTTP/1.1\r\nHost: a\r\nB:c\r\n\r\n")
        var parser = RequestHeadParser()
        raw.withUnsafeBytes { b in
            XCTAssertEqual(parser.parse(b), .complete(headLength: 35))
            XCTAssertEqual(parser.methodRange, 0..<3)
            XCTAssertEqual(parser.targetRange, 4..<8)
            XCTAssertEqual(parser.pathRange, 4..<6)
            XCTAssertEqual(parser.queryRange, 7..<8)
            XCTAssertEqual(parser.headerCount, 2)
            XCTAssertEqual(parser.headerNameRange(at: 0), 19..<23)
            XCTAssertEqual(parser.headerValueRange(at: 0), 25..<26)
            XCTAssertEqual(parser.headerNameRange(at: 1), 28..<29)
            XCTAssertEqual(parser.headerValueRange(at: 1), 30..<31)
            XCTAssertEqual(parser.hostRange, 25..<26)
        }
    }

    func testParserIsReusableAfterFailureAndCompletion() {
        var parser = RequestHeadParser()
        let bad = bytes("GET / HTTP/1.1\r\nHost : h\r\n\r\n")
        let good = bytes("POST /ok HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n")
        bad.withUnsafeBytes { b in
            XCTAssertEqual(parser.parse(b), .failure(HTTPParseError(.whitespaceBeforeColon)))
        }
        good.withUnsafeBytes { b in
            XCTAssertEqual(parser.parse(b), .complete(headLength: good.count))
            XCTAssertEqual(parser.method, .post)
            XCTAssertEqual(parser.headerCount, 2)
            XCTAssertEqual(parser.bodyFraming, .contentLength(1))
        }
        let old = bytes("GET / HTTP/1.0\r\n\r\n")
        old.withUnsafeBytes { b in
            XCTAssertEqual(parser.parse(b), .complete(headLength: old.count))
            XCTAssertEqual(parser.headerCount, 0)
            XCTAssertNil(parser.hostRange)
            XCTAssertEqual(parser.bodyFraming, BodyFraming.none)
        }
    }

    func testResetDiscardsPartialProgress() {
        var parser = RequestHeadParser()
        let partial = bytes("GET /a HTTP/1.1\r\nHo")
        partial.withUnsafeBytes { XCTAssertEqual(parser.parse($0), .incomplete) }
        parser.reset()
        let other = bytes("PUT /b HTTP/1.1\r\nHost: x\r\n\r\n")
        other.withUnsafeBytes { b in
            XCTAssertEqual(parser.parse(b), .complete(headLength: other.count))
            XCTAssertEqual(text(b, parser.targetRange), "/b")
        }
        // A buffer shorter than what was already scanned cannot be the same head: start over.
        let long = bytes("GET /aaaaaaaaaa HTTP/1.1\r\nHost: x\r\n")
        long.withUnsafeBytes { XCTAssertEqual(parser.parse($0), .incomplete) }
        let short = bytes("GET /c HTTP/1.0\r\n\r\n")
        short.withUnsafeBytes { b in
            XCTAssertEqual(parser.parse(b), .complete(headLength: short.count))
            XCTAssertEqual(text(b, parser.targetRange), "/c")
        }
    }

    func testIncompleteHeadStaysIncomplete() {
        for raw in ["GET / HTTP/1.1\r\nHost: h\r\n", "GET / HTTP/1.1\r\nHost: h\r\n\r", "\r\n", "\r\n\r", "G", ""] {
            var parser = RequestHeadParser()
            let b = bytes(raw)
            b.withUnsafeBytes { XCTAssertEqual(parser.parse($0), .incomplete, raw.debugDescription) }
        }
    }

    // MARK: Limits

    /// A head of exactly `length` bytes: request line, Host, one padding field, CRLF.
    func head(length: Int) -> [UInt8] {
        let start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: "
        let end = "\r\n\r\n"
        let pad = length - start.utf8.count - end.utf8.count
        return bytes(start + String(repeating: "a", count: pad) + end)
    }

    func testHeadOfExactly64KiBIsAccepted() {
        for length in [65535, 65536] {
            let raw = head(length: length)
            XCTAssertEqual(raw.count, length)
            XCTAssertEqual(checkRequest(raw).result, .complete(headLength: length))
        }
    }

    func testHeadOneByteOver64KiBIs431() {
        assertRequestFails(head(length: 65537), .headTooLarge, status: 431)
        // No terminator at all: fails as soon as 64 KiB arrived.
        assertRequestFails(bytes("GET / HTTP/1.1\r\nX: " + String(repeating: "b", count: 70000)), .headTooLarge, status: 431)
    }

    func testFullBufferWithoutTerminatorFailsAtOnce() {
        // A caller with a maxHeaderBytes-sized buffer must get 431 when it is full, not .incomplete.
        let raw = bytes("GET / HTTP/1.1\r\nHost: h\r\nX: abc\r\n\r")  // 34 bytes, one short of a head
        for (limit, expected) in [(35, HeadParseResult.incomplete), (34, .failure(HTTPParseError(.headTooLarge)))] {
            var parser = RequestHeadParser(maxHeaderBytes: limit)
            raw.withUnsafeBytes { XCTAssertEqual(parser.parse($0), expected, "limit \(limit)") }
        }
        var stepped = RequestHeadParser(maxHeaderBytes: 34)
        raw.withUnsafeBytes { all in
            for k in 1..<34 { XCTAssertEqual(stepped.parse(UnsafeRawBufferPointer(rebasing: all[0..<k])), .incomplete) }
            XCTAssertEqual(stepped.parse(all), .failure(HTTPParseError(.headTooLarge)))
        }
        var response = ResponseHeadParser(maxHeaderBytes: 20)
        bytes("HTTP/1.1 200 OK\r\nA: b").withUnsafeBytes {
            XCTAssertEqual(response.parse($0), .failure(HTTPParseError(.headTooLarge, status: 502)))
        }
    }

    func testLeadingEmptyLinesCountTowardsTheLimit() {
        let raw = bytes("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")  // 29 bytes
        XCTAssertEqual(checkRequest(raw, maxHeaderBytes: 29).result, .complete(headLength: 29))
        assertRequestFails(raw, .headTooLarge, status: 431, maxHeaderBytes: 28)
        assertRequestFails(bytes(String(repeating: "\r\n", count: 20)), .headTooLarge, status: 431, maxHeaderBytes: 16)
    }

    func testTooManyHeadersIs431() {
        var head = "GET / HTTP/1.1\r\nHost: h\r\n"
        for i in 1...100 { head += "X-\(i): v\r\n" }
        assertRequestFails(head + "\r\n", .tooManyHeaders, status: 431)
        let three = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"
        XCTAssertEqual(checkRequest(bytes(three), maxHeaders: 3).fields.count, 3)
        assertRequestFails(three, .tooManyHeaders, status: 431, maxHeaders: 2)
    }

    // MARK: Request line errors

    func testMalformedRequestLines() {
        for raw in [
            "GET\r\nHost: h\r\n\r\n",
            "GET /\r\nHost: h\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            " GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / \r\nHost: h\r\n\r\n",
        ] {
            assertRequestFails(raw, .badRequestLine, status: 400)
        }
    }

    func testBadMethodToken() {
        assertRequestFails("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", .badMethod, status: 400)
        assertRequestFails("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", .badMethod, status: 400)
        assertRequestFails(bytes("G\u{1}ET / HTTP/1.1\r\nHost: h\r\n\r\n"), .badMethod, status: 400)
    }

    func testBadStartLineFailsWithoutWaitingForTheTerminator() {
        var parser = RequestHeadParser()
        let raw = bytes("BAD@METHOD / HTTP/1.1\r\n")
        raw.withUnsafeBytes { XCTAssertEqual(parser.parse($0), .failure(HTTPParseError(.badMethod))) }
        var second = RequestHeadParser()
        let version = bytes("GET / HTTP/2.0\r\nHost")
        version.withUnsafeBytes { XCTAssertEqual(second.parse($0), .failure(HTTPParseError(.unsupportedVersion))) }
    }

    func testBadTarget() {
        assertRequestFails(bytes("GET /a\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n"), .badTarget, status: 400)
        assertRequestFails(bytes("GET /caf\u{E9} HTTP/1.1\r\nHost: h\r\n\r\n"), .badTarget, status: 400)
        assertRequestFails(bytes("GET /a\u{0}b HTTP/1.1\r\nHost: h\r\n\r\n"), .badTarget, status: 400)
    }

    func testMalformedVersionIs400() {
        for version in ["HTTP/1.x", "HTTPS/1.1", "http/1.1", "HTTP/11", "HTTP/1.1 ", "HTTP/1.1x", "HTTP/2", "HTTP-1.1"] {
            assertRequestFails("GET / \(version)\r\nHost: h\r\n\r\n", .badVersion, status: 400)
        }
    }

    func testUnsupportedVersionIs505() {
        for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"] {
            assertRequestFails("GET / \(version)\r\nHost: h\r\n\r\n", .unsupportedVersion, status: 505)
        }
    }

    // MARK: Field line errors

    func testWhitespaceBeforeColonIs400() {
        assertRequestFails("GET / HTTP/1.1\r\nHost : h\r\n\r\n", .whitespaceBeforeColon, status: 400)
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 5\r\n\r\n", .whitespaceBeforeColon, status: 400)
    }

    func testObsFoldIs400() {
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n b\r\n\r\n", .obsFold, status: 400)
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n\tb\r\n\r\n", .obsFold, status: 400)
        // A first field line starting with whitespace is folding too.
        assertRequestFails("GET / HTTP/1.1\r\n Host: h\r\n\r\n", .obsFold, status: 400)
    }

    func testInvalidFieldNames() {
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\r\nX(Y): 1\r\n\r\n", .badHeaderName, status: 400)
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", .badHeaderName, status: 400)
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", .badHeaderName, status: 400)
        assertRequestFails(bytes("GET / HTTP/1.1\r\nHost: h\r\nX-\u{E9}: 1\r\n\r\n"), .badHeaderName, status: 400)
    }

    func testControlCharactersInValues() {
        for control: UInt8 in [0x00, 0x01, 0x08, 0x0B, 0x0C, 0x1F, 0x7F] {
            var raw = bytes("GET / HTTP/1.1\r\nHost: h\r\nX-C: a")
            raw.append(control)
            raw += bytes("b\r\n\r\n")
            assertRequestFails(raw, .badHeaderValue, status: 400)
        }
    }

    func testBareCRIsRejected() {
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", .bareCR, status: 400)
        assertRequestFails("GET / HTTP/1.1\rHost: h\r\n\r\n", .bareCR, status: 400)
        assertRequestFails("\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", .bareCR, status: 400)
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", .bareCR, status: 400)
    }

    func testBareLFIsRejected() {
        assertRequestFails("GET / HTTP/1.1\nHost: h\n\n", .bareLF, status: 400)
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\n\r\n", .bareLF, status: 400)
        assertRequestFails("GET / HTTP/1.1\r\nHost: h\r\n\n", .bareLF, status: 400)
        assertRequestFails("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", .bareLF, status: 400)
    }

    // MARK: Framing and smuggling defences

    func testInvalidContentLength() {
        for value in ["abc", "-1", "+5", "5 5", "0x10", "", "1.0", "99999999999999999999", "9223372036854775808"] {
            assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(value)\r\n\r\n", .badContentLength, status: 400)
        }
        XCTAssertEqual(checkRequest(bytes("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n")).framing,
                       .contentLength(Int.max))
    }

    func testDuplicateContentLengthIsRejected() {
        assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", .duplicateContentLength, status: 400)
        assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\nhello", .duplicateContentLength, status: 400)
        assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello", .duplicateContentLength, status: 400)
        assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,6\r\n\r\nhello", .duplicateContentLength, status: 400)
    }

    func testContentLengthWithTransferEncodingIsRejected() {
        assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .contentLengthWithTransferEncoding, status: 400)
        assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", .contentLengthWithTransferEncoding, status: 400)
    }

    func testTransferEncodingMustEndInChunkedOnce() {
        for value in ["gzip", "chunked, gzip", "chunked, chunked", "", " , ", "chunked;q=1", "chunkedx"] {
            assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \(value)\r\n\r\n", .badTransferEncoding, status: 400)
        }
        // Two fields form one list: "chunked" then "chunked" is applied twice.
        assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .badTransferEncoding, status: 400)
    }

    func testOtherTransferCodingsAre501() {
        assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferCoding, status: 501)
        assertRequestFails("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", .unsupportedTransferCoding, status: 501)
    }

    func testTransferEncodingInHTTP10IsRejected() {
        assertRequestFails("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .transferEncodingInHTTP10, status: 400)
    }

    func testHostRules() {
        assertRequestFails("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", .missingHost, status: 400)
        assertRequestFails("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", .duplicateHost, status: 400)
        assertRequestFails("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", .duplicateHost, status: 400)
        XCTAssertEqual(checkRequest(bytes("GET / HTTP/1.1\r\nHost:\r\n\r\n")).host, "")
    }

    func testErrorsCarryAShortReason() {
        XCTAssertEqual(HTTPParseError(.duplicateContentLength).description, "400 multiple Content-Length values")
        XCTAssertEqual(HTTPParseError(.headTooLarge).status, 431)
        XCTAssertEqual(HTTPParseError(.unsupportedTransferCoding).status, 501)
        XCTAssertEqual(HTTPParseError(.unsupportedVersion).status, 505)
        for kind in HTTPParseError.Kind.allCases {
            XCTAssertGreaterThan(kind.reason.utf8CodeUnitCount, 3, "\(kind)")
        }
    }
}
