import Glibc
import HTTP1

// Envoy 1.40's wording and per-request decisions that the differential suite compares
// (Tests/DifferentialTests): local-reply bodies, response details, the request id.

extension TCPKeepaliveConfig {
    /// SO_KEEPALIVE on, and the probes / idle time / interval that are set (unset ones keep the
    /// kernel's defaults), as Envoy applies `tcp_keepalive` to an upstream socket.
    func apply(to fd: Int32) {
        func set(_ level: Int32, _ name: Int32, _ value: Int) {
            var v = Int32(value)
            _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        set(SOL_SOCKET, SO_KEEPALIVE, 1)
        if let probes { set(Int32(IPPROTO_TCP), TCP_KEEPCNT, probes) }
        if let timeSeconds { set(Int32(IPPROTO_TCP), TCP_KEEPIDLE, timeSeconds) }
        if let intervalSeconds { set(Int32(IPPROTO_TCP), TCP_KEEPINTVL, intervalSeconds) }
    }
}

extension LocalReplyText {
    /// The body of a local reply to a malformed or refused request.
    static func forDownstreamError(_ status: Int) -> StaticString {
        switch status {
        case 400: return badRequest
        case 426: return upgradeRequired
        case 431: return requestHeaderFieldsTooLarge
        default: return ""
        }
    }
}

extension ResponseDetails {
    /// `%RESPONSE_CODE_DETAILS%` for a request the codec rejects.
    static func of(_ error: HTTPParseError) -> ResponseDetails {
        switch error.kind {
        case .contentLengthWithTransferEncoding: return .contentLengthAndChunked
        case .unsupportedVersion: return .lowVersion
        default: return .downstreamProtocolError
        }
    }
}

extension LocalReply {
    /// The status for a request the codec rejects: an unknown HTTP/1.x version gets 426 as from
    /// Envoy's codec (which reads it as HTTP/1.0), the rest the parser's status.
    static func downstreamStatus(_ error: HTTPParseError) -> Int {
        error.kind == .unsupportedVersion ? 426 : error.status
    }

    /// 503 UF after a failed or timed-out connect, worded as Envoy's.
    static func connectFailure(timedOut: Bool, error: Int32, tls: TLSFailure? = nil, retried: Bool = false) -> LocalReply {
        if let tls, !timedOut {
            // Envoy's body names no transport failure; its details do (docs/tls.md).
            return LocalReply(status: 503, body: .text(retried ? LocalReplyText.connectFailureRetried : LocalReplyText.connectFailure),
                              flags: .upstreamConnectionFailure, details: tls == .verify ? .tlsVerifyFailure : .tlsFailure)
        }
        if timedOut {
            return LocalReply(status: 503, body: .text(retried ? LocalReplyText.connectTimeoutRetried : LocalReplyText.connectTimeout),
                              flags: .upstreamConnectionFailure, details: .connectTimeout)
        }
        return LocalReply(status: 503, body: .text(retried ? LocalReplyText.connectFailureRetried : LocalReplyText.connectFailure),
                          flags: .upstreamConnectionFailure, details: error == ECONNREFUSED ? .connectRefused : .connectFailure)
    }
}

extension Stream {
    /// The generated x-request-id, when the request came without one.
    var generatedID: (UInt64, UInt64)? { generatedRequestID ? requestID : nil }
}

extension ProxyWorker {
    /// codec_type AUTO makes Envoy speak HTTP/2 to a client that opens with the HTTP/2 preface;
    /// Ballast speaks HTTP/1.1 only, so it answers the preface in HTTP/2 terms (an empty SETTINGS
    /// frame, then GOAWAY with HTTP_1_1_REQUIRED and a reason), counts it and closes.
    func refusedHTTP2Preface(_ bytes: UnsafeRawBufferPointer, _ d: UnsafeMutablePointer<Downstream>) -> Bool {
        let preface: StaticString = "PRI * HTTP/2.0\r\n"
        let matches = preface.withUTF8Buffer { p in
            bytes.count >= p.count && (0..<p.count).allSatisfy { bytes[$0] == p[$0] }
        }
        guard matches else { return false }
        _ = http2RefusalFrames.withUnsafeBytes { pool.append($0, to: &d.pointee.pending) }
        d.pointee.beginClosing()
        inc(httpStats(d).http2PrefaceRefused)
        return true
    }


    /// Relays a chunked upstream body to an HTTP/1.0 client: payload only, no framing.
    func relayDechunked(_ rest: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>,
                        _ d: UnsafeMutablePointer<Downstream>) -> (used: Int, done: Bool, failed: Bool) {
        var used = 0
        while used < rest.count {
            switch s.pointee.responseDecoder.decode(UnsafeRawBufferPointer(rebasing: rest[used...])) {
            case .data(let range, let consumed):
                let payload = UnsafeRawBufferPointer(rebasing: rest[(used + range.lowerBound)..<(used + range.upperBound)])
                _ = hcm(s)?.filters.encodeData(payload, endStream: false)
                _ = pool.append(payload, to: &d.pointee.pending)
                s.pointee.bytesSent += range.count
                used += consumed
            case .needMore(let consumed):
                return (used + consumed, false, false)
            case .done(let consumed):
                return (used + consumed, true, false)
            case .failure:
                return (used, false, true)
            }
        }
        return (used, false, false)
    }

    /// Per-request facts taken from the head before filters run: the version, and an
    /// x-request-id generated when the client sent none (Envoy generates it for every request,
    /// direct responses and 404s included, so `%REQ(X-REQUEST-ID)%` always has a value).
    func requestBegan(_ head: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>) {
        let p = requestParser
        s.pointee.http10 = p.pointee.version == .http1_0
        guard let http = hcm(s), http.generateRequestID else { return }
        for i in 0..<p.pointee.headerCount {
            let name = p.pointee.headerNameRange(at: i)
            if name.count == 12 && ASCII.equalsCaseInsensitive(head, name, "x-request-id") { return }
        }
        s.pointee.generatedRequestID = true
        s.pointee.requestID = (rng.next(), rng.next())
    }
}

/// SETTINGS (empty) + GOAWAY(last stream 0, HTTP_1_1_REQUIRED = 0xd, a reason as debug data).
let http2RefusalFrames: [UInt8] = {
    let reason = Array("ballast speaks HTTP/1.1 only; HTTP/2 is not supported".utf8)
    let length = 8 + reason.count
    var out: [UInt8] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0]
    out += [UInt8(length >> 16), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF), 0x7, 0, 0, 0, 0, 0]
    out += [0, 0, 0, 0, 0, 0, 0, 0x0D]
    return out + reason
}()
