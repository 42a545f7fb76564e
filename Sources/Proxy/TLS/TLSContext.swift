import CTLS

/// An OpenSSL `SSL_CTX` built from a `transport_socket`'s settings. Built once at load and shared
/// by every worker (OpenSSL contexts are safe to use from several threads once configured).
public final class TLSContext: @unchecked Sendable {
    let raw: OpaquePointer

    struct Failure: Error {
        let message: String
    }

    init(isServer: Bool, certificateChain: String?, privateKey: String?, trustedCA: String?, requirePeerCertificate: Bool,
         minVersion: Int32, maxVersion: Int32, cipherList: String?, alpn: [String], sessionKeys: Int = 0) throws(Failure) {
        var wire: [UInt8] = []
        for name in alpn {
            wire.append(UInt8(name.utf8.count))
            wire.append(contentsOf: name.utf8)
        }
        var error = [CChar](repeating: 0, count: 512)
        let made: OpaquePointer? = Self.withOptionalCString(certificateChain) { chain in
            Self.withOptionalCString(privateKey) { key in
                Self.withOptionalCString(trustedCA) { ca in
                    Self.withOptionalCString(cipherList) { ciphers in
                        wire.withUnsafeBufferPointer { alpnBytes in
                            var o = ballast_tls_ctx_options()
                            o.is_server = isServer ? 1 : 0
                            o.cert_chain = chain
                            o.cert_chain_len = certificateChain?.utf8.count ?? 0
                            o.private_key = key
                            o.private_key_len = privateKey?.utf8.count ?? 0
                            o.trusted_ca = ca
                            o.trusted_ca_len = trustedCA?.utf8.count ?? 0
                            o.require_peer_cert = requirePeerCertificate ? 1 : 0
                            o.min_version = minVersion
                            o.max_version = maxVersion
                            o.cipher_list = ciphers
                            o.alpn = alpnBytes.isEmpty ? nil : alpnBytes.baseAddress
                            o.alpn_len = alpnBytes.count
                            o.session_keys = Int32(sessionKeys)
                            return error.withUnsafeMutableBufferPointer { e in
                                ballast_tls_ctx_new(&o, e.baseAddress, e.count)
                            }
                        }
                    }
                }
            }
        }
        guard let made else {
            throw Failure(message: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        raw = made
    }

    deinit { ballast_tls_ctx_free(raw) }

    private static func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
        guard let s else { return body(nil) }
        return s.withCString { body($0) }
    }

    /// Whether OpenSSL knows the cipher (TLS 1.2 and below).
    static func knowsCipher(_ name: String) -> Bool { ballast_tls_cipher_known(name) == 1 }
}

/// What a TLS step needs next.
enum TLSStep {
    case done
    case wantMore
    case failed
}

/// Why a handshake failed, as Envoy's `ssl.*` counters split it.
enum TLSFailure {
    case noCertificate
    case verify
    case other
}

/// One connection's TLS state: an `SSL` on two memory BIOs, kept in the connection's slab
/// element as a plain pointer (no reference counting per event). Ciphertext goes in with `feed`
/// and comes out with `takeOutput`; the connection's own buffers carry it.
struct TLSSession {
    private(set) var raw: OpaquePointer?
    var handshakeDone = false
    /// A close_notify was queued (sent before the connection half-closes).
    var closeNotified = false

    init() {}

    init?(context: TLSContext, serverName: String? = nil) {
        let ssl: OpaquePointer?
        if let serverName { ssl = serverName.withCString { ballast_tls_new(context.raw, $0) } } else { ssl = ballast_tls_new(context.raw, nil) }
        guard let ssl else { return nil }
        raw = ssl
    }

    var isActive: Bool { raw != nil }

    mutating func free() {
        if let raw { ballast_tls_free(raw) }
        raw = nil
        handshakeDone = false
        closeNotified = false
    }

    func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let raw, let base = bytes.baseAddress, bytes.count > 0 else { return true }
        return ballast_tls_feed(raw, base, bytes.count) == Int32(bytes.count)
    }

    mutating func handshake() -> TLSStep {
        guard let raw else { return .failed }
        switch ballast_tls_handshake(raw) {
        case Int32(BALLAST_TLS_DONE):
            handshakeDone = true
            return .done
        case Int32(BALLAST_TLS_WANT): return .wantMore
        default: return .failed
        }
    }

    /// Decrypted bytes into `buffer`: > 0 a count, 0 nothing whole yet, -1 the peer's
    /// close_notify, -2 an error.
    func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        guard let raw else { return -2 }
        let r = ballast_tls_read(raw, buffer, capacity)
        if r > 0 { return Int(r) }
        switch r {
        case Int32(BALLAST_TLS_WANT): return 0
        case Int32(BALLAST_TLS_CLOSED): return -1
        default: return -2
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let raw else { return false }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return true }
        return ballast_tls_write(raw, base, bytes.count) == 1
    }

    var pendingOutput: Int {
        guard let raw else { return 0 }
        return ballast_tls_pending_output(raw)
    }

    func takeOutput(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        guard let raw else { return 0 }
        return ballast_tls_take_output(raw, buffer, capacity)
    }

    mutating func closeNotify() {
        guard let raw, !closeNotified else { return }
        closeNotified = true
        ballast_tls_close_notify(raw)
    }

    /// Why the handshake failed (call before `lastError`, which clears OpenSSL's error queue).
    var failure: TLSFailure {
        guard let raw else { return .other }
        switch ballast_tls_failure_kind(raw) {
        case Int32(BALLAST_TLS_FAIL_NO_CERT): return .noCertificate
        case Int32(BALLAST_TLS_FAIL_VERIFY): return .verify
        default: return .other
        }
    }

    var sessionReused: Bool {
        guard let raw else { return false }
        return ballast_tls_session_reused(raw) == 1
    }

    var peerHasCertificate: Bool {
        guard let raw else { return false }
        return ballast_tls_peer_has_cert(raw) == 1
    }

    /// "TLSv1.3" and the like (static strings in OpenSSL: no copy until logged).
    var versionName: UnsafePointer<CChar>? {
        guard let raw else { return nil }
        return ballast_tls_version(raw)
    }

    /// OpenSSL's number of the negotiated version (0x0304: TLS 1.3); before the handshake is
    /// done, the version the hellos settled on (a failed handshake logs it, as Envoy's), or a
    /// value no TLS version has before that.
    var versionNumber: UInt16 {
        guard let raw else { return 0 }
        return UInt16(truncatingIfNeeded: ballast_tls_version_number(raw))
    }

    var serverName: UnsafePointer<CChar>? {
        guard let raw else { return nil }
        return ballast_tls_server_name(raw)
    }

    /// Drops OpenSSL's queued errors (this thread's).
    static func clearErrors() { ballast_tls_clear_errors() }

    /// OpenSSL's text for the oldest queued error ("" when none); clears the queue.
    static func lastError() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        buffer.withUnsafeMutableBufferPointer { ballast_tls_last_error($0.baseAddress, $0.count) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// `%DOWNSTREAM_TLS_VERSION%` as Envoy prints it.
enum TLSVersionName {
    static let names: [(UInt16, [UInt8])] = [
        (0x0301, Array("TLSv1".utf8)), (0x0302, Array("TLSv1.1".utf8)), (0x0303, Array("TLSv1.2".utf8)), (0x0304, Array("TLSv1.3".utf8)),
    ]

    static func bytes(_ version: UInt16) -> [UInt8]? { names.first { $0.0 == version }?.1 }
}
