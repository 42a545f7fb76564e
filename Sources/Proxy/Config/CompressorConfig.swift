/// `envoy.filters.http.compressor` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor`) with the gzip,
/// brotli or zstd library (`envoy.compression.{gzip,brotli,zstd}.compressor`). What Ballast
/// implements: response compression as Envoy 1.40 decides it (docs/filters.md),
/// `response_direction_config` (`common_config` `enabled` / `min_content_length` /
/// `content_type`, `disable_on_etag_header`, `remove_accept_encoding_header`), the deprecated
/// top-level fields, and each library's options. Request compression and the rest are refused
/// with their YAML path.
public struct CompressorConfig: Sendable, Hashable {
    /// `compressor_library.name`: part of the stat names (`compressor.<name>.<library>.`).
    public let libraryName: String
    public let library: Library
    /// `min_content_length` (Envoy's default 30).
    public let minContentLength: Int
    /// Lower-cased media types; Envoy's default list when none is given.
    public let contentTypes: [String]
    public let disableOnEtagHeader: Bool
    /// `common_config.enabled.default_value` (Ballast's runtime never sets the key).
    public let enabled: Bool
    /// `remove_accept_encoding_header`: the request goes upstream without accept-encoding.
    public let removeAcceptEncodingHeader: Bool

    /// The codec and its options.
    public enum Library: Sendable, Hashable {
        case gzip(GzipOptions)
        case brotli(BrotliOptions)
        case zstd(ZstdOptions)

        /// The content-encoding it produces (and the accept-encoding coding it answers).
        public var encoding: String {
            switch self {
            case .gzip: "gzip"
            case .brotli: "br"
            case .zstd: "zstd"
            }
        }

        /// Envoy's stats prefix of the library.
        var statsName: String {
            switch self {
            case .gzip: "gzip"
            case .brotli: "brotli"
            case .zstd: "zstd"
            }
        }
    }

    /// `envoy.extensions.compression.brotli.compressor.v3.Brotli`, as libbrotli takes it.
    public struct BrotliOptions: Sendable, Hashable {
        public let quality: Int32
        public let windowBits: Int32
        public let inputBlockBits: Int32
        /// BROTLI_MODE_GENERIC 0, TEXT 1, FONT 2.
        public let mode: Int32
        public let disableLiteralContextModeling: Bool
        public let chunkSize: Int
    }

    /// `envoy.extensions.compression.zstd.compressor.v3.Zstd`, as libzstd takes it.
    public struct ZstdOptions: Sendable, Hashable {
        public let level: Int32
        public let checksum: Bool
        /// ZSTD_strategy (0: zstd's default for the level).
        public let strategy: Int32
        public let chunkSize: Int
    }

    /// `envoy.extensions.compression.gzip.compressor.v3.Gzip`, as zlib takes it.
    public struct GzipOptions: Sendable, Hashable {
        /// zlib's level: -1 (Z_DEFAULT_COMPRESSION) or 1...9.
        public let level: Int32
        /// 9...15, plus 16 for the gzip wrapper when handed to zlib.
        public let windowBits: Int32
        public let memoryLevel: Int32
        /// zlib's strategy constants (0 default, 1 filtered, 2 huffman only, 3 RLE, 4 fixed).
        public let strategy: Int32
        /// Output slice size (4096...65536).
        public let chunkSize: Int
    }

    /// Envoy's list when `content_type` is empty.
    static let defaultContentTypes = [
        "text/html", "text/plain", "text/css", "application/javascript", "application/x-javascript",
        "text/javascript", "text/x-javascript", "text/ecmascript", "text/js", "text/jscript", "text/x-js",
        "application/ecmascript", "application/x-json", "application/xml", "application/json",
        "image/svg+xml", "text/xml", "application/xhtml+xml",
    ]
}

extension BootstrapParser {
    static let gzipCompressorType = "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip"

