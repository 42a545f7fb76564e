import Balancers
import EventLoop
import Glibc
import HTTP1

/// Messages other threads post to a server worker.
public enum EchoMessage: AdoptingMessage {
    /// Adopt a connection accepted elsewhere (hand-off strategies).
    case adopt(fd: Int32)
    /// Adopt a connection another worker moved here (live rebalancing).
    case moved(fd: Int32)

    public static func adoptMoved(fd: Int32) -> EchoMessage { .moved(fd: fd) }
}

/// Live rebalancing settings of a server worker (`--balance ...:rebalance=N`).
struct EchoRebalancing: Sendable {
    let margin: Int
    let metric: LoadMetric
    let peers: PeerHandOff
}

/// One `ballast server` worker: owns a loop, its connections and their buffers. Parses each
/// request, answers it as the query asks (fortio echo semantics), keeps alive and pipelines.
/// Everything here runs on the worker's loop thread.
final class EchoWorker<Backend: IOBackend>: BalancedWorker {
    typealias Message = EchoMessage
    typealias Loop = EventLoop<Backend, EchoMessage>

    /// Responses queued beyond this pause receiving (a client that sends but does not read).
    static var highWater: Int { 256 * 1024 }
    static var lowWater: Int { 64 * 1024 }
    /// Largest request body accepted (echoed bodies are held whole).
    static var maxRequestBody: Int { 4 << 20 }
    /// Most unparsed input held for one connection. Above the largest request, and above what
    /// io_uring may still deliver after a pause (up to a whole provided-buffer ring, 8 MiB), so
    /// only a client that ignores backpressure on purpose reaches it.
    static var maxInputBytes: Int { 24 << 20 }
    /// How long a closing connection waits for the client's end of stream after our last byte.
    static var lingerNanos: Int64 { 2_000_000_000 }
    /// Live rebalancing: connections tried at random for an idle one when the connection at the
    /// request boundary is busy (as the simulator's `Rebalance.attempts`).
    static var moveAttempts: Int { 8 }

    /// This worker's listening socket (shared with the other workers for `shared`), or -1 when an
    /// acceptor hands connections over.
    let listener: Int32
    let index: Int
    let limits: EchoLimits
    let stats: EchoWorkerStats
    let loads: WorkerLoads
    let cost: WorkerCost?
    var lastAcceptTurn = -1
    let pool = BufferPool()
    var connections = Slab<EchoConnection>(kind: 1, empty: EchoConnection())
    var parser = RequestHeadParser()
    var cache = EchoResponseCache()
    var rng: SplitMix64
    let headerScratch: UnsafeMutableRawBufferPointer
    /// Filler for `size=` bodies, shared by every response of this worker.
    let filler: UnsafeMutableRawBufferPointer
    var loggedAcceptError = false
    /// Live rebalancing; nil: off.
    let rebalancing: EchoRebalancing?
    /// A move is due at the end of this turn (at most one per turn, like the simulator's one per
    /// request boundary).
    var moveScheduled = false
    var moveTieStart = 0
    /// A move whose detach the backend finishes later (io_uring: the connection's receive is being
    /// cancelled), with its target. Its load already counts on the target. At most one at a time.
    var pendingMove: (token: UInt64, target: Int)? = nil
    /// Live rebalancing: this worker's connection tokens (dense; `EchoConnection.memberIndex`), to
    /// pick a connection at random.
    var members: [UInt64] = []

    init(seat: WorkerSeat, limits: EchoLimits, stats: EchoWorkerStats, cost: WorkerCost?, seed: UInt64,
         balance: BalanceSpec = BalanceSpec(strategy: .reuseport)) {
        if let margin = balance.rebalanceMargin, let peers = seat.peers {
            rebalancing = EchoRebalancing(margin: margin, metric: balance.metric, peers: peers)
        } else {
            rebalancing = nil
        }
        moveTieStart = (seat.index + 1) % max(seat.loads.count, 1)
        self.index = seat.index
        self.listener = seat.listener
        self.limits = limits
        self.stats = stats
        self.loads = seat.loads
        self.cost = cost
        cost?.prepareThread()  // created on the worker's own thread
        self.rng = SplitMix64(seed: seed)
        headerScratch = .allocate(byteCount: 4096, alignment: 8)
        filler = .allocate(byteCount: max(limits.maxBodyBytes, 1), alignment: 8)
        let pattern = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n".utf8)
        for i in 0..<filler.count { filler[i] = pattern[i % pattern.count] }
        if rebalancing != nil { members.reserveCapacity(1024) }
    }

