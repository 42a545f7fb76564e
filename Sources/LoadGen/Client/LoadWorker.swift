import Balancers
import EventLoop
import Glibc
import HTTP1
import Synchronization

/// Messages the main thread posts to a load thread.
public enum LoadMessage: Sendable {
    /// Stop now: close every connection; requests in flight are not recorded.
    case stop
}

/// What one load thread does, fixed before it starts (times are monotonic nanoseconds).
struct LoadWorkerPlan: Sendable {
    var index: Int
    /// Global index of this thread's first connection, and how many it drives.
    var firstConnection: Int
    var connectionCount: Int
    /// All connections of the run (for the uniform stagger).
    var totalConnections: Int
    /// Measured requests this thread may start (`-n` share); 0 = no count limit.
    var budget: Int
    var startNanos: Int64
    /// Requests starting (or intended) before this are warm-up: sent, not recorded.
    var measureStartNanos: Int64
    /// No request starts (closed loop) or is scheduled (open loop) at or after this.
    var endNanos: Int64
    /// Open loop: time between two requests of one connection; 0 = closed loop.
    var intervalNanos: Int64
    var timeoutNanos: Int64
    var uniform: Bool
    var jitter: Bool
    /// Closed loop: connections open spread over this time (`-ramp`); 0 = all at once.
    var rampNanos: Int64 = 0
    var abortOn: Int
    var seed: UInt64
}

/// State shared between one load thread and the main thread. The atomics are written by the
/// load thread only (single writer) and read by the main thread for progress. `tally` and
/// `failure` are written by the load thread before it ends and read after it was joined.
final class LoadWorkerShared: @unchecked Sendable {
    let calls = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let done = Atomic<Bool>(false)
    /// 0 starting, 1 running, -1 failed to start (see `failure`).
    let state = Atomic<Int>(0)
    var failure: String?
    var tally: LoadTally?
}

/// Run-wide flags any thread may set.
final class LoadRunControl: Sendable {
    /// Set by the thread that saw the `-abort-on` code; the main thread then stops everyone.
    let abortRequested = Atomic<Bool>(false)
}

/// The mutable scalars of a worker, behind a pointer so the hot path has no exclusivity checks.
struct LoadWorkerState {
    var parser = ResponseHeadParser()
    var budgetLeft = 0
    var active = 0
    var stopping = false
    var rng: SplitMix64
}

/// One load thread: drives its share of the connections on its own event loop, closed or open
/// loop, and records into its own tally. Everything here runs on the loop's thread.
final class LoadWorker<Backend: IOBackend>: LoopHandler {
    typealias Message = LoadMessage
    typealias Loop = EventLoop<Backend, LoadMessage>

    /// Delay before a connection retries after its connect failed (closed loop), so a refused
    /// port does not turn into a busy loop.
    static var retryNanos: Int64 { 10_000_000 }
    /// Largest response head accepted.
    static var maxHeadBytes: Int { 64 * 1024 }
    /// Open loop: requests still owed when the run's time is up are sent for at most this long.
    static var graceNanos: Int64 { 1_000_000_000 }

    let plan: LoadWorkerPlan
    let shared: LoadWorkerShared
    let control: LoadRunControl
    let request: LoadRequest
    let address: SocketAddress
    let keepAlive: Bool
    let pool = BufferPool(keepPerClass: 64)
    let connections: UnsafeMutablePointer<LoadConnection>
    let count: Int
    let state: UnsafeMutablePointer<LoadWorkerState>
    let tally: UnsafeMutablePointer<LoadTally>
    let openLoop: Bool
    let budgeted: Bool

    init(plan: LoadWorkerPlan, options: LoadOptions, shared: LoadWorkerShared, control: LoadRunControl) {
        self.plan = plan
        self.shared = shared
        self.control = control
        self.request = LoadRequest(options: options)
        self.address = options.url.address
        self.keepAlive = options.keepAlive
        count = plan.connectionCount
        connections = .allocate(capacity: count)
        connections.initialize(repeating: LoadConnection(), count: count)
        state = .allocate(capacity: 1)
        state.initialize(to: LoadWorkerState(budgetLeft: plan.budget, active: count, rng: SplitMix64(seed: plan.seed &+ UInt64(plan.index))))
        tally = .allocate(capacity: 1)
        tally.initialize(to: LoadTally(connections: count, resolution: options.resolution))
        openLoop = plan.intervalNanos > 0
        budgeted = plan.budget > 0
    }

