import Glibc
import HTTP1

/// The cache-control directives Envoy 1.40's cache reads from a response (a shared cache's view:
/// `private` forbids storing, as `no-store` does; `s-maxage` wins over `max-age`).
struct ResponseCacheControl {
    var noStore = false
    /// `no-cache` (with or without field names): every use needs validation.
    var mustValidate = false
    /// `must-revalidate` / `proxy-revalidate`: never served stale.
    var noStale = false
    /// Seconds (`s-maxage`, else `max-age`), nil when neither.
    var maxAge: Int64? = nil

    init() {}

    init(_ b: UnsafeRawBufferPointer, _ value: Range<Int>) {
        var sMaxAge: Int64? = nil
        CacheDirectives.each(b, value) { name, arg in
            if CacheDirectives.is(b, name, "no-store") || CacheDirectives.is(b, name, "private") { noStore = true }
            else if CacheDirectives.is(b, name, "no-cache") { mustValidate = true }
            else if CacheDirectives.is(b, name, "must-revalidate") || CacheDirectives.is(b, name, "proxy-revalidate") { noStale = true }
            else if CacheDirectives.is(b, name, "max-age") { maxAge = CacheDirectives.seconds(b, arg) }
            else if CacheDirectives.is(b, name, "s-maxage") { sMaxAge = CacheDirectives.seconds(b, arg) }
        }
        if let sMaxAge { maxAge = sMaxAge }
    }
}

/// The request's directives (or `pragma: no-cache` when it has no cache-control), as Envoy's.
struct RequestCacheControl {
    var noStore = false
    var mustValidate = false
    var maxAge: Int64? = nil
    var minFresh: Int64? = nil
    /// `max-stale` without a value allows any staleness.
    var maxStale: Int64? = nil

    mutating func read(_ b: UnsafeRawBufferPointer, _ value: Range<Int>) {
        CacheDirectives.each(b, value) { name, arg in
            if CacheDirectives.is(b, name, "no-store") { noStore = true }
            else if CacheDirectives.is(b, name, "no-cache") { mustValidate = true }
            else if CacheDirectives.is(b, name, "max-age") { maxAge = CacheDirectives.seconds(b, arg) }
            else if CacheDirectives.is(b, name, "min-fresh") { minFresh = CacheDirectives.seconds(b, arg) }
            else if CacheDirectives.is(b, name, "max-stale") { maxStale = arg == nil ? Int64.max : CacheDirectives.seconds(b, arg) }
        }
    }
}

enum CacheDirectives {
    /// Calls `body` with each directive's name and argument (quotes removed) in a cache-control value.
    @inline(__always)
    static func each(_ b: UnsafeRawBufferPointer, _ value: Range<Int>, _ body: (Range<Int>, Range<Int>?) -> Void) {
        var cursor = value.lowerBound
        while let item = ASCII.nextListElement(b, cursor: &cursor, end: value.upperBound) {
            var eq = item.upperBound
            for k in item where b[k] == UInt8(ascii: "=") { eq = k; break }
            let name = ASCII.trimWhitespace(b, item.lowerBound..<eq)
            guard eq < item.upperBound else { body(name, nil); continue }
            var arg = ASCII.trimWhitespace(b, (eq + 1)..<item.upperBound)
            if arg.count >= 2 && b[arg.lowerBound] == UInt8(ascii: "\"") && b[arg.upperBound - 1] == UInt8(ascii: "\"") {
                arg = (arg.lowerBound + 1)..<(arg.upperBound - 1)
            }
            body(name, arg)
        }
    }

    @inline(__always)
    static func `is`(_ b: UnsafeRawBufferPointer, _ name: Range<Int>, _ literal: StaticString) -> Bool {
        name.count == literal.utf8CodeUnitCount && ASCII.equalsCaseInsensitive(b, name, literal)
    }

    /// A delta-seconds argument; a missing or malformed one reads as 0 (already stale), as Envoy.
    static func seconds(_ b: UnsafeRawBufferPointer, _ arg: Range<Int>?) -> Int64 {
        guard let arg, let n = ASCII.parseDecimal(b, arg) else { return 0 }
        return Int64(n)
    }
}

extension HTTPDateField {
    /// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), nil when the
    /// value is not one (Envoy's cache reads other formats too; they are rare and read as invalid here).
    static func parse(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int64? {
        let r = ASCII.trimWhitespace(b, range)
        guard r.count == 29 else { return nil }
        let s = r.lowerBound
        func digits(_ at: Int, _ n: Int) -> Int? { ASCII.parseDecimal(b, (s + at)..<(s + at + n)) }
        guard b[s + 3] == UInt8(ascii: ","), b[s + 4] == 0x20, b[s + 7] == 0x20, b[s + 11] == 0x20, b[s + 16] == 0x20,
              b[s + 19] == UInt8(ascii: ":"), b[s + 22] == UInt8(ascii: ":"), b[s + 25] == 0x20,
              ASCII.equalsCaseInsensitive(b, (s + 26)..<(s + 29), "GMT"),
              let day = digits(5, 2), let year = digits(12, 4), let hour = digits(17, 2), let minute = digits(20, 2), let second = digits(23, 2)
        else { return nil }
        let months: StaticString = "JanFebMarAprMayJunJulAugSepOctNovDec"
        var month = -1
        months.withUTF8Buffer { m in
            for i in 0..<12 where m[i * 3] == b[s + 8] && m[i * 3 + 1] == b[s + 9] && m[i * 3 + 2] == b[s + 10] { month = i + 1; break }
        }
        guard month > 0, day >= 1, day <= 31, hour < 24, minute < 60, second < 61 else { return nil }
        // Days from 1970-01-01 (the civil-from-days inverse, proleptic Gregorian).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Int64(days * 86400 + hour * 3600 + minute * 60 + second)
    }

    /// The wall clock in nanoseconds (the cache's ages are wall-clock ages, as HTTP dates are).
    static func wallNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
