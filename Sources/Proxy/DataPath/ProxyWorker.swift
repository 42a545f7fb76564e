import Balancers
import EventLoop
import Glibc
import HTTP1

/// Settings every worker of a listener shares.
struct ProxyWorkerSettings: Sendable {
    let plane: DataPlane
    let listener: ListenerPlan
    /// Add `x-ballast-response-flags` to every response (debug).
    let debugResponseFlags: Bool
    /// Where finished requests go for the access log (one ring per worker), or nil.
    let accessRings: [AccessRecordRing]?
    /// Which request fields the access logs of this listener need (nil: none).
    var capture: AccessLogCapture? = nil
    /// Where sampled spans go for the Zipkin reporter (one ring per worker), or nil.
    var traceRings: [AccessRecordRing]? = nil
    /// The data-plane generation `plane` is (a listener added by an update starts on it).
    var generation: UInt32 = 0
}

/// One proxy worker of a listener (its http_connection_manager and tcp_proxy chains): owns its
/// loop's downstream connections, its upstream connection pools (per host), their buffers and
/// timers. Everything runs on the worker's loop thread; nothing here locks. A connection and all
/// its upstream work stay on this worker.
///
/// The request path: receive -> parse the head in place (lent receive buffer) -> HTTP filter
/// chain (router) -> host pool (idle keep-alive connection, new connection, or queue) -> encode
/// the head for upstream -> stream the body. The response path: receive -> parse the head ->
/// encode it for downstream -> stream the body -> return the connection to the pool -> serve the
/// next pipelined request. Each direction is bounded: a side whose output is queued high stops
/// reading the other side.
///
/// The parts, one file each: `ProxyWorker+Downstream` (the client connection and its state),
/// `ProxyWorker+Stream` (one exchange), `ProxyWorker+UpstreamPool` (host selection, per-host
/// connection pools, connects), `ProxyWorker+Response` (the upstream side of an exchange),
/// `ProxyWorker+Heads` (head rewriting), `ProxyWorker+TCP` (tcp_proxy), `ProxyWorker+Inspect`
/// (listener filters, the filter chain of a connection), `ProxyWorker+Ops` (reload, drain). See
/// docs/proxy-data-path.md.
final class ProxyWorker<Backend: IOBackend>: BalancedWorker {
    typealias Message = ProxyMessage
    typealias Loop = EventLoop<Backend, ProxyMessage>

    /// Output queued beyond this pauses the side feeding it.
    static var highWater: Int { 256 * 1024 }
    static var lowWater: Int { 64 * 1024 }
    /// Largest response head accepted from an upstream.
    static var maxResponseHead: Int { 64 * 1024 }
    static var lingerNanos: Int64 { 1_000_000_000 }

    let index: Int
    let listener: Int32
    let loads: WorkerLoads
    /// The current snapshot; a reload swaps it (`ProxyMessage.publish`) for new requests.
    var plane: DataPlane
    var listenerPlan: ListenerPlan
    /// The listener's http_connection_managers in the current generation (streams started
    /// under an earlier one keep theirs: `httpPlan(_:_:)`). A connection's is `hcm(d)`.
    var httpPlans: [HTTPPlan] {
        didSet { httpTraits = httpPlans.map(HTTPTraits.init) }
    }
    /// Per connection manager, plain flags the per-request paths test (reading a plan retains it).
    var httpTraits: [HTTPTraits]
    /// The managers' request-head limits differ: set the parser's for each connection's head.
    var headLimitsDiffer: Bool
    let stats: DataPathStats
    let debugFlags: Bool
    let accessRing: AccessRecordRing?
    let traceRing: AccessRecordRing?
    /// Unconsumed downstream input above this pauses receiving (per_connection_buffer_limit_bytes).
    /// Raised to hold a buffer filter's whole body with its head.
    var inputLimit: Int

