import Foundation
import Glibc
import XCTest

/// LDS updates that add, remove and move listeners, against real Envoy 1.40 (the set-up of
/// DynamicConfigDifferentialTests: each proxy has its own files and ports). After each step both
/// must agree on the answers (a new listener serves, a removed one refuses, an in-flight
/// request on a removed listener gets its response with `connection: close`), the
/// `listener_manager` and `lds` stats, the removed listener's `listener.<address>.*` stats
/// (kept while it drains, gone after), /listeners and /config_dump's active dynamic listeners;
/// at the end, the lines the added listener's access log wrote over the steps.
/// Envoy runs with `--drain-strategy immediate`: Ballast's drain closes as that strategy does.
final class LDSAddRemoveDifferentialTests: XCTestCase {
    static let statNames = ["listener_manager.listener_added", "listener_manager.listener_modified",
                            "listener_manager.listener_removed", "listener_manager.total_listeners_active",
                            "listener_manager.total_listeners_draining", "listener_manager.total_listeners_warming",
                            "listener_manager.lds.update_attempt", "listener_manager.lds.update_success",
                            "listener_manager.lds.update_rejected", "listener_manager.lds.update_failure",
                            "listener_manager.lds.version_text"]

    /// The steps, as the README's feature table lists them.
    static let stepNames = [
        "start",
        "a listener added: it answers, the first stays",
        "the added listener's route changed: listener_modified, the same port answers the new body",
        "the first removed with a request in flight on a keep-alive connection",
        "a listener moved to another port: the old port refuses, the new answers",
        "a listener added on a port in use: update_rejected, the running set stays",
    ]

    /// The ports one proxy uses (each proxy has its own).
    struct Ports {
        let first: Int, extra: Int, moved: Int, taken: Int
    }

    /// A listener answering `direct` itself, or routing to dyn_cluster (dyn_listener as the
    /// subject's first LDS file has it: stat_prefix `dyn`); with `log`, an access log to that file.
    static func listener(_ name: String, port: Int, direct: String?, log: String? = nil) -> String {
        let action = direct.map { "direct_response: {status: 200, body: {inline_string: \"\($0)\"}}" } ?? "route: {cluster: dyn_cluster}"
        let accessLog = log.map { path in
            """
                    access_log:
                    - name: envoy.access_loggers.file
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
                        path: \(path)
                        log_format: {text_format_source: {inline_string: "\(logFormat)\\n"}}

            """
        } ?? ""
        return """
        - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
          name: \(name)
          address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
          filter_chains:
          - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: \(name == "dyn_listener" ? "dyn" : name)
        \(accessLog)        http_filters:
                - name: envoy.filters.http.router
                  typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
                route_config:
                  virtual_hosts:
                  - name: all
                    domains: ["*"]
                    routes:
                    - match: {prefix: "/"}
                      \(action)

        """
    }

    /// The added listener's access-log format (its lines are compared at the end).
    static let logFormat = "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %BYTES_SENT% %REQ(HOST)%"

    /// The file the added listener `extra` logs to.
    static func extraLog(_ s: DynamicConfigDifferentialTests.Subject) -> String { s.dir.appendingPathComponent("extra.log").path }

    static func lds(_ version: String, _ listeners: [String]) -> String {
        "version_info: \(version)\nresources:\n" + listeners.joined()
    }

    /// Answers the listener `extra` gives over the steps (its access-log lines).
    static let extraAnswers = 5

    /// What one proxy shows after a step.
    struct View: Equatable {
        var answers: [String] = []
        var stats: [String: String] = [:]
        var listeners: [String] = []
        var dumped: [String] = []
        var dumpedDraining: [String] = []
    }

