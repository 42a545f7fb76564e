import EventLoop
import Glibc
import HTTP1

/// One request/response exchange (`Stream`): start it from a parsed head (filter chain, route,
/// local reply or forward), stream the request body upstream, end it (access record, circuit
/// breakers, the upstream connection back to its pool), and its route timeout. The codec-facing
/// entry points are `startStream` (a whole head), `forwardRequestBody` (body bytes) and the
/// response path (`ProxyWorker+Response`).
extension ProxyWorker {
    // MARK: start

    /// A whole request head arrived: run the filter chain and act on its decision.
    func startStream(_ head: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let p = requestParser
        stripHostPort(head, d)
        d.pointee.stream = streams.insert(Stream())
        d.pointee.idleDeadline = 0
        touchStreamIdle(d, loop)  // a whole head is activity (Envoy: decodeHeaders); its parts are not
        let s = streams.pointer(d.pointee.stream)!
        s.pointee.hcm = d.pointee.hcm
        s.pointee.startNanos = loop.now
        s.pointee.isHEAD = p.pointee.method == .head
        // While the server fails health checks Envoy's responses say `connection: close` (its drain
        // manager's drainClose) and the connection closes when its drain ends (`healthDrain`).
        let healthFailed = plane.serverHealth.failed.load(ordering: .relaxed)
        s.pointee.keepAlive = p.pointee.keepAlive && !ops.draining && !healthFailed && !d.pointee.durationReached
        s.pointee.healthDrain = healthFailed && p.pointee.keepAlive && !ops.draining && !d.pointee.durationReached
        streamBegan(s)
        requestBegan(head, s)
        if traits(d)?.tracing == true, let tracing = hcm(s)?.tracing { beginTrace(head, tracing, s, d, httpStats(s)) }
        if let capture { capture.capture(head, parser: p, fd: d.pointee.fd, restoredLocal: d.pointee.originalDst, requestID: s.pointee.generatedID,
                                       serverName: d.pointee.serverName.isAllocated ? d.pointee.serverName.bytes : nil, into: &s.pointee.logFields, pool: pool) }
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
        if p.pointee.upgradeRange != nil {
            // Everything after an upgrade request's head is the upgrade's payload (its framing
            // fields go upstream as sent): the request ends only with the connection.
            s.pointee.upgrade = true
            s.pointee.requestBody = .tunnel
            s.pointee.requestComplete = false
        }
        if s.pointee.requestComplete { d.pointee.requestDeadline = 0 }
        loads.requestStarted(index)
        inc(httpStats(s).downstreamRqTotal)
        guard let http = hcm(s) else { return }
        let target = requestTarget(head, d)
        var ctx = FilterContext(request: RequestView(bytes: head, path: target.path, query: target.query,
                                                     host: target.authority ?? p.pointee.hostRange, parser: p, secure: d.pointee.tls.isActive),
                                plan: http, random: rng.next(), now: loop.now)
        if http.filters.needsConnection { ctx.connection = connectionInfo(d) }
        if http.cache != nil { ctx.cache = responseCache }
        if let upgrade = p.pointee.upgradeRange {
            // Envoy decides before the filter chain runs, on the route's upgrade_configs or the manager's.
            var routeUpgrades: UpgradePolicy? = nil
            if let route = http.routes.resolve(ctx.request), case .forward(let plan) = route.action { routeUpgrades = plan.upgrades }
            guard UpgradePolicy.allows(manager: http.upgrades, route: routeUpgrades, head, upgrade) else {
                s.pointee.upgrade = false
                localReply(LocalReply(status: 403, body: .text(""), flags: [], details: .upgradeFailed), token, d, loop)
                return
            }
            s.pointee.websocket = upgrade.count == 9 && ASCII.equalsCaseInsensitive(head, upgrade, "websocket")
            inc(httpStats(s).downstreamCxUpgradesTotal)
            inc(httpStats(s).downstreamCxUpgradesActive)
        }
        ctx.requestHasBody = !s.pointee.requestComplete
        http.filters.decodeHeaders(&ctx)
        if ctx.workerCostsApplied > 0 { inc(httpStats(d).workerCostApplied, by: ctx.workerCostsApplied) }
        act(on: ctx, head, token, d, loop)
    }

