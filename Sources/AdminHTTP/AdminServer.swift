import EventLoop
import Glibc
import HTTP1

/// A small HTTP/1.1 server for admin endpoints (`/workers`, `/stats`, `/ready`, ...), on its own
/// thread with blocking sockets: one request per connection, answered and closed. Not on any data
/// path, so it favours simplicity over speed.
public final class AdminServer: Sendable {
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: String
    }

    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: String

        public init(status: Int = 200, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }

        public static func json(_ body: String) -> Response { Response(contentType: "application/json", body: body) }
    }

    public let port: Int
    private let listener: Int32
    private let thread: LoopThread.Handle

    /// Binds and starts serving; `handler` runs on the admin thread.
    public init(host: String, port: Int, handler: @escaping @Sendable (Request) -> Response) throws(SystemError) {
        guard let address = SocketAddress(host: host, port: port) else { throw SystemError("admin address", errno: EINVAL) }
        let fd = try syscall("socket") { socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        do {
            _ = try syscall("bind") { address.withSockAddr { bind(fd, $0, $1) } }
            _ = try syscall("listen") { Glibc.listen(fd, 128) }
            self.port = try Sockets.localAddress(fd).port
        } catch {
            close(fd)
            throw error
        }
        listener = fd
        thread = LoopThread.start(name: "admin", cpu: nil) {
            AdminServer.serve(listener: fd, handler: handler)
        }
    }

    /// Stops accepting and waits for the admin thread.
    public func stop() {
        Glibc.shutdown(listener, Int32(SHUT_RDWR))
        thread.join()
        close(listener)
    }

    private static func serve(listener: Int32, handler: @Sendable (Request) -> Response) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // shut down
            }
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let response = readRequest(fd).map(handler)
                ?? Response(status: 400, body: "bad request\n")
            write(response, to: fd)
            close(fd)
        }
    }

    private static func readRequest(_ fd: Int32) -> Request? {
        var buffer = [UInt8](repeating: 0, count: 16384)
        var used = 0
        var parser = RequestHeadParser(maxHeaderBytes: 16384, maxHeaders: 64)
        while used < buffer.count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + used, $0.count - used, 0) }
            if n <= 0 { return nil }
            used += n
            let outcome = buffer.withUnsafeBytes { parser.parse(UnsafeRawBufferPointer(rebasing: $0[0..<used])) }
            switch outcome {
            case .incomplete: continue
            case .failure: return nil
            case .complete:
                return buffer.withUnsafeBytes { raw in
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<used])
                    let method = String(decoding: bytes[parser.methodRange], as: UTF8.self)
                    let path = String(decoding: bytes[parser.pathRange], as: UTF8.self)
                    let query = parser.queryRange.map { String(decoding: bytes[$0], as: UTF8.self) } ?? ""
                    return Request(method: method, path: path, query: query)
                }
            }
        }
        return nil
    }

    private static func write(_ response: Response, to fd: Int32) {
        let reason = HeadWriter.reasonPhrase(for: response.status).map { String(describing: $0) } ?? ""
        let body = Array(response.body.utf8)
        let head = "HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }
}
