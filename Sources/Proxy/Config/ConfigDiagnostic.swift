/// Where a value sits in a bootstrap YAML document, written the way the errors print it:
/// `static_resources.clusters[0].lb_policy`. Keys that contain dots or brackets print as
/// `["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`.
public struct ConfigPath: Sendable, Hashable, CustomStringConvertible {
    public enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    public let components: [Component]

    public init(_ components: [Component] = []) { self.components = components }

    /// The document itself (errors about the whole file, YAML syntax errors).
    public static let root = ConfigPath()

    public var isRoot: Bool { components.isEmpty }

    public func appending(_ key: String) -> ConfigPath { ConfigPath(components + [.key(key)]) }

    public func appending(index: Int) -> ConfigPath { ConfigPath(components + [.index(index)]) }

    /// Parses the printed form back (tests and tools); `nil` for malformed text.
    public init?(parsing text: String) {
        var components: [Component] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            if rest.hasPrefix("[\"") {
                guard let end = rest.range(of: "\"]") else { return nil }
                components.append(.key(String(rest[rest.index(rest.startIndex, offsetBy: 2)..<end.lowerBound])))
                rest = rest[end.upperBound...]
            } else if rest.hasPrefix("[") {
                guard let end = rest.firstIndex(of: "]"), let i = Int(rest[rest.index(after: rest.startIndex)..<end]) else { return nil }
                components.append(.index(i))
                rest = rest[rest.index(after: end)...]
            } else {
                if rest.hasPrefix(".") {
                    guard !components.isEmpty else { return nil }
                    rest = rest.dropFirst()
                }
                let end = rest.firstIndex { $0 == "." || $0 == "[" } ?? rest.endIndex
                guard end > rest.startIndex else { return nil }
                components.append(.key(String(rest[..<end])))
                rest = rest[end...]
            }
        }
        self.components = components
    }

    public var description: String {
        var text = ""
        for component in components {
            switch component {
            case .index(let i):
                text += "[\(i)]"
            case .key(let key):
                if key.contains(where: { $0 == "." || $0 == "[" || $0 == "]" || $0 == " " }) || key.isEmpty {
                    text += "[\"\(key)\"]"
                } else {
                    if !text.isEmpty { text += "." }
                    text += key
                }
            }
        }
        return text
    }
}

/// A line and column in the YAML text, both counted from 1 (columns in Unicode scalars).
public struct ConfigLocation: Sendable, Hashable, CustomStringConvertible {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "line \(line), column \(column)" }
}

/// One problem found while loading a bootstrap: an error (the config is rejected) or a warning
/// (deprecated v2 shapes and other things that load but should be changed).
///
/// `description` is `<path>: <message>`, e.g.
/// `static_resources.clusters[0].lb_polcy: unknown field; did you mean lb_policy?`;
/// problems with the whole document (YAML syntax) have no path and print the message alone.
public struct ConfigDiagnostic: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        case error
        case warning
    }

    public let severity: Severity
    public let path: ConfigPath
    public let message: String
    /// Where the offending key or value starts, when the YAML parser told us.
    public let location: ConfigLocation?

    public init(_ severity: Severity, path: ConfigPath, message: String, location: ConfigLocation? = nil) {
        self.severity = severity
        self.path = path
        self.message = message
        self.location = location
    }

    public var description: String { path.isRoot ? message : "\(path): \(message)" }

    /// `description` followed by ` (line L, column C)` when the location is known: what the CLI prints.
    public var located: String {
        guard let location else { return description }
        return "\(description) (\(location))"
    }
}

/// Thrown when a bootstrap does not load: every error found (not just the first), in document
/// order, plus the warnings gathered before giving up.
public struct ConfigLoadError: Error, Sendable, CustomStringConvertible {
    public let errors: [ConfigDiagnostic]
    public let warnings: [ConfigDiagnostic]
    /// Dynamic-resource files whose text did not parse at all (Envoy: update_failure, not rejected).
    public var unparsableDynamicFiles: Set<SubscriptionKey> = []
    /// SDS files (by path) whose text is not valid YAML / JSON.
    public var unparsableSecretFiles: Set<String> = []
    /// Every dynamic source's file path, as far as the load got (to tell which file an error is in).
    public var dynamicFilePaths: [SubscriptionKey: String] = [:]

    public init(errors: [ConfigDiagnostic], warnings: [ConfigDiagnostic] = []) {
        self.errors = errors
        self.warnings = warnings
    }

    public var description: String { errors.map(\.located).joined(separator: "\n") }
}
