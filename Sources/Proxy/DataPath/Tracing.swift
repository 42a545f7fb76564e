import EventLoop
import Glibc
import HTTP1

/// A connection manager's `tracing`, compiled: Envoy 1.40's sampling inputs (per 10,000, as its
/// runtime compares them) and the Zipkin reporter's target.
public final class TracingPlan: Sendable {
    let randomSampling: UInt64
    let clientSampling: UInt64
    let overallSampling: UInt64
    let traceID128: Bool
    let maxPathTagLength: Int
    /// Cluster index of `collector_cluster` in the plane (-1: missing, reports skipped).
    public let collectorCluster: Int
    public let collectorEndpoint: String
    public let collectorHostname: String

    init(_ c: HTTPTracingConfig, collectorCluster: Int) {
        func tenThousandths(_ percent: Double) -> UInt64 { UInt64((percent * 100).rounded()) }
        randomSampling = tenThousandths(c.randomSampling)
        clientSampling = tenThousandths(c.clientSampling)
        overallSampling = tenThousandths(c.overallSampling)
        traceID128 = c.zipkin.traceID128Bit
        maxPathTagLength = c.maxPathTagLength
        self.collectorCluster = collectorCluster
        collectorEndpoint = c.zipkin.collectorEndpoint
        collectorHostname = c.zipkin.collectorHostname
        precondition(MemoryLayout<TraceContext>.size <= TraceRecordLayout.contextBytes, "TraceContext outgrew its room")
    }
}

/// Envoy's trace reasons, as the 15th character of a UUID x-request-id carries them.
enum TraceReason: UInt8 {
    case notTraceable, sampled, serviceForced, clientForced

    static func of(_ c: UInt8) -> TraceReason {
        switch c {
        case 0x39: .sampled        // '9'
        case 0x61: .serviceForced  // 'a'
        case 0x62: .clientForced   // 'b'
        default: .notTraceable
        }
    }

    var uuidCharacter: UInt8 {
        switch self {
        case .notTraceable: 0x34  // '4'
        case .sampled: 0x39
        case .serviceForced: 0x61
        case .clientForced: 0x62
        }
    }
}

/// A stream's span: its B3 ids and what goes upstream. Plain values in the `Stream`.
struct TraceContext {
    /// A span exists: B3 fields go upstream (unless the context came in a `b3` field, passed on as is).
    var active = false
    /// The span is reported to the collector.
    var sampled = false
    var singleHeader = false
    var wide = false
    var hasParent = false
    /// The request named the span in x-envoy-decorator-operation (no decorator header goes back).
    var operationOverride = false
    var traceHigh: UInt64 = 0
    var traceLow: UInt64 = 0
    var spanID: UInt64 = 0
    var parentID: UInt64 = 0
    /// The x-request-id's 15th character as sent upstream (0: left as it is).
    var requestIDReason: UInt8 = 0
}

/// The fields of a span record after its fixed part (`TraceRecordLayout.fixedBytes`): each a
/// 2-byte length and bytes, in this order.
enum TraceField: Int, CaseIterable {
    case operationOverride, scheme, host, path, method, userAgent, downstreamCluster, clientTraceID, requestID, peer, decorator
}

enum TraceRecordLayout {
    /// flags (1: 128-bit trace id, 2: has parent), trace id high, low, span id, parent id.
    static let fixedBytes = 33
    /// The stream's `TraceContext` at the start of its trace buffer; the record follows.
    static let contextBytes = 64
    /// The room one record's fields get in the ring (a longer field is cut); context and record
    /// fill one 4 KiB pooled buffer.
    static let recordBytes = 4096 - contextBytes
    static let fieldLimit = 256
}

