import CBallast
import Glibc

/// Socket set-up helpers. Each turns errno into a `SystemError` naming the call.
public enum Sockets {
    public static let streamNonBlocking = Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)

    /// A non-blocking TCP listening socket bound to `address`.
    /// `reusePort` sets SO_REUSEPORT so several sockets (one per worker) share the port.
    public static func listen(on address: SocketAddress, reusePort: Bool, backlog: Int32 = 4096) throws(SystemError) -> Int32 {
        let fd = try syscall("socket") { socket(address.family, streamNonBlocking, 0) }
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)")
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)") }
            _ = try syscall("bind") { address.withSockAddr { bind(fd, $0, $1) } }
            _ = try syscall("listen") { Glibc.listen(fd, backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Whether `fd` is a listening socket (SO_ACCEPTCONN): false once a drain has shut it, which
    /// is why its accepts fail with EINVAL.
    public static func isListening(_ fd: Int32) -> Bool {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0 && value != 0
    }

    /// Whether nothing listens on `address` yet: a plain bind (no SO_REUSEPORT) succeeds. Checked
    /// before binding SO_REUSEPORT sockets, which would otherwise join another process's listener
    /// on the same port and silently share its connections.
    public static func isFree(_ address: SocketAddress) -> Bool {
        guard let fd = try? syscall("socket", { socket(address.family, streamNonBlocking, 0) }) else { return false }
        defer { Glibc.close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        return address.withSockAddr { bind(fd, $0, $1) } == 0
    }

    /// A new non-blocking TCP socket for connecting to `address`'s family.
    public static func makeStream(family: Int32) throws(SystemError) -> Int32 {
        try syscall("socket") { socket(family, streamNonBlocking, 0) }
    }

    public static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ call: StaticString) throws(SystemError) {
        var v = value
        _ = try syscall(call) { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// TCP_NODELAY: responses leave at once instead of waiting for Nagle's timer.
    public static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// SO_LINGER {1, 0}: the next close sends RST instead of FIN (used by tests and fault injection).
    public static func setResetOnClose(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }

    /// The local address of a bound socket.
    public static func localAddress(_ fd: Int32) throws(SystemError) -> SocketAddress {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try syscall("getsockname") {
            withUnsafeMutablePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
        }
        return SocketAddress(storage: storage, length: len)
    }

    /// The destination an accepted connection had before iptables redirected it to this socket
    /// (SO_ORIGINAL_DST; `family` is the listening socket's). ENOENT: it was not redirected.
    public static func originalDestination(_ fd: Int32, family: Int32) throws(SystemError) -> SocketAddress {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try syscall("getsockopt(SO_ORIGINAL_DST)") { cb_original_dst(fd, family, &storage, &len) }
        return SocketAddress(storage: storage, length: len)
    }

    /// The peer address of a connected socket, or nil.
    public static func peerAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        }
        return rc == 0 ? SocketAddress(storage: storage, length: len) : nil
    }

    /// The pending error of a socket (SO_ERROR), 0 when none.
    public static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { return Glibc.errno }
        return err
    }
}

/// Open-file limit handling: 10,000 idle connections need more than the usual 1,024 fds.
public enum FileLimit {
    /// Raises the soft RLIMIT_NOFILE towards `wanted` (up to the hard limit; root may raise the
    /// hard limit too). Returns the limit in force, and a note when it is below `warnBelow`.
    @discardableResult
    public static func raise(to wanted: UInt64, warnBelow: UInt64 = 11_000) -> (limit: UInt64, note: String?) {
        let resource = Int32(RLIMIT_NOFILE.rawValue)
        var lim = rlimit()
        guard getrlimit(resource, &lim) == 0 else {
            return (0, "getrlimit(RLIMIT_NOFILE) failed: \(Log.describe(errno: errno))")
        }
        if lim.rlim_cur < wanted {
            var target = rlimit(rlim_cur: rlim_t(wanted), rlim_max: max(lim.rlim_max, rlim_t(wanted)))
            if setrlimit(resource, &target) != 0 {
                target = rlimit(rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max)
                _ = setrlimit(resource, &target)
            }
            _ = getrlimit(resource, &lim)
        }
        let now = UInt64(lim.rlim_cur)
        if now < warnBelow {
            return (now, "open-file limit is \(now) and may not be raised: at most about \(now - 32) connections; more are refused")
        }
        return (now, nil)
    }
}
