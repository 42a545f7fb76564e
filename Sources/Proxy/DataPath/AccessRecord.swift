import Synchronization

/// Envoy's response flags (`%RESPONSE_FLAGS%`): why a request ended the way it did. Several can
/// apply, and Envoy 1.40 prints them in the order they were set (an ordered set: a connect failure
/// after the last retry is `URX,UF` in HTTP, where the refused retry comes first, and `UF,URX` in
/// tcp_proxy, which gives up after the failure). A value type of two words: which flags are set,
/// and the order they were set in.
public struct ResponseFlags: Sendable, Hashable, CustomStringConvertible, ExpressibleByArrayLiteral {
    /// Which flags are set: bit i is the flag with index i in `shortNames`.
    public private(set) var rawValue: UInt32 = 0
    /// The order they were set in: 5-bit slots holding index + 1, the first set in the lowest
    /// slot. 12 slots; Envoy expects at most 4 flags on a stream. Flags beyond the twelfth are
    /// still in `rawValue` and printed after the others, by index.
    private var order: UInt64 = 0

    private static let slotBits: UInt64 = 5
    private static let slots = 12

    public init() {}

    private init(index: Int) {
        rawValue = 1 << UInt32(index)
        order = UInt64(index + 1)
    }

    public init(arrayLiteral elements: ResponseFlags...) {
        for e in elements { formUnion(e) }
    }

    /// UH: no healthy upstream host (the cluster has no hosts).
    public static let noHealthyUpstream = ResponseFlags(index: 0)
    /// UF: upstream connection failure (refused, unreachable, or `connect_timeout`).
    public static let upstreamConnectionFailure = ResponseFlags(index: 1)
    /// UO: upstream overflow (a circuit breaker was full).
    public static let upstreamOverflow = ResponseFlags(index: 2)
    /// NR: no route (no virtual host or no route matched).
    public static let noRouteFound = ResponseFlags(index: 3)
    /// URX: the retry limit was reached.
    public static let upstreamRetryLimitExceeded = ResponseFlags(index: 4)
    /// UC: the upstream connection ended (reset or closed) during the exchange.
    public static let upstreamConnectionTermination = ResponseFlags(index: 5)
    /// UT: the route's timeout expired.
    public static let upstreamRequestTimeout = ResponseFlags(index: 6)
    /// DC: the downstream connection ended before the response was complete.
    public static let downstreamConnectionTermination = ResponseFlags(index: 7)
    /// DPE: the downstream request was malformed.
    public static let downstreamProtocolError = ResponseFlags(index: 8)
    /// UPE: the upstream response was malformed.
    public static let upstreamProtocolError = ResponseFlags(index: 9)
    /// LR: the proxy reset the stream locally.
    public static let localReset = ResponseFlags(index: 10)
    /// UR: the upstream reset the connection.
    public static let upstreamRemoteReset = ResponseFlags(index: 11)
    /// DI: the fault filter delayed the request.
    public static let delayInjected = ResponseFlags(index: 12)
    /// SI: the stream idle timeout (`stream_idle_timeout` or the route's `idle_timeout`) expired.
    public static let streamIdleTimeout = ResponseFlags(index: 13)
    /// FI: the fault filter aborted the request.
    public static let faultInjected = ResponseFlags(index: 14)
    /// RL: a rate limit filter answered 429.
    public static let rateLimited = ResponseFlags(index: 15)
    /// LH: the health_check filter answered 503 (the server fails its health checks).
    public static let failedLocalHealthCheck = ResponseFlags(index: 16)
    /// RFCF: the cache filter answered from a stored response.
    public static let responseFromCacheFilter = ResponseFlags(index: 17)
    /// UAEX: the ext_authz filter refused the request (denied, or the check failed).
    public static let unauthorizedExternalService = ResponseFlags(index: 18)
    /// NC: the route's cluster does not exist.
    public static let noClusterFound = ResponseFlags(index: 19)

    /// Envoy's short names, by flag index.
    static let shortNames: [StaticString] = [
        "UH", "UF", "UO", "NR", "URX", "UC", "UT", "DC", "DPE", "UPE", "LR", "UR", "DI", "SI", "FI", "RL", "LH", "RFCF", "UAEX", "NC",
    ]

    public var isEmpty: Bool { rawValue == 0 }

    /// Whether every flag of `other` is set.
    public func contains(_ other: ResponseFlags) -> Bool { rawValue & other.rawValue == other.rawValue }

