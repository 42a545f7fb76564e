import HTTP1
import XCTest

// Helpers that feed every parser case three ways — whole, byte by byte (a growing prefix of one
// buffer) and pipelined (behind and ahead of other messages in one buffer) — assert that all three
// agree, and return what the parser saw as plain values.

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

func text(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> String {
    String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self)
}

struct Field: Equatable, CustomStringConvertible {
    var name: String
    var value: String
    var nameRange: Range<Int>
    var valueRange: Range<Int>
    var description: String { "\(name): \(value) @\(nameRange)/\(valueRange)" }
}

struct RequestSnapshot: Equatable {
    var result: HeadParseResult
    var method: HTTPMethod? = nil
    var methodText = ""
    var target = ""
    var path = ""
    var query: String? = nil
    var targetRange: Range<Int> = 0..<0
    var version: HTTPVersion? = nil
    var fields: [Field] = []
    var framing: BodyFraming? = nil
    var keepAlive: Bool? = nil
    var expectsContinue: Bool? = nil
    var upgrade: String? = nil
    var host: String? = nil

    var error: HTTPParseError? {
        if case .failure(let e) = result { return e }
        return nil
    }
    var headLength: Int? {
        if case .complete(let n) = result { return n }
        return nil
    }
    func field(_ name: String) -> String? { fields.first { $0.name.lowercased() == name.lowercased() }?.value }
}

func snapshot(_ p: RequestHeadParser, _ result: HeadParseResult, _ b: UnsafeRawBufferPointer) -> RequestSnapshot {
    var s = RequestSnapshot(result: result)
    guard case .complete = result else { return s }
    s.method = p.method
    s.methodText = text(b, p.methodRange)
    s.target = text(b, p.targetRange)
    s.targetRange = p.targetRange
    s.path = text(b, p.pathRange)
    s.query = p.queryRange.map { text(b, $0) }
    s.version = p.version
    for i in 0..<p.headerCount {
        let n = p.headerNameRange(at: i)
        let v = p.headerValueRange(at: i)
        s.fields.append(Field(name: text(b, n), value: text(b, v), nameRange: n, valueRange: v))
    }
    s.framing = p.bodyFraming
    s.keepAlive = p.keepAlive
    s.expectsContinue = p.expectsContinue
    s.host = p.hostRange.map { text(b, $0) }
    s.upgrade = p.upgradeRange.map { text(b, $0) }
    return s
}

let leadRequest = bytes("GET /lead HTTP/1.1\r\nHost: lead\r\n\r\n")
let tailRequest = bytes("DELETE /tail HTTP/1.1\r\nHost: tail\r\nConnection: close\r\n\r\n")

/// Length of the body that follows a head in `rest`, found with the framing (chunked is decoded).
func bodyLength(_ framing: BodyFraming, _ rest: UnsafeRawBufferPointer, file: StaticString, line: UInt) -> Int? {
    switch framing {
    case .none: return 0
    case .contentLength(let n): return n
    case .untilClose: return nil
    case .chunked:
        var decoder = ChunkedDecoder()
        var pos = 0
        while true {
            switch decoder.decode(UnsafeRawBufferPointer(rebasing: rest[pos...])) {
            case .data(_, let c): pos += c
            case .done(let c): return pos + c
            case .needMore, .failure:
                XCTFail("chunked body in pipelined case did not end", file: file, line: line)
                return nil
            }
        }
    }
}

