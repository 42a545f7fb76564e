import EventLoop
import HTTP1

/// The ext_authz filter's check request and its outcome (docs/ext-authz.md). A check is a
/// `Shadow` with `check` set: it goes over the authorization cluster's host pools, circuit
/// breakers and connections like a mirrored request (and counts on that cluster as Envoy's async
/// client does), and keeps its response. The stream waits with its head in `delayedHead` (body
/// bytes wait in the connection's input); the answer resumes the chain after the filter or
/// answers the client. A client that leaves first abandons the check (its connection closed).
extension ProxyWorker {
    /// The most of a check's response kept (head and body); a larger answer is an error.
    static var authzResponseLimit: Int { 64 * 1024 }

    /// Starts the check for the active stream of `d` (its head is held already).
    func startAuthzCheck(filter: Int, _ head: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        guard let http = hcm(s), case .extAuthz(let plan) = http.filters.filters[filter] else { return }
        s.pointee.authzFilter = Int16(filter)
        var fresh = Shadow()
        fresh.cluster = Int32(plan.cluster)
        fresh.isHEAD = s.pointee.isHEAD
        fresh.attached = false
        fresh.requestComplete = true
        fresh.check = token
        fresh.checkStream = d.pointee.stream
        fresh.startNanos = loop.now
        let check = shadows.insert(fresh)
        s.pointee.authzCheck = check
        // The timeout covers the whole check (queue, connect, answer), as Envoy's async client's:
        // it runs on the stream's deadline, which no route timeout uses before the forward.
        s.pointee.deadline = loop.now + plan.timeoutNanos
        armDownstreamTimer(token, d, loop)
        let cluster = plane.clusters[plan.cluster]
        guard !cluster.isOriginalDst, !cluster.hosts.isEmpty, !cluster.noHealthyHostWithoutPanic else {
            shadowFailed(check, status: 503, loop)  // no healthy upstream: the check fails
            return
        }
        guard ClusterResources.tryTake(cluster.resources.requests, limit: cluster.thresholds.maxRequests) else {
            countShadowOverflow(plan.cluster)
            shadowFailed(check, status: 503, loop)
            return
        }
        let sh = shadows.pointer(check)!
        sh.pointee.holdsRequest = true
        let hp = pickHost(plan.cluster)
        sh.pointee.hostPool = Int32(hp)
        upstreamPools[hp].activeRequests += 1
        let capacity = ExtAuthzCheckHead.bound(head, plan)
        guard let base = pool.reserve(capacity, in: &sh.pointee.requestHead) else {
            shadowFailed(check, status: 503, loop)
            return
        }
        let target = requestTarget(head, d)
        var w = ByteWriter(base, capacity: capacity)
        ExtAuthzCheckHead.write(head, requestParser, target: target, host: target.authority ?? requestParser.pointee.hostRange, plan, into: &w)
        guard !w.overflowed else {
            shadowFailed(check, status: 503, loop)
            return
        }
        sh.pointee.requestHead.count += w.count
        assignShadowConnection(check, loop)
    }

    /// The bytes of a check's response that `progress` consumed go into its `response`.
    func keepCheckResponse(_ bytes: UnsafeRawBufferPointer, _ progress: ResponseProgress, _ sh: UnsafeMutablePointer<Shadow>) {
        let used: Int
        switch progress {
        case .more(let n), .complete(let n): used = n
        default: return
        }
        guard used > 0, !sh.pointee.responseOverflow else { return }
        if sh.pointee.response.count + used > Self.authzResponseLimit
            || !pool.append(UnsafeRawBufferPointer(rebasing: bytes[0..<used]), to: &sh.pointee.response) {
            sh.pointee.responseOverflow = true
        }
    }

