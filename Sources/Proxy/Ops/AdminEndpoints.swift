import AdminHTTP
import EventLoop

/// The proxy's admin endpoints (Envoy's names), answered on the admin thread.
extension ProxyOps {
    static let getEndpoints: [(String, String)] = [
        ("/stats", "Envoy text stats; ?format=json for JSON"),
        ("/stats/prometheus", "Prometheus text exposition 0.0.4"),
        ("/config_dump", "Envoy's config dumps (JSON); ?include_eds, ?resource=, ?mask=, ?name_regex="),
        ("/clusters", "upstream hosts with health, connections and requests"),
        ("/listeners", "listeners and their bound addresses"),
        ("/server_info", "version, uptime, concurrency, I/O backend, strategy"),
        ("/ready", "200 when every worker serves"),
        ("/workers", "per-worker figures (JSON)"),
        ("/runtime", "layered_runtime: each key's value per layer and its final value (JSON)"),
        ("/certs", "the TLS contexts' certificates and CAs: serial, SANs, validity (JSON)"),
    ]
    static let postEndpoints: [(String, String)] = [
        ("/healthcheck/fail", "fail health checks (/ready answers 503)"),
        ("/healthcheck/ok", "pass health checks again"),
        ("/drain_listeners", "stop accepting; close connections as their requests end"),
        ("/quitquitquit", "drain, then exit"),
        ("/logging", "?level=trace|debug|info|warning|error|critical|off"),
        ("/reload", "re-read the configuration and publish it to the workers"),
        ("/runtime_modify", "?key=value&...: set (empty value: remove) admin-layer runtime keys"),
    ]

    static var endpointList: String {
        (getEndpoints.map { "  GET  \($0.0): \($0.1)" } + postEndpoints.map { "  POST \($0.0): \($0.1)" }).joined(separator: "\n") + "\n"
    }

    func respond(to request: AdminServer.Request) -> AdminServer.Response {
        if let hook = testHookResponse(to: request) { return hook }
        let isGet = Self.getEndpoints.contains { $0.0 == request.path }
        let isPost = Self.postEndpoints.contains { $0.0 == request.path }
        guard isGet || isPost else {
            return AdminServer.Response(status: 404, body: "unknown path \(request.path); endpoints:\n" + Self.endpointList)
        }
        if isGet && request.method != "GET" && request.method != "HEAD" {
            return AdminServer.Response(status: 405, body: "\(request.path) answers GET only\n")
        }
        if isPost && request.method != "POST" {
            return AdminServer.Response(status: 405, body: "\(request.path) answers POST only\n")
        }
        switch request.path {
        case "/stats", "/stats/prometheus":
            let query: StatsQuery
            // An invalid filter: 400 and RE2's message, without a newline, as Envoy.
            do { query = try StatsQuery(request.query) } catch { return AdminServer.Response(status: 400, body: "\(error)") }
            let snapshot = stats().filtered(query)
            if request.path == "/stats/prometheus" || query.format == "prometheus" {
                return AdminServer.Response(contentType: "text/plain; version=0.0.4; charset=utf-8", body: snapshot.prometheus())
            }
            if query.format == "json" { return .json(snapshot.json()) }
            return AdminServer.Response(body: snapshot.text())
        case "/config_dump":
            return configDump(query: request.query)
        case "/clusters": return AdminServer.Response(body: clustersText())
        case "/listeners":
            // Envoy: `name::address:port` lines; JSON with ?format=json.
            if request.query.split(separator: "&").contains("format=json") { return .json(listenersJSON()) }
            return AdminServer.Response(body: proxy.listeners.map { "\($0.name)::\($0.address.host):\($0.port)\n" }.joined())
        case "/server_info": return .json(serverInfo())
        case "/ready":
            let (failed, draining) = state.withLock { ($0.healthFailed, $0.drainStartedNanos != 0) }
            if failed || draining { return AdminServer.Response(status: 503, body: draining ? "DRAINING\n" : "UNHEALTHY\n") }
            return AdminServer.Response(body: "LIVE\n")
        case "/workers": return .json(workersJSON())
        case "/runtime": return .json(runtimeJSON())
        case "/certs": return .json(certsJSON())
        case "/runtime_modify": return runtimeModify(request.query)
        case "/healthcheck/fail":
            setHealthFailed(true)
            return AdminServer.Response(body: "OK\n")
        case "/healthcheck/ok":
            setHealthFailed(false)
            return AdminServer.Response(body: "OK\n")
        case "/drain_listeners":
            drain()
            return AdminServer.Response(body: "OK\n")
        case "/quitquitquit":
            requestQuit()
            return AdminServer.Response(body: "OK\n")
        case "/logging":
            let level = request.query.split(separator: "&").first { $0.hasPrefix("level=") }.map { String($0.dropFirst(6)) }
            guard let level else { return AdminServer.Response(body: "level: \(OpsLog.current.rawValue)\n") }
            guard let parsed = ProxyLogLevel(parsing: level) else {
                return AdminServer.Response(status: 400, body: "unknown level '\(level)'; expected one of \(ProxyLogLevel.allCases.map(\.rawValue).joined(separator: ", "))\n")
            }
            OpsLog.set(parsed)
            return AdminServer.Response(body: "level: \(parsed.rawValue)\n")
        case "/reload":
            switch reload() {
            case .applied(let g): return AdminServer.Response(body: "OK: generation \(g)\n")
            case .rejected(let reason): return AdminServer.Response(status: 400, body: "rejected: \(reason)\n")
            }
        default:
            return AdminServer.Response(status: 404, body: "unknown path \(request.path)\n")
        }
    }

