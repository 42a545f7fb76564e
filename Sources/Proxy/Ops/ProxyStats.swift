import EventLoop
import Synchronization
import Foundation

/// The proxy's figures merged from every worker (main or admin thread, on demand and on the
/// flush interval), with Envoy's names. Workers only bump their own counters; this reads them.
public struct ProxyStatsSnapshot: Sendable {
    public enum Kind: String, Sendable { case counter, gauge }

    public struct Value: Sendable {
        public let name: String
        public let kind: Kind
        public let value: Int
        /// Prometheus: the family (`envoy_cluster_upstream_rq_total`) and its labels.
        let family: String
        let labels: [(String, String)]
        /// A gauge above Int.max (the xDS `version` hashes); printed instead of `value`.
        public var unsigned: UInt64? = nil

        var printed: String { unsigned.map { String($0) } ?? String(value) }
    }

    public struct Latency: Sendable {
        public let name: String
        public let merged: MergedLatency
        let family: String
        let labels: [(String, String)]
    }

    public var values: [Value] = []
    public var histograms: [Latency] = []
    /// Envoy's text readouts (`cluster_manager.cds.version_text`): `/stats` and JSON only.
    public var textReadouts: [(name: String, value: String)] = []

    public func value(_ name: String) -> Int? { values.first { $0.name == name }?.value }

    /// Envoy's listener stat name for an address: `127.0.0.1_10000`.
    public static func listenerName(host: String, port: Int) -> String { "\(host)_\(port)" }
}

/// What the snapshot reads besides the workers' counters.
struct StatsInputs {
    var plane: DataPlane
    var watchdogMiss = 0
    var watchdogMegaMiss = 0
    var accessLogDropped = 0
    var zipkin: ZipkinReporter?
    var uptimeSeconds = 0
    var draining = false
    var healthFailed = false
    /// File-based LDS / CDS / EDS / RDS subscriptions, and the `version_info` each last applied.
    var subscriptions: [SubscriptionKey: SubscriptionCounters] = [:]
    var clusterManager: ClusterManagerCounters?
    var versionTexts: [SubscriptionKey: String] = [:]
    /// RDS: the stat_prefix whose scope holds each route configuration's stats.
    var routeStatPrefixes: [String: String] = [:]
    /// SDS secrets from files (by name), their `version_info`, and `ssl_context_update_by_sds`
    /// per listener index and cluster name.
    var secrets: [String: SecretCounters] = [:]
    var secretVersionTexts: [String: String] = [:]
    var sdsListenerUpdates: [Int: Int] = [:]
    var sdsClusterUpdates: [String: Int] = [:]
    var listenerManager = ListenerManagerCounters()
}

