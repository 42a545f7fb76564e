import CZlib
import EventLoop
import HTTP1

/// A worker's inflate streams for the decompressor filter (reused with inflateReset).
struct InflaterPool {
    private struct Entry {
        let z: OpaquePointer
        var windowBits: Int32
        var busy: Bool
    }

    private var entries: [Entry] = []

    mutating func acquire(windowBits: Int32) -> Int32? {
        for i in entries.indices where !entries[i].busy && entries[i].windowBits == windowBits {
            guard ballast_inflate_reset(entries[i].z) == Int32(BALLAST_Z_OK) else { continue }
            entries[i].busy = true
            return Int32(i)
        }
        guard let z = ballast_inflate_new(windowBits) else { return nil }
        if let free = entries.firstIndex(where: { !$0.busy }) {
            ballast_inflate_free(entries[free].z)
            entries[free] = Entry(z: z, windowBits: windowBits, busy: true)
            return Int32(free)
        }
        entries.append(Entry(z: z, windowBits: windowBits, busy: true))
        return Int32(entries.count - 1)
    }

    func stream(_ i: Int32) -> OpaquePointer { entries[Int(i)].z }

    mutating func release(_ i: Int32) {
        guard i >= 0 && Int(i) < entries.count else { return }
        entries[Int(i)].busy = false
    }

    func freeAll() {
        for e in entries { ballast_inflate_free(e.z) }
    }
}

extension ProxyWorker {
    /// The decompressor's encodeHeaders: response decompression is off, so every response (an
    /// upstream's or a local reply) counts `response.not_decompressed`, as Envoy.
    @inline(__always)
    func decompressorSawResponse(_ s: UnsafeMutablePointer<Stream>) {
        hcm(s)?.decompressor?.stats.responseNotDecompressed.wrappingAdd(1, ordering: .relaxed)
    }

    /// The decompressor chose this request (decodeHeaders): take an inflate stream for its body.
    func beginDecompression(_ s: UnsafeMutablePointer<Stream>) {
        guard let plan = hcm(s)?.decompressor, let i = inflaters.acquire(windowBits: plan.windowBits) else { return }
        s.pointee.inflater = i
    }

    /// Request fields the decompressor changes: content-length goes (the body goes chunked) and
    /// the first coding of the first content-encoding (the rest stays, as Envoy). True when the
    /// field was handled here.
    func decompressorRewrites(_ head: UnsafeRawBufferPointer, _ name: Range<Int>, _ value: Range<Int>,
                              strippedEncoding: inout Bool, _ w: inout ByteWriter) -> Bool {
        if name.count == 14 && ASCII.equalsCaseInsensitive(head, name, "content-length") { return true }
        guard !strippedEncoding, name.count == 16, ASCII.equalsCaseInsensitive(head, name, "content-encoding") else { return false }
        strippedEncoding = true
        var cursor = value.lowerBound
        _ = ASCII.nextListElement(head, cursor: &cursor, end: value.upperBound)  // gzip
        // What follows the first comma, trimmed.
        var start = cursor
        while start < value.upperBound && (head[start] == ASCII.comma || ASCII.isWhitespace(head[start])) { start += 1 }
        let rest = ASCII.trimWhitespace(head, start..<value.upperBound)
        if !rest.isEmpty {
            w.put("content-encoding: ")
            w.put(UnsafeRawBufferPointer(rebasing: head[rest]))
            w.crlf()
        }
        return true
    }

