/// An incremental HTTP/1.1 response-head parser for the load generator (and for a proxy reading
/// upstream responses). Same calling convention, ownership and threading rules as
/// `RequestHeadParser`: call `parse` with everything received so far until it returns `.complete`;
/// ranges are offsets into that buffer; the slot table is allocated once in `init`.
///
/// Policies:
/// - Every error carries status 502 (a malformed upstream response is a gateway error).
/// - Lines end with CRLF only (bare CR or bare LF: error). No empty lines before the status line.
/// - Status line `HTTP/1.x SP 3DIGIT SP reason`; the status must be 100...599. A status line without
///   the SP after the code (`HTTP/1.1 200\r\n`) is accepted with an empty reason.
/// - Content-Length is as strict as for requests (one field, digits only). Content-Length with
///   Transfer-Encoding, or Transfer-Encoding in an HTTP/1.0 response, is an error (RFC 9112 §6.1
///   and §6.3 call these faulty framing).
/// - Framing (RFC 9112 §6.3): `.none` for responses to HEAD and for 1xx, 204 and 304 whatever the
///   fields say; else `.chunked` when `chunked` is the final transfer coding (other codings before
///   it are allowed; `chunked` twice is an error), `.untilClose` when Transfer-Encoding is present
///   but `chunked` is not final, `.contentLength(n)` with a Content-Length, `.untilClose` otherwise.
/// - `keepAlive` follows the version default and Connection tokens, and is false for `.untilClose`.
public struct ResponseHeadParser {
    public let maxHeaderBytes: Int
    public let maxHeaders: Int

    @usableFromInline var headers: HeaderTable
    @usableFromInline var scanner = HeadScanner()
    @usableFromInline var phase: ParsePhase = .scanning
    @usableFromInline var startLineParsed = false

    @usableFromInline var _headLength = 0
    @usableFromInline var _statusCode = 0
    @usableFromInline var _reasonRange: Range<Int> = 0..<0
    @usableFromInline var _version: HTTPVersion = .http1_1
    @usableFromInline var _bodyFraming: BodyFraming = .none
    @usableFromInline var _keepAlive = false
    @usableFromInline var _declaresBody = false

    public init(maxHeaderBytes: Int = 65536, maxHeaders: Int = 100) {
        precondition(maxHeaderBytes > 0 && maxHeaderBytes <= Int(Int32.max), "maxHeaderBytes out of range")
        precondition(maxHeaders >= 0, "maxHeaders must not be negative")
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
        self.headers = HeaderTable(capacity: maxHeaders)
    }

    // MARK: Results (valid after `.complete`)

    @inlinable public var headLength: Int { _headLength }
    @inlinable public var statusCode: Int { _statusCode }
    /// The reason phrase (possibly empty).
    @inlinable public var reasonRange: Range<Int> { _reasonRange }
    @inlinable public var version: HTTPVersion { _version }
    @inlinable public var bodyFraming: BodyFraming { _bodyFraming }
    @inlinable public var keepAlive: Bool { _keepAlive }
    /// The fields declare a body (Transfer-Encoding, or a non-zero Content-Length), whatever the
    /// framing: a 204 that does is malformed to Envoy's codec.
    @inlinable public var declaresBody: Bool { _declaresBody }
    /// 1xx: another head (the final response) follows this one on the connection.
    @inlinable public var isInformational: Bool { _statusCode < 200 }
    @inlinable public var headerCount: Int { headers.count }

    @inlinable
    public func headerNameRange(at index: Int) -> Range<Int> { headers.nameRange(at: index) }

    @inlinable
    public func headerValueRange(at index: Int) -> Range<Int> { headers.valueRange(at: index) }

    @inlinable
    public func firstValueRange(ofHeader name: StaticString, in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        headers.firstValueRange(ofHeader: name, in: bytes)
    }

    // MARK: Parsing

    @inlinable
    public mutating func reset() {
        scanner.reset()
        phase = .scanning
        startLineParsed = false
        headers.count = 0
        _headLength = 0
    }

