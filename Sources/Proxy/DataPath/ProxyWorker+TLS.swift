import EventLoop
import Glibc

enum ProxyWorkerTLS {
    /// A TLS record's plaintext is at most 16 KiB: one `SSL_read` fills at most this much.
    static let plaintextCapacity = 16 * 1024 + 256
    /// A tcp_proxy session's `connectErrno` when its upstream handshake failed (no errno has
    /// these): the certificate did not verify, or another TLS failure.
    static let tcpVerifyFailureErrno: Int32 = 0xFFFF
    static let tcpFailureErrno: Int32 = 0xFFFE
}

/// TLS on both sides of the proxy (docs/tls.md). The backends move ciphertext as for any
/// connection; OpenSSL works on memory BIOs between them and the plaintext data path:
///
/// - in: received ciphertext is fed to the session, the handshake advanced, then records are
///   decrypted into the worker's `tlsPlaintext` and handed to the plain input path
///   (`downstreamInput` / `upstreamInput`) as if the backend had lent them.
/// - out: writers keep appending plaintext to the connection's `OutboundQueue.pending`; just
///   before a send starts (`sealOutput`), that plaintext is encrypted and the ciphertext (handshake
///   records first, in order) replaces it in the same pool buffer.
extension ProxyWorker {
    /// Encrypts the queue's pending plaintext and puts every ciphertext byte the session has in
    /// its place, when no send is outstanding. Returns false when the session cannot encrypt
    /// (a fatal TLS state): the caller closes.
    func sealOutput(_ tls: TLSSession, _ out: inout OutboundQueue) -> Bool {
        guard !out.inFlight, out.sending.count == 0 else { return true }
        if tls.handshakeDone && out.pending.count > 0 {
            guard tls.write(out.pending.bytes) else {
                out.pending.count = 0
                return false
            }
            out.pending.count = 0  // the buffer now takes the ciphertext
        }
        let n = tls.pendingOutput
        guard n > 0 else {
            if out.pending.count == 0 { pool.release(&out.pending) }
            return true
        }
        guard let target = pool.reserve(n, in: &out.pending) else { return false }
        out.pending.count += tls.takeOutput(into: target, capacity: n)
        return true
    }

