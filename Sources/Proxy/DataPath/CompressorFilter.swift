import Synchronization
import HTTP1

/// `envoy.filters.http.compressor` (gzip, brotli or zstd) on the data path. decodeHeaders reads the request's
/// accept-encoding once into a one-byte choice kept in the stream; the response head decides as
/// Envoy 1.40's encodeHeaders does (`CompressorPlan.decide`), and a compressed body goes through
/// the worker's pooled codec stream (`ProxyWorker+Compression.swift`). Responses that are not
/// compressed cost one switch case and a few header scans when the filter is configured, and
/// nothing when it is not.
enum CompressorFilter {
    @inline(__always)
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: CompressorPlan) -> FilterStatus {
        // Envoy counts every request its request direction sees (request compression is refused
        // here, so none is compressed).
        plan.stats.requestNotCompressed.wrappingAdd(1, ordering: .relaxed)
        if let route = ctx.route, plan.disabledRoutes[route.index] {
            ctx.acceptEncoding = .disabled  // CompressorPerRoute disabled
            return .continue
        }
        ctx.acceptEncoding = AcceptEncodingChoice.parse(ctx.request, coding: plan.coding)
        return .continue
    }
}

/// What the request's accept-encoding allows, decided as Envoy's `chooseEncoding` does for a
/// chain with one compressor (its coding: "gzip", "br" or "zstd"), before the response's content-type is known (a refused
/// content-type turns every choice but `noHeader` into `notValid`, as Envoy's empty allowed set).
enum AcceptEncodingChoice: UInt8 {
    /// The compressor filter did not see the request (a local reply before it ran).
    case unset
    case noHeader
    case notValid
    case identity
    case wildcard
    /// The chain's coding.
    case compressor
    /// The route's CompressorPerRoute turns the filter off: the response only counts as not compressed.
    case disabled

    /// All accept-encoding fields, as Envoy's joined value: tokens split at commas (empty ones
    /// dropped), the coding before the first `;` (trimmed, compared case-sensitively as Envoy),
    /// a `q=` parameter parsed (an unparsable one drops the token); the coding with q=0 is refused even
    /// when `*` allows others; the highest q wins, the first on ties.
    static func parse(_ r: RequestView, coding: [UInt8]) -> AcceptEncodingChoice {
        var sawHeader = false
        var sawPair = false
        var refused = false
        var best = AcceptEncodingChoice.identity
        var bestQ: Float = 0
        for i in 0..<r.headerCount {
            let name = r.headerName(i)
            guard name.count == 15 && ASCII.equalsCaseInsensitive(r.bytes, name, "accept-encoding") else { continue }
            sawHeader = true
            let value = r.headerValue(i)
            var start = value.lowerBound
            while start <= value.upperBound {
                var end = start
                while end < value.upperBound && r.bytes[end] != ASCII.comma { end += 1 }
                defer { start = end + 1 }
                if end == start { continue }  // an empty token
                guard let (kind, q) = token(r.bytes, start..<end, coding: coding) else { continue }
                sawPair = true
                if q == 0 && kind == .compressor { refused = true }
                if q > bestQ { best = kind; bestQ = q }
            }
        }
        guard sawHeader else { return .noHeader }
        if !sawPair || refused { return .notValid }
        // Envoy's choice loop runs after every q=0 has been removed: a coding that won is refused then.
        if bestQ == 0 { return .notValid }
        return best
    }

    /// One token: its coding (`notValid` for one Envoy has no compressor for) and q-value; nil
    /// when the q-value does not parse.
    private static func token(_ b: UnsafeRawBufferPointer, _ range: Range<Int>, coding name: [UInt8]) -> (AcceptEncodingChoice, Float)? {
        var semicolon = range.upperBound
        for k in range where b[k] == UInt8(ascii: ";") { semicolon = k; break }
        let coding = ASCII.trimWhitespace(b, range.lowerBound..<semicolon)
        var q: Float = 1
        if semicolon < range.upperBound {
            let params = (semicolon + 1)..<range.upperBound
            var equals = params.upperBound
            for k in params where b[k] == UInt8(ascii: "=") { equals = k; break }
            if equals < params.upperBound {
                let key = ASCII.trimWhitespace(b, params.lowerBound..<equals)
                if key.count == 1 && ASCII.lowercased(b[key.lowerBound]) == UInt8(ascii: "q") {
                    guard let v = parseQ(b, ASCII.trimWhitespace(b, (equals + 1)..<params.upperBound)) else { return nil }
                    q = v
                }
            }
        }
        let kind: AcceptEncodingChoice
        if equals(b, coding, name) { kind = .compressor }
        else if equals(b, coding, "identity") { kind = .identity }
        else if equals(b, coding, "*") { kind = .wildcard }
        else { kind = .notValid }
        // Codings Envoy cannot produce never win, but their q-value still counts as "a pair".
        return (kind, kind == .notValid ? -1 : q)
    }

