import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// Admin endpoints and merged stats (issue 5): exact counts, never timings.
final class OpsStatsAdminTests: XCTestCase {
    func testStatsCountersEqualRequestsSent() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let ops = try startOps(opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream.port])))
        defer { ops.stop() }
        let port = ops.proxy.port(of: "http")!
        let connections = 4
        let perConnection = 50
        var ok = 0
        for _ in 0..<connections {
            let c = try TestConnection(port: port)
            for i in 0..<perConnection where c.get("/?size=\(i)")?.status == 200 { ok += 1 }
        }
        let sent = connections * perConnection
        XCTAssertEqual(ok, sent)
        let admin = try XCTUnwrap(ops.adminPort)
        let (status, text) = adminRequest(admin, "GET", "/stats")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(statValue(text, "http.ingress_http.downstream_rq_total"), sent, text)
        XCTAssertEqual(statValue(text, "http.ingress_http.downstream_rq_2xx"), sent)
        XCTAssertEqual(statValue(text, "http.ingress_http.downstream_cx_total"), connections)
        XCTAssertEqual(statValue(text, "cluster.echo.upstream_rq_total"), sent)
        XCTAssertEqual(statValue(text, "server.concurrency"), 2)
        XCTAssertEqual(statValue(text, "server.watchdog_mega_miss"), 0)
        let listener = "listener.127.0.0.1_\(port)"
        XCTAssertEqual(statValue(text, "\(listener).downstream_cx_total"), connections)
        let perWorker = (0..<2).compactMap { statValue(text, "\(listener).worker_\($0).downstream_cx_total") }
        XCTAssertEqual(perWorker.reduce(0, +), connections)
        XCTAssertTrue(text.contains("http.ingress_http.downstream_rq_time: P50("), text)
        XCTAssertTrue(text.contains("count=\(sent)"), "the latency histogram holds every request")

        // /workers totals equal downstream_cx_total (and the requests).
        let (ws, workers) = adminRequest(admin, "GET", "/workers")
        XCTAssertEqual(ws, 200)
        func total(_ key: String) -> Int {
            workers.components(separatedBy: "\"\(key)\": ").dropFirst().reduce(0) { $0 + (Int($1.prefix { $0.isNumber }) ?? 0) }
        }
        XCTAssertEqual(total("accepted"), statValue(text, "http.ingress_http.downstream_cx_total"), workers)
        XCTAssertEqual(total("requests"), sent, workers)

        // JSON stats carry the same figure.
        let (js, json) = adminRequest(admin, "GET", "/stats?format=json")
        XCTAssertEqual(js, 200)
        XCTAssertTrue(json.contains("{\"name\":\"http.ingress_http.downstream_rq_total\",\"value\":\(sent)}"), json)
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(json.utf8)))

        // Prometheus: counters, gauges, histograms with buckets; promtool accepts it.
        let (ps, prom) = adminRequest(admin, "GET", "/stats/prometheus")
        XCTAssertEqual(ps, 200)
        XCTAssertTrue(prom.contains("envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"ingress_http\"} \(sent)"), prom)
        XCTAssertTrue(prom.contains("# TYPE envoy_http_downstream_rq_time histogram"))
        XCTAssertTrue(prom.contains("envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress_http\",le=\"+Inf\"} \(sent)"), prom)
        XCTAssertTrue(prom.contains("# TYPE envoy_cluster_upstream_cx_active gauge"))
        try checkWithPromtool(prom)
    }

    /// `promtool check metrics` (Debian's `prometheus` package, installed when missing).
    private func checkWithPromtool(_ text: String) throws {
        var promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
        if promtool == nil {
            var url = URL(fileURLWithPath: #filePath)
            for _ in 0..<3 { url.deleteLastPathComponent() }
            let script = url.appendingPathComponent("scripts/ensure-packages.sh").path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = [script, "prometheus"]
            try p.run()
            p.waitUntilExit()
            promtool = ["/usr/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
        }
        guard let promtool else {
            throw XCTSkip("promtool: the prometheus package could not be installed (no apt or no root)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: promtool)
        p.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = output
        try p.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        // 0: clean; 3: lint findings only (a parse error is 1).
        XCTAssertTrue(p.terminationStatus == 0 || p.terminationStatus == 3, "promtool check metrics (\(p.terminationStatus)):\n\(report)")
        // Envoy's names carry no `_total` on counters (envoy_cluster_upstream_rq): that lint only.
        // Envoy's gauge `membership_total` keeps its name too (dashboards use it).
        let problems = report.split(separator: "\n").filter {
            !$0.hasSuffix("counter metrics should have \"_total\" suffix") && !$0.hasPrefix("envoy_cluster_membership_total non-counter")
        }
        XCTAssertEqual(problems, [], "promtool found problems:\n\(report)")
    }

    func testEveryAdminEndpointAnswersAndBadMethodsAndPaths() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let ops = try startOps(opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream.port])))
        defer { ops.stop() }
        let admin = try XCTUnwrap(ops.adminPort)
        for path in ["/stats", "/stats?format=json", "/stats/prometheus", "/config_dump", "/clusters", "/listeners", "/server_info",
                     "/ready", "/workers"] {
            let (status, body) = adminRequest(admin, "GET", path)
            XCTAssertEqual(status, 200, path)
            XCTAssertFalse(body.isEmpty, path)
        }
        XCTAssertTrue(adminRequest(admin, "GET", "/clusters").1.contains("echo::127.0.0.1:\(upstream.port)::health_flags::healthy"))
        XCTAssertTrue(adminRequest(admin, "GET", "/server_info").1.contains("\"concurrency\": 2"))
        XCTAssertTrue(adminRequest(admin, "GET", "/listeners").1.hasPrefix("http::127.0.0.1:"), "text by default, as Envoy")
        XCTAssertTrue(adminRequest(admin, "GET", "/config_dump").1.contains("\"stat_prefix\": \"ingress_http\""))
        for json in ["/config_dump", "/listeners?format=json", "/server_info", "/workers"] {
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(adminRequest(admin, "GET", json).1.utf8)), json)
        }
        // Unknown path: 404 listing the endpoints; wrong method: 405.
        let (nf, list) = adminRequest(admin, "GET", "/nope")
        XCTAssertEqual(nf, 404)
        XCTAssertTrue(list.contains("/stats/prometheus") && list.contains("/quitquitquit"), list)
        XCTAssertEqual(adminRequest(admin, "POST", "/stats").0, 405)
        XCTAssertEqual(adminRequest(admin, "GET", "/quitquitquit").0, 405)
        XCTAssertEqual(adminRequest(admin, "GET", "/healthcheck/fail").0, 405)
        // Health check fail/ok drives /ready.
        XCTAssertEqual(adminRequest(admin, "POST", "/healthcheck/fail").0, 200)
        XCTAssertEqual(adminRequest(admin, "GET", "/ready").0, 503)
        XCTAssertEqual(adminRequest(admin, "POST", "/healthcheck/ok").0, 200)
        XCTAssertEqual(adminRequest(admin, "GET", "/ready").0, 200)
        // Logging level.
        XCTAssertEqual(adminRequest(admin, "POST", "/logging?level=debug").1, "level: debug\n")
        XCTAssertEqual(adminRequest(admin, "POST", "/logging?level=loud").0, 400)
        XCTAssertEqual(adminRequest(admin, "POST", "/logging?level=warning").0, 200)
        // Reload without a config file is rejected, the old config stays.
        XCTAssertEqual(adminRequest(admin, "POST", "/reload").0, 400)
        XCTAssertEqual(ops.generation, 0)
        // Drain: /ready says 503, new connections are refused.
        XCTAssertEqual(adminRequest(admin, "POST", "/drain_listeners").0, 200)
        XCTAssertEqual(adminRequest(admin, "GET", "/ready").0, 503)
        let port = ops.proxy.port(of: "http")!
        let refused = Wait.until { (try? TestConnection(port: port)) == nil }
        XCTAssertTrue(refused, "new connections are refused after drain_listeners")
    }
}
