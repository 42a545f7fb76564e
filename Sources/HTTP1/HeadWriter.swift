/// Writes heads into a caller-provided buffer without allocating.
///
/// Every method writes at `offset` and returns the offset just past what it wrote, or nil when the
/// bytes would not fit; on nil nothing at all has been written (each method measures first).
/// Chain calls with `guard let`:
///
///     let w = HeadWriter(buffer)
///     guard let a = w.writeStatusLine(200, at: 0),
///           let b = w.writeHeader("content-length", decimal: body.count, at: a),
///           let end = w.writeCRLF(at: b) else { /* too small */ }
///
/// The writer does not validate names or values: pass only bytes that are valid in a head.
/// The buffer is owned by the caller; the writer only borrows it.
public struct HeadWriter {
    public let buffer: UnsafeMutableRawBufferPointer

    @inlinable
    public init(_ buffer: UnsafeMutableRawBufferPointer) {
        self.buffer = buffer
    }

    // MARK: Primitives

    @inlinable
    func fits(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length <= buffer.count - offset
    }

    @inlinable
    func copy(_ source: UnsafeRawBufferPointer, at offset: Int) -> Int {
        if let from = source.baseAddress, source.count > 0 {
            (buffer.baseAddress! + offset).copyMemory(from: from, byteCount: source.count)
        }
        return offset + source.count
    }

    @inlinable
    func copy(_ literal: StaticString, at offset: Int) -> Int {
        literal.withUTF8Buffer { copy(UnsafeRawBufferPointer($0), at: offset) }
    }

    /// Number of decimal characters of `value`, sign included.
    @inlinable
    public static func decimalLength(_ value: Int) -> Int {
        var magnitude = value.magnitude
        var length = value < 0 ? 2 : 1
        while magnitude >= 10 {
            magnitude /= 10
            length += 1
        }
        return length
    }

    @inlinable
    func putDecimal(_ value: Int, at offset: Int) -> Int {
        let length = Self.decimalLength(value)
        var magnitude = value.magnitude
        var i = offset + length
        repeat {
            i -= 1
            buffer[i] = 0x30 &+ UInt8(truncatingIfNeeded: magnitude % 10)
            magnitude /= 10
        } while magnitude > 0
        if value < 0 { buffer[offset] = 0x2D }
        return offset + length
    }

    /// Number of lower-case hexadecimal digits of a non-negative `value`.
    @inlinable
    public static func hexLength(_ value: Int) -> Int {
        precondition(value >= 0, "hex values must not be negative")
        var v = value
        var length = 1
        while v >= 16 {
            v >>= 4
            length += 1
        }
        return length
    }

    @inlinable
    func putHex(_ value: Int, at offset: Int) -> Int {
        let length = Self.hexLength(value)
        var v = value
        var i = offset + length
        repeat {
            i -= 1
            let digit = UInt8(truncatingIfNeeded: v & 0xF)
            buffer[i] = digit < 10 ? 0x30 &+ digit : 0x57 &+ digit
            v >>= 4
        } while v > 0
        return offset + length
    }

    @inlinable
    func putCRLF(at offset: Int) -> Int {
        buffer[offset] = ASCII.cr
        buffer[offset + 1] = ASCII.lf
        return offset + 2
    }

    @inlinable
    static func length(_ literal: StaticString) -> Int { literal.withUTF8Buffer { $0.count } }

    // MARK: Pieces

    @inlinable
    public func write(_ literal: StaticString, at offset: Int) -> Int? {
        guard fits(offset, Self.length(literal)) else { return nil }
        return copy(literal, at: offset)
    }

