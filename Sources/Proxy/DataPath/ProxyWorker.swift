import Balancers
import EventLoop
import Glibc
import HTTP1

/// Settings every worker of a listener shares.
struct ProxyWorkerSettings: Sendable {
    let plane: DataPlane
    let listener: ListenerPlan
    /// Add `x-ballast-response-flags` to every response (debug).
    let debugResponseFlags: Bool
    /// Where finished requests go for the access log (one ring per worker), or nil.
    let accessRings: [AccessRecordRing]?
    /// Which request fields the access logs of this listener need (nil: none).
    var capture: AccessLogCapture? = nil
}

/// One proxy worker of an HTTP (http_connection_manager) or TCP (tcp_proxy) listener: owns its
/// loop's downstream connections, its upstream connection pools (per host), their buffers and
/// timers. Everything runs on the worker's loop thread; nothing here locks. A connection and all
/// its upstream work stay on this worker.
///
/// The request path: receive -> parse the head in place (lent receive buffer) -> HTTP filter
/// chain (router) -> host pool (idle keep-alive connection, new connection, or queue) -> encode
/// the head for upstream -> stream the body. The response path: receive -> parse the head ->
/// encode it for downstream -> stream the body -> return the connection to the pool -> serve the
/// next pipelined request. Each direction is bounded: a side whose output is queued high stops
/// reading the other side.
final class ProxyWorker<Backend: IOBackend>: BalancedWorker {
    typealias Message = ProxyMessage
    typealias Loop = EventLoop<Backend, ProxyMessage>

    /// Output queued beyond this pauses the side feeding it.
    static var highWater: Int { 256 * 1024 }
    static var lowWater: Int { 64 * 1024 }
    /// Largest response head accepted from an upstream.
    static var maxResponseHead: Int { 64 * 1024 }
    static var lingerNanos: Int64 { 1_000_000_000 }

    let index: Int
    let listener: Int32
    let loads: WorkerLoads
    /// The current snapshot; a reload swaps it (`ProxyMessage.publish`) for new requests.
    var plane: DataPlane
    var listenerPlan: ListenerPlan
    var http: HTTPPlan?
    var tcp: TCPPlan?
    let stats: DataPathStats
    let debugFlags: Bool
    let accessRing: AccessRecordRing?
    /// Unconsumed downstream input above this pauses receiving (per_connection_buffer_limit_bytes).
    let inputLimit: Int

    let pool = BufferPool()
    var downs = ConnTable<Downstream>(kind: .downstream, empty: Downstream())
    var ups = ConnTable<Upstream>(kind: .upstream, empty: Upstream())
    var tcpSessions = ConnTable<TCPSession>(kind: .tcpDownstream, empty: TCPSession())
    let requestParser: UnsafeMutablePointer<RequestHeadParser>
    var responseParser = ResponseHeadParser()
    var hostPools: [HostPool] = []
    /// First host pool of each cluster.
    var clusterBase: [Int] = []
    var roundRobin: [Int] = []
    var rng: SplitMix64
    var loggedAcceptError = false
    /// Reload and drain state (`ProxyWorker+Ops`).
    var ops = WorkerOpsState()
    let listenerFD: Int32
    let capture: AccessLogCapture?

    init(seat: WorkerSeat, settings: ProxyWorkerSettings, stats: DataPathStats) {
        index = seat.index
        listener = seat.listener
        loads = seat.loads
        plane = settings.plane
        listenerPlan = settings.listener
        switch settings.listener.kind {
        case .http(let h):
            http = h
            tcp = nil
        case .tcp(let t):
            http = nil
            tcp = t
        }
        self.stats = stats
        debugFlags = settings.debugResponseFlags
        accessRing = settings.accessRings?[seat.index]
        listenerFD = seat.listener
        capture = settings.accessRings == nil ? nil : settings.capture
        inputLimit = max(64 * 1024, settings.listener.bufferLimitBytes)
        requestParser = .allocate(capacity: 1)
        requestParser.initialize(to: RequestHeadParser(maxHeaderBytes: http?.maxRequestHeaderBytes ?? 65536,
                                                       maxHeaders: http?.maxHeadersCount ?? 100))
        rng = SplitMix64(seed: 0xBA11_A570_0000 &+ UInt64(seat.index) &* 0x9E37_79B9)
        for c in plane.clusters {
            clusterBase.append(hostPools.count)
            roundRobin.append(seat.index)  // workers start at different hosts
            for h in c.hosts.indices { hostPools.append(HostPool(cluster: c.index, host: h)) }
        }
    }

