import EventLoop
import Glibc
import HTTP1

/// The upstream connection's I/O for the stream it serves: send the request, parse the response
/// head, stream the body to the downstream (re-framing as needed), retries on a response status,
/// and the ends of an exchange (complete, reset, malformed).
extension ProxyWorker {
    // MARK: request out

    func flushUpstream(_ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        if u.pointee.tls.isActive {
            // The handshake's records go out while `connecting`; request bytes only once `busy`.
            guard u.pointee.state != .idle || u.pointee.tls.pendingOutput > 0 else { return }
            if !sealOutput(u.pointee.tls, &u.pointee.out) { tlsLog("upstream TLS write failed") }
        } else {
            guard u.pointee.state == .busy else { return }
        }
        u.pointee.out.flush(fd: u.pointee.fd, on: loop.backend)
    }

    func upstreamSent(_ c: Completion, _ loop: Loop) {
        let up = c.token
        guard let u = ups.pointer(up) else { return }
        guard c.result >= 0 else {
            u.pointee.out.inFlight = false
            upstreamEnded(up, u, loop, reset: true)
            return
        }
        guard u.pointee.out.sent(Int(c.result), fd: u.pointee.fd, on: loop.backend, pool: pool) else { return }
        flushUpstream(u, loop)
        // Room again: request body bytes waiting downstream may follow.
        let owner = u.pointee.owner
        if owner != 0, let d = downs.pointer(owner), let s = stream(of: d), !s.pointee.requestComplete, d.pointee.input.count > 0 {
            consumeBufferedInput(owner, d, loop)
            downstreamSettled(owner, d, loop)
        }
    }

    // MARK: response in

    func upstreamReceived(_ c: Completion, _ loop: Loop) {
        let up = c.token
        guard let u = ups.pointer(up) else { return }
        if u.pointee.tls.isActive && c.result > 0 {
            upstreamCiphertext(c.bytes, up, u, loop)  // ProxyWorker+TLS: decrypts, then `upstreamInput`
            return
        }
        upstreamInput(c.result, c.bytes, up, u, loop)
    }

    /// Plain response bytes (`result` > 0), the upstream's end of stream (0) or an error (< 0).
    func upstreamInput(_ result: Int32, _ bytes: UnsafeRawBufferPointer, _ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        if result <= 0 {
            upstreamEnded(up, u, loop, reset: result < 0)
            return
        }
        let owner = u.pointee.owner
        if ConnToken.kind(owner) == ConnKind.shadow.rawValue {
            shadowResponseInput(bytes, up, u, loop)
            return
        }
        guard u.pointee.state == .busy, owner != 0, let d = downs.pointer(owner),
              let s = stream(of: d), s.pointee.upstream == up else {
            // Bytes nobody asked for (on an idle connection): the connection is out of step.
            closeUpstream(up, loop)
            return
        }
        touchStreamIdle(d, loop)
        let outcome = readResponse(bytes, up, u, .stream(owner, d), loop)
        switch outcome {
        case .more:
            if d.pointee.pending.count >= Self.highWater && !u.pointee.receivePaused {
                u.pointee.receivePaused = true
                s.pointee.upstreamPaused = true
                loop.backend.pauseReceive(fd: u.pointee.fd)
            }
        case .complete:
            responseFinished(owner, d, loop, reusable: true)
        case .completeUnclean:
            responseFinished(owner, d, loop, reusable: false)
        case .malformed:
            upstreamProtocolError(owner, d, loop)
        case .retry(let status):
            retryResponse(status, owner, d, loop)
            return
        case .handshakeRefused(let status):
            // As Envoy: the upstream's status in an empty local reply, its connection closed.
            s.pointee.upstream = 0
            closeUpstream(up, loop)
            localReply(LocalReply(status: status, body: .text(""), flags: [], details: .websocketHandshakeUnsuccessful), owner, d, loop)
        }
        downstreamSettled(owner, d, loop)
    }

    /// Who reads an upstream connection's response: a client's stream, or a mirror's shadow.
    enum ResponseReader {
        case stream(UInt64, UnsafeMutablePointer<Downstream>)
        case shadow(UnsafeMutablePointer<Shadow>)
    }

