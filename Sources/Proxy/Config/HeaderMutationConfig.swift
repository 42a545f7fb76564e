#if canImport(Glibc)
import Glibc
#endif

/// `request_headers_to_add` / `request_headers_to_remove` / `response_headers_to_add` /
/// `response_headers_to_remove` of one level (route, virtual host or route configuration).
public struct HeaderMutationsConfig: Sendable, Hashable {
    public var requestToAdd: [HeaderValueOptionConfig] = []
    public var requestToRemove: [String] = []
    public var responseToAdd: [HeaderValueOptionConfig] = []
    public var responseToRemove: [String] = []

    public var isEmpty: Bool { requestToAdd.isEmpty && requestToRemove.isEmpty && responseToAdd.isEmpty && responseToRemove.isEmpty }

    public static let none = HeaderMutationsConfig()
}

/// One `HeaderValueOption`: a lower-cased name, a value with `%...%` substitutions, Envoy's
/// `append_action` and `keep_empty_value`.
public struct HeaderValueOptionConfig: Sendable, Hashable {
    public enum AppendAction: String, Sendable, Hashable, CaseIterable {
        case appendIfExistsOrAdd = "APPEND_IF_EXISTS_OR_ADD"
        case addIfAbsent = "ADD_IF_ABSENT"
        case overwriteIfExistsOrAdd = "OVERWRITE_IF_EXISTS_OR_ADD"
        case overwriteIfExists = "OVERWRITE_IF_EXISTS"
    }

    public let name: String
    public let value: [HeaderValuePart]
    public let action: AppendAction
    public let keepEmptyValue: Bool
}

