import Yams

extension BootstrapParser {
    func parseCluster(_ value: ConfigValue) -> ClusterConfig? {
        guard let f = value.fields(
            known: ["name", "type", "connect_timeout", "lb_policy", "load_assignment", "hosts", "circuit_breakers",
                    "common_http_protocol_options", "typed_extension_protocol_options", "max_requests_per_connection",
                    "upstream_connection_options", "dns_refresh_rate", "dns_lookup_family", "respect_dns_ttl",
                    "least_request_lb_config", "ring_hash_lb_config", "per_connection_buffer_limit_bytes", "health_checks",
                    "cleanup_interval", "transport_socket", "common_lb_config", "outlier_detection", "eds_cluster_config",
                    "upstream_bind_config"],
            unsupported: ["cluster_type", "transport_socket_matches", "tls_context",
                          "http_protocol_options", "http2_protocol_options", "upstream_http_protocol_options",
                          "protocol_selection",
                          "lb_subset_config", "maglev_lb_config", "original_dst_lb_config",
                          "load_balancing_policy", "metadata", "track_timeout_budgets", "track_cluster_stats",
                          "preconnect_policy", "connection_pool_per_downstream_connection", "dns_resolvers",
                          "dns_resolution_config", "typed_dns_resolver_config", "use_tcp_for_dns_lookups",
                          "wait_for_warm_on_init", "ignore_health_on_host_removal", "filters", "lrs_server",
                          "alt_stat_name", "extension_protocol_options", "close_connections_on_host_health_failure",
                          "dns_failure_refresh_rate", "upstream_config", "drain_connections_on_host_removal",
                          "dns_jitter", "lrs_report_endpoint_metrics", "round_robin_lb_config"]) else { return nil }

        let name = f.required("name")?.nonEmptyString()
        if let name, let v = f["name"] { clusterNames.append((name, v)) }
        let type = f["type"]?.enumeration(ClusterDiscoveryType.self) ?? (f["type"] == nil ? .static : nil)
        let policy = f["lb_policy"]?.enumeration(
            LoadBalancingPolicy.self,
            unsupported: ["MAGLEV", "LOAD_BALANCING_POLICY_CONFIG", "ORIGINAL_DST_LB"]) ?? (f["lb_policy"] == nil ? .roundRobin : nil)
        var ok = type != nil && policy != nil
        // Envoy's pairing: ORIGINAL_DST picks its own host (CLUSTER_PROVIDED) and has no endpoints.
        if let type, let policy, (type == .originalDst) != (policy == .clusterProvided) {
            if type == .originalDst {
                f.error("lb_policy", "\(policy.rawValue) is not valid for cluster type ORIGINAL_DST: only CLUSTER_PROVIDED is allowed")
            } else {
                f.error("lb_policy", "CLUSTER_PROVIDED is valid only with cluster type ORIGINAL_DST (this one is \(type.rawValue))")
            }
            ok = false
        }
        if type == .originalDst {
            for key in ["load_assignment", "hosts"] where f.has(key) {
                f.error(key, "an ORIGINAL_DST cluster takes no endpoints: each connection goes to its original destination")
                ok = false
            }
        }
        var cleanup: Int64 = 5_000_000_000
        if let c = f["cleanup_interval"] {
            if let nanos = c.duration() {
                if nanos == 0 { c.error("must be greater than 0s"); ok = false } else { cleanup = nanos }
                if type != nil && type != .originalDst { f.warning("cleanup_interval", "ignored: the cluster type is not ORIGINAL_DST") }
            } else {
                ok = false
            }
        }

        var connectTimeout: Int64 = 5_000_000_000
        if let c = f["connect_timeout"] {
            if let nanos = c.duration() {
                if nanos == 0 { c.error("must be greater than 0s"); ok = false } else { connectTimeout = nanos }
            } else {
                ok = false
            }
        }

        var overprovisioning = 140  // load_assignment.policy.overprovisioning_factor (Envoy's default)
        // Endpoints: v3 load_assignment, or the v2 `hosts` list.
        var endpoints: [EndpointConfig] = []
        let dns = type?.usesDNS ?? true
        if f.has("hosts") && f.has("load_assignment") {
            f.error("hosts", "set either load_assignment or the deprecated v2 hosts, not both")
            ok = false
        } else if let hosts = f["hosts"] {
            f.warning("hosts", "deprecated v2 field; use load_assignment.endpoints[].lb_endpoints[].endpoint.address")
            for item in hosts.list() ?? [] {
                if let address = parseAddress(item, allowHostname: dns, portRange: 1...65535) {
                    endpoints.append(EndpointConfig(address: address, weight: 1, priority: 0, healthCheckPort: nil))
                } else {
                    ok = false
                }
            }
            if hosts.list() == nil { ok = false }
        } else if let assignment = f["load_assignment"] {
            if let parsed = parseLoadAssignment(assignment, allowHostname: dns, overprovisioning: &overprovisioning) { endpoints = parsed } else { ok = false }
        }
        if type == .eds {
            for key in ["load_assignment", "hosts"] where f.has(key) {
                f.error(key, "an EDS cluster takes its endpoints from eds_cluster_config.eds_config, not from \(key)")
                ok = false
            }
            if let name, let parsed = parseEDSEndpoints(f, clusterName: name, overprovisioning: &overprovisioning) { endpoints = parsed } else { ok = false }
        } else if let type, f.has("eds_cluster_config") {
            f.error("eds_cluster_config", "used only by a cluster of type EDS (this one is \(type.rawValue))")
            ok = false
        }
        if type == .logicalDNS && endpoints.count > 1 {
            diagnostics.error(f.path.appending(f.has("hosts") ? "hosts" : "load_assignment"),
                              "a LOGICAL_DNS cluster takes exactly one endpoint, got \(endpoints.count)", at: f.node)
            ok = false
        }
        if ok && endpoints.isEmpty && type != .originalDst && type != .eds, let name {
            diagnostics.warning(f.path, "cluster '\(name)' has no endpoints: every request routed to it fails with 503", at: f.node)
        }

        let breakers = f["circuit_breakers"].map(parseCircuitBreakers) ?? .envoyDefault
        if breakers == nil { ok = false }
        let upstream = parseUpstreamHTTPOptions(f)
        if upstream == nil { ok = false }

        var keepalive: TCPKeepaliveConfig?
        if let o = f["upstream_connection_options"]?.fields(
            known: ["tcp_keepalive"], unsupported: ["set_local_interface_name_on_upstream_connections", "happy_eyeballs_config"]) {
            if let k = o.present("tcp_keepalive")?.fields(known: ["keepalive_probes", "keepalive_time", "keepalive_interval"]) {
                keepalive = TCPKeepaliveConfig(probes: k["keepalive_probes"]?.int(1...1000),
                                               timeSeconds: k["keepalive_time"]?.int(1...32767),
                                               intervalSeconds: k["keepalive_interval"]?.int(1...32767))
            }
        } else if f["upstream_connection_options"] != nil {
            ok = false
        }

        var sourceAddress: SocketAddressConfig?
        if let bind = f["upstream_bind_config"] {
            if let b = bind.fields(known: ["source_address"], unsupported: ["freebind", "socket_options", "extra_source_addresses",
                                                                             "additional_source_addresses", "local_address_selector"]),
               let source = b.required("source_address") {
                sourceAddress = parseSocketAddress(source, allowHostname: false)
                if sourceAddress == nil { ok = false }
            } else {
                ok = false
            }
        }

        // DNS is resolved once at start and at reload; health checks do not run yet.
        if !f.refuseUnappliedTrue("respect_dns_ttl", "the DNS TTL sets the re-resolve interval") { ok = false }
        if !f.refuseUnapplied("per_connection_buffer_limit_bytes", "the per-connection buffer limit of upstream connections") { ok = false }
        if let checks = f["health_checks"]?.list(), checks.count > 1 {
            checks[1].error("a second health check: Envoy runs one health checker per cluster (\"Multiple health checks not supported\")")
            ok = false
        }
        if f["health_checks"]?.list()?.isEmpty == false && type == .originalDst {
            f.error("health_checks", "an ORIGINAL_DST cluster has no configured hosts to check")
            ok = false
        }
        var panicThreshold = 50.0
        var localityWeighted = false
        if let l = f["common_lb_config"]?.fields(
            known: ["healthy_panic_threshold", "locality_weighted_lb_config"],
            unsupported: ["zone_aware_lb_config", "update_merge_window", "ignore_new_hosts_until_first_hc",
                          "close_connections_on_host_set_change", "consistent_hashing_lb_config", "override_host_status"]) {
            if let t = l["healthy_panic_threshold"]?.fields(known: ["value"]) {
                if let v = t["value"]?.double(0...100) { panicThreshold = v } else if t.has("value") { ok = false }
            }
            if let w = l["locality_weighted_lb_config"] {
                if w.fields(known: []) != nil { localityWeighted = true } else { ok = false }
            }
        } else if f.has("common_lb_config") {
            ok = false
        }
        let refresh = f["dns_refresh_rate"]?.duration()
        if let refresh, refresh < 1_000_000 { f.error("dns_refresh_rate", "must be at least 0.001s"); ok = false }
        if refresh != nil, let type, !type.usesDNS { f.warning("dns_refresh_rate", "ignored: the cluster type is not STRICT_DNS or LOGICAL_DNS") }
        let family = f["dns_lookup_family"]?.enumeration(DNSLookupFamily.self)
        let respectTTL = f["respect_dns_ttl"]?.bool()

        var choiceCount = 2
        if let l = f["least_request_lb_config"]?.fields(
            known: ["choice_count"], unsupported: ["active_request_bias", "slow_start_config", "locality_lb_config"]) {
            if policy != nil && policy != .leastRequest { f.warning("least_request_lb_config", "ignored: lb_policy is not LEAST_REQUEST") }
            choiceCount = l["choice_count"]?.int(2...100) ?? choiceCount
        }
        var ring = RingHashConfig.envoyDefault
        if let r = f["ring_hash_lb_config"]?.fields(known: ["minimum_ring_size", "maximum_ring_size", "hash_function"]) {
            if policy != nil && policy != .ringHash { f.warning("ring_hash_lb_config", "ignored: lb_policy is not RING_HASH") }
            if let h = r["hash_function"], let text = h.string(), text != "XX_HASH" {
                h.error(text == "MURMUR_HASH_2" ? "MURMUR_HASH_2 is not supported by ballast (supported: XX_HASH)" : "unknown value '\(text)' (expected XX_HASH)")
                ok = false
            }
            let lo = r["minimum_ring_size"]?.int(1...(8 << 20)) ?? ring.minimumRingSize
            let hi = r["maximum_ring_size"]?.int(1...(8 << 20)) ?? ring.maximumRingSize
            if lo > hi { r.error("minimum_ring_size", "is larger than maximum_ring_size (\(hi))"); ok = false }
            ring = RingHashConfig(minimumRingSize: lo, maximumRingSize: hi)
        }
        let bufferLimit = f["per_connection_buffer_limit_bytes"]?.int(1...Int(UInt32.max))
        var checks: [HealthCheckConfig] = []
        for item in f["health_checks"]?.list() ?? [] {
            if let check = parseHealthCheck(item) { checks.append(check) } else { ok = false }
        }
        let tls = f["transport_socket"].flatMap { parseTransportSocket($0, side: .upstream) }
        if f["transport_socket"] != nil && tls == nil { ok = false }

        if policy == .ringHash, endpoints.contains(where: { $0.priority > 0 }) {
            f.error("load_assignment", "priorities other than 0 are not applied with RING_HASH by ballast (only ROUND_ROBIN, LEAST_REQUEST and RANDOM)")
            ok = false
        }
        if policy == .ringHash && localityWeighted {
            f.error("common_lb_config.locality_weighted_lb_config", "not applied with RING_HASH by ballast (only ROUND_ROBIN, LEAST_REQUEST and RANDOM)")
            ok = false
        }
        var outlier: OutlierDetectionConfig?
        if let o = f.present("outlier_detection") {
            outlier = parseOutlierDetection(o)
            if outlier == nil { ok = false }
            if type == .originalDst {
                f.error("outlier_detection", "not applied by ballast to an ORIGINAL_DST cluster (its hosts are created per connection)")
                ok = false
            }
        }
        guard ok, let name, let type, let policy, let breakers, let upstream else { return nil }
        var cluster = ClusterConfig(
            name: name, discoveryType: type, connectTimeoutNanos: connectTimeout, lbPolicy: policy,
            endpoints: endpoints, circuitBreakers: breakers, upstreamHTTP: upstream, tcpKeepalive: keepalive,
            dnsRefreshRateNanos: refresh ?? 5_000_000_000, dnsLookupFamily: family ?? .auto,
            respectDNSTTL: respectTTL ?? false, leastRequestChoiceCount: choiceCount, ringHash: ring,
            perConnectionBufferLimitBytes: bufferLimit ?? 1 << 20, healthChecks: checks)
        cluster.cleanupIntervalNanos = cleanup
        cluster.tls = tls
        cluster.healthyPanicThresholdPercent = panicThreshold
        cluster.localityWeighted = localityWeighted
        cluster.overprovisioningFactor = overprovisioning
        cluster.outlierDetection = outlier
        cluster.sourceAddress = sourceAddress
        return cluster
    }