    func workersJSON() -> String {
        var rows: [String] = []
        for run in proxy.activeRuns {
            let l = run.bound
            let loops = proxy.loopStats(ofListener: run.slot)
            let loads = proxy.loads(ofListener: run.slot)
            for (w, s) in run.stats.enumerated() {
                let loop = loops[w].snapshot()
                rows.append("  {\"worker\": \(w), \"listener\": \(JSONText.string(l.name)), "
                    + "\"accepted\": \(s.downstreamCxTotal.load(ordering: .relaxed)), \"active\": \(s.downstreamCxActive.load(ordering: .relaxed)), "
                    + "\"requests\": \(s.http.reduce(0) { $0 + $1.downstreamRqTotal.load(ordering: .relaxed) }), \"requests_in_flight\": \(loads.requests(w)), "
                    + "\"busy_ns\": \(loop.busyNanos), \"idle_ns\": \(loop.idleNanos), \"turns\": \(loop.turns)}")
            }
        }
        return "[\n" + rows.joined(separator: ",\n") + "\n]\n"
    }

    /// Envoy's `/server_info` keys (version, state, uptimes as "Ns", hot_restart_version,
    /// command_line_options, node); Ballast's own figures sit under `ballast`.
    func serverInfo() -> String {
        let uptime = (monotonicNanos() - startNanos) / 1_000_000_000
        let (draining, generation, node) = state.withLock { ($0.drainStartedNanos != 0, $0.generation, $0.bootstrap.node) }
        let strategies = proxy.listeners.map { JSONText.string("\($0.balance)") }.joined(separator: ", ")
        return "{\"version\": \(JSONText.string(ProxyOps.version)), \"state\": \(JSONText.string(draining ? "DRAINING" : "LIVE")), "
            + "\"uptime_current_epoch\": \"\(uptime)s\", \"uptime_all_epochs\": \"\(uptime)s\", \"hot_restart_version\": \"disabled\", "
            + "\"command_line_options\": {\"concurrency\": \(concurrency), \"config_path\": \(JSONText.string(options.configPath ?? "")), "
            + "\"config_yaml\": \(JSONText.string(options.configYAML ?? "")), \"log_level\": \(JSONText.string(OpsLog.current.rawValue)), "
            + "\"drain_time\": \"\(options.drainTimeNanos / 1_000_000_000)s\", \"mode\": \"Serve\", \"disable_hot_restart\": true}, "
            + "\"node\": {\"id\": \(JSONText.string(node?.id ?? "")), \"cluster\": \(JSONText.string(node?.cluster ?? "")), \"user_agent_name\": \"ballast\"}, "
            + "\"hot_restart_initializing\": false, "
            + "\"ballast\": {\"io\": \(JSONText.string(proxy.backend.rawValue)), \"strategy\": [\(strategies)], \"config_generation\": \(generation)}}\n"
    }

    static let version = "ballast-proxy/0.5 (envoy-compatible admin)"

    /// Envoy's `/listeners?format=json` shape (the accept strategy is in /server_info).
    func listenersJSON() -> String {
        let rows = proxy.listeners.map { l in
            "  {\"name\": \(JSONText.string(l.name)), \"local_address\": {\"socket_address\": {\"address\": \(JSONText.string(l.address.host)), \"port_value\": \(l.port)}}}"
        }
        return "{\"listener_statuses\": [\n" + rows.joined(separator: ",\n") + "\n]}\n"
    }

