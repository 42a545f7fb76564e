@testable import Proxy
import XCTest

/// ext_authz config errors name their YAML path; what is accepted loads. Behaviour against real
/// Envoy 1.40: DifferentialTests' ExtAuthzDifferentialTests.
final class ExtAuthzConfigTests: XCTestCase {
    static let type = "\"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
    static let service = "http_service: { server_uri: { uri: ext_authz, cluster: some_service, timeout: 0.25s } }"

    private func errors(_ fields: String, route: String? = nil) -> String {
        var edits = [("          http_filters:\n",
                      "          http_filters:\n          - name: envoy.filters.http.ext_authz\n            typed_config: { \(Self.type), \(fields) }\n")]
        if let route { edits.append(("                route: { cluster: some_service, timeout: 1.5s }\n", "                route: { cluster: some_service, timeout: 1.5s }\n                \(route)\n")) }
        return loadErrors(edited(edits)).joined(separator: "\n")
    }

    func testConfigErrorsNameThePath() {
        let filter = "\(hcmPath).http_filters[0].typed_config"
        let cases: [(String, String)] = [
            ("grpc_service: { envoy_grpc: { cluster_name: some_service } }", "\(filter).grpc_service: not supported by ballast: its upstreams speak HTTP/1.1 only"),
            ("\(Self.service), with_request_body: { max_request_bytes: 10 }", "\(filter).with_request_body: not supported by ballast"),
            ("\(Self.service), clear_route_cache: true", "\(filter).clear_route_cache: true is not supported by ballast"),
            ("\(Self.service), filter_enabled_metadata: { filter: a, path: [ { key: b } ], value: { string_match: { exact: c } } }", "\(filter).filter_enabled_metadata: not supported by ballast"),
            ("\(Self.service), filter_enabled: { runtime_key: k }", "\(filter).filter_enabled.default_value: required field missing"),
            ("\(Self.service), deny_at_disable: { default_value: maybe }", "\(filter).deny_at_disable.default_value: expected true or false"),
            ("\(Self.service), stat_prefix: x", "\(filter).stat_prefix: not supported by ballast"),
            ("\(Self.service), transport_api_version: V2", "\(filter).transport_api_version: 'V2' is not supported"),
            ("\(Self.service), status_on_error: { code: 700 }", "\(filter).status_on_error.code"),
            ("http_service: { server_uri: { uri: ext_authz, cluster: nowhere, timeout: 0.25s } }", "\(filter).http_service.server_uri.cluster: unknown cluster 'nowhere'"),
            ("http_service: { server_uri: { uri: ext_authz, cluster: some_service } }", "\(filter).http_service.server_uri.timeout: required field missing"),
            ("http_service: { server_uri: { cluster: some_service, timeout: 1s } }", "\(filter).http_service.server_uri.uri: required field missing"),
            ("http_service: { server_uri: { uri: a, cluster: some_service, timeout: 1s }, path_prefix: nope }", "\(filter).http_service.path_prefix: must start with '/'"),
            ("http_service: { server_uri: { uri: a, cluster: some_service, timeout: 1s }, retry_policy: {} }", "\(filter).http_service.retry_policy: not supported by ballast"),
            ("http_service: { server_uri: { uri: a, cluster: some_service, timeout: 1s }, authorization_request: { headers_to_add: [ { key: x, value: \"%REQ(y)%\" } ] } }",
             "\(filter).http_service.authorization_request.headers_to_add[0].value: '%' substitutions are not supported"),
            ("http_service: { server_uri: { uri: a, cluster: some_service, timeout: 1s }, authorization_request: { allowed_headers: { patterns: [] } } }",
             "\(filter).http_service.authorization_request.allowed_headers.patterns: must not be empty"),
            ("http_service: { server_uri: { uri: a, cluster: some_service, timeout: 1s }, authorization_response: { allowed_client_headers_on_success: { patterns: [ { exact: a } ] } } }",
             "\(filter).http_service.authorization_response.allowed_client_headers_on_success: not supported by ballast"),
        ]
        for (fields, expected) in cases {
            let text = errors(fields)
            XCTAssertTrue(text.contains(expected), "\(fields):\n\(text)")
        }
        XCTAssertTrue(errors("").contains("\(filter).http_service: required field missing"), errors(""))
    }

    func testPerRouteConfig() {
        let perRoute = "typed_per_filter_config: { envoy.filters.http.ext_authz: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, %@ } }"
        let at = "\(Self.route).typed_per_filter_config[\"envoy.filters.http.ext_authz\"]"
        XCTAssertEqual(errors(Self.service, route: perRoute.replacingOccurrences(of: "%@", with: "disabled: true")), "")
        let disabledFalse = errors(Self.service, route: perRoute.replacingOccurrences(of: "%@", with: "disabled: false"))
        XCTAssertTrue(disabledFalse.contains("\(at).disabled: must be true"), disabledFalse)
        let checkSettings = errors(Self.service, route: perRoute.replacingOccurrences(of: "%@", with: "check_settings: { context_extensions: { a: b } }"))
        XCTAssertTrue(checkSettings.contains("\(at).check_settings: not supported by ballast"), checkSettings)
    }

    func testALayerMaySetTheFilterEnabledRuntimeKey() {
        func errors(_ filterEnabled: String) -> [String] {
            let yaml = edited([("          http_filters:\n",
                                "          http_filters:\n          - name: envoy.filters.http.ext_authz\n            typed_config: { \(Self.type), \(Self.service)\(filterEnabled) }\n")])
                + "\nlayered_runtime: {layers: [{name: s, static_layer: {ext_authz: {checked: 5}}}]}\n"
            return loadErrors(yaml)
        }
        XCTAssertEqual(errors(", filter_enabled: { runtime_key: ext_authz.checked, default_value: { numerator: 0 } }"), [])
        let unread = errors("")
        XCTAssertEqual(unread.count, 1, "\(unread)")
        XCTAssertTrue(unread.first?.contains("runtime key 'ext_authz.checked' is not applied by ballast") ?? false, "\(unread)")
    }

    func testAcceptedConfigLoads() {
        let full = "transport_api_version: V3, filter_enabled: { default_value: { numerator: 50, denominator: HUNDRED } }, deny_at_disable: { default_value: { value: false } }, failure_mode_allow: true, failure_mode_allow_header_add: true, status_on_error: { code: 503 }, "
            + "http_service: { server_uri: { uri: ext_authz, cluster: some_service, timeout: 0.5s }, path_prefix: /check, "
            + "authorization_request: { allowed_headers: { patterns: [ { prefix: x-, ignore_case: true } ] }, headers_to_add: [ { key: x-a, value: b } ] }, "
            + "authorization_response: { allowed_upstream_headers: { patterns: [ { exact: x-user } ] }, allowed_upstream_headers_to_append: { patterns: [ { exact: x-app } ] }, "
            + "allowed_client_headers: { patterns: [ { exact: x-c } ] } } }"
        XCTAssertEqual(errors(full), "")
    }
}

extension ExtAuthzConfigTests {
    static let route = BadConfigTests.route
}