    deinit {
        connections.deinitialize(count: count)
        connections.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
        tally.deinitialize(count: 1)
        tally.deallocate()
    }

    @inline(__always)
    func token(_ i: Int) -> UInt64 { UInt64(connections[i].generation) << 32 | UInt64(i) }

    /// The connection of a completion, or nil when it belongs to a socket that is gone.
    @inline(__always)
    func connection(_ token: UInt64) -> Int? {
        let i = Int(UInt32(truncatingIfNeeded: token))
        guard i < count, connections[i].generation == UInt32(truncatingIfNeeded: token >> 32), connections[i].fd >= 0 else { return nil }
        return i
    }

    // MARK: start and end

    /// Starts every connection (closed loop) or schedules its first request (open loop).
    func begin(loop: Loop) {
        if count == 0 { finishWorker(loop); return }
        let now = monotonicNanos()
        for i in 0..<count {
            if openLoop {
                let first = plan.startNanos + staggerNanos(i)
                schedule(i, intended: first, now: now, loop)
            } else if plan.rampNanos > 0 {
                // -ramp: connection k of c opens k/c of the ramp after the start.
                let at = plan.startNanos + plan.rampNanos * Int64(plan.firstConnection + i) / Int64(max(1, plan.totalConnections))
                if at <= now {
                    start(i, now: now, intended: now, loop)
                } else if at >= plan.endNanos {
                    finish(i, loop)  // due after the run: never opened
                } else {
                    connections[i].phase = .idle
                    wake(i, at: at, loop)
                }
            } else {
                start(i, now: now, intended: now, loop)
            }
        }
    }

    /// Uniform mode spreads the connections' first requests over one interval.
    func staggerNanos(_ i: Int) -> Int64 {
        guard plan.uniform, plan.totalConnections > 0 else { return 0 }
        return plan.intervalNanos * Int64(plan.firstConnection + i) / Int64(plan.totalConnections)
    }

    /// A connection is done for this run.
    func finish(_ i: Int, _ loop: Loop) {
        let c = connections + i
        guard c.pointee.phase != .finished else { return }
        closeSocket(i, loop)
        c.pointee.phase = .finished
        c.pointee.wakeAt = 0
        state.pointee.active -= 1
        if state.pointee.active == 0 { finishWorker(loop) }
    }

    func finishWorker(_ loop: Loop) {
        shared.done.store(true, ordering: .releasing)
        loop.mailbox.requestStop()
    }

    func closeSocket(_ i: Int, _ loop: Loop) {
        let c = connections + i
        if c.pointee.fd >= 0 {
            loop.backend.close(fd: c.pointee.fd)
            c.pointee.fd = -1
        }
        c.pointee.connecting = false
        c.pointee.sendInFlight = false
        c.pointee.awaitingSendCompletion = false
        pool.release(&c.pointee.input)
    }

    // MARK: scheduling

    /// Open loop: the request intended at `intended` starts now if due, else when due.
    /// `notBefore` delays the start (a retry after a failed connect) without moving the schedule.
    func schedule(_ i: Int, intended: Int64, now: Int64, notBefore: Int64 = 0, _ loop: Loop) {
        let c = connections + i
        if intended >= plan.endNanos || (plan.endNanos != Int64.max && now >= plan.endNanos + Self.graceNanos) || state.pointee.stopping {
            finish(i, loop)
            return
        }
        c.pointee.intendedNanos = intended
        let due = max(intended, notBefore)
        if due <= now {
            start(i, now: now, intended: intended, loop)
        } else {
            c.pointee.phase = .idle
            wake(i, at: due, loop)
        }
    }

