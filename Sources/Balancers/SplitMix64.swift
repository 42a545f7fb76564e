/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, fast, seedable generator with a 64-bit state.
///
/// Deterministic for a seed, so a test or an experiment replays exactly the same weighted choices.
/// Not for anything that must be unpredictable. Each worker owns its own instance.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    @inlinable
    public init(seed: UInt64) {
        state = seed
    }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