    /// Carries out what the filter chain decided for the active stream.
    func act(on ctx: FilterContext, _ head: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        if ctx.faultActive { s.pointee.faultActive = true }
        if ctx.acceptEncoding != .unset { s.pointee.acceptEncoding = ctx.acceptEncoding }
        if ctx.decompressRequest && s.pointee.inflater < 0 { beginDecompression(s) }
        if ctx.routed { inc(httpStats(s).routerRqTotal) }
        if let origin = ctx.corsOrigin, s.pointee.corsOrigin.count == 0,
           pool.append(UnsafeRawBufferPointer(rebasing: head[origin]), to: &s.pointee.corsOrigin) {
            s.pointee.corsRoute = Int32(ctx.corsRoute)
        }
        if ctx.cacheLookup.lookedUp {
            s.pointee.cache.lookedUp = true
            s.pointee.cache.fill = ctx.cacheLookup.fill
            s.pointee.cache.validate = ctx.cacheLookup.validate
            s.pointee.cache.validateGeneration = ctx.cacheLookup.validateGeneration
            s.pointee.cache.vary = ctx.cacheLookup.vary
        }
        switch ctx.decision {
        case .cacheHit(let entry, let age, let range):
            // The access log names a hit's route and cluster, as Envoy's (no upstream stats are charged).
            if let route = ctx.route {
                s.pointee.route = Int32(route.index)
                if case .forward(let plan) = route.action { s.pointee.cluster = Int32(RouterFilter.pickCluster(plan, random: ctx.random)) }
            }
            serveFromCache(entry, age: age, range: range, token, d, loop)
        case .undecided:
            localReply(LocalReply(status: 404, body: .text(""), flags: .noRouteFound, details: .routeNotFound), token, d, loop)
        case .localReply(let reply):
            if reply.flags.contains(.noRouteFound) { inc(httpStats(s).noRoute) }
            if case .route(let r) = reply.body {
                s.pointee.route = Int32(r)
                if traits(d)?.readsRequest == true { captureRequestValues(route: r, from: head, s) }
                if let http = hcm(s), case .redirect(let redirect) = http.routes.allRoutes[r].action {
                    redirectReply(reply, redirect, route: http.routes.allRoutes[r], head, token, d, loop)
                    return
                }
            }
            localReply(reply, token, d, loop)
        case .forward(let route, let cluster):
            forward(head, route: route, cluster: cluster, token, d, loop)
        case .delay(let nanos, let resumeAt):
            // The head's bytes and the worker's parser are reused for the next head: keep a copy.
            guard pool.append(head, to: &s.pointee.delayedHead) else {
                localReply(LocalReply(status: 431, body: .text(""), flags: .downstreamProtocolError, details: .downstreamProtocolError), token, d, loop)
                return
            }
            s.pointee.flags.insert(.delayInjected)
            s.pointee.delaying = true
            s.pointee.resumeFilter = Int16(resumeAt)
            s.pointee.deadline = loop.now + nanos
            armDownstreamTimer(token, d, loop)
        case .buffer(let maxBytes, let resumeAt):
            guard holdHead(head, resumeAt: resumeAt, token, d, loop) else { return }
            s.pointee.buffering = true
            s.pointee.bufferLimit = maxBytes
            if s.pointee.expectsContinue {
                // The body is wanted now, not when the upstream is reached.
                s.pointee.expectsContinue = false
                _ = pool.append(UnsafeRawBufferPointer(staticString: "HTTP/1.1 100 Continue\r\n\r\n"), to: &d.pointee.pending)
            }
        case .discardBody(let resumeAt):
            guard holdHead(head, resumeAt: resumeAt, token, d, loop) else { return }
            s.pointee.discarding = true
        case .authorize(let filter, let routeCluster):
            guard holdHead(head, resumeAt: filter + 1, token, d, loop) else { return }
            s.pointee.authzRouteCluster = Int32(routeCluster)
            startAuthzCheck(filter: filter, head, token, d, loop)
        }
    }