    deinit {
        headerScratch.deallocate()
        filler.deallocate()
    }

    static var listenerToken: UInt64 { WorkerSeat.listenerToken }

    // MARK: completions

    func handle(_ c: Completion, loop: Loop) {
        switch c.kind {
        case .receive: received(c, loop)
        case .send: sent(c, loop)
        case .accept: accepted(c, loop)
        case .message: adopt(c.result, loop)  // an acceptor's hand-off through the ring
        case .detach: detached(c, loop)
        case .connect: break
        }
    }

    private func accepted(_ c: Completion, _ loop: Loop) {
        guard c.result >= 0 else {
            // EMFILE and friends: say so once, and try again shortly instead of spinning.
            if !loggedAcceptError {
                loggedAcceptError = true
                Log.warning("worker \(loop.index): accept failed: \(Log.describe(errno: -c.result)); retrying every 100 ms")
            }
            loop.timers.schedule(at: loop.now + 100_000_000, id: EchoTimer.rearmAccept.id(0))
            return
        }
        if loop.turnCount != lastAcceptTurn {
            lastAcceptTurn = loop.turnCount
            bump(stats.acceptWakeups)
        }
        loads.connectionOpened(index)  // an acceptor counts its hand-offs itself
        adopt(c.result, loop)
    }

    /// Takes a connection: accepted here, handed over by an acceptor, or moved from another
    /// worker (`moved`: its load was already counted here by the worker that moved it).
    private func adopt(_ fd: Int32, _ loop: Loop, moved: Bool = false) {
        if !moved { Sockets.setNoDelay(fd) }
        var conn = EchoConnection()
        conn.fd = fd
        let token = connections.insert(conn)
        if rebalancing != nil { join(token) }
        if moved { bump(stats.movesIn) } else { bump(stats.accepted) }
        bump(stats.active)
        loop.backend.armReceive(fd: fd, token: token)
    }

    private func received(_ c: Completion, _ loop: Loop) {
        guard let conn = connections.pointer(c.token) else { return }
        if c.result <= 0 {
            if c.result < 0 || conn.pointee.lingering {
                close(c.token, loop)
                return
            }
            // End of stream: answer what was complete, then close. A partial request is dropped.
            conn.pointee.peerClosed = true
            pool.release(&conn.pointee.input)
            conn.pointee.closeAfterFlush = true
            closeIfDone(c.token, conn, loop)
            return
        }
        bump(stats.bytesIn, by: Int(c.result))
        if conn.pointee.lingering || conn.pointee.closeAfterFlush { return }  // discarded
        let bytes = c.bytes
        if conn.pointee.input.count == 0 && !conn.pointee.isHeld {
            // Fast path: parse straight from the lent receive buffer; keep only a partial tail.
            let used = serve(bytes, c.token, conn, loop)
            if used < bytes.count && !conn.pointee.closeAfterFlush {
                let tail = UnsafeRawBufferPointer(rebasing: bytes[used...])
                if !pool.append(tail, to: &conn.pointee.input) { protocolError(413, "request too large", c.token, conn, loop) }
            }
        } else {
            if conn.pointee.input.count + bytes.count > Self.maxInputBytes || !pool.append(bytes, to: &conn.pointee.input) {
                protocolError(413, "request too large", c.token, conn, loop)
            } else {
                serveBuffered(c.token, conn, loop)
            }
        }
        flush(c.token, conn, loop)
        if conn.pointee.pending.count >= Self.highWater && !conn.pointee.receivePaused {
            conn.pointee.receivePaused = true
            loop.backend.pauseReceive(fd: conn.pointee.fd)
        }
    }