extension ProxyWorker {
    /// Starts the stream's span, as Envoy 1.40's connection manager and Zipkin tracer do at the
    /// request head: the trace decision from x-request-id (its first 8 hex digits decide the
    /// sampling, its 15th character carries the reason), the B3 context the request brings, and
    /// (when sampled) the request fields the span's tags need, captured in a pooled buffer.
    func beginTrace(_ head: UnsafeRawBufferPointer, _ tracing: TracingPlan, _ s: UnsafeMutablePointer<Stream>,
                    _ d: UnsafeMutablePointer<Downstream>, _ counters: HTTPCounters) {
        let p = requestParser
        var requestID: Range<Int>? = nil, userAgent: Range<Int>? = nil, proto: Range<Int>? = nil
        var downstreamCluster: Range<Int>? = nil, operation: Range<Int>? = nil
        var traceID: Range<Int>? = nil, spanID: Range<Int>? = nil, parentID: Range<Int>? = nil, sampledField: Range<Int>? = nil
        var single: Range<Int>? = nil
        var clientTraceID: Range<Int>? = nil
        for i in 0..<p.pointee.headerCount {
            let n = p.pointee.headerNameRange(at: i)
            let v = p.pointee.headerValueRange(at: i)
            func named(_ s: StaticString) -> Bool { n.count == s.utf8CodeUnitCount && ASCII.equalsCaseInsensitive(head, n, s) }
            switch n.count {
            case 2: if named("b3"), single == nil { single = v }
            case 10: if named("user-agent"), userAgent == nil { userAgent = v }
            case 11: if named("x-b3-spanid"), spanID == nil { spanID = v }
            case 12:
                if named("x-request-id") { if requestID == nil { requestID = v } }
                else if named("x-b3-traceid") { if traceID == nil { traceID = v } }
                else if named("x-b3-sampled"), sampledField == nil { sampledField = v }
            case 17:
                if named("x-forwarded-proto") { if proto == nil { proto = v } }
                else if named("x-b3-parentspanid") { if parentID == nil { parentID = v } }
                else if named("x-client-trace-id"), clientTraceID == nil { clientTraceID = v }
            case 27: if named("x-envoy-decorator-operation"), operation == nil { operation = v }
            case 34: if named("x-envoy-downstream-service-cluster"), downstreamCluster == nil { downstreamCluster = v }
            default: break
            }
        }
        // x-envoy-force-trace would force a trace on an internal request; Envoy 1.40 counts no
        // request as internal without `internal_address_config` (which Ballast refuses), and
        // strips the field, so it never forces one here.

        // The trace decision (Envoy's mutateTracingRequestHeader, then its stats).
        var reason = TraceReason.notTraceable
        var idBytes: (UInt64, Int) = (0, 0)  // the first 8 hex digits' value, and the id's length
        var reasonCharacter: UInt8 = 0
        if let r = requestID {
            idBytes = (Self.hex(head, r.lowerBound..<min(r.upperBound, r.lowerBound + 8)) ?? UInt64.max, r.count)
            if r.count == 36 { reason = TraceReason.of(head[r.lowerBound + 14]) }
        } else if s.pointee.generatedRequestID {
            idBytes = (s.pointee.requestID.0 >> 32, 36)
        }
        if idBytes.1 >= 8 && idBytes.0 != UInt64.max {
            let result = idBytes.0 % 10_000
            if reason == .notTraceable {
                if clientTraceID != nil && rng.next() % 10_000 < tracing.clientSampling {
                    reason = .clientForced
                } else if result < tracing.randomSampling {
                    reason = .sampled
                }
            }
            if !(result < tracing.overallSampling) { reason = .notTraceable }
            if idBytes.1 == 36 { reasonCharacter = reason.uuidCharacter }
        }
        switch reason {
        case .notTraceable: inc(counters.tracingNotTraceable)
        case .sampled: inc(counters.tracingRandomSampling)
        case .serviceForced: inc(counters.tracingServiceForced)
        case .clientForced: inc(counters.tracingClientEnabled)
        }

        // The B3 context (Envoy's Zipkin span-context extractor); a malformed one means no span.
        var t = TraceContext()
        t.requestIDReason = reasonCharacter
        var sampled = reason != .notTraceable
        var haveContext = false
        if let b = single {
            guard let parsed = Self.parseSingleB3(head, b) else { storeTrace(t, s); return }
            if let flag = parsed.sampled { sampled = flag }
            if parsed.hasIDs {
                haveContext = true
                t.singleHeader = true
                (t.wide, t.traceHigh, t.traceLow, t.spanID) = (parsed.wide, parsed.high, parsed.low, parsed.span)
                if let parent = parsed.parent { t.hasParent = true; t.parentID = parent }
            }
        } else {
            if let f = sampledField {
                sampled = (f.count == 1 && (head[f.lowerBound] == 0x31 || head[f.lowerBound] == 0x64))
                    || (f.count == 4 && ASCII.equalsCaseInsensitive(head, f, "true"))
            }
            if let tid = traceID, let sid = spanID {
                guard let ids = Self.traceID(head, tid), let span = Self.hex(head, sid) else { storeTrace(t, s); return }
                haveContext = true
                (t.wide, t.traceHigh, t.traceLow, t.spanID) = (ids.wide, ids.high, ids.low, span)
                if let pid = parentID {
                    guard let parent = Self.hex(head, pid) else { storeTrace(t, s); return }
                    t.hasParent = true
                    t.parentID = parent
                }
            }
        }
        if !haveContext {
            // A root span: its id is the trace id (Envoy's Zipkin tracer).
            let id = rng.next()
            t.traceLow = id
            t.spanID = id
            if tracing.traceID128 { t.wide = true; t.traceHigh = rng.next() }
        }
        t.active = true
        t.sampled = sampled
        if let op = operation, op.count > 0 { t.operationOverride = true }
        guard let base = storeTrace(t, s) else { return }
        guard sampled else { return }

        // The span's request-side tags, captured now (the head is gone when the stream ends).
        let target = requestTarget(head, d)
        let recordBase = base + TraceRecordLayout.contextBytes
        var w = ByteWriter(recordBase, capacity: TraceRecordLayout.recordBytes)
        w.put(byte: (t.wide ? 1 : 0) | (t.hasParent ? 2 : 0))
        func id(_ v: UInt64) {
            var le = v.littleEndian
            withUnsafeBytes(of: &le) { w.put($0) }
        }
        id(t.traceHigh)
        id(t.traceLow)
        id(t.spanID)
        id(t.parentID)
        func field(_ r: Range<Int>?, limit: Int = TraceRecordLayout.fieldLimit) {
            let n = min(r?.count ?? 0, limit)
            w.put(byte: UInt8(n & 0xFF))
            w.put(byte: UInt8(n >> 8))
            if let r, n > 0 { w.put(UnsafeRawBufferPointer(rebasing: head[r.lowerBound..<(r.lowerBound + n)])) }
        }
        func literal(_ s: StaticString) {
            w.put(byte: UInt8(s.utf8CodeUnitCount))
            w.put(byte: 0)
            w.put(s)
        }
        field(t.operationOverride ? operation : nil)
        if let proto { field(proto) } else if d.pointee.tls.versionNumber != 0 { literal("https") } else { literal("http") }
        field(target.authority ?? p.pointee.hostRange)
        // The path as Envoy's :path holds it (origin-form), cut at max_path_tag_length.
        field(target.origin, limit: min(tracing.maxPathTagLength, TraceRecordLayout.recordBytes - 2048))
        field(p.pointee.methodRange)
        field(userAgent)
        field(downstreamCluster)
        field(clientTraceID)
        if let requestID {
            let start = w.count
            field(requestID)
            if requestID.count == 36, t.requestIDReason != 0 { recordBase.storeBytes(of: t.requestIDReason, toByteOffset: start + 2 + 14, as: UInt8.self) }
        } else if s.pointee.generatedRequestID {
            w.put(byte: 36)
            w.put(byte: 0)
            let start = w.count
            w.putUUID(s.pointee.requestID.0, s.pointee.requestID.1)
            if t.requestIDReason != 0 { recordBase.storeBytes(of: t.requestIDReason, toByteOffset: start + 14, as: UInt8.self) }
        } else {
            field(nil)
        }
        // peer.address: the client's IP.
        let peer = peerAddress(d)
        let lengthAt = w.count
        w.put(byte: 0)
        w.put(byte: 0)
        let peerStart = w.count
        if peer.family > 0 { peer.write(&w) }
        recordBase.storeBytes(of: UInt8(w.count - peerStart), toByteOffset: lengthAt, as: UInt8.self)
        if w.overflowed {
            t.sampled = false
            storeTrace(t, s)
            return
        }
        s.pointee.traceFields.count = TraceRecordLayout.contextBytes + w.count
    }

