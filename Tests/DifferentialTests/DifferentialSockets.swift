import Foundation
import Glibc

// Raw sockets for the differential suite: a client that sends exact bytes and reads one response,
// and an upstream that records every request head it receives and answers a fixed response.

struct RawResponse {
    var status: Int
    var statusLine: String
    /// Field lines as received (name case kept), in order.
    var fields: [(name: String, value: String)]
    var body: [UInt8]
    /// True when the proxy closed the connection after this response.
    var closed: Bool

    func header(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name }?.value
    }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking client connection to 127.0.0.1 with a 5 s receive timeout.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var eof = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 {
            Glibc.close(fd)
            throw DifferentialError("connect 127.0.0.1:\(port): errno \(errno)")
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    private func fill() -> Bool {
        guard !eof else { return false }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }  // the receive timeout ran out: still open
        if n <= 0 { eof = true; return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    private func find(_ pattern: [UInt8], from: Int = 0) -> Int? {
        guard buffer.count >= pattern.count + from else { return nil }
        for i in from...(buffer.count - pattern.count) where Array(buffer[i..<(i + pattern.count)]) == pattern { return i }
        return nil
    }

    /// Reads raw bytes until `pattern` has arrived (or the connection ends or times out); returns
    /// them as text, with `<end>` when the connection ended first.
    func readText(until pattern: String) -> String {
        let p = Array(pattern.utf8)
        while find(p) == nil {
            guard fill() else {
                let text = String(decoding: buffer, as: UTF8.self)
                buffer = []
                return text + "<end>"
            }
        }
        let end = find(p)! + p.count
        let text = String(decoding: buffer[0..<end], as: UTF8.self)
        buffer.removeFirst(end)
        return text
    }

    /// Whatever arrives until the connection ends (or the receive timeout), `<end>` when it ended.
    func readToEnd() -> String {
        while fill() {}
        let text = String(decoding: buffer, as: UTF8.self)
        buffer = []
        return text + (eof ? "<end>" : "<timeout>")
    }

    /// Whether the peer closes the connection within `seconds` (bytes before the end are read and
    /// dropped): "closed" (end of stream or reset) or "open" (the wait ran out).
    func closedWithin(seconds: Int) -> String {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { continue }
            if n == 0 || errno == ECONNRESET { return "closed" }
            return "open"
        }
    }

    /// Closes both directions now (the deinit closes the descriptor).
    func shutdownBoth() { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    /// Reads one response (Content-Length, chunked, or until close); nil on timeout or early end.
    /// The raw chunked framing is kept out of `body`; `chunked` responses report their fields as sent.
    func readResponse(isHEAD: Bool = false) -> RawResponse? {
        var end = find([13, 10, 13, 10])
        while end == nil {
            guard fill() else { return nil }
            end = find([13, 10, 13, 10])
        }
        let head = String(decoding: buffer[0..<end!], as: UTF8.self)
        buffer.removeFirst(end! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var fields: [(String, String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = RawResponse(status: status, statusLine: statusLine, fields: fields, body: [], closed: false)
        if isHEAD || status == 204 || status == 304 || status < 200 {
        } else if response.header("transfer-encoding")?.lowercased() == "chunked" {
            while true {
                var lineEnd = find([13, 10])
                while lineEnd == nil { guard fill() else { return nil }; lineEnd = find([13, 10]) }
                let sizeText = String(decoding: buffer[0..<lineEnd!], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
                buffer.removeFirst(lineEnd! + 2)
                if size == 0 {
                    while true {
                        var le = find([13, 10])
                        while le == nil { guard fill() else { return nil }; le = find([13, 10]) }
                        buffer.removeFirst(le! + 2)
                        if le == 0 { break }
                    }
                    break
                }
                while buffer.count < size + 2 { guard fill() else { return nil } }
                response.body.append(contentsOf: buffer[0..<size])
                buffer.removeFirst(size + 2)
            }
        } else if let cl = response.header("content-length"), let n = Int(cl) {
            while buffer.count < n { guard fill() else { return nil } }
            response.body = Array(buffer[0..<n])
            buffer.removeFirst(n)
        } else {
            while fill() {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    /// True when the peer closes (end of stream) within the receive timeout, with nothing more sent.
    func closesAfterResponse() -> Bool {
        if !buffer.isEmpty { return false }
        return !fill() && eof
    }
}

/// An upstream on 127.0.0.1 that records each request head (request line and field lines as
/// received) and answers `200` with a small fixed body, keeping connections alive.
final class RecordingUpstream: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let lock = NSLock()
    private var heads: [String] = []
    /// Each request's head and body (a chunked body as received, framing included).
    private var requests: [(head: String, body: [UInt8])] = []
    private var connections: [Int32] = []
    /// Every answer waits this long first (a slow upstream: the mirror cases).
    let replyDelayMicros: UInt32
    /// Health checks (user-agent Envoy/HC) get 503: the host fails them (the priority cases).
    var failsHealthChecks: Bool {
        get { lock.lock(); defer { lock.unlock() }; return failing }
        set { lock.lock(); failing = newValue; lock.unlock() }
    }
    private var failing = false
    /// Every request gets this status (a failing host: the outlier cases); nil: as asked.
    var answersStatus: Int? {
        get { lock.lock(); defer { lock.unlock() }; return fixedStatus }
        set { lock.lock(); fixedStatus = newValue; lock.unlock() }
    }
    private var fixedStatus: Int? = nil

    static let body = "upstream says hi"

    init(replyDelayMicros: UInt32 = 0) throws {
        self.replyDelayMicros = replyDelayMicros
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 128)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        start()
    }

    private func start() {
        let listenFD = fd
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(listenFD, nil, nil)
                if c < 0 { return }
                lock.lock(); connections.append(c); lock.unlock()
                Thread.detachNewThread { [self] in serve(c) }
            }
        }
    }

    /// Requests (head and body) received since the last call.
    func takeRequests() -> [(head: String, body: [UInt8])] {
        lock.lock(); defer { lock.unlock() }
        let r = requests
        requests = []
        return r
    }

    /// Heads received since the last call.
    func takeHeads() -> [String] {
        lock.lock(); defer { lock.unlock() }
        let h = heads
        heads = []
        return h
    }

    private func serve(_ c: Int32) {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            // One request head, then its Content-Length body (the suite sends no chunked bodies).
            var headEnd: Int? = nil
            while headEnd == nil {
                if data.count >= 4 {
                    for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 { headEnd = i; break }
                }
                if headEnd != nil { break }
                let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { Glibc.close(c); return }
                data.append(contentsOf: chunk[0..<n])
            }
            let head = String(decoding: data[0..<headEnd!], as: UTF8.self)
            data.removeFirst(headEnd! + 4)
            var length = 0
            for line in head.components(separatedBy: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                length = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            if head.lowercased().contains("\r\ntransfer-encoding: chunked") {
                // Up to the last chunk and an empty trailer (the mirror cases' chunked bodies).
                let end: [UInt8] = Array("0\r\n\r\n".utf8)
                func ends() -> Int? {
                    guard data.count >= end.count else { return nil }
                    for i in 0...(data.count - end.count) where Array(data[i..<(i + end.count)]) == end
                        && (i == 0 || data[i - 1] == 10) { return i + end.count }
                    return nil
                }
                while ends() == nil {
                    let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { Glibc.close(c); return }
                    data.append(contentsOf: chunk[0..<n])
                }
                length = ends()!
            }
            while data.count < length {
                let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { Glibc.close(c); return }
                data.append(contentsOf: chunk[0..<n])
            }
            let body = Array(data[0..<length])
            data.removeFirst(length)
            lock.lock(); heads.append(head); requests.append((head, body)); lock.unlock()
            if replyDelayMicros > 0 { usleep(replyDelayMicros) }
            let lower = head.lowercased()
            if lower.contains("\r\nuser-agent: envoy/hc") && failsHealthChecks {
                let bytes = Array("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown".utf8)
                _ = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                continue
            }
            let chunked = lower.contains("x-reply-chunked")
            // Slower than the /slow route's 0.3 s timeout, so the proxy answers 504 first.
            if lower.contains("x-reply-delay") { usleep(1_000_000) }
            // Faults: close without a response, or answer with a malformed status line.
            if lower.contains("x-reply-close") { Glibc.close(c); return }
            // A response cut short: the head and part of the body, then the connection closes.
            if lower.contains("x-reply-cut") {
                let bytes = Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab".utf8)
                _ = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                usleep(100_000)
                Glibc.close(c)
                return
            }
            // A stalled body: the head and part of the body, then a pause longer than the idle timeouts.
            if lower.contains("x-reply-stall") {
                let bytes = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(Self.body.utf8.count)\r\n\r\nupstream".utf8)
                _ = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                usleep(1_000_000)
                let rest = Array(Self.body.utf8.dropFirst(8))
                _ = rest.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                continue
            }
            if lower.contains("x-reply-upgrade") {
                tunnel(c, closing: lower.contains("x-reply-upgrade: close"), leftover: data)
                return
            }
            // A 204 with framing fields: a length, a transfer coding, or a zero length.
            if let line = lower.components(separatedBy: "\r\n").first(where: { $0.hasPrefix("x-reply-204:") }) {
                let kind = line.dropFirst(12).trimmingCharacters(in: .whitespaces)
                let framing = kind == "length" ? "Content-Length: 5\r\n" : kind == "chunked" ? "Transfer-Encoding: chunked\r\n" : "Content-Length: 0\r\n"
                let bytes = Array("HTTP/1.1 204 No Content\r\n\(framing)\r\n".utf8)
                _ = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                continue
            }
            if lower.contains("x-reply-garbage") {
                let bytes = Array("HTTP/1.1 abc nonsense\r\n\r\n".utf8)
                _ = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                Glibc.close(c)
                return
            }
            // The upstream's own CORS fields (a proxy's CORS filter replaces them).
            let cors = lower.contains("x-reply-cors") ? "Access-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: x-old\r\nAccess-Control-Max-Age: 5\r\n" : ""
            // Cache cases: `x-reply-field: name: value` lines go into the answer; with `x-reply-304`
            // a conditional request gets 304 with the `x-reply-304-field` lines instead.
            let lines = head.components(separatedBy: "\r\n")
            func replyFields(_ prefix: String) -> String {
                lines.filter { $0.lowercased().hasPrefix(prefix + ":") }.map { $0.dropFirst(prefix.count + 1).trimmingCharacters(in: .whitespaces) + "\r\n" }.joined()
            }
            let extra = replyFields("x-reply-field")
            if lower.contains("\r\nx-reply-304:") && (lower.contains("\r\nif-none-match:") || lower.contains("\r\nif-modified-since:")) {
                let bytes = Array("HTTP/1.1 304 Not Modified\r\n\(replyFields("x-reply-304-field"))\r\n".utf8)
                _ = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                continue
            }
            let reply: String
            if let status = answersStatus ?? head.components(separatedBy: "\r\n").first(where: { $0.lowercased().hasPrefix("x-reply-status:") })
                .flatMap({ Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) }) {
                // A chosen status (retry cases): `status N` as the body.
                reply = "HTTP/1.1 \(status) Chosen\r\nContent-Type: text/plain\r\n\(extra)Content-Length: \("status \(status)".utf8.count)\r\n\r\nstatus \(status)"
            } else if lower.contains("\r\nauthorization: bearer deny") {
                // An authorization service's denial (the ext_authz example's check requests carry authorization).
                reply = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nWWW-Authenticate: Bearer\r\nContent-Length: 6\r\n\r\ndenied"
            } else if head.hasPrefix("GET /hc-fail ") {
                // A health-check path that answers 503 (the checks' "unexpected status").
                reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown"
            } else if chunked {
                reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\(extra)Transfer-Encoding: chunked\r\n\r\n\(String(Self.body.utf8.count, radix: 16))\r\n\(Self.body)\r\n0\r\n\r\n"
            } else {
                reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\(cors)\(extra)Content-Length: \(Self.body.utf8.count)\r\n\r\n\(Self.body)"
            }
            let bytes = Array(reply.utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }

    /// A 101, then bytes echoed upper-cased (so the echo does not depend on how they were
    /// split); `closing`: close after echoing the first 5 bytes.
    private func tunnel(_ c: Int32, closing: Bool, leftover: [UInt8]) {
        func send(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        send(Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".utf8))
        var pending = leftover
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            if closing && pending.count >= 5 {
                send(pending.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 })
                Glibc.close(c)
                return
            }
            if !closing && !pending.isEmpty {
                send(pending.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 })
                pending = []
            }
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { Glibc.close(c); return }
            pending.append(contentsOf: chunk[0..<n])
        }
    }

    func stop() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
        lock.lock()
        for c in connections { Glibc.shutdown(c, Int32(SHUT_RDWR)) }
        lock.unlock()
    }
}