extension ProxyStatsSnapshot {
    init(proxy: RunningProxy, inputs: StatsInputs) {
        var values: [String: (Kind, Int, String, [(String, String)])] = [:]
        var order: [String] = []
        func add(_ name: String, _ kind: Kind, _ v: Int, family: String, labels: [(String, String)] = []) {
            if let old = values[name] {
                values[name] = (kind, old.1 + v, old.2, old.3)
            } else {
                values[name] = (kind, v, family, labels)
                order.append(name)
            }
        }
        var histos: [String: ([LatencyHistogram], String, [(String, String)])] = [:]
        var histoOrder: [String] = []
        func addHisto(_ name: String, _ h: LatencyHistogram, family: String, labels: [(String, String)]) {
            if histos[name] == nil { histos[name] = ([], family, labels); histoOrder.append(name) }
            histos[name]!.0.append(h)
        }
        func load(_ a: borrowing Atomic<Int>) -> Int { a.load(ordering: .relaxed) }
        let plane = inputs.plane
        // Active and draining listeners (a drained one's `listener.*` stats are gone, as Envoy's).
        for (run, phase) in proxy.slotTable {
            let bound = run.bound, workers = run.stats
            let li: Int?, plan: ListenerPlan?
            switch phase {
            case .active:
                li = plane.listeners.firstIndex { $0.name == bound.name }
                plan = li.map { plane.listeners[$0] }
            case .draining(_, let p):
                li = nil
                plan = p
            case .stopped:
                continue
            }
            let addr = ProxyStatsSnapshot.listenerName(host: bound.address.host, port: bound.port)
            let la = [("envoy_listener_address", addr)]
            add("listener.\(addr).downstream_cx_total", .counter, workers.reduce(0) { $0 + load($1.downstreamCxTotal) },
                family: "envoy_listener_downstream_cx_total", labels: la)
            add("listener.\(addr).downstream_cx_active", .gauge, workers.reduce(0) { $0 + load($1.downstreamCxActive) },
                family: "envoy_listener_downstream_cx_active", labels: la)
            add("listener.\(addr).downstream_cx_overflow", .counter, workers.reduce(0) { $0 + load($1.downstreamCxOverflow) },
                family: "envoy_listener_downstream_cx_overflow", labels: la)
            add("listener.\(addr).downstream_global_cx_overflow", .counter, workers.reduce(0) { $0 + load($1.downstreamGlobalCxOverflow) },
                family: "envoy_listener_downstream_global_cx_overflow", labels: la)
            for (w, s) in workers.enumerated() {
                let wl = la + [("envoy_worker_id", "\(w)")]
                add("listener.\(addr).worker_\(w).downstream_cx_total", .counter, load(s.downstreamCxTotal),
                    family: "envoy_listener_worker_downstream_cx_total", labels: wl)
                add("listener.\(addr).worker_\(w).downstream_cx_active", .gauge, load(s.downstreamCxActive),
                    family: "envoy_listener_worker_downstream_cx_active", labels: wl)
            }
            guard let listener = plan else { continue }
            if listener.terminatesTLS {
                ProxyStatsSnapshot.addTLSStats("listener.\(addr).ssl.", workers.map(\.tls), family: "envoy_listener_ssl_", labels: la, add: add)
            }
            if let li, let n = inputs.sdsListenerUpdates[li] {
                add("listener.\(addr).server_ssl_socket_factory.ssl_context_update_by_sds", .counter, n,
                    family: "envoy_listener_server_ssl_socket_factory_ssl_context_update_by_sds", labels: la)
            }
            ProxyStatsSnapshot.addInspectionStats(listener, workers, addr: addr, labels: la, add: add)
            for (m, h) in listener.httpPlans.enumerated() {
                let managers = workers.map { $0.http[min(m, $0.http.count - 1)] }
                let terminatesTLS = listener.terminatesTLS(hcm: m)
                let p = "http.\(h.statPrefix)."
                let hl = [("envoy_http_conn_manager_prefix", h.statPrefix)]
                func c(_ suffix: String, _ kind: Kind = .counter, _ get: (HTTPCounters) -> Int) {
                    add(p + suffix, kind, managers.reduce(0) { $0 + get($1) }, family: "envoy_http_" + suffix, labels: hl)
                }
                c("downstream_cx_total") { load($0.httpCxTotal) }
                c("downstream_cx_active", .gauge) { load($0.httpCxActive) }
                // Every downstream connection and request is HTTP/1 here.
                c("downstream_cx_http1_total") { load($0.downstreamCxHTTP1Total) - load($0.http2PrefaceRefused) }
                c("downstream_cx_http1_active", .gauge) { load($0.httpCxActive) }
                c("downstream_cx_protocol_error") { load($0.downstreamCxProtocolError) }
                c("downstream_cx_upgrades_total") { load($0.downstreamCxUpgradesTotal) }
                c("downstream_cx_upgrades_active", .gauge) { load($0.downstreamCxUpgradesActive) }
                c("downstream_rq_ws_on_non_ws_route") { load($0.downstreamRqWsOnNonWsRoute) }
                c("downstream_cx_ssl_total") { terminatesTLS ? load($0.httpCxTotal) : 0 }
                c("downstream_cx_ssl_active", .gauge) { terminatesTLS ? load($0.httpCxActive) : 0 }
                c("downstream_rq_total") { load($0.downstreamRqTotal) }
                c("downstream_rq_http1_total") { load($0.downstreamRqTotal) }
                c("downstream_rq_completed") { load($0.downstreamRqCompleted) }
                c("downstream_rq_rx_reset") { load($0.downstreamRqRxReset) }
                c("downstream_rq_tx_reset") { load($0.downstreamRqTxReset) }
                c("downstream_cx_destroy_remote_active_rq") { load($0.downstreamCxDestroyRemoteActiveRq) }
                c("downstream_rq_response_before_rq_complete") { load($0.downstreamRqResponseBeforeRqComplete) }
                c("downstream_rq_idle_timeout") { load($0.downstreamRqIdleTimeout) }
                c("downstream_rq_timeout") { load($0.downstreamRqTimeout) }
                c("downstream_rq_header_timeout") { load($0.downstreamRqHeaderTimeout) }
                c("downstream_cx_max_duration_reached") { load($0.downstreamCxMaxDurationReached) }
                c("downstream_rq_active", .gauge) { load($0.downstreamRqActive) }
                // Envoy's Prometheus form: one family, the class as a label.
                let classes: [(Int, (HTTPCounters) -> Int)] = [(1, { load($0.downstreamRq1xx) }), (2, { load($0.downstreamRq2xx) }),
                                                                (3, { load($0.downstreamRq3xx) }), (4, { load($0.downstreamRq4xx) }),
                                                                (5, { load($0.downstreamRq5xx) })]
                for (k, get) in classes {
                    add(p + "downstream_rq_\(k)xx", .counter, managers.reduce(0) { $0 + get($1) }, family: "envoy_http_downstream_rq_xx",
                        labels: [("envoy_response_code_class", "\(k)")] + hl)
                }
                // The requests that reached the router.
                c("rq_total") { load($0.routerRqTotal) }
                c("downstream_rq_too_large") { load($0.downstreamRqTooLarge) }
                c("rq_direct_response") { load($0.rqDirectResponse) }
                c("no_route") { load($0.noRoute) }
                c("no_cluster") { load($0.noCluster) }
                c("ballast.http2_preface_refused") { load($0.http2PrefaceRefused) }
                if h.tracing != nil {
                    c("tracing.client_enabled") { load($0.tracingClientEnabled) }
                    c("tracing.health_check") { _ in 0 }
                    c("tracing.not_traceable") { load($0.tracingNotTraceable) }
                    c("tracing.random_sampling") { load($0.tracingRandomSampling) }
                    c("tracing.service_forced") { load($0.tracingServiceForced) }
                }
                if h.filters.hasWorkerCost { c("worker_cost.applied") { load($0.workerCostApplied) } }
                if let fs = h.faultStats {
                    // Shared by the workers: added once, not per worker.
                    func f(_ suffix: String, _ kind: Kind, _ v: Int) {
                        add(p + "fault." + suffix, kind, v, family: "envoy_http_fault_" + suffix, labels: hl)
                    }
                    f("aborts_injected", .counter, load(fs.abortsInjected))
                    f("delays_injected", .counter, load(fs.delaysInjected))
                    f("faults_overflow", .counter, load(fs.faultsOverflow))
                    f("response_rl_injected", .counter, load(fs.responseRateLimitInjected))
                    f("active_faults", .gauge, load(fs.activeFaults))
                }
                for rs in h.rbacStats {
                    // Envoy joins "rbac." and a non-empty prefix with a dot; Prometheus gets the prefix as a label.
                    func joined(_ prefix: String) -> String { prefix.isEmpty ? "rbac." : "rbac.\(prefix)." }
                    func labels(_ prefix: String) -> [(String, String)] { prefix.isEmpty ? hl : [("envoy_rbac_http_prefix", prefix)] + hl }
                    add(p + joined(rs.rulesPrefix) + "allowed", .counter, load(rs.allowed), family: "envoy_http_rbac_allowed", labels: labels(rs.rulesPrefix))
                    add(p + joined(rs.rulesPrefix) + "denied", .counter, load(rs.denied), family: "envoy_http_rbac_denied", labels: labels(rs.rulesPrefix))
                    add(p + joined(rs.shadowPrefix) + "shadow_allowed", .counter, load(rs.shadowAllowed), family: "envoy_http_rbac_shadow_allowed", labels: labels(rs.shadowPrefix))
                    add(p + joined(rs.shadowPrefix) + "shadow_denied", .counter, load(rs.shadowDenied), family: "envoy_http_rbac_shadow_denied", labels: labels(rs.shadowPrefix))
                }
                if let es = h.extAuthzStats {
                    func ea(_ suffix: String, _ v: Int) {
                        add(p + "ext_authz." + suffix, .counter, v, family: "envoy_http_ext_authz_" + suffix, labels: hl)
                    }
                    ea("ok", load(es.ok))
                    ea("denied", load(es.denied))
                    ea("error", load(es.error))
                    ea("failure_mode_allowed", load(es.failureModeAllowed))
                    ea("disabled", load(es.disabled))
                }
                if let cs = h.csrfStats {
                    add(p + "csrf.missing_source_origin", .counter, load(cs.missingSourceOrigin), family: "envoy_http_csrf_missing_source_origin", labels: hl)
                    add(p + "csrf.request_invalid", .counter, load(cs.requestInvalid), family: "envoy_http_csrf_request_invalid", labels: hl)
                    add(p + "csrf.request_valid", .counter, load(cs.requestValid), family: "envoy_http_csrf_request_valid", labels: hl)
                }
                if let hs = h.healthCheckStats {
                    func hc(_ suffix: String, _ v: Int) {
                        add(p + "health_check." + suffix, .counter, v, family: "envoy_http_health_check_" + suffix, labels: hl)
                    }
                    hc("request_total", load(hs.requestTotal))
                    hc("ok", load(hs.ok))
                    hc("failed", load(hs.failed))
                    for name in HealthCheckStats.alwaysZero { hc(name, 0) }
                }
                if let ds = h.decompressor?.stats {
                    for (suffix, v) in ds.all {
                        let name = ds.prefix + suffix
                        add(p + name, .counter, v, family: "envoy_http_" + name.replacingOccurrences(of: ".", with: "_"), labels: hl)
                    }
                }
                if let cs = h.compressor?.stats {
                    for (suffix, v) in cs.all {
                        let name = cs.prefix + suffix
                        add(p + name, .counter, v, family: "envoy_http_" + name.replacingOccurrences(of: ".", with: "_"), labels: hl)
                    }
                }
                if let cs = h.corsStats {
                    add(p + "cors.origin_valid", .counter, load(cs.originValid), family: "envoy_http_cors_origin_valid", labels: hl)
                    add(p + "cors.origin_invalid", .counter, load(cs.originInvalid), family: "envoy_http_cors_origin_invalid", labels: hl)
                }
                // Rooted at the filter's own stat_prefix, not the HCM's (as Envoy).
                for s in h.localRateLimitStats {
                    let q = s.prefix + ".http_local_rate_limit."
                    func lc(_ suffix: String, _ v: Int) {
                        // Envoy's tag extractor turns the prefix into a label.
                        add(q + suffix, .counter, v, family: "envoy_http_local_rate_limit_" + suffix,
                            labels: [("envoy_local_http_ratelimit_prefix", s.prefix)])
                    }
                    lc("enabled", load(s.enabled))
                    lc("enforced", load(s.enforced))
                    lc("ok", load(s.ok))
                    lc("rate_limited", load(s.rateLimited))
                    lc("shadow_mode", load(s.shadowMode))
                }
                for s in managers { addHisto(p + "downstream_rq_time", s.downstreamRqTime, family: "envoy_http_downstream_rq_time", labels: hl) }
            }
            // tcp_proxy chains: Envoy's tcp.<stat_prefix>.*, chains sharing a prefix summed.
            var prefixes: [String] = []
            for t in listener.tcpPlans where !prefixes.contains(t.statPrefix) { prefixes.append(t.statPrefix) }
            for prefix in prefixes {
                let members = listener.tcpPlans.indices.filter { listener.tcpPlans[$0].statPrefix == prefix }
                let p = "tcp.\(prefix)."
                let tl = [("envoy_tcp_prefix", prefix)]
                func t(_ suffix: String, _ kind: Kind = .counter, _ get: (TCPProxyCounters) -> Int) {
                    let v = workers.reduce(0) { sum, w in members.reduce(sum) { $0 + (w.tcpProxies.indices.contains($1) ? get(w.tcpProxies[$1]) : 0) } }
                    add(p + suffix, kind, v, family: "envoy_tcp_" + suffix, labels: tl)
                }
                t("downstream_cx_total") { load($0.cxTotal) }
                t("downstream_cx_rx_bytes_total") { load($0.rxBytes) }
                t("downstream_cx_tx_bytes_total") { load($0.txBytes) }
                t("idle_timeout") { load($0.idleTimeout) }
            }
        }
        // udp_proxy listeners: Envoy's udp.<stat_prefix>.* and their cluster's udp.* and byte totals.
        for u in proxy.udpProxies {
            let s = u.stats
            let p = "udp.\(u.plan.statPrefix)."
            let ul = [("envoy_udp_prefix", u.plan.statPrefix)]
            for (suffix, kind, v) in [("downstream_sess_active", Kind.gauge, load(s.sessionsActive)), ("downstream_sess_total", .counter, load(s.sessionsTotal)),
                                      ("downstream_sess_no_route", .counter, load(s.noRoute)), ("downstream_sess_rx_bytes", .counter, load(s.rxBytes)),
                                      ("downstream_sess_rx_datagrams", .counter, load(s.rxDatagrams)), ("downstream_sess_rx_errors", .counter, load(s.rxErrors)),
                                      ("downstream_sess_tx_bytes", .counter, load(s.txBytes)), ("downstream_sess_tx_datagrams", .counter, load(s.txDatagrams)),
                                      ("downstream_sess_tx_errors", .counter, load(s.txErrors)), ("idle_timeout", .counter, load(s.idleTimeouts))] {
                add(p + suffix, kind, v, family: "envoy_udp_" + suffix, labels: ul)
            }
            guard u.plan.cluster < plane.clusters.count else { continue }
            let name = plane.clusters[u.plan.cluster].name
            let cl = [("envoy_cluster_name", name)]
            for (suffix, v) in [("udp.sess_rx_datagrams", load(s.clusterRxDatagrams)), ("udp.sess_tx_datagrams", load(s.clusterTxDatagrams)),
                                ("udp.sess_rx_errors", load(s.clusterRxErrors)), ("udp.sess_tx_errors", load(s.clusterTxErrors)),
                                ("upstream_cx_rx_bytes_total", load(s.clusterRxBytes)), ("upstream_cx_tx_bytes_total", load(s.clusterTxBytes))] {
                add("cluster.\(name).\(suffix)", .counter, v, family: "envoy_cluster_" + suffix.replacingOccurrences(of: ".", with: "_"), labels: cl)
            }
        }
        // Each worker's list of per-slot counters, and the generation it applied: a slot given
        // to a new cluster counts for it on the workers that applied that snapshot.
        let workerClusters = proxy.stats.flatMap { $0 }.map { ($0.clusters, $0.appliedGeneration.load(ordering: .relaxed)) }
        for cluster in plane.activeClusters {
            let p = "cluster.\(cluster.name)."
            let cl = [("envoy_cluster_name", cluster.name)]
            var all: [ClusterStats] = []
            for (list, applied) in workerClusters where cluster.index < list.count && applied >= cluster.since { all.append(list[cluster.index]) }
            func c(_ suffix: String, _ kind: Kind = .counter, _ get: (ClusterStats) -> Int) {
                add(p + suffix, kind, all.reduce(0) { $0 + get($1) }, family: "envoy_cluster_" + suffix, labels: cl)
            }
            c("upstream_cx_total") { load($0.upstreamCxTotal) }
            c("upstream_cx_active", .gauge) { load($0.upstreamCxActive) }
            c("upstream_cx_connect_fail") { load($0.upstreamCxConnectFail) }
            c("upstream_cx_connect_timeout") { load($0.upstreamCxConnectTimeout) }
            c("upstream_cx_overflow") { load($0.upstreamCxOverflow) }
            c("upstream_cx_none_healthy") { load($0.upstreamCxNoneHealthy) }
            c("upstream_cx_connect_attempts_exceeded") { load($0.upstreamCxConnectAttemptsExceeded) }
            c("upstream_cx_max_duration_reached") { load($0.upstreamCxMaxDurationReached) }
            c("upstream_rq_total") { load($0.upstreamRqTotal) }
            c("upstream_rq_completed") { load($0.upstreamRqCompleted) }
            // Like Envoy's, these exist once used: classes and codes with a count.
            for k in 1...5 {
                let n = all.reduce(0) { $0 + $1.upstreamRqCodes.value(class: k) }
                if n > 0 {
                    add(p + "upstream_rq_\(k)xx", .counter, n, family: "envoy_cluster_upstream_rq_xx", labels: [("envoy_response_code_class", "\(k)")] + cl)
                }
            }
            for code in StatusCounters.lowest..<(StatusCounters.lowest + StatusCounters.count) {
                let n = all.reduce(0) { $0 + $1.upstreamRqCodes.value(code: code) }
                if n > 0 {
                    add(p + "upstream_rq_\(code)", .counter, n, family: "envoy_cluster_upstream_rq", labels: [("envoy_response_code", "\(code)")] + cl)
                }
            }
            add(p + "upstream_rq_active", .gauge, max(0, load(cluster.resources.requests)), family: "envoy_cluster_upstream_rq_active", labels: cl)
            add(p + "upstream_rq_pending_active", .gauge, max(0, load(cluster.resources.pendingRequests)),
                family: "envoy_cluster_upstream_rq_pending_active", labels: cl)
            c("upstream_rq_pending_overflow") { load($0.upstreamRqPendingOverflow) }
            c("upstream_rq_retry") { load($0.upstreamRqRetry) }
            c("upstream_rq_retry_backoff_exponential") { load($0.upstreamRqRetryBackoffExponential) }
            c("upstream_rq_retry_limit_exceeded") { load($0.upstreamRqRetryLimitExceeded) }
            c("upstream_rq_retry_success") { load($0.upstreamRqRetrySuccess) }
            c("upstream_rq_retry_overflow") { load($0.upstreamRqRetryOverflow) }
            c("upstream_rq_per_try_timeout") { load($0.upstreamRqPerTryTimeout) }
            // Responses retried instead of forwarded, as Envoy's `retry.` stats (created once used).
            let retried = all.reduce(0) { $0 + load($1.retryUpstreamRqCompleted) }
            if retried > 0 {
                add(p + "retry.upstream_rq_completed", .counter, retried, family: "envoy_cluster_retry_upstream_rq_completed", labels: cl)
                for k in 1...5 {
                    let n = all.reduce(0) { $0 + $1.retryUpstreamRqCodes.value(class: k) }
                    if n > 0 {
                        add(p + "retry.upstream_rq_\(k)xx", .counter, n, family: "envoy_cluster_retry_upstream_rq_xx",
                            labels: [("envoy_response_code_class", "\(k)")] + cl)
                    }
                }
                for code in StatusCounters.lowest..<(StatusCounters.lowest + StatusCounters.count) {
                    let n = all.reduce(0) { $0 + $1.retryUpstreamRqCodes.value(code: code) }
                    if n > 0 {
                        add(p + "retry.upstream_rq_\(code)", .counter, n, family: "envoy_cluster_retry_upstream_rq",
                            labels: [("envoy_response_code", "\(code)")] + cl)
                    }
                }
            }
            // The route cluster's `ext_authz.*` (Envoy creates each when first counted).
            func authz(_ suffix: String, _ n: Int) {
                if n > 0 { add(p + "ext_authz." + suffix, .counter, n, family: "envoy_cluster_ext_authz_" + suffix, labels: cl) }
            }
            authz("ok", all.reduce(0) { $0 + load($1.extAuthzOk) })
            authz("denied", all.reduce(0) { $0 + load($1.extAuthzDenied) })
            authz("error", all.reduce(0) { $0 + load($1.extAuthzError) })
            authz("failure_mode_allowed", all.reduce(0) { $0 + load($1.extAuthzFailureModeAllowed) })
            c("upstream_rq_timeout") { load($0.upstreamRqTimeout) }
            c("upstream_cx_destroy_remote_with_active_rq") { load($0.upstreamCxDestroyRemoteWithActiveRq) }
            c("upstream_cx_destroy_local_with_active_rq") { load($0.upstreamCxDestroyLocalWithActiveRq) }
            c("original_dst_host_invalid") { load($0.originalDstHostInvalid) }
            if cluster.tls != nil { ProxyStatsSnapshot.addTLSStats(p + "ssl.", all.map(\.tls), family: "envoy_cluster_ssl_", labels: cl, add: add) }
            if let n = inputs.sdsClusterUpdates[cluster.name] {
                add(p + "client_ssl_socket_factory.ssl_context_update_by_sds", .counter, n,
                    family: "envoy_cluster_client_ssl_socket_factory_ssl_context_update_by_sds", labels: cl)
            }
            let healthy = cluster.health.map { load($0.healthyHosts) } ?? cluster.hosts.count
            add(p + "membership_healthy", .gauge, healthy, family: "envoy_cluster_membership_healthy", labels: cl)
            add(p + "membership_total", .gauge, cluster.hosts.count, family: "envoy_cluster_membership_total", labels: cl)
            add(p + "membership_degraded", .gauge, 0, family: "envoy_cluster_membership_degraded", labels: cl)
            add(p + "membership_excluded", .gauge, 0, family: "envoy_cluster_membership_excluded", labels: cl)
            let r = cluster.resources
            add(p + "membership_change", .counter, load(r.membershipChange), family: "envoy_cluster_membership_change", labels: cl)
            // An EDS cluster's subscription counts its updates (DNS clusters count resolutions).
            let eds = inputs.subscriptions[.endpoints(cluster: cluster.name)]
            add(p + "update_attempt", .counter, eds?.attempt ?? load(r.updateAttempt), family: "envoy_cluster_update_attempt", labels: cl)
            add(p + "update_success", .counter, eds?.success ?? load(r.updateSuccess), family: "envoy_cluster_update_success", labels: cl)
            add(p + "update_failure", .counter, eds?.failure ?? load(r.updateFailure), family: "envoy_cluster_update_failure", labels: cl)
            add(p + "update_no_rebuild", .counter, eds?.noRebuild ?? load(r.updateNoRebuild), family: "envoy_cluster_update_no_rebuild", labels: cl)
            add(p + "update_empty", .counter, eds?.empty ?? 0, family: "envoy_cluster_update_empty", labels: cl)
            if let eds {
                add(p + "update_rejected", .counter, eds.rejected, family: "envoy_cluster_update_rejected", labels: cl)
                add(p + "init_fetch_timeout", .counter, 0, family: "envoy_cluster_init_fetch_timeout", labels: cl)
            }
            c("lb_healthy_panic") { load($0.lbHealthyPanic) }
            if let h = cluster.health, cluster.healthCheck != nil {
                // Envoy's health checker stats (degraded, passive and verify_cluster stay 0 here).
                func hc(_ suffix: String, _ kind: Kind, _ v: Int) {
                    add(p + "health_check." + suffix, kind, v, family: "envoy_cluster_health_check_" + suffix, labels: cl)
                }
                hc("attempt", .counter, load(h.attempt))
                hc("success", .counter, load(h.success))
                hc("failure", .counter, load(h.failure))
                hc("network_failure", .counter, load(h.networkFailure))
                hc("passive_failure", .counter, 0)
                hc("verify_cluster", .counter, 0)
                hc("healthy", .gauge, load(h.activeHealthyHosts))
                hc("degraded", .gauge, 0)
            }
            if let od = cluster.health?.outlier {
                // Envoy's `outlier_detection.*` (the deprecated ejections_total and friends included).
                func o(_ suffix: String, _ v: Int, _ kind: Kind = .counter) {
                    add(p + "outlier_detection." + suffix, kind, v, family: "envoy_cluster_outlier_detection_" + suffix, labels: cl)
                }
                o("ejections_active", load(od.ejectionsActive), .gauge)
                o("ejections_overflow", load(od.ejectionsOverflow))
                o("ejections_enforced_total", load(od.ejectionsEnforcedTotal))
                o("ejections_total", load(od.ejectionsTotal))
                o("ejections_consecutive_5xx", load(od.ejectionsConsecutive5xx))
                o("ejections_success_rate", load(od.ejectionsSuccessRate))
                o("ejections_detected_degradation", 0)  // detect_degraded_hosts is refused
                for type in OutlierEjectionType.allCases {
                    o("ejections_detected_" + type.statSuffix, od.detectedCount(type))
                    o("ejections_enforced_" + type.statSuffix, od.enforcedCount(type))
                }
            }
            for s in all { addHisto(p + "upstream_rq_time", s.upstreamRqTime, family: "envoy_cluster_upstream_rq_time", labels: cl) }
        }
        let workerCount = proxy.workersPerListener
        let counts = proxy.listenerCounts
        for (suffix, kind, v) in [("listener_added", Kind.counter, inputs.listenerManager.added),
                                  ("listener_modified", .counter, inputs.listenerManager.modified),
                                  ("listener_removed", .counter, inputs.listenerManager.removed),
                                  ("total_listeners_active", .gauge, counts.active + plane.udpListeners.count),
                                  ("total_listeners_draining", .gauge, counts.draining),
                                  ("total_listeners_warming", .gauge, 0)] {
            add("listener_manager." + suffix, kind, v, family: "envoy_listener_manager_" + suffix)
        }
        add("server.concurrency", .gauge, workerCount, family: "envoy_server_concurrency")
        add("server.uptime", .gauge, inputs.uptimeSeconds, family: "envoy_server_uptime")
        add("server.state", .gauge, inputs.draining ? 1 : 0, family: "envoy_server_state")
        add("server.live", .gauge, inputs.healthFailed || inputs.draining ? 0 : 1, family: "envoy_server_live")
        add("server.watchdog_miss", .counter, inputs.watchdogMiss, family: "envoy_server_watchdog_miss")
        add("server.watchdog_mega_miss", .counter, inputs.watchdogMegaMiss, family: "envoy_server_watchdog_mega_miss")
        add("access_log.dropped", .counter, inputs.accessLogDropped, family: "envoy_access_log_dropped")
        if let z = inputs.zipkin {
            func t(_ suffix: String, _ v: borrowing Atomic<Int>) {
                add("tracing.zipkin." + suffix, .counter, v.load(ordering: .relaxed), family: "envoy_tracing_zipkin_" + suffix)
            }
            t("reports_dropped", z.reportsDropped)
            t("reports_failed", z.reportsFailed)
            t("reports_sent", z.reportsSent)
            t("reports_skipped_no_cluster", z.reportsSkippedNoCluster)
            t("spans_sent", z.spansSent)
            t("timer_flushed", z.timerFlushed)
        }
        let subscriptions = inputs.subscriptions.sorted { $0.key < $1.key }.compactMap { key, counters in
            Self.subscriptionScope(key, inputs).map { (key, counters, $0) }
        }
        for (key, counters, scope) in subscriptions {
            let p = scope.prefix + "."
            func count(_ suffix: String, _ v: Int) { add(p + suffix, .counter, v, family: scope.family + suffix, labels: scope.labels) }
            switch key {
            case .endpoints:
                continue  // with the cluster's stats above
            case .routes:
                count("config_reload", counters.configReload)
                count("update_empty", counters.empty)
            case .listener, .cluster:
                break
            }
            count("update_attempt", counters.attempt)
            count("update_success", counters.success)
            count("update_rejected", counters.rejected)
            count("update_failure", counters.failure)
            count("init_fetch_timeout", 0)
        }
        if let cm = inputs.clusterManager {
            for (suffix, v) in [("cluster_added", cm.added), ("cluster_modified", cm.modified), ("cluster_removed", cm.removed),
                                ("cluster_updated", 0), ("cluster_updated_via_merge", 0), ("update_merge_cancelled", 0),
                                ("update_out_of_merge_window", 0)] {
                add("cluster_manager." + suffix, .counter, v, family: "envoy_cluster_manager_" + suffix)
            }
            add("cluster_manager.active_clusters", .gauge, inputs.plane.activeClusters.count, family: "envoy_cluster_manager_active_clusters")
            add("cluster_manager.warming_clusters", .gauge, 0, family: "envoy_cluster_manager_warming_clusters")
        }
        for name in inputs.secrets.keys.sorted() {
            let counters = inputs.secrets[name]!
            let p = "sds." + name + "."
            let family = "envoy_sds_" + String(name.map { $0.isLetter || $0.isNumber ? $0 : "_" }) + "_"
            add(p + "update_attempt", .counter, counters.subscription.attempt, family: family + "update_attempt")
            add(p + "update_success", .counter, counters.subscription.success, family: family + "update_success")
            add(p + "update_rejected", .counter, counters.subscription.rejected, family: family + "update_rejected")
            add(p + "update_failure", .counter, counters.subscription.failure, family: family + "update_failure")
            add(p + "init_fetch_timeout", .counter, 0, family: family + "init_fetch_timeout")
            add(p + "key_rotation_failed", .counter, counters.keyRotationFailed, family: family + "key_rotation_failed")
        }
        var list = order.map { n in
            let v = values[n]!
            return Value(name: n, kind: v.0, value: v.1, family: v.2, labels: v.3)
        }
        textReadouts = subscriptions.map { key, _, scope in (scope.prefix + ".version_text", inputs.versionTexts[key] ?? "") }
        for (_, counters, scope) in subscriptions {
            list.append(Value(name: scope.prefix + ".version", kind: .gauge, value: Int(truncatingIfNeeded: counters.version),
                              family: scope.family + "version", labels: scope.labels, unsigned: counters.version))
        }
        for name in inputs.secrets.keys.sorted() {
            let version = inputs.secrets[name]!.subscription.version
            textReadouts.append(("sds." + name + ".version_text", inputs.secretVersionTexts[name] ?? ""))
            list.append(Value(name: "sds." + name + ".version", kind: .gauge, value: Int(truncatingIfNeeded: version),
                              family: "envoy_sds_" + String(name.map { $0.isLetter || $0.isNumber ? $0 : "_" }) + "_version", labels: [], unsigned: version))
        }
        self.values = list
        self.histograms = histoOrder.map { n in
            let h = histos[n]!
            return Latency(name: n, merged: MergedLatency(h.0), family: h.1, labels: h.2)
        }
    }