    static func stats(_ s: DynamicConfigDifferentialTests.Subject, listenerPorts: [Int]) throws -> [String: String] {
        var out: [String: String] = [:]
        for line in try s.proxy.adminGet("/stats").text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            if statNames.contains(name) { out[name] = value }
            // The listeners' own scopes, by role: `listener.<address>.downstream_cx_total`.
            for (role, port) in zip(["first", "extra", "moved", "taken"], listenerPorts) where name == "listener.127.0.0.1_\(port).downstream_cx_total" {
                out["listener.<\(role)>.downstream_cx_total"] = value
            }
        }
        return out
    }

    /// The listener names of /listeners, and of /config_dump's dynamic listeners with an
    /// `active_state` and with a `draining_state`.
    static func names(_ s: DynamicConfigDifferentialTests.Subject) throws -> ([String], [String], [String]) {
        let listed = try s.proxy.adminGet("/listeners").text.split(separator: "\n").map { String($0.split(separator: ":")[0]) }.sorted()
        let dump = try JSONSerialization.jsonObject(with: Data(s.proxy.adminGet("/config_dump").body)) as? [String: Any]
        var dumped: [String] = [], draining: [String] = []
        for config in dump?["configs"] as? [[String: Any]] ?? [] where (config["@type"] as? String)?.hasSuffix("ListenersConfigDump") == true {
            for l in config["dynamic_listeners"] as? [[String: Any]] ?? [] {
                if l["active_state"] != nil { dumped.append(l["name"] as? String ?? "?") }
                if l["draining_state"] != nil { draining.append(l["name"] as? String ?? "?") }
            }
        }
        return (listed, dumped.sorted(), draining.sorted())
    }

    /// `200 body` on a fresh connection, or `refused`.
    static func answer(_ port: Int) -> String {
        guard let c = try? RawClient(port: port) else { return "refused" }
        c.send("GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        guard let r = c.readResponse() else { return "no response" }
        return "\(r.status) \(r.text)"
    }

    func testListenersAddedRemovedAndMovedAgreeWithEnvoy() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-lds-add-remove-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        signal(SIGPIPE, SIG_IGN)
        // Slow enough that the update lands while the request waits; the drain time is longer.
        let upstream = try RecordingUpstream(replyDelayMicros: 1_500_000)
        defer { upstream.stop() }
        let envoy = try DynamicConfigDifferentialTests.Subject("envoy", root: root, dead: upstream.port) { config in
            (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error",
                           "--drain-time-s", "5", "--drain-strategy", "immediate"])
        }
        defer { envoy.proxy.stop() }
        let ballast = try DynamicConfigDifferentialTests.Subject("ballast", root: root, dead: upstream.port) { config in
            (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "5"])
        }
        defer { ballast.proxy.stop() }
        try envoy.proxy.waitReady()
        try ballast.proxy.waitReady()
        var ports: [String: Ports] = [:]
        var held: [Int32] = []
        defer { for fd in held { Glibc.close(fd) } }
        for s in [envoy, ballast] {
            let taken = try freePort()
            held.append(try Self.listenOn(taken))
            ports[s.proxy.name] = Ports(first: s.listenerPort, extra: try freePort(), moved: try freePort(), taken: taken)
        }
        let lds = "listener_manager.lds.update_attempt"
        // Each step acts on one subject and returns what it saw on the way (the in-flight answer).
        typealias Step = (name: String, act: (DynamicConfigDifferentialTests.Subject, Ports) throws -> [String], attempts: Int)
        let steps: [Step] = [
            ("start", { _, _ in [] }, 1),
            ("a listener added: it answers, the first stays", { s, p in
                try Self.updateLDS(s, Self.lds("v2", [Self.listener("dyn_listener", port: p.first, direct: nil),
                                                          Self.listener("extra", port: p.extra, direct: "extra", log: Self.extraLog(s))]))
                try s.wait(lds, 2)
                return [Self.answer(p.extra)]
            }, 2),
            ("the added listener's route changed: listener_modified, the same port answers the new body", { s, p in
                try Self.updateLDS(s, Self.lds("v2b", [Self.listener("dyn_listener", port: p.first, direct: nil),
                                                       Self.listener("extra", port: p.extra, direct: "extra2", log: Self.extraLog(s))]))
                try s.wait(lds, 3)
                return [Self.answer(p.extra)]
            }, 3),
            ("the first removed with a request in flight on a keep-alive connection", { s, p in
                let c = try RawClient(port: p.first)
                c.send("GET /slow HTTP/1.1\r\nHost: example.com\r\n\r\n")
                // The request reaches the upstream (which holds it) before the update.
                let deadline = Date().addingTimeInterval(5)
                while upstream.takeHeads().isEmpty && Date() < deadline { usleep(5_000) }
                try Self.updateLDS(s, Self.lds("v3", [Self.listener("extra", port: p.extra, direct: "extra2", log: Self.extraLog(s))]))
                try s.wait(lds, 4)
                let r = c.readResponse()
                let inFlight = r.map { "in flight: \($0.status) connection=\($0.header("connection") ?? "-")" } ?? "in flight: no response"
                var seen = [inFlight, "first: " + Self.answer(p.first), "extra: " + Self.answer(p.extra)]
                // While it drains (5 s from the update; the response came 1.5 s after the
                // request): counted as draining, its listener stats still shown.
                let draining = try Self.stats(s, listenerPorts: [p.first])
                for name in ["listener_manager.total_listeners_draining", "listener_manager.total_listeners_active", "listener.<first>.downstream_cx_total"] {
                    seen.append("draining: \(name)=\(draining[name] ?? "-")")
                }
                seen.append("draining_state: \(try Self.names(s).2)")
                // Closed by the end of the drain time: Envoy closes it then, Ballast right after
                // the `connection: close` response (docs/dynamic-config.md).
                seen.append("then " + c.closedWithin(seconds: 10))
                // The drain time over: the removed listener's stats are gone.
                try Self.waitDrained(s)
                return seen
            }, 4),
            ("a listener moved to another port: the old port refuses, the new answers", { s, p in
                try Self.updateLDS(s, Self.lds("v4", [Self.listener("extra", port: p.moved, direct: "moved", log: Self.extraLog(s))]))
                try s.wait(lds, 5)
                return ["moved: " + Self.answer(p.moved), "old: " + Self.answer(p.extra)]
            }, 5),
            ("a listener added on a port in use: update_rejected, the running set stays", { s, p in
                try Self.waitDrained(s)
                try Self.updateLDS(s, Self.lds("v5", [Self.listener("extra", port: p.moved, direct: "moved", log: Self.extraLog(s)),
                                                          Self.listener("clash", port: p.taken, direct: "clash")]))
                try s.wait(lds, 6)
                return ["moved: " + Self.answer(p.moved)]
            }, 6),
        ]
        XCTAssertEqual(steps.map(\.name), Self.stepNames, "the README table's rows")
        var report: [String] = []
        var last: [String: View] = [:]
        for step in steps {
            var seen: [String: View] = [:]
            for s in [envoy, ballast] {
                let p = ports[s.proxy.name]!
                var v = View()
                v.answers = try step.act(s, p)
                try s.wait(lds, step.attempts)
                v.stats = try Self.stats(s, listenerPorts: [p.first, p.extra, p.moved, p.taken])
                (v.listeners, v.dumped, v.dumpedDraining) = try Self.names(s)
                seen[s.proxy.name] = v
            }
            let e = seen["envoy"]!, b = seen["ballast"]!
            if e.answers != b.answers { report.append("\(step.name): answers envoy \(e.answers) ballast \(b.answers)") }
            for name in Set(e.stats.keys).union(b.stats.keys).sorted() where e.stats[name] != b.stats[name] {
                report.append("\(step.name): \(name) envoy \(e.stats[name] ?? "-") ballast \(b.stats[name] ?? "-")")
            }
            if e.listeners != b.listeners { report.append("\(step.name): /listeners envoy \(e.listeners) ballast \(b.listeners)") }
            if e.dumped != b.dumped { report.append("\(step.name): dynamic_listeners envoy \(e.dumped) ballast \(b.dumped)") }
            if e.dumpedDraining != b.dumpedDraining {
                report.append("\(step.name): draining_state envoy \(e.dumpedDraining) ballast \(b.dumpedDraining)")
            }
            last = seen
        }
        // Sanity: the steps did what they say (in Ballast; Envoy agreed above).
        let final = try XCTUnwrap(last["ballast"])
        XCTAssertEqual(final.stats["listener_manager.listener_added"], "2")
        XCTAssertEqual(final.stats["listener_manager.listener_removed"], "1")
        XCTAssertEqual(final.stats["listener_manager.listener_modified"], "2")
        XCTAssertEqual(final.stats["listener_manager.lds.update_rejected"], "1")
        XCTAssertEqual(final.listeners, ["extra"])
        // The added listener's access log (added, its route changed, moved, kept through a
        // rejected update): one line per answer it gave, the same lines.
        var logged: [String: [String]] = [:]
        for s in [envoy, ballast] {
            let deadline = Date().addingTimeInterval(10)
            repeat {
                logged[s.proxy.name] = ((try? String(contentsOfFile: Self.extraLog(s), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
                if logged[s.proxy.name]!.count >= Self.extraAnswers { break }
                usleep(50_000)
            } while Date() < deadline
        }
        XCTAssertEqual(logged["ballast"]?.count, Self.extraAnswers)
        if logged["envoy"] != logged["ballast"] {
            report.append("the added listener's access log: envoy \(logged["envoy"] ?? []) ballast \(logged["ballast"] ?? [])")
        }
        if !report.isEmpty { XCTFail("listener add / remove differs from Envoy 1.40:\n" + report.joined(separator: "\n")) }
    }

    /// The subject watches `lds/` (watched_directory): lds.yaml is replaced, then a file moved
    /// into the directory makes both proxies re-read it.
    static func updateLDS(_ s: DynamicConfigDifferentialTests.Subject, _ text: String) throws {
        try s.replace("lds.yaml", text)
        let trigger = s.dir.appendingPathComponent("trigger").path
        try "x".write(toFile: trigger, atomically: false, encoding: .utf8)
        XCTAssertEqual(rename(trigger, s.dir.appendingPathComponent("lds/trigger").path), 0)
    }

    /// Waits (bounded, 15 s) until no listener drains.
    static func waitDrained(_ s: DynamicConfigDifferentialTests.Subject) throws {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if try stats(s, listenerPorts: [])["listener_manager.total_listeners_draining"] == "0" { return }
            usleep(50_000)
        }
        throw DifferentialError("\(s.proxy.name): a listener still drains")
    }

    /// A listening socket on 127.0.0.1:`port` (a port in use).
    static func listenOn(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 8) == 0 else {
            Glibc.close(fd)
            throw DifferentialError("cannot listen on 127.0.0.1:\(port): errno \(errno)")
        }
        return fd
    }
}