    /// Before a TLS connection closes: close_notify, as Envoy sends it, written straight to the
    /// socket when no send is in flight (best effort). OpenSSL also needs it sent to keep the
    /// session resumable: a session whose connection ends without it is invalidated.
    func closeNotifyNow(_ tls: inout TLSSession, fd: Int32, sendInFlight: Bool) {
        guard tls.handshakeDone, !tls.closeNotified else { return }
        tls.closeNotify()
        guard !sendInFlight else { return }
        let n = tls.takeOutput(into: tlsPlaintext, capacity: ProxyWorkerTLS.plaintextCapacity)
        if n > 0 { _ = Glibc.send(fd, tlsPlaintext, n, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
    }

    // MARK: downstream (termination)

    func downstreamCiphertext(_ bytes: UnsafeRawBufferPointer, _ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        if d.pointee.closeAfterFlush || d.pointee.lingering { return }  // discarded, as plain input
        guard d.pointee.tls.feed(bytes) else {
            downstreamTLSFailed(token, d, loop)
            return
        }
        if !d.pointee.tls.handshakeDone {
            switch d.pointee.tls.handshake() {
            case .wantMore:
                flushDownstream(d, loop)
                return
            case .failed:
                downstreamTLSFailed(token, d, loop)
                return
            case .done:
                countHandshake(d.pointee.tls, stats.tls)
            }
        }
        while true {
            let n = d.pointee.tls.read(into: tlsPlaintext, capacity: ProxyWorkerTLS.plaintextCapacity)
            if n == 0 { break }
            if n == -1 {  // close_notify: the client's end of stream
                downstreamInput(0, UnsafeRawBufferPointer(start: nil, count: 0), token, d, loop)
                return
            }
            if n < 0 {
                downstreamTLSFailed(token, d, loop)
                return
            }
            downstreamInput(Int32(n), UnsafeRawBufferPointer(start: tlsPlaintext, count: n), token, d, loop)
            guard downs.pointer(token) != nil else { return }
            if d.pointee.closeAfterFlush { break }
        }
        downstreamSettled(token, d, loop)
    }

    /// A handshake (or record) that failed: counted as Envoy does, the alert OpenSSL queued is
    /// sent, and the connection closes.
    func downstreamTLSFailed(_ token: UInt64, _ d: UnsafeMutablePointer<Downstream>, _ loop: Loop) {
        countFailure(d.pointee.tls, stats.tls)
        tlsLog("downstream TLS error: \(TLSSession.lastError())")
        if d.pointee.hasStream {
            closeDownstream(token, loop, flags: .downstreamConnectionTermination)
            return
        }
        d.pointee.beginClosing()
        pool.release(&d.pointee.input)
        d.pointee.peerClosed = true  // nothing more is read from it: close once the alert is out
        downstreamSettled(token, d, loop)
    }

    // MARK: upstream (origination)

    /// The TCP connect finished on a TLS cluster: start the handshake (the connection stays
    /// `connecting`, under its connect timeout, until it completes).
    func startUpstreamTLS(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ context: TLSContext, sni: String?, _ loop: Loop) {
        guard let session = TLSSession(context: context, serverName: sni) else {
            Log.warning("proxy worker \(index): cannot create a TLS session: \(TLSSession.lastError())")
            connectFailed(up, u, loop, timedOut: false)
            return
        }
        u.pointee.tls = session
        if u.pointee.tls.handshake() == .failed {
            upstreamTLSFailed(up, u, loop)
            return
        }
        flushUpstream(u, loop)
    }

    func upstreamCiphertext(_ bytes: UnsafeRawBufferPointer, _ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        guard u.pointee.tls.feed(bytes) else {
            upstreamTLSFailed(up, u, loop)
            return
        }
        if !u.pointee.tls.handshakeDone {
            switch u.pointee.tls.handshake() {
            case .wantMore:
                flushUpstream(u, loop)
                return
            case .failed:
                upstreamTLSFailed(up, u, loop)
                return
            case .done:
                countHandshake(u.pointee.tls, clusterStats(Int(u.pointee.cluster))?.tls)
                flushUpstream(u, loop)
                upstreamReady(up, u, loop)
                guard ups.pointer(up) != nil else { return }
            }
        }
        while true {
            let n = u.pointee.tls.read(into: tlsPlaintext, capacity: ProxyWorkerTLS.plaintextCapacity)
            if n == 0 { break }
            if n < 0 {
                // close_notify reads as the end of stream; a broken record as a reset.
                if n == -2 { countFailure(u.pointee.tls, clusterStats(Int(u.pointee.cluster))?.tls) }
                upstreamInput(n == -1 ? 0 : -ECONNRESET, UnsafeRawBufferPointer(start: nil, count: 0), up, u, loop)
                return
            }
            upstreamInput(Int32(n), UnsafeRawBufferPointer(start: tlsPlaintext, count: n), up, u, loop)
            guard ups.pointer(up) != nil else { return }
        }
        if u.pointee.tls.pendingOutput > 0 { flushUpstream(u, loop) }
    }

    /// The upstream handshake failed (a certificate that does not verify, a protocol mismatch):
    /// a connect failure for its stream, 503 UF as in Envoy.
    func upstreamTLSFailed(_ up: UInt64, _ u: UnsafeMutablePointer<Upstream>, _ loop: Loop) {
        let failure = u.pointee.tls.failure
        countFailure(u.pointee.tls, clusterStats(Int(u.pointee.cluster))?.tls)
        tlsLog("upstream TLS error: \(TLSSession.lastError())")
        if !u.pointee.out.inFlight {
            // The alert OpenSSL queued (as Envoy sends it), straight to the socket: best effort,
            // the connection closes now.
            let n = u.pointee.tls.takeOutput(into: tlsPlaintext, capacity: ProxyWorkerTLS.plaintextCapacity)
            if n > 0 { _ = Glibc.send(u.pointee.fd, tlsPlaintext, n, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        }
        if u.pointee.state == .connecting {
            connectFailed(up, u, loop, timedOut: false, tlsFailure: failure)
        } else {
            upstreamInput(-ECONNRESET, UnsafeRawBufferPointer(start: nil, count: 0), up, u, loop)
        }
    }

    // MARK: counting and logging

    /// A TLS failure at debug level (`-l debug`), as Envoy logs them under `[connection]`; the
    /// message is built only when it is printed (a flood of bad handshakes costs no strings).
    func tlsLog(_ message: @autoclosure () -> String) {
        guard OpsLog.current <= .debug else {
            TLSSession.clearErrors()
            return
        }
        OpsLog.log(.debug, "connection", "proxy worker \(index): \(message())")
    }

    func countHandshake(_ tls: TLSSession, _ s: TLSStats?) {
        guard let s else { return }
        inc(s.handshake)
        if tls.sessionReused { inc(s.sessionReused) }
        if !tls.peerHasCertificate { inc(s.noCertificate) }
    }

    func countFailure(_ tls: TLSSession, _ s: TLSStats?) {
        guard let s else { return }
        // As Envoy 1.40 counts them: a verification failure is not also a connection_error.
        switch tls.failure {
        case .noCertificate: inc(s.failVerifyNoCert)
        case .verify: inc(s.failVerifyError)
        case .other: inc(s.connectionError)
        }
    }
}
