import EventLoop

/// One client connection of `ballast server`. Lives in the worker's slab; all buffers come from
/// the worker's pool and are released when empty, so an idle connection holds no buffer.
struct EchoConnection {
    var fd: Int32 = -1
    /// Bytes received but not yet parsed into a whole request.
    var input = ByteBuffer.empty
    /// Responses on their way to the client (`out.pending`: written, not yet handed to the kernel).
    var out = OutboundQueue()
    var pending: ByteBuffer {
        get { out.pending }
        _modify { yield &out.pending }
    }
    /// A delayed response sits in `pending` from this offset on; nothing from it is sent, and no
    /// further request is parsed, until its timer fires.
    var holdOffset = -1
    /// Close once everything is sent (Connection: close, close=true, or a protocol error).
    var closeAfterFlush = false
    /// Half-closed our side after the last response; waiting for the client's end of stream.
    var lingering = false
    /// The client closed its side.
    var peerClosed = false
    var receivePaused = false
    /// `100 Continue` was already sent for the request being received.
    var sentContinue = false
    /// Position in the worker's list of connections (live rebalancing), or -1.
    var memberIndex: Int32 = -1

    var isHeld: Bool { holdOffset >= 0 }
}

/// Timer ids: the connection's full token with the timer kind in its tag bits (56-59).
enum EchoTimer: UInt8 {
    case delay = 1
    case linger = 2
    case rearmAccept = 3
    /// Live rebalancing: move the connection at the end of this turn.
    case move = 4

    /// The connection's whole token with the timer kind in its tag bits (`SlabToken.withTag`).
    func id(_ token: UInt64) -> UInt64 { SlabToken.withTag(rawValue, token) }

    static func split(_ id: UInt64) -> (EchoTimer?, UInt64) {
        (EchoTimer(rawValue: SlabToken.tag(id)), SlabToken.withTag(0, id))
    }
}
