import EventLoop
import HTTP1

/// Head encoding: the request head sent upstream, the response head sent downstream, and local
/// replies. Each reserves an upper bound in a pooled buffer and writes in place.
extension ProxyWorker {
    /// The upstream request head, as Envoy 1.40 sends it: the request line (origin-form, also for
    /// absolute-form targets; prefix_rewrite applied), the client's fields with lower-cased names
    /// minus hop-by-hop ones (TE only as `trailers`) and Expect (the proxy answers it), host (the
    /// URL's authority, host_rewrite, or the cluster's host when missing), re-declared framing,
    /// x-request-id (the stream's generated one when missing), x-forwarded-proto,
    /// x-forwarded-for and x-envoy-external-address per `ForwardedForPolicy`, and
    /// x-envoy-expected-rq-timeout-ms from the route timeout (unless suppress_envoy_headers).
    func encodeRequestHead(_ head: UnsafeRawBufferPointer, route: Int, cluster: ClusterPlan, hostName: String,
                           downstream d: UnsafeMutablePointer<Downstream>, into buffer: inout ByteBuffer) -> Bool {
        guard let st = stream(of: d), let http = hcm(st), case .forward(let plan) = http.routes.allRoutes[route].action else { return false }
        let p = requestParser
        let xff = http.forwardedFor
        let peer = xff.useRemoteAddress ? peerAddress(d) : PeerAddress()
        let target = requestTarget(head, d)
        let mutations = http.routes.allRoutes[route].requestMutations
        let rewriteRoom = (plan.regexRewrite?.bound(target.origin.count) ?? 0) + target.origin.count + 32  // + x-envoy-original-path
        let plain = head.count + 320 + (plan.prefixRewrite?.count ?? 0) + (plan.hostRewrite?.count ?? 0) + hostName.utf8.count
            + 2 * PeerAddress.maxTextBytes + xff.localV6.count + rewriteRoom
        let tracing = traits(d)?.tracing == true
        // Two scalars per request without tracing (the span context is read only when tracing).
        var trace = TraceContext()
        if tracing { trace = traceContext(st) }
        let capacity = plain + mutations.reserve(plain) + (tracing ? 160 : 0)
        guard let base = pool.reserve(capacity, in: &buffer) else { return false }
        var w = ByteWriter(base, capacity: capacity)
        w.put(UnsafeRawBufferPointer(rebasing: head[p.pointee.methodRange]))
        w.put(byte: ASCII.space)
        let origin = target.origin
        // A rewritten path sends the original (with its query) in x-envoy-original-path, as Envoy.
        var rewrote = false
        if let rewrite = plan.prefixRewrite, let routePrefix = Self.matchedLength(http.routes.allRoutes[route]) {
            w.put(rewrite)
            w.put(UnsafeRawBufferPointer(rebasing: head[min(origin.lowerBound + routePrefix, origin.upperBound)..<origin.upperBound]))
            rewrote = true
        } else if let rx = plan.regexRewrite {
            let path = target.needsSlash ? UnsafeRawBufferPointer(staticString: "/") : UnsafeRawBufferPointer(rebasing: head[target.path])
            rx.rewrite(path, into: &w)
            if let q = target.query {
                w.put(byte: 0x3F)  // '?'
                w.put(UnsafeRawBufferPointer(rebasing: head[q]))
            }
            rewrote = true
        } else {
            if target.needsSlash { w.put(byte: 0x2F) }
            w.put(UnsafeRawBufferPointer(rebasing: head[origin]))
        }
        w.put(" HTTP/1.1\r\n")
        let fieldsStart = w.count
        var sawHost = false
        var sawRequestID = false
        var sawProto = false
        let setsOriginalPath = rewrote && !http.suppressEnvoyHeaders
        var sawOriginalPath = false
        var nominating: Range<Int>? = nil
        var lastForwardedFor = -1
        let inflating = (stream(of: d)?.pointee.inflater ?? -1) >= 0
        // The compressor's remove_accept_encoding_header (not on a route that turns it off).
        let dropsAcceptEncoding = http.compressor?.removeAcceptEncoding == true && stream(of: d)?.pointee.acceptEncoding != .disabled
        var strippedEncoding = false
        let count = p.pointee.headerCount
        for i in 0..<count {
            let name = p.pointee.headerNameRange(at: i)
            if name.count == 10 && ASCII.equalsCaseInsensitive(head, name, "connection") {
                let value = p.pointee.headerValueRange(at: i)
                if FieldClass.connectionNominates(head, value) { nominating = value }
            } else if name.count == 15 && ASCII.equalsCaseInsensitive(head, name, "x-forwarded-for") {
                lastForwardedFor = i
            }
        }
        // The trusted client address (x-envoy-external-address) under use_remote_address.
        var trusted: Range<Int>? = nil
        if xff.useRemoteAddress && xff.trustedHops > 0 && lastForwardedFor >= 0 {
            trusted = ForwardedForPolicy.element(fromRight: xff.trustedHops, of: head, p.pointee.headerValueRange(at: lastForwardedFor))
        }
        var appended = !xff.useRemoteAddress || xff.skipAppend || peer.family <= 0
        let upgrading = stream(of: d)?.pointee.upgrade ?? false
        for i in 0..<count {
            let name = p.pointee.headerNameRange(at: i)
            let value = p.pointee.headerValueRange(at: i)
            switch FieldClass.of(head, name) {
            case .hopByHop:
                // An allowed upgrade keeps Connection and Upgrade as sent (Envoy's websocket handling).
                if upgrading && FieldClass.isUpgradeField(head, name) { break }
                // TE survives only as `trailers` (Envoy keeps that one value).
                guard name.count == 2, ASCII.equalsCaseInsensitive(head, value, "trailers") else { continue }
            case .expect:
                if p.pointee.expectsContinue { continue }
            case .host:
                sawHost = true
                if plan.hostRewrite != nil || target.authority != nil { continue }
            case .requestID:
                sawRequestID = true
                if trace.requestIDReason != 0 && value.count == 36 {
                    // The trace decision rides in the id's 15th character (Envoy's UUID request ids).
                    w.put("x-request-id: ")
                    let start = w.count
                    w.put(UnsafeRawBufferPointer(rebasing: head[value]))
                    if !w.overflowed { base.storeBytes(of: trace.requestIDReason, toByteOffset: start + 14, as: UInt8.self) }
                    w.crlf()
                    continue
                }
            case .forwardedProto:
                sawProto = true
            case .forwardedFor:
                if i == lastForwardedFor && !appended {
                    appended = true
                    w.put("x-forwarded-for: ")
                    if value.count > 0 {
                        w.put(UnsafeRawBufferPointer(rebasing: head[value]))
                        w.put(byte: ASCII.comma)
                    }
                    xff.writeAppended(peer, &w)
                    w.crlf()
                    continue
                }
            case .externalAddress:
                if xff.useRemoteAddress { continue }  // set below
            case .expectedTimeout:
                if !http.suppressEnvoyHeaders, plan.expectedTimeoutNanos > 0 { continue }  // set below
            case .originalPath:
                if setsOriginalPath && !sawOriginalPath {
                    // Envoy sets the value of the client's field where it stands.
                    sawOriginalPath = true
                    w.put("x-envoy-original-path: ")
                    writeOriginalPath(head, target, &w)
                    w.crlf()
                    continue
                }
                if setsOriginalPath { continue }
            case .pass:
                if tracing && Self.tracerOwned(head, name, trace) { continue }
            case .forceTrace:
                continue
            case .server, .contentLength, .date:
                break
            }
            if let nominating, !(upgrading && FieldClass.isUpgradeField(head, name)),
               FieldClass.nominated(head, name, connection: nominating) { continue }
            if inflating && decompressorRewrites(head, name, value, strippedEncoding: &strippedEncoding, &w) { continue }
            if dropsAcceptEncoding && name.count == 15 && ASCII.equalsCaseInsensitive(head, name, "accept-encoding") { continue }
            w.putLowercased(UnsafeRawBufferPointer(rebasing: head[name]))
            w.put(": ")
            w.put(UnsafeRawBufferPointer(rebasing: head[value]))
            w.crlf()
        }
        if let rewrite = plan.hostRewrite {
            w.put("host: ")
            w.put(rewrite)
            w.crlf()
        } else if let authority = target.authority {
            w.put("host: ")
            w.put(UnsafeRawBufferPointer(rebasing: head[authority]))
            w.crlf()
        } else if !sawHost {
            w.put("host: ")
            var name = hostName
            name.withUTF8 { w.put(UnsafeRawBufferPointer($0)) }
            w.crlf()
        }
        if inflating {
            w.put("transfer-encoding: chunked\r\n")  // the inflated body's length is not known yet
        } else if case .chunked = p.pointee.bodyFraming {
            if let s = stream(of: d), s.pointee.dechunkedLength >= 0 {
                w.put("content-length: ")
                w.putDecimal(s.pointee.dechunkedLength)
                w.crlf()
            } else {
                w.put("transfer-encoding: chunked\r\n")
            }
        }
        if !sawRequestID, let s = stream(of: d), s.pointee.generatedRequestID {
            w.put("x-request-id: ")
            let start = w.count
            w.putUUID(s.pointee.requestID.0, s.pointee.requestID.1)
            if trace.requestIDReason != 0 && !w.overflowed { base.storeBytes(of: trace.requestIDReason, toByteOffset: start + 14, as: UInt8.self) }
            w.crlf()
        }
        if !sawProto { w.put("x-forwarded-proto: http\r\n") }
        if !appended {
            w.put("x-forwarded-for: ")
            xff.writeAppended(peer, &w)
            w.crlf()
        }
        if xff.useRemoteAddress {
            w.put("x-envoy-external-address: ")
            if let trusted { w.put(UnsafeRawBufferPointer(rebasing: head[trusted])) } else { peer.write(&w) }
            w.crlf()
        }
        if !http.suppressEnvoyHeaders, plan.expectedTimeoutNanos > 0 {
            w.put("x-envoy-expected-rq-timeout-ms: ")
            w.putDecimal(Int(plan.expectedTimeoutNanos / 1_000_000))
            w.crlf()
        }
        if setsOriginalPath && !sawOriginalPath {
            w.put("x-envoy-original-path: ")
            writeOriginalPath(head, target, &w)
            w.crlf()
        }
        // The route's header mutations see the fields as the router has them (Envoy's
        // finalizeRequestHeaders runs after the connection manager's and the timeout fields).
        if !mutations.isEmpty && !w.overflowed {
            var e = HeadFieldEditor(base: base, capacity: capacity, fieldsStart: fieldsStart, count: w.count)
            e.apply(mutations, HeaderValueContext(peer: peerAddress(d), http10: stream(of: d)?.pointee.http10 ?? false))
            if e.overflowed { return false }
            w.count = e.count
        }
        // The tracer injects its context into the upstream request last (Envoy's router).
        if tracing { writeB3(trace, &w) }
        // Envoy's codec declares an empty body on a bodiless request whose method may carry one
        // (a POST or OPTIONS without framing goes upstream with `content-length: 0`), after
        // every other field; not on an upgrade, whose payload is not framed.
        if case .none = p.pointee.bodyFraming, !inflating, !upgrading, Self.methodMayHaveBody(p.pointee.method) {
            w.put("content-length: 0\r\n")
        }
        w.crlf()
        guard !w.overflowed else { return false }
        buffer.count += w.count
        return true
    }

