import CBallast
import Glibc

/// Completion I/O through liburing: multishot accept, multishot receive into a provided-buffer
/// ring, sends, connects and closes as submissions, all submitted once per loop turn together with
/// the wait (one `io_uring_enter` per turn, none per I/O).
///
/// User data packs the fd (bits 0-31), the operation kind (bits 32-35), the fd's generation
/// (bits 36-49, bumped on close) and, for receives, the arm sequence (bits 50-63, bumped on pause):
/// completions for a closed fd are dropped; data from a receive cancelled by a pause is still
/// delivered, but its end does not count as the end of the current receive.
///
/// Detaching (live rebalancing) takes two steps: `detach` cancels the fd's multishot receive, the
/// data completions that receive still posts are delivered as usual, and its last completion (no
/// IORING_CQE_F_MORE) ends the detach: with nothing received meanwhile the entry is cleared (the
/// unread bytes stay in the socket) and a `.detach` completion reports 0; otherwise the receive
/// is armed again and it reports -EBUSY. See docs/rebalance.md.
public final class IoUringBackend: IOBackend {
    public static var kind: IOBackendKind { .ioUring }

    @usableFromInline
    enum Op: UInt64 { case accept = 1, receive, send, connect, wake, cancel, close, message, messageSent, acceptReady, detachCancel }

    @usableFromInline
    struct Entry {
        var token: UInt64 = 0
        var generation: UInt32 = 0
        var receiveSequence: UInt32 = 0
        var isListener = false
        var wantsData = false       // accepting, or receiving and not paused
        var armed = false           // a multishot accept/receive/poll is outstanding
        var open = false
        var acceptPending = false   // acceptByPolling: readable, queued in `acceptReady`
        var staleReceives: UInt16 = 0   // receives cancelled by a pause whose last completion is still to come
        var detaching = false       // `detach` cancelled the receive; its last completion ends the detach
        var receivedWhileDetaching = false
        var detachResult: Int32? = nil  // a `.detach` completion waiting in `detachesDone`
    }

    private let ring: UnsafeMutablePointer<io_uring>
    private var buffers: ReceiveBufferRing
    private let bufferGroup: UInt16 = 1
    private var table: FDTable<Entry>
    private var rearm: FDQueue
    private let cqes: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private let batchSize: Int
    private let wakeFD: Int32
    private var wakeArmed = false
    /// Connect addresses must stay valid until submitted; they live in this small ring of slots.
    private let connectAddresses: UnsafeMutablePointer<sockaddr_storage>
    private let connectSlots = 256
    private var connectSlotsUsed = 0
    /// acceptByPolling: listeners reported readable whose accepts are not done yet.
    private let acceptByPolling: Bool
    private let maxAcceptsPerTurn: Int
    private var acceptReady: FDQueue
    /// Fds whose detach ended, with the `.detach` completion still to deliver.
    private var detachesDone: FDQueue

    /// Receive buffers ever in use at once (posted or lent): the only ones whose pages were
    /// touched, since returned buffers are posted again first (see `ReceiveBufferRing`).
    public var receiveBuffersTouched: Int { buffers.touched }
    /// Receive buffers kept posted in the ring now.
    public var receiveBufferWindow: Int { buffers.window }

    /// Why io_uring cannot be used on this machine, or nil when it can.
    public static func unavailableReason() -> String? { IoUringProbe.reason }

