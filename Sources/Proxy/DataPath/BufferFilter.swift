/// `envoy.filters.http.buffer` on the data path. decodeHeaders: a request with a body stops the
/// chain (`StreamDecision.buffer`); the worker keeps a copy of the head and leaves the body in the
/// connection's input until it is complete (`ProxyWorker.bufferedBodyState`), then resumes the
/// chain at the next filter, which forwards head and body together. A body above the limit gets
/// 413 `Payload Too Large` and the connection closes, as Envoy 1.40 (its connection manager's
/// reply when a filter's buffer overflows); `http.<stat_prefix>.downstream_rq_too_large` counts it.
enum BufferFilter {
    @inline(__always)
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: BufferPlan, index: Int) -> FilterStatus {
        guard ctx.requestHasBody else { return .continue }
        let limit = ctx.route.flatMap { plan.perRoute[$0.index] } ?? plan.maxBytes
        guard limit > 0 else { return .continue }  // BufferPerRoute disabled
        ctx.decision = .buffer(maxBytes: limit, resumeAt: index + 1)
        return .stopIteration
    }
}

/// The filter in a chain: its limit and, per route index, a `BufferPerRoute` override (0: disabled).
public struct BufferPlan: Sendable {
    let maxBytes: Int
    let perRoute: [Int?]

    /// The largest body any route buffers (the worker's input buffer must hold it).
    var largest: Int { perRoute.reduce(maxBytes) { max($0, $1 ?? 0) } }
}

/// Where a buffered request body stands, from the bytes after its head.
enum BufferedBody {
    case waiting
    case complete
    case tooLarge
    case malformed
}

extension ProxyWorker {
    /// Looks at the body bytes held so far without consuming them (a copy of the chunk decoder);
    /// also the payload bytes seen. A complete chunked body is then forwarded without its
    /// framing, under `content-length` (`Stream.dechunkedLength`), as Envoy's buffer filter does.
    func bufferedBodyState(_ bytes: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>) -> (BufferedBody, payload: Int) {
        let limit = s.pointee.bufferLimit
        switch s.pointee.requestBody {
        case .length:
            let payload = min(bytes.count, s.pointee.requestRemaining)
            if payload > limit { return (.tooLarge, payload) }
            return (payload >= s.pointee.requestRemaining ? .complete : .waiting, payload)
        case .chunked:
            var decoder = s.pointee.requestDecoder
            let skim = decoder.skim(bytes)
            if skim.failure != nil { return (.malformed, skim.payload) }
            if skim.payload > limit { return (.tooLarge, skim.payload) }
            if skim.done { s.pointee.dechunkedLength = skim.payload }
            return (skim.done ? .complete : .waiting, skim.payload)
        default:
            return (.complete, 0)
        }
    }

    /// The body outgrew the buffer: Envoy's 413 and close (the bytes read so far logged as received).
    func payloadTooLarge(_ received: Int, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        inc(httpStats(d).downstreamRqTooLarge)
        if let s = stream(of: d) {
            s.pointee.buffering = false
            s.pointee.bytesReceived += received
        }
        localReply(LocalReply(status: 413, body: .text("Payload Too Large"), flags: [], details: .requestPayloadTooLarge), token, d, loop)
    }
}
