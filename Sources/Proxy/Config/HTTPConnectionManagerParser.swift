import Yams

extension BootstrapParser {
    // MARK: - http_connection_manager

    func parseHTTPConnectionManager(_ value: ConfigValue, typed: Bool) -> HTTPConnectionManagerConfig? {
        guard let f = value.fields(
            known: (typed ? ["@type"] : []) + [
                "stat_prefix", "codec_type", "route_config", "http_filters", "access_log",
                "common_http_protocol_options", "max_request_headers_kb", "request_timeout",
                "request_headers_timeout", "stream_idle_timeout", "drain_timeout", "delayed_close_timeout",
                "use_remote_address", "xff_num_trusted_hops", "generate_request_id", "server_name",
                "server_header_transformation", "idle_timeout", "skip_xff_append", "http_protocol_options",
                "upgrade_configs", "strip_matching_host_port", "strip_any_host_port", "tracing", "rds",
            ],
            unsupported: [
                "scoped_routes", "http2_protocol_options",
                "http3_protocol_options", "add_user_agent", "forward_client_cert_details",
                "set_current_client_cert_details", "proxy_100_continue",
                "represent_ipv4_remote_address_as_ipv4_mapped_ipv6", "normalize_path",
                "merge_slashes", "path_with_escaped_slashes_action", "request_id_extension", "local_reply_config",
                "stream_error_on_invalid_http_message",
                "internal_address_config", "via", "preserve_external_request_id",
                "always_set_request_id_in_response", "early_header_mutation_extensions",
                "original_ip_detection_extensions", "access_log_options", "scheme_header_transformation",
                "route_config_name", "max_requests_per_connection", "typed_header_validation_config",
                "append_x_forwarded_port", "append_local_overload", "add_proxy_protocol_connection_state",
                "strip_trailing_host_dot", "request_headers_timeout_ms", "http1_safe_max_connection_duration",
            ]) else { return nil }

        let statPrefix = f.required("stat_prefix")?.nonEmptyString()
        let codec = f["codec_type"]?.enumeration(HTTPCodecType.self, unsupported: ["HTTP2", "HTTP3"])
        let codecOK = f["codec_type"] == nil || codec != nil

        var routeConfig: RouteConfiguration?
        if f.oneOf(["route_config", "rds"], unsupportedAlternatives: ["scoped_routes"]) != nil {
            if let rc = f["route_config"] { routeConfig = parseRouteConfiguration(rc) }
            if let rds = f["rds"] { routeConfig = parseRDS(rds, statPrefix: statPrefix) }
        }

        let filters = parseHTTPFilters(f)
        let logs = parseAccessLogs(f["access_log"])

        // Downstream connection options.
        var idle: Int64? = 3_600_000_000_000
        var maxConnectionDuration: Int64?
        var maxHeaders = 100
        var maxStream: Int64?
        var optionsOK = true
        if let idleV2 = f["idle_timeout"] {
            f.warning("idle_timeout", "deprecated v2 field; use common_http_protocol_options.idle_timeout")
            if f.has("common_http_protocol_options") {
                f.error("idle_timeout", "set common_http_protocol_options.idle_timeout only")
                optionsOK = false
            }
            idle = nonZero(idleV2.duration())
        }
        if let o = f["common_http_protocol_options"]?.fields(
            known: ["idle_timeout", "max_connection_duration", "max_headers_count", "max_stream_duration"],
            unsupported: ["headers_with_underscores_action", "max_requests_per_connection", "max_response_headers_kb"]) {
            optionsOK = o.refuseUnappliedDuration("max_stream_duration", "a stream is reset after this long") && optionsOK
            idle = timeout(o, "idle_timeout", default: idle)
            maxConnectionDuration = timeout(o, "max_connection_duration", default: nil)
            maxHeaders = o["max_headers_count"]?.int(1...10_000) ?? maxHeaders
            maxStream = timeout(o, "max_stream_duration", default: nil)
        } else if f["common_http_protocol_options"] != nil {
            optionsOK = false
        }

        let headersKiB = f["max_request_headers_kb"]?.int(1...8192)
        let transformation = f["server_header_transformation"]?.enumeration(ServerHeaderTransformation.self)
        let drain = f["drain_timeout"]?.duration()
        let useRemote = f["use_remote_address"]?.bool()
        let hops = f["xff_num_trusted_hops"]?.int(0...Int(UInt32.max))
        let generate = f["generate_request_id"]?.bool()
        let serverName = f["server_name"]?.string()
        let requestTimeout = timeout(f, "request_timeout", default: nil)
        let requestHeadersTimeout = timeout(f, "request_headers_timeout", default: nil)
        let streamIdle = timeout(f, "stream_idle_timeout", default: 300_000_000_000)
        let delayedClose = timeout(f, "delayed_close_timeout", default: 1_000_000_000)
        let skipXff = f["skip_xff_append"]?.bool()
        let timeoutsOK = f["drain_timeout"] == nil || drain != nil
        var acceptHTTP10: Bool? = false
        if let o = f["http_protocol_options"]?.fields(
            known: ["accept_http_10"],
            unsupported: ["allow_absolute_url", "default_host_for_http_10", "header_key_format", "enable_trailers",
                          "allow_chunked_length", "override_stream_error_on_invalid_http_message",
                          "send_fully_qualified_url", "use_balsa_parser", "allow_custom_methods",
                          "ignore_http_11_upgrade"]) {
            acceptHTTP10 = o["accept_http_10"]?.bool() ?? false
            if o["accept_http_10"] != nil && o["accept_http_10"]?.bool() == nil { acceptHTTP10 = nil }
        } else if f["http_protocol_options"] != nil {
            acceptHTTP10 = nil
        }

        let upgrades = parseUpgradeConfigs(f, route: false)
        let tracing = f["tracing"].map(parseHTTPTracing)
        let stripAny = f["strip_any_host_port"].map { $0.bool() }
        let stripMatching = f["strip_matching_host_port"].map { $0.bool() }
        var stripOK = !(stripAny == .some(nil) || stripMatching == .some(nil))
        if stripAny == true && stripMatching == true {
            f.error("strip_any_host_port", "set only one of strip_matching_host_port and strip_any_host_port")
            stripOK = false
        }
        guard stripOK, let statPrefix, codecOK, let routeConfig, let filters, let logs, optionsOK, let acceptHTTP10, timeoutsOK,
              f["skip_xff_append"] == nil || skipXff != nil, let upgrades, tracing != .some(nil) else { return nil }
        var config = HTTPConnectionManagerConfig(
            statPrefix: statPrefix, codecType: codec ?? .auto, routeConfig: routeConfig,
            httpFilters: filters, accessLog: logs,
            idleTimeoutNanos: idle, maxConnectionDurationNanos: maxConnectionDuration,
            maxHeadersCount: maxHeaders, maxStreamDurationNanos: maxStream,
            maxRequestHeadersKiB: headersKiB ?? 60,
            requestTimeoutNanos: requestTimeout,
            requestHeadersTimeoutNanos: requestHeadersTimeout,
            streamIdleTimeoutNanos: streamIdle,
            drainTimeoutNanos: drain ?? 5_000_000_000,
            delayedCloseTimeoutNanos: delayedClose,
            useRemoteAddress: useRemote ?? false, xffNumTrustedHops: hops ?? 0,
            generateRequestID: generate ?? true, serverName: serverName ?? "envoy",
            serverHeaderTransformation: transformation ?? .overwrite)
        config.skipXffAppend = skipXff ?? false
        config.acceptHTTP10 = acceptHTTP10
        config.upgradeConfigs = upgrades
        config.stripHostPort = stripAny == true ? .any : stripMatching == true ? .matching : .none
        config.tracing = tracing ?? nil
        return config
    }

