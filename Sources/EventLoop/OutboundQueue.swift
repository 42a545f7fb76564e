/// Bytes queued for one socket with at most one send outstanding (the backends' rule): `pending`
/// fills while `sending` is with the kernel; when a send completes the two change places. Buffers
/// come from the loop's pool and go back once sent, so an idle connection holds none. Every
/// connection kind of the proxy (downstream, upstream, each tcp_proxy direction) and of the echo
/// server has one.
public struct OutboundQueue {
    /// Written and not yet handed to the kernel.
    public var pending = ByteBuffer.empty
    /// Bytes of the outstanding send; unchanged until its completion.
    public var sending = ByteBuffer.empty
    /// Bytes of `sending` already written (32 bits: a buffer is at most 32 MiB; every connection
    /// carries a queue, so its size is per-connection memory).
    @usableFromInline var storedSendOffset: Int32 = 0
    @inlinable public var sendOffset: Int {
        get { Int(storedSendOffset) }
        set { storedSendOffset = Int32(newValue) }
    }
    public var inFlight = false

    @inlinable public init() {}

    /// Nothing queued and nothing outstanding.
    @inlinable public var isDrained: Bool { !inFlight && pending.count == 0 && sending.count == 0 }

    /// Hands what is pending to the kernel when no send is outstanding; returns whether one started.
    @inlinable @discardableResult
    public mutating func flush<Backend: IOBackend>(fd: Int32, on backend: Backend) -> Bool {
        guard !inFlight, sending.count == 0, pending.count > 0 else { return false }
        swap(&sending, &pending)
        sendOffset = 0
        inFlight = true
        backend.send(fd: fd, bytes: sending.base!, count: sending.count)
        return true
    }

    /// Like `flush`, but hands over only the first `limit` pending bytes (copied into the send
    /// buffer when that is not all of them); the rest stays pending. Returns whether a send started.
    @inlinable @discardableResult
    public mutating func flush<Backend: IOBackend>(fd: Int32, on backend: Backend, limit: Int, pool: BufferPool) -> Bool {
        guard limit < pending.count else { return flush(fd: fd, on: backend) }
        guard !inFlight, sending.count == 0, limit > 0 else { return false }
        guard pool.append(UnsafeRawBufferPointer(rebasing: pending.bytes[0..<limit]), to: &sending) else { return false }
        BufferPool.consume(limit, from: &pending)
        sendOffset = 0
        inFlight = true
        backend.send(fd: fd, bytes: sending.base!, count: sending.count)
        return true
    }

    /// The outstanding send wrote `written` (>= 0) bytes. A short write sends the rest and returns
    /// false; true means all of `sending` is out and its buffer is back in `pool`.
    @inlinable
    public mutating func sent<Backend: IOBackend>(_ written: Int, fd: Int32, on backend: Backend, pool: BufferPool) -> Bool {
        inFlight = false
        sendOffset += written
        if sendOffset < sending.count {
            inFlight = true
            backend.send(fd: fd, bytes: sending.base! + sendOffset, count: sending.count - sendOffset)
            return false
        }
        sending.count = 0
        pool.release(&sending)
        return true
    }

    /// Gives both buffers back (the connection is closing).
    @inlinable
    public mutating func release(to pool: BufferPool) {
        pool.release(&pending)
        pool.release(&sending)
    }
}
