import Foundation
import Glibc
import XCTest

/// Real Envoy 1.40 and `ballast proxy` run the same bootstrap in front of the same recording
/// upstream; every case sends the same bytes to both and compares what the client got, what the
/// upstream got, the access-log line and whether the connection stayed open; then selected stats.
/// A difference fails unless IntentionalDifferences.swift lists it (and a listed difference that
/// no longer shows fails too, so the list stays true).
final class DifferentialTests: XCTestCase {
    func testEnvoyAndBallastAgree() throws {
        let envoyBinary = try ensureEnvoyBinary()
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ballast-differential-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        signal(SIGPIPE, SIG_IGN)

        let upstream = try RecordingUpstream()
        defer { upstream.stop() }
        // Every port comes from one allocator: Envoy binds its listeners (SO_REUSEPORT) while
        // Ballast's ports are picked, so a port free a moment ago may soon be Envoy's.
        let allocator = PortAllocator()
        let deadPort = try allocator.next()
        let envoy = try startProxy("envoy", directory: directory, upstream: upstream.port, dead: deadPort, allocator: allocator) { config, admin in
            (envoyBinary, ["-c", config, "--concurrency", "1", "--disable-hot-restart", "-l", "error",
                           "--file-flush-interval-msec", "10", "--drain-time-s", "0"])
        }
        defer { envoy.stop() }
        let ballast = try startProxy("ballast", directory: directory, upstream: upstream.port, dead: deadPort, allocator: allocator) { config, _ in
            (differentialBallastBinary(), ["proxy", "-c", config, "--concurrency", "1", "-l", "error", "--drain-time-s", "0"])
        }
        defer { ballast.stop() }
        try envoy.waitReady()
        try ballast.waitReady()

        var differences: [Difference] = []
        var observed = ""
        for c in differentialCases {
            let e = try observe(c, on: envoy, upstream: upstream)
            let b = try observe(c, on: ballast, upstream: upstream)
            for (aspect, value) in e.aspects.sorted(by: { $0.key < $1.key }) { observed += "\(c.name)/\(aspect): \(value)\n" }
            for (aspect, ev) in e.aspects {
                let bv = b.aspects[aspect] ?? "(missing)"
                if ev != bv { differences.append(Difference(key: "\(c.name)/\(aspect)", envoy: ev, ballast: bv)) }
            }
        }
        for t in tunnelScenarios {
            let e = try observeTunnel(t, on: envoy, upstream: upstream)
            let b = try observeTunnel(t, on: ballast, upstream: upstream)
            for (aspect, value) in e.aspects.sorted(by: { $0.key < $1.key }) { observed += "\(t.name)/\(aspect): \(value)\n" }
            for (aspect, ev) in e.aspects {
                let bv = b.aspects[aspect] ?? "(missing)"
                if ev != bv { differences.append(Difference(key: "\(t.name)/\(aspect)", envoy: ev, ballast: bv)) }
            }
        }
        // BALLAST_DIFF_DUMP=DIR keeps both proxies' admin pages after the traffic, for a look by hand.
        if let dump = ProcessInfo.processInfo.environment["BALLAST_DIFF_DUMP"] {
            try? FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
            try? observed.write(toFile: "\(dump)/envoy.cases", atomically: true, encoding: .utf8)
            for proxy in [envoy, ballast] {
                for (page, file) in [("/stats", "stats"), ("/stats/prometheus", "prometheus"), ("/listeners", "listeners"),
                                     ("/server_info", "server_info"), ("/clusters", "clusters"), ("/stats?usedonly&filter=http%5C.plain", "stats_filtered")] {
                    if let r = try? proxy.adminGet(page) { try? r.text.write(toFile: "\(dump)/\(proxy.name).\(file)", atomically: true, encoding: .utf8) }
                }
            }
        }
        let envoyStats = try stats(envoy)
        let ballastStats = try stats(ballast)
        for name in differentialStats {
            let ev = envoyStats[name] ?? "(absent)"
            let bv = ballastStats[name] ?? "(absent)"
            if ev != bv { differences.append(Difference(key: "stats/\(name)", envoy: ev, ballast: bv)) }
        }

        differences += try adminDifferences(envoy, ballast)

        var report: [String] = []
        for d in differences where IntentionalDifferences.reason(for: d.key) == nil {
            report.append("\(d.key): not an intentional difference\n  envoy:   \(d.envoy)\n  ballast: \(d.ballast)")
        }
        let seen = Set(differences.map(\.key))
        for entry in intentionalDifferences where !entry.key.hasPrefix("config/") && !entry.key.hasPrefix("cache/") && !entry.key.hasPrefix("config_dump/") && !seen.contains(where: { IntentionalDifferences.matches(entry.key, $0) }) {
            report.append("\(entry.key): listed in IntentionalDifferences.swift but Envoy and Ballast now agree; remove the entry")
        }
        if !report.isEmpty {
            XCTFail("\(report.count) difference(s) against Envoy 1.40:\n" + report.joined(separator: "\n"))
        }
    }