    /// `upgrade_configs[]` of a connection manager or (`route`) of a route action. A type listed
    /// twice (ASCII case-insensitively) is an error, as in Envoy.
    func parseUpgradeConfigs(_ f: ConfigFields, route: Bool) -> [UpgradeConfig]? {
        guard let items = f["upgrade_configs"] else { return [] }
        guard let list = items.list() else { return nil }
        var result: [UpgradeConfig] = []
        var seen = Set<String>()
        var ok = true
        for item in list {
            guard let u = item.fields(known: ["upgrade_type", "enabled"],
                                      unsupported: route ? ["connect_config"] : ["filters"]) else { ok = false; continue }
            guard let type = u.required("upgrade_type")?.string() else { ok = false; continue }
            let enabled = u["enabled"]?.bool()
            if u["enabled"] != nil && enabled == nil { ok = false; continue }
            if type.lowercased() == "connect" {
                u.error("upgrade_type", "CONNECT (HTTP tunnelling by method) is not supported by ballast; upgrades by Upgrade header (websocket...) are")
                ok = false
                continue
            }
            if !seen.insert(type.lowercased()).inserted {
                u.error("upgrade_type", "'\(type)' is listed twice (Envoy: multiple upgrade configs with the same name)")
                ok = false
                continue
            }
            result.append(UpgradeConfig(upgradeType: type, enabled: enabled ?? true))
        }
        return ok ? result : nil
    }

    /// `http_filters[]`: the router must be there, once, and last.
    func parseHTTPFilters(_ f: ConfigFields) -> [HTTPFilterConfig]? {
        // Envoy 1.40 accepts an HCM without http_filters (or an empty list), then leaves every
        // request unanswered until stream_idle_timeout (no router); Ballast refuses it instead.
        let noRouter = "no HTTP filters: Envoy accepts this and leaves every request unanswered (no router); add \(FilterNames.router)"
        guard f.has("http_filters") else {
            diagnostics.error(f.path.appending("http_filters"), noRouter, at: f.node)
            return nil
        }
        guard let items = f["http_filters"]?.list() else { return nil }
        if items.isEmpty {
            diagnostics.error(f.path.appending("http_filters"), noRouter, at: f["http_filters"]?.node ?? f.node)
            return nil
        }
        var filters: [HTTPFilterConfig] = []
        var ok = true
        var firstRouter: ConfigPath?
        for (i, item) in items.enumerated() {
            guard let g = item.fields(known: ["name", "typed_config", "config", "is_optional"],
                                      unsupported: ["config_discovery", "disabled"]) else { ok = false; continue }
            let optional = g["is_optional"]?.bool() ?? false
            switch resolveExtension(g, category: "HTTP filter", kinds: [.router, .workerCost, .localRateLimit, .fault, .cors, .csrf, .rbac, .healthCheck, .buffer, .compressor, .decompressor, .cache, .extAuthz], optional: optional,
                                    unsupportedNames: ExtensionKind.unsupportedHTTPFilters) {
            case .failed:
                ok = false
            case .skipped:
                continue
            case .resolved(let r) where r.kind == .workerCost:
                guard let cost = parseWorkerCostFilter(r.body, typed: r.typed, at: item.path) else { ok = false; continue }
                filters.append(.workerCost(cost))
            case .resolved(let r) where r.kind == .localRateLimit:
                guard let c = parseLocalRateLimit(r.body, typed: r.typed, at: item.path, perRoute: false),
                      let name = g["name"]?.string() else { ok = false; continue }
                filters.append(.localRateLimit(c, configName: name))
            case .resolved(let r) where r.kind == .fault:
                guard let c = parseFault(r.body, typed: r.typed, at: item.path), let name = g["name"]?.string() else { ok = false; continue }
                filters.append(.fault(c, configName: name))
            case .resolved(let r) where r.kind == .rbac:
                guard let c = parseRBAC(r.body, typed: r.typed), let name = g["name"]?.string() else { ok = false; continue }
                filters.append(.rbac(c, configName: name))
            case .resolved(let r) where r.kind == .csrf:
                guard let c = parseCsrfPolicy(r.body, typed: r.typed, at: item.path), let name = g["name"]?.string() else { ok = false; continue }
                filters.append(.csrf(c, configName: name))
            case .resolved(let r) where r.kind == .extAuthz:
                guard let c = parseExtAuthz(r.body, typed: r.typed, at: item.path), let name = g["name"]?.string() else { ok = false; continue }
                filters.append(.extAuthz(c, configName: name))
            case .resolved(let r) where r.kind == .buffer:
                guard let c = parseBufferFilter(r.body, typed: r.typed, at: item.path), let name = g["name"]?.string() else { ok = false; continue }
                filters.append(.buffer(c, configName: name))
            case .resolved(let r) where r.kind == .compressor:
                guard let c = parseCompressor(r.body, typed: r.typed, at: item.path) else { ok = false; continue }
                if filters.contains(where: { if case .compressor = $0 { true } else { false } }) {
                    diagnostics.error(item.path.appending("name"), "a second \(FilterNames.compressor) is not supported by ballast (one compressor library per chain)", at: g.keyNode("name"))
                    ok = false; continue
                }
                guard let name = g["name"]?.string() else { ok = false; continue }
                filters.append(.compressor(c, configName: name))
            case .resolved(let r) where r.kind == .decompressor:
                guard let c = parseDecompressor(r.body, typed: r.typed, at: item.path) else { ok = false; continue }
                if filters.contains(where: { if case .decompressor = $0 { true } else { false } }) {
                    diagnostics.error(item.path.appending("name"), "a second \(FilterNames.decompressor) is not supported by ballast (one decompressor library per chain)", at: g.keyNode("name"))
                    ok = false; continue
                }
                filters.append(.decompressor(c))
            case .resolved(let r) where r.kind == .cache:
                guard let c = parseCacheFilter(r.body, typed: r.typed, at: item.path) else { ok = false; continue }
                guard let c else { continue }  // disabled: a no-op filter
                if filters.contains(where: { if case .cache = $0 { true } else { false } }) {
                    diagnostics.error(item.path.appending("name"), "a second \(FilterNames.cache) is not supported by ballast (one cache per chain)", at: g.keyNode("name"))
                    ok = false; continue
                }
                filters.append(.cache(c))
            case .resolved(let r) where r.kind == .healthCheck:
                guard let c = parseHealthCheck(r.body, typed: r.typed, at: item.path) else { ok = false; continue }
                filters.append(.healthCheck(c))
            case .resolved(let r) where r.kind == .cors:
                // The filter's own config has no fields; its policies come per route / virtual host.
                if let body = r.body, body.fields(known: r.typed ? ["@type"] : []) == nil { ok = false; continue }
                if filters.contains(where: { if case .cors = $0 { true } else { false } }) {
                    diagnostics.error(item.path.appending("name"), "a second \(FilterNames.cors) is not supported by ballast", at: g.keyNode("name"))
                    ok = false; continue
                }
                guard let name = g["name"]?.string() else { ok = false; continue }
                filters.append(.cors(configName: name))
            case .resolved(let r):
                let namePath = item.path.appending("name")
                if let firstRouter {
                    diagnostics.error(namePath, "\(FilterNames.router) appears twice (first at \(firstRouter)); it must be the last HTTP filter, once", at: g.keyNode("name"))
                    ok = false
                } else if i != items.count - 1 {
                    diagnostics.error(namePath, "\(FilterNames.router) must be the last HTTP filter (it is \(i + 1) of \(items.count))", at: g.keyNode("name"))
                    ok = false
                }
                firstRouter = firstRouter ?? namePath
                guard let router = parseRouterFilter(r.body, typed: r.typed) else { ok = false; continue }
                filters.append(.router(router))
            }
        }
        if ok, filters.contains(where: { if case .cache = $0 { true } else { false } }),
           let other = filters.firstIndex(where: { switch $0 { case .compressor, .decompressor: true; default: false } }) {
            // Which side of the cache a codec runs on decides whether entries hold coded bodies;
            // Ballast's cache serves stored bytes as they are (docs/cache.md).
            diagnostics.error(f.path.appending("http_filters"), "\(filters[other].name) in the same chain as \(FilterNames.cache) is not supported by ballast",
                              at: f["http_filters"]?.node ?? f.node)
            ok = false
        }
        guard ok else { return nil }
        if filters.isEmpty {
            diagnostics.error(f.path.appending("http_filters"), "the last HTTP filter must be \(FilterNames.router)",
                              at: f["http_filters"]?.node ?? f.node)
            return nil
        }
        return filters
    }

