/// A growable byte buffer the access-log thread formats lines into and reuses for every line
/// and batch: after warm-up it never allocates (it only grows, and lines are small).
final class AccessLogBytes {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var capacity: Int
    var count = 0

    init(capacity: Int = 4096) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    var last: UInt8? { count > 0 ? base[count - 1] : nil }

    @inline(__always)
    func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    private func grow(_ needed: Int) {
        var size = capacity * 2
        while size < needed { size *= 2 }
        let fresh = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        fresh.update(from: base, count: count)
        base.deallocate()
        base = fresh
        capacity = size
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    func append(_ raw: UnsafeRawBufferPointer) {
        guard let from = raw.baseAddress, raw.count > 0 else { return }
        reserve(raw.count)
        UnsafeMutableRawPointer(base + count).copyMemory(from: from, byteCount: raw.count)
        count += raw.count
    }

    func append(_ array: [UInt8]) { array.withUnsafeBytes { append($0) } }

    func append(_ other: AccessLogBytes, from start: Int = 0) {
        append(UnsafeRawBufferPointer(start: other.base + start, count: other.count - start))
    }

    /// Decimal digits of `value` (negative numbers with a minus sign).
    func appendDecimal(_ value: Int) {
        reserve(21)
        var v = value
        if v < 0 {
            base[count] = 0x2D
            count += 1
            if v == .min {  // cannot be negated
                for b in "9223372036854775808".utf8 { base[count] = b; count += 1 }
                return
            }
            v = -v
        }
        var digits = 1
        var probe = v
        while probe >= 10 { probe /= 10; digits += 1 }
        var i = count + digits - 1
        repeat {
            base[i] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
            v /= 10
            i -= 1
        } while v > 0
        count += digits
    }

    /// `value` as exactly `width` digits, zero-padded (the value must fit).
    func appendPadded(_ value: Int, width: Int) {
        reserve(width)
        var v = value
        var i = count + width - 1
        while i >= count {
            base[i] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
            v /= 10
            i -= 1
        }
        count += width
    }

    /// Whether the bytes from `start` are plain ASCII without CR (so one byte is one Character).
    func isSimpleASCII(from start: Int) -> Bool {
        var i = start
        while i < count {
            if base[i] >= 0x80 || base[i] == 0x0D { return false }
            i += 1
        }
        return true
    }

    func string(from start: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: base + start, count: count - start), as: UTF8.self)
    }

    func replace(from start: Int, with text: String) {
        count = start
        var copy = text
        copy.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }
}
