/// Durations as fortio, Go and Envoy write them: `250ms`, `1.5s`, `2m`, `1m30s`, `10us`, `0`.
public enum GoDuration {
    /// Nanoseconds, or nil when the text is not a duration (negative values are rejected).
    public static func parseNanos(_ text: String) -> Int64? {
        var bytes = Array(text.utf8)[...]
        guard !bytes.isEmpty else { return nil }
        if bytes == [UInt8(ascii: "0")] { return 0 }
        var total: Double = 0
        while !bytes.isEmpty {
            var number = ""
            while let b = bytes.first, (b >= 48 && b <= 57) || b == UInt8(ascii: ".") {
                number.append(Character(UnicodeScalar(b)))
                bytes.removeFirst()
            }
            guard let value = Double(number) else { return nil }
            var unit = ""
            while let b = bytes.first, !(b >= 48 && b <= 57) && b != UInt8(ascii: ".") {
                unit.append(Character(UnicodeScalar(b)))
                bytes.removeFirst()
            }
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs", "μs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            total += value * scale
        }
        guard total < 9.2e18 else { return nil }
        return Int64(total)
    }

    /// `1.5s`, `250ms`, `10µs` style text for a duration.
    public static func format(nanos: Int64) -> String {
        if nanos == 0 { return "0s" }
        if nanos % 1_000_000_000 == 0 { return "\(nanos / 1_000_000_000)s" }
        if nanos >= 1_000_000_000 { return "\(Double(nanos) / 1e9)s" }
        if nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
        if nanos >= 1_000_000 { return "\(Double(nanos) / 1e6)ms" }
        if nanos >= 1000 { return "\(Double(nanos) / 1e3)µs" }
        return "\(nanos)ns"
    }
}
