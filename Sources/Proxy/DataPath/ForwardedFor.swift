import Glibc
import HTTP1

/// The http_connection_manager's x-forwarded-for policy, as Envoy 1.40 applies it:
/// - `use_remote_address: false` (the default): x-forwarded-for passes untouched, nothing added.
/// - `use_remote_address: true`: the peer is appended (unless `skip_xff_append`); a loopback peer
///   is replaced by this machine's first non-loopback address, as Envoy does. The trusted client
///   address is the peer, or with `xff_num_trusted_hops: N` the N-th address from the right of the
///   x-forwarded-for the client sent; it goes upstream as `x-envoy-external-address` (Envoy 1.40
///   treats no address as internal unless `internal_address_config` says so, which is refused).
struct ForwardedForPolicy: Sendable {
    let useRemoteAddress: Bool
    let trustedHops: Int
    let skipAppend: Bool
    /// Text of this machine's address, per family, for loopback peers.
    let localV4: [UInt8]
    let localV6: [UInt8]

    init(useRemoteAddress: Bool, trustedHops: Int, skipAppend: Bool) {
        self.useRemoteAddress = useRemoteAddress
        self.trustedHops = trustedHops
        self.skipAppend = skipAppend
        localV4 = useRemoteAddress ? Array((Self.firstNonLoopback(AF_INET) ?? "127.0.0.1").utf8) : []
        localV6 = useRemoteAddress ? Array((Self.firstNonLoopback(AF_INET6) ?? "::1").utf8) : []
    }

    /// The first non-loopback address of `family` on this machine (getifaddrs order).
    static func firstNonLoopback(_ family: Int32) -> String? {
        var list: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var p = list
        while let ifa = p {
            defer { p = ifa.pointee.ifa_next }
            guard let sa = ifa.pointee.ifa_addr, Int32(sa.pointee.sa_family) == family else { continue }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            if family == AF_INET {
                let sin = UnsafeRawPointer(sa).load(as: sockaddr_in.self)
                if UInt32(bigEndian: sin.sin_addr.s_addr) >> 24 == 127 { continue }
                var a = sin.sin_addr
                guard inet_ntop(AF_INET, &a, &text, socklen_t(text.count)) != nil else { continue }
            } else {
                let sin6 = UnsafeRawPointer(sa).load(as: sockaddr_in6.self)
                var a = sin6.sin6_addr
                let isLoopback = withUnsafeBytes(of: &a) { b in b.prefix(15).allSatisfy { $0 == 0 } && b[15] == 1 }
                if isLoopback { continue }
                guard inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil else { continue }
            }
            return String(cString: text)
        }
        return nil
    }

    /// The address written for `peer` when appending: this machine's for a loopback peer.
    func writeAppended(_ peer: PeerAddress, _ w: inout ByteWriter) {
        if peer.isLoopback {
            w.put(peer.family == AF_INET6 ? localV6 : localV4)
        } else {
            peer.write(&w)
        }
    }

    /// The `trustedHops`-th element from the right of a comma-separated list, trimmed; nil when
    /// the list is shorter.
    static func element(fromRight n: Int, of bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Range<Int>? {
        var end = value.upperBound
        var seen = 0
        var i = value.upperBound
        while i > value.lowerBound {
            i -= 1
            if bytes[i] == ASCII.comma {
                seen += 1
                if seen == n { return trim(bytes, (i + 1)..<end) }
                end = i
            }
        }
        return seen + 1 == n ? trim(bytes, value.lowerBound..<end) : nil
    }

    static func trim(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> Range<Int> {
        var lo = r.lowerBound
        var hi = r.upperBound
        while lo < hi && (bytes[lo] == ASCII.space || bytes[lo] == ASCII.tab) { lo += 1 }
        while hi > lo && (bytes[hi - 1] == ASCII.space || bytes[hi - 1] == ASCII.tab) { hi -= 1 }
        return lo..<hi
    }
}

extension PeerAddress {
    /// 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104.
    var isLoopback: Bool {
        switch family {
        case AF_INET: return low >> 24 == 127
        case AF_INET6: return (high == 0 && low == 1) || (high == 0 && low >> 32 == 0xFFFF && (low >> 24) & 0xFF == 127)
        default: return false
        }
    }
}
