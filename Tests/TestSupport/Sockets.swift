import EventLoop
import Foundation
import Glibc

/// Ports on 127.0.0.1 for tests.
public enum TestPorts {
    /// A port nothing listens on (bound, then closed): connections to it are refused.
    public static func closed() throws -> Int {
        let fd = try Sockets.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, reusePort: false)
        let port = try Sockets.localAddress(fd).port
        Glibc.close(fd)
        return port
    }
}

/// Blocking client sockets for tests (the test thread is not an event loop). Receive timeouts are
/// generous (default 30 s): they only bound a hang.
public enum Client {
    public static func connect(port: Int, timeoutSeconds: Int = 30) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let address = SocketAddress(host: "127.0.0.1", port: port)!
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            throw SystemError("connect", errno: e)
        }
        return fd
    }

    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw SystemError("send", errno: errno) }
            offset += n
        }
    }

    /// Reads exactly `count` bytes (or fewer if the peer closes / the timeout passes).
    public static func receive(_ fd: Int32, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n <= 0 { break }
            got += n
        }
        return Array(out[0..<got])
    }

    /// Reads until the peer closes (or the timeout passes).
    public static func receiveUntilClose(_ fd: Int32) -> (bytes: [UInt8], errno: Int32) {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, 0) }
            if n == 0 { return (out, 0) }
            if n < 0 { return (out, errno) }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// Bytes readable right now without waiting (0 when none, -1 at end of stream or error).
    public static func pendingBytes(_ fd: Int32) -> Int {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1 }
        return n == 0 ? -1 : n
    }
}
