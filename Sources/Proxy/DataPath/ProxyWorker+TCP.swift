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
    /// Upstream connections tried so far (`max_connect_attempts`).
    var attempts: Int32 = 0
    /// For the access-log line written when the session ends (Envoy logs one per connection).
    var startNanos: Int64 = 0
    var flags = ResponseFlags()
    var upstreamLocal = CompactAddress()
    /// errno of the last failed connect (0: none, or a connect_timeout).
    var connectErrno: Int32 = 0
    var logFields = ByteBuffer.empty
    /// The listener's filter chain, and its tcp_proxy (index in `ListenerPlan.tcpPlans`).
    var chain: UInt16 = 0
    var plan: Int32 = 0
    /// TLS termination (the chain's transport_socket): the client's side is TLS, `toUp` carries
    /// the plaintext, `toDown` is sealed just before each send (ProxyWorker+TCPTLS).
    var tls = TLSSession()
    /// TLS origination (the cluster's transport_socket): the upstream's side is TLS. `toUp` is
    /// sealed just before each send, the upstream's records decrypted into `toDown`; during the
    /// handshake, client bytes already queued wait in `early` (ProxyWorker+TCPTLS).
    var upTLS = TLSSession()
    var early = ByteBuffer.empty
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

    /// The tcp_proxy a session runs (the current snapshot's: a reload keeps the listener's chains).
    @inline(__always)
    func tcpPlan(_ t: UnsafeMutablePointer<TCPSession>) -> TCPPlan { listenerPlan.tcpPlans[Int(t.pointee.plan)] }

    /// A connection for filter chain `chain`, whose tcp_proxy is `plan`. `inspected`: the listener
    /// filters were receiving from it; `held`: the bytes they read, sent upstream first.
    func tcpAdopt(_ fd: Int32, chain: Int, plan: Int, inspected: Bool, held: UnsafeRawBufferPointer,
                  serverName: UnsafeRawBufferPointer?, _ loop: Loop) {
        let tcp = listenerPlan.tcpPlans[plan]
        let cluster = plane.clusters[tcp.cluster]
        var t = TCPSession()
        t.downFD = fd
        t.chain = UInt16(chain)
        t.plan = Int32(plan)
        t.startNanos = loop.now
        inc(stats.tcpProxies[plan].cxTotal)
        if let idle = tcp.idleTimeoutNanos { t.idleDeadline = loop.now + idle }
        // One getsockopt at most, shared by the log and the ORIGINAL_DST host.
        let restored = cluster.isOriginalDst || (capture != nil && accessRing != nil) ? restoredDestination(fd) : CompactAddress()
        if let capture, accessRing != nil { capture.captureConnection(fd: fd, restoredLocal: restored, serverName: serverName, into: &t.logFields, pool: pool) }
        let token = tcpSessions.insert(t)
        guard let p = tcpSessions.pointer(token) else { return }
        if inspected {
            // The receive armed for inspection, paused under the session's token: the rest stays
            // unread until the upstream connects (bytes already on their way queue behind `held`).
            loop.backend.armReceive(fd: fd, token: token)
            loop.backend.pauseReceive(fd: fd)
        }
        if let context = tcp.tls {
            guard let session = TLSSession(context: context) else {
                Log.warning("proxy worker \(index): cannot create a TLS session: \(TLSSession.lastError())")
                tcpClose(token, loop)
                return
            }
            p.pointee.tls = session
            // The inspected bytes are the start of the handshake, taken up once the upstream is
            // connected (the client is read only then, handshake included, as Envoy does).
            if held.count > 0 && !p.pointee.tls.feed(held) {
                tcpTLSFailed(token, p, loop)
                return
            }
        } else if held.count > 0 {
            p.pointee.toUp.bytes += held.count
            guard pool.append(held, to: &p.pointee.toUp.out.pending) else {
                tcpClose(token, loop)
                return
            }
        }
        let dstPool = cluster.isOriginalDst ? originalDstPool(tcp.cluster, restored, loop) : -1
        if cluster.isOriginalDst && dstPool < 0 {  // no original destination: no host (counted)
            tcpClose(token, loop)
            return
        }
        guard cluster.isOriginalDst || !cluster.hosts.isEmpty else {
            p.pointee.flags.insert(.noHealthyUpstream)
            if let cs = clusterStats(tcp.cluster) { inc(cs.upstreamCxNoneHealthy) }
            tcpClose(token, loop)
            return
        }
        // The client is read once the upstream is connected, as Envoy does: a failed connect
        // leaves its bytes unread (and uncounted), and closing then resets the client.
        tcpConnect(token, p, pool: cluster.isOriginalDst ? dstPool : pickHost(tcp.cluster), loop)
        if let p = tcpSessions.pointer(token) { armTCPTimer(token, p, loop) }
    }

    /// One upstream connection attempt of a session (the first, or a retry after a failure).
    /// On failure the session is closed (or the caller's retry goes on).
    private func tcpConnect(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, pool hp: Int, _ loop: Loop) {
        let ci = tcpPlan(t).cluster
        let cluster = plane.clusters[ci]
        guard ClusterResources.tryTake(cluster.resources.connections, limit: cluster.thresholds.maxConnections) else {
            t.pointee.flags.insert(.upstreamOverflow)
            if let cs = clusterStats(ci) { inc(cs.upstreamCxOverflow) }
            tcpClose(token, loop)
            return
        }
        let address = hostAddress(hp)
        guard let upFD = openUpstreamSocket(cluster, to: address) else {
            t.pointee.flags.insert(.upstreamConnectionFailure)
            tcpClose(token, loop)
            return
        }
        t.pointee.upFD = upFD
        t.pointee.hostPool = Int32(hp)
        t.pointee.attempts += 1
        t.pointee.connectDeadline = loop.now + cluster.connectTimeoutNanos
        upstreamPools[hp].connections += 1
        inc(upstreamPools[hp].counters.cxTotal)
        inc(upstreamPools[hp].counters.cxActive)
        inc(stats.upstreamCxTotal)
        inc(stats.upstreamCxActive)
        if let cs = clusterStats(ci) { inc(cs.upstreamCxTotal); inc(cs.upstreamCxActive) }
        loop.backend.connect(fd: upFD, token: tcpUpToken(token), address: address)
    }

    /// The upstream connection attempt failed (refused, or connect_timeout): another host is
    /// tried while `max_connect_attempts` allows it, else the session ends with UF and URX.
    func tcpConnectFailed(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, errno: Int32, _ loop: Loop) {
        let tcp = tcpPlan(t)
        if t.pointee.upTLS.isActive {
            // The queue holds the failed connection's handshake; the client's bytes wait in `early`.
            t.pointee.toUp.out.release(to: pool)
            t.pointee.toUp.out = OutboundQueue()
        }
        t.pointee.connectErrno = errno
        if t.pointee.hostPool >= 0 { inc(upstreamPools[Int(t.pointee.hostPool)].counters.cxConnectFail) }
        // Envoy's tcp_proxy: connect_timeout is LocalOriginTimeout, a refusal LocalOriginConnectFailed.
        reportOutlier(Int(t.pointee.hostPool), errno == 0 ? .timeout : .connectFailed, loop)
        inc(stats.upstreamCxConnectFail)
        if let cs = clusterStats(tcp.cluster) { inc(cs.upstreamCxConnectFail) }
        t.pointee.flags.insert(.upstreamConnectionFailure)
        if Int(t.pointee.attempts) < tcp.maxConnectAttempts && !plane.clusters[tcp.cluster].isOriginalDst {
            releaseTCPUpstream(t, loop)
            t.pointee.connectDeadline = 0
            tcpConnect(token, t, pool: pickHost(tcp.cluster), loop)
            if let p = tcpSessions.pointer(token) { armTCPTimer(token, p, loop) }
            return
        }
        t.pointee.flags.insert(.upstreamRetryLimitExceeded)
        if let cs = clusterStats(tcp.cluster) { inc(cs.upstreamCxConnectAttemptsExceeded) }
        tcpClose(token, loop)
    }

    func tcpConnected(_ c: Completion, _ loop: Loop) {
        let token = tcpDownToken(c.token)
        guard let t = tcpSessions.pointer(token) else { return }
        guard c.result >= 0 else {
            tcpConnectFailed(token, t, errno: -c.result, loop)
            return
        }
        loop.backend.armReceive(fd: t.pointee.upFD, token: c.token)
        let cluster = plane.clusters[tcpPlan(t).cluster]
        if let context = cluster.tls {
            // Connected once the handshake is done, under connect_timeout, as Envoy's TLS socket.
            tcpStartUpstreamTLS(token, t, context, sni: cluster.sni, loop)
            return
        }
        tcpUpstreamReady(token, t, loop)
    }

    /// The upstream connection is usable (TCP connected, and the TLS handshake done on a TLS
    /// cluster): the client is read from now on.
    func tcpUpstreamReady(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, _ loop: Loop) {
        t.pointee.connectDeadline = 0
        t.pointee.connected = true
        t.pointee.flags.remove(.upstreamConnectionFailure)  // an earlier attempt failed, this one did not
        t.pointee.connectErrno = 0
        reportOutlier(Int(t.pointee.hostPool), .connectSuccessFinal, loop)
        if accessRing != nil, let local = try? Sockets.localAddress(t.pointee.upFD) { t.pointee.upstreamLocal = CompactAddress(local) }
        loop.backend.armReceive(fd: t.pointee.downFD, token: token)
        if t.pointee.tls.isActive {
            tcpTLSProgress(token, t, loop)  // a ClientHello the inspector already read
        } else if t.pointee.toUp.out.pending.count > 0 {
            tcpFlush(token, t, toUpstream: true, loop)  // inspected bytes
        }
    }

    func tcpReceived(_ c: Completion, _ loop: Loop) {
        let fromUp = ConnToken.kind(c.token) == ConnKind.tcpUpstream.rawValue
        let token = tcpDownToken(c.token)
        guard let t = tcpSessions.pointer(token) else { return }
        if fromUp && !t.pointee.connected && t.pointee.upTLS.isActive && c.result <= 0 {
            // The upstream ended or reset during the handshake: a connect failure, as Envoy's pool counts it.
            tcpConnectFailed(token, t, errno: ProxyWorkerTLS.tcpFailureErrno, loop)
            return
        }
        if c.result < 0 {
            tcpClose(token, loop)
            return
        }
        if let idle = tcpPlan(t).idleTimeoutNanos { t.pointee.idleDeadline = loop.now + idle }
        let toUpstream = !fromUp
        if c.result == 0 {
            if toUpstream { t.pointee.toUp.sourceEnded = true } else { t.pointee.toDown.sourceEnded = true }
            tcpFlush(token, t, toUpstream: toUpstream, loop)
            return
        }
        if fromUp && t.pointee.upTLS.isActive {
            tcpUpstreamCiphertext(token, t, c.bytes, loop)
            return
        }
        if toUpstream && t.pointee.tls.isActive {
            guard t.pointee.tls.feed(c.bytes) else {
                tcpTLSFailed(token, t, loop)
                return
            }
            tcpTLSProgress(token, t, loop)
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
        tcpPauseSourceIfFull(t, toUpstream: toUpstream, loop)
        tcpFlush(token, t, toUpstream: toUpstream, loop)
    }

    /// A direction whose queue reached the high-water mark stops reading its source until the
    /// queue drains (`tcpSent` resumes it).
    @inline(__always)
    func tcpPauseSourceIfFull(_ t: UnsafeMutablePointer<TCPSession>, toUpstream: Bool, _ loop: Loop) {
        if toUpstream {
            guard t.pointee.toUp.out.pending.count >= Self.highWater, !t.pointee.toUp.sourcePaused else { return }
            t.pointee.toUp.sourcePaused = true
            loop.backend.pauseReceive(fd: t.pointee.downFD)
        } else {
            guard t.pointee.toDown.out.pending.count >= Self.highWater, !t.pointee.toDown.sourcePaused else { return }
            t.pointee.toDown.sourcePaused = true
            loop.backend.pauseReceive(fd: t.pointee.upFD)
        }
    }

    func tcpSent(_ c: Completion, _ loop: Loop) {
        let toUpstream = ConnToken.kind(c.token) == ConnKind.tcpUpstream.rawValue
        let token = tcpDownToken(c.token)
        guard let t = tcpSessions.pointer(token) else { return }
        let dir = TCPSession.direction(t, toUpstream: toUpstream)
        guard dir.pointee.out.inFlight else { return }  // a send to an upstream socket closed since (TLS retry)
        guard c.result >= 0 else {
            tcpClose(token, loop)
            return
        }
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
    func tcpFlush(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, toUpstream: Bool, _ loop: Loop) {
        let dir = TCPSession.direction(t, toUpstream: toUpstream)
        guard !toUpstream || t.pointee.connected else {
            if t.pointee.upTLS.isActive { tcpHandshakeFlush(token, t, loop) }
            return
        }
        let fd = toUpstream ? t.pointee.upFD : t.pointee.downFD
        if toUpstream && t.pointee.upTLS.isActive {
            // The client ended: close_notify goes out before the write half closes.
            if dir.pointee.sourceEnded && dir.pointee.out.pending.count == 0 && !dir.pointee.out.inFlight && !t.pointee.upTLS.closeNotified {
                t.pointee.upTLS.closeNotify()
            }
            guard sealOutput(t.pointee.upTLS, &dir.pointee.out) else {
                tcpClose(token, loop)
                return
            }
        }
        if !toUpstream && t.pointee.tls.isActive {
            // The upstream ended: close_notify goes out before the write half closes.
            if dir.pointee.sourceEnded && dir.pointee.out.pending.count == 0 && !dir.pointee.out.inFlight && !t.pointee.tls.closeNotified
                && t.pointee.tls.handshakeDone {
                t.pointee.tls.closeNotify()
            }
            guard sealOutput(t.pointee.tls, &dir.pointee.out) else {
                tcpTLSFailed(token, t, loop)
                return
            }
        }
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
        if t.pointee.tls.isActive {
            closeNotifyNow(&t.pointee.tls, fd: t.pointee.downFD, sendInFlight: t.pointee.toDown.out.inFlight)
        }
        loop.backend.close(fd: t.pointee.downFD)
        t.pointee.toUp.out.release(to: pool)
        t.pointee.toDown.out.release(to: pool)
        releaseTCPUpstream(t, loop)
        let counters = stats.tcpProxies[Int(t.pointee.plan)]
        inc(counters.rxBytes, by: t.pointee.toUp.bytes)
        inc(counters.txBytes, by: t.pointee.toDown.bytes)
        if let accessRing { recordTCPAccess(t, accessRing, loop) }
        t.pointee.tls.free()
        pool.release(&t.pointee.early)
        pool.release(&t.pointee.logFields)
        downstreamConnectionEnded()
        loads.connectionClosed(index)
        tcpSessions.remove(token)
    }

    /// Closes the session's upstream connection, if any, and gives back its slots.
    func releaseTCPUpstream(_ t: UnsafeMutablePointer<TCPSession>, _ loop: Loop) {
        guard t.pointee.upFD >= 0 else { return }
        if t.pointee.upTLS.isActive {
            closeNotifyNow(&t.pointee.upTLS, fd: t.pointee.upFD, sendInFlight: t.pointee.toUp.out.inFlight)
            t.pointee.upTLS.free()
        }
        loop.backend.close(fd: t.pointee.upFD)
        t.pointee.upFD = -1
        let hp = Int(t.pointee.hostPool)
        upstreamPools[hp].connections -= 1
        inc(upstreamPools[hp].counters.cxActive, by: -1)
        ClusterResources.give(plane.clusters[Int(upstreamPools[hp].cluster)].resources.connections)
        inc(stats.upstreamCxActive, by: -1)
        if let cs = clusterStats(Int(upstreamPools[hp].cluster)) { inc(cs.upstreamCxActive, by: -1) }
    }

    /// The session's access-log record: one per connection, as Envoy's tcp_proxy writes it (no
    /// response code, the bytes each way, the host tried last).
    private func recordTCPAccess(_ t: UnsafeMutablePointer<TCPSession>, _ ring: AccessRecordRing, _ loop: Loop) {
        var r = AccessRecord()
        r.worker = Int32(index)
        r.listener = Int32(listenerPlan.index)
        r.startNanos = t.pointee.startNanos
        r.durationNanos = loop.now - t.pointee.startNanos
        r.flags = t.pointee.flags
        r.bytesReceived = t.pointee.toUp.bytes
        r.bytesSent = t.pointee.toDown.bytes
        r.cluster = Int32(tcpPlan(t).cluster)
        r.chain = t.pointee.chain
        r.tlsVersion = t.pointee.tls.versionNumber
        let hp = Int(t.pointee.hostPool)
        if hp >= 0 {
            r.host = upstreamPools[hp].host
            if let h = upstreamPools[hp].dynamicHost { r.originalDstHost = h.compact }
        }
        r.upstreamLocal = t.pointee.upstreamLocal
        // tcp_proxy records have no response details: the field carries the connect errno
        // (%UPSTREAM_TRANSPORT_FAILURE_REASON%).
        r.detailsArgument = UInt16(clamping: t.pointee.connectErrno)
        r.generation = ops.generation
        ring.push(r, extra: t.pointee.logFields.bytes)
    }

    func armTCPTimer(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, _ loop: Loop) {
        t.pointee.timer.arm(DeadlineTimer.earliest(t.pointee.connectDeadline, t.pointee.idleDeadline), id: token, in: &loop.timers)
    }

    func tcpTimer(_ token: UInt64, _ loop: Loop) {
        guard let t = tcpSessions.pointer(token) else { return }
        let now = loop.now
        t.pointee.timer.fired(now: now)
        if t.pointee.connectDeadline != 0 && t.pointee.connectDeadline <= now && !t.pointee.connected {
            inc(stats.upstreamCxConnectTimeout)
            if let cs = clusterStats(tcpPlan(t).cluster) { inc(cs.upstreamCxConnectTimeout) }
            tcpConnectFailed(token, t, errno: 0, loop)
            return
        }
        if t.pointee.idleDeadline != 0 && t.pointee.idleDeadline <= now {
            inc(stats.tcpProxies[Int(t.pointee.plan)].idleTimeout)
            tcpClose(token, loop)
            return
        }
        armTCPTimer(token, t, loop)
    }
}
