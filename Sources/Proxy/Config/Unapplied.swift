/// Fields Envoy applies that Ballast parses but does not apply yet. Accepting them would let a
/// config silently behave differently from Envoy, so a set value is an error naming its YAML path
/// (exit 1 from validate, 2 from serve) until the behaviour is implemented.
extension ConfigFields {
    /// Refuses `key` when present. Returns false when it reported an error.
    func refuseUnapplied(_ key: String, _ what: String) -> Bool {
        guard has(key) else { return true }
        error(key, "not applied by ballast yet (in Envoy: \(what)); remove it")
        return false
    }

    /// Refuses a duration `key` unless it is 0s (which disables the feature, as Ballast behaves).
    func refuseUnappliedDuration(_ key: String, _ what: String) -> Bool {
        guard let value = self[key] else { return true }
        guard let nanos = value.duration() else { return false }
        if nanos == 0 { return true }
        error(key, "not applied by ballast yet (in Envoy: \(what)); remove it or set 0s (disabled)")
        return false
    }

    /// Refuses a boolean `key` set to true.
    func refuseUnappliedTrue(_ key: String, _ what: String) -> Bool {
        guard let value = self[key] else { return true }
        guard let flag = value.bool() else { return false }
        if !flag { return true }
        error(key, "not applied by ballast yet (in Envoy: \(what)); remove it or set false")
        return false
    }
}
