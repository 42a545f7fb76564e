import Balancers

// The parsers behind `EchoQuery.plan`: a percent-decoding scanner, parameter names, numbers,
// Go durations, percentages, weighted lists and extra headers. Nothing here allocates.

/// A half-open byte range of the raw query; `start == end` means absent or empty.
@usableFromInline
struct EchoSpan {
    @usableFromInline var start: Int
    @usableFromInline var end: Int

    @inlinable
    init(start: Int, end: Int) {
        self.start = start
        self.end = end
    }

    @inlinable
    static var empty: EchoSpan { EchoSpan(start: 0, end: 0) }

    @inlinable
    var isEmpty: Bool { start >= end }
}

/// Reads a raw span one decoded byte at a time: `%XX` is one byte, `+` is a space.
///
/// `current` is the decoded byte under the cursor, `EchoScanner.end` past the last byte, or
/// `EchoScanner.badEscape` at a malformed `%` escape; the scanner stays there (advancing does not
/// move past a bad escape), so no parser can accept a value that contains one.
@usableFromInline
struct EchoScanner {
    @usableFromInline static var end: Int { -1 }
    @usableFromInline static var badEscape: Int { -2 }

    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline var index: Int
    @usableFromInline let limit: Int
    @usableFromInline var current: Int

    @usableFromInline
    init(_ bytes: UnsafeRawBufferPointer, _ span: EchoSpan) {
        self.bytes = bytes
        self.index = span.start
        self.limit = span.end
        self.current = EchoScanner.end
        advance()
    }

    @usableFromInline
    mutating func advance() {
        guard index < limit else {
            current = EchoScanner.end
            return
        }
        let byte = bytes[index]
        if byte == UInt8(ascii: "%") {
            if index + 2 < limit {
                let high = EchoParsing.hexValue(bytes[index + 1])
                let low = EchoParsing.hexValue(bytes[index + 2])
                if high >= 0 && low >= 0 {
                    current = high << 4 | low
                    index += 3
                    return
                }
            }
            current = EchoScanner.badEscape
        } else if byte == UInt8(ascii: "+") {
            current = 0x20
            index += 1
        } else {
            current = Int(byte)
            index += 1
        }
    }

    @inlinable
    var isDigit: Bool { current >= 0x30 && current <= 0x39 }

    @inlinable
    var digit: Int { current - 0x30 }
}

/// The parameters the echo server understands.
@usableFromInline
enum EchoParameter {
    case unknown, size, status, delay, close, header

    /// Classifies a raw parameter name, percent-decoding it first. A name with a bad escape or a
    /// NUL byte is unknown.
    @usableFromInline
    init(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) {
        // The decoded name, packed little-endian; the known names are at most 6 bytes long.
        var scanner = EchoScanner(bytes, EchoSpan(start: start, end: end))
        var packed: UInt64 = 0
        var shift: UInt64 = 0
        while scanner.current > 0 {
            if shift == 48 {
                self = .unknown
                return
            }
            packed |= UInt64(scanner.current) << shift
            shift += 8
            scanner.advance()
        }
        guard scanner.current == EchoScanner.end else {
            self = .unknown
            return
        }
        switch packed {
        case 0x657A_6973: self = .size            // "size"
        case 0x7375_7461_7473: self = .status     // "status"
        case 0x79_616C_6564: self = .delay        // "delay"
        case 0x65_736F_6C63: self = .close        // "close"
        case 0x7265_6461_6568: self = .header     // "header"
        default: self = .unknown
        }
    }
}

/// What a parameter asks for: nothing (use the default), a value, or an error.
@usableFromInline
enum EchoChoice {
    case absent
    case value(Int64)
    case invalid(StaticString)
}

/// The value types of the weighted parameters.
@usableFromInline
enum EchoValueKind {
    case status, size, delay

    @inlinable
    var badValue: StaticString {
        switch self {
        case .status: return "bad status value"
        case .size: return "bad size value"
        case .delay: return "bad delay value"
        }
    }
}

@usableFromInline
enum EchoParsing {
    /// Percent values are fixed point in millionths of a percent; 100 % is this many units.
    @usableFromInline static var hundredPercent: Int64 { 100_000_000 }

