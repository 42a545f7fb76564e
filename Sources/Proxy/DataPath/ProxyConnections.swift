import Balancers
import EventLoop
import HTTP1
import Synchronization

/// How a message body is delimited, as the data path tracks it while streaming.
enum BodyKind: UInt8 {
    case none
    case length
    case chunked
    /// Responses only: until the upstream closes.
    case untilClose
    /// Requests only: an upgrade's payload, everything after the head until either side closes.
    case tunnel
}

/// The one active request/response exchange of a downstream connection (HTTP/1.1 serves
/// pipelined requests one at a time, in order). Lives in the worker's `streams` table while the
/// exchange is active; the connection holds only its token.
struct Stream {
    var startNanos: Int64 = 0
    var isHEAD = false
    var keepAlive = true
    /// The response says `connection: close` only because the server fails its health checks:
    /// Envoy's drain manager then keeps the connection until the drain ends (drain_timeout +
    /// delayed_close_timeout after the first such response).
    var healthDrain = false
    var http10 = false
    var expectsContinue = false
    /// The request asks for an upgrade (Connection: upgrade + Upgrade) that is allowed: its
    /// Connection and Upgrade fields go upstream, and a 101 turns the stream into a tunnel.
    var upgrade = false
    /// The allowed upgrade is WebSocket: any answer but 101 becomes an empty local reply.
    var websocket = false
    /// A 101 arrived: bytes pass both ways unchanged until either side closes.
    var tunnel = false
    /// x-request-id generated for this request (none came with it): sent upstream and logged.
    var generatedRequestID = false
    var requestID: (UInt64, UInt64) = (0, 0)
    /// Connection managers with `tracing`: the span's `TraceContext` and, while sampled, the
    /// request fields of its record (pooled; kept out of the `Stream` so that a stream without
    /// tracing stays as small as before).
    var traceFields = ByteBuffer.empty
    /// The request fields the route's response headers read with %REQ(...)% ("name: value" lines).
    var requestValues = ByteBuffer.empty

    // Request side.
    var requestBody = BodyKind.none
    var requestRemaining = 0
    var requestDecoder = ChunkedDecoder()
    var requestComplete = false
    /// The request head encoded for upstream, until an upstream connection takes it.
    var requestHead = ByteBuffer.empty
    /// A copy kept for a retry after a reset (bodiless requests on routes with a retry policy).
    var retryHead = ByteBuffer.empty

