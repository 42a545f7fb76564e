import Yams

/// `layered_runtime` with static layers: the runtime keys Ballast applies. Keys of later layers
/// override earlier ones, as in Envoy; nested mappings flatten to dotted keys
/// (`overload: {global_downstream_max_connections: 10}` is `overload.global_downstream_max_connections`).
public struct RuntimeConfig: Sendable, Hashable {
    /// `overload.global_downstream_max_connections`: open downstream connections over every
    /// listener above which a new connection is closed at once (Envoy's deprecated key, still honoured by 1.40).
    public var globalDownstreamMaxConnections: Int?
    /// `envoy.resource_limits.listener.<name>.connection_limit`, by listener name.
    public var listenerConnectionLimits: [String: Int] = [:]

    public init() {}

    static let globalKey = "overload.global_downstream_max_connections"
    static let listenerPrefix = "envoy.resource_limits.listener."
    static let listenerSuffix = ".connection_limit"
}

extension BootstrapParser {
    func parseLayeredRuntime(_ value: ConfigValue) -> RuntimeConfig? {
        guard let f = value.fields(known: ["layers"]) else { return nil }
        var runtime = RuntimeConfig()
        var ok = true
        for layer in f["layers"]?.list() ?? [] {
            guard let l = layer.fields(known: ["name", "static_layer"], unsupported: ["disk_layer", "admin_layer", "rtds_layer"]) else { ok = false; continue }
            _ = l.required("name")?.nonEmptyString()
            guard l.oneOf(["static_layer"], unsupportedAlternatives: ["disk_layer", "admin_layer", "rtds_layer"]) != nil,
                  let body = l["static_layer"] else { ok = false; continue }
            var entries: [(key: String, value: ConfigValue)] = []
            flatten(body, prefix: "", into: &entries)
            for (key, v) in entries {
                if key == RuntimeConfig.globalKey {
                    guard let n = v.int(0...Int(Int32.max)) else { ok = false; continue }
                    v.warning("deprecated in Envoy (use the envoy.resource_monitors.global_downstream_max_connections resource monitor); applied as Envoy 1.40 applies it")
                    runtime.globalDownstreamMaxConnections = n
                } else if key.hasPrefix(RuntimeConfig.listenerPrefix) && key.hasSuffix(RuntimeConfig.listenerSuffix)
                            && key.count > RuntimeConfig.listenerPrefix.count + RuntimeConfig.listenerSuffix.count {
                    let name = String(key.dropFirst(RuntimeConfig.listenerPrefix.count).dropLast(RuntimeConfig.listenerSuffix.count))
                    guard let n = v.int(0...Int(Int32.max)) else { ok = false; continue }
                    runtime.listenerConnectionLimits[name] = n
                    runtimeListenerKeys.append((name, v))
                } else {
                    v.error("runtime key '\(key)' is not applied by ballast (applied: \(RuntimeConfig.globalKey), \(RuntimeConfig.listenerPrefix)<listener name>\(RuntimeConfig.listenerSuffix))")
                    ok = false
                }
            }
        }
        return ok ? runtime : nil
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
