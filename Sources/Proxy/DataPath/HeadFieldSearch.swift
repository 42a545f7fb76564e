import HTTP1

/// Finding one field in an encoded head (off the hot path: a retry's re-sent head).
enum HeadFieldSearch {
    static let expectedTimeoutField: [UInt8] = Array("x-envoy-expected-rq-timeout-ms".utf8)

    /// The range of the value of field `name` (lower-case) in `head` (a request or status line,
    /// fields, the blank line), searched up to the blank line; nil when absent.
    static func valueRange(of name: [UInt8], in head: UnsafeRawBufferPointer) -> Range<Int>? {
        var line = 0
        // Skip the request line.
        while line + 1 < head.count && !(head[line] == 0x0D && head[line + 1] == 0x0A) { line += 1 }
        line += 2
        while line + 1 < head.count && !(head[line] == 0x0D && head[line + 1] == 0x0A) {
            var end = line
            while end + 1 < head.count && !(head[end] == 0x0D && head[end + 1] == 0x0A) { end += 1 }
            if end - line > name.count, head[line + name.count] == 0x3A {
                var same = true
                for i in 0..<name.count where ASCII.lowercased(head[line + i]) != name[i] { same = false; break }
                if same {
                    var v = line + name.count + 1
                    while v < end && (head[v] == 0x20 || head[v] == 0x09) { v += 1 }
                    return v..<end
                }
            }
            line = end + 2
        }
        return nil
    }

    /// Writes `value` (>= 0) in decimal into `out`; returns the digit count.
    static func decimal(_ value: Int, into out: inout [UInt8]) -> Int {
        var v = max(0, value), n = 0
        repeat { out[n] = UInt8(0x30 + v % 10); v /= 10; n += 1 } while v > 0
        out[0..<n].reverse()
        return n
    }
}
