import Yams

/// `tracing.provider` with `envoy.tracers.zipkin` (`envoy.config.trace.v3.ZipkinConfig`): where
/// the spans go. Reported as Zipkin v2 JSON over HTTP/1.1 (`collector_endpoint_version: HTTP_JSON`).
public struct ZipkinTracerConfig: Sendable, Hashable {
    /// `collector_cluster`: the cluster the reports are POSTed to (must exist).
    public var collectorCluster: String
    /// `collector_endpoint`: the request path (Zipkin's `/api/v2/spans`).
    public var collectorEndpoint: String
    /// `collector_hostname`: the reports' Host (Envoy's default: the cluster's name).
    public var collectorHostname: String
    /// `trace_id_128bit`: new traces get 128-bit ids.
    public var traceID128Bit = false
}

/// An HTTP connection manager's `tracing`: the sampling percentages and the tracer.
public struct HTTPTracingConfig: Sendable, Hashable {
    public var zipkin: ZipkinTracerConfig
    /// `random_sampling` / `client_sampling` / `overall_sampling` in percent (default 100).
    public var randomSampling: Double = 100
    public var clientSampling: Double = 100
    public var overallSampling: Double = 100
    /// `max_path_tag_length` (default 256): the path part of the `http.url` tag is cut there.
    public var maxPathTagLength = 256
}

/// A route's `decorator`: the span's name, and whether it goes back to the client in
/// `x-envoy-decorator-operation`.
public struct RouteDecoratorConfig: Sendable, Hashable {
    public var operation: String
    public var propagate = true
}

extension BootstrapParser {
    static let zipkinType = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"

    /// `tracing` of an http_connection_manager. Only what Ballast applies is accepted; the rest
    /// is refused with its path.
    func parseHTTPTracing(_ value: ConfigValue) -> HTTPTracingConfig? {
        guard let f = value.fields(
            known: ["provider", "random_sampling", "client_sampling", "overall_sampling", "max_path_tag_length", "verbose",
                    "spawn_upstream_span"],
            unsupported: ["custom_tags", "operation_name", "request_headers_for_tags"]) else { return nil }
        var ok = true
        func percent(_ key: String) -> Double? {
            guard let v = f[key] else { return 100 }
            guard let p = v.fields(known: ["value"]) else { return nil }
            return p["value"].map { $0.double(0...100) } ?? 0
        }
        let random = percent("random_sampling"), client = percent("client_sampling"), overall = percent("overall_sampling")
        let maxPath = f["max_path_tag_length"].map { v -> Int? in
            // A UInt32Value: `{ value: n }`, or the number itself.
            if case .mapping = v.node { return v.fields(known: ["value"])?.required("value")?.int(0...Int(UInt32.max)) }
            return v.int(0...Int(UInt32.max))
        }
        if case .some(nil) = maxPath { ok = false }
        if let v = f["verbose"]?.bool(), v {
            f.error("verbose", "verbose spans (an annotation per request stage) are not implemented by ballast; remove it or set false")
            ok = false
        }
        if let v = f["spawn_upstream_span"]?.bool(), v {
            f.error("spawn_upstream_span", "a separate upstream (CLIENT) span is not implemented by ballast; remove it or set false")
            ok = false
        }
        guard let provider = f.required("provider") else { return nil }
        let zipkin = parseZipkinProvider(provider)
        guard ok, let zipkin, let random, let client, let overall else { return nil }
        var config = HTTPTracingConfig(zipkin: zipkin)
        config.randomSampling = random
        config.clientSampling = client
        config.overallSampling = overall
        if case .some(.some(let n)) = maxPath { config.maxPathTagLength = n }
        return config
    }

    private func parseZipkinProvider(_ value: ConfigValue) -> ZipkinTracerConfig? {
        guard let p = value.fields(known: ["name", "typed_config"]) else { return nil }
        guard let name = p.required("name")?.string() else { return nil }
        guard name == "envoy.tracers.zipkin" || name == "envoy.zipkin" else {
            p.error("name", "tracer '\(name)' is not supported by ballast (it implements envoy.tracers.zipkin)")
            return nil
        }
        guard let typed = p.required("typed_config") else { return nil }
        guard let z = typed.fields(
            known: ["@type", "collector_cluster", "collector_endpoint", "collector_endpoint_version", "trace_id_128bit",
                    "shared_span_context", "collector_hostname", "split_spans_for_request"],
            unsupported: ["trace_context_option", "collector_service"]) else { return nil }
        var ok = true
        if let t = z.required("@type")?.string(), t != Self.zipkinType {
            z.error("@type", "expected \(Self.zipkinType) for envoy.tracers.zipkin, got '\(t)'")
            ok = false
        }
        let cluster = z.required("collector_cluster")?.nonEmptyString()
        let endpoint = z.required("collector_endpoint")?.nonEmptyString()
        if z["collector_endpoint_version"] == nil {
            z.error("collector_endpoint_version", "required: set HTTP_JSON (Envoy 1.40 refuses the deprecated default)")
            ok = false
        } else if let v = z["collector_endpoint_version"]?.string(), v != "HTTP_JSON" {
            z.error("collector_endpoint_version", "'\(v)' is not supported by ballast; it reports Zipkin v2 JSON (HTTP_JSON)")
            ok = false
        }
        if let shared = z["shared_span_context"]?.bool(), !shared {
            z.error("shared_span_context", "false is not supported by ballast (the server span shares the caller's span id)")
            ok = false
        }
        if let split = z["split_spans_for_request"]?.bool(), split {
            z.error("split_spans_for_request", "true is not supported by ballast (it reports one shared SERVER span per request)")
            ok = false
        }
        let wide = z["trace_id_128bit"]?.bool()
        let hostname = z["collector_hostname"]?.string()
        guard ok, let cluster, let endpoint else { return nil }
        if let c = z["collector_cluster"] { clusterReferences.append(ClusterReference(name: cluster, value: c)) }
        var config = ZipkinTracerConfig(collectorCluster: cluster, collectorEndpoint: endpoint,
                                        collectorHostname: (hostname?.isEmpty ?? true) ? cluster : hostname!)
        config.traceID128Bit = wide ?? false
        return config
    }

    /// A route's `decorator`.
    func parseDecorator(_ value: ConfigValue) -> RouteDecoratorConfig? {
        guard let f = value.fields(known: ["operation", "propagate"]) else { return nil }
        guard let operation = f.required("operation")?.nonEmptyString() else { return nil }
        var d = RouteDecoratorConfig(operation: operation)
        if let p = f["propagate"] {
            guard let b = p.bool() else { return nil }
            d.propagate = b
        }
        return d
    }
}
