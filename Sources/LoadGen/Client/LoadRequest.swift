import HTTP1

/// The request every connection of one load thread sends, built once at start and then only read
/// (sends point straight into it). Owned by its thread's worker, freed with it.
final class LoadRequest {
    let bytes: UnsafeMutableRawBufferPointer
    let count: Int

    /// Builds `GET|POST target HTTP/1.1` with Host (unless a -H gives one), User-Agent, the extra headers, Connection:
    /// close when keep-alive is off, and the payload with its Content-Length and Content-Type.
    init(options: LoadOptions) {
        let isPost = options.payload != nil
        var size = 256 + options.url.target.utf8.count + options.url.hostHeader.utf8.count + options.contentType.utf8.count
        for h in options.headers { size += h.name.utf8.count + h.value.utf8.count + 4 }
        size += options.payload?.count ?? 0
        bytes = .allocate(byteCount: size, alignment: 64)
        let w = HeadWriter(bytes)
        var p = 0
        func text(_ s: String, _ body: (UnsafeRawBufferPointer) -> Int?) -> Int {
            var copy = s
            return copy.withUTF8 { body(UnsafeRawBufferPointer($0))! }
        }
        p = text(options.url.target) { w.writeRequestLine(method: isPost ? "POST" : "GET", target: $0, at: p) }
        // A -H Host replaces the URL's host (virtual hosts behind a proxy).
        if !options.headers.contains(where: { $0.name.lowercased() == "host" }) {
            p = text(options.url.hostHeader) { w.writeHeader("Host", $0, at: p) }
        }
        let hasUserAgent = options.headers.contains { $0.name.lowercased() == "user-agent" }
        if !hasUserAgent { p = w.writeHeader("User-Agent", "ballast-load/0.1", at: p)! }
        for h in options.headers {
            let name = h.name, value = h.value
            p = text(name) { n in text(value) { v in w.writeHeader(name: n, value: v, at: p) } }
        }
        if !options.keepAlive { p = w.writeHeader("Connection", "close", at: p)! }
        if let payload = options.payload {
            p = w.writeHeader("Content-Length", decimal: payload.count, at: p)!
            if !options.contentType.isEmpty {
                p = text(options.contentType) { w.writeHeader("Content-Type", $0, at: p) }
            }
            p = w.writeCRLF(at: p)!
            p = payload.withUnsafeBytes { w.write($0, at: p)! }
        } else {
            p = w.writeCRLF(at: p)!
        }
        count = p
    }

    deinit { bytes.deallocate() }

    var base: UnsafeRawPointer { UnsafeRawPointer(bytes.baseAddress!) }
    var text: String { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<count]), as: UTF8.self) }
}