    /// Serves whole requests from the connection's own input buffer and drops what was used.
    private func serveBuffered(_ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>, _ loop: Loop) {
        guard conn.pointee.input.count > 0 else { return }
        let used = serve(conn.pointee.input.bytes, token, conn, loop)
        if conn.pointee.closeAfterFlush {
            pool.release(&conn.pointee.input)
        } else {
            BufferPool.consume(used, from: &conn.pointee.input)
            if conn.pointee.input.count == 0 { pool.release(&conn.pointee.input) }
        }
    }

    private func sent(_ c: Completion, _ loop: Loop) {
        guard let conn = connections.pointer(c.token) else { return }
        guard c.result >= 0 else {
            conn.pointee.out.inFlight = false
            close(c.token, loop)
            return
        }
        bump(stats.bytesOut, by: Int(c.result))
        // A partial write sends the rest.
        guard conn.pointee.out.sent(Int(c.result), fd: conn.pointee.fd, on: loop.backend, pool: pool) else { return }
        // Requests left unanswered while output was queued high get their turn now.
        if conn.pointee.input.count > 0 && !conn.pointee.closeAfterFlush {
            serveBuffered(c.token, conn, loop)
        }
        flush(c.token, conn, loop)
        if conn.pointee.receivePaused && conn.pointee.pending.count < Self.lowWater && !conn.pointee.closeAfterFlush {
            conn.pointee.receivePaused = false
            loop.backend.resumeReceive(fd: conn.pointee.fd)
        }
        closeIfDone(c.token, conn, loop)
        if rebalancing != nil && !conn.pointee.out.inFlight { considerMove(c.token, conn, loop) }
    }

    // MARK: live rebalancing

    /// Nothing in flight, buffered, queued or held, and open both ways: the connection can move
    /// without a byte of it being lost, reordered or answered twice (what has not been read yet
    /// stays in the socket and is read by the new worker).
    private func isIdle(_ conn: UnsafeMutablePointer<EchoConnection>) -> Bool {
        conn.pointee.input.count == 0 && conn.pointee.pending.count == 0 && !conn.pointee.out.inFlight
            && !conn.pointee.isHeld && !conn.pointee.closeAfterFlush && !conn.pointee.lingering
            && !conn.pointee.peerClosed && !conn.pointee.receivePaused
    }

    private func join(_ token: UInt64) {
        guard let conn = connections.pointer(token) else { return }
        conn.pointee.memberIndex = Int32(members.count)
        members.append(token)
    }

    private func leave(_ conn: UnsafeMutablePointer<EchoConnection>) {
        let i = Int(conn.pointee.memberIndex)
        guard i >= 0 else { return }
        let last = members.removeLast()
        if i < members.count {
            members[i] = last
            connections.pointer(last)?.pointee.memberIndex = Int32(i)
        }
        conn.pointee.memberIndex = -1
    }

    private func rebalanceTarget(_ r: EchoRebalancing) -> Int? {
        Decisions.rebalanceTarget(loads.view(r.metric), from: index, margin: r.margin, tieStart: moveTieStart)
    }

    /// At a request boundary (the connection's output all sent): above the mean by more than the
    /// margin, a move is due at the end of the turn. It waits for the end of the turn because a
    /// receive for this (or any) connection may still be in this turn's batch.
    private func considerMove(_ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>, _ loop: Loop) {
        guard let r = rebalancing, !moveScheduled, pendingMove == nil, rebalanceTarget(r) != nil else { return }
        moveScheduled = true
        loop.timers.schedule(at: loop.now, id: EchoTimer.move.id(token))
    }

