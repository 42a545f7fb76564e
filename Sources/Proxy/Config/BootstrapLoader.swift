import Foundation
import Yams

/// A bootstrap that loaded, with what it loaded despite (deprecated v2 shapes and the like).
public struct LoadedBootstrap: Sendable {
    public let bootstrap: Bootstrap
    /// Deprecation warnings and other non-fatal findings, in document order. The loader never
    /// prints them; the caller decides (`ballast proxy` logs them).
    public var warnings: [ConfigDiagnostic]
    /// The `-c` file's text as read (a dynamic-resource update re-parses it rather than the file,
    /// which may have changed on disk: Envoy reads its bootstrap once).
    public var configText: String? = nil
}

/// Loads Envoy v3 bootstrap YAML (and the v2 shapes of the talk's config) into `Bootstrap`.
/// Main thread only, at start and on reload; uses Foundation to read files.
public enum BootstrapLoader {
    /// Parses and checks `yaml`. Throws every error found, in document order.
    public static func load(yaml: String) throws(ConfigLoadError) -> LoadedBootstrap {
        let diagnostics = ConfigDiagnostics()
        guard let root = compose(yaml, diagnostics) else { throw failure(diagnostics) }
        return try build(root, diagnostics)
    }

    /// Reads and loads the file at `path` (`-c`, `--config-path`).
    public static func load(path: String) throws(ConfigLoadError) -> LoadedBootstrap {
        try load(path: path, overlayYAML: nil)
    }

    /// Envoy's `-c FILE` with `--config-yaml STRING`: when both are given the string is merged over
    /// the file (mappings merge key by key, lists are appended, scalars replaced), as Envoy does.
    /// Locations in errors then refer to whichever text the value came from.
    public static func load(path: String?, overlayYAML: String?) throws(ConfigLoadError) -> LoadedBootstrap {
        try load(path: path, overlayYAML: overlayYAML, configText: nil, previousDynamic: nil, rereading: nil, secretTexts: [:])
    }

    /// The load at the process's start (`ballast proxy`, run or validate): as Envoy, an EDS / RDS
    /// file that does not deliver its resource leaves the cluster without hosts / the routes
    /// empty, with a warning and the subscription's `update_rejected` / `update_failure`, instead
    /// of refusing the configuration. (A reload or an update refuses it and keeps what runs.)
    ///
    /// With `toleratingListenerAndClusterFiles` (run mode) the same holds for the LDS and CDS
    /// files: one with an error in it (not YAML, a resource refused) is taken as delivering no
    /// resource and the load runs again, so what depended on it fails in its turn (an LDS route
    /// naming a cluster only the bad CDS file had: LDS is rejected too, as in Envoy; a static
    /// listener's: the start is refused, as in Envoy). The dropped errors become warnings.
    public static func loadAtStart(path: String?, overlayYAML: String?,
                                   toleratingListenerAndClusterFiles: Bool = false) throws(ConfigLoadError) -> LoadedBootstrap {
        var failed: [SubscriptionKey: Bool] = [:]
        var dropped: [ConfigDiagnostic] = []
        while true {
            let error: ConfigLoadError
            do throws(ConfigLoadError) {
                var loaded = try load(path: path, overlayYAML: overlayYAML, configText: nil, previousDynamic: nil, rereading: nil,
                                      secretTexts: [:], atStart: true, failedAtStart: failed)
                loaded.warnings = dropped + loaded.warnings
                return loaded
            } catch let e {
                error = e
            }
            guard toleratingListenerAndClusterFiles else { throw error }
            var more = false
            for key in [SubscriptionKey.cluster, .listener] where failed[key] == nil {
                guard let file = error.dynamicFilePaths[key] else { continue }
                let inFile = error.errors.filter { isIn($0, file: file) }
                guard !inFile.isEmpty else { continue }
                more = true
                failed[key] = error.unparsableDynamicFiles.contains(key)
                let note = " (at start, as Envoy: \(key) goes on without its resources; a good file moved onto \(file) adds them)"
                dropped += inFile.map { ConfigDiagnostic(.warning, path: $0.path, message: $0.message + note, location: $0.location) }
            }
            guard more else {
                var refused = ConfigLoadError(errors: error.errors, warnings: dropped + error.warnings)
                refused.unparsableDynamicFiles = error.unparsableDynamicFiles
                refused.unparsableSecretFiles = error.unparsableSecretFiles
                refused.dynamicFilePaths = error.dynamicFilePaths
                throw refused
            }
        }
    }

