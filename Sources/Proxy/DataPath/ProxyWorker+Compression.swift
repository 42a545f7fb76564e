import CBrotli
import CZlib
import CZstd
import EventLoop
import HTTP1

/// A compressing stream: zlib's (gzip), libbrotli's or libzstd's encoder.
enum CompressorStream {
    case zlib(OpaquePointer)
    case brotli(OpaquePointer)
    case zstd(OpaquePointer)

    init?(_ library: CompressorConfig.Library) {
        switch library {
        case .gzip(let o):
            guard let z = ballast_deflate_new(o.level, o.windowBits + 16, o.memoryLevel, o.strategy) else { return nil }
            self = .zlib(z)
        case .brotli(let o):
            guard let e = ballast_brotli_encoder_new(o.quality, o.windowBits, o.inputBlockBits, o.mode, o.disableLiteralContextModeling ? 1 : 0) else { return nil }
            self = .brotli(e)
        case .zstd(let o):
            guard let c = ballast_zstd_new(o.level, o.checksum ? 1 : 0, o.strategy) else { return nil }
            self = .zstd(c)
        }
    }

    /// Ready for a new body with the same options; false when it cannot be reused (brotli 1.0
    /// has no reset: its encoder is made per compressed response).
    func reset() -> Bool {
        switch self {
        case .zlib(let z): ballast_deflate_reset(z) == Int32(BALLAST_Z_OK)
        case .brotli: false
        case .zstd(let c): ballast_zstd_reset(c) == 1
        }
    }

    func free() {
        switch self {
        case .zlib(let z): ballast_deflate_free(z)
        case .brotli(let e): ballast_brotli_encoder_free(e)
        case .zstd(let c): ballast_zstd_free(c)
        }
    }

    /// One step over `input` into `out`: a flush (Envoy's data with end_stream false) or a
    /// finish. `more`: output is still waiting (call again with the rest of the input).
    func step(_ input: UnsafeRawBufferPointer, _ out: UnsafeMutableRawPointer, _ room: Int, finish: Bool)
        -> (used: Int, written: Int, more: Bool, failed: Bool) {
        var used = 0
        var written = 0
        switch self {
        case .zlib(let z):
            let rc = ballast_deflate(z, input.baseAddress, input.count, out, room, Int32(finish ? BALLAST_Z_FINISH : BALLAST_Z_SYNC_FLUSH), &used, &written)
            return (used, written, written == room, rc < 0 && rc != Int32(BALLAST_Z_BUF_ERROR))
        case .brotli(let e):
            var more: Int32 = 0
            let ok = ballast_brotli_compress(e, Int32(finish ? BALLAST_BROTLI_FINISH : BALLAST_BROTLI_FLUSH), input.baseAddress, input.count, out, room, &used, &written, &more)
            return (used, written, more != 0, ok == 0)
        case .zstd(let c):
            // Envoy's zstd compressor emits nothing until the frame ends (or its buffer fills):
            // a piece is taken in (ZSTD_e_continue), the end closes the frame.
            var pending: Int32 = 0
            let ok = ballast_zstd_compress(c, finish ? 1 : 0, input.baseAddress, input.count, out, room, &used, &written, &pending)
            return (used, written, pending != 0, ok == 0)
        }
    }
}

/// A worker's compressing streams: one per response being compressed, reused by later responses
/// with the same library options (no allocation once warm, for gzip).
struct CompressorPool {
    private struct Entry {
        var stream: CompressorStream
        var library: CompressorConfig.Library
        var busy: Bool
    }

    private var entries: [Entry] = []

    /// A stream ready for a new body (its index), or nil when the codec fails.
    mutating func acquire(_ library: CompressorConfig.Library) -> Int32? {
        for i in entries.indices where !entries[i].busy && entries[i].library == library {
            guard entries[i].stream.reset() else { continue }
            entries[i].busy = true
            return Int32(i)
        }
        guard let stream = CompressorStream(library) else { return nil }
        if let free = entries.firstIndex(where: { !$0.busy }) {
            // A stream that cannot be reset, or options changed (a reload): replace an idle one.
            entries[free].stream.free()
            entries[free] = Entry(stream: stream, library: library, busy: true)
            return Int32(free)
        }
        entries.append(Entry(stream: stream, library: library, busy: true))
        return Int32(entries.count - 1)
    }

    func stream(_ i: Int32) -> CompressorStream { entries[Int(i)].stream }

    mutating func release(_ i: Int32) {
        guard i >= 0 && Int(i) < entries.count else { return }
        entries[Int(i)].busy = false
    }

