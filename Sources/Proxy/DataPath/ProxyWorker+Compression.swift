import CZlib
import EventLoop
import HTTP1

/// A worker's z_streams for the compressor filter: one per response being compressed, reused
/// (deflateReset, no allocation) by later responses with the same gzip options.
struct DeflaterPool {
    private struct Entry {
        let z: OpaquePointer
        var options: CompressorConfig.GzipOptions
        var busy: Bool
    }

    private var entries: [Entry] = []

    /// A z_stream ready for a new body with these options (its index), or nil when zlib fails.
    mutating func acquire(_ o: CompressorConfig.GzipOptions) -> Int32? {
        for i in entries.indices where !entries[i].busy && entries[i].options == o {
            guard ballast_deflate_reset(entries[i].z) == Int32(BALLAST_Z_OK) else { continue }
            entries[i].busy = true
            return Int32(i)
        }
        guard let z = ballast_deflate_new(o.level, o.windowBits + 16, o.memoryLevel, o.strategy) else { return nil }
        if let free = entries.firstIndex(where: { !$0.busy }) {
            // Options changed (a reload): replace an idle stream rather than grow.
            ballast_deflate_free(entries[free].z)
            entries[free] = Entry(z: z, options: o, busy: true)
            return Int32(free)
        }
        entries.append(Entry(z: z, options: o, busy: true))
        return Int32(entries.count - 1)
    }

    func stream(_ i: Int32) -> OpaquePointer { entries[Int(i)].z }

    mutating func release(_ i: Int32) {
        guard i >= 0 && Int(i) < entries.count else { return }
        entries[Int(i)].busy = false
    }

    func freeAll() {
        for e in entries { ballast_deflate_free(e.z) }
    }
}

extension ProxyWorker {
    // MARK: decision

    /// The compressor's encodeHeaders for an upstream response head (the worker's response
    /// parser holds its fields): sets the stream's `compressVary` / `deflater`.
    func decideCompression(_ head: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>, endStream: Bool) {
        guard let plan = httpPlan(s.pointee.generation)?.compressor else { return }
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
        guard let plan = httpPlan(s.pointee.generation)?.compressor else { return }
        var f = ResponseFields()
        f.contentLength = bodyCount
        apply(plan.decide(f, choice: s.pointee.acceptEncoding, endStream: bodyCount == 0 || s.pointee.isHEAD), plan, s)
    }

    private func apply(_ d: CompressorPlan.Decision, _ plan: CompressorPlan, _ s: UnsafeMutablePointer<Stream>) {
        s.pointee.compressVary = d.vary
        guard d.compress else { return }
        if let z = deflaters.acquire(plan.gzip) {
            s.pointee.deflater = z
        } else {
            // zlib could not make a stream (out of memory): the body goes out as it came.
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
            return s.pointee.deflater >= 0
        case 4 where ASCII.equalsCaseInsensitive(head, name, "etag"):
            guard s.pointee.deflater >= 0 else { return false }
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
        if s.pointee.deflater >= 0 { w.put("content-encoding: gzip\r\n") }
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
        httpPlan(s.pointee.generation)?.compressor?.stats.responseTotalUncompressedBytes.wrappingAdd(bytes.count, ordering: .relaxed)
        return deflateChunk(bytes, flush: Int32(BALLAST_Z_SYNC_FLUSH), s, d)
    }

    /// The end of the body (Envoy's end_stream data, empty after an upstream body, the whole
    /// body of a local reply: a finish), then the last chunk.
    func finishCompression(_ s: UnsafeMutablePointer<Stream>, _ d: UnsafeMutablePointer<Downstream>,
                           last: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        guard s.pointee.deflater >= 0 else { return }
        _ = deflateChunk(last, flush: Int32(BALLAST_Z_FINISH), s, d)
        if !s.pointee.http10 { _ = pool.append(UnsafeRawBufferPointer(staticString: "0\r\n\r\n"), to: &d.pointee.pending) }
        deflaters.release(s.pointee.deflater)
        s.pointee.deflater = -1
    }

    /// A chunked upstream body: each chunk's payload compressed (as `relayDechunked` relays it).
    func compressDechunked(_ rest: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>,
                           _ d: UnsafeMutablePointer<Downstream>) -> (used: Int, done: Bool, failed: Bool) {
        var used = 0
        while used < rest.count {
            switch s.pointee.responseDecoder.decode(UnsafeRawBufferPointer(rebasing: rest[used...])) {
            case .data(let range, let consumed):
                let payload = UnsafeRawBufferPointer(rebasing: rest[(used + range.lowerBound)..<(used + range.upperBound)])
                _ = http?.filters.encodeData(payload, endStream: false)
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

    /// Runs deflate over `input` with `flush`, writing the output as one chunk: the payload is
    /// written after room for the size line, which is then filled in and the payload moved up.
    private func deflateChunk(_ input: UnsafeRawBufferPointer, flush: Int32, _ s: UnsafeMutablePointer<Stream>, _ d: UnsafeMutablePointer<Downstream>) -> Bool {
        let z = deflaters.stream(s.pointee.deflater)
        let framed = !s.pointee.http10
        var offset = 0
        var total = 0
        // A sync flush adds at most a few bytes per 16 KiB stored block beyond the input, plus
        // the header and trailer: one reservation normally holds the whole output.
        var room = max(256, input.count + input.count / 8 + 64)
        while true {
            guard let base = pool.reserve(room + 12, in: &d.pointee.pending) else { return false }
            let out = base + 10
            var used = 0
            var written = 0
            let rc = ballast_deflate(z, input.baseAddress.map { $0 + offset }, input.count - offset, out, room, flush, &used, &written)
            offset += used
            if rc < 0 && rc != Int32(BALLAST_Z_BUF_ERROR) { return false }
            if written > 0 {
                if framed {
                    var w = ByteWriter(base, capacity: 10)
                    w.putHex(written)
                    w.crlf()
                    (base + w.count).copyMemory(from: UnsafeRawPointer(out), byteCount: written)
                    (base + w.count + written).storeBytes(of: ASCII.cr, as: UInt8.self)
                    (base + w.count + written + 1).storeBytes(of: ASCII.lf, as: UInt8.self)
                    d.pointee.pending.count += w.count + written + 2
                } else {
                    base.copyMemory(from: UnsafeRawPointer(out), byteCount: written)
                    d.pointee.pending.count += written
                }
                total += written
            }
            // Output space used up: more is waiting (deflate continues where it stopped).
            if written < room && offset == input.count { break }
            room = max(room, 4096)
        }
        s.pointee.bytesSent += total
        httpPlan(s.pointee.generation)?.compressor?.stats.responseTotalCompressedBytes.wrappingAdd(total, ordering: .relaxed)
        return true
    }
}
