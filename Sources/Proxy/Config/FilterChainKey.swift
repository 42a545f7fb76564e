/// One combination of the values a `filter_chain_match` lists, one value (or "any") per field.
/// Two chains of a listener that share a combination would both match the same connection, which
/// Envoy refuses; the parser expands every chain's match and compares the combinations.
struct FilterChainKey: Hashable {
    var destinationPort = 0
    var prefix: CIDRRange?
    var serverName = ""
    var transportProtocol = ""
    var applicationProtocol = ""
    var directSource: CIDRRange?
    var sourceType = ConnectionSourceType.any
    var source: CIDRRange?
    var sourcePort = 0

    static func expand(_ m: FilterChainMatchConfig) -> [FilterChainKey] {
        var keys = [FilterChainKey(destinationPort: m.destinationPort ?? 0, transportProtocol: m.transportProtocol ?? "",
                                   sourceType: m.sourceType)]
        func spread<T>(_ values: [T], _ set: (inout FilterChainKey, T) -> Void) {
            guard !values.isEmpty else { return }
            keys = keys.flatMap { k in values.map { v in var c = k; set(&c, v); return c } }
        }
        spread(m.prefixRanges) { $0.prefix = $1 }
        spread(m.serverNames) { $0.serverName = $1 }
        spread(m.applicationProtocols) { $0.applicationProtocol = $1 }
        spread(m.directSourcePrefixRanges) { $0.directSource = $1 }
        spread(m.sourcePrefixRanges) { $0.source = $1 }
        spread(m.sourcePorts) { $0.sourcePort = $1 }
        return keys
    }
}
