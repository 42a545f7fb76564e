@testable import Proxy
import HTTP1
import XCTest

/// The compressor and decompressor filters' config errors, each naming its YAML path.
final class CompressorConfigTests: XCTestCase {
    static let path = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config"

    private func errors(_ filter: String) -> [String] {
        let base = dataPathYAML(virtualHosts: dataPathCatchAll("c"), clusters: dataPathCluster("c", ports: [9]))
        return loadErrors(base.replacingOccurrences(of: "          http_filters:\n", with: """
                  http_filters:
                  - \(filter)

        """))
    }

    private func compressor(_ fields: String, library: String = "") -> [String] {
        errors("{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: { name: lib, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip\(library) } }\(fields) } }")
    }

    private func decompressor(_ fields: String, library: String = "") -> [String] {
        errors("{ name: envoy.filters.http.decompressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor, decompressor_library: { name: up, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip\(library) } }\(fields) } }")
    }

    func testCompressorConfigErrorsNameThePath() {
        let p = Self.path
        XCTAssertEqual(compressor(""), [])
        XCTAssertEqual(compressor(", response_direction_config: { common_config: { min_content_length: 100, content_type: [ application/json ], enabled: { default_value: true, runtime_key: k } }, disable_on_etag_header: true }"), [])
        XCTAssertEqual(compressor("", library: ", memory_level: 3, window_bits: 10, compression_level: BEST_COMPRESSION, compression_strategy: RLE, chunk_size: 8192"), [])
        XCTAssertEqual(compressor(", request_direction_config: {}"), ["\(p).request_direction_config: not supported by ballast"])
        XCTAssertEqual(compressor(", response_direction_config: { uncompressible_response_codes: [ 206 ] }"),
                       ["\(p).response_direction_config.uncompressible_response_codes: not supported by ballast"])
        XCTAssertEqual(compressor(", response_direction_config: { remove_accept_encoding_header: true }"), [])
        XCTAssertEqual(compressor(", response_direction_config: { remove_accept_encoding_header: yes please }"),
                       ["\(p).response_direction_config.remove_accept_encoding_header: expected true or false, got 'yes please'"])
        XCTAssertEqual(compressor("", library: ", window_bits: 8"), ["\(p).compressor_library.typed_config.window_bits: 8 is outside 9...15 (Envoy's rule)"])
        XCTAssertEqual(compressor("", library: ", memory_level: 10"), ["\(p).compressor_library.typed_config.memory_level: 10 is outside 1...9 (Envoy's rule)"])
        XCTAssertEqual(compressor("", library: ", chunk_size: 100"), ["\(p).compressor_library.typed_config.chunk_size: 100 is outside 4096...65536 (Envoy's rule)"])
        XCTAssertEqual(compressor("", library: ", compression_level: FASTEST").first?.hasPrefix("\(p).compressor_library.typed_config.compression_level: unknown value 'FASTEST'"), true)
        XCTAssertEqual(errors("{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: { name: b, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli } } } }"),
                       [])
        XCTAssertEqual(compressor("", library: ", window_bits: 9"), [])
        XCTAssertEqual(errors("{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: { name: b, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli, window_bits: 9, encoder_mode: TEXT } } } }"),
                       ["\(p).compressor_library.typed_config.window_bits: 9 is outside 10...24 (Envoy's rule)"])
        XCTAssertEqual(errors("{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: { name: z, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd, compression_level: 10, strategy: BTULTRA2, enable_checksum: true } } } }"), [])
        XCTAssertEqual(errors("{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: { name: z, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd, dictionary: { inline_string: abc } } } } }"),
                       ["\(p).compressor_library.typed_config.dictionary: not supported by ballast"])
        XCTAssertEqual(errors("{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: { name: z, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.compression.lz4.compressor.v3.Lz4 } } } }"),
                       ["\(p).compressor_library.typed_config.@type: 'type.googleapis.com/envoy.extensions.compression.lz4.compressor.v3.Lz4' is not supported by ballast (ballast implements type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip, type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli, type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd)"])
        XCTAssertEqual(errors("{ name: envoy.filters.http.compressor, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor } }"),
                       ["\(p).compressor_library: required field missing"])
    }

