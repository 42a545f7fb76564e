/// An incremental HTTP/1.1 request-head parser that does not allocate after `init`.
///
/// Usage: keep the bytes received so far in one contiguous buffer and call `parse` each time more
/// arrive. `.incomplete` means "call again with the same bytes plus more"; the parser remembers how
/// far it scanned for CRLFCRLF, so a re-call only looks at new bytes until the head is complete.
/// After `.complete(headLength:)` the accessors describe the head; every range is an offset from
/// the start of the buffer passed to that last `parse` call and stays meaningful as long as those
/// bytes do. The next `parse` call starts a new head (no explicit reset is needed); for pipelining,
/// pass the bytes after `headLength` (and after the body) as a new buffer.
///
/// Ownership and threads: the header-slot table (`maxHeaders` slots of 16 bytes) is allocated once in
/// `init` and owned by a private final class; it is freed when the last copy of the parser goes away.
/// Copies of a parser share that table, so do not use two copies independently. A parser is used by
/// one thread (one connection) at a time; it is not `Sendable`.
///
/// Policies (strict on purpose; this parser sits in front of a proxy):
/// - Lines end with CRLF only. A bare LF or a bare CR anywhere in the head is rejected with 400
///   (RFC 9112 §2.2 allows either leniency; refusing both keeps proxy and upstream in agreement).
/// - Empty lines (CRLF) before the request line are skipped; they count towards `maxHeaderBytes`
///   and `headLength`.
/// - A head is accepted when `headLength <= maxHeaderBytes`; otherwise 431. More than `maxHeaders`
///   field lines is 431.
/// - Versions: `HTTP/1.0` and `HTTP/1.1` only; any other well-formed `HTTP/d.d` is 505.
/// - Request target: any run of visible ASCII (0x21-0x7E); bytes >= 0x80 or controls are 400.
/// - Field names must be tokens followed directly by ':' (whitespace before the colon is 400);
///   obs-fold is 400; values may hold HTAB, SP, VCHAR and obs-text, any other control is 400.
/// - Content-Length: one field, digits only. A second Content-Length field (even with an equal
///   value), a list such as `5, 5`, signs, spaces inside, or an overflow are all 400.
/// - Transfer-Encoding: allowed only in HTTP/1.1 (else 400) and never with Content-Length (400).
///   The codings of all TE fields form one list; `chunked` must appear exactly once and last,
///   otherwise 400. A list like `gzip, chunked` is well-formed but uses a coding this proxy does not
///   implement: 501.
/// - HTTP/1.1 requires exactly one Host field (missing or repeated: 400).
/// - `Expect: 100-continue` is honoured for HTTP/1.1 only; other expectations are ignored.
public struct RequestHeadParser {
    public private(set) var maxHeaderBytes: Int
    public private(set) var maxHeaders: Int
    /// The slot table's size: the largest `maxHeaders` the limits may be set to.
    public let slotCapacity: Int

    @usableFromInline var headers: HeaderTable
    @usableFromInline var scanner = HeadScanner()
    @usableFromInline var phase: ParsePhase = .scanning
    @usableFromInline var startLineParsed = false
    /// Resumed after the request line was judged by an earlier call: fill its fields at the end.
    @usableFromInline var startLineToFill = false

    @usableFromInline var _headLength = 0
    @usableFromInline var _method: HTTPMethod = .get
    @usableFromInline var _methodRange: Range<Int> = 0..<0
    @usableFromInline var _targetRange: Range<Int> = 0..<0
    @usableFromInline var _pathRange: Range<Int> = 0..<0
    @usableFromInline var _queryRange: Range<Int>? = nil
    @usableFromInline var _version: HTTPVersion = .http1_1
    @usableFromInline var _bodyFraming: BodyFraming = .none
    @usableFromInline var _keepAlive = false
    @usableFromInline var _expectsContinue = false
    @usableFromInline var _hostRange: Range<Int>? = nil
    @usableFromInline var _upgradeRange: Range<Int>? = nil