    func parseRouterFilter(_ body: ConfigValue?, typed: Bool) -> RouterFilterConfig? {
        guard let body else { return .default }
        guard let f = body.fields(
            known: (typed ? ["@type"] : []) + ["suppress_envoy_headers"],
            unsupported: ["dynamic_stats", "start_child_span", "upstream_log", "upstream_log_options",
                          "strict_check_headers", "respect_expected_rq_timeout",
                          "suppress_grpc_request_failure_code_stats", "upstream_http_filters"]) else { return nil }
        let suppress = f["suppress_envoy_headers"]?.bool()
        if f["suppress_envoy_headers"] != nil && suppress == nil { return nil }
        return RouterFilterConfig(suppressEnvoyHeaders: suppress ?? false)
    }

    // MARK: - Routes

    /// `rds`: the route_config_name when the configuration comes from an RDS file (else inline).
    func parseRouteConfiguration(_ value: ConfigValue, rds: String? = nil) -> RouteConfiguration? {
        // Cluster references of routes (and mirrors) are checked only where Envoy checks them:
        // `validate_clusters` (default: true inline, false from RDS), when the configuration is
        // created by this load (docs/dynamic-config.md). Others may name a cluster that does
        // not exist: 503 NC per request.
        let references = clusterReferences.count
        var validates = true
        defer { if !validates { clusterReferences.removeSubrange(min(references, clusterReferences.count)...) } }
        guard let f = value.fields(
            known: ["name", "virtual_hosts", "validate_clusters", "max_direct_response_body_size_bytes", "response_headers_to_add",
                    "response_headers_to_remove", "request_headers_to_add", "request_headers_to_remove", "most_specific_header_mutations_wins"],
            unsupported: ["internal_only_headers",
                          "vhds", "cluster_specifier_plugins", "request_mirror_policies", "ignore_port_in_host_matching",
                          "ignore_path_parameters_in_path_matching", "typed_per_filter_config", "metadata"]) else { return nil }
        let name = f["name"]?.string() ?? ""
        var validate = rds == nil
        if let v = f["validate_clusters"] {
            guard let b = v.bool() else { return nil }
            validate = b
        }
        validates = validate && (rds.map(createsRouteConfiguration) ?? creatingListeners)
        let maxBody = f["max_direct_response_body_size_bytes"]?.int(0...(1 << 20)) ?? 4096
        var hosts: [VirtualHostConfig] = []
        var ok = true
        var domainOwners: [DomainPattern: ConfigPath] = [:]
        for item in f["virtual_hosts"]?.list() ?? [] {
            guard let host = parseVirtualHost(item, maxBodyBytes: maxBody) else { ok = false; continue }
            // Envoy: a domain may appear in only one virtual host of a route configuration.
            for (i, domain) in host.domains.enumerated() {
                let path = item.path.appending("domains").appending(index: i)
                if let owner = domainOwners[domain] {
                    diagnostics.error(path, "duplicate domain '\(domain)' (also in \(owner))", at: item.node)
                    ok = false
                } else {
                    domainOwners[domain] = item.path
                }
            }
            hosts.append(host)
        }
        guard let mutations = parseHeaderMutations(f) else { return nil }
        if f.has("most_specific_header_mutations_wins") {
            guard let v = f["most_specific_header_mutations_wins"], let wins = v.bool() else { return nil }
            if wins { v.error("true is not supported by ballast (route-level mutations are applied first, then virtual host, then route configuration: Envoy's default)"); return nil }
        }
        guard ok else { return nil }
        var config = RouteConfiguration(name: name, virtualHosts: hosts)
        config.headerMutations = mutations
        return config
    }

