import EventLoop
import HTTP1

/// Request mirroring (`request_mirror_policies`), as Envoy 1.40's router shadows a request: a
/// copy of the head (ShadowHead) and body goes to a host of each mirror cluster, over the same
/// host pools, circuit breakers and connections as forwarded requests; its response is read and
/// dropped. The main request never waits for a shadow: body bytes are copied to a shadow as the
/// main upstream takes them, and a shadow that cannot keep up (more than `mirrorBufferLimit`
/// queued) is dropped. Outcomes count on the mirror cluster as Envoy's do (upstream_rq_total,
/// _completed, _<code>, _timeout, _rx_reset, connect failures, overflow). docs/mirroring.md.
extension ProxyWorker {
    /// Body bytes a shadow may hold before it is dropped (Envoy's default buffer limit, 1 MiB).
    static var mirrorBufferLimit: Int { 1024 * 1024 }

    // MARK: start

    /// Starts the route's mirrors for the stream just forwarded (its upstream head is encoded).
    func startShadows(_ plan: ForwardPlan, _ head: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        guard !s.pointee.upgrade else { return }
        for m in plan.mirrors {
            if let f = m.fraction, !f.enabled(rng.next() >> 11) { continue }
            var cluster = m.cluster
            if let header = m.clusterHeader {
                // cluster_header: the request names the mirror; absent or unknown: no copy (Envoy).
                guard let c = clusterNamed(by: header, in: head) else { continue }
                cluster = c
            }
            // A mirror cluster that does not exist (any more): no copy, as Envoy.
            guard cluster >= 0, !plane.clusters[cluster].removed else { continue }
            let token = startShadow(m, cluster: cluster, s, timeoutNanos: plan.timeoutNanos ?? 0, loop)
            if let sh = shadows.pointer(token) {
                sh.pointee.next = s.pointee.shadow
                s.pointee.shadow = token
            }
        }
    }

    /// The cluster whose name is the value of the request's first `header` field (compared as
    /// bytes: no allocation), or nil.
    private func clusterNamed(by header: [UInt8], in head: UnsafeRawBufferPointer) -> Int? {
        let p = requestParser
        for i in 0..<p.pointee.headerCount {
            let name = p.pointee.headerNameRange(at: i)
            guard name.count == header.count else { continue }
            var same = true
            for k in 0..<header.count where ASCII.lowercased(head[name.lowerBound + k]) != header[k] { same = false; break }
            guard same else { continue }
            let value = UnsafeRawBufferPointer(rebasing: head[p.pointee.headerValueRange(at: i)])
            for c in plane.activeClusters where c.name.utf8.elementsEqual(value) { return c.index }
            return nil
        }
        return nil
    }

    private func startShadow(_ m: MirrorPlan, cluster ci: Int, _ s: UnsafeMutablePointer<Stream>, timeoutNanos: Int64, _ loop: Loop) -> UInt64 {
        var fresh = Shadow()
        fresh.cluster = Int32(ci)
        fresh.isHEAD = s.pointee.isHEAD
        fresh.timeoutNanos = timeoutNanos
        fresh.startNanos = loop.now
        let token = shadows.insert(fresh)
        let sh = shadows.pointer(token)!
        let cluster = plane.clusters[ci]
        guard !cluster.isOriginalDst, !cluster.hosts.isEmpty, !cluster.noHealthyHostWithoutPanic else {
            shadowFailed(token, status: 503, loop)  // no healthy upstream
            return token
        }
        guard ClusterResources.tryTake(cluster.resources.requests, limit: cluster.thresholds.maxRequests) else {
            countShadowOverflow(ci)
            shadowFailed(token, status: 503, loop)
            return token
        }
        sh.pointee.holdsRequest = true
        let hp = pickHost(ci)
        sh.pointee.hostPool = Int32(hp)
        upstreamPools[hp].activeRequests += 1
        let main = s.pointee.requestHead.bytes
        let capacity = main.count + ShadowHead.extra
        guard let base = pool.reserve(capacity, in: &sh.pointee.requestHead) else {
            shadowFailed(token, status: 503, loop)
            return token
        }
        var w = ByteWriter(base, capacity: capacity)
        guard ShadowHead.write(main, hostSuffix: m.hostSuffix, into: &w) else {
            shadowFailed(token, status: 503, loop)
            return token
        }
        sh.pointee.requestHead.count += w.count
        assignShadowConnection(token, loop)
        return token
    }

    func countShadowOverflow(_ ci: Int) {
        inc(stats.upstreamRqPendingOverflow)
        if let cs = clusterStats(ci) { inc(cs.upstreamRqPendingOverflow) }
    }

    // MARK: connections

