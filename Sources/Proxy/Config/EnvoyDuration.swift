/// Durations as Envoy's YAML writes them (protobuf JSON `google.protobuf.Duration`): a decimal
/// number of seconds with an `s` suffix and up to 9 fractional digits (`0.25s`, `1.5s`, `0s`,
/// `300s`), or the object form `{seconds: 1, nanos: 500000000}`. Negative durations are rejected
/// (no Ballast field takes one). Values are held as `Int64` nanoseconds.
public enum EnvoyDuration {
    /// protobuf's Duration limit: 10,000 years.
    public static let maxSeconds: Int64 = 315_576_000_000
    /// Largest whole seconds that fit the `Int64` nanosecond representation (about 292 years);
    /// longer durations are rejected as too large.
    public static let maxNanoSeconds: Int64 = Int64.max / 1_000_000_000 - 1

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case malformed
        case otherUnit(String)
        case negative
        case tooLarge

        public var description: String {
            switch self {
            case .malformed: "expected a duration in seconds such as 0.25s, 1.5s or 300s"
            case .otherUnit(let unit):
                "expected a duration in seconds such as 0.25s (Envoy durations use only the unit 's', not '\(unit)')"
            case .negative: "a negative duration is not allowed"
            case .tooLarge: "duration too large (at most \(EnvoyDuration.maxNanoSeconds)s, about 292 years)"
            }
        }
    }

    /// Parses the string form; the result is nanoseconds.
    public static func parseNanos(_ text: String) throws(ParseError) -> Int64 {
        var bytes = Array(text.utf8)
        guard !bytes.isEmpty else { throw .malformed }
        if bytes.first == UInt8(ascii: "-") {
            let rest = String(decoding: bytes.dropFirst(), as: UTF8.self)
            if (try? parseNanos(rest)) != nil { throw .negative }
            throw .malformed
        }
        guard bytes.last == UInt8(ascii: "s") else {
            // Say which unit was used when it is one people reach for (250ms, 5m, 1h).
            let unit = String(decoding: bytes.drop { isDigit($0) || $0 == UInt8(ascii: ".") }, as: UTF8.self)
            if ["ms", "us", "µs", "ns", "m", "h", "d"].contains(unit) && bytes.first.map(isDigit) == true {
                throw .otherUnit(unit)
            }
            throw .malformed
        }
        bytes.removeLast()
        if bytes.count >= 1, [UInt8(ascii: "m"), UInt8(ascii: "u"), UInt8(ascii: "n")].contains(bytes.last!) {
            throw .otherUnit(String(UnicodeScalar(bytes.last!)) + "s")
        }
        let dot = bytes.firstIndex(of: UInt8(ascii: "."))
        let whole = dot.map { Array(bytes[..<$0]) } ?? bytes
        let fraction = dot.map { Array(bytes[($0 + 1)...]) } ?? []
        guard !whole.isEmpty, whole.allSatisfy(isDigit), fraction.allSatisfy(isDigit) else { throw .malformed }
        if dot != nil && fraction.isEmpty { throw .malformed }
        guard fraction.count <= 9 else { throw .malformed }
        guard whole.count <= 12 else { throw .tooLarge }
        var seconds: Int64 = 0
        for b in whole { seconds = seconds * 10 + Int64(b - UInt8(ascii: "0")) }
        var nanos: Int64 = 0
        for i in 0..<9 { nanos = nanos * 10 + (i < fraction.count ? Int64(fraction[i] - UInt8(ascii: "0")) : 0) }
        return try combine(seconds: seconds, nanos: nanos)
    }

    /// The object form's parts (`seconds`, `nanos` 0..999,999,999) into nanoseconds.
    public static func combine(seconds: Int64, nanos: Int64) throws(ParseError) -> Int64 {
        guard seconds >= 0, nanos >= 0 else { throw .negative }
        guard nanos < 1_000_000_000 else { throw .malformed }
        guard seconds <= maxSeconds, seconds <= maxNanoSeconds else { throw .tooLarge }
        return seconds * 1_000_000_000 + nanos
    }

    /// Envoy's spelling of a duration: `0.25s`, `1.5s`, `0s`, `300s` (shortest exact form).
    public static func format(nanos: Int64) -> String {
        let sign = nanos < 0 ? "-" : ""
        let magnitude = nanos.magnitude
        let seconds = magnitude / 1_000_000_000
        var fraction = magnitude % 1_000_000_000
        guard fraction != 0 else { return "\(sign)\(seconds)s" }
        var digits = 9
        while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
        let text = String(fraction)
        return "\(sign)\(seconds).\(String(repeating: "0", count: digits - text.count))\(text)s"
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}
