/// `envoy.filters.http.buffer` typed_config
/// (`type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer`): the request body is
/// held until complete (the upstream sees the request only then); a body above
/// `max_request_bytes` gets 413. Per route, `BufferPerRoute` disables it or sets its own limit.
public struct BufferFilterConfig: Sendable, Hashable {
    public let maxRequestBytes: Int

    /// The connection's input buffer holds the body (at most 32 MiB with the head).
    static let largestSupported = 16 << 20
}

/// `type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute`.
public enum BufferPerRouteConfig: Sendable, Hashable {
    case disabled
    case buffer(BufferFilterConfig)
}

extension BootstrapParser {
    static let bufferPerRouteType = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute"

    func parseBufferFilter(_ body: ConfigValue?, typed: Bool, at path: ConfigPath) -> BufferFilterConfig? {
        guard let body else {
            diagnostics.error(path.appending("typed_config").appending("max_request_bytes"), "required field missing", location: nil)
            return nil
        }
        guard let f = body.fields(known: (typed ? ["@type"] : []) + ["max_request_bytes"]) else { return nil }
        return parseMaxRequestBytes(f)
    }

    private func parseMaxRequestBytes(_ f: ConfigFields) -> BufferFilterConfig? {
        guard let v = f.required("max_request_bytes") else { return nil }
        // UInt32Value: a number or {value: n}.
        let n: Int?
        if case .mapping = v.node { n = v.fields(known: ["value"])?.required("value")?.int(0...Int(UInt32.max)) } else { n = v.int(0...Int(UInt32.max)) }
        guard let n else { return nil }
        if n == 0 { v.error("must be greater than 0"); return nil }
        if n > BufferFilterConfig.largestSupported {
            v.error("\(n) is above what ballast buffers (\(BufferFilterConfig.largestSupported) bytes: the body waits in the connection's input buffer)")
            return nil
        }
        return BufferFilterConfig(maxRequestBytes: n)
    }

    func parseBufferPerRoute(_ item: ConfigValue) -> BufferPerRouteConfig? {
        guard let f = item.fields(known: ["@type", "disabled", "buffer"]) else { return nil }
        switch f.oneOf(["disabled", "buffer"]) {
        case "disabled":
            guard let b = f["disabled"]?.bool() else { return nil }
            if !b { f.error("disabled", "must be true (Envoy's rule)"); return nil }
            return .disabled
        case "buffer":
            guard let g = f["buffer"]?.fields(known: ["max_request_bytes"]), let c = parseMaxRequestBytes(g) else { return nil }
            return .buffer(c)
        default:
            return nil
        }
    }
}