    /// An idle connection, a new one, or a place in the host's queue, as for a forwarded request.
    func assignShadowConnection(_ token: UInt64, _ loop: Loop) {
        let sh = shadows.pointer(token)!
        let hp = Int(sh.pointee.hostPool)
        while let up = upstreamPools[hp].popIdle() {
            guard let u = ups.pointer(up) else { continue }
            u.pointee.idleIndex = -1
            u.pointee.idleDeadline = 0
            attachShadow(up, u, token, loop)
            return
        }
        let ci = Int(upstreamPools[hp].cluster)
        let cluster = plane.clusters[ci]
        guard ClusterResources.tryTake(cluster.resources.pendingRequests, limit: cluster.thresholds.maxPendingRequests) else {
            countShadowOverflow(ci)
            shadowFailed(token, status: 503, loop)
            return
        }
        sh.pointee.holdsPending = true
        if takeConnectionSlot(hp) {
            connectShadow(hp, token, loop)
        } else {
            sh.pointee.queued = true
            upstreamPools[hp].enqueue(token)
        }
    }

    /// Opens a connection for the shadow (its connection slot is taken).
    func connectShadow(_ hp: Int, _ token: UInt64, _ loop: Loop) {
        let up = connectUpstream(hp, owner: token, loop)
        guard up != 0 else {
            shadowFailed(token, status: 503, loop)
            return
        }
        shadows.pointer(token)!.pointee.upstream = up
        if let u = ups.pointer(up) { armUpstreamTimer(up, u, loop) }
    }

    /// Binds a ready connection to the shadow and sends its head and the body bytes so far.
    func attachShadow(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ token: UInt64, _ loop: Loop) {
        guard let sh = shadows.pointer(token) else {
            releaseToPoolAfterConnect(up, u, loop)
            return
        }
        u.pointee.state = .busy
        u.pointee.owner = token
        sh.pointee.upstream = up
        sh.pointee.queued = false
        if sh.pointee.holdsPending {
            sh.pointee.holdsPending = false
            ClusterResources.give(plane.clusters[Int(u.pointee.cluster)].resources.pendingRequests)
        }
        countUpstreamRequest(Int(u.pointee.cluster))
        beginShadowAttempt(sh, pool: Int(u.pointee.hostPool))
        reportOutlier(Int(u.pointee.hostPool), .connectSuccess, loop)
        if u.pointee.pending.count == 0 {
            swap(&u.pointee.pending, &sh.pointee.requestHead)
        } else {
            _ = pool.append(sh.pointee.requestHead.bytes, to: &u.pointee.pending)
            pool.release(&sh.pointee.requestHead)
        }
        if sh.pointee.body.count > 0 {
            _ = pool.append(sh.pointee.body.bytes, to: &u.pointee.pending)
            pool.release(&sh.pointee.body)
        }
        if sh.pointee.deadline != 0 {
            u.pointee.shadowDeadline = sh.pointee.deadline
            armUpstreamTimer(up, u, loop)
        }
        flushUpstream(u, loop)
    }

    // MARK: the request body

    /// Body bytes the main upstream just took: a copy for each shadow still taking them.
    func mirrorRequestBody(_ chunk: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        var token = s.pointee.shadow
        while token != 0, let sh = shadows.pointer(token) {
            let next = sh.pointee.next
            if !sh.pointee.done {
                if sh.pointee.upstream != 0, let u = ups.pointer(sh.pointee.upstream), u.pointee.state == .busy {
                    if u.pointee.pending.count + chunk.count <= Self.mirrorBufferLimit, pool.append(chunk, to: &u.pointee.pending) {
                        flushUpstream(u, loop)
                    } else {
                        finishShadow(token, loop, reuseUpstream: false)  // it cannot keep up: dropped
                    }
                } else if sh.pointee.body.count + chunk.count > Self.mirrorBufferLimit || !pool.append(chunk, to: &sh.pointee.body) {
                    finishShadow(token, loop, reuseUpstream: false)
                }
            }
            token = next
        }
    }

    /// The main request has been read whole: every shadow's copy is complete, its route timeout
    /// starts, and the stream lets go of the chain.
    func shadowsRequestComplete(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        var token = s.pointee.shadow
        s.pointee.shadow = 0
        while token != 0, let sh = shadows.pointer(token) {
            let next = sh.pointee.next
            sh.pointee.next = 0
            sh.pointee.attached = false
            if sh.pointee.done {
                shadows.remove(token)
            } else {
                sh.pointee.requestComplete = true
                if sh.pointee.timeoutNanos > 0 {
                    sh.pointee.deadline = loop.now + sh.pointee.timeoutNanos
                    if let u = ups.pointer(sh.pointee.upstream), u.pointee.state == .busy {
                        u.pointee.shadowDeadline = sh.pointee.deadline
                        armUpstreamTimer(sh.pointee.upstream, u, loop)
                    }
                }
            }
            token = next
        }
    }