    private static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ bytes: [UInt8]) -> Bool {
        guard bytes.count == r.count else { return false }
        for k in 0..<bytes.count where b[r.lowerBound + k] != bytes[k] { return false }
        return true
    }

    private static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ literal: StaticString) -> Bool {
        literal.withUTF8Buffer { lit in
            guard lit.count == r.count else { return false }
            for k in 0..<lit.count where b[r.lowerBound + k] != lit[k] { return false }
            return true
        }
    }

    /// A decimal number (`1`, `0.5`, `.5`); anything else is read as Envoy's SimpleAtof would,
    /// through a String (rare: only unusual q-values get there).
    private static func parseQ(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Float? {
        guard !r.isEmpty else { return nil }
        var value: Float = 0
        var scale: Float = 0
        var digits = 0
        for k in r {
            let c = b[k]
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                digits += 1
                if scale == 0 { value = value * 10 + Float(c - UInt8(ascii: "0")) } else { value += Float(c - UInt8(ascii: "0")) * scale; scale /= 10 }
            } else if c == UInt8(ascii: ".") && scale == 0 {
                scale = 0.1
            } else {
                return Float(String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self))
            }
        }
        return digits > 0 ? value : nil
    }
}

/// The compressor filter of a chain, compiled.
public final class CompressorPlan: Sendable {
    let stats: CompressorStats
    let minContentLength: Int
    /// Lower-cased media types.
    let contentTypes: [[UInt8]]
    let disableOnEtagHeader: Bool
    let enabled: Bool
    /// Drop accept-encoding from the request sent upstream (`remove_accept_encoding_header`).
    let removeAcceptEncoding: Bool
    let library: CompressorConfig.Library
    /// The coding as accept-encoding names it, and the content-encoding line.
    let coding: [UInt8]
    let encodingField: [UInt8]

    /// By route index: CompressorPerRoute `disabled`.
    let disabledRoutes: [Bool]

    init(_ c: CompressorConfig, disabledRoutes: [Bool]) {
        self.disabledRoutes = disabledRoutes
        stats = CompressorStats(prefix: "compressor.\(c.libraryName).\(c.library.statsName).")
        library = c.library
        coding = Array(c.library.encoding.utf8)
        encodingField = Array("content-encoding: \(c.library.encoding)\r\n".utf8)
        minContentLength = c.minContentLength
        contentTypes = c.contentTypes.map { Array($0.utf8) }
        disableOnEtagHeader = c.disableOnEtagHeader
        enabled = c.enabled
        removeAcceptEncoding = c.enabled && c.removeAcceptEncodingHeader
    }

    /// What encodeHeaders decided for a response.
    struct Decision {
        /// Compress the body (content-length and a strong etag go, content-encoding comes).
        var compress = false
        /// Add `Accept-Encoding` to vary (every compressible response, compressed or not).
        var vary = false
    }

