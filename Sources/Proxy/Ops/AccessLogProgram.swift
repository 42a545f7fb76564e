/// An access-log format compiled once, at startup: literal text as bytes and each command
/// operator resolved to what it reads (a record field, a captured request field by slot, a
/// precompiled time format), so formatting a line is a walk over plain values with no string
/// parsing, lookup or allocation.
struct AccessLogProgram: Sendable {
    /// What one command operator prints.
    enum Value: Sendable, Equatable {
        /// `%START_TIME%`: index into `timeFormats`.
        case startTime(Int)
        /// `%REQ(A?B)%`: captured field slots (`AccessLogFields`), tried in order; `noSlot` none,
        /// `schemeSlot` is `:scheme` ("http" once a request head was seen).
        case request(Int, Int)
        /// `%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%`.
        case upstreamServiceTime
        case protocolName, responseCode, responseFlags, responseCodeDetails, transportFailureReason
        case bytesReceived, bytesSent, duration
        case upstreamHost, upstreamCluster, upstreamLocal
        case downstreamLocal, downstreamLocalWithoutPort, downstreamRemote, downstreamRemoteWithoutPort
        case routeName, threadID, hostname, downstreamTLSVersion, requestedServerName
        /// Operators this data path has no value for (`-`).
        case none

        /// A lone numeric operator is a JSON number in `json_format`.
        var isNumeric: Bool {
            switch self {
            case .responseCode, .bytesReceived, .bytesSent, .duration, .threadID: true
            default: false
            }
        }
    }

    static var noSlot: Int { -1 }
    static var schemeSlot: Int { -2 }

    enum Op: Sendable {
        /// Bytes `start..<start+count` of `literals`.
        case literal(start: Int, count: Int)
        /// An operator's value; `maxLength` 0 when not truncated.
        case value(Value, maxLength: Int)
    }

    /// One key of a `json_format` object.
    struct JSONMember: Sendable {
        /// `"key":`, already escaped.
        let key: [UInt8]
        let kind: Kind

        indirect enum Kind: Sendable {
            /// One operator alone: a number, a string, or empty (null / omitted).
            case single(Value, maxLength: Int)
            /// Text and operators: always a string.
            case template([Op])
            case object([JSONMember])
        }
    }

    enum Shape: Sendable {
        case text([Op])
        case json([JSONMember], omitEmptyValues: Bool)
    }

    /// `%START_TIME(…)%`: strftime pieces (formatted once per second), sub-second digits, epoch seconds.
    struct TimeFormat: Sendable {
        enum Piece: Sendable {
            case strftime([CChar])
            case fraction(digits: Int)
            case epochSeconds
        }
        let pieces: [Piece]
    }

    let shape: Shape
    let literals: [UInt8]
    let timeFormats: [TimeFormat]

    init(_ format: AccessLogFormat, omitEmptyValues: Bool, capture: AccessLogCapture) {
        var b = Builder(capture: capture)
        switch format {
        case .text(let t): shape = .text(b.ops(t))
        case .json(let fields): shape = .json(b.members(fields), omitEmptyValues: omitEmptyValues)
        }
        literals = b.literals
        timeFormats = b.timeFormats
    }

    /// Just one `%START_TIME(format)%` (`AccessLogFormatter.startTime`).
    init(timeFormat: String?) {
        shape = .text([.value(.startTime(0), maxLength: 0)])
        literals = []
        timeFormats = [Self.timeFormat(timeFormat)]
    }

    private struct Builder {
        let capture: AccessLogCapture
        var literals: [UInt8] = []
        var timeFormats: [TimeFormat] = []

        mutating func ops(_ t: AccessLogTemplate) -> [Op] {
            t.segments.map { segment in
                switch segment {
                case .literal(let s):
                    let start = literals.count
                    literals.append(contentsOf: s.utf8)
                    return .literal(start: start, count: literals.count - start)
                case .command(let c):
                    return .value(value(c), maxLength: c.maxLength ?? 0)
                }
            }
        }

        mutating func members(_ fields: [AccessLogJSONField]) -> [JSONMember] {
            fields.map { f in
                let key = Array((JSONText.string(f.key) + ":").utf8)
                switch f.value {
                case .object(let nested): return JSONMember(key: key, kind: .object(members(nested)))
                case .template(let t):
                    if t.segments.count == 1, case .command(let c) = t.segments[0] {
                        return JSONMember(key: key, kind: .single(value(c), maxLength: c.maxLength ?? 0))
                    }
                    return JSONMember(key: key, kind: .template(ops(t)))
                }
            }
        }

