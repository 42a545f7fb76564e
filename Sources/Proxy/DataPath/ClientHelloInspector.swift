/// What `tls_inspector` learns from a connection's first bytes: whether they open a TLS
/// handshake, and if so the ClientHello's server name (SNI) and ALPN protocols. A parser of our
/// own over the received bytes (no TLS library): record header, handshake header, then the
/// ClientHello's fixed fields and its extensions.
enum ClientHelloInspector {
    /// Envoy's bound on a ClientHello (TLS_MAX_CLIENT_HELLO): more is `client_hello_too_large`.
    static let maxClientHello = 64 * 1024

    enum Outcome: Equatable {
        /// The bytes so far are a prefix of a ClientHello: wait for more.
        case needMore
        /// Not a TLS handshake (plain bytes, or not a well-formed ClientHello).
        case notTLS
        /// A ClientHello longer than `maxClientHello`.
        case tooLarge
        /// A ClientHello; ranges index the bytes given to `inspect` (or `scratch` when it spans
        /// records: `inScratch`).
        case clientHello(ClientHelloFacts)
    }

    /// Inspects `bytes` (everything received so far). A ClientHello split over several records
    /// is gathered into `scratch` (`maxClientHello` bytes), and the facts then index `scratch`.
    static func inspect(_ bytes: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) -> Outcome {
        guard bytes.count >= 1 else { return .needMore }
        guard bytes[0] == 0x16 else { return .notTLS }  // handshake record
        guard bytes.count >= 5 else { return bytes.count >= 2 && bytes[1] != 0x03 ? .notTLS : .needMore }
        guard bytes[1] == 0x03 else { return .notTLS }
        let firstLength = Int(bytes[3]) << 8 | Int(bytes[4])
        guard firstLength >= 4 else { return .notTLS }
        if bytes.count < 5 + 4 { return .needMore }
        guard bytes[5] == 0x01 else { return .notTLS }  // ClientHello
        let helloLength = Int(bytes[6]) << 16 | Int(bytes[7]) << 8 | Int(bytes[8])
        guard 4 + helloLength <= maxClientHello else { return .tooLarge }
        if 4 + helloLength <= firstLength {
            // The common case: the whole ClientHello in the first record.
            guard bytes.count >= 5 + 4 + helloLength else { return .needMore }
            return parseHello(bytes, body: 9..<(9 + helloLength), inScratch: false)
        }
        // Gather the handshake fragments of consecutive records into `scratch`.
        var gathered = 0
        var at = 0
        let needed = 4 + helloLength
        while gathered < needed {
            guard bytes.count >= at + 5 else { return .needMore }
            guard bytes[at] == 0x16, bytes[at + 1] == 0x03 else { return .notTLS }
            let length = Int(bytes[at + 3]) << 8 | Int(bytes[at + 4])
            guard length > 0 else { return .notTLS }
            guard bytes.count >= at + 5 + length else { return .needMore }
            let take = min(length, needed - gathered)
            scratch.baseAddress!.advanced(by: gathered).copyMemory(from: bytes.baseAddress!.advanced(by: at + 5), byteCount: take)
            gathered += take
            at += 5 + length
        }
        return parseHello(UnsafeRawBufferPointer(scratch), body: 4..<needed, inScratch: true)
    }

    /// The ClientHello body: version, random, session id, cipher suites, compression methods,
    /// then (optionally) the extensions, of which server_name (0) and ALPN (16) are read.
    private static func parseHello(_ b: UnsafeRawBufferPointer, body: Range<Int>, inScratch: Bool) -> Outcome {
        var facts = ClientHelloFacts(inScratch: inScratch)
        var p = body.lowerBound + 2 + 32
        let end = body.upperBound
        func u8(_ i: Int) -> Int { Int(b[i]) }
        func u16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        guard p + 1 <= end else { return .notTLS }
        p += 1 + u8(p)  // session id
        guard p + 2 <= end else { return .notTLS }
        p += 2 + u16(p)  // cipher suites
        guard p + 1 <= end else { return .notTLS }
        p += 1 + u8(p)  // compression methods
        guard p <= end else { return .notTLS }
        if p == end { return .clientHello(facts) }  // no extensions
        guard p + 2 <= end else { return .notTLS }
        let extensionsEnd = p + 2 + u16(p)
        guard extensionsEnd <= end else { return .notTLS }
        p += 2
        while p + 4 <= extensionsEnd {
            let type = u16(p)
            let length = u16(p + 2)
            let data = p + 4
            guard data + length <= extensionsEnd else { return .notTLS }
            if type == 0, length >= 2 {  // server_name: a list of (type, name); the host_name one
                var q = data + 2
                let listEnd = min(data + 2 + u16(data), data + length)
                while q + 3 <= listEnd {
                    let nameLength = u16(q + 1)
                    guard q + 3 + nameLength <= listEnd else { return .notTLS }
                    if b[q] == 0 && facts.serverName == nil { facts.serverName = (q + 3)..<(q + 3 + nameLength) }
                    q += 3 + nameLength
                }
            } else if type == 16, length >= 2 {  // ALPN: a list of length-prefixed protocol names
                var q = data + 2
                let listEnd = min(data + 2 + u16(data), data + length)
                while q + 1 <= listEnd {
                    let n = u8(q)
                    guard n > 0, q + 1 + n <= listEnd else { return .notTLS }
                    facts.addProtocol((q + 1)..<(q + 1 + n))
                    q += 1 + n
                }
            }
            p = data + length
        }
        return .clientHello(facts)
    }
}

