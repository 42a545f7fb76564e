/// A binary min-heap of (deadline, id): schedule and pop in O(log n), no allocation once grown.
///
/// There is no cancel: an id names what the timer is for (for example a connection slot and its
/// generation), and the handler ignores a timer whose subject has moved on. A connection keeps at
/// most one timer in the heap and re-arms it when it fires early, so the heap stays small.
public struct TimerHeap: ~Copyable {
    @usableFromInline var deadlines: UnsafeMutablePointer<Int64>
    @usableFromInline var ids: UnsafeMutablePointer<UInt64>
    @usableFromInline var capacity: Int
    public private(set) var count = 0

    public init(capacity: Int = 1024) {
        self.capacity = max(16, capacity)
        deadlines = .allocate(capacity: self.capacity)
        ids = .allocate(capacity: self.capacity)
    }

    deinit {
        deadlines.deallocate()
        ids.deallocate()
    }

    /// The earliest deadline, or nil.
    @inlinable public var nextDeadline: Int64? { count > 0 ? deadlines[0] : nil }

    public mutating func schedule(at deadline: Int64, id: UInt64) {
        if count == capacity { grow() }
        var i = count
        count += 1
        while i > 0 {
            let parent = (i - 1) / 2
            if deadlines[parent] <= deadline { break }
            deadlines[i] = deadlines[parent]
            ids[i] = ids[parent]
            i = parent
        }
        deadlines[i] = deadline
        ids[i] = id
    }

    /// Removes and returns the id of the earliest timer if it is due at `now`.
    public mutating func popExpired(now: Int64) -> UInt64? {
        guard count > 0, deadlines[0] <= now else { return nil }
        let id = ids[0]
        count -= 1
        if count > 0 {
            let lastDeadline = deadlines[count]
            let lastID = ids[count]
            var i = 0
            while true {
                let left = 2 * i + 1
                if left >= count { break }
                let right = left + 1
                let child = right < count && deadlines[right] < deadlines[left] ? right : left
                if deadlines[child] >= lastDeadline { break }
                deadlines[i] = deadlines[child]
                ids[i] = ids[child]
                i = child
            }
            deadlines[i] = lastDeadline
            ids[i] = lastID
        }
        return id
    }

    private mutating func grow() {
        let newCapacity = capacity * 2
        let nd = UnsafeMutablePointer<Int64>.allocate(capacity: newCapacity)
        let ni = UnsafeMutablePointer<UInt64>.allocate(capacity: newCapacity)
        nd.update(from: deadlines, count: count)
        ni.update(from: ids, count: count)
        deadlines.deallocate()
        ids.deallocate()
        deadlines = nd
        ids = ni
        capacity = newCapacity
    }
}
