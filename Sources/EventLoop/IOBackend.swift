/// One completion-style API over epoll and io_uring. The loop and its handler are generic over
/// the backend, so every call is static (specialised at compile time), never an existential.
///
/// Threading: a backend belongs to one loop thread. Only `wake()` on its mailbox may be used from
/// other threads.
///
/// Ownership: an fd is *attached* to the backend with a caller token by `armAccept`, `armReceive`
/// or `connect`, and detached by `close` (or, without closing it, by `detach`). Completions for an
/// fd that was closed (or closed and reused) are dropped by the backend, using a generation number
/// packed with the fd.
public protocol IOBackend: AnyObject, SendableMetatype {
    static var kind: IOBackendKind { get }

    /// Creates the backend on the calling thread (io_uring rings are single-issuer: the loop thread
    /// must create its own). `wakeFD` is an eventfd whose readiness ends a poll (the mailbox).
    init(options: BackendOptions, wakeFD: Int32) throws(SystemError)

    /// Starts accepting on a listening socket; each new connection is an `.accept` completion.
    func armAccept(listener fd: Int32, token: UInt64)
    /// Stops accepting on a listening socket (it stays open).
    func disarmAccept(listener fd: Int32)
    /// Attaches a connected socket and starts receiving from it.
    func armReceive(fd: Int32, token: UInt64)
    /// Stops delivering received data (backpressure). Data already in flight may still arrive.
    func pauseReceive(fd: Int32)
    /// Undoes `pauseReceive`.
    func resumeReceive(fd: Int32)
    /// Sends `count` bytes. The caller owns the bytes and keeps them unchanged until the `.send`
    /// completion. At most one send per fd is outstanding.
    func send(fd: Int32, bytes: UnsafeRawPointer, count: Int)
    /// Attaches a non-blocking socket and connects it; a `.connect` completion follows.
    func connect(fd: Int32, token: UInt64, address: SocketAddress)
    /// Detaches and closes the fd. No completion follows, and none for earlier operations.
    func close(fd: Int32)

    /// Starts detaching an idle stream fd (no send outstanding: the caller's precondition) without
    /// closing it, so another loop can attach it with `armReceive`. Data not yet read stays in the
    /// socket and is read by the next owner. Returns `.done` when the fd is detached now (epoll),
    /// `.pending` when a `.detach` completion for it follows (io_uring: its multishot receive is
    /// being cancelled; what that receive pulled in before the cancel took effect is delivered
    /// first, as ordinary receive completions), or `.refused`, leaving the fd attached.
    /// `close` while pending: no `.detach` completion follows.
    func detach(fd: Int32) -> DetachProgress
    /// This loop's address for `postMessage` from other loops, or -1 when the backend has none.
    var messageAddress: Int32 { get }
    /// Posts `value` into another loop's backend (its `messageAddress`), which reports it as a
    /// `.message` completion, without the mailbox. Returns false when the backend cannot (epoll).
    func postMessage(to address: Int32, value: Int32) -> Bool

    /// Submits what was queued and waits up to `timeoutNanos` (-1: forever, 0: do not block) for
    /// completions, appending them to `batch`. Returns whether the wake fd fired.
    func poll(timeoutNanos: Int64, into batch: inout CompletionBatch) -> Bool
    /// Ends a loop turn: the receive buffers lent to this turn's completions go back to the pool.
    func endTurn()
    /// Closes the backend's own resources.
    func shutdown()
}

/// What `IOBackend.detach(fd:)` did.
public enum DetachProgress: Sendable, Equatable {
    /// Detached: nothing more is delivered for the fd here.
    case done
    /// A `.detach` completion follows (0: detached; `-EBUSY`: input arrived meanwhile, the fd stays).
    case pending
    /// The backend cannot detach the fd now; it stays attached, receiving as before.
    case refused
}
