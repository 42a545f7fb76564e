import Glibc
import Yams

/// `layered_runtime`: static, disk and admin layers (RTDS refused) and the runtime keys Ballast
/// applies: the connection limits (static layers, read at start) and the keys the fault filters
/// read (any layer, applied per request and changed live by a disk reload or `/runtime_modify`).
/// Keys of later layers override earlier ones, as in Envoy; nested mappings flatten to dotted
/// keys (`overload: {global_downstream_max_connections: 10}` is `overload.global_downstream_max_connections`).
/// docs/dynamic-config.md.
public struct RuntimeConfig: Sendable, Hashable {
    /// `overload.global_downstream_max_connections`: open downstream connections over every
    /// listener above which a new connection is closed at once (Envoy's deprecated key, still honoured by 1.40).
    public var globalDownstreamMaxConnections: Int?
    /// `envoy.resource_limits.listener.<name>.connection_limit`, by listener name.
    public var listenerConnectionLimits: [String: Int] = [:]
    /// The layers in order (what `/runtime` lists), with their entries at load.
    public var layers: [RuntimeLayer] = []
    /// The runtime keys the configured fault filters read (a layer may set these).
    public var faultKeys: Set<String> = []

    public init() {}

    static let globalKey = "overload.global_downstream_max_connections"
    static let listenerPrefix = "envoy.resource_limits.listener."
    static let listenerSuffix = ".connection_limit"

    static func isConnectionLimit(_ key: String) -> Bool {
        key == globalKey || (key.hasPrefix(listenerPrefix) && key.hasSuffix(listenerSuffix) && key.count > listenerPrefix.count + listenerSuffix.count)
    }
}

/// One `layered_runtime.layers[]` entry.
public struct RuntimeLayer: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case staticLayer
        case disk(DiskLayerConfig)
        /// Set through `/runtime_modify` (empty at start).
        case admin
    }

    public let name: String
    public let kind: Kind
    /// Key -> value text: a static layer's leaves, the disk layer's files as read at start.
    public var entries: [String: String]
}

/// `disk_layer`: files under `symlink_root/subdirectory` (then the service cluster's directory
/// when `append_service_cluster`), each file a key (path with `.` for `/`) and its trimmed content.
public struct DiskLayerConfig: Sendable, Hashable {
    public let symlinkRoot: String
    public let subdirectory: String
    /// The node's cluster when `append_service_cluster` (nil: not appended).
    public let serviceCluster: String?

    /// The directory holding `symlink_root` (watched for the symlink being replaced).
    public var watchedDirectory: (directory: String, name: String) {
        let trimmed = symlinkRoot.count > 1 && symlinkRoot.hasSuffix("/") ? String(symlinkRoot.dropLast()) : symlinkRoot
        guard let slash = trimmed.lastIndex(of: "/") else { return (".", trimmed) }
        return (slash == trimmed.startIndex ? "/" : String(trimmed[..<slash]), String(trimmed[trimmed.index(after: slash)...]))
    }

    /// Why the symlink root cannot be watched (its directory is missing), or nil.
    var watchProblem: String? {
        var st = stat()
        let dir = watchedDirectory.directory
        guard stat(dir, &st) == 0 else { return "unable to add a filesystem watch for '\(symlinkRoot)': '\(dir)': \(String(cString: strerror(errno)))" }
        return (st.st_mode & S_IFMT) == S_IFDIR ? nil : "unable to add a filesystem watch for '\(symlinkRoot)': '\(dir)' is not a directory"
    }

    public var directory: String {
        var path = symlinkRoot
        if !subdirectory.isEmpty { path += "/" + subdirectory }
        if let serviceCluster { path += "/" + serviceCluster }
        return path
    }

    /// The layer's entries now. A missing directory is an empty layer; an unreadable file an error.
    public func read() -> Result<[String: String], RuntimeReadError> {
        var entries: [String: String] = [:]
        if let failure = Self.walk(directory, prefix: "", depth: 0, into: &entries) { return .failure(failure) }
        return .success(entries)
    }

    public struct RuntimeReadError: Error, CustomStringConvertible {
        public let description: String
    }