    /// Hands response bytes to their reader together with what the connection kept from earlier
    /// reads (a partial head), and keeps what the reader could not use yet: the one copy of this
    /// buffering for streams and shadows.
    func readResponse(_ bytes: UnsafeRawBufferPointer, _ up: UInt64, _ u: UnsafeMutablePointer<Upstream>,
                      _ reader: ResponseReader, _ loop: Loop) -> ResponseProgress {
        var outcome: ResponseProgress
        if u.pointee.input.count == 0 {
            outcome = parseResponse(bytes, up, u, reader, loop)
            if case .more(let used) = outcome, used < bytes.count {
                if u.pointee.input.count + bytes.count - used > Self.maxResponseHead
                    || !pool.append(UnsafeRawBufferPointer(rebasing: bytes[used...]), to: &u.pointee.input) {
                    outcome = .malformed
                }
            }
            if case .complete(let used) = outcome, used < bytes.count { outcome = .completeUnclean }
        } else if !pool.append(bytes, to: &u.pointee.input) {
            outcome = .malformed
        } else {
            outcome = parseResponse(u.pointee.input.bytes, up, u, reader, loop)
            switch outcome {
            case .more(let used):
                BufferPool.consume(used, from: &u.pointee.input)
                if u.pointee.input.count > Self.maxResponseHead { outcome = .malformed }
            case .complete(let used):
                if used < u.pointee.input.count { outcome = .completeUnclean }
                pool.release(&u.pointee.input)
            default:
                pool.release(&u.pointee.input)
            }
        }
        return outcome
    }

    @inline(__always)
    private func parseResponse(_ bytes: UnsafeRawBufferPointer, _ up: UInt64, _ u: UnsafeMutablePointer<Upstream>,
                               _ reader: ResponseReader, _ loop: Loop) -> ResponseProgress {
        switch reader {
        case .stream(let owner, let d): return processResponse(bytes, up, u, owner, d, loop)
        case .shadow(let sh):
            let progress = skimShadowResponse(bytes, sh, loop)
            if sh.pointee.check != 0 { keepCheckResponse(bytes, progress, sh) }
            return progress
        }
    }

    enum ResponseProgress {
        /// Needs more bytes; `used` were consumed.
        case more(Int)
        /// The response ended after `used` bytes.
        case complete(Int)
        /// The response ended with bytes after it (the connection cannot be reused).
        case completeUnclean
        case malformed
        /// A retriable response head (status): nothing was forwarded downstream.
        case retry(Int)
        /// A WebSocket upgrade answered with this status instead of 101: nothing was forwarded.
        case handshakeRefused(Int)
    }