    // Routing and upstream.
    var route: Int32 = -1
    var cluster: Int32 = -1
    /// Index of the worker's host pool (cluster and host), or -1.
    var hostPool: Int32 = -1
    /// The upstream connection serving (or connecting for) this stream, or 0.
    var upstream: UInt64 = 0
    /// The local address of the last upstream connection the request was sent on (unset: none).
    var upstreamLocal = CompactAddress()
    /// Waiting in the host pool's queue for a connection (max_connections reached).
    /// The host pool of the attempt in flight on an upstream connection (-1: none): its
    /// `rq_active` is held, and its end counts `rq_success` / `rq_error` / `rq_timeout`.
    /// The proxy ended the response by closing the connection mid-way (Envoy: a stream reset).
    var resetDownstream = false
    var attemptPool: Int32 = -1
    var queued = false
    /// Holds one unit of the cluster's `requests` / `pendingRequests` circuit breakers.
    var holdsRequest = false
    var holdsPending = false
    var upstreamStartNanos: Int64 = 0
    var retries: Int32 = 0
    /// Hosts (cluster host indices, modulo 64) this request was sent to (retry_host_predicate).
    var triedHosts: UInt64 = 0
    /// RING_HASH with a hash policy: the request's hash, so a retry picks on the ring again as
    /// Envoy does (the same host, or the next points with retry_host_predicate).
    var ringHash: UInt64? = nil
    /// Holds one unit of the cluster's `retries` circuit breaker, from a retry's scheduling to
    /// the next retry decision or the stream's end (Envoy's RetryState holds it as long).
    var holdsRetry = false
    /// The route's `per_try_timeout` (0: none) and the running attempt's deadline (0: none).
    var perTryNanos: Int64 = 0
    /// The route has a retry policy (responses are checked against it).
    var hasRetryPolicy = false
    var tryDeadline: Int64 = 0
    /// A retry waits for its backoff until then (0: none); no upstream is attached meanwhile.
    var retryAt: Int64 = 0
    /// The route timeout (absolute), 0 when none is running; while `delaying`, the end of the
    /// fault filter's delay; while `authzCheck` is set, the end of the check's timeout.
    var deadline: Int64 = 0
    /// Paused by the fault filter's delay: the head is kept in `delayedHead`, and the chain
    /// resumes at filter `resumeFilter` when `deadline` passes.
    var delaying = false
    var resumeFilter: Int16 = 0
    var delayedHead = ByteBuffer.empty
    /// Held by the buffer filter until the body (at most `bufferLimit` bytes) is in the input;
    /// the head waits in `delayedHead`, the chain resumes at `resumeFilter`.
    var buffering = false
    var bufferLimit = 0
    /// A buffered chunked body's payload length: it goes upstream unframed under this
    /// content-length (-1: forward as received).
    var dechunkedLength = -1
    /// The request body is read and dropped (a health check answers when it ends); the head
    /// waits in `delayedHead`, the chain resumes at `resumeFilter`.
    var discarding = false
    /// Holds one of its HCM's active faults (given back at the end).
    var faultActive = false
    /// Waiting for an ext_authz check (its `Shadow` token; 0: none) of filter `authzFilter`;
    /// the head waits in `delayedHead`, the chain resumes at `resumeFilter`.
    var authzCheck: UInt64 = 0
    var authzFilter: Int16 = 0
    var authzRouteCluster: Int32 = -1
    /// An allowed CORS origin (a copy) and the route whose policy applies: every response of
    /// this stream gets `access-control-allow-origin` and the policy's fields.
    var corsOrigin = ByteBuffer.empty
    var corsRoute: Int32 = -1
    /// What the request's accept-encoding allows (the compressor filter's decodeHeaders).
    var acceptEncoding = AcceptEncodingChoice.unset
    /// The compressor adds `Accept-Encoding` to the response's vary.
    var compressVary = false
    /// The worker's codec stream compressing this response (`CompressorPool`); -1: not compressed.
    var compressorStream: Int32 = -1
    /// The worker's inflate stream for a decompressed request body (`InflaterPool`); -1: none.
    var inflater: Int32 = -1
    /// Request body bytes read into and written out of the inflate stream (the ratio check).
    var inflateIn = 0
    var inflateOut = 0
    /// The gzip member ended or failed: later body bytes are dropped.
    var inflateStopped = false

    // Response side.
    var responseHeadDone = false
    var responseComplete = false
    var responseBody = BodyKind.none
    var responseRemaining = 0
    var responseDecoder = ChunkedDecoder()
    /// An until-close upstream body goes out chunked (HTTP/1.1 clients keep their connection).
    var reframeChunked = false
    var upstreamKeepAlive = false
    /// Receiving from the upstream is paused because the downstream's output is high.
    var upstreamPaused = false

    // Access record.
    var status: Int32 = 0
    var flags = ResponseFlags()
    var details = ResponseDetails.viaUpstream
    var detailsArgument: UInt16 = 0
    var bytesReceived = 0
    var bytesSent = 0
    var upstreamServiceNanos: Int64 = -1
    /// The data-plane generation this stream started under (reload: its route indices refer to it).
    var generation: UInt32 = 0
    /// Its connection's http_connection_manager (index in `ListenerPlan.httpPlans`).
    var hcm: UInt8 = 0
    /// Request fields the access log needs, captured at the head (`AccessLogCapture`), pooled.
    var logFields = ByteBuffer.empty
    /// The first of this request's mirrored copies still taking body bytes (`Shadow.next` chains
    /// the others), or 0.
    var shadow: UInt64 = 0
    /// The cache filter's entry being filled or validated (ProxyWorker+Cache).
    var cache = StreamCacheState()
}