    /// Envoy's `requestShouldHaveNoBody`, negated: every method but GET, HEAD, DELETE, TRACE and
    /// CONNECT.
    static func methodMayHaveBody(_ method: HTTPMethod) -> Bool {
        switch method {
        case .get, .head, .delete, .trace, .connect: return false
        case .post, .put, .options, .patch, .other: return true
        }
    }

    /// The request's path and query as it came (origin-form; `/` for an empty one).
    private func writeOriginalPath(_ head: UnsafeRawBufferPointer, _ target: RequestTarget, _ w: inout ByteWriter) {
        if target.needsSlash { w.put(byte: 0x2F) }
        w.put(UnsafeRawBufferPointer(rebasing: head[target.origin]))
    }

    /// The downstream response head from the upstream's: status line (Envoy's reason phrase),
    /// fields minus hop-by-hop ones, re-declared framing, server, x-envoy-upstream-service-time,
    /// Connection as the downstream needs.
    func writeResponseHead(_ head: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>, _ d: UnsafeMutablePointer<Downstream>) -> Bool {
        guard let http = hcm(s) else { return false }
        let p = responseParser
        let cors = corsDecoration(s)
        let mutations = responseMutations(s)
        let compressing = s.pointee.compressVary || s.pointee.compressorStream >= 0
        let plain = head.count + 256 + HTTPDateField.lineLength + http.serverName.count + corsFieldsLength(cors, s) + (compressing ? 64 : 0)
            + (traits(d)?.tracing == true ? 32 + TraceRecordLayout.fieldLimit : 0)
        let capacity = plain + (mutations.map { $0.reserve(plain) + $0.requestCopies * s.pointee.requestValues.count } ?? 0)
        guard let base = pool.reserve(capacity, in: &d.pointee.pending) else { return false }
        var w = ByteWriter(base, capacity: capacity)
        w.put(s.pointee.http10 ? "HTTP/1.0 " : "HTTP/1.1 ")  // the client's version, as Envoy answers
        w.putDecimal(p.statusCode)
        w.put(byte: ASCII.space)
        // Envoy's codec writes the standard reason phrase for the code, not the upstream's.
        w.put(HeadWriter.reasonPhrase(for: p.statusCode) ?? "Unknown")
        w.crlf()
        let fieldsStart = w.count
        var sawServer = false
        var sawDate = false
        var nominating: Range<Int>? = nil
        for i in 0..<p.headerCount {
            let name = p.headerNameRange(at: i)
            if name.count == 10 && ASCII.equalsCaseInsensitive(head, name, "connection") {
                let value = p.headerValueRange(at: i)
                if FieldClass.connectionNominates(head, value) { nominating = value }
            }
        }
        // Envoy sets (replaces) the upstream's x-envoy-upstream-service-time; appending another per
        // hop made a chain of proxies (or a redirect loop) grow the head until it was refused.
        let setsServiceTime = !http.suppressEnvoyHeaders && s.pointee.upstreamServiceNanos >= 0
        for i in 0..<p.headerCount {
            let name = p.headerNameRange(at: i)
            if setsServiceTime && name.count == 29 && ASCII.equalsCaseInsensitive(head, name, "x-envoy-upstream-service-time") { continue }
            switch FieldClass.of(head, name) {
            case .hopByHop:
                // A 101 keeps Connection and Upgrade: the client needs them to switch protocols.
                guard s.pointee.tunnel && FieldClass.isUpgradeField(head, name) else { continue }
            case .server:
                sawServer = true
                if http.serverTransformation == .overwrite { continue }
            case .date:
                sawDate = true
            case .contentLength:
                // A 204's `content-length: 0` is dropped, as Envoy's codec drops it.
                if p.statusCode == 204 { continue }
            default:
                break
            }
            if let nominating, !(s.pointee.tunnel && FieldClass.isUpgradeField(head, name)),
               FieldClass.nominated(head, name, connection: nominating) { continue }
            if let cors, corsReplaces(cors, head, name) { continue }
            if compressing && compressorDrops(head, name, s) { continue }
            w.putLowercased(UnsafeRawBufferPointer(rebasing: head[name]))
            w.put(": ")
            w.put(UnsafeRawBufferPointer(rebasing: head[p.headerValueRange(at: i)]))
            w.crlf()
        }
        if !http.suppressEnvoyHeaders && s.pointee.upstreamServiceNanos >= 0 && !s.pointee.upgrade {
            w.put("x-envoy-upstream-service-time: ")
            w.putDecimal(Int(s.pointee.upstreamServiceNanos / 1_000_000))
            w.crlf()
        }
        if let health = http.healthCheckHealth, health.failed.load(ordering: .relaxed) { w.put(Self.immediateHealthCheckFail) }
        // The route's response mutations run in the router, before the connection manager adds
        // date and server (Envoy's finalizeResponseHeaders).
        if let mutations, !w.overflowed {
            var e = HeadFieldEditor(base: base, capacity: capacity, fieldsStart: fieldsStart, count: w.count)
            e.apply(mutations, HeaderValueContext(peer: peerAddress(d), http10: s.pointee.http10, requestFields: s.pointee.requestValues.bytes))
            if e.overflowed { return false }
            w.count = e.count
            sawDate = e.value(HeaderMutationPlan.dateName, before: e.count) != nil
            sawServer = e.value(HeaderMutationPlan.serverName, before: e.count) != nil
            if sawServer && http.serverTransformation == .overwrite {
                var end = e.count
                e.removeAll(HeaderMutationPlan.serverName, before: &end)
                w.count = e.count
            }
        }
        // The compressor's encodeHeaders runs after the router's (mutations above), before the
        // connection manager adds date and server.
        if compressing { writeCompressorFields(head, upstream: true, s, &w) }
        if traits(d)?.tracing == true, let op = decoratorForResponse(s) {
            w.put("x-envoy-decorator-operation: ")
            w.put(op)
            w.crlf()
        }
        // The cache filter stores the head as the connection manager gets it (before date and server).
        if s.pointee.cache.fill >= 0 && !w.overflowed { cacheStoreHead(UnsafeRawBufferPointer(start: base + fieldsStart, count: w.count - fieldsStart), s) }
        if !sawDate { w.put(date.current()) }
        if let cors { writeCorsFields(cors, s, &w) }
        if s.pointee.http10 && s.pointee.compressorStream >= 0 {
            s.pointee.keepAlive = false  // compressed for an HTTP/1.0 client: the connection's end ends the body
        } else if s.pointee.responseBody == .chunked && s.pointee.http10 {
            // An HTTP/1.0 client never gets chunked framing (RFC 9112 6.1): the payload goes out
            // bare (relayDechunked) and the connection's end marks the body's end.
            s.pointee.keepAlive = false
        } else if s.pointee.responseBody == .chunked || s.pointee.reframeChunked || s.pointee.compressorStream >= 0 {
            w.put("transfer-encoding: chunked\r\n")
        }
        if http.serverTransformation == .overwrite || (http.serverTransformation == .appendIfAbsent && !sawServer) {
            w.put("server: ")
            w.put(http.serverName)
            w.crlf()
        }
        let closing = !s.pointee.keepAlive || d.pointee.closeAfterFlush || !s.pointee.requestComplete
        if closing && !s.pointee.tunnel {
            w.put("connection: close\r\n")
        } else if s.pointee.http10 && !s.pointee.tunnel {
            w.put("connection: keep-alive\r\n")
        }
        if debugFlags { writeFlagsHeader(s.pointee.flags, &w) }
        w.crlf()
        guard !w.overflowed else { return false }
        d.pointee.pending.count += w.count
        return true
    }