    public func isDisjoint(with other: ResponseFlags) -> Bool { rawValue & other.rawValue == 0 }

    /// Sets `other`'s flags not set yet, after the ones already set (in `other`'s order).
    public mutating func insert(_ other: ResponseFlags) { formUnion(other) }

    public mutating func formUnion(_ other: ResponseFlags) {
        other.forEachIndex { i in
            let bit: UInt32 = 1 << UInt32(i)
            guard rawValue & bit == 0 else { return }
            rawValue |= bit
            let used = usedSlots
            if used < Self.slots { order |= UInt64(i + 1) << (UInt64(used) * Self.slotBits) }
        }
    }

    /// Clears `other`'s flags; the rest keep their order.
    public mutating func remove(_ other: ResponseFlags) {
        guard rawValue & other.rawValue != 0 else { return }
        rawValue &= ~other.rawValue
        var kept: UInt64 = 0
        var n: UInt64 = 0
        var rest = order
        while rest != 0 {
            let slot = rest & 0x1F
            rest >>= Self.slotBits
            if rawValue & (1 << UInt32(slot - 1)) != 0 { kept |= slot << (n * Self.slotBits); n += 1 }
        }
        order = kept
    }

    private var usedSlots: Int {
        order == 0 ? 0 : (64 - order.leadingZeroBitCount + Int(Self.slotBits) - 1) / Int(Self.slotBits)
    }

    /// Calls `body` with each set flag's index: in the order set, then any not in `order`.
    private func forEachIndex(_ body: (Int) -> Void) {
        var inOrder: UInt32 = 0
        var rest = order
        while rest != 0 {
            let i = Int(rest & 0x1F) - 1
            rest >>= Self.slotBits
            inOrder |= 1 << UInt32(i)
            body(i)
        }
        var others = rawValue & ~inOrder
        while others != 0 {
            let i = others.trailingZeroBitCount
            others &= others - 1
            body(i)
        }
    }

    /// `URX,UF`, or `-` when empty (Envoy's `%RESPONSE_FLAGS%`).
    public var description: String {
        var parts: [String] = []
        forEachIndex { parts.append("\(Self.shortNames[$0])") }
        return parts.isEmpty ? "-" : parts.joined(separator: ",")
    }

    /// Writes the description into `out` without allocating; returns the byte count.
    func write(into out: UnsafeMutableRawBufferPointer) -> Int {
        var n = 0
        forEachIndex { i in
            Self.shortNames[i].withUTF8Buffer { b in
                guard n + b.count + 1 <= out.count else { return }
                if n > 0 { out[n] = 0x2C; n += 1 }
                for byte in b { out[n] = byte; n += 1 }
            }
        }
        if n == 0 && out.count > 0 { out[0] = 0x2D; n = 1 }
        return n
    }
}

/// What one finished request leaves behind for the access log and the stats (issue 5): a plain
/// value, built on the worker with no allocation. Strings are referred to by index into the
/// data plane (`DataPlane.clusters[cluster].hosts[host]`, the listener's route names), so a
/// logger resolves them off the hot path.
public struct AccessRecord: Sendable, Equatable {
    /// Worker index (`%THREAD_ID%`).
    public var worker: Int32 = 0
    /// Listener index in `DataPlane.listeners`.
    public var listener: Int32 = 0
    /// Monotonic nanoseconds when the request head was complete (`%START_TIME%` base).
    public var startNanos: Int64 = 0
    /// Nanoseconds until the last response byte was queued (`%DURATION%`).
    public var durationNanos: Int64 = 0
    /// Nanoseconds from sending upstream to the response head (`x-envoy-upstream-service-time`), -1 none.
    public var upstreamServiceNanos: Int64 = -1
    /// `%RESPONSE_CODE%` (0 when no response was sent).
    public var responseCode: Int32 = 0
    /// `%RESPONSE_FLAGS%`.
    public var flags = ResponseFlags()
    /// `%BYTES_RECEIVED%`: request body bytes.
    public var bytesReceived: Int = 0
    /// `%BYTES_SENT%`: response body bytes.
    public var bytesSent: Int = 0
    /// Cluster index, or -1 (local reply, no route).
    public var cluster: Int32 = -1
    /// Host index within the cluster (`%UPSTREAM_HOST%`), or -1.
    public var host: Int32 = -1
    /// ORIGINAL_DST clusters: the host (the downstream's original destination), else unset.
    public var originalDstHost = CompactAddress()
    /// The upstream connection's local address (`%UPSTREAM_LOCAL_ADDRESS%`), unset when none.
    public var upstreamLocal = CompactAddress()
    /// Route index within the listener's route table (`%ROUTE_NAME%`), or -1.
    public var route: Int32 = -1
    /// Why a local reply was made (`%RESPONSE_CODE_DETAILS%`), `.none` for proxied responses.
    public var details: ResponseDetails = .viaUpstream
    /// Completes `details` where it has a variable part (the matched RBAC policy, by index).
    public var detailsArgument: UInt16 = 0
    public var http10 = false
    /// The downstream connection's TLS version (OpenSSL's number, 0x0304 for TLS 1.3), 0 for plain TCP.
    public var tlsVersion: UInt16 = 0
    /// The listener's filter chain that served the connection (its access logs write the line).
    public var chain: UInt16 = 0
    /// The data-plane generation the request was served under (resolves `route`, `cluster`, `host`).
    public var generation: UInt32 = 0