    @inlinable
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        guard fits(offset, bytes.count) else { return nil }
        return copy(bytes, at: offset)
    }

    @inlinable
    public func writeDecimal(_ value: Int, at offset: Int) -> Int? {
        guard fits(offset, Self.decimalLength(value)) else { return nil }
        return putDecimal(value, at: offset)
    }

    /// Lower-case hexadecimal, no prefix. `value` must not be negative.
    @inlinable
    public func writeHex(_ value: Int, at offset: Int) -> Int? {
        guard fits(offset, Self.hexLength(value)) else { return nil }
        return putHex(value, at: offset)
    }

    @inlinable
    public func writeCRLF(at offset: Int) -> Int? {
        guard fits(offset, 2) else { return nil }
        return putCRLF(at: offset)
    }

    // MARK: Lines

    /// `HTTP/1.1 404 Not Found\r\n`. The reason comes from `reasonPhrase(for:)`; codes not in the
    /// table get an empty reason (`HTTP/1.1 299 \r\n`, valid per RFC 9112 §4).
    /// `status` must be in 100...999.
    @inlinable
    public func writeStatusLine(_ status: Int, version: HTTPVersion = .http1_1, at offset: Int) -> Int? {
        precondition(status >= 100 && status <= 999, "status code must have three digits")
        let reason: StaticString = Self.reasonPhrase(for: status) ?? ""
        let length = 9 + 3 + 1 + Self.length(reason) + 2
        guard fits(offset, length) else { return nil }
        var p = copy(version == .http1_1 ? "HTTP/1.1 " : "HTTP/1.0 ", at: offset)
        p = putDecimal(status, at: p)
        buffer[p] = ASCII.space
        p = copy(reason, at: p + 1)
        return putCRLF(at: p)
    }

    /// `GET /path HTTP/1.1\r\n`.
    @inlinable
    public func writeRequestLine(
        method: StaticString, target: UnsafeRawBufferPointer, version: HTTPVersion = .http1_1, at offset: Int
    ) -> Int? {
        let length = Self.length(method) + 1 + target.count + 1 + 8 + 2
        guard fits(offset, length) else { return nil }
        var p = copy(method, at: offset)
        buffer[p] = ASCII.space
        p = copy(target, at: p + 1)
        p = copy(version == .http1_1 ? " HTTP/1.1" : " HTTP/1.0", at: p)
        return putCRLF(at: p)
    }

    /// `name: value\r\n`.
    @inlinable
    public func writeHeader(_ name: StaticString, _ value: StaticString, at offset: Int) -> Int? {
        guard fits(offset, Self.length(name) + 2 + Self.length(value) + 2) else { return nil }
        var p = copy(name, at: offset)
        p = copy(": ", at: p)
        p = copy(value, at: p)
        return putCRLF(at: p)
    }

    @inlinable
    public func writeHeader(_ name: StaticString, _ value: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        guard fits(offset, Self.length(name) + 2 + value.count + 2) else { return nil }
        var p = copy(name, at: offset)
        p = copy(": ", at: p)
        p = copy(value, at: p)
        return putCRLF(at: p)
    }

    @inlinable
    public func writeHeader(_ name: StaticString, decimal value: Int, at offset: Int) -> Int? {
        guard fits(offset, Self.length(name) + 2 + Self.decimalLength(value) + 2) else { return nil }
        var p = copy(name, at: offset)
        p = copy(": ", at: p)
        p = putDecimal(value, at: p)
        return putCRLF(at: p)
    }

    /// Copies a field from parsed bytes, e.g. when a proxy forwards a request head.
    @inlinable
    public func writeHeader(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        guard fits(offset, name.count + 2 + value.count + 2) else { return nil }
        var p = copy(name, at: offset)
        p = copy(": ", at: p)
        p = copy(value, at: p)
        return putCRLF(at: p)
    }

    /// A chunk-size line: lower-case hex then CRLF (`1a\r\n`). Write the payload and a CRLF after it.
    @inlinable
    public func writeChunkSize(_ size: Int, at offset: Int) -> Int? {
        guard fits(offset, Self.hexLength(size) + 2) else { return nil }
        return putCRLF(at: putHex(size, at: offset))
    }

    /// The last chunk with no trailers: `0\r\n\r\n`.
    @inlinable
    public func writeLastChunk(at offset: Int) -> Int? {
        write("0\r\n\r\n", at: offset)
    }

    // MARK: Reason phrases

    /// Standard reason phrases (RFC 9110 §15) for the codes this project sends or sees; nil otherwise.
    @inlinable
    public static func reasonPhrase(for status: Int) -> StaticString? {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 402: return "Payment Required"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Range Not Satisfiable"
        case 417: return "Expectation Failed"
        case 429: return "Too Many Requests"
        case 426: return "Upgrade Required"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return nil
        }
    }
}