    /// Parses the response head at the start of `bytes`.
    /// - Parameter isResponseToHEAD: the request was HEAD, so no body follows whatever the fields say.
    @inlinable
    public mutating func parse(_ bytes: UnsafeRawBufferPointer, isResponseToHEAD: Bool = false) -> ResponseParseResult {
        // A new message after a result, or (misuse) a buffer shorter than what was scanned.
        if phase != .scanning || bytes.count < scanner.scanned { reset() }
        let outcome = scanner.scan(bytes, maxHeaderBytes: maxHeaderBytes, skipLeadingEmptyLines: false)
        if !startLineParsed && scanner.startLineEnd >= 0 {
            if let kind = parseStatusLine(bytes, start: scanner.headStart, lineEnd: scanner.startLineEnd - 2) {
                return fail(kind)
            }
            startLineParsed = true
        }
        switch outcome {
        case .needMore:
            return .incomplete
        case .failure(let kind):
            return fail(kind)
        case .found(let end):
            if let kind = parseFields(bytes, from: scanner.startLineEnd, isResponseToHEAD: isResponseToHEAD) {
                return fail(kind)
            }
            phase = .complete
            _headLength = end
            return .complete(headLength: end)
        }
    }

    @inlinable
    mutating func fail(_ kind: HTTPParseError.Kind) -> ResponseParseResult {
        phase = .failed
        return .failure(HTTPParseError(kind, status: 502))
    }

    @inlinable
    mutating func parseStatusLine(_ bytes: UnsafeRawBufferPointer, start: Int, lineEnd: Int) -> HTTPParseError.Kind? {
        // "HTTP/1.1 200" is 12 bytes.
        if lineEnd - start < 12 || bytes[start + 8] != ASCII.space { return .badStatusLine }
        switch VersionToken.parse(bytes, at: start) {
        case .failure(let kind): return kind
        case .version(let version): _version = version
        }
        let d0 = bytes[start + 9] &- 0x30
        let d1 = bytes[start + 10] &- 0x30
        let d2 = bytes[start + 11] &- 0x30
        if d0 > 9 || d1 > 9 || d2 > 9 { return .badStatusCode }
        let code = Int(d0) * 100 + Int(d1) * 10 + Int(d2)
        if code < 100 || code > 599 { return .badStatusCode }
        var p = start + 12
        if p < lineEnd {
            if bytes[p] != ASCII.space { return .badStatusCode }
            p += 1
            var i = p
            while i < lineEnd {
                if !ASCII.isFieldValueByte(bytes[i]) { return .badStatusLine }
                i += 1
            }
        }
        _statusCode = code
        _reasonRange = p..<lineEnd
        return nil
    }

    @inlinable
    mutating func parseFields(
        _ bytes: UnsafeRawBufferPointer, from start: Int, isResponseToHEAD: Bool
    ) -> HTTPParseError.Kind? {
        var p = start
        var count = 0
        var facts = FramingFacts()
        let slots = headers.storage.base
        loop: while true {
            switch FieldLine.parse(bytes, at: p) {
            case .end:
                break loop
            case .failure(let kind):
                return kind
            case .field(let name, let value, let next):
                if count == maxHeaders { return .tooManyHeaders }
                slots[count] = HeaderSlot(
                    nameStart: name.lowerBound, nameEnd: name.upperBound,
                    valueStart: value.lowerBound, valueEnd: value.upperBound)
                count += 1
                p = next
                switch KnownField.classify(bytes, name) {
                case .contentLength:
                    if let kind = facts.addContentLength(bytes, value) { return kind }
                case .transferEncoding:
                    facts.addTransferEncoding(bytes, value)
                case .connection:
                    facts.addConnection(bytes, value)
                case .host, .expect, .upgrade, .other:
                    break
                }
            }
        }
        headers.count = count

        if facts.hasTransferEncoding {
            if _version == .http1_0 { return .transferEncodingInHTTP10 }
            if facts.contentLength >= 0 { return .contentLengthWithTransferEncoding }
            if facts.chunkedCount > 1 { return .badTransferEncoding }
        }
        let code = _statusCode
        _declaresBody = facts.hasTransferEncoding || facts.contentLength > 0
        if isResponseToHEAD || code < 200 || code == 204 || code == 304 {
            _bodyFraming = .none
        } else if facts.hasTransferEncoding {
            _bodyFraming = facts.lastCodingIsChunked ? .chunked : .untilClose
        } else if facts.contentLength >= 0 {
            _bodyFraming = .contentLength(facts.contentLength)
        } else {
            _bodyFraming = .untilClose
        }
        _keepAlive = _bodyFraming != .untilClose && facts.keepAlive(_version)
        return nil
    }
}