    /// Parses the response head and streams the body from the front of `bytes` into the
    /// downstream's output, re-framing as needed.
    func processResponse(_ bytes: UnsafeRawBufferPointer, _ up: UInt64, _ u: UnsafeMutablePointer<Upstream>,
                                 _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) -> ResponseProgress {
        let s = stream(of: d)!
        var offset = 0
        while offset < bytes.count {
            if !s.pointee.responseHeadDone {
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                responseParser.reset()
                switch responseParser.parse(rest, isResponseToHEAD: s.pointee.isHEAD) {
                case .incomplete:
                    return .more(offset)
                case .failure:
                    return .malformed
                case .complete(let headLength):
                    if responseParser.isInformational {
                        if responseParser.statusCode == 101 {
                            guard s.pointee.upgrade else { return .malformed }  // no upgrade was asked for
                            guard beginTunnel(UnsafeRawBufferPointer(rebasing: rest[0..<headLength]), s, d) else { return .malformed }
                            offset += headLength
                            continue  // bytes after the 101 are the tunnel's
                        }
                        offset += headLength  // 100 Continue and friends: the proxy answered Expect itself
                        continue
                    }
                    // Envoy's codec refuses a 204 that declares a body (a protocol error: 502).
                    if responseParser.statusCode == 204 && responseParser.declaresBody { return .malformed }
                    reportOutlier(Int(u.pointee.hostPool), .response(responseParser.statusCode), loop)
                    if retriesResponse(responseParser.statusCode, s) { return .retry(responseParser.statusCode) }
                    if s.pointee.websocket { return .handshakeRefused(responseParser.statusCode) }
                    s.pointee.upstreamServiceNanos = loop.now - s.pointee.upstreamStartNanos
                    s.pointee.status = Int32(responseParser.statusCode)
                    s.pointee.upstreamKeepAlive = responseParser.keepAlive
                    switch responseParser.bodyFraming {
                    case .none, .contentLength(0):
                        s.pointee.responseBody = .none
                    case .contentLength(let n):
                        s.pointee.responseBody = .length
                        s.pointee.responseRemaining = n
                    case .chunked:
                        s.pointee.responseBody = .chunked
                        s.pointee.responseDecoder.reset()
                    case .untilClose:
                        s.pointee.responseBody = .untilClose
                        s.pointee.reframeChunked = !s.pointee.http10
                        if s.pointee.http10 { s.pointee.keepAlive = false }
                    }
                    _ = hcm(s)?.filters.encodeHeaders(status: responseParser.statusCode, endStream: s.pointee.responseBody == .none)
                    if s.pointee.cache.fill >= 0 || s.pointee.cache.validate >= 0,
                       cacheSawResponseHead(UnsafeRawBufferPointer(rebasing: rest[0..<headLength]), s, d) {
                        // A 304 validating a stored entry: the client was answered from the entry.
                        s.pointee.responseHeadDone = true
                        s.pointee.responseBody = .none
                        return .complete(offset + headLength)
                    }
                    decideCompression(rest, s, endStream: s.pointee.responseBody == .none)
                    decompressorSawResponse(s)
                    if s.pointee.compressorStream >= 0 {
                        s.pointee.reframeChunked = false  // the compressed body is chunked by the compressor
                        if s.pointee.http10 { s.pointee.keepAlive = false }
                    }
                    guard writeResponseHead(UnsafeRawBufferPointer(rebasing: rest[0..<headLength]), s, d) else { return .malformed }
                    s.pointee.responseHeadDone = true
                    offset += headLength
                    if s.pointee.responseBody == .none { return .complete(offset) }
                }
            } else {
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                switch s.pointee.responseBody {
                case .length:
                    let n = min(rest.count, s.pointee.responseRemaining)
                    let chunk = UnsafeRawBufferPointer(rebasing: rest[0..<n])
                    _ = hcm(s)?.filters.encodeData(chunk, endStream: n == s.pointee.responseRemaining)
                    if s.pointee.cache.fill >= 0 { cacheBody(chunk, s) }
                    if s.pointee.compressorStream >= 0 {
                        guard compressBody(chunk, s, d) else { return .malformed }
                    } else {
                        _ = pool.append(chunk, to: &d.pointee.pending)
                        s.pointee.bytesSent += n
                    }
                    s.pointee.responseRemaining -= n
                    offset += n
                    if s.pointee.responseRemaining == 0 { return .complete(offset) }
                case .chunked:
                    if s.pointee.compressorStream >= 0 {
                        let r = compressDechunked(rest, s, d)
                        if r.failed { return .malformed }
                        offset += r.used
                        if r.done { return .complete(offset) }
                        continue
                    }
                    if s.pointee.http10 {
                        let r = relayDechunked(rest, s, d)
                        if r.failed { return .malformed }
                        if s.pointee.cache.fill >= 0 { cacheChunked(UnsafeRawBufferPointer(rebasing: rest[0..<r.used]), s) }
                        offset += r.used
                        if r.done { return .complete(offset) }
                        continue
                    }
                    let skim = s.pointee.responseDecoder.skim(rest)
                    if skim.failure != nil { return .malformed }
                    s.pointee.bytesSent += skim.payload
                    let used = skim.consumed
                    let done = skim.done
                    let chunk = UnsafeRawBufferPointer(rebasing: rest[0..<used])
                    _ = hcm(s)?.filters.encodeData(chunk, endStream: done)
                    _ = pool.append(chunk, to: &d.pointee.pending)  // chunks pass through verbatim
                    if s.pointee.cache.fill >= 0 { cacheChunked(chunk, s) }
                    offset += used
                    if done { return .complete(offset) }
                case .untilClose:
                    _ = hcm(s)?.filters.encodeData(rest, endStream: false)
                    if s.pointee.cache.fill >= 0 { cacheBody(rest, s) }
                    if s.pointee.compressorStream >= 0 {
                        guard compressBody(rest, s, d) else { return .malformed }
                        offset = bytes.count
                        continue
                    }
                    if s.pointee.reframeChunked {
                        appendChunk(rest, to: &d.pointee.pending)
                    } else {
                        _ = pool.append(rest, to: &d.pointee.pending)
                    }
                    s.pointee.bytesSent += rest.count
                    offset = bytes.count
                case .none, .tunnel:  // .tunnel describes requests only
                    return .complete(offset)
                }
            }
        }
        return .more(offset)
    }