    func freeAll() {
        for e in entries { e.stream.free() }
    }
}

extension ProxyWorker {
    // MARK: decision

    /// The compressor's encodeHeaders for an upstream response head (the worker's response
    /// parser holds its fields): sets the stream's `compressVary` / `compressorStream`.
    func decideCompression(_ head: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>, endStream: Bool) {
        guard let plan = hcm(s)?.compressor else { return }
        let p = responseParser
        var f = ResponseFields()
        for i in 0..<p.headerCount {
            let name = p.headerNameRange(at: i)
            let value = p.headerValueRange(at: i)
            switch name.count {
            case 14 where ASCII.equalsCaseInsensitive(head, name, "content-length"):
                f.contentLength = ASCII.parseDecimal(head, value)
            case 12 where ASCII.equalsCaseInsensitive(head, name, "content-type"):
                f.contentTypeAllowed = plan.allows(contentType: head, value)
            case 13 where ASCII.equalsCaseInsensitive(head, name, "cache-control"):
                if ASCII.listContainsToken(head, value, "no-transform") { f.noTransform = true }
            case 4 where ASCII.equalsCaseInsensitive(head, name, "etag"):
                f.hasEtag = true
            case 16 where ASCII.equalsCaseInsensitive(head, name, "content-encoding"):
                f.hasContentEncoding = true
            default:
                break
            }
        }
        apply(plan.decide(f, choice: s.pointee.acceptEncoding, endStream: endStream), plan, s)
    }

    /// The same for a local reply (its body is text/plain when it has one).
    func decideCompression(localReply bodyCount: Int, _ s: UnsafeMutablePointer<Stream>) {
        guard let plan = hcm(s)?.compressor else { return }
        var f = ResponseFields()
        f.contentLength = bodyCount
        apply(plan.decide(f, choice: s.pointee.acceptEncoding, endStream: bodyCount == 0 || s.pointee.isHEAD), plan, s)
    }

    private func apply(_ d: CompressorPlan.Decision, _ plan: CompressorPlan, _ s: UnsafeMutablePointer<Stream>) {
        s.pointee.compressVary = d.vary
        guard d.compress else { return }
        if let z = compressors.acquire(plan.library) {
            s.pointee.compressorStream = z
        } else {
            // The codec could not make a stream (out of memory): the body goes out as it came.
            plan.stats.responseCompressed.wrappingSubtract(1, ordering: .relaxed)
            plan.stats.responseNotCompressed.wrappingAdd(1, ordering: .relaxed)
        }
    }

    // MARK: head

    /// Upstream fields the compressor drops from a head it changes: content-length and a strong
    /// etag when compressing, every vary when adding to it (they are written joined).
    @inline(__always)
    func compressorDrops(_ head: UnsafeRawBufferPointer, _ name: Range<Int>, _ s: UnsafeMutablePointer<Stream>) -> Bool {
        switch name.count {
        case 4 where ASCII.equalsCaseInsensitive(head, name, "vary"):
            return s.pointee.compressVary
        case 14 where ASCII.equalsCaseInsensitive(head, name, "content-length"):
            return s.pointee.compressorStream >= 0
        case 4 where ASCII.equalsCaseInsensitive(head, name, "etag"):
            guard s.pointee.compressorStream >= 0 else { return false }
            // Envoy keeps a weak etag (W/...) and removes a strong one.
            let p = responseParser
            for i in 0..<p.headerCount where p.headerNameRange(at: i) == name {
                let v = p.headerValueRange(at: i)
                return !(v.count >= 2 && head[v.lowerBound] == UInt8(ascii: "W") && head[v.lowerBound + 1] == UInt8(ascii: "/"))
            }
            return true
        default:
            return false
        }
    }

    /// content-encoding (when compressing) and vary: the upstream's vary values joined with ","
    /// (as Envoy's header map joins repeated fields), then `, Accept-Encoding`.
    func writeCompressorFields(_ head: UnsafeRawBufferPointer, upstream: Bool, _ s: UnsafeMutablePointer<Stream>, _ w: inout ByteWriter) {
        if s.pointee.compressorStream >= 0, let plan = hcm(s)?.compressor { w.put(plan.encodingField) }
        guard s.pointee.compressVary else { return }
        w.put("vary: ")
        var first = true
        if upstream {
            let p = responseParser
            for i in 0..<p.headerCount {
                let name = p.headerNameRange(at: i)
                guard name.count == 4 && ASCII.equalsCaseInsensitive(head, name, "vary") else { continue }
                if !first { w.put(byte: ASCII.comma) }
                w.put(UnsafeRawBufferPointer(rebasing: head[p.headerValueRange(at: i)]))
                first = false
            }
        }
        w.put(first ? "Accept-Encoding\r\n" : ", Accept-Encoding\r\n")
    }