    /// The main stream ends before its request was read whole: its shadows cannot complete
    /// either and are dropped (Envoy resets them with the main request).
    func detachShadows(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        var token = s.pointee.shadow
        s.pointee.shadow = 0
        while token != 0, let sh = shadows.pointer(token) {
            let next = sh.pointee.next
            sh.pointee.next = 0
            sh.pointee.attached = false
            if sh.pointee.done {
                shadows.remove(token)
            } else {
                finishShadow(token, loop, reuseUpstream: false)
            }
            token = next
        }
    }

    // MARK: the response, read and dropped

    func shadowResponseInput(_ bytes: UnsafeRawBufferPointer, _ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        let token = u.pointee.owner
        guard u.pointee.state == .busy, let sh = shadows.pointer(token), sh.pointee.upstream == up else {
            closeUpstream(up, loop)
            return
        }
        let outcome = readResponse(bytes, up, u, .shadow(sh), loop)
        switch outcome {
        case .more:
            break
        case .complete:
            shadowAnswered(token, loop, reusable: true)
        case .completeUnclean:
            shadowAnswered(token, loop, reusable: false)
        case .malformed, .retry, .handshakeRefused:
            reportOutlier(Int(u.pointee.hostPool), .connectFailed, loop)  // a codec reset, as for streams
            shadowFailed(token, status: 502, loop)  // Envoy's UPE 502
        }
    }

