import Yams

// A small checked walk over a composed `Yams.Node` tree. Every accessor that finds a problem
// records it (with the YAML path and the line/column) and returns nil, so the loader keeps going
// and reports every error in one run. Config loading only; nothing here is on the hot path.

/// Errors and warnings gathered during one load, in the order they were found.
final class ConfigDiagnostics {
    private(set) var errors: [ConfigDiagnostic] = []
    private(set) var warnings: [ConfigDiagnostic] = []

    func error(_ path: ConfigPath, _ message: String, at node: Node? = nil) {
        errors.append(ConfigDiagnostic(.error, path: path, message: message, location: node?.configLocation))
    }

    func error(_ path: ConfigPath, _ message: String, location: ConfigLocation?) {
        errors.append(ConfigDiagnostic(.error, path: path, message: message, location: location))
    }

    func warning(_ path: ConfigPath, _ message: String, at node: Node? = nil) {
        warnings.append(ConfigDiagnostic(.warning, path: path, message: message, location: node?.configLocation))
    }

    /// Turns the errors found since `count` into warnings ending with `note` (a part of the
    /// configuration the load goes on without).
    func demoteErrors(since count: Int, note: String) {
        for e in errors[count...] {
            warnings.append(ConfigDiagnostic(.warning, path: e.path, message: e.message + note, location: e.location))
        }
        errors.removeSubrange(count...)
    }
}

extension Node {
    var configLocation: ConfigLocation? { mark.map { ConfigLocation(line: $0.line, column: $0.column) } }

    /// A YAML null: `~`, `null`, or nothing after the colon (plain style only).
    var isNull: Bool {
        guard case .scalar(let s) = self, s.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(s.string)
    }

    /// How an error names what it found instead: `a mapping`, `a list`, `'abc'`, `null`.
    var foundDescription: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let s):
            if isNull { return "null" }
            let text = s.string.count > 40 ? String(s.string.prefix(40)) + "…" : s.string
            return "'\(text)'"
        }
    }
}

/// One value in the tree and where it is.
struct ConfigValue {
    let node: Node
    let path: ConfigPath
    let diagnostics: ConfigDiagnostics

    func error(_ message: String) { diagnostics.error(path, message, at: node) }
    func warning(_ message: String) { diagnostics.warning(path, message, at: node) }

    private func expected(_ what: String) { error("expected \(what), got \(node.foundDescription)") }

    /// Any scalar as text (YAML would make `8080` or `true` an int or bool; a string field takes its text).
    func string() -> String? {
        guard case .scalar(let s) = node, !node.isNull else { expected("a string"); return nil }
        return s.string
    }

    func nonEmptyString() -> String? {
        guard let s = string() else { return nil }
        if s.isEmpty { error("must not be empty"); return nil }
        return s
    }

    /// `true` or `false` (unquoted).
    func bool() -> Bool? {
        guard case .scalar(let s) = node, s.style == .plain else { expected("true or false"); return nil }
        switch s.string {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: expected("true or false"); return nil
        }
    }

