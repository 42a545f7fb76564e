/// `upgrade_configs` compiled: whether a request's Upgrade value (websocket, ...) may be
/// tunnelled. A route's entry for a type overrides the connection manager's; a type listed
/// nowhere is refused (403 `upgrade_failed`, as Envoy).
struct UpgradePolicy: Sendable {
    /// Lower-cased `upgrade_type` bytes and `enabled`.
    let entries: [(type: [UInt8], enabled: Bool)]

    static let none = UpgradePolicy([])

    init(_ configs: [UpgradeConfig]) {
        entries = configs.map { (Array($0.upgradeType.lowercased().utf8), $0.enabled) }
    }

    var isEmpty: Bool { entries.isEmpty }

    /// The entry for the Upgrade value `bytes[value]` (the whole value, ASCII case-insensitively):
    /// its `enabled`, or nil when the type is not listed.
    func decision(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool? {
        let text = UnsafeRawBufferPointer(rebasing: bytes[value])
        for e in entries where e.type.count == text.count && CompiledRoute.bytesEqual(text, 0, e.type, ignoreCase: true) {
            return e.enabled
        }
        return nil
    }

    /// Envoy's rule: the route's entry for the type if it has one, else the manager's.
    static func allows(manager: UpgradePolicy, route: UpgradePolicy?, _ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        if let r = route?.decision(bytes, value) { return r }
        return manager.decision(bytes, value) ?? false
    }
}
