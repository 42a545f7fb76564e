import Synchronization

/// `envoy.filters.http.health_check` in non-pass-through mode on the data path. decodeHeaders:
/// when every configured header matcher matches, the proxy answers itself and stops the chain:
/// 200 (details `health_check_ok`) or, while the server fails health checks (`POST
/// /healthcheck/fail`), 503 with flag LH (`health_check_failed`); both with
/// `x-envoy-upstream-healthchecked-cluster: <node.cluster>` and an empty body, as Envoy 1.40.
/// A health check with a body is answered when the body has been read (and dropped), as Envoy.
/// Other requests continue. While failing, every response of a connection manager with this
/// filter carries `x-envoy-immediate-health-check-fail: true` (added where heads are written).
enum HealthCheckFilter {
    @inline(__always)
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: HealthCheckPlan, index: Int) -> FilterStatus {
        for h in plan.headers where !CompiledRoute.headerMatches(h, ctx.request) { return .continue }
        if ctx.requestHasBody {
            // Envoy answers once the request has ended: read and drop the body, then run again.
            ctx.decision = .discardBody(resumeAt: index)
            return .stopIteration
        }
        LocalRateLimitFilter.inc(plan.stats.requestTotal)
        if plan.health.failed.load(ordering: .relaxed) {
            LocalRateLimitFilter.inc(plan.stats.failed)
            ctx.decision = .localReply(LocalReply(status: 503, body: .text(""), flags: .failedLocalHealthCheck,
                                                  details: .healthCheckFailed, headers: plan.replyHeaders))
        } else {
            LocalRateLimitFilter.inc(plan.stats.ok)
            ctx.decision = .localReply(LocalReply(status: 200, body: .text(""), flags: [], details: .healthCheckOK, headers: plan.replyHeaders))
        }
        return .stopIteration
    }
}

/// The filter compiled: its matchers, the reply's field line, the server's health and counters.
public final class HealthCheckPlan: Sendable {
    let headers: [CompiledHeaderMatcher]
    /// `x-envoy-upstream-healthchecked-cluster: <node.cluster>\r\n`.
    let replyHeaders: [UInt8]
    let health: ServerHealth
    let stats: HealthCheckStats

    init(headers: [CompiledHeaderMatcher], serviceCluster: String, health: ServerHealth, stats: HealthCheckStats) {
        self.headers = headers
        replyHeaders = Array("x-envoy-upstream-healthchecked-cluster: \(serviceCluster)\r\n".utf8)
        self.health = health
        self.stats = stats
    }
}

/// `http.<stat_prefix>.health_check.*` (Envoy's names; the cluster and cache counters stay 0:
/// cluster_min_healthy_percentages and cache_time are refused).
public final class HealthCheckStats: Sendable {
    public let requestTotal = Atomic<Int>(0)
    public let ok = Atomic<Int>(0)
    public let failed = Atomic<Int>(0)

    public static let alwaysZero = ["cached_response", "degraded", "failed_cluster_empty", "failed_cluster_not_found", "failed_cluster_unhealthy"]
}

/// Whether the server fails its health checks (`POST /healthcheck/fail`), shared by every
/// snapshot and worker. While it does, Envoy answers every HTTP/1 response with
/// `connection: close` (its drain manager's drainClose), and so does Ballast.
public final class ServerHealth: Sendable {
    public let failed = Atomic<Bool>(false)

    public init() {}
}
