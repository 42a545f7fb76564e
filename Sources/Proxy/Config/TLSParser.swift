import Yams

/// `transport_socket: {name: envoy.transport_sockets.tls, typed_config: Downstream/UpstreamTlsContext}`:
/// the fields Ballast applies, every other one refused with its YAML path (docs/tls.md).
extension BootstrapParser {
    static let tlsTransportSocketName = "envoy.transport_sockets.tls"
    static let downstreamTLSType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
    static let upstreamTLSType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"

    func parseTransportSocket(_ value: ConfigValue, side: TLSConfig.Side) -> TLSConfig? {
        guard let f = value.fields(known: ["name", "typed_config"], unsupported: ["config"]) else { return nil }
        guard let nameValue = f.required("name"), let name = nameValue.nonEmptyString() else { return nil }
        guard name == Self.tlsTransportSocketName || name == "tls" else {
            if name == "envoy.transport_sockets.raw_buffer" || name == "raw_buffer" {
                nameValue.error("transport socket '\(name)' is not supported by ballast; leave transport_socket out for plain TCP")
            } else {
                nameValue.error("transport socket '\(name)' is not supported by ballast (ballast implements \(Self.tlsTransportSocketName))")
            }
            return nil
        }
        let expectedType = side == .downstream ? Self.downstreamTLSType : Self.upstreamTLSType
        let sideFields = side == .downstream
            ? (known: ["require_client_certificate"],
               unsupported: ["require_sni", "session_ticket_keys", "session_ticket_keys_sds_secret_config",
                             "disable_stateless_session_resumption", "disable_stateful_session_resumption", "session_timeout",
                             "ocsp_staple_policy", "full_scan_certs_on_sni_mismatch", "prefer_client_ciphers"])
            : (known: ["sni", "max_session_keys"],
               unsupported: ["allow_renegotiation", "enforce_rsa_key_usage", "auto_host_sni",
                             "auto_sni_san_validation"])
        guard let typed = f.required("typed_config"),
              let t = typed.fields(known: ["@type", "common_tls_context"] + sideFields.known, unsupported: sideFields.unsupported)
        else { return nil }
        guard let typeValue = t.required("@type"), let type = typeValue.nonEmptyString() else { return nil }
        guard type == expectedType else {
            typeValue.error("'\(type)' does not match transport socket \(name) on a \(side == .downstream ? "filter chain" : "cluster"); expected \(expectedType)")
            return nil
        }
        var ok = t.rejected.isEmpty
        let requireClient = side == .downstream ? (t["require_client_certificate"]?.bool() ?? (t["require_client_certificate"] == nil ? false : nil)) : false
        if requireClient == nil { ok = false }
        let sni = side == .upstream ? t["sni"]?.nonEmptyString() : nil
        if side == .upstream && t["sni"] != nil && sni == nil { ok = false }
        // Envoy resumes upstream sessions by default (max_session_keys 1); Ballast keeps at most one.
        var sessionKeys = side == .upstream ? 1 : 0
        if let k = t["max_session_keys"] {
            if let n = k.int(0...Int(UInt32.max)) {
                if n > 1 { k.error("ballast keeps at most 1 session for resumption; set 0 (off) or 1"); ok = false } else { sessionKeys = n }
            } else {
                ok = false
            }
        }

        // An UpstreamTlsContext may leave it out (TLS without verification or a client certificate).
        let absent = ConfigValue(node: .mapping(Node.Mapping([])), path: t.path.appending("common_tls_context"), diagnostics: diagnostics)
        guard let common = side == .downstream ? t.required("common_tls_context") : (t["common_tls_context"] ?? absent),
              let c = common.fields(
                known: ["tls_params", "tls_certificates", "validation_context", "alpn_protocols",
                        "tls_certificate_sds_secret_configs", "validation_context_sds_secret_config"],
                unsupported: ["tls_certificate_provider_instance",
                              "tls_certificate_certificate_provider", "tls_certificate_certificate_provider_instance",
                              "combined_validation_context",
                              "validation_context_certificate_provider", "validation_context_certificate_provider_instance",
                              "custom_handshaker", "key_log", "custom_tls_certificate_selector"])
        else { return nil }
        if !c.rejected.isEmpty { ok = false }

        // Certificates: inline, or one secret from an SDS file.
        var chain: String?
        var key: String?
        var secretNames: [String] = []
        var certificateSource: String?
        var caSource: String?
        // Where OpenSSL's refusals point (the secret's fields in its file, for SDS).
        var certificatePath = common.path.appending("tls_certificates").appending(index: 0)
        var validationPath = common.path.appending("validation_context")
        if c.has("tls_certificates") && c.has("tls_certificate_sds_secret_configs") {
            c.error("tls_certificate_sds_secret_configs", "ballast holds one certificate per context: give tls_certificates or tls_certificate_sds_secret_configs, not both")
            ok = false
        } else if let items = c["tls_certificate_sds_secret_configs"]?.list() {
            if items.count > 1 {
                diagnostics.error(items[1].path, "only one certificate per context is supported by ballast", at: items[1].node)
                ok = false
            }
            if let first = items.first {
                if let secret = parseSDSSecretConfig(first, .tlsCertificate), case .tlsCertificate(let c, let k) = secret.content {
                    (chain, key) = (c, k)
                    secretNames.append(secret.name)
                    certificateSource = "<inline>"
                    certificatePath = secret.at
                } else {
                    ok = false
                }
            }
        } else if c.has("tls_certificate_sds_secret_configs") {
            ok = false
        } else if let items = c["tls_certificates"]?.list() {
            if items.count > 1 {
                diagnostics.error(items[1].path, "only one certificate per context is supported by ballast", at: items[1].node)
                ok = false
            }
            if let first = items.first {
                if let pair = parseCertificate(first) { (chain, key) = pair } else { ok = false }
                certificateSource = Self.dataSourcePath(first.node, "certificate_chain")
            }
        } else if c.has("tls_certificates") && c["tls_certificates"] != nil {
            ok = false
        }
        if side == .downstream && chain == nil && ok {
            c.error("tls_certificates", "a DownstreamTlsContext needs a certificate (certificate_chain and private_key); none given")
            ok = false
        }

        // Validation: inline, or a secret from an SDS file (a oneof in Envoy).
        var trustedCA: String?
        if c.has("validation_context") && c.has("validation_context_sds_secret_config") {
            c.error("validation_context_sds_secret_config", "set only one of validation_context, validation_context_sds_secret_config")
            ok = false
        } else if let v = c["validation_context_sds_secret_config"] {
            if let secret = parseSDSSecretConfig(v, .validationContext), case .validationContext(let ca) = secret.content {
                trustedCA = ca
                secretNames.append(secret.name)
                caSource = "<inline>"
                validationPath = secret.at
            } else {
                ok = false
            }
        } else if let v = c["validation_context"] {
            if let parsed = parseValidationContext(v) { trustedCA = parsed } else { ok = false }
            if case .mapping(let m) = v.node, let ca = m.first(where: { $0.key.scalar?.string == "trusted_ca" })?.value {
                caSource = Self.dataSourcePath(ca, nil)
            }
        }
        if requireClient == true && trustedCA == nil {
            t.error("require_client_certificate", "needs common_tls_context.validation_context.trusted_ca to verify client certificates")
            ok = false
        }

        // Protocol versions and ciphers.
        var minVersion: Int32 = 0x0303
        var maxVersion: Int32 = side == .downstream ? 0x0304 : 0x0303
        var cipherList: String?
        if let p = c["tls_params"] {
            if let pf = p.fields(known: ["tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites"],
                                 unsupported: ["ecdh_curves", "signature_algorithms", "compliance_policies"]) {
                if !pf.rejected.isEmpty { ok = false }
                if let v = pf["tls_minimum_protocol_version"] {
                    if let version = v.enumeration(TLSProtocolVersion.self) { minVersion = version.openSSL ?? minVersion } else { ok = false }
                }
                if let v = pf["tls_maximum_protocol_version"] {
                    if let version = v.enumeration(TLSProtocolVersion.self) { maxVersion = version.openSSL ?? maxVersion } else { ok = false }
                }
                if minVersion > maxVersion && ok {
                    pf.error("tls_minimum_protocol_version", "above tls_maximum_protocol_version")
                    ok = false
                }
                if let list = pf["cipher_suites"]?.list() {
                    var names: [String] = []
                    for item in list {
                        guard let name = item.nonEmptyString() else { ok = false; continue }
                        if name.hasPrefix("[") {
                            item.error("equal-preference cipher groups ('[A|B]') are a BoringSSL feature not supported by ballast; list the ciphers one by one")
                            ok = false
                        } else if !TLSContext.knowsCipher(name) {
                            item.error("unknown cipher suite '\(name)'")
                            ok = false
                        } else {
                            names.append(name)
                        }
                    }
                    if !names.isEmpty { cipherList = names.joined(separator: ":") }
                } else if pf.has("cipher_suites") && pf["cipher_suites"] != nil {
                    ok = false
                }
            } else {
                ok = false
            }
        }

        // ALPN.
        var alpn: [String] = []
        if let a = c["alpn_protocols"] {
            if let list = a.stringList() {
                for name in list where name.isEmpty || name.utf8.count > 255 {
                    a.error("ALPN names must be 1 to 255 bytes, got '\(name)'")
                    ok = false
                }
                // Negotiating h2 would promise HTTP/2, which Ballast does not speak.
                for name in list where name == "h2" || name == "h2c" {
                    a.error("'\(name)' is not supported by ballast (HTTP/1.1 only): it would negotiate HTTP/2; offer http/1.1")
                    ok = false
                }
                alpn = list
            } else {
                ok = false
            }
        }
        guard ok, let requireClient else { return nil }

        let context: TLSContext
        do {
            context = try TLSContext(isServer: side == .downstream, certificateChain: chain, privateKey: key, trustedCA: trustedCA,
                                     requirePeerCertificate: requireClient, minVersion: minVersion, maxVersion: maxVersion,
                                     cipherList: cipherList, alpn: alpn, sessionKeys: sessionKeys)
        } catch {
            // The shim names the part that failed first ("certificate_chain: ...", "private_key: ...").
            let part = error.message.split(separator: ":").first.map(String.init) ?? ""
            var path = common.path
            if part.hasPrefix("certificate_chain") || part.hasPrefix("private_key") {
                path = certificatePath.appending(part.hasPrefix("certificate_chain") ? "certificate_chain" : "private_key")
            } else if part.hasPrefix("trusted_ca") {
                path = validationPath.appending("trusted_ca")
            } else if part.hasPrefix("tls_") || part.hasPrefix("cipher_suites") {
                path = path.appending("tls_params")
            }
            diagnostics.error(path, "OpenSSL refused it: \(error.message)", at: common.node)
            return nil
        }
        return TLSConfig(side: side, certificateChain: chain, privateKey: key, trustedCA: trustedCA,
                         requireClientCertificate: requireClient, minVersion: minVersion, maxVersion: maxVersion,
                         cipherList: cipherList, alpn: alpn, sni: sni, sessionKeys: sessionKeys, context: context,
                         secretNames: secretNames, certificateSource: certificateSource, caSource: caSource)
    }