/// The server name and ALPN protocols of a ClientHello, as ranges of the inspected bytes.
struct ClientHelloFacts: Equatable {
    /// The ranges index the inspector's scratch buffer, not the received bytes.
    var inScratch: Bool
    var serverName: Range<Int>? = nil
    /// The first `ApplicationProtocols.capacity` ALPN protocols, in the client's order.
    var protocols = ApplicationProtocols()

    init(inScratch: Bool) { self.inScratch = inScratch }

    mutating func addProtocol(_ r: Range<Int>) { protocols.append(r) }
}

/// Up to `capacity` protocol names as ranges of a byte buffer, stored inline (no allocation per
/// connection). A client offering more is matched on its first `capacity`.
struct ApplicationProtocols: Equatable {
    static let capacity = 8
    private var starts: (Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var ends: (Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32) = (0, 0, 0, 0, 0, 0, 0, 0)
    private(set) var count = 0

    static func == (a: ApplicationProtocols, b: ApplicationProtocols) -> Bool {
        a.count == b.count && (0..<a.count).allSatisfy { a[$0] == b[$0] }
    }

    mutating func append(_ r: Range<Int>) {
        guard count < Self.capacity else { return }
        withUnsafeMutableBytes(of: &starts) { $0.storeBytes(of: Int32(r.lowerBound), toByteOffset: count * 4, as: Int32.self) }
        withUnsafeMutableBytes(of: &ends) { $0.storeBytes(of: Int32(r.upperBound), toByteOffset: count * 4, as: Int32.self) }
        count += 1
    }

    subscript(i: Int) -> Range<Int> {
        let s = withUnsafeBytes(of: starts) { $0.load(fromByteOffset: i * 4, as: Int32.self) }
        let e = withUnsafeBytes(of: ends) { $0.load(fromByteOffset: i * 4, as: Int32.self) }
        return Int(s)..<Int(e)
    }
}

/// What `http_inspector` learns from a connection's first line: HTTP/1.0, HTTP/1.1, the HTTP/2
/// connection preface (h2c), or not HTTP.
enum HTTPInspector {
    enum Outcome: Equatable {
        case needMore
        case notHTTP
        case http10, http11, http2
    }

    /// Envoy's http_inspector reads at most this much looking for the request line.
    static let maxInspected = 64 * 1024
    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private static let version = Array("HTTP/1.".utf8)

    static func inspect(_ b: UnsafeRawBufferPointer) -> Outcome {
        // The HTTP/2 preface, matched as far as the bytes go.
        let prefix = min(b.count, preface.count)
        if prefix > 0 && (0..<prefix).allSatisfy({ b[$0] == preface[$0] }) {
            return prefix == preface.count ? .http2 : .needMore
        }
        // METHOD SP TARGET SP HTTP/1.x CRLF: the method is a token, the target has no spaces.
        var i = 0
        while i < b.count && isToken(b[i]) { i += 1 }
        if i == b.count { return b.count >= maxInspected ? .notHTTP : .needMore }
        guard i > 0, b[i] == 0x20 else { return .notHTTP }
        i += 1
        let targetStart = i
        while i < b.count && b[i] != 0x20 && b[i] != 0x0D && b[i] != 0x0A { i += 1 }
        if i == b.count { return b.count >= maxInspected ? .notHTTP : .needMore }
        guard i > targetStart, b[i] == 0x20 else { return .notHTTP }
        i += 1
        for (k, c) in version.enumerated() {
            if i + k == b.count { return .needMore }
            guard b[i + k] == c else { return .notHTTP }
        }
        i += version.count
        guard i < b.count else { return .needMore }
        let minor = b[i]
        guard i + 1 < b.count else { return .needMore }
        guard b[i + 1] == 0x0D || b[i + 1] == 0x0A else { return .notHTTP }
        switch minor {
        case UInt8(ascii: "0"): return .http10
        case UInt8(ascii: "1"): return .http11
        default: return .notHTTP
        }
    }

    private static func isToken(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }
}
