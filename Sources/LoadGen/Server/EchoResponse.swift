import EventLoop
import HTTP1

/// Writes `ballast server` responses into a connection's output buffer.
enum EchoResponse {
    enum Body {
        /// `size=N`: bytes from the worker's filler.
        case filler(UnsafeRawBufferPointer)
        /// The request body, echoed.
        case plain(UnsafeRawBufferPointer)
        /// A chunked request body (framing included), echoed decoded.
        case chunked(UnsafeRawBufferPointer)
    }

    /// Room for the status line and our own headers, beyond the extra headers and the body.
    static var headRoom: Int { 160 }

    /// Why a plan cannot be answered as asked, or nil.
    static func check(_ plan: EchoPlan, scratch: UnsafeRawBufferPointer) -> StaticString? {
        if plan.status < 200 { return "status must be 200 or more (1xx is not a final response)" }
        for i in 0..<plan.extraHeaderCount {
            let name = plan.extraHeaderName(at: i, in: scratch)
            let all = 0..<name.count
            if ASCII.equalsCaseInsensitive(name, all, "content-length")
                || ASCII.equalsCaseInsensitive(name, all, "transfer-encoding")
                || ASCII.equalsCaseInsensitive(name, all, "connection") {
                return "header= cannot set Content-Length, Transfer-Encoding or Connection"
            }
        }
        return nil
    }

    /// Appends the whole response. Returns false only when it would exceed the buffer pool's limit.
    static func write(plan: EchoPlan, body: Body, isHEAD: Bool, version: HTTPVersion, keepAlive: Bool,
                      scratch: UnsafeRawBufferPointer, into out: inout ByteBuffer, pool: BufferPool) -> Bool {
        let bodyAllowed = plan.status != 204 && plan.status != 304
        var bodyLength = 0
        switch body {
        case let .filler(bytes), let .plain(bytes): bodyLength = bytes.count
        case let .chunked(framed): bodyLength = ChunkedBody.decodedLength(framed)
        }
        if !bodyAllowed { bodyLength = 0 }
        let sendsBody = bodyAllowed && !isHEAD
        let capacity = headRoom + plan.extraHeaderBytes + (sendsBody ? bodyLength : 0)
        guard let start = pool.reserve(capacity, in: &out) else { return false }
        let w = HeadWriter(UnsafeMutableRawBufferPointer(start: start, count: capacity))
        var p = w.writeStatusLine(plan.status, version: .http1_1, at: 0)!
        if bodyAllowed { p = w.writeHeader("Content-Length", decimal: bodyLength, at: p)! }
        if !keepAlive {
            p = w.write("Connection: close\r\n", at: p)!
        } else if version == .http1_0 {
            p = w.write("Connection: keep-alive\r\n", at: p)!
        }
        if plan.extraHeaderBytes > 0 {
            p = w.write(UnsafeRawBufferPointer(rebasing: scratch[0..<plan.extraHeaderBytes]), at: p)!
        }
        p = w.writeCRLF(at: p)!
        if sendsBody && bodyLength > 0 {
            switch body {
            case let .filler(bytes), let .plain(bytes):
                p = w.write(bytes, at: p)!
            case let .chunked(framed):
                p = ChunkedBody.copyDecoded(framed, to: start + p) + p
            }
        }
        out.count += p
        return true
    }

    /// A short `text/plain` response naming the problem.
    static func writeError(_ status: Int, _ reason: StaticString, keepAlive: Bool, into out: inout ByteBuffer, pool: BufferPool) -> Bool {
        let text = UnsafeRawBufferPointer(start: reason.utf8Start, count: reason.utf8CodeUnitCount)
        let capacity = headRoom + text.count + 1
        guard let start = pool.reserve(capacity, in: &out) else { return false }
        let w = HeadWriter(UnsafeMutableRawBufferPointer(start: start, count: capacity))
        var p = w.writeStatusLine(status, at: 0)!
        p = w.write("Content-Type: text/plain\r\n", at: p)!
        p = w.writeHeader("Content-Length", decimal: text.count + 1, at: p)!
        if !keepAlive { p = w.write("Connection: close\r\n", at: p)! }
        p = w.writeCRLF(at: p)!
        p = w.write(text, at: p)!
        p = w.write("\n", at: p)!
        out.count += p
        return true
    }

    static func appendLiteral(_ literal: StaticString, to out: inout ByteBuffer, pool: BufferPool) -> Bool {
        pool.append(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount), to: &out)
    }
}

/// Whole chunked bodies held in a buffer: measure, then copy the payload out.
enum ChunkedBody {
    enum Measure {
        case incomplete
        case invalid(status: Int, reason: StaticString)
        /// The body (framing and trailers included) ends at `end`; `payload` bytes once decoded.
        case complete(end: Int, payload: Int)
    }

    static func measure(_ bytes: UnsafeRawBufferPointer, from start: Int, limit: Int) -> Measure {
        var decoder = ChunkedDecoder()
        let skim = decoder.skim(UnsafeRawBufferPointer(rebasing: bytes[start...]))
        if let error = skim.failure { return .invalid(status: error.status, reason: error.kind.reason) }
        if skim.payload > limit { return .invalid(status: 413, reason: "request body too large") }
        return skim.done ? .complete(end: start + skim.consumed, payload: skim.payload) : .incomplete
    }

    static func decodedLength(_ framed: UnsafeRawBufferPointer) -> Int {
        if case let .complete(_, payload) = measure(framed, from: 0, limit: Int.max) { return payload }
        return 0
    }

    /// Copies the decoded payload of a complete chunked body; returns the bytes copied.
    static func copyDecoded(_ framed: UnsafeRawBufferPointer, to target: UnsafeMutableRawPointer) -> Int {
        var decoder = ChunkedDecoder()
        var offset = 0
        var written = 0
        while offset < framed.count {
            let rest = UnsafeRawBufferPointer(rebasing: framed[offset...])
            switch decoder.decode(rest) {
            case let .data(range, consumed):
                (target + written).copyMemory(from: rest.baseAddress! + range.lowerBound, byteCount: range.count)
                written += range.count
                offset += consumed
            default:
                return written
            }
        }
        return written
    }
}