    /// End of the turn, still above the margin: the connection of the boundary if it is idle, else
    /// one of up to `moveAttempts` connections drawn at random (an overloaded worker's connections
    /// are seldom idle at their own boundary: the next request is already read), is detached from
    /// this loop and its fd posted to the least-loaded worker. None idle: a refusal. Every read
    /// of this turn has been handled by now, so an idle connection holds no byte the socket does
    /// not still have.
    private func move(_ token: UInt64, _ loop: Loop) {
        moveScheduled = false
        guard let r = rebalancing else { return }
        guard let target = rebalanceTarget(r) else { return }  // balanced meanwhile: nothing to do
        var chosen = connections.pointer(token)
        if let c = chosen, isIdle(c) {
            // the boundary's own connection
        } else {
            chosen = nil
            for _ in 0..<Self.moveAttempts where !members.isEmpty {
                if let c = connections.pointer(members[Int(rng.next() % UInt64(members.count))]), isIdle(c) {
                    chosen = c
                    break
                }
            }
        }
        guard let conn = chosen else {
            bump(stats.moveRefusals)
            return
        }
        let movedToken = members[Int(conn.pointee.memberIndex)]
        let progress = loop.backend.detach(fd: conn.pointee.fd)
        if progress == .refused {
            bump(stats.moveRefusals)
            return
        }
        moveTieStart = (target + 1) % loads.count
        // Counted at once on both sides, so the next decision (here or elsewhere) sees the move.
        loads.connectionClosed(index)
        loads.connectionOpened(target)
        if progress == .done {
            handOff(movedToken, conn, to: target, r)
        } else {
            pendingMove = (movedToken, target)  // the `.detach` completion finishes it
        }
    }

    /// The backend finished a pending detach: 0, the fd is ours alone to pass on; otherwise input
    /// arrived while its receive was being cancelled (already served, in order), so the connection
    /// stays, and the move is a refusal.
    private func detached(_ c: Completion, _ loop: Loop) {
        guard let move = pendingMove, move.token == c.token, let r = rebalancing,
              let conn = connections.pointer(c.token) else { return }
        pendingMove = nil
        if c.result == 0 && isIdle(conn) {
            handOff(c.token, conn, to: move.target, r)
            return
        }
        if c.result == 0 { loop.backend.armReceive(fd: conn.pointee.fd, token: c.token) }  // detached, yet busy: keep it
        loads.connectionClosed(move.target)
        loads.connectionOpened(index)
        bump(stats.moveRefusals)
    }

    /// The detached connection leaves this worker (its buffers are empty) and its fd goes to the
    /// target's mailbox. Its load was moved already.
    private func handOff(_ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>, to target: Int, _ r: EchoRebalancing) {
        let fd = conn.pointee.fd
        pool.release(&conn.pointee.input)
        conn.pointee.out.release(to: pool)
        leave(conn)
        connections.remove(token)
        bump(stats.active, by: -1)
        bump(stats.movesOut)
        r.peers.move(fd: fd, to: target)
    }

    // MARK: requests

    /// Answers every whole request at the start of `bytes`; returns how many bytes they used.
    /// Stops early at a delayed response, at Connection: close, or when too much output waits.
    private func serve(_ bytes: UnsafeRawBufferPointer, _ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>, _ loop: Loop) -> Int {
        var offset = 0
        while offset < bytes.count && !conn.pointee.isHeld && !conn.pointee.closeAfterFlush
            && conn.pointee.pending.count < Self.highWater {
            let request = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            let used = serveOne(request, token, conn, loop)
            if used == 0 { break }
            offset += used
        }
        return offset
    }

