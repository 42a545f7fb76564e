import CBallast
import Glibc

/// Edge-triggered epoll, with readiness turned into completions inside the backend.
///
/// Each fd is registered once for IN|OUT|RDHUP with EPOLLET. An edge marks the fd readable (or
/// writable); readable fds that want data wait in a ready queue and get one read per turn into a
/// pooled buffer (a short read means the socket is drained, so the edge is spent). Sends are tried at
/// once; the completion is delivered on the next poll, or when EPOLLOUT arrives after EAGAIN.
public final class EpollBackend: IOBackend {
    public static var kind: IOBackendKind { .epoll }

    @usableFromInline
    struct Entry {
        var token: UInt64 = 0
        var role: Role = .none
        var wantsData = false   // accepting, or receiving and not paused
        var readable = false    // an edge arrived and the socket is not yet drained
        var hangup = false      // the peer closed (RDHUP/HUP): after the data, a read returns 0
        var queued = false      // in the ready queue
        var registered = false  // added to the epoll set
        var sendBytes: UnsafeRawPointer? = nil
        var sendCount = 0
        var sendWaiting = false // a send hit EAGAIN and waits for EPOLLOUT
        var finished: CompletionKind? = nil  // a send or connect that finished and is not yet reported
        var finishedResult = 0
    }

    @usableFromInline
    enum Role: UInt8 { case none, listener, stream, connecting }

    private let epfd: Int32
    private let wakeFD: Int32
    private var table: FDTable<Entry>
    private var ready: FDQueue
    private var sendsDone: FDQueue
    private let arena: BufferArena
    private var buffersLent = 0
    private let events: UnsafeMutablePointer<epoll_event>
    private let eventCapacity: Int32
    private let maxAcceptsPerTurn: Int
    private let exclusiveAccept: Bool

