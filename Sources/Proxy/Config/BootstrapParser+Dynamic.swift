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

    /// The resources of `kind` in `source`'s file, each parsed by `parse` (LDS, CDS).
    func parseDynamicFile<R>(_ source: FileConfigSource, _ kind: DynamicResourceKind, _ parse: (ConfigValue) -> R?) -> [R] {
        let key: SubscriptionKey = kind == .listener ? .listener : .cluster
        let field = ConfigPath.root.appending("dynamic_resources").appending(kind.configField)
        if let unparsable = failedAtStart[key] {
            dynamic.sources[key] = source
            dynamic.startFailures[key] = unparsable
            // What later loads take as this file's last good text: no resource.
            dynamic.texts[key] = Self.noResources
            dynamic.versionInfo[key] = ""
            return []
        }
        return (readDiscoveryResponse(source, key, field: field) ?? []).compactMap(parse)
    }

    /// The DiscoveryResponse of a source that failed at start.
    static let noResources = #"{"resources": []}"#

    /// The resources (without `@type`) of `key`'s DiscoveryResponse. The text is the last good one
    /// when `previousDynamic` has it and `key` is not the one being re-read, else the file's.
    /// Errors carry the file's path as their first path component; nil when unusable.
    func readDiscoveryResponse(_ source: FileConfigSource, _ key: SubscriptionKey, field: ConfigPath) -> [ConfigValue]? {
        dynamic.sources[key] = source
        let previous = previousDynamic.flatMap { $0.sources[key] == source ? $0 : nil }
        let text: String
        var keptVersion: String?
        if !rereads(key), let previous, let kept = previous.texts[key] {
            text = kept
            keptVersion = previous.versionInfo[key]
            dynamic.readTimes.subscriptionMillis[key] = previous.readTimes.subscriptionMillis[key]
        } else {
            switch BootstrapLoader.readFile(source.path) {
            case .success(let t):
                text = t
                dynamic.readTimes.subscriptionMillis[key] = ConfigReadTimes.nowMillis()
            case .failure(let reason):
                // Envoy's words for a missing file; the outcome is the same: the config is refused.
                unreadableDynamicFiles.insert(key)
                diagnostics.error(field, "paths must refer to an existing path in the system: '\(source.path)' cannot be read (\(reason.text))", location: nil)
                return nil
            }
        }
        guard let decoded = decodeResponse(text, source, key) else { return nil }
        dynamic.texts[key] = text
        dynamic.versionInfo[key] = keptVersion ?? decoded.version
        if key.isSingleResource && keptVersion == nil && decoded.resources.isEmpty {
            // Envoy: `update_empty`; an update without the resource keeps the last one.
            dynamic.empty.insert(key)
            if key == rereading, let old = previous?.texts[key], let kept = decodeResponse(old, source, key) {
                dynamic.texts[key] = old
                return kept.resources
            }
        }
        return decoded.resources
    }

    /// Whether this load reads `key`'s file again: the updated subscription's, and on a CDS update
    /// the EDS files too (Envoy re-creates a changed cluster, whose new EDS subscription reads its
    /// file; ProxyOps counts that read for the clusters that changed).
    private func rereads(_ key: SubscriptionKey) -> Bool {
        if key == rereading { return true }
        if rereading == .cluster, case .endpoints = key { return true }
        return false
    }

    /// Whether this load creates RDS route configuration `name` (validate_clusters applies):
    /// at start, on a reload, or when its file is re-read.
    func createsRouteConfiguration(_ name: String) -> Bool {
        rereading == nil || rereading == .routes(name: name)
    }

    /// A DiscoveryResponse text: its `version_info` and its resources of `key`'s type.
    private func decodeResponse(_ text: String, _ source: FileConfigSource, _ key: SubscriptionKey) -> (version: String, resources: [ConfigValue])? {
        let filePath = ConfigPath.root.appending(source.path)
        let isYAML = source.path.hasSuffix(".yaml") || source.path.hasSuffix(".yml")
        if !isYAML && text.first(where: { !$0.isWhitespace }) != "{" {
            unparsableDynamicFiles.insert(key)
            diagnostics.error(filePath, "expected JSON: Envoy reads a config file whose name does not end in .yaml or .yml as JSON", location: nil)
            return nil
        }
        let before = diagnostics.errors.count
        guard let root = BootstrapLoader.compose(text, diagnostics, source: source.path) else {
            if diagnostics.errors.count > before { unparsableDynamicFiles.insert(key) }
            return nil
        }
        let response = ConfigValue(node: root, path: filePath, diagnostics: diagnostics)
        guard let f = response.fields(known: ["version_info", "resources", "type_url", "nonce"],
                                      unsupported: ["canary", "control_plane", "resource_errors"]) else { return nil }
        if let t = f["type_url"], let url = t.string(), url != key.typeURL {
            t.error("expected \(key.typeURL) for \(key), got '\(url)'")
        }
        let resources = (f["resources"]?.list() ?? []).compactMap { unpack($0, key) }
        return (f["version_info"]?.string() ?? "", resources)
    }

    /// Runs `body` (reading `key`'s file and parsing its resource). At start, errors it found in
    /// the file become warnings and `fallback` stands in, as Envoy starts without the resource
    /// (the subscription counts update_rejected / update_failure; later updates may deliver it).
    func toleratingAtStart<R>(_ key: SubscriptionKey, fallback: R, _ body: () -> R?) -> R? {
        let errors = diagnostics.errors.count
        let references = clusterReferences.count
        let result = body()
        guard atStart, diagnostics.errors.count > errors, !unreadableDynamicFiles.contains(key) else { return result }
        diagnostics.demoteErrors(since: errors, note: " (at start, as Envoy: \(key) goes on without its resource)")
        clusterReferences.removeSubrange(min(references, clusterReferences.count)...)
        dynamic.startFailures[key] = unparsableDynamicFiles.contains(key)
        unparsableDynamicFiles.remove(key)
        dynamic.empty.remove(key)
        // What later loads take as this file's last good text: no resource.
        dynamic.texts[key] = Self.noResources
        dynamic.versionInfo[key] = ""
        return fallback
    }

    /// The cluster references added since `count` (a route configuration from an RDS file),
    /// checked now: every cluster is read before any listener.
    func checkClusterReferences(since count: Int) {
        let known = Set(clusterNames.map(\.name))
        for ref in clusterReferences[count...] where !known.contains(ref.name) {
            var message = "unknown cluster '\(ref.name)'"
            if let guess = Spelling.closest(to: ref.name, in: clusterNames.map(\.name)) { message += "; did you mean \(guess)?" }
            ref.value.error(message)
        }
        clusterReferences.removeSubrange(count...)
    }

    /// What an EDS / RDS file delivered for one resource name.
    enum SingleResource {
        /// No resource (Envoy: `update_empty`).
        case none
        case one(ConfigValue)
        /// More than one, or another name: refused (Envoy rejects the update).
        case invalid
    }

    /// Envoy's rule for an EDS / RDS file: it holds no resource, or exactly one, named `expected`
    /// in `nameField`.
    func singleResource(_ resources: [ConfigValue], _ source: FileConfigSource, api: String, nameField: String, expected: String) -> SingleResource {
        guard let first = resources.first else { return .none }
        guard resources.count == 1 else {
            diagnostics.error(ConfigPath.root.appending(source.path).appending("resources"),
                              "Unexpected \(api) resource length: \(resources.count) (a file for one \(api) subscription holds one resource; Envoy rejects it too)", at: first.node)
            return .invalid
        }
        var name = ""
        if case .mapping(let mapping) = first.node, let v = mapping.first(where: { $0.key.scalar?.string == nameField })?.value.scalar?.string {
            name = v
        }
        guard name == expected else {
            diagnostics.error(first.path.appending(nameField), "Unexpected \(api) \(api == "EDS" ? "cluster" : "configuration") (expecting \(expected)): \(name)", at: first.node)
            return .invalid
        }
        return .one(first)
    }

    /// The resource without its `@type`, after checking that it names `kind`'s message.
    private func unpack(_ item: ConfigValue, _ kind: SubscriptionKey) -> ConfigValue? {
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
