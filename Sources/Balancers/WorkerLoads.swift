import Synchronization

/// Per-worker load figures read across threads by the acceptor. One cache line per worker so a
/// worker's updates do not slow the others' (no false sharing).
public final class WorkerLoads: @unchecked Sendable {  // the pointer is immutable; the slots are atomics
    /// A worker's figures, padded to 128 bytes (two lines: adjacent-line prefetch).
    @usableFromInline
    struct Slot: ~Copyable {
        /// Open connections (incremented by the acceptor at hand-off, decremented by the worker).
        @usableFromInline let connections = Atomic<Int>(0)
        /// Requests received and not yet answered (the worker's).
        @usableFromInline let requests = Atomic<Int>(0)
        /// Busy fraction EWMA in parts per million (the worker's).
        @usableFromInline let busyPPM = Atomic<Int>(0)
        let pad = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        @usableFromInline init() {}
    }

    @usableFromInline let slots: UnsafeMutablePointer<Slot>
    public let count: Int

    public init(workers: Int) {
        count = workers
        slots = .allocate(capacity: workers)
        for i in 0..<workers { (slots + i).initialize(to: Slot()) }
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    @inlinable public func connections(_ w: Int) -> Int { slots[w].connections.load(ordering: .relaxed) }
    @inlinable public func requests(_ w: Int) -> Int { slots[w].requests.load(ordering: .relaxed) }
    @inlinable public func busyPPM(_ w: Int) -> Int { slots[w].busyPPM.load(ordering: .relaxed) }

    /// Connection counts change from two threads (acceptor +1, worker -1): atomic adds.
    @inlinable public func connectionOpened(_ w: Int) { slots[w].connections.add(1, ordering: .relaxed) }
    @inlinable public func connectionClosed(_ w: Int) { slots[w].connections.subtract(1, ordering: .relaxed) }
    /// In-flight requests change only on the worker: a plain load and store.
    @inlinable public func requestStarted(_ w: Int) {
        slots[w].requests.store(slots[w].requests.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }
    @inlinable public func requestsFinished(_ w: Int, _ n: Int = 1) {
        slots[w].requests.store(slots[w].requests.load(ordering: .relaxed) &- n, ordering: .relaxed)
    }
    @inlinable public func setBusyPPM(_ w: Int, _ value: Int) { slots[w].busyPPM.store(value, ordering: .relaxed) }

    /// A view that reads one metric, for the decision functions.
    public func view(_ metric: LoadMetric) -> MetricView { MetricView(loads: self, metric: metric) }

    public struct MetricView: LoadReading {
        @usableFromInline let loads: WorkerLoads
        @usableFromInline let metric: LoadMetric
        @inlinable public var count: Int { loads.count }
        @inlinable public func load(_ worker: Int) -> Int {
            switch metric {
            case .connections: loads.connections(worker)
            case .requests: loads.requests(worker)
            case .busy: loads.busyPPM(worker)
            }
        }
    }
}