    /// What a connection does after a call: the next request now, later, or nothing.
    func next(_ i: Int, now: Int64, retryAfter delay: Int64 = 0, _ loop: Loop) {
        let c = connections + i
        c.pointee.phase = .idle
        c.pointee.wakeAt = 0
        if state.pointee.stopping { finish(i, loop); return }
        if openLoop {
            c.pointee.sequence += 1
            var intended = plan.startNanos + staggerNanos(i) + c.pointee.sequence * plan.intervalNanos
            if plan.jitter {
                // +/- 10% of the interval around the schedule point, never accumulated.
                let span = UInt64(max(1, plan.intervalNanos / 5))
                intended += Int64(state.pointee.rng.next() % span) - Int64(span / 2)
            }
            schedule(i, intended: intended, now: now, notBefore: delay > 0 ? now + delay : 0, loop)
            return
        }
        if now >= plan.endNanos { finish(i, loop); return }
        if delay > 0 {
            wake(i, at: now + delay, loop)
        } else {
            start(i, now: now, intended: now, loop)
        }
    }

    /// Begins a request: counts it against the budget, then connects or sends.
    func start(_ i: Int, now: Int64, intended: Int64, _ loop: Loop) {
        let c = connections + i
        let measured = intended >= plan.measureStartNanos
        if budgeted && measured {
            if state.pointee.budgetLeft == 0 { finish(i, loop); return }
            state.pointee.budgetLeft -= 1
        }
        c.pointee.phase = .busy
        c.pointee.measured = measured
        c.pointee.startNanos = now
        c.pointee.intendedNanos = intended
        c.pointee.response = .head
        c.pointee.status = 0
        c.pointee.headerBytes = 0
        c.pointee.totalBytes = 0
        if openLoop && measured && now - intended > plan.intervalNanos { tally.pointee.lateStarts += 1 }
        wake(i, at: now + plan.timeoutNanos, loop)
        if c.pointee.fd >= 0 {
            sendRequest(i, loop)
        } else {
            openSocket(i, loop)
        }
    }

    func openSocket(_ i: Int, _ loop: Loop) {
        let c = connections + i
        let fd: Int32
        do {
            fd = try Sockets.makeStream(family: address.family)
        } catch {
            fail(i, LoadErrorKind.from(errno: error.errno), connectStage: true, loop)
            return
        }
        Sockets.setNoDelay(fd)
        c.pointee.generation &+= 1
        c.pointee.fd = fd
        c.pointee.connecting = true
        tally.pointee.socketsPerConnection[i] &+= 1
        loop.backend.connect(fd: fd, token: token(i), address: address)
    }

    @inline(__always)
    func sendRequest(_ i: Int, _ loop: Loop) {
        let c = connections + i
        c.pointee.sendOffset = 0
        c.pointee.sendInFlight = true
        loop.backend.send(fd: c.pointee.fd, bytes: request.base, count: request.count)
    }

    // MARK: timers

    /// Asks for `timerFired` at `deadline`, keeping at most one live heap entry per connection
    /// (an entry that fires early re-arms itself for the connection's current `wakeAt`).
    @inline(__always)
    func wake(_ i: Int, at deadline: Int64, _ loop: Loop) {
        let c = connections + i
        c.pointee.wakeAt = deadline
        if c.pointee.timerAt != 0 && c.pointee.timerAt <= deadline { return }
        c.pointee.timerSequence &+= 1
        c.pointee.timerAt = deadline
        loop.timers.schedule(at: deadline, id: LoadTimer.id(connection: i, sequence: c.pointee.timerSequence))
    }

    func timerFired(_ id: UInt64, loop: Loop) {
        let (i, sequence) = LoadTimer.split(id)
        guard i < count else { return }
        let c = connections + i
        guard c.pointee.timerSequence == sequence, c.pointee.timerAt != 0 else { return }  // superseded
        c.pointee.timerAt = 0
        let wakeAt = c.pointee.wakeAt
        guard wakeAt != 0 else { return }
        let now = monotonicNanos()
        if now < wakeAt {
            wake(i, at: wakeAt, loop)
            return
        }
        c.pointee.wakeAt = 0
        switch c.pointee.phase {
        case .idle:
            if openLoop {
                schedule(i, intended: c.pointee.intendedNanos, now: now, loop)
            } else {
                next(i, now: now, loop)
            }
        case .busy:
            fail(i, .timeout, loop)
        case .finished:
            break
        }
    }

    // MARK: completions

    func handle(_ completion: Completion, loop: Loop) {
        guard let i = connection(completion.token) else { return }
        switch completion.kind {
        case .receive: received(i, completion, loop)
        case .send: sent(i, completion.result, loop)
        case .connect: connected(i, completion.result, loop)
        case .accept, .message, .detach: break
        }
    }

