import EventLoop
import Glibc
import HTTP1

/// Which request fields the access log needs, captured by the worker when a request head arrives
/// (the head's bytes are gone by the time the request ends). The worker copies them into a
/// pooled buffer of the stream, then into the record's ring slot; the log writer reads them back.
///
/// Layout: one field after another, each a little-endian UInt16 length (0xFFFF: absent) and the
/// bytes. Fields: `:method`, `:path` (the request target), `:authority`, each header of `headers`
/// in order, then the raw `sockaddr` of the downstream peer and of the local end when needed.
public final class AccessLogCapture: Sendable {
    /// Lower-cased header names (no pseudo-headers).
    public let headers: [String]
    let headerBytes: [[UInt8]]
    public let peerAddress: Bool
    public let localAddress: Bool
    /// `%REQUESTED_SERVER_NAME%` is used: the connection's SNI (from tls_inspector) is captured.
    public let serverName: Bool
    /// Capture budget: the ring's bytes per record.
    static var budget: Int { 512 }
    static var absent: UInt16 { 0xFFFF }
    static let requestIDName: [UInt8] = Array("x-request-id".utf8)

    public init(headers: [String], peerAddress: Bool, localAddress: Bool, serverName: Bool = false) {
        var seen: [String] = []
        for h in headers.map({ $0.lowercased() }) where !h.hasPrefix(":") && !seen.contains(h) { seen.append(h) }
        self.headers = seen
        headerBytes = seen.map { Array($0.utf8) }
        self.peerAddress = peerAddress
        self.localAddress = localAddress
        self.serverName = serverName
    }

    /// What every access-log format of the bootstrap uses.
    public convenience init(_ bootstrap: Bootstrap) { self.init(listeners: bootstrap.listeners) }

    /// What the access-log formats of `listeners` use (a listener an update adds records this).
    public convenience init(listeners: [ListenerConfig]) {
        var names: [String] = []
        var peer = false
        var local = false
        var serverName = false
        for template in AccessLogCapture.templates(listeners) {
            for case .command(let c) in template.segments {
                switch c.name {
                case "REQ":
                    for part in (c.argument ?? "").split(separator: "?") { names.append(String(part)) }
                case "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS":
                    peer = true
                case "DOWNSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":
                    local = true
                case "REQUESTED_SERVER_NAME":
                    serverName = true
                default: break
                }
            }
        }
        self.init(headers: names, peerAddress: peer, localAddress: local, serverName: serverName)
    }

    /// Every template of every access log of every listener.
    static func templates(_ bootstrap: Bootstrap) -> [AccessLogTemplate] { templates(bootstrap.listeners) }

    /// Every template of every access log of `listeners`.
    static func templates(_ listeners: [ListenerConfig]) -> [AccessLogTemplate] {
        var out: [AccessLogTemplate] = []
        func add(_ format: AccessLogFormat) {
            switch format {
            case .text(let t): out.append(t)
            case .json(let fields): addFields(fields)
            }
        }
        func addFields(_ fields: [AccessLogJSONField]) {
            for f in fields {
                switch f.value {
                case .template(let t): out.append(t)
                case .object(let nested): addFields(nested)
                }
            }
        }
        for l in listeners {
            for chain in l.filterChains + (l.defaultFilterChain.map { [$0] } ?? []) {
                for filter in chain.filters {
                    switch filter {
                    case .httpConnectionManager(let h): for log in h.accessLog { add(log.format) }
                    case .tcpProxy(let t): for log in t.accessLog { add(log.format) }
                    }
                }
            }
        }
        return out
    }

