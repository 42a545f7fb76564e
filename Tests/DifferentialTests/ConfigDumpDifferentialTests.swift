import Foundation
import Glibc
import XCTest

/// /config_dump against real Envoy 1.40: the same bootstrap (and the same LDS / CDS / RDS / EDS
/// files) loaded by both, then the same admin queries (`?include_eds`, `?resource=`, `?mask=`,
/// `?name_regex=`, their refusals); each answer's status and body compared as parsed JSON values
/// after the removals listed under `config_dump/` in IntentionalDifferences.swift (each must
/// still remove something, else its entry is stale). Ports, the run's directory and the access
/// log's path, which differ between the two runs, are replaced by names first.
final class ConfigDumpDifferentialTests: XCTestCase {
    /// README's feature table (each test fails on any difference, so each row is "same").
    static let tableRows = [
        "/config_dump of a static bootstrap (durations, 64-bit integers, wrappers, zero enums, typed_config, a DNS cluster), with ?include_eds, ?resource=, ?mask=, ?name_regex= and their refusals",
        "/config_dump of LDS / CDS / RDS / EDS files, and after a CDS update (version_info, last_updated)",
        "/config_dump of an SDS secret from a file (bytes inline, key redacted)",
        "/config_dump?include_eds of every example config Ballast accepts",
    ]

    static let queries = [
        "/config_dump?include_eds",
        "/config_dump?resource=static_clusters",
        "/config_dump?resource=dynamic_active_clusters&mask=cluster.name,version_info",
        "/config_dump?resource=dynamic_listeners&mask=active_state.version_info",
        "/config_dump?mask=static_listeners",
        "/config_dump?mask=cluster.name",
        "/config_dump?resource=nope",
        "/config_dump?resource=version_info",
        "/config_dump?name_regex=back.*",
    ]

    /// A static bootstrap: clusters (RING_HASH with uint64 ring sizes, circuit breakers with a
    /// wrapper 0, an active health check with int64 status ranges, ORIGINAL_DST, DNS), two
    /// listeners (HTTP filters with typed_config, durations written several ways, a BoolValue
    /// false, zero enums, an access log; a tcp_proxy).
    static func staticBootstrap(port: Int, admin: Int, log: String) -> String {
        """
        node: {id: dump-test, cluster: dump-test}
        stats_flush_interval: 2.5s
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
        static_resources:
          listeners:
          - name: web
            address: {socket_address: {address: 127.0.0.1, port_value: \(port), protocol: TCP}}
            per_connection_buffer_limit_bytes: 32768
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: ingress
                  codec_type: AUTO
                  use_remote_address: false
                  skip_xff_append: false
                  stream_idle_timeout: 0.25s
                  request_timeout: {seconds: 1, nanos: 500000000}
                  common_http_protocol_options: {idle_timeout: 60.000s}
                  access_log:
                  - name: envoy.access_loggers.file
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                      path: \(log)
                  route_config:
                    name: local
                    virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                      - match: {prefix: "/"}
                        route: {cluster: backend, timeout: 2.000s, retry_policy: {retry_on: 5xx, num_retries: 0, per_try_timeout: 0.5s}}
                  http_filters:
                  - name: envoy.filters.http.buffer
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
                      max_request_bytes: 1024
                  - name: envoy.filters.http.local_ratelimit
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                      stat_prefix: rl
                      token_bucket: {max_tokens: 100, tokens_per_fill: 10, fill_interval: 1s}
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          - name: tcp
            address: {socket_address: {address: 127.0.0.1, port_value: 0}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.tcp_proxy
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                  stat_prefix: tcp
                  cluster: names
                  idle_timeout: 300s
          clusters:
          - name: backend
            connect_timeout: 1s
            type: STATIC
            lb_policy: RING_HASH
            ring_hash_lb_config: {minimum_ring_size: 1024, maximum_ring_size: 4096}
            circuit_breakers: {thresholds: [{priority: DEFAULT, max_connections: 0, max_requests: 100}]}
            common_lb_config: {healthy_panic_threshold: {value: 25}}
            health_checks:
            - timeout: 1s
              interval: 10s
              unhealthy_threshold: 2
              healthy_threshold: 1
              http_health_check: {path: /health, expected_statuses: [{start: 200, end: 300}]}
            load_assignment:
              cluster_name: backend
              endpoints:
              - lb_endpoints:
                - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}
                  load_balancing_weight: 2
          - {name: destinations, connect_timeout: 1s, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED}
          - name: names
            connect_timeout: 0.25s
            type: STRICT_DNS
            dns_lookup_family: V4_ONLY
            dns_refresh_rate: 5.5s
            lb_policy: ROUND_ROBIN
            load_assignment:
              cluster_name: names
              endpoints:
              - locality: {region: r1, zone: z1}
                lb_endpoints:
                - endpoint: {address: {socket_address: {address: localhost, port_value: 2}}}
        """
    }

