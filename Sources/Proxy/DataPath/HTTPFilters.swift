import Balancers
import HTTP1

/// What a filter callback tells the chain manager (Envoy's `FilterHeadersStatus`/`FilterDataStatus`,
/// reduced to the two that HTTP/1.1 streaming needs).
public enum FilterStatus: Sendable {
    /// Run the next filter.
    case `continue`
    /// Stop here; the filter has taken over the stream (answered locally, or started upstream).
    case stopIteration
}

/// The closed set of HTTP filters the data path knows. A chain is an array of these, run by a
/// `switch` per callback: static dispatch, no existential, no allocation per request. A new
/// filter adds a case here, its callbacks in a file of its own, and a line in each `switch` below.
public enum HTTPFilterKind: Sendable {
    /// `envoy.filters.http.router`: forwards on the stream's route, or answers locally
    /// (direct_response, no route). Terminal: always last.
    case router
    /// `ballast.filters.http.worker_cost`: spends a worker cost per request (`WorkerCostFilter`).
    case workerCost(WorkerCost)
    /// `envoy.filters.http.local_ratelimit` (`LocalRateLimitFilter`).
    case localRateLimit(LocalRateLimitPlan)
    /// `envoy.filters.http.fault` (`FaultFilter`).
    case fault(FaultPlan)
    /// `envoy.filters.http.cors` (`CorsFilter`).
    case cors(CorsPlan)
    /// `envoy.filters.http.csrf` (`CsrfFilter`).
    case csrf(CsrfPlan)
    /// `envoy.filters.http.rbac` (`RBACFilter`).
    case rbac(RBACPlan)
    /// `envoy.filters.http.health_check` (`HealthCheckFilter`).
    case healthCheck(HealthCheckPlan)
    /// `envoy.filters.http.buffer` (`BufferFilter`).
    case buffer(BufferPlan)
    /// `envoy.filters.http.compressor` (`CompressorFilter`; its response side is the worker's).
    case compressor(CompressorPlan)
    /// `envoy.filters.http.decompressor` (`DecompressorFilter`; the body is inflated by the worker).
    case decompressor(DecompressorPlan)
    /// `envoy.filters.http.cache` (`CacheFilter`; entries are filled and served by the worker).
    case cache(CachePlan)
    /// `envoy.filters.http.ext_authz` with an http_service (`ExtAuthzFilter`; the check request is the worker's).
    case extAuthz(ExtAuthzPlan)
}

/// The decoder/encoder chain of one http_connection_manager.
public struct HTTPFilterChain: Sendable {
    public let filters: [HTTPFilterKind]
    /// A filter reads the connection (peer, destination port: `FilterContext.connection`).
    let needsConnection: Bool

    init(filters: [HTTPFilterKind]) {
        self.filters = filters
        needsConnection = filters.contains { if case .rbac = $0 { true } else { false } }
    }

    /// Resolves the stream's route (Envoy's HCM caches it before the first filter, so every filter
    /// sees it, e.g. for `typed_per_filter_config`), then runs decodeHeaders through the chain
    /// until a filter stops iteration.
    func decodeHeaders(_ ctx: inout FilterContext) {
        ctx.route = ctx.plan.routes.resolve(ctx.request)
        decodeHeaders(&ctx, from: 0)
    }

    /// Runs decodeHeaders from filter `start` (a stream resumed after a filter's pause).
    func decodeHeaders(_ ctx: inout FilterContext, from start: Int) {
        for i in start..<filters.count {
            let status: FilterStatus
            switch filters[i] {
            case .router: status = RouterFilter.decodeHeaders(&ctx)
            case .workerCost(let cost): status = WorkerCostFilter.decodeHeaders(&ctx, cost: cost)
            case .localRateLimit(let plan): status = LocalRateLimitFilter.decodeHeaders(&ctx, plan)
            case .fault(let plan): status = FaultFilter.decodeHeaders(&ctx, plan, index: i)
            case .cors(let plan): status = CorsFilter.decodeHeaders(&ctx, plan)
            case .csrf(let plan): status = CsrfFilter.decodeHeaders(&ctx, plan)
            case .rbac(let plan): status = RBACFilter.decodeHeaders(&ctx, plan)
            case .healthCheck(let plan): status = HealthCheckFilter.decodeHeaders(&ctx, plan, index: i)
            case .buffer(let plan): status = BufferFilter.decodeHeaders(&ctx, plan, index: i)
            case .compressor(let plan): status = CompressorFilter.decodeHeaders(&ctx, plan)
            case .decompressor(let plan): status = DecompressorFilter.decodeHeaders(&ctx, plan)
            case .cache(let plan): status = CacheFilter.decodeHeaders(&ctx, plan)
            case .extAuthz(let plan): status = ExtAuthzFilter.decodeHeaders(&ctx, plan, index: i)
            }
            if status == .stopIteration { return }
        }
    }

