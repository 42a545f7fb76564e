import Synchronization

/// The runtime values the data path reads per request (the keys the fault filters read): one
/// atomic slot per key, written by the main or admin thread when a layer changes (a disk layer
/// reloaded, `/runtime_modify`, a reload) and read by workers with one relaxed load: no lock, no
/// allocation. Each key's slot holds the merged value of the layers (later layers win) or
/// `unset`. Lent from snapshot to snapshot when the key set stays. docs/dynamic-config.md.
public final class RuntimeValues: @unchecked Sendable {  // the slots are atomics
    /// The keys, sorted (slot i is keys[i]).
    public let keys: [String]
    private let index: [String: Int]
    private let slots: UnsafeMutablePointer<Atomic<Int64>>
    static let unset = Int64.min

    public init(keys: Set<String>) {
        self.keys = keys.sorted()
        var index: [String: Int] = [:]
        for (i, k) in self.keys.enumerated() { index[k] = i }
        self.index = index
        slots = .allocate(capacity: max(1, self.keys.count))
        for i in 0..<max(1, self.keys.count) { (slots + i).initialize(to: Atomic(Self.unset)) }
    }

    deinit {
        slots.deinitialize(count: max(1, keys.count))
        slots.deallocate()
    }

    /// The slot of `key` (-1: none, nothing is read).
    func slot(_ key: String?) -> Int { key.flatMap { index[$0] } ?? -1 }

    /// The value a layer sets for the key of `slot`, or nil.
    @inline(__always)
    func value(_ slot: Int) -> Int64? {
        guard slot >= 0 else { return nil }
        let v = (slots + slot).pointee.load(ordering: .relaxed)
        return v == Self.unset ? nil : v
    }

    /// Stores the merged values (`entries`: key -> text); keys not given become unset.
    public func publish(_ entries: [String: String]) {
        for (i, key) in keys.enumerated() {
            let v = entries[key].flatMap(Self.parse).map { Int64(clamping: $0) } ?? Self.unset
            (slots + i).pointee.store(v, ordering: .relaxed)
        }
    }

    /// A runtime value as the fault filters read it: an unsigned integer.
    public static func parse(_ text: String) -> UInt64? {
        UInt64(text.trimmingCharacters(in: .whitespaces))
    }

    /// Layers merged in order: a later layer's key wins.
    public static func merge(_ layers: [[String: String]]) -> [String: String] {
        var out: [String: String] = [:]
        for l in layers { out.merge(l) { _, new in new } }
        return out
    }
}
