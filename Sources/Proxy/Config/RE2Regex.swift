import CRE2

/// A compiled RE2 pattern (CRE2's shim over libre2), the engine and semantics Envoy uses for
/// `safe_regex` and the admin `?filter=`. Immutable once compiled; RE2 matches from any thread.
public final class RE2Regex: @unchecked Sendable {  // the RE2 object is immutable and thread-safe
    private let re: OpaquePointer
    public let pattern: String

    /// Envoy's default `max_program_size` (the runtime key re2.max_program_size.error_level).
    public static let defaultMaxProgramSize = 100

    public struct CompileError: Error, CustomStringConvertible {
        /// RE2's message, e.g. "missing ): ^/a(".
        public let description: String
    }

    public init(_ pattern: String) throws(CompileError) {
        var error = [CChar](repeating: 0, count: 256)
        var text = pattern
        let compiled = text.withUTF8 { u in
            error.withUnsafeMutableBufferPointer {
                ballast_re2_compile(UnsafeRawPointer(u.baseAddress)?.assumingMemoryBound(to: CChar.self), u.count, $0.baseAddress, $0.count)
            }
        }
        guard let compiled else {
            throw CompileError(description: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        re = compiled
        self.pattern = pattern
    }

    deinit { ballast_re2_free(re) }

    /// The compiled pattern for the shim's other calls (`RegexRewrite`).
    var pointer: OpaquePointer { re }

    public var programSize: Int { Int(ballast_re2_program_size(re)) }

    /// The whole of `bytes` matches (Envoy's safe_regex matchers).
    @inline(__always)
    public func fullMatch(_ bytes: UnsafeRawBufferPointer) -> Bool {
        ballast_re2_full_match(re, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count) != 0
    }

    /// Some part of `text` matches (Envoy's /stats?filter=).
    public func partialMatch(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { u in
            ballast_re2_partial_match(re, UnsafeRawPointer(u.baseAddress)?.assumingMemoryBound(to: CChar.self), u.count) != 0
        }
    }
}
