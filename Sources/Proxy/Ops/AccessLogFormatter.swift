import EventLoop
import Glibc

/// The names a record's indices refer to (clusters, hosts, routes) as bytes, for one data-plane
/// generation: built when the log thread first sees that generation, then only indexed.
final class AccessLogNames {
    let generation: UInt32
    let clusters: [[UInt8]]
    let hosts: [[[UInt8]]]
    /// Per listener and filter chain: whether it is HTTP, its routes' names (nil when a route has
    /// none) and its RBAC denial details by index (a record's `detailsArgument`); empty for a
    /// tcp_proxy chain.
    let isHTTP: [[Bool]]
    let routes: [[[[UInt8]?]]]
    let rbacDetails: [[[[UInt8]]]]
    /// Per listener: `host:port` it is bound to (`%DOWNSTREAM_LOCAL_ADDRESS%` when not captured).
    let listenerAddresses: [[UInt8]]

    init(generation: UInt32, plane: DataPlane, boundAddress: (ListenerPlan) -> [UInt8]?) {
        self.generation = generation
        listenerAddresses = plane.listeners.map { boundAddress($0) ?? [0x2D] }
        clusters = plane.clusters.map { Array($0.name.utf8) }
        hosts = plane.clusters.map { $0.hosts.map { Array($0.name.utf8) } }
        func manager(_ l: ListenerPlan, _ chain: ListenerPlan.Chain) -> HTTPPlan? {
            if case .http(let m) = chain { l.httpPlans[m] } else { nil }
        }
        isHTTP = plane.listeners.map { l in l.chains.map { manager(l, $0) != nil } }
        routes = plane.listeners.map { l in
            l.chains.map { manager(l, $0)?.routes.allRoutes.map { $0.name.map { Array($0.utf8) } } ?? [] }
        }
        rbacDetails = plane.listeners.map { l in l.chains.map { manager(l, $0)?.rbacDetails.map { Array($0.utf8) } ?? [] } }
    }
}

/// One finished request as the log thread formats it: the worker's record, its captured request
/// fields (still in the ring slot) and the names and addresses its indices resolve to. One
/// instance, refilled for every record.
final class AccessLogLine {
    /// The record, in storage of its own: operators read its fields in place (no copy per operator).
    let record: UnsafeMutablePointer<AccessRecord> = .allocate(capacity: 1)
    let fields: AccessLogFields
    private(set) var names: AccessLogNames
    /// A listener's bound `host:port` (the plane has the configured address; port 0 binds any).
    private let boundAddress: (ListenerPlan) -> [UInt8]?
    /// Wall-clock nanoseconds of the request start.
    var startWallNanos: Int64 = 0
    private let planes: (UInt32) -> DataPlane

    init(fields: AccessLogFields, boundAddress: @escaping (ListenerPlan) -> [UInt8]?, planes: @escaping (UInt32) -> DataPlane) {
        self.fields = fields
        self.boundAddress = boundAddress
        self.planes = planes
        names = AccessLogNames(generation: 0, plane: planes(0), boundAddress: boundAddress)
        record.initialize(to: AccessRecord())
    }

    deinit {
        record.deinitialize(count: 1)
        record.deallocate()
    }

    /// Points at the next record (its captured bytes stay valid until the ring slot is released).
    func load(_ r: AccessRecord, captured: UnsafeRawBufferPointer, wallOffsetNanos: Int64) {
        record.pointee = r
        fields.load(captured)
        startWallNanos = r.startNanos + wallOffsetNanos
        if r.generation != names.generation { names = AccessLogNames(generation: r.generation, plane: planes(r.generation), boundAddress: boundAddress) }
    }

    /// The record's chain's entry of a per-listener, per-chain table (nil when out of range).
    func chainNames<T>(_ table: [[T]]) -> T? {
        let i = Int(record.pointee.listener), c = Int(record.pointee.chain)
        guard table.indices.contains(i), table[i].indices.contains(c) else { return nil }
        return table[i][c]
    }

    var listenerIsHTTP: Bool { chainNames(names.isHTTP) ?? true }
}

/// Formats access-log lines from a compiled format (Envoy's command operators) straight into a
/// byte buffer: no String, no Foundation, no allocation per line. The wall-clock part of
/// `%START_TIME%` is formatted once per second. Values that need Character semantics (a
/// `:N` truncation of non-ASCII text) take a String detour. Owned by the log thread.
final class AccessLogFormatter {
    let program: AccessLogProgram
    /// Per time format: the second its strftime pieces were formatted for, and their bytes.
    private var timeSeconds: [Int64]
    private let timeBytes: [AccessLogBytes]
    private var timeEnds: [[Int]]
    /// Per time format, per piece: -1 strftime, 0 epoch seconds, n > 0 a fraction of n digits
    /// (plain integers, so the per-line walk touches no reference-counted payload).
    private let timeKinds: [[Int]]
    private let scratch = AccessLogBytes(capacity: 1024)

