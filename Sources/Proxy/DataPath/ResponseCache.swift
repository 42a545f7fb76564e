import EventLoop
import Glibc
import HTTP1

/// One worker's store of cached responses (the cache filter's simple in-memory cache). Envoy's
/// simple cache is one map shared by all workers under a mutex, without a bound; Ballast's hot
/// path takes no locks, so each worker keeps its own, bounded in entries and bytes, evicting the
/// least recently used (docs/cache.md). Used on its worker's loop thread only.
///
/// An entry is one pool buffer: the key (host, 0, path), the stored field lines (`name: value\r\n`
/// each, as the client got them before the connection manager's date/server/framing), then the body.
final class ResponseCache {
    struct Entry {
        var buffer = ByteBuffer.empty
        var keyHash: UInt64 = 0
        var keyLength = 0
        var headLength = 0
        var status: Int32 = 0
        /// Wall-clock nanoseconds when the response (or its last validation) arrived.
        var responseTime: Int64 = 0
        /// The stored `date` in seconds (nil: none or invalid, so the entry is always stale).
        var date: Int64? = nil
        /// The stored `age` value in seconds (0 when none).
        var ageValue: Int64 = 0
        /// The freshness lifetime in seconds: s-maxage / max-age, else expires - date.
        var lifetime: Int64 = 0
        var mustValidate = false
        var noStale = false
        /// Field ranges in the stored head (relative to its start): age (its value), etag and
        /// last-modified (values), date (value).
        var ageValueRange: Range<Int>? = nil
        var etag: Range<Int>? = nil
        var lastModified: Range<Int>? = nil
        var dateValue: Range<Int>? = nil
        var hasContentLength = false
        /// The response varies: the request's allowed-vary-header digest it was stored under.
        var vary: UInt64? = nil
        /// Complete and findable (a filling entry is not).
        var committed = false
        /// Bumped whenever the slot is reused (a stream validating it checks it is still the same).
        var generation: UInt32 = 0
        var newer: Int32 = -1
        var older: Int32 = -1

        var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: buffer.base, count: keyLength) }
        var head: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: buffer.base.map { $0 + keyLength }, count: headLength) }
        var body: UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: buffer.base.map { $0 + keyLength + headLength }, count: buffer.count - keyLength - headLength)
        }
    }

    /// At most this many bytes of entries per worker (buffer capacities), and this many entries.
    static let byteLimit = 64 << 20
    static let entryLimit = 4096
    /// No single entry's body above this (or the filter's `max_body_bytes` when smaller).
    static let bodyLimit = 8 << 20

    let pool: BufferPool
    private(set) var entries: [Entry] = []
    private var free: [Int32] = []
    private var index: [UInt64: Int32] = [:]
    private var newest: Int32 = -1
    private var oldest: Int32 = -1
    private(set) var bytes = 0
    private(set) var committedCount = 0
    /// Counters for the admin's view and the tests (Envoy 1.40's cache filter has no stats).
    private(set) var evictions = 0

    init(pool: BufferPool) {
        self.pool = pool
        index.reserveCapacity(Self.entryLimit)
    }

    static func hash(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, into h: inout UInt64) {
        for i in r { h = (h ^ UInt64(b[i])) &* 0x100000001b3 }
    }

    /// The committed entry for a key, or nil.
    func find(hash: UInt64, host: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer) -> Int32? {
        guard let i = index[hash] else { return nil }
        let key = entries[Int(i)].key
        guard key.count == host.count + 1 + path.count,
              memcmp(key.baseAddress!, host.baseAddress ?? key.baseAddress!, host.count) == 0,
              key[host.count] == 0,
              path.count == 0 || memcmp(key.baseAddress! + host.count + 1, path.baseAddress!, path.count) == 0 else { return nil }
        touch(i)
        return i
    }

    /// An entry by index (read, or changed in place).
    subscript(i: Int32) -> Entry {
        get { entries[Int(i)] }
        _modify { yield &entries[Int(i)] }
    }

    /// A new entry being filled (not findable until `commit`): its key, then room for the head.
    func begin(hash: UInt64, host: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer) -> Int32? {
        var buffer = ByteBuffer.empty
        let zero: UInt8 = 0
        guard pool.append(host, to: &buffer), withUnsafeBytes(of: zero, { pool.append($0, to: &buffer) }),
              pool.append(path, to: &buffer) else {
            pool.release(&buffer)
            return nil
        }
        let i: Int32
        if let f = free.popLast() {
            i = f
            let generation = entries[Int(i)].generation &+ 1
            entries[Int(i)] = Entry()
            entries[Int(i)].generation = generation
        } else {
            i = Int32(entries.count)
            entries.append(Entry())
        }
        entries[Int(i)].buffer = buffer
        entries[Int(i)].keyHash = hash
        entries[Int(i)].keyLength = buffer.count
        return i
    }

    /// Appends body bytes to a filling entry; false when it outgrew `limit` (the caller abandons it).
    func append(_ i: Int32, _ data: UnsafeRawBufferPointer, limit: Int) -> Bool {
        guard entries[Int(i)].body.count + data.count <= limit else { return false }
        return data.count == 0 || pool.append(data, to: &entries[Int(i)].buffer)
    }

    /// Makes a filled entry findable, replacing an older one for its key; evicts the least
    /// recently used entries while over a bound.
    func commit(_ i: Int32) {
        let keyHash = entries[Int(i)].keyHash
        if let old = index[keyHash] { remove(old) }
        entries[Int(i)].committed = true
        index[keyHash] = i
        bytes += entries[Int(i)].buffer.capacity
        committedCount += 1
        link(i)
        while (bytes > Self.byteLimit || committedCount > Self.entryLimit) && oldest >= 0 && oldest != i {
            remove(oldest)
            evictions += 1
        }
    }

    /// Drops an entry (committed or filling).
    func remove(_ i: Int32) {
        if entries[Int(i)].committed {
            let keyHash = entries[Int(i)].keyHash
            if index[keyHash] == i { index[keyHash] = nil }
            unlink(i)
            bytes -= entries[Int(i)].buffer.capacity
            committedCount -= 1
        }
        pool.release(&entries[Int(i)].buffer)
        entries[Int(i)].committed = false
        entries[Int(i)].generation &+= 1
        free.append(i)
    }

    /// Replaces a committed entry's buffer (headers updated by a validation), keeping its place.
    func replaceBuffer(_ i: Int32, with buffer: inout ByteBuffer) {
        bytes += buffer.capacity - entries[Int(i)].buffer.capacity
        pool.release(&entries[Int(i)].buffer)
        entries[Int(i)].buffer = buffer
        buffer = .empty
    }

    private func touch(_ i: Int32) {
        guard newest != i else { return }
        unlink(i)
        link(i)
    }

    private func link(_ i: Int32) {
        entries[Int(i)].older = newest
        entries[Int(i)].newer = -1
        if newest >= 0 { entries[Int(newest)].newer = i }
        newest = i
        if oldest < 0 { oldest = i }
    }

    private func unlink(_ i: Int32) {
        let (newer, older) = (entries[Int(i)].newer, entries[Int(i)].older)
        if newer >= 0 { entries[Int(newer)].older = older } else { newest = older }
        if older >= 0 { entries[Int(older)].newer = newer } else { oldest = newer }
        entries[Int(i)].newer = -1
        entries[Int(i)].older = -1
    }

    func freeAll() {
        for i in entries.indices where entries[i].buffer.isAllocated { pool.release(&entries[i].buffer) }
    }
}

