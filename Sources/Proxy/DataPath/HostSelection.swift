import EventLoop
import Glibc
import HTTP1

/// Host selection tables of one cluster, built once at compile time (immutable, shared by every
/// worker): endpoint weights for ROUND_ROBIN (a smooth weighted round-robin sequence) and RANDOM
/// (cumulative weights), and the RING_HASH ring. Empty tables mean "unweighted".
public struct HostSchedule: Sendable {
    /// Host indices in smooth weighted round-robin order (nginx's algorithm), one period long;
    /// empty when all weights are equal (plain round robin).
    let roundRobin: [Int32]
    /// Running sums of the weights (RANDOM); empty when all weights are equal.
    let cumulative: [Int]
    /// RING_HASH: sorted point hashes and the host of each point.
    let ringHashes: [UInt64]
    let ringHosts: [Int32]

    /// The longest weighted round-robin period kept; larger weight sums are scaled down.
    static let maxPeriod = 1 << 16

    init(hosts: [HostPlan], policy: LoadBalancingPolicy, minimumRingSize: Int, maximumRingSize: Int) {
        let weights = hosts.map { max(1, $0.weight) }
        let weighted = Set(weights).count > 1
        var rr: [Int32] = []
        var cumulative: [Int] = []
        if weighted && policy == .roundRobin {
            var w = weights
            let g = w.reduce(0) { Self.gcd($0, $1) }
            w = w.map { $0 / max(1, g) }
            let total = w.reduce(0, +)
            if total > Self.maxPeriod { w = w.map { max(1, $0 * Self.maxPeriod / total) } }
            // Smooth weighted round robin: each step every host gains its weight, the richest is
            // picked and pays the total. Over one period each host is picked exactly `weight` times.
            var current = [Int](repeating: 0, count: w.count)
            let sum = w.reduce(0, +)
            rr.reserveCapacity(sum)
            for _ in 0..<sum {
                var best = 0
                for i in w.indices {
                    current[i] += w[i]
                    if current[i] > current[best] { best = i }
                }
                current[best] -= sum
                rr.append(Int32(best))
            }
        }
        if weighted && policy == .random {
            var running = 0
            for w in weights {
                running += w
                cumulative.append(running)
            }
        }
        var points: [(UInt64, Int32)] = []
        if policy == .ringHash && !hosts.isEmpty {
            // Envoy's ring: weights normalised to sum 1, a scale that gives the lightest host a
            // whole number of points within [minimumRingSize, maximumRingSize], then running sums
            // so each host gets its share; each point is xxHash64 of "<ip:port>_<i>". Built the
            // same way, a key lands on the same host as in Envoy.
            let total = Double(weights.reduce(0, +))
            let normalized = weights.map { Double($0) / total }
            let lightest = normalized.min()!
            let scale = min((lightest * Double(minimumRingSize)).rounded(.up) / lightest, Double(maximumRingSize))
            points.reserveCapacity(Int(scale.rounded(.up)))
            var current = 0.0
            var target = 0.0
            for (h, host) in hosts.enumerated() {
                target += scale * normalized[h]
                var i = 0
                while current < target {
                    points.append((XXHash64.hash("\(host.name)_\(i)"), Int32(h)))
                    i += 1
                    current += 1
                }
            }
            points.sort { $0.0 < $1.0 }
        }
        roundRobin = rr
        self.cumulative = cumulative
        ringHashes = points.map(\.0)
        ringHosts = points.map(\.1)
    }

