import Yams

/// The Envoy extensions Ballast implements: canonical name, v2-era names, `@type` URLs.
enum ExtensionKind: CaseIterable {
    case httpConnectionManager, tcpProxy, router, httpInspector, originalDst, tlsInspector
    case fileAccessLog, stdoutAccessLog, stderrAccessLog
    /// Ballast's own HTTP filter (`WorkerCostFilterConfig`).
    case workerCost
    case localRateLimit
    case fault
    case cors
    case csrf
    case rbac
    case healthCheck
    case buffer
    case compressor
    case decompressor
    case cache
    case extAuthz

    var name: String {
        switch self {
        case .httpConnectionManager: FilterNames.httpConnectionManager
        case .tcpProxy: FilterNames.tcpProxy
        case .router: FilterNames.router
        case .httpInspector: FilterNames.httpInspector
        case .originalDst: FilterNames.originalDst
        case .tlsInspector: FilterNames.tlsInspector
        case .fileAccessLog: FilterNames.fileAccessLog
        case .stdoutAccessLog: FilterNames.stdoutAccessLog
        case .stderrAccessLog: FilterNames.stderrAccessLog
        case .workerCost: FilterNames.workerCost
        case .localRateLimit: FilterNames.localRateLimit
        case .fault: FilterNames.fault
        case .cors: FilterNames.cors
        case .csrf: FilterNames.csrf
        case .rbac: FilterNames.rbac
        case .healthCheck: FilterNames.healthCheck
        case .buffer: FilterNames.buffer
        case .compressor: FilterNames.compressor
        case .decompressor: FilterNames.decompressor
        case .cache: FilterNames.cache
        case .extAuthz: FilterNames.extAuthz
        }
    }

    /// Names from the v2 API (and the talk's config) that still load, with a deprecation warning.
    var legacyNames: [String] {
        switch self {
        case .httpConnectionManager: ["envoy.http_connection_manager"]
        case .tcpProxy: ["envoy.tcp_proxy"]
        case .router: ["envoy.router"]
        case .httpInspector: ["envoy.listener.http_inspector"]
        case .originalDst: ["envoy.listener.original_dst"]
        case .tlsInspector: ["envoy.listener.tls_inspector"]
        case .fileAccessLog: ["envoy.file_access_log"]
        case .stdoutAccessLog, .stderrAccessLog, .workerCost, .localRateLimit: []
        case .fault: ["envoy.fault"]
        case .cors: ["envoy.cors"]
        case .csrf: ["envoy.csrf"]
        case .rbac: []
        case .healthCheck: ["envoy.health_check"]
        case .buffer: ["envoy.buffer"]
        case .compressor, .decompressor, .cache: []
        case .extAuthz: ["envoy.ext_authz"]
        }
    }

    var typeURL: String {
        let prefix = "type.googleapis.com/"
        switch self {
        case .httpConnectionManager: return prefix + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        case .tcpProxy: return prefix + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
        case .router: return prefix + "envoy.extensions.filters.http.router.v3.Router"
        case .httpInspector: return prefix + "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
        case .originalDst: return prefix + "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
        case .tlsInspector: return prefix + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
        case .fileAccessLog: return prefix + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
        case .stdoutAccessLog: return prefix + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
        case .stderrAccessLog: return prefix + "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
        case .workerCost: return prefix + "ballast.extensions.filters.http.worker_cost.v1.WorkerCost"
        case .localRateLimit: return prefix + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
        case .fault: return prefix + "envoy.extensions.filters.http.fault.v3.HTTPFault"
        case .cors: return prefix + "envoy.extensions.filters.http.cors.v3.Cors"
        case .csrf: return prefix + "envoy.extensions.filters.http.csrf.v3.CsrfPolicy"
        case .rbac: return prefix + "envoy.extensions.filters.http.rbac.v3.RBAC"
        case .healthCheck: return prefix + "envoy.extensions.filters.http.health_check.v3.HealthCheck"
        case .buffer: return prefix + "envoy.extensions.filters.http.buffer.v3.Buffer"
        case .compressor: return prefix + "envoy.extensions.filters.http.compressor.v3.Compressor"
        case .decompressor: return prefix + "envoy.extensions.filters.http.decompressor.v3.Decompressor"
        case .cache: return prefix + "envoy.extensions.filters.http.cache.v3.CacheConfig"
        case .extAuthz: return prefix + "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
        }
    }