    /// Worker thread: appends the fields of the request whose head is `head` to `buffer`.
    func capture(_ head: UnsafeRawBufferPointer, parser p: UnsafeMutablePointer<RequestHeadParser>, fd: Int32,
                 restoredLocal: CompactAddress = CompactAddress(), requestID: (UInt64, UInt64)? = nil,
                 serverName name: UnsafeRawBufferPointer? = nil, into buffer: inout ByteBuffer, pool: BufferPool) {
        guard let base = pool.reserve(Self.budget, in: &buffer) else { return }
        var w = 0
        let limit = Self.budget
        func put(_ range: Range<Int>?) {
            guard w + 2 <= limit else { return }
            guard let range else {
                base.storeBytes(of: Self.absent.littleEndian, toByteOffset: w, as: UInt16.self)
                w += 2
                return
            }
            let n = min(range.count, limit - w - 2)
            base.storeBytes(of: UInt16(n).littleEndian, toByteOffset: w, as: UInt16.self)
            if n > 0 { (base + w + 2).copyMemory(from: head.baseAddress! + range.lowerBound, byteCount: n) }
            w += 2 + n
        }
        put(p.pointee.methodRange)
        put(p.pointee.targetRange)
        put(p.pointee.hostRange)
        for name in headerBytes {
            var found: Range<Int>? = nil
            for i in 0..<p.pointee.headerCount {
                let r = p.pointee.headerNameRange(at: i)
                if r.count == name.count && Self.equalsLowercased(head, r, name) {
                    found = p.pointee.headerValueRange(at: i)
                    break
                }
            }
            if found == nil, let requestID, name == Self.requestIDName, w + 2 + 36 <= limit {
                // The id the proxy generated (Envoy logs it as the request's x-request-id).
                base.storeBytes(of: UInt16(36).littleEndian, toByteOffset: w, as: UInt16.self)
                var uuid = ByteWriter(base + w + 2, capacity: 36)
                uuid.putUUID(requestID.0, requestID.1)
                w += 2 + 36
                continue
            }
            put(found)
        }
        w = putAddresses(fd: fd, restoredLocal: restoredLocal, base: base, at: w, limit: limit)
        w = putServerName(name, base: base, at: w, limit: limit)
        buffer.count += w
    }

    /// Worker thread: the fields of a tcp_proxy connection (no request: every request field is
    /// absent, so the log prints `-` for them, as Envoy does), appended to `buffer`.
    func captureConnection(fd: Int32, restoredLocal: CompactAddress = CompactAddress(), serverName name: UnsafeRawBufferPointer? = nil,
                           into buffer: inout ByteBuffer, pool: BufferPool) {
        guard let base = pool.reserve(Self.budget, in: &buffer) else { return }
        var w = 0
        for _ in 0..<(AccessLogFields.firstHeaderSlot + headerBytes.count) {
            base.storeBytes(of: Self.absent.littleEndian, toByteOffset: w, as: UInt16.self)
            w += 2
        }
        w = putAddresses(fd: fd, restoredLocal: restoredLocal, base: base, at: w, limit: Self.budget)
        w = putServerName(name, base: base, at: w, limit: Self.budget)
        buffer.count += w
    }

    /// Appends the connection's server name (absent when none, or when no format prints it).
    private func putServerName(_ name: UnsafeRawBufferPointer?, base: UnsafeMutableRawPointer, at start: Int, limit: Int) -> Int {
        guard serverName, start + 2 <= limit else { return start }
        guard let name, name.count > 0 else {
            base.storeBytes(of: Self.absent.littleEndian, toByteOffset: start, as: UInt16.self)
            return start + 2
        }
        let n = min(name.count, limit - start - 2)
        base.storeBytes(of: UInt16(n).littleEndian, toByteOffset: start, as: UInt16.self)
        (base + start + 2).copyMemory(from: name.baseAddress!, byteCount: n)
        return start + 2 + n
    }

