import EventLoop
import Foundation
import Glibc

/// Everything one access-log line is made of: the worker's record, the request fields it
/// captured, and the snapshot its indices refer to. Built on the log thread.
struct AccessLogEntry {
    let record: AccessRecord
    let fields: AccessLogCapture.Fields
    let plane: DataPlane
    /// The listener's bound address (`%DOWNSTREAM_LOCAL_ADDRESS%` when not captured).
    let listenerAddress: String
    /// Wall-clock nanoseconds of the request start.
    let startWallNanos: Int64
}

/// Formats access-log lines from parsed templates (Envoy's command operators).
struct AccessLogFormatter: Sendable {
    let format: AccessLogFormat
    let omitEmptyValues: Bool
    static let hostname: String = {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// One line, newline-terminated.
    func line(_ e: AccessLogEntry) -> String {
        switch format {
        case .text(let t):
            var s = Self.render(t, e, missing: "-")
            if !s.hasSuffix("\n") { s += "\n" }
            return s
        case .json(let fields):
            return object(fields, e) + "\n"
        }
    }

    private func object(_ fields: [AccessLogJSONField], _ e: AccessLogEntry) -> String {
        var parts: [String] = []
        for f in fields {
            let value: String?
            switch f.value {
            case .object(let nested): value = object(nested, e)
            case .template(let t): value = Self.jsonValue(t, e)
            }
            if value == nil && omitEmptyValues { continue }
            parts.append("\(JSONText.string(f.key)):\(value ?? "null")")
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    static let numericOperators: Set<String> = ["RESPONSE_CODE", "BYTES_RECEIVED", "BYTES_SENT", "DURATION", "REQUEST_DURATION",
                                                "RESPONSE_DURATION", "THREAD_ID"]

    /// A JSON value: a number for a lone numeric operator, a string otherwise, nil when empty.
    static func jsonValue(_ t: AccessLogTemplate, _ e: AccessLogEntry) -> String? {
        if t.segments.count == 1, case .command(let c) = t.segments[0] {
            guard let v = value(c, e) else { return nil }
            if numericOperators.contains(c.name), Int(v) != nil { return v }
            return JSONText.string(v)
        }
        return JSONText.string(render(t, e, missing: "-"))
    }

    static func render(_ t: AccessLogTemplate, _ e: AccessLogEntry, missing: String) -> String {
        var out = ""
        for segment in t.segments {
            switch segment {
            case .literal(let s): out += s
            case .command(let c): out += value(c, e) ?? missing
            }
        }
        return out
    }

    /// The operator's value, nil when it has none (`-`).
    static func value(_ c: AccessLogCommand, _ e: AccessLogEntry) -> String? {
        var v = rawValue(c, e)
        if let n = c.maxLength, let s = v, s.count > n { v = String(s.prefix(n)) }
        return v
    }

    private static func rawValue(_ c: AccessLogCommand, _ e: AccessLogEntry) -> String? {
        let r = e.record
        let isHTTP = e.plane.listeners.indices.contains(Int(r.listener)) ? {
            if case .http = e.plane.listeners[Int(r.listener)].kind { return true } else { return false }
        }() : true
        switch c.name {
        case "START_TIME": return startTime(e.startWallNanos, format: c.argument)
        case "REQ":
            for name in (c.argument ?? "").split(separator: "?") {
                if let v = header(String(name), e) { return v }
            }
            return nil
        case "RESP":
            if c.argument?.lowercased() == "x-envoy-upstream-service-time", r.upstreamServiceNanos >= 0 {
                return String(r.upstreamServiceNanos / 1_000_000)
            }
            return nil
        case "TRAILER": return nil
        case "PROTOCOL": return isHTTP ? (r.http10 ? "HTTP/1.0" : "HTTP/1.1") : nil
        case "RESPONSE_CODE": return String(r.responseCode)
        case "RESPONSE_FLAGS": return r.flags.description
        case "RESPONSE_CODE_DETAILS": return isHTTP && r.responseCode > 0 ? r.details.envoyName : nil
        case "CONNECTION_TERMINATION_DETAILS": return nil
        case "UPSTREAM_TRANSPORT_FAILURE_REASON":
            return r.flags.contains(.upstreamConnectionFailure) ? "connection_failure" : nil
        case "BYTES_RECEIVED": return String(r.bytesReceived)
        case "BYTES_SENT": return String(r.bytesSent)
        case "DURATION": return String(r.durationNanos / 1_000_000)
        case "REQUEST_DURATION", "RESPONSE_DURATION": return nil
        case "UPSTREAM_HOST", "UPSTREAM_REMOTE_ADDRESS":
            if e.record.originalDstHost.isSet { return e.record.originalDstHost.socketAddress.description }
            return host(e)?.name
        case "UPSTREAM_CLUSTER": return cluster(e)?.name
        case "UPSTREAM_LOCAL_ADDRESS": return nil
        case "DOWNSTREAM_LOCAL_ADDRESS": return e.fields.local?.description ?? e.listenerAddress
        case "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": return e.fields.local?.host
        case "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": return e.fields.peer?.description
        case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": return e.fields.peer?.host
        case "REQUESTED_SERVER_NAME": return nil
        case "ROUTE_NAME":
            guard r.route >= 0, e.plane.listeners.indices.contains(Int(r.listener)),
                  case .http(let h) = e.plane.listeners[Int(r.listener)].kind,
                  h.routes.allRoutes.indices.contains(Int(r.route)) else { return nil }
            return h.routes.allRoutes[Int(r.route)].name
        case "THREAD_ID": return String(r.worker)
        case "HOSTNAME": return hostname
        case "CONNECTION_ID": return nil
        default: return nil
        }
    }

    private static func cluster(_ e: AccessLogEntry) -> ClusterPlan? {
        let i = Int(e.record.cluster)
        return e.plane.clusters.indices.contains(i) ? e.plane.clusters[i] : nil
    }

    private static func host(_ e: AccessLogEntry) -> HostPlan? {
        guard let c = cluster(e), c.hosts.indices.contains(Int(e.record.host)) else { return nil }
        return c.hosts[Int(e.record.host)]
    }

    private static func header(_ name: String, _ e: AccessLogEntry) -> String? {
        switch name.lowercased() {
        case ":method": return e.fields.method
        case ":path": return e.fields.path
        case ":authority", "host": return e.fields.authority
        case ":scheme": return e.fields.method == nil ? nil : "http"
        case let n: return e.fields.headers[n]
        }
    }

    /// `2021-07-07T00:54:08.074Z`, or the operator's strftime format (`%3f`, `%6f`, `%9f`, `%f` for
    /// fractions of a second, `%s` for epoch seconds), in UTC.
    static func startTime(_ wallNanos: Int64, format: String?) -> String {
        var seconds = time_t(wallNanos / 1_000_000_000)
        let fraction = Int(wallNanos % 1_000_000_000)
        var tm = tm()
        gmtime_r(&seconds, &tm)
        func digits(_ n: Int) -> String {
            let s = String(fraction)
            let padded = String(repeating: "0", count: 9 - s.count) + s
            return String(padded.prefix(n))
        }
        guard let format, !format.isEmpty else {
            return strftime("%Y-%m-%dT%H:%M:%S", &tm) + "." + digits(3) + "Z"
        }
        var f = format
        for (token, n) in [("%3f", 3), ("%6f", 6), ("%9f", 9), ("%f", 9)] { f = f.replacingOccurrences(of: token, with: digits(n)) }
        f = f.replacingOccurrences(of: "%s", with: String(wallNanos / 1_000_000_000))
        return strftime(f, &tm)
    }

    private static func strftime(_ format: String, _ tm: inout tm) -> String {
        var buf = [CChar](repeating: 0, count: 256)
        let n = Glibc.strftime(&buf, 255, format, &tm)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