    /// Envoy's `path` in /certs for the DataSource at `key` of `node` (or `node` itself when
    /// `key` is nil): its `filename`, or `<inline>`.
    static func dataSourcePath(_ node: Node, _ key: String?) -> String {
        func child(_ n: Node, _ k: String) -> Node? {
            guard case .mapping(let m) = n else { return nil }
            return m.first { $0.key.scalar?.string == k }?.value
        }
        let source = key.flatMap { child(node, $0) } ?? (key == nil ? node : nil)
        return source.flatMap { child($0, "filename")?.scalar?.string } ?? "<inline>"
    }

    /// A `CertificateValidationContext`: its `trusted_ca` (nil inside when none is given), or nil
    /// on an error (reported).
    func parseValidationContext(_ v: ConfigValue) -> String?? {
        guard let vf = v.fields(known: ["trusted_ca"],
                                unsupported: ["watched_directory", "verify_certificate_spki", "verify_certificate_hash",
                                              "match_typed_subject_alt_names", "match_subject_alt_names",
                                              "require_signed_certificate_timestamp", "crl", "allow_expired_certificate",
                                              "trust_chain_verification", "custom_validator_config", "only_verify_leaf_cert_crl",
                                              "max_verify_depth", "system_root_certs", "custom_matchers"]),
              vf.rejected.isEmpty else { return nil }
        guard let ca = vf["trusted_ca"] else { return .some(nil) }
        guard let text = readDataSource(ca) else { return nil }
        return .some(text)
    }