    /// A 101 for an allowed upgrade: the head goes to the client with its Connection and Upgrade
    /// fields, and from here bytes pass both ways unchanged (the response "body" until the upstream
    /// closes, the request "body" until the client does). The route and request timeouts no longer
    /// apply; the stream idle timeout does (as Envoy's).
    func beginTunnel(_ head: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>, _ d: UnsafeMutablePointer<Downstream>) -> Bool {
        s.pointee.tunnel = true
        s.pointee.status = 101
        s.pointee.responseBody = .untilClose
        s.pointee.reframeChunked = false
        s.pointee.upstreamKeepAlive = false
        s.pointee.keepAlive = false
        s.pointee.deadline = 0
        d.pointee.requestDeadline = 0
        _ = hcm(s)?.filters.encodeHeaders(status: 101, endStream: false)
        guard writeResponseHead(head, s, d) else { return false }
        s.pointee.responseHeadDone = true
        return true
    }

    func appendChunk(_ data: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        guard data.count > 0, let p = pool.reserve(data.count + 20, in: &buffer) else { return }
        var w = ByteWriter(p, capacity: data.count + 20)
        w.putHex(data.count)
        w.crlf()
        w.put(data)
        w.crlf()
        buffer.count += w.count
    }

    /// A response head the route retries (retry_on 5xx / gateway-error): drop the connection and
    /// its response, send the request again (`retry` settles the downstream).
    func retryResponse(_ status: Int, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        let up = s.pointee.upstream
        s.pointee.upstream = 0
        endAttempt(s, error: status >= 500)
        closeUpstream(up, loop)
        // Envoy counts a response it retried under `retry.` (not in upstream_rq_<code>).
        if let cs = clusterStats(Int(s.pointee.cluster)) {
            inc(cs.retryUpstreamRqCompleted)
            cs.retryUpstreamRqCodes.count(status)
        }
        if retry(token, d, loop, onConnectFailure: false, status: status) { return }
        // The retry budget ran out in between: answer as for a reset before the response.
        localReply(LocalReply(status: 503, body: .text(LocalReplyText.connectionTermination),
                              flags: .upstreamConnectionTermination, details: .resetBeforeHeaders), token, d, loop)
        downstreamSettled(token, d, loop)
    }

    /// True when the response head just parsed should be retried instead of forwarded: the
    /// route's policy covers its status, a retry is left, and the request can be sent again.
    /// When only the retry count is exhausted, the response goes through flagged URX.
    func retriesResponse(_ status: Int, _ s: UnsafeMutablePointer<Stream>) -> Bool {
        s.pointee.tryDeadline = 0  // a response head: the attempt's timer no longer applies
        releaseRetry(s)
        guard s.pointee.hasRetryPolicy, s.pointee.route >= 0, let http = hcm(s),
              case .forward(let plan) = http.routes.allRoutes[Int(s.pointee.route)].action, let policy = plan.retry else { return false }
        guard policy.retries(status: status) else {
            // A retried request whose answer is not retried: Envoy's upstream_rq_retry_success.
            if s.pointee.retries > 0, let cs = clusterStats(Int(s.pointee.cluster)) { inc(cs.upstreamRqRetrySuccess) }
            return false
        }
        guard s.pointee.requestComplete, s.pointee.retryHead.count > 0 else { return false }
        guard Int(s.pointee.retries) < policy.numRetries else {
            s.pointee.flags.insert(.upstreamRetryLimitExceeded)
            if let cs = clusterStats(Int(s.pointee.cluster)) { inc(cs.upstreamRqRetryLimitExceeded) }
            return false
        }
        let cluster = plane.clusters[Int(s.pointee.cluster)]
        guard cluster.resources.retries.load(ordering: .relaxed) < cluster.retryLimit(cluster.thresholds) else {
            // Envoy forwards the response flagged UO and counts the overflow.
            s.pointee.flags.insert(.upstreamOverflow)
            if let cs = clusterStats(cluster.index) { inc(cs.upstreamRqRetryOverflow) }
            return false
        }
        return true
    }