    /// Envoy 1.40's encodeHeaders, in its order (the order decides which counters move):
    /// enabled and long enough (content_length_too_small), then accept-encoding (its header_*
    /// counters; only for a response with a body), then content-type, cache-control
    /// no-transform, etag (not_compressed_etag), content-encoding. `fields` describes the head.
    func decide(_ fields: ResponseFields, choice: AcceptEncodingChoice, endStream: Bool) -> Decision {
        var d = Decision()
        if choice == .disabled {
            stats.responseNotCompressed.wrappingAdd(1, ordering: .relaxed)
            return d
        }
        var bigEnough = enabled
        if bigEnough, let length = fields.contentLength, length < minContentLength {
            stats.responseContentLengthTooSmall.wrappingAdd(1, ordering: .relaxed)
            bigEnough = false
        }
        var accepted = false
        if !endStream && bigEnough {
            var effective = choice
            if !fields.contentTypeAllowed && choice != .noHeader && choice != .unset { effective = .notValid }
            switch effective {
            case .unset, .noHeader, .disabled: stats.noAcceptHeader.wrappingAdd(1, ordering: .relaxed)
            case .notValid: stats.headerNotValid.wrappingAdd(1, ordering: .relaxed)
            case .identity: stats.headerIdentity.wrappingAdd(1, ordering: .relaxed)
            case .wildcard: stats.headerWildcard.wrappingAdd(1, ordering: .relaxed); accepted = true
            case .compressor: stats.headerCompressorUsed.wrappingAdd(1, ordering: .relaxed); accepted = true
            }
        }
        var compressible = bigEnough && fields.contentTypeAllowed && !fields.noTransform
        if compressible && disableOnEtagHeader && fields.hasEtag {
            stats.notCompressedEtag.wrappingAdd(1, ordering: .relaxed)
            compressible = false
        }
        compressible = compressible && !fields.hasContentEncoding
        d.vary = compressible
        d.compress = compressible && accepted && !endStream
        if d.compress { stats.responseCompressed.wrappingAdd(1, ordering: .relaxed) } else { stats.responseNotCompressed.wrappingAdd(1, ordering: .relaxed) }
        return d
    }

    /// True when `type` (a content-type value) names one of the media types (parameters after
    /// `;` ignored, case-insensitive), or is empty.
    func allows(contentType b: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var end = range.upperBound
        for k in range where b[k] == UInt8(ascii: ";") { end = k; break }
        let media = ASCII.trimWhitespace(b, range.lowerBound..<end)
        if media.isEmpty { return true }
        for t in contentTypes where t.count == media.count {
            var same = true
            for k in 0..<t.count where ASCII.lowercased(b[media.lowerBound + k]) != t[k] { same = false; break }
            if same { return true }
        }
        return false
    }
}

/// The facts of a response head the compressor reads.
struct ResponseFields {
    var contentLength: Int? = nil
    var contentTypeAllowed = true
    var noTransform = false
    var hasEtag = false
    var hasContentEncoding = false
}

/// `http.<stat_prefix>.compressor.<library name>.<gzip|brotli|zstd>.*`, Envoy's names (request direction
/// counters included: every request is `request.not_compressed`).
public final class CompressorStats: Sendable {
    public let prefix: String
    public let headerCompressorOvershadowed = Atomic<Int>(0)
    public let headerCompressorUsed = Atomic<Int>(0)
    public let headerIdentity = Atomic<Int>(0)
    public let headerNotValid = Atomic<Int>(0)
    public let headerWildcard = Atomic<Int>(0)
    public let noAcceptHeader = Atomic<Int>(0)
    public let notCompressedEtag = Atomic<Int>(0)
    public let requestNotCompressed = Atomic<Int>(0)
    public let responseCompressed = Atomic<Int>(0)
    public let responseContentLengthTooSmall = Atomic<Int>(0)
    public let responseNotCompressed = Atomic<Int>(0)
    public let responseTotalCompressedBytes = Atomic<Int>(0)
    public let responseTotalUncompressedBytes = Atomic<Int>(0)

    init(prefix: String) { self.prefix = prefix }

    /// Name suffixes and values in Envoy's (alphabetical) order.
    public var all: [(String, Int)] {
        func l(_ a: borrowing Atomic<Int>) -> Int { a.load(ordering: .relaxed) }
        return [("header_compressor_overshadowed", l(headerCompressorOvershadowed)), ("header_compressor_used", l(headerCompressorUsed)),
                ("header_identity", l(headerIdentity)), ("header_not_valid", l(headerNotValid)), ("header_wildcard", l(headerWildcard)),
                ("no_accept_header", l(noAcceptHeader)), ("not_compressed_etag", l(notCompressedEtag)),
                ("request.compressed", 0), ("request.content_length_too_small", 0), ("request.not_compressed", l(requestNotCompressed)),
                ("request.total_compressed_bytes", 0), ("request.total_uncompressed_bytes", 0),
                ("response.compressed", l(responseCompressed)), ("response.content_length_too_small", l(responseContentLengthTooSmall)),
                ("response.not_compressed", l(responseNotCompressed)), ("response.total_compressed_bytes", l(responseTotalCompressedBytes)),
                ("response.total_uncompressed_bytes", l(responseTotalUncompressedBytes))]
    }
}
