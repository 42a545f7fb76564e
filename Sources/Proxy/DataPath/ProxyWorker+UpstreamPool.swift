import EventLoop
import Glibc
import HTTP1

/// Upstream connections per host (`UpstreamPool`, one per cluster host and worker): pick a host,
/// give a stream an idle connection, a new one or a place in the queue, connect (with its
/// timeout and retries), take connections back for keep-alive reuse, close them.
extension ProxyWorker {
    // MARK: load balancing

    /// This worker's host-pool index for the next request to cluster `ci`. Endpoint weights
    /// count for ROUND_ROBIN and RANDOM; RING_HASH uses `hash` (the route's hash policy), and a
    /// random host when there is none, as Envoy.
    @inline(__always)
    func pickHost(_ ci: Int, hash: UInt64? = nil) -> Int {
        clusterPools[ci][pickHostIndex(ci, hash: hash)]
    }

    /// The index (in the cluster's host list) of the next host for cluster `ci`. `attempt`:
    /// the host-selection retry (retry_host_predicate) this pick is, 0 for the first: RING_HASH
    /// then takes the point `attempt` places after the hash's, as Envoy's ring does.
    func pickHostIndex(_ ci: Int, hash: UInt64? = nil, attempt: Int = 0) -> Int {
        if plane.clusters[ci].prioritized { return pickPrioritizedHost(ci) }
        let n = plane.clusters[ci].hosts.count
        // Active health checks: one relaxed load per pick while every host is healthy.
        if let health = plane.clusters[ci].health {
            let healthy = health.healthyHosts.load(ordering: .relaxed)
            if healthy < n {
                // Envoy: no panic while the overprovisioning factor (1.4 by default) x the healthy
                // share reaches 100%.
                if healthy * plane.clusters[ci].overprovisioningFactor < 100 * n && Double(healthy * 100 / n) < plane.clusters[ci].healthyPanicThresholdPercent || healthy == 0 {
                    // Envoy's panic: too few healthy hosts, so every host takes traffic.
                    if let cs = clusterStats(ci) { inc(cs.lbHealthyPanic) }
                } else {
                    return pickHealthyHost(ci, health, healthy: healthy, hash: hash, attempt: attempt)
                }
            }
        }
        if n == 1 { return 0 }
        let schedule = plane.clusters[ci].schedule
        switch plane.clusters[ci].lbPolicy {
        case .ringHash where !schedule.ringHashes.isEmpty:
            if let hash { return Int(schedule.ringHosts[(schedule.ringIndex(hash) + attempt) % schedule.ringHosts.count]) }
            return Int(rng.next() % UInt64(n))
        case .roundRobin where !schedule.roundRobin.isEmpty:
            let i = roundRobin[ci] % schedule.roundRobin.count
            roundRobin[ci] = i + 1
            return Int(schedule.roundRobin[i])
        case .roundRobin, .ringHash, .clusterProvided:
            let i = roundRobin[ci] % n
            roundRobin[ci] = i + 1
            return i
        case .random:
            if !schedule.cumulative.isEmpty { return schedule.weightedRandom(rng.next()) }
            return Int(rng.next() % UInt64(n))
        case .leastRequest where weightedLeastRequest[ci] != nil:
            return pickWeightedLeastRequest(ci, health: nil)
        case .leastRequest:
            // Power of `choices` choices among this worker's active requests per host.
            let pools = clusterPools[ci]
            var best = Int(rng.next() % UInt64(n))
            for _ in 1..<plane.clusters[ci].leastRequestChoices {
                let other = Int(rng.next() % UInt64(n))
                if upstreamPools[pools[other]].activeRequests < upstreamPools[pools[best]].activeRequests { best = other }
            }
            return best
        }
    }

