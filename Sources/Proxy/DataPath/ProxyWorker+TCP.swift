import EventLoop
import Glibc

/// One tcp_proxy session: a client connection and its upstream connection, bytes copied both ways.
/// Half-close is forwarded: when one side ends its stream, the other side's write half is shut
/// down (SHUT_WR) once everything before the end was sent; the session closes when both
/// directions have ended.
struct TCPSession {
    var downFD: Int32 = -1
    var upFD: Int32 = -1
    var connected = false
    var hostPool: Int32 = -1
    /// Client -> upstream.
    var toUp = TCPDirection()
    /// Upstream -> client.
    var toDown = TCPDirection()
    var connectDeadline: Int64 = 0
    var idleDeadline: Int64 = 0
    var timer = DeadlineTimer()
}

struct TCPDirection {
    var out = OutboundQueue()
    /// The source side ended its stream (FIN received).
    var sourceEnded = false
    /// The end was passed on (SHUT_WR on the destination).
    var shutDown = false
    /// Receiving from the source is paused (destination slow).
    var sourcePaused = false
    var bytes = 0

    var drained: Bool { out.isDrained }
}

extension TCPSession {
    private static let toUpOffset = MemoryLayout<TCPSession>.offset(of: \.toUp)!
    private static let toDownOffset = MemoryLayout<TCPSession>.offset(of: \.toDown)!

    /// One direction of a session in the table's stable storage, derived from the session's own
    /// address (the storage is bound to `TCPSession`, so its stored `TCPDirection`s are too).
    @inline(__always)
    static func direction(_ t: UnsafeMutablePointer<TCPSession>, toUpstream: Bool) -> UnsafeMutablePointer<TCPDirection> {
        (UnsafeMutableRawPointer(t) + (toUpstream ? toUpOffset : toDownOffset)).assumingMemoryBound(to: TCPDirection.self)
    }
}

extension ProxyWorker {
    @inline(__always)
    func tcpUpToken(_ down: UInt64) -> UInt64 { SlabToken.withKind(ConnKind.tcpUpstream.rawValue, down) }
    @inline(__always)
    func tcpDownToken(_ token: UInt64) -> UInt64 { SlabToken.withKind(ConnKind.tcpDownstream.rawValue, token) }

    func tcpAdopt(_ fd: Int32, _ loop: Loop) {
        guard let tcp else { return }
        let cluster = plane.clusters[tcp.cluster]
        let dstPool = cluster.isOriginalDst ? originalDstPool(tcp.cluster, restoredDestination(fd), loop) : -1
        if cluster.isOriginalDst && dstPool < 0 {  // no original destination: no host (counted)
            loads.connectionClosed(index)
            downstreamConnectionEnded()
            Glibc.close(fd)
            return
        }
        guard cluster.isOriginalDst || !cluster.hosts.isEmpty, ClusterResources.tryTake(cluster.resources.connections, limit: cluster.thresholds.maxConnections) else {
            inc(stats.upstreamRqPendingOverflow)
            if let cs = clusterStats(tcp.cluster) { inc(cs.upstreamRqPendingOverflow) }
            loads.connectionClosed(index)
            downstreamConnectionEnded()
            Glibc.close(fd)
            return
        }
        let hp = cluster.isOriginalDst ? dstPool : pickHost(tcp.cluster)
        let address = hostAddress(hp)
        let upFD: Int32
        do {
            upFD = try Sockets.makeStream(family: address.family)
        } catch {
            ClusterResources.give(cluster.resources.connections)
            inc(stats.upstreamCxConnectFail)
            if let cs = clusterStats(tcp.cluster) { inc(cs.upstreamCxConnectFail) }
            loads.connectionClosed(index)
            downstreamConnectionEnded()
            Glibc.close(fd)
            return
        }
        Sockets.setNoDelay(upFD)
        var t = TCPSession()
        t.downFD = fd
        t.upFD = upFD
        t.hostPool = Int32(hp)
        t.connectDeadline = loop.now + cluster.connectTimeoutNanos
        if let idle = tcp.idleTimeoutNanos { t.idleDeadline = loop.now + idle }
        let token = tcpSessions.insert(t)
        upstreamPools[hp].connections += 1
        inc(stats.upstreamCxTotal)
        inc(stats.upstreamCxActive)
        if let cs = clusterStats(tcp.cluster) { inc(cs.upstreamCxTotal); inc(cs.upstreamCxActive) }
        loop.backend.connect(fd: upFD, token: tcpUpToken(token), address: address)
        loop.backend.armReceive(fd: fd, token: token)
        if let p = tcpSessions.pointer(token) { armTCPTimer(token, p, loop) }
    }

    func tcpConnected(_ c: Completion, _ loop: Loop) {
        let token = tcpDownToken(c.token)
        guard let t = tcpSessions.pointer(token) else { return }
        t.pointee.connectDeadline = 0
        guard c.result >= 0 else {
            inc(stats.upstreamCxConnectFail)
            if let ci = tcp?.cluster, let cs = clusterStats(ci) { inc(cs.upstreamCxConnectFail) }
            tcpClose(token, loop)
            return
        }
        t.pointee.connected = true
        loop.backend.armReceive(fd: t.pointee.upFD, token: c.token)
        tcpFlush(token, t, toUpstream: true, loop)
    }

