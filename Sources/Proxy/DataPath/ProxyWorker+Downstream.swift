import EventLoop
import Glibc
import HTTP1

/// The downstream (client) connection of an HTTP listener: receive, hand whole request heads to
/// a new stream, buffer what the stream cannot take yet, send what streams wrote, close with a
/// lingering half-close, and its deadlines (idle, request head, linger). Its state machine is
/// `DownstreamState`; the exchange itself is `ProxyWorker+Stream`.
extension ProxyWorker {
    // MARK: input

    func downstreamReceived(_ c: Completion, _ loop: Loop) {
        let token = c.token
        guard let d = downs.pointer(token) else { return }
        if d.pointee.tls.isActive && c.result > 0 {
            downstreamCiphertext(c.bytes, token, d, loop)  // ProxyWorker+TLS: decrypts, then `downstreamInput`
            return
        }
        downstreamInput(c.result, c.bytes, token, d, loop)
    }

    /// Plain bytes from the client (`result` > 0), its end of stream (0) or an error (< 0).
    func downstreamInput(_ result: Int32, _ bytes: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        if result <= 0 {
            if result < 0 || d.pointee.lingering || d.pointee.hasStream {
                // A reset, the end of a linger, or a client that left with its request unanswered.
                closeDownstream(token, loop, flags: .downstreamConnectionTermination)
                return
            }
            d.pointee.peerClosed = true
            d.pointee.beginClosing()
            pool.release(&d.pointee.input)
            downstreamSettled(token, d, loop)
            return
        }
        if d.pointee.closeAfterFlush || d.pointee.lingering { return }  // discarded
        if d.pointee.input.count == 0 {
            // Fast path: parse straight from the lent receive buffer; keep only what is left.
            d.pointee.headProgress = RequestHeadProgress()  // no partial head without input
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
    func consumeDownstream(_ bytes: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) -> Int {
        d.pointee.processing = true
        defer { d.pointee.processing = false }
        countHTTP1Connection(d)
        var offset = 0
        while offset < bytes.count {
            if d.pointee.closeAfterFlush { return bytes.count }
            if !d.pointee.hasStream {
                // One response at a time is queued high; the next request waits for the client to read.
                if d.pointee.pending.count >= Self.highWater { return offset }
                if !d.pointee.requestTimersStarted { beginRequestTimers(token, d, loop) }
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                // A partial head always sits at the front of the input: resume its scan there.
                if offset == 0 && d.pointee.headProgress.scannedBytes > 0 {
                    requestParser.pointee.resume(d.pointee.headProgress)
                } else {
                    requestParser.pointee.reset()
                }
                if headLimitsDiffer, let h = hcm(d) {
                    requestParser.pointee.setLimits(maxHeaderBytes: h.maxRequestHeaderBytes, maxHeaders: h.maxHeadersCount)
                }
                switch requestParser.pointee.parse(rest) {
                case .incomplete:
                    d.pointee.headProgress = requestParser.pointee.progress
                    startHeadDeadline(token, d, loop)
                    return offset
                case .failure(let error):
                    d.pointee.headProgress = RequestHeadProgress()
                    if refusedHTTP2Preface(rest, d) { return bytes.count }
                    protocolError(LocalReply.downstreamStatus(error), token, d, loop, details: .of(error))
                    return bytes.count
                case .complete(let headLength):
                    d.pointee.headProgress = RequestHeadProgress()
                    d.pointee.headDeadline = 0
                    if let status = rejectBeforeForwarding(headLength, in: rest, d) {
                        protocolError(status, token, d, loop)
                        return bytes.count
                    }
                    offset += headLength
                    startStream(UnsafeRawBufferPointer(rebasing: rest[0..<headLength]), token, d, loop)
                }
            } else {
                let s = stream(of: d)!
                if s.pointee.requestComplete { return offset }
                if s.pointee.discarding {
                    let n = discardRequestBody(UnsafeRawBufferPointer(rebasing: bytes[offset...]), token, d, loop)
                    if n == 0 && stream(of: d)?.pointee.discarding == true { return offset }
                    offset += n
                    continue
                }
                if s.pointee.buffering {
                    let (state, payload) = bufferedBodyState(UnsafeRawBufferPointer(rebasing: bytes[offset...]), s)
                    switch state {
                    case .waiting:
                        touchStreamIdle(d, loop)
                        return offset
                    case .tooLarge:
                        payloadTooLarge(payload, token, d, loop)
                        return bytes.count
                    case .malformed:
                        s.pointee.buffering = false
                        protocolError(400, token, d, loop)
                        return bytes.count
                    case .complete:
                        resumeAfterBuffer(token, d, loop)
                        continue  // the body goes upstream like any other now
                    }
                }
                let n = forwardRequestBody(UnsafeRawBufferPointer(rebasing: bytes[offset...]), token, d, loop)
                if n == 0 { return offset }
                offset += n
            }
        }
        return offset
    }

    func requestTooLarge(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        pool.release(&d.pointee.input)
        d.pointee.headProgress = RequestHeadProgress()
        protocolError(413, token, d, loop)
    }

    /// A partial request head is held: the request-head deadline starts (once per head).
    func startHeadDeadline(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard d.pointee.headDeadline == 0, let timeout = hcm(d)?.requestHeadersTimeoutNanos else { return }
        d.pointee.headDeadline = loop.now + timeout
        armDownstreamTimer(token, d, loop)
    }

    /// The request head did not complete in time (`request_headers_timeout`): 408 and close, as Envoy.
    func requestHeadTimedOut(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        pool.release(&d.pointee.input)
        d.pointee.headProgress = RequestHeadProgress()
        d.pointee.beginClosing()
        inc(httpStats(d).downstreamRqHeaderTimeout)
        beginLocalStream(d, loop)
        localReply(LocalReply(status: 408, body: .text(LocalReplyText.requestHeaderTimeout), flags: [],
                              details: .requestHeaderTimeout), token, d, loop)
    }

    // MARK: output and close

    /// After work on a downstream: send what is queued, and close when it is finished.
    func downstreamSettled(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        flushDownstream(d, loop)
        closeIfDone(token, d, loop)
    }

    func flushDownstream(_ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard d.pointee.fd >= 0 else { return }
        if d.pointee.tls.isActive && !sealOutput(d.pointee.tls, &d.pointee.out) {
            tlsLog("downstream TLS write failed")
            d.pointee.beginClosing()
        }
        d.pointee.out.flush(fd: d.pointee.fd, on: loop.backend)
    }

    func downstreamSent(_ c: Completion, _ loop: Loop) {
        let token = c.token
        guard let d = downs.pointer(token) else { return }
        guard c.result >= 0 else {
            d.pointee.out.inFlight = false
            closeDownstream(token, loop, flags: .downstreamConnectionTermination)
            return
        }
        guard d.pointee.out.sent(Int(c.result), fd: d.pointee.fd, on: loop.backend, pool: pool) else { return }
        flushDownstream(d, loop)
        // The client reads again: let the upstream send more.
        if let s = stream(of: d), s.pointee.upstreamPaused && d.pointee.pending.count < Self.lowWater,
           let up = ups.pointer(s.pointee.upstream) {
            s.pointee.upstreamPaused = false
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
        guard d.pointee.closeAfterFlush, !d.pointee.hasStream, !d.pointee.out.inFlight, d.pointee.pending.count == 0,
              !d.pointee.lingering, d.pointee.fd >= 0 else { return }
        if d.pointee.tls.handshakeDone && !d.pointee.tls.closeNotified && !d.pointee.peerClosed {
            // close_notify first, as Envoy sends it; the half-close follows once it is sent.
            d.pointee.tls.closeNotify()
            flushDownstream(d, loop)
            if d.pointee.out.inFlight { return }
        }
        // delayed_close_timeout 0s: closed as soon as the output is out, as Envoy does.
        let delayedClose = hcm(d).map { $0.delayedCloseNanos } ?? Self.lingerNanos
        if d.pointee.peerClosed || delayedClose == nil {
            closeDownstream(token, loop, flags: [])
            return
        }
        d.pointee.state = .lingering
        Glibc.shutdown(d.pointee.fd, Int32(SHUT_WR))
        if d.pointee.receivePaused {
            d.pointee.receivePaused = false
            loop.backend.resumeReceive(fd: d.pointee.fd)
        }
        d.pointee.lingerDeadline = loop.now + (delayedClose ?? Self.lingerNanos)
        armDownstreamTimer(token, d, loop)
    }

    /// Closes a downstream connection now; an active stream ends with `flags`.
    func closeDownstream(_ token: UInt64, _ loop: Loop, flags: ResponseFlags) {
        guard let d = downs.pointer(token) else { return }
        if let s = stream(of: d) {
            s.pointee.flags.formUnion(flags)
            if flags.contains(.downstreamConnectionTermination) { s.pointee.details = .downstreamTerminated }
            d.pointee.beginClosing()
            endStream(token, d, loop, reuseUpstream: false)
        }
        loads.connectionClosed(index)
        inc(httpStats(d).httpCxActive, by: -1)
        downstreamConnectionEnded()
        if d.pointee.tls.isActive { closeNotifyNow(&d.pointee.tls, fd: d.pointee.fd, sendInFlight: d.pointee.out.inFlight) }
        loop.backend.close(fd: d.pointee.fd)
        pool.release(&d.pointee.input)
        pool.release(&d.pointee.serverName)
        d.pointee.out.release(to: pool)
        d.pointee.tls.free()
        downs.remove(token)
    }

    // MARK: deadlines

    /// Makes sure a timer is in the heap at or before the connection's earliest deadline. The heap
    /// has no cancel: a connection keeps about one entry and re-arms when it fires.
    func armDownstreamTimer(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)
        let next = DeadlineTimer.earliest(
            DeadlineTimer.earliest(d.pointee.idleDeadline, d.pointee.lingerDeadline, d.pointee.headDeadline, s?.pointee.deadline ?? 0),
            d.pointee.requestDeadline, d.pointee.streamIdleDeadline,
            DeadlineTimer.earliest(s?.pointee.tryDeadline ?? 0, s?.pointee.retryAt ?? 0, d.pointee.durationDeadline, 0))
        d.pointee.timer.arm(next, id: token, in: &loop.timers)
    }

    func downstreamTimer(_ token: UInt64, _ loop: Loop) {
        guard let d = downs.pointer(token) else { return }
        let now = loop.now
        d.pointee.timer.fired(now: now)
        if d.pointee.lingerDeadline != 0 && d.pointee.lingerDeadline <= now {
            closeDownstream(token, loop, flags: [])
            return
        }
        if d.pointee.durationDeadline != 0 && d.pointee.durationDeadline <= now {
            connectionDurationReached(d, loop)
        }
        if d.pointee.idleDeadline != 0 && d.pointee.idleDeadline <= now && !d.pointee.hasStream {
            d.pointee.idleDeadline = 0
            if d.pointee.input.count == 0 && d.pointee.out.isDrained {
                closeDownstream(token, loop, flags: [])
                return
            }
        }
        if d.pointee.headDeadline != 0 && d.pointee.headDeadline <= now {
            d.pointee.headDeadline = 0
            if !d.pointee.hasStream && d.pointee.input.count > 0 && !d.pointee.closeAfterFlush && !d.pointee.lingering {
                requestHeadTimedOut(token, d, loop)
                guard downs.pointer(token) != nil else { return }
            }
        }
        if requestTimersFired(token, d, now, loop) {
            guard downs.pointer(token) != nil else { return }
        }
        if let s = stream(of: d), s.pointee.deadline != 0 && s.pointee.deadline <= now {
            s.pointee.deadline = 0
            if s.pointee.delaying {
                resumeAfterDelay(token, d, loop)
            } else if s.pointee.authzCheck != 0 {
                authzCheckTimedOut(token, d, loop)
            } else {
                streamTimedOut(token, d, loop)
            }
            guard downs.pointer(token) != nil else { return }
        }
        if let s = stream(of: d), s.pointee.tryDeadline != 0 && s.pointee.tryDeadline <= now {
            s.pointee.tryDeadline = 0
            perTryTimedOut(token, d, loop)
            guard downs.pointer(token) != nil else { return }
        }
        if let s = stream(of: d), s.pointee.retryAt != 0 && s.pointee.retryAt <= now {
            resumeRetry(token, d, loop)
            guard downs.pointer(token) != nil else { return }
        }
        armDownstreamTimer(token, d, loop)
        downstreamSettled(token, d, loop)
    }

    /// `max_connection_duration` passed: Envoy's drain of an HTTP/1 connection. The response in
    /// progress and any later one carry `connection: close` and end the connection; an idle
    /// connection is closed when the drain ends (drain_timeout + delayed_close_timeout).
    func connectionDurationReached(_ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        d.pointee.durationDeadline = 0
        d.pointee.durationReached = true
        inc(httpStats(d).downstreamCxMaxDurationReached)
        if let s = stream(of: d) { s.pointee.keepAlive = false }
        let closeAt = loop.now + (hcm(d)?.drainCloseNanos ?? 0)
        d.pointee.idleDeadline = d.pointee.idleDeadline == 0 ? closeAt : min(d.pointee.idleDeadline, closeAt)
    }
}
