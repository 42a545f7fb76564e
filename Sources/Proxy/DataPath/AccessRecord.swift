import Synchronization

/// Envoy's response flags (`%RESPONSE_FLAGS%`): why a request ended the way it did. A set, since
/// several can apply (a connect failure after the last retry is `URX,UF`).
public struct ResponseFlags: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// UH: no healthy upstream host (the cluster has no hosts).
    public static let noHealthyUpstream = ResponseFlags(rawValue: 1 << 0)
    /// UF: upstream connection failure (refused, unreachable, or `connect_timeout`).
    public static let upstreamConnectionFailure = ResponseFlags(rawValue: 1 << 1)
    /// UO: upstream overflow (a circuit breaker was full).
    public static let upstreamOverflow = ResponseFlags(rawValue: 1 << 2)
    /// NR: no route (no virtual host or no route matched).
    public static let noRouteFound = ResponseFlags(rawValue: 1 << 3)
    /// URX: the retry limit was reached.
    public static let upstreamRetryLimitExceeded = ResponseFlags(rawValue: 1 << 4)
    /// UC: the upstream connection ended (reset or closed) during the exchange.
    public static let upstreamConnectionTermination = ResponseFlags(rawValue: 1 << 5)
    /// UT: the route's timeout expired.
    public static let upstreamRequestTimeout = ResponseFlags(rawValue: 1 << 6)
    /// DC: the downstream connection ended before the response was complete.
    public static let downstreamConnectionTermination = ResponseFlags(rawValue: 1 << 7)
    /// DPE: the downstream request was malformed.
    public static let downstreamProtocolError = ResponseFlags(rawValue: 1 << 8)
    /// UPE: the upstream response was malformed.
    public static let upstreamProtocolError = ResponseFlags(rawValue: 1 << 9)
    /// LR: the proxy reset the stream locally.
    public static let localReset = ResponseFlags(rawValue: 1 << 10)
    /// UR: the upstream reset the connection.
    public static let upstreamRemoteReset = ResponseFlags(rawValue: 1 << 11)
    /// DI: a delay was injected (unused, reserved for fault injection).
    public static let delayInjected = ResponseFlags(rawValue: 1 << 12)
    /// SI: the stream idle timeout (`stream_idle_timeout` or the route's `idle_timeout`) expired.
    public static let streamIdleTimeout = ResponseFlags(rawValue: 1 << 13)
    /// FI: the fault filter aborted the request.
    public static let faultInjected = ResponseFlags(rawValue: 1 << 14)
    /// RL: a rate limit filter answered 429.
    public static let rateLimited = ResponseFlags(rawValue: 1 << 15)
    /// LH: the health_check filter answered 503 (the server fails its health checks).
    public static let failedLocalHealthCheck = ResponseFlags(rawValue: 1 << 16)
    /// RFCF: the cache filter answered from a stored response.
    public static let responseFromCacheFilter = ResponseFlags(rawValue: 1 << 17)
    /// UAEX: the ext_authz filter refused the request (denied, or the check failed).
    public static let unauthorizedExternalService = ResponseFlags(rawValue: 1 << 18)
    /// NC: the route's cluster does not exist.
    public static let noClusterFound = ResponseFlags(rawValue: 1 << 19)

    /// The short names, in Envoy's printing order (Envoy 1.40 prints flags in the order they
    /// were set: URX is set when the retry is refused, before the failure that ends the request).
    public static let names: [(ResponseFlags, String)] = [
        (.upstreamRetryLimitExceeded, "URX"), (.failedLocalHealthCheck, "LH"), (.downstreamConnectionTermination, "DC"), (.noHealthyUpstream, "UH"), (.upstreamRequestTimeout, "UT"),
        (.localReset, "LR"), (.upstreamRemoteReset, "UR"), (.upstreamConnectionFailure, "UF"),
        (.upstreamConnectionTermination, "UC"), (.upstreamOverflow, "UO"), (.noRouteFound, "NR"),
        (.delayInjected, "DI"), (.faultInjected, "FI"), (.rateLimited, "RL"), (.streamIdleTimeout, "SI"),
        (.downstreamProtocolError, "DPE"),
        (.upstreamProtocolError, "UPE"), (.responseFromCacheFilter, "RFCF"), (.unauthorizedExternalService, "UAEX"),
        (.noClusterFound, "NC"),
    ]

    /// `URX,UF`, or `-` when empty (Envoy's `%RESPONSE_FLAGS%`).
    public var description: String {
        let parts = Self.names.filter { contains($0.0) }.map(\.1)
        return parts.isEmpty ? "-" : parts.joined(separator: ",")
    }

    /// Writes the description into `out` without allocating; returns the byte count.
    /// `retryLimitLast`: tcp_proxy sets URX after the connect failure (Envoy prints `UF,URX`
    /// there, `URX,UF` for HTTP, where the refused retry comes first).
    func write(into out: UnsafeMutableRawBufferPointer, retryLimitLast: Bool = false) -> Int {
        var n = 0
        func put(_ s: StaticString) {
            s.withUTF8Buffer { b in
                guard n + b.count + 1 <= out.count else { return }
                if n > 0 { out[n] = 0x2C; n += 1 }
                for byte in b { out[n] = byte; n += 1 }
            }
        }
        if contains(.upstreamRetryLimitExceeded) && !retryLimitLast { put("URX") }
        if contains(.failedLocalHealthCheck) { put("LH") }
        if contains(.downstreamConnectionTermination) { put("DC") }
        if contains(.noHealthyUpstream) { put("UH") }
        if contains(.upstreamRequestTimeout) { put("UT") }
        if contains(.localReset) { put("LR") }
        if contains(.upstreamRemoteReset) { put("UR") }
        if contains(.upstreamConnectionFailure) { put("UF") }
        if contains(.upstreamRetryLimitExceeded) && retryLimitLast { put("URX") }
        if contains(.upstreamConnectionTermination) { put("UC") }
        if contains(.upstreamOverflow) { put("UO") }
        if contains(.noRouteFound) { put("NR") }
        if contains(.delayInjected) { put("DI") }
        if contains(.faultInjected) { put("FI") }
        if contains(.rateLimited) { put("RL") }
        if contains(.streamIdleTimeout) { put("SI") }
        if contains(.downstreamProtocolError) { put("DPE") }
        if contains(.upstreamProtocolError) { put("UPE") }
        if contains(.responseFromCacheFilter) { put("RFCF") }
        if contains(.unauthorizedExternalService) { put("UAEX") }
        if contains(.noClusterFound) { put("NC") }
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