    deinit {
        requestParser.deinitialize(count: 1)
        requestParser.deallocate()
    }

    // MARK: completions

    func handle(_ c: Completion, loop: Loop) {
        switch c.kind {
        case .receive:
            switch ConnToken.kind(c.token) {
            case ConnKind.downstream.rawValue: downstreamReceived(c, loop)
            case ConnKind.upstream.rawValue: upstreamReceived(c, loop)
            default: tcpReceived(c, loop)
            }
        case .send:
            switch ConnToken.kind(c.token) {
            case ConnKind.downstream.rawValue: downstreamSent(c, loop)
            case ConnKind.upstream.rawValue: upstreamSent(c, loop)
            default: tcpSent(c, loop)
            }
        case .connect:
            if ConnToken.kind(c.token) == ConnKind.upstream.rawValue { upstreamConnected(c, loop) } else { tcpConnected(c, loop) }
        case .accept:
            accepted(c, loop)
        case .message:
            adopt(c.result, loop)
        }
    }

    private func accepted(_ c: Completion, _ loop: Loop) {
        if ops.draining {  // the listener is shut: nothing more is accepted or retried
            if c.result >= 0 { Glibc.close(c.result) }
            return
        }
        guard c.result >= 0 else {
            if !loggedAcceptError {
                loggedAcceptError = true
                Log.warning("proxy worker \(index): accept failed: \(Log.describe(errno: -c.result)); retrying every 100 ms")
            }
            loop.timers.schedule(at: loop.now + 100_000_000, id: WorkerSeat.listenerToken)
            return
        }
        loads.connectionOpened(index)
        adopt(c.result, loop)
    }

    private func adopt(_ fd: Int32, _ loop: Loop) {
        if ops.draining {  // handed over by an acceptor after the drain began
            loads.connectionClosed(index)
            Glibc.close(fd)
            return
        }
        Sockets.setNoDelay(fd)
        inc(stats.downstreamCxTotal)
        inc(stats.downstreamCxActive)
        if tcp != nil {
            tcpAdopt(fd, loop)
            return
        }
        var d = Downstream()
        d.fd = fd
        let token = downs.insert(d)
        if let idle = http?.idleTimeoutNanos, let p = downs.pointer(token) {
            p.pointee.idleDeadline = loop.now + idle
            armDownstreamTimer(token, p, loop)
        }
        loop.backend.armReceive(fd: fd, token: token)
    }

    func received(_ message: ProxyMessage, loop: Loop) {
        switch message {
        case .adopt(let fd): adopt(fd, loop)
        case .publish(let plane, let generation): apply(plane, generation: generation)
        case .drain: startDrain(loop)
        case .testStall(let stall): stall.hold()
        }
    }

    func stopping(loop: Loop) {
        for t in downs.liveTokens() { closeDownstream(t, loop, flags: .localReset) }
        for t in tcpSessions.liveTokens() { tcpClose(t, loop) }
        for t in ups.liveTokens() { closeUpstream(t, loop) }
    }

    // MARK: downstream input