    /// The pick among healthy hosts only (some hosts failed their health checks, the cluster is
    /// not in panic): round robin skips failed hosts in its sequence, RING_HASH walks the ring
    /// to the next healthy host, RANDOM and LEAST_REQUEST draw among the healthy ones.
    private func pickHealthyHost(_ ci: Int, _ health: ClusterHealth, healthy: Int, hash: UInt64?, attempt: Int) -> Int {
        let cluster = plane.clusters[ci]
        let n = cluster.hosts.count
        let schedule = cluster.schedule
        switch cluster.lbPolicy {
        case .roundRobin, .clusterProvided:
            let period = schedule.roundRobin.isEmpty ? n : schedule.roundRobin.count
            for _ in 0..<period {
                let i = roundRobin[ci] % period
                roundRobin[ci] = i + 1
                let h = schedule.roundRobin.isEmpty ? i : Int(schedule.roundRobin[i])
                if health.isHealthy(h) { return h }
            }
        case .ringHash where hash != nil && !schedule.ringHashes.isEmpty:
            let points = schedule.ringHosts.count
            let start = (schedule.ringIndex(hash!) + attempt) % points
            for k in 0..<points {
                let h = Int(schedule.ringHosts[(start + k) % points])
                if health.isHealthy(h) { return h }
            }
        case .leastRequest where weightedLeastRequest[ci] != nil:
            return pickWeightedLeastRequest(ci, health: health)
        case .leastRequest:
            let pools = clusterPools[ci]
            var best = nthHealthyHost(health, n, Int(rng.next() % UInt64(healthy)))
            for _ in 1..<cluster.leastRequestChoices {
                let other = nthHealthyHost(health, n, Int(rng.next() % UInt64(healthy)))
                if upstreamPools[pools[other]].activeRequests < upstreamPools[pools[best]].activeRequests { best = other }
            }
            return best
        case .random where !schedule.cumulative.isEmpty:
            // Weighted: draw within the healthy hosts' total weight.
            var total = 0
            for h in 0..<n where health.isHealthy(h) { total += cluster.hosts[h].weight }
            var r = Int(rng.next() % UInt64(max(1, total)))
            for h in 0..<n where health.isHealthy(h) {
                if r < cluster.hosts[h].weight { return h }
                r -= cluster.hosts[h].weight
            }
        case .random, .ringHash:
            break
        }
        return nthHealthyHost(health, n, Int(rng.next() % UInt64(healthy)))
    }

    /// LEAST_REQUEST with unequal weights (healthy hosts only when `health` is given).
    private func pickWeightedLeastRequest(_ ci: Int, health: ClusterHealth?) -> Int {
        let cluster = plane.clusters[ci]
        var best = -1
        for h in 0..<cluster.hosts.count where health?.isHealthy(h) ?? true {
            if best < 0 || weightedLeastRequest[ci]!.earlier(h, best) { best = h }
        }
        guard best >= 0 else { return 0 }
        let active = upstreamPools[clusterPools[ci][best]].activeRequests
        weightedLeastRequest[ci]!.reschedule(best, weight: Double(max(1, cluster.hosts[best].weight)) / Double(active + 1))
        return best
    }

    /// The `k`-th healthy host (in host order); the first host when there are fewer.
    private func nthHealthyHost(_ health: ClusterHealth, _ n: Int, _ k: Int) -> Int {
        var left = k
        for h in 0..<n where health.isHealthy(h) {
            if left == 0 { return h }
            left -= 1
        }
        return 0
    }

    // MARK: pools

    /// Gives the stream a connection: an idle one, a new one, or a place in the host's queue.
    func assignConnection(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        let hp = Int(s.pointee.hostPool)
        while let up = upstreamPools[hp].popIdle() {
            guard let u = ups.pointer(up) else { continue }
            u.pointee.idleIndex = -1
            u.pointee.idleDeadline = 0
            attach(up, u, token, d, loop)
            return
        }
        let cluster = plane.clusters[Int(upstreamPools[hp].cluster)]
        guard ClusterResources.tryTake(cluster.resources.pendingRequests, limit: cluster.thresholds.maxPendingRequests) else {
            inc(stats.upstreamRqPendingOverflow)
            if let cs = clusterStats(cluster.index) { inc(cs.upstreamRqPendingOverflow) }
            localReply(LocalReply(status: 503, body: .text(LocalReplyText.overflow), flags: .upstreamOverflow, details: .overflow), token, d, loop)
            return
        }
        s.pointee.holdsPending = true
        inc(upstreamPools[hp].counters.rqPendingActive)
        if takeConnectionSlot(hp) {
            openConnection(hp, owner: token, d, loop)
        } else {
            if let cs = clusterStats(Int(upstreamPools[hp].cluster)) { inc(cs.upstreamCxOverflow) }
            s.pointee.queued = true
            upstreamPools[hp].enqueue(token)
        }
    }