    public init() {}
}

/// `%RESPONSE_CODE_DETAILS%` values this data path produces (Envoy's spellings).
public enum ResponseDetails: UInt8, Sendable {
    case viaUpstream
    case directResponse
    case routeNotFound
    case clusterNotFound
    case noHealthyUpstream
    case overflow
    case connectFailure
    case resetBeforeHeaders
    case responseTimeout
    case perTryTimeout
    case upstreamProtocolError
    case downstreamProtocolError
    case downstreamTerminated
    case requestHeaderTimeout
    /// `stream_idle_timeout` / route `idle_timeout` expired.
    case streamIdleTimeout
    /// `request_timeout` expired before the whole request arrived.
    case requestOverallTimeout
    /// The upstream refused the connection (ECONNREFUSED).
    case connectRefused
    case connectTimeout
    /// HTTP/1.0 (or an unknown HTTP/1.x) without `accept_http_10`: 426.
    case lowVersion
    case contentLengthAndChunked
    case localRateLimited
    case faultFilterAbort
    case corsResponse
    /// An Upgrade the connection manager and route do not allow: 403.
    case upgradeFailed
    /// The upstream ended a tunnelled (upgraded) stream, or cut a response short.
    case resetAfterResponseStarted
    /// A WebSocket upgrade the upstream answered with something other than 101: its status,
    /// no body.
    case websocketHandshakeUnsuccessful
    /// The csrf filter refused a state-changing request from another origin (403).
    case csrfOriginMismatch
    /// The rbac filter refused the request; the record's `detailsArgument` names the policy.
    case rbacAccessDenied
    /// The upstream TLS handshake failed: the server's certificate did not verify, or another
    /// reason. Envoy's frame around OpenSSL's error (Envoy prints BoringSSL's; docs/tls.md).
    case tlsVerifyFailure
    case tlsFailure
    case healthCheckOK
    case healthCheckFailed
    case requestPayloadTooLarge
    case responseFromCacheFilter
    /// The ext_authz filter's authorization service denied the request / the check failed.
    case extAuthzDenied
    case extAuthzError

    public var envoyName: String {
        switch self {
        case .viaUpstream: "via_upstream"
        case .directResponse: "direct_response"
        case .routeNotFound: "route_not_found"
        case .clusterNotFound: "cluster_not_found"
        case .noHealthyUpstream: "no_healthy_upstream"
        case .overflow: "upstream_reset_before_response_started{overflow}"
        case .connectFailure: "upstream_reset_before_response_started{remote_connection_failure}"
        case .connectRefused: "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
        case .connectTimeout: "upstream_reset_before_response_started{connection_timeout}"
        case .lowVersion: "low_version"
        case .contentLengthAndChunked: "http1.content_length_and_chunked_not_allowed"
        case .resetBeforeHeaders: "upstream_reset_before_response_started{connection_termination}"
        case .responseTimeout: "response_timeout"
        case .perTryTimeout: "upstream_per_try_timeout"
        case .upstreamProtocolError: "upstream_reset_before_response_started{protocol_error}"
        case .downstreamProtocolError: "http1.codec_error"
        case .downstreamTerminated: "downstream_remote_disconnect"
        case .requestHeaderTimeout: "request_header_timeout"
        case .streamIdleTimeout: "stream_idle_timeout"
        case .requestOverallTimeout: "request_overall_timeout"
        case .localRateLimited: "local_rate_limited"
        case .faultFilterAbort: "fault_filter_abort"
        case .corsResponse: "cors_response"
        case .upgradeFailed: "upgrade_failed"
        case .resetAfterResponseStarted: "upstream_reset_after_response_started{connection_termination}"
        case .websocketHandshakeUnsuccessful: "websocket_handshake_unsuccessful"
        case .csrfOriginMismatch: "csrf_origin_mismatch"
        case .rbacAccessDenied: "rbac_access_denied_matched_policy[none]"
        case .tlsVerifyFailure: "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|167772294:SSL_routines::certificate_verify_failed:TLS_error_end}"
        case .tlsFailure: "upstream_reset_before_response_started{remote_connection_failure|TLS_error:TLS_error_end}"
        case .healthCheckOK: "health_check_ok"
        case .healthCheckFailed: "health_check_failed"
        case .requestPayloadTooLarge: "request_payload_too_large"
        case .responseFromCacheFilter: "cache.response_from_cache_filter"
        case .extAuthzDenied: "ext_authz_denied"
        case .extAuthzError: "ext_authz_error"
        }
    }
}

