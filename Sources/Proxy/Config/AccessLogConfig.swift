/// `access_log[]` on the http_connection_manager, tcp_proxy or admin.
public struct AccessLogConfig: Sendable, Hashable {
    public let sink: AccessLogSink
    public let format: AccessLogFormat
    /// `log_format.omit_empty_values` (default false).
    public let omitEmptyValues: Bool
}

public enum AccessLogSink: Sendable, Hashable {
    /// `envoy.access_loggers.file` with `path` (`/dev/stdout` works too).
    case file(path: String)
    /// `envoy.access_loggers.stdout`.
    case stdout
    /// `envoy.access_loggers.stderr`.
    case stderr
}

/// `log_format`: text (`text_format`, `text_format_source.inline_string`, or Envoy's default
/// when none is given) or `json_format` (one JSON object per line, keys in file order).
public enum AccessLogFormat: Sendable, Hashable {
    case text(AccessLogTemplate)
    case json([AccessLogJSONField])

    /// Envoy's documented default access-log line.
    public static let envoyDefaultText =
        "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
        + "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
        + "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
        + "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"

    public static let envoyDefault = AccessLogFormat.text(try! AccessLogTemplate(parsing: envoyDefaultText))
}

/// One key of a `json_format`: a template string, or a nested object.
public struct AccessLogJSONField: Sendable, Hashable {
    public indirect enum Value: Sendable, Hashable {
        case template(AccessLogTemplate)
        case object([AccessLogJSONField])
    }

    public let key: String
    public let value: Value
}

/// A parsed access-log format string: literal text and `%COMMAND(argument):max_length%` operators.
/// Parsing checks the operator names and their arguments at config load, so a typo is a config
/// error with a path, not a silent `-` in every log line.
public struct AccessLogTemplate: Sendable, Hashable {
    public enum Segment: Sendable, Hashable {
        case literal(String)
        case command(AccessLogCommand)
    }

    public let source: String
    public let segments: [Segment]

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Operators the formatter implements. Keep in step with the formatter (operations issue).
    /// `argument`: whether `(…)` is required, optional, or not allowed.
    public static let operators: [String: ArgumentRule] = [
        "START_TIME": .optional,
        "REQ": .required, "RESP": .required, "TRAILER": .required,
        "PROTOCOL": .none, "RESPONSE_CODE": .none, "RESPONSE_FLAGS": .none,
        "RESPONSE_CODE_DETAILS": .none, "CONNECTION_TERMINATION_DETAILS": .none,
        "UPSTREAM_TRANSPORT_FAILURE_REASON": .none,
        "BYTES_RECEIVED": .none, "BYTES_SENT": .none,
        "DURATION": .none, "REQUEST_DURATION": .none, "RESPONSE_DURATION": .none,
        "UPSTREAM_HOST": .none, "UPSTREAM_CLUSTER": .none, "UPSTREAM_LOCAL_ADDRESS": .none,
        "UPSTREAM_REMOTE_ADDRESS": .none,
        "DOWNSTREAM_LOCAL_ADDRESS": .none, "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": .none,
        "DOWNSTREAM_REMOTE_ADDRESS": .none, "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": .none,
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": .none,
        "REQUESTED_SERVER_NAME": .none, "DOWNSTREAM_TLS_VERSION": .none, "ROUTE_NAME": .none,
        "THREAD_ID": .none, "HOSTNAME": .none, "CONNECTION_ID": .none,
    ]

    public enum ArgumentRule: Sendable {
        case none, optional, required
    }

    public init(parsing text: String) throws(ParseError) {
        var segments: [Segment] = []
        var literal = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            guard c == "%" else {
                literal.append(c)
                i = text.index(after: i)
                continue
            }
            let start = text.index(after: i)
            guard let end = Self.commandEnd(text, from: start) else {
                throw ParseError(description: "unterminated command operator starting at '\(text[i...].prefix(40))'")
            }
            let body = text[start..<end]
            let command = try AccessLogCommand(parsing: body)
            if !literal.isEmpty { segments.append(.literal(literal)); literal = "" }
            segments.append(.command(command))
            i = text.index(after: end)
        }
        if !literal.isEmpty { segments.append(.literal(literal)) }
        self.source = text
        self.segments = segments
    }

    /// The `%` that closes a command (one inside the parenthesised argument does not count), or
    /// `nil` when the line ends first.
    private static func commandEnd(_ text: String, from start: String.Index) -> String.Index? {
        var depth = 0
        var i = start
        while i < text.endIndex {
            switch text[i] {
            case "(": depth += 1
            case ")": depth = max(0, depth - 1)
            case "%" where depth == 0: return i
            case "\n": return nil
            default: break
            }
            i = text.index(after: i)
        }
        return nil
    }
}

/// `%NAME%`, `%NAME(argument)%`, `%NAME(argument):N%`.
public struct AccessLogCommand: Sendable, Hashable {
    public let name: String
    /// For REQ/RESP/TRAILER: `X-HEADER` or `X?Y` (main and alternative header); for START_TIME the
    /// strftime-like format.
    public let argument: String?
    /// `:N` truncation.
    public let maxLength: Int?

    public init(name: String, argument: String?, maxLength: Int?) {
        self.name = name
        self.argument = argument
        self.maxLength = maxLength
    }

    init(parsing body: Substring) throws(AccessLogTemplate.ParseError) {
        var name = body
        var argument: String?
        var maxLength: Int?
        if let open = body.firstIndex(of: "(") {
            guard let close = body.lastIndex(of: ")"), close > open else {
                throw .init(description: "malformed command operator %\(body)%: missing ')'")
            }
            name = body[..<open]
            argument = String(body[body.index(after: open)..<close])
            let tail = body[body.index(after: close)...]
            if !tail.isEmpty {
                guard tail.hasPrefix(":"), let n = Int(tail.dropFirst()), n > 0 else {
                    throw .init(description: "malformed command operator %\(body)%: expected ':N' after ')'")
                }
                maxLength = n
            }
        }
        guard !name.isEmpty else {
            throw .init(description: "empty command operator '%%' (a literal percent sign is not supported)")
        }
        guard let rule = AccessLogTemplate.operators[String(name)] else {
            var message = "unknown command operator %\(name)%"
            if let guess = Spelling.closest(to: String(name), in: AccessLogTemplate.operators.keys.sorted()) {
                message += "; did you mean %\(guess)%?"
            }
            throw .init(description: message)
        }
        switch rule {
        case .none where argument != nil:
            throw .init(description: "command operator %\(name)% takes no argument")
        case .required where argument?.isEmpty ?? true:
            throw .init(description: "command operator %\(name)% needs an argument, e.g. %\(name)(X-REQUEST-ID)%")
        default:
            break
        }
        if name == "REQ" || name == "RESP" || name == "TRAILER", let argument {
            let alternatives = argument.split(separator: "?", omittingEmptySubsequences: false)
            guard alternatives.count <= 2, alternatives.allSatisfy({ !$0.isEmpty }) else {
                throw .init(description: "command operator %\(name)(\(argument))%: expected HEADER or HEADER?ALTERNATIVE")
            }
        }
        self.name = String(name)
        self.argument = argument
        self.maxLength = maxLength
    }
}
