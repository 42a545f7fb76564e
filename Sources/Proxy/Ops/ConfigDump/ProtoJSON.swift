/// A JSON value as Envoy's admin prints a protobuf message: objects keep their key order (the
/// source's, after normalisation), numbers keep their text. Admin thread only.
indirect enum ProtoJSON: Sendable, Equatable {
    case object([(String, ProtoJSON)])
    case array([ProtoJSON])
    case string(String)
    /// The number's JSON text (`1024`, `0.5`).
    case number(String)
    case bool(Bool)

    static func == (a: ProtoJSON, b: ProtoJSON) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.array(x), .array(y)): x == y
        case let (.string(x), .string(y)): x == y
        case let (.number(x), .number(y)): x == y
        case let (.bool(x), .bool(y)): x == y
        default: false
        }
    }

    subscript(key: String) -> ProtoJSON? {
        guard case .object(let fields) = self else { return nil }
        return fields.first { $0.0 == key }?.1
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var arrayValue: [ProtoJSON] {
        if case .array(let items) = self { return items }
        return []
    }

    /// Envoy's pretty printing (protobuf's JSON printer: one space per level, `"key": value`).
    func pretty() -> String {
        var out = ""
        write(into: &out, indent: 0)
        return out
    }

    private func write(into out: inout String, indent: Int) {
        switch self {
        case .string(let s): out += JSONText.string(s)
        case .number(let n): out += n
        case .bool(let b): out += b ? "true" : "false"
        case .array(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "[\n"
            for (i, item) in items.enumerated() {
                out += String(repeating: " ", count: indent + 1)
                item.write(into: &out, indent: indent + 1)
                out += i == items.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        case .object(let fields):
            guard !fields.isEmpty else { out += "{}"; return }
            out += "{\n"
            for (i, (key, value)) in fields.enumerated() {
                out += String(repeating: " ", count: indent + 1) + JSONText.string(key) + ": "
                value.write(into: &out, indent: indent + 1)
                out += i == fields.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        }
    }
}
