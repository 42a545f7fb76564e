import EventLoop
import HTTP1

/// Where a load connection is in its request cycle.
enum LoadPhase: UInt8 {
    /// Waiting for its next intended send time (open loop) or a retry delay.
    case idle
    /// A request is in progress: connecting, sending or receiving its response.
    case busy
    /// Done for this run (budget spent, time up, or stopped).
    case finished
}

/// How the rest of the current response is delimited.
enum ResponsePhase: UInt8 {
    case head
    case contentLength
    case chunked
    case untilClose
}

/// One logical connection of a load thread. Lives in the worker's fixed table for the whole run;
/// its socket may be replaced (keep-alive off, server close, errors), each new socket with a new
/// generation so completions of the old one are ignored.
struct LoadConnection {
    var fd: Int32 = -1
    /// Bumped for each new socket; tokens carry it.
    var generation: UInt32 = 0
    var phase: LoadPhase = .idle
    var connecting = false
    var sendInFlight = false
    var sendOffset = 0
    /// The response completed while the request's send was still outstanding.
    var awaitingSendCompletion = false

    // The request in progress.
    /// Actual start (connect or send), monotonic ns.
    var startNanos: Int64 = 0
    /// Open loop: when the schedule wanted it sent.
    var intendedNanos: Int64 = 0
    /// Open loop: index of the request in this connection's schedule.
    var sequence: Int64 = 0
    /// Recorded in the results (started after the warm-up).
    var measured = false

    // The response in progress.
    var response: ResponsePhase = .head
    /// A partial head kept across receives (pooled; empty most of the time).
    var input = ByteBuffer.empty
    var bodyRemaining = 0
    var chunked = ChunkedDecoder()
    var status = 0
    var headerBytes = 0
    var totalBytes = 0
    var responseKeepAlive = true

    // Timers: the connection wants to be woken at `wakeAt` (0: not at all); `timerAt` is the
    // deadline of its one entry in the loop's timer heap (0: none), `timerSequence` its id.
    var wakeAt: Int64 = 0
    var timerAt: Int64 = 0
    var timerSequence: UInt32 = 0
}

/// Timer ids of the load worker: the connection index and the sequence of its timer entry.
enum LoadTimer {
    static func id(connection: Int, sequence: UInt32) -> UInt64 { UInt64(sequence) << 32 | UInt64(connection) }
    static func split(_ id: UInt64) -> (connection: Int, sequence: UInt32) {
        (Int(UInt32(truncatingIfNeeded: id)), UInt32(truncatingIfNeeded: id >> 32))
    }
}
