/// Fixed-address storage for per-connection state, indexed by slot, with a generation per slot.
/// A token packs (generation << 32 | slot): a completion or timer whose token's generation no longer
/// matches belongs to a connection that is gone, and is ignored. Grows by doubling while the
/// connection count grows; the steady state allocates nothing. One loop thread only.
public struct Slab<Element>: ~Copyable {
    @usableFromInline var elements: UnsafeMutablePointer<Element>
    @usableFromInline var generations: UnsafeMutablePointer<UInt32>
    @usableFromInline var freeSlots: UnsafeMutablePointer<Int32>
    @usableFromInline var freeCount = 0
    @usableFromInline var capacity: Int
    @usableFromInline let empty: Element
    public private(set) var liveCount = 0

    public init(capacity: Int = 1024, empty: Element) {
        self.capacity = max(16, capacity)
        self.empty = empty
        elements = .allocate(capacity: self.capacity)
        elements.initialize(repeating: empty, count: self.capacity)
        generations = .allocate(capacity: self.capacity)
        generations.initialize(repeating: 0, count: self.capacity)
        freeSlots = .allocate(capacity: self.capacity)
        for i in 0..<self.capacity { freeSlots[i] = Int32(self.capacity - 1 - i) }
        freeCount = self.capacity
    }

    deinit {
        elements.deinitialize(count: capacity)
        elements.deallocate()
        generations.deallocate()
        freeSlots.deallocate()
    }

    /// Takes a free slot, stores `value` there and returns its token.
    public mutating func insert(_ value: Element) -> UInt64 {
        if freeCount == 0 { grow() }
        freeCount -= 1
        let slot = Int(freeSlots[freeCount])
        generations[slot] &+= 1
        elements[slot] = value
        liveCount += 1
        return UInt64(generations[slot]) << 32 | UInt64(slot)
    }

    /// The element for a token, or nil when the token is stale.
    @inlinable
    public func pointer(_ token: UInt64) -> UnsafeMutablePointer<Element>? {
        let slot = Int(UInt32(truncatingIfNeeded: token))
        guard slot < capacity, generations[slot] == UInt32(truncatingIfNeeded: token >> 32) else { return nil }
        return elements + slot
    }

    /// Frees the slot of a live token (its element is reset to the empty value).
    public mutating func remove(_ token: UInt64) {
        let slot = Int(UInt32(truncatingIfNeeded: token))
        guard slot < capacity, generations[slot] == UInt32(truncatingIfNeeded: token >> 32) else { return }
        generations[slot] &+= 1  // outstanding tokens go stale at once
        elements[slot] = empty
        freeSlots[freeCount] = Int32(slot)
        freeCount += 1
        liveCount -= 1
    }

    /// Calls `body` with the token of every live element.
    public func forEachToken(_ body: (UInt64) -> Void) {
        var isFree = [Bool](repeating: false, count: capacity)
        for i in 0..<freeCount { isFree[Int(freeSlots[i])] = true }
        for slot in 0..<capacity where !isFree[slot] {
            body(UInt64(generations[slot]) << 32 | UInt64(slot))
        }
    }

    private mutating func grow() {
        let newCapacity = capacity * 2
        let ne = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        ne.moveInitialize(from: elements, count: capacity)
        (ne + capacity).initialize(repeating: empty, count: newCapacity - capacity)
        elements.deallocate()
        elements = ne
        let ng = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity)
        ng.moveInitialize(from: generations, count: capacity)
        (ng + capacity).initialize(repeating: 0, count: newCapacity - capacity)
        generations.deallocate()
        generations = ng
        let nf = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
        for i in 0..<(newCapacity - capacity) { nf[i] = Int32(newCapacity - 1 - i) }
        freeSlots.deallocate()
        freeSlots = nf
        freeCount = newCapacity - capacity
        capacity = newCapacity
    }
}