    private func downstreamReceived(_ c: Completion, _ loop: Loop) {
        let token = c.token
        guard let d = downs.pointer(token) else { return }
        if c.result <= 0 {
            if c.result < 0 || d.pointee.lingering || d.pointee.hasStream {
                // A reset, the end of a linger, or a client that left with its request unanswered.
                closeDownstream(token, loop, flags: .downstreamConnectionTermination)
                return
            }
            d.pointee.peerClosed = true
            d.pointee.closeAfterFlush = true
            pool.release(&d.pointee.input)
            downstreamSettled(token, d, loop)
            return
        }
        if d.pointee.closeAfterFlush || d.pointee.lingering { return }  // discarded
        let bytes = c.bytes
        if d.pointee.input.count == 0 {
            // Fast path: parse straight from the lent receive buffer; keep only what is left.
            let used = consumeDownstream(bytes, token, d, loop)
            if used < bytes.count && !d.pointee.closeAfterFlush {
                if !pool.append(UnsafeRawBufferPointer(rebasing: bytes[used...]), to: &d.pointee.input) {
                    requestTooLarge(token, d, loop)
                }
            }
        } else {
            if !pool.append(bytes, to: &d.pointee.input) {
                requestTooLarge(token, d, loop)
            } else {
                consumeBufferedInput(token, d, loop)
            }
        }
        if d.pointee.input.count >= inputLimit && !d.pointee.receivePaused && !d.pointee.closeAfterFlush {
            d.pointee.receivePaused = true
            loop.backend.pauseReceive(fd: d.pointee.fd)
        }
        downstreamSettled(token, d, loop)
    }

    /// Runs the buffered input through `consumeDownstream` and drops what it used.
    func consumeBufferedInput(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard d.pointee.input.count > 0, !d.pointee.processing else { return }
        let used = consumeDownstream(d.pointee.input.bytes, token, d, loop)
        if d.pointee.closeAfterFlush {
            pool.release(&d.pointee.input)
        } else {
            BufferPool.consume(used, from: &d.pointee.input)
            if d.pointee.input.count == 0 { pool.release(&d.pointee.input) }
        }
        if d.pointee.receivePaused && d.pointee.input.count < inputLimit / 2 && !d.pointee.closeAfterFlush {
            d.pointee.receivePaused = false
            loop.backend.resumeReceive(fd: d.pointee.fd)
        }
    }

    /// Parses and dispatches requests, and forwards request body bytes, from the front of
    /// `bytes`. Returns how many bytes were used; the rest waits (a partial head, body bytes the
    /// upstream cannot take yet, or pipelined requests behind the active one).
    private func consumeDownstream(_ bytes: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) -> Int {
        d.pointee.processing = true
        defer { d.pointee.processing = false }
        var offset = 0
        while offset < bytes.count {
            if d.pointee.closeAfterFlush { return bytes.count }
            if !d.pointee.hasStream {
                // One response at a time is queued high; the next request waits for the client to read.
                if d.pointee.pending.count >= Self.highWater { return offset }
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                requestParser.pointee.reset()
                switch requestParser.pointee.parse(rest) {
                case .incomplete:
                    return offset
                case .failure(let error):
                    protocolError(error.status, token, d, loop)
                    return bytes.count
                case .complete(let headLength):
                    if let status = rejectBeforeForwarding(headLength, in: rest) {
                        protocolError(status, token, d, loop)
                        return bytes.count
                    }
                    offset += headLength
                    startStream(UnsafeRawBufferPointer(rebasing: rest[0..<headLength]), token, d, loop)
                }
            } else {
                if d.pointee.stream.requestComplete { return offset }
                let n = forwardRequestBody(UnsafeRawBufferPointer(rebasing: bytes[offset...]), token, d, loop)
                if n == 0 { return offset }
                offset += n
            }
        }
        return offset
    }

