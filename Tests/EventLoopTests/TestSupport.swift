import CBallast
import EventLoop
import Glibc
import XCTest

/// Blocking client sockets for tests (the test thread is not an event loop).
enum Client {
    static func connect(port: Int, timeoutSeconds: Int = 10) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let address = SocketAddress(host: "127.0.0.1", port: port)!
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 {
            let e = errno
            close(fd)
            throw SystemError("connect", errno: e)
        }
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw SystemError("send", errno: errno) }
            offset += n
        }
    }

    /// Reads exactly `count` bytes (or fewer if the peer closes / the timeout passes).
    static func receive(_ fd: Int32, count: Int) -> [UInt8] {
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
    static func receiveUntilClose(_ fd: Int32) -> (bytes: [UInt8], errno: Int32) {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, 0) }
            if n == 0 { return (out, 0) }
            if n < 0 { return (out, errno) }
            out.append(contentsOf: chunk[0..<n])
        }
    }
}

/// Runs `body` once per backend; io_uring is skipped with the kernel's reason when refused.
func forEachBackend(_ body: (any IOBackend.Type) throws -> Void) throws {
    try body(EpollBackend.self)
    if let reason = IoUringProbe.reason {
        print("SKIP io_uring cases: \(reason)")
    } else {
        try body(IoUringBackend.self)
    }
}