    static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    /// The host for a draw `r` under weighted random (cumulative must not be empty).
    func weightedRandom(_ r: UInt64) -> Int {
        let pick = Int(r % UInt64(cumulative.last!))
        var lo = 0
        var hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > pick { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// The host owning `hash` on the ring: the first point at or after it, wrapping around.
    func ringHost(_ hash: UInt64) -> Int { Int(ringHosts[ringIndex(hash)]) }

    /// The index of the first ring point at or after `hash`, wrapping around.
    func ringIndex(_ hash: UInt64) -> Int {
        var lo = 0
        var hi = ringHashes.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ringHashes[mid] < hash { lo = mid + 1 } else { hi = mid }
        }
        return lo == ringHashes.count ? 0 : lo
    }

    /// A request key's hash (header value, cookie value, source IP text): xxHash64, as Envoy's
    /// hash policies, so the ring lookup agrees with Envoy's.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 { XXHash64.hash(bytes) }

    static func hash(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { hash($0) } }
}

/// LEAST_REQUEST with unequal endpoint weights, as Envoy runs it: an earliest-deadline-first
/// schedule where a host's weight is `load_balancing_weight / (active requests + 1)` at the time
/// it is scheduled (`active_request_bias` 1); a picked host is scheduled again `1 / weight`
/// later. With no requests in flight this is weighted round robin. Per worker; a scan over the
/// cluster's hosts per pick (arrays allocated once, no allocation per pick).
struct WeightedLeastRequest {
    var deadlines: [Double]
    var order: [UInt64]
    var counter: UInt64 = 0
    /// Hosts whose weights changed with a reload or DNS refresh rebuild the schedule.
    var hostCount: Int

    init?(_ c: ClusterPlan, seed: Int) {
        guard c.lbPolicy == .leastRequest, Set(c.hosts.map(\.weight)).count > 1 else { return nil }
        hostCount = c.hosts.count
        deadlines = c.hosts.map { 1.0 / Double(max(1, $0.weight)) }
        order = Array(0..<UInt64(c.hosts.count))
        counter = UInt64(c.hosts.count)
        // Workers start at different points of the schedule (Envoy picks a random number first).
        for _ in 0..<(seed % max(1, c.hosts.count)) {
            var best = 0
            for h in deadlines.indices where earlier(h, best) { best = h }
            reschedule(best, weight: Double(max(1, c.hosts[best].weight)))
        }
    }

    /// Host `a` is due before host `b` (deadline, then scheduling order, as Envoy's EDF).
    @inline(__always)
    func earlier(_ a: Int, _ b: Int) -> Bool {
        deadlines[a] < deadlines[b] || (deadlines[a] == deadlines[b] && order[a] < order[b])
    }

    /// The picked host is due again `1 / weight` after its deadline.
    @inline(__always)
    mutating func reschedule(_ h: Int, weight: Double) {
        deadlines[h] += 1.0 / weight
        order[h] = counter
        counter &+= 1
    }
}

/// A route's `hash_policy` entry, compiled.
public struct CompiledHashPolicy: Sendable {
    enum Source: Sendable {
        case header([UInt8])
        case cookie([UInt8])
        case sourceIP
    }

    let source: Source
    let terminal: Bool

    init(_ c: HashPolicyConfig) {
        switch c.source {
        case .header(let name): source = .header(Array(name.lowercased().utf8))
        case .cookie(let name, _, _): source = .cookie(Array(name.utf8))
        case .sourceIP: source = .sourceIP
        }
        terminal = c.terminal
    }
}

/// The downstream peer's address, read once per connection (x-forwarded-for, source-IP hashing).
struct PeerAddress {
    /// 0: not read yet; AF_INET, AF_INET6; -1: unknown (not an IP socket).
    var family: Int32 = 0
    /// The peer's port (`%DOWNSTREAM_REMOTE_ADDRESS%`); next to `family`, so the value is 24 bytes.
    var port: UInt16 = 0
    var high: UInt64 = 0
    var low: UInt64 = 0

