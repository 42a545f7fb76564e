import EventLoop
import Glibc
import HTTP1

/// Upstream side of the worker: host selection, per-host pools, connects, the response path.
extension ProxyWorker {
    // MARK: load balancing

    /// This worker's host-pool index for the next request to cluster `ci`. Endpoint weights
    /// count for ROUND_ROBIN and RANDOM; RING_HASH uses `hash` (the route's hash policy), and a
    /// random host when there is none, as Envoy.
    func pickHost(_ ci: Int, hash: UInt64? = nil) -> Int {
        let base = clusterBase[ci]
        let n = plane.clusters[ci].hosts.count
        if n == 1 { return base }
        let schedule = plane.clusters[ci].schedule
        switch plane.clusters[ci].lbPolicy {
        case .ringHash where !schedule.ringHashes.isEmpty:
            if let hash { return base + schedule.ringHost(hash) }
            return base + Int(rng.next() % UInt64(n))
        case .roundRobin where !schedule.roundRobin.isEmpty:
            let i = roundRobin[ci] % schedule.roundRobin.count
            roundRobin[ci] = i + 1
            return base + Int(schedule.roundRobin[i])
        case .roundRobin, .ringHash:
            let i = roundRobin[ci] % n
            roundRobin[ci] = i + 1
            return base + i
        case .random:
            if !schedule.cumulative.isEmpty { return base + schedule.weightedRandom(rng.next()) }
            return base + Int(rng.next() % UInt64(n))
        case .leastRequest:
            // Power of `choices` choices among this worker's active requests per host.
            var best = base + Int(rng.next() % UInt64(n))
            for _ in 1..<plane.clusters[ci].leastRequestChoices {
                let other = base + Int(rng.next() % UInt64(n))
                if hostPools[other].activeRequests < hostPools[best].activeRequests { best = other }
            }
            return best
        }
    }

    // MARK: pools

    /// Gives the stream a connection: an idle one, a new one, or a place in the host's queue.
    func assignConnection(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let hp = Int(d.pointee.stream.hostPool)
        while let up = hostPools[hp].idle.popLast() {
            guard let u = ups.pointer(up) else { continue }
            u.pointee.idleIndex = -1
            u.pointee.idleDeadline = 0
            attach(up, u, token, d, loop)
            return
        }
        let cluster = plane.clusters[Int(hostPools[hp].cluster)]
        guard ClusterResources.tryTake(cluster.resources.pendingRequests, limit: cluster.thresholds.maxPendingRequests) else {
            inc(stats.upstreamRqPendingOverflow)
            if let cs = clusterStats(cluster.index) { inc(cs.upstreamRqPendingOverflow) }
            localReply(LocalReply(status: 503, body: .text(LocalReplyText.overflow), flags: .upstreamOverflow, details: .overflow), token, d, loop)
            return
        }
        d.pointee.stream.holdsPending = true
        if takeConnectionSlot(hp) {
            openConnection(hp, owner: token, d, loop)
        } else {
            d.pointee.stream.queued = true
            hostPools[hp].queue.append(token)
        }
    }

    /// Envoy's rule: within max_connections, or the first connection of an empty pool.
    private func takeConnectionSlot(_ hp: Int) -> Bool {
        let cluster = plane.clusters[Int(hostPools[hp].cluster)]
        if ClusterResources.tryTake(cluster.resources.connections, limit: cluster.thresholds.maxConnections) { return true }
        if hostPools[hp].connections == 0 {
            cluster.resources.connections.wrappingAdd(1, ordering: .relaxed)
            return true
        }
        return false
    }