    let pool = BufferPool()
    /// Where TLS records are decrypted into (one record at most): lent to the request parser like
    /// a receive buffer.
    let tlsPlaintext = UnsafeMutableRawPointer.allocate(byteCount: ProxyWorkerTLS.plaintextCapacity, alignment: 16)
    /// Where tls_inspector gathers a ClientHello that spans several records.
    let helloScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: ClientHelloInspector.maxClientHello, alignment: 16)
    var downs = Slab<Downstream>(kind: ConnKind.downstream.rawValue, empty: Downstream())
    var ups = Slab<Upstream>(kind: ConnKind.upstream.rawValue, empty: Upstream())
    var tcpSessions = Slab<TCPSession>(kind: ConnKind.tcpDownstream.rawValue, empty: TCPSession())
    /// The active exchanges, one per busy downstream connection: an idle connection holds none.
    var streams = Slab<Stream>(kind: ConnKind.stream.rawValue, empty: Stream())
    /// Mirrored requests on their way to a mirror cluster (ProxyWorker+Mirror).
    var shadows = Slab<Shadow>(kind: ConnKind.shadow.rawValue, empty: Shadow())
    /// Connections whose first bytes the listener filters are reading (ProxyWorker+Inspect).
    var inspections = Slab<Inspection>(kind: ConnKind.inspection.rawValue, empty: Inspection())
    let requestParser: UnsafeMutablePointer<RequestHeadParser>
    var responseParser = ResponseHeadParser()
    var upstreamPools: [UpstreamPool] = []
    /// Host pool of each cluster's host (cluster index, host index): a reload or DNS refresh that
    /// changes a cluster's hosts re-maps them (`ProxyWorker+Ops`), pools of kept addresses stay.
    var clusterPools: [[Int]] = []
    /// Pools whose host left its cluster, freed once empty.
    var retiredPools: [Int] = []
    /// `cluster.<name>.*` counters per cluster slot, counted by this worker (`stats.clusters`
    /// is the admin's copy of the list).
    var clusterCounters: [ClusterStats]
    var roundRobin: [Int] = []
    /// LEAST_REQUEST with unequal weights: each cluster's EDF schedule (`HostSelection.swift`).
    var weightedLeastRequest: [WeightedLeastRequest?] = []
    /// Clusters with priorities or locality weights: each one's picks (ProxyWorker+Priority),
    /// rebuilt when its plan or its hosts' health changes.
    var priorityTables: [PriorityTable] = []
    /// Host pools created for original destinations (ORIGINAL_DST clusters).
    var originalDst = OriginalDstHosts()
    var rng: SplitMix64
    var date = HTTPDateField()
    var compressors = CompressorPool()
    /// The cache filter's entries (`responseCache`, made on first use).
    var cacheStore: ResponseCache?
    var inflaters = InflaterPool()
    var loggedAcceptError = false
    /// Reload and drain state (`ProxyWorker+Ops`).
    var ops = WorkerOpsState()
    let listenerFD: Int32
    let capture: AccessLogCapture?

    init(seat: WorkerSeat, settings: ProxyWorkerSettings, stats: DataPathStats) {
        index = seat.index
        listener = seat.listener
        loads = seat.loads
        plane = settings.plane
        listenerPlan = settings.listener
        httpPlans = settings.listener.httpPlans
        self.stats = stats
        clusterCounters = stats.clusters
        debugFlags = settings.debugResponseFlags
        accessRing = settings.accessRings?[seat.index]
        // didSet does not run in an initializer.
        httpTraits = settings.listener.httpPlans.map(HTTPTraits.init)
        headLimitsDiffer = settings.listener.headLimitsDiffer
        traceRing = settings.traceRings?[seat.index]
        listenerFD = seat.listener
        capture = settings.accessRings == nil ? nil : settings.capture
        inputLimit = Self.inputLimit(settings.listener)
        requestParser = .allocate(capacity: 1)
        // One parser for every connection: its slot table fits the largest max_headers_count.
        let first = settings.listener.http
        requestParser.initialize(to: RequestHeadParser(maxHeaderBytes: first?.maxRequestHeaderBytes ?? 65536,
                                                       maxHeaders: first?.maxHeadersCount ?? 100,
                                                       slotCapacity: settings.listener.httpPlans.map(\.maxHeadersCount).max() ?? 100))
        // Seeded from the system's generator: each process (and worker) draws its own sequence
        // (x-request-id, RANDOM and LEAST_REQUEST picks), as Envoy's random generator does.
        rng = SplitMix64(seed: UInt64.random(in: .min ... .max) &+ UInt64(seat.index) &* 0x9E37_79B9)
        for h in httpPlans { h.filters.prepareThread() }
        for c in plane.clusters {
            roundRobin.append(seat.index)  // workers start at different hosts
            weightedLeastRequest.append(WeightedLeastRequest(c, seed: seat.index))
            priorityTables.append(PriorityTable())
            var pools: [Int] = []
            for h in c.hosts.indices {
                pools.append(upstreamPools.count)
                let pool = UpstreamPool(cluster: c.index, host: h)
                stats.hosts.set(upstreamPools.count, cluster: c.name, host: c.hosts[h].name, counters: pool.counters)
                upstreamPools.append(pool)
            }
            clusterPools.append(pools)
        }
        ops.generation = settings.generation
        // A listener added by an update starts on that update's snapshot: its counters count for
        // the clusters that snapshot has (/stats), and its streams name nothing older.
        stats.appliedGeneration.store(settings.generation, ordering: .relaxed)
        stats.oldestLiveGeneration.store(settings.generation, ordering: .relaxed)
    }

    static func inputLimit(_ l: ListenerPlan) -> Int {
        var limit = max(64 * 1024, l.bufferLimitBytes)
        for h in l.httpPlans where h.maxBufferedRequestBytes > 0 {
            limit = max(limit, h.maxBufferedRequestBytes + h.maxRequestHeaderBytes + 4096)
        }
        return limit
    }

    deinit {
        requestParser.deinitialize(count: 1)
        requestParser.deallocate()
        tlsPlaintext.deallocate()
        helloScratch.deallocate()
        compressors.freeAll()
        inflaters.freeAll()
        cacheStore?.freeAll()
    }

    /// The active stream of a downstream connection, or nil when it has none. Streams live in
    /// `streams` (stable storage), so the pointer stays valid until the stream ends.
    @inline(__always)
    func stream(of d: UnsafeMutablePointer<Downstream>) -> UnsafeMutablePointer<Stream>? {
        streams.pointer(d.pointee.stream)
    }

    // MARK: completions and timers (dispatch by token kind)

    func handle(_ c: Completion, loop: Loop) {
        switch c.kind {
        case .receive:
            switch ConnToken.kind(c.token) {
            case ConnKind.downstream.rawValue: downstreamReceived(c, loop)
            case ConnKind.upstream.rawValue: upstreamReceived(c, loop)
            case ConnKind.inspection.rawValue: inspectionReceived(c, loop)
            default: tcpReceived(c, loop)
            }
        case .send:
            switch ConnToken.kind(c.token) {
            case ConnKind.downstream.rawValue: downstreamSent(c, loop)
            case ConnKind.upstream.rawValue: upstreamSent(c, loop)
            default: tcpSent(c, loop)
            }
        case .connect:
            if ConnToken.kind(c.token) == ConnKind.upstream.rawValue { upstreamConnected(c, loop) } else { tcpConnected(c, loop) }
        case .accept:
            accepted(c, loop)
        case .message:
            adopt(c.result, loop)
        case .detach:
            break  // the proxy never detaches (no live rebalancing)
        }
    }

    func accepted(_ c: Completion, _ loop: Loop) {
        if ops.draining {  // the listener is shut: nothing more is accepted or retried
            if c.result >= 0 { Glibc.close(c.result) }
            return
        }
        guard c.result >= 0 else {
            // Shut by a removed listener's drain before its message arrived: nothing to retry.
            if listenerFD >= 0 && !Sockets.isListening(listenerFD) { return }
            if !loggedAcceptError {
                loggedAcceptError = true
                Log.warning("proxy worker \(index): accept failed: \(Log.describe(errno: -c.result)); retrying every 100 ms")
            }
            loop.timers.schedule(at: loop.now + 100_000_000, id: WorkerSeat.listenerToken)
            return
        }
        loads.connectionOpened(index)
        adopt(c.result, loop)
    }

    func adopt(_ fd: Int32, _ loop: Loop) {
        if ops.draining {  // handed over by an acceptor after the drain began
            loads.connectionClosed(index)
            Glibc.close(fd)
            return
        }
        guard takeConnectionSlots() else {
            loads.connectionClosed(index)
            Glibc.close(fd)
            return
        }
        Sockets.setNoDelay(fd)
        if let inspection = listenerPlan.inspection {
            inspect(fd, inspection, loop)  // the chain is chosen once the first bytes are read
            return
        }
        guard let selector = listenerPlan.selector else {
            serve(fd, chain: 0, loop)
            return
        }
        var facts = ConnectionFacts()
        readAddresses(fd, selector, into: &facts)
        guard let chain = selector.select(facts, UnsafeRawBufferPointer(start: nil, count: 0)) else {
            refuseUnmatched(fd)
            return
        }
        serve(fd, chain: chain, loop)
    }

    /// Runs filter chain `chain` on an accepted connection (its slots taken). `inspected`: the
    /// listener filters were receiving from it; `held`: the bytes they read, which the chain
    /// receives first; `serverName`: the SNI they found (lower case), for the access log.
    func serve(_ fd: Int32, chain: Int, inspected: Bool = false,
               held: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
               serverName: UnsafeRawBufferPointer? = nil, _ loop: Loop) {
        inc(stats.downstreamCxTotal)
        inc(stats.downstreamCxActive)
        let manager: Int
        switch listenerPlan.chains[chain] {
        case .tcp(let plan):
            tcpAdopt(fd, chain: chain, plan: plan, inspected: inspected, held: held, serverName: serverName, loop)
            return
        case .http(let m):
            manager = m
        }
        let counters = stats.http[manager]
        inc(counters.httpCxTotal)
        inc(counters.httpCxActive)
        let http = httpPlans[manager]
        var d = Downstream()
        d.fd = fd
        d.hcm = UInt8(manager)
        d.originalDst = restoredDestination(fd)
        if let serverName, serverName.count > 0, capture?.serverName == true, accessRing != nil {
            _ = pool.append(serverName, to: &d.serverName)
        }
        if let context = listenerPlan.httpTLS[manager] {
            guard let session = TLSSession(context: context) else {
                Log.warning("proxy worker \(index): cannot create a TLS session: \(TLSSession.lastError())")
                inc(counters.httpCxActive, by: -1)
                downstreamConnectionEnded()
                loads.connectionClosed(index)
                Glibc.close(fd)
                return
            }
            d.tls = session
        }
        if let limit = http.maxConnectionDurationNanos { d.durationDeadline = loop.now + limit }
        let token = downs.insert(d)
        if let p = downs.pointer(token), http.idleTimeoutNanos != nil || p.pointee.durationDeadline != 0 {
            if let idle = http.idleTimeoutNanos { p.pointee.idleDeadline = loop.now + idle }
            armDownstreamTimer(token, p, loop)
        }
        loop.backend.armReceive(fd: fd, token: token)
        if held.count > 0, let p = downs.pointer(token) {
            if p.pointee.tls.isActive { downstreamCiphertext(held, token, p, loop) } else { downstreamInput(Int32(held.count), held, token, p, loop) }
        }
    }

    /// The runtime connection limits, as Envoy checks them at accept: the listener's
    /// connection_limit, then the global limit; over either the connection is closed and counted.
    /// One atomic add per counter per connection (not per request).
    func takeConnectionSlots() -> Bool {
        guard ClusterResources.tryTake(listenerPlan.connections.active, limit: listenerPlan.connectionLimit) else {
            inc(stats.downstreamCxOverflow)
            return false
        }
        guard ClusterResources.tryTake(plane.globalConnections.active, limit: plane.globalConnectionLimit) else {
            ClusterResources.give(listenerPlan.connections.active)
            inc(stats.downstreamGlobalCxOverflow)
            return false
        }
        return true
    }

    /// A downstream connection (HTTP or TCP) closed: its gauge and its connection slots.
    func downstreamConnectionEnded() {
        inc(stats.downstreamCxActive, by: -1)
        releaseConnectionSlots()
    }

    /// Gives back what `takeConnectionSlots` took.
    func releaseConnectionSlots() {
        ClusterResources.give(listenerPlan.connections.active)
        ClusterResources.give(plane.globalConnections.active)
    }

    func received(_ message: ProxyMessage, loop: Loop) {
        switch message {
        case .adopt(let fd): adopt(fd, loop)
        case .publish(let plane, let generation): apply(plane, generation: generation, loop)
        case .drain: startDrain(loop)
        case .testStall(let stall): stall.hold()
        }
    }

    func stopping(loop: Loop) {
        for t in downs.liveTokens() { closeDownstream(t, loop, flags: .localReset) }
        for t in tcpSessions.liveTokens() { tcpClose(t, loop) }
        for t in inspections.liveTokens() { closeInspection(t, loop) }
        for t in ups.liveTokens() { closeUpstream(t, loop) }
    }

    func timerFired(_ id: UInt64, loop: Loop) {
        if id == WorkerSeat.listenerToken {
            loggedAcceptError = false
            if listener >= 0 && !ops.draining { loop.backend.armAccept(listener: listener, token: WorkerSeat.listenerToken) }
            return
        }
        if id == Self.originalDstSweepToken {
            sweepOriginalDstHosts(loop)
            return
        }
        switch ConnToken.kind(id) {
        case ConnKind.downstream.rawValue: downstreamTimer(id, loop)
        case ConnKind.upstream.rawValue: upstreamTimer(id, loop)
        case ConnKind.inspection.rawValue: inspectionTimer(id, loop)
        default: tcpTimer(id, loop)
        }
    }
}

extension UnsafeRawBufferPointer {
    init(staticString s: StaticString) {
        self.init(start: s.utf8Start, count: s.utf8CodeUnitCount)
    }
}
