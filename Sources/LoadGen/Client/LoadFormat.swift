import Glibc

/// printf-style number formatting without Foundation (C's `vsnprintf`), for summaries and JSON.
public enum LoadFormat {
    /// `format` applied to the arguments, e.g. `LoadFormat.c("%.6g", x)`.
    public static func c(_ format: String, _ arguments: any CVarArg...) -> String {
        withVaList(arguments) { list in
            var buffer = [CChar](repeating: 0, count: 512)
            let n = buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress!, 512, format, list) }
            guard n >= 0 else { return "" }
            return String(decoding: buffer.prefix(Int(min(n, 511))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// `%.<digits>g`.
    public static func g(_ value: Double, _ digits: Int = 6) -> String { c("%.\(digits)g", value) }

    /// A JSON number: shortest round-trip text, 0 for non-finite values (JSON has no NaN).
    public static func json(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// A JSON string literal with the required escapes.
    public static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += c("\\u%04x", Int32(scalar.value))
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// Seconds with 3 significant digits and a unit (µs, ms, s), for the progress line and notes.
    public static func seconds(_ s: Double) -> String {
        if s < 1e-3 { return g(s * 1e6, 3) + "µs" }
        if s < 1 { return g(s * 1e3, 3) + "ms" }
        return g(s, 4) + "s"
    }
}
