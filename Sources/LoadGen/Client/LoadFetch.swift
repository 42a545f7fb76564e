import EventLoop
import Glibc

/// A one-off blocking HTTP/1.0 GET (for `-workers-url`, outside the measured run). Returns the
/// body, or nil on any failure (logged as a warning). At most 1 MiB, 2 s per socket operation.
public enum LoadFetch {
    public static func get(_ urlText: String) -> String? {
        guard let url = try? LoadURL(urlText) else { return nil }
        let address = url.address
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard address.withSockAddr({ connect(fd, $0, $1) }) == 0 else {
            Log.warning("-workers-url \(urlText): connect failed: \(Log.describe(errno: errno))")
            return nil
        }
        var request = "GET \(url.target) HTTP/1.0\r\nHost: \(url.hostHeader)\r\n\r\n"
        let sent = request.withUTF8 { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent > 0 else { return nil }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while data.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        guard let end = headEnd(data) else {
            Log.warning("-workers-url \(urlText): no HTTP response")
            return nil
        }
        let status = String(decoding: data[0..<min(end, 16)], as: UTF8.self).split(separator: " ").dropFirst().first
        guard status == "200" else {
            Log.warning("-workers-url \(urlText): status \(status ?? "?")")
            return nil
        }
        return String(decoding: data[(end + 4)...], as: UTF8.self)
    }

    static func headEnd(_ d: [UInt8]) -> Int? {
        guard d.count >= 4 else { return nil }
        for i in 0...(d.count - 4) where d[i] == 13 && d[i + 1] == 10 && d[i + 2] == 13 && d[i + 3] == 10 { return i }
        return nil
    }
}
