import Glibc

/// Minimal stderr logging without Foundation: one `write(2)` per line, safe from any thread.
public enum Log {
    public static func line(_ text: String) { write(text, to: 2) }

    /// A line on standard output, written at once (no stdio buffering, so pipes see it now).
    public static func out(_ text: String) { write(text, to: 1) }

    private static func write(_ text: String, to fd: Int32) {
        var line = text
        line.append("\n")
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }

    public static func error(_ text: String) { line("ballast: error: \(text)") }
    public static func warning(_ text: String) { line("ballast: warning: \(text)") }
    public static func info(_ text: String) { line("ballast: \(text)") }

    /// strerror as a Swift string.
    public static func describe(errno code: Int32) -> String {
        guard let p = strerror(code) else { return "errno \(code)" }
        return String(validatingCString: p) ?? "errno \(code)"
    }
}