    /// v2 `@type` URLs: accepted with a deprecation warning.
    var legacyTypeURLs: [String] {
        let prefix = "type.googleapis.com/"
        switch self {
        case .httpConnectionManager: return [prefix + "envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager"]
        case .tcpProxy: return [prefix + "envoy.config.filter.network.tcp_proxy.v2.TcpProxy"]
        case .router: return [prefix + "envoy.config.filter.http.router.v2.Router"]
        case .httpInspector: return [prefix + "envoy.config.filter.listener.http_inspector.v2.HttpInspector"]
        case .originalDst: return [prefix + "envoy.config.filter.listener.original_dst.v2.OriginalDst"]
        case .tlsInspector: return []
        case .fileAccessLog: return [prefix + "envoy.config.accesslog.v2.FileAccessLog"]
        case .stdoutAccessLog, .stderrAccessLog, .workerCost: return []
        case .localRateLimit: return [prefix + "envoy.config.filter.http.local_rate_limit.v2.LocalRateLimit"]
        case .fault: return [prefix + "envoy.config.filter.http.fault.v2.HTTPFault"]
        case .cors: return [prefix + "envoy.config.filter.http.cors.v2.Cors"]
        case .csrf: return [prefix + "envoy.config.filter.http.csrf.v2.CsrfPolicy"]
        case .rbac: return [prefix + "envoy.config.filter.http.rbac.v2.RBAC"]
        case .healthCheck: return [prefix + "envoy.config.filter.http.health_check.v2.HealthCheck"]
        case .buffer: return [prefix + "envoy.config.filter.http.buffer.v2.Buffer"]
        case .compressor, .decompressor: return []
        case .cache: return []
        case .extAuthz: return [prefix + "envoy.config.filter.http.ext_authz.v2.ExtAuthz"]
        }
    }
}

extension ExtensionKind {
    /// Envoy extensions people put in configs that Ballast does not implement: named as such
    /// ("not supported by ballast") rather than "unknown".
    static let unsupportedHTTPFilters = [
        "envoy.filters.http.lua",
        "envoy.filters.http.grpc_web", "envoy.filters.http.jwt_authn",
        "envoy.filters.http.ratelimit",
        
        "envoy.filters.http.gzip", "envoy.filters.http.header_to_metadata", "envoy.filters.http.wasm",
        "envoy.filters.http.grpc_stats", "envoy.filters.http.ext_proc",
        "envoy.filters.http.oauth2", "envoy.filters.http.header_mutation", "istio.metadata_exchange", "istio.stats",
        "envoy.lua", "envoy.grpc_web",
        "envoy.rate_limit", "envoy.gzip",
    ]
    static let unsupportedNetworkFilters = [
        "envoy.filters.network.redis_proxy", "envoy.filters.network.mongo_proxy", "envoy.filters.network.ratelimit",
        "envoy.filters.network.local_ratelimit", "envoy.filters.network.rbac", "envoy.filters.network.ext_authz",
        "envoy.filters.network.echo", "envoy.filters.network.direct_response", "envoy.filters.network.connection_limit",
        "envoy.filters.network.sni_cluster", "envoy.filters.network.thrift_proxy", "envoy.filters.network.dubbo_proxy",
        "envoy.filters.network.mysql_proxy", "envoy.filters.network.postgres_proxy", "envoy.filters.network.zookeeper_proxy",
        "envoy.filters.network.wasm", "istio.metadata_exchange", "istio.stats",
        "envoy.redis_proxy", "envoy.mongo_proxy", "envoy.ratelimit", "envoy.echo", "envoy.ext_authz",
    ]
    static let unsupportedListenerFilters = [
        "envoy.filters.listener.proxy_protocol",
        "envoy.filters.listener.original_src", "envoy.listener.proxy_protocol",
    ]
    static let unsupportedAccessLoggers = [
        "envoy.access_loggers.http_grpc", "envoy.access_loggers.tcp_grpc", "envoy.access_loggers.open_telemetry",
        "envoy.access_loggers.fluentd", "envoy.access_loggers.wasm", "envoy.http_grpc_access_log",
    ]
}

