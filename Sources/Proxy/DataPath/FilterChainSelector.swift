import Glibc

/// What a connection's filter chain is chosen by: its addresses and what the listener filters
/// found in its first bytes.
struct ConnectionFacts {
    /// The destination (the original destination when original_dst restored one) and the peer.
    var local = CompactAddress()
    var peer = CompactAddress()
    /// tls_inspector found a ClientHello (`tls`); otherwise the transport is `raw_buffer`.
    var tls = false
    /// The ClientHello's server name, a range of the inspected bytes (nil: none).
    var serverName: Range<Int>? = nil
    /// The ALPN protocols (ranges of the inspected bytes), or http_inspector's finding.
    var alpn = ApplicationProtocols()
    var http = HTTPInspector.Outcome.notHTTP
}

/// A listener's `filter_chain_match`es compiled for the workers, and the choice Envoy makes
/// (FilterChainManagerImpl::findFilterChain): field by field, in Envoy's order — destination
/// port, destination address, server name, transport protocol, application protocols, direct
/// source address, source type, source address, source port — only the chains with the most
/// specific value that matches stay (an exact port over any port, the longest address prefix,
/// an exact name over the longest wildcard over none, ...). There is no going back: when the
/// most specific branch fails further down, no chain matches and the default chain (if any)
/// serves the connection. The parser refuses overlapping matches, so at most one chain is left.
struct FilterChainSelector: Sendable {
    struct Match: Sendable {
        var destinationPort = 0
        var prefixRanges: [CIDRRange] = []
        var exactNames: [[UInt8]] = []
        /// `*.example.com` kept as `.example.com`.
        var wildcardSuffixes: [[UInt8]] = []
        var transportProtocol: [UInt8] = []
        var applicationProtocols: [[UInt8]] = []
        var directSources: [CIDRRange] = []
        var sourceType = ConnectionSourceType.any
        var sources: [CIDRRange] = []
        var sourcePorts: [Int] = []

        init(_ m: FilterChainMatchConfig?) {
            guard let m else { return }
            destinationPort = m.destinationPort ?? 0
            prefixRanges = m.prefixRanges
            for name in m.serverNames {
                if name.hasPrefix("*.") { wildcardSuffixes.append(Array(name.utf8.dropFirst())) } else { exactNames.append(Array(name.utf8)) }
            }
            transportProtocol = Array((m.transportProtocol ?? "").utf8)
            applicationProtocols = m.applicationProtocols.map { Array($0.utf8) }
            directSources = m.directSourcePrefixRanges
            sourceType = m.sourceType
            sources = m.sourcePrefixRanges
            sourcePorts = m.sourcePorts
        }
    }

    let matches: [Match]
    /// The chain of connections no match selects (`default_filter_chain`), or nil: closed.
    let defaultChain: Int?
    /// Whether any match reads the peer's address or port (else `getpeername` is skipped).
    let readsPeer: Bool
    /// Whether any match reads the destination (else `getsockname` is skipped).
    let readsLocal: Bool

    init(chains: [FilterChainMatchConfig?], defaultChain: Int?) {
        matches = chains.map(Match.init)
        self.defaultChain = defaultChain
        readsPeer = matches.contains { !$0.directSources.isEmpty || !$0.sources.isEmpty || !$0.sourcePorts.isEmpty || $0.sourceType != .any }
        readsLocal = matches.contains { $0.destinationPort != 0 || !$0.prefixRanges.isEmpty || $0.sourceType != .any }
    }

