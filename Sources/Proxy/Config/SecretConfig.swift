/// Secrets delivered by SDS from files (`sds_config.path_config_source`), as Envoy 1.40 reads
/// them: each file a DiscoveryResponse holding exactly one
/// `envoy.extensions.transport_sockets.tls.v3.Secret` whose name is the one asked for
/// (docs/tls.md). The secret's certificate or CA is resolved while parsing, like an inline one;
/// this state is what a later update needs: the sources to watch and the texts last read.
public struct SecretState: Sendable, Hashable {
    /// The file each secret name is read from.
    public var sources: [String: FileConfigSource] = [:]
    /// `version_info` of the file each secret came from ("" when it has none), by secret name.
    public var versionInfo: [String: String] = [:]
    /// The text each file was read from, by path (an update re-reads only the files replaced).
    public var texts: [String: String] = [:]
    /// The certificate, key and CA files each secret names (watched as Envoy watches them).
    public var files: [String: [String]] = [:]

    public init() {}

    /// The secret names read from `path`.
    public func names(readFrom path: String) -> [String] {
        sources.filter { $0.value.path == path }.map(\.key).sorted()
    }
}

/// What a Secret resource holds (the kinds Ballast applies).
enum SecretContent {
    case tlsCertificate(chain: String, key: String)
    case validationContext(trustedCA: String?)
}
