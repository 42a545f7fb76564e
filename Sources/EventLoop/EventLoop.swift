import Synchronization

/// What a loop calls back. Implemented by the owner of the loop's connections (a server worker,
/// a proxy worker, a load-generator thread). All calls happen on the loop's thread.
public protocol LoopHandler: AnyObject, SendableMetatype {
    associatedtype Backend: IOBackend
    associatedtype Message: Sendable

    /// One finished operation.
    func handle(_ completion: Completion, loop: EventLoop<Backend, Message>)
    /// A timer scheduled with `loop.timers` is due.
    func timerFired(_ id: UInt64, loop: EventLoop<Backend, Message>)
    /// A message posted to the loop's mailbox from another thread.
    func received(_ message: Message, loop: EventLoop<Backend, Message>)
    /// The loop is about to return from `run` (after `requestStop`): close what you own.
    func stopping(loop: EventLoop<Backend, Message>)
}

/// One event loop, owned by one thread: poll the backend, hand completions to the handler, fire
/// timers, drain the mailbox, repeat. Generic over the backend and the message type so every call
/// on the hot path is static.
public final class EventLoop<Backend: IOBackend, Message: Sendable> {
    public let index: Int
    public let backend: Backend
    public let mailbox: Mailbox<Message>
    public let stats: LoopStats
    /// Timers due at monotonic nanosecond deadlines.
    public var timers = TimerHeap()
    /// Monotonic time at the end of the latest poll: a cheap "now" for everything in this turn.
    @inlinable public var now: Int64 { latestNow }
    @usableFromInline var latestNow: Int64

    @usableFromInline var batch: CompletionBatch
    @usableFromInline var spareMessages: [Message] = []
    @usableFromInline var turns = 0
    /// Loop turns so far (a turn is one poll and the work it brought).
    @inlinable public var turnCount: Int { turns }
    @usableFromInline var completions = 0
    @usableFromInline var busyNanos = 0
    @usableFromInline var idleNanos = 0

    /// Creates the loop and its backend. Call on the thread that will run it.
    public init(index: Int, options: BackendOptions, mailbox: Mailbox<Message>, stats: LoopStats = LoopStats()) throws(SystemError) {
        self.index = index
        self.mailbox = mailbox
        self.stats = stats
        self.backend = try Backend(options: options, wakeFD: mailbox.wakeFD)
        self.batch = CompletionBatch(capacity: options.batchSize)
        self.latestNow = monotonicNanos()
        spareMessages.reserveCapacity(64)
    }

    /// Copies the loop-owned counters into the atomics other threads read (once per turn).
    @usableFromInline
    func publishStats() {
        stats.turns.store(turns, ordering: .relaxed)
        stats.completions.store(completions, ordering: .relaxed)
        stats.busyNanos.store(busyNanos, ordering: .relaxed)
        stats.idleNanos.store(idleNanos, ordering: .relaxed)
    }

    /// Runs until `mailbox.requestStop()`; then calls `handler.stopping` and shuts the backend down.
    @inlinable
    public func run<H: LoopHandler>(_ handler: H) where H.Backend == Backend, H.Message == Message {
        while true {
            let before = monotonicNanos()
            var timeout: Int64 = -1
            if let deadline = timers.nextDeadline { timeout = max(0, deadline - before) }
            batch.count = 0
            let woke = backend.poll(timeoutNanos: timeout, into: &batch)
            let after = monotonicNanos()
            latestNow = after
            let handled = batch.count
            for i in 0..<handled {
                handler.handle(batch.storage[i], loop: self)
            }
            while let id = timers.popExpired(now: now) {
                handler.timerFired(id, loop: self)
            }
            if woke {
                mailbox.drain(into: &spareMessages)
                for message in spareMessages { handler.received(message, loop: self) }
                spareMessages.removeAll(keepingCapacity: true)
            }
            backend.endTurn()
            let end = monotonicNanos()
            turns += 1
            completions += handled
            idleNanos += Int(after - before)
            busyNanos += Int(end - after)
            publishStats()
            if woke && mailbox.stopRequested { break }
        }
        handler.stopping(loop: self)
        // Let the handler's last closes reach the kernel, then release the backend.
        batch.count = 0
        _ = backend.poll(timeoutNanos: 0, into: &batch)
        backend.endTurn()
        backend.shutdown()
    }
}
