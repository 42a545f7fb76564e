/// What finished. Both backends report the same kinds with the same result convention.
public enum CompletionKind: UInt8, Sendable {
    /// A listening socket accepted: `result` is the new fd (non-blocking, close-on-exec) or `-errno`.
    case accept = 1
    /// Bytes arrived: `result > 0` bytes at `buffer`, `0` the peer closed its side, `< 0` `-errno`.
    /// The buffer is lent by the backend until the end of the loop turn: copy what you keep.
    case receive = 2
    /// A send finished: `result` bytes were written (may be fewer than asked) or `-errno`.
    case send = 3
    /// A connect finished: `0` or `-errno`.
    case connect = 4
    /// A value another loop posted straight into this loop's ring (io_uring IORING_OP_MSG_RING):
    /// `result` is the value (an fd for connection hand-offs). `fd` is -1.
    case message = 5
    /// A detach that `detach(fd:)` left `.pending` ended: `0` the fd is detached (nothing more is
    /// delivered for it here); `-EBUSY` input, end of stream or an error arrived while the
    /// receive was being cancelled (delivered before this completion), so the fd stays attached
    /// and receiving; another `-errno` the cancel itself failed, and the fd stays attached too.
    case detach = 6
}

/// One finished operation, handed to the loop's handler.
public struct Completion {
    public var kind: CompletionKind
    public var fd: Int32
    public var result: Int32
    /// The caller's token for this fd, given when the fd was attached.
    public var token: UInt64
    /// Received bytes (receive completions with `result > 0` only).
    public var buffer: UnsafeRawPointer?

    @inlinable
    public init(kind: CompletionKind, fd: Int32, result: Int32, token: UInt64, buffer: UnsafeRawPointer? = nil) {
        self.kind = kind
        self.fd = fd
        self.result = result
        self.token = token
        self.buffer = buffer
    }

    /// The received bytes as a buffer (empty unless a receive with data).
    @inlinable
    public var bytes: UnsafeRawBufferPointer {
        guard kind == .receive, result > 0, let buffer else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: buffer, count: Int(result))
    }
}

/// A fixed array of completions that a backend fills in one poll. Allocated once per loop.
public struct CompletionBatch: ~Copyable {
    public let storage: UnsafeMutablePointer<Completion>
    public let capacity: Int
    public var count: Int = 0

    public init(capacity: Int) {
        self.capacity = capacity
        self.storage = .allocate(capacity: capacity)
    }

    deinit { storage.deallocate() }

    @inlinable public var isFull: Bool { count == capacity }

    @inlinable
    public mutating func append(_ c: Completion) {
        storage[count] = c
        count += 1
    }
}