    /// The gzip compressor's `compression_level` values, as zlib levels.
    private enum GzipLevel: String, CaseIterable {
        case DEFAULT_COMPRESSION, BEST_SPEED, COMPRESSION_LEVEL_1, COMPRESSION_LEVEL_2, COMPRESSION_LEVEL_3,
             COMPRESSION_LEVEL_4, COMPRESSION_LEVEL_5, COMPRESSION_LEVEL_6, COMPRESSION_LEVEL_7,
             COMPRESSION_LEVEL_8, COMPRESSION_LEVEL_9, BEST_COMPRESSION
        var zlib: Int32 {
            switch self {
            case .DEFAULT_COMPRESSION: -1
            case .BEST_SPEED, .COMPRESSION_LEVEL_1: 1
            case .BEST_COMPRESSION, .COMPRESSION_LEVEL_9: 9
            default: Int32(rawValue.last!.wholeNumberValue!)
            }
        }
    }

    private enum GzipStrategy: String, CaseIterable {
        case DEFAULT_STRATEGY, FILTERED, HUFFMAN_ONLY, RLE, FIXED
        var zlib: Int32 {
            switch self {
            case .DEFAULT_STRATEGY: 0
            case .FILTERED: 1
            case .HUFFMAN_ONLY: 2
            case .RLE: 3
            case .FIXED: 4
            }
        }
    }

    func parseCompressor(_ body: ConfigValue?, typed: Bool, at path: ConfigPath) -> CompressorConfig? {
        guard let body else {
            diagnostics.error(path.appending("typed_config").appending("compressor_library"), "required field missing", location: nil)
            return nil
        }
        guard let f = body.fields(
            known: (typed ? ["@type"] : []) + ["compressor_library", "response_direction_config", "content_length", "content_type",
                                                "disable_on_etag_header", "remove_accept_encoding_header", "runtime_enabled", "choose_first"],
            unsupported: ["request_direction_config"]) else { return nil }
        var ok = true
        // The deprecated top-level fields, then the direction config's (which wins when both are set).
        var minLength = 30
        var types: [String] = []
        var etag = false
        var enabled = true
        if let v = f["content_length"] { if let n = uint32(v) { if n > 0 { minLength = n } } else { ok = false } }
        if let v = f["content_type"] { if let t = v.stringList() { types = t } else { ok = false } }
        if let v = f["disable_on_etag_header"] { if let b = v.bool() { etag = b } else { ok = false } }
        if let v = f["runtime_enabled"] { if let b = runtimeFlag(v) { enabled = b } else { ok = false } }
        var removeAcceptEncoding = false
        if let v = f["remove_accept_encoding_header"] { if let b = v.bool() { removeAcceptEncoding = b } else { ok = false } }
        if let v = f["choose_first"], v.bool() == nil { ok = false }
        if let r = f["response_direction_config"] {
            guard let g = r.fields(known: ["common_config", "disable_on_etag_header", "remove_accept_encoding_header"],
                                   unsupported: ["uncompressible_response_codes", "status_header_enabled"]) else { return nil }
            if let v = g["disable_on_etag_header"] { if let b = v.bool() { etag = b } else { ok = false } }
            if let v = g["remove_accept_encoding_header"] { if let b = v.bool() { removeAcceptEncoding = b } else { ok = false } }
            if let c = g["common_config"] {
                guard let h = c.fields(known: ["enabled", "min_content_length", "content_type"]) else { return nil }
                if let v = h["enabled"] { if let b = runtimeFlag(v) { enabled = b } else { ok = false } }
                if let v = h["min_content_length"] { if let n = uint32(v) { if n > 0 { minLength = n } } else { ok = false } }
                if let v = h["content_type"] { if let t = v.stringList() { types = t } else { ok = false } }
            }
        }
        guard let lib = f.required("compressor_library"),
              let l = lib.fields(known: ["name", "typed_config"]) else { return nil }
        let name = l.required("name")?.nonEmptyString()
        if name == nil { ok = false }
        let library = l.required("typed_config").flatMap { parseCompressorLibrary($0) }
        guard ok, let name, let library else { return nil }
        return CompressorConfig(libraryName: name, library: library, minContentLength: minLength,
                                contentTypes: (types.isEmpty ? CompressorConfig.defaultContentTypes : types).map { $0.lowercased() },
                                disableOnEtagHeader: etag, enabled: enabled, removeAcceptEncodingHeader: removeAcceptEncoding)
    }