    /// Envoy's rule: within max_connections, or the first connection of an empty pool.
    func takeConnectionSlot(_ hp: Int) -> Bool {
        let cluster = plane.clusters[Int(upstreamPools[hp].cluster)]
        if ClusterResources.tryTake(cluster.resources.connections, limit: cluster.thresholds.maxConnections) { return true }
        if upstreamPools[hp].connections == 0 {
            cluster.resources.connections.wrappingAdd(1, ordering: .relaxed)
            return true
        }
        return false
    }

    /// Starts a connection to the host for the stream of `owner` (the connection slot is taken).
    func openConnection(_ hp: Int, owner: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let up = connectUpstream(hp, owner: owner, loop)
        guard up != 0 else {
            localReply(LocalReply(status: 503, body: .text(LocalReplyText.connectFailure), flags: .upstreamConnectionFailure, details: .connectFailure), owner, d, loop)
            return
        }
        stream(of: d)!.pointee.upstream = up
        if let p = ups.pointer(up) { armUpstreamTimer(up, p, loop) }
    }

    /// Opens a connection to host pool `hp` for `owner` (a downstream or a shadow; the
    /// connection slot is taken). 0 when no socket could be made (counted as a connect failure,
    /// the slot given back).
    func connectUpstream(_ hp: Int, owner: UInt64, _ loop: Loop) -> UInt64 {
        let ci = Int(upstreamPools[hp].cluster)
        let cluster = plane.clusters[ci]
        let address = hostAddress(hp)
        guard let fd = openUpstreamSocket(cluster, to: address) else { return 0 }
        var u = Upstream()
        u.fd = fd
        u.hostPool = Int32(hp)
        u.cluster = Int32(ci)
        u.state = .connecting
        u.owner = owner
        u.hostEpoch = upstreamPools[hp].epoch
        u.connectDeadline = loop.now + cluster.connectTimeoutNanos
        if let limit = cluster.maxConnectionDurationNanos { u.durationDeadline = loop.now + limit }
        let up = ups.insert(u)
        upstreamPools[hp].connections += 1
        let hc = upstreamPools[hp].counters
        inc(hc.cxTotal)
        inc(hc.cxActive)
        inc(stats.upstreamCxTotal)
        inc(stats.upstreamCxActive)
        if let cs = clusterStats(cluster.index) { inc(cs.upstreamCxTotal); inc(cs.upstreamCxActive) }
        loop.backend.connect(fd: fd, token: up, address: address)
        return up
    }

    /// Binds a ready connection to the stream and sends the request head (and body bytes waiting).
    func attach(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        u.pointee.state = .busy
        u.pointee.owner = token
        let s = stream(of: d)!
        s.pointee.upstream = up
        s.pointee.upstreamLocal = u.pointee.localAddress
        s.pointee.queued = false
        if s.pointee.holdsPending {
            s.pointee.holdsPending = false
            ClusterResources.give(plane.clusters[Int(u.pointee.cluster)].resources.pendingRequests)
            inc(upstreamPools[Int(s.pointee.hostPool)].counters.rqPendingActive, by: -1)
        }
        countUpstreamRequest(Int(u.pointee.cluster))
        beginAttempt(s, pool: Int(u.pointee.hostPool))
        reportOutlier(Int(u.pointee.hostPool), .connectSuccess, loop)
        if u.pointee.pending.count == 0 {
            swap(&u.pointee.pending, &s.pointee.requestHead)  // no copy
        } else {
            _ = pool.append(s.pointee.requestHead.bytes, to: &u.pointee.pending)
            pool.release(&s.pointee.requestHead)
        }
        flushUpstream(u, loop)
        startTryTimer(token, d, loop)
        if !d.pointee.processing && d.pointee.input.count > 0 {
            consumeBufferedInput(token, d, loop)  // body bytes that waited for this connection
            downstreamSettled(token, d, loop)
        }
    }