    // MARK: body

    /// Compresses one piece of response body (Envoy's encodeData with end_stream false: a sync
    /// flush) into the downstream's output as one chunk (bare for an HTTP/1.0 client).
    func compressBody(_ bytes: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>, _ d: UnsafeMutablePointer<Downstream>) -> Bool {
        guard bytes.count > 0 else { return true }
        hcm(s)?.compressor?.stats.responseTotalUncompressedBytes.wrappingAdd(bytes.count, ordering: .relaxed)
        return compressChunk(bytes, finish: false, s, d)
    }

    /// The end of the body (Envoy's end_stream data, empty after an upstream body, the whole
    /// body of a local reply: a finish), then the last chunk.
    func finishCompression(_ s: UnsafeMutablePointer<Stream>, _ d: UnsafeMutablePointer<Downstream>,
                           last: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        guard s.pointee.compressorStream >= 0 else { return }
        _ = compressChunk(last, finish: true, s, d)
        if !s.pointee.http10 { _ = pool.append(UnsafeRawBufferPointer(staticString: "0\r\n\r\n"), to: &d.pointee.pending) }
        compressors.release(s.pointee.compressorStream)
        s.pointee.compressorStream = -1
    }

    /// A chunked upstream body: each chunk's payload compressed (as `relayDechunked` relays it).
    func compressDechunked(_ rest: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>,
                           _ d: UnsafeMutablePointer<Downstream>) -> (used: Int, done: Bool, failed: Bool) {
        var used = 0
        while used < rest.count {
            switch s.pointee.responseDecoder.decode(UnsafeRawBufferPointer(rebasing: rest[used...])) {
            case .data(let range, let consumed):
                let payload = UnsafeRawBufferPointer(rebasing: rest[(used + range.lowerBound)..<(used + range.upperBound)])
                _ = hcm(s)?.filters.encodeData(payload, endStream: false)
                if !compressBody(payload, s, d) { return (used, false, true) }
                used += consumed
            case .needMore(let consumed):
                return (used + consumed, false, false)
            case .done(let consumed):
                return (used + consumed, true, false)
            case .failure:
                return (used, false, true)
            }
        }
        return (used, false, false)
    }

    /// Runs the codec over `input` (a flush, or a finish), writing the output as one chunk: the
    /// payload is written after room for the size line, which is then filled in and the payload
    /// moved up to it.
    private func compressChunk(_ input: UnsafeRawBufferPointer, finish: Bool, _ s: UnsafeMutablePointer<Stream>, _ d: UnsafeMutablePointer<Downstream>) -> Bool {
        let codec = compressors.stream(s.pointee.compressorStream)
        let framed = !s.pointee.http10
        var offset = 0
        var total = 0
        // A flush adds at most a few bytes per block beyond the input, plus the header and
        // trailer: one reservation normally holds the whole output.
        var room = max(256, input.count + input.count / 8 + 64)
        while true {
            guard let base = pool.reserve(room + 12, in: &d.pointee.pending) else { return false }
            let out = base + 10
            let r = codec.step(UnsafeRawBufferPointer(rebasing: input[offset...]), out, room, finish: finish)
            offset += r.used
            if r.failed { return false }
            if r.written > 0 {
                if framed {
                    var w = ByteWriter(base, capacity: 10)
                    w.putHex(r.written)
                    w.crlf()
                    (base + w.count).copyMemory(from: UnsafeRawPointer(out), byteCount: r.written)
                    (base + w.count + r.written).storeBytes(of: ASCII.cr, as: UInt8.self)
                    (base + w.count + r.written + 1).storeBytes(of: ASCII.lf, as: UInt8.self)
                    d.pointee.pending.count += w.count + r.written + 2
                } else {
                    base.copyMemory(from: UnsafeRawPointer(out), byteCount: r.written)
                    d.pointee.pending.count += r.written
                }
                total += r.written
            }
            if !r.more && offset == input.count { break }
            room = max(room, 4096)
        }
        s.pointee.bytesSent += total
        hcm(s)?.compressor?.stats.responseTotalCompressedBytes.wrappingAdd(total, ordering: .relaxed)
        return true
    }
}