    public init(options: BackendOptions, wakeFD: Int32) throws(SystemError) {
        if IoUringProbe.reason != nil { throw SystemError("io_uring probe", errno: ENOSYS) }
        ring = .allocate(capacity: 1)
        var params = io_uring_params()
        params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL
            | IORING_SETUP_CQSIZE | IORING_SETUP_TASKRUN_FLAG
        params.cq_entries = options.ringEntries * 4
        let rc = io_uring_queue_init_params(options.ringEntries, ring, &params)
        if rc < 0 {
            ring.deallocate()
            throw SystemError("io_uring_queue_init_params", errno: -rc)
        }
        do {
            buffers = try ReceiveBufferRing(uring: ring, group: bufferGroup, count: options.receiveBufferCount,
                                            bufferSize: options.receiveBufferSize, window: options.receiveBufferWindow)
        } catch {
            io_uring_queue_exit(ring)
            ring.deallocate()
            throw error
        }
        table = FDTable(initialCapacity: 1024, empty: Entry())
        rearm = FDQueue(capacity: 256)
        batchSize = options.batchSize
        cqes = .allocate(capacity: options.batchSize)
        connectAddresses = .allocate(capacity: connectSlots)
        self.wakeFD = wakeFD
        acceptByPolling = options.acceptByPolling
        maxAcceptsPerTurn = max(1, options.maxAcceptsPerTurn)
        acceptReady = FDQueue(capacity: 16)
        detachesDone = FDQueue(capacity: 16)
        armWake()
    }

    // MARK: submissions

    static let fieldMask: UInt32 = 0x3FFF

    @inline(__always)
    private func userData(_ fd: Int32, _ op: Op, _ generation: UInt32, _ arm: UInt32 = 0) -> UInt64 {
        UInt64(UInt32(bitPattern: fd)) | (op.rawValue << 32) | (UInt64(generation & Self.fieldMask) << 36)
            | (UInt64(arm & Self.fieldMask) << 50)
    }

    /// A free submission entry; when the queue is full, submit what is queued first.
    @inline(__always)
    private func sqe() -> UnsafeMutablePointer<io_uring_sqe> {
        if let s = io_uring_get_sqe(ring) { return s }
        _ = io_uring_submit(ring)
        while true {
            if let s = io_uring_get_sqe(ring) { return s }
            _ = io_uring_submit(ring)
        }
    }

    private func armWake() {
        let s = sqe()
        io_uring_prep_poll_multishot(s, wakeFD, UInt32(POLLIN))
        io_uring_sqe_set_data64(s, userData(wakeFD, .wake, 0))
        wakeArmed = true
    }

