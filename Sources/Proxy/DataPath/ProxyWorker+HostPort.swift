import EventLoop
import HTTP1

/// strip_any_host_port / strip_matching_host_port: the port leaves the Host (or an absolute-form
/// target's authority) before routing, so the virtual host, the upstream `host` and the access
/// log all see the host without it, as Envoy's connection manager rewrites `:authority`.
extension ProxyWorker {
    /// The request target with its authority's port removed when the connection manager says so.
    func requestTarget(_ head: UnsafeRawBufferPointer, _ d: UnsafeMutablePointer<Downstream>) -> RequestTarget {
        var target = RequestTarget(head, requestParser)
        if let authority = target.authority, let mode = hcm(d)?.stripHostPort, mode != .none {
            target.authority = mode.withoutPort(head, authority, localPort: localPort(d))
        }
        return target
    }

    /// Narrows the parsed Host field (call right after a head is parsed).
    func stripHostPort(_ head: UnsafeRawBufferPointer, _ d: UnsafeMutablePointer<Downstream>) {
        guard let mode = hcm(d)?.stripHostPort, mode != .none, let host = requestParser.pointee.hostRange else { return }
        requestParser.pointee.narrowHost(to: mode.withoutPort(head, host, localPort: localPort(d)))
    }

    /// The connection's local port, read once per connection.
    func localPort(_ d: UnsafeMutablePointer<Downstream>) -> UInt16 {
        if d.pointee.localPort == 0, let local = try? Sockets.localAddress(d.pointee.fd) { d.pointee.localPort = UInt16(local.port) }
        return d.pointee.localPort
    }
}

extension HostPortStripping {
    /// `host` up to the colon before its port, when there is a numeric port (and, for
    /// `.matching`, it is the local port); an IPv6 literal's colons inside `[...]` are not one.
    func withoutPort(_ head: UnsafeRawBufferPointer, _ host: Range<Int>, localPort: UInt16) -> Range<Int> {
        var colon = host.upperBound - 1
        while colon >= host.lowerBound && head[colon] != ASCII.colon {
            if head[colon] == 0x5D { return host }  // ']' after the last colon: no port
            colon -= 1
        }
        guard colon >= host.lowerBound, colon + 1 < host.upperBound else { return host }
        var port: UInt64 = 0
        for i in (colon + 1)..<host.upperBound {
            let b = head[i]
            guard b >= 0x30 && b <= 0x39 else { return host }
            port = port * 10 + UInt64(b - 0x30)
            if port > UInt64(UInt32.max) { return host }
        }
        if self == .none { return host }
        if self == .matching && port != UInt64(localPort) { return host }
        return host.lowerBound..<colon
    }
}
