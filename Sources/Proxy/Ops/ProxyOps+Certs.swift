import CTLS
import Glibc

/// `/certs` in Envoy's shape: one entry per TLS context (each filter chain's, then each
/// cluster's), with its CA (`ca_cert`) and its certificate (`cert_chain`, the leaf): path, serial,
/// SANs, days until expiration, validity. Read from the current configuration, so after an SDS
/// rotation it shows the new certificate.
extension ProxyOps {
    func certsJSON() -> String {
        let bootstrap = state.withLock { $0.bootstrap }
        var contexts: [TLSConfig] = []
        for l in bootstrap.listeners {
            for chain in l.filterChains + (l.defaultFilterChain.map { [$0] } ?? []) { if let tls = chain.tls { contexts.append(tls) } }
        }
        for c in bootstrap.clusters { if let tls = c.tls { contexts.append(tls) } }
        let now = Int64(time(nil))
        let entries = contexts.map { tls in
            let ca = tls.trustedCA.flatMap { Self.certificateJSON($0, path: tls.caSource ?? "<inline>", now: now) }
            let chain = tls.certificateChain.flatMap { Self.certificateJSON($0, path: tls.certificateSource ?? "<inline>", now: now) }
            return "  {\"ca_cert\": [\(ca ?? "")], \"cert_chain\": [\(chain ?? "")]}"
        }
        return "{\"certificates\": [\n" + entries.joined(separator: ",\n") + "\n]}\n"
    }

    /// The first certificate of `pem` as Envoy's CertificateDetails, or nil when OpenSSL reads none.
    static func certificateJSON(_ pem: String, path: String, now: Int64) -> String? {
        var buffer = [CChar](repeating: 0, count: 8192)
        let n = pem.withCString { p in buffer.withUnsafeMutableBufferPointer { ballast_pem_first_certificate(p, pem.utf8.count, $0.baseAddress, $0.count) } }
        guard n > 0 else { return nil }
        let lines = String(decoding: buffer.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 3, let from = Int64(lines[1]), let until = Int64(lines[2]) else { return nil }
        // Envoy lists the SANs by kind: DNS names, then URIs, then IP addresses.
        var sans: [String] = []
        for (prefix, key) in [("dns:", "dns"), ("uri:", "uri"), ("ip:", "ip_address")] {
            for line in lines.dropFirst(3) where line.hasPrefix(prefix) {
                sans.append("{\"\(key)\": \(JSONText.string(String(line.dropFirst(prefix.count))))}")
            }
        }
        let days = max(0, (until - now) / 86_400)
        return "{\"path\": \(JSONText.string(path)), \"serial_number\": \(JSONText.string(lines[0].lowercased())), "
            + "\"subject_alt_names\": [\(sans.joined(separator: ", "))], \"days_until_expiration\": \"\(days)\", "
            + "\"valid_from\": \"\(isoTime(from))\", \"expiration_time\": \"\(isoTime(until))\"}"
    }

    private static func isoTime(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