/// Where a client connection is in its life. Orthogonal to it: whether a stream is active
/// (`Downstream.stream`), and whether the client ended its side (`peerClosed`).
enum DownstreamState: UInt8 {
    /// Reading and serving requests (keep-alive).
    case open
    /// Closes once everything queued is sent; later input is discarded.
    case closing
    /// Half-closed (SHUT_WR) after the last response, waiting briefly for the client's end of
    /// stream so that unread input does not turn the close into a reset that destroys the answer.
    case lingering
}

/// A client connection of an HTTP listener. Lives in the worker's table; buffers come from the
/// worker's pool and go back when empty, so an idle keep-alive connection holds none. Every
/// connection's entry is per-connection memory (an idle one costs its stride and nothing else in
/// user space): the small fields come first so that they share words.
struct Downstream {
    var fd: Int32 = -1
    var state = DownstreamState.open
    /// Receiving is paused (too much unconsumed input).
    var receivePaused = false
    var peerClosed = false
    /// Inside `consumeDownstream` (guards against re-entering it from a finished stream).
    var processing = false
    /// Its http_connection_manager (index in `ListenerPlan.httpPlans`), chosen with its filter
    /// chain at accept (the chain's index for access records: `ListenerPlan.httpChains[hcm]`).
    var hcm: UInt8 = 0
    /// The duration was reached: every response closes the connection.
    var durationReached = false
    var requestTimersStarted = false
    /// Counted in downstream_cx_http1_total (on its first bytes, as Envoy creates its codec).
    var countedHTTP1 = false
    /// The local port, read once when a filter first needs it (0: not read).
    var localPort: UInt16 = 0
    /// Received and not yet consumed: a partial head, body bytes waiting for the upstream, or
    /// pipelined requests behind the active one.
    var input = ByteBuffer.empty
    /// Response bytes on their way to the client.
    var out = OutboundQueue()
    /// Response bytes written and not yet handed to the kernel.
    var pending: ByteBuffer {
        get { out.pending }
        _modify { yield &out.pending }
    }
    /// Closes once everything queued is sent; later input is discarded.
    var closeAfterFlush: Bool { state != .open }
    var lingering: Bool { state == .lingering }
    /// The active stream's token in the worker's `streams`, or 0 (idle: no per-request state).
    var stream: UInt64 = 0
    var hasStream: Bool { stream != 0 }
    var idleDeadline: Int64 = 0
    var lingerDeadline: Int64 = 0
    /// `max_connection_duration`: when the connection starts draining (0: no limit, or reached).
    var durationDeadline: Int64 = 0
    /// A health-check drain began on this connection: it closes then (0: none).
    var drainDeadline: Int64 = 0
    /// A partial request head must complete by then (`request_headers_timeout`), 0: no deadline.
    var headDeadline: Int64 = 0
    /// The current request's timers (HTTP/1: one request at a time, from its first byte, before
    /// its `Stream` exists): `request_timeout` until the whole request is read, and the stream
    /// idle timeout (`streamIdleNanos`, the manager's or the route's; 0: none), pushed back by
    /// request body and response bytes. 0: not running.
    var requestDeadline: Int64 = 0
    var streamIdleDeadline: Int64 = 0
    var streamIdleNanos: Int64 = 0
    var timer = DeadlineTimer()
    /// How far the partial request head at the front of `input` was scanned (resumed on the
    /// next read, so a head in many small segments is scanned once).
    var headProgress = RequestHeadProgress()
    /// The client's address, read on the first forwarded request (x-forwarded-for).
    var peer = PeerAddress()
    /// The destination before an iptables redirect, when the listener restores it (original_dst):
    /// the connection's local address for the access log and ORIGINAL_DST clusters.
    var originalDst = CompactAddress()
    /// The SNI tls_inspector found (lower case), kept only when an access log prints it.
    var serverName = ByteBuffer.empty
    /// TLS termination (the listener's transport_socket): ciphertext in `out` once sealed.
    var tls = TLSSession()