    /// Parses the shadow's response head and skips its body from the front of `bytes`.
    func skimShadowResponse(_ bytes: UnsafeRawBufferPointer, _ sh: UnsafeMutablePointer<Shadow>, _ loop: Loop) -> ResponseProgress {
        var offset = 0
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            if !sh.pointee.responseHeadDone {
                responseParser.reset()
                switch responseParser.parse(rest, isResponseToHEAD: sh.pointee.isHEAD) {
                case .incomplete:
                    return .more(offset)
                case .failure:
                    return .malformed
                case .complete(let headLength):
                    offset += headLength
                    if responseParser.isInformational {
                        if responseParser.statusCode == 101 { return .malformed }  // no upgrade is mirrored
                        continue
                    }
                    sh.pointee.responseHeadDone = true
                    sh.pointee.status = Int32(responseParser.statusCode)
                    reportOutlier(Int(sh.pointee.hostPool), .response(responseParser.statusCode), loop)  // Envoy's shadow router feeds it too
                    if let cs = clusterStats(Int(sh.pointee.cluster)) { cs.upstreamRqTime.record(micros: Int((loop.now - sh.pointee.startNanos) / 1000)) }
                    sh.pointee.upstreamKeepAlive = responseParser.keepAlive
                    switch responseParser.bodyFraming {
                    case .none, .contentLength(0):
                        return .complete(offset)
                    case .contentLength(let n):
                        sh.pointee.responseBody = .length
                        sh.pointee.responseRemaining = n
                    case .chunked:
                        sh.pointee.responseBody = .chunked
                        sh.pointee.responseDecoder.reset()
                    case .untilClose:
                        sh.pointee.responseBody = .untilClose
                    }
                }
            } else {
                switch sh.pointee.responseBody {
                case .length:
                    let n = min(rest.count, sh.pointee.responseRemaining)
                    sh.pointee.responseRemaining -= n
                    offset += n
                    if sh.pointee.responseRemaining == 0 { return .complete(offset) }
                case .chunked:
                    let skim = sh.pointee.responseDecoder.skim(rest)
                    if skim.failure != nil { return .malformed }
                    offset += skim.consumed
                    if skim.done { return .complete(offset) }
                    if skim.consumed == 0 { return .more(offset) }
                case .untilClose:
                    offset = bytes.count
                case .none, .tunnel:
                    return .complete(offset)
                }
            }
        }
        return .more(offset)
    }

    /// The shadow's upstream closed or reset its connection.
    func shadowUpstreamEnded(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop, reset: Bool) {
        let token = u.pointee.owner
        guard let sh = shadows.pointer(token), sh.pointee.upstream == up else {
            closeUpstream(up, loop)
            return
        }
        if sh.pointee.responseHeadDone && sh.pointee.responseBody == .untilClose && !reset {
            shadowAnswered(token, loop, reusable: false)  // the normal end of an until-close body
            return
        }
        if let cs = clusterStats(Int(sh.pointee.cluster)) { inc(cs.upstreamCxDestroyRemoteWithActiveRq) }
        reportOutlier(Int(u.pointee.hostPool), .connectFailed, loop)
        shadowFailed(token, status: 503, loop)  // Envoy's UC 503
    }

    /// The shadow's route timeout passed: Envoy's UT 504 on the mirror cluster.
    func shadowTimedOut(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        let token = u.pointee.owner
        guard let sh = shadows.pointer(token), sh.pointee.upstream == up else {
            armUpstreamTimer(up, u, loop)
            return
        }
        inc(stats.upstreamRqTimeout)
        if let cs = clusterStats(Int(sh.pointee.cluster)) { inc(cs.upstreamRqTimeout) }
        if !sh.pointee.responseHeadDone && u.pointee.state == .busy { reportOutlier(Int(u.pointee.hostPool), .timeout, loop) }
        shadowFailed(token, status: 504, loop)
    }

    // MARK: end

    private func shadowAnswered(_ token: UInt64, _ loop: Loop, reusable: Bool) {
        guard let sh = shadows.pointer(token) else { return }
        countShadowCompleted(Int(sh.pointee.cluster), status: Int(sh.pointee.status))
        endShadowAttempt(sh, error: sh.pointee.status >= 500)
        let clean = reusable && sh.pointee.upstreamKeepAlive && sh.pointee.requestComplete && sh.pointee.responseBody != .untilClose
        if sh.pointee.check != 0 {
            finishCheck(token, answered: true, reuseUpstream: clean, loop)
            return
        }
        finishShadow(token, loop, reuseUpstream: clean)
    }

    /// A shadow that got no response: counted with the status Envoy's router would have answered.
    func shadowFailed(_ token: UInt64, status: Int, _ loop: Loop) {
        guard let sh = shadows.pointer(token) else { return }
        countShadowCompleted(Int(sh.pointee.cluster), status: status)
        endShadowAttempt(sh, error: true, timeout: status == 504)
        if sh.pointee.check != 0 {
            finishCheck(token, answered: false, reuseUpstream: false, loop)
            return
        }
        finishShadow(token, loop, reuseUpstream: false)
    }

    /// The copy went out on a connection to host pool `pool`: the host's `/clusters` rq_total
    /// and rq_active count it, as Envoy's do for shadow and async-client requests.
    private func beginShadowAttempt(_ sh: UnsafeMutablePointer<Shadow>, pool: Int) {
        guard pool >= 0, sh.pointee.attemptPool < 0 else { return }
        sh.pointee.attemptPool = Int32(pool)
        upstreamPools[pool].counters.requestSent()
    }

    private func endShadowAttempt(_ sh: UnsafeMutablePointer<Shadow>, error: Bool, timeout: Bool = false) {
        let pool = Int(sh.pointee.attemptPool)
        guard pool >= 0 else { return }
        sh.pointee.attemptPool = -1
        upstreamPools[pool].counters.requestEnded(error: error, timeout: timeout)
    }

    private func countShadowCompleted(_ ci: Int, status: Int) {
        guard let cs = clusterStats(ci) else { return }
        inc(cs.upstreamRqCompleted)
        cs.upstreamRqCodes.count(status)
    }

    /// Lets go of everything the shadow holds: its connection (back to the pool when clean),
    /// circuit-breaker units, buffers; its slot, unless the main stream still holds the chain.
    func finishShadow(_ token: UInt64, _ loop: Loop, reuseUpstream: Bool) {
        guard let sh = shadows.pointer(token), !sh.pointee.done else { return }
        sh.pointee.done = true
        endShadowAttempt(sh, error: true)  // one that ends without an answer (a check abandoned)
        let up = sh.pointee.upstream
        sh.pointee.upstream = 0
        if up != 0, let u = ups.pointer(up) {
            u.pointee.shadowDeadline = 0
            if u.pointee.state == .connecting {
                u.pointee.owner = 0  // it joins the pool when connected
            } else if reuseUpstream {
                releaseToPool(up, u, loop)
            } else {
                closeUpstream(up, loop)
            }
        }
        if sh.pointee.hostPool >= 0 {
            upstreamPools[Int(sh.pointee.hostPool)].activeRequests -= 1
            sh.pointee.hostPool = -1
        }
        sh.pointee.queued = false  // a queue entry left behind is skipped (`nextQueued`)
        let resources = plane.clusters[Int(sh.pointee.cluster)].resources
        if sh.pointee.holdsRequest { ClusterResources.give(resources.requests) }
        if sh.pointee.holdsPending { ClusterResources.give(resources.pendingRequests) }
        sh.pointee.holdsRequest = false
        sh.pointee.holdsPending = false
        pool.release(&sh.pointee.requestHead)
        pool.release(&sh.pointee.body)
        pool.release(&sh.pointee.response)
        if !sh.pointee.attached { shadows.remove(token) }
    }
}
