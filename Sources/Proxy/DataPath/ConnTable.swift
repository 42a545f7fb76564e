/// Per-worker connection storage with stable addresses: elements live in fixed chunks that never
/// move, so a pointer taken from `pointer(_:)` stays valid across inserts (the data path holds a
/// downstream's pointer while it opens upstream connections, and the other way round).
///
/// A token packs the slot (bits 0-23), the slot's generation (bits 24-55) and a kind tag
/// (bits 56-59, fixed per table) so completions and timers of both tables can share one handler:
/// `ConnToken.kind(token)` says which table a token belongs to. A token whose generation no
/// longer matches belongs to a connection that is gone, and is ignored. One loop thread only.
struct ConnTable<Element>: ~Copyable {
    static var chunkShift: Int { 10 }
    static var chunkSize: Int { 1 << chunkShift }

    private var chunks: UnsafeMutablePointer<UnsafeMutablePointer<Element>>
    private var generations: UnsafeMutablePointer<UnsafeMutablePointer<UInt32>>
    private var chunkCount = 0
    private var chunkCapacity = 64
    private var freeSlots: [Int32] = []
    private let empty: Element
    let kind: UInt64
    private(set) var liveCount = 0

    init(kind: ConnKind, empty: Element) {
        self.kind = kind.rawValue
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
        kind << 56 | UInt64(generation) << 24 | UInt64(slot)
    }

    /// Stores `value` in a free slot and returns its token.
    mutating func insert(_ value: Element) -> UInt64 {
        if freeSlots.isEmpty {
            precondition(chunkCount < (1 << (24 - Self.chunkShift)), "too many connections for one worker")
            addChunk()
        }
        let slot = Int(freeSlots.removeLast())
        let g = generations[slot >> Self.chunkShift] + (slot & (Self.chunkSize - 1))
        g.pointee &+= 1
        chunks[slot >> Self.chunkShift][slot & (Self.chunkSize - 1)] = value
        liveCount += 1
        return token(slot: slot, generation: g.pointee)
    }

    /// The element of a live token, or nil when the token is stale or of another table.
    @inline(__always)
    func pointer(_ token: UInt64) -> UnsafeMutablePointer<Element>? {
        let slot = Int(token & 0xFF_FFFF)
        let chunk = slot >> Self.chunkShift
        guard token >> 56 == kind, chunk < chunkCount,
              generations[chunk][slot & (Self.chunkSize - 1)] == UInt32(truncatingIfNeeded: token >> 24) else { return nil }
        return chunks[chunk] + (slot & (Self.chunkSize - 1))
    }

    /// Frees the slot of a live token; outstanding tokens for it go stale at once.
    mutating func remove(_ token: UInt64) {
        guard let p = pointer(token) else { return }
        let slot = Int(token & 0xFF_FFFF)
        generations[slot >> Self.chunkShift][slot & (Self.chunkSize - 1)] &+= 1
        p.pointee = empty
        freeSlots.append(Int32(slot))
        liveCount -= 1
    }

    /// Tokens of every live element (not for the hot path: allocates).
    func liveTokens() -> [UInt64] {
        var isFree = [Bool](repeating: false, count: chunkCount << Self.chunkShift)
        for s in freeSlots { isFree[Int(s)] = true }
        var out: [UInt64] = []
        for slot in 0..<isFree.count where !isFree[slot] {
            out.append(token(slot: slot, generation: generations[slot >> Self.chunkShift][slot & (Self.chunkSize - 1)]))
        }
        return out
    }
}

/// What a token names; the tag in bits 56-59. The listener token of `WorkerSeat` has 0xF there.
enum ConnKind: UInt64 {
    case downstream = 1
    case upstream = 2
    case tcpDownstream = 3
    case tcpUpstream = 4
    /// Streams (`Stream`): their tokens name no socket, so no completion or timer carries one.
    case stream = 5
}

enum ConnToken {
    @inline(__always)
    static func kind(_ token: UInt64) -> UInt64 { (token >> 56) & 0xF }
}