    /// Runs decodeData for request body bytes; false when a filter stopped them (not forwarded).
    func decodeData(_ bytes: UnsafeRawBufferPointer, endStream: Bool) -> Bool {
        for f in filters {
            switch f {
            case .router, .workerCost, .localRateLimit, .fault, .cors, .csrf, .rbac, .healthCheck, .buffer, .compressor, .decompressor, .cache, .extAuthz: continue  // the router forwards what reaches it
            }
        }
        return true
    }

    /// Runs encodeHeaders (in reverse order, as Envoy) for a response head.
    func encodeHeaders(status: Int, endStream: Bool) -> FilterStatus {
        for f in filters.reversed() {
            switch f {
            case .router, .workerCost, .localRateLimit, .fault, .cors, .csrf, .rbac, .healthCheck, .buffer, .compressor, .decompressor, .cache, .extAuthz: continue
            }
        }
        return .continue
    }

    /// Runs encodeData for response body bytes.
    func encodeData(_ bytes: UnsafeRawBufferPointer, endStream: Bool) -> FilterStatus {
        for f in filters.reversed() {
            switch f {
            case .router, .workerCost, .localRateLimit, .fault, .cors, .csrf, .rbac, .healthCheck, .buffer, .compressor, .decompressor, .cache, .extAuthz: continue
            }
        }
        return .continue
    }
}

/// A locally generated response (Envoy's `sendLocalReply`).
struct LocalReply {
    enum Body {
        case text(StaticString)
        /// The direct_response body of a route (index into `RouteTable.allRoutes`).
        case route(Int)
    }

    var status: Int
    var body: Body
    var flags: ResponseFlags
    var details: ResponseDetails
    /// Extra field lines (`name: value\r\n` each), compiled with the filter's config: a filter's
    /// own headers on its reply (local_ratelimit's `response_headers_to_add`). Sharing the
    /// compiled array costs a retain, not an allocation.
    var headers: [UInt8] = []
    /// The router's own reply (direct_response, upstream failure): the route's
    /// `response_headers_to_add/remove` apply, as Envoy's router adds them to its local replies.
    var routeHeaders = false
    /// Completes `details` (the matched RBAC policy: an index into the plan's `rbacDetails`).
    var detailsArgument: UInt16 = 0
}

/// What filters may read of the downstream connection; filled only for chains that need it
/// (the peer is read once per connection, the local port once too).
struct ConnectionInfo {
    var peer = PeerAddress()
    /// The connection's local port (the original destination's, when restored).
    var destinationPort: UInt16 = 0
}

/// What the filters decided for a stream: the chain manager acts on it.
enum StreamDecision {
    case undecided
    case localReply(LocalReply)
    case forward(route: Int, cluster: Int)
    /// Pause the stream for `nanos` (the fault filter's delay), then run filter `resumeAt` again
    /// with `FilterContext.resumingDelay` set.
    case delay(nanos: Int64, resumeAt: Int)
    /// Hold the request until its body (at most `maxBytes`) is complete, then run filter
    /// `resumeAt` (the buffer filter's).
    case buffer(maxBytes: Int, resumeAt: Int)
    /// Read and drop the request body, then run filter `resumeAt` again (the health check's).
    case discardBody(resumeAt: Int)
    /// Answer from the worker's response cache: a fresh entry, `age` seconds old.
    case cacheHit(entry: Int32, age: Int64, range: CacheRange)
    /// Ask the authorization service of ext_authz filter `filter` first; on its answer the chain
    /// resumes after that filter, or the stream is answered locally. `routeCluster`: the route's
    /// cluster (its `ext_authz.*` and denial stats), -1 for none.
    case authorize(filter: Int, routeCluster: Int)
}