    func parseVirtualHost(_ value: ConfigValue, maxBodyBytes: Int) -> VirtualHostConfig? {
        guard let f = value.fields(
            known: ["name", "domains", "routes", "retry_policy", "typed_per_filter_config", "request_headers_to_add",
                    "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove", "require_tls"],
            unsupported: ["virtual_clusters", "rate_limits", "cors",
                          "include_request_attempt_count", "include_attempt_count_in_response",
                          "hedge_policy", "per_request_buffer_limit_bytes", "request_mirror_policies", "matcher",
                          "metadata", "retry_policy_typed_config", "action_specifier"]) else { return nil }
        let name = f.required("name")?.nonEmptyString()
        var domains: [DomainPattern] = []
        var ok = true
        if let items = f.required("domains")?.list() {
            if items.isEmpty { f.error("domains", "needs at least one domain (\"*\" matches every host)"); ok = false }
            for item in items {
                guard let text = item.nonEmptyString() else { ok = false; continue }
                guard let pattern = Self.domainPattern(text.lowercased()) else {
                    item.error("'\(text)': a wildcard '*' may appear only once, as the whole domain, its first or its last character")
                    ok = false
                    continue
                }
                if domains.contains(pattern) {
                    item.error("duplicate domain '\(text)'")
                    ok = false
                }
                domains.append(pattern)
            }
        } else {
            ok = false
        }
        let retry = f["retry_policy"].flatMap(parseRetryPolicy)
        if f["retry_policy"] != nil && retry == nil { ok = false }
        var routes: [RouteConfig] = []
        for item in f["routes"]?.list() ?? [] {
            if let route = parseRoute(item, maxBodyBytes: maxBodyBytes) { routes.append(route) } else { ok = false }
        }
        var perFilter: [String: PerRouteFilterConfig] = [:]
        if let t = f["typed_per_filter_config"] {
            if parseTypedPerFilterConfig(t, into: &perFilter) {
                // Only CORS and CSRF policies apply at this level here; the other filters'
                // most-specific lookup of virtual-host configs is not implemented.
                for (key, config) in perFilter {
                    if case .cors = config { continue }
                    if case .csrf = config { continue }
                    diagnostics.error(t.path.appending(key), "a virtual-host level config of this filter is not supported by ballast; put it on the routes", at: t.node)
                    ok = false
                }
            } else {
                ok = false
            }
        }
        let mutations = parseHeaderMutations(f)
        let requireTLS = f["require_tls"].map { $0.enumeration(RequireTLS.self) } ?? RequireTLS.none
        guard ok, let name, let mutations, let requireTLS else { return nil }
        var host = VirtualHostConfig(name: name, domains: domains, routes: routes, retryPolicy: retry)
        host.perFilterConfigs = perFilter
        host.headerMutations = mutations
        host.requireTLS = requireTLS
        return host
    }

    static func domainPattern(_ text: String) -> DomainPattern? {
        let stars = text.filter { $0 == "*" }.count
        if stars == 0 { return .exact(text) }
        guard stars == 1 else { return nil }
        if text == "*" { return .any }
        if text.hasPrefix("*") { return .suffix(String(text.dropFirst())) }
        if text.hasSuffix("*") { return .prefix(String(text.dropLast())) }
        return nil
    }

    func parseRoute(_ value: ConfigValue, maxBodyBytes: Int) -> RouteConfig? {
        guard let f = value.fields(
            known: ["name", "match", "route", "direct_response", "redirect", "typed_per_filter_config", "request_headers_to_add",
                    "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove", "decorator"],
            unsupported: ["filter_action", "non_forwarding_action", "metadata", "tracing",
                          "per_request_buffer_limit_bytes", "stat_prefix"]) else { return nil }
        let name = f["name"]?.string()
        let match = f.required("match").flatMap(parseRouteMatch)
        var action: RouteActionConfig?
        switch f.oneOf(["route", "direct_response", "redirect"], unsupportedAlternatives: ["filter_action", "non_forwarding_action"]) {
        case "redirect":
            if let r = f["redirect"] {
                action = parseRedirect(r, pathMatch: match?.path).map { .redirect($0) }
            }
        case "route":
            if let r = f["route"] {
                action = parseRouteAction(r, pathMatch: match?.path).map { .forward($0) }
            }
        case "direct_response":
            if let r = f["direct_response"] {
                action = parseDirectResponse(r, maxBodyBytes: maxBodyBytes).map { .directResponse($0) }
            }
        default:
            break
        }
        var perFilter: [String: PerRouteFilterConfig] = [:]
        var perFilterOK = true
        if let t = f["typed_per_filter_config"] { perFilterOK = parseTypedPerFilterConfig(t, into: &perFilter) }
        let mutations = parseHeaderMutations(f)
        let decorator = f["decorator"].map(parseDecorator)
        guard let match, let action, perFilterOK, let mutations, decorator != .some(nil) else { return nil }
        var route = RouteConfig(name: name, match: match, action: action)
        route.decorator = decorator ?? nil
        route.perFilterConfigs = perFilter
        route.headerMutations = mutations
        return route
    }

    func parseRouteMatch(_ value: ConfigValue) -> RouteMatchConfig? {
        guard let f = value.fields(
            known: ["prefix", "path", "safe_regex", "case_sensitive", "headers", "query_parameters"],
            unsupported: ["regex", "connect_matcher", "path_separated_prefix", "path_match_policy", "runtime_fraction",
                          "grpc", "tls_context", "dynamic_metadata", "filter_state", "cel_expression"]) else { return nil }
        var path: PathMatch?
        switch f.oneOf(["prefix", "path", "safe_regex"], unsupportedAlternatives: ["regex", "connect_matcher", "path_separated_prefix", "path_match_policy"]) {
        case "prefix":
            if let p = f.present("prefix") {
                // `prefix: ""` (or written as null) matches every path.
                path = p.node.isNull ? .prefix("") : p.string().map { .prefix($0) }
            }
        case "path":
            path = f["path"]?.nonEmptyString().map { .path($0) }
        case "safe_regex":
            path = f["safe_regex"].flatMap(parseRegex).map { .safeRegex($0) }
        default:
            break
        }
        let caseSensitive = f["case_sensitive"]?.bool()
        var ok = true
        var headers: [HeaderMatcherConfig] = []
        for item in f["headers"]?.list() ?? [] {
            if let h = parseHeaderMatcher(item) { headers.append(h) } else { ok = false }
        }
        var queries: [QueryParameterMatcherConfig] = []
        for item in f["query_parameters"]?.list() ?? [] {
            if let q = parseQueryParameterMatcher(item) { queries.append(q) } else { ok = false }
        }
        guard let path, ok else { return nil }
        return RouteMatchConfig(path: path, caseSensitive: caseSensitive ?? true, headers: headers, queryParameters: queries)
    }

    /// `{google_re2: {max_program_size}, regex: "..."}`: the pattern must compile with RE2 and its
    /// program stay within the maximum size (Envoy's default 100), as Envoy checks at load.
    func parseRegex(_ value: ConfigValue) -> String? {
        guard let f = value.fields(known: ["google_re2", "regex"]) else { return nil }
        var maxProgramSize = RE2Regex.defaultMaxProgramSize
        if let g = f.present("google_re2") {
            guard let options = g.fields(known: ["max_program_size"]) else { return nil }
            if let m = options["max_program_size"] {
                guard let n = m.int(0...Int(UInt32.max)) else { return nil }
                maxProgramSize = n
            }
        }
        guard let r = f.required("regex"), let pattern = r.string() else { return nil }
        let compiled: RE2Regex
        do {
            compiled = try RE2Regex(pattern)
        } catch {
            r.error("invalid regex '\(pattern)': \(error.description)")
            return nil
        }
        if compiled.programSize > maxProgramSize {
            r.error("regex '\(pattern)': RE2 program size of \(compiled.programSize) > max program size of \(maxProgramSize); "
                    + "simplify it or raise google_re2.max_program_size")
            return nil
        }
        return pattern
    }

