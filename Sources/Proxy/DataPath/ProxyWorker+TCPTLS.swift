import EventLoop
import Glibc

/// TLS termination on a tcp_proxy chain: the client's ciphertext is fed to the session, the
/// handshake advanced, and the plaintext queued for the upstream like any client bytes; what goes
/// back is sealed by `tcpFlush` just before each send (docs/tls.md).
extension ProxyWorker {
    /// Advances the handshake with what was fed, then moves every decrypted byte to the
    /// upstream's queue; sends what OpenSSL has for the client (handshake records, tickets).
    func tcpTLSProgress(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, _ loop: Loop) {
        if !t.pointee.tls.handshakeDone {
            switch t.pointee.tls.handshake() {
            case .wantMore:
                tcpFlush(token, t, toUpstream: false, loop)
                return
            case .failed:
                tcpTLSFailed(token, t, loop)
                return
            case .done:
                countHandshake(t.pointee.tls, stats.tls)
            }
        }
        while true {
            let n = t.pointee.tls.read(into: tlsPlaintext, capacity: ProxyWorkerTLS.plaintextCapacity)
            if n == 0 { break }
            if n == -1 {  // close_notify: the client's end of stream
                t.pointee.toUp.sourceEnded = true
                break
            }
            if n < 0 {
                tcpTLSFailed(token, t, loop)
                return
            }
            t.pointee.toUp.bytes += n
            guard pool.append(UnsafeRawBufferPointer(start: tlsPlaintext, count: n), to: &t.pointee.toUp.out.pending) else {
                tcpClose(token, loop)
                return
            }
        }
        if t.pointee.toUp.out.pending.count >= Self.highWater && !t.pointee.toUp.sourcePaused {
            t.pointee.toUp.sourcePaused = true
            loop.backend.pauseReceive(fd: t.pointee.downFD)
        }
        tcpFlush(token, t, toUpstream: true, loop)
        guard let t = tcpSessions.pointer(token) else { return }
        tcpFlush(token, t, toUpstream: false, loop)
    }

    /// A failed handshake or a broken record: counted as Envoy counts it, the alert OpenSSL
    /// queued sent when nothing else is in flight, and the session closed.
    func tcpTLSFailed(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, _ loop: Loop) {
        countFailure(t.pointee.tls, stats.tls)
        tlsLog("downstream TLS error: \(TLSSession.lastError())")
        if !t.pointee.toDown.out.inFlight {
            let n = t.pointee.tls.takeOutput(into: tlsPlaintext, capacity: ProxyWorkerTLS.plaintextCapacity)
            if n > 0 { _ = Glibc.send(t.pointee.downFD, tlsPlaintext, n, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        }
        tcpClose(token, loop)
    }
}