    /// Starts a connection to the host for the stream of `owner` (the connection slot is taken).
    private func openConnection(_ hp: Int, owner: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let ci = Int(hostPools[hp].cluster)
        let cluster = plane.clusters[ci]
        let host = cluster.hosts[Int(hostPools[hp].host)]
        let fd: Int32
        do {
            fd = try Sockets.makeStream(family: host.address.family)
        } catch {
            ClusterResources.give(cluster.resources.connections)
            inc(stats.upstreamCxConnectFail)
            if let cs = clusterStats(cluster.index) { inc(cs.upstreamCxConnectFail) }
            localReply(LocalReply(status: 503, body: .text(LocalReplyText.connectFailure), flags: .upstreamConnectionFailure, details: .connectFailure), owner, d, loop)
            return
        }
        Sockets.setNoDelay(fd)
        if let k = cluster.tcpKeepalive { k.apply(to: fd) }
        var u = Upstream()
        u.fd = fd
        u.hostPool = Int32(hp)
        u.cluster = Int32(ci)
        u.state = .connecting
        u.owner = owner
        u.connectDeadline = loop.now + cluster.connectTimeoutNanos
        let up = ups.insert(u)
        hostPools[hp].connections += 1
        inc(stats.upstreamCxTotal)
        inc(stats.upstreamCxActive)
        if let cs = clusterStats(cluster.index) { inc(cs.upstreamCxTotal); inc(cs.upstreamCxActive) }
        d.pointee.stream.upstream = up
        loop.backend.connect(fd: fd, token: up, address: host.address)
        if let p = ups.pointer(up) { armUpstreamTimer(up, p, loop) }
    }

    /// Binds a ready connection to the stream and sends the request head (and body bytes waiting).
    private func attach(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        u.pointee.state = .busy
        u.pointee.owner = token
        d.pointee.stream.upstream = up
        d.pointee.stream.queued = false
        if d.pointee.stream.holdsPending {
            d.pointee.stream.holdsPending = false
            ClusterResources.give(plane.clusters[Int(u.pointee.cluster)].resources.pendingRequests)
        }
        countUpstreamRequest(Int(u.pointee.cluster))
        if u.pointee.pending.count == 0 {
            swap(&u.pointee.pending, &d.pointee.stream.requestHead)  // no copy
        } else {
            _ = pool.append(d.pointee.stream.requestHead.bytes, to: &u.pointee.pending)
            pool.release(&d.pointee.stream.requestHead)
        }
        flushUpstream(u, loop)
        if !d.pointee.processing && d.pointee.input.count > 0 {
            consumeBufferedInput(token, d, loop)  // body bytes that waited for this connection
            downstreamSettled(token, d, loop)
        }
    }

    /// A connection finished its exchange cleanly: a queued stream gets it, else it idles.
    func releaseToPool(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        let cluster = plane.clusters[Int(u.pointee.cluster)]
        u.pointee.requests += 1
        guard u.pointee.requests < cluster.maxRequestsPerConnection, u.pointee.input.count == 0 else {
            closeUpstream(up, loop)
            return
        }
        u.pointee.owner = 0
        u.pointee.state = .idle
        let hp = Int(u.pointee.hostPool)
        if let (token, d) = nextQueued(hp) {
            attach(up, u, token, d, loop)
            return
        }
        u.pointee.idleIndex = hostPools[hp].idle.count
        hostPools[hp].idle.append(up)
        if let idle = cluster.idleTimeoutNanos {
            u.pointee.idleDeadline = loop.now + idle
            armUpstreamTimer(up, u, loop)
        }
    }

    /// The oldest stream still waiting for a connection to host pool `hp`.
    private func nextQueued(_ hp: Int) -> (UInt64, UnsafeMutablePointer<Downstream>)? {
        while hostPools[hp].queueHead < hostPools[hp].queue.count {
            let token = hostPools[hp].queue[hostPools[hp].queueHead]
            hostPools[hp].queueHead += 1
            if hostPools[hp].queueHead == hostPools[hp].queue.count {
                hostPools[hp].queue.removeAll(keepingCapacity: true)
                hostPools[hp].queueHead = 0
            }
            if let d = downs.pointer(token), d.pointee.hasStream, d.pointee.stream.queued, Int(d.pointee.stream.hostPool) == hp {
                return (token, d)
            }
        }
        return nil
    }