    /// The value of an ASCII hex digit, or -1.
    @usableFromInline
    static func hexValue(_ byte: UInt8) -> Int {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte) - 0x30
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte) - 0x61 + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte) - 0x41 + 10
        default: return -1
        }
    }

    /// Whether every `%` in the raw span starts a valid `%XX` escape.
    @usableFromInline
    static func escapesAreValid(_ bytes: UnsafeRawBufferPointer, _ span: EchoSpan) -> Bool {
        var index = span.start
        while index < span.end {
            if bytes[index] == UInt8(ascii: "%") {
                guard index + 2 < span.end, hexValue(bytes[index + 1]) >= 0, hexValue(bytes[index + 2]) >= 0 else {
                    return false
                }
                index += 3
            } else {
                index += 1
            }
        }
        return true
    }

    // MARK: - Numbers

    /// Decimal digits, saturating at Int64.max; nil if there is no digit.
    @usableFromInline
    static func parseCount(_ scanner: inout EchoScanner) -> Int64? {
        guard scanner.isDigit else { return nil }
        var value: Int64 = 0
        while scanner.isDigit {
            let digit = Int64(scanner.digit)
            value = value > (Int64.max - digit) / 10 ? Int64.max : value * 10 + digit
            scanner.advance()
        }
        return value
    }

    /// A status code: decimal digits with a value in 100...999.
    @usableFromInline
    static func parseStatus(_ scanner: inout EchoScanner) -> Int64? {
        guard let code = parseCount(&scanner), code >= 100, code <= 999 else { return nil }
        return code
    }

    /// A percentage, `digits[.digits][%]` with at least one digit, in millionths of a percent
    /// (digits after the 6th decimal are dropped); nil if malformed or over 100.
    @usableFromInline
    static func parsePercent(_ scanner: inout EchoScanner) -> Int64? {
        var whole: Int64 = 0
        var digits = 0
        while scanner.isDigit {
            if whole <= 100 { whole = whole * 10 + Int64(scanner.digit) }
            digits += 1
            scanner.advance()
        }
        var fraction: Int64 = 0
        if scanner.current == Int(UInt8(ascii: ".")) {
            scanner.advance()
            var place: Int64 = 100_000
            while scanner.isDigit {
                fraction += Int64(scanner.digit) * place
                place /= 10
                digits += 1
                scanner.advance()
            }
        }
        if scanner.current == Int(UInt8(ascii: "%")) { scanner.advance() }
        guard digits > 0, whole <= 100 else { return nil }
        let units = whole * 1_000_000 + fraction
        return units <= hundredPercent ? units : nil
    }

    /// A Go duration (see `EchoQuery`) in nanoseconds, saturating at Int64.max; nil if malformed.
    @usableFromInline
    static func parseDuration(_ scanner: inout EchoScanner) -> Int64? {
        if scanner.current == Int(UInt8(ascii: "+")) { scanner.advance() }
        var total: UInt64 = 0
        var first = true
        while true {
            var whole: UInt64 = 0
            var fraction: UInt64 = 0
            var scale: UInt64 = 1
            var digits = 0
            while scanner.isDigit {
                let digit = UInt64(scanner.digit)
                whole = whole > (UInt64.max - digit) / 10 ? UInt64.max : whole * 10 + digit
                digits += 1
                scanner.advance()
            }
            if scanner.current == Int(UInt8(ascii: ".")) {
                scanner.advance()
                while scanner.isDigit {
                    if scale < 1_000_000_000_000_000_000 {
                        fraction = fraction * 10 + UInt64(scanner.digit)
                        scale *= 10
                    }
                    digits += 1
                    scanner.advance()
                }
            }
            guard digits > 0 else { return nil }
            guard let unit = parseUnit(&scanner) else {
                // Only a lone zero may go without a unit.
                return first && whole == 0 && fraction == 0 ? 0 : nil
            }
            let (product, overflow) = whole.multipliedReportingOverflow(by: unit)
            var nanos = overflow ? UInt64.max : product
            if fraction > 0 {
                // fraction < scale, so the quotient is below unit and fits.
                let part = scale.dividingFullWidth(fraction.multipliedFullWidth(by: unit)).quotient
                nanos = nanos > UInt64.max - part ? UInt64.max : nanos + part
            }
            total = total > UInt64.max - nanos ? UInt64.max : total + nanos
            first = false
            guard scanner.isDigit || scanner.current == Int(UInt8(ascii: ".")) else { break }
        }
        return total > UInt64(Int64.max) ? Int64.max : Int64(total)
    }

    /// A duration unit, in nanoseconds; nil if there is none.
    @usableFromInline
    static func parseUnit(_ scanner: inout EchoScanner) -> UInt64? {
        let s = Int(UInt8(ascii: "s"))
        switch scanner.current {
        case Int(UInt8(ascii: "n")):
            scanner.advance()
            guard scanner.current == s else { return nil }
            scanner.advance()
            return 1
        case Int(UInt8(ascii: "u")):
            scanner.advance()
            guard scanner.current == s else { return nil }
            scanner.advance()
            return 1_000
        case 0xC2, 0xCE:
            // U+00B5 MICRO SIGN is C2 B5, U+03BC GREEK SMALL LETTER MU is CE BC.
            let second = scanner.current == 0xC2 ? 0xB5 : 0xBC
            scanner.advance()
            guard scanner.current == second else { return nil }
            scanner.advance()
            guard scanner.current == s else { return nil }
            scanner.advance()
            return 1_000
        case Int(UInt8(ascii: "m")):
            scanner.advance()
            if scanner.current == s {
                scanner.advance()
                return 1_000_000
            }
            return 60_000_000_000
        case s:
            scanner.advance()
            return 1_000_000_000
        case Int(UInt8(ascii: "h")):
            scanner.advance()
            return 3_600_000_000_000
        default:
            return nil
        }
    }

    @usableFromInline
    static func parseValue(_ kind: EchoValueKind, _ scanner: inout EchoScanner) -> Int64? {
        switch kind {
        case .status: return parseStatus(&scanner)
        case .size: return parseCount(&scanner)
        case .delay: return parseDuration(&scanner)
        }
    }

    // MARK: - Choices

    /// One uniform draw in [0, 100 %) in millionths of a percent: exactly one `next()`.
    @usableFromInline
    static func drawPercent(_ rng: inout SplitMix64) -> Int64 {
        Int64(rng.next().multipliedFullWidth(by: UInt64(hundredPercent)).high)
    }

    /// Parses a single or weighted `size`, `status` or `delay` value and makes the choice.
    @usableFromInline
    static func choose(
        _ kind: EchoValueKind, _ bytes: UnsafeRawBufferPointer, _ span: EchoSpan, rng: inout SplitMix64
    ) -> EchoChoice {
        if span.isEmpty { return .absent }
        guard escapesAreValid(bytes, span) else { return .invalid("bad percent-encoding") }
        let colon = Int(UInt8(ascii: ":"))
        let comma = Int(UInt8(ascii: ","))
        var scanner = EchoScanner(bytes, span)
        guard var value = parseValue(kind, &scanner) else { return .invalid(kind.badValue) }
        if scanner.current == EchoScanner.end { return .value(value) }
        guard scanner.current == colon else {
            return .invalid(scanner.current == comma ? "bad weighted list" : kind.badValue)
        }
        let roll = drawPercent(&rng)
        var cumulative: Int64 = 0
        var chosen: Int64 = 0
        var found = false
        while true {
            scanner.advance()  // the ':'
            guard let weight = parsePercent(&scanner) else { return .invalid("bad percentage") }
            cumulative += weight
            guard cumulative <= hundredPercent else { return .invalid("percentages sum over 100") }
            if !found && cumulative > roll {
                found = true
                chosen = value
            }
            if scanner.current == EchoScanner.end { break }
            guard scanner.current == comma else { return .invalid("bad weighted list") }
            scanner.advance()
            guard let next = parseValue(kind, &scanner) else { return .invalid(kind.badValue) }
            guard scanner.current == colon else { return .invalid("bad weighted list") }
            value = next
        }
        return found ? .value(chosen) : .absent
    }

    /// Parses `close`: `true` gives 1, `false` gives 0, a percentage P gives 1 in P % of draws.
    @usableFromInline
    static func chooseClose(_ bytes: UnsafeRawBufferPointer, _ span: EchoSpan, rng: inout SplitMix64) -> EchoChoice {
        if span.isEmpty { return .absent }
        guard escapesAreValid(bytes, span) else { return .invalid("bad percent-encoding") }
        if decodedEquals(bytes, span, "true") { return .value(1) }
        if decodedEquals(bytes, span, "false") { return .value(0) }
        var scanner = EchoScanner(bytes, span)
        guard let percent = parsePercent(&scanner), scanner.current == EchoScanner.end else {
            return .invalid("bad close value")
        }
        return .value(percent > drawPercent(&rng) ? 1 : 0)
    }

    /// Whether the decoded span is exactly `literal`.
    @usableFromInline
    static func decodedEquals(_ bytes: UnsafeRawBufferPointer, _ span: EchoSpan, _ literal: StaticString) -> Bool {
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        var scanner = EchoScanner(bytes, span)
        for byte in expected {
            guard scanner.current == Int(byte) else { return false }
            scanner.advance()
        }
        return scanner.current == EchoScanner.end
    }

    // MARK: - Headers

    /// RFC 9110 `tchar`.
    @usableFromInline
    static func isTokenByte(_ byte: Int) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }

    /// RFC 9110 field-value byte: HTAB, visible ASCII, space, or obs-text.
    @usableFromInline
    static func isFieldValueByte(_ byte: Int) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F && byte <= 0xFF)
    }

    /// Decodes one `header=Name:Value` into `scratch` after the headers already there, as
    /// `Name: Value\r\n`, and records it in `plan`. Returns nil on success, else the reason.
    @usableFromInline
    static func appendHeader(
        _ bytes: UnsafeRawBufferPointer, _ span: EchoSpan, to plan: inout EchoPlan, scratch: UnsafeMutableRawBufferPointer
    ) -> StaticString? {
        if span.isEmpty { return nil }
        guard escapesAreValid(bytes, span) else { return "bad percent-encoding" }
        guard plan.extraHeaderCount < EchoPlan.maxExtraHeaders else { return "too many headers" }
        let capacity = min(scratch.count, Int(Int32.max))
        let colon = Int(UInt8(ascii: ":"))
        var out = plan.extraHeaderBytes
        let nameStart = out
        var scanner = EchoScanner(bytes, span)
        while scanner.current >= 0 && scanner.current != colon {
            guard isTokenByte(scanner.current) else { return "bad header name" }
            guard out < capacity else { return "headers too long" }
            scratch[out] = UInt8(truncatingIfNeeded: scanner.current)
            out += 1
            scanner.advance()
        }
        guard scanner.current == colon else { return "bad header, expected Name:Value" }
        guard out > nameStart else { return "bad header name" }
        let nameCount = out - nameStart
        scanner.advance()
        guard capacity - out >= 2 else { return "headers too long" }
        scratch[out] = UInt8(ascii: ":")
        scratch[out + 1] = UInt8(ascii: " ")
        out += 2
        while scanner.current == 0x20 || scanner.current == 0x09 { scanner.advance() }
        let valueStart = out
        var valueEnd = out  // just past the last byte that is not a space or tab
        while scanner.current >= 0 {
            let byte = scanner.current
            guard isFieldValueByte(byte) else { return "bad header value" }
            guard out < capacity else { return "headers too long" }
            scratch[out] = UInt8(truncatingIfNeeded: byte)
            out += 1
            if byte != 0x20 && byte != 0x09 { valueEnd = out }
            scanner.advance()
        }
        out = valueEnd
        guard capacity - out >= 2 else { return "headers too long" }
        scratch[out] = 0x0D
        scratch[out + 1] = 0x0A
        out += 2
        plan.extraHeaderRanges[plan.extraHeaderCount] = EchoHeaderRange(
            nameStart: Int32(nameStart), nameCount: Int32(nameCount),
            valueStart: Int32(valueStart), valueCount: Int32(valueEnd - valueStart))
        plan.extraHeaderCount += 1
        plan.extraHeaderBytes = out
        return nil
    }
}
