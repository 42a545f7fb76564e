import CBallast
import Glibc

/// The io_uring provided-buffer ring that multishot receives pick their buffers from, refilled
/// last-in first-out from a small window.
///
/// The kernel takes buffers from the ring's head in the order they were posted, so a ring holding
/// every buffer of the arena walks the whole arena: each receive lands on a page no receive touched
/// yet until all of them were (512 x 16 KiB per loop, ~2 MiB of first pages, paid by the first
/// thousand idle connections). Here only `window` buffers are posted at a time, and the buffers that
/// come back at the end of a turn go onto a stack and are posted again first, so receives keep
/// landing on the same hot pages. The window doubles (up to the arena) whenever a receive found the
/// ring empty (`-ENOBUFS`; the backend re-arms that receive after the refill), so a busy loop gets
/// the buffers it needs after a few turns; it never shrinks (its pages are resident by then).
struct ReceiveBufferRing {
    private let ring: UnsafeMutablePointer<io_uring_buf_ring>
    private let ringBytes: Int
    private let mask: Int32
    private let arena: BufferArena
    /// Buffer ids not posted and not lent: the top (`free[freeCount - 1]`) was returned last.
    private let free: UnsafeMutablePointer<UInt16>
    private var freeCount: Int
    /// Buffer ids lent to this turn's completions, returned by `refill`.
    private let lent: UnsafeMutablePointer<UInt16>
    private var lentCount = 0
    /// Buffers posted and not yet taken by the kernel.
    private var posted = 0
    /// How many buffers `refill` keeps posted.
    private(set) var window: Int
    /// A receive found no buffer this turn.
    private var starved = false
    /// Most buffers ever out of the stack at once: with LIFO reuse, the only ones ever touched.
    private(set) var touched = 0

    var count: Int { arena.count }
    var bufferSize: Int { arena.bufferSize }

    /// Registers the ring as buffer group `group` of `uring` and posts the first `window` buffers.
    init(uring: UnsafeMutablePointer<io_uring>, group: UInt16, count: Int, bufferSize: Int, window: Int) throws(SystemError) {
        precondition(count > 0 && count & (count - 1) == 0 && count <= 32768, "receiveBufferCount must be a power of two <= 32768")
        ringBytes = count * MemoryLayout<io_uring_buf>.stride
        let mem = mmap(nil, ringBytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0)
        guard let mem, mem != MAP_FAILED else { throw SystemError("mmap(buffer ring)", errno: errno) }
        var reg = io_uring_buf_reg()
        reg.ring_addr = UInt64(UInt(bitPattern: mem))
        reg.ring_entries = UInt32(count)
        reg.bgid = group
        let rc = io_uring_register_buf_ring(uring, &reg, 0)
        if rc < 0 {
            munmap(mem, ringBytes)
            throw SystemError("io_uring_register_buf_ring", errno: -rc)
        }
        ring = mem.assumingMemoryBound(to: io_uring_buf_ring.self)
        io_uring_buf_ring_init(ring)
        mask = io_uring_buf_ring_mask(UInt32(count))
        arena = BufferArena(count: count, bufferSize: bufferSize)
        free = .allocate(capacity: count)
        lent = .allocate(capacity: count)
        // Buffer 0 on top: the first buffers used are the arena's first ones.
        for i in 0..<count { free[i] = UInt16(count - 1 - i) }
        freeCount = count
        self.window = min(max(window, 1), count)
        refill()
    }

    /// The kernel took buffer `bid` for a receive (a CQE with IORING_CQE_F_BUFFER): lent to this
    /// turn, back in `refill`.
    @inline(__always)
    mutating func take(_ bid: UInt16) -> UnsafeRawPointer {
        lent[lentCount] = bid
        lentCount += 1
        posted -= 1
        return UnsafeRawPointer(arena.buffer(Int(bid)))
    }

    /// A receive ended with -ENOBUFS: the window was too small for this turn.
    @inline(__always)
    mutating func noteStarved() { starved = true }

    /// End of a turn: the lent buffers go onto the stack, the window grows if a receive starved,
    /// and the ring is topped up to the window from the stack's top.
    mutating func refill() {
        for i in 0..<lentCount {
            free[freeCount] = lent[i]
            freeCount += 1
        }
        lentCount = 0
        if starved {
            starved = false
            window = min(window * 2, count)
        }
        var added: Int32 = 0
        while posted < window && freeCount > 0 {
            freeCount -= 1
            let bid = free[freeCount]
            io_uring_buf_ring_add(ring, arena.buffer(Int(bid)), UInt32(arena.bufferSize), bid, mask, added)
            added += 1
            posted += 1
        }
        if added > 0 { io_uring_buf_ring_advance(ring, added) }
        touched = max(touched, count - freeCount)
    }

    /// After the ring was torn down (`io_uring_queue_exit`).
    func deallocate() {
        munmap(ring, ringBytes)
        arena.deallocate()
        free.deallocate()
        lent.deallocate()
    }
}