/// A piece of a header value: literal text or one of the supported `%...%` operators.
public enum HeaderValuePart: Sendable, Hashable {
    case literal(String)
    /// `%DOWNSTREAM_REMOTE_ADDRESS%` (`ip:port`, `[ip6]:port`).
    case downstreamRemoteAddress
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`.
    case downstreamRemoteAddressWithoutPort
    /// `%PROTOCOL%`: `HTTP/1.1` or `HTTP/1.0`.
    case `protocol`
    /// `%REQ(name)%`: the request's field as the header map holds it at evaluation (request side only).
    case request(String)
}

extension BootstrapParser {
    /// Reads the four header-mutation fields of `f` (a route, virtual host or route
    /// configuration). Returns nil when one is invalid (reported with its YAML path).
    func parseHeaderMutations(_ f: ConfigFields) -> HeaderMutationsConfig? {
        var m = HeaderMutationsConfig()
        var ok = true
        for (key, isRequest) in [("request_headers_to_add", true), ("response_headers_to_add", false)] {
            for item in f[key]?.list() ?? [] {
                if let option = parseHeaderValueOption(item, requestSide: isRequest) {
                    if isRequest { m.requestToAdd.append(option) } else { m.responseToAdd.append(option) }
                } else {
                    ok = false
                }
            }
        }
        for (key, isRequest) in [("request_headers_to_remove", true), ("response_headers_to_remove", false)] {
            for item in f[key]?.list() ?? [] {
                guard let text = item.nonEmptyString() else { ok = false; continue }
                guard let name = Self.mutableHeaderName(text, item) else { ok = false; continue }
                if isRequest { m.requestToRemove.append(name) } else { m.responseToRemove.append(name) }
            }
        }
        return ok ? m : nil
    }

    /// A field name a mutation may touch: Envoy refuses pseudo-headers and `host`; Ballast also
    /// refuses the framing fields it re-declares itself.
    static func mutableHeaderName(_ text: String, _ at: ConfigValue) -> String? {
        let name = text.lowercased()
        if name.hasPrefix(":") || name == "host" {
            at.error("'\(text)': :-prefixed or host headers may not be modified")
            return nil
        }
        guard name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
            at.error("'\(text)' is not a valid header name")
            return nil
        }
        if ["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "proxy-connection"].contains(name) {
            at.error("'\(text)': ballast declares message framing and connection fields itself; mutating them is not supported")
            return nil
        }
        return name
    }

    func parseHeaderValueOption(_ value: ConfigValue, requestSide: Bool) -> HeaderValueOptionConfig? {
        guard let f = value.fields(known: ["header", "append", "append_action", "keep_empty_value"]) else { return nil }
        guard let h = f.required("header"), let g = h.fields(known: ["key", "value"], unsupported: ["raw_value"]) else { return nil }
        guard let keyValue = g.required("key"), let key = keyValue.nonEmptyString() else { return nil }
        guard let name = Self.mutableHeaderName(key, keyValue) else { return nil }
        let text = g["value"]?.string() ?? ""
        guard !text.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
            g.error("value", "a header value may not hold CR, LF or NUL"); return nil
        }
        guard let parts = Self.headerValueParts(text, requestSide: requestSide, g["value"] ?? value) else { return nil }
        var action = HeaderValueOptionConfig.AppendAction.appendIfExistsOrAdd
        if let v = f["append_action"] {
            guard let s = v.string(), let a = HeaderValueOptionConfig.AppendAction(rawValue: s) else {
                v.error("expected APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD or OVERWRITE_IF_EXISTS")
                return nil
            }
            action = a
        }
        if let v = f["append"] {
            // The deprecated BoolValue: Envoy refuses it next to append_action.
            if f["append_action"] != nil { v.error("both append and append_action are set, which Envoy does not allow"); return nil }
            guard let on = v.bool() else { return nil }
            action = on ? .appendIfExistsOrAdd : .overwriteIfExistsOrAdd
        }
        var keepEmpty = false
        if let v = f["keep_empty_value"] {
            guard let b = v.bool() else { return nil }
            keepEmpty = b
        }
        return HeaderValueOptionConfig(name: name, value: parts, action: action, keepEmptyValue: keepEmpty)
    }

    /// Splits a header value into literal text and the supported `%...%` operators (`%%` is a
    /// literal `%`); any other operator is refused.
    static func headerValueParts(_ text: String, requestSide: Bool, _ at: ConfigValue) -> [HeaderValuePart]? {
        var parts: [HeaderValuePart] = []
        var literal = ""
        var rest = Substring(text)
        while let start = rest.firstIndex(of: "%") {
            literal += rest[..<start]
            let after = rest.index(after: start)
            guard let end = rest[after...].firstIndex(of: "%") else {
                at.error("'\(text)': unterminated %...% operator")
                return nil
            }
            let op = rest[after..<end]
            rest = rest[rest.index(after: end)...]
            if op.isEmpty { literal += "%"; continue }
            var part: HeaderValuePart
            switch op {
            case "DOWNSTREAM_REMOTE_ADDRESS": part = .downstreamRemoteAddress
            case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": part = .downstreamRemoteAddressWithoutPort
            case "PROTOCOL": part = .protocol
            case "HOSTNAME": part = .literal(hostName())
            default:
                // %REQ(name)% on the response side reads the request as it went upstream (Envoy's
                // request header map after the router's and the tracer's changes).
                if op.hasPrefix("REQ(") && op.hasSuffix(")") {
                    let field = op.dropFirst(4).dropLast().lowercased()
                    let valid = !field.isEmpty && field.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: ")") }
                    guard valid, field == ":authority" || !field.hasPrefix(":") else {
                        at.error("'%\(op)%': only %REQ(name)% with one field name (or :authority) is supported by ballast in header values")
                        return nil
                    }
                    part = .request(field == ":authority" ? "host" : field)
                } else {
                    let side = requestSide ? "request" : "response"
                    at.error("'%\(op)%' is not supported by ballast in \(side) header values (supported: %DOWNSTREAM_REMOTE_ADDRESS%, %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, %PROTOCOL%, %HOSTNAME%, %REQ(name)%)")
                    return nil
                }
            }
            if case .literal(let s) = part { literal += s; continue }
            if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
            parts.append(part)
        }
        literal += rest
        if !literal.isEmpty { parts.append(.literal(literal)) }
        return parts
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