    func parseLoadAssignment(_ value: ConfigValue, allowHostname: Bool, overprovisioning: inout Int) -> [EndpointConfig]? {
        guard let f = value.fields(known: ["cluster_name", "endpoints", "policy"], unsupported: ["named_endpoints"]) else { return nil }
        var ok = f.required("cluster_name")?.nonEmptyString() != nil
        if let policy = f["policy"] {
            if let p = policy.fields(known: ["overprovisioning_factor"],
                                     unsupported: ["drop_overloads", "endpoint_stale_after", "weighted_priority_health"]) {
                // A UInt32Value in percent; Envoy requires it above 0.
                if let v = p["overprovisioning_factor"] {
                    if let n = v.int(1...Int(UInt32.max)) { overprovisioning = n } else { ok = false }
                }
            } else {
                ok = false
            }
        }
        var endpoints: [EndpointConfig] = []
        for (localityIndex, locality) in (f["endpoints"]?.list() ?? []).enumerated() {
            guard let l = locality.fields(
                known: ["lb_endpoints", "locality", "priority", "load_balancing_weight"],
                unsupported: ["leds_cluster_locality_config", "proximity", "metadata"]) else { ok = false; continue }
            var place = LocalityConfig()
            if let names = l["locality"]?.fields(known: ["region", "zone", "sub_zone"]) {
                place.region = names["region"]?.string() ?? ""
                place.zone = names["zone"]?.string() ?? ""
                place.subZone = names["sub_zone"]?.string() ?? ""
            }
            let givenPriority = l["priority"]?.int(0...127)
            if l.has("priority") && givenPriority == nil { ok = false }
            let priority = givenPriority ?? 0
            // Unset: 0, which a locality-weighted cluster never picks (Envoy's rule).
            let givenWeight = l["load_balancing_weight"]?.int(1...Int(UInt32.max))
            if l.has("load_balancing_weight") && givenWeight == nil { ok = false }
            place.weight = givenWeight ?? 0
            for item in l["lb_endpoints"]?.list() ?? [] {
                guard let e = item.fields(known: ["endpoint", "load_balancing_weight"],
                                          unsupported: ["endpoint_name", "metadata", "health_status"]) else { ok = false; continue }
                let weight = e["load_balancing_weight"]?.int(1...Int(UInt32.max))
                guard e.oneOf(["endpoint"], unsupportedAlternatives: ["endpoint_name"]) != nil,
                      let endpoint = e["endpoint"]?.fields(known: ["address", "health_check_config"],
                                                           unsupported: ["hostname", "additional_addresses"]) else { ok = false; continue }
                let address = endpoint.required("address").flatMap { parseAddress($0, allowHostname: allowHostname, portRange: 1...65535) }
                var healthPort: Int?
                if let h = endpoint["health_check_config"]?.fields(known: ["port_value"],
                                                                     unsupported: ["hostname", "address", "disable_active_health_check"]) {
                    healthPort = h["port_value"]?.int(1...65535)
                }
                guard let address, e["load_balancing_weight"] == nil || weight != nil else { ok = false; continue }
                var parsed = EndpointConfig(address: address, weight: weight ?? 1, priority: priority, healthCheckPort: healthPort)
                parsed.locality = localityIndex
                parsed.place = place
                endpoints.append(parsed)
            }
        }
        return ok ? endpoints : nil
    }

