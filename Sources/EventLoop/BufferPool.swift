/// A byte buffer owned by exactly one connection at a time. Plain value: the owner returns it to
/// the pool it came from; copying the struct does not copy the bytes. 16 bytes: the pool's buffers
/// are at most 32 MiB, so the sizes are stored in 32 bits (every idle connection carries several
/// empty buffers, and their size is per-connection memory).
public struct ByteBuffer {
    @inlinable public init(base: UnsafeMutableRawPointer?, capacity: Int, count: Int) {
        self.base = base
        self.storedCapacity = Int32(capacity)
        self.storedCount = Int32(count)
    }

    public var base: UnsafeMutableRawPointer?
    @usableFromInline var storedCapacity: Int32
    @usableFromInline var storedCount: Int32

    @inlinable public var capacity: Int {
        get { Int(storedCapacity) }
        set { storedCapacity = Int32(newValue) }
    }

    /// Bytes in use, from `base`.
    @inlinable public var count: Int {
        get { Int(storedCount) }
        set { storedCount = Int32(newValue) }
    }

    @inlinable public static var empty: ByteBuffer { ByteBuffer(base: nil, capacity: 0, count: 0) }

    @inlinable public var isAllocated: Bool { base != nil }
    @inlinable public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    @inlinable public var freeSpace: Int { capacity - count }
}

/// Per-loop pool of power-of-two byte buffers (4 KiB to 32 MiB). Not thread-safe: one loop uses it.
/// Released buffers are kept on free lists (up to `keepPerClass` each), so a steady workload
/// allocates nothing; idle connections hold no buffers at all.
public final class BufferPool {
    public static let minimumSize = 4096
    public static let maximumSize = 32 << 20
    private var freeLists: [[UnsafeMutableRawPointer]]
    private let keepPerClass: Int
    public private(set) var bytesOutstanding = 0

    public init(keepPerClass: Int = 256) {
        self.keepPerClass = keepPerClass
        var lists: [[UnsafeMutableRawPointer]] = []
        var size = Self.minimumSize
        while size <= Self.maximumSize {
            lists.append([])
            lists[lists.count - 1].reserveCapacity(keepPerClass)
            size *= 2
        }
        freeLists = lists
    }

    deinit {
        for list in freeLists { for p in list { p.deallocate() } }
    }

    @inline(__always)
    private func sizeClass(for bytes: Int) -> (index: Int, size: Int) {
        var size = Self.minimumSize
        var index = 0
        while size < bytes { size &*= 2; index += 1 }
        return (index, size)
    }

    /// A buffer with at least `minimumCapacity` bytes (capped at `maximumSize`), count 0.
    public func acquire(minimumCapacity: Int) -> ByteBuffer {
        let (index, size) = sizeClass(for: min(max(minimumCapacity, 1), Self.maximumSize))
        bytesOutstanding += size
        if let p = freeLists[index].popLast() {
            return ByteBuffer(base: p, capacity: size, count: 0)
        }
        return ByteBuffer(base: .allocate(byteCount: size, alignment: 16), capacity: size, count: 0)
    }

    /// Gives a buffer back; `buffer` becomes empty.
    public func release(_ buffer: inout ByteBuffer) {
        guard let base = buffer.base else { return }
        let (index, size) = sizeClass(for: buffer.capacity)
        bytesOutstanding -= size
        if size == buffer.capacity && freeLists[index].count < keepPerClass {
            freeLists[index].append(base)
        } else {
            base.deallocate()
        }
        buffer = .empty
    }

    /// Appends bytes, moving to a larger buffer when needed. Returns false when the result would
    /// exceed `maximumSize` (the caller treats that as an overflow of its own limit).
    public func append(_ bytes: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) -> Bool {
        guard bytes.count > 0 else { return true }
        guard let target = reserve(bytes.count, in: &buffer) else { return false }
        target.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        buffer.count += bytes.count
        return true
    }

    /// Makes room for `extra` more bytes and returns where to write them (then add to `count`).
    public func reserve(_ extra: Int, in buffer: inout ByteBuffer) -> UnsafeMutableRawPointer? {
        let needed = buffer.count + extra
        if needed > buffer.capacity {
            guard needed <= Self.maximumSize else { return nil }
            var bigger = acquire(minimumCapacity: needed)
            if let old = buffer.base, buffer.count > 0 {
                bigger.base!.copyMemory(from: old, byteCount: buffer.count)
            }
            bigger.count = buffer.count
            release(&buffer)
            buffer = bigger
        }
        return buffer.base! + buffer.count
    }

    /// Drops the first `n` bytes, moving the rest to the front.
    public static func consume(_ n: Int, from buffer: inout ByteBuffer) {
        guard n > 0 else { return }
        let rest = buffer.count - n
        if rest > 0, let base = buffer.base {
            base.copyMemory(from: base + n, byteCount: rest)
        }
        buffer.count = rest
    }
}