    /// Closes an upstream connection and frees its slot; a waiting stream may now connect.
    func closeUpstream(_ up: UInt64, _ loop: Loop) {
        guard let u = ups.pointer(up) else { return }
        let hp = Int(u.pointee.hostPool)
        if u.pointee.idleIndex >= 0 {
            // Swap-remove from the idle stack.
            let i = u.pointee.idleIndex
            let last = hostPools[hp].idle.removeLast()
            if last != up {
                hostPools[hp].idle[i] = last
                ups.pointer(last)?.pointee.idleIndex = i
            }
        }
        loop.backend.close(fd: u.pointee.fd)
        pool.release(&u.pointee.input)
        pool.release(&u.pointee.pending)
        pool.release(&u.pointee.sending)
        ClusterResources.give(plane.clusters[Int(u.pointee.cluster)].resources.connections)
        hostPools[hp].connections -= 1
        inc(stats.upstreamCxActive, by: -1)
        if let cs = clusterStats(Int(u.pointee.cluster)) { inc(cs.upstreamCxActive, by: -1) }
        ups.remove(up)
        // A stream queued behind max_connections can have this slot.
        if let (token, d) = nextQueued(hp) {
            if takeConnectionSlot(hp) {
                d.pointee.stream.queued = false
                openConnection(hp, owner: token, d, loop)
                downstreamSettled(token, d, loop)
            } else {
                // Still full (another worker took it): back to the front of the queue.
                hostPools[hp].queueHead -= 1
                if hostPools[hp].queueHead < 0 {
                    hostPools[hp].queueHead = 0
                    hostPools[hp].queue.insert(token, at: 0)
                } else {
                    hostPools[hp].queue[hostPools[hp].queueHead] = token
                }
            }
        }
    }

    // MARK: upstream I/O

    func flushUpstream(_ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        guard u.pointee.state == .busy, !u.pointee.sendInFlight, u.pointee.sending.count == 0, u.pointee.pending.count > 0 else { return }
        swap(&u.pointee.sending, &u.pointee.pending)
        u.pointee.sendOffset = 0
        u.pointee.sendInFlight = true
        loop.backend.send(fd: u.pointee.fd, bytes: u.pointee.sending.base!, count: u.pointee.sending.count)
    }

    func upstreamSent(_ c: Completion, _ loop: Loop) {
        let up = c.token
        guard let u = ups.pointer(up) else { return }
        u.pointee.sendInFlight = false
        guard c.result >= 0 else {
            upstreamEnded(up, u, loop, reset: true)
            return
        }
        u.pointee.sendOffset += Int(c.result)
        if u.pointee.sendOffset < u.pointee.sending.count {
            u.pointee.sendInFlight = true
            let off = u.pointee.sendOffset
            loop.backend.send(fd: u.pointee.fd, bytes: u.pointee.sending.base! + off, count: u.pointee.sending.count - off)
            return
        }
        u.pointee.sending.count = 0
        pool.release(&u.pointee.sending)
        flushUpstream(u, loop)
        // Room again: request body bytes waiting downstream may follow.
        let owner = u.pointee.owner
        if owner != 0, let d = downs.pointer(owner), d.pointee.hasStream, !d.pointee.stream.requestComplete, d.pointee.input.count > 0 {
            consumeBufferedInput(owner, d, loop)
            downstreamSettled(owner, d, loop)
        }
    }

    func upstreamConnected(_ c: Completion, _ loop: Loop) {
        let up = c.token
        guard let u = ups.pointer(up), u.pointee.state == .connecting else { return }
        u.pointee.connectDeadline = 0
        guard c.result >= 0 else {
            connectFailed(up, u, loop, timedOut: false, error: -c.result)
            return
        }
        loop.backend.armReceive(fd: u.pointee.fd, token: up)
        let owner = u.pointee.owner
        if owner != 0, let d = downs.pointer(owner), d.pointee.hasStream, d.pointee.stream.upstream == up {
            attach(up, u, owner, d, loop)
            downstreamSettled(owner, d, loop)
        } else {
            // Its stream is gone (timed out, client left): the connection serves the pool.
            u.pointee.state = .busy
            releaseToPoolAfterConnect(up, u, loop)
        }
    }

    private func releaseToPoolAfterConnect(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        u.pointee.requests -= 1  // releaseToPool counts an exchange; none happened
        releaseToPool(up, u, loop)
    }

