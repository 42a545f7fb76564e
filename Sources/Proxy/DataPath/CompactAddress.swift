import EventLoop
import Glibc

/// An IPv4 or IPv6 address and port in 24 bytes (a `sockaddr_storage` is 128): the original
/// destination of a redirected connection, kept per downstream connection and per access record.
public struct CompactAddress: Sendable, Hashable {
    /// 0: none; AF_INET or AF_INET6.
    public var family: UInt16 = 0
    public var port: UInt16 = 0
    /// The address bytes in network order, big-endian packed (IPv4 in the low 32 bits of `low`).
    public var high: UInt64 = 0
    public var low: UInt64 = 0

    public init() {}

    public var isSet: Bool { family != 0 }

    public init(_ a: SocketAddress) {
        var storage = a.storage
        withUnsafeBytes(of: &storage) { raw in
            if Int32(a.family) == AF_INET {
                let sin = raw.load(as: sockaddr_in.self)
                family = UInt16(AF_INET)
                port = UInt16(bigEndian: sin.sin_port)
                low = UInt64(UInt32(bigEndian: sin.sin_addr.s_addr))
            } else if Int32(a.family) == AF_INET6 {
                let sin6 = raw.load(as: sockaddr_in6.self)
                family = UInt16(AF_INET6)
                port = UInt16(bigEndian: sin6.sin6_port)
                withUnsafeBytes(of: sin6.sin6_addr) { b in
                    for i in 0..<8 { high = high << 8 | UInt64(b[i]) }
                    for i in 8..<16 { low = low << 8 | UInt64(b[i]) }
                }
            }
        }
    }

    /// The `sockaddr` form (only when `isSet`).
    public var socketAddress: SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(0)
        withUnsafeMutableBytes(of: &storage) { raw in
            if Int32(family) == AF_INET {
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = in_port_t(port.bigEndian)
                sin.pointee.sin_addr.s_addr = UInt32(truncatingIfNeeded: low).bigEndian
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
            } else {
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = in_port_t(port.bigEndian)
                withUnsafeMutableBytes(of: &sin6.pointee.sin6_addr) { b in
                    for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * i)) }
                    for i in 0..<8 { b[8 + i] = UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * i)) }
                }
                length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }
        return SocketAddress(storage: storage, length: length)
    }
}