    func parseHeaderMatcher(_ value: ConfigValue) -> HeaderMatcherConfig? {
        let kinds = ["exact_match", "prefix_match", "suffix_match", "contains_match", "safe_regex_match", "present_match", "string_match"]
        guard let f = value.fields(known: ["name", "invert_match"] + kinds,
                                   unsupported: ["range_match", "treat_missing_header_as_empty"]) else { return nil }
        let name = f.required("name")?.nonEmptyString()?.lowercased()
        let invert = f["invert_match"]?.bool() ?? false
        var match: HeaderMatch?
        switch f.oneOf(kinds, unsupportedAlternatives: ["range_match"], required: false) {
        case nil:
            match = f.has("range_match") ? nil : .present(true)
        case "present_match":
            match = f["present_match"]?.bool().map { .present($0) }
        case "string_match":
            match = f["string_match"].flatMap(parseStringMatcher).map { .string($0) }
        case "safe_regex_match":
            match = f["safe_regex_match"].flatMap(parseRegex).map { .string(StringMatcherConfig(kind: .safeRegex, value: $0, ignoreCase: false)) }
        case let key?:
            let kind: StringMatcherConfig.Kind = switch key {
            case "exact_match": .exact
            case "prefix_match": .prefix
            case "suffix_match": .suffix
            default: .contains
            }
            match = f[key]?.string().map { .string(StringMatcherConfig(kind: kind, value: $0, ignoreCase: false)) }
        }
        guard let name, let match else { return nil }
        return HeaderMatcherConfig(name: name, match: match, invert: invert)
    }

    func parseStringMatcher(_ value: ConfigValue) -> StringMatcherConfig? {
        guard let f = value.fields(known: ["exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"]) else { return nil }
        let ignoreCase = f["ignore_case"]?.bool() ?? false
        guard let key = f.oneOf(["exact", "prefix", "suffix", "contains", "safe_regex"]) else { return nil }
        if key == "safe_regex" {
            if ignoreCase { f.error("ignore_case", "cannot be used with safe_regex"); return nil }
            return f["safe_regex"].flatMap(parseRegex).map { StringMatcherConfig(kind: .safeRegex, value: $0, ignoreCase: false) }
        }
        let kind = StringMatcherConfig.Kind(rawValue: key)!
        guard let text = f.present(key).map({ $0.node.isNull ? "" : ($0.string() ?? "\u{0}") }), text != "\u{0}" else { return nil }
        if kind != .exact && text.isEmpty { f.error(key, "must not be empty"); return nil }
        return StringMatcherConfig(kind: kind, value: text, ignoreCase: ignoreCase)
    }

    func parseQueryParameterMatcher(_ value: ConfigValue) -> QueryParameterMatcherConfig? {
        guard let f = value.fields(known: ["name", "string_match", "present_match"]) else { return nil }
        let name = f.required("name")?.nonEmptyString()
        var matcher: StringMatcherConfig?
        var ok = true
        switch f.oneOf(["string_match", "present_match"], required: false) {
        case "string_match":
            matcher = f["string_match"].flatMap(parseStringMatcher)
            ok = matcher != nil
        case "present_match":
            if let p = f["present_match"], let b = p.bool() {
                if !b { p.error("only present_match: true is supported"); ok = false }
            } else { ok = false }
        default:
            break
        }
        guard let name, ok else { return nil }
        return QueryParameterMatcherConfig(name: name, stringMatch: matcher)
    }

    func parseRouteAction(_ value: ConfigValue, pathMatch: PathMatch?) -> RouteForwardConfig? {
        guard let f = value.fields(
            known: ["cluster", "weighted_clusters", "timeout", "idle_timeout", "prefix_rewrite", "host_rewrite_literal",
                    "retry_policy", "hash_policy", "upgrade_configs", "regex_rewrite", "request_mirror_policies"],
            unsupported: ["cluster_header", "cluster_specifier_plugin", "inline_cluster_specifier_plugin", "metadata_match",
                          "path_rewrite_policy", "host_rewrite_header", "host_rewrite_path_regex",
                          "auto_host_rewrite", "host_rewrite", "append_x_forwarded_host", "priority", "rate_limits",
                          "include_vh_rate_limits", "cors", "max_grpc_timeout", "grpc_timeout_offset",
                          "internal_redirect_policy", "internal_redirect_action", "max_internal_redirects",
                          "hedge_policy", "max_stream_duration", "request_mirror_policy",
                          "retry_policy_typed_config", "early_data_policy", "cluster_not_found_response_code",
                          "hash_policy_typed_config"]) else { return nil }
        var target: RouteTarget?
        switch f.oneOf(["cluster", "weighted_clusters"], unsupportedAlternatives: ["cluster_header", "cluster_specifier_plugin", "inline_cluster_specifier_plugin"]) {
        case "cluster":
            if let c = f["cluster"], let name = c.nonEmptyString() {
                clusterReferences.append(ClusterReference(name: name, value: c))
                target = .cluster(name)
            }
        case "weighted_clusters":
            target = f["weighted_clusters"].flatMap(parseWeightedClusters).map { .weighted($0) }
        default:
            break
        }
        let routeTimeout = timeout(f, "timeout", default: 15_000_000_000)
        // Absent: the HCM's stream_idle_timeout applies; 0s disables it for this route.
        let idle = f["idle_timeout"]?.duration()
        let idleOK = f["idle_timeout"] == nil || idle != nil
        var prefixRewrite: String?
        if let p = f["prefix_rewrite"], let text = p.string() {
            if case .safeRegex? = pathMatch {
                p.error("cannot be used with a safe_regex match (it replaces a prefix or path match)")
            } else {
                prefixRewrite = text
            }
        }
        let hostRewrite = f["host_rewrite_literal"]?.nonEmptyString()
        let retry = f["retry_policy"].flatMap(parseRetryPolicy)
        var hashes: [HashPolicyConfig] = []
        var ok = idleOK && (f["prefix_rewrite"] == nil || prefixRewrite != nil) && (f["host_rewrite_literal"] == nil || hostRewrite != nil)
            && (f["retry_policy"] == nil || retry != nil)
        for item in f["hash_policy"]?.list() ?? [] {
            if let h = parseHashPolicy(item) { hashes.append(h) } else { ok = false }
        }
        let upgrades = parseUpgradeConfigs(f, route: true)
        var mirrors: [MirrorPolicyConfig] = []
        for item in f["request_mirror_policies"]?.list() ?? [] {
            if let m = parseMirrorPolicy(item) { mirrors.append(m) } else { ok = false }
        }
        var regexRewrite: RegexRewriteConfig? = nil
        if let r = f["regex_rewrite"] {
            if f["prefix_rewrite"] != nil {
                r.error("cannot be used with prefix_rewrite (Envoy: specify only one of prefix_rewrite, regex_rewrite)")
                ok = false
            } else if let g = r.fields(known: ["pattern", "substitution"]), let p = g.required("pattern"), let pattern = parseRegex(p),
                      let substitution = g.required("substitution")?.string() {
                do {
                    _ = try RegexRewrite(try RE2Regex(pattern), substitution: substitution)
                    regexRewrite = RegexRewriteConfig(pattern: pattern, substitution: substitution)
                } catch let e as RegexRewrite.SubstitutionError {
                    g.error("substitution", e.description)
                    ok = false
                } catch {
                    ok = false  // parseRegex compiled the pattern already
                }
            } else {
                ok = false
            }
        }
        guard let target, ok, let upgrades else { return nil }
        var config = RouteForwardConfig(target: target, timeoutNanos: routeTimeout, idleTimeoutNanos: idle,
                                        prefixRewrite: prefixRewrite, hostRewriteLiteral: hostRewrite,
                                        retryPolicy: retry, hashPolicy: hashes)
        config.upgradeConfigs = upgrades
        config.regexRewrite = regexRewrite
        config.mirrorPolicies = mirrors
        return config
    }