    /// The chain for a connection: an index into the listener's chains, or nil (close it).
    /// `bytes` are the inspected bytes the facts' ranges index.
    func select(_ f: ConnectionFacts, _ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = matches.count
        if n == 0 { return defaultChain }
        return withUnsafeTemporaryAllocation(of: Bool.self, capacity: n) { alive -> Int? in
            alive.initialize(repeating: true)
            let isLocal = f.peer.isLoopback || (f.peer.family == f.local.family && f.peer.high == f.local.high && f.peer.low == f.local.low)
            guard narrow(alive, { $0.destinationPort == 0 ? 0 : ($0.destinationPort == Int(f.local.port) ? 1 : -1) }),
                  narrow(alive, { Self.prefixScore($0.prefixRanges, f.local) }),
                  narrow(alive, { Self.serverNameScore($0, f.serverName.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) }) }),
                  narrow(alive, { m in
                      if m.transportProtocol.isEmpty { return 0 }
                      return Self.equal(m.transportProtocol, f.tls ? Self.tls : Self.rawBuffer) ? 1 : -1
                  }),
                  narrow(alive, { Self.protocolScore($0.applicationProtocols, f, bytes) }),
                  narrow(alive, { Self.prefixScore($0.directSources, f.peer) }),
                  narrow(alive, { m in
                      switch m.sourceType {
                      case .any: 1
                      case .sameIPOrLoopback: isLocal ? 2 : -1
                      case .external: isLocal ? -1 : 2
                      }
                  }),
                  narrow(alive, { Self.prefixScore($0.sources, f.peer) }),
                  narrow(alive, { $0.sourcePorts.isEmpty ? 0 : ($0.sourcePorts.contains(Int(f.peer.port)) ? 1 : -1) })
            else { return defaultChain }
            return alive.firstIndex(of: true) ?? defaultChain
        }
    }

    /// Keeps the live chains whose score is the best (a negative score: no match). False when
    /// none is left.
    private func narrow(_ alive: UnsafeMutableBufferPointer<Bool>, _ score: (Match) -> Int) -> Bool {
        var best = -1
        for i in 0..<matches.count where alive[i] { best = max(best, score(matches[i])) }
        guard best >= 0 else { return false }
        for i in 0..<matches.count where alive[i] { alive[i] = score(matches[i]) == best }
        return true
    }

    private static let tls = Array("tls".utf8)
    private static let rawBuffer = Array("raw_buffer".utf8)
    private static let http10 = Array("http/1.0".utf8)
    private static let http11 = Array("http/1.1".utf8)
    private static let h2c = Array("h2c".utf8)

    /// The longest matching prefix (an unset list matches as /0).
    private static func prefixScore(_ ranges: [CIDRRange], _ a: CompactAddress) -> Int {
        if ranges.isEmpty { return 0 }
        var best = -1
        for r in ranges where r.contains(family: Int32(a.family), high: a.high, low: a.low) { best = max(best, r.prefixLength) }
        return best
    }

    /// Exact name, then the longest wildcard suffix, then a chain without names. A connection
    /// without SNI matches only chains without names.
    private static func serverNameScore(_ m: Match, _ name: UnsafeRawBufferPointer?) -> Int {
        if m.exactNames.isEmpty && m.wildcardSuffixes.isEmpty { return 0 }
        guard let name, name.count > 0 else { return -1 }
        if m.exactNames.contains(where: { equalFolded($0, name) }) { return Int.max }
        var best = -1
        for s in m.wildcardSuffixes where s.count < name.count {
            // A suffix starting at a dot after the first label (Envoy tries ".b.c" then ".c").
            let start = name.count - s.count
            if start >= 1 && start < name.count - 1 && equalFolded(s, UnsafeRawBufferPointer(rebasing: name[start...])) {
                best = max(best, 1 + s.count)
            }
        }
        return best
    }

    private static func protocolScore(_ listed: [[UInt8]], _ f: ConnectionFacts, _ bytes: UnsafeRawBufferPointer) -> Int {
        if listed.isEmpty { return 0 }
        if f.alpn.count > 0 {
            for i in 0..<f.alpn.count {
                let p = UnsafeRawBufferPointer(rebasing: bytes[f.alpn[i]])
                if listed.contains(where: { equal($0, p) }) { return f.alpn.count - i }
            }
            return -1
        }
        let found: [UInt8]
        switch f.http {
        case .http10: found = http10
        case .http11: found = http11
        case .http2: found = h2c
        default: return -1
        }
        return listed.contains(where: { equal($0, found) }) ? 1 : -1
    }

    private static func equal(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0 else { return true }
        return a.withUnsafeBytes { memcmp($0.baseAddress!, b.baseAddress!, a.count) == 0 }
    }

    private static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool { a == b }

    /// `a` is lower case; `b` is compared ASCII case-insensitively (SNI is case-insensitive).
    private static func equalFolded(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count {
            var c = b[i]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c != a[i] { return false }
        }
        return true
    }
}

extension CompactAddress {
    /// 127.0.0.0/8 or ::1.
    var isLoopback: Bool {
        if Int32(family) == AF_INET { return low >> 24 == 127 }
        if Int32(family) == AF_INET6 { return high == 0 && low == 1 }
        return false
    }
}