    /// Answers one request if it is complete; returns the bytes it used (0: incomplete).
    private func serveOne(_ request: UnsafeRawBufferPointer, _ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>, _ loop: Loop) -> Int {
        parser.reset()
        let headLength: Int
        switch parser.parse(request) {
        case .incomplete:
            return 0
        case let .failure(error):
            protocolError(error.status, error.kind.reason, token, conn, loop)
            return request.count
        case let .complete(length):
            headLength = length
        }
        // The body must be here whole (it may be echoed).
        var bodyRange = headLength..<headLength
        var total = headLength
        var chunked = false
        switch parser.bodyFraming {
        case .none, .untilClose:
            break
        case let .contentLength(n):
            if n > Self.maxRequestBody {
                protocolError(413, "request body too large", token, conn, loop)
                return request.count
            }
            if request.count < headLength + n {
                sendContinueIfAsked(token, conn, loop)
                return 0
            }
            bodyRange = headLength..<headLength + n
            total = headLength + n
        case .chunked:
            switch ChunkedBody.measure(request, from: headLength, limit: Self.maxRequestBody) {
            case .incomplete:
                if request.count - headLength > Self.maxRequestBody * 2 {
                    protocolError(413, "request body too large", token, conn, loop)
                    return request.count
                }
                sendContinueIfAsked(token, conn, loop)
                return 0
            case let .invalid(status, reason):
                protocolError(status, reason, token, conn, loop)
                return request.count
            case let .complete(end, _):
                bodyRange = headLength..<end
                total = end
                chunked = true
            }
        }
        conn.pointee.sentContinue = false
        bump(stats.requests)
        loads.requestStarted(index)
        defer { if !conn.pointee.isHeld { loads.requestsFinished(index) } }
        if let cost { cost.spend(using: &rng) }
        let query = parser.queryRange.map { UnsafeRawBufferPointer(rebasing: request[$0]) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
        let flags = EchoResponseCache.flags(isHEAD: parser.method == .head, http10: parser.version == .http1_0, keepAlive: parser.keepAlive)
        let cacheable = bodyRange.isEmpty && EchoResponseCache.cacheable(query)
        if cacheable, let cached = cache.lookup(query, flags: flags) {
            let start = conn.pointee.pending.count
            guard pool.append(cached, to: &conn.pointee.pending) else {
                protocolError(500, "response too large", token, conn, loop)
                return request.count
            }
            finishResponse(start: start, keepAlive: parser.keepAlive && !cache.closeAfter, delayNanos: cache.delayNanos, token, conn, loop)
            return total
        }
        switch EchoQuery.plan(query: query, limits: limits, rng: &rng, headerScratch: headerScratch) {
        case let .invalid(reason):
            bump(stats.badRequests)
            writeSimple(400, reason, keepAlive: parser.keepAlive, token, conn)
            if !parser.keepAlive { conn.pointee.closeAfterFlush = true }
        case let .plan(plan):
            if let problem = EchoResponse.check(plan, scratch: UnsafeRawBufferPointer(headerScratch)) {
                bump(stats.badRequests)
                writeSimple(400, problem, keepAlive: parser.keepAlive, token, conn)
                if !parser.keepAlive { conn.pointee.closeAfterFlush = true }
                break
            }
            let keepAlive = parser.keepAlive && !plan.closeAfter
            let start = conn.pointee.pending.count
            let body: EchoResponse.Body
            if let size = plan.bodySize {
                body = .filler(UnsafeRawBufferPointer(rebasing: filler[0..<min(size, filler.count)]))
            } else if chunked {
                body = .chunked(UnsafeRawBufferPointer(rebasing: request[bodyRange]))
            } else {
                body = .plain(UnsafeRawBufferPointer(rebasing: request[bodyRange]))
            }
            let ok = EchoResponse.write(plan: plan, body: body, isHEAD: parser.method == .head,
                                        version: parser.version, keepAlive: keepAlive,
                                        scratch: UnsafeRawBufferPointer(headerScratch), into: &conn.pointee.pending, pool: pool)
            if !ok {
                protocolError(500, "response too large", token, conn, loop)
                return request.count
            }
            if cacheable && plan.extraHeaderCount == 0 {
                let written = UnsafeRawBufferPointer(rebasing: conn.pointee.pending.bytes[start...])
                cache.store(query, flags: flags, response: written, closeAfter: plan.closeAfter, delayNanos: plan.delayNanos)
            }
            finishResponse(start: start, keepAlive: keepAlive, delayNanos: plan.delayNanos, token, conn, loop)
        }
        return total
    }

    /// After a response was appended at `start`: close after it, or hold it for its delay.
    private func finishResponse(start: Int, keepAlive: Bool, delayNanos: Int64, _ token: UInt64,
                                _ conn: UnsafeMutablePointer<EchoConnection>, _ loop: Loop) {
        if !keepAlive { conn.pointee.closeAfterFlush = true }
        if delayNanos > 0 {
            conn.pointee.holdOffset = start
            loop.timers.schedule(at: loop.now + delayNanos, id: EchoTimer.delay.id(token))
        }
    }

    private func sendContinueIfAsked(_ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>, _ loop: Loop) {
        guard parser.expectsContinue, !conn.pointee.sentContinue, parser.version == .http1_1 else { return }
        conn.pointee.sentContinue = true
        _ = EchoResponse.appendLiteral("HTTP/1.1 100 Continue\r\n\r\n", to: &conn.pointee.pending, pool: pool)
    }

    /// A response with a short text body.
    private func writeSimple(_ status: Int, _ reason: StaticString, keepAlive: Bool, _ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>) {
        _ = EchoResponse.writeError(status, reason, keepAlive: keepAlive, into: &conn.pointee.pending, pool: pool)
    }

    /// Malformed input: answer with the status, then close (after the client's end of stream).
    private func protocolError(_ status: Int, _ reason: StaticString, _ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>, _ loop: Loop) {
        bump(stats.badRequests)
        writeSimple(status, reason, keepAlive: false, token, conn)
        conn.pointee.closeAfterFlush = true
        pool.release(&conn.pointee.input)
    }

    // MARK: output

    /// Hands the sendable part of `pending` to the kernel when no send is outstanding.
    private func flush(_ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>, _ loop: Loop) {
        let sendable = conn.pointee.isHeld ? conn.pointee.holdOffset : conn.pointee.pending.count
        let partial = sendable < conn.pointee.pending.count
        // All of it goes out without a copy; a part (before a held response) is copied.
        if conn.pointee.out.flush(fd: conn.pointee.fd, on: loop.backend, limit: sendable, pool: pool) && partial {
            conn.pointee.holdOffset -= sendable
        }
    }

    /// After the last byte of a closing connection: half-close and wait briefly for the client's
    /// end of stream, so unread request bytes do not turn our close into a reset that destroys
    /// the response in flight.
    private func closeIfDone(_ token: UInt64, _ conn: UnsafeMutablePointer<EchoConnection>, _ loop: Loop) {
        guard conn.pointee.closeAfterFlush, !conn.pointee.out.inFlight, conn.pointee.pending.count == 0,
              !conn.pointee.isHeld, !conn.pointee.lingering else { return }
        if conn.pointee.peerClosed {
            close(token, loop)
            return
        }
        conn.pointee.lingering = true
        Glibc.shutdown(conn.pointee.fd, Int32(SHUT_WR))
        if conn.pointee.receivePaused {
            conn.pointee.receivePaused = false
            loop.backend.resumeReceive(fd: conn.pointee.fd)
        }
        loop.timers.schedule(at: loop.now + Self.lingerNanos, id: EchoTimer.linger.id(token))
    }

    private func close(_ token: UInt64, _ loop: Loop) {
        guard let conn = connections.pointer(token) else { return }
        if conn.pointee.isHeld { loads.requestsFinished(index) }
        if let move = pendingMove, move.token == token {
            // Closed while its detach was pending (the peer closed meanwhile): its load counted on
            // the target already; the move ends as a refusal.
            pendingMove = nil
            loads.connectionClosed(move.target)
            bump(stats.moveRefusals)
        } else {
            loads.connectionClosed(index)
        }
        loop.backend.close(fd: conn.pointee.fd)
        pool.release(&conn.pointee.input)
        conn.pointee.out.release(to: pool)
        if rebalancing != nil { leave(conn) }
        connections.remove(token)
        bump(stats.active, by: -1)
    }

    // MARK: timers and messages

    func timerFired(_ id: UInt64, loop: Loop) {
        let (kind, token) = EchoTimer.split(id)
        switch kind {
        case .delay:
            guard let conn = connections.pointer(token), conn.pointee.isHeld else { return }
            conn.pointee.holdOffset = -1
            loads.requestsFinished(index)
            serveBuffered(token, conn, loop)
            flush(token, conn, loop)
            closeIfDone(token, conn, loop)
        case .linger:
            guard let conn = connections.pointer(token), conn.pointee.lingering else { return }
            close(token, loop)
        case .move:
            move(token, loop)
        case .rearmAccept:
            loggedAcceptError = false
            if listener >= 0 { loop.backend.armAccept(listener: listener, token: Self.listenerToken) }
        case nil:
            break
        }
    }

    func received(_ message: EchoMessage, loop: Loop) {
        switch message {
        case let .adopt(fd): adopt(fd, loop)
        case let .moved(fd): adopt(fd, loop, moved: true)
        }
    }

    func stopping(loop: Loop) {
        var tokens: [UInt64] = []
        connections.forEachToken { tokens.append($0) }
        for token in tokens { close(token, loop) }
        // Listening sockets belong to the server (several workers may share one).
    }
}