    /// Request body bytes for a decompressed request: the payload (after chunk framing, if any)
    /// inflated into the upstream's output as chunks; at the end, the last chunk.
    func inflateRequestBody(_ avail: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>,
                            _ up: UnsafeMutablePointer<Upstream>) -> (used: Int, done: Bool, failed: Bool) {
        var used = 0
        var done = false
        switch s.pointee.requestBody {
        case .length:
            // Slices keep the inflated output near the upstream's high-water mark (backpressure).
            while used < min(avail.count, s.pointee.requestRemaining) && up.pointee.pending.count < Self.highWater {
                let n = min(16 * 1024, min(avail.count, s.pointee.requestRemaining) - used)
                inflatePiece(UnsafeRawBufferPointer(rebasing: avail[used..<(used + n)]), s, up)
                used += n
            }
            s.pointee.requestRemaining -= used
            s.pointee.bytesReceived += used
            done = s.pointee.requestRemaining == 0
        case .chunked:
            decoding: while used < avail.count && up.pointee.pending.count < Self.highWater {
                let slice = UnsafeRawBufferPointer(rebasing: avail[used...])
                switch s.pointee.requestDecoder.decode(slice) {
                case let .data(range, consumed):
                    inflatePiece(UnsafeRawBufferPointer(rebasing: slice[range]), s, up)
                    s.pointee.bytesReceived += range.count
                    used += consumed
                case let .needMore(consumed):
                    used += consumed
                    break decoding
                case let .done(consumed):
                    used += consumed
                    done = true
                    break decoding
                case .failure:
                    return (used, false, true)
                }
            }
        default:
            done = true
        }
        if done { _ = pool.append(UnsafeRawBufferPointer(staticString: "0\r\n\r\n"), to: &up.pointee.pending) }
        return (used, done, false)
    }

    /// Inflates one piece in `chunk_size` output slices, each sent as a chunk. As Envoy's zlib
    /// decompressor: an error (a corrupt or non-gzip body) counts `zlib_data_error` and drops the
    /// rest; after a full slice, output above `max_inflate_ratio` times the input read does the
    /// same; bytes after the end of the gzip member are dropped.
    private func inflatePiece(_ input: UnsafeRawBufferPointer, _ s: UnsafeMutablePointer<Stream>, _ up: UnsafeMutablePointer<Upstream>) {
        guard let plan = hcm(s)?.decompressor else { return }
        plan.stats.requestTotalCompressedBytes.wrappingAdd(input.count, ordering: .relaxed)
        guard !s.pointee.inflateStopped, s.pointee.inflater >= 0 else { return }
        let z = inflaters.stream(s.pointee.inflater)
        let room = plan.chunkSize
        var offset = 0
        while true {
            guard let base = pool.reserve(room + 12, in: &up.pointee.pending) else { return }
            var used = 0
            var written = 0
            let rc = ballast_inflate(z, input.baseAddress.map { $0 + offset }, input.count - offset, base + 10, room, &used, &written)
            offset += used
            s.pointee.inflateIn += used
            s.pointee.inflateOut += written
            if written > 0 {
                var w = ByteWriter(base, capacity: 10)
                w.putHex(written)
                w.crlf()
                (base + w.count).copyMemory(from: UnsafeRawPointer(base + 10), byteCount: written)
                (base + w.count + written).storeBytes(of: ASCII.cr, as: UInt8.self)
                (base + w.count + written + 1).storeBytes(of: ASCII.lf, as: UInt8.self)
                up.pointee.pending.count += w.count + written + 2
                plan.stats.requestTotalUncompressedBytes.wrappingAdd(written, ordering: .relaxed)
            }
            if rc == Int32(BALLAST_Z_STREAM_END) { s.pointee.inflateStopped = true; return }
            if rc == Int32(BALLAST_Z_NEED_DICT) || (rc < 0 && rc != Int32(BALLAST_Z_BUF_ERROR)) {
                plan.stats.zlibDataError.wrappingAdd(1, ordering: .relaxed)
                s.pointee.inflateStopped = true
                return
            }
            if written == room {
                if s.pointee.inflateOut > plan.maxInflateRatio * s.pointee.inflateIn {
                    plan.stats.zlibDataError.wrappingAdd(1, ordering: .relaxed)
                    s.pointee.inflateStopped = true
                    return
                }
                continue  // more output may be waiting
            }
            if offset >= input.count { return }
        }
    }
}