    /// A connect failed or timed out: 503 UF for its stream (after the retries the route allows).
    private func connectFailed(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop, timedOut: Bool, error: Int32 = 0) {
        inc(stats.upstreamCxConnectFail)
        if timedOut { inc(stats.upstreamCxConnectTimeout) }
        if let cs = clusterStats(Int(u.pointee.cluster)) {
            inc(cs.upstreamCxConnectFail)
            if timedOut { inc(cs.upstreamCxConnectTimeout) }
        }
        let owner = u.pointee.owner
        closeUpstream(up, loop)
        guard owner != 0, let d = downs.pointer(owner), d.pointee.hasStream, d.pointee.stream.upstream == up else { return }
        d.pointee.stream.upstream = 0
        if retry(owner, d, loop, onConnectFailure: true) { return }
        localReply(.connectFailure(timedOut: timedOut, error: error), owner, d, loop)
        downstreamSettled(owner, d, loop)
    }

    /// Tries the request again on another connection when the route's retry policy allows it and
    /// nothing of the body has been sent (only bodiless requests keep their head for a retry).
    private func retry(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop, onConnectFailure: Bool, status: Int = 0) -> Bool {
        let s = d.pointee.stream
        guard s.route >= 0, let http = httpPlan(s.generation), case .forward(let plan) = http.routes.allRoutes[Int(s.route)].action, let policy = plan.retry,
              status > 0 ? policy.retries(status: status) : (onConnectFailure ? policy.onConnectFailure : policy.onReset),
              s.requestHead.count > 0 || s.retryHead.count > 0 else { return false }
        guard Int(s.retries) < policy.numRetries else {
            d.pointee.stream.flags.insert(.upstreamRetryLimitExceeded)
            return false
        }
        let cluster = plane.clusters[Int(s.cluster)]
        guard ClusterResources.tryTake(cluster.resources.retries, limit: cluster.thresholds.maxRetries) else {
            d.pointee.stream.flags.insert(.upstreamOverflow)
            return false
        }
        ClusterResources.give(cluster.resources.retries)
        inc(stats.upstreamRqRetry)
        if let cs = clusterStats(cluster.index) { inc(cs.upstreamRqRetry) }
        d.pointee.stream.retries += 1
        if d.pointee.stream.requestHead.count == 0 {
            _ = pool.append(d.pointee.stream.retryHead.bytes, to: &d.pointee.stream.requestHead)
        }
        hostPools[Int(s.hostPool)].activeRequests -= 1
        let hp = pickHost(Int(s.cluster))
        d.pointee.stream.hostPool = Int32(hp)
        hostPools[hp].activeRequests += 1
        if d.pointee.stream.holdsPending {
            d.pointee.stream.holdsPending = false
            ClusterResources.give(cluster.resources.pendingRequests)
        }
        assignConnection(token, d, loop)
        downstreamSettled(token, d, loop)
        return true
    }

    // MARK: the response path

