import Yams

/// `dynamic_resources` with file sources, and the DiscoveryResponse files they name. The files'
/// resources are parsed by the same functions as static ones, so every check (names, cluster
/// references, ports) covers static and dynamic resources together.
extension BootstrapParser {
    func parseDynamicResources(_ value: ConfigValue, node: NodeIdentity?, nodeValue: ConfigValue?) -> DynamicResourcesConfig? {
        guard let f = value.fields(known: ["lds_config", "cds_config"],
                                   unsupported: ["ads_config", "lds_resources_locator", "cds_resources_locator"]) else { return nil }
        let lds = f["lds_config"].flatMap(parseFileConfigSource)
        let cds = f["cds_config"].flatMap(parseFileConfigSource)
        let hasSource = lds != nil || cds != nil
        if hasSource && ((node?.id ?? "").isEmpty || (node?.cluster ?? "").isEmpty) {
            // Envoy's own check for any xDS subscription, file-based ones included.
            diagnostics.error(nodeValue?.path ?? .root.appending("node"),
                              "node 'id' and 'cluster' are required with dynamic_resources (Envoy refuses the config without them)",
                              at: (nodeValue ?? value).node)
        }
        return DynamicResourcesConfig(lds: lds, cds: cds)
    }

    /// A `ConfigSource` that reads a file: `path_config_source {path, watched_directory}` or the
    /// deprecated `path`.
    func parseFileConfigSource(_ value: ConfigValue) -> FileConfigSource? {
        guard let f = value.fields(
            known: ["path_config_source", "path", "resource_api_version"],
            unsupported: ["api_config_source", "ads", "self", "authorities", "initial_fetch_timeout"]) else { return nil }
        if let v = f["resource_api_version"], let text = v.string(), text != "V3" && text != "AUTO" {
            v.error(text == "V2" ? "the v2 xDS API is gone (Envoy refuses it too); use V3" : "unknown value '\(text)' (expected V3 or AUTO)")
        }
        guard f.oneOf(["path_config_source", "path"], unsupportedAlternatives: ["api_config_source", "ads", "self"]) != nil else { return nil }
        if let p = f["path"] {
            f.warning("path", "deprecated; use path_config_source.path")
            guard let path = p.nonEmptyString() else { return nil }
            return FileConfigSource(path: path, watchedDirectory: nil)
        }
        guard let pcs = f["path_config_source"]?.fields(known: ["path", "watched_directory"]) else { return nil }
        let path = pcs.required("path")?.nonEmptyString()
        var watched: String?
        if let w = pcs["watched_directory"]?.fields(known: ["path"]) {
            guard let dir = w.required("path")?.nonEmptyString() else { return nil }
            watched = dir
        }
        guard let path else { return nil }
        return FileConfigSource(path: path, watchedDirectory: watched)
    }

    /// Reads `source`'s DiscoveryResponse (or takes the text given in `dynamicTexts`) and parses
    /// its resources of `kind`. Errors carry the file's path as their first path component.
    func parseDynamicFile<R>(_ source: FileConfigSource, _ kind: DynamicResourceKind, into state: inout DynamicResourceState,
                             _ parse: (ConfigValue) -> R?) -> [R] {
        let filePath = ConfigPath.root.appending(source.path)
        let text: String
        if let given = dynamicTexts[kind] {
            text = given
        } else {
            switch BootstrapLoader.readFile(source.path) {
            case .success(let t): text = t
            case .failure(let reason):
                // Envoy's words for a missing file; the outcome is the same: the config is refused.
                diagnostics.error(ConfigPath.root.appending("dynamic_resources").appending(kind.configField),
                                  "paths must refer to an existing path in the system: '\(source.path)' cannot be read (\(reason.text))", location: nil)
                return []
            }
        }
        state.texts[kind] = text
        let isYAML = source.path.hasSuffix(".yaml") || source.path.hasSuffix(".yml")
        if !isYAML && text.first(where: { !$0.isWhitespace }) != "{" {
            unparsableDynamicFiles.insert(kind)
            diagnostics.error(filePath, "expected JSON: Envoy reads a config file whose name does not end in .yaml or .yml as JSON", location: nil)
            return []
        }
        let before = diagnostics.errors.count
        guard let root = BootstrapLoader.compose(text, diagnostics, source: source.path) else {
            if diagnostics.errors.count > before { unparsableDynamicFiles.insert(kind) }
            return []
        }
        let response = ConfigValue(node: root, path: filePath, diagnostics: diagnostics)
        guard let f = response.fields(known: ["version_info", "resources", "type_url", "nonce"],
                                      unsupported: ["canary", "control_plane", "resource_errors"]) else { return [] }
        if let t = f["type_url"], let url = t.string(), url != kind.typeURL {
            t.error("expected \(kind.typeURL) for \(kind.configField), got '\(url)'")
        }
        state.versionInfo[kind] = f["version_info"]?.string() ?? ""
        var parsed: [R] = []
        for item in f["resources"]?.list() ?? [] {
            guard let body = unpack(item, kind) else { continue }
            if let r = parse(body) { parsed.append(r) }
        }
        return parsed
    }

    /// The resource without its `@type`, after checking that it names `kind`'s message.
    private func unpack(_ item: ConfigValue, _ kind: DynamicResourceKind) -> ConfigValue? {
        guard case .mapping(let mapping) = item.node else {
            item.error("expected a mapping with \"@type\": \(kind.typeURL), got \(item.node.foundDescription)")
            return nil
        }
        let typeValue = mapping.first { $0.key.scalar?.string == "@type" }?.value
        guard let typeValue, let url = typeValue.scalar?.string else {
            item.error("missing \"@type\" (expected \(kind.typeURL))")
            return nil
        }
        guard url == kind.typeURL else {
            diagnostics.error(item.path.appending("@type"), "Unable to unpack as \(kind.messageName): the resource is '\(url)'", at: typeValue)
            return nil
        }
        let rest = mapping.filter { $0.key.scalar?.string != "@type" }
        let node = Node.mapping(Node.Mapping(rest.map { ($0.key, $0.value) }, mapping.tag, mapping.style, mapping.mark))
        return ConfigValue(node: node, path: item.path, diagnostics: diagnostics)
    }
}
