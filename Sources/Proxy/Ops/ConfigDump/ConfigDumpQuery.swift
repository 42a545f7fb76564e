/// /config_dump's query parameters, as Envoy 1.40 reads them: `include_eds`, `resource=<field>`
/// (the entries of that repeated field of whichever dump has it, each typed as its own message),
/// `mask=<paths>` (a FieldMask: comma-separated dotted paths; without `resource` it trims each
/// dump and keeps those it applies to, with `resource` it trims each entry, reaching into the
/// entry's resource) and `name_regex=<RE2>` (only resources whose name matches in full).
///
/// Without protobuf descriptors a mask's path is checked up to the entry's resource (an Any):
/// the path must start with a field of the message and may not go through a list or an Any;
/// paths inside a resource or the bootstrap are not checked (Envoy refuses an unknown field
/// there).
struct ConfigDumpQuery {
    var includeEDS = false
    var resource: String?
    var mask: String?
    var nameRegex: RE2Regex?

    struct Refusal: Error {
        let status: Int
        let text: String
    }

    init(_ query: String) throws(Refusal) {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0]), value = parts.count > 1 ? Self.decode(parts[1]) : ""
            switch name {
            case "include_eds": includeEDS = true
            case "resource" where resource == nil: resource = value
            case "mask" where mask == nil: mask = value
            case "name_regex" where nameRegex == nil && !value.isEmpty:
                do { nameRegex = try RE2Regex(value) } catch {
                    throw Refusal(status: 400, text: "INVALID_ARGUMENT: Error while parsing name_regex from \(value): \(error)")
                }
            default: break  // Envoy ignores other parameters (and repeats: the first counts).
            }
        }
    }

    /// `%XX` and `+` decoded.
    static func decode(_ s: Substring) -> String {
        var bytes: [UInt8] = []
        var i = s.utf8.startIndex
        let u = s.utf8
        while i != u.endIndex {
            let b = u[i]
            if b == UInt8(ascii: "%"), let h = u.index(i, offsetBy: 2, limitedBy: u.endIndex), h != u.endIndex,
               let v = UInt8(String(decoding: u[u.index(after: i)...h], as: UTF8.self), radix: 16) {
                bytes.append(v)
                i = u.index(after: h)
                continue
            }
            bytes.append(b == UInt8(ascii: "+") ? UInt8(ascii: " ") : b)
            i = u.index(after: i)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The fields of each dump message: (name, repeated entry type or nil for a single field).
    static let dumpFields: [String: [(String, String?)]] = [
        "BootstrapConfigDump": [("bootstrap", nil), ("last_updated", nil)],
        "ClustersConfigDump": [("version_info", nil), ("static_clusters", "ClustersConfigDump.StaticCluster"),
                               ("dynamic_active_clusters", "ClustersConfigDump.DynamicCluster"),
                               ("dynamic_warming_clusters", "ClustersConfigDump.DynamicCluster")],
        "EndpointsConfigDump": [("static_endpoint_configs", "EndpointsConfigDump.StaticEndpointConfig"),
                                ("dynamic_endpoint_configs", "EndpointsConfigDump.DynamicEndpointConfig")],
        "ListenersConfigDump": [("version_info", nil), ("static_listeners", "ListenersConfigDump.StaticListener"),
                                ("dynamic_listeners", "ListenersConfigDump.DynamicListener")],
        "ScopedRoutesConfigDump": [("inline_scoped_route_configs", "ScopedRoutesConfigDump.InlineScopedRouteConfigs"),
                                   ("dynamic_scoped_route_configs", "ScopedRoutesConfigDump.DynamicScopedRouteConfigs")],
        "RoutesConfigDump": [("static_route_configs", "RoutesConfigDump.StaticRouteConfig"),
                             ("dynamic_route_configs", "RoutesConfigDump.DynamicRouteConfig")],
        "SecretsConfigDump": [("static_secrets", "SecretsConfigDump.StaticSecret"),
                              ("dynamic_active_secrets", "SecretsConfigDump.DynamicSecret"),
                              ("dynamic_warming_secrets", "SecretsConfigDump.DynamicSecret")],
    ]

    /// The fields of each entry message: name -> kind.
    enum FieldKind { case scalar, message, any, list }
    static let entryFields: [String: [String: FieldKind]] = {
        let dynamicCommon: [String: FieldKind] = ["version_info": .scalar, "last_updated": .scalar, "error_state": .message, "client_status": .scalar]
        return [
            "ClustersConfigDump.StaticCluster": ["cluster": .any, "last_updated": .scalar],
            "ClustersConfigDump.DynamicCluster": dynamicCommon.merging(["cluster": .any]) { $1 },
            "EndpointsConfigDump.StaticEndpointConfig": ["endpoint_config": .any, "last_updated": .scalar],
            "EndpointsConfigDump.DynamicEndpointConfig": dynamicCommon.merging(["endpoint_config": .any]) { $1 },
            "ListenersConfigDump.StaticListener": ["listener": .any, "last_updated": .scalar],
            "ListenersConfigDump.DynamicListener": ["name": .scalar, "active_state": .message, "warming_state": .message,
                                                    "draining_state": .message, "error_state": .message, "client_status": .scalar],
            "RoutesConfigDump.StaticRouteConfig": ["route_config": .any, "last_updated": .scalar],
            "RoutesConfigDump.DynamicRouteConfig": dynamicCommon.merging(["route_config": .any]) { $1 },
        ]
    }()

    private static let admin = "type.googleapis.com/envoy.admin.v3."

    private var maskPaths: [[String]] {
        (mask ?? "").split(separator: ",").map { $0.split(separator: ".", omittingEmptySubsequences: false).map(String.init) }
    }

    /// The `configs` list to print, or Envoy's refusal.
    func apply(_ configs: [ProtoJSON]) throws(Refusal) -> [ProtoJSON] {
        if let resource { return try entries(resource, configs) }
        guard mask != nil else { return configs }
        let kept = configs.compactMap { config -> ProtoJSON? in
            let type = String((config["@type"]?.stringValue ?? "").dropFirst(Self.admin.count))
            let fields = Self.dumpFields[type] ?? []
            let kinds = Dictionary(uniqueKeysWithValues: fields.map { ($0.0, $0.1 == nil ? (type == "BootstrapConfigDump" && $0.0 == "bootstrap" ? FieldKind.message : .scalar) : .list) })
            guard Self.valid(maskPaths, kinds) else { return nil }
            return Self.trim(config, maskPaths)
        }
        if kept.isEmpty { throw Refusal(status: 400, text: "FieldMask \(mask ?? "") could not be successfully applied to any configs.") }
        return kept
    }

    private func entries(_ resource: String, _ configs: [ProtoJSON]) throws(Refusal) -> [ProtoJSON] {
        for config in configs {
            let type = String((config["@type"]?.stringValue ?? "").dropFirst(Self.admin.count))
            guard let field = Self.dumpFields[type]?.first(where: { $0.0 == resource }) else { continue }
            guard let entryType = field.1 else {
                throw Refusal(status: 400, text: "\(resource) is not a repeated field. Use ?mask=\(resource) to get only this field")
            }
            return try config[resource]?.arrayValue.map { entry throws(Refusal) -> ProtoJSON in
                guard case .object(let fields) = entry else { return entry }
                let typed = ProtoJSON.object([("@type", .string(Self.admin + entryType))] + fields)
                guard mask != nil else { return typed }
                let kinds = Self.entryFields[entryType] ?? [:]
                // Envoy: the paths into the entry's Any go to the resource inside (a path naming
                // only the Any leaves an empty inner path, which Envoy refuses).
                guard Self.valid(maskPaths, kinds), !maskPaths.contains(where: { $0.count == 1 && kinds[$0[0]] == .any }) else {
                    let debug = maskPaths.map { "paths: \"\($0.joined(separator: "."))\"\n" }.joined()
                    throw Refusal(status: 400, text: "FieldMask \(debug) could not be successfully used.")
                }
                return Self.trim(typed, maskPaths)
            } ?? []
        }
        throw Refusal(status: 404, text: "\(resource) not found in config dump")
    }

    /// Every path starts with a field; only a plain message (or an Any, for entries) is gone into.
    private static func valid(_ paths: [[String]], _ kinds: [String: FieldKind]) -> Bool {
        !paths.isEmpty && paths.allSatisfy { path in
            guard let kind = kinds[path[0]] else { return false }
            return path.count == 1 || kind == .message || kind == .any
        }
    }

    /// FieldMask trimming: only the named fields (and every level's `@type`) stay.
    static func trim(_ value: ProtoJSON, _ paths: [[String]]) -> ProtoJSON {
        guard case .object(let fields) = value else { return value }
        var kept: [(String, ProtoJSON)] = []
        for (name, v) in fields {
            if name == "@type" { kept.append((name, v)); continue }
            let matching = paths.filter { $0.first == name }
            if matching.isEmpty { continue }
            if matching.contains(where: { $0.count == 1 }) { kept.append((name, v)); continue }
            kept.append((name, trim(v, matching.map { Array($0.dropFirst()) })))
        }
        return .object(kept)
    }
}