    /// A whole request head arrived: run the filter chain and act on its decision.
    private func startStream(_ head: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let p = requestParser
        d.pointee.hasStream = true
        d.pointee.idleDeadline = 0
        d.pointee.stream = Stream()
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        s.pointee.startNanos = loop.now
        s.pointee.isHEAD = p.pointee.method == .head
        s.pointee.keepAlive = p.pointee.keepAlive && !ops.draining
        streamBegan(s)
        if let capture { capture.capture(head, parser: p, fd: d.pointee.fd, into: &s.pointee.logFields, pool: pool) }
        s.pointee.http10 = p.pointee.version == .http1_0
        s.pointee.expectsContinue = p.pointee.expectsContinue
        switch p.pointee.bodyFraming {
        case .none, .untilClose, .contentLength(0):
            s.pointee.requestComplete = true
        case .contentLength(let n):
            s.pointee.requestBody = .length
            s.pointee.requestRemaining = n
        case .chunked:
            s.pointee.requestBody = .chunked
            s.pointee.requestDecoder.reset()
        }
        loads.requestStarted(index)
        inc(stats.downstreamRqTotal)
        guard let http else { return }
        var ctx = FilterContext(request: RequestView(bytes: head, path: p.pointee.pathRange, query: p.pointee.queryRange,
                                                     host: p.pointee.hostRange, parser: p),
                                plan: http, random: rng.next())
        http.filters.decodeHeaders(&ctx)
        switch ctx.decision {
        case .undecided:
            localReply(LocalReply(status: 404, body: .text(""), flags: .noRouteFound, details: .routeNotFound), token, d, loop)
        case .localReply(let reply):
            if reply.flags.contains(.noRouteFound) { inc(stats.noRoute) }
            if case .route(let r) = reply.body { s.pointee.route = Int32(r) }
            localReply(reply, token, d, loop)
        case .forward(let route, let cluster):
            forward(head, route: route, cluster: cluster, token, d, loop)
        }
    }