    /// - Parameters:
    ///   - maxHeaderBytes: the largest accepted head, final CRLFCRLF included (at most `Int32.max`).
    ///   - maxHeaders: the most field lines accepted.
    ///   - slotCapacity: the size of the slot table (at least `maxHeaders`; default `maxHeaders`),
    ///     so that `setLimits` may later raise `maxHeaders` up to it.
    public init(maxHeaderBytes: Int = 65536, maxHeaders: Int = 100, slotCapacity: Int? = nil) {
        precondition(maxHeaderBytes > 0 && maxHeaderBytes <= Int(Int32.max), "maxHeaderBytes out of range")
        precondition(maxHeaders >= 0, "maxHeaders must not be negative")
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = maxHeaders
        self.slotCapacity = max(maxHeaders, slotCapacity ?? maxHeaders)
        self.headers = HeaderTable(capacity: self.slotCapacity)
    }

    /// The limits for the next head (a proxy whose connections have different limits sets them
    /// before parsing each connection's head); `maxHeaders` is capped at `slotCapacity`.
    public mutating func setLimits(maxHeaderBytes: Int, maxHeaders: Int) {
        precondition(maxHeaderBytes > 0 && maxHeaderBytes <= Int(Int32.max), "maxHeaderBytes out of range")
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaders = min(max(0, maxHeaders), slotCapacity)
    }

    // MARK: Results (valid after `.complete`)

    /// Bytes from the buffer start to the end of the head's final CRLFCRLF.
    @inlinable public var headLength: Int { _headLength }
    @inlinable public var method: HTTPMethod { _method }
    @inlinable public var methodRange: Range<Int> { _methodRange }
    /// The whole request target, e.g. `/a/b?x=1`.
    @inlinable public var targetRange: Range<Int> { _targetRange }
    /// The target up to (excluding) the first '?'. For absolute-form targets this includes the
    /// scheme and authority; for authority-form (CONNECT) it is the authority.
    @inlinable public var pathRange: Range<Int> { _pathRange }
    /// The query after the first '?' (without it); nil when the target has no '?', empty for `/a?`.
    @inlinable public var queryRange: Range<Int>? { _queryRange }
    @inlinable public var version: HTTPVersion { _version }
    @inlinable public var bodyFraming: BodyFraming { _bodyFraming }
    /// Whether the connection may carry another request after this one.
    @inlinable public var keepAlive: Bool { _keepAlive }
    /// HTTP/1.1 request with `Expect: 100-continue`.
    @inlinable public var expectsContinue: Bool { _expectsContinue }
    /// The Host field value (nil when absent, which only HTTP/1.0 allows).
    @inlinable public var hostRange: Range<Int>? { _hostRange }
    /// The Upgrade field's value when the request asks for an upgrade: Connection lists
    /// `upgrade` and an Upgrade field is present (the first one; nil otherwise).
    @inlinable public var upgradeRange: Range<Int>? { _upgradeRange }
    @inlinable public var headerCount: Int { headers.count }

    @inlinable
    public func headerNameRange(at index: Int) -> Range<Int> { headers.nameRange(at: index) }

    /// The value with surrounding whitespace removed.
    @inlinable
    public func headerValueRange(at index: Int) -> Range<Int> { headers.valueRange(at: index) }

    /// The value of the first field named `name` (ASCII case-insensitive), or nil.
    /// `bytes` must be the buffer that was parsed.
    @inlinable
    public func firstValueRange(ofHeader name: StaticString, in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        headers.firstValueRange(ofHeader: name, in: bytes)
    }

    /// Narrows the Host field's value to `range`, a prefix of it (the connection manager removed
    /// its port: strip_any_host_port / strip_matching_host_port); every later reader of the head
    /// (routing, the upstream head, the access log) sees the narrowed value.
    @inlinable
    public mutating func narrowHost(to range: Range<Int>) {
        guard let host = _hostRange, range.lowerBound == host.lowerBound, range.upperBound <= host.upperBound else { return }
        _hostRange = range
        var i = 0
        while i < headers.count {
            if headers.storage.base[i].valueStart == Int32(host.lowerBound) && headers.storage.base[i].valueEnd == Int32(host.upperBound) {
                headers.storage.base[i].valueEnd = Int32(range.upperBound)
                return
            }
            i += 1
        }
    }

    // MARK: Parsing

