// Machinery shared by RequestHeadParser and ResponseHeadParser: the resumable CRLFCRLF scanner,
// the fixed header-slot table, field-line parsing and the framing facts gathered from the
// Content-Length, Transfer-Encoding and Connection fields. Internal, but @usableFromInline so that
// the public parsers can be inlined into other modules.

/// One parsed field line, as offsets from the start of the parsed buffer.
@usableFromInline
struct HeaderSlot {
    @usableFromInline var nameStart: Int32
    @usableFromInline var nameEnd: Int32
    @usableFromInline var valueStart: Int32
    @usableFromInline var valueEnd: Int32

    @inlinable
    init(nameStart: Int, nameEnd: Int, valueStart: Int, valueEnd: Int) {
        self.nameStart = Int32(truncatingIfNeeded: nameStart)
        self.nameEnd = Int32(truncatingIfNeeded: nameEnd)
        self.valueStart = Int32(truncatingIfNeeded: valueStart)
        self.valueEnd = Int32(truncatingIfNeeded: valueEnd)
    }

    @inlinable var nameRange: Range<Int> { Int(nameStart)..<Int(nameEnd) }
    @inlinable var valueRange: Range<Int> { Int(valueStart)..<Int(valueEnd) }
}

/// Owns the header-slot memory of one parser: allocated once in the parser's init, freed when the
/// last parser value referring to it goes away. Copies of a parser share it (see the parsers' docs).
@usableFromInline
final class HeaderSlotStorage {
    @usableFromInline let base: UnsafeMutablePointer<HeaderSlot>
    @usableFromInline let capacity: Int

    @usableFromInline
    init(capacity: Int) {
        self.capacity = capacity
        self.base = UnsafeMutablePointer<HeaderSlot>.allocate(capacity: Swift.max(capacity, 1))
        self.base.initialize(
            repeating: HeaderSlot(nameStart: 0, nameEnd: 0, valueStart: 0, valueEnd: 0),
            count: Swift.max(capacity, 1))
    }

    deinit {
        base.deallocate()
    }
}

/// The header table plus a lookup. `count` is valid only after a successful parse.
@usableFromInline
struct HeaderTable {
    @usableFromInline let storage: HeaderSlotStorage
    @usableFromInline var count: Int = 0

    @inlinable
    init(capacity: Int) {
        storage = HeaderSlotStorage(capacity: capacity)
    }

    @inlinable
    func nameRange(at index: Int) -> Range<Int> {
        precondition(index >= 0 && index < count, "header index out of range")
        return storage.base[index].nameRange
    }

    @inlinable
    func valueRange(at index: Int) -> Range<Int> {
        precondition(index >= 0 && index < count, "header index out of range")
        return storage.base[index].valueRange
    }

    @inlinable
    func firstValueRange(ofHeader name: StaticString, in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        var i = 0
        while i < count {
            let slot = storage.base[i]
            if ASCII.equalsCaseInsensitive(bytes, slot.nameRange, name) {  // compares lengths first
                return slot.valueRange
            }
            i += 1
        }
        return nil
    }
}

/// Finds the end of a head (CRLFCRLF) across calls, remembering how far it has looked.
/// Every LF must follow a CR and every CR must be followed by LF, so a bare CR or bare LF
/// anywhere in the head fails at once (no bare-LF leniency: see RequestHeadParser).
@usableFromInline
struct HeadScanner {
    // Offsets in 32 bits (a head is at most a few MiB): a partial head's scanner is kept in
    // every downstream connection's entry, so its size is per-connection memory.
    @usableFromInline var storedHeadStart: Int32 = 0
    @usableFromInline var storedScanned: Int32 = 0
    @usableFromInline var storedStartLineEnd: Int32 = -1
    @usableFromInline var pastLeadingLines = false

    /// First byte of the start line (after skipped leading empty lines).
    @inlinable var headStart: Int {
        get { Int(storedHeadStart) }
        set { storedHeadStart = Int32(newValue) }
    }

    /// Next byte to examine.
    @inlinable var scanned: Int {
        get { Int(storedScanned) }
        set { storedScanned = Int32(newValue) }
    }

    /// Offset just past the CRLF ending the start line, or -1 if not seen yet.
    @inlinable var startLineEnd: Int {
        get { Int(storedStartLineEnd) }
        set { storedStartLineEnd = Int32(newValue) }
    }

    @usableFromInline
    enum Outcome {
        case needMore
        case found(end: Int)
        case failure(HTTPParseError.Kind)
    }

