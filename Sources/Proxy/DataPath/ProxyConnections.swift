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
}

/// The one active request/response exchange of a downstream connection (HTTP/1.1 serves
/// pipelined requests one at a time, in order). Lives inline in `Downstream`.
struct Stream {
    var startNanos: Int64 = 0
    var isHEAD = false
    var keepAlive = true
    var http10 = false
    var expectsContinue = false

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
    /// Waiting in the host pool's queue for a connection (max_connections reached).
    var queued = false
    /// Holds one unit of the cluster's `requests` / `pendingRequests` circuit breakers.
    var holdsRequest = false
    var holdsPending = false
    var upstreamStartNanos: Int64 = 0
    var retries: Int32 = 0
    /// The route timeout (absolute), 0 when none is running.
    var deadline: Int64 = 0

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
    var bytesReceived = 0
    var bytesSent = 0
    var upstreamServiceNanos: Int64 = -1
    /// The data-plane generation this stream started under (reload: its route indices refer to it).
    var generation: UInt32 = 0
    /// Request fields the access log needs, captured at the head (`AccessLogCapture`), pooled.
    var logFields = ByteBuffer.empty
}

/// A client connection of an HTTP listener. Lives in the worker's table; buffers come from the
/// worker's pool and go back when empty, so an idle keep-alive connection holds none.
struct Downstream {
    var fd: Int32 = -1
    /// Received and not yet consumed: a partial head, body bytes waiting for the upstream, or
    /// pipelined requests behind the active one.
    var input = ByteBuffer.empty
    /// Response bytes written and not yet handed to the kernel.
    var pending = ByteBuffer.empty
    /// Bytes of the outstanding send; unchanged until its completion.
    var sending = ByteBuffer.empty
    var sendOffset = 0
    var sendInFlight = false
    /// Receiving is paused (too much unconsumed input).
    var receivePaused = false
    /// Close once everything queued is sent; later input is discarded.
    var closeAfterFlush = false
    /// Half-closed after the last response; waiting briefly for the client's end of stream.
    var lingering = false
    var peerClosed = false
    /// Inside `consumeDownstream` (guards against re-entering it from a finished stream).
    var processing = false
    var hasStream = false
    var stream = Stream()
    var idleDeadline: Int64 = 0
    var lingerDeadline: Int64 = 0
    var timerArmedAt: Int64 = 0
    /// The client's address, read on the first forwarded request (x-forwarded-for).
    var peer = PeerAddress()
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
    /// The downstream whose stream this connection serves (busy, or connecting for it), or 0.
    var owner: UInt64 = 0
    /// A partial response head (or body bytes held while parsing).
    var input = ByteBuffer.empty
    var pending = ByteBuffer.empty
    var sending = ByteBuffer.empty
    var sendOffset = 0
    var sendInFlight = false
    var receivePaused = false
    /// Requests completed on this connection (max_requests_per_connection).
    var requests = 0
    /// Position in the host pool's idle stack while idle, else -1.
    var idleIndex = -1
    var connectDeadline: Int64 = 0
    var idleDeadline: Int64 = 0
    var timerArmedAt: Int64 = 0
}

/// One worker's pool for one upstream host: idle keep-alive connections, the streams waiting
/// for a connection, and counts for the load balancer.
struct HostPool {
    var cluster: Int32
    var host: Int32
    /// Idle connections (a stack: the most recently used first, warm in cache).
    var idle: [UInt64] = []
    /// Open connections of this worker to this host (any state).
    var connections = 0
    /// Streams of this worker assigned to this host and not finished (LEAST_REQUEST).
    var activeRequests = 0
    /// Downstream tokens waiting for a connection, FIFO from `queueHead`.
    var queue: [UInt64] = []
    var queueHead = 0

    init(cluster: Int, host: Int) {
        self.cluster = Int32(cluster)
        self.host = Int32(host)
        idle.reserveCapacity(64)
        queue.reserveCapacity(64)
    }
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
    public let downstreamRqTotal = Atomic<Int>(0)
    public let downstreamRq1xx = Atomic<Int>(0)
    public let downstreamRq2xx = Atomic<Int>(0)
    public let downstreamRq3xx = Atomic<Int>(0)
    public let downstreamRq4xx = Atomic<Int>(0)
    public let downstreamRq5xx = Atomic<Int>(0)
    public let upstreamCxTotal = Atomic<Int>(0)
    public let upstreamCxActive = Atomic<Int>(0)
    public let upstreamCxConnectFail = Atomic<Int>(0)
    public let upstreamCxConnectTimeout = Atomic<Int>(0)
    public let upstreamRqTotal = Atomic<Int>(0)
    public let upstreamRqPendingOverflow = Atomic<Int>(0)
    public let upstreamRqTimeout = Atomic<Int>(0)
    public let upstreamRqRetry = Atomic<Int>(0)
    public let upstreamRqRxReset = Atomic<Int>(0)
    public let noRoute = Atomic<Int>(0)
    /// Per cluster (index in `DataPlane.clusters`): Envoy's `cluster.<name>.*` figures.
    public let clusters: [ClusterStats]
    /// `http.<prefix>.downstream_rq_time` (microseconds).
    public let downstreamRqTime = LatencyHistogram()

    public init(clusters: Int = 0) {
        self.clusters = (0..<clusters).map { _ in ClusterStats() }
    }
}

/// Single-writer increment: a relaxed load and store.
@inline(__always)
func inc(_ counter: borrowing Atomic<Int>, by n: Int = 1) {
    counter.store(counter.load(ordering: .relaxed) &+ n, ordering: .relaxed)
}
