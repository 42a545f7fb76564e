/// `envoy.filters.http.decompressor` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor`) with the gzip
/// library (`envoy.compression.gzip.decompressor`), request direction only, as Envoy's gzip
/// example uses it: response decompression must be turned off
/// (`response_direction_config.common_config.enabled.default_value: false`), else it is refused.
public struct DecompressorConfig: Sendable, Hashable {
    /// `decompressor_library.name`: part of the stat names (`decompressor.<name>.gzip.`).
    public let libraryName: String
    /// 9...15 (Envoy's default 12); plus 16 for zlib's gzip decoding.
    public let windowBits: Int32
    /// Output slice size (4096...65536, default 4096): the inflate ratio is checked per full slice.
    public let chunkSize: Int
    /// Decompression stops (zlib_data_error) when output exceeds this many times the input (default 100).
    public let maxInflateRatio: Int
    /// `request_direction_config.common_config.enabled.default_value` (default true).
    public let requestEnabled: Bool
    public let ignoreNoTransformHeader: Bool
}

extension BootstrapParser {
    static let gzipDecompressorType = "type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip"

    func parseDecompressor(_ body: ConfigValue?, typed: Bool, at path: ConfigPath) -> DecompressorConfig? {
        guard let body else {
            diagnostics.error(path.appending("typed_config").appending("decompressor_library"), "required field missing", location: nil)
            return nil
        }
        guard let f = body.fields(known: (typed ? ["@type"] : []) + ["decompressor_library", "request_direction_config", "response_direction_config"])
        else { return nil }
        var ok = true
        var requestEnabled = true
        var ignoreNoTransform = false
        func common(_ v: ConfigValue, enabled: inout Bool) {
            guard let g = v.fields(known: ["enabled", "ignore_no_transform_header"]) else { ok = false; return }
            if let e = g["enabled"] { if let b = runtimeFlag(e) { enabled = b } else { ok = false } }
            if let i = g["ignore_no_transform_header"] { if let b = i.bool() { if b { ignoreNoTransform = true } } else { ok = false } }
        }
        if let r = f["request_direction_config"] {
            if let g = r.fields(known: ["common_config", "advertise_accept_encoding"]) {
                if let c = g["common_config"] { common(c, enabled: &requestEnabled) }
                // Appends to accept-encoding only when response decompression is on, which is refused here.
                if let a = g["advertise_accept_encoding"] {
                    if case .mapping = a.node { if boolValue(a) == nil { ok = false } } else if a.bool() == nil { ok = false }
                }
            } else { ok = false }
        }
        // Envoy decompresses responses unless this turns it off (its ignore_no_transform_header
        // then changes nothing).
        var responseEnabled = true
        if let r = f["response_direction_config"] {
            if let g = r.fields(known: ["common_config"]) {
                if let c = g["common_config"] {
                    if let h = c.fields(known: ["enabled", "ignore_no_transform_header"]) {
                        if let e = h["enabled"] { if let b = runtimeFlag(e) { responseEnabled = b } else { ok = false } }
                        if let i = h["ignore_no_transform_header"], i.bool() == nil { ok = false }
                    } else { ok = false }
                }
            } else { ok = false }
        }
        if responseEnabled && ok {
            diagnostics.error(path.appending("typed_config").appending("response_direction_config"),
                              "response decompression is not supported by ballast (Envoy enables it by default); set response_direction_config.common_config.enabled.default_value: false",
                              at: f["response_direction_config"]?.node ?? f.node)
            ok = false
        }
        guard let lib = f.required("decompressor_library"), let l = lib.fields(known: ["name", "typed_config"]) else { return nil }
        let name = l.required("name")?.nonEmptyString()
        guard let t = l.required("typed_config"),
              let g = t.fields(known: ["@type", "window_bits", "chunk_size", "max_inflate_ratio"]),
              let type = g.required("@type")?.nonEmptyString() else { return nil }
        guard type == Self.gzipDecompressorType else {
            g.error("@type", "'\(type)' is not supported by ballast (ballast implements \(Self.gzipDecompressorType))")
            return nil
        }
        func number(_ key: String, _ range: ClosedRange<Int>, _ fallback: Int) -> Int {
            guard let v = g[key] else { return fallback }
            guard let n = uint32(v) else { ok = false; return fallback }
            guard range.contains(n) else { v.error("\(n) is outside \(range.lowerBound)...\(range.upperBound) (Envoy's rule)"); ok = false; return fallback }
            return n
        }
        let window = number("window_bits", 9...15, 12)
        let chunk = number("chunk_size", 4096...65536, 4096)
        let ratio = number("max_inflate_ratio", 1...10000, 100)
        guard ok, let name else { return nil }
        return DecompressorConfig(libraryName: name, windowBits: Int32(window), chunkSize: chunk, maxInflateRatio: ratio,
                                  requestEnabled: requestEnabled, ignoreNoTransformHeader: ignoreNoTransform)
    }

    /// A `google.protobuf.BoolValue` written as `{value: b}`.
    private func boolValue(_ v: ConfigValue) -> Bool? {
        guard case .mapping = v.node else { return nil }
        return v.fields(known: ["value"])?.required("value")?.bool()
    }
}
