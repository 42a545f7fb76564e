import EventLoop
import Glibc
import Synchronization

/// One udp_proxy listener compiled: where it binds, which cluster, how long a session may idle.
public struct UDPListenerPlan: Sendable, Equatable {
    public let name: String
    public let address: SocketAddress
    public let statPrefix: String
    public let cluster: Int
    public let idleTimeoutNanos: Int64

    public static func == (a: UDPListenerPlan, b: UDPListenerPlan) -> Bool {
        a.name == b.name && a.address.description == b.address.description && a.statPrefix == b.statPrefix
            && a.cluster == b.cluster && a.idleTimeoutNanos == b.idleTimeoutNanos
    }
}

/// Envoy's udp_proxy figures (`udp.<stat_prefix>.*` and the cluster's `udp.*` and byte totals).
/// One writer (the listener's thread), read by the admin thread.
public final class UDPProxyStats: Sendable {
    public let sessionsTotal = Atomic<Int>(0)
    public let sessionsActive = Atomic<Int>(0)
    public let rxDatagrams = Atomic<Int>(0)
    public let rxBytes = Atomic<Int>(0)
    public let rxErrors = Atomic<Int>(0)
    public let txDatagrams = Atomic<Int>(0)
    public let txBytes = Atomic<Int>(0)
    public let txErrors = Atomic<Int>(0)
    public let idleTimeouts = Atomic<Int>(0)
    public let noRoute = Atomic<Int>(0)
    /// Toward the cluster: datagrams and bytes sent to and received from its hosts.
    public let clusterTxDatagrams = Atomic<Int>(0)
    public let clusterRxDatagrams = Atomic<Int>(0)
    public let clusterTxErrors = Atomic<Int>(0)
    public let clusterRxErrors = Atomic<Int>(0)
    public let clusterTxBytes = Atomic<Int>(0)
    public let clusterRxBytes = Atomic<Int>(0)

    public init() {}
}

/// A udp_proxy listener, served by a thread of its own with `poll` (UDP is not what the accept
/// strategies study, so it stays off the workers and works the same under epoll and io_uring).
/// Each client address is a session: an upstream socket connected to a host of the cluster
/// (round robin over its hosts when the session starts); datagrams go both ways, replies leave
/// from the listener's socket; a session idle for `idle_timeout` ends. Per datagram: one receive
/// into a fixed buffer, one dictionary lookup, one send; nothing allocated.
public final class UDPProxy: @unchecked Sendable {
    public let plan: UDPListenerPlan
    public let stats = UDPProxyStats()
    /// The bound port (the listener's own when it asked for port 0).
    public let port: Int
    private let hosts: [SocketAddress]
    private let listenFD: Int32
    /// A pipe: `stop` writes to [1], the loop's poll watches [0].
    private let wakePipe: (read: Int32, write: Int32)
    private let stopped = Atomic<Bool>(false)
    private var thread: LoopThread.Handle?

