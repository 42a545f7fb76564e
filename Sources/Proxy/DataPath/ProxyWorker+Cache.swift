import EventLoop
import HTTP1

/// The cache filter's stream state (ProxyWorker+Cache).
struct StreamCacheState {
    /// The `ResponseCache` entry this response fills (-1: none).
    var fill: Int32 = -1
    /// The stale entry this request validates (-1: none), and its slot's generation then.
    var validate: Int32 = -1
    var validateGeneration: UInt32 = 0
    /// The request's allowed-vary-header digest.
    var vary: UInt64 = 0
    /// Decodes a chunked response's payload into the entry (the client gets the chunks as sent).
    var decoder = ChunkedDecoder()
    /// The upstream's status when the client got another (a 304 answered from the entry), else 0.
    var upstreamStatus: Int32 = 0
    /// The cache looked the request up and sends it upstream itself (Envoy's async client).
    var lookedUp = false
}

/// The cache filter's worker side (docs/cache.md): a fresh entry answered with one send; a
/// stale one validated upstream (If-None-Match / If-Modified-Since) and, on 304, answered from
/// the entry with the 304's fields merged (and the entry refreshed); a cacheable response stored
/// while it streams to the client.
extension ProxyWorker {
    /// The worker's cache (made when a chain first uses it).
    var responseCache: ResponseCache {
        if let c = cacheStore { return c }
        let c = ResponseCache(pool: pool)
        cacheStore = c
        return c
    }

    // MARK: hit

    /// Answers the active stream from a fresh entry: status line, stored fields with `age`, the
    /// connection manager's date / server / framing, and the body, in one buffer. A single byte
    /// range of the request is answered 206 (or 416 when unsatisfiable), as Envoy's cache does.
    func serveFromCache(_ i: Int32, age: Int64, range: CacheRange, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        let s = stream(of: d)!
        let e = responseCache[i]
        s.pointee.flags.insert(.responseFromCacheFilter)
        s.pointee.details = .responseFromCacheFilter
        let closing = !s.pointee.keepAlive || !s.pointee.requestComplete || d.pointee.closeAfterFlush
        writeStoredResponse(e, fields: e.head, age: age, range: range, closing: closing, s, d)
        s.pointee.responseHeadDone = true
        s.pointee.responseComplete = true
        if closing || !s.pointee.keepAlive { d.pointee.beginClosing() }
        endStream(token, d, loop, reuseUpstream: false)
    }

