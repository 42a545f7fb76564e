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
        for e in entries where e.type.count == value.count {
            var same = true
            var i = 0
            while i < value.count {
                var b = bytes[value.lowerBound + i]
                if b >= 0x41 && b <= 0x5A { b |= 0x20 }
                if b != e.type[i] { same = false; break }
                i += 1
            }
            if same { return e.enabled }
        }
        return nil
    }

    /// Envoy's rule: the route's entry for the type if it has one, else the manager's.
    static func allows(manager: UpgradePolicy, route: UpgradePolicy?, _ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        if let r = route?.decision(bytes, value) { return r }
        return manager.decision(bytes, value) ?? false
    }
}