    static func read(_ fd: Int32) -> PeerAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        var p = PeerAddress()
        p.family = -1
        guard rc == 0 else { return p }
        if Int32(storage.ss_family) == AF_INET {
            withUnsafeBytes(of: &storage) { raw in
                let sin = raw.load(as: sockaddr_in.self)
                p.family = AF_INET
                p.low = UInt64(UInt32(bigEndian: sin.sin_addr.s_addr))
                p.port = UInt16(bigEndian: sin.sin_port)
            }
        } else if Int32(storage.ss_family) == AF_INET6 {
            withUnsafeBytes(of: &storage) { raw in
                let sin6 = raw.load(as: sockaddr_in6.self)
                p.family = AF_INET6
                p.port = UInt16(bigEndian: sin6.sin6_port)
                withUnsafeBytes(of: sin6.sin6_addr) { a in
                    var hi: UInt64 = 0
                    var lo: UInt64 = 0
                    for i in 0..<8 { hi = hi << 8 | UInt64(a[i]) }
                    for i in 8..<16 { lo = lo << 8 | UInt64(a[i]) }
                    p.high = hi
                    p.low = lo
                }
            }
        }
        return p
    }

    /// Writes the address as text (dotted quad, or inet_ntop's IPv6 form); nothing when unknown.
    func write(_ w: inout ByteWriter) {
        switch family {
        case AF_INET:
            for shift in stride(from: 24, through: 0, by: -8) {
                w.putDecimal(Int((low >> UInt64(shift)) & 0xFF))
                if shift > 0 { w.put(byte: 0x2E) }
            }
        case AF_INET6:
            var a = in6_addr()
            withUnsafeMutableBytes(of: &a) { b in
                for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * i)) }
                for i in 0..<8 { b[8 + i] = UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * i)) }
            }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil else { return }
            let n = text.firstIndex(of: 0) ?? 0
            text.withUnsafeBytes { w.put(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        default:
            break
        }
    }

    /// `connection_properties.source_ip`: xxHash64 of the address's text without the port, as
    /// Envoy hashes it (written on the stack, no allocation for IPv4).
    var hashValue64: UInt64 {
        withUnsafeTemporaryAllocation(byteCount: Self.maxTextBytes, alignment: 8) { buffer in
            var w = ByteWriter(buffer.baseAddress!, capacity: buffer.count)
            write(&w)
            return HostSchedule.hash(UnsafeRawBufferPointer(start: buffer.baseAddress, count: w.count))
        }
    }

    /// Longest text form plus ", ".
    static let maxTextBytes = 48
}

extension ProxyWorker {
    /// The connection's peer address, read on first use.
    func peerAddress(_ d: UnsafeMutablePointer<Downstream>) -> PeerAddress {
        if d.pointee.peer.family == 0 { d.pointee.peer = PeerAddress.read(d.pointee.fd) }
        return d.pointee.peer
    }

    /// The request's hash under the route's hash policies (Envoy's combination: rotate left one
    /// bit, xor the next; a terminal policy that produced a hash ends the walk), or nil when no
    /// policy produced one. Reads the head through the worker's parser.
    func requestHash(_ policies: [CompiledHashPolicy], _ head: UnsafeRawBufferPointer, _ d: UnsafeMutablePointer<Downstream>) -> UInt64? {
        var result: UInt64? = nil
        let p = requestParser
        for policy in policies {
            var h: UInt64? = nil
            switch policy.source {
            case .header(let name):
                for i in 0..<p.pointee.headerCount {
                    let n = p.pointee.headerNameRange(at: i)
                    if n.count == name.count && CompiledRoute.bytesEqual(UnsafeRawBufferPointer(rebasing: head[n]), 0, name, ignoreCase: true) {
                        h = HostSchedule.hash(UnsafeRawBufferPointer(rebasing: head[p.pointee.headerValueRange(at: i)]))
                        break
                    }
                }
            case .cookie(let name):
                h = cookieHash(name, head)
            case .sourceIP:
                let peer = peerAddress(d)
                if peer.family > 0 { h = peer.hashValue64 }
            }
            if let h {
                result = result.map { (($0 << 1) | ($0 >> 63)) ^ h } ?? h
                if policy.terminal { break }
            }
        }
        return result
    }

