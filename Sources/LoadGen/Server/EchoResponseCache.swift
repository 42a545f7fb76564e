import Glibc

/// Remembers the whole response to the latest deterministic request of a worker, so a benchmark
/// that repeats one URL pays a compare and a copy instead of a query parse and a head format.
///
/// Deterministic means the reply depends on nothing but the query and the request line: no
/// weighted choice (no `:` in values), no `header=`, no `close=`, no percent-encoding, and no
/// request body. Per worker, one loop thread.
struct EchoResponseCache: ~Copyable {
    static var maxQueryBytes: Int { 256 }
    static var maxResponseBytes: Int { 64 * 1024 }

    private let key: UnsafeMutableRawBufferPointer
    private var keyLength = -1
    private var keyFlags: UInt8 = 0
    private let response: UnsafeMutableRawBufferPointer
    private(set) var responseLength = 0
    private(set) var closeAfter = false
    private(set) var delayNanos: Int64 = 0

    init() {
        key = .allocate(byteCount: Self.maxQueryBytes, alignment: 8)
        response = .allocate(byteCount: Self.maxResponseBytes, alignment: 8)
    }

    deinit {
        key.deallocate()
        response.deallocate()
    }

    /// Request facts that change the response besides the query.
    static func flags(isHEAD: Bool, http10: Bool, keepAlive: Bool) -> UInt8 {
        (isHEAD ? 1 : 0) | (http10 ? 2 : 0) | (keepAlive ? 4 : 0)
    }

    /// Whether responses to this query may be remembered.
    static func cacheable(_ query: UnsafeRawBufferPointer) -> Bool {
        guard query.count <= maxQueryBytes else { return false }
        var previous: UInt8 = UInt8(ascii: "&")
        for b in query {
            if b == UInt8(ascii: ":") || b == UInt8(ascii: "%") || b == UInt8(ascii: "+") { return false }
            // A parameter starting with 'c' (close=) or 'h' (header=) is not cached.
            if previous == UInt8(ascii: "&") && (b == UInt8(ascii: "c") || b == UInt8(ascii: "h")) { return false }
            previous = b
        }
        return true
    }

    /// The remembered response when `query` and `flags` match the remembered request.
    func lookup(_ query: UnsafeRawBufferPointer, flags: UInt8) -> UnsafeRawBufferPointer? {
        guard keyLength == query.count, keyFlags == flags else { return nil }
        if keyLength > 0 && memcmp(key.baseAddress!, query.baseAddress!, keyLength) != 0 { return nil }
        return UnsafeRawBufferPointer(rebasing: response[0..<responseLength])
    }

    /// Remembers `bytes` as the response to `query` with `flags`.
    mutating func store(_ query: UnsafeRawBufferPointer, flags: UInt8, response bytes: UnsafeRawBufferPointer,
                        closeAfter: Bool, delayNanos: Int64) {
        guard bytes.count <= Self.maxResponseBytes, query.count <= Self.maxQueryBytes else { return }
        if query.count > 0 { key.baseAddress!.copyMemory(from: query.baseAddress!, byteCount: query.count) }
        keyLength = query.count
        keyFlags = flags
        response.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        responseLength = bytes.count
        self.closeAfter = closeAfter
        self.delayNanos = delayNanos
    }
}
