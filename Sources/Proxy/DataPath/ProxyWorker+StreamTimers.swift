import EventLoop
import HTTP1

/// The HTTP connection manager's per-request timers, as Envoy 1.40 runs them (checked against it
/// in Tests/DifferentialTests): both start with the request's first byte (a partial head already
/// counts; further head bytes do not push the idle timer back, the completed head does).
/// - `request_timeout`: the whole request must arrive in time, else 408 "request timeout"
///   (details request_overall_timeout, no flag), counted in downstream_rq_timeout.
/// - stream idle (`stream_idle_timeout`, default 5 min, or the route's `idle_timeout` once
///   routed): pushed back by the whole head, request body bytes and response bytes; when it expires,
///   SI / stream_idle_timeout, counted in downstream_rq_idle_timeout: 408 "stream timeout" while
///   the request is incomplete, 504 once it is complete and no response started, and a reset
///   (connection closed) after the response head went out.
extension ProxyWorker {
    /// The request's first bytes: its timers start (once per request).
    func beginRequestTimers(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard !d.pointee.requestTimersStarted, let http = hcm(d) else { return }
        d.pointee.requestTimersStarted = true
        // `arm` only compares with the entry already in the heap (usually earlier: the previous
        // request's idle deadline), so a request normally adds no heap entry.
        if let t = http.requestTimeoutNanos {
            d.pointee.requestDeadline = loop.now + t
            d.pointee.timer.arm(d.pointee.requestDeadline, id: token, in: &loop.timers)
        }
        d.pointee.streamIdleNanos = http.streamIdleTimeoutNanos ?? 0
        if d.pointee.streamIdleNanos != 0 {
            d.pointee.streamIdleDeadline = loop.now + d.pointee.streamIdleNanos
            d.pointee.timer.arm(d.pointee.streamIdleDeadline, id: token, in: &loop.timers)
        }
    }

    /// Activity on the stream (head, body, response bytes): the idle deadline moves later. The
    /// timer entry already in the heap fires early, finds nothing due and re-arms.
    @inline(__always)
    func touchStreamIdle(_ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        if d.pointee.streamIdleNanos != 0 { d.pointee.streamIdleDeadline = loop.now + d.pointee.streamIdleNanos }
    }

    /// The route's `idle_timeout` replaces the stream idle timeout (0s: none for this stream).
    func applyRouteIdleTimeout(_ nanos: Int64?, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        guard let nanos else { return }
        d.pointee.streamIdleNanos = nanos
        d.pointee.streamIdleDeadline = nanos == 0 ? 0 : loop.now + nanos
        d.pointee.timer.arm(d.pointee.streamIdleDeadline, id: token, in: &loop.timers)
    }

    /// The request ended (its stream ended, or it was read whole: `requestDeadline` only).
    func stopRequestTimers(_ d: UnsafeMutablePointer<Downstream>) {
        d.pointee.requestTimersStarted = false
        d.pointee.requestDeadline = 0
        d.pointee.streamIdleDeadline = 0
        d.pointee.streamIdleNanos = 0
    }

    /// Acts on the request timers due at `now` (`request_timeout` first, as Envoy's fires first
    /// when both are due). True when one of them ended the request.
    func requestTimersFired(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ now: Int64, _ loop: Loop) -> Bool {
        guard d.pointee.requestDeadline != 0 || d.pointee.streamIdleDeadline != 0 else { return false }
        // A request is in progress: an active stream, or a partial head at the front of the input.
        guard d.pointee.hasStream || (d.pointee.state == .open && d.pointee.input.count > 0) else {
            stopRequestTimers(d)
            return false
        }
        if d.pointee.requestDeadline != 0 && d.pointee.requestDeadline <= now {
            d.pointee.requestDeadline = 0
            requestTimedOut(token, d, loop)
            return true
        }
        if d.pointee.streamIdleDeadline != 0 && d.pointee.streamIdleDeadline <= now {
            d.pointee.streamIdleDeadline = 0
            streamIdleTimedOut(token, d, loop)
            return true
        }
        return false
    }

    /// `request_timeout` expired before the whole request arrived.
    func requestTimedOut(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        inc(httpStats(d).downstreamRqTimeout)
        endTimedOutRequest(408, LocalReplyText.requestTimeout, flags: [], details: .requestOverallTimeout, token, d, loop)
    }

    /// The stream idle timeout expired.
    func streamIdleTimedOut(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        inc(httpStats(d).downstreamRqIdleTimeout)
        let complete = stream(of: d)?.pointee.requestComplete ?? false
        endTimedOutRequest(complete ? 504 : 408, LocalReplyText.streamTimeout, flags: .streamIdleTimeout,
                           details: .streamIdleTimeout, token, d, loop)
    }

    /// A local reply for a timed-out request (a partial head gets a stream for it), or a reset
    /// when its response already started; the upstream exchange, if any, is abandoned.
    private func endTimedOutRequest(_ status: Int, _ body: StaticString, flags: ResponseFlags, details: ResponseDetails,
                                    _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        if !d.pointee.hasStream {
            pool.release(&d.pointee.input)
            d.pointee.headProgress = RequestHeadProgress()
            d.pointee.headDeadline = 0
            d.pointee.beginClosing()
            beginLocalStream(d, loop)
        }
        let s = stream(of: d)!
        abandonUpstream(s, loop)
        if s.pointee.responseHeadDone {
            s.pointee.flags.formUnion(flags)
            s.pointee.details = details
            d.pointee.beginClosing()
            endStream(token, d, loop, reuseUpstream: false)
        } else {
            localReply(LocalReply(status: status, body: .text(body), flags: flags, details: details), token, d, loop)
        }
    }

    /// Detaches the stream's upstream connection: closed, or (still connecting) left to join its pool.
    func abandonUpstream(_ s: UnsafeMutablePointer<Stream>, _ loop: Loop) {
        guard s.pointee.upstream != 0 else { return }
        endAttempt(s, error: true)
        let up = s.pointee.upstream
        s.pointee.upstream = 0
        if let u = ups.pointer(up), u.pointee.state == .connecting {
            u.pointee.owner = 0
        } else {
            closeUpstream(up, loop)
        }
    }
}