        mutating func value(_ c: AccessLogCommand) -> Value {
            switch c.name {
            case "START_TIME":
                timeFormats.append(AccessLogProgram.timeFormat(c.argument))
                return .startTime(timeFormats.count - 1)
            case "REQ":
                let slots = (c.argument ?? "").split(separator: "?").map { slot(String($0)) }
                return .request(slots.first ?? noSlot, slots.count > 1 ? slots[1] : noSlot)
            case "RESP":
                return c.argument?.lowercased() == "x-envoy-upstream-service-time" ? .upstreamServiceTime : .none
            case "PROTOCOL": return .protocolName
            case "RESPONSE_CODE": return .responseCode
            case "RESPONSE_FLAGS": return .responseFlags
            case "RESPONSE_CODE_DETAILS": return .responseCodeDetails
            case "UPSTREAM_TRANSPORT_FAILURE_REASON": return .transportFailureReason
            case "BYTES_RECEIVED": return .bytesReceived
            case "BYTES_SENT": return .bytesSent
            case "DURATION": return .duration
            case "UPSTREAM_HOST", "UPSTREAM_REMOTE_ADDRESS": return .upstreamHost
            case "UPSTREAM_CLUSTER": return .upstreamCluster
            case "UPSTREAM_LOCAL_ADDRESS": return .upstreamLocal
            case "DOWNSTREAM_LOCAL_ADDRESS": return .downstreamLocal
            case "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": return .downstreamLocalWithoutPort
            case "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": return .downstreamRemote
            case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": return .downstreamRemoteWithoutPort
            case "ROUTE_NAME": return .routeName
            case "THREAD_ID": return .threadID
            case "HOSTNAME": return .hostname
            case "DOWNSTREAM_TLS_VERSION": return .downstreamTLSVersion
            // The SNI tls_inspector found (Envoy sets it from that filter only, lower-cased).
            case "REQUESTED_SERVER_NAME": return .requestedServerName
            // CONNECTION_TERMINATION_DETAILS: Envoy 1.40's HTTP streams print `-` in every case the
            // differential suite has (codec errors, timeouts, resets, disconnects): its connection
            // manager sets the details only for closes of features Ballast refuses (e.g.
            // max_connection_duration). TRAILER, REQUEST_DURATION, RESPONSE_DURATION, CONNECTION_ID:
            // no value here.
            default: return .none
            }
        }

        /// The captured field slot of a request header name (`AccessLogCapture`'s layout).
        func slot(_ name: String) -> Int {
            switch name.lowercased() {
            case ":method": return AccessLogFields.methodSlot
            case ":path": return AccessLogFields.pathSlot
            case ":authority", "host": return AccessLogFields.authoritySlot
            case ":scheme": return schemeSlot
            case let n: return capture.headers.firstIndex(of: n).map { AccessLogFields.firstHeaderSlot + $0 } ?? noSlot
            }
        }
    }

    /// Envoy's default `2021-07-07T00:54:08.074Z`, or the operator's strftime format with `%3f`,
    /// `%6f`, `%9f`, `%f` (fractions of a second) and `%s` (epoch seconds), in UTC.
    static func timeFormat(_ argument: String?) -> TimeFormat {
        guard let argument, !argument.isEmpty else {
            return TimeFormat(pieces: [.strftime(Array("%Y-%m-%dT%H:%M:%S.".utf8CString)), .fraction(digits: 3),
                                       .strftime(Array("Z".utf8CString))])
        }
        var pieces: [TimeFormat.Piece] = []
        var chunk: [UInt8] = []
        func flush() {
            if !chunk.isEmpty { pieces.append(.strftime(chunk.map { CChar(bitPattern: $0) } + [0])) }
            chunk = []
        }
        let bytes = Array(argument.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 1 < bytes.count {
                let next = bytes[i + 1]
                if i + 2 < bytes.count, bytes[i + 2] == UInt8(ascii: "f"),
                   let digits = [UInt8(ascii: "3"): 3, UInt8(ascii: "6"): 6, UInt8(ascii: "9"): 9][next] {
                    flush()
                    pieces.append(.fraction(digits: digits))
                    i += 3
                    continue
                }
                if next == UInt8(ascii: "f") || next == UInt8(ascii: "s") {
                    flush()
                    pieces.append(next == UInt8(ascii: "f") ? .fraction(digits: 9) : .epochSeconds)
                    i += 2
                    continue
                }
            }
            chunk.append(bytes[i])
            i += 1
        }
        flush()
        return TimeFormat(pieces: pieces)
    }
}