    /// Envoy's stats scope of a subscription, its Prometheus family prefix and tags.
    static func subscriptionScope(_ key: SubscriptionKey, _ inputs: StatsInputs) -> (prefix: String, family: String, labels: [(String, String)])? {
        switch key {
        case .listener: ("listener_manager.lds", "envoy_listener_manager_lds_", [])
        case .cluster: ("cluster_manager.cds", "envoy_cluster_manager_cds_", [])
        case .endpoints(let name): ("cluster.\(name)", "envoy_cluster_", [("envoy_cluster_name", name)])
        case .routes(let name):
            inputs.routeStatPrefixes[name].map { prefix in
                ("http.\(prefix).rds.\(name)", "envoy_http_rds_", [("envoy_http_conn_manager_prefix", prefix), ("envoy_rds_route_config", name)])
            }
        }
    }

    // MARK: formats

    static func ms(_ micros: Double) -> String {
        let v = micros / 1000
        if v == v.rounded() && abs(v) < 1e15 { return String(Int(v)) }
        return String(v)
    }

    /// Envoy's `/stats` text: `name: value` sorted, histograms as `P50(...) P90 ... P99.9` in ms.
    public func text() -> String {
        var lines = values.map { "\($0.name): \($0.printed)" }
        lines += textReadouts.map { "\($0.name): \(JSONText.string($0.value))" }
        for h in histograms {
            let quantiles = [50.0, 90.0, 99.0, 99.9].map { q -> String in
                let v = h.merged.percentile(q).map { Self.ms($0) } ?? "nan"
                return "P\(q == q.rounded() ? String(Int(q)) : String(q))(\(v),\(v))"
            }
            lines.append("\(h.name): " + quantiles.joined(separator: " ") + " count=\(h.merged.count)")
        }
        return lines.sorted().joined(separator: "\n") + "\n"
    }