    /// Writes a response made of `fields` (stored field lines; `age` replaces a stored age or
    /// follows the fields when given) and the entry's status and body (or the range's part).
    private func writeStoredResponse(_ e: ResponseCache.Entry, fields: UnsafeRawBufferPointer, age: Int64?, range: CacheRange = .none,
                                     closing: Bool, _ s: UnsafeMutablePointer<Stream>, _ d: UnsafeMutablePointer<Downstream>) {
        guard let http = hcm(s) else { return }
        let whole = e.body
        var status = Int(e.status)
        var part = 0..<whole.count
        switch range {
        case .none: break
        case .partial(let r): status = 206; part = r
        case .unsatisfiable: status = 416; part = 0..<0
        }
        let body = UnsafeRawBufferPointer(rebasing: whole[part])
        let lengthSet = range != .none  // content-length is the part's (set in place, or added)
        s.pointee.status = Int32(status)
        let sendBody = !s.pointee.isHEAD
        let cors = corsDecoration(s)
        var hasDate = false
        var hasServer = false
        var hasLength = false
        var hasAge = false
        var scan = FieldLines(fields)
        while let f = scan.next() {
            switch f.name.count {
            case 4 where ASCII.equalsCaseInsensitive(fields, f.name, "date"): hasDate = true
            case 6 where ASCII.equalsCaseInsensitive(fields, f.name, "server"): hasServer = true
            case 14 where ASCII.equalsCaseInsensitive(fields, f.name, "content-length"): hasLength = true
            case 3 where ASCII.equalsCaseInsensitive(fields, f.name, "age"): hasAge = true
            default: break
            }
        }
        let framedByLength = hasLength || lengthSet
        let chunked = !framedByLength && body.count > 0 && !s.pointee.http10
        if !framedByLength && body.count > 0 && s.pointee.http10 { s.pointee.keepAlive = false }  // the close ends the body
        let capacity = 192 + fields.count + 96 + HTTPDateField.lineLength + http.serverName.count + corsFieldsLength(cors, s)
            + (sendBody ? body.count + 32 : 0)
        guard let base = pool.reserve(capacity, in: &d.pointee.pending) else { return }
        var w = ByteWriter(base, capacity: capacity)
        w.put(s.pointee.http10 ? "HTTP/1.0 " : "HTTP/1.1 ")
        w.putDecimal(status)
        w.put(byte: ASCII.space)
        w.put(HeadWriter.reasonPhrase(for: status) ?? "Unknown")
        w.crlf()
        var lines = FieldLines(fields)
        while let f = lines.next() {
            if let age, f.name.count == 3, ASCII.equalsCaseInsensitive(fields, f.name, "age") {
                w.put("age: ")
                w.putDecimal(Int(age))
                w.crlf()
            } else if lengthSet, f.name.count == 14, ASCII.equalsCaseInsensitive(fields, f.name, "content-length") {
                w.put("content-length: ")
                w.putDecimal(body.count)
                w.crlf()
            } else {
                w.put(UnsafeRawBufferPointer(rebasing: fields[f.line]))
            }
        }
        if let age, !hasAge {
            w.put("age: ")
            w.putDecimal(Int(age))
            w.crlf()
        }
        switch range {
        case .none: break
        case .partial(let r):
            w.put("content-range: bytes ")
            w.putDecimal(r.lowerBound)
            w.put(byte: UInt8(ascii: "-"))
            w.putDecimal(r.upperBound - 1)
            w.put(byte: UInt8(ascii: "/"))
            w.putDecimal(whole.count)
            w.crlf()
        case .unsatisfiable:
            w.put("content-range: bytes */")
            w.putDecimal(whole.count)
            w.crlf()
        }
        if lengthSet && !hasLength {
            w.put("content-length: ")
            w.putDecimal(body.count)
            w.crlf()
        }
        if !hasDate { w.put(date.current()) }
        if let cors { writeCorsFields(cors, s, &w) }
        if http.serverTransformation == .overwrite || (http.serverTransformation == .appendIfAbsent && !hasServer) {
            w.put("server: ")
            w.put(http.serverName)
            w.crlf()
        }
        if chunked {
            w.put("transfer-encoding: chunked\r\n")
        } else if !framedByLength && body.count == 0 && status != 204 && status != 304 {
            w.put("content-length: 0\r\n")
        }
        if closing || !s.pointee.keepAlive {
            w.put("connection: close\r\n")
        } else if s.pointee.http10 {
            w.put("connection: keep-alive\r\n")
        }
        w.crlf()
        if sendBody && body.count > 0 {
            if chunked {
                w.putHex(body.count)
                w.crlf()
                w.put(body)
                w.crlf()
                w.put("0\r\n\r\n")
            } else {
                w.put(body)
            }
            s.pointee.bytesSent += body.count
        }
        guard !w.overflowed else { return }
        d.pointee.pending.count += w.count
    }

    // MARK: request