    private func submitAccept(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>) {
        let s = sqe()
        if acceptByPolling {
            io_uring_prep_poll_multishot(s, fd, UInt32(POLLIN))
            io_uring_sqe_set_data64(s, userData(fd, .acceptReady, e.pointee.generation))
        } else {
            io_uring_prep_multishot_accept(s, fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
            io_uring_sqe_set_data64(s, userData(fd, .accept, e.pointee.generation))
        }
        e.pointee.armed = true
    }

    /// acceptByPolling: accept4 on each readable listener until EAGAIN, or `maxAcceptsPerTurn`
    /// (then it stays queued and the next turn does not block), or a full batch.
    private func acceptQueued(into batch: inout CompletionBatch) {
        var left = acceptReady.count
        while left > 0 {
            left -= 1
            let fd = acceptReady.pop()
            let e = table.pointer(fd)
            guard e.pointee.open, e.pointee.wantsData, e.pointee.acceptPending else { e.pointee.acceptPending = false; continue }
            var accepted = 0
            var drained = false
            while accepted < maxAcceptsPerTurn && !batch.isFull {
                let newFD = cb_accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
                if newFD >= 0 {
                    accepted += 1
                    batch.append(Completion(kind: .accept, fd: fd, result: newFD, token: e.pointee.token))
                    continue
                }
                let err = Glibc.errno
                if err == EINTR || err == ECONNABORTED { continue }
                drained = true
                if err != EAGAIN {
                    // EMFILE/ENFILE/ENOBUFS: report; the handler decides when to try again.
                    e.pointee.wantsData = false
                    batch.append(Completion(kind: .accept, fd: fd, result: -err, token: e.pointee.token))
                }
                break
            }
            if drained { e.pointee.acceptPending = false } else { acceptReady.push(fd) }
        }
    }

    private func submitReceive(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>) {
        let s = sqe()
        io_uring_prep_recv_multishot(s, fd, nil, 0, 0)
        s.pointee.flags |= cb_iosqe_buffer_select()
        s.pointee.buf_group = bufferGroup
        io_uring_sqe_set_data64(s, userData(fd, .receive, e.pointee.generation, e.pointee.receiveSequence))
        e.pointee.armed = true
    }

    private func submitCancel(_ target: UInt64) {
        let s = sqe()
        io_uring_prep_cancel64(s, target, 0)
        s.pointee.flags |= cb_iosqe_cqe_skip_success()
        io_uring_sqe_set_data64(s, userData(0, .cancel, 0))
    }

    public func armAccept(listener fd: Int32, token: UInt64) {
        let e = table.pointer(fd)
        if !e.pointee.open {
            e.pointee.open = true
            e.pointee.generation &+= 1
        }
        e.pointee.token = token
        e.pointee.isListener = true
        e.pointee.wantsData = true
        if !e.pointee.armed { submitAccept(fd, e) }
    }

    public func disarmAccept(listener fd: Int32) {
        let e = table.pointer(fd)
        e.pointee.wantsData = false
        e.pointee.acceptPending = false
        if e.pointee.armed {
            submitCancel(userData(fd, acceptByPolling ? .acceptReady : .accept, e.pointee.generation))
            e.pointee.generation &+= 1  // the cancelled accept's last completion is stale
            e.pointee.armed = false
        }
    }

    public func armReceive(fd: Int32, token: UInt64) {
        let e = table.pointer(fd)
        if !e.pointee.open {
            e.pointee.open = true
            e.pointee.generation &+= 1
            e.pointee.receiveSequence &+= 1
            e.pointee.staleReceives = 0
        }
        e.pointee.token = token
        e.pointee.isListener = false
        e.pointee.wantsData = true
        if !e.pointee.armed { submitReceive(fd, e) }
    }

    public func pauseReceive(fd: Int32) {
        let e = table.pointer(fd)
        e.pointee.wantsData = false
        if e.pointee.armed && !e.pointee.detaching {  // detaching: its cancel is on the way already
            submitCancel(userData(fd, .receive, e.pointee.generation, e.pointee.receiveSequence))
            e.pointee.receiveSequence &+= 1
            e.pointee.staleReceives &+= 1
            e.pointee.armed = false
        }
    }

    public func resumeReceive(fd: Int32) {
        let e = table.pointer(fd)
        guard e.pointee.open, !e.pointee.isListener else { return }
        e.pointee.wantsData = true
        if !e.pointee.armed { submitReceive(fd, e) }
    }

    public func send(fd: Int32, bytes: UnsafeRawPointer, count: Int) {
        let e = table.pointer(fd)
        let s = sqe()
        io_uring_prep_send(s, fd, bytes, count, Int32(MSG_NOSIGNAL))
        io_uring_sqe_set_data64(s, userData(fd, .send, e.pointee.generation))
    }

    public func connect(fd: Int32, token: UInt64, address: SocketAddress) {
        let e = table.pointer(fd)
        e.pointee.open = true
        e.pointee.generation &+= 1
        e.pointee.receiveSequence &+= 1
        e.pointee.token = token
        e.pointee.isListener = false
        if connectSlotsUsed == connectSlots {
            _ = io_uring_submit(ring)  // the kernel has copied the queued addresses now
            connectSlotsUsed = 0
        }
        let slot = connectAddresses + connectSlotsUsed
        connectSlotsUsed += 1
        slot.pointee = address.storage
        let s = sqe()
        slot.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            io_uring_prep_connect(s, fd, $0, address.length)
        }
        io_uring_sqe_set_data64(s, userData(fd, .connect, e.pointee.generation))
    }

