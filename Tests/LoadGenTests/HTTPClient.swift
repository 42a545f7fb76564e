import EventLoop
import Foundation
import Glibc

/// A parsed response, as the tests see it.
struct TestResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// A blocking HTTP/1.1 test client over one TCP connection: write raw bytes, read responses.
final class TestConnection {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var closedByPeer = false

    init(port: Int, timeoutSeconds: Int = 30) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = SocketAddress(host: "127.0.0.1", port: port)!.withSockAddr { connect(fd, $0, $1) }
        if rc != 0 { let e = errno; close(fd); throw SystemError("connect", errno: e) }
    }

    deinit { close(fd) }

    func write(_ text: String) throws { try write(Array(text.utf8)) }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw SystemError("send", errno: errno) }
            offset += n
        }
    }

    /// Reads more bytes; false at end of stream, error or timeout.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, 0) }
        if n <= 0 { closedByPeer = n == 0 || errno == ECONNRESET; return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Reads one response (Content-Length framed, or no body for HEAD/204/304/1xx).
    func readResponse(isHEAD: Bool = false) -> TestResponse? {
        while true {
            if let end = findHeadEnd() {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = head.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst().split(separator: " ")
                guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
                let headers = lines.filter { !$0.isEmpty }.map { line -> (String, String) in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    return (String(parts[0]), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
                }
                var response = TestResponse(status: status, headers: headers, body: [])
                let length = isHEAD || status < 200 || status == 204 || status == 304 ? 0 : Int(response.header("content-length") ?? "0") ?? 0
                while buffer.count < end + 4 + length { if !fill() { return nil } }
                response.body = Array(buffer[(end + 4)..<(end + 4 + length)])
                buffer.removeFirst(end + 4 + length)
                return response
            }
            if !fill() { return nil }
        }
    }

    /// True when the server closed the connection (end of stream or reset) with nothing more to read.
    func seesClose() -> Bool {
        if !buffer.isEmpty { return false }
        return !fill() && closedByPeer
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// GET with the given target, keep-alive.
    func get(_ target: String, extraHeaders: String = "") throws -> TestResponse? {
        try write("GET \(target) HTTP/1.1\r\nHost: test\r\n\(extraHeaders)\r\n")
        return readResponse()
    }
}
