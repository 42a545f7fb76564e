import EventLoop
import HTTP1

/// A route's `redirect`, compiled to bytes.
public struct CompiledRedirect: Sendable {
    let status: Int
    let scheme: [UInt8]?
    let host: [UInt8]?
    /// `:port`, or nil.
    let port: [UInt8]?
    let path: [UInt8]?
    let pathHasQuery: Bool
    let prefixRewrite: [UInt8]?
    let stripQuery: Bool
    let keepsHost: Bool

    init(_ r: RedirectConfig) {
        status = r.status
        scheme = r.scheme.map { Array($0.utf8) }
        host = r.host.map { Array($0.utf8) }
        port = r.port.map { Array(":\($0)".utf8) }
        path = r.path.map { Array($0.utf8) }
        pathHasQuery = r.path?.contains("?") ?? false
        prefixRewrite = r.prefixRewrite.map { Array($0.utf8) }
        stripQuery = r.stripQuery
        keepsHost = r.keepsHost
    }

    /// Upper bound of the `location: ...\r\n` line for a head of `headBytes`.
    func lineBound(_ headBytes: Int) -> Int {
        32 + (scheme?.count ?? 5) + (host?.count ?? 0) + (port?.count ?? 0) + (path?.count ?? 0) + (prefixRewrite?.count ?? 0) + 2 * headBytes
    }

    /// Writes `location: <uri>\r\n` as Envoy's router builds the URI: scheme (redirected, or the
    /// request's: plain http here), host (redirected, or the request's, its port dropped when a
    /// port is redirected or the scheme changes away from the port's default), port, then the path
    /// (path_redirect keeping the request's query unless it has its own; prefix_rewrite of the
    /// matched prefix; the request's path), a leading `/` added, the query dropped by strip_query.
    func writeLocation(_ w: inout ByteWriter, head: UnsafeRawBufferPointer, target: RequestTarget, host requestHost: Range<Int>?, matchedPrefix: Int?) {
        w.put("location: ")
        let finalScheme = scheme
        if let finalScheme { w.put(finalScheme) } else { w.put("http") }
        w.put("://")
        if let host {
            w.put(host)
        } else if let requestHost {
            var hostBytes = UnsafeRawBufferPointer(rebasing: head[requestHost])
            if let colon = Self.portColon(hostBytes) {
                let requestPort = UnsafeRawBufferPointer(rebasing: hostBytes[colon...])
                // The request's protocol is plain http (x-forwarded-proto as the connection manager sets it).
                let schemeChanged = finalScheme.map { !($0.count == 4 && $0.elementsEqual("http".utf8)) } ?? false
                if !keepsHost && (port != nil || (schemeChanged && requestPort.elementsEqual(":80".utf8))) {
                    hostBytes = UnsafeRawBufferPointer(rebasing: hostBytes[..<colon])
                }
            }
            w.put(hostBytes)
        }
        if let port { w.put(port) }
        let origin = target.origin
        let query = target.query.map { ($0.lowerBound - 1)..<$0.upperBound }  // with its '?'
        if let path {
            if path.first != 0x2F { w.put(byte: 0x2F) }
            w.put(path)
            if !pathHasQuery && !stripQuery, let query { w.put(UnsafeRawBufferPointer(rebasing: head[query])) }
        } else {
            let pathOnly = origin.lowerBound..<(query?.lowerBound ?? origin.upperBound)
            if let prefixRewrite, let matchedPrefix {
                let rest = UnsafeRawBufferPointer(rebasing: head[min(pathOnly.lowerBound + matchedPrefix, pathOnly.upperBound)..<pathOnly.upperBound])
                // A rewrite that leaves no leading '/' gets one, as Envoy's.
                if (prefixRewrite.first ?? rest.first) != 0x2F { w.put(byte: 0x2F) }
                w.put(prefixRewrite)
                w.put(rest)
            } else {
                if target.needsSlash { w.put(byte: 0x2F) }
                w.put(UnsafeRawBufferPointer(rebasing: head[pathOnly]))
            }
            if !stripQuery, let query { w.put(UnsafeRawBufferPointer(rebasing: head[query])) }
        }
        w.crlf()
    }

    static func portColon(_ host: UnsafeRawBufferPointer) -> Int? {
        var i = host.count - 1
        while i > 0 {
            let b = host[i]
            if b == ASCII.colon { return host[0] != 0x5B || host[i - 1] == 0x5D ? i : nil }
            if b < 0x30 || b > 0x39 { return nil }
            i -= 1
        }
        return nil
    }
}