    /// Forwards request body bytes from the front of `bytes` into the upstream's output.
    /// Returns the bytes used (0: the upstream cannot take any now).
    private func forwardRequestBody(_ bytes: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) -> Int {
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        guard s.pointee.upstream != 0, s.pointee.requestHead.count == 0, let up = ups.pointer(s.pointee.upstream),
              up.pointee.state == .busy else { return 0 }
        let room = Self.highWater - up.pointee.pending.count
        guard room > 0 else { return 0 }
        let avail = UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, room)])
        var used = 0
        var done = false
        switch s.pointee.requestBody {
        case .length:
            used = min(avail.count, s.pointee.requestRemaining)
            s.pointee.requestRemaining -= used
            s.pointee.bytesReceived += used
            done = s.pointee.requestRemaining == 0
        case .chunked:
            let skim = s.pointee.requestDecoder.skim(avail)
            if skim.failure != nil {
                // A malformed body after part of it went upstream: the exchange cannot be saved.
                closeUpstream(s.pointee.upstream, loop)
                s.pointee.upstream = 0
                protocolError(400, token, d, loop)
                return bytes.count
            }
            s.pointee.bytesReceived += skim.payload
            used = skim.consumed
            done = skim.done
        default:
            done = true
        }
        if used > 0 {
            let chunk = UnsafeRawBufferPointer(rebasing: avail[0..<used])
            _ = http?.filters.decodeData(chunk, endStream: done)
            _ = pool.append(chunk, to: &up.pointee.pending)
            flushUpstream(up, loop)
        }
        if done { requestFinished(token, d, loop) }
        return used
    }

    /// The whole request has been read (and handed upstream): the route timeout starts.
    func requestFinished(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        d.pointee.stream.requestComplete = true
        let route = d.pointee.stream.route
        if route >= 0, let http = httpPlan(d.pointee.stream.generation), case .forward(let plan) = http.routes.allRoutes[Int(route)].action, let timeout = plan.timeoutNanos,
           !d.pointee.stream.responseComplete {
            d.pointee.stream.deadline = loop.now + timeout
            armDownstreamTimer(token, d, loop)
        }
    }

    /// A routed request: take the cluster's request budget, pick a host, encode the head and
    /// find it a connection.
    private func forward(_ head: UnsafeRawBufferPointer, route: Int, cluster ci: Int, _ token: UInt64,
                         _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let cluster = plane.clusters[ci]
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        s.pointee.route = Int32(route)
        s.pointee.cluster = Int32(ci)
        guard !cluster.hosts.isEmpty else {
            localReply(LocalReply(status: 503, body: .text(LocalReplyText.noHealthyUpstream), flags: .noHealthyUpstream, details: .noHealthyUpstream), token, d, loop)
            return
        }
        guard ClusterResources.tryTake(cluster.resources.requests, limit: cluster.thresholds.maxRequests) else {
            inc(stats.upstreamRqPendingOverflow)
            if let cs = clusterStats(ci) { inc(cs.upstreamRqPendingOverflow) }
            localReply(LocalReply(status: 503, body: .text(LocalReplyText.overflow), flags: .upstreamOverflow, details: .overflow), token, d, loop)
            return
        }
        s.pointee.holdsRequest = true
        inc(stats.upstreamRqTotal)
        if let cs = clusterStats(ci) { inc(cs.upstreamRqTotal) }
        var hash: UInt64? = nil
        if cluster.lbPolicy == .ringHash, case .forward(let plan) = http!.routes.allRoutes[route].action, !plan.hashPolicy.isEmpty {
            hash = requestHash(plan.hashPolicy, head, d)
        }
        let hp = pickHost(ci, hash: hash)
        s.pointee.hostPool = Int32(hp)
        hostPools[hp].activeRequests += 1
        guard encodeRequestHead(head, route: route, cluster: cluster, host: Int(hostPools[hp].host), peer: peerAddress(d),
                                into: &s.pointee.requestHead) else {
            localReply(LocalReply(status: 431, body: .text(""), flags: .downstreamProtocolError, details: .downstreamProtocolError), token, d, loop)
            return
        }
        if case .forward(let plan) = http!.routes.allRoutes[route].action, let retry = plan.retry, retry.onReset,
           s.pointee.requestBody == .none {
            _ = pool.append(s.pointee.requestHead.bytes, to: &s.pointee.retryHead)
        }
        if s.pointee.expectsContinue && !s.pointee.requestComplete {
            _ = pool.append(UnsafeRawBufferPointer(staticString: "HTTP/1.1 100 Continue\r\n\r\n"), to: &d.pointee.pending)
        }
        s.pointee.upstreamStartNanos = loop.now
        if s.pointee.requestComplete {
            requestFinished(token, d, loop)
        }
        assignConnection(token, d, loop)
    }

    // MARK: downstream output

    /// After work on a downstream: send what is queued, and close when it is finished.
    func downstreamSettled(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        flushDownstream(d, loop)
        closeIfDone(token, d, loop)
    }

    func flushDownstream(_ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard !d.pointee.sendInFlight, d.pointee.sending.count == 0, d.pointee.pending.count > 0, d.pointee.fd >= 0 else { return }
        swap(&d.pointee.sending, &d.pointee.pending)
        d.pointee.sendOffset = 0
        d.pointee.sendInFlight = true
        loop.backend.send(fd: d.pointee.fd, bytes: d.pointee.sending.base!, count: d.pointee.sending.count)
    }

    private func downstreamSent(_ c: Completion, _ loop: Loop) {
        let token = c.token
        guard let d = downs.pointer(token) else { return }
        d.pointee.sendInFlight = false
        guard c.result >= 0 else {
            closeDownstream(token, loop, flags: .downstreamConnectionTermination)
            return
        }
        d.pointee.sendOffset += Int(c.result)
        if d.pointee.sendOffset < d.pointee.sending.count {
            d.pointee.sendInFlight = true
            let off = d.pointee.sendOffset
            loop.backend.send(fd: d.pointee.fd, bytes: d.pointee.sending.base! + off, count: d.pointee.sending.count - off)
            return
        }
        d.pointee.sending.count = 0
        pool.release(&d.pointee.sending)
        flushDownstream(d, loop)
        // The client reads again: let the upstream send more.
        if d.pointee.hasStream && d.pointee.stream.upstreamPaused && d.pointee.pending.count < Self.lowWater,
           let up = ups.pointer(d.pointee.stream.upstream) {
            d.pointee.stream.upstreamPaused = false
            if up.pointee.receivePaused {
                up.pointee.receivePaused = false
                loop.backend.resumeReceive(fd: up.pointee.fd)
            }
        }
        if !d.pointee.hasStream && d.pointee.input.count > 0 && !d.pointee.closeAfterFlush {
            consumeBufferedInput(token, d, loop)
            flushDownstream(d, loop)
        }
        closeIfDone(token, d, loop)
    }

    /// A closing connection whose output is all sent: half-close and linger for the client's end
    /// of stream (so unread input does not turn the close into a reset that destroys the answer).
    func closeIfDone(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard d.pointee.closeAfterFlush, !d.pointee.hasStream, !d.pointee.sendInFlight, d.pointee.pending.count == 0,
              !d.pointee.lingering, d.pointee.fd >= 0 else { return }
        if d.pointee.peerClosed {
            closeDownstream(token, loop, flags: [])
            return
        }
        d.pointee.lingering = true
        Glibc.shutdown(d.pointee.fd, Int32(SHUT_WR))
        if d.pointee.receivePaused {
            d.pointee.receivePaused = false
            loop.backend.resumeReceive(fd: d.pointee.fd)
        }
        d.pointee.lingerDeadline = loop.now + Self.lingerNanos
        armDownstreamTimer(token, d, loop)
    }

    /// Closes a downstream connection now; an active stream ends with `flags`.
    func closeDownstream(_ token: UInt64, _ loop: Loop, flags: ResponseFlags) {
        guard let d = downs.pointer(token) else { return }
        if d.pointee.hasStream {
            d.pointee.stream.flags.formUnion(flags)
            if flags.contains(.downstreamConnectionTermination) { d.pointee.stream.details = .downstreamTerminated }
            d.pointee.closeAfterFlush = true
            endStream(token, d, loop, reuseUpstream: false)
        }
        loads.connectionClosed(index)
        inc(stats.downstreamCxActive, by: -1)
        loop.backend.close(fd: d.pointee.fd)
        pool.release(&d.pointee.input)
        pool.release(&d.pointee.pending)
        pool.release(&d.pointee.sending)
        downs.remove(token)
    }

    // MARK: local replies and errors

    /// Answers the active stream locally (no route, overflow, connect failure, timeout...).
    /// Only before any response byte went out.
    func localReply(_ reply: LocalReply, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        s.pointee.status = Int32(reply.status)
        s.pointee.flags.formUnion(reply.flags)
        s.pointee.details = reply.details
        // A request not read to its end cannot be followed by another on this connection.
        let closing = !s.pointee.keepAlive || !s.pointee.requestComplete || d.pointee.closeAfterFlush
        switch reply.body {
        case .text(let text):
            text.withUTF8Buffer { writeLocalReply(reply.status, body: UnsafeRawBufferPointer($0), closing: closing, s, d) }
        case .route(let r):
            if let http, case .direct(_, let body) = http.routes.allRoutes[r].action {
                body.withUnsafeBytes { writeLocalReply(reply.status, body: $0, closing: closing, s, d) }
            }
        }
        s.pointee.responseHeadDone = true
        s.pointee.responseComplete = true
        if closing { d.pointee.closeAfterFlush = true }
        endStream(token, d, loop, reuseUpstream: false)
    }

    /// A malformed request: 400 (or the parser's status) and close.
    private func protocolError(_ status: Int, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        if !d.pointee.hasStream {
            d.pointee.hasStream = true
            d.pointee.stream = Stream()
            d.pointee.stream.startNanos = loop.now
            d.pointee.stream.keepAlive = false
            streamBegan(&d.pointee.stream)
            loads.requestStarted(index)
            inc(stats.downstreamRqTotal)
        }
        d.pointee.closeAfterFlush = true
        if d.pointee.stream.responseHeadDone {
            d.pointee.stream.flags.insert(.downstreamProtocolError)
            endStream(token, d, loop, reuseUpstream: false)
            return
        }
        localReply(LocalReply(status: status, body: .text(status == 400 ? LocalReplyText.badRequest : ""),
                              flags: .downstreamProtocolError, details: .downstreamProtocolError), token, d, loop)
    }

    private func requestTooLarge(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        pool.release(&d.pointee.input)
        protocolError(413, token, d, loop)
    }

    // MARK: stream end

    /// Ends the active stream: the access record, the circuit breakers, the upstream connection
    /// (back to its pool when `reuseUpstream` and it is clean, else closed), then the next
    /// pipelined request.
    func endStream(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop, reuseUpstream: Bool) {
        guard d.pointee.hasStream else { return }
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        if s.pointee.upstream != 0 {
            let up = s.pointee.upstream
            s.pointee.upstream = 0
            if let u = ups.pointer(up) {
                if u.pointee.state == .connecting {
                    u.pointee.owner = 0  // it joins the pool when connected
                } else if reuseUpstream {
                    releaseToPool(up, u, loop)
                } else {
                    closeUpstream(up, loop)
                }
            }
        }
        if s.pointee.hostPool >= 0 { hostPools[Int(s.pointee.hostPool)].activeRequests -= 1 }
        if s.pointee.cluster >= 0 {
            let resources = plane.clusters[Int(s.pointee.cluster)].resources
            if s.pointee.holdsRequest { ClusterResources.give(resources.requests) }
            if s.pointee.holdsPending { ClusterResources.give(resources.pendingRequests) }
        }
        pool.release(&s.pointee.requestHead)
        pool.release(&s.pointee.retryHead)
        record(s, loop)
        streamEnded(s.pointee.generation)
        pool.release(&s.pointee.logFields)
        loads.requestsFinished(index)
        let keepAlive = s.pointee.keepAlive && s.pointee.requestComplete
        d.pointee.hasStream = false
        d.pointee.stream = Stream()
        if !keepAlive { d.pointee.closeAfterFlush = true }
        if d.pointee.closeAfterFlush {
            pool.release(&d.pointee.input)
        } else if let idle = http?.idleTimeoutNanos {
            d.pointee.idleDeadline = loop.now + idle
            armDownstreamTimer(token, d, loop)
        }
        if !d.pointee.processing && d.pointee.input.count > 0 {
            consumeBufferedInput(token, d, loop)
        }
    }

    private func record(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        switch s.pointee.status {
        case 100..<200: inc(stats.downstreamRq1xx)
        case 200..<300: inc(stats.downstreamRq2xx)
        case 300..<400: inc(stats.downstreamRq3xx)
        case 400..<500: inc(stats.downstreamRq4xx)
        case 500..<600: inc(stats.downstreamRq5xx)
        default: break
        }
        recordLatency(s, loop)
        guard let accessRing else { return }
        var r = AccessRecord()
        r.worker = Int32(index)
        r.listener = Int32(listenerPlan.index)
        r.startNanos = s.pointee.startNanos
        r.durationNanos = loop.now - s.pointee.startNanos
        r.upstreamServiceNanos = s.pointee.upstreamServiceNanos
        r.responseCode = s.pointee.status
        r.flags = s.pointee.flags
        r.bytesReceived = s.pointee.bytesReceived
        r.bytesSent = s.pointee.bytesSent
        r.cluster = s.pointee.cluster
        r.host = s.pointee.hostPool >= 0 ? hostPools[Int(s.pointee.hostPool)].host : -1
        r.route = s.pointee.route
        r.details = s.pointee.details
        r.http10 = s.pointee.http10
        r.generation = s.pointee.generation
        accessRing.push(r, extra: s.pointee.logFields.bytes)
    }

    // MARK: timers

    /// Makes sure a timer is in the heap at or before the connection's earliest deadline. The heap
    /// has no cancel: a connection keeps about one entry and re-arms when it fires.
    func armDownstreamTimer(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let next = Self.earliest(d.pointee.idleDeadline, d.pointee.lingerDeadline, d.pointee.hasStream ? d.pointee.stream.deadline : 0)
        guard next > 0 else { return }
        if d.pointee.timerArmedAt != 0 && d.pointee.timerArmedAt <= next { return }
        d.pointee.timerArmedAt = next
        loop.timers.schedule(at: next, id: token)
    }

    static func earliest(_ a: Int64, _ b: Int64, _ c: Int64) -> Int64 {
        var m = a
        if b > 0 && (m == 0 || b < m) { m = b }
        if c > 0 && (m == 0 || c < m) { m = c }
        return m
    }

    func timerFired(_ id: UInt64, loop: Loop) {
        if id == WorkerSeat.listenerToken {
            loggedAcceptError = false
            if listener >= 0 && !ops.draining { loop.backend.armAccept(listener: listener, token: WorkerSeat.listenerToken) }
            return
        }
        switch ConnToken.kind(id) {
        case ConnKind.downstream.rawValue: downstreamTimer(id, loop)
        case ConnKind.upstream.rawValue: upstreamTimer(id, loop)
        default: tcpTimer(id, loop)
        }
    }

    private func downstreamTimer(_ token: UInt64, _ loop: Loop) {
        guard let d = downs.pointer(token) else { return }
        let now = loop.now
        if d.pointee.timerArmedAt != 0 && d.pointee.timerArmedAt <= now { d.pointee.timerArmedAt = 0 }
        if d.pointee.lingerDeadline != 0 && d.pointee.lingerDeadline <= now {
            closeDownstream(token, loop, flags: [])
            return
        }
        if d.pointee.idleDeadline != 0 && d.pointee.idleDeadline <= now && !d.pointee.hasStream {
            d.pointee.idleDeadline = 0
            if d.pointee.input.count == 0 && !d.pointee.sendInFlight && d.pointee.pending.count == 0 {
                closeDownstream(token, loop, flags: [])
                return
            }
        }
        if d.pointee.hasStream && d.pointee.stream.deadline != 0 && d.pointee.stream.deadline <= now {
            d.pointee.stream.deadline = 0
            streamTimedOut(token, d, loop)
            guard downs.pointer(token) != nil else { return }
        }
        armDownstreamTimer(token, d, loop)
        downstreamSettled(token, d, loop)
    }

    /// The route timeout expired: 504 UT before the response started, else cut it short.
    private func streamTimedOut(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        inc(stats.upstreamRqTimeout)
        if let cs = clusterStats(Int(d.pointee.stream.cluster)) { inc(cs.upstreamRqTimeout) }
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        if s.pointee.upstream != 0 {
            let up = s.pointee.upstream
            s.pointee.upstream = 0
            if let u = ups.pointer(up), u.pointee.state == .connecting {
                u.pointee.owner = 0
            } else {
                closeUpstream(up, loop)
            }
        }
        if !s.pointee.responseHeadDone {
            localReply(LocalReply(status: 504, body: .text(LocalReplyText.timeout), flags: .upstreamRequestTimeout, details: .responseTimeout), token, d, loop)
        } else {
            s.pointee.flags.insert(.upstreamRequestTimeout)
            d.pointee.closeAfterFlush = true
            endStream(token, d, loop, reuseUpstream: false)
        }
    }
}

extension UnsafeRawBufferPointer {
    init(staticString s: StaticString) {
        self.init(start: s.utf8Start, count: s.utf8CodeUnitCount)
    }
}