    /// The stream's span context (none without tracing).
    func traceContext(_ s: UnsafeMutablePointer<Stream>) -> TraceContext {
        guard let base = s.pointee.traceFields.base else { return TraceContext() }
        return base.load(as: TraceContext.self)
    }

    /// Keeps `t` at the start of the stream's trace buffer (taken from the pool the first time).
    @discardableResult
    func storeTrace(_ t: TraceContext, _ s: UnsafeMutablePointer<Stream>) -> UnsafeMutableRawPointer? {
        if !s.pointee.traceFields.isAllocated {
            guard pool.reserve(TraceRecordLayout.contextBytes + TraceRecordLayout.recordBytes, in: &s.pointee.traceFields) != nil else { return nil }
            s.pointee.traceFields.count = TraceRecordLayout.contextBytes
        }
        let base = s.pointee.traceFields.base!
        base.storeBytes(of: t, as: TraceContext.self)
        return base
    }

    /// Up to 16 hex digits.
    static func hex(_ head: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt64? {
        guard r.count > 0, r.count <= 16 else { return nil }
        var v: UInt64 = 0
        for i in r {
            let c = head[i]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x61...0x66: d = c - 0x57
            case 0x41...0x46: d = c - 0x37
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }

    /// A trace id: up to 16 hex digits, or 32 (128 bits).
    static func traceID(_ head: UnsafeRawBufferPointer, _ r: Range<Int>) -> (wide: Bool, high: UInt64, low: UInt64)? {
        if r.count == 32 {
            guard let high = hex(head, r.lowerBound..<(r.lowerBound + 16)), let low = hex(head, (r.lowerBound + 16)..<r.upperBound) else { return nil }
            // A zero high half prints as a 64-bit id, as Envoy's Zipkin tracer does.
            return (high != 0, high, low)
        }
        guard let low = hex(head, r) else { return nil }
        return (false, 0, low)
    }

    struct SingleB3 {
        var sampled: Bool?
        var hasIDs = false
        var wide = false
        var high: UInt64 = 0, low: UInt64 = 0, span: UInt64 = 0
        var parent: UInt64?
    }

    /// `b3: {traceid}-{spanid}[-{sampled}[-{parentid}]]`, or a lone sampling state (0, 1, d).
    static func parseSingleB3(_ head: UnsafeRawBufferPointer, _ r: Range<Int>) -> SingleB3? {
        var out = SingleB3()
        func state(_ c: UInt8) -> Bool? { c == 0x30 ? false : (c == 0x31 || c == 0x64) ? true : nil }
        if r.count == 1 {
            guard let s = state(head[r.lowerBound]) else { return nil }
            out.sampled = s
            return out
        }
        // At most four dash-separated parts, on the stack (no array per request).
        var parts = (0..<0, 0..<0, 0..<0, 0..<0)
        var count = 0
        var start = r.lowerBound
        func add(_ part: Range<Int>) -> Bool {
            switch count {
            case 0: parts.0 = part
            case 1: parts.1 = part
            case 2: parts.2 = part
            case 3: parts.3 = part
            default: return false
            }
            count += 1
            return true
        }
        for i in r where head[i] == 0x2D {
            guard add(start..<i) else { return nil }
            start = i + 1
        }
        guard add(start..<r.upperBound), count >= 2, parts.0.count == 16 || parts.0.count == 32, parts.1.count == 16,
              let ids = traceID(head, parts.0), let span = hex(head, parts.1) else { return nil }
        out.hasIDs = true
        (out.wide, out.high, out.low, out.span) = (ids.wide, ids.high, ids.low, span)
        if count >= 3 {
            guard parts.2.count == 1, let s = state(head[parts.2.lowerBound]) else { return nil }
            out.sampled = s
        }
        if count == 4 {
            guard parts.3.count == 16, let parent = hex(head, parts.3) else { return nil }
            out.parent = parent
        }
        return out
    }

    /// The B3 fields a traced request takes upstream (Envoy's Zipkin injector).
    func writeB3(_ t: TraceContext, _ w: inout ByteWriter) {
        guard t.active, !t.singleHeader else { return }
        w.put("x-b3-traceid: ")
        if t.wide { w.putHex16(t.traceHigh) }
        w.putHex16(t.traceLow)
        w.put("\r\nx-b3-spanid: ")
        w.putHex16(t.spanID)
        w.crlf()
        if t.hasParent {
            w.put("x-b3-parentspanid: ")
            w.putHex16(t.parentID)
            w.crlf()
        }
        w.put(t.sampled ? "x-b3-sampled: 1\r\n" : "x-b3-sampled: 0\r\n")
    }

    /// A request field the tracer replaces (B3) or consumes (x-envoy-decorator-operation): not
    /// copied upstream as it came.
    static func tracerOwned(_ head: UnsafeRawBufferPointer, _ name: Range<Int>, _ t: TraceContext) -> Bool {
        switch name.count {
        case 11: return !t.singleHeader && t.active && ASCII.equalsCaseInsensitive(head, name, "x-b3-spanid")
        case 12: return !t.singleHeader && t.active && (ASCII.equalsCaseInsensitive(head, name, "x-b3-traceid") || ASCII.equalsCaseInsensitive(head, name, "x-b3-sampled"))
        case 17: return !t.singleHeader && t.active && ASCII.equalsCaseInsensitive(head, name, "x-b3-parentspanid")
        case 27: return ASCII.equalsCaseInsensitive(head, name, "x-envoy-decorator-operation")
        default: return false
        }
    }

    /// `x-envoy-decorator-operation` for the response: the route's decorator, unless the request
    /// named the operation itself or `propagate` is false.
    func decoratorForResponse(_ s: UnsafeMutablePointer<Stream>) -> [UInt8]? {
        guard let http = hcm(s), http.tracing != nil, !traceContext(s).operationOverride, s.pointee.route >= 0,
              Int(s.pointee.route) < http.decorators.count, let d = http.decorators[Int(s.pointee.route)], d.propagate else { return nil }
        return d.operation
    }

    /// Ends the stream's span: a sampled one goes into the worker's span ring with the response
    /// side (status, sizes, flags, upstream cluster) and the route's decorator.
    func finishTrace(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        defer { pool.release(&s.pointee.traceFields) }
        guard traceContext(s).sampled, s.pointee.traceFields.count > TraceRecordLayout.contextBytes, let ring = traceRing else { return }
        var name: [UInt8]? = nil
        if let plan = hcm(s), s.pointee.route >= 0, Int(s.pointee.route) < plan.decorators.count {
            name = plan.decorators[Int(s.pointee.route)]?.operation
        }
        let n = min(name?.count ?? 0, TraceRecordLayout.fieldLimit)
        guard let base = pool.reserve(2 + n, in: &s.pointee.traceFields) else { return }
        base.storeBytes(of: UInt8(n & 0xFF), as: UInt8.self)
        base.storeBytes(of: UInt8(n >> 8), toByteOffset: 1, as: UInt8.self)
        if let name, n > 0 { name.withUnsafeBytes { (base + 2).copyMemory(from: $0.baseAddress!, byteCount: n) } }
        s.pointee.traceFields.count += 2 + n
        var r = AccessRecord()
        r.worker = Int32(index)
        r.listener = Int32(listenerPlan.index)
        r.startNanos = s.pointee.startNanos
        r.durationNanos = loop.now - s.pointee.startNanos
        r.responseCode = s.pointee.status
        r.flags = s.pointee.flags
        r.bytesReceived = s.pointee.bytesReceived
        r.bytesSent = s.pointee.bytesSent
        r.cluster = s.pointee.hostPool >= 0 ? s.pointee.cluster : -1
        r.http10 = s.pointee.http10
        r.generation = s.pointee.generation
        ring.push(r, extra: UnsafeRawBufferPointer(rebasing: s.pointee.traceFields.bytes[TraceRecordLayout.contextBytes...]))
    }
}

extension ByteWriter {
    /// 16 lower-case hex digits.
    mutating func putHex16(_ v: UInt64) {
        guard count + 16 <= capacity else { overflowed = true; return }
        for i in 0..<16 {
            let d = UInt8(truncatingIfNeeded: (v >> UInt64(60 - 4 * i)) & 0xF)
            put(byte: d < 10 ? 0x30 &+ d : 0x57 &+ d)
        }
    }
}