    /// The head of a looked-up request as Envoy 1.40's cache sends it (through its async client):
    /// the async client's downstream address 192.0.2.2 appended to x-forwarded-for (or set), and
    /// `x-envoy-internal: true`; no x-envoy-expected-rq-timeout-ms.
    func rewriteForCacheUpstream(_ s: UnsafeMutablePointer<Stream>) {
        let head = s.pointee.requestHead.bytes
        guard head.count >= 4 else { return }
        var out = pool.acquire(minimumCapacity: head.count + 64)
        guard let base = out.base else { return }
        var w = ByteWriter(base, capacity: out.capacity)
        var requestLineEnd = 0
        while requestLineEnd + 1 < head.count && !(head[requestLineEnd] == ASCII.cr && head[requestLineEnd + 1] == ASCII.lf) { requestLineEnd += 1 }
        w.put(UnsafeRawBufferPointer(rebasing: head[0..<(requestLineEnd + 2)]))
        var fields = FieldLines(UnsafeRawBufferPointer(rebasing: head[(requestLineEnd + 2)..<(head.count - 2)]))
        let f0 = requestLineEnd + 2
        var sawForwardedFor = false
        while let f = fields.next() {
            let name = (f0 + f.name.lowerBound)..<(f0 + f.name.upperBound)
            let line = (f0 + f.line.lowerBound)..<(f0 + f.line.upperBound)
            switch name.count {
            case 30 where ASCII.equalsCaseInsensitive(head, name, "x-envoy-expected-rq-timeout-ms"): continue
            case 16 where ASCII.equalsCaseInsensitive(head, name, "x-envoy-internal"): continue
            case 15 where !sawForwardedFor && ASCII.equalsCaseInsensitive(head, name, "x-forwarded-for"):
                sawForwardedFor = true
                let value = (f0 + f.value.lowerBound)..<(f0 + f.value.upperBound)
                w.put(UnsafeRawBufferPointer(rebasing: head[line.lowerBound..<value.upperBound]))
                w.put(",192.0.2.2\r\n")
                continue
            default:
                break
            }
            w.put(UnsafeRawBufferPointer(rebasing: head[line]))
        }
        w.put("x-envoy-internal: true\r\n")
        if !sawForwardedFor { w.put("x-forwarded-for: 192.0.2.2\r\n") }
        w.crlf()
        guard !w.overflowed else { pool.release(&out); return }
        out.count = w.count
        pool.release(&s.pointee.requestHead)
        s.pointee.requestHead = out
    }

    /// A stale entry's validators on the request going upstream: if-none-match (its etag) and
    /// if-modified-since (its last-modified when that is a valid date, else its date, empty when it
    /// has none), as Envoy's cache filter sets them.
    func addValidators(_ s: UnsafeMutablePointer<Stream>) {
        let i = s.pointee.cache.validate
        guard i >= 0, s.pointee.requestHead.count >= 4 else { return }
        let e = responseCache[i]
        let h = e.head
        var since: Range<Int>? = e.dateValue
        if let lm = e.lastModified, HTTPDateField.parse(h, lm) != nil { since = lm }
        let extra = (e.etag?.count ?? 0) + (since?.count ?? 0) + 64
        s.pointee.requestHead.count -= 2  // the blank line
        guard let p = pool.reserve(extra, in: &s.pointee.requestHead) else { s.pointee.requestHead.count += 2; return }
        var w = ByteWriter(p, capacity: extra)
        if let etag = e.etag {
            w.put("if-none-match: ")
            w.put(UnsafeRawBufferPointer(rebasing: h[etag]))
            w.crlf()
        }
        w.put("if-modified-since: ")
        if let since { w.put(UnsafeRawBufferPointer(rebasing: h[since])) }
        w.crlf()
        w.crlf()
        s.pointee.requestHead.count += w.count
    }

    // MARK: response

    /// The cache filter's encodeHeaders for an upstream response head (the worker's response
    /// parser holds it). True when it was a 304 validating a stored entry and the client has been
    /// answered from the entry; otherwise an entry being filled is kept only for a cacheable response.
    func cacheSawResponseHead(_ head: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>, _ d: UnsafeMutablePointer<Downstream>) -> Bool {
        let p = responseParser
        let status = p.statusCode
        if status == 304, s.pointee.cache.validate >= 0 {
            let i = s.pointee.cache.validate
            s.pointee.cache.validate = -1
            dropCacheFill(s)
            guard responseCache[i].committed, responseCache[i].generation == s.pointee.cache.validateGeneration else { return false }
            return answerValidated(i, head, s, d)
        }
        guard s.pointee.cache.fill >= 0 else { return false }
        guard let plan = hcm(s)?.cache, Self.cacheableStatus(status) else { dropCacheFill(s); return false }
        var control = ResponseCacheControl()
        var hasDate = false
        var hasExpires = false
        var varyAllowed = true
        for k in 0..<p.headerCount {
            let name = p.headerNameRange(at: k)
            switch name.count {
            case 13 where ASCII.equalsCaseInsensitive(head, name, "cache-control"): control = ResponseCacheControl(head, p.headerValueRange(at: k))
            case 4 where ASCII.equalsCaseInsensitive(head, name, "date"): hasDate = true
            case 7 where ASCII.equalsCaseInsensitive(head, name, "expires"): hasExpires = true
            case 4 where ASCII.equalsCaseInsensitive(head, name, "vary"):
                if !plan.allowsVary(head, p.headerValueRange(at: k)) { varyAllowed = false }
            default: break
            }
        }
        let hasLifetime = control.mustValidate || control.maxAge != nil || (hasDate && hasExpires)
        if control.noStore || !hasLifetime || !varyAllowed { dropCacheFill(s) }
        return false
    }