    private static func walk(_ path: String, prefix: String, depth: Int, into entries: inout [String: String]) -> RuntimeReadError? {
        guard depth < 16 else { return RuntimeReadError(description: "'\(path)': deeper than 16 directories") }
        guard let dir = opendir(path) else {
            return depth == 0 && errno == ENOENT ? nil : RuntimeReadError(description: "cannot open directory '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(".") { continue }  // hidden files, as Envoy
            names.append(name)
        }
        for name in names.sorted() {
            let full = path + "/" + name
            let key = prefix.isEmpty ? name : prefix + "." + name
            var st = stat()
            guard stat(full, &st) == 0 else { return RuntimeReadError(description: "cannot read '\(full)': \(String(cString: strerror(errno)))") }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                if let failure = walk(full, prefix: key, depth: depth + 1, into: &entries) { return failure }
            } else {
                guard let text = try? String(contentsOfFile: full, encoding: .utf8) else {
                    return RuntimeReadError(description: "cannot read '\(full)'")
                }
                entries[key] = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        return nil
    }
}

extension BootstrapParser {
    func parseLayeredRuntime(_ value: ConfigValue, serviceCluster: String?) -> RuntimeConfig? {
        guard let f = value.fields(known: ["layers"]) else { return nil }
        var runtime = RuntimeConfig()
        var ok = true
        var names: Set<String> = []
        for layer in f["layers"]?.list() ?? [] {
            guard let l = layer.fields(known: ["name", "static_layer", "disk_layer", "admin_layer"], unsupported: ["rtds_layer"]) else { ok = false; continue }
            guard let name = l.required("name")?.nonEmptyString() else { ok = false; continue }
            if !names.insert(name).inserted { l.error("name", "a second layer named '\(name)'"); ok = false }
            switch l.oneOf(["static_layer", "disk_layer", "admin_layer"], unsupportedAlternatives: ["rtds_layer"]) {
            case "static_layer":
                guard let body = l["static_layer"] else { ok = false; continue }
                var leaves: [(key: String, value: ConfigValue)] = []
                flatten(body, prefix: "", into: &leaves)
                var entries: [String: String] = [:]
                for (key, v) in leaves {
                    entries[key] = v.node.scalar?.string ?? ""
                    if key == RuntimeConfig.globalKey {
                        guard let n = v.int(0...Int(Int32.max)) else { ok = false; continue }
                        v.warning("deprecated in Envoy (use the envoy.resource_monitors.global_downstream_max_connections resource monitor); applied as Envoy 1.40 applies it")
                        runtime.globalDownstreamMaxConnections = n
                    } else if RuntimeConfig.isConnectionLimit(key) {
                        let listener = String(key.dropFirst(RuntimeConfig.listenerPrefix.count).dropLast(RuntimeConfig.listenerSuffix.count))
                        guard let n = v.int(0...Int(Int32.max)) else { ok = false; continue }
                        runtime.listenerConnectionLimits[listener] = n
                        runtimeListenerKeys.append((listener, v))
                    } else {
                        pendingRuntimeKeys.append((key, v.node.scalar?.string ?? "", v, ""))
                    }
                }
                runtime.layers.append(RuntimeLayer(name: name, kind: .staticLayer, entries: entries))
            case "disk_layer":
                guard let d = l["disk_layer"]?.fields(known: ["symlink_root", "subdirectory", "append_service_cluster"]),
                      let root = d.required("symlink_root")?.nonEmptyString() else { ok = false; continue }
                let subdirectory = d["subdirectory"]?.string() ?? ""
                var cluster: String? = nil
                if d["append_service_cluster"]?.bool() == true {
                    guard let serviceCluster, !serviceCluster.isEmpty else {
                        d.error("append_service_cluster", "needs the node's cluster (node.cluster)")
                        ok = false
                        continue
                    }
                    cluster = serviceCluster
                }
                let disk = DiskLayerConfig(symlinkRoot: root, subdirectory: subdirectory, serviceCluster: cluster)
                // Envoy watches the symlink root's directory and refuses the config when it cannot.
                if let problem = disk.watchProblem {
                    d.error("symlink_root", problem)
                    ok = false
                    continue
                }
                switch disk.read() {
                case .success(let entries):
                    for key in entries.keys.sorted() {
                        if RuntimeConfig.isConnectionLimit(key) {
                            l.error("disk_layer", "runtime key '\(key)' (file under \(disk.directory)) is applied from static layers only by ballast")
                            ok = false
                        } else {
                            pendingRuntimeKeys.append((key, entries[key]!, l["disk_layer"]!, " (file under \(disk.directory))"))
                        }
                    }
                    runtime.layers.append(RuntimeLayer(name: name, kind: .disk(disk), entries: entries))
                case .failure(let e):
                    l.error("disk_layer", e.description)
                    ok = false
                }
            case "admin_layer":
                guard l["admin_layer"]?.fields(known: []) != nil else { ok = false; continue }
                if runtime.layers.contains(where: { $0.kind == .admin }) { l.error("admin_layer", "a second admin layer (Envoy allows one)"); ok = false }
                runtime.layers.append(RuntimeLayer(name: name, kind: .admin, entries: [:]))
            default:
                ok = false
            }
        }
        return ok ? runtime : nil
    }

    /// Runtime keys other than connection limits: only those the fault and ext_authz filters
    /// read, with an unsigned integer value (the filters read integers).
    func checkRuntimeKeys() {
        for (key, text, v, place) in pendingRuntimeKeys {
            if faultRuntimeKeys.contains(key) {
                if RuntimeValues.parse(text) == nil {
                    v.error("runtime key '\(key)'\(place): expected an unsigned integer, got '\(text)'")
                }
            } else {
                let faults = faultRuntimeKeys.isEmpty ? "" : ", and the filters' " + faultRuntimeKeys.sorted().joined(separator: ", ")
                v.error("runtime key '\(key)'\(place) is not applied by ballast (applied: \(RuntimeConfig.globalKey), \(RuntimeConfig.listenerPrefix)<listener name>\(RuntimeConfig.listenerSuffix)\(faults))")
            }
        }
    }

    /// A static layer's leaves as dotted keys with their values.
    private func flatten(_ value: ConfigValue, prefix: String, into entries: inout [(key: String, value: ConfigValue)]) {
        guard case .mapping(let mapping) = value.node else {
            if prefix.isEmpty { value.error("expected a mapping, got \(value.node.foundDescription)") } else { entries.append((prefix, value)) }
            return
        }
        for (k, v) in mapping {
            guard let key = k.scalar?.string else { value.error("mapping keys must be strings"); continue }
            let full = prefix.isEmpty ? key : prefix + "." + key
            flatten(ConfigValue(node: v, path: value.path.appending(key), diagnostics: diagnostics), prefix: full, into: &entries)
        }
    }
}