    /// One of a route's `request_mirror_policies` (docs/mirroring.md).
    func parseMirrorPolicy(_ value: ConfigValue) -> MirrorPolicyConfig? {
        guard let f = value.fields(known: ["cluster", "cluster_header", "runtime_fraction", "disable_shadow_host_suffix_append"],
                                   unsupported: ["trace_sampled"]) else { return nil }
        var name: String? = nil
        var header: String? = nil
        switch f.oneOf(["cluster", "cluster_header"]) {
        case "cluster":
            guard let c = f["cluster"], let n = c.nonEmptyString() else { return nil }
            clusterReferences.append(ClusterReference(name: n, value: c))
            name = n
        case "cluster_header":
            guard let h = f["cluster_header"], let text = h.nonEmptyString() else { return nil }
            guard text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
                h.error("'\(text)' is not a valid header name")
                return nil
            }
            header = text.lowercased()
        default:
            return nil
        }
        var fraction: FractionalPercent? = nil
        if let r = f["runtime_fraction"] {
            guard let fp = parseRuntimeFractionalPercent(r) else { return nil }
            fraction = fp
        }
        var noSuffix = false
        if let d = f["disable_shadow_host_suffix_append"] {
            guard let b = d.bool() else { return nil }
            noSuffix = b
        }
        var policy = MirrorPolicyConfig(cluster: name, fraction: fraction, disableHostSuffix: noSuffix)
        policy.clusterHeader = header
        return policy
    }

    func parseWeightedClusters(_ value: ConfigValue) -> [WeightedClusterConfig]? {
        guard let f = value.fields(known: ["clusters", "total_weight"],
                                   unsupported: ["runtime_key_prefix", "header_name", "random_value_specifier"]) else { return nil }
        guard let items = f.required("clusters")?.list() else { return nil }
        var result: [WeightedClusterConfig] = []
        var ok = true
        for item in items {
            guard let g = item.fields(
                known: ["name", "weight"],
                unsupported: ["cluster_header", "metadata_match", "request_headers_to_add", "request_headers_to_remove",
                              "response_headers_to_add", "response_headers_to_remove", "typed_per_filter_config",
                              "host_rewrite_literal"]) else { ok = false; continue }
            let name = g.required("name")?.nonEmptyString()
            let weight = g.required("weight")?.int(0...Int(UInt32.max))
            if let name, let n = g["name"] { clusterReferences.append(ClusterReference(name: name, value: n)) }
            guard let name, let weight else { ok = false; continue }
            result.append(WeightedClusterConfig(name: name, weight: weight))
        }
        if items.isEmpty { f.error("clusters", "needs at least one cluster"); ok = false }
        guard ok else { return nil }
        let sum = result.reduce(0) { $0 + $1.weight }
        if let total = f["total_weight"]?.int(1...Int(UInt32.max)) {
            if total != sum { f.error("total_weight", "is \(total) but the weights add up to \(sum)"); return nil }
        } else if f["total_weight"] != nil {
            return nil
        }
        if sum == 0 { f.error("clusters", "the weights add up to 0; at least one must be positive"); return nil }
        return result
    }

    func parseRetryPolicy(_ value: ConfigValue) -> RetryPolicyConfig? {
        guard let f = value.fields(
            known: ["retry_on", "num_retries", "per_try_timeout", "retriable_status_codes", "retry_back_off",
                    "retry_host_predicate", "host_selection_retry_max_attempts"],
            unsupported: ["retry_priority", "retriable_headers",
                          "retriable_request_headers", "rate_limited_retry_back_off",
                          "retry_options_predicates", "per_try_idle_timeout"]) else { return nil }
        var conditions: [RetryOn] = []
        var ok = true
        if let r = f["retry_on"], let text = r.string() {
            let unsupported = ["refused-stream", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
                               "unavailable", "envoy-ratelimited", "http3-post-connect-failure", "retriable-headers"]
            for part in text.split(separator: ",").map(Self.trimmingSpaces) where !part.isEmpty {
                if let c = RetryOn(rawValue: part) {
                    if !conditions.contains(c) { conditions.append(c) }
                } else if unsupported.contains(part) {
                    r.error("retry condition '\(part)' is not supported by ballast (supported: \(RetryOn.allCases.map(\.rawValue).joined(separator: ", ")))")
                    ok = false
                } else {
                    var message = "unknown retry condition '\(part)'"
                    if let guess = Spelling.closest(to: part, in: RetryOn.allCases.map(\.rawValue) + unsupported) { message += "; did you mean \(guess)?" }
                    r.error(message)
                    ok = false
                }
            }
        } else if f["retry_on"] != nil {
            ok = false
        }
        let numRetries = f["num_retries"]?.int(0...Int(UInt32.max))
        let perTry = f["per_try_timeout"].map { nonZero($0.duration()) } ?? nil
        // Envoy's jittered exponential backoff: 25 ms base, 10 times the base at most.
        var base: Int64 = 25_000_000
        var maxInterval: Int64?
        if let b = f["retry_back_off"]?.fields(known: ["base_interval", "max_interval"]) {
            if let v = b.required("base_interval")?.duration() {
                if v < 1_000_000 { b.error("base_interval", "must be at least 0.001s"); ok = false } else { base = v }
            } else {
                ok = false
            }
            if let m = b["max_interval"] {
                if let v = m.duration() {
                    if v < base { m.error("must be at least base_interval"); ok = false } else { maxInterval = v }
                } else {
                    ok = false
                }
            }
        } else if f.has("retry_back_off") {
            ok = false
        }
        let codes = f["retriable_status_codes"]?.list()?.map { $0.int(100...599) }
        if let codes, codes.contains(where: { $0 == nil }) { ok = false }
        if conditions.contains(.retriableStatusCodes) && (codes?.isEmpty ?? true) {
            diagnostics.error(f.path.appending("retriable_status_codes"), "retry_on has retriable-status-codes but no codes are listed", at: f.node)
            ok = false
        }
        if f["num_retries"] != nil && numRetries == nil { ok = false }
        var avoidPrevious = false
        if let predicates = f["retry_host_predicate"] {
            if let items = predicates.list() {
                for item in items {
                    if parseRetryHostPredicate(item) { avoidPrevious = true } else { ok = false }
                }
            } else {
                ok = false
            }
        }
        let selectionAttempts = f["host_selection_retry_max_attempts"]?.int(0...Int.max)
        if f["host_selection_retry_max_attempts"] != nil && selectionAttempts == nil { ok = false }
        guard ok else { return nil }
        var policy = RetryPolicyConfig(retryOn: conditions, numRetries: numRetries ?? 1, perTryTimeoutNanos: perTry,
                                       retriableStatusCodes: codes?.compactMap { $0 } ?? [])
        policy.backOffBaseNanos = base
        policy.backOffMaxNanos = maxInterval ?? base * 10
        policy.avoidPreviousHosts = avoidPrevious
        policy.hostSelectionRetryMaxAttempts = selectionAttempts ?? 1
        return policy
    }

    /// One `retry_host_predicate` entry: only `envoy.retry_host_predicates.previous_hosts` is applied.
    func parseRetryHostPredicate(_ value: ConfigValue) -> Bool {
        guard let p = value.fields(known: ["name", "typed_config"]) else { return false }
        let name = p.required("name")?.nonEmptyString()
        let previous = "envoy.retry_host_predicates.previous_hosts"
        let type = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
        if let name, name != previous {
            p.error("name", "retry host predicate '\(name)' is not supported by ballast (supported: \(previous))")
            return false
        }
        if let t = p["typed_config"]?.fields(known: ["@type"]) {
            if let given = t.required("@type")?.string(), given != type {
                t.error("@type", "expected \(type) for \(previous), got \(given)")
                return false
            }
        } else if p["typed_config"] != nil {
            return false
        }
        return name != nil
    }

    func parseHashPolicy(_ value: ConfigValue) -> HashPolicyConfig? {
        guard let f = value.fields(known: ["header", "cookie", "connection_properties", "terminal"],
                                   unsupported: ["query_parameter", "filter_state"]) else { return nil }
        let terminal = f["terminal"]?.bool() ?? false
        var source: HashPolicyConfig.Source?
        switch f.oneOf(["header", "cookie", "connection_properties"], unsupportedAlternatives: ["query_parameter", "filter_state"]) {
        case "header":
            if let h = f["header"]?.fields(known: ["header_name"], unsupported: ["regex_rewrite"]) {
                source = h.required("header_name")?.nonEmptyString().map { .header($0.lowercased()) }
            }
        case "cookie":
            if let c = f["cookie"]?.fields(known: ["name", "ttl", "path"], unsupported: ["attributes"]) {
                let name = c.required("name")?.nonEmptyString()
                let ttl = c["ttl"]?.duration()
                let path = c["path"]?.string()
                if let name, c["ttl"] == nil || ttl != nil { source = .cookie(name: name, ttlNanos: ttl, path: path) }
            }
        case "connection_properties":
            if let c = f["connection_properties"]?.fields(known: ["source_ip"]) {
                if let s = c.required("source_ip"), let b = s.bool() {
                    if b { source = .sourceIP } else { s.error("must be true") }
                }
            }
        default:
            break
        }
        return source.map { HashPolicyConfig(source: $0, terminal: terminal) }
    }

    func parseDirectResponse(_ value: ConfigValue, maxBodyBytes: Int) -> DirectResponseConfig? {
        guard let f = value.fields(known: ["status", "body"]) else { return nil }
        let status = f.required("status")?.int(100...599)
        var body: String?
        var ok = true
        if let b = f["body"]?.fields(known: ["inline_string"], unsupported: ["filename", "inline_bytes", "environment_variable"]) {
            if let s = b["inline_string"] {
                body = s.string()
                if let text = body, text.utf8.count > maxBodyBytes {
                    s.error("body is \(text.utf8.count) bytes; the limit is \(maxBodyBytes) (route_config.max_direct_response_body_size_bytes)")
                    ok = false
                }
                if body == nil { ok = false }
            } else if !b.rejected.isEmpty {
                ok = false
            }
        } else if f["body"] != nil {
            ok = false
        }
        guard let status, ok else { return nil }
        return DirectResponseConfig(status: status, body: body)
    }

    // MARK: - Access logs

    /// `access_log[]` (absent: none).
    func parseAccessLogs(_ value: ConfigValue?) -> [AccessLogConfig]? {
        guard let value else { return [] }
        guard let items = value.list() else { return nil }
        var logs: [AccessLogConfig] = []
        var ok = true
        for item in items {
            if let log = parseAccessLog(item) { logs.append(log) } else { ok = false }
        }
        return ok ? logs : nil
    }

    func parseAccessLog(_ value: ConfigValue) -> AccessLogConfig? {
        guard let f = value.fields(known: ["name", "typed_config", "config"], unsupported: ["filter"]),
              case .resolved(let r) = resolveExtension(f, category: "access logger", kinds: [.fileAccessLog, .stdoutAccessLog, .stderrAccessLog],
                                                     unsupportedNames: ExtensionKind.unsupportedAccessLoggers)
        else { return nil }
        let typedKey = r.typed ? ["@type"] : []
        let sink: AccessLogSink
        var format = AccessLogFormat.envoyDefault
        var omitEmpty = false
        switch r.kind {
        case .fileAccessLog:
            guard let body = r.body else {
                diagnostics.error(value.path.appending("typed_config"), "required field missing (the file logger needs a path)", at: value.node)
                return nil
            }
            guard let g = body.fields(known: typedKey + ["path", "log_format", "format", "json_format"],
                                      unsupported: ["typed_json_format"]) else { return nil }
            guard let path = g.required("path")?.nonEmptyString() else { return nil }
            sink = .file(path: path)
            let given = ["log_format", "format", "json_format"].filter { g.has($0) }
            if given.count > 1 {
                g.error(given[1], "set only one of \(given.joined(separator: ", "))")
                return nil
            }
            if let l = g["log_format"] {
                guard let parsed = parseLogFormat(l) else { return nil }
                (format, omitEmpty) = parsed
            } else if let t = g["format"] {
                g.warning("format", "deprecated field; use log_format.text_format_source.inline_string")
                guard let text = t.string(), let template = parseTemplate(text, t) else { return nil }
                format = .text(template)
            } else if let j = g["json_format"] {
                g.warning("json_format", "deprecated field; use log_format.json_format")
                guard let fields = parseJSONFormat(j) else { return nil }
                format = .json(fields)
            }
        case .stdoutAccessLog, .stderrAccessLog:
            sink = r.kind == .stdoutAccessLog ? .stdout : .stderr
            if let body = r.body {
                guard let g = body.fields(known: typedKey + ["log_format"]) else { return nil }
                if let l = g["log_format"] {
                    guard let parsed = parseLogFormat(l) else { return nil }
                    (format, omitEmpty) = parsed
                }
            }
        default:
            return nil
        }
        return AccessLogConfig(sink: sink, format: format, omitEmptyValues: omitEmpty)
    }

    func parseLogFormat(_ value: ConfigValue) -> (AccessLogFormat, Bool)? {
        guard let f = value.fields(known: ["text_format", "text_format_source", "json_format", "omit_empty_values"],
                                   unsupported: ["typed_json_format", "content_type", "formatters", "json_format_options"]) else { return nil }
        let omit = f["omit_empty_values"]?.bool() ?? false
        switch f.oneOf(["text_format", "text_format_source", "json_format"], unsupportedAlternatives: ["typed_json_format"]) {
        case "text_format":
            guard let t = f["text_format"], let text = t.string(), let template = parseTemplate(text, t) else { return nil }
            return (.text(template), omit)
        case "text_format_source":
            guard let s = f["text_format_source"]?.fields(known: ["inline_string"], unsupported: ["filename", "inline_bytes", "environment_variable"]),
                  s.oneOf(["inline_string"], unsupportedAlternatives: ["filename", "inline_bytes", "environment_variable"]) != nil,
                  let t = s["inline_string"], let text = t.string(), let template = parseTemplate(text, t) else { return nil }
            return (.text(template), omit)
        case "json_format":
            guard let fields = f["json_format"].flatMap(parseJSONFormat) else { return nil }
            return (.json(fields), omit)
        default:
            return nil
        }
    }

    func parseTemplate(_ text: String, _ value: ConfigValue) -> AccessLogTemplate? {
        do {
            return try AccessLogTemplate(parsing: text)
        } catch {
            value.error(error.description)
            return nil
        }
    }

    /// `json_format`: keys in file order; each value a format string or a nested mapping.
    func parseJSONFormat(_ value: ConfigValue) -> [AccessLogJSONField]? {
        guard case .mapping(let mapping) = value.node else {
            value.error("expected a mapping of JSON keys to format strings, got \(value.node.foundDescription)")
            return nil
        }
        var fields: [AccessLogJSONField] = []
        var ok = true
        for (keyNode, child) in mapping {
            guard let key = keyNode.scalar?.string else { ok = false; continue }
            let item = ConfigValue(node: child, path: value.path.appending(key), diagnostics: diagnostics)
            switch child {
            case .mapping:
                if let nested = parseJSONFormat(item) { fields.append(AccessLogJSONField(key: key, value: .object(nested))) } else { ok = false }
            case .scalar(let s) where !child.isNull:
                if let t = parseTemplate(s.string, item) { fields.append(AccessLogJSONField(key: key, value: .template(t))) } else { ok = false }
            default:
                item.error("expected a format string or a nested mapping, got \(child.foundDescription)")
                ok = false
            }
        }
        return ok ? fields : nil
    }

    // MARK: - tcp_proxy

    func parseTCPProxy(_ value: ConfigValue, typed: Bool) -> TCPProxyConfig? {
        guard let f = value.fields(
            known: (typed ? ["@type"] : []) + ["stat_prefix", "cluster", "idle_timeout", "access_log", "max_connect_attempts"],
            unsupported: ["weighted_clusters", "on_demand", "metadata_match", "downstream_idle_timeout", "upstream_idle_timeout",
                          "hash_policy", "tunneling_config", "max_downstream_connection_duration", "access_log_flush_interval",
                          "flush_access_log_on_connected", "access_log_options", "backoff_options", "proxy_protocol_tlvs",
                          "deprecated_v1", "max_early_data_bytes", "upstream_connect_mode"]) else { return nil }
        let statPrefix = f.required("stat_prefix")?.nonEmptyString()
        var cluster: String?
        if f.oneOf(["cluster"], unsupportedAlternatives: ["weighted_clusters"]) != nil, let c = f["cluster"], let name = c.nonEmptyString() {
            clusterReferences.append(ClusterReference(name: name, value: c))
            cluster = name
        }
        let attempts = f["max_connect_attempts"]?.int(1...Int(UInt32.max))
        let logs = parseAccessLogs(f["access_log"])
        let idle = timeout(f, "idle_timeout", default: 3_600_000_000_000)
        guard let statPrefix, let cluster, let logs, f["max_connect_attempts"] == nil || attempts != nil else { return nil }
        return TCPProxyConfig(statPrefix: statPrefix, cluster: cluster, idleTimeoutNanos: idle,
                              maxConnectAttempts: attempts ?? 1, accessLog: logs)
    }
}

