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
        tcpPauseSourceIfFull(t, toUpstream: true, loop)
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

/// TLS origination on a tcp_proxy chain (the cluster's transport_socket): the session counts as
/// connected once the handshake is done, under the cluster's connect_timeout, as Envoy raises its
/// Connected event only then; a failed handshake is a connect failure (counted, logged, retried
/// within max_connect_attempts). Afterwards the client's bytes are sealed just before each send
/// upstream (`tcpFlush`) and the upstream's records decrypted into the client's queue.
extension ProxyWorker {
    func tcpStartUpstreamTLS(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, _ context: TLSContext, sni: String?, _ loop: Loop) {
        guard let session = TLSSession(context: context, serverName: sni) else {
            Log.warning("proxy worker \(index): cannot create a TLS session: \(TLSSession.lastError())")
            tcpUpstreamTLSFailed(token, t, loop)
            return
        }
        t.pointee.upTLS = session
        // Bytes a listener filter read (plain clients) wait until the handshake is done.
        if t.pointee.early.count == 0 && t.pointee.toUp.out.pending.count > 0 { swap(&t.pointee.early, &t.pointee.toUp.out.pending) }
        if t.pointee.upTLS.handshake() == .failed {
            tcpUpstreamTLSFailed(token, t, loop)
            return
        }
        tcpHandshakeFlush(token, t, loop)
    }

    /// Sends the handshake records OpenSSL has for the upstream.
    func tcpHandshakeFlush(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, _ loop: Loop) {
        guard sealOutput(t.pointee.upTLS, &t.pointee.toUp.out) else {
            tcpUpstreamTLSFailed(token, t, loop)
            return
        }
        t.pointee.toUp.out.flush(fd: t.pointee.upFD, on: loop.backend)
    }

    func tcpUpstreamCiphertext(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, _ bytes: UnsafeRawBufferPointer, _ loop: Loop) {
        guard t.pointee.upTLS.feed(bytes) else {
            tcpUpstreamTLSFailed(token, t, loop)
            return
        }
        var t = t
        if !t.pointee.upTLS.handshakeDone {
            switch t.pointee.upTLS.handshake() {
            case .wantMore:
                tcpHandshakeFlush(token, t, loop)
                return
            case .failed:
                tcpUpstreamTLSFailed(token, t, loop)
                return
            case .done:
                countHandshake(t.pointee.upTLS, clusterStats(tcpPlan(t).cluster)?.tls)
                if t.pointee.early.count > 0 {
                    guard pool.append(t.pointee.early.bytes, to: &t.pointee.toUp.out.pending) else {
                        tcpClose(token, loop)
                        return
                    }
                    pool.release(&t.pointee.early)
                }
                tcpUpstreamReady(token, t, loop)
                guard let again = tcpSessions.pointer(token) else { return }
                t = again
            }
        }
        while true {
            let n = t.pointee.upTLS.read(into: tlsPlaintext, capacity: ProxyWorkerTLS.plaintextCapacity)
            if n == 0 { break }
            if n == -1 {  // close_notify: the upstream's end of stream
                t.pointee.toDown.sourceEnded = true
                break
            }
            if n < 0 {
                countFailure(t.pointee.upTLS, clusterStats(tcpPlan(t).cluster)?.tls)
                tlsLog("upstream TLS error: \(TLSSession.lastError())")
                tcpClose(token, loop)
                return
            }
            t.pointee.toDown.bytes += n
            guard pool.append(UnsafeRawBufferPointer(start: tlsPlaintext, count: n), to: &t.pointee.toDown.out.pending) else {
                tcpClose(token, loop)
                return
            }
        }
        tcpPauseSourceIfFull(t, toUpstream: false, loop)
        tcpFlush(token, t, toUpstream: false, loop)
        guard let t = tcpSessions.pointer(token), t.pointee.upTLS.pendingOutput > 0 else { return }
        tcpFlush(token, t, toUpstream: true, loop)  // records OpenSSL wrote on its own (a key update's answer)
    }

    /// The upstream handshake failed (a certificate that does not verify, no shared version):
    /// counted in the cluster's ssl.* as Envoy counts it, the alert OpenSSL queued sent when
    /// nothing is in flight, then a connect failure (UF, upstream_cx_connect_fail, a retry).
    func tcpUpstreamTLSFailed(_ token: UInt64, _ t: UnsafeMutablePointer<TCPSession>, _ loop: Loop) {
        let verify = t.pointee.upTLS.failure == .verify
        countFailure(t.pointee.upTLS, clusterStats(tcpPlan(t).cluster)?.tls)
        tlsLog("upstream TLS error: \(TLSSession.lastError())")
        if !t.pointee.toUp.out.inFlight {
            let n = t.pointee.upTLS.takeOutput(into: tlsPlaintext, capacity: ProxyWorkerTLS.plaintextCapacity)
            if n > 0 { _ = Glibc.send(t.pointee.upFD, tlsPlaintext, n, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        }
        if t.pointee.connected {
            tcpClose(token, loop)
            return
        }
        tcpConnectFailed(token, t, errno: verify ? ProxyWorkerTLS.tcpVerifyFailureErrno : ProxyWorkerTLS.tcpFailureErrno, loop)
    }
}