/// The state decodeHeaders works on: the request, the listener's plan, the stream's route and
/// the decision.
struct FilterContext {
    let request: RequestView
    let plan: HTTPPlan
    /// A random draw for this request (weighted clusters, fractional percents).
    let random: UInt64
    /// The worker loop's clock (monotonic nanoseconds).
    let now: Int64
    /// The route the request matched (nil: none), resolved once before the first filter.
    var route: CompiledRoute? = nil
    var decision: StreamDecision = .undecided
    /// Worker costs spent on this request (the worker adds them to its stats).
    var workerCostsApplied = 0
    /// The router ran (Envoy's `rq_total` counts the requests that reach it).
    var routed = false
    /// The stream holds one of its HCM's active faults (`fault.active_faults`).
    var faultActive = false
    /// The chain resumes at a fault filter whose delay has passed.
    var resumingDelay = false
    /// An allowed CORS origin (its range in the head) and the route whose policy allowed it:
    /// the stream keeps a copy and decorates its response.
    var corsOrigin: Range<Int>? = nil
    var corsRoute = -1
    var connection = ConnectionInfo()
    /// What the request's accept-encoding allows (the compressor filter's decodeHeaders).
    var acceptEncoding = AcceptEncodingChoice.unset
    /// The decompressor inflates this request's body.
    var decompressRequest = false
    /// The request has body bytes still to read (the buffer filter holds those requests).
    var requestHasBody = false
    /// The worker's response cache (set for chains with the cache filter).
    var cache: ResponseCache? = nil
    /// What the cache filter decided for a request that goes upstream.
    var cacheLookup = CacheLookup()

    init(request: RequestView, plan: HTTPPlan, random: UInt64, now: Int64) {
        self.request = request
        self.plan = plan
        self.random = random
        self.now = now
    }
}

extension RouteTable {
    /// The virtual host by Host, then its first matching route.
    func resolve(_ request: RequestView) -> CompiledRoute? {
        let host = request.host.map { UnsafeRawBufferPointer(rebasing: request.bytes[$0]) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
        guard let vh = virtualHost(for: host) else { return nil }
        if !request.secure, let redirect = virtualHosts[vh].tlsRedirect { return redirect }
        return route(in: vh, request: request)
    }
}

/// The router filter's callbacks.
enum RouterFilter {
    static func decodeHeaders(_ ctx: inout FilterContext) -> FilterStatus {
        ctx.routed = true
        guard let route = ctx.route else {
            ctx.decision = .localReply(LocalReply(status: 404, body: .text(""), flags: .noRouteFound, details: .routeNotFound))
            return .stopIteration
        }
        switch route.action {
        case .direct(let status, _):
            ctx.decision = .localReply(LocalReply(status: status, body: .route(route.index), flags: [], details: .directResponse, routeHeaders: true))
        case .redirect(let r):
            // Envoy answers a redirect as a direct response (details, stats), with an empty body.
            ctx.decision = .localReply(LocalReply(status: r.status, body: .route(route.index), flags: [], details: .directResponse, routeHeaders: true))
        case .forward(let plan):
            ctx.decision = .forward(route: route.index, cluster: pickCluster(plan, random: ctx.random))
        }
        return .stopIteration
    }

    /// The route's cluster for this request (a weighted pick when it has several).
    static func pickCluster(_ plan: ForwardPlan, random: UInt64) -> Int {
        var cluster = plan.clusters[0].index
        if plan.clusters.count > 1 {
            var pick = Int(random % UInt64(plan.totalWeight))
            for c in plan.clusters {
                if pick < c.weight { cluster = c.index; break }
                pick -= c.weight
            }
        }
        return cluster
    }
}