    /// A connection finished its exchange cleanly: a queued stream gets it, else it idles.
    func releaseToPool(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        let cluster = plane.clusters[Int(u.pointee.cluster)]
        u.pointee.requests += 1
        guard u.pointee.requests < cluster.maxRequestsPerConnection, u.pointee.input.count == 0, !u.pointee.durationReached,
              u.pointee.hostEpoch == upstreamPools[Int(u.pointee.hostPool)].epoch else {
            closeUpstream(up, loop)
            return
        }
        u.pointee.owner = 0
        u.pointee.state = .idle
        let hp = Int(u.pointee.hostPool)
        if let owner = nextQueued(hp) {
            if let d = downs.pointer(owner) { attach(up, u, owner, d, loop) } else { attachShadow(up, u, owner, loop) }
            connectForQueued(hp, loop)
            return
        }
        u.pointee.idleIndex = upstreamPools[hp].pushIdle(up)
        if let idle = cluster.idleTimeoutNanos {
            u.pointee.idleDeadline = loop.now + idle
            armUpstreamTimer(up, u, loop)
        }
    }

    /// The oldest owner still waiting for a connection to host pool `hp`: a downstream whose
    /// stream is queued there, or a queued shadow.
    func nextQueued(_ hp: Int) -> UInt64? {
        while let token = upstreamPools[hp].dequeue() {
            if let d = downs.pointer(token), let s = stream(of: d), s.pointee.queued, Int(s.pointee.hostPool) == hp {
                return token
            }
            if let sh = shadows.pointer(token), sh.pointee.queued, Int(sh.pointee.hostPool) == hp {
                return token
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
            if let moved = upstreamPools[hp].removeIdle(at: i) { ups.pointer(moved)?.pointee.idleIndex = i }
        }
        if u.pointee.tls.isActive { closeNotifyNow(&u.pointee.tls, fd: u.pointee.fd, sendInFlight: u.pointee.out.inFlight) }
        loop.backend.close(fd: u.pointee.fd)
        pool.release(&u.pointee.input)
        u.pointee.out.release(to: pool)
        u.pointee.tls.free()
        ClusterResources.give(plane.clusters[Int(u.pointee.cluster)].resources.connections)
        upstreamPools[hp].connections -= 1
        inc(upstreamPools[hp].counters.cxActive, by: -1)
        if upstreamPools[hp].retired && upstreamPools[hp].connections == 0 { freeEmptyRetiredPools() }
        inc(stats.upstreamCxActive, by: -1)
        if let cs = clusterStats(Int(u.pointee.cluster)) { inc(cs.upstreamCxActive, by: -1) }
        ups.remove(up)
        // A stream (or shadow) queued behind max_connections can have this slot.
        connectForQueued(hp, loop)
    }

    /// Envoy's pool tries a new connection whenever streams still wait: the oldest waiting
    /// stream (or shadow) gets one if max_connections allows it now, else it stays first in line
    /// and the refusal counts as `upstream_cx_overflow`, as Envoy counts it.
    func connectForQueued(_ hp: Int, _ loop: Loop) {
        guard let token = nextQueued(hp) else { return }
        if takeConnectionSlot(hp) {
            if let d = downs.pointer(token) {
                stream(of: d)!.pointee.queued = false
                openConnection(hp, owner: token, d, loop)
                downstreamSettled(token, d, loop)
            } else {
                shadows.pointer(token)!.pointee.queued = false
                connectShadow(hp, token, loop)
            }
        } else {
            if let cs = clusterStats(Int(upstreamPools[hp].cluster)) { inc(cs.upstreamCxOverflow) }
            upstreamPools[hp].requeueFirst(token)  // still full (another worker took it)
        }
    }

    // MARK: connect

    func upstreamConnected(_ c: Completion, _ loop: Loop) {
        let up = c.token
        guard let u = ups.pointer(up), u.pointee.state == .connecting else { return }
        guard c.result >= 0 else {
            u.pointee.connectDeadline = 0
            connectFailed(up, u, loop, timedOut: false, error: -c.result)
            return
        }
        loop.backend.armReceive(fd: u.pointee.fd, token: up)
        if let local = try? Sockets.localAddress(u.pointee.fd) { u.pointee.localAddress = CompactAddress(local) }
        let cluster = plane.clusters[Int(u.pointee.cluster)]
        if let context = cluster.tls {
            // Connected once the handshake completes (`upstreamReady`), under the same connect timeout.
            startUpstreamTLS(up, u, context, sni: cluster.sni, loop)
            return
        }
        upstreamReady(up, u, loop)
    }

    /// The connection can carry requests (connected, and TLS handshaken when the cluster has it).
    func upstreamReady(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        u.pointee.connectDeadline = 0
        let owner = u.pointee.owner
        if owner != 0, let d = downs.pointer(owner), let s = stream(of: d), s.pointee.upstream == up {
            let hp = Int(u.pointee.hostPool)
            attach(up, u, owner, d, loop)
            downstreamSettled(owner, d, loop)
            connectForQueued(hp, loop)
        } else if let sh = shadows.pointer(owner), sh.pointee.upstream == up {
            let hp = Int(u.pointee.hostPool)
            attachShadow(up, u, owner, loop)
            connectForQueued(hp, loop)
        } else {
            // Its stream is gone (timed out, client left): the connection serves the pool.
            u.pointee.state = .busy
            releaseToPoolAfterConnect(up, u, loop)
        }
    }

    func releaseToPoolAfterConnect(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        u.pointee.requests -= 1  // releaseToPool counts an exchange; none happened
        releaseToPool(up, u, loop)
    }

    /// A connect failed or timed out: 503 UF for its stream (after the retries the route allows).
    func connectFailed(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop, timedOut: Bool, error: Int32 = 0,
                       tlsFailure: TLSFailure? = nil) {
        inc(stats.upstreamCxConnectFail)
        if timedOut { inc(stats.upstreamCxConnectTimeout) }
        if let cs = clusterStats(Int(u.pointee.cluster)) {
            inc(cs.upstreamCxConnectFail)
            if timedOut { inc(cs.upstreamCxConnectTimeout) }
        }
        let owner = u.pointee.owner
        let hp = Int(u.pointee.hostPool)
        let hc = upstreamPools[hp].counters
        inc(hc.cxConnectFail)
        closeUpstream(up, loop)
        if let sh = shadows.pointer(owner), sh.pointee.upstream == up {
            sh.pointee.upstream = 0
            inc(hc.rqError)  // as for a stream: the copy it could not send
            reportOutlier(hp, .connectFailed, loop)
            shadowFailed(owner, status: 503, loop)  // Envoy's UF 503, counted on the mirror cluster
            return
        }
        guard owner != 0, let d = downs.pointer(owner), let s = stream(of: d), s.pointee.upstream == up else { return }
        inc(hc.rqError)  // Envoy charges the host an error for the request it could not send
        reportOutlier(hp, .connectFailed, loop)
        stream(of: d)!.pointee.upstream = 0
        if retry(owner, d, loop, onConnectFailure: true) { return }
        localReply(.connectFailure(timedOut: timedOut, error: error, tls: tlsFailure, retried: s.pointee.retries > 0), owner, d, loop)
        downstreamSettled(owner, d, loop)
    }

    /// Tries the request again on another connection when the route's retry policy allows it and
    /// nothing of the body has been sent (only bodiless requests keep their head for a retry).
    /// A per-try timeout (`perTryTimeout`) is retried under connect-failure, reset, 5xx or
    /// gateway-error, as Envoy 1.40 does (checked by the differential suite).
    func retry(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop, onConnectFailure: Bool, status: Int = 0,
               perTryTimeout: Bool = false) -> Bool {
        let sp = stream(of: d)!
        releaseRetry(sp)  // Envoy's resetRetry: each decision first gives back the last retry's hold
        let s = sp.pointee  // a copy: the checks below read it
        guard s.route >= 0, let http = httpPlan(s.generation, s.hcm), case .forward(let plan) = http.routes.allRoutes[Int(s.route)].action, let policy = plan.retry,
              status > 0 ? policy.retries(status: status)
                  : perTryTimeout ? policy.onConnectFailure || policy.onReset : (onConnectFailure ? policy.onConnectFailure : policy.onReset),
              s.requestHead.count > 0 || s.retryHead.count > 0 else { return false }
        guard Int(s.retries) < policy.numRetries else {
            sp.pointee.flags.insert(.upstreamRetryLimitExceeded)
            if let cs = clusterStats(Int(s.cluster)) { inc(cs.upstreamRqRetryLimitExceeded) }
            return false
        }
        let cluster = plane.clusters[Int(s.cluster)]
        guard ClusterResources.tryTake(cluster.resources.retries, limit: cluster.retryLimit(cluster.thresholds)) else {
            sp.pointee.flags.insert(.upstreamOverflow)
            if let cs = clusterStats(cluster.index) { inc(cs.upstreamRqRetryOverflow) }
            return false
        }
        sp.pointee.holdsRetry = true
        inc(stats.upstreamRqRetry)
        if policy.avoidPreviousHosts, s.hostPool >= 0, upstreamPools[Int(s.hostPool)].host >= 0 {
            sp.pointee.triedHosts |= 1 << UInt64(upstreamPools[Int(s.hostPool)].host % 64)
        }
        sp.pointee.retries += 1
        sp.pointee.tryDeadline = 0
        if sp.pointee.requestHead.count == 0 {
            _ = pool.append(sp.pointee.retryHead.bytes, to: &sp.pointee.requestHead)
        }
        if sp.pointee.holdsPending {
            sp.pointee.holdsPending = false
            inc(upstreamPools[Int(sp.pointee.hostPool)].counters.rqPendingActive, by: -1)
            ClusterResources.give(cluster.resources.pendingRequests)
        }
        // Envoy's jittered exponential backoff; the stream keeps its host pool (and its count of
        // active requests) until the wait is over and `resumeRetry` picks the next host.
        if let cs = clusterStats(cluster.index) {
            inc(cs.upstreamRqRetry)
            inc(cs.upstreamRqRetryBackoffExponential)
        }
        sp.pointee.retryAt = loop.now + max(1, policy.backOffNanos(retry: Int(sp.pointee.retries), random: rng.next()))
        armDownstreamTimer(token, d, loop)
        downstreamSettled(token, d, loop)
        return true
    }

    /// A retry's backoff passed: pick a host (the same one for ORIGINAL_DST) and send again.
    func resumeRetry(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let sp = stream(of: d)!
        sp.pointee.retryAt = 0
        let ci = Int(sp.pointee.cluster)
        let old = Int(sp.pointee.hostPool)
        let hp = plane.clusters[ci].isOriginalDst || plane.clusters[ci].hosts.isEmpty ? old : pickRetryHost(ci, sp)
        if old >= 0 { upstreamPools[old].activeRequests -= 1 }
        sp.pointee.hostPool = Int32(hp)
        upstreamPools[hp].activeRequests += 1
        refreshExpectedTimeout(sp, loop)
        assignConnection(token, d, loop)
    }

    /// Gives back the stream's hold on its cluster's `retries` circuit breaker.
    @inline(__always)
    func releaseRetry(_ s: UnsafeMutablePointer<Stream>) {
        guard s.pointee.holdsRetry else { return }
        s.pointee.holdsRetry = false
        if s.pointee.cluster >= 0 { ClusterResources.give(plane.clusters[Int(s.pointee.cluster)].resources.retries) }
    }

    /// A retry's host pool. With `retry_host_predicate` previous_hosts a pick of a host already
    /// tried is made again, at most `host_selection_retry_max_attempts` times; then the last
    /// pick stands (Envoy's load balancer loop). Hosts are remembered modulo 64 (one word per
    /// stream): in larger clusters two hosts can share a bit.
    private func pickRetryHost(_ ci: Int, _ s: UnsafeMutablePointer<Stream>) -> Int {
        guard s.pointee.triedHosts != 0, s.pointee.route >= 0, let http = hcm(s),
              case .forward(let plan) = http.routes.allRoutes[Int(s.pointee.route)].action,
              let policy = plan.retry, policy.avoidPreviousHosts else { return pickHost(ci, hash: s.pointee.ringHash) }
        // Every host tried: no pick can pass; the picks stop after 2 x hosts (Envoy makes all
        // host_selection_retry_max_attempts of them, up to 2^32).
        let n = plane.clusters[ci].hosts.count
        let allTried = n <= 64 ? s.pointee.triedHosts.nonzeroBitCount >= n : s.pointee.triedHosts == .max
        let hash = s.pointee.ringHash
        var attempt = 0
        var h = pickHostIndex(ci, hash: hash)
        let attempts = allTried ? min(policy.hostSelectionRetryMaxAttempts, 2 * n) : policy.hostSelectionRetryMaxAttempts
        while attempt < attempts && s.pointee.triedHosts & (1 << UInt64(h % 64)) != 0 {
            attempt += 1
            h = pickHostIndex(ci, hash: hash, attempt: attempt)
        }
        return clusterPools[ci][h]
    }

    /// A retry tells the upstream the time left, as Envoy does: `x-envoy-expected-rq-timeout-ms`
    /// becomes the route timeout minus the time since the request arrived (the per-try timeout
    /// when that is shorter). Retries only: the head is copied once with the new value.
    func refreshExpectedTimeout(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        guard s.pointee.route >= 0, let http = hcm(s), !http.suppressEnvoyHeaders,
              case .forward(let plan) = http.routes.allRoutes[Int(s.pointee.route)].action,
              let global = plan.timeoutNanos, global > 0, s.pointee.requestHead.count > 0 else { return }
        let head = s.pointee.requestHead.bytes
        // The field lines follow the request line (a retried head carries no body bytes).
        var fieldsStart = 0
        while fieldsStart + 1 < head.count && !(head[fieldsStart] == ASCII.cr && head[fieldsStart + 1] == ASCII.lf) { fieldsStart += 1 }
        fieldsStart += 2
        guard fieldsStart < head.count,
              let found = HeadFieldEditor.value(expectedTimeoutName, in: UnsafeRawBufferPointer(rebasing: head[fieldsStart...])) else { return }
        let value = (fieldsStart + found.lowerBound)..<(fieldsStart + found.upperBound)
        var remaining = max(0, global - (loop.now - s.pointee.startNanos))
        if let perTry = plan.retry?.perTryTimeoutNanos, perTry > 0, perTry < remaining { remaining = perTry }
        var rewritten = ByteBuffer.empty
        let appended = withUnsafeTemporaryAllocation(byteCount: 20, alignment: 1) { digits -> Bool in
            var w = ByteWriter(digits.baseAddress!, capacity: digits.count)
            w.putDecimal(Int(remaining / 1_000_000))
            return pool.append(UnsafeRawBufferPointer(rebasing: head[..<value.lowerBound]), to: &rewritten)
                && pool.append(UnsafeRawBufferPointer(start: digits.baseAddress, count: w.count), to: &rewritten)
                && pool.append(UnsafeRawBufferPointer(rebasing: head[value.upperBound...]), to: &rewritten)
        }
        guard appended else {
            pool.release(&rewritten)
            return
        }
        pool.release(&s.pointee.requestHead)
        s.pointee.requestHead = rewritten
    }

    /// The attempt has its connection and the whole request: its `per_try_timeout` starts (as
    /// Envoy's, at pool-ready once the request is complete, or at the request's end).
    func startTryTimer(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard let s = stream(of: d), s.pointee.perTryNanos > 0, s.pointee.requestComplete, !s.pointee.responseHeadDone,
              s.pointee.tryDeadline == 0, let u = ups.pointer(s.pointee.upstream), u.pointee.state == .busy else { return }
        s.pointee.tryDeadline = loop.now + s.pointee.perTryNanos
        armDownstreamTimer(token, d, loop)
    }

    /// The attempt's `per_try_timeout` passed before a response head: the attempt is reset and
    /// retried when the policy allows it, else 504 UT upstream_per_try_timeout.
    func perTryTimedOut(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        guard !s.pointee.responseHeadDone else { return }
        if let cs = clusterStats(Int(s.pointee.cluster)) { inc(cs.upstreamRqPerTryTimeout) }
        reportOutlier(Int(s.pointee.attemptPool), .timeout, loop)
        endAttempt(s, error: true, timeout: true)
        abandonUpstream(s, loop)
        if retry(token, d, loop, onConnectFailure: false, perTryTimeout: true) { return }
        localReply(LocalReply(status: 504, body: .text(LocalReplyText.timeout), flags: .upstreamRequestTimeout, details: .perTryTimeout), token, d, loop)
    }

    // MARK: deadlines

    func armUpstreamTimer(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        u.pointee.timer.arm(DeadlineTimer.earliest(u.pointee.connectDeadline, u.pointee.idleDeadline, u.pointee.durationDeadline, u.pointee.shadowDeadline), id: up, in: &loop.timers)
    }

    func upstreamTimer(_ up: UInt64, _ loop: Loop) {
        guard let u = ups.pointer(up) else { return }
        let now = loop.now
        u.pointee.timer.fired(now: now)
        if u.pointee.state == .connecting && u.pointee.connectDeadline != 0 && u.pointee.connectDeadline <= now {
            u.pointee.connectDeadline = 0
            let owner = u.pointee.owner
            connectFailed(up, u, loop, timedOut: true)
            if owner != 0, let d = downs.pointer(owner) { downstreamSettled(owner, d, loop) }
            return
        }
        if u.pointee.durationDeadline != 0 && u.pointee.durationDeadline <= now {
            // max_connection_duration: closed now when idle, else after its exchange.
            u.pointee.durationDeadline = 0
            u.pointee.durationReached = true
            if let cs = clusterStats(Int(u.pointee.cluster)) { inc(cs.upstreamCxMaxDurationReached) }
            if u.pointee.state == .idle {
                closeUpstream(up, loop)
                return
            }
        }
        if u.pointee.state == .idle && u.pointee.idleDeadline != 0 && u.pointee.idleDeadline <= now {
            closeUpstream(up, loop)
            return
        }
        if u.pointee.shadowDeadline != 0 && u.pointee.shadowDeadline <= now {
            u.pointee.shadowDeadline = 0
            shadowTimedOut(up, u, loop)
            return
        }
        armUpstreamTimer(up, u, loop)
    }

    // MARK: per-host request counters

    /// The request went out on a connection to host pool `pool` (once per attempt).
    @inline(__always)
    func beginAttempt(_ s: UnsafeMutablePointer<Stream>, pool: Int) {
        guard s.pointee.attemptPool < 0 else { return }
        s.pointee.attemptPool = Int32(pool)
        upstreamPools[pool].counters.requestSent()
    }

    /// The attempt in flight ended: a response (`error`: 5xx), a reset, or a timeout.
    @inline(__always)
    func endAttempt(_ s: UnsafeMutablePointer<Stream>, error: Bool, timeout: Bool = false) {
        let pool = Int(s.pointee.attemptPool)
        guard pool >= 0 else { return }
        s.pointee.attemptPool = -1
        upstreamPools[pool].counters.requestEnded(error: error, timeout: timeout)
    }
}

/// The field a retry rewrites (`refreshExpectedTimeout`).
private let expectedTimeoutName: [UInt8] = Array("x-envoy-expected-rq-timeout-ms".utf8)
