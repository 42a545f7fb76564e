import EventLoop
import HTTP1

/// A mirrored copy of a request (`request_mirror_policies`) on its way to the mirror cluster:
/// fire and forget. Lives in the worker's `shadows` table from the forward of the main request
/// until its response has been read and dropped (or it failed or timed out); its upstream
/// connection's `owner` is its token. While the main request's body is still arriving the main
/// stream holds the chain of its shadows (`Stream.shadow`, `next`), and body bytes are copied to
/// each; the main request never waits for a shadow. docs/mirroring.md. An ext_authz check is a
/// shadow too (`check` set): sent over the same pools, its answer kept for the waiting stream
/// (docs/ext-authz.md).
struct Shadow {
    var cluster: Int32 = -1
    var hostPool: Int32 = -1
    /// The host pool whose per-host request counters (`/clusters` rq_*) carry the copy in flight,
    /// or -1 (as a stream's `attemptPool`).
    var attemptPool: Int32 = -1
    /// The upstream connection serving (or connecting for) it, or 0.
    var upstream: UInt64 = 0
    /// The next shadow of the same request (several policies), or 0.
    var next: UInt64 = 0
    /// The head for the mirror, until a connection takes it.
    var requestHead = ByteBuffer.empty
    /// Body bytes that came before a connection did (bounded by `ProxyWorker.mirrorBufferLimit`).
    var body = ByteBuffer.empty
    /// The main request has been read whole (the copy is complete).
    var requestComplete = false
    /// The main stream still holds this shadow in its chain (body bytes may follow).
    var attached = true
    /// Finished (answered, failed, dropped) while still attached: the slot waits for the main
    /// stream to let go of the chain.
    var done = false
    var queued = false
    var holdsRequest = false
    var holdsPending = false
    var isHEAD = false
    /// The route timeout (0: none), and its deadline once the request is complete (0: none).
    var timeoutNanos: Int64 = 0
    var deadline: Int64 = 0
    // The response, read and dropped.
    var responseHeadDone = false
    var responseBody = BodyKind.none
    var responseRemaining = 0
    var responseDecoder = ChunkedDecoder()
    var upstreamKeepAlive = false
    var status: Int32 = 0
    /// When it was started (its cluster's `upstream_rq_time` runs to the response head).
    var startNanos: Int64 = 0
    /// An ext_authz check rather than a mirror: the downstream (and its stream) waiting for the
    /// answer, 0 for mirrors. A check keeps its response (`response`, at most
    /// `ProxyWorker.authzResponseLimit` bytes; `responseOverflow` past it) instead of dropping it.
    var check: UInt64 = 0
    var checkStream: UInt64 = 0
    var response = ByteBuffer.empty
    var responseOverflow = false
}

/// The head a mirror gets, from the one encoded for the main cluster, as Envoy 1.40's shadow
/// writer and its async client send it: Host (or :authority) with `-shadow` appended to the host
/// part (before a port), `x-envoy-internal: true`, and the async client's own address
/// (192.0.2.2) appended to x-forwarded-for (or as its value). Checked against Envoy by
/// MirrorDifferentialTests.
enum ShadowHead {
    static let forwardedFor: StaticString = "192.0.2.2"

    /// Upper bound of the added bytes.
    static let extra = 96

    /// Writes the shadow head for `main` (a whole encoded head, ending in an empty line). False
    /// when `main` is not such a head or does not fit.
    static func write(_ main: UnsafeRawBufferPointer, hostSuffix: Bool, into w: inout ByteWriter) -> Bool {
        guard let requestLineEnd = lineEnd(main, from: 0) else { return false }
        w.put(UnsafeRawBufferPointer(rebasing: main[0..<requestLineEnd + 2]))
        var i = requestLineEnd + 2
        var sawForwardedFor = false
        while true {
            guard let end = lineEnd(main, from: i) else { return false }
            if end == i { break }  // the empty line
            let line = UnsafeRawBufferPointer(rebasing: main[i..<end])
            i = end + 2
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return false }
            let name = 0..<colon
            var valueStart = colon + 1
            while valueStart < line.count && (line[valueStart] == ASCII.space || line[valueStart] == 0x09) { valueStart += 1 }
            let value = UnsafeRawBufferPointer(rebasing: line[valueStart...])
            if name.count == 4 && ASCII.equalsCaseInsensitive(line, name, "host") && hostSuffix {
                w.put("host: ")
                writeSuffixed(value, &w)
                w.crlf()
            } else if name.count == 15 && ASCII.equalsCaseInsensitive(line, name, "x-forwarded-for") && !sawForwardedFor {
                sawForwardedFor = true
                w.put(line)
                if value.count > 0 { w.put(byte: ASCII.comma) }
                w.put(forwardedFor)
                w.crlf()
            } else if name.count == 16 && ASCII.equalsCaseInsensitive(line, name, "x-envoy-internal") {
                continue  // set below
            } else {
                w.put(line)
                w.crlf()
            }
        }
        w.put("x-envoy-internal: true\r\n")
        if !sawForwardedFor {
            w.put("x-forwarded-for: ")
            w.put(forwardedFor)
            w.crlf()
        }
        w.crlf()
        return !w.overflowed
    }

    /// `host-shadow`, or `host-shadow:port` (Envoy's port start: the last colon, unless an IPv6
    /// literal's closing bracket follows it).
    static func writeSuffixed(_ host: UnsafeRawBufferPointer, _ w: inout ByteWriter) {
        var portStart = host.count
        if let colon = host.lastIndex(of: UInt8(ascii: ":")) {
            let bracket = host.lastIndex(of: UInt8(ascii: "]"))
            if bracket == nil || bracket! < colon { portStart = colon }
        }
        w.put(UnsafeRawBufferPointer(rebasing: host[0..<portStart]))
        w.put("-shadow")
        w.put(UnsafeRawBufferPointer(rebasing: host[portStart...]))
    }

    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var i = start
        while i + 1 < bytes.count {
            if bytes[i] == 0x0D && bytes[i + 1] == 0x0A { return i }
            i += 1
        }
        return nil
    }
}
