/// The one timer-heap entry a connection keeps at or before its earliest deadline. The heap has
/// no cancel: instead of an entry per deadline, a connection keeps about one and re-arms when it
/// fires (an entry that fires early finds nothing due and arms the next one).
public struct DeadlineTimer {
    /// When the entry in the heap is due, 0 when there is none.
    public var armedAt: Int64 = 0

    @inlinable public init() {}

    /// Makes sure an entry for `id` is due no later than `deadline` (0: nothing to wait for).
    @inlinable
    public mutating func arm(_ deadline: Int64, id: UInt64, in timers: inout TimerHeap) {
        guard deadline > 0 else { return }
        if armedAt != 0 && armedAt <= deadline { return }
        armedAt = deadline
        timers.schedule(at: deadline, id: id)
    }

    /// An entry for this connection fired at `now`.
    @inlinable
    public mutating func fired(now: Int64) {
        if armedAt != 0 && armedAt <= now { armedAt = 0 }
    }

    /// The earliest of the deadlines that are set (non-zero), or 0.
    @inlinable
    public static func earliest(_ a: Int64, _ b: Int64, _ c: Int64 = 0, _ d: Int64 = 0) -> Int64 {
        min0(min0(a, b), min0(c, d))
    }

    @inlinable
    static func min0(_ a: Int64, _ b: Int64) -> Int64 {
        a == 0 ? b : (b == 0 ? a : min(a, b))
    }
}
