import EventLoop
import HTTP1

/// Writes bytes into reserved buffer space without allocating. Writes past the reserved space are
/// dropped and remembered in `overflowed` (callers reserve an upper bound, so it means a bug).
struct ByteWriter {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var count = 0
    var overflowed = false

    init(_ base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        guard count + bytes.count <= capacity else { overflowed = true; return }
        (base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    @inline(__always)
    mutating func put(_ literal: StaticString) {
        literal.withUTF8Buffer { put(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    mutating func put(_ array: [UInt8]) {
        array.withUnsafeBytes { put($0) }
    }

    /// Field names go out lower-cased, as Envoy's HTTP/1 codec writes them.
    @inline(__always)
    mutating func putLowercased(_ bytes: UnsafeRawBufferPointer) {
        guard count + bytes.count <= capacity else { overflowed = true; return }
        for i in 0..<bytes.count {
            let b = bytes[i]
            base.storeBytes(of: b &- 0x41 < 26 ? b | 0x20 : b, toByteOffset: count + i, as: UInt8.self)
        }
        count += bytes.count
    }

    @inline(__always)
    mutating func put(byte: UInt8) {
        guard count < capacity else { overflowed = true; return }
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    mutating func putDecimal(_ value: Int) {
        let length = HeadWriter.decimalLength(value)
        guard value >= 0, count + length <= capacity else { overflowed = true; return }
        var v = value
        var i = count + length
        repeat {
            i -= 1
            base.storeBytes(of: 0x30 &+ UInt8(truncatingIfNeeded: v % 10), toByteOffset: i, as: UInt8.self)
            v /= 10
        } while v > 0
        count += length
    }

    mutating func putHex(_ value: Int) {
        let length = HeadWriter.hexLength(value)
        guard count + length <= capacity else { overflowed = true; return }
        var v = value
        var i = count + length
        repeat {
            i -= 1
            let d = UInt8(truncatingIfNeeded: v & 0xF)
            base.storeBytes(of: d < 10 ? 0x30 &+ d : 0x57 &+ d, toByteOffset: i, as: UInt8.self)
            v >>= 4
        } while v > 0
        count += length
    }

    /// A random (version 4) UUID in its 36-character text form.
    mutating func putUUID(_ a: UInt64, _ b: UInt64) {
        guard count + 36 <= capacity else { overflowed = true; return }
        let hi = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        let lo = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        func nibble(_ v: UInt64, _ i: Int) -> UInt8 {
            let d = UInt8(truncatingIfNeeded: (v >> UInt64(60 - 4 * i)) & 0xF)
            return d < 10 ? 0x30 &+ d : 0x57 &+ d
        }
        for i in 0..<16 {
            if i == 8 || i == 12 { put(byte: 0x2D) }
            put(byte: nibble(hi, i))
        }
        for i in 0..<16 {
            if i == 0 || i == 4 { put(byte: 0x2D) }
            put(byte: nibble(lo, i))
        }
    }

    @inline(__always)
    mutating func crlf() {
        put(byte: ASCII.cr)
        put(byte: ASCII.lf)
    }
}

/// Which fields the proxy treats specially when it copies a head.
enum FieldClass {
    case pass
    /// Connection, Keep-Alive, Proxy-Connection, TE, Upgrade, Transfer-Encoding: never forwarded
    /// (framing is re-declared by the proxy).
    case hopByHop
    case host
    case expect
    case requestID
    case forwardedProto
    /// x-forwarded-for: the proxy appends the peer to the last one.
    case forwardedFor
    case server
    case contentLength
    /// x-envoy-external-address and x-envoy-expected-rq-timeout-ms: set by the proxy, which
    /// replaces a client's copy when it sets its own.
    case externalAddress
    case expectedTimeout
    /// An upstream's date is kept; the proxy adds one when it is missing (as Envoy).
    case date
    /// x-envoy-original-path: set (in place) when the route rewrote the path.
    case originalPath
    /// x-envoy-force-trace: Envoy strips it from external requests, and without
    /// internal_address_config (refused here) Envoy 1.40 counts every request as external.
    case forceTrace

    static func of(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> FieldClass {
        switch name.count {
        case 2: return ASCII.equalsCaseInsensitive(bytes, name, "te") ? .hopByHop : .pass
        case 4:
            if ASCII.equalsCaseInsensitive(bytes, name, "host") { return .host }
            return ASCII.equalsCaseInsensitive(bytes, name, "date") ? .date : .pass
        case 6:
            if ASCII.equalsCaseInsensitive(bytes, name, "expect") { return .expect }
            return ASCII.equalsCaseInsensitive(bytes, name, "server") ? .server : .pass
        case 7: return ASCII.equalsCaseInsensitive(bytes, name, "upgrade") ? .hopByHop : .pass
        case 10:
            if ASCII.equalsCaseInsensitive(bytes, name, "connection") || ASCII.equalsCaseInsensitive(bytes, name, "keep-alive") { return .hopByHop }
            return .pass
        case 12: return ASCII.equalsCaseInsensitive(bytes, name, "x-request-id") ? .requestID : .pass
        case 14: return ASCII.equalsCaseInsensitive(bytes, name, "content-length") ? .contentLength : .pass
        case 15: return ASCII.equalsCaseInsensitive(bytes, name, "x-forwarded-for") ? .forwardedFor : .pass
        case 16: return ASCII.equalsCaseInsensitive(bytes, name, "proxy-connection") ? .hopByHop : .pass
        case 19: return ASCII.equalsCaseInsensitive(bytes, name, "x-envoy-force-trace") ? .forceTrace : .pass
        case 21: return ASCII.equalsCaseInsensitive(bytes, name, "x-envoy-original-path") ? .originalPath : .pass
        case 17:
            if ASCII.equalsCaseInsensitive(bytes, name, "transfer-encoding") { return .hopByHop }
            return ASCII.equalsCaseInsensitive(bytes, name, "x-forwarded-proto") ? .forwardedProto : .pass
        case 24: return ASCII.equalsCaseInsensitive(bytes, name, "x-envoy-external-address") ? .externalAddress : .pass
        case 30: return ASCII.equalsCaseInsensitive(bytes, name, "x-envoy-expected-rq-timeout-ms") ? .expectedTimeout : .pass
        default: return .pass
        }
    }

    /// Connection or Upgrade: the fields an upgrade keeps.
    static func isUpgradeField(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        (name.count == 7 && ASCII.equalsCaseInsensitive(bytes, name, "upgrade"))
            || (name.count == 10 && ASCII.equalsCaseInsensitive(bytes, name, "connection"))
    }

    /// True when a Connection field lists `name` (a field the client declared hop-by-hop).
    /// Only consulted when some Connection field names more than close/keep-alive.
    static func nominated(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>, connection: Range<Int>) -> Bool {
        var cursor = connection.lowerBound
        while let token = ASCII.nextListElement(bytes, cursor: &cursor, end: connection.upperBound) {
            if ASCII.equalsCaseInsensitive(bytes, token, bytes, name) { return true }
        }
        return false
    }

    /// True when the Connection value has a token other than close and keep-alive.
    static func connectionNominates(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        var cursor = value.lowerBound
        while let token = ASCII.nextListElement(bytes, cursor: &cursor, end: value.upperBound) {
            if !ASCII.equalsCaseInsensitive(bytes, token, "close") && !ASCII.equalsCaseInsensitive(bytes, token, "keep-alive") {
                return true
            }
        }
        return false
    }
}

/// Local reply bodies, as Envoy words them.
enum LocalReplyText {
    static let connectFailure: StaticString = "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    static let connectTimeout: StaticString = "upstream connect error or disconnect/reset before headers. reset reason: connection timeout"
    // After retries Envoy says so.
    static let connectFailureRetried: StaticString = "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure"
    static let connectTimeoutRetried: StaticString = "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection timeout"
    static let upgradeRequired: StaticString = "Upgrade Required"
    static let connectionTermination: StaticString = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    static let overflow: StaticString = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
    static let protocolError: StaticString = "upstream connect error or disconnect/reset before headers. reset reason: protocol error"
    static let timeout: StaticString = "upstream request timeout"
    static let noHealthyUpstream: StaticString = "no healthy upstream"
    static let badRequest: StaticString = "Bad Request"
    static let requestHeaderFieldsTooLarge: StaticString = "Request Header Fields Too Large"
    static let requestHeaderTimeout: StaticString = "request header timeout"
    static let streamTimeout: StaticString = "stream timeout"
    static let requestTimeout: StaticString = "request timeout"
}
