import Foundation
import Glibc
import XCTest

/// `envoy.filters.http.ext_authz` with an http_service against real Envoy 1.40: the same requests
/// through both proxies, each with its own upstream and authorization service (both
/// `RecordingUpstream`s: the request's `x-reply-*` fields, which `allowed_headers` lets through
/// to the check, choose the service's answer). Compared: what the client got, the check request
/// the service received, what the upstream received, and the counters (the filter's, the
/// authorization cluster's, the route cluster's).
final class ExtAuthzDifferentialTests: XCTestCase {
    struct Case {
        let name: String
        let port: Int  // listener 0 or 1
        let request: String
    }

    /// The cases, as the README's feature table lists them.
    static let cases: [Case] = [  // `port`: the listener (0-5, see `bootstrap`)
        Case(name: "allowed: the request goes on; the check has method, path_prefix + path and query, host, content-length 0, authorization, allowed_headers, headers_to_add",
             port: 0, request: "GET /a/b?q=1 HTTP/1.1\r\nHost: example.com\r\nAuthorization: Bearer t\r\nX-Other: no\r\nX-Reply-Note: yes\r\nX-Added: from-client\r\n\r\n"),
        Case(name: "allowed: allowed_upstream_headers replace the request's, allowed_upstream_headers_to_append are added",
             port: 0, request: "GET /c HTTP/1.1\r\nHost: example.com\r\nX-Reply-Cors: 1\r\nAccess-Control-Allow-Origin: client\r\nAccess-Control-Max-Age: 1\r\n\r\n"),
        Case(name: "a POST: the check carries no body; the body follows upstream after the answer",
             port: 0, request: "POST /p HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"),
        Case(name: "denied (401): the service's status, body and fields go to the client",
             port: 0, request: "GET /d HTTP/1.1\r\nHost: example.com\r\nX-Reply-Status: 401\r\n\r\n"),
        Case(name: "denied (302) with a body: its fields, the route cluster charged",
             port: 0, request: "GET /d HTTP/1.1\r\nHost: example.com\r\nX-Reply-Status: 302\r\n\r\n"),
        Case(name: "service 503: error, 403 with an empty body",
             port: 0, request: "GET /e HTTP/1.1\r\nHost: example.com\r\nX-Reply-Status: 503\r\n\r\n"),
        Case(name: "service slower than the timeout: error, 403 (504 on the authorization cluster)",
             port: 0, request: "GET /t HTTP/1.1\r\nHost: example.com\r\nX-Reply-Delay: 1\r\n\r\n"),
        Case(name: "service closes without an answer: error, 403",
             port: 0, request: "GET /x HTTP/1.1\r\nHost: example.com\r\nX-Reply-Close: 1\r\n\r\n"),
        Case(name: "ExtAuthzPerRoute disabled: no check",
             port: 0, request: "GET /nocheck HTTP/1.1\r\nHost: example.com\r\nX-Reply-Status: 401\r\n\r\n"),
        Case(name: "failure_mode_allow: a 503 lets the request on with x-envoy-auth-failure-mode-allowed",
             port: 1, request: "GET /e HTTP/1.1\r\nHost: example.com\r\nX-Reply-Status: 503\r\n\r\n"),
        Case(name: "failure_mode_allow: a timeout lets the request on",
             port: 1, request: "GET /t HTTP/1.1\r\nHost: example.com\r\nX-Reply-Delay: 1\r\n\r\n"),
        Case(name: "allowed_client_headers: only those (and location, www-authenticate) reach the client; status_on_error unused",
             port: 1, request: "GET /d HTTP/1.1\r\nHost: example.com\r\nX-Reply-Status: 403\r\nX-Reply-Cors: 1\r\n\r\n"),
        Case(name: "filter_enabled 0%: no check, ext_authz.disabled",
             port: 2, request: "GET /off HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        Case(name: "filter_enabled 0% with deny_at_disable: status_on_error (429), no check",
             port: 3, request: "GET /deny-off HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        Case(name: "filter_enabled 0 of a million, a static runtime layer sets its runtime_key to 100: checked (the value is a numerator of 100)",
             port: 4, request: "GET /runtime HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        Case(name: "filter_enabled by runtime, a second request: checked",
             port: 4, request: "GET /runtime2 HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    ]

    static let statNames = [
        "http.h0.ext_authz.ok", "http.h0.ext_authz.denied", "http.h0.ext_authz.error", "http.h0.ext_authz.failure_mode_allowed", "http.h0.ext_authz.disabled",
        "http.h1.ext_authz.ok", "http.h1.ext_authz.denied", "http.h1.ext_authz.error", "http.h1.ext_authz.failure_mode_allowed",
        "http.h2.ext_authz.disabled", "http.h3.ext_authz.disabled", "http.h3.ext_authz.error", "http.h4.ext_authz.ok", "http.h4.ext_authz.disabled",
        "cluster.authz.upstream_rq_total", "cluster.authz.upstream_rq_completed", "cluster.authz.upstream_rq_200", "cluster.authz.upstream_rq_302",
        "cluster.authz.upstream_rq_401", "cluster.authz.upstream_rq_403", "cluster.authz.upstream_rq_503", "cluster.authz.upstream_rq_504",
        "cluster.authz.upstream_rq_timeout", "cluster.authz.upstream_cx_destroy_local_with_active_rq",
        "cluster.authz.upstream_cx_destroy_remote_with_active_rq", "cluster.authz.upstream_rq_active",
        "cluster.up.ext_authz.ok", "cluster.up.ext_authz.denied", "cluster.up.ext_authz.error", "cluster.up.ext_authz.failure_mode_allowed",
        "cluster.up.upstream_rq_completed", "cluster.up.upstream_rq_200", "cluster.up.upstream_rq_302", "cluster.up.upstream_rq_401",
        "cluster.up.upstream_rq_403", "cluster.up.upstream_rq_4xx",
        "http.h5.ext_authz.error", "cluster.authz_tight.upstream_rq_total", "cluster.authz_tight.upstream_rq_completed",
        "cluster.authz_tight.upstream_rq_504", "cluster.authz_tight.upstream_rq_timeout",
        "cluster.authz_tight.upstream_cx_destroy_local_with_active_rq", "cluster.authz_tight.upstream_rq_active",
        "cluster.authz_tight.upstream_rq_pending_overflow",
    ]

    func testExtAuthzAgreesWithEnvoy() throws {
        var servers: [(up: RecordingUpstream, authz: RecordingUpstream)] = []
        defer { for s in servers { s.up.stop(); s.authz.stop() } }
        let allocator = PortAllocator()
        var others: [[Int]] = []
        var logs: [String] = []
        let (envoy, ballast) = try observeEnvoyAndBallast("ext-authz", envoyArgs: ["--file-flush-interval-msec", "10"], config: { port, admin, log in
            let up = try! RecordingUpstream(), authz = try! RecordingUpstream()
            servers.append((up, authz))
            let more = (0..<5).map { _ in try! allocator.next() }
            others.append(more)
            logs.append(log)
            return Self.bootstrap(ports: [port] + more, admin: admin, upstream: up.port, authz: authz.port, log: log)
        }, observe: { proxy, port in
            let (up, authz) = servers.last!
            let ports = [port] + others.last!
            var out: [String] = []
            for c in Self.cases {
                let client = try RawClient(port: ports[c.port])
                client.send(c.request)
                out.append("\(c.name): client " + (client.readResponse().map(Self.describe) ?? "(no response)"))
                usleep(50_000)
                out.append("\(c.name): check " + Self.describe(authz.takeRequests()))
                out.append("\(c.name): upstream " + Self.describe(up.takeRequests()))
            }
            // The tight authorization cluster (max_connections 1): a second check waits in the
            // host's queue; the timeout covers the wait, so both time out.
            let first = try RawClient(port: ports[5]), second = try RawClient(port: ports[5])
            first.send("GET /slow1 HTTP/1.1\r\nHost: example.com\r\nX-Reply-Delay: 1\r\n\r\n")
            usleep(50_000)
            second.send("GET /slow2 HTTP/1.1\r\nHost: example.com\r\nX-Reply-Delay: 1\r\n\r\n")
            out.append("queued check: first " + (first.readResponse().map(Self.describe) ?? "(no response)"))
            out.append("queued check: second " + (second.readResponse().map(Self.describe) ?? "(no response)"))
            usleep(1_000_000)  // the service's late answer to the first has come and gone
            _ = authz.takeRequests()
            // A client that leaves while its check is in flight: the check is abandoned.
            let leaving = try RawClient(port: port)
            leaving.send("GET /gone HTTP/1.1\r\nHost: example.com\r\nX-Reply-Delay: 1\r\n\r\n")
            usleep(100_000)
            Glibc.shutdown(leaving.fd, Int32(SHUT_RDWR))
            usleep(1_300_000)  // the service's late answer has come and gone
            out.append("client gone: upstream " + Self.describe(up.takeRequests()))
            // The proxy still answers (nothing left behind that blocks the next request).
            let after = try RawClient(port: port)
            after.send("GET /after HTTP/1.1\r\nHost: example.com\r\n\r\n")
            out.append("after: client " + (after.readResponse().map(Self.describe) ?? "(no response)"))
            // The access log: response code, flags (UAEX) and details of every request, in order.
            usleep(300_000)
            let lines = ((try? String(contentsOfFile: logs.last!, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            out += lines.sorted().map { "access log: " + $0 }
            let stats = try proxy.adminGet("/stats").text.split(separator: "\n")
            for name in Self.statNames {
                let key = name + ": "
                out.append(key + (stats.first { $0.hasPrefix(key) }.map { String($0.dropFirst(key.count)) } ?? "(absent)"))
            }
            return out
        })
        var report: [String] = []
        for (e, b) in zip(envoy, ballast) where e != b { report.append("  envoy:   \(e)\n  ballast: \(b)") }
        if envoy.count != ballast.count { report.append("  \(envoy.count) observations from Envoy, \(ballast.count) from Ballast") }
        if !report.isEmpty {
            XCTFail("ext_authz differs from Envoy 1.40:\n" + report.joined(separator: "\n")
                    + (ProcessInfo.processInfo.environment["EXTAUTHZ_DUMP"] != nil ? "\n" + envoy.joined(separator: "\n") : ""))
        }
        // The facts the cases stand for, whatever Envoy does.
        XCTAssertTrue(ballast.contains { $0.hasPrefix(Self.cases[3].name + ": client HTTP/1.1 401") && $0.hasSuffix("| status 401") }, ballast.suffix(40).joined(separator: "\n"))
        XCTAssertTrue(ballast.contains { $0.hasPrefix(Self.cases[0].name + ": check GET /authz/a/b?q=1 HTTP/1.1") }, ballast.suffix(40).joined(separator: "\n"))
        // Three allowed cases and the request after the client that left.
        XCTAssertTrue(ballast.contains("http.h0.ext_authz.ok: 4"), ballast.suffix(40).joined(separator: "\n"))
        // Two timed-out checks and the abandoned one.
        XCTAssertTrue(ballast.contains("cluster.authz.upstream_cx_destroy_local_with_active_rq: 3"), ballast.suffix(40).joined(separator: "\n"))
        // Both checks of the tight cluster timed out, the queued one too.
        XCTAssertTrue(ballast.contains("cluster.authz_tight.upstream_rq_timeout: 2"), ballast.suffix(40).joined(separator: "\n"))
        XCTAssertTrue(ballast.contains { $0.hasPrefix("queued check: second HTTP/1.1 403 Forbidden") }, ballast.suffix(40).joined(separator: "\n"))
        // The abandoned check gave back what it held (its request, its connection closed).
        XCTAssertTrue(ballast.contains("cluster.authz.upstream_rq_active: 0"), ballast.suffix(40).joined(separator: "\n"))
    }

    static func describe(_ r: RawResponse) -> String {
        let fields = r.fields.filter { !["date", "x-envoy-upstream-service-time"].contains($0.name.lowercased()) }
            .map { "\($0.name.lowercased()): \($0.value)" }.sorted().joined(separator: ", ")
        return "\(r.statusLine) | \(fields) | \(r.text)"
    }

    static func describe(_ requests: [(head: String, body: [UInt8])]) -> String {
        if requests.isEmpty { return "(nothing)" }
        return requests.map { normalizedHead($0.head) + " | body " + String(decoding: $0.body, as: UTF8.self).debugDescription }
            .joined(separator: " || ")
    }

    static func bootstrap(ports: [Int], admin: Int, upstream: Int, authz: Int, log: String) -> String {
        let accessLog = "access_log: [{name: envoy.access_loggers.file, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, "
            + "path: \(log), log_format: {text_format_source: {inline_string: \"h=%REQ(:AUTHORITY)% path=%REQ(:PATH)% code=%RESPONSE_CODE% "
            + "flags=%RESPONSE_FLAGS% details=%RESPONSE_CODE_DETAILS% sent=%BYTES_SENT% received=%BYTES_RECEIVED%\\n\"}}}}]"
        let router = #"{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}"#
        let authzType = #""@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"#
        let filters = [
            "\(authzType), transport_api_version: V3, http_service: {server_uri: {uri: ext_authz, cluster: authz, timeout: 0.25s}, path_prefix: /authz, "
                + "authorization_request: {allowed_headers: {patterns: [{prefix: x-reply-}]}, headers_to_add: [{key: x-added, value: from-proxy}]}, "
                + "authorization_response: {allowed_upstream_headers: {patterns: [{prefix: access-control-allow}]}, allowed_upstream_headers_to_append: {patterns: [{exact: access-control-max-age}]}}}",
            "\(authzType), failure_mode_allow: true, failure_mode_allow_header_add: true, status_on_error: {code: 503}, "
                + "http_service: {server_uri: {uri: ext_authz, cluster: authz, timeout: 0.25s}, authorization_request: {allowed_headers: {patterns: [{prefix: x-reply-}]}}, "
                + "authorization_response: {allowed_client_headers: {patterns: [{exact: access-control-max-age}]}}}",
            "\(authzType), filter_enabled: {runtime_key: ext_authz.enabled, default_value: {numerator: 0}}, http_service: {server_uri: {uri: ext_authz, cluster: authz, timeout: 0.25s}}",
            "\(authzType), filter_enabled: {default_value: {numerator: 0}}, deny_at_disable: {default_value: true, runtime_key: ext_authz.deny}, "
                + "status_on_error: {code: 429}, http_service: {server_uri: {uri: ext_authz, cluster: authz, timeout: 0.25s}}",
            "\(authzType), filter_enabled: {runtime_key: ext_authz.checked, default_value: {numerator: 0, denominator: MILLION}}, "
                + "http_service: {server_uri: {uri: ext_authz, cluster: authz, timeout: 0.25s}}",
            "\(authzType), http_service: {server_uri: {uri: ext_authz, cluster: authz_tight, timeout: 0.25s}, authorization_request: {allowed_headers: {patterns: [{prefix: x-reply-}]}}}",
        ]
        let perRoute = #"{envoy.filters.http.ext_authz: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true}}"#
        let routes = [
            "{match: {prefix: \"/nocheck\"}, route: {cluster: up}, typed_per_filter_config: \(perRoute)}, {match: {prefix: \"/\"}, route: {cluster: up}}",
            "{match: {prefix: \"/\"}, route: {cluster: up}}",
            "{match: {prefix: \"/\"}, route: {cluster: up}}",
            "{match: {prefix: \"/\"}, route: {cluster: up}}",
            "{match: {prefix: \"/\"}, route: {cluster: up}}",
            "{match: {prefix: \"/\"}, route: {cluster: up}}",
        ]
        let listeners = (0..<6).map { i in
            """
              - address: {socket_address: {address: 127.0.0.1, port_value: \(ports[i])}}
                filter_chains:
                - filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: h\(i)
                      \(accessLog)
                      route_config: {virtual_hosts: [{name: a, domains: ["*"], routes: [\(routes[i])]}]}
                      http_filters: [{name: envoy.filters.http.ext_authz, typed_config: {\(filters[i])}}, \(router)]

            """
        }.joined()
        return """
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(admin)}}}
        static_resources:
          listeners:
        \(listeners)
          clusters:
          \(staticCluster("up", ports: [upstream]))
          \(staticCluster("authz", ports: [authz]))
          \(staticCluster("authz_tight", ports: [authz], extra: "circuit_breakers: {thresholds: [{max_connections: 1, max_pending_requests: 4}]}"))
        layered_runtime: {layers: [{name: static, static_layer: {ext_authz: {checked: 100}}}]}
        """
    }
}