    /// The check ended (`answered`: a whole response is in its `response`): lets go of it, then
    /// decides for the stream still waiting for it.
    func finishCheck(_ token: UInt64, answered: Bool, reuseUpstream: Bool, _ loop: Loop) {
        guard let sh = shadows.pointer(token) else { return }
        let down = sh.pointee.check
        let waiting = sh.pointee.checkStream
        var response = ByteBuffer.empty
        swap(&response, &sh.pointee.response)
        let complete = answered && !sh.pointee.responseOverflow
        let serviceNanos = loop.now - sh.pointee.startNanos
        finishShadow(token, loop, reuseUpstream: reuseUpstream)
        defer { pool.release(&response) }
        guard let d = downs.pointer(down), d.pointee.stream == waiting, let s = stream(of: d), s.pointee.authzCheck == token else { return }
        s.pointee.authzCheck = 0
        s.pointee.deadline = 0
        authzDecided(complete ? response.bytes : nil, serviceNanos: serviceNanos, down, d, loop)
        if downs.pointer(down) != nil && !d.pointee.processing { downstreamSettled(down, d, loop) }
    }

    /// The check's timeout passed (the stream's deadline): Envoy's 504 on the authorization
    /// cluster, its connection closed with the request on it; the check fails.
    func authzCheckTimedOut(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        let check = s.pointee.authzCheck
        guard let sh = shadows.pointer(check) else { return }
        inc(stats.upstreamRqTimeout)
        if let cs = clusterStats(Int(sh.pointee.cluster)) {
            inc(cs.upstreamRqTimeout)
            if let u = ups.pointer(sh.pointee.upstream), u.pointee.state == .busy { inc(cs.upstreamCxDestroyLocalWithActiveRq) }
        }
        shadowFailed(check, status: 504, loop)
    }

    /// The stream ends while its check is in flight (the client left): the check is dropped and
    /// its connection closed, as Envoy cancels its async request.
    func abandonAuthzCheck(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        let token = s.pointee.authzCheck
        s.pointee.authzCheck = 0
        guard let sh = shadows.pointer(token) else { return }
        sh.pointee.check = 0
        if let u = ups.pointer(sh.pointee.upstream), u.pointee.state == .busy, let cs = clusterStats(Int(sh.pointee.cluster)) {
            inc(cs.upstreamCxDestroyLocalWithActiveRq)
        }
        finishShadow(token, loop, reuseUpstream: false)
    }

    /// Acts on the authorization service's answer (nil: none, the check failed).
    private func authzDecided(_ response: UnsafeRawBufferPointer?, serviceNanos: Int64, _ token: UInt64,
                              _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        guard let http = hcm(s), case .extAuthz(let plan) = http.filters.filters[Int(s.pointee.authzFilter)] else {
            localReply(LocalReply(status: 503, body: .text(""), flags: .localReset, details: .downstreamTerminated), token, d, loop)
            return
        }
        let routeStats = s.pointee.authzRouteCluster >= 0 ? clusterStats(Int(s.pointee.authzRouteCluster)) : nil
        var status = 0
        var headLength = 0
        if let response {
            // Past interim (1xx) heads to the final one.
            var offset = 0
            while offset < response.count {
                responseParser.reset()
                guard case .complete(let n) = responseParser.parse(UnsafeRawBufferPointer(rebasing: response[offset...]), isResponseToHEAD: s.pointee.isHEAD) else { break }
                if responseParser.isInformational { offset += n; continue }
                status = responseParser.statusCode
                headLength = n
                break
            }
            if status != 0 {
                let final = UnsafeRawBufferPointer(rebasing: response[offset...])
                if status == 200 {
                    plan.stats.ok.wrappingAdd(1, ordering: .relaxed)
                    if let cs = routeStats { inc(cs.extAuthzOk) }
                    authzAllowed(final, headLength: headLength, plan, token, d, loop)
                    return
                }
                if status < 500 {
                    plan.stats.denied.wrappingAdd(1, ordering: .relaxed)
                    if let cs = routeStats {
                        // charge_cluster_response_stats (on by default): the denial counts as the route cluster's response.
                        inc(cs.extAuthzDenied)
                        inc(cs.upstreamRqCompleted)
                        cs.upstreamRqCodes.count(status)
                    }
                    authzDenied(final, headLength: headLength, status: status, serviceNanos: serviceNanos, plan, token, d, loop)
                    return
                }
            }
        }
        // No answer, or a 5xx: Envoy's error response.
        plan.stats.error.wrappingAdd(1, ordering: .relaxed)
        if let cs = routeStats { inc(cs.extAuthzError) }
        if plan.failureModeAllow {
            plan.stats.failureModeAllowed.wrappingAdd(1, ordering: .relaxed)
            if let cs = routeStats { inc(cs.extAuthzFailureModeAllowed) }
            if plan.failureModeAllowHeaderAdd {
                rewriteHeldHead(s) { w in w.put(ExtAuthzNames.failureModeAllowedLine) } skipping: { _ in false }
            }
            resumeChain(token, d, loop, resumingDelay: false)
            return
        }
        localReply(LocalReply(status: plan.statusOnError, body: .text(""), flags: .unauthorizedExternalService, details: .extAuthzError), token, d, loop)
    }