    /// Whether `diagnostic` is about the text of the dynamic-resource file `file` (its path's
    /// first component, or a YAML syntax error prefixed with it).
    private static func isIn(_ diagnostic: ConfigDiagnostic, file: String) -> Bool {
        if case .key(let first)? = diagnostic.path.components.first { return first == file }
        return diagnostic.path.isRoot && diagnostic.message.hasPrefix("\(file): ")
    }

    /// As `load(path:overlayYAML:)`, with the `-c` file's text given (`configText`, read from
    /// `path` when nil) and the dynamic sources' last good texts (`previousDynamic`), of which only
    /// `rereading`'s file is read again.
    public static func load(path: String?, overlayYAML: String?, configText: String?,
                            previousDynamic: DynamicResourceState?, rereading: SubscriptionKey?, secretTexts: [String: String] = [:],
                            atStart: Bool = false, failedAtStart: [SubscriptionKey: Bool] = [:]) throws(ConfigLoadError) -> LoadedBootstrap {
        let diagnostics = ConfigDiagnostics()
        var root: Node?
        var readText: String?
        if let path {
            let text: String
            if let configText {
                text = configText
            } else {
                switch readFile(path) {
                case .success(let contents): text = contents
                case .failure(let reason):
                    throw ConfigLoadError(errors: [ConfigDiagnostic(.error, path: .root, message: "cannot read config file '\(path)': \(reason.text)")])
                }
            }
            readText = text
            guard let node = compose(text, diagnostics, source: path) else { throw failure(diagnostics) }
            root = node
        }
        if let overlayYAML {
            guard let node = compose(overlayYAML, diagnostics, source: "--config-yaml") else { throw failure(diagnostics) }
            root = root.map { merge($0, node) } ?? node
        }
        guard let root else {
            throw ConfigLoadError(errors: [ConfigDiagnostic(.error, path: .root, message: "no configuration: give -c FILE or --config-yaml STRING")])
        }
        var loaded = try build(root, diagnostics, previousDynamic: previousDynamic, rereading: rereading, secretTexts: secretTexts, atStart: atStart, failedAtStart: failedAtStart)
        loaded.configText = readText
        return loaded
    }

    private static func build(_ root: Node, _ diagnostics: ConfigDiagnostics,
                              previousDynamic: DynamicResourceState? = nil, rereading: SubscriptionKey? = nil, secretTexts: [String: String] = [:],
                              atStart: Bool = false, failedAtStart: [SubscriptionKey: Bool] = [:]) throws(ConfigLoadError) -> LoadedBootstrap {
        let parser = BootstrapParser(diagnostics: diagnostics)
        parser.atStart = atStart
        parser.failedAtStart = failedAtStart
        parser.previousDynamic = previousDynamic
        parser.rereading = rereading
        parser.secretTexts = secretTexts
        let parsed = parser.parseBootstrap(ConfigValue(node: root, path: .root, diagnostics: diagnostics))
        guard var bootstrap = parsed, diagnostics.errors.isEmpty else {
            var error = failure(diagnostics)
            error.unparsableDynamicFiles = parser.unparsableDynamicFiles
            error.unparsableSecretFiles = parser.unparsableSecretFiles
            error.dynamicFilePaths = parser.dynamic.sources.mapValues(\.path)
            throw error
        }
        // What /config_dump prints of the bootstrap, and its `last_updated` (also its static
        // resources'): a dynamic update (which passes the previous state) keeps the first read's.
        bootstrap.printed.json = EnvoyProtoJSONRules.normalise(root)
        bootstrap.dynamic.readTimes.bootstrapMillis = previousDynamic?.readTimes.bootstrapMillis ?? ConfigReadTimes.nowMillis()
        return LoadedBootstrap(bootstrap: bootstrap, warnings: sorted(diagnostics.warnings))
    }