/// A bounded single-producer, single-consumer ring of records: the worker pushes, one reader
/// thread (the access-log writer of issue 5, or a test) pops. Never blocks the worker: a full
/// ring drops the record and counts it.
public final class AccessRecordRing: @unchecked Sendable {  // head/tail are atomics; slots are handed over by them
    private let slots: UnsafeMutablePointer<AccessRecord>
    /// Per slot: captured request fields (`AccessLogCapture`), `extraBytes` each, and their length.
    private let extras: UnsafeMutableRawPointer
    private let extraLengths: UnsafeMutablePointer<Int>
    public let extraBytes: Int
    private let mask: Int
    private let head = Atomic<Int>(0)  // next to read (consumer)
    private let tail = Atomic<Int>(0)  // next to write (producer)
    public let dropped = Atomic<Int>(0)

    public init(capacity: Int = 4096, extraBytes: Int = 512) {
        var size = 16
        while size < capacity { size <<= 1 }
        mask = size - 1
        slots = .allocate(capacity: size)
        slots.initialize(repeating: AccessRecord(), count: size)
        self.extraBytes = extraBytes
        extras = .allocate(byteCount: max(1, size * extraBytes), alignment: 8)
        extraLengths = .allocate(capacity: size)
        extraLengths.initialize(repeating: 0, count: size)
    }

    deinit {
        slots.deinitialize(count: mask + 1)
        slots.deallocate()
        extras.deallocate()
        extraLengths.deallocate()
    }

    /// Producer (worker thread) only: the record with up to `extraBytes` of captured fields.
    public func push(_ record: AccessRecord, extra: UnsafeRawBufferPointer) {
        let t = tail.load(ordering: .relaxed)
        if t - head.load(ordering: .acquiring) > mask {
            dropped.store(dropped.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            return
        }
        slots[t & mask] = record
        let n = extra.count <= extraBytes ? extra.count : 0  // a truncated capture would not parse
        if n > 0 { (extras + (t & mask) * extraBytes).copyMemory(from: extra.baseAddress!, byteCount: n) }
        extraLengths[t & mask] = n
        tail.store(t + 1, ordering: .releasing)
    }

    /// Consumer only: the next record and its captured fields (handed to `body` before the slot
    /// is given back).
    public func pop<R>(_ body: (AccessRecord, UnsafeRawBufferPointer) -> R) -> R? {
        let h = head.load(ordering: .relaxed)
        guard h < tail.load(ordering: .acquiring) else { return nil }
        let result = body(slots[h & mask], UnsafeRawBufferPointer(start: extras + (h & mask) * extraBytes, count: extraLengths[h & mask]))
        head.store(h + 1, ordering: .releasing)
        return result
    }

    /// Records pushed so far (kept or not by a reader yet; drops not included).
    public var pushed: Int { tail.load(ordering: .acquiring) }

    /// Producer (worker thread) only.
    public func push(_ record: AccessRecord) {
        let t = tail.load(ordering: .relaxed)
        if t - head.load(ordering: .acquiring) > mask {
            dropped.store(dropped.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            return
        }
        slots[t & mask] = record
        extraLengths[t & mask] = 0
        tail.store(t + 1, ordering: .releasing)
    }

    /// Consumer (one reader thread) only.
    public func pop() -> AccessRecord? {
        let h = head.load(ordering: .relaxed)
        guard h < tail.load(ordering: .acquiring) else { return nil }
        let r = slots[h & mask]
        head.store(h + 1, ordering: .releasing)
        return r
    }
}
