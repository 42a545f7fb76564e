/// Runtime choice of I/O backend, the same strings in flags, YAML, JSON and file names.
public enum IOBackendKind: String, Sendable, CaseIterable {
    case epoll
    case ioUring = "io_uring"
    case auto
}

/// Sizes a backend allocates once at start.
public struct BackendOptions: Sendable {
    /// Receive buffers (epoll: a pool read into; io_uring: the provided-buffer ring). Power of two.
    public var receiveBufferCount: Int = 512
    /// Bytes per receive buffer.
    public var receiveBufferSize: Int = 16 * 1024
    /// io_uring: receive buffers posted in the provided-buffer ring at first; doubles (up to
    /// `receiveBufferCount`) each turn a receive finds the ring empty. Small, so an idle loop keeps
    /// reusing the same few pages (`ReceiveBufferRing`).
    public var receiveBufferWindow: Int = 32
    /// Completions handled per loop turn at most.
    public var batchSize: Int = 1024
    /// io_uring submission queue entries (the completion queue is 4x).
    public var ringEntries: UInt32 = 2048
    /// Accepts made for one listener per readiness before other work gets a turn (epoll).
    /// `Int.max` accepts until EAGAIN (the accept-in-a-loop behaviour of older Envoy).
    public var maxAcceptsPerTurn: Int = 64
    /// Register listening sockets with EPOLLEXCLUSIVE: when several loops watch one listening
    /// socket, the kernel wakes one of them per connection instead of all (epoll only).
    public var exclusiveAccept = false
    /// io_uring: accept as epoll does, non-exclusively: a multishot poll on the listening socket
    /// wakes every ring watching it, and each then calls accept4 until EAGAIN (or
    /// `maxAcceptsPerTurn`). false: one multishot accept per listener, which never leaves the
    /// socket's wait queue, so with a shared socket the first ring to arm takes every connection.
    public var acceptByPolling = false

    public init() {}
}
