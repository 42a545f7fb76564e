@testable import Proxy
import XCTest

/// The connection manager's `tracing` and the route `decorator`: what is accepted, and each
/// refusal naming its YAML path.
final class TracingConfigTests: XCTestCase {
    static let zipkinType = "\"@type\": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"

    /// The test config with `tracing` (its `fields` and the provider's `zipkin` fields) added.
    func traced(_ fields: String = "", zipkin: String = "collector_endpoint_version: HTTP_JSON", name: String = "envoy.tracers.zipkin",
                route: String = "") -> String {
        edited([("          stat_prefix: ingress_http\n",
                 "          stat_prefix: ingress_http\n          tracing: { \(fields)provider: { name: \(name), typed_config: { \(Self.zipkinType), collector_cluster: some_service, collector_endpoint: /api/v2/spans, \(zipkin) } } }\n"),
                ("route: { cluster: some_service, timeout: 1.5s }", "route: { cluster: some_service, timeout: 1.5s }\(route)")])
    }

    func testAccepted() throws {
        let loaded = try XCTUnwrap(load(traced("random_sampling: { value: 25 }, overall_sampling: { value: 50.5 }, client_sampling: { value: 0 }, max_path_tag_length: 64, verbose: false, spawn_upstream_span: false, ",
                                               zipkin: "collector_endpoint_version: HTTP_JSON, trace_id_128bit: true, shared_span_context: true, collector_hostname: zipkin.local, split_spans_for_request: false",
                                               route: "\n                decorator: { operation: op1, propagate: false }")))
        guard case .httpConnectionManager(let h) = loaded.bootstrap.listeners[0].filterChains[0].filters[0] else { return XCTFail("no HCM") }
        let t = try XCTUnwrap(h.tracing)
        XCTAssertEqual(t.randomSampling, 25)
        XCTAssertEqual(t.overallSampling, 50.5)
        XCTAssertEqual(t.clientSampling, 0)
        XCTAssertEqual(t.maxPathTagLength, 64)
        XCTAssertEqual(t.zipkin, ZipkinTracerConfig(collectorCluster: "some_service", collectorEndpoint: "/api/v2/spans", collectorHostname: "zipkin.local", traceID128Bit: true))
        XCTAssertEqual(h.routeConfig.virtualHosts[0].routes[0].decorator, RouteDecoratorConfig(operation: "op1", propagate: false))
        // Defaults: Envoy's 100% sampling, 256-byte path tags, the cluster's name as the Host.
        guard case .httpConnectionManager(let d) = try XCTUnwrap(load(traced())).bootstrap.listeners[0].filterChains[0].filters[0] else { return XCTFail() }
        XCTAssertEqual(d.tracing, HTTPTracingConfig(zipkin: ZipkinTracerConfig(collectorCluster: "some_service", collectorEndpoint: "/api/v2/spans", collectorHostname: "some_service")))
    }

    func testRefusals() {
        let t = "\(hcmPath).tracing"
        let z = "\(t).provider.typed_config"
        let cases: [(String, [String])] = [
            (traced(name: "envoy.tracers.datadog"), ["\(t).provider.name: tracer 'envoy.tracers.datadog' is not supported by ballast (it implements envoy.tracers.zipkin)"]),
            (traced(zipkin: "collector_endpoint_version: HTTP_PROTO"), ["\(z).collector_endpoint_version: 'HTTP_PROTO' is not supported by ballast; it reports Zipkin v2 JSON (HTTP_JSON)"]),
            (traced(zipkin: "trace_id_128bit: true"), ["\(z).collector_endpoint_version: required: set HTTP_JSON (Envoy 1.40 refuses the deprecated default)"]),
            (traced(zipkin: "collector_endpoint_version: HTTP_JSON, shared_span_context: false"), ["\(z).shared_span_context: false is not supported by ballast (the server span shares the caller's span id)"]),
            (traced(zipkin: "collector_endpoint_version: HTTP_JSON, split_spans_for_request: true"), ["\(z).split_spans_for_request: true is not supported by ballast (it reports one shared SERVER span per request)"]),
            (traced(zipkin: "collector_endpoint_version: HTTP_JSON, collector_service: {}"), ["\(z).collector_service: not supported by ballast"]),
            (traced("verbose: true, "), ["\(t).verbose: verbose spans (an annotation per request stage) are not implemented by ballast; remove it or set false"]),
            (traced("spawn_upstream_span: true, "), ["\(t).spawn_upstream_span: a separate upstream (CLIENT) span is not implemented by ballast; remove it or set false"]),
            (traced("custom_tags: [], "), ["\(t).custom_tags: not supported by ballast"]),
            (traced("random_sampling: { value: 150 }, "), ["\(t).random_sampling.value: 150 is out of range 0.0...100.0"]),
            (traced(route: "\n                decorator: { propagate: true }"), ["\(BadConfigTests.route).decorator.operation: required field missing"]),
            (edited([("          stat_prefix: ingress_http\n", "          stat_prefix: ingress_http\n          tracing: {}\n")]), ["\(t).provider: required field missing"]),
        ]
        for (yaml, errors) in cases { XCTAssertEqual(loadErrors(yaml), errors) }
    }

    /// The workers' span rings exist only for listeners that traced at start: a reload that adds
    /// tracing is refused (restart); one that keeps or removes it is not.
    func testReloadAddingTracingNeedsARestart() throws {
        let plain = try DataPlane.compile(try XCTUnwrap(load(edited([]))).bootstrap)
        let tracedPlane = try DataPlane.compile(try XCTUnwrap(load(traced())).bootstrap)
        XCTAssertEqual(ProxyOps.incompatibility(plain, tracedPlane), "listener 'listener_0': tracing added; that needs a restart")
        XCTAssertNil(ProxyOps.incompatibility(tracedPlane, plain))
        XCTAssertNil(ProxyOps.incompatibility(tracedPlane, tracedPlane))
    }
}