    /// With a receive armed: cancels it (by its user data) and reports the outcome as a `.detach`
    /// completion once the receive's last completion arrived. Refused while a receive cancelled by
    /// a pause may still deliver data (its bytes would be dropped once the entry is cleared).
    public func detach(fd: Int32) -> DetachProgress {
        let e = table.pointer(fd)
        guard e.pointee.open, !e.pointee.isListener, !e.pointee.detaching, e.pointee.detachResult == nil,
              e.pointee.staleReceives == 0 else { return .refused }
        if !e.pointee.armed {
            clear(e)  // nothing outstanding (a receive ended and waits to be re-armed, or receiving stopped)
            return .done
        }
        e.pointee.detaching = true
        e.pointee.receivedWhileDetaching = false
        submitDetachCancel(fd, e)
        return .pending
    }

    private func submitDetachCancel(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>) {
        let s = sqe()
        io_uring_prep_cancel64(s, userData(fd, .receive, e.pointee.generation, e.pointee.receiveSequence), 0)
        s.pointee.flags |= cb_iosqe_cqe_skip_success()
        io_uring_sqe_set_data64(s, userData(fd, .detachCancel, e.pointee.generation, e.pointee.receiveSequence))
    }

    /// The fd is no longer this backend's: later completions for it (none are outstanding) would
    /// carry a stale generation.
    private func clear(_ e: UnsafeMutablePointer<Entry>) {
        e.pointee.open = false
        e.pointee.armed = false
        e.pointee.wantsData = false
        e.pointee.detaching = false
        e.pointee.generation &+= 1
        e.pointee.receiveSequence &+= 1
    }

    /// The cancelled receive's last completion arrived (everything it received is in the batch).
    private func finishDetach(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>) {
        e.pointee.detaching = false
        if e.pointee.receivedWhileDetaching {
            // Not idle any more: the caller serves what came, and the receive goes on.
            e.pointee.detachResult = -EBUSY
            if e.pointee.wantsData { rearm.push(fd) }
        } else {
            e.pointee.detachResult = 0
            clear(e)
        }
        detachesDone.push(fd)
    }

    /// A detach's cancel that did not find the receive. Still armed: the receive was between
    /// states (re-issued after a burst) and is still running, so cancel again; another error ends
    /// the detach with that error, the receive going on.
    private func detachCancelFailed(_ fd: Int32, _ generation: UInt32, _ arm: UInt32, _ result: Int32) {
        let e = table.pointer(fd)
        guard e.pointee.open, e.pointee.detaching, e.pointee.armed,
              e.pointee.generation & Self.fieldMask == generation,
              e.pointee.receiveSequence & Self.fieldMask == arm else { return }
        if result == -ENOENT || result == -EALREADY {
            submitDetachCancel(fd, e)
            return
        }
        Log.warning("io_uring: cancelling the receive of fd \(fd) to move it failed: \(Log.describe(errno: -result))")
        e.pointee.detaching = false
        e.pointee.detachResult = result
        detachesDone.push(fd)
    }

    private func deliverDetaches(into batch: inout CompletionBatch) {
        var left = detachesDone.count
        while left > 0 && !batch.isFull {
            left -= 1
            let fd = detachesDone.pop()
            let e = table.pointer(fd)
            guard let result = e.pointee.detachResult else { continue }  // closed meanwhile
            e.pointee.detachResult = nil
            batch.append(Completion(kind: .detach, fd: fd, result: result, token: e.pointee.token))
        }
    }

    public func close(fd: Int32) {
        let e = table.pointer(fd)
        let hadOperations = e.pointee.open
        e.pointee.open = false
        e.pointee.armed = false
        e.pointee.wantsData = false
        e.pointee.acceptPending = false
        e.pointee.staleReceives = 0
        e.pointee.detaching = false
        e.pointee.detachResult = nil
        e.pointee.generation &+= 1
        e.pointee.receiveSequence &+= 1
        if hadOperations {
            // Cancel everything outstanding on the fd (a receive, or a send stuck on a full socket)
            // so the kernel drops its file references and the peer sees the close.
            let c = sqe()
            io_uring_prep_cancel_fd(c, fd, IORING_ASYNC_CANCEL_ALL)
            c.pointee.flags |= cb_iosqe_cqe_skip_success()
            io_uring_sqe_set_data64(c, userData(0, .cancel, 0))
        }
        // The close is queued after the cancel (issued in order) so the cancel still finds the fd;
        // the fd number stays taken until then, so it cannot be reused before.
        let s = sqe()
        io_uring_prep_close(s, fd)
        s.pointee.flags |= cb_iosqe_cqe_skip_success()
        io_uring_sqe_set_data64(s, userData(0, .close, 0))
    }

