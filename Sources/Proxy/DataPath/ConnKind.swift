import EventLoop

/// Which of the worker's slabs a token belongs to (`Slab` kind, bits 60-63 of a token).
/// `WorkerSeat.listenerToken` has kind 0: it names no slab element.
enum ConnKind: UInt8 {
    case downstream = 1
    case upstream = 2
    case tcpDownstream = 3
    case tcpUpstream = 4
    /// Streams (`Stream`): their tokens name no socket, so no completion or timer carries one.
    case stream = 5
    /// Mirrored requests and ext_authz checks (`Shadow`): their tokens are upstream connections'
    /// owners, never a completion's or timer's.
    case shadow = 6
    /// Connections in their listener filters (`Inspection`), before a filter chain is chosen.
    case inspection = 7
}

enum ConnToken {
    @inline(__always)
    static func kind(_ token: UInt64) -> UInt8 { SlabToken.kind(token) }
}