    /// Envoy's `/clusters` text: `cluster::host::field::value`, in Envoy's order. Per host, every
    /// worker's counters for that host summed (by host name: a pool's slot may change).
    func clustersText() -> String {
        let plane = currentPlane
        let dynamic = state.withLock { $0.bootstrap.dynamic }
        var byHost: [String: [HostCounters]] = [:]
        for workers in proxy.stats {
            for s in workers {
                for e in s.hosts.entries() { byHost[e.cluster + "::" + e.host, default: []].append(e.counters) }
            }
        }
        var lines: [String] = []
        for c in plane.activeClusters {
            lines.append("\(c.name)::observability_name::\(c.name)")
            for (label, t) in [("default_priority", c.thresholds), ("high_priority", c.highPriorityThresholds)] {
                lines.append("\(c.name)::\(label)::max_connections::\(t.maxConnections)")
                lines.append("\(c.name)::\(label)::max_pending_requests::\(t.maxPendingRequests)")
                lines.append("\(c.name)::\(label)::max_requests::\(t.maxRequests)")
                lines.append("\(c.name)::\(label)::max_retries::\(c.retryLimit(t))")
            }
            if let od = c.health?.outlier {
                let r = od.clusterRates
                lines.append("\(c.name)::outlier::success_rate_average::\(Self.rate(r.average))")
                lines.append("\(c.name)::outlier::success_rate_ejection_threshold::\(Self.rate(r.threshold))")
                lines.append("\(c.name)::outlier::local_origin_success_rate_average::\(Self.rate(r.localAverage))")
                lines.append("\(c.name)::outlier::local_origin_success_rate_ejection_threshold::\(Self.rate(r.localThreshold))")
            }
            lines.append("\(c.name)::added_via_api::\(dynamic.isDynamic(.cluster, c.name))")
            // Configured hosts, then the original destinations the workers created (ORIGINAL_DST).
            var hosts = c.hosts.enumerated().map { (index: Optional($0.offset), name: $0.element.name, hostname: $0.element.hostname,
                                                     weight: $0.element.weight, priority: $0.element.priority, locality: $0.element.locality) }
            if c.isOriginalDst {
                let known = Set(hosts.map(\.name))
                let dynamicNames = Set(byHost.keys.filter { $0.hasPrefix(c.name + "::") }.map { String($0.dropFirst(c.name.count + 2)) })
                hosts += dynamicNames.subtracting(known).sorted().map { (index: nil, name: $0, hostname: "", weight: 1, priority: 0, locality: -1) }
            }
            for h in hosts {
                let counters = byHost[c.name + "::" + h.name] ?? []
                func sum(_ get: (HostCounters) -> Int) -> Int { counters.reduce(0) { $0 + get($1) } }
                let prefix = "\(c.name)::\(h.name)::"
                lines.append(prefix + "cx_active::\(max(0, sum { $0.cxActive.load(ordering: .relaxed) }))")
                lines.append(prefix + "cx_connect_fail::\(sum { $0.cxConnectFail.load(ordering: .relaxed) })")
                lines.append(prefix + "cx_total::\(sum { $0.cxTotal.load(ordering: .relaxed) })")
                lines.append(prefix + "rq_active::\(max(0, sum { $0.rqActive.load(ordering: .relaxed) }))")
                lines.append(prefix + "rq_error::\(sum { $0.rqError.load(ordering: .relaxed) })")
                lines.append(prefix + "rq_pending_active::\(max(0, sum { $0.rqPendingActive.load(ordering: .relaxed) }))")
                lines.append(prefix + "rq_success::\(sum { $0.rqSuccess.load(ordering: .relaxed) })")
                lines.append(prefix + "rq_timeout::\(sum { $0.rqTimeout.load(ordering: .relaxed) })")
                lines.append(prefix + "rq_total::\(sum { $0.rqTotal.load(ordering: .relaxed) })")
                lines.append(prefix + "hostname::\(h.hostname)")
                lines.append(prefix + "health_flags::\(h.index.flatMap { c.health?.flags($0).envoyText } ?? "healthy")")
                lines.append(prefix + "weight::\(h.weight)")
                let place = h.locality >= 0 && h.locality < c.localities.count ? c.localities[h.locality] : LocalityConfig()
                lines.append(prefix + "region::\(place.region)")
                lines.append(prefix + "zone::\(place.zone)")
                lines.append(prefix + "sub_zone::\(place.subZone)")
                // Endpoint metadata (canary) is refused by the config parser.
                lines.append(prefix + "canary::false")
                lines.append(prefix + "priority::\(h.priority)")
                // The last interval's rates (outlier detection); Envoy prints -1 when it computed none.
                let state = h.index.flatMap { i in c.health?.outlier.map { $0.hosts[i] } }
                lines.append(prefix + "success_rate::\(Self.rate(state?.rates.external ?? -1))")
                lines.append(prefix + "local_origin_success_rate::\(Self.rate(state?.rates.local ?? -1))")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A success rate as Envoy prints it: -1 when none, else the shortest decimal form.
    static func rate(_ v: Double) -> String {
        return v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }

    /// Envoy's /config_dump (`ConfigDumpBuilder`), with its query parameters (`ConfigDumpQuery`).
    func configDump(query: String = "") -> AdminServer.Response {
        let q: ConfigDumpQuery
        do { q = try ConfigDumpQuery(query) } catch { return AdminServer.Response(status: error.status, body: error.text) }
        let (bootstrap, clusters, draining) = state.withLock { ($0.bootstrap, $0.clusterManager, $0.drainingListeners) }
        var builder = ConfigDumpBuilder(bootstrap: bootstrap, plane: currentPlane, nameRegex: q.nameRegex)
        builder.clusterVersions = clusters.versions
        builder.clusterUpdatedMillis = clusters.updatedMillis
        builder.drainingListeners = draining.sorted { $0.key < $1.key }.map(\.value)
        do {
            let configs = try q.apply(builder.configs(includeEDS: q.includeEDS))
            return .json((configs.isEmpty ? ProtoJSON.object([]) : .object([("configs", .array(configs))])).pretty() + "\n")
        } catch {
            return AdminServer.Response(status: error.status, body: error.text)
        }
    }
}