    /// The ring's fd: other rings post messages to it.
    public var messageAddress: Int32 { ring.pointee.ring_fd }

    /// IORING_OP_MSG_RING: a completion appears in the target ring with our value as its result,
    /// submitted with this turn's batch (no system call of its own, no eventfd).
    public func postMessage(to address: Int32, value: Int32) -> Bool {
        let s = sqe()
        io_uring_prep_msg_ring(s, address, UInt32(bitPattern: value), userData(0, .message, 0), 0)
        io_uring_sqe_set_data64(s, userData(0, .messageSent, 0))
        s.pointee.flags |= cb_iosqe_cqe_skip_success()
        return true
    }

    // MARK: completions

    public func poll(timeoutNanos: Int64, into batch: inout CompletionBatch) -> Bool {
        connectSlotsUsed = 0
        if io_uring_cq_ready(ring) > 0 || timeoutNanos == 0 || batch.count > 0 || acceptReady.count > 0
            || detachesDone.count > 0 {
            _ = io_uring_submit_and_get_events(ring)
        } else if timeoutNanos < 0 {
            _ = io_uring_submit_and_wait(ring, 1)
        } else {
            var ts = __kernel_timespec(tv_sec: timeoutNanos / 1_000_000_000, tv_nsec: timeoutNanos % 1_000_000_000)
            var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
            _ = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nil)
        }
        let room = min(batchSize, batch.capacity - batch.count)
        let n = Int(io_uring_peek_batch_cqe(ring, cqes, UInt32(room)))
        var woke = false
        for i in 0..<n {
            let cqe = cqes[i]!
            if handle(cqe.pointee, into: &batch) { woke = true }
        }
        io_uring_cq_advance(ring, UInt32(n))
        if detachesDone.count > 0 { deliverDetaches(into: &batch) }
        if acceptReady.count > 0 { acceptQueued(into: &batch) }
        return woke
    }

    /// Turns one CQE into at most one completion. Returns true for a wake-up.
    @inline(__always)
    private func handle(_ cqe: io_uring_cqe, into batch: inout CompletionBatch) -> Bool {
        let data = cqe.user_data
        let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
        let op = Op(rawValue: (data >> 32) & 0xF)
        let generation = UInt32(truncatingIfNeeded: data >> 36) & Self.fieldMask
        let arm = UInt32(truncatingIfNeeded: data >> 50) & Self.fieldMask
        let more = cqe.flags & IORING_CQE_F_MORE != 0
        let result = cqe.res
        switch op {
        case .receive:
            var buffer: UnsafeRawPointer? = nil
            if cqe.flags & IORING_CQE_F_BUFFER != 0 {
                buffer = buffers.take(UInt16(truncatingIfNeeded: cqe.flags >> UInt32(IORING_CQE_BUFFER_SHIFT)))
            }
            let e = table.pointer(fd)
            guard e.pointee.open, e.pointee.generation & Self.fieldMask == generation else { return false }
            let currentArm = e.pointee.receiveSequence & Self.fieldMask == arm
            if !currentArm {
                // A receive cancelled by a pause: its data still belongs to the stream.
                if !more && e.pointee.staleReceives > 0 { e.pointee.staleReceives -= 1 }
                if result > 0 {
                    batch.append(Completion(kind: .receive, fd: fd, result: result, token: e.pointee.token, buffer: buffer))
                }
                return false
            }
            if e.pointee.detaching {
                return detachingReceive(fd, e, result: result, more: more, buffer: buffer, into: &batch)
            }
            if !more {
                e.pointee.armed = false
                if (result > 0 || result == -ENOBUFS) && e.pointee.wantsData {
                    rearm.push(fd)  // re-armed in endTurn, after the lent buffers went back
                }
            }
            if result == -ENOBUFS {
                buffers.noteStarved()
                return false
            }
            if result <= 0 { e.pointee.wantsData = false }
            batch.append(Completion(kind: .receive, fd: fd, result: result, token: e.pointee.token, buffer: result > 0 ? buffer : nil))
        case .accept:
            let e = table.pointer(fd)
            guard e.pointee.open, e.pointee.generation & Self.fieldMask == generation else {
                if result >= 0 { Glibc.close(result) }  // accepted for a listener we stopped
                return false
            }
            if !more {
                e.pointee.armed = false
                if result >= 0 && e.pointee.wantsData { submitAccept(fd, e) }
            }
            if result == -ECANCELED { return false }
            if result < 0 { e.pointee.wantsData = false }  // the handler decides when to try again
            batch.append(Completion(kind: .accept, fd: fd, result: result, token: e.pointee.token))
        case .acceptReady:
            let e = table.pointer(fd)
            guard e.pointee.open, e.pointee.generation & Self.fieldMask == generation else { return false }
            if !more {
                e.pointee.armed = false
                if e.pointee.wantsData && result != -ECANCELED { submitAccept(fd, e) }
            }
            if result < 0 {
                if result != -ECANCELED { Log.warning("io_uring poll on listener \(fd) failed: \(Log.describe(errno: -result))") }
                return false
            }
            if e.pointee.wantsData && !e.pointee.acceptPending {
                e.pointee.acceptPending = true
                acceptReady.push(fd)
            }
        case .send, .connect:
            let e = table.pointer(fd)
            guard e.pointee.open, e.pointee.generation & Self.fieldMask == generation else { return false }
            batch.append(Completion(kind: op == .send ? .send : .connect, fd: fd, result: result, token: e.pointee.token))
        case .wake:
            if !more { armWake() }
            return true
        case .message:
            batch.append(Completion(kind: .message, fd: -1, result: result, token: 0))
        case .messageSent:
            if result < 0 { Log.warning("io_uring message to another loop failed: \(Log.describe(errno: -result))") }
        case .detachCancel:
            detachCancelFailed(fd, generation, arm, result)  // successes post no completion
        default:
            break
        }
        return false
    }

    /// A completion of the receive a detach is cancelling: data, end of stream or an error is
    /// delivered (and keeps the fd here); the last one ends the detach.
    private func detachingReceive(_ fd: Int32, _ e: UnsafeMutablePointer<Entry>, result: Int32, more: Bool,
                                  buffer: UnsafeRawPointer?, into batch: inout CompletionBatch) -> Bool {
        let input = result != -ECANCELED && result != -ENOBUFS
        if input {
            e.pointee.receivedWhileDetaching = true
            if result <= 0 { e.pointee.wantsData = false }
            batch.append(Completion(kind: .receive, fd: fd, result: result, token: e.pointee.token, buffer: result > 0 ? buffer : nil))
        } else if result == -ENOBUFS {
            buffers.noteStarved()
        }
        if !more {
            e.pointee.armed = false
            finishDetach(fd, e)
        }
        return false
    }

    public func endTurn() {
        buffers.refill()
        while rearm.count > 0 {
            let fd = rearm.pop()
            let e = table.pointer(fd)
            if e.pointee.open && e.pointee.wantsData && !e.pointee.armed { submitReceive(fd, e) }
        }
    }

    public func shutdown() {
        _ = io_uring_submit_and_get_events(ring)  // queued closes still run
        io_uring_queue_exit(ring)
        ring.deallocate()
        buffers.deallocate()
        table.deallocate()
        rearm.deallocate()
        acceptReady.deallocate()
        detachesDone.deallocate()
        cqes.deallocate()
        connectAddresses.deallocate()
    }
}