    func testCompressorPerRoute() {
        let base = dataPathYAML(virtualHosts: dataPathCatchAll("c"), clusters: dataPathCluster("c", ports: [9]))
        func with(_ perRoute: String) -> [String] {
            var yaml = base.replacingOccurrences(of: "          http_filters:\n", with: """
                      http_filters:
                      - { name: envoy.filters.http.compressor, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: { name: lib, typed_config: { "@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip } } } }

            """)
            // The per-route config goes next to the route's `route:`, at its indentation.
            let lines = yaml.components(separatedBy: "\n")
            guard let i = lines.firstIndex(where: { $0.contains("route: { cluster: c }") }) else { XCTFail("no route"); return [] }
            let indent = String(lines[i].prefix { $0 == " " })
            let entry = indent + "typed_per_filter_config: { envoy.filters.http.compressor: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute\(perRoute) } }"
            yaml = (lines[...i] + [entry] + lines[(i + 1)...]).joined(separator: "\n")
            return loadErrors(yaml)
        }
        XCTAssertEqual(with(", disabled: true"), [])
        XCTAssertEqual(with(", disabled: false").map { $0.hasSuffix("disabled: must be true (Envoy's rule)") }, [true])
        XCTAssertEqual(with(", overrides: { response_direction_config: {} }").map { $0.hasSuffix("overrides: not supported by ballast") }, [true])
    }

    func testDecompressorConfigErrorsNameThePath() {
        let p = Self.path
        let off = ", response_direction_config: { common_config: { enabled: { default_value: false, runtime_key: k } } }"
        XCTAssertEqual(decompressor(off), [])
        XCTAssertEqual(decompressor(off, library: ", window_bits: 9, chunk_size: 8192, max_inflate_ratio: 1000"), [])
        XCTAssertEqual(decompressor(""), ["\(p).response_direction_config: response decompression is not supported by ballast (Envoy enables it by default); set response_direction_config.common_config.enabled.default_value: false"])
        XCTAssertEqual(decompressor(off, library: ", window_bits: 16"), ["\(p).decompressor_library.typed_config.window_bits: 16 is outside 9...15 (Envoy's rule)"])
        XCTAssertEqual(decompressor(off + ", request_direction_config: { common_config: { enabled: { runtime_key: k } } }"),
                       ["\(p).request_direction_config.common_config.enabled.default_value: required field missing"])
    }

    /// Accept-Encoding as Envoy's chooseEncoding reads it, for a chain with gzip only.
    func testAcceptEncodingChoice() {
        func choice(_ values: [String], coding: String = "gzip") -> AcceptEncodingChoice {
            var head = "GET / HTTP/1.1\r\nHost: a\r\n"
            for v in values { head += "Accept-Encoding: \(v)\r\n" }
            head += "\r\n"
            let bytes = Array(head.utf8)
            let parser = UnsafeMutablePointer<RequestHeadParser>.allocate(capacity: 1)
            parser.initialize(to: RequestHeadParser())
            defer { parser.deinitialize(count: 1); parser.deallocate() }
            return bytes.withUnsafeBytes { b in
                guard case .complete = parser.pointee.parse(b) else { XCTFail("head"); return .unset }
                return AcceptEncodingChoice.parse(RequestView(bytes: b, path: 0..<0, query: nil, host: nil, parser: parser), coding: Array(coding.utf8))
            }
        }
        XCTAssertEqual(choice([]), .noHeader)
        XCTAssertEqual(choice(["gzip"]), .compressor)
        XCTAssertEqual(choice(["GZIP"]), .notValid)
        XCTAssertEqual(choice([""]), .notValid)
        XCTAssertEqual(choice(["identity"]), .identity)
        XCTAssertEqual(choice(["*"]), .wildcard)
        XCTAssertEqual(choice(["gzip;q=0, *"]), .notValid)
        XCTAssertEqual(choice(["*, gzip;q=0"]), .notValid)
        XCTAssertEqual(choice(["identity, gzip"]), .identity)
        XCTAssertEqual(choice(["identity;q=0.5, gzip"]), .compressor)
        XCTAssertEqual(choice(["br;q=0.9, gzip;q=0.5, deflate"]), .compressor)
        XCTAssertEqual(choice(["gzip;q=x"]), .notValid)
        XCTAssertEqual(choice(["gzip;q=x, identity"]), .identity)
        XCTAssertEqual(choice(["gzip;level=1"]), .compressor)
        XCTAssertEqual(choice(["br", "gzip;q=.5"]), .compressor)
        XCTAssertEqual(choice(["br"]), .notValid)
        XCTAssertEqual(choice(["gzip;q=1e-1"]), .compressor)
        XCTAssertEqual(choice(["gzip, br;q=0.5"], coding: "br"), .compressor)
        XCTAssertEqual(choice(["gzip"], coding: "br"), .notValid)
    }
}