    /// Appends the peer and local addresses the formats need (each a length and a raw sockaddr);
    /// returns the new write offset.
    private func putAddresses(fd: Int32, restoredLocal: CompactAddress, base: UnsafeMutableRawPointer, at start: Int, limit: Int) -> Int {
        var w = start
        func putAddress(_ get: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let rc = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { get(fd, $0, &length) } }
            guard w + 2 + Int(length) <= limit else { return }
            guard rc == 0 else {
                base.storeBytes(of: Self.absent.littleEndian, toByteOffset: w, as: UInt16.self)
                w += 2
                return
            }
            base.storeBytes(of: UInt16(length).littleEndian, toByteOffset: w, as: UInt16.self)
            withUnsafeBytes(of: &storage) { (base + w + 2).copyMemory(from: $0.baseAddress!, byteCount: Int(length)) }
            w += 2 + Int(length)
        }
        if peerAddress { putAddress { getpeername($0, $1, $2) } }
        if localAddress {
            if restoredLocal.isSet {
                // The original destination the original_dst filter restored is the local address.
                let a = restoredLocal.socketAddress
                putAddress { _, out, len in
                    a.withSockAddr { sa, n in UnsafeMutableRawPointer(out).copyMemory(from: sa, byteCount: Int(n)); len.pointee = n }
                    return 0
                }
            } else {
                putAddress { getsockname($0, $1, $2) }
            }
        }
        return w
    }

    @inline(__always)
    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lower: [UInt8]) -> Bool {
        var j = 0
        for i in range {
            var b = bytes[i]
            if b >= 0x41 && b <= 0x5A { b |= 0x20 }
            if b != lower[j] { return false }
            j += 1
        }
        return true
    }
}

/// Writer side: where each captured field of one record lies in its ring slot (`AccessLogCapture`'s
/// layout), found by one pass over the bytes; reused for every record, no allocation.
final class AccessLogFields {
    static var methodSlot: Int { 0 }
    static var pathSlot: Int { 1 }
    static var authoritySlot: Int { 2 }
    static var firstHeaderSlot: Int { 3 }

    let headerCount: Int
    let peerSlot: Int
    let localSlot: Int
    let serverNameSlot: Int
    /// Per slot: offset of the value in `bytes`, -1 when absent (or not captured).
    private let offsets: UnsafeMutablePointer<Int>
    private let lengths: UnsafeMutablePointer<Int>
    private let slotCount: Int
    private(set) var bytes = UnsafeRawBufferPointer(start: nil, count: 0)

    init(_ capture: AccessLogCapture) {
        headerCount = capture.headers.count
        var n = Self.firstHeaderSlot + headerCount
        peerSlot = capture.peerAddress ? n : -1
        if capture.peerAddress { n += 1 }
        localSlot = capture.localAddress ? n : -1
        if capture.localAddress { n += 1 }
        serverNameSlot = capture.serverName ? n : -1
        if capture.serverName { n += 1 }
        slotCount = n
        offsets = .allocate(capacity: max(1, n))
        lengths = .allocate(capacity: max(1, n))
    }

    deinit {
        offsets.deallocate()
        lengths.deallocate()
    }

    /// Reads the layout of one slot's captured bytes (valid until the next `load`).
    func load(_ raw: UnsafeRawBufferPointer) {
        bytes = raw
        var r = 0
        for slot in 0..<slotCount {
            offsets[slot] = -1
            guard r + 2 <= raw.count else { continue }
            let n = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: r, as: UInt16.self))
            r += 2
            if n == AccessLogCapture.absent { continue }
            guard r + Int(n) <= raw.count else { r = raw.count; continue }
            offsets[slot] = r
            lengths[slot] = Int(n)
            r += Int(n)
        }
    }

    /// The captured value of `slot`, nil when absent.
    @inline(__always)
    func value(_ slot: Int) -> UnsafeRawBufferPointer? {
        guard slot >= 0, slot < slotCount, offsets[slot] >= 0 else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[offsets[slot]..<(offsets[slot] + lengths[slot])])
    }

    /// The captured peer (`peerSlot`) or local (`localSlot`) address.
    func address(_ slot: Int) -> SocketAddress? {
        guard let v = value(slot) else { return nil }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: v.prefix($0.count))) }
        return SocketAddress(storage: storage, length: socklen_t(v.count))
    }
}