    func testStaticBootstrap() throws {
        let seen = try observeEnvoyAndBallast("config-dump-static", config: Self.staticBootstrap) { proxy, port in
            try Self.answers(proxy, replacing: ["PORT": port, "ADMIN": proxy.adminPort], directory: nil)
        }
        compare(seen)
    }

    /// The bootstrap of dynamic-config-fs: LDS and CDS files; the cluster takes EDS, the
    /// listener RDS, each from a file of its own.
    func testDynamicFiles() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-config-dump-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let dir = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let port = try freePort(), admin = try freePort()
            for (file, text) in Self.dynamicFiles(dir: dir.path, port: port, admin: admin) {
                try text.write(toFile: dir.appendingPathComponent(file).path, atomically: false, encoding: .utf8)
            }
            let config = dir.appendingPathComponent("bootstrap.yaml").path
            let (exe, args) = name == "envoy"
                ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error"])
                : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error"])
            let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: ["l": port], adminPort: admin,
                                           accessLog: dir.appendingPathComponent("unused.log").path, directory: dir)
            defer { proxy.stop() }
            try proxy.waitReady()
            var answers = try Self.answers(proxy, replacing: ["PORT": port, "ADMIN": admin], directory: dir.path)
            let before = try Self.lastUpdated(proxy)
            // A CDS update (moved onto the file): the new version and cluster in every dump.
            let cds = dir.appendingPathComponent("cds.yaml").path
            try Self.dynamicFiles(dir: dir.path, port: port, admin: admin)["cds.yaml"]!.replacingOccurrences(of: "c1", with: "c2")
                .replacingOccurrences(of: "0.5s", with: "0.75s").write(toFile: cds + ".next", atomically: false, encoding: .utf8)
            XCTAssertEqual(rename(cds + ".next", cds), 0)
            try Self.waitForStat(proxy, "cluster_manager.cds.version_text: \"c2\"")
            answers += try Self.answers(proxy, queries: ["/config_dump?include_eds"], replacing: ["PORT": port, "ADMIN": admin], directory: dir.path)
            // last_updated: the bootstrap's stays, the updated cluster's moves on (both proxies).
            let after = try Self.lastUpdated(proxy)
            XCTAssertEqual(after.bootstrap, before.bootstrap, name)
            XCTAssertNotEqual(after.cluster, before.cluster, name)
            XCTAssertEqual(after.listener, before.listener, "\(name): the listener was not updated")
            seen[name] = answers
        }
        compare((seen["envoy"]!, seen["ballast"]!))
    }

    /// `last_updated` of the bootstrap, the first dynamic cluster and the first dynamic listener.
    static func lastUpdated(_ proxy: ProxyUnderTest) throws -> (bootstrap: String?, cluster: String?, listener: String?) {
        let root = try JSONSerialization.jsonObject(with: Data(proxy.adminGet("/config_dump").text.utf8)) as? [String: Any]
        let configs = root?["configs"] as? [[String: Any]] ?? []
        func dump(_ type: String) -> [String: Any]? { configs.first { ($0["@type"] as? String)?.hasSuffix(type) == true } }
        let cluster = (dump("ClustersConfigDump")?["dynamic_active_clusters"] as? [[String: Any]])?.first?["last_updated"] as? String
        let listener = ((dump("ListenersConfigDump")?["dynamic_listeners"] as? [[String: Any]])?.first?["active_state"] as? [String: Any])?["last_updated"] as? String
        return (dump("BootstrapConfigDump")?["last_updated"] as? String, cluster, listener)
    }

    /// Waits (bounded: 10 s) until /stats has `line`.
    static func waitForStat(_ proxy: ProxyUnderTest, _ line: String) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if try proxy.adminGet("/stats").text.contains(line + "\n") { return }
            usleep(20_000)
        }
        throw DifferentialError("\(proxy.name): /stats never showed \(line)")
    }

    /// A TLS listener whose certificate is an SDS secret read from a file: the secret in
    /// SecretsConfigDump (its private key redacted), the listener's sds_config as written.
    func testSDSSecret() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-config-dump-sds-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        // One certificate for both (Envoy dumps its bytes).
        let certs = root.appendingPathComponent("certs").path
        let made = try runToCompletion(differentialRoot.appendingPathComponent("scripts/tls-test-certs.sh").path, [certs])
        guard made.status == 0 else { throw DifferentialError("tls-test-certs.sh: \(made.stderr)") }
        var seen: [String: [String]] = [:]
        for name in ["envoy", "ballast"] {
            let dir = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let port = try freePort(), admin = try freePort()
            try """
            version_info: s1
            resources:
            - {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret, name: server_cert, tls_certificate: {certificate_chain: {filename: \(certs)/server.pem}, private_key: {filename: \(certs)/server.key}}}
            """.write(toFile: dir.appendingPathComponent("secret.yaml").path, atomically: false, encoding: .utf8)
            let bootstrap = """
            node: {id: diff, cluster: diff}
            admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
            static_resources:
              listeners:
              - name: tls
                address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
                filter_chains:
                - transport_socket:
                    name: envoy.transport_sockets.tls
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
                      common_tls_context:
                        tls_certificate_sds_secret_configs:
                        - name: server_cert
                          sds_config: {path_config_source: {path: \(dir.path)/secret.yaml}, resource_api_version: V3}
                  filters:
                  - name: envoy.filters.network.tcp_proxy
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}
              clusters:
              - {name: c, connect_timeout: 1s, load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}}
            """
            let config = dir.appendingPathComponent("bootstrap.yaml").path
            try bootstrap.write(toFile: config, atomically: false, encoding: .utf8)
            let (exe, args) = name == "envoy"
                ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error"])
                : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error"])
            let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: ["tls": port], adminPort: admin,
                                           accessLog: dir.appendingPathComponent("unused.log").path, directory: dir)
            defer { proxy.stop() }
            try proxy.waitReady()
            seen[name] = try Self.answers(proxy, queries: ["/config_dump", "/config_dump?resource=dynamic_active_secrets"],
                                          replacing: ["PORT": port, "ADMIN": admin], directory: dir.path)
        }
        compare((seen["envoy"]!, seen["ballast"]!))
    }

    /// Every example config Ballast accepts (ExampleConfigs.swift): the whole dump with
    /// `?include_eds`, each proxy on its own ports and directory.
    func testExampleConfigs() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-config-dump-examples-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        let (cert, key) = try ExampleConfigTests.makeCertificate(in: root)
        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        let allocator = PortAllocator()
        var report: [String] = []
        var compared = 0
        for example in exampleConfigs where example.ballastRefuses.isEmpty {
            var seen: [String: String] = [:]
            for name in ["envoy", "ballast"] {
                let dir = root.appendingPathComponent(example.example.replacingOccurrences(of: "/", with: "_")).appendingPathComponent(name)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                let admin = try allocator.next(), port0 = try allocator.next(), port1 = try allocator.next()
                let values = ["{UP}": "\(upstream.port)", "{CERT}": cert, "{KEY}": key, "{CA}": cert, "{ADMIN}": "\(admin)",
                              "{PORT0}": "\(port0)", "{PORT1}": "\(port1)", "{DIR}": dir.path]
                func fill(_ text: String) -> String { values.reduce(text) { $0.replacingOccurrences(of: $1.key, with: $1.value) } }
                for (file, content) in example.files {
                    let path = dir.appendingPathComponent(file)
                    try FileManager.default.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try fill(content).write(to: path, atomically: true, encoding: .utf8)
                }
                let config = dir.appendingPathComponent("bootstrap.yaml").path
                try fill(example.yaml).write(toFile: config, atomically: true, encoding: .utf8)
                let (exe, args) = name == "envoy"
                    ? (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error"])
                    : (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error"])
                let proxy = try ProxyUnderTest(name: name, executable: exe, arguments: args, ports: [:], adminPort: admin,
                                               accessLog: dir.appendingPathComponent("unused.log").path, directory: dir)
                defer { proxy.stop() }
                try proxy.waitReady()
                seen[name] = try Self.answers(proxy, queries: ["/config_dump?include_eds"],
                                              replacing: ["ADMIN": admin, "PORT0": port0, "PORT1": port1, "UP": upstream.port],
                                              directory: dir.path).first
            }
            compared += 1
            let (e, b) = (Self.split(seen["envoy"] ?? "").0, Self.split(seen["ballast"] ?? "").0)
            XCTAssertTrue(e.hasPrefix("/config_dump?include_eds 200 {"), "\(example.example): Envoy's dump: \(e.prefix(300))")
            if e != b { report.append("\(example.example): not an intentional difference:\n" + Self.differences(e, b).joined(separator: "\n")) }
        }
        XCTAssertGreaterThan(compared, 20, "the accepted examples")
        if !report.isEmpty { XCTFail("\(report.count) example(s) dump differently from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }

    static func dynamicFiles(dir: String, port: Int, admin: Int) -> [String: String] {
        [
            "bootstrap.yaml": """
            node: {id: diff, cluster: diff}
            dynamic_resources:
              cds_config: {resource_api_version: V3, path_config_source: {path: \(dir)/cds.yaml}}
              lds_config: {resource_api_version: V3, path_config_source: {path: \(dir)/lds.yaml}}
            admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
            """,
            "cds.yaml": """
            version_info: "c1"
            resources:
            - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
              name: backend_eds
              type: EDS
              connect_timeout: 0.5s
              eds_cluster_config: {eds_config: {resource_api_version: V3, path_config_source: {path: \(dir)/eds.yaml}}}
            """,
            "eds.yaml": """
            version_info: "e1"
            resources:
            - "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
              cluster_name: backend_eds
              endpoints:
              - priority: 0
                lb_endpoints:
                - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}
                  load_balancing_weight: 3
            """,
            "rds.yaml": """
            version_info: "r1"
            resources:
            - "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
              name: dyn_routes
              virtual_hosts:
              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/"}
                  route: {cluster: backend_eds, timeout: 3s, idle_timeout: 0.001s}
            """,
            "lds.yaml": """
            version_info: l1
            resources:
            - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
              name: dyn_listener
              address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
              filter_chains:
              - filters:
                - name: envoy.filters.network.http_connection_manager
                  typed_config:
                    "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                    stat_prefix: dyn
                    rds: {route_config_name: dyn_routes, config_source: {resource_api_version: V3, path_config_source: {path: \(dir)/rds.yaml}}}
                    http_filters:
                    - name: envoy.filters.http.router
                      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
            """,
        ]
    }

    // MARK: comparison

    /// The removals (IntentionalDifferences.swift, `config_dump/<key path>`): a key anywhere
    /// (`last_updated`) or a dotted path's last keys (`node.extensions`).
    static var removals: [[String]] {
        intentionalDifferences.filter { $0.key.hasPrefix("config_dump/") }.map { $0.key.dropFirst("config_dump/".count).split(separator: ".").map(String.init) }
    }

    /// The lists of resources, compared without their order.
    static let unorderedLists: Set<String> = ["static_clusters", "dynamic_active_clusters", "static_listeners", "dynamic_listeners",
                                              "static_route_configs", "dynamic_route_configs", "static_endpoint_configs",
                                              "dynamic_endpoint_configs", "dynamic_active_secrets"]

    /// Each query's status and body (JSON as canonical text, removals done; other bodies as text).
    static func answers(_ proxy: ProxyUnderTest, queries: [String] = queries, replacing numbers: [String: Int], directory: String?) throws -> [String] {
        try queries.map { query in
            let r = try proxy.adminGet(query)
            guard let json = try? JSONSerialization.jsonObject(with: Data(r.text.utf8)) else { return "\(query) \(r.status) \(r.text)" }
            var removed = Set<String>()
            let cleaned = clean(json, path: [], numbers: numbers, directory: directory, log: proxy.accessLog, removed: &removed)
            let data = try JSONSerialization.data(withJSONObject: cleaned, options: [.sortedKeys])
            return "\(query) \(r.status) \(String(decoding: data, as: UTF8.self)) removed: \(removed.sorted().joined(separator: ","))"
        }
    }

    private static func clean(_ value: Any, path: [String], numbers: [String: Int], directory: String?, log: String, removed: inout Set<String>) -> Any {
        switch value {
        case let object as [String: Any]:
            var out: [String: Any] = [:]
            for (key, v) in object {
                let here = path + [key]
                if let rule = removals.first(where: { here.count >= $0.count && Array(here.suffix($0.count)) == $0 }) {
                    removed.insert(rule.joined(separator: "."))
                    continue
                }
                out[key] = clean(v, path: here, numbers: numbers, directory: directory, log: log, removed: &removed)
            }
            return out
        case let array as [Any]:
            let items = array.map { clean($0, path: path, numbers: numbers, directory: directory, log: log, removed: &removed) }
            guard let last = path.last, unorderedLists.contains(last) else { return items }
            return items.sorted { canonical($0) < canonical($1) }
        case let number as NSNumber:  // ports are never 0 or 1, so a bool never matches
            return numbers.first { $0.value == number.intValue && Double($0.value) == number.doubleValue }?.key ?? number
        case let string as String:
            var s = string.replacingOccurrences(of: log, with: "LOG")
            if let directory { s = s.replacingOccurrences(of: directory, with: "DIR") }
            for (name, n) in numbers { s = s.replacingOccurrences(of: ":\(n)", with: ":" + name) }
            for (name, n) in numbers where s == String(n) { s = name }
            return s
        default:
            return value
        }
    }

    private static func canonical(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) else { return "\(value)" }
        return String(decoding: data, as: UTF8.self)
    }

    private func compare(_ seen: (envoy: [String], ballast: [String]), file: StaticString = #filePath, line: UInt = #line) {
        var report: [String] = []
        var removedAnywhere = Set<String>()
        for (e, b) in zip(seen.envoy, seen.ballast) {
            let (eBody, eRemoved) = Self.split(e), (bBody, bRemoved) = Self.split(b)
            removedAnywhere.formUnion(eRemoved)
            removedAnywhere.formUnion(bRemoved)
            if eBody != bBody {
                report.append("\(eBody.prefix { $0 != " " }): not an intentional difference:\n" + Self.differences(eBody, bBody).joined(separator: "\n"))
            }
        }
        for rule in Self.removals.map({ $0.joined(separator: ".") }) where !removedAnywhere.contains(rule) {
            report.append("config_dump/\(rule): listed in IntentionalDifferences.swift but neither dump has it; remove the entry")
        }
        if !report.isEmpty { XCTFail("\(report.count) /config_dump difference(s) against Envoy 1.40:\n" + report.joined(separator: "\n"), file: file, line: line) }
    }

    /// Where two answers differ: `path: envoy | ballast` (at most 8), or both texts.
    static func differences(_ envoy: String, _ ballast: String) -> [String] {
        func body(_ s: String) -> Any? {
            guard let brace = s.firstIndex(of: "{") else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(s[brace...].utf8))
        }
        guard let e = body(envoy), let b = body(ballast), envoy.prefix(while: { $0 != "{" }) == ballast.prefix(while: { $0 != "{" }) else {
            return ["  envoy:   \(envoy.prefix(2000))", "  ballast: \(ballast.prefix(2000))"]
        }
        var out: [String] = []
        func walk(_ e: Any?, _ b: Any?, _ path: String) {
            guard out.count < 8 else { return }
            switch (e, b) {
            case let (x as [String: Any], y as [String: Any]):
                for key in Set(x.keys).union(y.keys).sorted() { walk(x[key], y[key], path + "." + key) }
            case let (x as [Any], y as [Any]) where x.count == y.count:
                for i in x.indices { walk(x[i], y[i], path + "[\(i)]") }
            default:
                let (ce, cb) = (e.map(canonical) ?? "(absent)", b.map(canonical) ?? "(absent)")
                if ce != cb { out.append("  \(path): envoy \(ce.prefix(300)) | ballast \(cb.prefix(300))") }
            }
        }
        walk(e, b, "")
        return out
    }

    static func split(_ answer: String) -> (String, [String]) {
        guard let r = answer.range(of: " removed: ", options: .backwards) else { return (answer, []) }
        return (String(answer[..<r.lowerBound]), answer[r.upperBound...].split(separator: ",").map(String.init))
    }
}
