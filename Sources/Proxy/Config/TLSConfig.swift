/// A `transport_socket` named `envoy.transport_sockets.tls`: a `DownstreamTlsContext` on a filter
/// chain, or an `UpstreamTlsContext` on a cluster, with the fields Ballast applies (docs/tls.md).
/// Certificates are kept as PEM text (read from `filename` or `inline_string` while parsing), and
/// the OpenSSL context built from them once, at load, so a bad certificate stops the start.
public struct TLSConfig: Sendable, Hashable {
    public enum Side: Sendable, Hashable { case downstream, upstream }
    public let side: Side
    /// `common_tls_context.tls_certificates[0]` (PEM), if any: the server's, or the client's for mTLS.
    public let certificateChain: String?
    public let privateKey: String?
    /// `common_tls_context.validation_context.trusted_ca` (PEM).
    public let trustedCA: String?
    /// `require_client_certificate` (downstream).
    public let requireClientCertificate: Bool
    /// `tls_params.tls_minimum/maximum_protocol_version` as OpenSSL's version numbers (0x0303 = TLS 1.2).
    public let minVersion: Int32
    public let maxVersion: Int32
    /// `tls_params.cipher_suites`, joined for OpenSSL (nil: OpenSSL's default).
    public let cipherList: String?
    /// `common_tls_context.alpn_protocols`.
    public let alpn: [String]
    /// `sni` (upstream).
    public let sni: String?
    /// `max_session_keys` (upstream; Envoy's default 1): sessions kept for resumption, 0 or 1.
    public let sessionKeys: Int
    /// The OpenSSL context: shared by every worker (SSL_CTX is thread-safe once built).
    public let context: TLSContext
    /// The SDS secrets its certificate and CA came from (`ssl_context_update_by_sds`).
    public var secretNames: [String] = []
    /// Where the certificate and the CA came from, as Envoy's /certs names it: the file, or
    /// `<inline>` (inline strings, and secrets from SDS, which Envoy resolves into inline bytes).
    public var certificateSource: String? = nil
    public var caSource: String? = nil

    public static func == (a: TLSConfig, b: TLSConfig) -> Bool {
        a.side == b.side && a.certificateChain == b.certificateChain && a.privateKey == b.privateKey
            && a.trustedCA == b.trustedCA && a.requireClientCertificate == b.requireClientCertificate
            && a.minVersion == b.minVersion && a.maxVersion == b.maxVersion && a.cipherList == b.cipherList
            && a.alpn == b.alpn && a.sni == b.sni && a.sessionKeys == b.sessionKeys
    }

    public func hash(into h: inout Hasher) {
        h.combine(side); h.combine(certificateChain); h.combine(trustedCA); h.combine(alpn); h.combine(sni)
    }
}

/// Envoy's `TlsParameters.TlsProtocol` names and OpenSSL's version numbers.
enum TLSProtocolVersion: String, CaseIterable {
    case auto = "TLS_AUTO"
    case v1_0 = "TLSv1_0"
    case v1_1 = "TLSv1_1"
    case v1_2 = "TLSv1_2"
    case v1_3 = "TLSv1_3"

    var openSSL: Int32? {
        switch self {
        case .auto: nil
        case .v1_0: 0x0301
        case .v1_1: 0x0302
        case .v1_2: 0x0303
        case .v1_3: 0x0304
        }
    }
}