    // Loop state (the thread only).
    private struct Session {
        let fd: Int32
        let peer: SocketAddress
        var lastActive: Int64
    }
    private var sessions: [CompactAddress: Session] = [:]
    private var byFD: [Int32: CompactAddress] = [:]
    private var nextHost = 0
    private let buffer = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 16)

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(_ plan: UDPListenerPlan, hosts: [SocketAddress]) throws(StartError) {
        self.plan = plan
        self.hosts = hosts
        let fd = socket(plan.address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "listener '\(plan.name)': socket: \(Log.describe(errno: errno))") }
        let rc = plan.address.withSockAddr { bind(fd, $0, $1) }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw StartError(description: "listener '\(plan.name)': bind \(plan.address) (UDP): \(Log.describe(errno: e))")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = SocketAddress(storage: storage, length: length).port
        listenFD = fd
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            let e = errno
            close(fd)
            throw StartError(description: "listener '\(plan.name)': pipe: \(Log.describe(errno: e))")
        }
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        wakePipe = (pipeFDs[0], pipeFDs[1])
    }

    deinit {
        buffer.deallocate()
    }

    public func start() {
        thread = LoopThread.start(name: "udp-\(plan.name)", cpu: nil) { [self] in run() }
    }

    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }  // once: the descriptors close once
        var one: UInt8 = 1
        _ = write(wakePipe.write, &one, 1)
        thread?.join()
        thread = nil
        for s in sessions.values { close(s.fd) }
        sessions = [:]
        byFD = [:]
        close(listenFD)
        close(wakePipe.read)
        close(wakePipe.write)
    }

    private func run() {
        var fds: [pollfd] = []
        var fdsStale = true
        // Idle sessions are looked for at most every `sweepNanos` (a walk over all sessions), so a
        // wake-up costs the same however many sessions there are.
        let sweepNanos = min(plan.idleTimeoutNanos, 100_000_000)
        var nextSweep = monotonicNanos() + sweepNanos
        while !stopped.load(ordering: .relaxed) {
            if fdsStale {
                fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
                for fd in byFD.keys { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
                fdsStale = false
            }
            let timeoutMs = Int32(max(1, min(1000, (nextSweep - monotonicNanos()) / 1_000_000)))
            let n = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeoutMs) }
            if n < 0 && errno != EINTR { break }
            let now = monotonicNanos()
            if n > 0 {
                for i in fds.indices where fds[i].revents != 0 {
                    if fds[i].fd == listenFD {
                        if fromClients(now) { fdsStale = true }
                    } else if fds[i].fd != wakePipe.read {
                        fromUpstream(fds[i].fd, now)
                    }
                }
            }
            if now >= nextSweep {
                if expireIdle(now) { fdsStale = true }
                nextSweep = now + sweepNanos
            }
        }
    }

    /// Datagrams from clients: each to its session's upstream socket (a new session for a new
    /// client). Returns whether a session was created.
    private func fromClients(_ now: Int64) -> Bool {
        var created = false
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(listenFD, buffer, 65536, 0, $0, &length) }
            }
            if n < 0 {
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { inc(stats.rxErrors) }
                return created
            }
            inc(stats.rxDatagrams)
            inc(stats.rxBytes, by: n)
            let peer = SocketAddress(storage: storage, length: length)
            let key = CompactAddress(peer)
            if sessions[key] == nil {
                guard let fd = openSession(peer) else { continue }
                sessions[key] = Session(fd: fd, peer: peer, lastActive: now)
                byFD[fd] = key
                created = true
                inc(stats.sessionsTotal)
                inc(stats.sessionsActive)
            }
            sessions[key]!.lastActive = now
            let sent = send(sessions[key]!.fd, buffer, n, Int32(MSG_NOSIGNAL))
            if sent < 0 {
                inc(stats.clusterTxErrors)
            } else {
                inc(stats.clusterTxDatagrams)
                inc(stats.clusterTxBytes, by: sent)
            }
        }
    }

    /// An upstream socket connected to the next host of the cluster (nil: no host, or it failed).
    private func openSession(_ peer: SocketAddress) -> Int32? {
        guard !hosts.isEmpty else {
            inc(stats.noRoute)
            return nil
        }
        let host = hosts[nextHost % hosts.count]
        nextHost &+= 1
        let fd = socket(host.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        guard host.withSockAddr({ connect(fd, $0, $1) }) == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Datagrams from a session's host: back to its client, from the listener's socket.
    private func fromUpstream(_ fd: Int32, _ now: Int64) {
        guard let key = byFD[fd], let session = sessions[key] else { return }
        while true {
            let n = recv(fd, buffer, 65536, 0)
            if n < 0 {
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { inc(stats.clusterRxErrors) }
                return
            }
            inc(stats.clusterRxDatagrams)
            inc(stats.clusterRxBytes, by: n)
            sessions[key]!.lastActive = now
            let sent = session.peer.withSockAddr { sendto(listenFD, buffer, n, Int32(MSG_NOSIGNAL), $0, $1) }
            if sent < 0 {
                inc(stats.txErrors)
            } else {
                inc(stats.txDatagrams)
                inc(stats.txBytes, by: sent)
            }
        }
    }

    /// Ends the sessions idle for `idle_timeout`. Returns whether any ended.
    private func expireIdle(_ now: Int64) -> Bool {
        var expired: [CompactAddress] = []
        for (key, s) in sessions where now - s.lastActive >= plan.idleTimeoutNanos { expired.append(key) }
        for key in expired {
            guard let s = sessions.removeValue(forKey: key) else { continue }
            byFD[s.fd] = nil
            close(s.fd)
            inc(stats.idleTimeouts)
            inc(stats.sessionsActive, by: -1)
        }
        return !expired.isEmpty
    }
}