extension ResponseCache.Entry {
    /// Reads the stored head's facts (after it was written or replaced): date, age, freshness,
    /// validators, framing.
    mutating func readHead(varyDigest: UInt64?) {
        let h = head
        var cacheControl = ResponseCacheControl()
        var expires: Int64? = nil
        var hasExpires = false
        date = nil
        ageValue = 0
        ageValueRange = nil
        etag = nil
        lastModified = nil
        dateValue = nil
        hasContentLength = false
        vary = nil
        var fields = FieldLines(h)
        while let f = fields.next() {
            switch f.name.count {
            case 13 where ASCII.equalsCaseInsensitive(h, f.name, "cache-control"):
                cacheControl = ResponseCacheControl(h, f.value)
            case 4 where ASCII.equalsCaseInsensitive(h, f.name, "date"):
                date = HTTPDateField.parse(h, f.value)
                dateValue = f.value
            case 7 where ASCII.equalsCaseInsensitive(h, f.name, "expires"):
                hasExpires = true
                expires = HTTPDateField.parse(h, f.value)
            case 3 where ASCII.equalsCaseInsensitive(h, f.name, "age"):
                // Bounded (about 68 years) so the age arithmetic in nanoseconds cannot overflow.
                ageValue = Int64(min(ASCII.parseDecimal(h, f.value) ?? 0, Int(Int32.max)))
                ageValueRange = f.value
            case 4 where ASCII.equalsCaseInsensitive(h, f.name, "etag"):
                etag = f.value
            case 13 where ASCII.equalsCaseInsensitive(h, f.name, "last-modified"):
                lastModified = f.value
            case 14 where ASCII.equalsCaseInsensitive(h, f.name, "content-length"):
                hasContentLength = true
            case 4 where ASCII.equalsCaseInsensitive(h, f.name, "vary"):
                vary = varyDigest
            default:
                break
            }
        }
        mustValidate = cacheControl.mustValidate
        noStale = cacheControl.noStale
        if let maxAge = cacheControl.maxAge {
            lifetime = maxAge
        } else if hasExpires, let date, let expires {
            lifetime = expires - date
        } else {
            lifetime = 0
        }
    }

    /// The current age in seconds (RFC 9111 4.2.3, as Envoy computes it: apparent age from date,
    /// the stored age, plus the time resident here).
    func age(now: Int64) -> Int64 {
        let dateNanos = (date ?? 0) * 1_000_000_000
        let apparent = max(0, responseTime - dateNanos)
        let initial = max(apparent, ageValue * 1_000_000_000)
        return (initial + (now - responseTime)) / 1_000_000_000
    }

    /// Envoy's `requiresValidation` for this entry and a request's directives.
    func requiresValidation(_ request: RequestCacheControl, age: Int64) -> Bool {
        if mustValidate || request.mustValidate { return true }
        if let maxAge = request.maxAge, maxAge < age { return true }
        if age > lifetime {
            let allowedStale = request.maxStale.map { $0 > age - lifetime } ?? false
            return noStale || !allowedStale
        }
        if let minFresh = request.minFresh, minFresh > lifetime - age { return true }
        return false
    }
}

/// Iterates `name: value\r\n` lines of a stored head (no allocation).
struct FieldLines {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func next() -> (name: Range<Int>, value: Range<Int>, line: Range<Int>)? {
        let start = offset
        guard start < bytes.count else { return nil }
        var colon = -1
        var i = start
        while i + 1 < bytes.count && !(bytes[i] == ASCII.cr && bytes[i + 1] == ASCII.lf) {
            if colon < 0 && bytes[i] == UInt8(ascii: ":") { colon = i }
            i += 1
        }
        let end = min(i + 2, bytes.count)
        offset = end
        guard colon >= 0 else { return next() }
        return (start..<colon, ASCII.trimWhitespace(bytes, (colon + 1)..<i), start..<end)
    }
}