    /// 200: the answer's `allowed_upstream_headers` replace the request's fields of those names,
    /// its `allowed_upstream_headers_to_append` are added; then the chain goes on.
    private func authzAllowed(_ response: UnsafeRawBufferPointer, headLength: Int, _ plan: ExtAuthzPlan, _ token: UInt64,
                              _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        let head = UnsafeRawBufferPointer(rebasing: response[0..<headLength])
        // The matching fields of the answer, by index in the response parser (parsed from `head`).
        let p = responseParser
        var sets = 0
        var appends = 0
        for i in 0..<p.headerCount {
            let name = UnsafeRawBufferPointer(rebasing: head[p.headerNameRange(at: i)])
            withLowercased(name) { lower in
                guard !ExtAuthzNames.isFraming(lower) else { return }
                if plan.upstreamSet.matchesAny(lower) { sets += 1 }
                if plan.upstreamAppend.matchesAny(lower) { appends += 1 }
            }
        }
        if sets > 0 || appends > 0 {
            rewriteHeldHead(s, extra: head.count) { w in
                // The set fields (the request's own of those names are skipped) and the appended ones.
                for i in 0..<p.headerCount {
                    let name = UnsafeRawBufferPointer(rebasing: head[p.headerNameRange(at: i)])
                    let value = UnsafeRawBufferPointer(rebasing: head[p.headerValueRange(at: i)])
                    let (set, append) = withLowercased(name) { lower -> (Bool, Bool) in
                        guard !ExtAuthzNames.isFraming(lower) else { return (false, false) }
                        return (plan.upstreamSet.matchesAny(lower), plan.upstreamAppend.matchesAny(lower))
                    }
                    if set || append {
                        w.putLowercased(name)
                        w.put(": ")
                        w.put(value)
                        w.crlf()
                    }
                }
            } skipping: { requestName in
                // A request field the answer sets: dropped (the answer's value is written instead).
                for i in 0..<p.headerCount {
                    let name = UnsafeRawBufferPointer(rebasing: head[p.headerNameRange(at: i)])
                    guard Self.sameName(name, requestName) else { continue }
                    let set = withLowercased(name) { !ExtAuthzNames.isFraming($0) && plan.upstreamSet.matchesAny($0) }
                    if set { return true }
                }
                return false
            }
        }
        resumeChain(token, d, loop, resumingDelay: false)
    }