    /// `tls_certificates[i]`: the chain and the key, both required (PEM).
    func parseCertificate(_ value: ConfigValue) -> (String, String)? {
        guard let f = value.fields(known: ["certificate_chain", "private_key"],
                                   unsupported: ["pkey_private_key_provider", "password", "ocsp_staple", "signed_certificate_timestamp",
                                                 "private_key_provider", "watched_directory"]) else { return nil }
        let chainValue = f.required("certificate_chain")
        let keyValue = f.required("private_key")
        let chain = chainValue.flatMap(readDataSource)
        let key = keyValue.flatMap(readDataSource)
        guard f.rejected.isEmpty, let chain, let key else { return nil }
        return (chain, key)
    }

    /// A `DataSource`: `filename` (read now; relative to the working directory, as Envoy) or `inline_string`.
    func readDataSource(_ value: ConfigValue) -> String? {
        guard let f = value.fields(known: ["filename", "inline_string"],
                                   unsupported: ["inline_bytes", "environment_variable", "watched_directory"]) else { return nil }
        guard let which = f.oneOf(["filename", "inline_string"], unsupportedAlternatives: ["inline_bytes", "environment_variable"]) else { return nil }
        guard let v = f[which], let text = v.nonEmptyString() else { return nil }
        if which == "inline_string" { return text }
        switch BootstrapLoader.readFile(text) {
        case .success(let contents):
            if contents.isEmpty {
                v.error("'\(text)' is empty")
                return nil
            }
            return contents
        case .failure(let failure):
            v.error("cannot read '\(text)': \(failure.text)")
            return nil
        }
    }
}