extension BootstrapParser {
    static func trimmingSpaces(_ text: Substring) -> String {
        var s = text
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }

    /// `typed_per_filter_config`: filter name -> an `Any` whose `@type` picks the filter (as
    /// Envoy, which looks the factory up by type). Keys naming no filter of the chain are
    /// checked and then unused, as in Envoy.
    func parseTypedPerFilterConfig(_ value: ConfigValue, into out: inout [String: PerRouteFilterConfig]) -> Bool {
        guard case .mapping(let mapping) = value.node else {
            value.error("expected a mapping from filter name to config, got \(value.node.foundDescription)")
            return false
        }
        var ok = true
        for (keyNode, node) in mapping {
            guard let key = keyNode.scalar?.string, !key.isEmpty else {
                value.error("keys must be filter names"); ok = false; continue
            }
            let item = ConfigValue(node: node, path: value.path.appending(key), diagnostics: diagnostics)
            guard case .mapping(let m) = node else {
                item.error("expected a mapping with \"@type\", got \(node.foundDescription)"); ok = false; continue
            }
            let typePath = item.path.appending("@type")
            guard let typeNode = m.first(where: { $0.key.scalar?.string == "@type" })?.value,
                  let type = ConfigValue(node: typeNode, path: typePath, diagnostics: diagnostics).nonEmptyString() else {
                if !m.contains(where: { $0.key.scalar?.string == "@type" }) { diagnostics.error(typePath, "required field missing", at: node) }
                ok = false; continue
            }
            if type == ExtensionKind.localRateLimit.typeURL {
                guard let c = parseLocalRateLimit(item, typed: true, at: value.path, perRoute: true) else { ok = false; continue }
                out[key] = .localRateLimit(c)
            } else if type == ExtensionKind.fault.typeURL {
                guard let c = parseFault(item, typed: true, at: value.path) else { ok = false; continue }
                out[key] = .fault(c)
            } else if type == "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy" {
                guard let c = parseCorsPolicy(item) else { ok = false; continue }
                out[key] = .cors(c)
            } else if type == Self.rbacPerRouteType {
                guard let c = parseRBACPerRoute(item) else { ok = false; continue }
                out[key] = .rbac(c)
            } else if type == ExtensionKind.csrf.typeURL {
                guard let c = parseCsrfPolicy(item, typed: true, at: value.path) else { ok = false; continue }
                out[key] = .csrf(c)
            } else if type == Self.bufferPerRouteType {
                guard let c = parseBufferPerRoute(item) else { ok = false; continue }
                out[key] = .buffer(c)
            } else if type == Self.compressorPerRouteType {
                guard parseCompressorPerRoute(item) else { ok = false; continue }
                out[key] = .compressorDisabled
            } else if type == Self.extAuthzPerRouteType {
                guard parseExtAuthzPerRoute(item) != nil else { ok = false; continue }
                out[key] = .extAuthzDisabled
            } else if type == "type.googleapis.com/envoy.config.route.v3.FilterConfig" {
                diagnostics.error(typePath, "the FilterConfig wrapper (is_optional, disabled) is not supported by ballast; give the filter's own config", at: typeNode)
                ok = false
            } else {
                diagnostics.error(typePath, "'\(type)': per-route config of this filter is not supported by ballast (ballast implements \(ExtensionKind.localRateLimit.typeURL), \(ExtensionKind.fault.typeURL), type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy, \(ExtensionKind.csrf.typeURL), \(Self.rbacPerRouteType), \(Self.bufferPerRouteType), \(Self.compressorPerRouteType), \(Self.extAuthzPerRouteType))", at: typeNode)
                ok = false
            }
        }
        return ok
    }
}