    private func parseCompressorLibrary(_ value: ConfigValue) -> CompressorConfig.Library? {
        guard case .mapping(let m) = value.node,
              let typeNode = m.first(where: { $0.key.scalar?.string == "@type" })?.value,
              let type = ConfigValue(node: typeNode, path: value.path.appending("@type"), diagnostics: diagnostics).nonEmptyString() else {
            diagnostics.error(value.path.appending("@type"), "required field missing", at: value.node)
            return nil
        }
        switch type {
        case Self.gzipCompressorType: return parseGzipCompressor(value).map { .gzip($0) }
        case Self.brotliCompressorType: return parseBrotliCompressor(value).map { .brotli($0) }
        case Self.zstdCompressorType: return parseZstdCompressor(value).map { .zstd($0) }
        default:
            diagnostics.error(value.path.appending("@type"), "'\(type)' is not supported by ballast (ballast implements \(Self.gzipCompressorType), \(Self.brotliCompressorType), \(Self.zstdCompressorType))", at: typeNode)
            return nil
        }
    }

    static let brotliCompressorType = "type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli"
    static let zstdCompressorType = "type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd"

    /// Envoy's zstd `strategy` names, as ZSTD_strategy values (DEFAULT: zstd's choice for the level).
    private enum ZstdStrategy: String, CaseIterable {
        case DEFAULT, FAST, DFAST, GREEDY, LAZY, LAZY2, BTLAZY2, BTOPT, BTULTRA, BTULTRA2
        var value: Int32 { Int32(Self.allCases.firstIndex(of: self)!) }
    }

    private func parseZstdCompressor(_ value: ConfigValue) -> CompressorConfig.ZstdOptions? {
        guard let f = value.fields(known: ["@type", "compression_level", "enable_checksum", "strategy", "chunk_size"],
                                   unsupported: ["dictionary"]) else { return nil }
        var ok = true
        func number(_ key: String, _ range: ClosedRange<Int>, _ fallback: Int) -> Int {
            guard let v = f[key] else { return fallback }
            guard let n = uint32(v) else { ok = false; return fallback }
            guard range.contains(n) else { v.error("\(n) is outside \(range.lowerBound)...\(range.upperBound) (zstd's levels)"); ok = false; return fallback }
            return n
        }
        let level = number("compression_level", 0...22, 3)
        let chunk = number("chunk_size", 4096...65536, 4096)
        var checksum = false
        if let v = f["enable_checksum"] { if let b = v.bool() { checksum = b } else { ok = false } }
        let strategy = f["strategy"].map { $0.enumeration(ZstdStrategy.self) } ?? .DEFAULT
        guard ok, let strategy else { return nil }
        return .init(level: Int32(level), checksum: checksum, strategy: strategy.value, chunkSize: chunk)
    }

    private enum BrotliMode: String, CaseIterable {
        case DEFAULT, GENERIC, TEXT, FONT
        var value: Int32 {
            switch self {
            case .DEFAULT, .GENERIC: 0
            case .TEXT: 1
            case .FONT: 2
            }
        }
    }

