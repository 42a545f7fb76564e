/// A TLS ClientHello built byte by byte, for the tls_inspector tests: TLS 1.2 record(s) of up to
/// `recordSize` handshake bytes each, a handshake of type 1 with two cipher suites, no session id,
/// null compression, the server_name and ALPN extensions asked for, then supported_groups and
/// ec_point_formats as a TLS 1.2 client sends them.
public enum ClientHello {
    public static func bytes(sni: String?, alpn: [String] = [], recordSize: Int = 16384) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
        var extensions: [UInt8] = []
        if let sni {
            let name = Array(sni.utf8)
            let entry = [0] + u16(name.count) + name
            extensions += u16(0) + u16(entry.count + 2) + u16(entry.count) + entry
        }
        if !alpn.isEmpty {
            let list = alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            extensions += u16(16) + u16(list.count + 2) + u16(list.count) + list
        }
        extensions += u16(10) + u16(6) + u16(4) + u16(0x001D) + u16(0x0017)
        extensions += u16(11) + u16(2) + [1, 0]
        var body: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [0]
        body += u16(4) + u16(0xC02F) + u16(0x009C) + [1, 0]
        body += u16(extensions.count) + extensions
        let handshake: [UInt8] = [1, 0] + u16(body.count) + body
        var out: [UInt8] = []
        var at = 0
        while at < handshake.count {
            let piece = Array(handshake[at..<min(at + recordSize, handshake.count)])
            out += [0x16, 3, 1] + u16(piece.count) + piece
            at += piece.count
        }
        return out
    }
}
