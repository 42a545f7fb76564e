import Balancers

// The query-string language of `ballast server`, compatible with fortio's echo server.
//
// `EchoQuery.plan` turns the bytes after `?` into an `EchoPlan` for one request. It allocates
// nothing: values are percent-decoded on the fly while they are parsed, and the only bytes it
// writes are the extra headers, into a buffer the caller owns.

/// Caps for the echo parameters. A value above a cap is lowered to the cap, never rejected.
public struct EchoLimits: Sendable, Equatable {
    /// Longest `delay=` honoured. Default 1.5 s, like fortio's `-max-echo-delay`.
    public var maxDelayNanos: Int64
    /// Largest `size=` honoured. Default 256 KiB, like fortio's `-maxpayloadsizekb` default.
    public var maxBodyBytes: Int

    @inlinable
    public init(maxDelayNanos: Int64 = 1_500_000_000, maxBodyBytes: Int = 256 * 1024) {
        self.maxDelayNanos = maxDelayNanos
        self.maxBodyBytes = maxBodyBytes
    }
}

/// Where one extra header sits in the caller's header scratch (byte offsets from its start).
public struct EchoHeaderRange: Sendable, Equatable {
    @usableFromInline var nameStart: Int32
    @usableFromInline var nameCount: Int32
    @usableFromInline var valueStart: Int32
    @usableFromInline var valueCount: Int32

    @inlinable
    init(nameStart: Int32, nameCount: Int32, valueStart: Int32, valueCount: Int32) {
        self.nameStart = nameStart
        self.nameCount = nameCount
        self.valueStart = valueStart
        self.valueCount = valueCount
    }

    /// The decoded header name: a valid token, case as given.
    @inlinable
    public var name: Range<Int> { Int(nameStart)..<Int(nameStart) + Int(nameCount) }

    /// The decoded header value, without leading or trailing spaces and tabs. May be empty.
    @inlinable
    public var value: Range<Int> { Int(valueStart)..<Int(valueStart) + Int(valueCount) }
}

/// The decision for one request.
///
/// The extra headers live in the header scratch given to `EchoQuery.plan`, not in the plan: the
/// first `extraHeaderBytes` bytes of that scratch are the headers in wire form, each
/// `Name: Value\r\n`, in query order, ready to copy into a response head. `extraHeader(at:)` gives
/// the name and value of each one inside that block. The plan is only meaningful together with
/// the scratch it was built in, until that scratch is reused.
public struct EchoPlan: Sendable, Equatable {
    /// At most this many `header=` parameters per request.
    @inlinable
    public static var maxExtraHeaders: Int { 16 }

    /// Response status, 100...999. Default 200.
    public var status: Int
    /// Response body size in bytes, already capped. nil: echo the request body (empty if none).
    public var bodySize: Int?
    /// Wait this long before answering, already capped. 0: answer now.
    public var delayNanos: Int64
    /// Send `Connection: close` and close the connection after this reply.
    public var closeAfter: Bool
    /// How many extra headers were written into the header scratch.
    public var extraHeaderCount: Int
    /// Length of the wire-form header block at the start of the header scratch.
    public var extraHeaderBytes: Int
    @usableFromInline var extraHeaderRanges: InlineArray<16, EchoHeaderRange>

    /// The plan for a request without parameters: 200, echo the body, no delay, keep the connection.
    @inlinable
    public init() {
        status = 200
        bodySize = nil
        delayNanos = 0
        closeAfter = false
        extraHeaderCount = 0
        extraHeaderBytes = 0
        extraHeaderRanges = InlineArray(repeating: EchoHeaderRange(nameStart: 0, nameCount: 0, valueStart: 0, valueCount: 0))
    }

    /// Offsets of extra header `index` (0..<extraHeaderCount) inside the header scratch.
    @inlinable
    public func extraHeader(at index: Int) -> EchoHeaderRange {
        precondition(index >= 0 && index < extraHeaderCount, "extra header index out of range")
        return extraHeaderRanges[index]
    }

    /// The decoded name of extra header `index`, as a view into `scratch` (the buffer the plan was built in).
    @inlinable
    public func extraHeaderName(at index: Int, in scratch: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: scratch[extraHeader(at: index).name])
    }

    /// The decoded value of extra header `index`, as a view into `scratch` (the buffer the plan was built in).
    @inlinable
    public func extraHeaderValue(at index: Int, in scratch: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: scratch[extraHeader(at: index).value])
    }

    @inlinable
    public static func == (lhs: EchoPlan, rhs: EchoPlan) -> Bool {
        guard lhs.status == rhs.status, lhs.bodySize == rhs.bodySize, lhs.delayNanos == rhs.delayNanos,
              lhs.closeAfter == rhs.closeAfter, lhs.extraHeaderCount == rhs.extraHeaderCount,
              lhs.extraHeaderBytes == rhs.extraHeaderBytes else { return false }
        for index in 0..<lhs.extraHeaderCount where lhs.extraHeaderRanges[index] != rhs.extraHeaderRanges[index] {
            return false
        }
        return true
    }
}

/// The outcome of parsing one query string.
public enum EchoQueryResult: Sendable {
    case plan(EchoPlan)
    /// The query asks for something malformed; the server answers 400 with `reason`.
    case invalid(reason: StaticString)
}