    /// Keeps a copy of the head (its bytes and the worker's parser are reused) for a chain that
    /// resumes at filter `resumeAt` later; false (answered 431) when it cannot be kept.
    private func holdHead(_ head: UnsafeRawBufferPointer, resumeAt: Int, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) -> Bool {
        let s = stream(of: d)!
        guard pool.append(head, to: &s.pointee.delayedHead) else {
            localReply(LocalReply(status: 431, body: .text(""), flags: .downstreamProtocolError, details: .downstreamProtocolError), token, d, loop)
            return false
        }
        s.pointee.resumeFilter = Int16(resumeAt)
        return true
    }

    /// Drops request body bytes from the front of `bytes` for a stream that answers when its
    /// request has ended; at the end, runs the chain again. Returns the bytes used.
    func discardRequestBody(_ bytes: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) -> Int {
        let s = stream(of: d)!
        var used = 0
        var done = false
        switch s.pointee.requestBody {
        case .length:
            used = min(bytes.count, s.pointee.requestRemaining)
            s.pointee.requestRemaining -= used
            s.pointee.bytesReceived += used
            done = s.pointee.requestRemaining == 0
        case .chunked:
            let skim = s.pointee.requestDecoder.skim(bytes)
            if skim.failure != nil {
                s.pointee.discarding = false
                protocolError(400, token, d, loop)
                return bytes.count
            }
            s.pointee.bytesReceived += skim.payload
            used = skim.consumed
            done = skim.done
        default:
            done = true
        }
        if used > 0 { touchStreamIdle(d, loop) }
        if done {
            s.pointee.discarding = false
            s.pointee.requestComplete = true
            d.pointee.requestDeadline = 0
            resumeChain(token, d, loop, resumingDelay: false)
        }
        return used
    }

    /// The fault filter's delay has passed: resume the chain at that filter (which may abort now).
    func resumeAfterDelay(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        s.pointee.delaying = false
        s.pointee.deadline = 0
        resumeChain(token, d, loop, resumingDelay: true)
    }

    /// The buffer filter's body is complete in the input: resume the chain after that filter.
    func resumeAfterBuffer(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        stream(of: d)!.pointee.buffering = false
        resumeChain(token, d, loop, resumingDelay: false)
    }

    /// Parses the kept head again and runs the chain from `resumeFilter`, under the plan the
    /// stream started with.
    func resumeChain(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop, resumingDelay: Bool) {
        let s = stream(of: d)!
        guard let http = hcm(s) else {
            localReply(LocalReply(status: 503, body: .text(""), flags: .localReset, details: .downstreamTerminated), token, d, loop)
            return
        }
        let p = requestParser
        var held = s.pointee.delayedHead
        s.pointee.delayedHead = .empty
        defer { pool.release(&held) }
        let head = held.bytes
        p.pointee.reset()
        guard case .complete = p.pointee.parse(head) else {
            // It parsed before the delay; it cannot fail now. Answer rather than hang if it does.
            localReply(LocalReply(status: 400, body: .text(""), flags: .downstreamProtocolError, details: .downstreamProtocolError), token, d, loop)
            return
        }
        stripHostPort(head, d)
        let target = requestTarget(head, d)
        var ctx = FilterContext(request: RequestView(bytes: head, path: target.path, query: target.query,
                                                     host: target.authority ?? p.pointee.hostRange, parser: p, secure: d.pointee.tls.isActive),
                                plan: http, random: rng.next(), now: loop.now)
        if http.filters.needsConnection { ctx.connection = connectionInfo(d) }
        if http.cache != nil { ctx.cache = responseCache }
        ctx.route = http.routes.resolve(ctx.request)
        ctx.faultActive = s.pointee.faultActive
        ctx.resumingDelay = resumingDelay
        ctx.requestHasBody = !s.pointee.requestComplete
        http.filters.decodeHeaders(&ctx, from: Int(s.pointee.resumeFilter))
        if ctx.workerCostsApplied > 0 { inc(httpStats(d).workerCostApplied, by: ctx.workerCostsApplied) }
        act(on: ctx, head, token, d, loop)
    }