@discardableResult
func checkRequest(
    _ raw: [UInt8], maxHeaderBytes: Int = 65536, maxHeaders: Int = 100,
    file: StaticString = #filePath, line: UInt = #line
) -> RequestSnapshot {
    // (a) whole
    var parser = RequestHeadParser(maxHeaderBytes: maxHeaderBytes, maxHeaders: maxHeaders)
    let whole = raw.withUnsafeBytes { b in
        let r = parser.parse(b)
        return snapshot(parser, r, b)
    }

    // (b) byte by byte: a growing prefix of the same buffer, one parser
    var incremental = RequestHeadParser(maxHeaderBytes: maxHeaderBytes, maxHeaders: maxHeaders)
    let stepped: RequestSnapshot = raw.withUnsafeBytes { all in
        for k in 1...max(all.count, 1) where k <= all.count {
            let prefix = UnsafeRawBufferPointer(rebasing: all[0..<k])
            let r = incremental.parse(prefix)
            if r == .incomplete { continue }
            if case .complete(let n) = r {
                XCTAssertEqual(n, k, "completed before or after the terminator arrived", file: file, line: line)
            }
            return snapshot(incremental, r, prefix)
        }
        return RequestSnapshot(result: .incomplete)
    }
    XCTAssertEqual(whole, stepped, "whole vs byte-by-byte", file: file, line: line)

    // (c) pipelined: lead request, this one, tail request, in one buffer and one parser
    // The neighbours only take part when they fit the parser's limits.
    if whole.result != .incomplete {
        let neighbours = leadRequest.count <= maxHeaderBytes && tailRequest.count <= maxHeaderBytes && maxHeaders >= 1
        let lead = neighbours ? leadRequest : []
        let buffer = lead + raw + (neighbours ? tailRequest : bytes("GET"))
        var pipe = RequestHeadParser(maxHeaderBytes: maxHeaderBytes, maxHeaders: maxHeaders)
        buffer.withUnsafeBytes { all in
            if neighbours {
                XCTAssertEqual(pipe.parse(all), .complete(headLength: lead.count), file: file, line: line)
                XCTAssertEqual(text(all, pipe.targetRange), "/lead", file: file, line: line)
            }
            let rest = UnsafeRawBufferPointer(rebasing: all[lead.count...])
            let r = pipe.parse(rest)
            let mine = snapshot(pipe, r, rest)
            XCTAssertEqual(whole, mine, "whole vs pipelined", file: file, line: line)
            guard neighbours, case .complete(let n) = mine.result, let framing = mine.framing,
                let body = bodyLength(framing, UnsafeRawBufferPointer(rebasing: rest[n...]), file: file, line: line),
                body <= rest.count - n
            else { return }
            let next = UnsafeRawBufferPointer(rebasing: rest[(n + body)...])
            XCTAssertEqual(pipe.parse(next), .complete(headLength: tailRequest.count), file: file, line: line)
            XCTAssertEqual(pipe.method, .delete, file: file, line: line)
            XCTAssertEqual(text(next, pipe.targetRange), "/tail", file: file, line: line)
            XCTAssertFalse(pipe.keepAlive, file: file, line: line)
        }
    }
    return whole
}

func assertRequestFails(
    _ raw: String, _ kind: HTTPParseError.Kind, status: Int,
    maxHeaderBytes: Int = 65536, maxHeaders: Int = 100,
    file: StaticString = #filePath, line: UInt = #line
) {
    assertRequestFails(bytes(raw), kind, status: status, maxHeaderBytes: maxHeaderBytes, maxHeaders: maxHeaders,
                       file: file, line: line)
}

func assertRequestFails(
    _ raw: [UInt8], _ kind: HTTPParseError.Kind, status: Int,
    maxHeaderBytes: Int = 65536, maxHeaders: Int = 100,
    file: StaticString = #filePath, line: UInt = #line
) {
    let s = checkRequest(raw, maxHeaderBytes: maxHeaderBytes, maxHeaders: maxHeaders, file: file, line: line)
    XCTAssertEqual(s.error?.kind, kind, "result: \(s.result)", file: file, line: line)
    XCTAssertEqual(s.error?.status, status, file: file, line: line)
}

// MARK: Responses

struct ResponseSnapshot: Equatable {
    var result: HeadParseResult
    var status = 0
    var reason = ""
    var version: HTTPVersion? = nil
    var fields: [Field] = []
    var framing: BodyFraming? = nil
    var keepAlive: Bool? = nil
    var informational: Bool? = nil

    var error: HTTPParseError? {
        if case .failure(let e) = result { return e }
        return nil
    }
}

func snapshot(_ p: ResponseHeadParser, _ result: HeadParseResult, _ b: UnsafeRawBufferPointer) -> ResponseSnapshot {
    var s = ResponseSnapshot(result: result)
    guard case .complete = result else { return s }
    s.status = p.statusCode
    s.reason = text(b, p.reasonRange)
    s.version = p.version
    for i in 0..<p.headerCount {
        let n = p.headerNameRange(at: i)
        let v = p.headerValueRange(at: i)
        s.fields.append(Field(name: text(b, n), value: text(b, v), nameRange: n, valueRange: v))
    }
    s.framing = p.bodyFraming
    s.keepAlive = p.keepAlive
    s.informational = p.isInformational
    return s
}

let leadResponse = bytes("HTTP/1.1 100 Continue\r\n\r\n")
let tailResponse = bytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

