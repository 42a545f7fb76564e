import Synchronization
import HTTP1

/// `envoy.filters.http.decompressor` (gzip, request direction) on the data path. decodeHeaders:
/// a request with a body whose content-encoding starts with `gzip` (any case) and without
/// cache-control no-transform is decompressed: the worker drops that coding from
/// content-encoding and content-length from the head, sends the body chunked, and inflates it
/// through a pooled z_stream (`ProxyWorker+Decompression.swift`).
enum DecompressorFilter {
    @inline(__always)
    static func decodeHeaders(_ ctx: inout FilterContext, _ plan: DecompressorPlan) -> FilterStatus {
        // Envoy decides on a request with a body only (a head that ends the stream is not counted).
        guard plan.requestEnabled, ctx.requestHasBody else { return .continue }
        let r = ctx.request
        var gzip = false
        var noTransform = false
        for i in 0..<r.headerCount {
            let name = r.headerName(i)
            if name.count == 16 && ASCII.equalsCaseInsensitive(r.bytes, name, "content-encoding") {
                var cursor = r.headerValue(i).lowerBound
                if !gzip, let first = ASCII.nextListElement(r.bytes, cursor: &cursor, end: r.headerValue(i).upperBound) {
                    gzip = ASCII.equalsCaseInsensitive(r.bytes, first, "gzip")
                }
            } else if name.count == 13 && ASCII.equalsCaseInsensitive(r.bytes, name, "cache-control") {
                if ASCII.listContainsToken(r.bytes, r.headerValue(i), "no-transform") { noTransform = true }
            }
        }
        if gzip && (!noTransform || plan.ignoreNoTransformHeader) {
            plan.stats.requestDecompressed.wrappingAdd(1, ordering: .relaxed)
            ctx.decompressRequest = true
        } else {
            plan.stats.requestNotDecompressed.wrappingAdd(1, ordering: .relaxed)
        }
        return .continue
    }
}

/// The decompressor filter of a chain, compiled.
public final class DecompressorPlan: Sendable {
    let stats: DecompressorStats
    let requestEnabled: Bool
    let ignoreNoTransformHeader: Bool
    /// zlib's window bits for gzip (9...15 plus 16).
    let windowBits: Int32
    let chunkSize: Int
    let maxInflateRatio: Int

    init(_ c: DecompressorConfig) {
        stats = DecompressorStats(prefix: "decompressor.\(c.libraryName).gzip.")
        requestEnabled = c.requestEnabled
        ignoreNoTransformHeader = c.ignoreNoTransformHeader
        windowBits = c.windowBits + 16
        chunkSize = c.chunkSize
        maxInflateRatio = c.maxInflateRatio
    }
}

/// `http.<stat_prefix>.decompressor.<library name>.gzip.*`, Envoy's names (response direction
/// counters included: response decompression is off, so every response is `not_decompressed`).
public final class DecompressorStats: Sendable {
    public let prefix: String
    public let zlibDataError = Atomic<Int>(0)
    public let requestDecompressed = Atomic<Int>(0)
    public let requestNotDecompressed = Atomic<Int>(0)
    public let requestTotalCompressedBytes = Atomic<Int>(0)
    public let requestTotalUncompressedBytes = Atomic<Int>(0)
    public let responseNotDecompressed = Atomic<Int>(0)

    init(prefix: String) { self.prefix = prefix }

    /// Name suffixes and values in Envoy's (alphabetical) order.
    public var all: [(String, Int)] {
        func l(_ a: borrowing Atomic<Int>) -> Int { a.load(ordering: .relaxed) }
        return [("decompressor_library.zlib_buf_error", 0), ("decompressor_library.zlib_data_error", l(zlibDataError)),
                ("decompressor_library.zlib_errno", 0), ("decompressor_library.zlib_mem_error", 0),
                ("decompressor_library.zlib_stream_error", 0), ("decompressor_library.zlib_version_error", 0),
                ("request.decompressed", l(requestDecompressed)), ("request.not_decompressed", l(requestNotDecompressed)),
                ("request.total_compressed_bytes", l(requestTotalCompressedBytes)),
                ("request.total_uncompressed_bytes", l(requestTotalUncompressedBytes)),
                ("response.decompressed", 0), ("response.not_decompressed", l(responseNotDecompressed)),
                ("response.total_compressed_bytes", 0), ("response.total_uncompressed_bytes", 0)]
    }
}