/// fortio's echo-server query parameters.
///
/// Parameters (names are case-sensitive; unknown ones are ignored without looking at their values):
/// - `size=N`: body of N bytes (0 allowed), capped at `EchoLimits.maxBodyBytes`. Without it the
///   reply echoes the request body.
/// - `status=N`: status N, 100...999.
/// - `delay=D`: answer after D, a Go duration: decimal numbers with a unit each, `ns`, `us`, `µs`,
///   `μs`, `ms`, `s`, `m`, `h`, concatenated (`1m30s`, `1.5s`, `.5ms`), or a lone `0`. No sign.
///   Capped at `EchoLimits.maxDelayNanos`.
/// - `close=true` closes after this reply, `close=false` never, and `close=P` (a number, so
///   `close=1` is 1 %, not "true") closes in P % of replies. Anything else is invalid.
/// - `header=Name:Value`, repeatable, up to 16: adds a response header. The value is split at the
///   first decoded `:`, leading and trailing spaces and tabs of the value are dropped (so both
///   `X:v` and `X:+v` give `X: v`). The name must be an RFC 9110 token; the value may hold no
///   control byte but HTAB (so no CR, LF, NUL) and no DEL. `header=` with no value is ignored.
///
/// Weighted forms, for `size`, `status` and `delay`: `value:percent,value:percent,...`, e.g.
/// `status=503:10,429:5` or `delay=10ms:50,1s:0.5`. Each percent is a non-negative decimal with an
/// optional trailing `%` (`%25` in a query), at most 100, with up to 6 decimals honoured (more are
/// dropped); the percents may sum to 100 at most, compared exactly. The choice: draw u uniform in
/// [0, 100) (in steps of 10^-6 %), walk the entries in order adding up their percents, and take the
/// first entry whose running sum exceeds u; if none does, the default applies (200, echo, no
/// delay). So `503:100` is always 503 and `503:0` never. A numeric `close=P` is the same choice
/// with a single entry. Each weighted parameter takes exactly one draw from the generator, in the
/// order status, size, delay, close; single-value forms take none.
///
/// Decoding and repeats, as in Go's `url.ParseQuery` (what fortio uses): pairs split at raw `&`,
/// name from value at the first raw `=`; then `%XX` is decoded in names and values and `+` means a
/// space. A bad `%` escape in a known parameter's value is invalid; a name with one is just an
/// unknown name. Empty pairs are skipped, and an empty value (`size=`, or `size` alone) means the
/// parameter's default. A repeated parameter other than `header`: the last one wins and the earlier
/// ones are not parsed at all (fortio takes the first).
public enum EchoQuery {
    /// Parses `query` into the plan for one request. Allocates nothing.
    ///
    /// - Parameters:
    ///   - query: the raw bytes after `?` (without it, without any `#fragment`); may be empty.
    ///   - limits: caps for `delay` and `size`.
    ///   - rng: the worker's generator for weighted choices: one `next()` per weighted parameter.
    ///   - headerScratch: the worker's buffer for extra headers (e.g. 4 KiB), owned by the caller
    ///     and overwritten from offset 0; see `EchoPlan`. If the headers do not fit, the result is
    ///     `.invalid(reason: "headers too long")`. Call on the thread that owns the scratch and rng.
    @inlinable
    public static func plan(
        query: UnsafeRawBufferPointer,
        limits: EchoLimits,
        rng: inout SplitMix64,
        headerScratch: UnsafeMutableRawBufferPointer
    ) -> EchoQueryResult {
        var plan = EchoPlan()
        // Value spans of the last occurrence of each single-valued parameter; empty means absent.
        var status = EchoSpan.empty, size = EchoSpan.empty, delay = EchoSpan.empty, close = EchoSpan.empty

        let count = query.count
        var pairStart = 0
        while pairStart < count {
            var pairEnd = pairStart
            var equals = -1
            while pairEnd < count {
                let byte = query[pairEnd]
                if byte == UInt8(ascii: "&") { break }
                if byte == UInt8(ascii: "=") && equals < 0 { equals = pairEnd }
                pairEnd += 1
            }
            if pairEnd > pairStart {
                let keyEnd = equals < 0 ? pairEnd : equals
                let value = EchoSpan(start: equals < 0 ? pairEnd : equals + 1, end: pairEnd)
                switch EchoParameter(query, from: pairStart, to: keyEnd) {
                case .status: status = value
                case .size: size = value
                case .delay: delay = value
                case .close: close = value
                case .header:
                    if let reason = EchoParsing.appendHeader(query, value, to: &plan, scratch: headerScratch) {
                        return .invalid(reason: reason)
                    }
                case .unknown: break
                }
            }
            pairStart = pairEnd + 1
        }

        switch EchoParsing.choose(.status, query, status, rng: &rng) {
        case .absent: break
        case .value(let code): plan.status = Int(code)
        case .invalid(let reason): return .invalid(reason: reason)
        }
        switch EchoParsing.choose(.size, query, size, rng: &rng) {
        case .absent: break
        case .value(let bytes): plan.bodySize = Int(min(bytes, Int64(max(0, limits.maxBodyBytes))))
        case .invalid(let reason): return .invalid(reason: reason)
        }
        switch EchoParsing.choose(.delay, query, delay, rng: &rng) {
        case .absent: break
        case .value(let nanos): plan.delayNanos = min(nanos, max(0, limits.maxDelayNanos))
        case .invalid(let reason): return .invalid(reason: reason)
        }
        switch EchoParsing.chooseClose(query, close, rng: &rng) {
        case .absent: break
        case .value(let closes): plan.closeAfter = closes != 0
        case .invalid(let reason): return .invalid(reason: reason)
        }
        return .plan(plan)
    }
}
