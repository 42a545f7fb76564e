import Foundation

/// How Envoy holds an SDS secret read from a file, for SecretsConfigDump.
extension ConfigDumpBuilder {
    /// A secret as Envoy holds it once read: each file it names (`filename`) replaced by the
    /// file's bytes (`inline_bytes`, base64); a sensitive one's by the redacted text.
    static func inlined(_ value: ProtoJSON, key: String) -> ProtoJSON {
        switch value {
        case .object(let fields):
            if fields.count == 1, fields[0].0 == "filename", case .string(let path) = fields[0].1 {
                if EnvoyProtoJSONRules.sensitiveFields.contains(key) { return .object([("inline_bytes", .string("W3JlZGFjdGVkXQ=="))]) }
                guard let bytes = FileManager.default.contents(atPath: path) else { return value }
                return .object([("inline_bytes", .string(bytes.base64EncodedString()))])
            }
            return .object(fields.map { ($0.0, inlined($0.1, key: $0.0)) })
        case .array(let items): return .array(items.map { inlined($0, key: key) })
        default: return value
        }
    }
}