    public init(options: BackendOptions, wakeFD: Int32) throws(SystemError) {
        epfd = try syscall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        self.wakeFD = wakeFD
        table = FDTable(initialCapacity: 1024, empty: Entry())
        ready = FDQueue(capacity: 1024)
        sendsDone = FDQueue(capacity: 1024)
        arena = BufferArena(count: options.receiveBufferCount, bufferSize: options.receiveBufferSize)
        eventCapacity = Int32(options.batchSize)
        events = .allocate(capacity: options.batchSize)
        maxAcceptsPerTurn = options.maxAcceptsPerTurn
        exclusiveAccept = options.exclusiveAccept
        var ev = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wakeFD))
        _ = try syscall("epoll_ctl(ADD wake)") { epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &ev) }
    }

    private func register(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>) {
        if e.pointee.registered { return }
        var mask = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        if e.pointee.role == .listener {
            // A listener only reads; EPOLLEXCLUSIVE allows no other flags but IN, OUT, ET, WAKEUP.
            mask = EPOLLIN.rawValue | EPOLLET.rawValue | (exclusiveAccept ? EPOLLEXCLUSIVE.rawValue : 0)
        }
        var ev = epoll_event(events: mask, data: epoll_data_t(fd: fd))
        if epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 {
            e.pointee.registered = true
            // A fresh registration reports the current state as an edge, so nothing is missed.
        } else {
            // Registration only fails on our bug (EBADF, EEXIST) or ENOMEM; treat as readable so the
            // next read reports the real error to the handler.
            e.pointee.readable = true
        }
    }

    private func enqueueIfReady(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>) {
        if e.pointee.readable && e.pointee.wantsData && !e.pointee.queued {
            e.pointee.queued = true
            ready.push(fd)
        }
    }

    public func armAccept(listener fd: Int32, token: UInt64) {
        let e = table.pointer(fd)
        e.pointee.token = token
        e.pointee.role = .listener
        e.pointee.wantsData = true
        e.pointee.readable = true  // there may be connections queued already
        register(fd, e)
        enqueueIfReady(fd, e)
    }

    public func disarmAccept(listener fd: Int32) {
        table.pointer(fd).pointee.wantsData = false
    }

    public func armReceive(fd: Int32, token: UInt64) {
        let e = table.pointer(fd)
        e.pointee.token = token
        if e.pointee.role != .stream { e.pointee.role = .stream }
        e.pointee.wantsData = true
        if !e.pointee.registered {
            e.pointee.readable = true  // try once: data may have arrived before registration
            register(fd, e)
        }
        enqueueIfReady(fd, e)
    }

    public func pauseReceive(fd: Int32) {
        table.pointer(fd).pointee.wantsData = false
    }

    public func resumeReceive(fd: Int32) {
        let e = table.pointer(fd)
        guard e.pointee.role == .stream else { return }
        e.pointee.wantsData = true
        enqueueIfReady(fd, e)
    }

    public func send(fd: Int32, bytes: UnsafeRawPointer, count: Int) {
        let e = table.pointer(fd)
        let n = nonBlocking { Glibc.send(fd, bytes, count, Int32(MSG_NOSIGNAL)) }
        if n == -Int(EAGAIN) {
            e.pointee.sendBytes = bytes
            e.pointee.sendCount = count
            e.pointee.sendWaiting = true
            return
        }
        finish(fd, e, .send, n)
    }

    private func finish(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>, _ kind: CompletionKind, _ result: Int) {
        e.pointee.finished = kind
        e.pointee.finishedResult = result
        sendsDone.push(fd)
    }

    public func connect(fd: Int32, token: UInt64, address: SocketAddress) {
        let e = table.pointer(fd)
        e.pointee.token = token
        e.pointee.role = .connecting
        register(fd, e)
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        let err = rc == 0 ? 0 : Glibc.errno
        if err == EINPROGRESS || err == EINTR { return }  // EPOLLOUT reports the outcome
        e.pointee.role = .stream
        finish(fd, e, .connect, -Int(err))
    }

    public var messageAddress: Int32 { -1 }

    public func postMessage(to address: Int32, value: Int32) -> Bool { false }

    /// Always at once: every read this backend made has produced a completion already.
    public func detach(fd: Int32) -> DetachProgress {
        let e = table.pointer(fd)
        guard e.pointee.role == .stream, e.pointee.registered, e.pointee.sendBytes == nil,
              e.pointee.finished == nil, !e.pointee.hangup else { return .refused }
        var unused = epoll_event()
        guard epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &unused) == 0 else { return .refused }
        e.pointee = Entry()  // queued fds with a cleared entry are skipped
        return .done
    }

    public func close(fd: Int32) {
        let e = table.pointer(fd)
        e.pointee = Entry()  // queued fds with a cleared entry are skipped
        Glibc.close(fd)
    }

    public func poll(timeoutNanos: Int64, into batch: inout CompletionBatch) -> Bool {
        deliverFinishedSends(into: &batch)
        let busy = batch.count > 0 || ready.count > 0
        let timeoutMs: Int32 = busy ? 0 : (timeoutNanos < 0 ? -1 : Int32(min((timeoutNanos + 999_999) / 1_000_000, 3_600_000)))
        let room = min(eventCapacity, Int32(batch.capacity - batch.count))
        var woke = false
        let n = room > 0 ? epoll_wait(epfd, events, room, timeoutMs) : 0
        if n > 0 {
            for i in 0..<Int(n) {
                let fd = events[i].data.fd
                let mask = events[i].events
                if fd == wakeFD { woke = true; continue }
                let e = table.pointer(fd)
                if mask & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                    e.pointee.hangup = true
                }
                if mask & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                    e.pointee.readable = true
                    enqueueIfReady(fd, e)
                }
                if mask & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                    writable(fd, e, into: &batch)
                }
            }
        }
        drainReady(into: &batch)
        return woke
    }

    private func deliverFinishedSends(into batch: inout CompletionBatch) {
        var left = sendsDone.count
        while left > 0 && !batch.isFull {
            left -= 1
            let fd = sendsDone.pop()
            let e = table.pointer(fd)
            guard let kind = e.pointee.finished else { continue }  // closed meanwhile
            let result = e.pointee.finishedResult
            e.pointee.finished = nil
            batch.append(Completion(kind: kind, fd: fd, result: Int32(truncatingIfNeeded: result), token: e.pointee.token))
        }
    }

    private func writable(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>, into batch: inout CompletionBatch) {
        if e.pointee.role == .connecting {
            e.pointee.role = .stream
            let err = Sockets.pendingError(fd)
            batch.append(Completion(kind: .connect, fd: fd, result: -err, token: e.pointee.token))
            return
        }
        guard e.pointee.sendWaiting, let bytes = e.pointee.sendBytes else { return }
        let n = nonBlocking { Glibc.send(fd, bytes, e.pointee.sendCount, Int32(MSG_NOSIGNAL)) }
        if n == -Int(EAGAIN) { return }
        e.pointee.sendWaiting = false
        e.pointee.sendBytes = nil
        if batch.isFull {
            finish(fd, e, .send, n)
        } else {
            batch.append(Completion(kind: .send, fd: fd, result: Int32(truncatingIfNeeded: n), token: e.pointee.token))
        }
    }

    private func drainReady(into batch: inout CompletionBatch) {
        var left = ready.count
        while left > 0 && !batch.isFull {
            left -= 1
            let fd = ready.pop()
            let e = table.pointer(fd)
            e.pointee.queued = false
            guard e.pointee.wantsData && e.pointee.readable else { continue }
            switch e.pointee.role {
            case .listener:
                acceptSome(fd, e, into: &batch)
            case .stream:
                guard buffersLent < arena.count else {
                    enqueueIfReady(fd, e)  // out of buffers this turn; try next turn
                    return
                }
                readOnce(fd, e, into: &batch)
            default:
                continue
            }
            enqueueIfReady(fd, e)
        }
    }

    private func acceptSome(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>, into batch: inout CompletionBatch) {
        var accepted = 0
        while accepted < maxAcceptsPerTurn && !batch.isFull {
            let newFD = cb_accept4(fd, nil, nil, Sockets.streamNonBlocking & ~Int32(SOCK_STREAM.rawValue))
            if newFD >= 0 {
                accepted += 1
                batch.append(Completion(kind: .accept, fd: fd, result: newFD, token: e.pointee.token))
                continue
            }
            let err = Glibc.errno
            if err == EINTR || err == ECONNABORTED { continue }
            if err == EAGAIN { e.pointee.readable = false; return }
            // EMFILE/ENFILE/ENOBUFS: report, and stop trying until the next edge.
            e.pointee.readable = false
            batch.append(Completion(kind: .accept, fd: fd, result: -err, token: e.pointee.token))
            return
        }
    }

    private func readOnce(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>, into batch: inout CompletionBatch) {
        let buffer = arena.buffer(buffersLent)
        let n = nonBlocking { Glibc.recv(fd, buffer, arena.bufferSize, 0) }
        if n == -Int(EAGAIN) {
            e.pointee.readable = false
            return
        }
        if n > 0 {
            buffersLent += 1
            // A short read drained the socket, unless the peer also closed: then the end of stream
            // is still to be read, and no further edge will announce it.
            if n < arena.bufferSize && !e.pointee.hangup { e.pointee.readable = false }
            batch.append(Completion(kind: .receive, fd: fd, result: Int32(n), token: e.pointee.token, buffer: UnsafeRawPointer(buffer)))
            return
        }
        // End of stream or an error: report once, then stop receiving.
        e.pointee.readable = false
        e.pointee.wantsData = false
        batch.append(Completion(kind: .receive, fd: fd, result: Int32(truncatingIfNeeded: n), token: e.pointee.token))
    }

    public func endTurn() {
        buffersLent = 0
    }

    public func shutdown() {
        Glibc.close(epfd)
        table.deallocate()
        ready.deallocate()
        sendsDone.deallocate()
        arena.deallocate()
        events.deallocate()
    }
}