    /// Any other answer below 500: the client gets its status, body and the fields
    /// `allowed_client_headers` allow (all but Host when unset), as Envoy's local reply.
    private func authzDenied(_ response: UnsafeRawBufferPointer, headLength: Int, status: Int, serviceNanos: Int64, _ plan: ExtAuthzPlan,
                             _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let head = UnsafeRawBufferPointer(rebasing: response[0..<headLength])
        let p = responseParser
        var body = ByteBuffer.empty
        defer { pool.release(&body) }
        var bodyBytes = UnsafeRawBufferPointer(rebasing: response[headLength...])
        switch p.bodyFraming {
        case .none:
            bodyBytes = UnsafeRawBufferPointer(start: nil, count: 0)
        case .contentLength(let n):
            bodyBytes = UnsafeRawBufferPointer(rebasing: bodyBytes[0..<min(n, bodyBytes.count)])
        case .chunked:
            var decoder = ChunkedDecoder()
            var offset = 0
            decoding: while offset < bodyBytes.count {
                let rest = UnsafeRawBufferPointer(rebasing: bodyBytes[offset...])
                switch decoder.decode(rest) {
                case let .data(range, consumed):
                    _ = pool.append(UnsafeRawBufferPointer(rebasing: rest[range]), to: &body)
                    offset += consumed
                case .needMore, .done, .failure:
                    break decoding
                }
            }
            bodyBytes = body.bytes
        case .untilClose:
            break
        }
        // The answer's fields for the client, as lines (its framing, date and server are the reply's own).
        let capacity = head.count + 64
        var fields = ByteBuffer.empty
        defer { pool.release(&fields) }
        guard let base = pool.reserve(capacity, in: &fields) else {
            localReply(LocalReply(status: status, body: .text(""), flags: .unauthorizedExternalService, details: .extAuthzDenied), token, d, loop)
            return
        }
        var w = ByteWriter(base, capacity: capacity)
        var contentType = false
        for i in 0..<p.headerCount {
            let name = UnsafeRawBufferPointer(rebasing: head[p.headerNameRange(at: i)])
            let pass = withLowercased(name) { lower -> Bool in
                if ExtAuthzNames.isFraming(lower) || lower.elementsEqual("date".utf8) || lower.elementsEqual("server".utf8) { return false }
                guard let client = plan.client else { return true }
                return ExtAuthzNames.isAlwaysToClient(lower) || client.matchesAny(lower)
            }
            guard pass else { continue }
            if name.count == 12 && ASCII.equalsCaseInsensitive(name, 0..<12, "content-type") { contentType = true }
            w.putLowercased(name)
            w.put(": ")
            w.put(UnsafeRawBufferPointer(rebasing: head[p.headerValueRange(at: i)]))
            w.crlf()
        }
        if plan.client == nil {
            // Envoy's async client's router adds it to the answer, and the default lets it through.
            w.put("x-envoy-upstream-service-time: ")
            w.putDecimal(Int(serviceNanos / 1_000_000))
            w.crlf()
        }
        fields.count += w.overflowed ? 0 : w.count
        localReply(LocalReply(status: status, body: .text(""), flags: .unauthorizedExternalService, details: .extAuthzDenied), token, d, loop,
                   extraHeaders: fields.bytes, dynamicBody: bodyBytes, ownContentType: contentType)
    }

    static func sameName(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where ASCII.lowercased(a[i]) != ASCII.lowercased(b[i]) { return false }
        return true
    }

    /// Rebuilds the held head: its request line and fields, minus those `skipping` names, then
    /// what `add` writes, then the empty line.
    private func rewriteHeldHead(_ s: UnsafeMutablePointer<Stream>, extra: Int = 64,
                                 _ add: (inout ByteWriter) -> Void,
                                 skipping: (UnsafeRawBufferPointer) -> Bool) {
        var old = s.pointee.delayedHead
        s.pointee.delayedHead = .empty
        defer { pool.release(&old) }
        let bytes = old.bytes
        let capacity = bytes.count + extra + 64
        guard let base = pool.reserve(capacity, in: &s.pointee.delayedHead) else {
            swap(&old, &s.pointee.delayedHead)
            return
        }
        var w = ByteWriter(base, capacity: capacity)
        var i = 0
        var first = true
        while i + 1 < bytes.count {
            var end = i
            while end + 1 < bytes.count && !(bytes[end] == 0x0D && bytes[end + 1] == 0x0A) { end += 1 }
            if end == i { break }  // the empty line
            let line = UnsafeRawBufferPointer(rebasing: bytes[i..<end])
            i = end + 2
            if !first, let colon = line.firstIndex(of: UInt8(ascii: ":")),
               skipping(UnsafeRawBufferPointer(rebasing: line[0..<colon])) { continue }
            first = false
            w.put(line)
            w.crlf()
        }
        add(&w)
        w.crlf()
        if w.overflowed {
            pool.release(&s.pointee.delayedHead)
            swap(&old, &s.pointee.delayedHead)
            return
        }
        s.pointee.delayedHead.count += w.count
    }
}
