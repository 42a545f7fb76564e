import Foundation
import LoadGen
import Report
import Yams

/// An experiment file (`Experiments/*.yaml`): what runs, what varies, how long, in which order.
///
/// ```yaml
/// name: quick                       # results/<name>/<UTC timestamp>/
/// description: shared vs reuseport vs least-loaded
/// duration: 3s                      # load per point
/// warmup: 0.5s                      # load before each point, discarded
/// repetitions: 2
/// connections: [2, 4, 8, 16, 64, 256]
/// order: interleaved                # interleaved (rotating variant order) or random (seeded)
/// seed: 1
/// baseline: reuseport               # the variant others are compared with
/// reference: direct                 # optional: the gate divides by this variant of the same run
/// instructions: 2000                # optional: instructions per request under callgrind (epoll)
/// placement: {system: "0", load: "1", backend: "1"}   # CPU lists (taskset); omit to not pin
/// system:                           # the thing under test
///   kind: server                    # server (ballast server) | proxy (ballast proxy) | envoy | command
///   args: [--workers, "2", --worker-cost, "block:200us"]
///   config: Experiments/configs/proxy.yaml      # proxy, envoy: a bootstrap template (args: [--concurrency, "4"])
///   command: [nginx, -c, "{{CONFIG}}"]          # command: a peer, with its config template
/// backend:                          # proxy/command: the upstream ballast server
///   args: [--workers, "1"]
/// load:
///   args: [-qps, "0"]               # extra `ballast load` flags
///   path: "/?size=100"
/// variants:                         # each adds flags to the system (or names its own)...
///   - {name: reuseport, args: [--balance, reuseport]}
///   - {name: shared, config_vars: {LISTENER_OPTIONS: "enable_reuse_port: false"}}   # {{LISTENER_OPTIONS}} in the template
///   - {name: nginx, system: {kind: command, command: [nginx, -c, "{{CONFIG}}"], config: Experiments/configs/nginx.conf}}
/// matrix:                           # ...or a cross product of flag values
///   balance: [shared, reuseport, least-loaded]
///   io: [epoll, io_uring]
/// tables:                           # variant pairs the report compares (geometric mean, CI)
///   - {title: least-loaded vs shared, pairs: [[least-loaded/epoll, shared/epoll]]}
/// ```
public struct Experiment: Sendable, Equatable {
    public enum SystemKind: String, Sendable { case server, proxy, envoy, command }
    public enum Order: String, Sendable { case interleaved, random }

    /// What runs as the system under test.
    public struct SystemSpec: Sendable, Equatable {
        public var kind: SystemKind = .server
        public var args: [String] = []
        /// proxy: a bootstrap template; command: the peer's config template.
        public var config: String?
        /// command: the peer's command line (`{{CONFIG}}` is the rendered config's path).
        public var command: [String] = []
    }

    public struct Variant: Sendable, Equatable {
        public var name: String
        public var args: [String]
        /// Axis values this variant stands for (matrix axes, or `variant: name`).
        public var axes: [String: String]
        /// A different system for this variant (peers: nginx, HAProxy, direct); nil: the experiment's.
        public var system: SystemSpec? = nil
        /// `config_vars`: `{{KEY}}` in the config template becomes the value (e.g. a listener's
        /// `enable_reuse_port: false`), so variants share one template.
        public var configVars: [String: String] = [:]
    }

    public var name: String
    public var description: String
    public var durationNanos: Int64
    public var warmupNanos: Int64
    public var repetitions: Int
    public var connections: [Int]
    public var order: Order
    public var seed: UInt64
    public var baseline: String?
    /// The variant `ballast gate` normalises by (a peer the change under test does not touch).
    public var reference: String? = nil
    /// Requests per callgrind measurement of instructions per request; nil: not measured.
    public var instructionRequests: Int? = nil
    public var placement: [String: String]
    public var system: SystemSpec
    public var backendArgs: [String]
    public var loadArgs: [String]
    public var loadPath: String
    public var variants: [Variant]
    /// `tables`: variant pairs the report compares (e.g. Envoy exact_balance vs shared).
    public var tables: [ComparisonTableSpec] = []