    /// Envoy 1.40's cacheable status codes.
    static func cacheableStatus(_ status: Int) -> Bool {
        switch status {
        case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 451, 501: true
        default: false
        }
    }

    /// The response head as the client got it, up to the connection manager's additions: the
    /// entry's stored fields (called by writeResponseHead).
    func cacheStoreHead(_ fields: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>) {
        let i = s.pointee.cache.fill
        let cache = responseCache
        guard pool.append(fields, to: &cache[i].buffer) else { dropCacheFill(s); return }
        cache[i].headLength = fields.count
        cache[i].status = Int32(responseParser.statusCode)
        cache[i].responseTime = HTTPDateField.wallNanos()
        cache[i].readHead(varyDigest: s.pointee.cache.vary)
        s.pointee.cache.decoder.reset()
    }

    /// Body bytes (payload) of a response being stored.
    @inline(__always)
    func cacheBody(_ bytes: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>) {
        guard s.pointee.cache.fill >= 0 else { return }
        let limit = hcm(s)?.cache?.bodyLimit ?? 0
        if !responseCache.append(s.pointee.cache.fill, bytes, limit: limit) { dropCacheFill(s) }
    }

    /// Chunked body bytes (framing included) of a response being stored: their payload.
    func cacheChunked(_ bytes: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>) {
        guard s.pointee.cache.fill >= 0 else { return }
        var used = 0
        while used < bytes.count && s.pointee.cache.fill >= 0 {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[used...])
            switch s.pointee.cache.decoder.decode(rest) {
            case .data(let range, let consumed):
                cacheBody(UnsafeRawBufferPointer(rebasing: rest[range]), s)
                used += consumed
            case .needMore, .done:
                return
            case .failure:
                dropCacheFill(s)
                return
            }
        }
    }

    /// The response ended whole: its entry becomes findable.
    func commitCacheFill(_ s: UnsafeMutablePointer<Stream>) {
        let i = s.pointee.cache.fill
        guard i >= 0 else { return }
        s.pointee.cache.fill = -1
        if responseCache[i].headLength == 0 { responseCache.remove(i); return }  // no head was stored
        responseCache.commit(i)
    }

    func dropCacheFill(_ s: UnsafeMutablePointer<Stream>) {
        let i = s.pointee.cache.fill
        guard i >= 0 else { return }
        s.pointee.cache.fill = -1
        responseCache.remove(i)
    }

    // MARK: validation

    /// Fields Envoy's simple cache never takes from a 304 when it refreshes an entry.
    private static func keptOnUpdate(_ b: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 13: ASCII.equalsCaseInsensitive(b, name, "content-range")
        case 14: ASCII.equalsCaseInsensitive(b, name, "content-length")
        case 4: ASCII.equalsCaseInsensitive(b, name, "etag") || ASCII.equalsCaseInsensitive(b, name, "vary")
        default: false
        }
    }

    /// A 304 for a stored entry: the client gets the entry's status and body with the 304's fields
    /// first (content-length dropped), then the stored fields the 304 lacks (age dropped), as
    /// Envoy's `processSuccessfulValidation`; the entry takes the merged fields unless the 304
    /// carries a different etag.
    private func answerValidated(_ i: Int32, _ head: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>,
                                 _ d: UnsafeMutablePointer<Downstream>) -> Bool {
        guard let http = hcm(s) else { return false }
        let p = responseParser
        let cache = responseCache
        let stored = cache[i].head
        let capacity = head.count + stored.count + 128
        var merged = pool.acquire(minimumCapacity: capacity)
        defer { pool.release(&merged) }
        var w = ByteWriter(merged.base!, capacity: capacity)
        let setsServiceTime = !http.suppressEnvoyHeaders && s.pointee.upstreamServiceNanos >= 0
        var etagMatches = true
        for k in 0..<p.headerCount {
            let name = p.headerNameRange(at: k)
            switch FieldClass.of(head, name) {
            case .hopByHop, .contentLength: continue
            case .server where http.serverTransformation == .overwrite: continue
            default: break
            }
            if setsServiceTime && name.count == 29 && ASCII.equalsCaseInsensitive(head, name, "x-envoy-upstream-service-time") { continue }
            let value = p.headerValueRange(at: k)
            if name.count == 4 && ASCII.equalsCaseInsensitive(head, name, "etag") {
                let storedEtag = cache[i].etag.map { UnsafeRawBufferPointer(rebasing: stored[$0]) }
                etagMatches = storedEtag.map { $0.elementsEqual(UnsafeRawBufferPointer(rebasing: head[value])) } ?? false
            }
            w.putLowercased(UnsafeRawBufferPointer(rebasing: head[name]))
            w.put(": ")
            w.put(UnsafeRawBufferPointer(rebasing: head[value]))
            w.crlf()
        }
        if setsServiceTime {
            w.put("x-envoy-upstream-service-time: ")
            w.putDecimal(Int(s.pointee.upstreamServiceNanos / 1_000_000))
            w.crlf()
        }
        var lines = FieldLines(stored)
        while let f = lines.next() {
            if f.name.count == 3 && ASCII.equalsCaseInsensitive(stored, f.name, "age") { continue }
            var present = false
            for k in 0..<p.headerCount where ASCII.equalsCaseInsensitive(stored, f.name, head, p.headerNameRange(at: k)) {
                present = true
                break
            }
            if setsServiceTime && f.name.count == 29 && ASCII.equalsCaseInsensitive(stored, f.name, "x-envoy-upstream-service-time") { present = true }
            if !present { w.put(UnsafeRawBufferPointer(rebasing: stored[f.line])) }
        }
        guard !w.overflowed else { return false }
        merged.count = w.count
        s.pointee.flags.insert(.responseFromCacheFilter)
        s.pointee.details = .responseFromCacheFilter
        s.pointee.cache.upstreamStatus = 304
        let closing = !s.pointee.keepAlive || d.pointee.closeAfterFlush || !s.pointee.requestComplete
        writeStoredResponse(cache[i], fields: merged.bytes, age: nil, closing: closing, s, d)
        if etagMatches || !p.hasHeader(head, "etag") { refreshEntry(i, merged: merged.bytes, s) }
        return true
    }

    /// The entry's fields after a validation: those Envoy keeps (content-length, content-range,
    /// etag, vary) in their order, then the merged fields; the response time is now.
    private func refreshEntry(_ i: Int32, merged: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>) {
        let cache = responseCache
        let e = cache[i]
        let stored = e.head
        var buffer = pool.acquire(minimumCapacity: e.keyLength + stored.count + merged.count + e.body.count)
        guard pool.append(e.key, to: &buffer) else { pool.release(&buffer); return }
        var kept = FieldLines(stored)
        while let f = kept.next() {
            guard Self.keptOnUpdate(stored, f.name) else { continue }
            _ = pool.append(UnsafeRawBufferPointer(rebasing: stored[f.line]), to: &buffer)
        }
        var fresh = FieldLines(merged)
        while let f = fresh.next() {
            guard !Self.keptOnUpdate(merged, f.name) else { continue }
            _ = pool.append(UnsafeRawBufferPointer(rebasing: merged[f.line]), to: &buffer)
        }
        let headLength = buffer.count - e.keyLength
        guard pool.append(e.body, to: &buffer) else { pool.release(&buffer); return }
        cache.replaceBuffer(i, with: &buffer)
        cache[i].headLength = headLength
        cache[i].responseTime = HTTPDateField.wallNanos()
        cache[i].readHead(varyDigest: e.vary ?? s.pointee.cache.vary)
    }
}

extension ResponseHeadParser {
    func hasHeader(_ head: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
        for k in 0..<headerCount where ASCII.equalsCaseInsensitive(head, headerNameRange(at: k), name) { return true }
        return false
    }
}