    func parseCircuitBreakers(_ value: ConfigValue) -> CircuitBreakersConfig? {
        guard let f = value.fields(known: ["thresholds"], unsupported: ["per_host_thresholds"]) else { return nil }
        var byPriority: [RoutingPriority: CircuitBreakerThresholds] = [:]
        var ok = true
        for item in f["thresholds"]?.list() ?? [] {
            guard let t = item.fields(
                known: ["priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "retry_budget"],
                unsupported: ["track_remaining", "max_connection_pools"]) else { ok = false; continue }
            let priority = t["priority"]?.enumeration(RoutingPriority.self) ?? (t["priority"] == nil ? .default : nil)
            let d = CircuitBreakerThresholds.envoyDefault
            let limits = ["max_connections", "max_pending_requests", "max_requests", "max_retries"].map { t[$0]?.int(0...Int(UInt32.max)) }
            let given = ["max_connections", "max_pending_requests", "max_requests", "max_retries"].map { t[$0] != nil }
            guard let priority, zip(limits, given).allSatisfy({ $0 != nil || !$1 }) else { ok = false; continue }
            if byPriority[priority] != nil {
                item.error("a second threshold for priority \(priority.rawValue)")
                ok = false
                continue
            }
            var thresholds = CircuitBreakerThresholds(
                maxConnections: limits[0] ?? d.maxConnections, maxPendingRequests: limits[1] ?? d.maxPendingRequests,
                maxRequests: limits[2] ?? d.maxRequests, maxRetries: limits[3] ?? d.maxRetries)
            if let b = t.present("retry_budget") {
                // Envoy: a present retry_budget replaces max_retries, with 20% and 3 as defaults.
                guard let r = b.fields(known: ["budget_percent", "min_retry_concurrency"]) else { ok = false; continue }
                var percent = 20.0
                if let p = r["budget_percent"] {
                    guard let v = p.fields(known: ["value"]), let value = v["value"]?.double(0...100) ?? (v.has("value") ? nil : 0) else { ok = false; continue }
                    percent = value
                }
                if let m = r["min_retry_concurrency"] {
                    guard let n = m.int(0...Int(UInt32.max)) else { ok = false; continue }
                    thresholds.minRetryConcurrency = n
                }
                thresholds.retryBudgetPercent = percent
            }
            byPriority[priority] = thresholds
        }
        guard ok else { return nil }
        return CircuitBreakersConfig(defaultPriority: byPriority[.default] ?? .envoyDefault, highPriority: byPriority[.high] ?? .envoyDefault)
    }

    /// Upstream keepalive limits, from the cluster's `common_http_protocol_options` and
    /// `max_requests_per_connection`, or from the v3 typed `HttpProtocolOptions` extension.
    func parseUpstreamHTTPOptions(_ f: ConfigFields) -> UpstreamHTTPOptions? {
        var ok = true
        var common: ConfigValue? = f["common_http_protocol_options"]
        if let typed = f["typed_extension_protocol_options"] {
            guard case .mapping(let mapping) = typed.node else {
                typed.error("expected a mapping, got \(typed.node.foundDescription)")
                return nil
            }
            for (keyNode, body) in mapping {
                let key = keyNode.scalar?.string ?? ""
                let item = ConfigValue(node: body, path: typed.path.appending(key), diagnostics: diagnostics)
                guard key == FilterNames.upstreamHTTPProtocolOptions else {
                    item.error("unknown protocol options extension (ballast knows \(FilterNames.upstreamHTTPProtocolOptions))")
                    ok = false
                    continue
                }
                guard let o = item.fields(known: ["@type", "common_http_protocol_options", "explicit_http_config"],
                                          unsupported: ["use_downstream_protocol_config", "auto_config",
                                                        "upstream_http_protocol_options", "http_filters", "header_validation_config"]) else { ok = false; continue }
                let expected = "type.googleapis.com/" + FilterNames.upstreamHTTPProtocolOptions
                if let t = o.required("@type"), let url = t.string(), url != expected {
                    t.error("'\(url)' does not match \(key); expected \(expected)")
                    ok = false
                }
                if let e = o["explicit_http_config"]?.fields(known: ["http_protocol_options"],
                                                              unsupported: ["http2_protocol_options", "http3_protocol_options"]) {
                    if e.oneOf(["http_protocol_options"], unsupportedAlternatives: ["http2_protocol_options", "http3_protocol_options"]) != nil {
                        _ = e.present("http_protocol_options")?.fields(
                            known: [],
                            unsupported: ["allow_absolute_url", "accept_http_10", "default_host_for_http_10", "header_key_format",
                                          "enable_trailers", "allow_chunked_length", "override_stream_error_on_invalid_http_message",
                                          "send_fully_qualified_url", "use_balsa_parser", "allow_custom_methods"])
                    }
                }
                if let c = o["common_http_protocol_options"] {
                    if common != nil {
                        c.error("set common_http_protocol_options in one place: on the cluster or in \(FilterNames.upstreamHTTPProtocolOptions)")
                        ok = false
                    }
                    common = c
                }
            }
        }
        var options = UpstreamHTTPOptions.envoyDefault
        var idle = options.idleTimeoutNanos
        var maxRequests: Int?
        var duration: Int64?
        if let common {
            guard let c = common.fields(
                known: ["idle_timeout", "max_requests_per_connection", "max_connection_duration"],
                unsupported: ["max_headers_count", "max_stream_duration", "headers_with_underscores_action", "max_response_headers_kb"])
            else { return nil }
            idle = timeout(c, "idle_timeout", default: idle)
            duration = timeout(c, "max_connection_duration", default: nil)
            if let m = c["max_requests_per_connection"] {
                maxRequests = m.int(0...Int(UInt32.max))
                if maxRequests == nil { ok = false }
            }
        }
        if let m = f["max_requests_per_connection"] {
            if maxRequests != nil {
                m.error("set max_requests_per_connection in one place (common_http_protocol_options has it)")
                ok = false
            } else {
                maxRequests = m.int(0...Int(UInt32.max))
                if maxRequests == nil { ok = false }
            }
        }
        guard ok else { return nil }
        options = UpstreamHTTPOptions(idleTimeoutNanos: idle, maxRequestsPerConnection: maxRequests == 0 ? nil : maxRequests,
                                      maxConnectionDurationNanos: duration)
        return options
    }

    func parseHealthCheck(_ value: ConfigValue) -> HealthCheckConfig? {
        guard let f = value.fields(
            known: ["timeout", "interval", "unhealthy_threshold", "healthy_threshold", "http_health_check", "tcp_health_check",
                    "no_traffic_interval", "interval_jitter"],
            unsupported: ["grpc_health_check", "custom_health_check", "alt_port", "reuse_connection", "initial_jitter",
                          "interval_jitter_percent", "unhealthy_interval", "unhealthy_edge_interval", "healthy_edge_interval",
                          "event_log_path", "always_log_health_check_failures", "tls_options", "no_traffic_healthy_interval",
                          "event_logger", "transport_socket_match_criteria", "always_log_health_check_success"]) else { return nil }
        let timeoutNanos = f.required("timeout")?.duration()
        let interval = f.required("interval")?.duration()
        let unhealthy = f.required("unhealthy_threshold")?.int(1...Int(UInt32.max))
        let healthy = f.required("healthy_threshold")?.int(1...Int(UInt32.max))
        let noTraffic = f["no_traffic_interval"]?.duration()
        let jitter = f["interval_jitter"]?.duration()
        var kind: HealthCheckConfig.Kind?
        switch f.oneOf(["http_health_check", "tcp_health_check"], unsupportedAlternatives: ["grpc_health_check", "custom_health_check"]) {
        case "http_health_check":
            if let h = f["http_health_check"]?.fields(
                known: ["path", "host", "expected_statuses"],
                unsupported: ["send", "receive", "request_headers_to_add", "request_headers_to_remove", "codec_client_type",
                              "service_name_matcher", "retriable_statuses", "method", "response_buffer_size"]),
               let path = h.required("path")?.nonEmptyString() {
                var ranges: [Range<Int>] = []
                var rangesOK = true
                for item in h["expected_statuses"]?.list() ?? [] {
                    guard let r = item.fields(known: ["start", "end"]),
                          let lo = r.required("start")?.int(100...599), let hi = r.required("end")?.int(101...600) else { rangesOK = false; continue }
                    if lo >= hi { item.error("start (\(lo)) must be less than end (\(hi))"); rangesOK = false; continue }
                    ranges.append(lo..<hi)
                }
                if rangesOK { kind = .http(path: path, host: h["host"]?.string(), expectedStatuses: ranges.isEmpty ? [200..<201] : ranges) }
            }
        case "tcp_health_check":
            if f.present("tcp_health_check")?.fields(known: [], unsupported: ["send", "receive", "proxy_protocol_config"]) != nil {
                kind = .tcp
            }
        default:
            break
        }
        guard let timeoutNanos, let interval, let unhealthy, let healthy, let kind,
              f["no_traffic_interval"] == nil || noTraffic != nil, f["interval_jitter"] == nil || jitter != nil else { return nil }
        if timeoutNanos == 0 || interval == 0 {
            f.error(timeoutNanos == 0 ? "timeout" : "interval", "must be greater than 0s")
            return nil
        }
        return HealthCheckConfig(kind: kind, timeoutNanos: timeoutNanos, intervalNanos: interval,
                                 unhealthyThreshold: unhealthy, healthyThreshold: healthy,
                                 noTrafficIntervalNanos: noTraffic ?? 60_000_000_000, intervalJitterNanos: jitter ?? 0)
    }
}