    /// A routed request: take the cluster's request budget, pick a host, encode the head and
    /// find it a connection.
    func forward(_ head: UnsafeRawBufferPointer, route: Int, cluster ci: Int, _ token: UInt64,
                         _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        s.pointee.route = Int32(route)
        // The route names a cluster that does not exist (or was removed since the stream's
        // snapshot): 503 NC `cluster_not_found`, as Envoy's router answers.
        guard ci >= 0, !plane.clusters[ci].removed else {
            inc(httpStats(s).noCluster)
            localReply(LocalReply(status: 503, body: .text(""), flags: .noClusterFound, details: .clusterNotFound), token, d, loop)
            return
        }
        let cluster = plane.clusters[ci]
        s.pointee.cluster = Int32(ci)
        // The route's plan, copied out of the table once per request.
        let plan: ForwardPlan? = if let http = hcm(s), case .forward(let p) = http.routes.allRoutes[route].action { p } else { nil }
        applyRouteIdleTimeout(plan?.idleTimeoutNanos, token, d, loop)
        s.pointee.perTryNanos = plan?.retry?.perTryTimeoutNanos ?? 0
        s.pointee.hasRetryPolicy = plan?.retry != nil
        let dstPool = cluster.isOriginalDst ? originalDstPool(ci, d.pointee.originalDst, loop) : -1
        // No host at all, or none healthy with the panic threshold at 0: 503 UH, as Envoy.
        guard cluster.isOriginalDst ? dstPool >= 0 : !cluster.hosts.isEmpty && !cluster.noHealthyHostWithoutPanic else {
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
        var hash: UInt64? = nil
        if cluster.lbPolicy == .ringHash, let plan, !plan.hashPolicy.isEmpty {
            hash = requestHash(plan.hashPolicy, head, d)
        }
        s.pointee.ringHash = hash
        let hp = cluster.isOriginalDst ? dstPool : pickHost(ci, hash: hash)
        s.pointee.hostPool = Int32(hp)
        upstreamPools[hp].activeRequests += 1
        guard encodeRequestHead(head, route: route, cluster: cluster, hostName: hostName(hp), downstream: d,
                                into: &s.pointee.requestHead) else {
            localReply(LocalReply(status: 431, body: .text(""), flags: .downstreamProtocolError, details: .downstreamProtocolError), token, d, loop)
            return
        }
        if s.pointee.cache.lookedUp {
            rewriteForCacheUpstream(s)
            if s.pointee.cache.validate >= 0 { addValidators(s) }
        }
        if traits(d)?.readsRequest == true { captureRequestValues(route: route, from: s.pointee.requestHead.bytes, s) }
        if plan?.retry != nil, s.pointee.requestBody == .none {
            _ = pool.append(s.pointee.requestHead.bytes, to: &s.pointee.retryHead)
        }
        if let plan, !plan.mirrors.isEmpty { startShadows(plan, head, s, loop) }
        if s.pointee.expectsContinue && !s.pointee.requestComplete {
            _ = pool.append(UnsafeRawBufferPointer(staticString: "HTTP/1.1 100 Continue\r\n\r\n"), to: &d.pointee.pending)
        }
        s.pointee.upstreamStartNanos = loop.now
        if s.pointee.requestComplete {
            requestFinished(token, d, loop)
        }
        assignConnection(token, d, loop)
    }

    /// The connection facts filters read (the peer and local port are read once per connection).
    func connectionInfo(_ d: UnsafeMutablePointer<Downstream>) -> ConnectionInfo {
        var info = ConnectionInfo()
        info.peer = peerAddress(d)
        if d.pointee.originalDst.isSet {
            info.destinationPort = d.pointee.originalDst.port
        } else {
            info.destinationPort = localPort(d)
        }
        return info
    }

    // MARK: request body

    /// Forwards request body bytes from the front of `bytes` into the upstream's output.
    /// Returns the bytes used (0: the upstream cannot take any now).
    func forwardRequestBody(_ bytes: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) -> Int {
        let s = stream(of: d)!
        guard s.pointee.upstream != 0, s.pointee.requestHead.count == 0, let up = ups.pointer(s.pointee.upstream),
              up.pointee.state == .busy else { return 0 }
        let room = Self.highWater - up.pointee.pending.count
        guard room > 0 else { return 0 }
        let avail = UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, room)])
        if s.pointee.inflater >= 0 {
            let r = inflateRequestBody(avail, s, up)
            if r.failed {
                closeUpstream(s.pointee.upstream, loop)
                s.pointee.upstream = 0
                protocolError(400, token, d, loop)
                return bytes.count
            }
            if r.used > 0 {
                touchStreamIdle(d, loop)
                flushUpstream(up, loop)
            }
            if r.done { requestFinished(token, d, loop) }
            return r.used
        }
        var used = 0
        var done = false
        var payloadAppended = false
        switch s.pointee.requestBody {
        case .chunked where s.pointee.dechunkedLength >= 0:
            // A buffered chunked body (checked whole while buffering): payload only.
            payloadAppended = true
            decoding: while used < avail.count {
                let slice = UnsafeRawBufferPointer(rebasing: avail[used...])
                switch s.pointee.requestDecoder.decode(slice) {
                case let .data(range, consumed):
                    _ = pool.append(UnsafeRawBufferPointer(rebasing: slice[range]), to: &up.pointee.pending)
                    if s.pointee.shadow != 0 { mirrorRequestBody(UnsafeRawBufferPointer(rebasing: slice[range]), s, loop) }
                    s.pointee.bytesReceived += range.count
                    used += consumed
                case let .needMore(consumed):
                    used += consumed
                    break decoding
                case let .done(consumed):
                    used += consumed
                    done = true
                    break decoding
                case .failure:
                    closeUpstream(s.pointee.upstream, loop)
                    s.pointee.upstream = 0
                    protocolError(400, token, d, loop)
                    return bytes.count
                }
            }
        case .length:
            used = min(avail.count, s.pointee.requestRemaining)
            s.pointee.requestRemaining -= used
            s.pointee.bytesReceived += used
            done = s.pointee.requestRemaining == 0
        case .tunnel:
            used = avail.count
            s.pointee.bytesReceived += used
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
            touchStreamIdle(d, loop)
            let chunk = UnsafeRawBufferPointer(rebasing: avail[0..<used])
            if !payloadAppended {
                _ = hcm(s)?.filters.decodeData(chunk, endStream: done)
                _ = pool.append(chunk, to: &up.pointee.pending)
                if s.pointee.shadow != 0 { mirrorRequestBody(chunk, s, loop) }
            }
            flushUpstream(up, loop)
        }
        if done { requestFinished(token, d, loop) }
        return used
    }

    /// The whole request has been read (and handed upstream): the route timeout starts.
    func requestFinished(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard let s = stream(of: d) else { return }
        s.pointee.requestComplete = true
        d.pointee.requestDeadline = 0
        if s.pointee.shadow != 0 { shadowsRequestComplete(s, loop) }
        let route = s.pointee.route
        if route >= 0, let http = hcm(s), case .forward(let plan) = http.routes.allRoutes[Int(route)].action, let timeout = plan.timeoutNanos,
           !s.pointee.responseComplete {
            s.pointee.deadline = loop.now + timeout
            armDownstreamTimer(token, d, loop)
        }
        startTryTimer(token, d, loop)
    }

    // MARK: local replies and errors

    /// Answers the active stream locally (no route, overflow, connect failure, timeout...).
    /// Only before any response byte went out.
    /// `dynamicBody` replaces the reply's static body (an authorization service's denial, whose
    /// own content-type is among `extraHeaders` when `ownContentType`).
    func localReply(_ reply: LocalReply, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop,
                    extraHeaders: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                    dynamicBody: UnsafeRawBufferPointer? = nil, ownContentType: Bool = false) {
        let s = stream(of: d)!
        s.pointee.status = Int32(reply.status)
        s.pointee.flags.formUnion(reply.flags)
        s.pointee.details = reply.details
        s.pointee.detailsArgument = reply.detailsArgument
        // A request not read to its end cannot be followed by another on this connection.
        let closing = !s.pointee.keepAlive || !s.pointee.requestComplete || d.pointee.closeAfterFlush
        // The router's replies to upstream failures carry the route's response mutations too.
        let routerFlags: ResponseFlags = [.noHealthyUpstream, .upstreamConnectionFailure, .upstreamOverflow, .upstreamConnectionTermination,
                                          .upstreamRequestTimeout, .upstreamProtocolError, .upstreamRemoteReset]
        let routeHeaders = reply.routeHeaders || !reply.flags.isDisjoint(with: routerFlags)
        if let dynamicBody {
            writeLocalReply(reply.status, body: dynamicBody, headers: extraHeaders, closing: closing, routeHeaders: routeHeaders,
                            defaultContentType: !ownContentType, s, d)
        } else {
            switch reply.body {
            case .text(let text):
                text.withUTF8Buffer { body in
                    reply.headers.withUnsafeBytes { writeLocalReply(reply.status, body: UnsafeRawBufferPointer(body), headers: $0, closing: closing, routeHeaders: routeHeaders, s, d) }
                }
            case .route(let r):
                let http = hcm(s)
                if let http, case .redirect = http.routes.allRoutes[r].action {
                    writeLocalReply(reply.status, body: UnsafeRawBufferPointer(start: nil, count: 0), headers: extraHeaders, closing: closing,
                                    routeHeaders: routeHeaders, s, d)
                } else if let http, case .direct(_, let body) = http.routes.allRoutes[r].action {
                    body.withUnsafeBytes { writeLocalReply(reply.status, body: $0, headers: UnsafeRawBufferPointer(start: nil, count: 0), closing: closing, routeHeaders: routeHeaders, s, d) }
                }
            }
        }
        s.pointee.responseHeadDone = true
        s.pointee.responseComplete = true
        if closing && !(s.pointee.healthDrain && s.pointee.requestComplete && !d.pointee.closeAfterFlush) { d.pointee.beginClosing() }
        endStream(token, d, loop, reuseUpstream: false)
    }

    /// A route's redirect: the `location` line built from the request head in scratch space on
    /// the stack (no allocation), then the local reply with an empty body.
    func redirectReply(_ reply: LocalReply, _ redirect: CompiledRedirect, route: CompiledRoute, _ head: UnsafeRawBufferPointer,
                       _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let p = requestParser
        let target = requestTarget(head, d)
        let bound = redirect.lineBound(head.count)
        withUnsafeTemporaryAllocation(byteCount: bound, alignment: 1) { scratch in
            var w = ByteWriter(scratch.baseAddress!, capacity: bound)
            redirect.writeLocation(&w, head: head, target: target, host: target.authority ?? p.pointee.hostRange,
                                   matchedPrefix: Self.matchedLength(route))
            localReply(reply, token, d, loop, extraHeaders: UnsafeRawBufferPointer(start: scratch.baseAddress, count: w.overflowed ? 0 : w.count))
        }
    }

    /// The length of the path a prefix or exact match consumed (what prefix_rewrite replaces).
    static func matchedLength(_ route: CompiledRoute) -> Int? {
        switch route.path {
        case .prefix(let p), .exact(let p): return p.count
        case .regex: return nil
        }
    }

    /// A stream for a local answer to a request whose head was not read (malformed, timed out).
    func beginLocalStream(_ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard !d.pointee.hasStream else { return }
        d.pointee.stream = streams.insert(Stream())
        let s = streams.pointer(d.pointee.stream)!
        s.pointee.hcm = d.pointee.hcm
        s.pointee.startNanos = loop.now
        s.pointee.keepAlive = false
        streamBegan(s)
        loads.requestStarted(index)
        inc(httpStats(s).downstreamRqTotal)
    }

    /// A malformed request: 400 (or the parser's status) and close.
    func protocolError(_ status: Int, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop,
                       details: ResponseDetails = .downstreamProtocolError) {
        beginLocalStream(d, loop)
        d.pointee.beginClosing()
        let s = stream(of: d)!
        if s.pointee.responseHeadDone {
            s.pointee.flags.insert(.downstreamProtocolError)
            endStream(token, d, loop, reuseUpstream: false)
            return
        }
        localReply(LocalReply(status: status, body: .text(LocalReplyText.forDownstreamError(status)),
                              flags: .downstreamProtocolError, details: status == 426 ? .lowVersion : details), token, d, loop)
    }

    // MARK: end

    /// Ends the active stream: the access record, the circuit breakers, the upstream connection
    /// (back to its pool when `reuseUpstream` and it is clean, else closed), then the next
    /// pipelined request.
    func endStream(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop, reuseUpstream: Bool) {
        guard let s = stream(of: d) else { return }
        let attemptInFlight = s.pointee.attemptPool >= 0
        endAttempt(s, error: s.pointee.status >= 500 || s.pointee.status == 0)
        if s.pointee.upstream != 0 {
            let up = s.pointee.upstream
            s.pointee.upstream = 0
            if let u = ups.pointer(up) {
                if u.pointee.state == .connecting {
                    u.pointee.owner = 0  // it joins the pool when connected
                } else if reuseUpstream {
                    releaseToPool(up, u, loop)
                } else {
                    if attemptInFlight && s.pointee.flags.contains(.downstreamConnectionTermination),
                       let cs = clusterStats(Int(u.pointee.cluster)) { inc(cs.upstreamCxDestroyLocalWithActiveRq) }
                    closeUpstream(up, loop)
                }
            }
        }
        if s.pointee.hostPool >= 0 { upstreamPools[Int(s.pointee.hostPool)].activeRequests -= 1 }
        if s.pointee.shadow != 0 { detachShadows(s, loop) }
        if s.pointee.authzCheck != 0 { abandonAuthzCheck(s, loop) }
        if s.pointee.cluster >= 0 {
            let resources = plane.clusters[Int(s.pointee.cluster)].resources
            if s.pointee.holdsRequest { ClusterResources.give(resources.requests) }
            if s.pointee.holdsRetry { ClusterResources.give(resources.retries) }
            s.pointee.holdsRetry = false
            if s.pointee.holdsPending {
                ClusterResources.give(resources.pendingRequests)
                if s.pointee.hostPool >= 0 { inc(upstreamPools[Int(s.pointee.hostPool)].counters.rqPendingActive, by: -1) }
            }
        }
        pool.release(&s.pointee.requestHead)
        pool.release(&s.pointee.retryHead)
        pool.release(&s.pointee.delayedHead)
        pool.release(&s.pointee.corsOrigin)
        if s.pointee.cache.fill >= 0 { dropCacheFill(s) }
        compressors.release(s.pointee.compressorStream)
        inflaters.release(s.pointee.inflater)
        if s.pointee.requestValues.isAllocated { pool.release(&s.pointee.requestValues) }
        if s.pointee.upgrade { inc(httpStats(s).downstreamCxUpgradesActive, by: -1) }
        if s.pointee.faultActive, let fs = hcm(s)?.faultStats {
            fs.activeFaults.wrappingSubtract(1, ordering: .relaxed)
        }
        record(s, tlsVersion: d.pointee.tls.versionNumber, loop)
        if s.pointee.traceFields.isAllocated { finishTrace(s, loop) }
        streamEnded(s)
        pool.release(&s.pointee.logFields)
        loads.requestsFinished(index)
        let healthDrain = s.pointee.healthDrain
        let keepAlive = (s.pointee.keepAlive || healthDrain) && s.pointee.requestComplete
        streams.remove(d.pointee.stream)
        d.pointee.stream = 0
        stopRequestTimers(d)
        if !keepAlive { d.pointee.beginClosing() }
        if d.pointee.closeAfterFlush {
            pool.release(&d.pointee.input)
        } else if let idle = hcm(d)?.idleTimeoutNanos {
            d.pointee.idleDeadline = loop.now + idle
            armDownstreamTimer(token, d, loop)
        }
        if healthDrain && !d.pointee.closeAfterFlush {
            // Envoy's drain of this connection: started by its first drain-close response, it
            // closes the connection when it ends (an idle one at once then).
            if d.pointee.drainDeadline == 0 { d.pointee.drainDeadline = loop.now + (hcm(d)?.drainCloseNanos ?? 0) }
            d.pointee.idleDeadline = d.pointee.idleDeadline == 0 ? d.pointee.drainDeadline : min(d.pointee.idleDeadline, d.pointee.drainDeadline)
            armDownstreamTimer(token, d, loop)
        }
        if !d.pointee.processing && d.pointee.input.count > 0 {
            consumeBufferedInput(token, d, loop)
        }
    }

    func record(_ s: UnsafeMutablePointer<Stream>, tlsVersion: UInt16, _ loop: Loop) {
        // Envoy charges no response-code, completion or latency stats for a request the
        // health_check filter answered (it logs it).
        if s.pointee.details != .healthCheckOK && s.pointee.details != .healthCheckFailed {
            countResponseStats(s, loop)
        }
        guard let accessRing else { return }
        recordAccess(s, accessRing, tlsVersion: tlsVersion, loop)
    }

    private func countResponseStats(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        let counters = httpStats(s)
        switch s.pointee.status {
        case 100..<200: inc(counters.downstreamRq1xx)
        case 200..<300: inc(counters.downstreamRq2xx)
        case 300..<400: inc(counters.downstreamRq3xx)
        case 400..<500: inc(counters.downstreamRq4xx)
        case 500..<600: inc(counters.downstreamRq5xx)
        default: break
        }
        recordLatency(s, loop)
        countCompleted(s)
    }

    private func recordAccess(_ s: UnsafeMutablePointer<Stream>, _ accessRing: AccessRecordRing, tlsVersion: UInt16, _ loop: Loop) {
        var r = AccessRecord()
        r.worker = Int32(index)
        r.listener = Int32(listenerPlan.index)
        r.chain = Int(s.pointee.hcm) < listenerPlan.httpChains.count ? listenerPlan.httpChains[Int(s.pointee.hcm)] : 0
        r.startNanos = s.pointee.startNanos
        r.durationNanos = loop.now - s.pointee.startNanos
        r.upstreamServiceNanos = s.pointee.upstreamServiceNanos
        r.responseCode = s.pointee.status
        r.flags = s.pointee.flags
        r.bytesReceived = s.pointee.bytesReceived
        r.bytesSent = s.pointee.bytesSent
        r.cluster = s.pointee.cluster
        r.host = s.pointee.hostPool >= 0 ? upstreamPools[Int(s.pointee.hostPool)].host : -1
        if s.pointee.hostPool >= 0, let h = upstreamPools[Int(s.pointee.hostPool)].dynamicHost { r.originalDstHost = h.compact }
        r.upstreamLocal = s.pointee.upstreamLocal
        r.route = s.pointee.route
        r.details = s.pointee.details
        r.detailsArgument = s.pointee.detailsArgument
        r.http10 = s.pointee.http10
        r.tlsVersion = tlsVersion
        r.generation = s.pointee.generation
        accessRing.push(r, extra: s.pointee.logFields.bytes)
    }

    // MARK: route timeout

    /// The route timeout expired: 504 UT before the response started, else cut it short.
    func streamTimedOut(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        inc(stats.upstreamRqTimeout)
        let s = stream(of: d)!
        if let cs = clusterStats(Int(s.pointee.cluster)) { inc(cs.upstreamRqTimeout) }
        // Envoy charges the host only while the attempt awaits its head (on a connection).
        if !s.pointee.responseHeadDone { reportOutlier(Int(s.pointee.attemptPool), .timeout, loop) }
        endAttempt(s, error: true, timeout: true)
        abandonUpstream(s, loop)
        if !s.pointee.responseHeadDone {
            localReply(LocalReply(status: 504, body: .text(LocalReplyText.timeout), flags: .upstreamRequestTimeout, details: .responseTimeout), token, d, loop)
        } else {
            s.pointee.flags.insert(.upstreamRequestTimeout)
            d.pointee.beginClosing()
            endStream(token, d, loop, reuseUpstream: false)
        }
    }
}