    /// `/stats?format=json`: Envoy's shape (`stats` list; histograms with computed quantiles).
    public func json() -> String {
        var parts: [String] = []
        for t in textReadouts.sorted(by: { $0.name < $1.name }) {
            parts.append("{\"name\":\(JSONText.string(t.name)),\"value\":\(JSONText.string(t.value))}")
        }
        for v in values.sorted(by: { $0.name < $1.name }) {
            parts.append("{\"name\":\(JSONText.string(v.name)),\"value\":\(v.printed)}")
        }
        var computed: [String] = []
        for h in histograms.sorted(by: { $0.name < $1.name }) {
            let qs = [50.0, 90.0, 99.0, 99.9].map { q in
                "{\"quantile\":\(q),\"value\":\(h.merged.percentile(q).map { Self.ms($0) } ?? "null")}"
            }
            computed.append("{\"name\":\(JSONText.string(h.name)),\"count\":\(h.merged.count),\"sum_ms\":\(Self.ms(Double(h.merged.sumMicros))),\"values\":[\(qs.joined(separator: ","))]}")
        }
        parts.append("{\"histograms\":{\"supported_quantiles\":[50,90,99,99.9],\"computed_quantiles\":[\(computed.joined(separator: ","))]}}")
        return "{\"stats\":[\n" + parts.joined(separator: ",\n") + "\n]}\n"
    }

