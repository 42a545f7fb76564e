/// Per-fd state indexed by fd number (fds are small dense integers). Grows by doubling when an
/// fd beyond its capacity appears, which happens only while the connection count grows: the steady
/// state allocates nothing.
@usableFromInline
struct FDTable<Entry> {
    @usableFromInline var base: UnsafeMutablePointer<Entry>
    @usableFromInline var capacity: Int
    @usableFromInline let empty: Entry

    init(initialCapacity: Int, empty: Entry) {
        self.capacity = max(64, initialCapacity)
        self.base = .allocate(capacity: capacity)
        self.base.initialize(repeating: empty, count: capacity)
        self.empty = empty
    }

    /// The entry for `fd`, growing the table when needed.
    @inlinable
    mutating func pointer(_ fd: Int32) -> UnsafeMutablePointer<Entry> {
        let i = Int(fd)
        if i >= capacity { grow(to: i + 1) }
        return base + i
    }

    @usableFromInline
    mutating func grow(to needed: Int) {
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<Entry>.allocate(capacity: newCapacity)
        newBase.moveInitialize(from: base, count: capacity)
        (newBase + capacity).initialize(repeating: empty, count: newCapacity - capacity)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    func deallocate() {
        base.deinitialize(count: capacity)
        base.deallocate()
    }
}

/// A growable FIFO of fds with unsafe storage (no Array uniqueness checks on the hot path).
@usableFromInline
struct FDQueue {
    @usableFromInline var items: UnsafeMutablePointer<Int32>
    @usableFromInline var capacity: Int
    @usableFromInline var head = 0
    @usableFromInline var count = 0

    init(capacity: Int) {
        self.capacity = capacity
        self.items = .allocate(capacity: capacity)
    }

    @inlinable
    mutating func push(_ fd: Int32) {
        if count == capacity { grow() }
        items[(head + count) % capacity] = fd
        count += 1
    }

    @inlinable
    mutating func pop() -> Int32 {
        let fd = items[head]
        head = (head + 1) % capacity
        count -= 1
        return fd
    }

    @usableFromInline
    mutating func grow() {
        let newItems = UnsafeMutablePointer<Int32>.allocate(capacity: capacity * 2)
        for i in 0..<count { newItems[i] = items[(head + i) % capacity] }
        items.deallocate()
        items = newItems
        head = 0
        capacity *= 2
    }

    func deallocate() { items.deallocate() }
}

/// Fixed-size receive buffers carved out of one allocation.
@usableFromInline
struct BufferArena {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let bufferSize: Int
    @usableFromInline let count: Int

    init(count: Int, bufferSize: Int) {
        self.count = count
        self.bufferSize = bufferSize
        self.base = .allocate(byteCount: count * bufferSize, alignment: 4096)
    }

    @inlinable
    func buffer(_ index: Int) -> UnsafeMutableRawPointer { base + index * bufferSize }

    func deallocate() { base.deallocate() }
}
