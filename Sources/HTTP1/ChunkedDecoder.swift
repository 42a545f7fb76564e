/// One step of `ChunkedDecoder.decode`. `consumed` counts bytes from the start of the input given
/// to that call; the caller drops them (or forwards them verbatim) and calls again with the rest.
public enum ChunkedStep: Equatable, Hashable, Sendable {
    /// Payload bytes at `range` (offsets in the input; never empty). `consumed == range.upperBound`.
    case data(Range<Int>, consumed: Int)
    /// All `consumed` bytes (always the whole input) were framing; call again when more arrive.
    case needMore(consumed: Int)
    /// The last chunk and the trailer section ended after `consumed` bytes; anything beyond
    /// belongs to the next message.
    case done(consumed: Int)
    /// The body is malformed; close the connection.
    case failure(HTTPParseError)
}

/// A streaming decoder for the chunked transfer coding (RFC 9112 §7.1). A value type with no
/// storage: it keeps only its state between calls, so it works with any split of the input,
/// down to one byte at a time, and never allocates.
///
/// Grammar accepted: `chunk-size [BWS ";" ext...] CRLF data CRLF`, ..., `0 [ext] CRLF`,
/// trailer fields, `CRLF`. Chunk sizes are hexadecimal with at most 16 digits and must fit in
/// `Int`. Whitespace after the size is allowed only before ';'. Extensions are not interpreted;
/// their bytes (after ';') must be HTAB, SP, VCHAR or obs-text, at most `maxExtensionBytes` per
/// chunk. Trailer lines must look like `token ":" value` with the same byte rules as head fields
/// (no obs-fold), and the whole trailer section (its CRLFs included, the final empty line not)
/// is limited to `maxTrailerBytes`. Trailers are consumed, not reported: a caller that wants them
/// forwards the consumed bytes verbatim. Bare CR or LF anywhere is an error.
///
/// Errors carry request-side statuses (400; 431 for an oversized trailer section).
public struct ChunkedDecoder: Sendable {
    public let maxExtensionBytes: Int
    public let maxTrailerBytes: Int

    @usableFromInline
    enum State: UInt8, Sendable {
        case sizeFirst, size, sizeWhitespace, extensionBytes, sizeLF
        case data, dataCR, dataLF
        case trailerLineStart, trailerName, trailerValue, trailerLF, finalLF
        case done, failed
    }

    @usableFromInline var state: State = .sizeFirst
    @usableFromInline var remaining = 0       // chunk bytes still to deliver, or the size being read
    @usableFromInline var counter = 0         // size digits, extension bytes or trailer bytes so far
    @usableFromInline var error = HTTPParseError(.badChunkSize)

    public init(maxExtensionBytes: Int = 4096, maxTrailerBytes: Int = 16384) {
        self.maxExtensionBytes = maxExtensionBytes
        self.maxTrailerBytes = maxTrailerBytes
    }

    /// True once the terminating empty line has been consumed.
    @inlinable public var isDone: Bool { state == .done }

    /// Payload bytes of the current chunk not yet delivered (0 between chunks).
    @inlinable public var remainingInChunk: Int { state == .data ? remaining : 0 }

    /// Prepares the decoder for a new body.
    @inlinable
    public mutating func reset() {
        state = .sizeFirst
        remaining = 0
        counter = 0
    }

    @inlinable
    mutating func fail(_ kind: HTTPParseError.Kind) -> ChunkedStep {
        state = .failed
        error = HTTPParseError(kind)
        return .failure(error)
    }

    /// What `skim` found in one stretch of a chunked body.
    public struct Skim: Equatable, Sendable {
        /// Bytes of `input` that belong to the body (framing and payload), from its start.
        public var consumed: Int
        /// Payload bytes among them.
        public var payload: Int
        /// The body (last chunk and trailers) ended inside `input`.
        public var done: Bool
        /// The body is malformed at `consumed`.
        public var failure: HTTPParseError?

        @inlinable
        public init(consumed: Int = 0, payload: Int = 0, done: Bool = false, failure: HTTPParseError? = nil) {
            self.consumed = consumed
            self.payload = payload
            self.done = done
            self.failure = failure
        }
    }

    /// Runs the decoder over `input` without copying the payload out: for callers that forward a
    /// chunked body verbatim (a proxy) or only need its extent (a server holding it whole).
    @inlinable
    public mutating func skim(_ input: UnsafeRawBufferPointer) -> Skim {
        var result = Skim()
        while result.consumed < input.count {
            switch decode(UnsafeRawBufferPointer(rebasing: input[result.consumed...])) {
            case let .data(range, consumed):
                result.payload += range.count
                result.consumed += consumed
            case let .needMore(consumed):
                result.consumed += consumed
                return result
            case let .done(consumed):
                result.consumed += consumed
                result.done = true
                return result
            case let .failure(error):
                result.failure = error
                return result
            }
        }
        return result
    }

