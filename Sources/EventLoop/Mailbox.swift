import CBallast
import Glibc
import Synchronization

/// Cross-thread posting into one loop: a locked queue plus an eventfd wake-up, written only when
/// the queue was empty (one wake-up per burst of posts). Any thread may post; the owning loop drains.
public final class Mailbox<Message: Sendable>: Sendable {
    private let queue = Mutex<[Message]>([])
    private let stopFlag = Atomic<Bool>(false)
    /// The eventfd the loop's backend watches.
    public let wakeFD: Int32

    public init() throws(SystemError) {
        wakeFD = try syscall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC)) }
    }

    deinit { close(wakeFD) }

    /// Queues a message for the loop and wakes it if it may be asleep.
    public func post(_ message: sending Message) {
        let wasEmpty = queue.withLock { q in
            let empty = q.isEmpty
            q.append(message)
            return empty
        }
        if wasEmpty { wake() }
    }

    /// Asks the loop to stop after its current turn.
    public func requestStop() {
        stopFlag.store(true, ordering: .releasing)
        wake()
    }

    public var stopRequested: Bool { stopFlag.load(ordering: .acquiring) }

    public func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Loop thread only: clears the wake-up and moves the queued messages into `into` (which must
    /// be empty; its capacity is reused so steady-state draining allocates nothing).
    public func drain(into spare: inout [Message]) {
        var counter: UInt64 = 0
        _ = read(wakeFD, &counter, 8)
        queue.withLock { q in swap(&q, &spare) }
    }
}