    func upstreamReceived(_ c: Completion, _ loop: Loop) {
        let up = c.token
        guard let u = ups.pointer(up) else { return }
        if c.result <= 0 {
            upstreamEnded(up, u, loop, reset: c.result < 0)
            return
        }
        let owner = u.pointee.owner
        guard u.pointee.state == .busy, owner != 0, let d = downs.pointer(owner), d.pointee.hasStream,
              d.pointee.stream.upstream == up else {
            // Bytes nobody asked for (on an idle connection): the connection is out of step.
            closeUpstream(up, loop)
            return
        }
        let bytes = c.bytes
        var outcome: ResponseProgress
        if u.pointee.input.count == 0 {
            outcome = processResponse(bytes, up, u, owner, d, loop)
            if case .more(let used) = outcome, used < bytes.count {
                if u.pointee.input.count + bytes.count - used > Self.maxResponseHead
                    || !pool.append(UnsafeRawBufferPointer(rebasing: bytes[used...]), to: &u.pointee.input) {
                    outcome = .malformed
                }
            }
            if case .complete(let used) = outcome, used < bytes.count { outcome = .completeUnclean }
        } else {
            if !pool.append(bytes, to: &u.pointee.input) {
                outcome = .malformed
            } else {
                outcome = processResponse(u.pointee.input.bytes, up, u, owner, d, loop)
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
        }
        switch outcome {
        case .more:
            if d.pointee.pending.count >= Self.highWater && !u.pointee.receivePaused {
                u.pointee.receivePaused = true
                d.pointee.stream.upstreamPaused = true
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
        }
        downstreamSettled(owner, d, loop)
    }

    /// A response head the route retries (retry_on 5xx / gateway-error): drop the connection and
    /// its response, send the request again (`retry` settles the downstream).
    private func retryResponse(_ status: Int, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        let up = s.pointee.upstream
        s.pointee.upstream = 0
        closeUpstream(up, loop)
        if retry(token, d, loop, onConnectFailure: false, status: status) { return }
        // The retry budget ran out in between: answer as for a reset before the response.
        localReply(LocalReply(status: 503, body: .text(LocalReplyText.connectionTermination),
                              flags: .upstreamConnectionTermination, details: .resetBeforeHeaders), token, d, loop)
        downstreamSettled(token, d, loop)
    }

    /// True when the response head just parsed should be retried instead of forwarded: the
    /// route's policy covers its status, a retry is left, and the request can be sent again.
    /// When only the retry count is exhausted, the response goes through flagged URX.
    private func retriesResponse(_ status: Int, _ s: UnsafeMutablePointer<Stream>) -> Bool {
        guard status >= 500, s.pointee.route >= 0, let http = httpPlan(s.pointee.generation),
              case .forward(let plan) = http.routes.allRoutes[Int(s.pointee.route)].action, let policy = plan.retry,
              policy.retries(status: status), s.pointee.requestComplete, s.pointee.retryHead.count > 0 else { return false }
        guard Int(s.pointee.retries) < policy.numRetries else {
            s.pointee.flags.insert(.upstreamRetryLimitExceeded)
            return false
        }
        let cluster = plane.clusters[Int(s.pointee.cluster)]
        return cluster.resources.retries.load(ordering: .relaxed) < cluster.thresholds.maxRetries
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
    }

    /// Parses the response head and streams the body from the front of `bytes` into the
    /// downstream's output, re-framing as needed.
    private func processResponse(_ bytes: UnsafeRawBufferPointer, _ up: UInt64, _ u: UnsafeMutablePointer<Upstream>,
                                 _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) -> ResponseProgress {
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
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
                        if responseParser.statusCode == 101 { return .malformed }  // no upgrade was asked for
                        offset += headLength  // 100 Continue and friends: the proxy answered Expect itself
                        continue
                    }
                    if retriesResponse(responseParser.statusCode, s) { return .retry(responseParser.statusCode) }
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
                    _ = http?.filters.encodeHeaders(status: responseParser.statusCode, endStream: s.pointee.responseBody == .none)
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
                    _ = http?.filters.encodeData(chunk, endStream: n == s.pointee.responseRemaining)
                    _ = pool.append(chunk, to: &d.pointee.pending)
                    s.pointee.bytesSent += n
                    s.pointee.responseRemaining -= n
                    offset += n
                    if s.pointee.responseRemaining == 0 { return .complete(offset) }
                case .chunked:
                    if s.pointee.http10 {
                        let r = relayDechunked(rest, s, d)
                        if r.failed { return .malformed }
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
                    _ = http?.filters.encodeData(chunk, endStream: done)
                    _ = pool.append(chunk, to: &d.pointee.pending)  // chunks pass through verbatim
                    offset += used
                    if done { return .complete(offset) }
                case .untilClose:
                    _ = http?.filters.encodeData(rest, endStream: false)
                    if s.pointee.reframeChunked {
                        appendChunk(rest, to: &d.pointee.pending)
                    } else {
                        _ = pool.append(rest, to: &d.pointee.pending)
                    }
                    s.pointee.bytesSent += rest.count
                    offset = bytes.count
                case .none:
                    return .complete(offset)
                }
            }
        }
        return .more(offset)
    }

    private func appendChunk(_ data: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        guard data.count > 0, let p = pool.reserve(data.count + 20, in: &buffer) else { return }
        var w = ByteWriter(p, capacity: data.count + 20)
        w.putHex(data.count)
        w.crlf()
        w.put(data)
        w.crlf()
        buffer.count += w.count
    }

    /// The response is complete: the connection goes back to its pool (when clean and both
    /// sides keep it alive) and the stream ends.
    private func responseFinished(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop, reusable: Bool) {
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        if s.pointee.reframeChunked {
            _ = pool.append(UnsafeRawBufferPointer(staticString: "0\r\n\r\n"), to: &d.pointee.pending)
        }
        s.pointee.responseComplete = true
        s.pointee.deadline = 0
        if !s.pointee.requestComplete {
            // An early answer: the rest of the request body cannot be told apart from a next request.
            d.pointee.closeAfterFlush = true
        }
        let clean = reusable && s.pointee.upstreamKeepAlive && s.pointee.requestComplete && s.pointee.responseBody != .untilClose
        if let u = ups.pointer(s.pointee.upstream), u.pointee.receivePaused {
            u.pointee.receivePaused = false
            if clean { loop.backend.resumeReceive(fd: u.pointee.fd) }
        }
        endStream(token, d, loop, reuseUpstream: clean)
    }

    /// The upstream closed or reset its connection.
    private func upstreamEnded(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop, reset: Bool) {
        let owner = u.pointee.owner
        guard u.pointee.state == .busy, owner != 0, let d = downs.pointer(owner), d.pointee.hasStream, d.pointee.stream.upstream == up else {
            if u.pointee.state == .connecting {
                connectFailed(up, u, loop, timedOut: false)
            } else {
                closeUpstream(up, loop)
            }
            return
        }
        inc(stats.upstreamRqRxReset)
        if let cs = clusterStats(Int(u.pointee.cluster)) { inc(cs.upstreamRqRxReset) }
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        if s.pointee.responseHeadDone && s.pointee.responseBody == .untilClose && !reset {
            responseFinished(owner, d, loop, reusable: false)  // the normal end of an until-close body
            downstreamSettled(owner, d, loop)
            return
        }
        s.pointee.upstream = 0
        closeUpstream(up, loop)
        if !s.pointee.responseHeadDone {
            if retry(owner, d, loop, onConnectFailure: false) { return }
            localReply(LocalReply(status: 503, body: .text(LocalReplyText.connectionTermination),
                                  flags: .upstreamConnectionTermination, details: .resetBeforeHeaders), owner, d, loop)
        } else {
            // Cut short after the head: the client sees the connection end.
            s.pointee.flags.insert(.upstreamConnectionTermination)
            d.pointee.closeAfterFlush = true
            endStream(owner, d, loop, reuseUpstream: false)
        }
        downstreamSettled(owner, d, loop)
    }

    /// A malformed upstream response: 502 before the head went out, else cut the response short.
    private func upstreamProtocolError(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = withUnsafeMutablePointer(to: &d.pointee.stream) { $0 }
        let up = s.pointee.upstream
        s.pointee.upstream = 0
        closeUpstream(up, loop)
        if !s.pointee.responseHeadDone {
            localReply(LocalReply(status: 502, body: .text(LocalReplyText.protocolError), flags: .upstreamProtocolError,
                                  details: .upstreamProtocolError), token, d, loop)
        } else {
            s.pointee.flags.insert(.upstreamProtocolError)
            d.pointee.closeAfterFlush = true
            endStream(token, d, loop, reuseUpstream: false)
        }
    }

    // MARK: upstream timers

    func armUpstreamTimer(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        let a = u.pointee.connectDeadline
        let b = u.pointee.idleDeadline
        let next = a == 0 ? b : (b == 0 ? a : min(a, b))
        guard next > 0 else { return }
        if u.pointee.timerArmedAt != 0 && u.pointee.timerArmedAt <= next { return }
        u.pointee.timerArmedAt = next
        loop.timers.schedule(at: next, id: up)
    }

    func upstreamTimer(_ up: UInt64, _ loop: Loop) {
        guard let u = ups.pointer(up) else { return }
        let now = loop.now
        if u.pointee.timerArmedAt != 0 && u.pointee.timerArmedAt <= now { u.pointee.timerArmedAt = 0 }
        if u.pointee.state == .connecting && u.pointee.connectDeadline != 0 && u.pointee.connectDeadline <= now {
            u.pointee.connectDeadline = 0
            let owner = u.pointee.owner
            connectFailed(up, u, loop, timedOut: true)
            if owner != 0, let d = downs.pointer(owner) { downstreamSettled(owner, d, loop) }
            return
        }
        if u.pointee.state == .idle && u.pointee.idleDeadline != 0 && u.pointee.idleDeadline <= now {
            closeUpstream(up, loop)
            return
        }
        armUpstreamTimer(up, u, loop)
    }
}