    /// No further request is read: close once the queued output is sent.
    mutating func beginClosing() {
        if state == .open { state = .closing }
    }
}

enum UpstreamState: UInt8 {
    case connecting
    case busy
    case idle
}

/// A connection to an upstream host, owned by one worker's host pool.
struct Upstream {
    var fd: Int32 = -1
    var hostPool: Int32 = -1
    var cluster: Int32 = -1
    var state = UpstreamState.connecting
    /// The downstream whose stream this connection serves (busy, or connecting for it), a
    /// `Shadow` (a mirrored request: kind `ConnKind.shadow`), or 0.
    var owner: UInt64 = 0
    /// A mirrored request's route timeout while this connection serves it (0: none).
    var shadowDeadline: Int64 = 0
    /// A partial response head (or body bytes held while parsing).
    var input = ByteBuffer.empty
    /// Request bytes on their way to the upstream.
    var out = OutboundQueue()
    var pending: ByteBuffer {
        get { out.pending }
        _modify { yield &out.pending }
    }
    var receivePaused = false
    /// Requests completed on this connection (max_requests_per_connection).
    var requests = 0
    /// The host pool's epoch when this connection opened (a reload may change the address).
    var hostEpoch: UInt32 = 0
    /// Position in the host pool's idle stack while idle, else -1.
    var idleIndex = -1
    /// `max_connection_duration` of the cluster: reached at this time (0: none, or reached).
    var durationDeadline: Int64 = 0
    /// Reached: not reused after its exchange.
    var durationReached = false
    var connectDeadline: Int64 = 0
    var idleDeadline: Int64 = 0
    var timer = DeadlineTimer()
    /// TLS origination (the cluster's transport_socket): the connection stays `connecting` until
    /// its handshake completes, as Envoy raises Connected only then.
    var tls = TLSSession()
    /// The connection's own address (`%UPSTREAM_LOCAL_ADDRESS%`), read once when it connects.
    var localAddress = CompactAddress()
}

/// Messages other threads post to a proxy worker.
public enum ProxyMessage: AdoptingMessage {
    /// Adopt a connection accepted elsewhere (hand-off strategies).
    case adopt(fd: Int32)
    /// A reloaded configuration: serve new requests with it (`generation` grows by one per reload).
    case publish(DataPlane, generation: UInt32)
    /// Stop accepting, answer with `connection: close`, close idle connections (drain).
    case drain
    /// Test hook (TestHooks.swift): block this worker's loop until the stall is released.
    case testStall(WorkerStall)
}

/// Figures of one proxy worker (one listener). The worker is the only writer (relaxed load and
/// store, no locked instruction); the admin thread reads them (issue 5 names them as Envoy's).
public final class DataPathStats: Sendable {
    public let downstreamCxTotal = Atomic<Int>(0)
    public let downstreamCxActive = Atomic<Int>(0)
    /// Connections closed at accept: the listener's connection_limit / the global limit.
    public let downstreamCxOverflow = Atomic<Int>(0)
    public let downstreamGlobalCxOverflow = Atomic<Int>(0)
    public let upstreamCxTotal = Atomic<Int>(0)
    public let upstreamCxActive = Atomic<Int>(0)
    public let upstreamCxConnectFail = Atomic<Int>(0)
    public let upstreamCxConnectTimeout = Atomic<Int>(0)
    public let upstreamRqTotal = Atomic<Int>(0)
    public let upstreamRqPendingOverflow = Atomic<Int>(0)
    public let upstreamRqTimeout = Atomic<Int>(0)
    public let upstreamRqRetry = Atomic<Int>(0)
    /// Per tcp_proxy chain (index in `ListenerPlan.tcpPlans`): `tcp.<prefix>.*`.
    public let tcpProxies: [TCPProxyCounters]
    /// Listener filters and filter-chain choice.
    public let inspection = InspectionCounters()
    /// Per cluster slot (index in `DataPlane.clusters`): Envoy's `cluster.<name>.*` figures.
    /// The worker counts into its own copy of the list; it republishes the list here when a
    /// snapshot adds a slot or gives one to a new cluster (the admin reads it under the lock).
    public var clusters: [ClusterStats] { clusterTable.withLock { $0 } }
    private let clusterTable: Mutex<[ClusterStats]>
    /// The generation of the last snapshot the worker applied, and the oldest one a stream of
    /// its still runs on: a removed cluster's slot is reused once every worker is past it.
    public let appliedGeneration = Atomic<UInt32>(0)
    public let oldestLiveGeneration = Atomic<UInt32>(0)
    /// Per host pool of this worker: its host and counters (`/clusters`).
    public let hosts = HostCounterRegistry()
    /// `listener.<address>.ssl.*` (listeners that terminate TLS).
    public let tls = TLSStats()

