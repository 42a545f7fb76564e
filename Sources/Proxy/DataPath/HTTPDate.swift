import Glibc

/// The `date` response field Envoy adds to every response (RFC 9110 5.6.7 IMF-fixdate), cached
/// per worker and rewritten in place once a second: no allocation per response.
struct HTTPDateField {
    /// `date: Sun, 06 Nov 1994 08:49:37 GMT\r\n` (6 + 29 + 2 bytes).
    private(set) var line: [UInt8] = Array(repeating: 0x20, count: 37)
    private var second = -1

    static var lineLength: Int { 37 }

    /// The field line for the current second.
    mutating func current() -> [UInt8] {
        let now = time(nil)
        if now != second {
            second = now
            Self.format(now, into: &line)
        }
        return line
    }

    static func format(_ seconds: Int, into line: inout [UInt8]) {
        var t = time_t(seconds)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        let days: StaticString = "SunMonTueWedThuFriSat"
        let months: StaticString = "JanFebMarAprMayJunJulAugSepOctNovDec"
        line.withUnsafeMutableBufferPointer { out in
            var i = 0
            func put(_ b: UInt8) { out[i] = b; i += 1 }
            func put(_ s: StaticString) { s.withUTF8Buffer { for b in $0 { put(b) } } }
            func name(_ table: StaticString, _ index: Int) {
                table.withUTF8Buffer { for k in 0..<3 { put($0[index * 3 + k]) } }
            }
            func two(_ v: Int32) { put(0x30 + UInt8(v / 10)); put(0x30 + UInt8(v % 10)) }
            put("date: ")
            name(days, Int(tm.tm_wday))
            put(", ")
            two(tm.tm_mday)
            put(0x20)
            name(months, Int(tm.tm_mon))
            put(0x20)
            let year = Int32(tm.tm_year + 1900)
            two(year / 100)
            two(year % 100)
            put(0x20)
            two(tm.tm_hour)
            put(0x3A)
            two(tm.tm_min)
            put(0x3A)
            two(tm.tm_sec)
            put(" GMT\r\n")
        }
    }
}
