// Value types shared by the request and response parsers, the chunked decoder and the writer.

/// A request method. Methods are case-sensitive (RFC 9110 §9.1): `get` is `.other`.
public enum HTTPMethod: Equatable, Hashable, Sendable {
    case get, head, post, put, delete, options, patch, trace, connect
    /// Any other valid token; the range locates it in the parsed buffer.
    case other(Range<Int>)
}

/// The two HTTP/1.x versions this codec speaks. Anything else is rejected with 505.
public enum HTTPVersion: Equatable, Hashable, Sendable {
    case http1_0
    case http1_1
}

/// How the message body is delimited (RFC 9112 §6.3).
public enum BodyFraming: Equatable, Hashable, Sendable {
    /// No body follows the head.
    case none
    /// Exactly this many body bytes follow (0 is possible).
    case contentLength(Int)
    /// A chunked body follows; decode it with `ChunkedDecoder`.
    case chunked
    /// Responses only: the body runs until the server closes the connection.
    case untilClose
}

/// Why a head, a chunked body or a trailer section was rejected.
///
/// `status` is the response a server should send: the kind's default (400, 431, 501 or 505) for
/// request-side errors. `ResponseHeadParser` reports every error with status 502, because a bad
/// upstream response is a gateway error, not the client's fault. `ChunkedDecoder` always uses the
/// request-side default; map it to 502 yourself when decoding a response body.
public struct HTTPParseError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: UInt8, Equatable, Hashable, Sendable, CaseIterable {
        // Head framing
        case headTooLarge
        case tooManyHeaders
        case bareCR
        case bareLF
        // Start line
        case badRequestLine
        case badMethod
        case badTarget
        case badVersion
        case unsupportedVersion
        case badStatusLine
        case badStatusCode
        // Field lines
        case obsFold
        case whitespaceBeforeColon
        case badHeaderName
        case badHeaderValue
        // Message framing and semantics
        case badContentLength
        case duplicateContentLength
        case contentLengthWithTransferEncoding
        case badTransferEncoding
        case unsupportedTransferCoding
        case transferEncodingInHTTP10
        case missingHost
        case duplicateHost
        // Chunked body
        case badChunkSize
        case chunkSizeOverflow
        case chunkMissingCRLF
        case badChunkExtension
        case chunkExtensionTooLong
        case badTrailer
        case trailerTooLong

        /// The status a server answers a request with this error.
        @inlinable
        public var defaultStatus: Int {
            switch self {
            case .headTooLarge, .tooManyHeaders, .trailerTooLong: return 431
            case .unsupportedTransferCoding: return 501
            case .unsupportedVersion: return 505
            default: return 400
            }
        }

        /// A short, fixed description.
        public var reason: StaticString {
            switch self {
            case .headTooLarge: return "header section too large"
            case .tooManyHeaders: return "too many header fields"
            case .bareCR: return "bare CR"
            case .bareLF: return "bare LF (lines must end with CRLF)"
            case .badRequestLine: return "malformed request line"
            case .badMethod: return "invalid method token"
            case .badTarget: return "invalid request target"
            case .badVersion: return "malformed HTTP version"
            case .unsupportedVersion: return "HTTP version not supported"
            case .badStatusLine: return "malformed status line"
            case .badStatusCode: return "invalid status code"
            case .obsFold: return "obsolete line folding"
            case .whitespaceBeforeColon: return "whitespace between field name and colon"
            case .badHeaderName: return "invalid field name or missing colon"
            case .badHeaderValue: return "control character in field value"
            case .badContentLength: return "invalid Content-Length"
            case .duplicateContentLength: return "multiple Content-Length values"
            case .contentLengthWithTransferEncoding: return "both Content-Length and Transfer-Encoding"
            case .badTransferEncoding: return "chunked is not the final transfer coding exactly once"
            case .unsupportedTransferCoding: return "unsupported transfer coding"
            case .transferEncodingInHTTP10: return "Transfer-Encoding in an HTTP/1.0 message"
            case .missingHost: return "missing Host"
            case .duplicateHost: return "multiple Host fields"
            case .badChunkSize: return "invalid chunk size"
            case .chunkSizeOverflow: return "chunk size too large"
            case .chunkMissingCRLF: return "missing CRLF in chunked body"
            case .badChunkExtension: return "invalid chunk extension"
            case .chunkExtensionTooLong: return "chunk extension too long"
            case .badTrailer: return "invalid trailer field"
            case .trailerTooLong: return "trailer section too large"
            }
        }
    }

    public let kind: Kind
    public let status: Int

    @inlinable
    public init(_ kind: Kind, status: Int? = nil) {
        self.kind = kind
        self.status = status ?? kind.defaultStatus
    }

    public var reason: StaticString { kind.reason }

    public var description: String { "\(status) \(kind.reason)" }
}

/// The outcome of one `parse` call on a request or response head.
public enum HeadParseResult: Equatable, Hashable, Sendable {
    /// No complete head yet: call again with the same bytes plus whatever arrives next.
    case incomplete
    /// The head occupies `bytes[0..<headLength]` (leading empty lines, start line, fields and the
    /// final CRLFCRLF). A body, or the next pipelined message, starts at `headLength`.
    case complete(headLength: Int)
    /// The head is invalid; answer `error.status` and close the connection.
    case failure(HTTPParseError)
}

public typealias RequestParseResult = HeadParseResult
public typealias ResponseParseResult = HeadParseResult