    /// Hash of the value of cookie `name` in the Cookie fields, or nil.
    private func cookieHash(_ name: [UInt8], _ head: UnsafeRawBufferPointer) -> UInt64? {
        let p = requestParser
        for i in 0..<p.pointee.headerCount {
            let n = p.pointee.headerNameRange(at: i)
            guard n.count == 6, ASCII.equalsCaseInsensitive(head, n, "cookie") else { continue }
            let v = p.pointee.headerValueRange(at: i)
            var start = v.lowerBound
            while start < v.upperBound {
                var end = start
                while end < v.upperBound && head[end] != 0x3B { end += 1 }  // ';'
                var a = start
                while a < end && head[a] == 0x20 { a += 1 }
                var eq = a
                while eq < end && head[eq] != 0x3D { eq += 1 }  // '='
                if eq < end && eq - a == name.count && CompiledRoute.bytesEqual(UnsafeRawBufferPointer(rebasing: head[a..<eq]), 0, name, ignoreCase: false) {
                    return HostSchedule.hash(UnsafeRawBufferPointer(rebasing: head[(eq + 1)..<end]))
                }
                start = end + 1
            }
        }
        return nil
    }

    /// Checks a complete request head before anything is forwarded: a target over 8 KiB is 414;
    /// chunked body bytes that arrived with the head and are malformed (an invalid chunk size) are
    /// 400, so the upstream never sees a request whose framing is already known to be bad.
    /// Returns the status to answer, or nil.
    func rejectBeforeForwarding(_ head: Int, in bytes: UnsafeRawBufferPointer, _ d: UnsafeMutablePointer<Downstream>) -> Int? {
        let p = requestParser
        if p.pointee.targetRange.count > Self.maxRequestTargetBytes { return 414 }
        // Envoy's codec answers HTTP/1.0 with 426 unless http_protocol_options.accept_http_10.
        if p.pointee.version == .http1_0, let http = hcm(d), !http.acceptHTTP10 { return 426 }
        guard case .chunked = p.pointee.bodyFraming, bytes.count > head else { return nil }
        var decoder = ChunkedDecoder()
        var offset = head
        while offset < bytes.count {
            switch decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .data(_, let consumed):
                guard consumed > 0 else { return nil }
                offset += consumed
            case .needMore, .done:
                return nil
            case .failure(let error):
                return error.status
            }
        }
        return nil
    }

    /// Envoy's URI limit for HTTP/1 (`max_request_headers_kb` bounds the rest): 8 KiB.
    static var maxRequestTargetBytes: Int { 8192 }
}

extension RetryPlan {
    /// True when `retry_on` covers a response with this status: 5xx any 5xx, gateway-error 502-504,
    /// retriable-4xx 409, retriable-status-codes the listed ones.
    func retries(status: Int) -> Bool {
        (on5xx && status >= 500 && status <= 599) || (onGatewayError && status >= 502 && status <= 504)
            || (onRetriable4xx && status == 409) || retriableStatusCodes.contains(status)
    }

    /// Envoy's jittered exponential backoff before retry number `retry` (1, 2, ...): a random
    /// wait below (2^retry - 1) x base, at most max_interval.
    func backOffNanos(retry: Int, random: UInt64) -> Int64 {
        let baseMs = max(1, backOffBaseNanos / 1_000_000), maxMs = max(baseMs, backOffMaxNanos / 1_000_000)
        // The exponent stops growing once the ceiling passed max_interval (as Envoy's strategy).
        var k: Int64 = 1
        while k < Int64(retry) && k < 30 && ((1 << k) - 1) * baseMs <= maxMs { k += 1 }
        let ceiling = ((1 << k) - 1) * baseMs
        return min(Int64(random % UInt64(max(1, ceiling))), maxMs) * 1_000_000
    }
}
