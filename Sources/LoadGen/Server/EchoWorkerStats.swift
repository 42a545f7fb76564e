import Synchronization

/// Figures of one server worker. The worker is the only writer (plain load+store, no
/// read-modify-write); other threads read them for `/workers` and the exit summary.
public final class EchoWorkerStats: Sendable {
    public let accepted = Atomic<Int>(0)
    public let active = Atomic<Int>(0)
    public let requests = Atomic<Int>(0)
    public let bytesIn = Atomic<Int>(0)
    public let bytesOut = Atomic<Int>(0)
    public let badRequests = Atomic<Int>(0)
    /// Loop turns in which this worker accepted at least one connection itself.
    public let acceptWakeups = Atomic<Int>(0)
    /// Live rebalancing: connections this worker handed to another, and took from another.
    public let movesOut = Atomic<Int>(0)
    public let movesIn = Atomic<Int>(0)
    /// Request boundaries above the margin where the connection was not idle (input buffered,
    /// output queued, a delayed response held, closing), or a move the backend refused, or (io_uring)
    /// a move abandoned because input arrived or the connection closed while its receive was being
    /// cancelled.
    public let moveRefusals = Atomic<Int>(0)

    public init() {}

}

/// Single-writer increment: a relaxed load and store, no locked instruction.
@inline(__always)
func bump(_ counter: borrowing Atomic<Int>, by n: Int = 1) {
    counter.store(counter.load(ordering: .relaxed) &+ n, ordering: .relaxed)
}