    private func startProxy(_ name: String, directory: URL, upstream: Int, dead: Int, allocator: PortAllocator,
                            command: (String, Int) -> (String, [String])) throws -> ProxyUnderTest {
        let admin = try allocator.next()
        var ports: [String: Int] = [:]
        for (listener, _) in differentialListeners { ports[listener] = try allocator.next() }
        let log = directory.appendingPathComponent("\(name)-access.log").path
        let config = directory.appendingPathComponent("\(name).yaml").path
        let yaml = differentialBootstrap(adminPort: admin, ports: ports, upstreamPort: upstream, deadPort: dead, accessLog: log)
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let (executable, arguments) = command(config, admin)
        return try ProxyUnderTest(name: name, executable: executable, arguments: arguments, ports: ports,
                                  adminPort: admin, accessLog: log, directory: directory)
    }

    /// What one proxy did with one case, as comparable text per aspect.
    private func observe(_ c: DifferentialCase, on proxy: ProxyUnderTest, upstream: RecordingUpstream) throws -> Observation {
        _ = upstream.takeHeads()
        let offset = proxy.logOffset()
        let client = try RawClient(port: proxy.ports[c.listener]!)
        // `{port}`: the listener's own port (strip_matching_host_port), which differs per proxy.
        client.send(c.request.replacingOccurrences(of: "{port}", with: String(proxy.ports[c.listener]!)))
        var aspects: [String: String] = [:]
        if let r = client.readResponse(isHEAD: c.isHEAD) {
            aspects["status"] = r.statusLine
            aspects["headers"] = r.fields.map { "\($0.name): \(normalized($0.name, $0.value))" }.sorted().joined(separator: " | ")
            aspects["body"] = r.text
        } else {
            aspects["status"] = "(no response)"
        }
        // The previous case's probe may log late: its line is not this case's.
        let lines = proxy.logLines(after: offset) { !$0.hasPrefix("case=probe ") }
        aspects["log"] = lines.isEmpty ? "(no line)" : lines.map(normalizedLogLine).joined(separator: " || ")
        let heads = upstream.takeHeads()
        aspects["upstream"] = heads.isEmpty ? "(nothing)" : heads.map(normalizedHead).joined(separator: " || ")
        // Still open? A second request on the same connection answers that without waiting.
        client.send("GET /direct HTTP/1.1\r\nHost: example.com\r\nX-Case: probe\r\n\r\n")
        aspects["connection"] = client.readResponse() == nil ? "closed" : "kept open"
        return Observation(aspects: aspects)
    }

    /// One WebSocket tunnel: the 101, the echoes, how it ends, the access-log line and what the
    /// upstream received.
    private func observeTunnel(_ t: TunnelScenario, on proxy: ProxyUnderTest, upstream: RecordingUpstream) throws -> Observation {
        _ = upstream.takeHeads()
        let offset = proxy.logOffset()
        let client = try RawClient(port: proxy.ports["upgrade"]!)
        client.send(t.request)
        var aspects: [String: String] = [:]
        guard let r = client.readResponse() else {
            return Observation(aspects: ["status": "(no response)"])
        }
        aspects["status"] = r.statusLine
        aspects["headers"] = r.fields.map { "\($0.name): \(normalized($0.name, $0.value))" }.sorted().joined(separator: " | ")
        aspects["echo"] = client.readText(until: "HELLO")
        if t.upstreamCloses {
            aspects["end"] = client.readToEnd()
        } else {
            client.send("more")
            aspects["echo-2"] = client.readText(until: "MORE")
            client.shutdownBoth()
        }
        let lines = proxy.logLines(after: offset) { !$0.hasPrefix("case=probe ") }
        aspects["log"] = lines.isEmpty ? "(no line)" : lines.map(normalizedLogLine).joined(separator: " || ")
        let heads = upstream.takeHeads()
        aspects["upstream"] = heads.isEmpty ? "(nothing)" : heads.map(normalizedHead).joined(separator: " || ")
        return Observation(aspects: aspects)
    }