    func connected(_ i: Int, _ result: Int32, _ loop: Loop) {
        let c = connections + i
        guard c.pointee.connecting else { return }
        c.pointee.connecting = false
        if result < 0 {
            fail(i, LoadErrorKind.from(errno: -result), connectStage: true, loop)
            return
        }
        loop.backend.armReceive(fd: c.pointee.fd, token: token(i))
        sendRequest(i, loop)
    }

    func sent(_ i: Int, _ result: Int32, _ loop: Loop) {
        let c = connections + i
        guard c.pointee.sendInFlight else { return }
        c.pointee.sendInFlight = false
        if result < 0 {
            if c.pointee.phase == .busy { fail(i, LoadErrorKind.from(errno: -result), loop) } else { closeSocket(i, loop) }
            return
        }
        c.pointee.sendOffset += Int(result)
        if c.pointee.sendOffset < request.count {
            c.pointee.sendInFlight = true
            loop.backend.send(fd: c.pointee.fd, bytes: request.base + c.pointee.sendOffset, count: request.count - c.pointee.sendOffset)
            return
        }
        if c.pointee.awaitingSendCompletion {
            c.pointee.awaitingSendCompletion = false
            next(i, now: monotonicNanos(), loop)
        }
    }

    func received(_ i: Int, _ completion: Completion, _ loop: Loop) {
        let c = connections + i
        if completion.result <= 0 {
            guard c.pointee.phase == .busy, !c.pointee.awaitingSendCompletion else {
                // The server closed an idle keep-alive connection: the next request reconnects.
                closeSocket(i, loop)
                return
            }
            if completion.result == 0 && c.pointee.response == .untilClose {
                complete(i, reusable: false, loop)
            } else {
                fail(i, completion.result == 0 ? .closed : LoadErrorKind.from(errno: -completion.result), loop)
            }
            return
        }
        guard c.pointee.phase == .busy, !c.pointee.awaitingSendCompletion else {
            closeSocket(i, loop)  // bytes nobody asked for: the connection is out of step
            return
        }
        consume(i, completion.bytes, loop)
    }

    /// Feeds received bytes to the current response; completes it when its end is reached.
    func consume(_ i: Int, _ bytes: UnsafeRawBufferPointer, _ loop: Loop) {
        let c = connections + i
        var rest = bytes
        var restIsInput = false  // `rest` points into the connection's input buffer
        while true {
            switch c.pointee.response {
            case .head:
                var view = rest
                if restIsInput {
                    view = c.pointee.input.bytes
                } else if c.pointee.input.count > 0 {
                    guard pool.append(rest, to: &c.pointee.input) else { fail(i, .malformed, loop); return }
                    view = c.pointee.input.bytes
                    restIsInput = true
                }
                state.pointee.parser.reset()
                switch state.pointee.parser.parse(view) {
                case .incomplete:
                    if !restIsInput && !pool.append(view, to: &c.pointee.input) { fail(i, .malformed, loop); return }
                    if c.pointee.input.count > Self.maxHeadBytes { fail(i, .malformed, loop) }
                    return
                case .failure:
                    fail(i, .malformed, loop)
                    return
                case let .complete(headLength):
                    c.pointee.headerBytes += headLength
                    c.pointee.totalBytes += headLength
                    if restIsInput {
                        BufferPool.consume(headLength, from: &c.pointee.input)
                        rest = c.pointee.input.bytes
                    } else {
                        rest = UnsafeRawBufferPointer(rebasing: view[headLength...])
                    }
                    if state.pointee.parser.isInformational { continue }  // 1xx: the final head follows
                    c.pointee.status = state.pointee.parser.statusCode
                    c.pointee.responseKeepAlive = state.pointee.parser.keepAlive
                    switch state.pointee.parser.bodyFraming {
                    case .none:
                        return finishResponse(i, extra: rest.count, loop)
                    case let .contentLength(n):
                        if n == 0 { return finishResponse(i, extra: rest.count, loop) }
                        c.pointee.bodyRemaining = n
                        c.pointee.response = .contentLength
                    case .chunked:
                        c.pointee.chunked.reset()
                        c.pointee.response = .chunked
                    case .untilClose:
                        c.pointee.response = .untilClose
                    }
                }
            case .contentLength:
                let take = min(c.pointee.bodyRemaining, rest.count)
                c.pointee.bodyRemaining -= take
                c.pointee.totalBytes += take
                if c.pointee.bodyRemaining == 0 { return finishResponse(i, extra: rest.count - take, loop) }
                releaseInputIfUsed(c, restIsInput)
                return
            case .chunked:
                while rest.count > 0 {
                    switch c.pointee.chunked.decode(rest) {
                    case let .data(_, consumed), let .needMore(consumed):
                        c.pointee.totalBytes += consumed
                        rest = UnsafeRawBufferPointer(rebasing: rest[consumed...])
                    case let .done(consumed):
                        c.pointee.totalBytes += consumed
                        return finishResponse(i, extra: rest.count - consumed, loop)
                    case .failure:
                        fail(i, .malformed, loop)
                        return
                    }
                }
                releaseInputIfUsed(c, restIsInput)
                return
            case .untilClose:
                c.pointee.totalBytes += rest.count
                releaseInputIfUsed(c, restIsInput)
                return
            }
        }
    }

