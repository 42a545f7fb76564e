import Synchronization

/// Envoy's `ssl.*` counters of one worker, for a listener (`listener.<address>.ssl.*`) or a cluster
/// (`cluster.<name>.ssl.*`). Single writer (the worker), read by the admin thread.
public final class TLSStats: Sendable {
    /// Handshakes that completed.
    public let handshake = Atomic<Int>(0)
    /// Handshakes or TLS records that failed for another reason than the two verification failures below.
    public let connectionError = Atomic<Int>(0)
    /// Resumed sessions among the completed handshakes.
    public let sessionReused = Atomic<Int>(0)
    /// Completed handshakes whose peer sent no certificate.
    public let noCertificate = Atomic<Int>(0)
    /// A certificate was required and none came.
    public let failVerifyNoCert = Atomic<Int>(0)
    /// The peer's certificate did not verify against the trusted CA.
    public let failVerifyError = Atomic<Int>(0)

    public init() {}
}
