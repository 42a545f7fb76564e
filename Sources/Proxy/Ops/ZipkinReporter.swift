import EventLoop
import Glibc
import Synchronization

/// The Zipkin reporter: one thread (`zipkin-reporter`) off the workers' loops. It drains the
/// workers' span rings, encodes each span as Zipkin v2 JSON, and POSTs them to the connection
/// manager's `collector_cluster` over HTTP/1.1 the way Envoy 1.40's Zipkin tracer does: a report
/// per `min_flush_spans` (5) spans of a worker, and every 5 s (`timer_flushed`, one per worker)
/// whatever a worker has pending. Workers only push fixed records into their rings.
public final class ZipkinReporter: Sendable {
    /// `tracing.zipkin.*`, Envoy's names.
    public let spansSent = Atomic<Int>(0)
    public let timerFlushed = Atomic<Int>(0)
    public let reportsSent = Atomic<Int>(0)
    public let reportsDropped = Atomic<Int>(0)
    public let reportsFailed = Atomic<Int>(0)
    public let reportsSkippedNoCluster = Atomic<Int>(0)

    static let minFlushSpans = 5
    static var flushIntervalNanos: Int64 { 5_000_000_000 }
    static let requestTimeoutMillis = 5000

    private let proxy: RunningProxy
    private let currentPlane: @Sendable () -> DataPlane
    private let serviceName: String
    private let nodeID: String
    private let localIPv4: String
    private let stopFlag = Atomic<Bool>(false)
    private let thread = Mutex<LoopThread.Handle?>(nil)

    /// Starts the reporter when some listener traces (has span rings); nil otherwise (an update
    /// adding a listener that traces starts it then).
    static func start(_ proxy: RunningProxy, node: NodeIdentity?, currentPlane: @escaping @Sendable () -> DataPlane) -> ZipkinReporter? {
        guard proxy.traceRings.contains(where: { !$0.isEmpty }) else { return nil }
        let r = ZipkinReporter(proxy: proxy, node: node, currentPlane: currentPlane)
        let handle = LoopThread.start(name: "zipkin-reporter", cpu: nil) { [r] in r.run() }
        r.thread.withLock { $0 = handle }
        return r
    }

    private init(proxy: RunningProxy, node: NodeIdentity?, currentPlane: @escaping @Sendable () -> DataPlane) {
        self.proxy = proxy
        self.currentPlane = currentPlane
        serviceName = node?.cluster ?? ""
        nodeID = node?.id ?? ""
        localIPv4 = Self.localIPv4()
    }