    @inlinable init() {}

    @inlinable
    mutating func reset() {
        self = HeadScanner()
    }

    @inlinable
    mutating func scan(
        _ bytes: UnsafeRawBufferPointer, maxHeaderBytes: Int, skipLeadingEmptyLines: Bool
    ) -> Outcome {
        let limit = Swift.min(bytes.count, maxHeaderBytes)
        var i = scanned  // the parsers reset us if the buffer ever got shorter than this
        if !pastLeadingLines {
            while skipLeadingEmptyLines && i < limit && bytes[i] == ASCII.cr {
                if i + 1 >= limit { break }
                if bytes[i + 1] != ASCII.lf { return .failure(.bareCR) }
                i += 2
            }
            if i < limit && bytes[i] == ASCII.lf { return .failure(.bareLF) }
            if i < limit && bytes[i] != ASCII.cr {
                headStart = i
                pastLeadingLines = true
            } else {
                // Nothing but (part of) empty lines so far, or a response starting with CR.
                if !skipLeadingEmptyLines && i < limit {
                    if i + 1 < limit {
                        return .failure(bytes[i + 1] == ASCII.lf ? .badStatusLine : .bareCR)
                    }
                }
                scanned = i
                return bytes.count >= maxHeaderBytes ? .failure(.headTooLarge) : .needMore
            }
        }
        while i < limit {
            let b = bytes[i]
            if b > ASCII.cr {
                i += 1
                continue
            }
            if b == ASCII.cr {
                if i + 1 >= limit { break }  // need the next byte to judge this CR
                if bytes[i + 1] != ASCII.lf { return .failure(.bareCR) }
                if startLineEnd < 0 { startLineEnd = i + 2 }
                if i >= headStart + 2 && bytes[i - 1] == ASCII.lf {
                    // bytes[i-2] is CR: every LF seen so far followed a CR.
                    return .found(end: i + 2)
                }
                i += 2
                continue
            }
            if b == ASCII.lf { return .failure(.bareLF) }
            i += 1
        }
        scanned = i
        // No terminator inside the first maxHeaderBytes bytes: it can only end beyond the limit.
        return bytes.count >= maxHeaderBytes ? .failure(.headTooLarge) : .needMore
    }
}

/// Which of the fields this module interprets a field name is.
@usableFromInline
enum KnownField {
    case contentLength, transferEncoding, connection, host, expect, upgrade, other

    @inlinable
    static func classify(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> KnownField {
        switch name.count {
        case 4: return ASCII.equalsCaseInsensitive(bytes, name, "host") ? .host : .other
        case 6: return ASCII.equalsCaseInsensitive(bytes, name, "expect") ? .expect : .other
        case 7: return ASCII.equalsCaseInsensitive(bytes, name, "upgrade") ? .upgrade : .other
        case 10: return ASCII.equalsCaseInsensitive(bytes, name, "connection") ? .connection : .other
        case 14: return ASCII.equalsCaseInsensitive(bytes, name, "content-length") ? .contentLength : .other
        case 17: return ASCII.equalsCaseInsensitive(bytes, name, "transfer-encoding") ? .transferEncoding : .other
        default: return .other
        }
    }
}

/// Facts from Content-Length, Transfer-Encoding and Connection, accumulated over all field lines.
@usableFromInline
struct FramingFacts {
    @usableFromInline var contentLength = -1  // -1: no Content-Length field
    @usableFromInline var hasTransferEncoding = false
    @usableFromInline var codingCount = 0
    @usableFromInline var chunkedCount = 0
    @usableFromInline var lastCodingIsChunked = false
    @usableFromInline var connectionClose = false
    @usableFromInline var connectionKeepAlive = false
    /// Connection lists `upgrade` (with an Upgrade field, the request asks for an upgrade).
    @usableFromInline var connectionUpgrade = false

    @inlinable init() {}