    /// A decimal integer within `range`; a quoted one too (protobuf JSON writes 64-bit ints as strings).
    func integer(_ range: ClosedRange<Int64>) -> Int64? {
        guard case .scalar(let s) = node, !node.isNull else { expected("an integer"); return nil }
        let text = s.string
        var digits = Substring(text)
        if digits.hasPrefix("-") || digits.hasPrefix("+") { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { expected("an integer"); return nil }
        guard let value = Int64(text), range.contains(value) else {
            error("\(s.string) is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    func int(_ range: ClosedRange<Int>) -> Int? {
        integer(Int64(range.lowerBound)...Int64(range.upperBound)).map { Int($0) }
    }

    /// A number (for percentages).
    func double(_ range: ClosedRange<Double>) -> Double? {
        guard case .scalar(let s) = node, !node.isNull, let value = Double(s.string), value.isFinite else {
            expected("a number"); return nil
        }
        guard range.contains(value) else { error("\(s.string) is out of range \(range.lowerBound)...\(range.upperBound)"); return nil }
        return value
    }

    /// `1.5s` or `{seconds: 1, nanos: 500000000}`, as nanoseconds.
    func duration() -> Int64? {
        switch node {
        case .scalar(let s) where !node.isNull:
            do {
                return try EnvoyDuration.parseNanos(s.string)
            } catch {
                self.error("\(error.description), got '\(s.string)'")
                return nil
            }
        case .mapping:
            guard let f = fields(known: ["seconds", "nanos"]) else { return nil }
            let seconds = f["seconds"]?.integer(0...EnvoyDuration.maxSeconds) ?? 0
            let nanos = f["nanos"]?.integer(0...999_999_999) ?? 0
            do { return try EnvoyDuration.combine(seconds: seconds, nanos: nanos) } catch {
                self.error(error.description)
                return nil
            }
        default:
            expected("a duration such as 0.25s")
            return nil
        }
    }

    /// One of the enum's raw values. Values Envoy has but Ballast does not implement get
    /// "not supported" instead of "unknown"; a near miss gets a suggestion.
    func enumeration<E: RawRepresentable & CaseIterable>(_ type: E.Type, unsupported: [String] = []) -> E? where E.RawValue == String {
        guard let text = string() else { return nil }
        if let value = E(rawValue: text) { return value }
        let supported = E.allCases.map(\.rawValue)
        if unsupported.contains(text) {
            error("\(text) is not supported by ballast (supported: \(supported.joined(separator: ", ")))")
            return nil
        }
        var message = "unknown value '\(text)' (expected one of \(supported.joined(separator: ", ")))"
        if let guess = Spelling.closest(to: text, in: supported + unsupported) { message += "; did you mean \(guess)?" }
        error(message)
        return nil
    }

    /// The items of a list, each with its path (`...[i]`).
    func list() -> [ConfigValue]? {
        guard case .sequence(let seq) = node else {
            if node.isNull { return [] }
            expected("a list")
            return nil
        }
        return seq.enumerated().map { ConfigValue(node: $1, path: path.appending(index: $0), diagnostics: diagnostics) }
    }

    func stringList() -> [String]? {
        guard let items = list() else { return nil }
        let strings = items.compactMap { $0.string() }
        return strings.count == items.count ? strings : nil
    }

    /// The value as a mapping whose keys are checked now: a key in `known` is kept, one in
    /// `unsupported` (Envoy has it, Ballast does not) is a "not supported" error, any other key is
    /// an "unknown field" error with a spelling suggestion. `null` reads as an empty mapping.
    func fields(known: [String], unsupported: [String] = []) -> ConfigFields? {
        var entries: [String: (key: Node, value: Node)] = [:]
        var rejected: [String] = []
        switch node {
        case .mapping(let mapping):
            for (keyNode, value) in mapping {
                guard case .scalar(let keyScalar) = keyNode else {
                    diagnostics.error(path, "mapping keys must be strings, got \(keyNode.foundDescription)", at: keyNode)
                    continue
                }
                let key = keyScalar.string
                let keyPath = path.appending(key)
                if known.contains(key) {
                    entries[key] = (keyNode, value)
                } else if unsupported.contains(key) {
                    rejected.append(key)
                    diagnostics.error(keyPath, "not supported by ballast", at: keyNode)
                } else {
                    var message = "unknown field"
                    if let guess = Spelling.closestField(to: key, in: known + unsupported) { message += "; did you mean \(guess)?" }
                    diagnostics.error(keyPath, message, at: keyNode)
                }
            }
        case _ where node.isNull:
            break
        default:
            expected("a mapping")
            return nil
        }
        return ConfigFields(node: node, path: path, diagnostics: diagnostics, entries: entries, rejected: rejected)
    }
}

/// A mapping whose keys passed `ConfigValue.fields(known:unsupported:)`.
struct ConfigFields {
    let node: Node
    let path: ConfigPath
    let diagnostics: ConfigDiagnostics
    fileprivate let entries: [String: (key: Node, value: Node)]
    /// Keys present but rejected as not supported (already reported): a oneof they belong to is
    /// not reported missing a second time.
    let rejected: [String]

    /// The value under `key`; `nil` when absent or null (protobuf JSON: null means unset).
    subscript(key: String) -> ConfigValue? {
        guard let entry = entries[key], !entry.value.isNull else { return nil }
        return ConfigValue(node: entry.value, path: path.appending(key), diagnostics: diagnostics)
    }

    /// Like the subscript, but `null` gives an empty value instead of nil: for empty messages
    /// whose presence is the setting (`exact_balance: {}` written as `exact_balance:`).
    func present(_ key: String) -> ConfigValue? {
        guard let entry = entries[key] else { return nil }
        return ConfigValue(node: entry.value, path: path.appending(key), diagnostics: diagnostics)
    }

    func has(_ key: String) -> Bool { entries[key] != nil }

    /// The key's own node (errors about the key rather than its value point here).
    func keyNode(_ key: String) -> Node? { entries[key]?.key }

    /// The value under `key`, or a "required field missing" error at `path.key`.
    func required(_ key: String) -> ConfigValue? {
        if let value = self[key] { return value }
        diagnostics.error(path.appending(key), "required field missing", at: node)
        return nil
    }

    func error(_ key: String, _ message: String) {
        diagnostics.error(path.appending(key), message, at: entries[key]?.value ?? node)
    }

    func warning(_ key: String, _ message: String) {
        diagnostics.warning(path.appending(key), message, at: entries[key]?.key ?? node)
    }

    /// Exactly one of `keys` (a protobuf oneof); reports none or several. `unsupportedAlternatives`:
    /// members of the oneof that Ballast rejects; one of those present is not also "missing".
    func oneOf(_ keys: [String], unsupportedAlternatives: [String] = [], required: Bool = true) -> String? {
        let given = keys.filter { has($0) }
        if given.count > 1 {
            diagnostics.error(path, "set only one of \(given.joined(separator: ", "))", at: entries[given[1]]?.key ?? node)
            return nil
        }
        if given.isEmpty {
            if required && !rejected.contains(where: unsupportedAlternatives.contains) {
                if keys.count == 1 {
                    diagnostics.error(path.appending(keys[0]), "required field missing", at: node)
                } else {
                    diagnostics.error(path, "needs one of \(keys.joined(separator: ", "))", at: node)
                }
            }
            return nil
        }
        return given[0]
    }
}

/// "Did you mean" suggestions.
enum Spelling {
    /// The closest candidate within a small edit distance (about a third of the word), if unique.
    static func closest(to word: String, in candidates: [String]) -> String? {
        let limit = max(1, min(3, word.count / 3))
        let lowered = word.lowercased()
        let length = lowered.unicodeScalars.count
        var best: (String, Int)?
        var tie = false
        for candidate in candidates {
            // The distance is at least the length difference: skip the table for candidates that
            // cannot be close (a long unknown word against every name was quadratic work).
            let other = candidate.lowercased()
            guard abs(other.unicodeScalars.count - length) <= limit else { continue }
            let d = distance(lowered, other)
            guard d <= limit else { continue }
            if let b = best {
                if d < b.1 { best = (candidate, d); tie = false } else if d == b.1 && candidate != b.0 { tie = true }
            } else {
                best = (candidate, d)
            }
        }
        return tie ? nil : best?.0
    }

    /// Field names: also maps protobuf JSON's lowerCamelCase (`connectTimeout`) to snake_case.
    static func closestField(to word: String, in candidates: [String]) -> String? {
        var snake = ""
        for c in word {
            if c.isUppercase { snake += "_" + c.lowercased() } else { snake.append(c) }
        }
        if snake != word, candidates.contains(snake) { return snake }
        return closest(to: word, in: candidates)
    }

    /// Levenshtein distance with adjacent transpositions counted as one edit.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var rows = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { rows[i][0] = i }
        for j in 0...b.count { rows[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var d = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d = min(d, rows[i - 2][j - 2] + 1) }
                rows[i][j] = d
            }
        }
        return rows[a.count][b.count]
    }
}
