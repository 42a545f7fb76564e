import Yams

/// `tls_certificate_sds_secret_configs` / `validation_context_sds_secret_config` with a file
/// source: the secret is read from its DiscoveryResponse file while parsing (or taken from
/// `secretTexts`, the last good text of a file an update did not replace). Errors inside the file
/// carry its path as their first path component, as for LDS / CDS files.
extension BootstrapParser {
    static let secretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

    enum SecretUse {
        case tlsCertificate, validationContext

        var field: String { self == .tlsCertificate ? "tls_certificate" : "validation_context" }
    }

    /// One `SdsSecretConfig`: its name and, read from its file, the secret (nil on an error,
    /// reported). `at`: where the secret's own fields are, for OpenSSL's refusals.
    func parseSDSSecretConfig(_ value: ConfigValue, _ use: SecretUse) -> (name: String, content: SecretContent, at: ConfigPath)? {
        guard let f = value.fields(known: ["name", "sds_config"]) else { return nil }
        guard let name = f.required("name")?.nonEmptyString() else { return nil }
        guard let sds = f["sds_config"] else {
            value.error("a secret without sds_config comes from static_resources.secrets, which ballast does not support; read it from a file with sds_config.path_config_source")
            return nil
        }
        guard let source = parseFileConfigSource(sds) else { return nil }
        sdsConfigValues.append(sds)
        if let known = secrets.sources[name], known != source {
            f.error("sds_config", "secret '\(name)' is already read from '\(known.path)'; one secret name has one source")
            return nil
        }
        secrets.sources[name] = source
        if let cached = parsedSecrets[name] {
            guard let cached else { return nil }
            return checkedUse(cached, name: name, use, value)
        }
        let parsed = readSecretFile(name, source)
        parsedSecrets[name] = .some(parsed)
        guard let parsed else { return nil }
        return checkedUse(parsed, name: name, use, value)
    }

    private func checkedUse(_ parsed: (content: SecretContent, at: ConfigPath), name: String, _ use: SecretUse,
                            _ value: ConfigValue) -> (name: String, content: SecretContent, at: ConfigPath)? {
        switch (parsed.content, use) {
        case (.tlsCertificate, .tlsCertificate), (.validationContext, .validationContext):
            return (name, parsed.content, parsed.at)
        default:
            value.error("secret '\(name)' holds no \(use.field) (\(parsed.at))")
            return nil
        }
    }

    /// The secret `name` from `source`'s file: exactly one Secret resource, of that name.
    private func readSecretFile(_ name: String, _ source: FileConfigSource) -> (content: SecretContent, at: ConfigPath)? {
        let filePath = ConfigPath.root.appending(source.path)
        let text: String
        if let given = secretTexts[source.path] {
            text = given
            dynamic.readTimes.secretFileMillis[source.path] = previousDynamic?.readTimes.secretFileMillis[source.path]
        } else {
            switch BootstrapLoader.readFile(source.path) {
            case .success(let t):
                text = t
                dynamic.readTimes.secretFileMillis[source.path] = ConfigReadTimes.nowMillis()
            case .failure(let reason):
                diagnostics.error(filePath, "paths must refer to an existing path in the system: '\(source.path)' cannot be read (\(reason.text))", location: nil)
                return nil
            }
        }
        secrets.texts[source.path] = text
        let isYAML = source.path.hasSuffix(".yaml") || source.path.hasSuffix(".yml")
        if !isYAML && text.first(where: { !$0.isWhitespace }) != "{" {
            unparsableSecretFiles.insert(source.path)
            diagnostics.error(filePath, "expected JSON: Envoy reads a config file whose name does not end in .yaml or .yml as JSON", location: nil)
            return nil
        }
        let before = diagnostics.errors.count
        guard let root = BootstrapLoader.compose(text, diagnostics, source: source.path) else {
            if diagnostics.errors.count > before { unparsableSecretFiles.insert(source.path) }
            return nil
        }
        let response = ConfigValue(node: root, path: filePath, diagnostics: diagnostics)
        guard let f = response.fields(known: ["version_info", "resources", "type_url", "nonce"],
                                      unsupported: ["canary", "control_plane", "resource_errors"]) else { return nil }
        if let t = f["type_url"], let url = t.string(), url != Self.secretType {
            t.error("expected \(Self.secretType) for an SDS file, got '\(url)'")
            return nil
        }
        secrets.versionInfo[name] = f["version_info"]?.string() ?? ""
        guard let resources = f.required("resources")?.list() else { return nil }
        // Envoy 1.40 rejects a file with more or fewer than one Secret (checked with the binary).
        guard resources.count == 1, let item = resources.first else {
            f.error("resources", "an SDS file holds exactly one Secret (Envoy rejects any other count); found \(resources.count)")
            return nil
        }
        guard let s = item.fields(known: ["@type", "name", "tls_certificate", "validation_context"],
                                  unsupported: ["session_ticket_keys", "generic_secret"]) else { return nil }
        guard let typeValue = s.required("@type"), let type = typeValue.nonEmptyString() else { return nil }
        guard type == Self.secretType else {
            typeValue.error("expected \(Self.secretType), got '\(type)'")
            return nil
        }
        guard let nameValue = s.required("name"), let found = nameValue.nonEmptyString() else { return nil }
        guard found == name else {
            nameValue.error("the file holds secret '\(found)', not '\(name)' (Envoy rejects it)")
            return nil
        }
        guard s.rejected.isEmpty, let which = s.oneOf(["tls_certificate", "validation_context"]), let body = s[which] else { return nil }
        if which == "tls_certificate" {
            guard let (chain, key) = parseCertificate(body) else { return nil }
            secrets.files[name] = [Self.dataSourcePath(body.node, "certificate_chain"), Self.dataSourcePath(body.node, "private_key")]
                .filter { $0 != "<inline>" }
            return (.tlsCertificate(chain: chain, key: key), body.path)
        }
        guard let trustedCA = parseValidationContext(body) else { return nil }
        if case .mapping(let m) = body.node, let ca = m.first(where: { $0.key.scalar?.string == "trusted_ca" })?.value {
            secrets.files[name] = [Self.dataSourcePath(ca, nil)].filter { $0 != "<inline>" }
        }
        return (.validationContext(trustedCA: trustedCA), body.path)
    }

    /// Every SDS config needs the node's id and cluster, as Envoy checks for any xDS subscription.
    func checkSDSNode(_ node: NodeIdentity?, nodeValue: ConfigValue?) {
        guard let first = sdsConfigValues.first, (node?.id ?? "").isEmpty || (node?.cluster ?? "").isEmpty else { return }
        diagnostics.error(nodeValue?.path ?? .root.appending("node"),
                          "node 'id' and 'cluster' are required with sds_config (\(first.path); Envoy refuses the config without them)",
                          at: (nodeValue ?? first).node)
    }
}