    private static func failure(_ diagnostics: ConfigDiagnostics) -> ConfigLoadError {
        ConfigLoadError(errors: sorted(diagnostics.errors), warnings: sorted(diagnostics.warnings))
    }

    /// Document order (checks run in passes; errors without a location keep their place at the end).
    private static func sorted(_ list: [ConfigDiagnostic]) -> [ConfigDiagnostic] {
        list.enumerated().sorted { a, b in
            switch (a.element.location, b.element.location) {
            case let (x?, y?): (x.line, x.column, a.offset) < (y.line, y.column, b.offset)
            case (.some, nil): true
            case (nil, .some): false
            case (nil, nil): a.offset < b.offset
            }
        }.map(\.element)
    }

    /// YAML text to a node tree; syntax errors become diagnostics with line and column.
    static func compose(_ text: String, _ diagnostics: ConfigDiagnostics, source: String? = nil) -> Node? {
        let prefix = source.map { "\($0): " } ?? ""
        do {
            guard let node = try Yams.compose(yaml: text) else {
                diagnostics.error(.root, "\(prefix)the configuration is empty", location: nil)
                return nil
            }
            return node
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _),
                 .parser(let context, let problem, let mark, _),
                 .composer(let context, let problem, let mark, _):
                var message = "\(prefix)YAML syntax error at line \(mark.line), column \(mark.column): \(problem)"
                if let context { message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))" }
                diagnostics.error(.root, message, location: ConfigLocation(line: mark.line, column: mark.column))
            case .duplicatedKeysInMapping(let duplicates, let context):
                let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
                diagnostics.error(.root, "\(prefix)YAML error at line \(context.mark.line), column \(context.mark.column): duplicate key \(keys) in a mapping",
                                  location: ConfigLocation(line: context.mark.line, column: context.mark.column))
            case .reader(let problem, _, _, _):
                diagnostics.error(.root, "\(prefix)cannot read the YAML text: \(problem)", location: nil)
            default:
                diagnostics.error(.root, "\(prefix)YAML error: \(error)", location: nil)
            }
            return nil
        } catch {
            diagnostics.error(.root, "\(prefix)YAML error: \(error)", location: nil)
            return nil
        }
    }

    /// Protobuf merge semantics over YAML trees: `overlay` wins.
    static func merge(_ base: Node, _ overlay: Node) -> Node {
        switch (base, overlay) {
        case (.mapping(let a), .mapping(let b)):
            var pairs: [(Node, Node)] = a.map { ($0.key, $0.value) }
            for (key, value) in b {
                if let i = pairs.firstIndex(where: { $0.0.scalar?.string == key.scalar?.string }) {
                    pairs[i].1 = merge(pairs[i].1, value)
                } else {
                    pairs.append((key, value))
                }
            }
            return .mapping(Node.Mapping(pairs, a.tag, a.style, a.mark))
        case (.sequence(let a), .sequence(let b)):
            return .sequence(Node.Sequence(Array(a) + Array(b), a.tag, a.style, a.mark))
        default:
            return overlay
        }
    }

    struct ReadFailure: Error {
        let text: String
    }

    /// The whole file as UTF-8 (invalid bytes replaced), or the system's reason it cannot be read.
    static func readFile(_ path: String) -> Result<String, ReadFailure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(ReadFailure(text: String(cString: strerror(errno)))) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(ReadFailure(text: String(cString: strerror(errno))))
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 64 << 20 { return .failure(ReadFailure(text: "larger than 64 MiB")) }
        }
        return .success(String(decoding: bytes, as: UTF8.self))
    }
}