    // MARK: response end

    /// The response is complete: the connection goes back to its pool (when clean and both
    /// sides keep it alive) and the stream ends.
    func responseFinished(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop, reusable: Bool) {
        let s = stream(of: d)!
        finishCompression(s, d)
        if s.pointee.cache.fill >= 0 { commitCacheFill(s) }
        if s.pointee.reframeChunked {
            _ = pool.append(UnsafeRawBufferPointer(staticString: "0\r\n\r\n"), to: &d.pointee.pending)
        }
        s.pointee.responseComplete = true
        s.pointee.deadline = 0
        if !s.pointee.requestComplete {
            // An early answer: the rest of the request body cannot be told apart from a next request.
            d.pointee.beginClosing()
        }
        let clean = reusable && s.pointee.upstreamKeepAlive && s.pointee.requestComplete && s.pointee.responseBody != .untilClose
        if let u = ups.pointer(s.pointee.upstream), u.pointee.receivePaused {
            u.pointee.receivePaused = false
            if clean { loop.backend.resumeReceive(fd: u.pointee.fd) }
        }
        endStream(token, d, loop, reuseUpstream: clean)
    }

    /// The upstream closed or reset its connection.
    func upstreamEnded(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop, reset: Bool) {
        let owner = u.pointee.owner
        if ConnToken.kind(owner) == ConnKind.shadow.rawValue && u.pointee.state == .busy {
            shadowUpstreamEnded(up, u, loop, reset: reset)
            return
        }
        guard u.pointee.state == .busy, owner != 0, let d = downs.pointer(owner), let s = stream(of: d), s.pointee.upstream == up else {
            if u.pointee.state == .connecting {
                connectFailed(up, u, loop, timedOut: false)
            } else {
                closeUpstream(up, loop)
            }
            return
        }
        if s.pointee.responseHeadDone && s.pointee.responseBody == .untilClose && !reset && !s.pointee.tunnel {
            responseFinished(owner, d, loop, reusable: false)  // the normal end of an until-close body
            downstreamSettled(owner, d, loop)
            return
        }
        if let cs = clusterStats(Int(u.pointee.cluster)) { inc(cs.upstreamCxDestroyRemoteWithActiveRq) }
        reportOutlier(Int(u.pointee.hostPool), .connectFailed, loop)  // Envoy: any upstream reset
        s.pointee.upstream = 0
        endAttempt(s, error: true)
        closeUpstream(up, loop)
        if !s.pointee.responseHeadDone {
            if retry(owner, d, loop, onConnectFailure: false) { return }
            localReply(LocalReply(status: 503, body: .text(LocalReplyText.connectionTermination),
                                  flags: .upstreamConnectionTermination, details: .resetBeforeHeaders), owner, d, loop)
        } else {
            // Cut short after the head (or a tunnel's upstream side ended): the client sees the
            // connection end, which Envoy counts as a stream it reset (downstream_rq_tx_reset).
            s.pointee.flags.insert(.upstreamConnectionTermination)
            s.pointee.resetDownstream = true
            if s.pointee.tunnel { s.pointee.details = .resetAfterResponseStarted }
            d.pointee.beginClosing()
            endStream(owner, d, loop, reuseUpstream: false)
        }
        downstreamSettled(owner, d, loop)
    }

    /// A malformed upstream response: 502 before the head went out, else cut the response short.
    func upstreamProtocolError(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        let up = s.pointee.upstream
        s.pointee.upstream = 0
        if let u = ups.pointer(up) { reportOutlier(Int(u.pointee.hostPool), .connectFailed, loop) }  // a codec reset, as Envoy
        endAttempt(s, error: true)
        closeUpstream(up, loop)
        if !s.pointee.responseHeadDone {
            localReply(LocalReply(status: 502, body: .text(LocalReplyText.protocolError), flags: .upstreamProtocolError,
                                  details: .upstreamProtocolError), token, d, loop)
        } else {
            s.pointee.flags.insert(.upstreamProtocolError)
            d.pointee.beginClosing()
            endStream(token, d, loop, reuseUpstream: false)
        }
    }
}