    /// Admin pages after the same traffic: Prometheus samples, /stats filters, /listeners, /server_info keys.
    private func adminDifferences(_ envoy: ProxyUnderTest, _ ballast: ProxyUnderTest) throws -> [Difference] {
        var out: [Difference] = []
        func compare(_ key: String, _ get: (ProxyUnderTest) throws -> String) rethrows {
            let e = try get(envoy)
            let b = try get(ballast)
            if e != b { out.append(Difference(key: key, envoy: e, ballast: b)) }
        }
        for family in differentialPrometheusFamilies {
            try compare("prometheus/\(family)") { p in
                try p.adminGet("/stats/prometheus").text.split(separator: "\n").filter { line in
                    (line.hasPrefix(family + "{") || line == "# TYPE \(family) counter" || line == "# TYPE \(family) gauge")
                        && !line.contains("prefix=\"admin\"")
                }.sorted().joined(separator: " | ")
            }
        }
        try compare("admin/stats?usedonly&filter") { p in
            try p.adminGet("/stats?usedonly&filter=%5Ehttp%5C.plain%5C.downstream_rq_").text
                .split(separator: "\n").filter { !$0.contains("downstream_rq_time") }.sorted().joined(separator: " | ")
        }
        try compare("admin/stats?filter invalid") { p in
            let r = try p.adminGet("/stats?filter=a(")
            return "\(r.statusLine) \(r.text)"
        }
        try compare("admin/stats?filter RE2") { p in
            try p.adminGet("/stats?filter=%5Ecluster%5C.dead%5C.upstream_cx_(?:connect_fail%7Ctotal)%24").text
        }
        try compare("admin/listeners") { p in
            var text = try p.adminGet("/listeners").text
            for (name, port) in p.ports { text = text.replacingOccurrences(of: "127.0.0.1:\(port)", with: "127.0.0.1:<\(name)>") }
            return text.split(separator: "\n").sorted().joined(separator: " | ")
        }
        try compare("admin/listeners?format=json") { p in
            var text = try p.adminGet("/listeners?format=json").text
            for (name, port) in p.ports { text = text.replacingOccurrences(of: ": \(port)", with: ": \"<\(name)>\"") }
            let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            let rows = (json?["listener_statuses"] as? [[String: Any]] ?? []).map { row in
                let address = (row["local_address"] as? [String: Any])?["socket_address"] as? [String: Any]
                return "\(row["name"] ?? "-") \(address?["address"] ?? "-"):\(address?["port_value"] ?? "-") \(address?.keys.sorted() ?? [])"
            }
            return rows.sorted().joined(separator: " | ")
        }
        try compare("admin/server_info keys") { p in
            let json = try JSONSerialization.jsonObject(with: Data(p.adminGet("/server_info").text.utf8)) as? [String: Any]
            return (json?.keys.filter { $0 != "ballast" }.sorted() ?? []).joined(separator: ",")
        }
        return out
    }

    private func stats(_ proxy: ProxyUnderTest) throws -> [String: String] {
        let r = try proxy.adminGet("/stats")
        var out: [String: String] = [:]
        for line in r.text.split(separator: "\n") {
            guard let colon = line.range(of: ": ") else { continue }
            out[String(line[..<colon.lowerBound])] = String(line[colon.upperBound...])
        }
        return out
    }
}

struct Observation {
    var aspects: [String: String]
}

struct Difference {
    let key: String
    let envoy: String
    let ballast: String
}

/// Values that differ run to run (dates, durations, random ids) become placeholders.
func normalized(_ name: String, _ value: String) -> String {
    switch name.lowercased() {
    case "date": return value.hasSuffix(" GMT") && value.count == 29 ? "<date>" : value
    case "x-envoy-upstream-service-time": return Int(value) != nil ? "<ms>" : value
    case "x-request-id": return isUUID(value) ? "<uuid>" : value
    default: return value
    }
}

func isUUID(_ s: String) -> Bool {
    s.count == 36 && s.allSatisfy { $0.isHexDigit || $0 == "-" } && s.filter { $0 == "-" }.count == 4
}

func normalizedHead(_ head: String) -> String {
    var lines = head.components(separatedBy: "\r\n")
    let requestLine = lines.removeFirst()
    let fields = lines.map { line -> String in
        guard let colon = line.firstIndex(of: ":") else { return line }
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        return "\(name): \(normalized(name, value))"
    }
    return ([requestLine] + fields.sorted()).joined(separator: " | ")
}

func normalizedLogLine(_ line: String) -> String {
    line.split(separator: " ").map { part -> String in
        if part.hasPrefix("rid="), isUUID(String(part.dropFirst(4))) { return "rid=<uuid>" }
        // The upstream connection's ephemeral port differs between runs; its address does not.
        if part.hasPrefix("ulocal="), let colon = part.lastIndex(of: ":"), part[part.index(after: colon)...].allSatisfy(\.isNumber) {
            return part[..<colon] + ":<port>"
        }
        return String(part)
    }.joined(separator: " ")
}

/// Free ports that are distinct from every port it handed out before (`freePort` closes its probe
/// socket, so two calls, or a call and a process still starting, may otherwise share a port).
final class PortAllocator {
    private var taken = Set<Int>()

    func next() throws -> Int {
        while true {
            let p = try freePort()
            if taken.insert(p).inserted { return p }
        }
    }
}
