/// Per-connection (and per-stream) storage with stable addresses and generation-checked tokens:
/// the one slab type of the data path (the proxy worker's tables, the echo server's connections).
///
/// Elements live in fixed chunks of 1,024 that never move, so a pointer from `pointer(_:)` stays
/// valid across inserts until its element is removed (the proxy holds a downstream's pointer
/// while it opens upstream connections, and the other way round). A pointer to a part of an
/// element is derived from the element's address, never returned out of a `withUnsafe…` closure.
///
/// A token is `kind << 60 | tag << 56 | generation << 24 | slot`: the slot (24 bits), the slot's
/// full 32-bit generation (bumped on insert and on remove, so a completion or timer whose token's
/// generation no longer matches belongs to something gone and is ignored), a 4-bit tag the slab
/// leaves 0 for its owner's use (see `SlabToken.withTag`) and ignores in lookups, and the slab's
/// kind (4 bits, 1...15, fixed per slab) so that tokens of several slabs can share one handler.
/// Kind 0 is never a slab's, so a token with kind 0 (such as `WorkerSeat.listenerToken`) names
/// no element. Grows by one chunk at a time; the steady state allocates nothing. One loop thread only.
public struct Slab<Element>: ~Copyable {
    public static var chunkShift: Int { 10 }
    public static var chunkSize: Int { 1 << chunkShift }

    @usableFromInline var chunks: UnsafeMutablePointer<UnsafeMutablePointer<Element>>
    @usableFromInline var generations: UnsafeMutablePointer<UnsafeMutablePointer<UInt32>>
    @usableFromInline var chunkCount = 0
    private var chunkCapacity = 64
    private var freeSlots: [Int32] = []
    private let empty: Element
    @usableFromInline let kind: UInt64
    public private(set) var liveCount = 0

    public init(kind: UInt8, empty: Element) {
        precondition(kind >= 1 && kind <= 15, "a slab's kind is 1...15")
        self.kind = UInt64(kind)
        self.empty = empty
        chunks = .allocate(capacity: chunkCapacity)
        generations = .allocate(capacity: chunkCapacity)
        freeSlots.reserveCapacity(Self.chunkSize)
        addChunk()
    }

    deinit {
        for i in 0..<chunkCount {
            chunks[i].deinitialize(count: Self.chunkSize)
            chunks[i].deallocate()
            generations[i].deallocate()
        }
        chunks.deallocate()
        generations.deallocate()
    }

    private mutating func addChunk() {
        if chunkCount == chunkCapacity {
            let nc = UnsafeMutablePointer<UnsafeMutablePointer<Element>>.allocate(capacity: chunkCapacity * 2)
            nc.moveInitialize(from: chunks, count: chunkCount)
            chunks.deallocate()
            chunks = nc
            let ng = UnsafeMutablePointer<UnsafeMutablePointer<UInt32>>.allocate(capacity: chunkCapacity * 2)
            ng.moveInitialize(from: generations, count: chunkCount)
            generations.deallocate()
            generations = ng
            chunkCapacity *= 2
        }
        let e = UnsafeMutablePointer<Element>.allocate(capacity: Self.chunkSize)
        e.initialize(repeating: empty, count: Self.chunkSize)
        let g = UnsafeMutablePointer<UInt32>.allocate(capacity: Self.chunkSize)
        g.initialize(repeating: 0, count: Self.chunkSize)
        (chunks + chunkCount).initialize(to: e)
        (generations + chunkCount).initialize(to: g)
        let base = chunkCount << Self.chunkShift
        chunkCount += 1
        freeSlots.reserveCapacity(chunkCount << Self.chunkShift)
        for i in stride(from: Self.chunkSize - 1, through: 0, by: -1) { freeSlots.append(Int32(base + i)) }
    }

    @inline(__always)
    private func token(slot: Int, generation: UInt32) -> UInt64 {
        kind << 60 | UInt64(generation) << 24 | UInt64(slot)
    }

    /// Stores `value` in a free slot and returns its token.
    public mutating func insert(_ value: Element) -> UInt64 {
        if freeSlots.isEmpty {
            precondition(chunkCount < (1 << (24 - Self.chunkShift)), "more than 16M elements in one slab")
            addChunk()
        }
        let slot = Int(freeSlots.removeLast())
        let g = generations[slot >> Self.chunkShift] + (slot & (Self.chunkSize - 1))
        g.pointee &+= 1
        chunks[slot >> Self.chunkShift][slot & (Self.chunkSize - 1)] = value
        liveCount += 1
        return token(slot: slot, generation: g.pointee)
    }

    /// The element of a live token (its tag is ignored), or nil when the token is stale or of
    /// another slab.
    @inlinable @inline(__always)
    public func pointer(_ token: UInt64) -> UnsafeMutablePointer<Element>? {
        let slot = Int(token & 0xFF_FFFF)
        let chunk = slot >> Self.chunkShift
        guard token >> 60 == kind, chunk < chunkCount,
              generations[chunk][slot & (Self.chunkSize - 1)] == UInt32(truncatingIfNeeded: token >> 24) else { return nil }
        return chunks[chunk] + (slot & (Self.chunkSize - 1))
    }

    /// Frees the slot of a live token; outstanding tokens for it go stale at once.
    public mutating func remove(_ token: UInt64) {
        guard let p = pointer(token) else { return }
        let slot = Int(token & 0xFF_FFFF)
        generations[slot >> Self.chunkShift][slot & (Self.chunkSize - 1)] &+= 1
        p.pointee = empty
        freeSlots.append(Int32(slot))
        liveCount -= 1
    }

    /// Tokens of every live element (not for the hot path: allocates).
    public func liveTokens() -> [UInt64] {
        var isFree = [Bool](repeating: false, count: chunkCount << Self.chunkShift)
        for s in freeSlots { isFree[Int(s)] = true }
        var out: [UInt64] = []
        for slot in 0..<isFree.count where !isFree[slot] {
            out.append(token(slot: slot, generation: generations[slot >> Self.chunkShift][slot & (Self.chunkSize - 1)]))
        }
        return out
    }

    /// Calls `body` with the token of every live element (not for the hot path).
    public func forEachToken(_ body: (UInt64) -> Void) {
        for t in liveTokens() { body(t) }
    }
}

/// The fields of a `Slab` token that its users read or set.
public enum SlabToken {
    /// The kind of the slab that issued the token (bits 60-63).
    @inlinable @inline(__always)
    public static func kind(_ token: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: token >> 60) }

    /// The same element's token as another slab kind would name it (for a second socket of one
    /// element, such as a tcp_proxy session's upstream side).
    @inlinable @inline(__always)
    public static func withKind(_ kind: UInt8, _ token: UInt64) -> UInt64 {
        (token & ~(0xF << 60)) | UInt64(kind & 0xF) << 60
    }

    /// The owner's 4-bit tag (bits 56-59), which lookups ignore.
    @inlinable @inline(__always)
    public static func tag(_ token: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: (token >> 56) & 0xF) }

    /// The token with its tag set (a timer id that also says which timer it is).
    @inlinable @inline(__always)
    public static func withTag(_ tag: UInt8, _ token: UInt64) -> UInt64 {
        (token & ~(0xF << 56)) | UInt64(tag & 0xF) << 56
    }
}