    /// Stops the thread after a last flush of what the rings hold.
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        thread.withLock { $0 }?.join()
    }

    private func run() {
        var real = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        let wallOffsetMicros = (Int64(real.tv_sec) * 1_000_000_000 + Int64(real.tv_nsec) - monotonicNanos()) / 1000
        // By listener name: a plane's listener indices move when an update adds or removes one.
        // A listener an update adds brings its rings: taken when the slot count moves.
        var rings: [(listener: String, ring: AccessRecordRing, started: TracingPlan?)] = []
        var pending: [[String]] = []
        var slotsSeen = 0
        var nextTimer = monotonicNanos() + Self.flushIntervalNanos
        while true {
            let stopping = stopFlag.load(ordering: .acquiring)
            if proxy.slotCount.load(ordering: .acquiring) != slotsSeen {
                let runs = proxy.runs
                for run in runs[slotsSeen...] {
                    for r in run.traceRings {
                        rings.append((run.bound.name, r, run.tracing))
                        pending.append([])
                    }
                }
                slotsSeen = runs.count
            }
            var taken = 0
            for (k, entry) in rings.enumerated() {
                while let span = entry.ring.pop({ r, extra in self.encode(r, extra, wallOffsetMicros: wallOffsetMicros) }) {
                    taken += 1
                    if let span { pending[k].append(span) }
                    if pending[k].count >= Self.minFlushSpans { flush(&pending[k], listener: entry.listener, started: entry.started) }
                }
            }
            if monotonicNanos() >= nextTimer || stopping {
                // Envoy runs a reporter per thread, the main thread's included: each counts its flush.
                if !stopping { timerFlushed.add(proxy.traceRings.first { !$0.isEmpty }.map { $0.count + 1 } ?? 0, ordering: .relaxed) }
                for k in rings.indices { flush(&pending[k], listener: rings[k].listener, started: rings[k].started) }
                nextTimer = monotonicNanos() + Self.flushIntervalNanos
            }
            if stopping { return }
            if taken == 0 { usleep(10_000) }
        }
    }

    // MARK: reports

    /// Reports `spans` of listener `listener` to the collector of its connection manager in the
    /// running configuration, or (a removed listener's last spans) of the one it started with.
    private func flush(_ spans: inout [String], listener: String, started: TracingPlan?) {
        guard !spans.isEmpty else { return }
        let body = "[" + spans.joined(separator: ",") + "]"
        spansSent.add(spans.count, ordering: .relaxed)
        spans.removeAll(keepingCapacity: true)
        let plane = currentPlane()
        let running = plane.listeners.first(where: { $0.name == listener })
        guard let tracing = running.map({ $0.httpPlans.lazy.compactMap(\.tracing).first }) ?? started,
              tracing.collectorCluster >= 0, tracing.collectorCluster < plane.clusters.count,
              let host = plane.clusters[tracing.collectorCluster].hosts.first else {
            reportsSkippedNoCluster.add(1, ordering: .relaxed)
            return
        }
        let status = post(body, to: host.address, path: tracing.collectorEndpoint, hostname: tracing.collectorHostname)
        // Envoy's async client turns a failed connect or a timeout into a 503/504 response, so
        // those count as dropped reports too; only a 202 is a sent one.
        if status == 202 { reportsSent.add(1, ordering: .relaxed) } else { reportsDropped.add(1, ordering: .relaxed) }
    }

    /// POSTs `body` (chunked, as Envoy's async client sends it) and returns the response status
    /// (503 when the connection failed, 504 on the 5 s timeout).
    private func post(_ body: String, to address: SocketAddress, path: String, hostname: String) -> Int {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return 503 }
        defer { close(fd) }
        var timeout = timeval(tv_sec: Self.requestTimeoutMillis / 1000, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard address.withSockAddr({ connect(fd, $0, $1) }) == 0 else { return errno == EINPROGRESS || errno == EAGAIN ? 504 : 503 }
        let payload = Array(body.utf8)
        var request = Array("POST \(path) HTTP/1.1\r\nhost: \(hostname)\r\ncontent-type: application/json\r\nx-envoy-internal: true\r\nx-forwarded-for: \(localIPv4)\r\nx-envoy-expected-rq-timeout-ms: \(Self.requestTimeoutMillis)\r\ntransfer-encoding: chunked\r\n\r\n".utf8)
        request += Array(String(payload.count, radix: 16).utf8) + [13, 10] + payload + Array("\r\n0\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 504 : 503 }
            sent += n
        }
        // The status line is all the counters need.
        var input = [UInt8](repeating: 0, count: 512)
        var have = 0
        while have < 12 {
            let n = input.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + have, $0.count - have, 0) }
            if n <= 0 { return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 504 : 503 }
            have += n
        }
        guard input[0..<9].elementsEqual(Array("HTTP/1.1 ".utf8)) || input[0..<9].elementsEqual(Array("HTTP/1.0 ".utf8)) else { return 503 }
        return input[9..<12].reduce(0) { $0 * 10 + Int($1) - 48 }
    }

    // MARK: span encoding

    /// One span as Zipkin v2 JSON (Envoy 1.40's fields and tags for a shared SERVER span); nil
    /// for a record without its fields.
    private func encode(_ r: AccessRecord, _ extra: UnsafeRawBufferPointer, wallOffsetMicros: Int64) -> String? {
        guard extra.count >= TraceRecordLayout.fixedBytes else { return nil }
        let flags = extra[0]
        func id(_ i: Int) -> UInt64 { UInt64(littleEndian: extra.loadUnaligned(fromByteOffset: 1 + 8 * i, as: UInt64.self)) }
        var fields: [String] = []
        var at = TraceRecordLayout.fixedBytes
        while at + 2 <= extra.count {
            let n = Int(extra[at]) | Int(extra[at + 1]) << 8
            at += 2
            guard at + n <= extra.count else { return nil }
            fields.append(String(decoding: UnsafeRawBufferPointer(rebasing: extra[at..<(at + n)]), as: UTF8.self))
            at += n
        }
        guard fields.count == TraceField.allCases.count else { return nil }
        func f(_ k: TraceField) -> String { fields[k.rawValue] }
        let name = !f(.operationOverride).isEmpty ? f(.operationOverride) : !f(.decorator).isEmpty ? f(.decorator) : f(.host)
        let start = r.startNanos / 1000 + wallOffsetMicros
        let duration = r.durationNanos / 1000
        let traceID = (flags & 1 != 0 ? Self.hex16(id(0)) : "") + Self.hex16(id(1))
        var tags: [(String, String)] = [
            ("component", "proxy"), ("node_id", nodeID),
            ("http.url", f(.scheme) + "://" + f(.host) + f(.path)),
            ("http.method", f(.method)), ("http.protocol", r.http10 ? "HTTP/1.0" : "HTTP/1.1"),
            ("user_agent", f(.userAgent).isEmpty ? "-" : f(.userAgent)),
            ("downstream_cluster", f(.downstreamCluster).isEmpty ? "-" : f(.downstreamCluster)),
            ("request_size", "\(r.bytesReceived)"),
        ]
        if !f(.requestID).isEmpty { tags.append(("guid:x-request-id", f(.requestID))) }
        if !f(.clientTraceID).isEmpty { tags.append(("guid:x-client-trace-id", f(.clientTraceID))) }
        let plane = currentPlane()
        if r.cluster >= 0, Int(r.cluster) < plane.clusters.count {
            let cluster = plane.clusters[Int(r.cluster)].name
            tags.append(("upstream_cluster", cluster))
            tags.append(("upstream_cluster.name", cluster))
        }
        tags.append(("http.status_code", "\(r.responseCode)"))
        tags.append(("response_size", "\(r.bytesSent)"))
        tags.append(("response_flags", r.flags.description))
        if r.responseCode == 0 || (500..<600).contains(r.responseCode) { tags.append(("error", "true")) }
        tags.append(("peer.address", f(.peer)))
        var out = "{\"traceId\":\"\(traceID)\",\"name\":\(Self.json(name)),\"id\":\"\(Self.hex16(id(2)))\""
        if flags & 2 != 0 { out += ",\"parentId\":\"\(Self.hex16(id(3)))\"" }
        out += ",\"kind\":\"SERVER\",\"timestamp\":\(start),\"duration\":\(duration)"
        out += ",\"localEndpoint\":{\"serviceName\":\(Self.json(serviceName)),\"ipv4\":\(Self.json(localIPv4)),\"port\":0}"
        out += ",\"tags\":{" + tags.map { "\(Self.json($0.0)):\(Self.json($0.1))" }.joined(separator: ",") + "}"
        out += ",\"annotations\":[{\"timestamp\":\(start + duration),\"value\":\"ss\"}],\"shared\":true}"
        return out
    }

    static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    static func json(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += "\\u00" + (u.value < 0x10 ? "0" : "") + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// The first non-loopback IPv4 address of this machine (Envoy's local address, which it
    /// reports as the spans' localEndpoint and the reports' x-forwarded-for).
    static func localIPv4() -> String {
        var list: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&list) == 0, let first = list else { return "127.0.0.1" }
        defer { freeifaddrs(list) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let a = p {
            if let sa = a.pointee.ifa_addr, Int32(sa.pointee.sa_family) == AF_INET {
                let addr = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                if UInt32(bigEndian: addr.s_addr) >> 24 != 127 {
                    var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                    var copy = addr
                    inet_ntop(AF_INET, &copy, &text, socklen_t(INET_ADDRSTRLEN))
                    return String(cString: text)
                }
            }
            p = a.pointee.ifa_next
        }
        return "127.0.0.1"
    }
}