    /// The response mutations of the stream's route, or nil when it has none.
    func responseMutations(_ s: UnsafeMutablePointer<Stream>) -> HeaderMutationPlan? {
        guard let http = hcm(s), s.pointee.route >= 0, Int(s.pointee.route) < http.routes.allRoutes.count else { return nil }
        let plan = http.routes.allRoutes[Int(s.pointee.route)].responseMutations
        return plan.isEmpty ? nil : plan
    }

    private func writeFlagsHeader(_ flags: ResponseFlags, _ w: inout ByteWriter) {
        w.put("x-ballast-response-flags: ")
        let room = w.capacity - w.count
        guard room > 48 else { w.overflowed = true; return }
        let n = flags.write(into: UnsafeMutableRawBufferPointer(start: w.base + w.count, count: 48))
        w.count += n
        w.crlf()
    }

    static var immediateHealthCheckFail: StaticString { "x-envoy-immediate-health-check-fail: true\r\n" }

    /// A locally generated response with a text body.
    /// `routeHeaders`: the router's reply (direct_response, upstream failure), which gets the
    /// route's response mutations; a filter's reply does not.
    func writeLocalReply(_ status: Int, body: UnsafeRawBufferPointer, headers: UnsafeRawBufferPointer, closing: Bool,
                         routeHeaders: Bool = false, defaultContentType: Bool = true, _ s: UnsafeMutablePointer<Stream>,
                         _ d: UnsafeMutablePointer<Downstream>) {
        let http = hcm(s)
        let cors = corsDecoration(s)
        let mutations = routeHeaders ? responseMutations(s) : nil
        decideCompression(localReply: body.count, s)
        decompressorSawResponse(s)
        let compressed = s.pointee.compressorStream >= 0
        let decorator = traits(d)?.tracing == true ? decoratorForResponse(s) : nil
        let plain = 256 + 64 + HTTPDateField.lineLength + body.count + headers.count + (http?.serverName.count ?? 0) + corsFieldsLength(cors, s)
            + (decorator?.count ?? 0) + 32
        let capacity = plain + (mutations.map { $0.reserve(plain) + $0.requestCopies * s.pointee.requestValues.count } ?? 0)
        guard let base = pool.reserve(capacity, in: &d.pointee.pending) else { return }
        var w = ByteWriter(base, capacity: capacity)
        w.put(s.pointee.http10 ? "HTTP/1.0 " : "HTTP/1.1 ")  // the client's version, as Envoy answers
        w.putDecimal(status)
        w.put(byte: ASCII.space)
        // Envoy's codec writes `Unknown` for a code it has no phrase for (a fault abort's 418), and
        // 413's older phrase.
        if status == 413 { w.put("Payload Too Large") } else { w.put(HeadWriter.reasonPhrase(for: status) ?? "Unknown") }
        w.crlf()
        if !compressed {
            w.put("content-length: ")
            w.putDecimal(body.count)
            w.crlf()
        }
        let fieldsStart = w.count
        if body.count > 0 && defaultContentType { w.put("content-type: text/plain\r\n") }
        if headers.count > 0 { w.put(headers) }
        if let health = http?.healthCheckHealth, health.failed.load(ordering: .relaxed) { w.put(Self.immediateHealthCheckFail) }
        var sawDate = false
        var sawServer = false
        if let mutations, !w.overflowed {
            var e = HeadFieldEditor(base: base, capacity: capacity, fieldsStart: fieldsStart, count: w.count)
            e.apply(mutations, HeaderValueContext(peer: peerAddress(d), http10: s.pointee.http10, requestFields: s.pointee.requestValues.bytes))
            if e.overflowed { return }
            sawDate = e.value(HeaderMutationPlan.dateName, before: e.count) != nil
            sawServer = e.value(HeaderMutationPlan.serverName, before: e.count) != nil
            if sawServer && (http?.serverTransformation ?? .overwrite) == .overwrite {
                var end = e.count
                e.removeAll(HeaderMutationPlan.serverName, before: &end)
                sawServer = false
            }
            w.count = e.count
        }
        if s.pointee.compressVary || compressed { writeCompressorFields(headers, upstream: false, s, &w) }
        if let decorator {
            w.put("x-envoy-decorator-operation: ")
            w.put(decorator)
            w.crlf()
        }
        if !sawDate { w.put(date.current()) }
        if !sawServer {
            w.put("server: ")
            if let http { w.put(http.serverName) } else { w.put("envoy") }
            w.crlf()
        }
        if compressed && !s.pointee.http10 { w.put("transfer-encoding: chunked\r\n") }
        if closing || (compressed && s.pointee.http10) {
            w.put("connection: close\r\n")
        } else if s.pointee.http10 {
            w.put("connection: keep-alive\r\n")
        }
        if let cors { writeCorsFields(cors, s, &w) }
        if debugFlags { writeFlagsHeader(s.pointee.flags, &w) }
        w.crlf()
        if !s.pointee.isHEAD && !compressed {
            w.put(body)
            s.pointee.bytesSent += body.count
        }
        guard !w.overflowed else { return }
        d.pointee.pending.count += w.count
        if compressed {
            // A local reply's body is one piece and the end (Envoy: one data frame with end_stream).
            if s.pointee.http10 { s.pointee.keepAlive = false }
            hcm(s)?.compressor?.stats.responseTotalUncompressedBytes.wrappingAdd(body.count, ordering: .relaxed)
            finishCompression(s, d, last: body)
        }
    }
}