    /// Per http_connection_manager (index in `ListenerPlan.httpPlans`): `http.<prefix>.*`.
    public let http: [HTTPCounters]

    /// The worker's list after a snapshot changed its slots (worker thread).
    func publishClusters(_ list: [ClusterStats]) { clusterTable.withLock { $0 = list } }

    public init(clusters: Int = 0, tcpProxies: Int = 0, connectionManagers: Int = 1) {
        self.clusterTable = Mutex((0..<clusters).map { _ in ClusterStats() })
        self.http = (0..<max(1, connectionManagers)).map { _ in HTTPCounters() }
        self.tcpProxies = (0..<tcpProxies).map { _ in TCPProxyCounters() }
    }
}

/// One http_connection_manager's figures on one worker (`http.<stat_prefix>.*`; managers
/// sharing a prefix are summed when stats are read, as Envoy shares the scope).
public final class HTTPCounters: Sendable {
    /// Request bodies above the buffer filter's limit (413).
    public let downstreamRqTooLarge = Atomic<Int>(0)
    public let downstreamRqTotal = Atomic<Int>(0)
    /// `downstream_rq_active`: streams begun and not ended.
    public let downstreamRqActive = Atomic<Int>(0)
    /// `http.<prefix>.tracing.*`: the trace decision per request.
    public let tracingRandomSampling = Atomic<Int>(0)
    public let tracingServiceForced = Atomic<Int>(0)
    public let tracingClientEnabled = Atomic<Int>(0)
    public let tracingNotTraceable = Atomic<Int>(0)
    public let downstreamRq1xx = Atomic<Int>(0)
    public let downstreamRq2xx = Atomic<Int>(0)
    public let downstreamRq3xx = Atomic<Int>(0)
    public let downstreamRq4xx = Atomic<Int>(0)
    public let downstreamRq5xx = Atomic<Int>(0)
    public let noRoute = Atomic<Int>(0)
    /// `no_cluster`: the route's cluster does not exist (503 NC).
    public let noCluster = Atomic<Int>(0)
    /// `downstream_rq_completed`, `rq_direct_response`, `downstream_cx_protocol_error` (codec errors).
    public let downstreamRqCompleted = Atomic<Int>(0)
    public let rqDirectResponse = Atomic<Int>(0)
    public let downstreamCxProtocolError = Atomic<Int>(0)
    public let downstreamCxHTTP1Total = Atomic<Int>(0)
    /// `downstream_cx_upgrades_total` / `_active`: upgrade requests accepted (WebSocket...), and
    /// `downstream_rq_ws_on_non_ws_route`: upgrade requests refused (403).
    public let downstreamCxUpgradesTotal = Atomic<Int>(0)
    public let downstreamCxUpgradesActive = Atomic<Int>(0)
    public let downstreamRqWsOnNonWsRoute = Atomic<Int>(0)
    /// `downstream_rq_rx_reset` (codec errors, clients gone mid-stream) and
    /// `downstream_rq_response_before_rq_complete`.
    public let downstreamRqRxReset = Atomic<Int>(0)
    /// `downstream_rq_tx_reset`: streams the proxy reset (a response cut short by the upstream).
    public let downstreamRqTxReset = Atomic<Int>(0)
    /// `downstream_cx_destroy_remote_active_rq`: clients that closed with a request in flight.
    public let downstreamCxDestroyRemoteActiveRq = Atomic<Int>(0)
    public let downstreamRqResponseBeforeRqComplete = Atomic<Int>(0)
    /// `downstream_rq_idle_timeout` (stream idle timeout) and `downstream_rq_timeout` (request_timeout).
    public let downstreamRqIdleTimeout = Atomic<Int>(0)
    public let downstreamRqTimeout = Atomic<Int>(0)
    /// `downstream_rq_header_timeout`: request heads not complete within request_headers_timeout.
    public let downstreamRqHeaderTimeout = Atomic<Int>(0)
    /// `downstream_cx_max_duration_reached`: connections that reached max_connection_duration.
    public let downstreamCxMaxDurationReached = Atomic<Int>(0)
    /// HTTP/2 connection prefaces answered with GOAWAY HTTP_1_1_REQUIRED (codec_type AUTO).
    public let http2PrefaceRefused = Atomic<Int>(0)
    /// `http.<prefix>.worker_cost.applied`: requests that paid the worker-cost filter's cost.
    public let workerCostApplied = Atomic<Int>(0)
    /// `http.<prefix>.rq_total`: requests that reached the router (a filter's local reply stops
    /// them before it).
    public let routerRqTotal = Atomic<Int>(0)
    /// Connections served by the listener's http_connection_manager (`http.<prefix>.downstream_cx_*`).
    public let httpCxTotal = Atomic<Int>(0)
    public let httpCxActive = Atomic<Int>(0)
    /// `http.<prefix>.downstream_rq_time` (microseconds).
    public let downstreamRqTime = LatencyHistogram()
}