@discardableResult
func checkResponse(
    _ raw: [UInt8], isResponseToHEAD: Bool = false, maxHeaderBytes: Int = 65536,
    file: StaticString = #filePath, line: UInt = #line
) -> ResponseSnapshot {
    var parser = ResponseHeadParser(maxHeaderBytes: maxHeaderBytes)
    let whole = raw.withUnsafeBytes { b in
        let r = parser.parse(b, isResponseToHEAD: isResponseToHEAD)
        return snapshot(parser, r, b)
    }

    var incremental = ResponseHeadParser(maxHeaderBytes: maxHeaderBytes)
    let stepped: ResponseSnapshot = raw.withUnsafeBytes { all in
        for k in 1...max(all.count, 1) where k <= all.count {
            let prefix = UnsafeRawBufferPointer(rebasing: all[0..<k])
            let r = incremental.parse(prefix, isResponseToHEAD: isResponseToHEAD)
            if r == .incomplete { continue }
            if case .complete(let n) = r {
                XCTAssertEqual(n, k, "completed before or after the terminator arrived", file: file, line: line)
            }
            return snapshot(incremental, r, prefix)
        }
        return ResponseSnapshot(result: .incomplete)
    }
    XCTAssertEqual(whole, stepped, "whole vs byte-by-byte", file: file, line: line)

    if whole.result != .incomplete {
        let neighbours = leadResponse.count <= maxHeaderBytes && tailResponse.count <= maxHeaderBytes
        let lead = neighbours ? leadResponse : []
        let buffer = lead + raw + (neighbours ? tailResponse : bytes("HTTP"))
        var pipe = ResponseHeadParser(maxHeaderBytes: maxHeaderBytes)
        buffer.withUnsafeBytes { all in
            if neighbours {
                XCTAssertEqual(pipe.parse(all), .complete(headLength: lead.count), file: file, line: line)
                XCTAssertTrue(pipe.isInformational, file: file, line: line)
            }
            let rest = UnsafeRawBufferPointer(rebasing: all[lead.count...])
            let r = pipe.parse(rest, isResponseToHEAD: isResponseToHEAD)
            let mine = snapshot(pipe, r, rest)
            XCTAssertEqual(whole, mine, "whole vs pipelined", file: file, line: line)
            guard neighbours, case .complete(let n) = mine.result, let framing = mine.framing,
                let body = bodyLength(framing, UnsafeRawBufferPointer(rebasing: rest[n...]), file: file, line: line),
                body <= rest.count - n
            else { return }
            let next = UnsafeRawBufferPointer(rebasing: rest[(n + body)...])
            XCTAssertEqual(pipe.parse(next), .complete(headLength: tailResponse.count), file: file, line: line)
            XCTAssertEqual(pipe.statusCode, 404, file: file, line: line)
        }
    }
    return whole
}

func assertResponseFails(
    _ raw: String, _ kind: HTTPParseError.Kind, isResponseToHEAD: Bool = false,
    file: StaticString = #filePath, line: UInt = #line
) {
    let s = checkResponse(bytes(raw), isResponseToHEAD: isResponseToHEAD, file: file, line: line)
    XCTAssertEqual(s.error?.kind, kind, "result: \(s.result)", file: file, line: line)
    XCTAssertEqual(s.error?.status, 502, file: file, line: line)
}

// MARK: Chunked bodies

enum ChunkedOutcome: Equatable {
    case done
    case needMore
    case failure(HTTPParseError.Kind)
}

struct ChunkedRun: Equatable {
    var payload: [UInt8] = []
    var consumed = 0
    var outcome = ChunkedOutcome.needMore
    var dataSteps = 0
}

/// Streams `input` into a decoder in pieces of `pieceSize` bytes, the way a connection would.
func runChunked(_ input: [UInt8], pieceSize: Int, decoder: ChunkedDecoder = ChunkedDecoder()) -> ChunkedRun {
    var decoder = decoder
    var run = ChunkedRun()
    input.withUnsafeBytes { all in
        var available = min(pieceSize, all.count)
        while true {
            let window = UnsafeRawBufferPointer(rebasing: all[run.consumed..<available])
            switch decoder.decode(window) {
            case .data(let r, let c):
                XCTAssertFalse(r.isEmpty)
                XCTAssertEqual(r.upperBound, c)
                run.payload += window[r]
                run.consumed += c
                run.dataSteps += 1
            case .needMore(let c):
                XCTAssertEqual(c, window.count)
                run.consumed += c
                if available == all.count {
                    run.outcome = .needMore
                    return
                }
                available = min(available + pieceSize, all.count)
            case .done(let c):
                run.consumed += c
                run.outcome = .done
                XCTAssertTrue(decoder.isDone)
                return
            case .failure(let e):
                run.outcome = .failure(e.kind)
                return
            }
        }
    }
    return run
}

/// Decodes whole, byte by byte, and in pieces of 2, 3 and 7 bytes; all must agree.
@discardableResult
func checkChunked(
    _ input: [UInt8], decoder: ChunkedDecoder = ChunkedDecoder(),
    file: StaticString = #filePath, line: UInt = #line
) -> ChunkedRun {
    let whole = runChunked(input, pieceSize: max(input.count, 1), decoder: decoder)
    for piece in [1, 2, 3, 7] {
        var other = runChunked(input, pieceSize: piece, decoder: decoder)
        other.dataSteps = whole.dataSteps
        var w = whole
        if case .failure = w.outcome { w.consumed = 0; other.consumed = 0 }  // consumed is not reported on failure
        XCTAssertEqual(w, other, "whole vs pieces of \(piece)", file: file, line: line)
    }
    return whole
}