    @inline(__always)
    func releaseInputIfUsed(_ c: UnsafeMutablePointer<LoadConnection>, _ used: Bool) {
        if used { pool.release(&c.pointee.input) }
    }

    /// The response ended; `extra` bytes followed it that no request asked for.
    func finishResponse(_ i: Int, extra: Int, _ loop: Loop) {
        complete(i, reusable: extra == 0, loop)
    }

    /// Records a whole response and moves the connection on.
    func complete(_ i: Int, reusable: Bool, _ loop: Loop) {
        let c = connections + i
        let now = monotonicNanos()
        let status = c.pointee.status
        if c.pointee.measured {
            tally.pointee.record(status: status, latencyNanos: now - c.pointee.startNanos,
                                 correctedNanos: openLoop ? now - c.pointee.intendedNanos : nil,
                                 headerBytes: c.pointee.headerBytes, totalBytes: c.pointee.totalBytes)
            tally.pointee.perConnection[i] &+= 1
            tally.pointee.lastCompletionNanos = now
        } else {
            tally.pointee.warmupCalls += 1
        }
        bump(shared.calls)
        pool.release(&c.pointee.input)
        c.pointee.response = .head
        if plan.abortOn == status { abortRun(loop) }
        if !(reusable && keepAlive && c.pointee.responseKeepAlive) {
            closeSocket(i, loop)
        } else if c.pointee.sendInFlight {
            c.pointee.phase = .idle
            c.pointee.wakeAt = 0
            c.pointee.awaitingSendCompletion = true
            return
        }
        next(i, now: now, loop)
    }

    /// A call that ended without a response: recorded as fortio's code -1 with its error kind.
    func fail(_ i: Int, _ kind: LoadErrorKind, connectStage: Bool = false, _ loop: Loop) {
        let c = connections + i
        let now = monotonicNanos()
        if c.pointee.measured {
            tally.pointee.errorKinds[kind.rawValue] &+= 1
            tally.pointee.record(status: -1, latencyNanos: now - c.pointee.startNanos,
                                 correctedNanos: openLoop ? now - c.pointee.intendedNanos : nil,
                                 headerBytes: c.pointee.headerBytes, totalBytes: c.pointee.totalBytes)
            tally.pointee.perConnection[i] &+= 1
            tally.pointee.lastCompletionNanos = now
        } else {
            tally.pointee.warmupCalls += 1
        }
        bump(shared.calls)
        bump(shared.errors)
        closeSocket(i, loop)
        c.pointee.response = .head
        if plan.abortOn == -1 { abortRun(loop) }
        next(i, now: now, retryAfter: connectStage ? Self.retryNanos : 0, loop)
    }

    // MARK: stopping

    func abortRun(_ loop: Loop) {
        tally.pointee.aborted = true
        control.abortRequested.store(true, ordering: .releasing)
        state.pointee.stopping = true
    }

    func stopAll(_ loop: Loop) {
        state.pointee.stopping = true
        for i in 0..<count { finish(i, loop) }
    }

    func received(_ message: LoadMessage, loop: Loop) {
        switch message {
        case .stop: stopAll(loop)
        }
    }

    func stopping(loop: Loop) {
        for i in 0..<count where connections[i].fd >= 0 { closeSocket(i, loop) }
        shared.tally = tally.pointee
    }
}