    /// Forgets any partial progress. Not needed between messages: `parse` after `.complete` or
    /// `.failure` starts over by itself.
    @inlinable
    public mutating func reset() {
        scanner.reset()
        phase = .scanning
        startLineParsed = false
        startLineToFill = false
        headers.count = 0
        _queryRange = nil
        _hostRange = nil
        _upgradeRange = nil
        _expectsContinue = false
        _headLength = 0
    }

    /// Parses the head at the start of `bytes`, the data received so far.
    @inlinable
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> RequestParseResult {
        // A new message after a result, or (misuse) a buffer shorter than what was scanned.
        if phase != .scanning || bytes.count < scanner.scanned { reset() }
        let outcome = scanner.scan(bytes, maxHeaderBytes: maxHeaderBytes, skipLeadingEmptyLines: true)
        // Judge the request line as soon as it is complete, so garbage (say, a TLS hello) fails
        // without waiting for a terminator that never comes.
        if !startLineParsed && scanner.startLineEnd >= 0 {
            if let kind = parseRequestLine(bytes, start: scanner.headStart, lineEnd: scanner.startLineEnd - 2) {
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
            if startLineToFill {
                // Judged valid by an earlier call on these same bytes: only the fields are needed.
                startLineToFill = false
                if let kind = parseRequestLine(bytes, start: scanner.headStart, lineEnd: scanner.startLineEnd - 2) {
                    return fail(kind)
                }
            }
            if let kind = parseFields(bytes, from: scanner.startLineEnd) {
                return fail(kind)
            }
            phase = .complete
            _headLength = end
            return .complete(headLength: end)
        }
    }

    // MARK: Progress kept per connection

    /// How far the unfinished head was scanned after `.incomplete`. One parser can serve many
    /// connections: each keeps its own progress between reads and hands it back with `resume`,
    /// so a head that arrives in many small segments is scanned once, not from the start each time.
    @inlinable public var progress: RequestHeadProgress {
        RequestHeadProgress(scanner: scanner, startLineJudged: startLineParsed)
    }

    /// Continues the head whose progress this is: the next `parse` must get the same bytes (from
    /// the head's first byte) plus more. `RequestHeadProgress()` starts a new head.
    @inlinable
    public mutating func resume(_ p: RequestHeadProgress) {
        reset()
        scanner = p.scanner
        startLineParsed = p.startLineJudged
        startLineToFill = p.startLineJudged
    }

    @inlinable
    mutating func fail(_ kind: HTTPParseError.Kind) -> RequestParseResult {
        phase = .failed
        return .failure(HTTPParseError(kind))
    }

    /// `method SP request-target SP HTTP-version`, ending at `lineEnd` (the CR).
    @inlinable
    mutating func parseRequestLine(_ bytes: UnsafeRawBufferPointer, start: Int, lineEnd: Int) -> HTTPParseError.Kind? {
        var p = start
        while p < lineEnd && ASCII.isTokenChar(bytes[p]) { p += 1 }
        let methodRange = start..<p
        if p == lineEnd { return .badRequestLine }
        if bytes[p] != ASCII.space { return methodRange.isEmpty ? .badRequestLine : .badMethod }
        if methodRange.isEmpty { return .badRequestLine }
        p += 1

        let targetStart = p
        var question = -1
        while p < lineEnd {
            let b = bytes[p]
            if b == ASCII.space { break }
            if b < 0x21 || b > 0x7E { return .badTarget }
            if b == 0x3F && question < 0 { question = p }
            p += 1
        }
        if p == targetStart || p == lineEnd { return .badRequestLine }
        let targetEnd = p
        p += 1  // SP

        if p == lineEnd { return .badRequestLine }
        if lineEnd - p != 8 { return .badVersion }
        switch VersionToken.parse(bytes, at: p) {
        case .failure(let kind): return kind
        case .version(let version): _version = version
        }

        _method = Self.method(bytes, methodRange)
        _methodRange = methodRange
        _targetRange = targetStart..<targetEnd
        if question >= 0 {
            _pathRange = targetStart..<question
            _queryRange = (question + 1)..<targetEnd
        } else {
            _pathRange = targetStart..<targetEnd
            _queryRange = nil
        }
        return nil
    }

    @inlinable
    static func method(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPMethod {
        let s = range.lowerBound
        @inline(__always) func at(_ i: Int) -> UInt8 { bytes[s + i] }
        switch range.count {
        case 3:
            if at(0) == 0x47 && at(1) == 0x45 && at(2) == 0x54 { return .get }            // GET
            if at(0) == 0x50 && at(1) == 0x55 && at(2) == 0x54 { return .put }            // PUT
        case 4:
            if at(0) == 0x50 && at(1) == 0x4F && at(2) == 0x53 && at(3) == 0x54 { return .post }  // POST
            if at(0) == 0x48 && at(1) == 0x45 && at(2) == 0x41 && at(3) == 0x44 { return .head }  // HEAD
        case 5:
            if ASCII.equalsCaseSensitive(bytes, range, "PATCH") { return .patch }
            if ASCII.equalsCaseSensitive(bytes, range, "TRACE") { return .trace }
        case 6:
            if ASCII.equalsCaseSensitive(bytes, range, "DELETE") { return .delete }
        case 7:
            if ASCII.equalsCaseSensitive(bytes, range, "OPTIONS") { return .options }
            if ASCII.equalsCaseSensitive(bytes, range, "CONNECT") { return .connect }
        default:
            break
        }
        return .other(range)
    }

    @inlinable
    mutating func parseFields(_ bytes: UnsafeRawBufferPointer, from start: Int) -> HTTPParseError.Kind? {
        var p = start
        var count = 0
        var facts = FramingFacts()
        var hostCount = 0
        var expectContinue = false
        var upgrade: Range<Int>? = nil
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
                case .other:
                    break
                case .contentLength:
                    if let kind = facts.addContentLength(bytes, value) { return kind }
                case .transferEncoding:
                    facts.addTransferEncoding(bytes, value)
                case .connection:
                    facts.addConnection(bytes, value)
                case .host:
                    hostCount += 1
                    if hostCount > 1 { return .duplicateHost }
                    _hostRange = value
                case .expect:
                    if ASCII.equalsCaseInsensitive(bytes, value, "100-continue") { expectContinue = true }
                case .upgrade:
                    if upgrade == nil { upgrade = value }
                }
            }
        }
        headers.count = count