    private func parseBrotliCompressor(_ value: ConfigValue) -> CompressorConfig.BrotliOptions? {
        guard let f = value.fields(known: ["@type", "quality", "window_bits", "input_block_bits", "chunk_size", "encoder_mode",
                                           "disable_literal_context_modeling"]) else { return nil }
        var ok = true
        func number(_ key: String, _ range: ClosedRange<Int>, _ fallback: Int) -> Int {
            guard let v = f[key] else { return fallback }
            guard let n = uint32(v) else { ok = false; return fallback }
            guard range.contains(n) else { v.error("\(n) is outside \(range.lowerBound)...\(range.upperBound) (Envoy's rule)"); ok = false; return fallback }
            return n
        }
        let quality = number("quality", 0...11, 3)
        let window = number("window_bits", 10...24, 18)
        let block = number("input_block_bits", 16...24, 24)
        let chunk = number("chunk_size", 4096...65536, 4096)
        let mode = f["encoder_mode"].map { $0.enumeration(BrotliMode.self) } ?? .DEFAULT
        var literal = false
        if let v = f["disable_literal_context_modeling"] { if let b = v.bool() { literal = b } else { ok = false } }
        guard ok, let mode else { return nil }
        return .init(quality: Int32(quality), windowBits: Int32(window), inputBlockBits: Int32(block), mode: mode.value,
                     disableLiteralContextModeling: literal, chunkSize: chunk)
    }

    private func parseGzipCompressor(_ value: ConfigValue) -> CompressorConfig.GzipOptions? {
        guard let f = value.fields(known: ["@type", "memory_level", "window_bits", "compression_level", "compression_strategy", "chunk_size"]) else { return nil }
        var ok = true
        func number(_ key: String, _ range: ClosedRange<Int>, _ fallback: Int) -> Int {
            guard let v = f[key] else { return fallback }
            guard let n = uint32(v) else { ok = false; return fallback }
            guard range.contains(n) else { v.error("\(n) is outside \(range.lowerBound)...\(range.upperBound) (Envoy's rule)"); ok = false; return fallback }
            return n
        }
        let memory = number("memory_level", 1...9, 5)
        let window = number("window_bits", 9...15, 12)
        let chunk = number("chunk_size", 4096...65536, 4096)
        let level = f["compression_level"].map { $0.enumeration(GzipLevel.self) } ?? .DEFAULT_COMPRESSION
        let strategy = f["compression_strategy"].map { $0.enumeration(GzipStrategy.self) } ?? .DEFAULT_STRATEGY
        guard ok, let level, let strategy else { return nil }
        return .init(level: level.zlib, windowBits: Int32(window), memoryLevel: Int32(memory), strategy: strategy.zlib, chunkSize: chunk)
    }

    static let compressorPerRouteType = "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute"

    /// `CompressorPerRoute` on a route: `disabled: true` (Envoy's only value for it); `overrides`
    /// is refused. True when valid.
    func parseCompressorPerRoute(_ item: ConfigValue) -> Bool {
        guard let f = item.fields(known: ["@type", "disabled"], unsupported: ["overrides"]) else { return false }
        guard f.rejected.isEmpty, let d = f.required("disabled"), let b = d.bool() else { return false }
        if !b { f.error("disabled", "must be true (Envoy's rule)"); return false }
        return true
    }

    /// A `google.protobuf.UInt32Value`: a number or `{value: n}`.
    func uint32(_ v: ConfigValue) -> Int? {
        if case .mapping = v.node { return v.fields(known: ["value"])?.required("value")?.int(0...Int(UInt32.max)) }
        return v.int(0...Int(UInt32.max))
    }

    /// A `RuntimeFeatureFlag`: its `default_value` (Ballast's runtime never sets `runtime_key`, so
    /// Envoy would use the default too).
    func runtimeFlag(_ v: ConfigValue) -> Bool? {
        guard let f = v.fields(known: ["default_value", "runtime_key"]) else { return nil }
        if let k = f["runtime_key"], k.string() == nil { return nil }
        guard let d = f.required("default_value") else { return nil }
        if case .mapping = d.node { return d.fields(known: ["value"])?.required("value")?.bool() }
        return d.bool()
    }
}
