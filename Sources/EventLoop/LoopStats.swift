import Synchronization

/// Per-loop counters, written by the loop once per turn and readable from any thread
/// (the balancer and the admin endpoint read them).
public final class LoopStats: Sendable {
    public let turns = Atomic<Int>(0)
    public let completions = Atomic<Int>(0)
    public let busyNanos = Atomic<Int>(0)
    public let idleNanos = Atomic<Int>(0)

    public init() {}

    public struct Snapshot: Sendable, Equatable {
        public var turns, completions, busyNanos, idleNanos: Int
    }

    public func snapshot() -> Snapshot {
        Snapshot(turns: turns.load(ordering: .relaxed), completions: completions.load(ordering: .relaxed),
                 busyNanos: busyNanos.load(ordering: .relaxed), idleNanos: idleNanos.load(ordering: .relaxed))
    }
}