struct ResolvedExtension {
    let kind: ExtensionKind
    /// `typed_config` or `config`; nil when neither is given.
    let body: ConfigValue?
    /// The body is a `typed_config` (so it carries an `@type` key).
    let typed: Bool
}

enum ExtensionResolution {
    case resolved(ResolvedExtension)
    /// An unknown extension marked `is_optional: true`: skipped with a warning.
    case skipped
    case failed
}

extension BootstrapParser {
    /// Finds which extension `{name, typed_config | config}` names and checks `@type` against it.
    /// v3 semantics: a known name must agree with `@type`; an unknown name is accepted when `@type`
    /// identifies a known extension (the name is then informational, as in Envoy).
    func resolveExtension(_ f: ConfigFields, category: String, kinds: [ExtensionKind], optional: Bool = false,
                          unsupportedNames: [String] = []) -> ExtensionResolution {
        let nameValue = f.required("name")
        let name = nameValue?.nonEmptyString()
        if f.has("config") && f.has("typed_config") {
            f.error("config", "set either typed_config or the deprecated v2 config, not both")
            return .failed
        }
        var typeValue: ConfigValue?
        let typed = f["typed_config"]
        if let typed {
            guard case .mapping(let mapping) = typed.node else {
                typed.error("expected a mapping, got \(typed.node.foundDescription)")
                return .failed
            }
            guard let entry = mapping.first(where: { $0.key.scalar?.string == "@type" }) else {
                diagnostics.error(typed.path.appending("@type"), "required field missing", at: typed.node)
                return .failed
            }
            typeValue = ConfigValue(node: entry.value, path: typed.path.appending("@type"), diagnostics: diagnostics)
        }
        let typeURL = typeValue?.nonEmptyString()
        if typeValue != nil && typeURL == nil { return .failed }
        guard let name, let nameValue else { return .failed }

        var kind = kinds.first { $0.name == name }
        if kind == nil, let legacy = kinds.first(where: { $0.legacyNames.contains(name) }) {
            kind = legacy
            nameValue.warning("deprecated \(category) name '\(name)'; use \(legacy.name)")
        }
        if kind == nil, let typeURL, let byType = kinds.first(where: { $0.typeURL == typeURL || $0.legacyTypeURLs.contains(typeURL) }) {
            // Envoy v3 picks the extension by @type; the name is informational. Say so, since a
            // misspelt name is the usual reason.
            kind = byType
            nameValue.warning("'\(name)' is not a \(category) name ballast knows; loaded as \(byType.name), which its @type names")
        }
        guard let kind else {
            let names = kinds.map(\.name)
            if optional {
                nameValue.warning("optional \(category) '\(name)' is not implemented by ballast; skipped")
                return .skipped
            }
            if unsupportedNames.contains(name) {
                nameValue.error("\(category) '\(name)' is not supported by ballast (ballast implements \(names.joined(separator: ", ")))")
                return .failed
            }
            var message = "unknown \(category) '\(name)'"
            if let guess = Spelling.closest(to: name, in: names + kinds.flatMap(\.legacyNames)) {
                message += "; did you mean \(guess)?"
            } else {
                message += " (ballast implements \(names.joined(separator: ", ")))"
            }
            nameValue.error(message)
            return .failed
        }
        if let typed, let typeURL, let typeValue {
            if typeURL != kind.typeURL && !kind.legacyTypeURLs.contains(typeURL) {
                typeValue.error("'\(typeURL)' does not match \(category) \(kind.name); expected \(kind.typeURL)")
                return .failed
            }
            if typeURL != kind.typeURL {
                typeValue.warning("deprecated v2 type; use \(kind.typeURL)")
            }
            return .resolved(ResolvedExtension(kind: kind, body: typed, typed: true))
        }
        if let config = f.present("config") {
            f.warning("config", "deprecated v2 field; use typed_config with \"@type\": \(kind.typeURL)")
            return .resolved(ResolvedExtension(kind: kind, body: config, typed: false))
        }
        return .resolved(ResolvedExtension(kind: kind, body: nil, typed: false))
    }
}