    /// Envoy's default histogram bucket bounds (milliseconds).
    static let bucketBoundsMs: [Double] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                                           300_000, 600_000, 1_800_000, 3_600_000]

    /// Prometheus text exposition 0.0.4: one `# TYPE` per family, samples with labels,
    /// histograms with cumulative `_bucket{le=...}`, `_sum` and `_count` (milliseconds).
    public func prometheus() -> String {
        var out = ""
        func labelText(_ labels: [(String, String)], extra: (String, String)? = nil) -> String {
            let all = labels + (extra.map { [$0] } ?? [])
            guard !all.isEmpty else { return "" }
            return "{" + all.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
        }
        var families: [String: [Value]] = [:]
        var familyOrder: [String] = []
        for v in values {
            let f = Self.metricName(v.family, counter: v.kind == .counter)
            if families[f] == nil { familyOrder.append(f) }
            families[f, default: []].append(v)
        }
        for f in familyOrder.sorted() {
            let vs = families[f]!
            out += "# HELP \(f) Envoy stat \(vs[0].name.split(separator: ".").last ?? "")\n"
            out += "# TYPE \(f) \(vs[0].kind.rawValue)\n"
            for v in vs { out += "\(f)\(labelText(v.labels)) \(v.printed)\n" }
        }
        var hfam: [String: [Latency]] = [:]
        for h in histograms { hfam[Self.metricName(h.family, counter: false), default: []].append(h) }
        for f in hfam.keys.sorted() {
            let hs = hfam[f]!
            out += "# HELP \(f) Envoy histogram (milliseconds)\n"
            out += "# TYPE \(f) histogram\n"
            for h in hs {
                for b in Self.bucketBoundsMs {
                    out += "\(f)_bucket\(labelText(h.labels, extra: ("le", Self.ms(b * 1000)))) \(h.merged.countAtOrBelow(micros: b * 1000))\n"
                }
                out += "\(f)_bucket\(labelText(h.labels, extra: ("le", "+Inf"))) \(h.merged.count)\n"
                out += "\(f)_sum\(labelText(h.labels)) \(Self.ms(Double(h.merged.sumMicros)))\n"
                out += "\(f)_count\(labelText(h.labels)) \(h.merged.count)\n"
            }
        }
        return out
    }

    /// A valid metric name, as Envoy writes it: no `_total` added to counters (dashboards and
    /// alerts written for Envoy use its names; promtool's lint asks for the suffix, Envoy ignores it).
    static func metricName(_ family: String, counter: Bool) -> String {
        String(family.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" ? $0 : "_" })
    }

    static func escapeLabel(_ v: String) -> String {
        v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// JSON text helpers (no Foundation on the hot path; these run on admin and log threads).
enum JSONText {
    static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

extension ProxyStatsSnapshot {
    /// Envoy's `ssl.*` counters under `prefix` (a listener's or a cluster's), summed over workers.
    /// The OCSP, SAN and certificate-hash ones stay 0: Ballast checks none of those.
    static func addTLSStats(_ prefix: String, _ stats: [TLSStats], family: String, labels: [(String, String)],
                            add: (String, Kind, Int, String, [(String, String)]) -> Void) {
        func sum(_ get: (TLSStats) -> Int) -> Int { stats.reduce(0) { $0 + get($1) } }
        let counters: [(String, Int)] = [
            ("connection_error", sum { $0.connectionError.load(ordering: .relaxed) }),
            ("fail_verify_cert_hash", 0),
            ("fail_verify_error", sum { $0.failVerifyError.load(ordering: .relaxed) }),
            ("fail_verify_no_cert", sum { $0.failVerifyNoCert.load(ordering: .relaxed) }),
            ("fail_verify_san", 0),
            ("handshake", sum { $0.handshake.load(ordering: .relaxed) }),
            ("no_certificate", sum { $0.noCertificate.load(ordering: .relaxed) }),
            ("ocsp_staple_failed", 0), ("ocsp_staple_omitted", 0), ("ocsp_staple_requests", 0), ("ocsp_staple_responses", 0),
            ("session_reused", sum { $0.sessionReused.load(ordering: .relaxed) }),
        ]
        for (name, value) in counters { add(prefix + name, .counter, value, family + name, labels) }
    }
}
