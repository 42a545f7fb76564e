// ASCII helpers over raw byte buffers. Shared by the parsers in this module and reusable by other
// modules (Proxy, LoadGen). Nothing here allocates; every function is @inlinable so callers in other
// modules get a specialised, inlined copy.

/// Byte-level helpers for HTTP/1.1 text. All ranges are offsets into the given buffer; callers make sure
/// a range lies inside the buffer (checked only in debug builds, like any `UnsafeRawBufferPointer` subscript).
public enum ASCII {
    @inlinable public static var cr: UInt8 { 0x0D }
    @inlinable public static var lf: UInt8 { 0x0A }
    @inlinable public static var space: UInt8 { 0x20 }
    @inlinable public static var tab: UInt8 { 0x09 }
    @inlinable public static var colon: UInt8 { 0x3A }
    @inlinable public static var comma: UInt8 { 0x2C }
    @inlinable public static var semicolon: UInt8 { 0x3B }

    // tchar (RFC 9110 §5.6.2): "!#$%&'*+-.^_`|~", DIGIT, ALPHA, as two 64-bit masks over 0..<128.
    @inlinable static var tcharMaskLow: UInt64 { 0x03ff_6cfa_0000_0000 }
    @inlinable static var tcharMaskHigh: UInt64 { 0x57ff_ffff_c7ff_fffe }

    /// True for RFC 9110 token characters (`tchar`).
    @inlinable @inline(__always)
    public static func isTokenChar(_ byte: UInt8) -> Bool {
        if byte < 64 { return (tcharMaskLow >> UInt64(byte)) & 1 != 0 }
        if byte < 128 { return (tcharMaskHigh >> UInt64(byte &- 64)) & 1 != 0 }
        return false
    }

    /// True for SP and HTAB (optional whitespace, OWS).
    @inlinable @inline(__always)
    public static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == space || byte == tab
    }

    /// True for bytes allowed in a field value or reason phrase: HTAB, SP, VCHAR and obs-text (0x80-0xFF).
    /// Rejects NUL, CR, LF, the other C0 controls and DEL.
    @inlinable @inline(__always)
    public static func isFieldValueByte(_ byte: UInt8) -> Bool {
        (byte >= 0x20 && byte != 0x7F) || byte == tab
    }

    /// Lower-cases ASCII letters only; every other byte is returned unchanged.
    @inlinable @inline(__always)
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        (byte &- 0x41) < 26 ? byte | 0x20 : byte
    }

    /// The value of a hexadecimal digit, or nil.
    @inlinable @inline(__always)
    public static func hexValue(_ byte: UInt8) -> Int? {
        if (byte &- 0x30) < 10 { return Int(byte &- 0x30) }
        let lower = byte | 0x20
        if (lower &- 0x61) < 6 { return Int(lower &- 0x61) + 10 }
        return nil
    }

    /// Parses a non-empty run of ASCII decimal digits. Returns nil for an empty range, any non-digit
    /// (signs, whitespace, commas included) or a value that does not fit in `Int`.
    @inlinable
    public static func parseDecimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        if range.isEmpty { return nil }
        var value = 0
        var i = range.lowerBound
        while i < range.upperBound {
            let digit = bytes[i] &- 0x30
            if digit > 9 { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(digit))
            if o1 || o2 { return nil }
            value = sum
            i += 1
        }
        return value
    }

    /// Compares `bytes[range]` with an ASCII literal, ignoring the case of ASCII letters only
    /// ("^" never matches "~"). Lengths must be equal.
    @inlinable
    public static func equalsCaseInsensitive(
        _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString
    ) -> Bool {
        literal.withUTF8Buffer { lit in
            if lit.count != range.count { return false }
            var i = 0
            let start = range.lowerBound
            while i < lit.count {
                if lowercased(bytes[start + i]) != lowercased(lit[i]) { return false }
                i += 1
            }
            return true
        }
    }

    /// Compares two ranges of (possibly different) buffers, ignoring the case of ASCII letters.
    @inlinable
    public static func equalsCaseInsensitive(
        _ a: UnsafeRawBufferPointer, _ aRange: Range<Int>,
        _ b: UnsafeRawBufferPointer, _ bRange: Range<Int>
    ) -> Bool {
        if aRange.count != bRange.count { return false }
        var i = 0
        while i < aRange.count {
            if lowercased(a[aRange.lowerBound + i]) != lowercased(b[bRange.lowerBound + i]) { return false }
            i += 1
        }
        return true
    }

    /// Removes leading and trailing SP/HTAB from a range.
    @inlinable
    public static func trimWhitespace(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
        var lo = range.lowerBound
        var hi = range.upperBound
        while lo < hi && isWhitespace(bytes[lo]) { lo += 1 }
        while hi > lo && isWhitespace(bytes[hi - 1]) { hi -= 1 }
        return lo..<hi
    }

    /// Iterates a comma-separated list (`#element` of RFC 9110 §5.6.1) without allocating.
    /// Start with `cursor = range.lowerBound`; each call returns the next non-empty element with
    /// surrounding whitespace trimmed, or nil when the list is exhausted. Empty elements are skipped.
    /// Quoted strings are not interpreted (no list this module reads contains them).
    @inlinable
    public static func nextListElement(
        _ bytes: UnsafeRawBufferPointer, cursor: inout Int, end: Int
    ) -> Range<Int>? {
        var i = cursor
        while i < end {
            while i < end && (isWhitespace(bytes[i]) || bytes[i] == comma) { i += 1 }
            if i == end { break }
            let start = i
            while i < end && bytes[i] != comma { i += 1 }
            var stop = i
            while stop > start && isWhitespace(bytes[stop - 1]) { stop -= 1 }
            cursor = i
            return start..<stop
        }
        cursor = end
        return nil
    }

    /// True when the comma-separated list in `bytes[range]` contains `token` (case-insensitive).
    @inlinable
    public static func listContainsToken(
        _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ token: StaticString
    ) -> Bool {
        var cursor = range.lowerBound
        while let element = nextListElement(bytes, cursor: &cursor, end: range.upperBound) {
            if equalsCaseInsensitive(bytes, element, token) { return true }
        }
        return false
    }
}