    func tcpReceived(_ c: Completion, _ loop: Loop) {
        let fromUp = ConnToken.kind(c.token) == ConnKind.tcpUpstream.rawValue
        let token = tcpDownToken(c.token)
        guard let t = tcpSessions.pointer(token) else { return }
        if c.result < 0 {
            tcpClose(token, loop)
            return
        }
        if let idle = tcp?.idleTimeoutNanos { t.pointee.idleDeadline = loop.now + idle }
        let toUpstream = !fromUp
        if c.result == 0 {
            if toUpstream { t.pointee.toUp.sourceEnded = true } else { t.pointee.toDown.sourceEnded = true }
            tcpFlush(token, t, toUpstream: toUpstream, loop)
            return
        }
        let ok: Bool
        if toUpstream {
            ok = pool.append(c.bytes, to: &t.pointee.toUp.out.pending)
            t.pointee.toUp.bytes += c.bytes.count
        } else {
            ok = pool.append(c.bytes, to: &t.pointee.toDown.out.pending)
            t.pointee.toDown.bytes += c.bytes.count
        }
        guard ok else {
            tcpClose(token, loop)
            return
        }
        let queued = toUpstream ? t.pointee.toUp.out.pending.count : t.pointee.toDown.out.pending.count
        if queued >= Self.highWater {
            if toUpstream, !t.pointee.toUp.sourcePaused {
                t.pointee.toUp.sourcePaused = true
                loop.backend.pauseReceive(fd: t.pointee.downFD)
            } else if !toUpstream, !t.pointee.toDown.sourcePaused {
                t.pointee.toDown.sourcePaused = true
                loop.backend.pauseReceive(fd: t.pointee.upFD)
            }
        }
        tcpFlush(token, t, toUpstream: toUpstream, loop)
    }

    func tcpSent(_ c: Completion, _ loop: Loop) {
        let toUpstream = ConnToken.kind(c.token) == ConnKind.tcpUpstream.rawValue
        let token = tcpDownToken(c.token)
        guard let t = tcpSessions.pointer(token) else { return }
        guard c.result >= 0 else {
            tcpClose(token, loop)
            return
        }
        let dir = TCPSession.direction(t, toUpstream: toUpstream)
        let fd = toUpstream ? t.pointee.upFD : t.pointee.downFD
        guard dir.pointee.out.sent(Int(c.result), fd: fd, on: loop.backend, pool: pool) else { return }
        if dir.pointee.sourcePaused && dir.pointee.out.pending.count < Self.lowWater {
            dir.pointee.sourcePaused = false
            loop.backend.resumeReceive(fd: toUpstream ? t.pointee.downFD : t.pointee.upFD)
        }
        tcpFlush(token, t, toUpstream: toUpstream, loop)
    }

    /// Sends what one direction has queued; passes an ended stream on once drained; closes the
    /// session when both directions ended.
    private func tcpFlush(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, toUpstream: Bool, _ loop: Loop) {
        guard !toUpstream || t.pointee.connected else { return }
        let dir = TCPSession.direction(t, toUpstream: toUpstream)
        let fd = toUpstream ? t.pointee.upFD : t.pointee.downFD
        if dir.pointee.out.flush(fd: fd, on: loop.backend) { return }
        if dir.pointee.sourceEnded && dir.pointee.drained && !dir.pointee.shutDown {
            dir.pointee.shutDown = true
            Glibc.shutdown(fd, Int32(SHUT_WR))
        }
        if t.pointee.toUp.shutDown && t.pointee.toDown.shutDown {
            tcpClose(token, loop)
        }
    }

    func tcpClose(_ token: UInt64, _ loop: Loop) {
        guard let t = tcpSessions.pointer(token) else { return }
        loop.backend.close(fd: t.pointee.downFD)
        loop.backend.close(fd: t.pointee.upFD)
        t.pointee.toUp.out.release(to: pool)
        t.pointee.toDown.out.release(to: pool)
        let hp = Int(t.pointee.hostPool)
        upstreamPools[hp].connections -= 1
        ClusterResources.give(plane.clusters[Int(upstreamPools[hp].cluster)].resources.connections)
        inc(stats.upstreamCxActive, by: -1)
        if let cs = clusterStats(Int(upstreamPools[hp].cluster)) { inc(cs.upstreamCxActive, by: -1) }
        downstreamConnectionEnded()
        loads.connectionClosed(index)
        tcpSessions.remove(token)
    }

    private func armTCPTimer(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, _ loop: Loop) {
        t.pointee.timer.arm(DeadlineTimer.earliest(t.pointee.connectDeadline, t.pointee.idleDeadline), id: token, in: &loop.timers)
    }

    func tcpTimer(_ token: UInt64, _ loop: Loop) {
        guard let t = tcpSessions.pointer(token) else { return }
        let now = loop.now
        t.pointee.timer.fired(now: now)
        if t.pointee.connectDeadline != 0 && t.pointee.connectDeadline <= now && !t.pointee.connected {
            inc(stats.upstreamCxConnectTimeout)
            if let ci = tcp?.cluster, let cs = clusterStats(ci) { inc(cs.upstreamCxConnectTimeout) }
            tcpClose(token, loop)
            return
        }
        if t.pointee.idleDeadline != 0 && t.pointee.idleDeadline <= now {
            tcpClose(token, loop)
            return
        }
        armTCPTimer(token, t, loop)
    }
}