/// One tcp_proxy chain's figures on one worker (`tcp.<stat_prefix>.*`; Envoy 1.40 keeps no
/// active-connections gauge there).
public final class TCPProxyCounters: Sendable {
    public let cxTotal = Atomic<Int>(0)
    public let rxBytes = Atomic<Int>(0)
    public let txBytes = Atomic<Int>(0)
    public let idleTimeout = Atomic<Int>(0)
}

/// Listener filters that read the first bytes, and the filter-chain choice, on one worker:
/// Envoy's `tls_inspector.*`, `http_inspector.*` and `listener.<address>.no_filter_chain_match`,
/// `downstream_pre_cx_timeout`, `downstream_pre_cx_active`.
public final class InspectionCounters: Sendable {
    public let tlsFound = Atomic<Int>(0)
    public let tlsNotFound = Atomic<Int>(0)
    public let alpnFound = Atomic<Int>(0)
    public let alpnNotFound = Atomic<Int>(0)
    public let sniFound = Atomic<Int>(0)
    public let sniNotFound = Atomic<Int>(0)
    public let clientHelloTooLarge = Atomic<Int>(0)
    public let http10Found = Atomic<Int>(0)
    public let http11Found = Atomic<Int>(0)
    public let http2Found = Atomic<Int>(0)
    public let httpNotFound = Atomic<Int>(0)
    public let readError = Atomic<Int>(0)
    public let noFilterChainMatch = Atomic<Int>(0)
    public let preCxTimeout = Atomic<Int>(0)
    public let preCxActive = Atomic<Int>(0)
}

/// Single-writer increment: a relaxed load and store.
@inline(__always)
func inc(_ counter: borrowing Atomic<Int>, by n: Int = 1) {
    counter.store(counter.load(ordering: .relaxed) &+ n, ordering: .relaxed)
}