    /// An experiment file error: the YAML path and what was expected.
    public struct SchemaError: Error, CustomStringConvertible {
        public let path: String
        public let message: String
        public var description: String { path.isEmpty ? message : "\(path): \(message)" }
    }

    public static func load(file: String) throws -> Experiment {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw SchemaError(path: "", message: "cannot read experiment file \(file)")
        }
        return try parse(yaml: text)
    }

    public static func parse(yaml text: String) throws -> Experiment {
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch {
            throw SchemaError(path: "", message: "not valid YAML: \(error)")
        }
        let r = try Reader(root, path: "")
        try r.allowOnly(["name", "description", "duration", "warmup", "repetitions", "connections", "order", "seed",
                         "baseline", "reference", "instructions", "placement", "system", "backend", "load", "variants", "matrix", "tables"])
        var e = Experiment(
            name: try r.string("name"), description: try r.optionalString("description") ?? "",
            durationNanos: try r.duration("duration", default: 5_000_000_000),
            warmupNanos: try r.duration("warmup", default: 0),
            repetitions: try r.int("repetitions", default: 3, range: 1...100),
            connections: try r.intList("connections", default: [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], range: 1...100_000),
            order: .interleaved, seed: UInt64(try r.int("seed", default: 1, range: 0...Int.max)),
            baseline: try r.optionalString("baseline"), placement: try r.stringMap("placement"),
            system: SystemSpec(), backendArgs: [], loadArgs: [],
            loadPath: "/", variants: [])
        guard e.name.range(of: "^[A-Za-z0-9._-]+$", options: .regularExpression) != nil else {
            throw SchemaError(path: "name", message: "use letters, digits, '.', '_' or '-' (it names a folder)")
        }
        if let order = try r.optionalString("order") {
            guard let o = Order(rawValue: order) else { throw SchemaError(path: "order", message: "expected interleaved or random, got '\(order)'") }
            e.order = o
        }
        for key in e.placement.keys where !["system", "load", "backend"].contains(key) {
            throw SchemaError(path: "placement.\(key)", message: "unknown process; expected system, load or backend")
        }
        e.system = try parseSystem(try r.child("system"))
        if let backend = try r.optionalChild("backend") {
            try backend.allowOnly(["args"])
            e.backendArgs = try backend.stringList("args")
        }
        if let load = try r.optionalChild("load") {
            try load.allowOnly(["args", "path"])
            e.loadArgs = try load.stringList("args")
            e.loadPath = try load.optionalString("path") ?? "/"
            guard e.loadPath.hasPrefix("/") else { throw SchemaError(path: "load.path", message: "must start with '/'") }
        }
        e.variants = try parseVariants(r)
        e.tables = try parseTables(r, variants: e.variants.map(\.name))
        for (key, name) in [("baseline", e.baseline), ("reference", try r.optionalString("reference"))] {
            if let name, !e.variants.contains(where: { $0.name == name }) {
                throw SchemaError(path: key, message: "no variant is named '\(name)'; variants: \(e.variants.map(\.name).joined(separator: ", "))")
            }
        }
        e.reference = try r.optionalString("reference")
        if try r.optionalString("instructions") != nil {
            e.instructionRequests = try r.int("instructions", default: 0, range: 100...1_000_000)
        }
        return e
    }

    static func parseSystem(_ system: Reader) throws -> SystemSpec {
        try system.allowOnly(["kind", "args", "config", "command"])
        let kind = try system.optionalString("kind") ?? "server"
        guard let k = SystemKind(rawValue: kind) else {
            throw SchemaError(path: system.at("kind"), message: "expected server, proxy, envoy or command, got '\(kind)'")
        }
        let spec = SystemSpec(kind: k, args: try system.stringList("args"), config: try system.optionalString("config"),
                              command: try system.stringList("command"))
        if (k == .proxy || k == .envoy) && spec.config == nil { throw SchemaError(path: system.at("config"), message: "a proxy needs a bootstrap config template") }
        if k == .command && spec.command.isEmpty { throw SchemaError(path: system.at("command"), message: "a command system needs its command line") }
        return spec
    }

    private static func parseTables(_ r: Reader, variants: [String]) throws -> [ComparisonTableSpec] {
        var tables: [ComparisonTableSpec] = []
        for item in try r.optionalList("tables") ?? [] {
            try item.allowOnly(["title", "pairs"])
            guard let pairs = item.node["pairs"] as? [Any], !pairs.isEmpty else {
                throw SchemaError(path: item.at("pairs"), message: "expected a list of [candidate, baseline] variant pairs")
            }
            var out: [[String]] = []
            for (i, p) in pairs.enumerated() {
                let path = "\(item.at("pairs"))[\(i)]"
                guard let pair = p as? [String], pair.count == 2 else { throw SchemaError(path: path, message: "expected [candidate, baseline]") }
                for name in pair where !variants.contains(name) {
                    throw SchemaError(path: path, message: "no variant is named '\(name)'")
                }
                out.append(pair)
            }
            tables.append(ComparisonTableSpec(title: try item.string("title"), pairs: out))
        }
        return tables
    }

    /// The system a variant runs.
    public func system(for variant: Variant) -> SystemSpec { variant.system ?? system }

    private static func parseVariants(_ r: Reader) throws -> [Variant] {
        var variants: [Variant] = []
        if let list = try r.optionalList("variants") {
            for (i, item) in list.enumerated() {
                try item.allowOnly(["name", "args", "system", "config_vars"])
                let name = try item.string("name")
                let system = try item.optionalChild("system").map(parseSystem)
                variants.append(Variant(name: name, args: try item.stringList("args"), axes: ["variant": name], system: system,
                                        configVars: try item.stringMap("config_vars", what: "a string")))
                if variants.dropLast().contains(where: { $0.name == name }) {
                    throw SchemaError(path: "variants[\(i)].name", message: "duplicate variant name '\(name)'")
                }
            }
        }
        if let matrix = try r.optionalOrderedMap("matrix") {
            guard variants.isEmpty else { throw SchemaError(path: "matrix", message: "use variants or matrix, not both") }
            var combos: [[(String, String)]] = [[]]
            for (axis, values) in matrix {
                guard axis.range(of: "^[a-z][a-z0-9-]*$", options: .regularExpression) != nil else {
                    throw SchemaError(path: "matrix.\(axis)", message: "an axis is a flag name such as balance or io")
                }
                guard !values.isEmpty else { throw SchemaError(path: "matrix.\(axis)", message: "needs at least one value") }
                combos = combos.flatMap { combo in values.map { combo + [(axis, $0)] } }
            }
            for combo in combos {
                variants.append(Variant(name: combo.map(\.1).joined(separator: "/"),
                                        args: combo.flatMap { ["--\($0.0)", $0.1] },
                                        axes: Dictionary(uniqueKeysWithValues: combo)))
            }
        }
        if variants.isEmpty { variants = [Variant(name: "default", args: [], axes: ["variant": "default"])] }
        return variants
    }
}

