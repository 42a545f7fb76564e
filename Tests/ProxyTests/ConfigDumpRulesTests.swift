@testable import Proxy
import XCTest

/// EnvoyProtoJSONRules, one rule at a time, with the values Envoy 1.40 prints for the same YAML
/// (taken from its /config_dump), ProtoJSON's printing, and ConfigDumpQuery.
final class ConfigDumpRulesTests: XCTestCase {
    private func printed(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        guard let value = EnvoyProtoJSONRules.normalise(yaml: yaml) else { XCTFail("nothing printed", file: file, line: line); return "" }
        return Self.compact(value)
    }

    /// One-line JSON (keys in order) for short expectations.
    static func compact(_ value: ProtoJSON) -> String {
        switch value {
        case .object(let fields): "{" + fields.map { "\($0.0): \(compact($0.1))" }.joined(separator: ", ") + "}"
        case .array(let items): "[" + items.map(compact).joined(separator: ", ") + "]"
        case .string(let s): "\"\(s)\""
        case .number(let n): n
        case .bool(let b): "\(b)"
        }
    }

    func testDurationsPrintWithZeroThreeSixOrNineFractionalDigits() {
        XCTAssertEqual(printed("{timeout: 2.000s, per_try_timeout: 0.5s, idle_timeout: 60s, interval: 0.000001s, connect_timeout: 1.000000001s}"),
                       #"{timeout: "2s", per_try_timeout: "0.500s", idle_timeout: "60s", interval: "0.000001s", connect_timeout: "1.000000001s"}"#)
        XCTAssertEqual(printed("{request_timeout: {seconds: 1, nanos: 5000000}, drain_timeout: {seconds: 3}}"),
                       #"{request_timeout: "1.005s", drain_timeout: "3s"}"#)
        XCTAssertEqual(EnvoyProtoJSONRules.duration(nanos: 250_000_000), "0.250s")
        XCTAssertEqual(EnvoyProtoJSONRules.duration(nanos: 1_500_000), "0.001500s")
        XCTAssertEqual(EnvoyProtoJSONRules.duration(nanos: 0), "0s")
    }

    func testSixtyFourBitIntegersPrintAsStrings() {
        XCTAssertEqual(printed("{ring_hash_lb_config: {minimum_ring_size: 1024, maximum_ring_size: \"4096\"}}"),
                       #"{ring_hash_lb_config: {minimum_ring_size: "1024", maximum_ring_size: "4096"}}"#)
        // `start` / `end` are int64 only in an Int64Range.
        XCTAssertEqual(printed("{expected_statuses: [{start: 200, end: 300}], other: {start: 5}}"),
                       #"{expected_statuses: [{start: "200", end: "300"}], other: {start: 5}}"#)
    }

    func testZeroEnumsAreLeftOutOthersKept() {
        XCTAssertEqual(printed("{codec_type: AUTO, lb_policy: ROUND_ROBIN, dns_lookup_family: AUTO, protocol: TCP, priority: DEFAULT}"), "{}")
        // A cluster's `type` is in a oneof: Envoy prints STATIC too.
        XCTAssertEqual(printed("{codec_type: HTTP1, lb_policy: RING_HASH, type: STATIC}"), #"{codec_type: "HTTP1", lb_policy: "RING_HASH", type: "STATIC"}"#)
    }

    func testPlainDefaultsAreLeftOutWrappersKept() {
        XCTAssertEqual(printed("{skip_xff_append: false, use_remote_address: false, default_value: False, stat_prefix: '', merge_slashes: TRUE}"),
                       "{use_remote_address: false, default_value: false, merge_slashes: true}")
        XCTAssertEqual(printed("{max_connections: 0, num_retries: 0, priority: 0, healthy_panic_threshold: {value: 0}, port_value: 0}"),
                       "{max_connections: 0, num_retries: 0, healthy_panic_threshold: {}, port_value: 0}")
        XCTAssertEqual(printed("{healthy_panic_threshold: {value: 25.0}, budget: {value: 12.5}, status: 200}"),
                       "{healthy_panic_threshold: {value: 25}, budget: {value: 12.5}, status: 200}")
    }

    func testNullsAndEmptyListsAreLeftOutEmptyMessagesKept() {
        XCTAssertEqual(printed("a: ~\nb: null\nc:\nd: []\ne: {}\nf: [{}]\n"), "{e: {}, f: [{}]}")
    }

    func testStringFieldsStayStrings() {
        XCTAssertEqual(printed("{name: 8080, version_info: 1, stat_prefix: true, domains: [80], header: {key: x, value: 1}, max_requests: 100}"),
                       #"{name: "8080", version_info: "1", stat_prefix: "true", domains: ["80"], header: {key: "x", value: "1"}, max_requests: 100}"#)
    }

    func testStructValuesArePrintedAsWritten() {
        XCTAssertEqual(printed("{metadata: {filter_metadata: {x: {timeout: 5.0s, n: 1, off: false, codec_type: AUTO}}}}"),
                       #"{metadata: {filter_metadata: {x: {timeout: "5.0s", n: 1, off: false, codec_type: "AUTO"}}}}"#)
    }

    func testTypeURLsAndTheirFieldsFollowTheRules() {
        XCTAssertEqual(printed(#"{typed_config: {"@type": type.googleapis.com/x.Buffer, max_request_bytes: 1024, stream_idle_timeout: 1.50s}}"#),
                       #"{typed_config: {@type: "type.googleapis.com/x.Buffer", max_request_bytes: 1024, stream_idle_timeout: "1.500s"}}"#)
    }

    func testSecretsAreRedacted() {
        XCTAssertEqual(printed("{tls_certificates: [{certificate_chain: {filename: /c.pem}, private_key: {filename: /k.pem}}], password: {inline_bytes: YWJj}}"),
                       #"{tls_certificates: [{certificate_chain: {filename: "/c.pem"}, private_key: {filename: "[redacted]"}}], password: {inline_bytes: "W3JlZGFjdGVkXQ=="}}"#)
    }

    func testPrettyPrintingIsEnvoys() {
        let value = ProtoJSON.object([("configs", .array([.object([("a", .string("x\"y")), ("b", .array([])), ("c", .object([]))])])), ("n", .number("1"))])
        XCTAssertEqual(value.pretty(), "{\n \"configs\": [\n  {\n   \"a\": \"x\\\"y\",\n   \"b\": [],\n   \"c\": {}\n  }\n ],\n \"n\": 1\n}")
    }

    func testTimestampsAreRFC3339InUTC() {
        XCTAssertEqual(ConfigDumpBuilder.timestamp(1_765_157_451_643), "2025-12-08T01:30:51.643Z")
        XCTAssertEqual(ConfigDumpBuilder.timestamp(1_765_157_451_000), "2025-12-08T01:30:51Z")
        XCTAssertEqual(ConfigDumpBuilder.timestamp(5), "1970-01-01T00:00:00.005Z")
    }

    // MARK: query parameters

    private let configs: [ProtoJSON] = [
        .object([("@type", .string("type.googleapis.com/envoy.admin.v3.BootstrapConfigDump")), ("bootstrap", .object([("node", .object([("id", .string("n"))]))]))]),
        .object([("@type", .string("type.googleapis.com/envoy.admin.v3.ClustersConfigDump")), ("version_info", .string("v1")),
                 ("dynamic_active_clusters", .array([.object([("version_info", .string("v1")),
                    ("cluster", .object([("@type", .string("type.googleapis.com/envoy.config.cluster.v3.Cluster")), ("name", .string("c")), ("type", .string("EDS"))])),
                    ("last_updated", .string("t"))])]))]),
    ]

    private func answer(_ query: String) -> String {
        do { return try ConfigDumpQuery(query).apply(configs).map(Self.compact).joined(separator: " ; ") } catch { return "\(error.status) \(error.text)" }
    }

    func testResourceListsOneFieldsEntriesTypedAsTheirMessage() {
        XCTAssertEqual(answer("resource=dynamic_active_clusters&mask=cluster.name,version_info"),
                       #"{@type: "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster", version_info: "v1", cluster: {@type: "type.googleapis.com/envoy.config.cluster.v3.Cluster", name: "c"}}"#)
        XCTAssertEqual(answer("resource=static_clusters"), "")
        XCTAssertEqual(answer("resource=nope"), "404 nope not found in config dump")
        XCTAssertEqual(answer("resource=version_info"), "400 version_info is not a repeated field. Use ?mask=version_info to get only this field")
        XCTAssertEqual(answer("resource=dynamic_active_clusters&mask=cluster"), "400 FieldMask paths: \"cluster\"\n could not be successfully used.")
    }

    func testMaskKeepsTheDumpsItAppliesTo() {
        XCTAssertEqual(answer("mask=bootstrap.node"), #"{@type: "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", bootstrap: {node: {id: "n"}}}"#)
        XCTAssertEqual(answer("mask=version_info"), #"{@type: "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", version_info: "v1"}"#)
        XCTAssertEqual(answer("mask=cluster.name"), "400 FieldMask cluster.name could not be successfully applied to any configs.")
        XCTAssertEqual(answer("mask=dynamic_active_clusters.cluster"), "400 FieldMask dynamic_active_clusters.cluster could not be successfully applied to any configs.",
                       "a list is not gone into")
        XCTAssertEqual(answer("mask=version_info%2Cbootstrap"), answer("mask=version_info,bootstrap"), "percent-decoded")
    }

    func testABadNameRegexIsRefused() {
        XCTAssertEqual(answer("name_regex=("), "400 INVALID_ARGUMENT: Error while parsing name_regex from (: missing ): (")
    }
}