    static let hostname: String = {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
    // Constants as instance properties: a static one is a `swift_once` check on every use.
    private let hostnameBytes = Array(AccessLogFormatter.hostname.utf8)
    private let detailNames: [[UInt8]] = (0...UInt8.max).map { ResponseDetails(rawValue: $0).map { Array($0.envoyName.utf8) } ?? [] }
    private let http10 = Array("HTTP/1.0".utf8)
    private let http11 = Array("HTTP/1.1".utf8)
    private let http = Array("http".utf8)
    private let connectionFailure = Array("connection_failure".utf8)
    private let delayedConnectError = Array("delayed_connect_error:_".utf8)
    private let tlsVerifyFailureReason = Array("TLS_error:|167772294:SSL_routines::certificate_verify_failed:TLS_error_end".utf8)
    private let tlsFailureReason = Array("TLS_error:TLS_error_end".utf8)

    /// strerror's words joined by `_`, as Envoy prints a transport failure (log thread only).
    static func errnoWords(_ code: Int32) -> [UInt8] {
        Array(String(cString: strerror(code)).replacingOccurrences(of: " ", with: "_").utf8)
    }
    private let null: [UInt8] = Array("null".utf8)

    init(_ program: AccessLogProgram) {
        self.program = program
        timeSeconds = program.timeFormats.map { _ in Int64.min }
        timeBytes = program.timeFormats.map { _ in AccessLogBytes(capacity: 128) }
        timeEnds = program.timeFormats.map { [Int](repeating: 0, count: $0.pieces.count) }
        timeKinds = program.timeFormats.map { f in
            f.pieces.map { piece -> Int in
                switch piece {
                case .strftime: -1
                case .epochSeconds: 0
                case .fraction(let digits): digits
                }
            }
        }
    }

    /// Appends one newline-terminated line to `out`.
    func line(_ e: AccessLogLine, into out: AccessLogBytes) {
        switch program.shape {
        case .text(let ops):
            let start = out.count
            text(ops, e, into: out)
            if out.count == start || out.last != 0x0A { out.append(0x0A) }
        case .json(let members, let omit):
            object(members, omit: omit, e, into: out)
            out.append(0x0A)
        }
    }

    private func text(_ ops: [AccessLogProgram.Op], _ e: AccessLogLine, into out: AccessLogBytes) {
        program.literals.withUnsafeBytes { literals in
            for op in ops {
                switch op {
                case .literal(let start, let count):
                    out.append(UnsafeRawBufferPointer(rebasing: literals[start..<(start + count)]))
                case .value(let v, let maxLength):
                    if !value(v, maxLength: maxLength, e, into: out) { out.append(0x2D) }
                }
            }
        }
    }

    private func object(_ members: [AccessLogProgram.JSONMember], omit: Bool, _ e: AccessLogLine, into out: AccessLogBytes) {
        out.append(0x7B)
        var first = true
        for m in members {
            let mark = out.count
            if !first { out.append(0x2C) }
            out.append(m.key)
            switch m.kind {
            case .object(let nested):
                object(nested, omit: omit, e, into: out)
            case .template(let ops):
                scratch.count = 0
                text(ops, e, into: scratch)
                Self.appendJSONString(scratch.bytes, into: out)
            case .single(let v, let maxLength):
                scratch.count = 0
                if !value(v, maxLength: maxLength, e, into: scratch) {
                    if omit {
                        out.count = mark
                        continue
                    }
                    out.append(null)
                } else if v.isNumeric {
                    out.append(scratch.bytes)
                } else {
                    Self.appendJSONString(scratch.bytes, into: out)
                }
            }
            first = false
        }
        out.append(0x7D)
    }


    /// As `JSONText.string`: quotes, backslash escapes, `\u00XX` for other control bytes.
    static func appendJSONString(_ bytes: UnsafeRawBufferPointer, into out: AccessLogBytes) {
        out.reserve(bytes.count + 2)
        out.append(0x22)
        let hex: StaticString = "0123456789abcdef"
        for b in bytes {
            switch b {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(0x6E)
            case 0x0D: out.append(0x5C); out.append(0x72)
            case 0x09: out.append(0x5C); out.append(0x74)
            case 0..<0x20:
                for c in "\\u00".utf8 { out.append(c) }
                out.append(hex.utf8Start[Int(b >> 4)])
                out.append(hex.utf8Start[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(0x22)
    }

    /// Appends the operator's value (truncated to `maxLength` characters when > 0); false, with
    /// nothing appended, when it has none.
    private func value(_ v: AccessLogProgram.Value, maxLength: Int, _ e: AccessLogLine, into out: AccessLogBytes) -> Bool {
        let start = out.count
        guard raw(v, e, into: out) else { return false }
        if maxLength > 0 && out.count - start > maxLength {
            if out.isSimpleASCII(from: start) {
                out.count = start + maxLength
            } else {
                let s = out.string(from: start)
                if s.count > maxLength { out.replace(from: start, with: String(s.prefix(maxLength))) }
            }
        }
        return true
    }

    private func raw(_ v: AccessLogProgram.Value, _ e: AccessLogLine, into out: AccessLogBytes) -> Bool {
        let r = e.record  // a pointer: r.pointee.x reads one field
        switch v {
        case .startTime(let index):
            startTime(index, e.startWallNanos, into: out)
        case .request(let first, let second):
            return request(first, e, into: out) || request(second, e, into: out)
        case .upstreamServiceTime:
            guard r.pointee.upstreamServiceNanos >= 0 else { return false }
            out.appendDecimal(Int(r.pointee.upstreamServiceNanos / 1_000_000))
        case .protocolName:
            guard e.listenerIsHTTP else { return false }
            out.append(r.pointee.http10 ? http10 : http11)
        case .responseCode: out.appendDecimal(Int(r.pointee.responseCode))
        case .responseFlags:
            out.reserve(64)
            out.count += r.pointee.flags.write(into: UnsafeMutableRawBufferPointer(start: out.base + out.count, count: 64))
        case .responseCodeDetails:
            // A stream the client left before any response has code 0 and Envoy's
            // `downstream_remote_disconnect`; one with neither code nor details prints `-`.
            guard e.listenerIsHTTP && (r.pointee.responseCode > 0 || r.pointee.details != .viaUpstream) else { return false }
            if let details = e.chainNames(e.names.rbacDetails), Int(r.pointee.detailsArgument) > 0,
               Int(r.pointee.detailsArgument) < details.count {
                out.append(details[Int(r.pointee.detailsArgument)])  // the matched RBAC policy
            } else {
                out.append(detailNames[Int(r.pointee.details.rawValue)])
            }
        case .transportFailureReason:
            guard r.pointee.flags.contains(.upstreamConnectionFailure) else { return false }
            guard e.listenerIsHTTP else {
                // tcp_proxy: the socket's error as Envoy words it; none after a connect_timeout.
                guard r.pointee.detailsArgument > 0 else { return false }
                // A failed TLS handshake: Envoy's frame around the TLS library's text (OpenSSL's
                // here, BoringSSL's in Envoy), as in %RESPONSE_CODE_DETAILS% on the HTTP path.
                if Int32(r.pointee.detailsArgument) == ProxyWorkerTLS.tcpVerifyFailureErrno { out.append(tlsVerifyFailureReason); return true }
                if Int32(r.pointee.detailsArgument) == ProxyWorkerTLS.tcpFailureErrno { out.append(tlsFailureReason); return true }
                out.append(delayedConnectError)
                out.append(Self.errnoWords(Int32(r.pointee.detailsArgument)))
                return true
            }
            // A failed upstream handshake: Envoy's TLS frame, as in the details and on tcp_proxy.
            switch r.pointee.details {
            case .tlsVerifyFailure: out.append(tlsVerifyFailureReason)
            case .tlsFailure: out.append(tlsFailureReason)
            default: out.append(connectionFailure)
            }
        case .bytesReceived: out.appendDecimal(r.pointee.bytesReceived)
        case .bytesSent: out.appendDecimal(r.pointee.bytesSent)
        case .duration: out.appendDecimal(Int(r.pointee.durationNanos / 1_000_000))
        case .upstreamHost:
            // ORIGINAL_DST clusters: the host is the downstream's original destination.
            if r.pointee.originalDstHost.isSet { Self.appendAddress(r.pointee.originalDstHost, into: out); return true }
            let names = e.names
            let c = Int(r.pointee.cluster), h = Int(r.pointee.host)
            guard names.hosts.indices.contains(c), names.hosts[c].indices.contains(h) else { return false }
            out.append(names.hosts[c][h])
        case .upstreamLocal:
            guard r.pointee.upstreamLocal.isSet else { return false }
            Self.appendAddress(r.pointee.upstreamLocal, into: out)
        case .upstreamCluster:
            let c = Int(r.pointee.cluster)
            guard e.names.clusters.indices.contains(c) else { return false }
            out.append(e.names.clusters[c])
        case .downstreamLocal:
            if let a = e.fields.value(e.fields.localSlot) {
                Self.appendAddress(a, withPort: true, into: out)
            } else {
                let l = Int(r.pointee.listener)
                guard e.names.listenerAddresses.indices.contains(l) else { out.append(0x2D); return true }
                out.append(e.names.listenerAddresses[l])
            }
        case .downstreamLocalWithoutPort:
            guard let a = e.fields.value(e.fields.localSlot) else { return false }
            Self.appendAddress(a, withPort: false, into: out)
        case .downstreamRemote:
            guard let a = e.fields.value(e.fields.peerSlot) else { return false }
            Self.appendAddress(a, withPort: true, into: out)
        case .downstreamRemoteWithoutPort:
            guard let a = e.fields.value(e.fields.peerSlot) else { return false }
            Self.appendAddress(a, withPort: false, into: out)
        case .routeName:
            let route = Int(r.pointee.route)
            guard route >= 0, e.listenerIsHTTP, let routes = e.chainNames(e.names.routes),
                  routes.indices.contains(route), let name = routes[route] else { return false }
            out.append(name)
        case .threadID: out.appendDecimal(Int(r.pointee.worker))
        case .hostname: out.append(hostnameBytes)
        case .downstreamTLSVersion:
            guard let name = TLSVersionName.bytes(r.pointee.tlsVersion) else { return false }
            out.append(name)
        case .requestedServerName:
            guard let name = e.fields.value(e.fields.serverNameSlot), name.count > 0 else { return false }
            out.append(name)
        case .none: return false
        }
        return true
    }


    @inline(__always)
    private func request(_ slot: Int, _ e: AccessLogLine, into out: AccessLogBytes) -> Bool {
        if slot == AccessLogProgram.schemeSlot {
            guard e.fields.value(AccessLogFields.methodSlot) != nil else { return false }
            out.append(http)
            return true
        }
        guard let v = e.fields.value(slot) else { return false }
        out.append(v)
        return true
    }

    /// `a.b.c.d:port` for IPv4 without allocating; other families through `SocketAddress`.
    static func appendAddress(_ raw: UnsafeRawBufferPointer, withPort: Bool, into out: AccessLogBytes) {
        if raw.count >= MemoryLayout<sockaddr_in>.size,
           Int32(raw.loadUnaligned(fromByteOffset: 0, as: sa_family_t.self)) == AF_INET {
            for i in 0..<4 {
                if i > 0 { out.append(0x2E) }
                out.appendDecimal(Int(raw[4 + i]))
            }
            if withPort {
                out.append(0x3A)
                out.appendDecimal(Int(UInt16(raw[2]) << 8 | UInt16(raw[3])))
            }
            return
        }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw.prefix($0.count))) }
        let a = SocketAddress(storage: storage, length: socklen_t(raw.count))
        var text = withPort ? a.description : a.host
        text.withUTF8 { out.append(UnsafeRawBufferPointer($0)) }
    }

    /// `host:port` of a compact address, through the sockaddr writer above.
    static func appendAddress(_ a: CompactAddress, into out: AccessLogBytes) {
        a.socketAddress.withSockAddr { sa, length in
            appendAddress(UnsafeRawBufferPointer(start: sa, count: Int(length)), withPort: true, into: out)
        }
    }

    private func startTime(_ index: Int, _ wallNanos: Int64, into out: AccessLogBytes) {
        let second = wallNanos / 1_000_000_000
        let fraction = Int(wallNanos % 1_000_000_000)
        let cache = timeBytes[index]
        if timeSeconds[index] != second {
            timeSeconds[index] = second
            cache.count = 0
            var seconds = time_t(second)
            var tm = tm()
            gmtime_r(&seconds, &tm)
            for (k, piece) in program.timeFormats[index].pieces.enumerated() {
                if case .strftime(let f) = piece {
                    cache.reserve(256)
                    let at = cache.base + cache.count
                    cache.count += at.withMemoryRebound(to: CChar.self, capacity: 256) { buf in
                        f.withUnsafeBufferPointer { Glibc.strftime(buf, 255, $0.baseAddress!, &tm) }
                    }
                }
                timeEnds[index][k] = cache.count
            }
        }
        timeKinds[index].withUnsafeBufferPointer { kinds in
            timeEnds[index].withUnsafeBufferPointer { ends in
                var from = 0
                for k in 0..<kinds.count {
                    switch kinds[k] {
                    case -1:
                        out.append(UnsafeRawBufferPointer(start: cache.base + from, count: ends[k] - from))
                    case 0:
                        out.appendDecimal(Int(second))
                    case let digits:
                        var divisor = 1
                        for _ in digits..<9 { divisor *= 10 }
                        out.appendPadded(fraction / divisor, width: digits)
                    }
                    from = ends[k]
                }
            }
        }
    }

    /// `2021-07-07T00:54:08.074Z`, or the operator's format (see `AccessLogProgram.timeFormat`):
    /// for the admin and log messages, not the access-log path.
    static func startTime(_ wallNanos: Int64, format: String?) -> String {
        let f = AccessLogFormatter(AccessLogProgram(timeFormat: format))
        let out = AccessLogBytes(capacity: 128)
        f.startTime(0, wallNanos, into: out)
        return out.string(from: 0)
    }
}