    /// Strict Content-Length: exactly one field whose value is one run of digits. A second field,
    /// even with an equal value, and a list such as `5, 5` are both rejected (smuggling defence).
    @inlinable
    mutating func addContentLength(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> HTTPParseError.Kind? {
        if contentLength >= 0 { return .duplicateContentLength }
        guard let length = ASCII.parseDecimal(bytes, value) else {
            var i = value.lowerBound
            while i < value.upperBound {
                if bytes[i] == ASCII.comma { return .duplicateContentLength }
                i += 1
            }
            return .badContentLength
        }
        contentLength = length
        return nil
    }

    /// Transfer-Encoding values are a list; several fields concatenate into one list.
    @inlinable
    mutating func addTransferEncoding(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) {
        hasTransferEncoding = true
        var cursor = value.lowerBound
        while let coding = ASCII.nextListElement(bytes, cursor: &cursor, end: value.upperBound) {
            codingCount += 1
            if ASCII.equalsCaseInsensitive(bytes, coding, "chunked") {
                chunkedCount += 1
                lastCodingIsChunked = true
            } else {
                lastCodingIsChunked = false
            }
        }
    }

    @inlinable
    mutating func addConnection(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) {
        var cursor = value.lowerBound
        while let token = ASCII.nextListElement(bytes, cursor: &cursor, end: value.upperBound) {
            switch token.count {
            case 5:
                if ASCII.equalsCaseInsensitive(bytes, token, "close") { connectionClose = true }
            case 7:
                if ASCII.equalsCaseInsensitive(bytes, token, "upgrade") { connectionUpgrade = true }
            case 10:
                if ASCII.equalsCaseInsensitive(bytes, token, "keep-alive") { connectionKeepAlive = true }
            default:
                break
            }
        }
    }

    /// True when the only coding is a single `chunked`.
    @inlinable var isExactlyChunked: Bool { codingCount == 1 && chunkedCount == 1 }

    /// Persistence per RFC 9112 §9.3: 1.1 persists unless `close`; 1.0 only with `keep-alive`.
    @inlinable
    func keepAlive(_ version: HTTPVersion) -> Bool {
        if connectionClose { return false }
        return version == .http1_1 || connectionKeepAlive
    }
}

/// Field-line parsing shared by both parsers.
@usableFromInline
enum FieldLine {
    @usableFromInline
    enum Outcome {
        /// A valid field line; `next` is the start of the following line.
        case field(name: Range<Int>, value: Range<Int>, next: Int)
        /// The empty line ending the head.
        case end
        case failure(HTTPParseError.Kind)
    }

    /// Parses the line starting at `p`. The scanner guarantees the head ends with CRLFCRLF and that
    /// every CR is followed by LF, so scanning for CR always stops inside the head.
    @inlinable
    static func parse(_ bytes: UnsafeRawBufferPointer, at start: Int) -> Outcome {
        var p = start
        let first = bytes[p]
        if first == ASCII.cr { return .end }
        if ASCII.isWhitespace(first) { return .failure(.obsFold) }
        while ASCII.isTokenChar(bytes[p]) { p += 1 }
        let nameEnd = p
        let delimiter = bytes[p]
        if delimiter != ASCII.colon {
            return .failure(ASCII.isWhitespace(delimiter) && nameEnd > start ? .whitespaceBeforeColon : .badHeaderName)
        }
        if nameEnd == start { return .failure(.badHeaderName) }
        p += 1
        while ASCII.isWhitespace(bytes[p]) { p += 1 }
        let valueStart = p
        var valueEnd = p
        while true {
            let b = bytes[p]
            if b == ASCII.cr { break }
            if !ASCII.isFieldValueByte(b) { return .failure(.badHeaderValue) }
            p += 1
            if !ASCII.isWhitespace(b) { valueEnd = p }
        }
        return .field(name: start..<nameEnd, value: valueStart..<valueEnd, next: p + 2)
    }
}

/// Parses exactly `HTTP/d.d` at `p` (8 bytes, caller checks they exist).
/// Returns the version, or the error kind: malformed -> badVersion, well-formed but not 1.0/1.1 ->
/// unsupportedVersion (505).
@usableFromInline
enum VersionToken {
    @usableFromInline
    enum Outcome {
        case version(HTTPVersion)
        case failure(HTTPParseError.Kind)
    }

    @inlinable
    static func parse(_ bytes: UnsafeRawBufferPointer, at p: Int) -> Outcome {
        if bytes[p] != 0x48 || bytes[p + 1] != 0x54 || bytes[p + 2] != 0x54 || bytes[p + 3] != 0x50
            || bytes[p + 4] != 0x2F || bytes[p + 6] != 0x2E {
            return .failure(.badVersion)
        }
        let major = bytes[p + 5] &- 0x30
        let minor = bytes[p + 7] &- 0x30
        if major > 9 || minor > 9 { return .failure(.badVersion) }
        if major == 1 && minor == 1 { return .version(.http1_1) }
        if major == 1 && minor == 0 { return .version(.http1_0) }
        return .failure(.unsupportedVersion)
    }
}