        if facts.hasTransferEncoding {
            if _version == .http1_0 { return .transferEncodingInHTTP10 }
            if facts.contentLength >= 0 { return .contentLengthWithTransferEncoding }
            if facts.chunkedCount != 1 || !facts.lastCodingIsChunked { return .badTransferEncoding }
            if facts.codingCount != 1 { return .unsupportedTransferCoding }
            _bodyFraming = .chunked
        } else if facts.contentLength >= 0 {
            _bodyFraming = .contentLength(facts.contentLength)
        } else {
            _bodyFraming = .none
        }
        if _version == .http1_1 && hostCount == 0 { return .missingHost }
        _keepAlive = facts.keepAlive(_version)
        _expectsContinue = expectContinue && _version == .http1_1
        _upgradeRange = facts.connectionUpgrade ? upgrade : nil
        return nil
    }
}

/// The scan state of an unfinished request head (`RequestHeadParser.progress`): a few integers a
/// connection keeps between reads.
public struct RequestHeadProgress {
    @usableFromInline var scanner: HeadScanner
    @usableFromInline var startLineJudged: Bool

    /// No head started.
    @inlinable public init() {
        scanner = HeadScanner()
        startLineJudged = false
    }

    @inlinable init(scanner: HeadScanner, startLineJudged: Bool) {
        self.scanner = scanner
        self.startLineJudged = startLineJudged
    }

    /// Bytes of the head already scanned (a resumed `parse` starts there).
    @inlinable public var scannedBytes: Int { scanner.scanned }
}

@usableFromInline
enum ParsePhase {
    case scanning, complete, failed
}

extension ASCII {
    /// Exact (case-sensitive) comparison of `bytes[range]` with an ASCII literal.
    @inlinable
    public static func equalsCaseSensitive(
        _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString
    ) -> Bool {
        literal.withUTF8Buffer { lit in
            if lit.count != range.count { return false }
            var i = 0
            while i < lit.count {
                if bytes[range.lowerBound + i] != lit[i] { return false }
                i += 1
            }
            return true
        }
    }
}
