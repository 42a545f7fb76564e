import EventLoop
import Foundation
import Glibc
@testable import Proxy
import TestSupport
import XCTest

/// Access logs (issue 5): a line for each response flag with the right fields, in the Istio
/// format and as JSON.
final class OpsAccessLogTests: XCTestCase {
    static func istioFormat() throws -> String {
        // The repository's copy of ../shared/examples/istio-access-log-format.txt.
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let path = url.appendingPathComponent("Experiments/configs/istio-access-log-format.txt").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(separator: "\n").first { $0.hasPrefix("[%START_TIME%]") }.map(String.init) ?? ""
    }

    func testEachResponseFlagGetsALineWithItsFields() throws {
        let istio = try Self.istioFormat()
        XCTAssertNoThrow(try AccessLogTemplate(parsing: istio), "the Istio format parses")
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let arrived = DispatchSemaphore(value: 0)
        let held = try RawUpstream { fd in
            while !RawUpstream.readHead(fd).isEmpty { arrived.signal() }
            Glibc.close(fd)
        }
        defer { held.stop() }
        let resetting = try RawUpstream { fd in
            _ = RawUpstream.readHead(fd)
            var linger = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
            Glibc.close(fd)
        }
        defer { resetting.stop() }
        let down = try closedPort()
        let hosts = """
                    - name: known
                      domains: ["known"]
                      routes:
                      - name: down_route
                        match: { prefix: "/down" }
                        route: { cluster: down }
                      - name: held_route
                        match: { prefix: "/held" }
                        route: { cluster: held, timeout: 0.3s }
                      - name: reset_route
                        match: { prefix: "/reset" }
                        route: { cluster: reset }
                      - name: default
                        match: { prefix: "/" }
                        route: { cluster: echo }
        """
        let clusters = [dataPathCluster("echo", ports: [upstream.port]), dataPathCluster("down", ports: [down]),
                        dataPathCluster("held", ports: [held.port], extra: "    circuit_breakers: { thresholds: [{ max_requests: 1 }] }"),
                        dataPathCluster("reset", ports: [resetting.port])].joined(separator: "\n")
        let textLog = opsTempPath("istio.log")
        let jsonLog = opsTempPath("json.log")
        let escaped = istio.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let loggers = opsFileLogger(textLog, logFormat: "                text_format_source:\n                  inline_string: \"\(escaped)\\n\"")
            + "\n" + opsFileLogger(jsonLog, logFormat: """
                            json_format:
                              code: "%RESPONSE_CODE%"
                              flags: "%RESPONSE_FLAGS%"
                              cluster: "%UPSTREAM_CLUSTER%"
                              path: "%REQ(:PATH)%"
                              worker: "%THREAD_ID%"
            """)
        let ops = try startOps(opsYAML(virtualHosts: hosts, clusters: clusters, accessLog: loggers), concurrency: 1)
        defer {
            ops.stop()
            unlink(textLog)
            unlink(jsonLog)
        }
        let port = ops.proxy.port(of: "http")!
        let c = try TestConnection(port: port)
        XCTAssertEqual(c.get("/ok?size=5", host: "known", extra: "User-Agent: ops-test\r\nX-Request-Id: rid-1\r\n")?.status, 200)
        XCTAssertEqual(try TestConnection(port: port).get("/down", host: "known")?.status, 503)
        XCTAssertEqual(try TestConnection(port: port).get("/reset", host: "known")?.status, 503)
        XCTAssertEqual(try TestConnection(port: port).get("/", host: "unknown")?.status, 404)
        // UO and UT: one request held upstream, a second overflows max_requests 1; the first times out.
        let first = try TestConnection(port: port)
        first.send("GET /held/1 HTTP/1.1\r\nHost: known\r\n\r\n")
        XCTAssertEqual(arrived.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(try TestConnection(port: port).get("/held/2", host: "known")?.status, 503)
        XCTAssertEqual(first.readResponse()?.status, 504)

        let lines = waitForLines(textLog, count: 6)
        XCTAssertEqual(lines.count, 6, lines.joined(separator: "\n"))
        let pattern = #"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] \[(\d+)\] "(\S+) (\S+) (\S+)" (\d+) (\S+) (\S+) (\S+) "([^"]*)" (\d+) (\d+) (\d+) (\S+) "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" "?([^" ]*)"? (\S+) (\S+) (\S+) (\S+) (\S+)$"#
        let regex = try NSRegularExpression(pattern: pattern)
        var byPath: [String: [String]] = [:]
        for line in lines {
            let range = NSRange(line.startIndex..., in: line)
            guard let m = regex.firstMatch(in: line, range: range) else {
                XCTFail("line does not match the Istio format: \(line)")
                continue
            }
            let fields = (1..<m.numberOfRanges).map { String(line[Range(m.range(at: $0), in: line)!]) }
            byPath[fields[3]] = fields
        }
        func check(_ path: String, code: String, flags: String, details: String, cluster: String, route: String,
                   file: StaticString = #filePath, line: UInt = #line) {
            guard let f = byPath[path] else { return XCTFail("no line for \(path)", file: file, line: line) }
            XCTAssertEqual(f[1], "0", "THREAD_ID is the worker index", file: file, line: line)
            XCTAssertEqual(f[2], "GET", file: file, line: line)
            XCTAssertEqual(f[4], "HTTP/1.1", file: file, line: line)
            XCTAssertEqual(f[5], code, path, file: file, line: line)
            XCTAssertEqual(f[6], flags, path, file: file, line: line)
            XCTAssertEqual(f[7], details, path, file: file, line: line)
            XCTAssertEqual(f[19], cluster, path, file: file, line: line)
            XCTAssertEqual(f[24], route, path, file: file, line: line)
            XCTAssertEqual(f[21], "127.0.0.1:\(port)", "DOWNSTREAM_LOCAL_ADDRESS", file: file, line: line)
            XCTAssertTrue(f[22].hasPrefix("127.0.0.1:"), "DOWNSTREAM_REMOTE_ADDRESS \(f[22])", file: file, line: line)
        }
        check("/ok?size=5", code: "200", flags: "-", details: "via_upstream", cluster: "echo", route: "default")
        check("/down", code: "503", flags: "UF", details: "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}", cluster: "down", route: "down_route")
        check("/reset", code: "503", flags: "UC", details: "upstream_reset_before_response_started{connection_termination}", cluster: "reset", route: "reset_route")
        check("/", code: "404", flags: "NR", details: "route_not_found", cluster: "-", route: "-")
        check("/held/2", code: "503", flags: "UO", details: "upstream_reset_before_response_started{overflow}", cluster: "held", route: "held_route")
        check("/held/1", code: "504", flags: "UT", details: "response_timeout", cluster: "held", route: "held_route")
        if let ok = byPath["/ok?size=5"] {
            XCTAssertEqual(ok[11], "5", "BYTES_SENT")
            XCTAssertEqual(ok[15], "ops-test", "USER-AGENT")
            XCTAssertEqual(ok[16], "rid-1", "X-REQUEST-ID")
            XCTAssertEqual(ok[17], "known", ":AUTHORITY")
            XCTAssertEqual(ok[18], "127.0.0.1:\(upstream.port)", "UPSTREAM_HOST")
            XCTAssertEqual(ok[9], "-", "UPSTREAM_TRANSPORT_FAILURE_REASON")
        }
        XCTAssertEqual(byPath["/down"]?[18], "127.0.0.1:\(down)", "UPSTREAM_HOST of the failed connect")
        print("ACCESS LOG LINE: \(lines.first { $0.contains("/ok?size=5") } ?? "")")

        let json = waitForLines(jsonLog, count: 6)
        XCTAssertEqual(json.count, 6)
        let objects = json.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(objects.count, 6, json.joined(separator: "\n"))
        let flags = Set(objects.compactMap { $0["flags"] as? String })
        XCTAssertEqual(flags, ["-", "UF", "UC", "NR", "UO", "UT"])
        let nr = objects.first { $0["flags"] as? String == "NR" }
        XCTAssertEqual(nr?["code"] as? Int, 404, "numbers stay numbers in json_format")
        XCTAssertTrue(nr?["cluster"] is NSNull, "a missing value is null")
        XCTAssertEqual(nr?["worker"] as? Int, 0)
        XCTAssertEqual(ops.stats().value("access_log.dropped"), 0)
    }

    func testReopenOnRotation() throws {
        let upstream = try UpstreamEchoServer(io: .epoll)
        defer { upstream.stop() }
        let log = opsTempPath("rotate.log")
        let ops = try startOps(opsYAML(virtualHosts: dataPathCatchAll("echo"), clusters: dataPathCluster("echo", ports: [upstream.port]),
                                       accessLog: opsFileLogger(log)), concurrency: 1)
        defer {
            ops.stop()
            unlink(log)
            unlink(log + ".1")
        }
        let c = try TestConnection(port: ops.proxy.port(of: "http")!)
        XCTAssertEqual(c.get("/before")?.status, 200)
        XCTAssertEqual(waitForLines(log, count: 1).count, 1)
        rename(log, log + ".1")
        ops.accessLogs.reopen()  // what SIGUSR1 does (OpsSignalTests sends the signal itself)
        // The reopen takes effect on the writer thread: send until a line lands in the new file.
        var sent = 0
        XCTAssertTrue(Wait.until {
            if c.get("/after")?.status == 200 { sent += 1 }
            return !waitForLines(log, count: 0).isEmpty
        }, "nothing reached the reopened file")
        let fresh = waitForLines(log, count: 1)
        XCTAssertTrue(fresh.last?.contains("\"GET /after HTTP/1.1\" 200 - 0 0 ") ?? false, fresh.last ?? "")
        // Every request is in exactly one of the two files.
        XCTAssertEqual(Wait.value { () -> Int? in
            let total = waitForLines(log + ".1", count: 0).count + waitForLines(log, count: 0).count
            return total == sent + 1 ? total : nil
        }, sent + 1)
    }
}