    /// Consumes framing from `input` until it reaches payload (returned as `.data`), the end of the
    /// body, an error, or the end of the input. After `.done` further calls return `.done(consumed: 0)`;
    /// after `.failure` they return the same failure.
    @inlinable
    public mutating func decode(_ input: UnsafeRawBufferPointer) -> ChunkedStep {
        var i = 0
        let n = input.count
        while i < n {
            switch state {
            case .data:
                let take = Swift.min(remaining, n - i)
                remaining -= take
                if remaining == 0 { state = .dataCR }
                return .data(i..<(i + take), consumed: i + take)

            case .sizeFirst:
                guard let digit = ASCII.hexValue(input[i]) else { return fail(.badChunkSize) }
                remaining = digit
                counter = 1
                state = .size

            case .size:
                let b = input[i]
                if let digit = ASCII.hexValue(b) {
                    counter += 1
                    if counter > 16 || remaining > (Int.max >> 4) { return fail(.chunkSizeOverflow) }
                    remaining = remaining << 4 | digit
                } else if b == ASCII.cr {
                    state = .sizeLF
                } else if b == ASCII.semicolon {
                    counter = 0
                    state = .extensionBytes
                } else if ASCII.isWhitespace(b) {
                    state = .sizeWhitespace
                } else if b == ASCII.lf {
                    return fail(.chunkMissingCRLF)
                } else {
                    return fail(.badChunkSize)
                }

            case .sizeWhitespace:
                let b = input[i]
                if b == ASCII.semicolon {
                    counter = 0
                    state = .extensionBytes
                } else if !ASCII.isWhitespace(b) {
                    return fail(.badChunkSize)
                }

            case .extensionBytes:
                let b = input[i]
                if b == ASCII.cr {
                    state = .sizeLF
                } else if b == ASCII.lf {
                    return fail(.chunkMissingCRLF)
                } else if !ASCII.isFieldValueByte(b) {
                    return fail(.badChunkExtension)
                } else {
                    counter += 1
                    if counter > maxExtensionBytes { return fail(.chunkExtensionTooLong) }
                }

            case .sizeLF:
                if input[i] != ASCII.lf { return fail(.chunkMissingCRLF) }
                if remaining == 0 {
                    counter = 0
                    state = .trailerLineStart
                } else {
                    state = .data
                }

            case .dataCR:
                if input[i] != ASCII.cr { return fail(.chunkMissingCRLF) }
                state = .dataLF

            case .dataLF:
                if input[i] != ASCII.lf { return fail(.chunkMissingCRLF) }
                state = .sizeFirst

            case .trailerLineStart:
                let b = input[i]
                if b == ASCII.cr {
                    state = .finalLF
                } else if ASCII.isTokenChar(b) {
                    counter += 1
                    if counter > maxTrailerBytes { return fail(.trailerTooLong) }
                    state = .trailerName
                } else {
                    return fail(.badTrailer)  // obs-fold, empty name, or a control byte
                }

            case .trailerName:
                let b = input[i]
                counter += 1
                if counter > maxTrailerBytes { return fail(.trailerTooLong) }
                if b == ASCII.colon {
                    state = .trailerValue
                } else if !ASCII.isTokenChar(b) {
                    return fail(.badTrailer)
                }

            case .trailerValue:
                let b = input[i]
                counter += 1
                if counter > maxTrailerBytes { return fail(.trailerTooLong) }
                if b == ASCII.cr {
                    state = .trailerLF
                } else if !ASCII.isFieldValueByte(b) {
                    return fail(.badTrailer)
                }

            case .trailerLF:
                if input[i] != ASCII.lf { return fail(.chunkMissingCRLF) }
                counter += 1
                if counter > maxTrailerBytes { return fail(.trailerTooLong) }
                state = .trailerLineStart

            case .finalLF:
                if input[i] != ASCII.lf { return fail(.chunkMissingCRLF) }
                state = .done
                return .done(consumed: i + 1)

            case .done:
                return .done(consumed: 0)

            case .failed:
                return .failure(error)
            }
            i += 1
        }
        switch state {
        case .done: return .done(consumed: 0)
        case .failed: return .failure(error)
        default: return .needMore(consumed: n)
        }
    }
}