/// Walks parsed YAML with paths for error messages.
struct Reader {
    let node: [String: Any]
    let path: String

    init(_ value: Any?, path: String) throws {
        guard let map = value as? [String: Any] else {
            throw Experiment.SchemaError(path: path, message: "expected a mapping")
        }
        node = map
        self.path = path
    }

    func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func allowOnly(_ keys: Set<String>) throws {
        for key in node.keys.sorted() where !keys.contains(key) {
            throw Experiment.SchemaError(path: at(key), message: "unknown field (known: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ key: String) throws -> String {
        guard let s = try optionalString(key) else { throw Experiment.SchemaError(path: at(key), message: "required") }
        return s
    }

    func optionalString(_ key: String) throws -> String? {
        guard let v = node[key] else { return nil }
        if let s = v as? String { return s }
        if v is Int || v is Double || v is Bool { return "\(v)" }
        throw Experiment.SchemaError(path: at(key), message: "expected a string")
    }

    func int(_ key: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let v = node[key] else { return value }
        guard let i = v as? Int else { throw Experiment.SchemaError(path: at(key), message: "expected an integer") }
        guard range.contains(i) else { throw Experiment.SchemaError(path: at(key), message: "must be in \(range.lowerBound)...\(range.upperBound)") }
        return i
    }

    func intList(_ key: String, default value: [Int], range: ClosedRange<Int>) throws -> [Int] {
        guard let v = node[key] else { return value }
        guard let list = v as? [Any], !list.isEmpty else { throw Experiment.SchemaError(path: at(key), message: "expected a non-empty list of integers") }
        return try list.enumerated().map { i, item in
            guard let n = item as? Int, range.contains(n) else {
                throw Experiment.SchemaError(path: "\(at(key))[\(i)]", message: "expected an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
    }

    func duration(_ key: String, default value: Int64) throws -> Int64 {
        guard let text = try optionalString(key) else { return value }
        guard let nanos = GoDuration.parseNanos(text) else {
            throw Experiment.SchemaError(path: at(key), message: "expected a duration such as 5s or 500ms, got '\(text)'")
        }
        return nanos
    }

    func stringList(_ key: String) throws -> [String] {
        guard let v = node[key] else { return [] }
        guard let list = v as? [Any] else { throw Experiment.SchemaError(path: at(key), message: "expected a list of strings") }
        return try list.enumerated().map { i, item in
            if let s = item as? String { return s }
            if item is Int || item is Double || item is Bool { return "\(item)" }
            throw Experiment.SchemaError(path: "\(at(key))[\(i)]", message: "expected a string")
        }
    }

    func stringMap(_ key: String, what: String = "a CPU list such as \"0\" or \"0-1\"") throws -> [String: String] {
        guard let v = node[key] else { return [:] }
        guard let map = v as? [String: Any] else { throw Experiment.SchemaError(path: at(key), message: "expected a mapping") }
        var out: [String: String] = [:]
        for (k, item) in map {
            if let s = item as? String { out[k] = s } else if item is Int || item is Bool { out[k] = "\(item)" } else {
                throw Experiment.SchemaError(path: "\(at(key)).\(k)", message: "expected \(what)")
            }
        }
        return out
    }

    func child(_ key: String) throws -> Reader {
        guard let c = try optionalChild(key) else { throw Experiment.SchemaError(path: at(key), message: "required") }
        return c
    }

    func optionalChild(_ key: String) throws -> Reader? {
        guard let v = node[key] else { return nil }
        return try Reader(v, path: at(key))
    }

    func optionalList(_ key: String) throws -> [Reader]? {
        guard let v = node[key] else { return nil }
        guard let list = v as? [Any] else { throw Experiment.SchemaError(path: at(key), message: "expected a list") }
        return try list.enumerated().map { try Reader($1, path: "\(at(key))[\($0)]") }
    }

    /// A mapping of axis name to a list of values, in file order.
    func optionalOrderedMap(_ key: String) throws -> [(String, [String])]? {
        guard let v = node[key] else { return nil }
        guard let map = v as? [String: Any] else { throw Experiment.SchemaError(path: at(key), message: "expected a mapping of axis to values") }
        // Yams' [String: Any] loses the file's order; sort by axis name for a stable variant order.
        let child = Reader(unchecked: map, path: at(key))
        return try map.keys.sorted().map { ($0, try child.stringList($0)) }
    }

    private init(unchecked node: [String: Any], path: String) {
        self.node = node
        self.path = path
    }
}
